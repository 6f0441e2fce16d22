/*
 * server.c - see server.h.
 *
 * libevent 2.1's evhttp has no connection limit and no hook at accept time,
 * so the limit is kept with public API only: the bufferevent callback counts
 * each accepted connection and holds a reference on its bufferevent until the
 * loop turns; by then evhttp has attached the connection (the bufferevent's
 * callback argument), and a close callback on it counts the connection out.
 * At the limit the listener stops accepting until a connection closes, so
 * excess clients wait in the kernel backlog instead of costing memory here.
 *
 * An accept() that fails for lack of descriptors (EMFILE, ENFILE) leaves the
 * listening socket readable, and libevent, without an error callback, would
 * retry at once forever: the error callback pauses accepting for a moment
 * instead, logging at most once a minute.
 *
 * A server with a deadline (the TCP probe listener) gives each connection a
 * timer from accept: evhttp's own timeout restarts with every byte, so a
 * client sending one byte a second would otherwise hold a slot forever. At
 * the deadline the timer raises the same timeout event evhttp's idle timer
 * would, and evhttp closes the connection its usual way.
 */
#include "http/server.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"
#include "base/timing.h"

/* Pause after a failed accept(); the least time between two log lines about
 * a limit (a flood must not become a flood of log lines). */
#define ACCEPT_PAUSE_MS 250
#define WARN_EVERY_MS 60000

/* One accepted connection. It holds a reference on its bufferevent until it
 * closes, so the deadline timer can always look at it safely. */
struct bcn_conn {
	struct bcn_server *s;
	struct bufferevent *bev;
	struct event *deadline;         /* NULL on a server without a deadline */
	bool answering;                 /* the deadline passed while the answer was being written */
	LIST_ENTRY(bcn_conn) link;
};

struct bcn_server {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct evconnlistener *lev;
	char *unix_path;
	char where[128];                /* the path or address, for log lines */
	int max_conns, nconns;
	bool accepting, paused;
	uint64_t rejected;
	uint64_t deadline_ms, timeout_ms;
	bcn_server_cb cb;
	void *cb_arg;
	struct event *adopt_ev, *resume_ev;
	struct bcn_conn **pending;
	size_t npending, cappending;
	LIST_HEAD(, bcn_conn) conns;
	uint64_t accept_failures;
	struct bcn_complain limit_warned, accept_warned;
	SLIST_ENTRY(bcn_server) link;   /* on all_servers */
};

/* The listener's error callback receives evhttp's argument, not ours (libevent
 * 2.1 has no way to change one without the other): it finds its server here.
 * One event loop, one thread, a handful of servers. */
static SLIST_HEAD(, bcn_server) all_servers = SLIST_HEAD_INITIALIZER(all_servers);

/* At most one such warning a minute; each line carries its own running
 * count, so the suppressed ones need no summary. */
static bool warn_due(struct bcn_complain *c)
{
	return bcn_complain_due(c, WARN_EVERY_MS, 1, "server", NULL);
}

static void update_accepting(struct bcn_server *s)
{
	bool want = s->nconns < s->max_conns && !s->paused;
	if (!s->lev || want == s->accepting)
		return;
	if (want) {
		evconnlistener_enable(s->lev);
	} else {
		evconnlistener_disable(s->lev);
		if (s->nconns >= s->max_conns) {
			s->rejected++;
			if (warn_due(&s->limit_warned))
				bcn_warn("server", "%d connections open on %s, the limit: not accepting "
					 "until one closes (%llu time(s) so far; logged at most once a minute)",
					 s->nconns, s->where, (unsigned long long)s->rejected);
		}
	}
	s->accepting = want;
}

