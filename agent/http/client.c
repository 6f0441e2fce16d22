/*
 * client.c - see client.h. libcurl's multi interface on libevent,
 * after curl's docs/examples/hiperfifo.c: curl's socket callback keeps one
 * persistent event per socket, its timer callback keeps one timer, and our
 * event handlers are the only places that call curl_multi_socket_action.
 *
 * libcurl must never be re-entered from its own callbacks, yet on_data (a curl
 * write callback) may legitimately cancel or start other requests. So while
 * curl is on the stack (`in_curl`) those operations only mark the call
 * (`doomed`, or not yet `added`) and settle() finishes them as soon as
 * curl_multi_socket_action returns. on_done always runs with curl off the
 * stack, after the handle left the multi, so it may do anything.
 *
 * Bodies are collected into our own buffer, not an evbuffer, so that a
 * sensitive body can be wiped completely: an evbuffer moves and frees chains
 * behind our back. on_done gets it as a single reference chain whose cleanup
 * wipes and frees it, wherever the caller moves it.
 *
 * One call's easy handle (options, header and body collection, how it
 * ended) is client_call.c; this file drives the multi handle and owns the
 * calls' lives and groups.
 */
#include "http/client.h"

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "base/log.h"
#include "base/timing.h"
#include "base/alloc_hooks.h"
#include "http/client_internal.h"

bool bcn_http_tls_buffers_wiped(void)
{
	return bcn_alloc_hooks_tls_wiped();
}

/* ---- curl's socket and timer callbacks: one event per socket, one timer ---- */

static void on_socket_ready(evutil_socket_t fd, short what, void *arg);

static void sock_free(struct http_sock *s)
{
	event_free(s->ev);
	LIST_REMOVE(s, link);
	free(s);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct bcn_http *h = userp;
	struct http_sock *s = socketp;
	short kind;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		/* curl may remove a socket it never showed us (socketp NULL). */
		if (s)
			sock_free(s);
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->ev = event_new(h->base, -1, 0, NULL, NULL);
		if (!s->ev) {
			free(s);
			return -1;
		}
		LIST_INSERT_HEAD(&h->socks, s, link);
		curl_multi_assign(h->multi, fd, s); /* documented as allowed here */
	} else {
		event_del(s->ev); /* event_assign on an added event corrupts the base */
	}
	kind = EV_PERSIST;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	event_assign(s->ev, h->base, fd, kind, on_socket_ready, h);
	return event_add(s->ev, NULL) == 0 ? 0 : -1;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct bcn_http *h = userp;

	(void)multi;
	if (timeout_ms < 0)
		return event_del(h->timer) == 0 ? 0 : -1;
	return bcn_timer_ms(h->timer, (uint64_t)timeout_ms) == 0 ? 0 : -1;
}

/* ---- completion: runs with curl off the stack ---- */

static void wipe_body_ref(const void *data, size_t len, void *extra)
{
	(void)extra;
	wipe_free((void *)data, len, 1);
}

static void free_body_ref(const void *data, size_t len, void *extra)
{
	(void)len;
	(void)extra;
	free((void *)data);
}

/* Frees everything a call owns. The caller has decided no callback follows. */
static void call_destroy(struct bcn_http_call *c)
{
	struct bcn_http *h = c->h;
	struct curl_slist *l;

	if (c->added)
		curl_multi_remove_handle(h->multi, c->easy);
	if (c->easy)
		curl_easy_cleanup(c->easy);
	LIST_REMOVE(c, link);
	if (c->sensitive)
		for (l = c->req_headers; l; l = l->next)
			sodium_memzero(l->data, strlen(l->data));
	curl_slist_free_all(c->req_headers);
	curl_slist_free_all(c->connect_to);
	free(c->named_url);
	wipe_free(c->req_body, c->req_body_len, c->sensitive);
	wipe_free(c->body, c->body_cap, c->sensitive);
	wipe_free(c->hdrs, c->hdrs_cap, c->sensitive);
	if (c->out)
		evbuffer_free(c->out);
	free(c);
}

