/*
 * consul_watch.c - discovery (watch.services) and config values (watch.kv)
 * through Consul's blocking queries.
 *
 * One loop per watched service (/v1/health/service/<name>) or KV prefix
 * (/v1/kv/<prefix>?recurse), whatever the number of local readers: the cache
 * shares the result. Each loop follows the client rules of Consul's
 * "Blocking Queries" page:
 *
 *   - the first query has no index; every later one sends the last
 *     X-Consul-Index, and never 0: an index of 0 (a reset, or a buggy
 *     answer) is sent as 1, which is always safe;
 *   - an index lower than the previous one (a snapshot restore, an agent
 *     restarted without state, a KV delete) resets the loop: the answer is
 *     used, and the next query starts over from index 1;
 *   - queries are rate-limited (CONSUL_MIN_QUERY_GAP_MS between the starts
 *     of two queries of one loop), so a flapping service cannot make us spin;
 *   - errors back off exponentially with jitter, and the query after an error
 *     asks with index 1 so that it answers at once: whatever changed during
 *     the outage is read now, not after `wait`.
 *
 * An answer replaces the whole set in the store (bcn_report_endpoints_replace,
 * bcn_report_kv_replace). Answers that change nothing (the wait ran out, or a
 * write that did not touch what we serve) are recognised by a fingerprint
 * and do not wake the local readers.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consul.h"

struct consul_watch {
	struct bcn_watch base;    /* first: name, kind, synced/fresh, last_error */
	struct consul_ctx *ctx;
	char *path;               /* "/v1/health/service/<name>" or "/v1/kv/<prefix>", escaped */
	struct consul_req *req;
	struct event *next_ev;    /* the next query: rate limit or backoff */
	uint64_t index;           /* X-Consul-Index of the last answer; 0 = none or reset */
	bool answered;            /* ever: from then on the query always carries an index */
	bool reread;              /* the next query must answer at once (after an error) */
	bool have_fp;
	bool error_logged;        /* last_error was logged: say so when it works again */
	bool error_unreachable;   /* last_error says the agent was unreachable */
	uint64_t fingerprint;     /* of what the cache holds from us */
	uint64_t started_ms;
	uint64_t answers, resets;
	unsigned attempt;
};

static void query(struct consul_watch *w);

static const char *kind(const struct consul_watch *w)
{
	return w->base.kv ? "prefix" : "service";
}

static void watch_failed(struct consul_watch *w, const struct consul_reply *r, const char *why)
{
	struct consul_ctx *ctx = w->ctx;
	bool changed = strcmp(w->base.last_error, why) != 0;
	size_t total, synced, fresh;
	const char *first;

	snprintf(w->base.last_error, sizeof(w->base.last_error), "%s", why);
	/* Unreachable agents and ACL refusals are logged once for the instance,
	 * and so is the first failing watch's error (consul_report: "syncing:
	 * query of ... failed: ..."); the others are logged here. */
	if (!r || (r->outcome == CONSUL_ANSWERED && !r->acl)) {
		bcn_watchset_counts(&ctx->watches, &total, &synced, &fresh, &first);
		if (changed && (first != w->base.last_error || ctx->acl_err[0]))
			bcn_warn(ctx->log, "query of %s %s failed: %s; retrying", kind(w), w->base.name, why);
		w->error_logged = true;
	}
	if (r && r->acl)
		consul_acl_denied(ctx, why);
	w->error_unreachable = r && r->outcome == CONSUL_UNREACHABLE;
	w->base.fresh = false;
	w->reread = true;
	evtimer_del(w->next_ev);
	bcn_timer_ms(w->next_ev, bcn_backoff_ms(w->attempt++, CONSUL_RETRY_BASE_MS, CONSUL_RETRY_MAX_MS));
	if (!r || r->outcome == CONSUL_ANSWERED)
		consul_report(ctx); /* else consul_lost() reports right after */
}

static uint64_t fingerprint_eps(struct bcn_endpoint *const *eps, size_t n)
{
	uint64_t h = bcn_hash64(&n, sizeof(n));
	for (size_t i = 0; i < n; i++)
		h = h * 1099511628211ULL ^ bcn_hash64(eps[i]->json, eps[i]->json_len);
	return h;
}

static uint64_t fingerprint_kv(const struct consul_kv_list *l)
{
	uint64_t h = bcn_hash64(&l->n, sizeof(l->n));
	for (size_t i = 0; i < l->n; i++) {
		h = h * 1099511628211ULL ^ bcn_hash64(l->keys[i], strlen(l->keys[i]));
		h = h * 1099511628211ULL ^ bcn_hash64(l->vals[i], l->lens[i]);
	}
	return h;
}

