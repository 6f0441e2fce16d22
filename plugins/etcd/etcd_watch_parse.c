/*
 * etcd_watch_parse.c - the parser of a watch stream (etcd_watch.c starts and
 * ends the streams). The gateway streams one JSON object per watch response;
 * a small brace scanner finds where each ends, so a message split across
 * reads, or many messages in one read, cost one pass over the bytes. Each
 * event goes to the store as it arrives, its value checked by etcd_data.c
 * exactly as in a range; a compaction, a cancel or a refused token stops the
 * stream with w->after saying what to do next.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "etcd_watch.h"

/* Apply one event; values are validated exactly as in a range. */
static void apply_event(struct etcd_watch *w, json_t *ev)
{
	struct etcd_ctx *ctx = w->ctx;
	const char *type = json_string_value(json_object_get(ev, "type"));
	bool del = type && strcmp(type, "DELETE") == 0;
	json_t *kv = json_object_get(ev, "kv");
	char *key = NULL, *value = NULL, idbuf[257];
	const char *id, *why = NULL;
	size_t klen, vlen, idlen;

	if (etcd_b64_member(kv, "key", &key, &klen) < 0 || etcd_b64_member(kv, "value", &value, &vlen) < 0)
		goto out;
	int64_t rev = etcd_int(kv, "mod_revision", ETCD_MAX_REVISION);
	if (rev > w->revision)
		w->revision = rev;
	w->events++;
	if (w->base.kv) {
		if (memchr(key, '\0', klen))
			etcd_skip(ctx, key, klen, "the key contains a NUL byte");
		else if (del)
			bcn_report_kv_delete(ctx->ins, key);
		else
			bcn_report_kv_put(ctx->ins, key, value, vlen);
		goto out;
	}
	id = etcd_key_id(w->key, w->key_len, key, klen, &idlen, &why);
	if (!id) {
		if (!del)
			etcd_skip(ctx, key, klen, "%s", why);
		goto out;
	}
	memcpy(idbuf, id, idlen);
	idbuf[idlen] = '\0';
	if (!del) {
		struct bcn_endpoint *ep = etcd_parse_endpoint(w->ctx, w->base.name, key, klen, idbuf, value, vlen);
		if (ep) {
			bcn_report_endpoint(ctx->ins, w->base.name, ep);
			goto out;
		}
	}
	bcn_report_endpoint_gone(ctx->ins, w->base.name, idbuf);
out:
	free(key);
	free(value);
}

/* One watch response. Returns non-zero to stop the stream (w->after says why). */
static int handle_message(struct etcd_watch *w, json_t *msg)
{
	struct etcd_ctx *ctx = w->ctx;
	json_t *res = json_object_get(msg, "result"), *err = json_object_get(msg, "error"), *ev;
	int64_t crev;
	size_t i;

	if (err) {
		const char *m = json_string_value(json_is_object(err) ? json_object_get(err, "message") : err);
		snprintf(w->why, sizeof(w->why), "%s", m ? m : "etcd refused the watch");
		w->after = ctx->password && m && strstr(m, "auth") ? AFTER_REAUTH : AFTER_RETRY;
		return 1;
	}
	if (!json_is_object(res))
		return 0;
	crev = etcd_int(res, "compact_revision", ETCD_MAX_REVISION);
	if (crev > 0) {
		snprintf(w->why, sizeof(w->why), "history was compacted at revision %" PRId64, crev);
		w->after = AFTER_RESYNC;
		return 1;
	}
	if (json_is_true(json_object_get(res, "canceled"))) {
		const char *m = json_string_value(json_object_get(res, "cancel_reason"));
		snprintf(w->why, sizeof(w->why), "etcd cancelled the watch%s%s", m ? ": " : "", m ? m : "");
		/* An expired token shows up here as "permission denied". */
		w->after = ctx->password && (!m || strstr(m, "permission denied") || strstr(m, "auth"))
				   ? AFTER_REAUTH : AFTER_RETRY;
		return 1;
	}
	json_array_foreach(json_object_get(res, "events"), i, ev)
		apply_event(w, ev);
	int64_t rev = etcd_int(json_object_get(res, "header"), "revision", ETCD_MAX_REVISION);
	if (rev > ctx->revision)
		ctx->revision = rev;
	return 0;
}

void etcd_watch_parser_reset(struct etcd_watch *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap_buf = w->pos = w->start = 0;
	w->depth = 0;
	w->in_str = w->esc = false;
	w->after = AFTER_NOTHING;
}

/* Curl's write callback: no request may be started or cancelled from here. */
int etcd_watch_on_data(const char *data, size_t n, void *arg)
{
	struct etcd_watch *w = arg;

	if (n > STREAM_MAX - w->len) {
		snprintf(w->why, sizeof(w->why), "one watch response is larger than %zu bytes", STREAM_MAX);
		w->after = AFTER_RESYNC;
		return 1;
	}
	if (w->len + n > w->cap_buf) {
		size_t ncap = w->cap_buf ? w->cap_buf : 4096;
		while (ncap < w->len + n)
			ncap *= 2;
		char *nb = realloc(w->buf, ncap);
		if (!nb) {
			snprintf(w->why, sizeof(w->why), "out of memory while reading the watch");
			w->after = AFTER_RETRY;
			return 1;
		}
		w->buf = nb;
		w->cap_buf = ncap;
	}
	memcpy(w->buf + w->len, data, n);
	w->len += n;

	for (; w->pos < w->len; w->pos++) {
		char c = w->buf[w->pos];
		if (w->in_str) {
			if (w->esc)
				w->esc = false;
			else if (c == '\\')
				w->esc = true;
			else if (c == '"')
				w->in_str = false;
		} else if (c == '"' && w->depth > 0) {
			w->in_str = true;
		} else if (c == '{') {
			if (w->depth++ == 0)
				w->start = w->pos;
		} else if (c == '}' && w->depth > 0) {
			if (--w->depth == 0) {
				json_t *msg = json_loadb(w->buf + w->start, w->pos + 1 - w->start, 0, NULL);
				int stop = msg ? handle_message(w, msg) : 0;
				json_decref(msg);
				if (!msg) {
					snprintf(w->why, sizeof(w->why), "the watch stream holds invalid JSON");
					w->after = AFTER_RETRY;
					stop = 1;
				}
				if (stop)
					return 1;
			}
		} else if (w->depth == 0 && c != ' ' && c != '\n' && c != '\r' && c != '\t') {
			snprintf(w->why, sizeof(w->why), "the watch stream is not etcd's JSON");
			w->after = AFTER_RETRY;
			return 1;
		}
	}
	/* Keep only the unfinished message; give back the room a burst needed. */
	if (w->depth == 0) {
		w->len = w->pos = w->start = 0;
		if (w->cap_buf > ((size_t)1 << 20)) {
			free(w->buf);
			w->buf = NULL;
			w->cap_buf = 0;
		}
	} else if (w->start > 0) {
		memmove(w->buf, w->buf + w->start, w->len - w->start);
		w->len -= w->start;
		w->pos -= w->start;
		w->start = 0;
	}
	return 0;
}
