/*
 * relay.c - one relayed connection: the connect to the chosen endpoint
 * (non-blocking, with connect_timeout and retries on the next endpoint), then
 * bytes both ways until both sides have finished.
 *
 * Plain non-blocking sockets with one libevent event per fd and direction.
 * A read lands in the proxy set's shared scratch buffer and is written on at
 * once; only what the other side would not take is copied to a per-direction
 * buffer (at most PX_CHUNK), and while it is pending the source is not read:
 * back-pressure, with memory per connection bounded by 2 * PX_CHUNK and an
 * idle connection holding no buffer at all. A FIN is passed on with
 * shutdown(SHUT_WR) once the data before it is out (half-close); a reset or
 * a write error ends both sides with a reset (SO_LINGER 0), so neither
 * peer takes a broken stream for a complete one.
 */
#include "proxy/proxy_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/loop.h"
#include "base/timing.h"

static void conn_connect(struct px_conn *c);

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void set_reset(int fd)
{
	struct linger lg = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void touch(struct px_conn *c)
{
	struct px_proxy *p = c->p;

	c->last_ms = bcn_now_ms();
	if (TAILQ_LAST(&p->conns, px_conn_list) != c) {
		TAILQ_REMOVE(&p->conns, c, link);
		TAILQ_INSERT_TAIL(&p->conns, c, link);
	}
}

/* Relayed bytes may be an application's credentials: wiped before free. */
static void dir_free(struct px_dir *d)
{
	if (d->buf) {
		explicit_bzero(d->buf, d->len);
		free(d->buf);
	}
	d->buf = NULL;
	d->off = d->len = 0;
}

static void free_event(struct event **ev)
{
	if (*ev)
		event_free(*ev);
	*ev = NULL;
}

void px_conn_close(struct px_conn *c, bool reset)
{
	struct px_proxy *p = c->p;

	free_event(&c->crd);
	free_event(&c->cwr);
	free_event(&c->urd);
	free_event(&c->uwr);
	if (reset) {
		set_reset(c->cfd);
		if (c->ufd >= 0)
			set_reset(c->ufd);
	}
	close(c->cfd);
	if (c->ufd >= 0)
		close(c->ufd);
	dir_free(&c->c2u);
	dir_free(&c->u2c);
	TAILQ_REMOVE(&p->conns, c, link);
	p->active--;
	p->ps->active--;
	if (c->up) {
		c->up->active--;
		px_upstream_release(c->up);
	}
	free(c);
	px_proxy_conn_gone(p);
}

/* Both FINs passed on and nothing pending: the connection is over. */
static bool finished(const struct px_conn *c)
{
	return c->c2u.shut && c->u2c.shut;
}

/* After the source's FIN and the data before it: pass the FIN on. When
 * the other direction is over too, the close() that follows at once sends
 * that FIN (both sides were read to their end, so nothing unread turns it
 * into a reset): one system call less per connection. */
static void pass_fin(struct px_conn *c, struct px_dir *d, int dst)
{
	struct px_dir *other = d == &c->c2u ? &c->u2c : &c->c2u;

	if (d->eof && d->off == d->len && !d->shut) {
		if (!other->shut)
			shutdown(dst, SHUT_WR);
		d->shut = true;
	}
}

/* src sent its FIN and everything before it has been read: stop reading
 * src, and pass the FIN on if the data before it is out (else flush()
 * comes back here once it is). Returns false when that ended the
 * connection (closed). */
static bool src_ended(struct px_conn *c, struct px_dir *d, struct event *src_rd, int dst)
{
	d->eof = true;
	event_del(src_rd);
	pass_fin(c, d, dst);
	if (finished(c)) {
		px_conn_close(c, false);
		return false;
	}
	return true;
}

/*
 * Move what src has to dst. d: the direction; src_rd / dst_wr: the events
 * to stop and start for back-pressure; counter: the upstream's byte count;
 * what: the event's flags. Returns false when the connection was closed.
 *
 * EV_CLOSED (EPOLLRDHUP) says src's FIN is queued behind its data: then the
 * last bytes go out with MSG_MORE and the FIN follows at once, so the
 * kernel sends both in one segment, as the endpoint sent them. A client of
 * a "Connection: close" exchange gets its response and the end in one
 * wake-up instead of two (and one ACK less), as through HAProxy.
 */
static bool pump(struct px_conn *c, int src, int dst, struct px_dir *d, struct event *src_rd,
		 struct event *dst_wr, uint64_t *counter, short what)
{
	char *buf = c->p->ps->scratch;

	/* A few chunks per wake-up, so one busy connection cannot starve the others. */
	for (int round = 0; round < 4; round++) {
		ssize_t n = read(src, buf, PX_CHUNK), w;
		bool last = false;

		if (n > 0 && n < PX_CHUNK && (what & EV_CLOSED)) {
			ssize_t m = read(src, buf + n, (size_t)(PX_CHUNK - n));

			if (m > 0)
				n += m;
			else if (m == 0)
				last = true;
			else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				/* A reset right behind the FIN: the bytes read go on
				 * first (best effort), then the reset, as one at a
				 * time they would. */
				ssize_t w0 = send(dst, buf, (size_t)n, MSG_NOSIGNAL);

				if (w0 > 0)
					*counter += (uint64_t)w0;
				px_conn_close(c, true);
				return false;
			}
		}
		if (n == 0)
			return src_ended(c, d, src_rd, dst);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return true;
			px_conn_close(c, true); /* ECONNRESET and the like: reset the other side */
			return false;
		}
		w = send(dst, buf, (size_t)n, MSG_NOSIGNAL | (last ? MSG_MORE : 0));
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			w = 0;
		if (w < 0) {
			px_conn_close(c, true);
			return false;
		}
		*counter += (uint64_t)w;
		if (w < n) {
			/* The rest waits for dst (flush() sends it without MSG_MORE,
			 * then passes the FIN on if src has ended). */
			d->buf = malloc((size_t)(n - w));
			if (!d->buf) {
				px_conn_close(c, true);
				return false;
			}
			memcpy(d->buf, buf + w, (size_t)(n - w));
			d->off = 0;
			d->len = (uint32_t)(n - w);
			d->eof = last;
			event_del(src_rd);
			event_add(dst_wr, NULL);
			return true;
		}
		if (last)
			return src_ended(c, d, src_rd, dst);
		if (n < PX_CHUNK)
			return true;
	}
	return true;
}

