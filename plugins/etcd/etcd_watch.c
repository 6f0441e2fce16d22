/*
 * etcd_watch.c - discovery (watch.services) and config values (watch.kv).
 *
 * Each watched service or KV prefix is read with a paginated /v3/kv/range
 * (every page at the revision of the first, so the pages form one snapshot),
 * handed to the store as a whole (bcn_report_endpoints_replace,
 * bcn_report_kv_replace), then followed with a streaming /v3/watch from that revision + 1. The
 * gateway streams one JSON object per watch response, parsed by
 * etcd_watch_parse.c; events go to the cache as they arrive; the cache
 * coalesces them per loop turn.
 *
 * A watch that falls behind a compaction is read again; one that etcd
 * cancels or refuses is retried with backoff; a stream that ends means the
 * cluster is gone, which etcd_conn.c handles for every watch at once.
 *
 * Values are checked by etcd_data.c exactly alike in a range and in an
 * event; a key whose value turns bad loses its previous endpoint, since it no
 * longer describes one.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "etcd_watch.h"

#define RANGE_PAGE 2000

static void watch_begin(struct etcd_watch *w);

/* ---- the range ----------------------------------------------------------- */

static void acc_clear(struct etcd_watch *w)
{
	for (size_t i = 0; i < w->n; i++) {
		if (w->eps)
			free(w->eps[i]);
		if (w->keys) {
			free(w->keys[i]);
			free(w->vals[i]);
		}
	}
	free(w->eps);
	free(w->keys);
	free(w->vals);
	free(w->lens);
	free(w->next_key);
	w->eps = NULL;
	w->keys = w->vals = NULL;
	w->lens = NULL;
	w->next_key = NULL;
	w->n = w->cap = 0;
}

static int acc_reserve(struct etcd_watch *w)
{
	size_t ncap = w->cap ? w->cap * 2 : 64;

	if (w->n < w->cap)
		return 0;
	if (!w->base.kv) {
		void *e = realloc(w->eps, ncap * sizeof(*w->eps));
		if (!e)
			return -1;
		w->eps = e;
	} else {
		void *k = realloc(w->keys, ncap * sizeof(*w->keys));
		if (k)
			w->keys = k;
		void *v = realloc(w->vals, ncap * sizeof(*w->vals));
		if (v)
			w->vals = v;
		void *l = realloc(w->lens, ncap * sizeof(*w->lens));
		if (l)
			w->lens = l;
		if (!k || !v || !l)
			return -1;
	}
	w->cap = ncap;
	return 0;
}

/* One key of a range page into the snapshot being built. */
static void acc_add(struct etcd_watch *w, char *key, size_t klen, char *value, size_t vlen)
{
	const char *id, *why = NULL;
	size_t idlen;

	if (acc_reserve(w) < 0)
		goto drop;
	if (w->base.kv) {
		if (memchr(key, '\0', klen)) {
			etcd_skip(w->ctx, key, klen, "the key contains a NUL byte");
			goto drop;
		}
		w->keys[w->n] = key;
		w->vals[w->n] = value;
		w->lens[w->n++] = vlen;
		return;
	}
	id = etcd_key_id(w->key, w->key_len, key, klen, &idlen, &why);
	if (!id) {
		etcd_skip(w->ctx, key, klen, "%s", why);
		goto drop;
	}
	char idbuf[257];
	memcpy(idbuf, id, idlen);
	idbuf[idlen] = '\0';
	w->eps[w->n] = etcd_parse_endpoint(w->ctx, w->base.name, key, klen, idbuf, value, vlen);
	if (w->eps[w->n])
		w->n++;
drop:
	free(key);
	free(value);
}

static void range_page(struct etcd_watch *w);
static void start_stream(struct etcd_watch *w);

static void watch_failed(struct etcd_watch *w, const char *why)
{
	struct etcd_ctx *ctx = w->ctx;
	uint64_t ms = bcn_backoff_ms(w->attempt++, ETCD_RETRY_BASE_MS, ETCD_RETRY_MAX_MS);

	if (strcmp(w->base.last_error, why) != 0)
		bcn_warn(ctx->log, "watch of %s %s failed: %s; retrying", w->base.kv ? "prefix" : "service",
			 w->base.name, why);
	snprintf(w->base.last_error, sizeof(w->base.last_error), "%s", why);
	w->base.fresh = false;
	bcn_timer_ms(w->retry_ev, ms);
	etcd_report(ctx);
}

