/*
 * proxy.c - the proxy set: one listener per `proxies` entry, accepting with
 * a connection limit, the watch on the store, and reload.
 *
 * A proxy learns endpoint changes by parking on the store's queue for its
 * service (bcn_cache_wait; on the service list while the service is not
 * known yet) and re-reading the passing endpoints when woken: no polling and
 * no callback list. Reload matches proxies by listen address; a proxy a
 * reload removes is "retired": its listener closes at once, its connections
 * run on, and it is freed (from a deferred event, never under a caller's
 * feet) when the last one ends.
 */
#include "proxy/proxy_internal.h"

#include <errno.h>
#include <stdint.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/timing.h"

#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100
#define FD_RESERVE 2048

static void watch(struct px_proxy *p);

static void woken(void *arg)
{
	struct px_proxy *p = arg;

	p->wait = NULL;
	px_sync(p);
	watch(p);
}

/* Park on the service's queue with the index just read; on the service
 * list while the service is unknown (it wakes when it appears). */
static void watch(struct px_proxy *p)
{
	struct bcn_cache *cache = p->ps->cache;
	struct bcn_service *s = bcn_cache_find(cache, p->service);

	if (s)
		p->wait = bcn_cache_wait(cache, p->service, bcn_service_index(s), woken, p);
	else
		p->wait = bcn_cache_wait(cache, NULL, bcn_cache_index(cache), woken, p);
	if (!p->wait)
		bcn_error("proxy", "%s: cannot watch service %s (out of memory); endpoint changes "
			  "are not seen until the next reload", p->listen, p->service);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct px_proxy *p = arg;
	(void)what;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* The connection stays in the backlog; retrying at once
				 * would spin. Pause, as the API listener does. */
				p->accept_pauses++;
				event_del(p->ev_accept);
				bcn_timer_ms(p->ev_resume, ACCEPT_PAUSE_MS);
				if (bcn_complain_due(&p->complain, 60000, 5, "proxy", "proxy warnings"))
					bcn_warn("proxy", "%s: cannot accept: %s (%zu relayed); pausing "
						 "accepts for %d ms; raise LimitNOFILE or lower "
						 "max_connections", p->listen, strerror(errno), p->active,
						 ACCEPT_PAUSE_MS);
			}
			return;
		}
		if (p->active >= p->max_connections || p->ps->active >= p->ps->fd_cap) {
			/* Refused at once with a FIN, not left to hang in the backlog. */
			p->refused++;
			close(fd);
			if (p->ps->active >= p->ps->fd_cap &&
			    bcn_complain_due(&p->ps->complain, 60000, 1, "proxy", NULL))
				bcn_warn("proxy", "%s: refusing connections: the proxies relay %zu, all "
					 "that RLIMIT_NOFILE leaves them (two descriptors each, a reserve "
					 "kept for the API and backends); raise LimitNOFILE", p->listen,
					 p->ps->active);
			continue;
		}
		p->accepted++;
		px_conn_start(p, fd, (struct sockaddr *)&ss, len);
	}
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct px_proxy *p = arg;
	(void)fd;
	(void)what;
	if (!p->retired)
		event_add(p->ev_accept, NULL);
}

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct px_proxy *p = arg;
	uint64_t every = p->idle_timeout_ms / 4;
	(void)fd;
	(void)what;

	px_idle_sweep(p);
	if (!TAILQ_EMPTY(&p->conns))
		bcn_timer_ms(p->ev_idle, every < 50 ? 50 : every > 1000 ? 1000 : every);
}

static int bind_unix(struct px_proxy *p, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct stat st;

	if (fd < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	/* A stale socket file from an earlier run is replaced; anything else is not. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	p->unix_path = strdup(path);
	return fd;
}

static int bind_tcp(const char *listen)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *res = NULL;
	size_t hl = (size_t)(colon - listen);
	int fd = -1, one = 1;

	if (hl >= sizeof(host))
		return -1;
	memcpy(host, listen, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	/* Numeric only: a name lookup would block the loop. */
	if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res) != 0 || !res) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* Accepted sockets inherit it: one call here instead of one per client. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
			int e = errno;
			close(fd);
			fd = -1;
			errno = e;
		}
	}
	freeaddrinfo(res);
	return fd;
}

