/*
 * kv.c - GET /v1/kv/{key} and /v1/kv/{prefix}?recurse (SPEC "Local API"):
 * watched config values from the cache. Each entry's {"key":..,"value":..
 * is rendered once per change (store/cache_kv.c, with bytes that are not
 * UTF-8 repaired) and sent by reference; only the few bytes around it are
 * written here. A blocking read parks on the key's queue, or on the
 * prefix's for ?recurse, so it wakes for its own keys only.
 */
#include <event2/buffer.h>

#include "api/api_internal.h"
#include "http/server.h"
#include "store/cache.h"

/* The stored key is the URL's key with a leading '/': /v1/kv/config/x -> /config/x. */
void bcn_api_kv(struct bcn_req *rc)
{
	struct bcn_cache *c = rc->api->cache;
	struct evbuffer *out = bcn_hreq_body(rc->req);
	bool recurse = rc->q.has_recurse, stale;
	uint64_t idx;

	if (!bcn_cache_kv_watched(c, rc->name)) {
		/* A recursive read of a parent of watched prefixes is fine too. */
		size_t first;
		if (!recurse || bcn_cache_kv_range(c, rc->name, &first) == 0) {
			bcn_api_reply_error(rc, 404, "key \"%.*s\" is not under a watched prefix (see watch.kv)",
					    SHOWN(rc->name + 1, 100));
			return;
		}
	}
	idx = bcn_cache_kv_index(c, rc->name, recurse);
	/* An index between ours and the cache's (the client saw it on another
	 * key) waits too: the next change of this key is past both. */
	if (bcn_api_should_park(rc, idx) ||
	    (rc->q.has_index && rc->q.index > idx && rc->q.index <= bcn_cache_index(c))) {
		bcn_api_park(rc, bcn_cache_waits(c), recurse ? BCN_CACHE_Q_KV_TREE : BCN_CACHE_Q_KV,
			     rc->name);
		return;
	}
	stale = bcn_cache_kv_stale(c, rc->name);
	bcn_api_set_index(rc, idx, stale);
	if (recurse) {
		size_t first, n = bcn_cache_kv_range(c, rc->name, &first), k = 0;
		for (size_t i = first; i < first + n; i++)
			k += bcn_cache_kv_at(c, i)->value != NULL;
		if (k == 0) {
			bcn_api_reply_error(rc, 404, "no keys under \"%.*s\"", SHOWN(rc->name + 1, 100));
			return;
		}
		evbuffer_add(out, "{\"entries\":[", 12);
		k = 0;
		for (size_t i = first; i < first + n; i++) {
			struct bcn_blob *b = bcn_cache_kv_body(bcn_cache_kv_at(c, i));
			if (!b)
				continue; /* a tombstone */
			if (k++)
				evbuffer_add(out, ",", 1);
			bcn_api_add_blob(rc, b);
			evbuffer_add(out, "}", 1);
		}
		evbuffer_add_printf(out, "],\"index\":%llu,\"stale\":%s}\n", (unsigned long long)idx,
				    stale ? "true" : "false");
		bcn_api_finish(rc, 200);
		return;
	}
	struct bcn_blob *b = bcn_cache_kv_body(bcn_cache_kv_get(c, rc->name));
	if (!b) {
		bcn_api_reply_error(rc, 404, "key \"%.*s\" not found", SHOWN(rc->name + 1, 100));
		return;
	}
	bcn_api_add_blob(rc, b);
	evbuffer_add_printf(out, ",\"index\":%llu,\"stale\":%s}\n", (unsigned long long)idx,
			    stale ? "true" : "false");
	bcn_api_finish(rc, 200);
}
