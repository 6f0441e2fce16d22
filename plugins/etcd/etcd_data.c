/*
 * etcd_data.c - etcd's data as the gateway carries it, and what we accept.
 *
 * The JSON gateway spells keys and values in base64 and 64-bit integers as
 * decimal strings; a prefix is read as the range [prefix, prefix_end).
 *
 * Endpoint values are untrusted: anyone with write access to the prefix can
 * put anything there. A key must be <prefix>/<service>/<id> with a non-empty
 * id without '/'; the value must be at most 64 KiB of ENDPOINT JSON that
 * bcn_endpoint_from_json accepts. The key's <id> is the endpoint's id: a
 * value without "id" takes it from the key, a value with another "id" is
 * skipped (otherwise one key could shadow another instance). Everything
 * skipped is logged once per key and problem, at most 20 lines per 10 s.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"

json_t *etcd_b64(const void *data, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(n);
	json_t *j;

	if (!s)
		return NULL;
	sodium_bin2base64(s, n, data, len, sodium_base64_VARIANT_ORIGINAL);
	j = json_string(s);
	free(s);
	return j;
}

int etcd_b64_member(const json_t *obj, const char *name, char **out, size_t *len)
{
	const char *s = json_string_value(json_object_get(obj, name)), *end = NULL;
	size_t slen = s ? strlen(s) : 0, bin = 0;
	char *buf = malloc(slen / 4 * 3 + 4);

	*out = NULL;
	*len = 0;
	if (!buf)
		return -1;
	if (slen && (sodium_base642bin((unsigned char *)buf, slen / 4 * 3 + 3, s, slen, NULL, &bin,
				       &end, sodium_base64_VARIANT_ORIGINAL) != 0 || end != s + slen)) {
		free(buf);
		return -1;
	}
	buf[bin] = '\0';
	*out = buf;
	*len = bin;
	return 0;
}

int64_t etcd_int(const json_t *obj, const char *name, int64_t max)
{
	const json_t *v = json_object_get(obj, name);
	const char *s;
	char *end;
	int64_t n = 0;

	if (json_is_integer(v)) {
		n = (int64_t)json_integer_value(v);
	} else if (json_is_string(v)) {
		s = json_string_value(v);
		n = strtoll(s, &end, 10); /* out of range saturates, and is clamped below */
		if (end == s || *end)
			return 0;
	}
	return n < 0 ? 0 : n > max ? max : n;
}

char *etcd_prefix_end(const char *prefix, size_t len, size_t *out_len)
{
	char *end = malloc(len + 2);

	if (!end)
		return NULL;
	memcpy(end, prefix, len);
	while (len > 0 && (unsigned char)end[len - 1] == 0xff)
		len--;
	if (len == 0) { /* every key: etcd spells that "\0" */
		end[0] = '\0';
		end[1] = '\0';
		*out_len = 1;
		return end;
	}
	end[len - 1] = (char)((unsigned char)end[len - 1] + 1);
	end[len] = '\0';
	*out_len = len;
	return end;
}

/* ---- untrusted values ---------------------------------------------------- */

/* The <id> of a service key, or NULL (with *why) when the key is outside the layout. */
const char *etcd_key_id(const char *base, size_t base_len, const char *key, size_t klen,
			size_t *idlen, const char **why)
{
	const char *id = key + base_len;

	*idlen = klen - base_len;
	if (klen < base_len || memcmp(key, base, base_len) != 0)
		*why = "it is outside the watched range";
	else if (*idlen == 0)
		*why = "the key has an empty instance id (expected <prefix>/<service>/<id>)";
	else if (memchr(id, '/', *idlen))
		*why = "the key has more levels than <prefix>/<service>/<id>";
	else if (memchr(id, '\0', *idlen) || *idlen > 256)
		*why = "the instance id is not a short text";
	else
		return id;
	return NULL;
}

/* An endpoint from a key and its value, or NULL after one log line. */
struct bcn_endpoint *etcd_parse_endpoint(struct etcd_ctx *ctx, const char *service, const char *key,
					 size_t klen, const char *id, const char *value, size_t vlen)
{
	struct bcn_endpoint *ep = NULL;
	json_error_t jerr;
	const char *err = NULL;
	json_t *obj, *jid, *sid;

	if (vlen > ETCD_MAX_VALUE) {
		etcd_skip(ctx, key, klen, "its value is %zu bytes, more than the %d an endpoint may have",
			  vlen, ETCD_MAX_VALUE);
		return NULL;
	}
	obj = json_loadb(value, vlen, 0, &jerr);
	if (!json_is_object(obj)) {
		if (obj)
			etcd_skip(ctx, key, klen, "its value is not a JSON object");
		else
			etcd_skip(ctx, key, klen, "its value is not valid JSON (%s)", jerr.text);
		json_decref(obj);
		return NULL;
	}
	jid = json_object_get(obj, "id");
	if (jid && !json_is_string(jid)) {
		etcd_skip(ctx, key, klen, "its \"id\" is not a string");
	} else if (jid && (strlen(json_string_value(jid)) != strlen(id) ||
			   strcmp(json_string_value(jid), id) != 0)) {
		etcd_skip(ctx, key, klen, "its \"id\" does not match the key's instance id");
	} else if (!jid && (!(sid = json_string(id)) || json_object_set_new(obj, "id", sid) != 0)) {
		etcd_skip(ctx, key, klen, "the instance id is not valid UTF-8");
	} else {
		ep = bcn_endpoint_from_json(obj, service, &err);
		if (!ep)
			etcd_skip(ctx, key, klen, "%s", err ? err : "invalid endpoint");
	}
	json_decref(obj);
	return ep;
}

void etcd_skip(struct etcd_ctx *ctx, const char *key, size_t key_len, const char *fmt, ...)
{
	enum { WINDOW_MS = 10000, LINES_PER_WINDOW = 20, KEY_SHOWN = 120 };
	char msg[256], shown[KEY_SHOWN + 1];
	uint64_t h;
	bool cut;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Each (key, problem) is logged once: a resync must not repeat them all. */
	h = bcn_hash64(key, key_len) * 31 + bcn_hash64(msg, strlen(msg));
	if (bcn_complain_seen(ctx->skipped, sizeof(ctx->skipped) / sizeof(ctx->skipped[0]),
			      &ctx->nskipped, h))
		return;
	if (!bcn_complain_due(&ctx->skips, WINDOW_MS, LINES_PER_WINDOW, ctx->log, "skipped values"))
		return;
	cut = bcn_log_printable(shown, sizeof(shown), key, key_len);
	bcn_warn(ctx->log, "skipping %s%s: %s", shown, cut ? "..." : "", msg);
}
