/*
 * etcd_conn.c - the session with the etcd cluster and every request to it.
 *
 * Connecting means: a /v3/maintenance/status request to the current endpoint
 * (short timeout), then, with a username, /v3/auth/authenticate for a token.
 * Once UP, the same status request runs every ETCD_PROBE_INTERVAL_MS: a
 * SIGSTOPped etcd still accepts connections but never answers, and only a
 * request with a deadline notices that. Any request that finds the endpoint
 * unreachable (connect error, timeout, TLS, 5xx, a watch stream that ends)
 * drops the session: everything is cancelled, the next endpoint is tried
 * after an exponential backoff with jitter, and registration and watches
 * start over on the next UP.
 *
 * The password and the token live only in sodium memory and in requests
 * marked sensitive (wiped when freed); the authentication exchange itself is
 * etcd_auth.c. Answers refusing the token are retried once after a new
 * authentication, transparently for the caller.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"

#define REQ_NOAUTH 0x100   /* does not need the token (status, authenticate) */
#define MSG_LEN 240

struct etcd_req {
	LIST_ENTRY(etcd_req) queue;   /* in ctx->queued while it waits for a token */
	struct etcd_ctx *ctx;
	struct bcn_http_call *call;
	char *path;
	char *body;
	size_t body_len;
	unsigned flags;
	bool queued;      /* waits for a token */
	bool retried;     /* already re-sent once after a refused token */
	bool stream;
	etcd_reply_cb cb;
	bcn_http_data_cb on_data;
	void *arg;
};

static void session_lost(struct etcd_ctx *ctx, const char *why);

/* ---- small helpers ------------------------------------------------------- */

const char *etcd_conn_endpoint(const struct etcd_ctx *ctx)
{
	return ctx->endpoints[ctx->cur];
}

/* ---- requests ------------------------------------------------------------ */

/* Requests in flight belong to the instance's HTTP group (ctx->reqs); only
 * those waiting for a token are listed here. */
static void enqueue(struct etcd_req *r)
{
	r->queued = true;
	LIST_INSERT_HEAD(&r->ctx->queued, r, queue);
}

static void dequeue(struct etcd_req *r)
{
	if (r->queued)
		LIST_REMOVE(r, queue);
	r->queued = false;
}

static void req_free(struct etcd_req *r)
{
	if (r->body && r->ctx->password)
		sodium_memzero(r->body, r->body_len);
	free(r->body);
	free(r->path);
	free(r);
}

/* The group cancelled it (session lost, exit): never queued while in flight. */
static void req_cancelled(void *arg)
{
	req_free(arg);
}

static bool needs_token(const struct etcd_req *r)
{
	const struct etcd_ctx *ctx = r->ctx;
	return ctx->password && !(r->flags & REQ_NOAUTH) && !ctx->stopping &&
	       (!ctx->auth_header[0] || ctx->auth_call);
}

/* A refused token: ask for a new one and send again (once). */
static bool token_refused(const struct etcd_reply *rep)
{
	return rep->outcome == ETCD_FAILED && rep->msg &&
	       (strstr(rep->msg, "invalid auth token") || strstr(rep->msg, "auth store is old") ||
		strstr(rep->msg, "user name is empty"));
}

/* Turn an HTTP result into a reply. msg is the caller's buffer. */
static void classify(struct etcd_req *r, const struct bcn_http_response *res,
		     struct etcd_reply *rep, char *msg, json_t **body)
{
	const char *ep = etcd_conn_endpoint(r->ctx);
	json_t *err;
	size_t len;

