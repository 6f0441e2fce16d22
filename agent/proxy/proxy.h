/*
 * proxy.h - local TCP proxies (SPEC "Local proxies"): one listener per
 * `proxies` entry, each accepted connection relayed to one passing endpoint
 * of a service chosen by the entry's policy.
 *
 * An output at layer 4: it reads the endpoint store and learns of changes
 * only by parking on the store's wait queue of its service (store/wait.h).
 * agent.c owns its life (new at start, apply on every config, free at stop)
 * and relays its state to /v1/proxies, /v1/self and /metrics, so neither the
 * API nor this folder includes the other.
 */
#ifndef BCN_PROXY_H
#define BCN_PROXY_H

#include <jansson.h>
#include <stddef.h>

struct event_base;
struct evbuffer;
struct bcn_cache;
struct bcn_proxy_conf;
struct bcn_proxies;

/* The set of proxies of one agent, none running yet. NULL when out of memory. */
struct bcn_proxies *bcn_proxies_new(struct event_base *base, struct bcn_cache *cache);

/*
 * Make the running proxies those of confs[0..n) (start and every reload).
 * Proxies are matched by `listen`: one that stays keeps its listener and
 * its established connections and takes the new settings; one that goes
 * stops accepting at once and its connections run on until they end; a new
 * one binds its listener. Returns the number of listeners that could not be
 * bound (each logged); the others run.
 */
size_t bcn_proxies_apply(struct bcn_proxies *ps, const struct bcn_proxy_conf *confs, size_t n);

/* Close every listener and connection and free the set. NULL-safe. */
void bcn_proxies_free(struct bcn_proxies *ps);

/* {"proxies": [...]}: per proxy and upstream, connections, failures,
 * ejections and bytes (GET /v1/proxies). A new reference; NULL on OOM. */
json_t *bcn_proxies_json(struct bcn_proxies *ps);
/* A short summary per proxy for /v1/self. */
json_t *bcn_proxies_self(struct bcn_proxies *ps);
/* Append the beacon_proxy_* lines (Prometheus text). */
void bcn_proxies_metrics(struct bcn_proxies *ps, struct evbuffer *out);

#endif
