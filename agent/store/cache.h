/*
 * cache.h - the in-memory view of discovered services that the socket serves.
 *
 * Sources (static config, each registry instance) own endpoint sets per
 * service; the cache merges them (one entry per endpoint id), keeps the answer
 * bodies rendered until the next change, and bumps a Consul-style index on
 * every change. Changes made in one loop iteration are coalesced into a single
 * index bump, after which the readers waiting on what changed (store/wait.h)
 * wake up: a 10 000-endpoint sync wakes each reader once, not 10 000 times.
 */
#ifndef BCN_CACHE_H
#define BCN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/endpoint.h"
#include "store/pick.h"
#include "store/wait.h"

struct event_base;
struct bcn_cache;
struct bcn_service;

#define BCN_CACHE_MAX_SOURCES 64

/* A reference-counted, immutable byte string (rendered answer bodies). */
struct bcn_blob {
	unsigned refs;
	size_t len;
	char data[];
};
void bcn_blob_unref(struct bcn_blob *b);

struct bcn_cache *bcn_cache_new(struct event_base *base);
void bcn_cache_free(struct bcn_cache *c); /* NULL-safe; cancels waiters without calling them */

/* Register a source ("static", "etcd#0"); returns its id, or -1 when full. */
int bcn_cache_source_add(struct bcn_cache *c, const char *name);
const char *bcn_cache_source_name(const struct bcn_cache *c, int src);

/* Declare that `src` is responsible for `service` (so the service exists, maybe
 * empty, and its answers are stale while src is). watch=false withdraws it and
 * drops src's endpoints of that service. */
void bcn_cache_watch(struct bcn_cache *c, int src, const char *service, bool watch);

/* Replace src's whole endpoint set for service; takes ownership of eps[i] (not of eps). */
void bcn_cache_replace(struct bcn_cache *c, int src, const char *service,
		       struct bcn_endpoint **eps, size_t n);
/* Add or replace one endpoint (by id) of src; takes ownership of ep. */
void bcn_cache_put(struct bcn_cache *c, int src, const char *service, struct bcn_endpoint *ep);
/* Remove src's endpoint `id` of service; no-op when absent. */
void bcn_cache_delete(struct bcn_cache *c, int src, const char *service, const char *id);

/* Mark src unreachable (its services are served as stale) or back. */
void bcn_cache_set_stale(struct bcn_cache *c, int src, bool stale);
bool bcn_cache_source_stale(const struct bcn_cache *c, int src);

/* Global index (never 0) and number of known services. */
uint64_t bcn_cache_index(const struct bcn_cache *c);
size_t bcn_cache_nservices(const struct bcn_cache *c);

/* Lookup; NULL when the service is unknown (not watched, no endpoints). */
struct bcn_service *bcn_cache_find(struct bcn_cache *c, const char *name);
/* Iterate services in name order: i from 0 while it returns non-NULL. */
struct bcn_service *bcn_cache_service_at(struct bcn_cache *c, size_t i);

const char *bcn_service_name(const struct bcn_service *s);
uint64_t bcn_service_index(const struct bcn_service *s);
bool bcn_service_stale(const struct bcn_service *s);
size_t bcn_service_count(const struct bcn_service *s, bool passing_only);
/* Endpoints merged and deduplicated by id, sorted by id; *n set. */
const struct bcn_endpoint *const *bcn_service_endpoints(struct bcn_service *s, size_t *n);
/* Passing endpoints only (the pick candidates). */
const struct bcn_endpoint *const *bcn_service_passing(struct bcn_service *s, size_t *n);
struct bcn_pick_state *bcn_service_pick_state(struct bcn_service *s);

/* The SPEC body of /v1/endpoints/{service} (with a trailing newline, as curl
 * users expect), rendered once per change: a new
 * reference the caller must unref (pass to evbuffer_add_reference). NULL on OOM. */
struct bcn_blob *bcn_service_body(struct bcn_service *s, bool passing_only);
/* The same list with only the endpoints tagged `tag` (NULL: all, the cached
 * body above), rendered for this call. A new reference; NULL on OOM. */
struct bcn_blob *bcn_service_render(struct bcn_service *s, bool passing_only, const char *tag);
/* The body of /v1/services, rendered once per change. */
struct bcn_blob *bcn_cache_services_body(struct bcn_cache *c);