	rep->msg = msg;
	rep->outcome = ETCD_UNREACHABLE;
	switch (res->error) {
	case BCN_HTTP_OK:
		break;
	case BCN_HTTP_EABORTED:
		rep->outcome = ETCD_FAILED;
		rep->code = -1;
		snprintf(msg, MSG_LEN, "the stream was stopped by its reader");
		return;
	case BCN_HTTP_ECONNECT:
		snprintf(msg, MSG_LEN, "cannot connect to %s", ep);
		return;
	case BCN_HTTP_ETIMEDOUT:
		snprintf(msg, MSG_LEN, "%s did not answer in time", ep);
		return;
	case BCN_HTTP_ETLS:
		snprintf(msg, MSG_LEN, "TLS with %s failed: %s", ep, res->error_msg);
		return;
	case BCN_HTTP_ETOOBIG:
		rep->outcome = ETCD_FAILED;
		rep->code = -2;
		snprintf(msg, MSG_LEN, "the answer of %s is too large", ep);
		return;
	default:
		snprintf(msg, MSG_LEN, "%s: %s", ep, res->error_msg);
		return;
	}
	if (r->stream) { /* the body went to on_data */
		if (res->status == 200) {
			snprintf(msg, MSG_LEN, "%s closed the watch stream", ep);
		} else {
			rep->outcome = ETCD_FAILED;
			snprintf(msg, MSG_LEN, "%s answered the watch with HTTP %ld", ep, res->status);
		}
		return;
	}
	len = evbuffer_get_length(res->body);
	*body = len ? json_loadb((const char *)evbuffer_pullup(res->body, -1), len, 0, NULL) : NULL;
	if (!json_is_object(*body)) {
		snprintf(msg, MSG_LEN, "%s answered HTTP %ld without etcd's JSON (is it an etcd client URL?)",
			 ep, res->status);
		return;
	}
	err = json_object_get(*body, "error");
	if (!err && res->status == 200) {
		rep->outcome = ETCD_OK;
		rep->body = *body;
		rep->msg = NULL;
		return;
	}
	if (json_is_object(err)) { /* the streaming form: {"error":{"grpc_code","message"}} */
		rep->code = (int)etcd_int(err, "grpc_code", ETCD_MAX_CODE);
		err = json_object_get(err, "message");
	} else {
		rep->code = (int)etcd_int(*body, "code", ETCD_MAX_CODE);
	}
	snprintf(msg, MSG_LEN, "%.200s", json_is_string(err) ? json_string_value(err) : "unknown error");
	/* Unavailable, DeadlineExceeded: this member cannot serve now (no leader...). */
	rep->outcome = rep->code == 14 || rep->code == 4 ? ETCD_UNREACHABLE : ETCD_FAILED;
}

static void req_done(const struct bcn_http_response *res, void *arg)
{
	struct etcd_req *r = arg;
	struct etcd_ctx *ctx = r->ctx;
	struct etcd_reply rep = { 0 };
	char msg[MSG_LEN] = "";
	json_t *body = NULL;
	bool lost;

	r->call = NULL;
	classify(r, res, &rep, msg, &body);
	if (token_refused(&rep) && ctx->password && !r->retried) {
		bcn_debug(ctx->log, "etcd refused the auth token (%s); authenticating again", msg);
		json_decref(body);
		r->retried = true;
		enqueue(r);
		etcd_conn_reauth(ctx);
		return;
	}
	lost = rep.outcome == ETCD_UNREACHABLE;
	/* A real request served (not just status, which even a member without
	 * a leader answers): the cluster works, the next loss starts at 100 ms. */
	if (rep.outcome == ETCD_OK && !(r->flags & REQ_NOAUTH) && ctx->session == ETCD_UP)
		ctx->attempt = 0;
	r->cb(ctx, &rep, r->arg);
	json_decref(body);
	req_free(r);
	if (lost)
		session_lost(ctx, msg);
}

/* Streams: hand the bytes to the owner with its own argument. */
static int req_data(const char *data, size_t len, void *arg)
{
	struct etcd_req *r = arg;
	return r->on_data(data, len, r->arg);
}

static int req_send(struct etcd_req *r)
{
	struct etcd_ctx *ctx = r->ctx;
	const char *headers[3] = { "Content-Type: application/json", NULL, NULL };
	struct bcn_http_opts o;
	char url[1024];

	snprintf(url, sizeof(url), "%s%s", etcd_conn_endpoint(ctx), r->path);
	if (ctx->auth_header[0] && !(r->flags & REQ_NOAUTH))
		headers[1] = ctx->auth_header;
	memset(&o, 0, sizeof(o));
	o.method = "POST";
	o.url = url;
	o.headers = headers;
	o.body = r->body;
	o.body_len = r->body_len;
	o.timeout_ms = r->stream ? 0 : (r->flags & ETCD_REQ_SHORT) ? ctx->dial_timeout_ms : ctx->timeout_ms;
	o.connect_timeout_ms = ctx->dial_timeout_ms;
	bcn_tls_http_opts(&etcd_conf(ctx)->tls, &o);
	o.sensitive = ctx->password != NULL;
	o.on_data = r->on_data ? req_data : NULL;
	o.on_done = req_done;
	o.arg = r;
	o.group = ctx->reqs;
	o.on_cancel = req_cancelled;
	dequeue(r);
	r->call = bcn_http_start(ctx->core->http, &o);
	return r->call ? 0 : -1;
}