/* Ends a call that was not cancelled: exactly one on_done, then free. */
static void call_complete(struct bcn_http_call *c, CURLcode rc)
{
	struct bcn_http *h = c->h;
	struct bcn_http_response res = { 0 };

	h->active--;
	if (c->added) {
		curl_multi_remove_handle(h->multi, c->easy);
		c->added = 0;
	}
	bcn_http_classify_(c, rc);
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &res.status);
	if (c->body_len > 0 &&
	    evbuffer_add_reference(c->out, c->body, c->body_len,
				   c->sensitive ? wipe_body_ref : free_body_ref, NULL) == 0)
		c->body = NULL; /* the chain owns it now, wherever on_done moves it */
	else if (c->body_len > 0 && c->error == 0)
		call_fail(c, BCN_HTTP_EOTHER, "out of memory while handing over the response body.");
	res.error = c->error;
	res.error_msg = c->error ? c->msg : "";
	res.body = c->out;
	res.call = c;
	if (c->error)
		bcn_debug("http", "request failed (%d): %s", c->error, c->msg);

	c->in_done = 1;
	c->on_done(&res, c->arg);
	call_destroy(c);
}

/* Finish what callbacks deferred while curl was on the stack: free cancelled
 * calls and add calls started from on_data. Restarts after any on_done, which
 * may have changed the list arbitrarily. */
static void settle(struct bcn_http *h)
{
	struct bcn_http_call *c, *next;

again:
	h->unsettled = 0;
	for (c = LIST_FIRST(&h->calls); c; c = next) {
		next = LIST_NEXT(c, link);
		if (c->doomed) {
			call_destroy(c);
		} else if (!c->added && !c->in_done) {
			if (curl_multi_add_handle(h->multi, c->easy) == CURLM_OK) {
				c->added = 1;
			} else {
				call_fail(c, BCN_HTTP_EOTHER, "the request could not be started.");
				call_complete(c, CURLE_OK);
				goto again;
			}
		}
	}
}

static void http_destroy(struct bcn_http *h);

/* The single entry into curl: one socket_action, then deliver what finished.
 * Messages are re-read one at a time because on_done may cancel calls, whose
 * queued messages curl_multi_remove_handle then discards. */
static void drive(struct bcn_http *h, curl_socket_t fd, int ev_bitmask)
{
	struct bcn_http_call *c;
	CURLMsg *m;
	int running, left;

	h->depth++;
	h->in_curl++;
	/* Errors here (e.g. a socket curl already dropped) surface per transfer
	 * through curl_multi_info_read; nothing to do with the return value. */
	(void)curl_multi_socket_action(h->multi, fd, ev_bitmask, &running);
	h->in_curl--;
	if (h->unsettled)
		settle(h);
	while (!h->free_pending && (m = curl_multi_info_read(h->multi, &left))) {
		char *priv = NULL;
		CURLcode rc = m->data.result;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		c = (struct bcn_http_call *)(void *)priv;
		if (c && c->doomed) /* cannot happen after settle(); never report a cancelled call */
			call_destroy(c);
		else if (c)
			call_complete(c, rc);
		if (h->unsettled)
			settle(h);
	}
	h->depth--;
	if (h->free_pending && h->depth == 0)
		http_destroy(h);
}