static int open_listener(struct px_proxy *p)
{
	bool is_unix = strncmp(p->listen, "unix:", 5) == 0;
	int fd = is_unix ? bind_unix(p, p->listen + 5) : bind_tcp(p->listen);

	if (fd < 0 || listen(fd, 4096) < 0) {
		bcn_error("proxy", "cannot listen on %s: %s", p->listen, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	p->lfd = fd;
	p->ev_accept = event_new(p->ps->base, fd, EV_READ | EV_PERSIST, accept_cb, p);
	if (!p->ev_accept || event_add(p->ev_accept, NULL) < 0)
		return -1;
	return 0;
}

static void close_listener(struct px_proxy *p)
{
	if (p->ev_accept)
		event_free(p->ev_accept);
	p->ev_accept = NULL;
	if (p->ev_resume)
		event_del(p->ev_resume);
	if (p->lfd >= 0)
		close(p->lfd);
	p->lfd = -1;
	if (p->unix_path)
		unlink(p->unix_path);
	free(p->unix_path);
	p->unix_path = NULL;
}

static void proxy_free(struct px_proxy *p)
{
	struct px_conn *c;

	if (!p)
		return;
	while ((c = TAILQ_FIRST(&p->conns)))
		px_conn_close(c, false);
	close_listener(p);
	bcn_wait_cancel(p->wait);
	if (p->ev_resume)
		event_free(p->ev_resume);
	if (p->ev_idle)
		event_free(p->ev_idle);
	px_upstreams_free(p);
	free(p->listen);
	free(p->service);
	free(p->tag);
	free(p);
}

/* Take c's settings; true when the set of endpoints it selects changed. */
static int set_conf(struct px_proxy *p, const struct bcn_proxy_conf *c, bool *selection_changed)
{
	char *service = strdup(c->service), *tag = strdup(c->tag ? c->tag : "");
	enum px_policy pol = PX_ROUND_ROBIN;

	if (!service || !tag) {
		free(service);
		free(tag);
		return -1;
	}
	px_policy_parse(c->policy, &pol); /* checked with the config */
	*selection_changed = !p->service || strcmp(p->service, service) || strcmp(p->tag, tag);
	free(p->service);
	free(p->tag);
	p->service = service;
	p->tag = tag;
	if (pol != p->policy)
		bcn_pick_reset(&p->pick);
	p->policy = pol;
	p->connect_timeout_ms = c->connect_timeout_ms;
	p->idle_timeout_ms = c->idle_timeout_ms;
	p->retries = (uint32_t)c->retries;
	p->max_connections = (size_t)c->max_connections;
	p->consecutive_failures = (uint32_t)c->outlier.consecutive_failures;
	p->ejection_ms = c->outlier.ejection_ms;
	return 0;
}

static struct px_proxy *proxy_new(struct bcn_proxies *ps, const struct bcn_proxy_conf *c)
{
	struct px_proxy *p = calloc(1, sizeof(*p));
	bool changed;

	if (!p)
		return NULL;
	p->ps = ps;
	p->lfd = -1;
	TAILQ_INIT(&p->conns);
	p->listen = strdup(c->listen);
	p->ev_resume = evtimer_new(ps->base, resume_cb, p);
	p->ev_idle = evtimer_new(ps->base, idle_cb, p);
	if (!p->listen || !p->ev_resume || !p->ev_idle || set_conf(p, c, &changed) < 0 ||
	    open_listener(p) < 0) {
		proxy_free(p);
		return NULL;
	}
	px_sync(p);
	watch(p);
	bcn_info("proxy", "%s: relaying to service %s (%s)", p->listen, p->service,
		 px_policy_name(p->policy));
	return p;
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_proxies *ps = arg;
	struct px_proxy *p, *next;
	(void)fd;
	(void)what;

	for (p = LIST_FIRST(&ps->retired); p; p = next) {
		next = LIST_NEXT(p, link);
		if (p->active == 0) {
			LIST_REMOVE(p, link);
			proxy_free(p);
		}
	}
}

void px_proxy_conn_gone(struct px_proxy *p)
{
	if (p->retired && p->active == 0)
		event_active(p->ps->ev_reap, EV_TIMEOUT, 1);
}

static void retire(struct px_proxy *p)
{
	LIST_REMOVE(p, link);
	close_listener(p);
	bcn_wait_cancel(p->wait);
	p->wait = NULL;
	p->retired = true;
	bcn_info("proxy", "%s: removed; %zu connection(s) run on until they end", p->listen, p->active);
	LIST_INSERT_HEAD(&p->ps->retired, p, link);
	px_proxy_conn_gone(p);
}

struct bcn_proxies *bcn_proxies_new(struct event_base *base, struct bcn_cache *cache)
{
	struct bcn_proxies *ps = calloc(1, sizeof(*ps));

	if (!ps)
		return NULL;
	ps->base = base;
	ps->cache = cache;
	LIST_INIT(&ps->live);
	LIST_INIT(&ps->retired);
	ps->scratch = malloc(PX_CHUNK);
	ps->ev_reap = event_new(base, -1, 0, reap_cb, ps);
	if (!ps->scratch || !ps->ev_reap) {
		bcn_proxies_free(ps);
		return NULL;
	}
	return ps;
}

static const struct bcn_proxy_conf *find_conf(const struct bcn_proxy_conf *confs, size_t n,
					      const char *listen)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(confs[i].listen, listen) == 0)
			return &confs[i];
	}
	return NULL;
}

