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

#include "base/log.h"
#include "base/timing.h"
#include "base/alloc_hooks.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_MAX_BODY ((size_t)64 << 20)
/* curl 7.88 limits each header line but not their total; a peer must not make us grow without bound. */
#define MAX_HEADER_BYTES ((size_t)256 << 10)
/* RFC 9110 token characters: what a method may contain. */
#define TOKEN_CHARS "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#define FIRST_BUF_CAP ((size_t)1024)

/* One watched socket; curl hands it back to us through curl_multi_assign. */
struct http_sock {
	struct event *ev;
	struct http_sock *prev, *next;
};

struct bcn_http {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct bcn_http_call *calls; /* every call we own, including doomed ones */
	struct http_sock *socks;     /* kept so teardown frees what curl forgot to remove */
	size_t active;
	int in_curl;      /* curl_multi_socket_action is on the stack */
	int depth;        /* one of our event handlers is on the stack */
	int unsettled;    /* some call is doomed or waits to be added */
	int free_pending; /* bcn_http_free was called from a callback */
};

/* A group is a tag on its calls: cancelling it walks the client's list. */
struct bcn_http_group {
	struct bcn_http *h;
};

struct bcn_http_call {
	struct bcn_http *h;
	struct bcn_http_call *prev, *next;
	CURL *easy;
	struct curl_slist *req_headers;
	struct curl_slist *connect_to; /* tls server_name: where the URL's host really is */
	char *named_url;               /* the URL with server_name as its host, or NULL */
	char *req_body;
	size_t req_body_len;
	char *body; /* collected response body */
	size_t body_len, body_cap, max_body;
	char *hdrs; /* final response's headers as "name\0value\0"... */
	size_t hdrs_len, hdrs_cap;
	struct evbuffer *out; /* handed to on_done; allocated up front so on_done always gets one */
	bcn_http_data_cb on_data;
	bcn_http_done_cb on_done;
	void *arg;
	struct bcn_http_group *group; /* compared only: the group may be gone once doomed */
	void (*on_cancel)(void *arg);
	uint64_t timeout_ms, connect_timeout_ms;
	int sensitive;
	int added;   /* in the multi handle */
	int doomed;  /* cancelled; freed once curl is off the stack */
	int in_done; /* its on_done runs: cancelling it is a no-op */
	int error;   /* BCN_HTTP_E* decided by our own callbacks */
	char errbuf[CURL_ERROR_SIZE];
	char msg[CURL_ERROR_SIZE + 128];
};

bool bcn_http_tls_buffers_wiped(void)
{
	return bcn_alloc_hooks_tls_wiped();
}

static void wipe_free(void *p, size_t n, int sensitive)
{
	if (p && sensitive)
		sodium_memzero(p, n);
	free(p);
}

/* Append to a growing buffer. Growth copies by hand instead of realloc so the
 * old block of a sensitive buffer can be wiped. -1 on out of memory. */