static struct etcd_req *req_new(struct etcd_ctx *ctx, const char *path, json_t *body, unsigned flags,
				bcn_http_data_cb on_data, etcd_reply_cb cb, void *arg)
{
	struct etcd_req *r = calloc(1, sizeof(*r));

	if (!r)
		goto fail;
	if (!body) /* json_pack failed: out of memory */
		goto fail;
	r->ctx = ctx;
	r->flags = flags;
	r->cb = cb;
	r->on_data = on_data;
	r->stream = on_data != NULL;
	r->arg = arg;
	r->path = strdup(path);
	r->body = json_dumps(body, JSON_COMPACT);
	if (!r->path || !r->body)
		goto fail;
	r->body_len = strlen(r->body);
	json_decref(body);
	body = NULL;
	/* While UP with a password there is always a token or an exchange for
	 * one in flight, whose end sends (flush_queued) or cancels this. */
	if (needs_token(r)) {
		enqueue(r);
		return r;
	}
	if (req_send(r) == 0)
		return r;
	req_free(r);
	bcn_warn(ctx->log, "could not start a request to etcd (out of memory?)");
	return NULL;
fail:
	json_decref(body);
	if (r) {
		free(r->path);
		free(r->body);
		free(r);
	}
	return NULL;
}

struct etcd_req *etcd_request(struct etcd_ctx *ctx, const char *path, json_t *body,
			      unsigned flags, etcd_reply_cb cb, void *arg)
{
	return req_new(ctx, path, body, flags, NULL, cb, arg);
}

struct etcd_req *etcd_stream(struct etcd_ctx *ctx, const char *path, json_t *body,
			     bcn_http_data_cb on_data, etcd_reply_cb cb, void *arg)
{
	return req_new(ctx, path, body, 0, on_data, cb, arg);
}

void etcd_req_cancel(struct etcd_req *r)
{
	if (!r)
		return;
	bcn_http_cancel(r->call);
	dequeue(r);
	req_free(r);
}

void etcd_conn_cancel_all(struct etcd_ctx *ctx)
{
	bcn_http_group_cancel(ctx->reqs);
	while (!LIST_EMPTY(&ctx->queued))
		etcd_req_cancel(LIST_FIRST(&ctx->queued));
}

/* Send what waited for a token, or fail it with `why` when there is none to get. */
static void flush_queued(struct etcd_ctx *ctx, const char *why)
{
	struct etcd_req *r, *next;

	for (r = LIST_FIRST(&ctx->queued); r; r = next) {
		next = LIST_NEXT(r, queue);
		if (!why && req_send(r) == 0) /* in flight now, off the queue */
			continue;
		struct etcd_reply rep = { .outcome = ETCD_FAILED, .msg = why ? why : "could not start a request" };
		dequeue(r);
		r->cb(ctx, &rep, r->arg);
		req_free(r);
		next = LIST_FIRST(&ctx->queued); /* the callback may have changed the list */
	}
}

/* ---- the session --------------------------------------------------------- */

static void connect_now(struct etcd_ctx *ctx);

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	connect_now(arg);
}

static void schedule_connect(struct etcd_ctx *ctx)
{
	uint64_t ms = bcn_backoff_ms(ctx->attempt++, ETCD_RETRY_BASE_MS, ETCD_RETRY_MAX_MS);
	ctx->cur = (ctx->cur + 1) % ctx->nendpoints;
	bcn_debug(ctx->log, "next attempt on %s in %llu ms", etcd_conn_endpoint(ctx), (unsigned long long)ms);
	bcn_timer_ms(ctx->retry_ev, ms);
}

static void connect_failed(struct etcd_ctx *ctx, const char *why)
{
	ctx->session = ETCD_DOWN;
	snprintf(ctx->err, sizeof(ctx->err), "%s", why);
	if (ctx->stopping)
		return;
	schedule_connect(ctx);
	etcd_report(ctx);
}

static void probe_tick(evutil_socket_t fd, short what, void *arg);

static void session_up(struct etcd_ctx *ctx)
{
	/* attempt is reset by the first request served or liveness answer,
	 * not here: a member that answers status but fails everything else
	 * (no leader) must not make us reconnect in a tight loop. */
	ctx->session = ETCD_UP;
	ctx->err[0] = '\0';
	bcn_info(ctx->log, "%s etcd at %s", ctx->ever_up ? "reconnected to" : "connected to",
		 etcd_conn_endpoint(ctx));
	ctx->ever_up = true;
	bcn_timer_ms(ctx->probe_ev, ETCD_PROBE_INTERVAL_MS);
	etcd_watch_up(ctx);
	etcd_reg_up(ctx);
	etcd_report(ctx);
}

