/*
 * fuzz_mustache.c - the Mustache engine (agent/template/mustache*.c): a
 * template from the user's files is hostile input, and so is the data (a
 * KV value, a secret) it renders.
 *
 * The input is split at the first NUL: the template before it, a JSON
 * document after it (the root context; {} when absent or invalid). Partials
 * "a" and "b" exist (one recursive) so the partial path is reached. Besides
 * crashes, it checks what a user relies on: a template that parses renders
 * or fails with a sentence, never silently; a failed parse says where; and
 * text without "{{" renders as itself.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/mustache.h"
#include "fuzz_util.h"

static char *load(void *arg, const char *name, size_t *len, char *file, size_t filelen)
{
	static const char *const parts[][2] = {
		{ "a", "[{{x}}]\n  {{#list}}{{>b}}{{/list}}\n" },
		{ "b", "<{{.}}{{#y}}{{>b}}{{/y}}>" },
	};
	(void)arg;
	for (size_t i = 0; i < 2; i++)
		if (strcmp(name, parts[i][0]) == 0) {
			snprintf(file, filelen, "%s.mustache", name);
			*len = strlen(parts[i][1]);
			return strdup(parts[i][1]);
		}
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	struct bcn_mst_error err;
	struct bcn_mst_out out = { .max = 1 << 20 };
	json_t *root = NULL;
	struct bcn_mst *t;
	char msg[200];

	if (nul)
		root = json_loadb((const char *)nul + 1, size - tlen - 1, JSON_DECODE_ANY, NULL);
	if (!root)
		root = json_pack("{s:s,s:[i,s,{s:[i]}]}", "x", "<&>", "list", 1, "two", "y", 3);
	t = bcn_mst_parse((const char *)data, tlen, "fuzz", load, NULL, &err);
	if (!t) {
		if (!err.msg[0] || err.line == 0 || err.col == 0)
			fuzz_fail("a parse failed without saying where (%u:%u %s)", err.line, err.col, err.msg);
		json_decref(root);
		return 0;
	}
	for (int esc = 0; esc < 3; esc++) {
		out.len = 0;
		if (bcn_mst_render(t, root, (enum bcn_mst_escape)esc, &out, msg, sizeof(msg)) < 0 && !msg[0])
			fuzz_fail("a render failed without saying why");
	}
	if (!memmem(data, tlen, "{{", 2) && (out.len != tlen || memcmp(out.p, data, tlen) != 0))
		fuzz_fail("text without a tag did not render as itself");
	bcn_mst_out_free(&out);
	bcn_mst_free(t);
	json_decref(root);
	return 0;
}