/* Hand an answer to the cache; -1 with *why when it is malformed. */
static int apply(struct consul_watch *w, const struct consul_reply *r, const char **why)
{
	struct consul_ctx *ctx = w->ctx;
	uint64_t fp;

	if (!w->base.kv) {
		struct bcn_endpoint **eps;
		size_t n;
		if (consul_parse_health(ctx, w->base.name, r->body, r->len, &eps, &n, why) < 0)
			return -1;
		fp = fingerprint_eps(eps, n);
		if (w->have_fp && fp == w->fingerprint) {
			for (size_t i = 0; i < n; i++)
				free(eps[i]);
		} else {
			bcn_report_endpoints_replace(ctx->ins, w->base.name, eps, n);
		}
		free(eps);
	} else {
		struct consul_kv_list l = { 0 };
		/* 404: nothing under the prefix (yet). */
		if (r->status != 404 && consul_parse_kv(ctx, w->base.name, r->body, r->len, &l, why) < 0)
			return -1;
		fp = fingerprint_kv(&l);
		if (!w->have_fp || fp != w->fingerprint)
			bcn_report_kv_replace(ctx->ins, w->base.name, (const char *const *)l.keys,
					     (const char *const *)l.vals, l.lens, l.n);
		consul_kv_list_free(&l);
	}
	w->fingerprint = fp;
	w->have_fp = true;
	return 0;
}

static void query_done(struct consul_ctx *ctx, const struct consul_reply *r, void *arg)
{
	struct consul_watch *w = arg;
	const char *why = NULL;
	char msg[200];
	uint64_t idx, gap;

	w->req = NULL;
	if (r->outcome != CONSUL_ANSWERED || (r->status != 200 && !(w->base.kv && r->status == 404))) {
		watch_failed(w, r, r->msg ? r->msg : "unexpected answer");
		return;
	}
	if (!r->has_index) {
		watch_failed(w, NULL, "the answer has no X-Consul-Index (is the address a Consul agent?)");
		return;
	}
	if (r->filtered)
		consul_warn_once(ctx, w->base.name, "Consul left out what the ACL token may not read; "
				 "grant it read access to see every entry");
	if (apply(w, r, &why) < 0) {
		snprintf(msg, sizeof(msg), "malformed answer from Consul: %s", why);
		watch_failed(w, NULL, msg);
		return;
	}
	idx = r->index ? r->index : 1; /* an index of 0 is a Consul bug; 1 is always safe */
	if (w->index && idx < w->index) {
		bcn_info(ctx->log, "the index of %s %s went backwards (%" PRIu64 " -> %" PRIu64 "); "
			 "starting its blocking query over", kind(w), w->base.name, w->index, idx);
		w->index = 0;
		w->resets++;
	} else {
		w->index = idx;
	}
	if (w->error_logged)
		bcn_info(ctx->log, "query of %s %s works again", kind(w), w->base.name);
	w->error_logged = false;
	w->base.last_error[0] = '\0';
	w->answered = w->base.synced = w->base.fresh = true;
	w->reread = false;
	w->attempt = 0;
	w->answers++;
	consul_report(ctx);

	gap = bcn_now_ms() - w->started_ms;
	if (gap < CONSUL_MIN_QUERY_GAP_MS)
		bcn_timer_ms(w->next_ev, CONSUL_MIN_QUERY_GAP_MS - gap);
	else
		query(w);
}

static void query(struct consul_watch *w)
{
	struct consul_ctx *ctx = w->ctx;
	const char *dc = ctx->dc_param;
	char blocking[64] = "", *pq = NULL;

	if (w->req || ctx->stopping)
		return;
	evtimer_del(w->next_ev);
	if (w->answered) {
		uint64_t idx = w->reread || !w->index ? 1 : w->index;
		snprintf(blocking, sizeof(blocking), "index=%" PRIu64 "&wait=%" PRIu64 "ms", idx, ctx->wait_ms);
	}
	if (asprintf(&pq, "%s?%s%s%s%s%s%s%s", w->path, w->base.kv ? "recurse" : "",
		     w->base.kv && (blocking[0] || dc[0]) ? "&" : "", blocking,
		     blocking[0] && dc[0] ? "&" : "", dc,
		     /* any server answers, through a leader election (Consistency Modes) */
		     ctx->stale_reads && (w->base.kv || blocking[0] || dc[0]) ? "&" : "",
		     ctx->stale_reads ? "stale" : "") < 0) {
		watch_failed(w, NULL, "out of memory");
		return;
	}
	w->started_ms = bcn_now_ms();
	w->req = consul_request(ctx, "GET", pq, NULL, w->answered ? CONSUL_REQ_LONG : 0, query_done, w);
	free(pq);
	if (!w->req)
		watch_failed(w, NULL, "the query could not be started");
}

