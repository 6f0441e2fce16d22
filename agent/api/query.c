/*
 * query.c - the socket API's URL parsing: percent-decoding of path names and
 * the query parameters SPEC defines (?index, ?wait, ?tag, ?status, ?policy,
 * ?key, ?recurse). Everything is parsed in place into fixed buffers, without
 * allocating, and every input is hostile: an escape that is cut short, not
 * hex, or decodes to NUL, and a value longer than its buffer, are refused
 * rather than truncated. Kept free of the server so unit tests call it directly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/api_internal.h"
#include "config/cfgmap.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int bcn_api_decode(const char *s, size_t len, char *out, size_t cap, bool plus)
{
	size_t j = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return -1;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
			if (c == '\0')
				return -1;
		} else if (plus && c == '+') {
			c = ' ';
		}
		if (j + 1 >= cap)
			return -1;
		out[j++] = c;
	}
	if (cap == 0)
		return -1;
	out[j] = '\0';
	return 0;
}

int bcn_api_parse_query(const char *q, struct bcn_query *out, char *err, size_t errlen)
{
	memset(out, 0, offsetof(struct bcn_query, tag));
	out->tag[0] = out->policy[0] = out->key[0] = '\0';
	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t klen = eq ? (size_t)(eq - q) : len;
		const char *v = eq ? eq + 1 : q + len;
		size_t vlen = eq ? len - klen - 1 : 0;
		char val[BCN_API_MAX_NAME];

		if (bcn_api_decode(v, vlen, val, sizeof(val), true) < 0) {
			snprintf(err, errlen, "query parameter \"%.*s\" is malformed or too long",
				 (int)bcn_utf8_cut(q, klen, 40), q);
			return -1;
		}
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(q, k, klen) == 0)
		if (KEY("tag")) {
			snprintf(out->tag, sizeof(out->tag), "%s", val);
			out->has_tag = true;
		} else if (KEY("status")) {
			if (strcmp(val, "any") == 0)
				out->status_any = true;
			else if (strcmp(val, "passing") != 0) {
				snprintf(err, errlen, "status must be \"passing\" or \"any\"");
				return -1;
			}
		} else if (KEY("index")) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(val, &end, 10);
			if (val[0] < '0' || val[0] > '9' || *end || errno == ERANGE) {
				snprintf(err, errlen, "index must be a non-negative integer");
				return -1;
			}
			out->index = n;
			out->has_index = true;
		} else if (KEY("wait")) {
			if (bcn_duration_parse(val, &out->wait_ms) < 0) {
				snprintf(err, errlen, "wait must be a duration such as \"30s\"");
				return -1;
			}
			if (out->wait_ms > BCN_API_MAX_WAIT_MS)
				out->wait_ms = BCN_API_MAX_WAIT_MS;
		} else if (KEY("policy")) {
			snprintf(out->policy, sizeof(out->policy), "%s", val);
		} else if (KEY("key")) {
			snprintf(out->key, sizeof(out->key), "%s", val);
			out->has_key = true;
		} else if (KEY("recurse")) {
			out->has_recurse = true;
		}
		/* Other parameters are ignored, as Consul does. */
#undef KEY
		q = amp ? amp + 1 : NULL;
	}
	return 0;
}