static void commit(struct etcd_watch *w)
{
	struct etcd_ctx *ctx = w->ctx;

	if (!w->base.kv) {
		bcn_report_endpoints_replace(ctx->ins, w->base.name, w->eps, w->n);
		w->n = 0; /* the cache owns the endpoints now */
	} else {
		bcn_report_kv_replace(ctx->ins, w->base.name, (const char *const *)w->keys,
				     (const char *const *)w->vals, w->lens, w->n);
	}
	bcn_debug(ctx->log, "read %s %s at revision %" PRId64, w->base.kv ? "prefix" : "service", w->base.name,
		  w->range_rev);
	acc_clear(w);
	w->revision = w->range_rev;
	if (w->revision > ctx->revision)
		ctx->revision = w->revision;
	w->range_rev = 0;
	w->base.fresh = w->base.synced = true;
	w->attempt = 0;
	w->base.last_error[0] = '\0';
}

static void range_done(struct etcd_ctx *ctx, const struct etcd_reply *r, void *arg)
{
	struct etcd_watch *w = arg;
	json_t *kvs, *kv;
	bool more;
	size_t i;

	w->req = NULL;
	if (r->outcome != ETCD_OK) {
		acc_clear(w);
		if (r->outcome == ETCD_UNREACHABLE)
			return;
		if (strstr(r->msg, "compacted")) { /* our snapshot revision went away: start over */
			watch_begin(w);
			return;
		}
		if (r->code == -2 && w->page > 1) { /* huge values: ask for fewer keys at a time */
			w->page = w->page / 16 ? w->page / 16 : 1;
			bcn_info(ctx->log, "reading %s %s %" PRId64 " keys at a time: its values are large",
				 w->base.kv ? "prefix" : "service", w->base.name, w->page);
			watch_begin(w);
			return;
		}
		watch_failed(w, r->msg);
		return;
	}
	if (!w->range_rev)
		w->range_rev = etcd_int(json_object_get(r->body, "header"), "revision", ETCD_MAX_REVISION);
	kvs = json_object_get(r->body, "kvs");
	more = json_is_true(json_object_get(r->body, "more")) && json_array_size(kvs) > 0;
	free(w->next_key);
	w->next_key = NULL;
	/* The next page starts just after this page's last key: its key + "\0". */
	if (more && etcd_b64_member(json_array_get(kvs, json_array_size(kvs) - 1), "key",
				    &w->next_key, &w->next_key_len) < 0) {
		acc_clear(w);
		watch_failed(w, "etcd answered the range with an invalid key");
		return;
	}
	w->next_key_len += more; /* include the NUL etcd_b64_member put after it */
	json_array_foreach(kvs, i, kv) {
		char *key, *value;
		size_t klen, vlen;
		if (etcd_b64_member(kv, "key", &key, &klen) < 0)
			continue;
		if (etcd_b64_member(kv, "value", &value, &vlen) < 0) {
			etcd_skip(ctx, key, klen, "its value is not valid base64");
			free(key);
			continue;
		}
		acc_add(w, key, klen, value, vlen);
	}
	if (more) {
		range_page(w);
		return;
	}
	commit(w);
	start_stream(w);
	etcd_report(ctx);
}

static void range_page(struct etcd_watch *w)
{
	json_t *body = json_pack("{sososI}", "key",
				 w->next_key ? etcd_b64(w->next_key, w->next_key_len) : etcd_b64(w->key, w->key_len),
				 "range_end", etcd_b64(w->end, w->end_len), "limit", (json_int_t)w->page);

	if (body && w->range_rev)
		json_object_set_new(body, "revision", json_integer((json_int_t)w->range_rev));
	w->req = etcd_request(w->ctx, "/v3/kv/range", body, 0, range_done, w);
	if (!w->req) {
		acc_clear(w);
		watch_failed(w, "the range request could not be started");
	}
}

/* ---- the stream (parsed in etcd_watch_parse.c) --------------------------- */

static void retry_tick(evutil_socket_t fd, short what, void *arg);

static void stream_done(struct etcd_ctx *ctx, const struct etcd_reply *r, void *arg)
{
	struct etcd_watch *w = arg;
	enum after_stop after = w->after;
	char why[sizeof(w->why)];

	memcpy(why, w->why, sizeof(why));
	w->req = NULL;
	w->streaming = false;
	etcd_watch_parser_reset(w);
	if (r->outcome == ETCD_UNREACHABLE)
		return;
	if (r->outcome != ETCD_FAILED || r->code != -1 || after == AFTER_NOTHING) {
		watch_failed(w, r->msg ? r->msg : "the watch ended");
		return;
	}
	switch (after) {
	case AFTER_RESYNC:
		bcn_info(ctx->log, "watch of %s %s: %s; reading it again", w->base.kv ? "prefix" : "service",
			 w->base.name, why);
		watch_begin(w);
		break;
	case AFTER_REAUTH:
		etcd_conn_reauth(ctx); /* the retried range waits for the new token */
		watch_failed(w, why);
		break;
	default:
		watch_failed(w, why);
		break;
	}
}