/* dst can take more: flush the pending bytes, then read src again. */
static bool flush(struct px_conn *c, int dst, struct px_dir *d, struct event *src_rd,
		  struct event *dst_wr, uint64_t *counter)
{
	ssize_t w = send(dst, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL);

	if (w < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return true;
		px_conn_close(c, true);
		return false;
	}
	*counter += (uint64_t)w;
	d->off += (uint32_t)w;
	if (d->off < d->len)
		return true;
	dir_free(d);
	event_del(dst_wr);
	if (d->eof)
		return src_ended(c, d, src_rd, dst);
	event_add(src_rd, NULL);
	return true;
}

/* Each event of a relayed connection (and each accept, px_conn_start) is
 * one unit of work for the loop: under load it naps instead of blocking
 * (base/loop.h). */
static void client_readable(evutil_socket_t fd, short what, void *arg)
{
	struct px_conn *c = arg;
	(void)fd;
	bcn_loop_work();
	touch(c);
	pump(c, c->cfd, c->ufd, &c->c2u, c->crd, c->uwr, &c->up->bytes_up, what);
}

static void upstream_readable(evutil_socket_t fd, short what, void *arg)
{
	struct px_conn *c = arg;
	(void)fd;
	bcn_loop_work();
	touch(c);
	pump(c, c->ufd, c->cfd, &c->u2c, c->urd, c->cwr, &c->up->bytes_down, what);
}

static void client_writable(evutil_socket_t fd, short what, void *arg)
{
	struct px_conn *c = arg;
	(void)fd;
	(void)what;
	bcn_loop_work();
	touch(c);
	flush(c, c->cfd, &c->u2c, c->urd, c->cwr, &c->up->bytes_down);
}

/* The connect succeeded: relay both ways. */
static void connected(struct px_conn *c)
{
	c->connected = true;
	px_connect_ok(c->up);
	touch(c);
	event_add(c->crd, NULL);
	event_add(c->urd, NULL);
	/* Most clients wrote their request right after their connect: take it
	 * now rather than one loop turn later (EAGAIN when there is none). */
	pump(c, c->cfd, c->ufd, &c->c2u, c->crd, c->uwr, &c->up->bytes_up, 0);
}

/* The upstream's write event first completes the connect (with its
 * timeout), then serves the client-to-upstream direction. */
static void upstream_writable(evutil_socket_t fd, short what, void *arg)
{
	struct px_conn *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);
	(void)fd;
	bcn_loop_work();

	if (c->connected) {
		touch(c);
		flush(c, c->ufd, &c->c2u, c->crd, c->uwr, &c->up->bytes_up);
		return;
	}
	if (what & EV_TIMEOUT)
		err = ETIMEDOUT;
	else if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		bcn_debug("proxy", "%s: connect to %s:%u failed: %s", c->p->listen, c->up->ep->address,
			  c->up->ep->port, strerror(err));
		px_connect_failed(c->up);
		conn_connect(c);
		return;
	}
	event_del(c->uwr);
	connected(c);
}