static int buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n, int sensitive)
{
	if (n > *cap - *len) {
		size_t ncap = *cap ? *cap : FIRST_BUF_CAP;
		char *nbuf;

		while (ncap - *len < n)
			ncap = ncap > SIZE_MAX / 2 ? SIZE_MAX : ncap * 2;
		if (!sensitive) {
			nbuf = realloc(*buf, ncap);
			if (!nbuf)
				return -1;
		} else {
			nbuf = malloc(ncap);
			if (!nbuf)
				return -1;
			if (*len)
				memcpy(nbuf, *buf, *len);
			wipe_free(*buf, *cap, 1);
		}
		*buf = nbuf;
		*cap = ncap;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	return 0;
}

static void call_fail(struct bcn_http_call *c, int error, const char *msg)
{
	c->error = error;
	snprintf(c->msg, sizeof(c->msg), "%s", msg);
}

/* ---- curl's callbacks: they only record; nothing here calls libcurl's multi API ---- */

static size_t on_curl_header(char *line, size_t size, size_t nmemb, void *userp)
{
	struct bcn_http_call *c = userp;
	size_t n = size * nmemb, end = n;
	const char *colon, *value;
	size_t name_len, value_len;

	if (c->doomed)
		return 0;
	/* A status line starts a new response (after a 1xx such as 100-continue);
	 * only the final response's headers count. */
	if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		if (c->hdrs && c->sensitive)
			sodium_memzero(c->hdrs, c->hdrs_len);
		c->hdrs_len = 0;
		return n;
	}
	while (end > 0 && (line[end - 1] == '\r' || line[end - 1] == '\n'))
		end--;
	colon = memchr(line, ':', end);
	if (!colon || colon == line)
		return n; /* blank line ending the block, or obsolete folding */
	if (memchr(line, '\0', end))
		return n; /* would break the "name\0value\0" store; no legitimate header has one */
	name_len = (size_t)(colon - line);
	value = colon + 1;
	while (value < line + end && (*value == ' ' || *value == '\t'))
		value++;
	value_len = (size_t)(line + end - value);
	while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
		value_len--;

	if (c->hdrs_len + name_len + value_len + 2 > MAX_HEADER_BYTES) {
		call_fail(c, BCN_HTTP_EOTHER, "the response headers are larger than 256 KiB.");
		return 0;
	}
	if (buf_append(&c->hdrs, &c->hdrs_len, &c->hdrs_cap, line, name_len, c->sensitive) < 0 ||
	    buf_append(&c->hdrs, &c->hdrs_len, &c->hdrs_cap, "", 1, c->sensitive) < 0 ||
	    buf_append(&c->hdrs, &c->hdrs_len, &c->hdrs_cap, value, value_len, c->sensitive) < 0 ||
	    buf_append(&c->hdrs, &c->hdrs_len, &c->hdrs_cap, "", 1, c->sensitive) < 0) {
		call_fail(c, BCN_HTTP_EOTHER, "out of memory while reading the response headers.");
		return 0;
	}
	return n;
}

static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct bcn_http_call *c = userp;
	size_t n = size * nmemb;

	if (c->doomed)
		return CURL_WRITEFUNC_ERROR;
	if (c->on_data) {
		int stop = c->on_data(data, n, c->arg);

		if (c->doomed) /* cancelled from inside on_data */
			return CURL_WRITEFUNC_ERROR;
		if (stop) {
			call_fail(c, BCN_HTTP_EABORTED, "the response stream was stopped by its reader.");
			return CURL_WRITEFUNC_ERROR;
		}
		return n;
	}
	if (n > c->max_body - c->body_len) {
		snprintf(c->msg, sizeof(c->msg), "the response body is larger than the %zu-byte limit.",
			 c->max_body);
		c->error = BCN_HTTP_ETOOBIG;
		return CURL_WRITEFUNC_ERROR;
	}
	if (buf_append(&c->body, &c->body_len, &c->body_cap, data, n, c->sensitive) < 0) {
		call_fail(c, BCN_HTTP_EOTHER, "out of memory while reading the response body.");
		return CURL_WRITEFUNC_ERROR;
	}
	return n;
}

static void on_socket_ready(evutil_socket_t fd, short what, void *arg);

static void sock_free(struct bcn_http *h, struct http_sock *s)
{
	event_free(s->ev);
	if (s->prev)
		s->prev->next = s->next;
	else
		h->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
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
			sock_free(h, s);
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
		s->next = h->socks;
		if (h->socks)
			h->socks->prev = s;
		h->socks = s;
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

static int is_tls_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		return 1;
	default:
		return 0;
	}
}

/* Turn curl's result into c->error and c->msg. Our own callbacks' verdicts
 * (c->error already set) win over the CURLE_WRITE_ERROR they caused. curl's
 * error buffer is only quoted for connect, timeout and TLS failures, whose
 * texts name hosts, sizes and reasons, never headers or bodies. */