/*
 * Blocking reads park on the cache's wait set (store/wait.h), in these
 * queues; the cache signals them with the new index once per flush:
 *   BCN_CACHE_Q_SERVICES  name "": the global index moved (the service list
 *                         answers with it, so it moves with every change)
 *   BCN_CACHE_Q_SERVICE   name: that service changed or went away
 *   BCN_CACHE_Q_KV        key: that key was set or deleted
 *   BCN_CACHE_Q_KV_TREE   prefix: some key under it was set or deleted
 * Templates, DNS and proxies subscribe to the same queues.
 */
enum bcn_cache_queue {
	BCN_CACHE_Q_SERVICES, BCN_CACHE_Q_SERVICE, BCN_CACHE_Q_KV, BCN_CACHE_Q_KV_TREE,
};
struct bcn_waits *bcn_cache_waits(struct bcn_cache *c);
/* Park on `service` (NULL: the service list) having seen index; cb runs once
 * it moved, never from inside this call. NULL when the service is unknown or
 * out of memory. Cancel with bcn_wait_cancel. */
struct bcn_wait *bcn_cache_wait(struct bcn_cache *c, const char *service, uint64_t index,
				bcn_wait_cb cb, void *arg);

/*
 * Watched config values (watch.kv). Keys are stored as the registry has them
 * ("/config/web/color"); values are bytes, served as JSON strings. Every key
 * keeps the index of its last change (deletions leave a tombstone with the
 * index of the delete), so a blocking read answers with the index of what it
 * covers and wakes only when that moves.
 */
struct bcn_kv_entry {
	const char *key;
	const char *value;   /* NULL for a tombstone */
	size_t len;
	uint64_t index;      /* index of the last change */
	uint8_t src;
	bool too_large;      /* a tombstone for a value over BCN_KV_MAX_VALUE (logged once) */
	/* {"key":K,"value":V without the closing brace, rendered once when the
	 * value is stored (bytes that are not UTF-8, and NUL, as U+FFFD). */
	struct bcn_blob *body;
};

/* Larger values are skipped (the key reads as absent) with one log line per key. */
#define BCN_KV_MAX_VALUE (1024 * 1024)

/* Declare that src watches `prefix` (so reads under it are answered, maybe 404). */
void bcn_cache_kv_watch(struct bcn_cache *c, int src, const char *prefix, bool watch);
/* True when key is under a prefix some source watches. */
bool bcn_cache_kv_watched(const struct bcn_cache *c, const char *key);
/* Set one key (copies key and value). Unchanged bytes are a no-op. */
void bcn_cache_kv_put(struct bcn_cache *c, int src, const char *key, const char *value, size_t len);
void bcn_cache_kv_delete(struct bcn_cache *c, int src, const char *key);
/* Replace everything src has under prefix with keys[i]=values[i] (a resync). */
void bcn_cache_kv_replace(struct bcn_cache *c, int src, const char *prefix, const char *const *keys,
			  const char *const *values, const size_t *lens, size_t n);
/* Lookup (NULL when absent or deleted). */
const struct bcn_kv_entry *bcn_cache_kv_get(struct bcn_cache *c, const char *key);
/* A new reference to e's rendered body (e must hold a value); unref when sent. */
struct bcn_blob *bcn_cache_kv_body(const struct bcn_kv_entry *e);
/* Live entries under prefix, in key order: *first is the position, returns the count. */
size_t bcn_cache_kv_range(struct bcn_cache *c, const char *prefix, size_t *first);
const struct bcn_kv_entry *bcn_cache_kv_at(struct bcn_cache *c, size_t pos);
/* Highest change index (tombstones included) of key, or of everything under it when recurse. */
uint64_t bcn_cache_kv_index(struct bcn_cache *c, const char *key, bool recurse);
/* Park on key (recurse: on every key under it) having seen index; as bcn_cache_wait. */
struct bcn_wait *bcn_cache_kv_wait(struct bcn_cache *c, const char *key, bool recurse,
				   uint64_t index, bcn_wait_cb cb, void *arg);
/* Source stale for KV answers too. True when any source watching key's prefix is stale. */
bool bcn_cache_kv_stale(const struct bcn_cache *c, const char *key);

/* Apply pending changes now (tests, and before answering right after a change). */
void bcn_cache_flush(struct bcn_cache *c);

#endif