static struct px_proxy *find_live(struct bcn_proxies *ps, const char *listen)
{
	struct px_proxy *p;

	LIST_FOREACH(p, &ps->live, link) {
		if (strcmp(p->listen, listen) == 0)
			return p;
	}
	return NULL;
}

/* Each relayed connection holds two descriptors. Limits beyond the open
 * file limit end in EMFILE pauses rather than refusals: say so once per
 * config rather than letting a user find it under load. */
static void check_fd_limit(struct bcn_proxies *ps, const struct bcn_proxy_conf *confs, size_t n)
{
	struct rlimit rl;
	unsigned long long want = 0, nofile, reserve;

	ps->fd_cap = SIZE_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return;
	/* Half the limit, at most FD_RESERVE, stays for the API's clients,
	 * the backends, health checks and the proxies' listeners. */
	nofile = (unsigned long long)rl.rlim_cur;
	reserve = nofile / 2 < FD_RESERVE ? nofile / 2 : FD_RESERVE;
	ps->fd_cap = (size_t)((nofile - reserve) / 2);
	for (size_t i = 0; i < n; i++)
		want += (unsigned long long)confs[i].max_connections;
	if (want > ps->fd_cap)
		bcn_warn("proxy", "the proxies' max_connections add up to %llu, but RLIMIT_NOFILE %llu "
			 "leaves room for %zu relayed connections (two descriptors each, %llu kept in "
			 "reserve); more are refused: raise LimitNOFILE or lower max_connections",
			 want, nofile, ps->fd_cap, reserve);
}

size_t bcn_proxies_apply(struct bcn_proxies *ps, const struct bcn_proxy_conf *confs, size_t n)
{
	struct px_proxy_list order = LIST_HEAD_INITIALIZER(order);
	struct px_proxy *p, *next, *tail = NULL;
	size_t failed = 0;

	check_fd_limit(ps, confs, n);
	/* Removed ones first, so a listener they free can be taken below. */
	for (p = LIST_FIRST(&ps->live); p; p = next) {
		next = LIST_NEXT(p, link);
		if (!find_conf(confs, n, p->listen))
			retire(p);
	}
	for (size_t i = 0; i < n; i++) {
		bool changed = false;

		if ((p = find_live(ps, confs[i].listen))) {
			LIST_REMOVE(p, link);
			if (set_conf(p, &confs[i], &changed) < 0)
				bcn_error("proxy", "%s: out of memory; keeping its settings", p->listen);
			if (changed) {
				/* The new selection is read now; upstreams it drops drain. */
				bcn_wait_cancel(p->wait);
				px_sync(p);
				watch(p);
			}
		} else if (!(p = proxy_new(ps, &confs[i]))) {
			failed++;
			continue;
		}
		/* Config order, for /v1/proxies and /metrics. */
		if (tail)
			LIST_INSERT_AFTER(tail, p, link);
		else
			LIST_INSERT_HEAD(&order, p, link);
		tail = p;
	}
	ps->live = order;
	if ((p = LIST_FIRST(&ps->live)))
		p->link.le_prev = &ps->live.lh_first;
	return failed;
}

void bcn_proxies_free(struct bcn_proxies *ps)
{
	struct px_proxy *p;

	if (!ps)
		return;
	while ((p = LIST_FIRST(&ps->live))) {
		LIST_REMOVE(p, link);
		proxy_free(p);
	}
	while ((p = LIST_FIRST(&ps->retired))) {
		LIST_REMOVE(p, link);
		p->retired = false; /* no reap from inside the free */
		proxy_free(p);
	}
	if (ps->ev_reap)
		event_free(ps->ev_reap);
	if (ps->scratch)
		explicit_bzero(ps->scratch, PX_CHUNK); /* the last bytes relayed */
	free(ps->scratch);
	free(ps);
}
