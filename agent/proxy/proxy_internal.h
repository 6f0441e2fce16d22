/*
 * proxy_internal.h - what the files of agent/proxy/ share: the proxy set
 * (proxy.c: listeners, reload, the store watch), the upstreams and the
 * choice among them (balance.c: policies, outlier ejection), one relayed
 * connection (relay.c) and the reports (report.c).
 *
 * Upstreams are allocated one by one and counted by the connections that
 * use them, so an endpoint that leaves discovery (or a proxy removed by a
 * reload) keeps its statistics and its connections until the last one ends:
 * that is the drain SPEC asks for, without a separate code path.
 */
#ifndef BCN_PROXY_INTERNAL_H
#define BCN_PROXY_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "base/log.h"
#include "config/config.h"
#include "proxy/proxy.h"
#include "store/cache.h"
#include "store/pick.h"

/* Bytes moved per read(); also the most a direction holds while its reader
 * is stopped (back-pressure), so a connection holds at most twice this. */
#define PX_CHUNK (64 * 1024)
#define PX_MAX_TRIES 17 /* retries (at most 16) + the first attempt */

enum px_policy { PX_ROUND_ROBIN, PX_LEAST_CONN, PX_RANDOM, PX_WEIGHTED, PX_HASH };

struct px_proxy;

/* One endpoint as this proxy knows it (a private copy: the store's copy
 * goes away with the next change, connections outlive it). */
struct px_upstream {
	struct px_proxy *p;
	struct bcn_endpoint *ep;       /* own copy: id, address, port, weight, id hash */
	struct sockaddr_storage sa;
	socklen_t salen;               /* 0: the address is not an IP literal */
	bool listed;                   /* passing (and tagged) in discovery now */
	uint32_t active;               /* relayed connections using it, connecting included */
	uint32_t consecutive;          /* connect failures in a row */
	uint64_t ejected_until_ms;     /* bcn_now_ms() before which it gets nothing new */
	uint64_t total, failures, ejections, bytes_up, bytes_down;
};

/* One direction of a relayed connection: what src sent that dst has not
 * taken yet (heap, at most PX_CHUNK, only while some is pending). */
struct px_dir {
	char *buf;
	uint32_t off, len;
	bool eof;                      /* src sent its FIN */
	bool shut;                     /* passed on: shutdown(dst, SHUT_WR) */
};

struct px_conn {
	TAILQ_ENTRY(px_conn) link;     /* in p->conns, least recently active first */
	struct px_proxy *p;
	struct px_upstream *up;        /* NULL before the first connect */
	int cfd, ufd;
	struct event *crd, *cwr, *urd, *uwr;
	struct px_dir c2u, u2c;
	uint64_t last_ms;
	bool connected;
	uint8_t ntried;
	struct px_upstream *tried[PX_MAX_TRIES];
	char key[64];                  /* the client address, for hash */
};
TAILQ_HEAD(px_conn_list, px_conn);

struct px_proxy {
	LIST_ENTRY(px_proxy) link;
	struct bcn_proxies *ps;
	/* Own copies of the settings. */
	char *listen, *service, *tag;
	enum px_policy policy;
	uint64_t connect_timeout_ms, idle_timeout_ms, ejection_ms;
	uint32_t retries, consecutive_failures;
	size_t max_connections;

	int lfd;
	char *unix_path;               /* unlinked at close */
	struct event *ev_accept, *ev_resume, *ev_idle;
	struct bcn_wait *wait;
	bool retired;                  /* removed by a reload: draining, no listener */

	struct px_upstream **ups;
	size_t nups;
	/* Scratch for a pick: the usable upstreams and their endpoints. */
	struct px_upstream **cand_up;
	const struct bcn_endpoint **cand;
	struct bcn_pick_state pick;
	uint64_t rr;

	struct px_conn_list conns;
	size_t active;
	uint64_t accepted, refused, no_endpoint, accept_pauses;
	struct bcn_complain complain;
};
LIST_HEAD(px_proxy_list, px_proxy);

struct bcn_proxies {
	struct event_base *base;
	struct bcn_cache *cache;
	struct px_proxy_list live, retired;
	struct event *ev_reap;         /* frees retired proxies whose last connection ended */
	size_t active;                 /* relayed connections of every proxy */
	size_t fd_cap;                 /* at most this many, so the open file limit keeps a reserve */
	struct bcn_complain complain;
	char *scratch;                 /* PX_CHUNK: every read lands here first */
};

/* balance.c */
int px_policy_parse(const char *s, enum px_policy *out);
const char *px_policy_name(enum px_policy p);
/* Bring p->ups in line with the store's passing endpoints of p->service. */
void px_sync(struct px_proxy *p);
/* Choose an upstream for c (skipping those it tried); NULL when none. */
struct px_upstream *px_choose(struct px_proxy *p, struct px_conn *c);
void px_connect_failed(struct px_upstream *up);
void px_connect_ok(struct px_upstream *up);
bool px_ejected(const struct px_upstream *up, uint64_t now);
/* Drop the upstream when it is no longer listed and nothing uses it. */
void px_upstream_release(struct px_upstream *up);
void px_upstreams_free(struct px_proxy *p);

/* relay.c */
void px_conn_start(struct px_proxy *p, int cfd, const struct sockaddr *peer, socklen_t plen);
void px_conn_close(struct px_conn *c, bool reset);
void px_idle_sweep(struct px_proxy *p);

/* proxy.c: after a connection ended (a retired proxy may go then). */
void px_proxy_conn_gone(struct px_proxy *p);

#endif
