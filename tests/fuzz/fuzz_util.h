/*
 * fuzz_util.h - what every libFuzzer harness of tests/fuzz/ shares.
 *
 * Harnesses run the agent's own code on untrusted bytes; a sanitizer report
 * or fuzz_fail() (a property a user relies on did not hold) is a finding.
 * Logs are on at debug level so their formatting of hostile text is fuzzed
 * too; `make fuzz` passes -close_fd_mask=3 so they cost no terminal time.
 */
#ifndef BCN_FUZZ_UTIL_H
#define BCN_FUZZ_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/common_interface_defs.h>

#include "base/log.h"

static inline void fuzz_logs_on(void)
{
	bcn_log_setup(BCN_LOG_DEBUG, BCN_LOG_TEXT);
}

/* Report a broken property and abort, so libFuzzer saves the input. The
 * message goes where sanitizer reports go: libFuzzer keeps that open when
 * -close_fd_mask silences the agent's own stderr. */
static inline void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void fuzz_fail(const char *fmt, ...)
{
	char msg[512] = "fuzz property failed: ";
	size_t off = strlen(msg);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg + off, sizeof(msg) - off, fmt, ap);
	va_end(ap);
	__sanitizer_report_error_summary(msg);
	abort();
}

/* The input as a NUL-terminated string (cut at its first NUL). NULL on OOM. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return NULL;
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