static void start_stream(struct etcd_watch *w)
{
	json_t *body = json_pack("{s{sososI}}", "create_request", "key", etcd_b64(w->key, w->key_len),
				 "range_end", etcd_b64(w->end, w->end_len),
				 "start_revision", (json_int_t)(w->revision + 1));

	etcd_watch_parser_reset(w);
	w->req = etcd_stream(w->ctx, "/v3/watch", body, etcd_watch_on_data, stream_done, w);
	w->streaming = w->req != NULL;
	if (!w->req)
		watch_failed(w, "the watch request could not be started");
}

/* ---- the set of watches -------------------------------------------------- */

static void watch_cancel(struct etcd_watch *w)
{
	etcd_req_cancel(w->req);
	w->req = NULL;
	w->streaming = false;
	evtimer_del(w->retry_ev);
	acc_clear(w);
	etcd_watch_parser_reset(w);
	w->range_rev = 0;
}

static void watch_begin(struct etcd_watch *w)
{
	watch_cancel(w);
	if (w->ctx->session == ETCD_UP && !w->ctx->stopping)
		range_page(w);
}

static void retry_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	watch_begin(arg);
}

static void watch_free(struct bcn_watch *b)
{
	struct etcd_watch *w = (struct etcd_watch *)b;

	if (!w)
		return;
	watch_cancel(w);
	if (w->retry_ev)
		event_free(w->retry_ev);
	free(w->base.name);
	free(w->key);
	free(w->end);
	free(w);
}

static struct bcn_watch *watch_new(void *arg, bool kv, const char *name)
{
	struct etcd_ctx *ctx = arg;
	struct etcd_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->ctx = ctx;
	w->base.kv = kv;
	w->page = RANGE_PAGE;
	w->base.name = strdup(name);
	if (kv)
		w->key = strdup(name);
	else if (asprintf(&w->key, "%s/%s/", ctx->prefix, name) < 0)
		w->key = NULL;
	w->retry_ev = evtimer_new(ctx->core->base, retry_tick, w);
	if (!w->base.name || !w->key || !w->retry_ev)
		goto fail;
	w->key_len = strlen(w->key);
	w->end = etcd_prefix_end(w->key, w->key_len, &w->end_len);
	if (!w->end)
		goto fail;
	return &w->base;
fail:
	watch_free(&w->base);
	return NULL;
}

static void watch_start(struct bcn_watch *b)
{
	watch_begin((struct etcd_watch *)b);
}

static const char *self_state(const struct bcn_watch *b)
{
	const struct etcd_watch *w = (const struct etcd_watch *)b;

	return w->streaming ? "watching" : w->req ? "reading" : "waiting";
}

static json_t *self_fields(const struct bcn_watch *b)
{
	const struct etcd_watch *w = (const struct etcd_watch *)b;

	return json_pack("{sIsI}", "revision", (json_int_t)w->revision, "events", (json_int_t)w->events);
}

static const struct bcn_watch_ops watch_ops = {
	.create = watch_new,
	.start = watch_start,
	.destroy = watch_free,
	.self_state = self_state,
	.self_fields = self_fields,
};

void etcd_watch_apply(struct etcd_ctx *ctx)
{
	bcn_watchset_apply(&ctx->watches, ctx->ins, &watch_ops, ctx, ctx->ever_up);
}

void etcd_watch_up(struct etcd_ctx *ctx)
{
	struct bcn_watch *b;

	SLIST_FOREACH(b, &ctx->watches, link) {
		struct etcd_watch *w = (struct etcd_watch *)b;
		w->attempt = 0;
		watch_begin(w);
	}
}

void etcd_watch_down(struct etcd_ctx *ctx)
{
	struct bcn_watch *b;

	SLIST_FOREACH(b, &ctx->watches, link) {
		watch_cancel((struct etcd_watch *)b);
		b->fresh = false;
	}
}

void etcd_watch_free_all(struct etcd_ctx *ctx)
{
	bcn_watchset_free_all(&ctx->watches, &watch_ops);
}

json_t *etcd_watch_self(const struct etcd_ctx *ctx)
{
	return bcn_watchset_self(&ctx->watches, &watch_ops);
}