static void conn_free(struct bcn_conn *c)
{
	LIST_REMOVE(c, link);
	if (c->deadline)
		event_free(c->deadline);
	bufferevent_decref(c->bev);
	free(c);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct bcn_conn *c = arg;
	struct bcn_server *s = c->s;
	(void)evcon;
	conn_free(c);
	if (s->nconns > 0)
		s->nconns--;
	update_accepting(s);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_conn *c = arg;
	struct bcn_server *s = c->s;
	void *evcon = NULL;
	(void)fd;
	(void)what;

	bufferevent_getcb(c->bev, NULL, NULL, NULL, &evcon);
	if (!evcon) {
		/* evhttp let go of it without its close callback: count it out. */
		conn_free(c);
		if (s->nconns > 0)
			s->nconns--;
		update_accepting(s);
		return;
	}
	if (!c->answering && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
		/* The request came in time; its answer is still being written
		 * (larger than the socket buffers): one more timeout for that. */
		c->answering = true;
		bcn_timer_ms(c->deadline, s->timeout_ms);
		return;
	}
	bufferevent_trigger_event(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
}

static void adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_server *s = arg;
	(void)fd;
	(void)what;
	for (size_t i = 0; i < s->npending; i++) {
		struct bcn_conn *c = s->pending[i];
		void *cbarg = NULL;
		bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
		if (!cbarg) {
			/* already closed before we could attach */
			conn_free(c);
			if (s->nconns > 0)
				s->nconns--;
			continue;
		}
		evhttp_connection_set_closecb(cbarg, conn_closed, c);
		if (c->deadline)
			bcn_timer_ms(c->deadline, s->deadline_ms);
	}
	s->npending = 0;
	update_accepting(s);
}

static struct bufferevent *bev_cb(struct event_base *base, void *arg)
{
	struct bcn_server *s = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE |
									BEV_OPT_DEFER_CALLBACKS);
	struct bcn_conn *c;

	if (!bev)
		return NULL;
	if (s->npending == s->cappending) {
		size_t cap = s->cappending ? s->cappending * 2 : 16;
		struct bcn_conn **v = realloc(s->pending, cap * sizeof(*v));
		if (!v)
			goto uncounted;
		s->pending = v;
		s->cappending = cap;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto uncounted;
	if (s->deadline_ms && !(c->deadline = evtimer_new(base, deadline_cb, c))) {
		free(c);
		goto uncounted;
	}
	c->s = s;
	c->bev = bev;
	LIST_INSERT_HEAD(&s->conns, c, link);
	bufferevent_incref(bev);
	s->pending[s->npending++] = c;
	s->nconns++;
	event_active(s->adopt_ev, EV_TIMEOUT, 0);
	update_accepting(s);
	return bev;

uncounted:
	/* Out of memory: served, but neither counted nor given a deadline. */
	return bev;
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_server *s = arg;
	(void)fd;
	(void)what;
	s->paused = false;
	update_accepting(s);
}

static void accept_failed(struct evconnlistener *lev, void *http)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct bcn_server *s;
	(void)http;

	SLIST_FOREACH(s, &all_servers, link) {
		if (s->lev == lev)
			break;
	}
	if (!s) {
		evconnlistener_disable(lev);
		return;
	}
	s->paused = true;
	s->accept_failures++;
	update_accepting(s);
	bcn_timer_ms(s->resume_ev, ACCEPT_PAUSE_MS);
	if (warn_due(&s->accept_warned)) {
		struct rlimit rl = { 0, 0 };
		getrlimit(RLIMIT_NOFILE, &rl);
		bcn_warn("server", "cannot accept connections on %s: %s (%d open, RLIMIT_NOFILE %lld); "
			 "pausing accepts for %d ms each time (%llu time(s) so far; logged at most "
			 "once a minute); raise LimitNOFILE or lower max_connections", s->where,
			 strerror(err), s->nconns, (long long)rl.rlim_cur, ACCEPT_PAUSE_MS,
			 (unsigned long long)s->accept_failures);
	}
}

/* The gencb of a server that closes after each answer: evhttp closes a
 * connection once an answer carrying "Connection: close" is written. */
static void serve_once_cb(struct evhttp_request *req, void *arg)
{
	struct bcn_server *s = arg;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	s->cb(req, s->cb_arg);
}

static void apply_limits(struct bcn_server *s, const struct bcn_server_opts *o)
{
	struct timeval tv = bcn_tv_ms(o->timeout_ms);

	evhttp_set_max_headers_size(s->http, o->max_header_size);
	evhttp_set_max_body_size(s->http, o->max_body_size);
	evhttp_set_timeout_tv(s->http, &tv);
	s->timeout_ms = o->timeout_ms;
	s->max_conns = o->max_connections > 0 ? o->max_connections : 1024;
	update_accepting(s);
}

