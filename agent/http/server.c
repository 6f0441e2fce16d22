/*
 * server.c - see server.h: the listening half (conn.c is one connection).
 *
 * One persistent read event on the listening socket; each readable event
 * accepts what the kernel queued, up to a batch. At max_connections the
 * event is removed, so excess clients wait in the kernel backlog instead of
 * costing memory here, and it comes back when a connection closes.
 *
 * An accept() that fails for lack of descriptors (EMFILE, ENFILE) leaves the
 * listening socket readable, and a level-triggered loop would retry at once
 * forever: accepting pauses for a moment instead, logging at most once a
 * minute.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/timing.h"
#include "http/server_internal.h"

/* Pause after a failed accept(); the least time between two log lines about
 * a limit (a flood must not become a flood of log lines); accepts per event. */
#define ACCEPT_PAUSE_MS 250
#define WARN_EVERY_MS 60000
#define ACCEPT_BATCH 64

/* At most one such warning a minute; each line carries its own running
 * count, so the suppressed ones need no summary. */
static bool warn_due(struct bcn_complain *c)
{
	return bcn_complain_due(c, WARN_EVERY_MS, 1, "server", NULL);
}

static void update_accepting(struct bcn_server *s)
{
	bool want = s->nconns < s->max_conns && !s->paused;
	if (!s->lev_ready || want == s->accepting)
		return;
	if (want) {
		event_add(&s->lev, NULL);
	} else {
		event_del(&s->lev);
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

void bcn_server_conn_gone(struct bcn_server *s)
{
	if (s->nconns > 0)
		s->nconns--;
	update_accepting(s);
}

static void accept_failed(struct bcn_server *s, int err)
{
	s->paused = true;
	s->accept_failures++;
	update_accepting(s);
	bcn_timer_ms(&s->resume_ev, ACCEPT_PAUSE_MS);
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

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_server *s = arg;
	(void)what;

	for (int i = 0; i < ACCEPT_BATCH && s->nconns < s->max_conns; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				accept_failed(s, errno);
			if (errno != EINTR && errno != ECONNABORTED && errno != EPROTO)
				break;
			continue;
		}
		if (s->tcp) {
			int one = 1;
			setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
		if (!bcn_conn_new(s, cfd)) {
			close(cfd); /* out of memory: turned away */
			continue;
		}
		s->nconns++;
	}
	update_accepting(s);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_server *s = arg;
	(void)fd;
	(void)what;
	s->paused = false;
	update_accepting(s);
}

static void apply_limits(struct bcn_server *s, const struct bcn_server_opts *o)
{
	s->max_header = o->max_header_size > 0 ? (size_t)o->max_header_size : 8192;
	s->max_body = o->max_body_size > 0 ? (size_t)o->max_body_size : 0;
	s->timeout_ms = o->timeout_ms ? o->timeout_ms : 30000;
	s->max_conns = o->max_connections > 0 ? o->max_connections : 1024;
	update_accepting(s);
}

void bcn_server_set_limits(struct bcn_server *s, const struct bcn_server_opts *o)
{
	apply_limits(s, o);
}

static int tcp_listen(const char *spec, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t hl = colon ? (size_t)(colon - spec) : 0;
	struct addrinfo hints, *res = NULL, *ai;
	int fd = -1, rc, e = 0;

	if (!colon || hl >= sizeof(host) || !colon[1]) {
		snprintf(err, errlen, "invalid listen address %s", spec);
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	/* "[::1]:9464" -> "::1" */
	if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	/* Start-up only, before the loop runs: a blocking lookup is fine here. */
	rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int one = 1;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(e));
	return fd;
}

struct bcn_server *bcn_server_new(struct event_base *base, const struct bcn_server_opts *o,
				  char *err, size_t errlen)
{
	struct bcn_server *s = calloc(1, sizeof(*s));

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->base = base;
	s->lfd = -1;
	s->deadline_ms = o->deadline_ms;
	s->close_after = o->close_after_answer;
	s->cb = o->cb;
	s->cb_arg = o->arg;
	LIST_INIT(&s->conns);
	snprintf(s->where, sizeof(s->where), "%s", o->unix_path ? o->unix_path :
		 o->tcp_listen ? o->tcp_listen : "");
	apply_limits(s, o);
	if (o->unix_path) {
		s->lfd = bcn_unix_listen(o->unix_path, o->unix_mode, o->unix_gid, err, errlen);
		if (s->lfd < 0)
			goto fail;
		s->unix_path = strdup(o->unix_path);
		if (!s->unix_path) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	} else {
		s->tcp = true;
		s->lfd = tcp_listen(o->tcp_listen ? o->tcp_listen : "", err, errlen);
		if (s->lfd < 0)
			goto fail;
	}
	if (event_assign(&s->lev, base, s->lfd, EV_READ | EV_PERSIST, accept_cb, s) < 0 ||
	    evtimer_assign(&s->resume_ev, base, resume_cb, s) < 0 || event_add(&s->lev, NULL) < 0) {
		snprintf(err, errlen, "cannot serve %s", s->where);
		goto fail;
	}
	s->lev_ready = s->resume_ready = true;
	s->accepting = true;
	update_accepting(s);
	return s;

fail:
	bcn_server_free(s);
	return NULL;
}

void bcn_server_free(struct bcn_server *s)
{
	if (!s)
		return;
	if (s->lev_ready)
		event_del(&s->lev);
	if (s->resume_ready)
		event_del(&s->resume_ev);
	s->lev_ready = false; /* no accepting again while connections close */
	while (!LIST_EMPTY(&s->conns))
		bcn_conn_close(LIST_FIRST(&s->conns));
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->unix_path) {
		unlink(s->unix_path);
		free(s->unix_path);
	}
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
