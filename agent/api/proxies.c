/*
 * proxies.c - GET /v1/proxies: the local proxies' connections, failures,
 * ejections and bytes, per proxy and upstream (SPEC "Local proxies").
 * The proxies sit beside the API on layer 4, so the object comes through
 * the agent's callback in struct bcn_api; without proxies the list is empty.
 */
#include "api/api_internal.h"
#include "store/cache.h"

void bcn_api_proxies(struct bcn_req *rc)
{
	json_t *o = rc->api->proxies ? rc->api->proxies(rc->api->owner)
				     : json_pack("{s[]}", "proxies");

	bcn_api_set_index(rc, bcn_cache_index(rc->api->cache), false);
	bcn_api_reply_json(rc, 200, o);
}
