/*
 * dns.c - the DNS listeners on the agent's loop: one UDP socket read with
 * recvmmsg/sendmmsg (BATCH queries per call, up to 256 per wake-up), and a
 * TCP listener whose connections carry
 * length-prefixed queries (RFC 7766: several per connection, answered in
 * order) with an idle timeout, a connection limit, a bound on unsent answers
 * (a client that does not read stops being read) and a pause of accept() when
 * descriptors run out. Answers come from dns/answer.c, synchronously: a query
 * never waits, so there is nothing to park and nothing to cancel. Not
 * libevent's evdns server: it crashes on UDP packets under 12 bytes (libevent
 * issue #1231) and would add a second parser of untrusted input.
 */
#include "dns/dns.h"
#include "dns/answer.h"
#include "dns/wire.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/timing.h"
#include "config/config.h"

/* UDP queries per recvmmsg. 1 by default: in make bench on a quiet machine,
 * batches of 32 left a latency transient after the throughput flood (average
 * 3.8x and p99 7.5x unbound's in the same run) that one query per call does
 * not show (average 0.92x, p99 1.14x, throughput 1.01x). Not explained yet;
 * -DBCN_DNS_BATCH=32 builds the batched path to compare (bench/bench_dns.py). */
#ifndef BCN_DNS_BATCH
#define BCN_DNS_BATCH 1
#endif
#define BATCH BCN_DNS_BATCH
#define ROUNDS (256 / BATCH)     /* batches per wake-up before other events run */
#define QUERY_MAX 2048           /* a UDP query larger than this is malformed (MSG_TRUNC) */
#define OUT_HIGH (256 * 1024)    /* unsent TCP answers at which a connection stops being read */
#define ACCEPT_PAUSE_MS 100      /* after EMFILE: descriptors free up when connections close */
#define UDP_RCVBUF (1024 * 1024) /* absorbs bursts while the loop does something else */

struct conn {
	struct bcn_dns *d;
	struct bufferevent *bev;
	LIST_ENTRY(conn) link;
	bool closing;                /* EOF seen: close once the answers are out */
};

struct bcn_dns {
	struct event_base *base;
	struct bcn_dns_zone zone;
	char listen[128];
	evutil_socket_t ufd, tfd;
	struct event *uev, *tev, *tpause;
	LIST_HEAD(, conn) conns;
	size_t nconns, max_conns;
	struct timeval idle;
	uint64_t tcp_accepted, tcp_rejected, accept_paused;
	struct bcn_complain complain;
	/* UDP batch buffers, and one TCP answer (two length bytes first). */
	struct mmsghdr in_msg[BATCH], out_msg[BATCH];
	struct iovec in_iov[BATCH], out_iov[BATCH];
	struct sockaddr_storage peer[BATCH];
	uint8_t in[BATCH][QUERY_MAX];
	uint8_t out[BATCH][BCN_DNS_UDP_MAX];
	uint8_t frame[BCN_DNS_TCP_MAX];
	uint8_t tcp_out[2 + BCN_DNS_TCP_MAX];
};

/* ---- UDP ------------------------------------------------------------------ */

static void udp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_dns *d = arg;
	(void)what;

	for (int round = 0; round < ROUNDS; round++) {
		int n, k = 0, sent = 0;
		for (int i = 0; i < BATCH; i++) {
			d->in_iov[i] = (struct iovec){ d->in[i], QUERY_MAX };
			d->in_msg[i].msg_hdr = (struct msghdr){ .msg_name = &d->peer[i],
				.msg_namelen = sizeof(d->peer[i]), .msg_iov = &d->in_iov[i], .msg_iovlen = 1 };
		}
		n = recvmmsg(fd, d->in_msg, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			size_t len;
			if (d->in_msg[i].msg_hdr.msg_flags & MSG_TRUNC) {
				d->zone.stats.malformed++;
				continue;
			}
			len = bcn_dns_answer(&d->zone, d->in[i], d->in_msg[i].msg_len, false, d->out[k],
					     BCN_DNS_UDP_MAX);
			if (!len)
				continue;
			d->out_iov[k] = (struct iovec){ d->out[k], len };
			d->out_msg[k].msg_hdr = (struct msghdr){ .msg_name = &d->peer[i],
				.msg_namelen = d->in_msg[i].msg_hdr.msg_namelen, .msg_iov = &d->out_iov[k],
				.msg_iovlen = 1 };
			k++;
		}
		while (sent < k) {
			int r = sendmmsg(fd, d->out_msg + sent, (unsigned)(k - sent), MSG_DONTWAIT);
			if (r > 0)
				sent += r;
			else if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;   /* the send buffer is full: UDP may drop, the client retries */
			else
				sent++;  /* this peer cannot be reached; answer the others */
		}
		if (n < BATCH)
			return;
	}
}

/* ---- TCP ------------------------------------------------------------------ */

static void conn_free(struct conn *c)
{
	LIST_REMOVE(c, link);
	c->d->nconns--;
	bufferevent_free(c->bev);
	free(c);
}