static void next_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	query(arg);
}

/* ---- the set of watches -------------------------------------------------- */

static void watch_cancel(struct consul_watch *w)
{
	consul_req_cancel(w->req);
	w->req = NULL;
	if (w->next_ev)
		evtimer_del(w->next_ev);
}

static void watch_free(struct bcn_watch *b)
{
	struct consul_watch *w = (struct consul_watch *)b;

	if (!w)
		return;
	watch_cancel(w);
	if (w->next_ev)
		event_free(w->next_ev);
	free(w->base.name);
	free(w->path);
	free(w);
}

static struct bcn_watch *watch_new(void *arg, bool kv, const char *name)
{
	struct consul_ctx *ctx = arg;
	struct consul_watch *w = calloc(1, sizeof(*w));
	const char *prefix = kv ? "/v1/kv/" : "/v1/health/service/";
	/* The cache's KV keys start with "/", Consul's do not. */
	const char *remote = kv ? name + 1 : name;
	size_t cap;

	if (!w)
		return NULL;
	w->ctx = ctx;
	w->base.kv = kv;
	w->base.name = strdup(name);
	cap = strlen(prefix) + 3 * strlen(remote) + 1;
	w->path = malloc(cap);
	w->next_ev = evtimer_new(ctx->core->base, next_tick, w);
	if (!w->base.name || !w->path || !w->next_ev) {
		watch_free(&w->base);
		return NULL;
	}
	snprintf(w->path, cap, "%s", prefix);
	consul_escape(w->path, cap, remote, kv);
	return &w->base;
}

static void watch_start(struct bcn_watch *b)
{
	query((struct consul_watch *)b);
}

static const char *self_state(const struct bcn_watch *b)
{
	const struct consul_watch *w = (const struct consul_watch *)b;

	return w->req ? (w->answered ? "blocking" : "reading") : "waiting";
}

static json_t *self_fields(const struct bcn_watch *b)
{
	const struct consul_watch *w = (const struct consul_watch *)b;

	return json_pack("{sIsIsI}", "index", (json_int_t)w->index, "answers", (json_int_t)w->answers,
			 "index_resets", (json_int_t)w->resets);
}

static const struct bcn_watch_ops watch_ops = {
	.create = watch_new,
	.start = watch_start,
	.destroy = watch_free,
	.self_state = self_state,
	.self_fields = self_fields,
};

void consul_watch_apply(struct consul_ctx *ctx)
{
	bcn_watchset_apply(&ctx->watches, ctx->ins, &watch_ops, ctx, ctx->ever_answered);
}

void consul_watch_lost(struct consul_ctx *ctx)
{
	struct bcn_watch *b;

	SLIST_FOREACH(b, &ctx->watches, link) {
		struct consul_watch *w = (struct consul_watch *)b;
		/* A long poll with the old index would answer only after `wait` if
		 * the agent comes back with older data: the next query must answer
		 * at once, and one in flight is asked again after a backoff. */
		w->base.fresh = false;
		w->reread = true;
		if (!w->req)
			continue;
		watch_cancel(w);
		bcn_timer_ms(w->next_ev, bcn_backoff_ms(w->attempt++, CONSUL_RETRY_BASE_MS, CONSUL_RETRY_MAX_MS));
	}
}

void consul_watch_kick(struct consul_ctx *ctx)
{
	struct bcn_watch *b;

	SLIST_FOREACH(b, &ctx->watches, link) {
		struct consul_watch *w = (struct consul_watch *)b;
		if (w->error_unreachable) /* no longer true; a new problem sets its own */
			w->base.last_error[0] = '\0';
		w->error_unreachable = false;
		if (!w->req && evtimer_pending(w->next_ev, NULL))
			query(w);
	}
}

void consul_watch_stop_all(struct consul_ctx *ctx)
{
	struct bcn_watch *b;

	SLIST_FOREACH(b, &ctx->watches, link)
		watch_cancel((struct consul_watch *)b);
}

void consul_watch_free_all(struct consul_ctx *ctx)
{
	bcn_watchset_free_all(&ctx->watches, &watch_ops);
}

json_t *consul_watch_self(const struct consul_ctx *ctx)
{
	return bcn_watchset_self(&ctx->watches, &watch_ops);
}