static void classify(struct bcn_http_call *c, CURLcode rc)
{
	const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
	long sent = 0;

	if (c->error || rc == CURLE_OK)
		return;
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		curl_easy_getinfo(c->easy, CURLINFO_REQUEST_SIZE, &sent);
		/* Nothing sent yet and the connect timeout was the binding one: the
		 * peer is unreachable, which callers treat like a refusal (try the
		 * next endpoint). curl's connect timeout covers the TLS handshake. */
		if (sent == 0 && (c->timeout_ms == 0 || c->connect_timeout_ms < c->timeout_ms)) {
			c->error = BCN_HTTP_ECONNECT;
			snprintf(c->msg, sizeof(c->msg), "could not connect within %llu ms.",
				 (unsigned long long)c->connect_timeout_ms);
		} else {
			c->error = BCN_HTTP_ETIMEDOUT;
			snprintf(c->msg, sizeof(c->msg), "the request timed out: %s.", detail);
		}
		return;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		c->error = BCN_HTTP_ECONNECT;
		snprintf(c->msg, sizeof(c->msg), "could not connect: %s.", detail);
		return;
	case CURLE_FILESIZE_EXCEEDED: /* Content-Length above CURLOPT_MAXFILESIZE */
		c->error = BCN_HTTP_ETOOBIG;
		snprintf(c->msg, sizeof(c->msg), "the response body is larger than the %zu-byte limit.",
			 c->max_body);
		return;
	default:
		break;
	}
	if (is_tls_error(rc)) {
		c->error = BCN_HTTP_ETLS;
		/* The usual surprise: a certificate issued for a name, reached by IP. */
		snprintf(c->msg, sizeof(c->msg), "TLS failed: %s.%s", detail,
			 rc == CURLE_PEER_FAILED_VERIFICATION && strstr(detail, "host name") && !c->named_url
				 ? " Set tls.server_name to the host name the certificate was issued for."
				 : "");
	} else {
		c->error = BCN_HTTP_EOTHER;
		snprintf(c->msg, sizeof(c->msg), "the request failed: %s.", curl_easy_strerror(rc));
	}
}

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
	if (c->prev)
		c->prev->next = c->next;
	else
		h->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
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
	classify(c, rc);
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
	for (c = h->calls; c; c = next) {
		next = c->next;
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
	if (bcn_alloc_hooks_curl_init() < 0)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		goto fail;
	h->base = base;
	h->timer = evtimer_new(base, on_timeout, h);
	h->multi = curl_multi_init();
	if (!h->timer || !h->multi)
		goto fail;
	if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK)
		goto fail;
	return h;
fail:
	bcn_error("http", "cannot create the HTTP client (out of memory?)");
	if (h) {
		if (h->multi)
			curl_multi_cleanup(h->multi);
		if (h->timer)
			event_free(h->timer);
		free(h);
	}
	return NULL;
}

static void http_destroy(struct bcn_http *h)
{
	while (h->calls)
		call_destroy(h->calls);
	/* May call on_curl_socket with CURL_POLL_REMOVE, so h stays valid until after. */
	curl_multi_cleanup(h->multi);
	while (h->socks)
		sock_free(h, h->socks);
	event_free(h->timer);
	free(h);
}

void bcn_http_free(struct bcn_http *h)
{
	struct bcn_http_call *c, *next;

	if (!h || h->free_pending)
		return;
	h->free_pending = 1;
	for (c = h->calls; c; c = next) {
		next = c->next;
		bcn_http_cancel(c);
	}
	if (h->depth == 0) /* else drive() finishes once our handler unwinds */
		http_destroy(h);
}

static long clamp_long(uint64_t v)
{
	return v > (uint64_t)LONG_MAX ? LONG_MAX : (long)v;
}

static int set_tls_file(CURL *easy, CURLoption opt, const char *path)
{
	if (!path || !*path)
		return 0;
	return curl_easy_setopt(easy, opt, path) == CURLE_OK ? 0 : -1;
}

/*
 * tls.server_name. libcurl takes the SNI and the name it checks from the
 * URL's host, so the URL gets server_name as its host, CONNECT_TO still
 * connects to the host the user wrote, and a Host header keeps that host for
 * the server: what Go's tls.Config.ServerName does for Vault's and Consul's
 * own tls_server_name. CONNECT_TO rather than CURLOPT_RESOLVE: it belongs to
 * this handle, not the multi's shared DNS cache, and curl keeps connections
 * to different addresses under one name apart by it. Only https URLs, and
 * never a Unix socket (no TLS there). Appends to c->req_headers, so it runs
 * before CURLOPT_HTTPHEADER is set.
 */