/* Drop the failed upstream socket and its events before the next try. */
static void conn_drop_upstream(struct px_conn *c)
{
	free_event(&c->urd);
	free_event(&c->uwr);
	if (c->ufd >= 0)
		close(c->ufd);
	c->ufd = -1;
	if (c->up) {
		c->up->active--;
		px_upstream_release(c->up);
		c->up = NULL;
	}
}

/*
 * Connect to the next endpoint the policy gives (the first try, or a retry
 * after a failed connect: at most p->retries of those). With none left the
 * client is closed at once, as SPEC says for "no endpoint".
 */
static void conn_connect(struct px_conn *c)
{
	struct px_proxy *p = c->p;
	struct event_base *base = p->ps->base;

	for (;;) {
		struct px_upstream *up;
		struct timeval tv;
		int fd;

		conn_drop_upstream(c);
		if (c->ntried > p->retries || !(up = px_choose(p, c))) {
			if (c->ntried == 0)
				p->no_endpoint++;
			px_conn_close(c, false);
			return;
		}
		c->tried[c->ntried++] = up;
		c->up = up;
		up->active++;
		up->total++;
		fd = socket(up->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			/* Out of descriptors is ours, not the endpoint's fault. */
			if (bcn_complain_due(&p->complain, 60000, 5, "proxy", "proxy warnings"))
				bcn_warn("proxy", "%s: cannot open a connection to an endpoint: %s",
					 p->listen, strerror(errno));
			px_conn_close(c, false);
			return;
		}
		c->ufd = fd;
		set_nodelay(fd);
		c->urd = event_new(base, fd, EV_READ | EV_CLOSED | EV_PERSIST, upstream_readable, c);
		c->uwr = event_new(base, fd, EV_WRITE | EV_PERSIST, upstream_writable, c);
		if (!c->urd || !c->uwr) {
			px_conn_close(c, false);
			return;
		}
		if (connect(fd, (struct sockaddr *)&up->sa, up->salen) == 0 || errno == EINPROGRESS) {
			struct sockaddr_storage peer;
			socklen_t plen = sizeof(peer);

			/* To a local endpoint the handshake is over before connect()
			 * returns (EINPROGRESS all the same): relay at once rather
			 * than one loop turn and two epoll_ctl later. */
			if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0) {
				connected(c);
				return;
			}
			tv = bcn_tv_ms(p->connect_timeout_ms);
			event_add(c->uwr, &tv);
			return;
		}
		bcn_debug("proxy", "%s: connect to %s:%u failed: %s", p->listen, up->ep->address,
			  up->ep->port, strerror(errno));
		px_connect_failed(up);
	}
}

/* The hash key: the client's address without its port (one client, one
 * endpoint); on a Unix listener, the peer's uid. */
static void client_key(struct px_conn *c, const struct sockaddr *sa, socklen_t len)
{
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->key, sizeof(c->key));
	else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->key, sizeof(c->key));
	else {
		struct ucred cr;
		socklen_t cl = sizeof(cr);
		if (getsockopt(c->cfd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
			snprintf(c->key, sizeof(c->key), "uid:%u", (unsigned)cr.uid);
		else
			snprintf(c->key, sizeof(c->key), "unix");
	}
}

void px_conn_start(struct px_proxy *p, int cfd, const struct sockaddr *peer, socklen_t plen)
{
	struct px_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(cfd);
		return;
	}
	c->p = p;
	c->cfd = cfd;
	c->ufd = -1;
	/* TCP_NODELAY comes from the listener (Linux copies it to accepted sockets). */
	client_key(c, peer, plen);
	TAILQ_INSERT_TAIL(&p->conns, c, link);
	p->active++;
	p->ps->active++;
	c->last_ms = bcn_now_ms();
	bcn_loop_work(); /* the accept is one event */
	c->crd = event_new(p->ps->base, cfd, EV_READ | EV_CLOSED | EV_PERSIST, client_readable, c);
	c->cwr = event_new(p->ps->base, cfd, EV_WRITE | EV_PERSIST, client_writable, c);
	if (!c->crd || !c->cwr) {
		px_conn_close(c, false);
		return;
	}
	if (p->ev_idle && !evtimer_pending(p->ev_idle, NULL)) {
		uint64_t every = p->idle_timeout_ms / 4;
		bcn_timer_ms(p->ev_idle, every < 50 ? 50 : every > 1000 ? 1000 : every);
	}
	conn_connect(c);
}

/* Close what has been idle for idle_timeout: the list is in order of last
 * activity, so the scan stops at the first connection still in use. */
void px_idle_sweep(struct px_proxy *p)
{
	uint64_t now = bcn_now_ms();
	struct px_conn *c;

	while ((c = TAILQ_FIRST(&p->conns)) && now - c->last_ms >= p->idle_timeout_ms)
		px_conn_close(c, false);
}
