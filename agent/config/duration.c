/*
 * duration.c - Go-style durations ("500ms", "10s", "1h30m", "1.5s") in
 * milliseconds, capped at Go's time.Duration range so every value we accept
 * means the same to Go tools reading the same config.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config/cfgmap.h"

/* Go's time.Duration limit: every accepted duration converts to ns without overflow. */
#define DURATION_MAX_MS (INT64_MAX / 1000000)

/* Milliseconds per unit at s, and its length in *n; 0 when unknown. */
static uint64_t duration_unit(const char *s, size_t *n)
{
	*n = 1;
	if (s[0] == 'm' && s[1] == 's') {
		*n = 2;
		return 1;
	}
	switch (s[0]) {
	case 's': return 1000;
	case 'm': return 60 * 1000;
	case 'h': return 60 * 60 * 1000;
	default: return 0;
	}
}

int bcn_duration_parse(const char *s, uint64_t *ms)
{
	uint64_t total = 0;

	if (!s || !*s)
		return -1;
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	while (*s) {
		/* Fraction digits past the 12th are ignored: worth < 4ns even in hours. */
		uint64_t whole = 0, frac = 0, scale = 1, unit, part;
		bool digits = false;
		size_t n;

		for (; *s >= '0' && *s <= '9'; s++, digits = true) {
			whole = whole * 10 + (uint64_t)(*s - '0');
			if (whole > DURATION_MAX_MS)
				return -1;
		}
		if (*s == '.') {
			for (s++; *s >= '0' && *s <= '9'; s++, digits = true) {
				if (scale < 1000000000000ULL) {
					frac = frac * 10 + (uint64_t)(*s - '0');
					scale *= 10;
				}
			}
		}
		unit = duration_unit(s, &n);
		if (!digits || !unit || whole > DURATION_MAX_MS / unit)
			return -1;
		part = whole * unit + frac * unit / scale; /* sub-millisecond rest is dropped */
		if (part > DURATION_MAX_MS - total)
			return -1;
		total += part;
		s += n;
	}
	*ms = total;
	return 0;
}

static size_t put(char *buf, size_t len, size_t off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static size_t put(char *buf, size_t len, size_t off, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + off, len - off, fmt, ap);
	va_end(ap);
	if (n < 0)
		return off;
	return off + (size_t)n >= len ? len - 1 : off + (size_t)n;
}

void bcn_duration_format(uint64_t ms, char *buf, size_t len)
{
	uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, rest = ms % 1000;
	size_t off = 0;

	if (!buf || !len)
		return;
	buf[0] = '\0';
	if (ms == 0) {
		put(buf, len, 0, "0s");
		return;
	}
	if (h)
		off = put(buf, len, off, "%" PRIu64 "h", h);
	if (m)
		off = put(buf, len, off, "%" PRIu64 "m", m);
	if (s && rest) {
		char frac[4];

		/* "1.5s", not "1.500s": drop trailing zeros of the milliseconds. */
		snprintf(frac, sizeof(frac), "%03u", (unsigned)rest);
		for (int i = 2; i > 0 && frac[i] == '0'; i--)
			frac[i] = '\0';
		put(buf, len, off, "%" PRIu64 ".%ss", s, frac);
	} else if (s) {
		put(buf, len, off, "%" PRIu64 "s", s);
	} else if (rest) {
		put(buf, len, off, "%" PRIu64 "ms", rest);
	}
}

