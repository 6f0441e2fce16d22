/*
 * fuzz_expand.c - ${VAR} expansion and durations, the two small parsers every
 * config string and every ?wait= goes through (agent/config/expand.c, duration.c).
 *
 * Besides crashes, it checks what a user relies on: text without '$' comes
 * back unchanged, and a parsed duration survives bcn_duration_format and a
 * second parse (the form /v1/self and --check-config print).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfgmap.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_logs_on();
	/* A few variables the corpus names: set, empty, with '$' and '}' inside. */
	setenv("FUZZ_A", "alpha", 1);
	setenv("FUZZ_EMPTY", "", 1);
	setenv("FUZZ_ODD", "$x}${y", 1);
	setenv("PORT", "8080", 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size), *out;
	const char *err = NULL;
	uint64_t ms, again;
	char buf[64];

	if (!s)
		return 0;
	out = bcn_expand_env(s, &err);
	if (!out && !err)
		fuzz_fail("bcn_expand_env failed without saying why");
	if (out && !strchr(s, '$') && strcmp(out, s) != 0)
		fuzz_fail("text without '$' changed under expansion");
	free(out);

	if (bcn_duration_parse(s, &ms) == 0) {
		bcn_duration_format(ms, buf, sizeof(buf));
		if (bcn_duration_parse(buf, &again) != 0 || again != ms)
			fuzz_fail("duration %llu ms formats as \"%s\", which does not parse back",
				  (unsigned long long)ms, buf);
	}
	free(s);
	return 0;
}