static void session_lost(struct etcd_ctx *ctx, const char *why)
{
	if (ctx->stopping || ctx->session != ETCD_UP)
		return;
	bcn_warn(ctx->log, "lost etcd: %s; serving the last known state and reconnecting", why);
	ctx->session = ETCD_DOWN;
	snprintf(ctx->err, sizeof(ctx->err), "%s", why);
	evtimer_del(ctx->probe_ev);
	etcd_req_cancel(ctx->probe);
	ctx->probe = NULL;
	bcn_http_cancel(ctx->auth_call);
	ctx->auth_call = NULL;
	etcd_watch_down(ctx);
	etcd_reg_down(ctx);
	etcd_conn_cancel_all(ctx); /* anything left is orphaned: nobody waits for it */
	schedule_connect(ctx);
	etcd_report(ctx);
}

static void probe_done(struct etcd_ctx *ctx, const struct etcd_reply *r, void *arg)
{
	(void)arg;
	ctx->probe = NULL;
	if (r->outcome == ETCD_UNREACHABLE)
		return; /* session_lost follows */
	if (r->outcome == ETCD_OK)
		ctx->attempt = 0; /* connected for a whole interval: a later loss starts at 100 ms */
	bcn_timer_ms(ctx->probe_ev, ETCD_PROBE_INTERVAL_MS);
}

static void probe_tick(evutil_socket_t fd, short what, void *arg)
{
	struct etcd_ctx *ctx = arg;
	(void)fd;
	(void)what;
	if (ctx->session != ETCD_UP || ctx->probe)
		return;
	ctx->probe = etcd_request(ctx, "/v3/maintenance/status", json_object(), ETCD_REQ_SHORT | REQ_NOAUTH,
				  probe_done, NULL);
	if (!ctx->probe)
		bcn_timer_ms(ctx->probe_ev, ETCD_PROBE_INTERVAL_MS);
}

static void connect_probe_done(struct etcd_ctx *ctx, const struct etcd_reply *r, void *arg)
{
	(void)arg;
	ctx->probe = NULL;
	if (r->outcome != ETCD_OK) {
		connect_failed(ctx, r->msg);
		return;
	}
	if (ctx->password) {
		ctx->auth_header[0] = '\0';
		etcd_auth_start(ctx);
	} else {
		session_up(ctx);
	}
}

static void connect_now(struct etcd_ctx *ctx)
{
	if (ctx->stopping)
		return;
	ctx->session = ETCD_CONNECTING;
	ctx->probe = etcd_request(ctx, "/v3/maintenance/status", json_object(), ETCD_REQ_SHORT | REQ_NOAUTH,
				  connect_probe_done, NULL);
	if (!ctx->probe)
		connect_failed(ctx, "could not start a request (out of memory?)");
}

void etcd_conn_start(struct etcd_ctx *ctx)
{
	ctx->retry_ev = evtimer_new(ctx->core->base, retry_cb, ctx);
	ctx->probe_ev = evtimer_new(ctx->core->base, probe_tick, ctx);
	if (!ctx->retry_ev || !ctx->probe_ev) {
		bcn_error(ctx->log, "cannot create timers (out of memory)");
		return;
	}
	connect_now(ctx);
}

void etcd_conn_stop(struct etcd_ctx *ctx)
{
	if (ctx->retry_ev)
		evtimer_del(ctx->retry_ev);
	if (ctx->probe_ev)
		evtimer_del(ctx->probe_ev);
	etcd_req_cancel(ctx->probe);
	ctx->probe = NULL;
	bcn_http_cancel(ctx->auth_call);
	ctx->auth_call = NULL;
}

/* ---- the authentication's outcome (the exchange: etcd_auth.c) ------------ */

void etcd_conn_auth_failed(struct etcd_ctx *ctx, const char *why)
{
	if (ctx->stopping) /* nobody reconnects now: let the waiting requests end */
		flush_queued(ctx, why);
	else if (ctx->session == ETCD_UP)
		session_lost(ctx, why);
	else
		connect_failed(ctx, why);
}

void etcd_conn_auth_ok(struct etcd_ctx *ctx)
{
	if (ctx->session == ETCD_CONNECTING && !ctx->stopping)
		session_up(ctx);
	flush_queued(ctx, NULL);
}