static int name_server(struct bcn_http_call *c, const struct bcn_http_opts *o)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *url = NULL;
	char line[1024];
	struct curl_slist *l;
	int rc = -1;

	if (!u || curl_url_set(u, CURLUPART_URL, o->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
		goto out;
	if (strcasecmp(scheme, "https") != 0) {
		rc = 0;
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL; /* none written: the Host header has none either */
	if ((size_t)snprintf(line, sizeof(line), "Host: %s%s%s", host, port ? ":" : "", port ? port : "") >=
	    sizeof(line))
		goto out;
	l = curl_slist_append(c->req_headers, line);
	if (!l)
		goto out;
	c->req_headers = l;
	/* "::HOST:" = any URL host and port go to HOST, at the URL's port. */
	if ((size_t)snprintf(line, sizeof(line), "::%s:", host) >= sizeof(line))
		goto out;
	c->connect_to = curl_slist_append(NULL, line);
	if (!c->connect_to || curl_url_set(u, CURLUPART_HOST, o->server_name, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
		goto out;
	c->named_url = strdup(url);
	rc = c->named_url ? 0 : -1;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(url);
	curl_url_cleanup(u);
	return rc;
}

/* Everything about the request except adding it to the multi. */
static int call_setup(struct bcn_http_call *c, const struct bcn_http_opts *o)
{
	CURL *e = c->easy;
	const char *method = o->method ? o->method : "GET";
	int has_body = o->body != NULL || strcasecmp(method, "POST") == 0 ||
		       strcasecmp(method, "PUT") == 0 || strcasecmp(method, "PATCH") == 0;
	int ok = 1;

	for (const char *const *hp = o->headers; hp && *hp; hp++) {
		struct curl_slist *l;

		if (strpbrk(*hp, "\r\n")) /* would smuggle extra headers or a second request */
			return -1;
		l = curl_slist_append(c->req_headers, *hp);
		if (!l)
			return -1;
		c->req_headers = l;
	}
	if (has_body) {
		/* curl would otherwise wait up to a second for "100 Continue" on large
		 * bodies; a caller can still ask for it with its own Expect header. */
		struct curl_slist *l = curl_slist_append(c->req_headers, "Expect:");

		if (!l)
			return -1;
		c->req_headers = l;
		c->req_body_len = o->body ? o->body_len : 0;
		c->req_body = malloc(c->req_body_len ? c->req_body_len : 1);
		if (!c->req_body)
			return -1;
		if (c->req_body_len)
			memcpy(c->req_body, o->body, c->req_body_len);
	}
	if (o->server_name && *o->server_name && !(o->unix_socket && *o->unix_socket) &&
	    name_server(c, o) < 0)
		return -1;

	ok &= curl_easy_setopt(e, CURLOPT_URL, c->named_url ? c->named_url : o->url) == CURLE_OK;
	if (c->connect_to)
		ok &= curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_to) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)c) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_WRITEDATA, c) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_HEADERDATA, c) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->req_headers) == CURLE_OK;
	/* Long watch streams sit idle for minutes; keepalive notices dead peers. */
	ok &= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, clamp_long(c->timeout_ms)) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, clamp_long(c->connect_timeout_ms)) == CURLE_OK;
	if (o->low_speed_ms) {
		ok &= curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
				       clamp_long(o->low_speed_ms / 1000 + (o->low_speed_ms % 1000 != 0))) == CURLE_OK;
	}
	if (!c->on_data) /* refuse early when Content-Length already says too big */
		ok &= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
				       (curl_off_t)(c->max_body > (size_t)INT64_MAX ? INT64_MAX
										    : (int64_t)c->max_body)) == CURLE_OK;
	if (o->unix_socket && *o->unix_socket)
		ok &= curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, o->unix_socket) == CURLE_OK;
	ok &= set_tls_file(e, CURLOPT_CAINFO, o->ca_file) == 0;
	ok &= set_tls_file(e, CURLOPT_SSLCERT, o->cert_file) == 0;
	ok &= set_tls_file(e, CURLOPT_SSLKEY, o->key_file) == 0;
	if (o->insecure_skip_verify) {
		ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
	}

	if (strcasecmp(method, "HEAD") == 0) {
		ok &= curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK;
	} else if (has_body) {
		ok &= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->req_body_len) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->req_body) == CURLE_OK;
		if (strcasecmp(method, "POST") != 0)
			ok &= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
	} else if (strcasecmp(method, "GET") != 0) {
		ok &= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
	}
	return ok ? 0 : -1;
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
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->h = h;
	c->next = h->calls; /* linked first so every failure below ends in call_destroy */
	if (h->calls)
		h->calls->prev = c;
	h->calls = c;
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
	if (!c->easy || !c->out || call_setup(c, o) < 0)
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
	for (c = g->h->calls; c; c = next) {
		next = c->next;
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

	for (const struct bcn_http_call *c = g ? g->h->calls : NULL; c; c = c->next)
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
