/*
 * api.h - the local HTTP/1.1 + JSON API of SPEC.md ("Local API") on the Unix
 * socket, and the probe-only routes of the optional TCP listener.
 *
 * The API is an output: it reads the store (the cache and the secret store)
 * and parks blocking reads on the store's wait queues (store/wait.h). What
 * only the daemon knows (readiness, the /v1/self object, draining, the
 * backend instances for /metrics) it asks through the callbacks below, so it
 * never includes agent.h: the agent fills a struct bcn_api and hands it to
 * the listeners as the handlers' argument.
 */
#ifndef BCN_API_H
#define BCN_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "api/metrics.h"

struct event_base;
struct evbuffer;
struct bcn_hreq;
struct bcn_cache;
struct bcn_secrets;
struct bcn_server;
struct bcn_http;
struct bcn_api_wait;

struct bcn_api {
	/* Filled by the agent (zero the struct first). */
	struct event_base *base;     /* where blocking reads keep their timers */
	struct bcn_cache *cache;
	struct bcn_secrets *secrets; /* the secret store; NULL when none is configured */
	struct bcn_server *sock;     /* the Unix socket listener, for /metrics; may be NULL */
	struct bcn_http *http;       /* the HTTP client, for /metrics; may be NULL */
	void *owner;                 /* the first argument of every callback */
	/* Ready for traffic (SPEC /ready); with why set, one sentence when not. */
	bool (*ready)(void *owner, char *why, size_t len);
	/* The /v1/self object (a new reference; NULL when out of memory). */
	json_t *(*self)(void *owner);
	/* Leave (true) or rejoin (false) discovery. */
	void (*drain)(void *owner, bool drain);
	/* The i-th backend instance's name and readiness; false past the last. */
	bool (*backend)(void *owner, size_t i, const char **name, bool *ready);
	/* More Prometheus text from the outputs the agent owns (templates, DNS,
	 * proxies), appended to GET /metrics; may be NULL. The API never includes
	 * those outputs (they sit beside it, on layer 4), so the agent relays. */
	void (*metrics_more)(void *owner, struct evbuffer *out);
	/* GET /v1/proxies: {"proxies": [...]} from the local proxies the agent
	 * runs (a new reference; NULL when out of memory); may be NULL. */
	json_t *(*proxies)(void *owner);

	/* The API's own state. */
	struct bcn_metrics metrics;
	LIST_HEAD(, bcn_api_wait) waits; /* parked blocking reads */
	size_t nwaits;
};

/* The router of the Unix socket and the probe-only router of the TCP
 * listener (bcn_server callbacks); arg is the struct bcn_api. */
void bcn_api_handle(struct bcn_hreq *req, void *api);
void bcn_api_handle_probe(struct bcn_hreq *req, void *api);
/* Answer every parked blocking read now (shutdown). */
void bcn_api_release_waits(struct bcn_api *api);

#endif