/* Answer every complete frame while unsent answers stay under OUT_HIGH. */
static void conn_process(struct conn *c)
{
	struct bcn_dns *d = c->d;
	struct evbuffer *in = bufferevent_get_input(c->bev), *out = bufferevent_get_output(c->bev);

	while (evbuffer_get_length(out) < OUT_HIGH) {
		uint8_t hdr[2];
		size_t avail = evbuffer_get_length(in), flen, n;
		if (avail < 2)
			return;
		evbuffer_copyout(in, hdr, 2);
		flen = (size_t)hdr[0] << 8 | hdr[1];
		if (avail < 2 + flen)
			return;
		evbuffer_drain(in, 2);
		evbuffer_remove(in, d->frame, flen);
		n = bcn_dns_answer(&d->zone, d->frame, flen, true, d->tcp_out + 2, BCN_DNS_TCP_MAX);
		if (!n)
			continue;
		d->tcp_out[0] = (uint8_t)(n >> 8);
		d->tcp_out[1] = (uint8_t)n;
		if (evbuffer_add(out, d->tcp_out, n + 2) < 0) {
			conn_free(c);
			return;
		}
	}
	/* The client is not reading its answers: stop reading its queries
	 * until they drain (conn_write). */
	bufferevent_disable(c->bev, EV_READ);
}

static void conn_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_process(arg);
}

static void conn_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing) {
		conn_free(c);
		return;
	}
	if (!(bufferevent_get_enabled(bev) & EV_READ)) {
		bufferevent_enable(bev, EV_READ);
		conn_process(c);
	}
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		/* Half-closed after its last query: send the answers, then close. */
		c->closing = true;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	conn_free(c); /* EOF, error, idle or write timeout */
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_dns *d = arg;
	(void)fd;
	(void)what;
	event_add(d->tev, NULL);
}

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_dns *d = arg;
	(void)what;

	for (int i = 0; i < 64; i++) {
		struct conn *c;
		int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: the pending connection would wake
				 * us again at once; wait for some to be closed. */
				struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
				d->accept_paused++;
				if (bcn_complain_due(&d->complain, 10000, 1, "dns", "accept pauses"))
					bcn_warn("dns", "accept: %s; pausing TCP accepts for %d ms", strerror(errno),
						 ACCEPT_PAUSE_MS);
				event_del(d->tev);
				evtimer_add(d->tpause, &tv);
			}
			return;
		}
		if (d->nconns >= d->max_conns) {
			d->tcp_rejected++;
			close(s);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c)
			c->bev = bufferevent_socket_new(d->base, s, BEV_OPT_CLOSE_ON_FREE);
		if (!c || !c->bev) {
			free(c);
			close(s);
			continue;
		}
		c->d = d;
		LIST_INSERT_HEAD(&d->conns, c, link);
		d->nconns++;
		d->tcp_accepted++;
		bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
		/* A frame is at most 2 + 65535 bytes: reading stops there until it is answered. */
		bufferevent_setwatermark(c->bev, EV_READ, 0, 2 + BCN_DNS_TCP_MAX);
		bufferevent_set_timeouts(c->bev, &d->idle, &d->idle);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	}
}

/* ---- life ----------------------------------------------------------------- */

