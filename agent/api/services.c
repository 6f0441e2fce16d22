/*
 * services.c - the discovery routes: GET /v1/services, /v1/endpoints/{service}
 * (blocking with ?index) and /v1/pick/{service}. Bodies come from the cache
 * (store/cache.h renders every endpoint list, the ?tag filtered ones too)
 * and go out by reference.
 */
#include <event2/buffer.h>

#include "api/api_internal.h"
#include "http/server.h"
#include "store/cache.h"

#define NOT_KNOWN "service \"%.*s\" is not known to this agent (add it to watch.services or static.services)"

void bcn_api_services(struct bcn_req *rc)
{
	struct bcn_cache *c = rc->api->cache;
	uint64_t idx = bcn_cache_index(c);

	if (bcn_api_should_park(rc, idx)) {
		bcn_api_park(rc, bcn_cache_waits(c), BCN_CACHE_Q_SERVICES, "");
		return;
	}
	bcn_api_set_index(rc, idx, false);
	bcn_api_reply_blob(rc, bcn_cache_services_body(c));
}

void bcn_api_endpoints(struct bcn_req *rc)
{
	struct bcn_cache *c = rc->api->cache;
	struct bcn_service *s = bcn_cache_find(c, rc->name);

	if (!s) {
		bcn_api_reply_error(rc, 404, NOT_KNOWN, SHOWN(rc->name, 100));
		return;
	}
	if (bcn_api_should_park(rc, bcn_service_index(s))) {
		bcn_api_park(rc, bcn_cache_waits(c), BCN_CACHE_Q_SERVICE, rc->name);
		return;
	}
	bcn_api_set_index(rc, bcn_service_index(s), bcn_service_stale(s));
	bcn_api_reply_blob(rc, bcn_service_render(s, !rc->q.status_any, rc->q.has_tag ? rc->q.tag : NULL));
}

void bcn_api_pick(struct bcn_req *rc)
{
	struct bcn_service *s = bcn_cache_find(rc->api->cache, rc->name);
	enum bcn_pick_policy policy;
	const struct bcn_endpoint *const *v;
	struct evbuffer *out;
	size_t n;
	ssize_t i;

	if (bcn_pick_policy_parse(rc->q.policy, &policy) < 0) {
		bcn_api_reply_error(rc, 400, "unknown policy \"%.*s\" (use round_robin, random, weighted or hash)",
				    SHOWN(rc->q.policy, 40));
		return;
	}
	if (policy == BCN_PICK_HASH && !rc->q.has_key) {
		bcn_api_reply_error(rc, 400, "policy \"hash\" needs a key parameter");
		return;
	}
	if (!s) {
		bcn_api_reply_error(rc, 404, NOT_KNOWN, SHOWN(rc->name, 100));
		return;
	}
	bcn_api_set_index(rc, bcn_service_index(s), bcn_service_stale(s));
	v = bcn_service_passing(s, &n);
	i = bcn_pick(bcn_service_pick_state(s), policy, v, n, rc->q.has_key ? rc->q.key : NULL);
	if (i < 0) {
		bcn_api_reply_error(rc, 503, "no passing endpoint of service \"%.*s\"", SHOWN(rc->name, 100));
		return;
	}
	out = bcn_hreq_body(rc->req);
	evbuffer_add(out, v[i]->json, v[i]->json_len);
	evbuffer_add(out, "\n", 1);
	bcn_api_finish(rc, 200);
}