static void on_socket_ready(evutil_socket_t fd, short what, void *arg)
{
	int action = 0;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	drive(arg, fd, action);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* ---- public API ---- */

struct bcn_http *bcn_http_new(struct event_base *base)
{
	struct bcn_http *h;

	if (!base) {
		bcn_error("http", "bcn_http_new needs an event base");
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (h)
		h->timer = evtimer_new(base, on_timeout, h);
	if (!h || !h->timer) {
		bcn_error("http", "cannot create the HTTP client (out of memory?)");
		free(h);
		return NULL;
	}
	h->base = base;
	return h;
}

/*
 * libcurl, and with it OpenSSL (curl_global_init initialises its TLS
 * backend whatever the flags, since curl 7.57), is set up at the first
 * request, not with the client: an agent that never asks anything over
 * HTTP (static services, no HTTP checks) never loads OpenSSL's state, which
 * is most of its idle memory (~3 MiB of libcrypto pages touched at init).
 */
static int ensure_multi(struct bcn_http *h)
{
	if (h->multi)
		return 0;
	if (bcn_alloc_hooks_curl_init() < 0)
		return -1;
	h->multi = curl_multi_init();
	if (!h->multi)
		return -1;
	if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK) {
		curl_multi_cleanup(h->multi);
		h->multi = NULL;
		return -1;
	}
	return 0;
}

static void http_destroy(struct bcn_http *h)
{
	while (!LIST_EMPTY(&h->calls))
		call_destroy(LIST_FIRST(&h->calls));
	/* May call on_curl_socket with CURL_POLL_REMOVE, so h stays valid until after. */
	if (h->multi)
		curl_multi_cleanup(h->multi);
	while (!LIST_EMPTY(&h->socks))
		sock_free(LIST_FIRST(&h->socks));
	event_free(h->timer);
	free(h);
}

void bcn_http_free(struct bcn_http *h)
{
	struct bcn_http_call *c, *next;

	if (!h || h->free_pending)
		return;
	h->free_pending = 1;
	for (c = LIST_FIRST(&h->calls); c; c = next) {
		next = LIST_NEXT(c, link);
		bcn_http_cancel(c);
	}
	if (h->depth == 0) /* else drive() finishes once our handler unwinds */
		http_destroy(h);
}

struct bcn_http_call *bcn_http_start(struct bcn_http *h, const struct bcn_http_opts *o)
{
	struct bcn_http_call *c;

	if (!h || !o || !o->url || !o->on_done) {
		bcn_warn("http", "bcn_http_start needs a client, a URL and an on_done callback");
		return NULL;
	}
	if (o->method && (!*o->method || o->method[strspn(o->method, TOKEN_CHARS)])) {
		bcn_warn("http", "refusing an HTTP method that is not a plain token");
		return NULL;
	}
	if (h->free_pending)
		return NULL;
	if (ensure_multi(h) < 0) {
		bcn_warn("http", "could not start an HTTP request: libcurl could not be initialised");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->h = h;
	/* linked first so every failure below ends in call_destroy */
	LIST_INSERT_HEAD(&h->calls, c, link);
	c->on_data = o->on_data;
	c->on_done = o->on_done;
	c->arg = o->arg;
	c->group = o->group;
	c->on_cancel = o->on_cancel;
	c->sensitive = o->sensitive;
	c->timeout_ms = o->timeout_ms;
	c->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
	c->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
	c->easy = curl_easy_init();
	c->out = evbuffer_new();
	if (!c->easy || !c->out || bcn_http_call_setup_(c, o) < 0)
		goto fail;

	/* Inside on_data curl is on the stack and refuses new handles
	 * (CURLM_RECURSIVE_API_CALL): settle() adds it after socket_action. */
	if (h->in_curl)
		h->unsettled = 1;
	else if (curl_multi_add_handle(h->multi, c->easy) != CURLM_OK)
		goto fail;
	else
		c->added = 1;
	h->active++;
	return c;
fail:
	bcn_warn("http", "could not start an HTTP request (bad option or out of memory)");
	if (c)
		call_destroy(c);
	return NULL;
}

void bcn_http_cancel(struct bcn_http_call *c)
{
	struct bcn_http *h;

	if (!c || c->in_done || c->doomed)
		return;
	h = c->h;
	h->active--;
	c->doomed = 1;
	if (h->in_curl)
		h->unsettled = 1; /* curl is on the stack: settle() frees it */
	else
		call_destroy(c);
}

/* ---- request groups -------------------------------------------------------- */

struct bcn_http_group *bcn_http_group_new(struct bcn_http *h)
{
	struct bcn_http_group *g;

	if (!h)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (g)
		g->h = h;
	return g;
}

/* Live: neither finishing (on_done runs) nor already cancelled. */
static bool in_group(const struct bcn_http_call *c, const struct bcn_http_group *g)
{
	return c->group == g && !c->in_done && !c->doomed;
}

void bcn_http_group_cancel(struct bcn_http_group *g)
{
	struct bcn_http_call *c, *next;

	if (!g)
		return;
	/* bcn_http_cancel may free c but no other call; on_cancel may only
	 * free its argument, so next stays valid. */
	for (c = LIST_FIRST(&g->h->calls); c; c = next) {
		next = LIST_NEXT(c, link);
		if (!in_group(c, g))
			continue;
		void (*on_cancel)(void *) = c->on_cancel;
		void *arg = c->arg;

		bcn_http_cancel(c);
		if (on_cancel)
			on_cancel(arg);
	}
}

size_t bcn_http_group_active(const struct bcn_http_group *g)
{
	size_t n = 0;

	for (const struct bcn_http_call *c = g ? LIST_FIRST(&g->h->calls) : NULL; c; c = LIST_NEXT(c, link))
		n += in_group(c, g);
	return n;
}

void bcn_http_group_free(struct bcn_http_group *g)
{
	bcn_http_group_cancel(g);
	free(g);
}

/* First header of that name; the pointer lives until the callback returns. */
const char *bcn_http_header(const struct bcn_http_call *c, const char *name)
{
	size_t off = 0;

	if (!c || !name || !c->hdrs)
		return NULL;
	while (off < c->hdrs_len) {
		const char *n = c->hdrs + off;
		const char *v = n + strlen(n) + 1;

		if (strcasecmp(n, name) == 0)
			return v;
		off = (size_t)(v + strlen(v) + 1 - c->hdrs);
	}
	return NULL;
}

size_t bcn_http_active(const struct bcn_http *h)
{
	return h ? h->active : 0;
}
