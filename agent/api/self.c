/*
 * self.c - the routes about this agent rather than the store: /health,
 * /ready (both on the TCP probe listener too), GET /v1/self and POST
 * /v1/self/drain and /resume. What they report is the daemon's, asked for
 * through the callbacks of struct bcn_api.
 */
#include "api/api_internal.h"
#include "store/cache.h"

void bcn_api_health(struct bcn_req *rc)
{
	bcn_api_reply_json(rc, 200, json_pack("{ss}", "status", "ok"));
}

void bcn_api_ready(struct bcn_req *rc)
{
	char why[256];

	if (rc->api->ready(rc->api->owner, why, sizeof(why)))
		bcn_api_reply_json(rc, 200, json_pack("{sb}", "ready", 1));
	else
		/* why may quote a backend's words, cut at 256 bytes: keep it JSON. */
		bcn_api_reply_json(rc, 503, json_pack("{sbso}", "ready", 0, "reason",
						      bcn_json_text(why, strlen(why))));
}

void bcn_api_self(struct bcn_req *rc)
{
	bcn_api_set_index(rc, bcn_cache_index(rc->api->cache), false);
	bcn_api_reply_json(rc, 200, rc->api->self(rc->api->owner));
}

static void drain(struct bcn_req *rc, bool drain)
{
	rc->api->drain(rc->api->owner, drain);
	bcn_api_set_index(rc, bcn_cache_index(rc->api->cache), false);
	bcn_api_reply_json(rc, 200, json_pack("{sb}", "drained", drain));
}

void bcn_api_drain(struct bcn_req *rc)
{
	drain(rc, true);
}

void bcn_api_resume(struct bcn_req *rc)
{
	drain(rc, false);
}
