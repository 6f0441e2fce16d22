/*
 * api_internal.h - what the files of agent/api/ share: one request's parsed
 * form, the reply helpers (router.c), the query parser (query.c), parking
 * (waits.c) and the route handlers (services.c, kv.c, secrets.c, self.c,
 * metrics.c). Not for use outside agent/api/.
 */
#ifndef BCN_API_INTERNAL_H
#define BCN_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/api.h"
#include "base/utf8.h"

struct bcn_blob;
struct bcn_waits;

#define BCN_API_MAX_NAME 256
#define BCN_API_MAX_WAIT_MS (5ULL * 60 * 1000)
#define BCN_API_DEFAULT_WAIT_MS (5ULL * 60 * 1000)
/* printf arguments "%.*s" for at most max bytes of s, cut between characters. */
#define SHOWN(s, max) (int)bcn_utf8_cut((s), strlen(s), (max)), (s)

/* The query parameters SPEC gives meaning to; others are ignored, as Consul does. */
struct bcn_query {
	bool has_tag, has_key, status_any, has_index, has_recurse;
	uint64_t index, wait_ms;
	/* Buffers last: only the fields above are zeroed per request. */
	char tag[BCN_API_MAX_NAME];
	char policy[BCN_API_MAX_NAME];
	char key[BCN_API_MAX_NAME];
};

struct bcn_req;
typedef void (*bcn_api_handler)(struct bcn_req *rc);

/* Everything one request needs, parsed from its URI without allocation. */
struct bcn_req {
	struct bcn_api *api;
	struct bcn_hreq *req;        /* http/server.h: the request and its answer */
	enum bcn_route route;
	bcn_api_handler handler;
	uint64_t start_us;
	bool index_set;              /* X-Beacon-Index is among the answer's headers */
	struct bcn_query q;
	char name[BCN_API_MAX_NAME]; /* from the path: service, secret, or "/" + KV key */
};

/* ---- query.c ---- */

/* Percent-decode [s, s+len) into out (cap bytes, NUL-terminated); plus: '+'
 * means space (a query). -1 on a bad escape, an encoded NUL, or no room. */
int bcn_api_decode(const char *s, size_t len, char *out, size_t cap, bool plus);
/* Parse the query string q (without '?'; NULL or "" for none) into out.
 * 0, or -1 with the client's error (a sentence) in err. */
int bcn_api_parse_query(const char *q, struct bcn_query *out, char *err, size_t errlen);

/* ---- router.c: replies ---- */

/* Queue the answer: X-Beacon-Index (the cache's, unless set), metrics. */
void bcn_api_finish(struct bcn_req *rc, int code);
void bcn_api_reply_error(struct bcn_req *rc, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Send a rendered body by reference (takes the reference); 500 when NULL. */
void bcn_api_reply_blob(struct bcn_req *rc, struct bcn_blob *b);
/* Send o (takes the reference) as compact JSON and a newline. */
void bcn_api_reply_json(struct bcn_req *rc, int code, json_t *o);
void bcn_api_set_index(struct bcn_req *rc, uint64_t index, bool stale);
/* Append a blob by reference to the answer body (takes the reference). */
void bcn_api_add_blob(struct bcn_req *rc, struct bcn_blob *b);

/* ---- waits.c ---- */

/* Hold the request when the client's index is current; answer otherwise.
 * An index ahead of ours (the agent restarted) is answered at once, so a
 * client never waits a full period for an index this agent never had. */
static inline bool bcn_api_should_park(const struct bcn_req *rc, uint64_t current)
{
	return rc->q.has_index && rc->q.index == current;
}
/* Park rc on queue (space, name) of ws until it moves past rc->q.index or
 * ?wait runs out; then rc->handler answers it again, whatever the index. */
void bcn_api_park(struct bcn_req *rc, struct bcn_waits *ws, unsigned space, const char *name);

/* ---- handlers ---- */

void bcn_api_services(struct bcn_req *rc);
void bcn_api_endpoints(struct bcn_req *rc);
void bcn_api_pick(struct bcn_req *rc);
void bcn_api_kv(struct bcn_req *rc);
void bcn_api_secret(struct bcn_req *rc);
void bcn_api_self(struct bcn_req *rc);
void bcn_api_drain(struct bcn_req *rc);
void bcn_api_resume(struct bcn_req *rc);
void bcn_api_health(struct bcn_req *rc);
void bcn_api_ready(struct bcn_req *rc);
void bcn_api_metrics(struct bcn_req *rc);
void bcn_api_proxies(struct bcn_req *rc);

#endif