static evutil_socket_t open_socket(const struct sockaddr *sa, int salen, int type, char *err,
				   size_t errlen, const char *where)
{
	int one = 1, rcv = UDP_RCVBUF;
	evutil_socket_t s = socket(sa->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (s < 0)
		goto fail;
	/* TCP only: a restart must not wait for TIME_WAIT. On UDP the option
	 * would let a second process bind the same port and take queries. */
	if (type == SOCK_STREAM)
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	else
		setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	if (bind(s, sa, (socklen_t)salen) < 0 || (type == SOCK_STREAM && listen(s, 1024) < 0))
		goto fail;
	return s;
fail:
	snprintf(err, errlen, "cannot listen on %s (%s): %s%s", where,
		 type == SOCK_DGRAM ? "udp" : "tcp", strerror(errno),
		 errno == EACCES ? " (a port below 1024 needs CAP_NET_BIND_SERVICE; see README \"DNS\")" : "");
	if (s >= 0)
		close(s);
	return -1;
}

static int apply(struct bcn_dns *d, const struct bcn_dns_conf *conf)
{
	if (bcn_dns_zone_domain(&d->zone, conf->domain) < 0)
		return -1;
	d->zone.ttl = (uint32_t)(conf->ttl_ms / 1000);
	d->zone.udp_answer_limit = (unsigned)conf->udp_answer_limit;
	d->max_conns = (size_t)conf->max_connections;
	d->idle.tv_sec = (time_t)(conf->idle_timeout_ms / 1000);
	d->idle.tv_usec = (suseconds_t)(conf->idle_timeout_ms % 1000 * 1000);
	return 0;
}

struct bcn_dns *bcn_dns_new(struct event_base *base, struct bcn_cache *cache,
			    const struct bcn_dns_conf *conf, char *err, size_t errlen)
{
	struct bcn_dns *d = calloc(1, sizeof(*d));
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);

	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->base = base;
	d->zone.cache = cache;
	d->ufd = d->tfd = -1;
	LIST_INIT(&d->conns);
	snprintf(d->listen, sizeof(d->listen), "%s", conf->listen);
	if (apply(d, conf) < 0) {
		snprintf(err, errlen, "invalid dns.domain \"%.60s\"", conf->domain);
		goto fail;
	}
	if (evutil_parse_sockaddr_port(conf->listen, (struct sockaddr *)&ss, &sslen) < 0) {
		snprintf(err, errlen, "dns.listen \"%.60s\" is not an address:port (a host name is not "
			 "accepted here: use 127.0.0.1:8600 or [::1]:8600)", conf->listen);
		goto fail;
	}
	d->ufd = open_socket((struct sockaddr *)&ss, sslen, SOCK_DGRAM, err, errlen, conf->listen);
	if (d->ufd < 0)
		goto fail;
	d->tfd = open_socket((struct sockaddr *)&ss, sslen, SOCK_STREAM, err, errlen, conf->listen);
	if (d->tfd < 0)
		goto fail;
	d->uev = event_new(base, d->ufd, EV_READ | EV_PERSIST, udp_cb, d);
	d->tev = event_new(base, d->tfd, EV_READ | EV_PERSIST, accept_cb, d);
	d->tpause = evtimer_new(base, accept_resume, d);
	if (!d->uev || !d->tev || !d->tpause || event_add(d->uev, NULL) < 0 || event_add(d->tev, NULL) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	bcn_info("dns", "serving %s. on %s (udp, tcp)", d->zone.domain, d->listen);
	return d;
fail:
	bcn_dns_free(d);
	return NULL;
}

void bcn_dns_free(struct bcn_dns *d)
{
	if (!d)
		return;
	while (!LIST_EMPTY(&d->conns))
		conn_free(LIST_FIRST(&d->conns));
	if (d->uev)
		event_free(d->uev);
	if (d->tev)
		event_free(d->tev);
	if (d->tpause)
		event_free(d->tpause);
	if (d->ufd >= 0)
		close(d->ufd);
	if (d->tfd >= 0)
		close(d->tfd);
	bcn_dns_zone_clear(&d->zone);
	free(d);
}

int bcn_dns_reload(struct bcn_dns *d, const struct bcn_dns_conf *conf)
{
	struct bcn_dns_zone keep = d->zone;

	if (apply(d, conf) < 0)
		d->zone = keep;
	/* New idle timeouts apply to connections accepted from now on. */
	return strcmp(d->listen, conf->listen) == 0 ? 0 : -1;
}

void bcn_dns_metrics(const struct bcn_dns *d, struct evbuffer *out)
{
	const struct bcn_dns_stats *st = &d->zone.stats;

	evbuffer_add_printf(out, "# HELP beacon_dns_queries_total DNS queries answered, by query type and rcode.\n"
			    "# TYPE beacon_dns_queries_total counter\n");
	for (int t = 0; t < BCN_DNS_NTYPES; t++) {
		for (int r = 0; r < BCN_DNS_NRCODES; r++) {
			/* Every series that ever counted, and the common one from the start. */
			if (st->queries[t][r] || (t == 0 && r == 0))
				evbuffer_add_printf(out, "beacon_dns_queries_total{type=\"%s\",rcode=\"%s\"} %llu\n",
						    bcn_dns_type_names[t], bcn_dns_rcode_names[r],
						    (unsigned long long)st->queries[t][r]);
		}
	}
	evbuffer_add_printf(out,
		"# HELP beacon_dns_truncated_total UDP answers sent with TC set (the client retries over TCP).\n"
		"# TYPE beacon_dns_truncated_total counter\nbeacon_dns_truncated_total %llu\n"
		"# HELP beacon_dns_malformed_total DNS packets answered FORMERR or dropped as unparseable.\n"
		"# TYPE beacon_dns_malformed_total counter\nbeacon_dns_malformed_total %llu\n"
		"# HELP beacon_dns_tcp_connections Open DNS TCP connections.\n"
		"# TYPE beacon_dns_tcp_connections gauge\nbeacon_dns_tcp_connections %zu\n"
		"# HELP beacon_dns_tcp_rejected_total DNS TCP connections closed at once: dns.max_connections reached.\n"
		"# TYPE beacon_dns_tcp_rejected_total counter\nbeacon_dns_tcp_rejected_total %llu\n",
		(unsigned long long)st->truncated, (unsigned long long)st->malformed, d->nconns,
		(unsigned long long)d->tcp_rejected);
}

json_t *bcn_dns_self(const struct bcn_dns *d)
{
	return json_pack("{sssssIsI}", "listen", d->listen, "domain", d->zone.domain,
			 "tcp_connections", (json_int_t)d->nconns, "ttl_seconds", (json_int_t)d->zone.ttl);
}