void bcn_server_set_limits(struct bcn_server *s, const struct bcn_server_opts *o)
{
	apply_limits(s, o);
}

struct bcn_server *bcn_server_new(struct event_base *base, const struct bcn_server_opts *o,
				  char *err, size_t errlen)
{
	struct bcn_server *s = calloc(1, sizeof(*s));
	int fd = -1;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->base = base;
	s->accepting = true;
	s->deadline_ms = o->deadline_ms;
	s->cb = o->cb;
	s->cb_arg = o->arg;
	snprintf(s->where, sizeof(s->where), "%s", o->unix_path ? o->unix_path :
		 o->tcp_listen ? o->tcp_listen : "");
	SLIST_INSERT_HEAD(&all_servers, s, link);
	s->http = evhttp_new(base);
	s->adopt_ev = event_new(base, -1, 0, adopt_cb, s);
	s->resume_ev = evtimer_new(base, resume_cb, s);
	if (!s->http || !s->adopt_ev || !s->resume_ev) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Every method reaches the router, which answers 405 in JSON itself. */
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(s->http, "application/json");
	if (o->close_after_answer)
		evhttp_set_gencb(s->http, serve_once_cb, s);
	else
		evhttp_set_gencb(s->http, o->cb, o->arg);
	evhttp_set_bevcb(s->http, bev_cb, s);
	apply_limits(s, o);

	if (o->unix_path) {
		fd = bcn_unix_listen(o->unix_path, o->unix_mode, o->unix_gid, err, errlen);
		if (fd < 0)
			goto fail;
		s->unix_path = strdup(o->unix_path);
		s->bound = evhttp_accept_socket_with_handle(s->http, fd);
		if (!s->bound) {
			close(fd);
			unlink(o->unix_path);
			snprintf(err, errlen, "cannot serve %s", o->unix_path);
			goto fail;
		}
	} else {
		char host[256];
		const char *colon = strrchr(o->tcp_listen, ':');
		size_t hl = colon ? (size_t)(colon - o->tcp_listen) : 0;
		if (!colon || hl >= sizeof(host)) {
			snprintf(err, errlen, "invalid listen address %s", o->tcp_listen);
			goto fail;
		}
		memcpy(host, o->tcp_listen, hl);
		host[hl] = '\0';
		/* "[::1]:9464" -> "::1" */
		if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = '\0';
		}
		s->bound = evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)atoi(colon + 1));
		if (!s->bound) {
			snprintf(err, errlen, "cannot listen on %s: %s", o->tcp_listen, strerror(errno));
			goto fail;
		}
	}
	s->lev = evhttp_bound_socket_get_listener(s->bound);
	if (s->lev)
		evconnlistener_set_error_cb(s->lev, accept_failed);
	return s;

fail:
	bcn_server_free(s);
	return NULL;
}

void bcn_server_free(struct bcn_server *s)
{
	if (!s)
		return;
	SLIST_REMOVE(&all_servers, s, bcn_server, link);
	if (s->adopt_ev)
		event_free(s->adopt_ev);
	if (s->resume_ev)
		event_free(s->resume_ev);
	/* evhttp_free frees the listener, then the connections (whose close
	 * callbacks land in conn_closed): forget the listener first. */
	s->lev = NULL;
	if (s->http)
		evhttp_free(s->http);
	/* Connections the loop never adopted, or that evhttp dropped silently:
	 * release their references (evhttp_free already let go of its own). */
	while (!LIST_EMPTY(&s->conns))
		conn_free(LIST_FIRST(&s->conns));
	if (s->unix_path) {
		unlink(s->unix_path);
		free(s->unix_path);
	}
	free(s->pending);
	free(s);
}

int bcn_server_connections(const struct bcn_server *s)
{
	return s ? s->nconns : 0;
}

uint64_t bcn_server_rejected(const struct bcn_server *s)
{
	return s ? s->rejected : 0;
}

