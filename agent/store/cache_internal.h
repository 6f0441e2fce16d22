/*
 * cache_internal.h - the cache's data structures, shared by cache.c
 * (services), cache_read.c (their views and bodies) and cache_kv.c (watched
 * config values). Not for use outside the cache.
 */
#ifndef BCN_CACHE_INTERNAL_H
#define BCN_CACHE_INTERNAL_H

#include <sys/queue.h>

#include "store/cache.h"

struct event;

struct kv_prefix {
	char *prefix;
	int src;
};

struct bcn_service {
	struct bcn_cache *cache;
	char *name;
	char *name_json;          /* the name as a JSON string literal, quotes included */
	uint64_t index;
	uint64_t watch_mask;      /* sources responsible for this service */
	struct bcn_endpoint **ents; /* sorted by (id, src) */
	size_t n, cap;
	bool pending;             /* changed since the last flush */
	bool views_valid;         /* merged/passing are up to date */
	const struct bcn_endpoint **merged, **passing;
	size_t nmerged, npassing;
	struct bcn_blob *body[2]; /* [0] = any status, [1] = passing only */
	bool body_stale[2];       /* the stale flag each body was rendered with */
	struct bcn_pick_state pick;
};

struct bcn_cache {
	struct event_base *base;
	struct event *flush_ev;
	uint64_t index;
	uint64_t stale_mask;
	char *src_names[BCN_CACHE_MAX_SOURCES];
	int nsrc;
	struct bcn_service **svcs; /* sorted by name */
	size_t nsvcs, capsvcs;
	bool list_changed;         /* a service appeared, vanished or changed count */
	struct bcn_blob *services_body;
	struct bcn_waits *waits;   /* blocking readers, by queue (cache.h) */

	struct bcn_kv_entry **kv;  /* sorted by key; tombstones have value NULL */
	size_t nkv, capkv;
	struct kv_prefix *kvp;
	size_t nkvp;
	bool kv_pending;
	bool kv_all_pending;       /* a prefix was unwatched: every KV reader re-reads */
};

/* Signal the KV queues of what changed in the flush that made c->index (cache_kv.c). */
void bcn_cache_kv_signal_(struct bcn_cache *c);
/* Run bcn_cache_flush on the next loop turn (coalescing every change until then). */
void bcn_cache_schedule_flush_(struct bcn_cache *c);
/* A blob of len bytes (plus a NUL) with one reference (cache_read.c). */
struct bcn_blob *bcn_blob_new_(size_t len);
/* Free the KV store (cache_kv.c). */
void bcn_cache_kv_free_(struct bcn_cache *c);

/*
 * Binary search in a sorted array of n elements of `size` bytes (the cache
 * keeps its endpoints and KV entries as sorted pointer arrays): the position
 * of the element for which cmp(key, elem) is 0 (*found true), or where key
 * would be inserted to keep the order. cmp is bsearch's: negative when key
 * sorts before *elem. Inline so that the comparison is too.
 */
static inline size_t bcn_sorted_pos(const void *base, size_t n, size_t size, const void *key,
				    int (*cmp)(const void *key, const void *elem), bool *found)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp(key, (const char *)base + mid * size);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

#endif