/*
 * A chunk-size line may carry extensions (RFC 9112 7.1.1: "3;name=value"),
 * which a server must accept and may ignore. libevent 2.1 reads that line
 * with evutil_strtoll(line, &end, 16), allows nothing after the hex digits
 * but a space, and reports anything else as a body over the limit (413). As
 * evhttp_send_error below, this definition takes the place of libevent's
 * exported evutil_strtoll for libevent's own calls. Base 16 is used only for
 * chunk sizes there; for it, 1*HEXDIG followed by well-formed extensions ends
 * at the end of the line, and a line that is not well formed is remembered so
 * that the error it causes is answered 400 "malformed", not 413. Every other
 * base is plain strtoll, as libevent's own is on this platform.
 */
static bool chunk_line_bad;

static bool tchar(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_bws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) BWS, to the end. */
static bool chunk_ext_ok(const char *p)
{
	for (p = skip_bws(p); *p; p = skip_bws(p)) {
		if (*p++ != ';')
			return false;
		p = skip_bws(p);
		if (!tchar(*p))
			return false;
		while (tchar(*p))
			p++;
		p = skip_bws(p);
		if (*p != '=')
			continue;
		p = skip_bws(p + 1);
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && !*++p)
					return false;
			}
			if (*p++ != '"')
				return false;
		} else if (tchar(*p)) {
			while (tchar(*p))
				p++;
		} else {
			return false;
		}
	}
	return true;
}

ev_int64_t evutil_strtoll(const char *s, char **endptr, int base)
{
	char *end;
	ev_int64_t v;

	if (base != 16)
		return (ev_int64_t)strtoll(s, endptr, base);
	/* strtoll alone would also take "+3", " 3" and "0x3". */
	chunk_line_bad = !isxdigit((unsigned char)s[0]);
	v = chunk_line_bad ? 0 : (ev_int64_t)strtoll(s, &end, 16);
	if (chunk_line_bad || !chunk_ext_ok(end)) {
		chunk_line_bad = true;
		end = (char *)s; /* libevent sees no number: DATA_CORRUPTED */
	} else {
		end += strlen(end);
	}
	if (endptr)
		*endptr = end;
	return v;
}

/*
 * evhttp answers a few errors itself (a body over the limit: 413; a request
 * head that is malformed or over the limit: 400) with an HTML page, and
 * libevent 2.1 offers no hook for them. The API promises JSON errors, so this
 * definition takes the place of libevent's exported evhttp_send_error (the
 * dynamic linker binds libevent's own calls to it, as it would for malloc),
 * doing what libevent's does but with a JSON body. tests/integration's
 * test_limit_errors_are_json checks that the substitution holds.
 */
void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *msg;

	if (!buf) {
		evhttp_connection_free(evhttp_request_get_connection(req));
		return;
	}
	/* libevent reports a malformed chunk-size line as a body too large. */
	bool chunked_bad = error == 413 && chunk_line_bad && req->chunked;
	if (chunked_bad) {
		error = 400;
		reason = "Bad Request";
	}
	chunk_line_bad = false;
	switch (error) {
	case 413: msg = "the request body is larger than socket.max_body_size allows"; break;
	case 400: msg = chunked_bad ? "the chunked request body is malformed (a chunk-size line is not hex digits and extensions)"
				    : "the request is malformed or its head is larger than socket.max_header_size allows"; break;
	case 404: msg = "no such route"; break;
	case 405: msg = "method not allowed"; break;
	case 503: msg = "the agent is busy; try again"; break;
	default:  msg = "the request could not be handled"; break;
	}
	evbuffer_add_printf(buf, "{\"error\":\"%s\"}\n", msg);
	/* As libevent's evhttp_send_page_: a request whose line was never parsed
	 * has no version yet; answer as HTTP/1.1 and close. */
	if (req->major == 0 && req->minor == 0) {
		req->major = 1;
		req->minor = 1;
	}
	evhttp_clear_headers(h);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Connection", "close");
	if (req->type == EVHTTP_REQ_HEAD) {
		char len[24];
		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(buf));
		evhttp_add_header(h, "Content-Length", len);
		evbuffer_drain(buf, evbuffer_get_length(buf));
	}
	evhttp_send_reply(req, error, reason, buf);
	evbuffer_free(buf);
}
