/*
 * router.c - the socket API's route table, its dispatch, and the reply
 * helpers every route answers with.
 *
 * Routes are rows (as Redis commands.def, nginx ngx_command_t): method,
 * exact path or prefix, whether the TCP probe listener may serve it, and
 * the handler. The order of the checks is part of the contract (tests pin
 * it): a GET with a body is refused first, then the path picks a row, the
 * name after a prefix is decoded, the query is parsed, the method is checked
 * (405 with Allow), and only then does the handler run. HEAD is GET without
 * the body wherever GET is allowed (the server drops it).
 *
 * Adding a route: one row below and one handler (void f(struct bcn_req *))
 * declared in api_internal.h. A handler answers with the helpers of this
 * file: bcn_api_reply_json (a jansson object), bcn_api_reply_blob (a cached
 * body by reference), bcn_api_reply_error (a JSON error sentence), or by
 * writing into bcn_hreq_body(rc->req) and calling bcn_api_finish; extra
 * headers go through bcn_hreq_header (http/server.h).
 *
 * The hot path is GET /v1/endpoints and /v1/pick: the path and query are
 * parsed in place without allocating, bodies come from the cache already
 * rendered (once per change) and are handed to the server by reference,
 * not copied.
 */
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/api_internal.h"
#include "base/timing.h"
#include "http/server.h"
#include "store/cache.h"

enum {
	PROBE = 1,  /* also served on the TCP probe listener */
	PREFIX = 2, /* path is a prefix; what follows is the name */
	NAME = 4,   /* the name is one non-empty path segment (service, secret) */
	KEY = 8,    /* the name is a KV key: "/" + the rest, maybe empty */
};

struct route {
	enum bcn_route id;
	enum bcn_method method;      /* GET also answers HEAD */
	const char *path;
	size_t len;                  /* strlen(path), kept so the hot path does not count */
	unsigned flags;
	bcn_api_handler handler;
};

#define P(path) path, sizeof(path) - 1

/* First match wins. */
static const struct route routes[] = {
	{ BCN_ROUTE_HEALTH,    BCN_M_GET,  P("/health"),         PROBE,         bcn_api_health },
	{ BCN_ROUTE_READY,     BCN_M_GET,  P("/ready"),          PROBE,         bcn_api_ready },
	{ BCN_ROUTE_METRICS,   BCN_M_GET,  P("/metrics"),        PROBE,         bcn_api_metrics },
	{ BCN_ROUTE_SERVICES,  BCN_M_GET,  P("/v1/services"),    0,             bcn_api_services },
	{ BCN_ROUTE_SELF,      BCN_M_GET,  P("/v1/self"),        0,             bcn_api_self },
	{ BCN_ROUTE_PROXIES,   BCN_M_GET,  P("/v1/proxies"),     0,             bcn_api_proxies },
	{ BCN_ROUTE_DRAIN,     BCN_M_POST, P("/v1/self/drain"),  0,             bcn_api_drain },
	{ BCN_ROUTE_RESUME,    BCN_M_POST, P("/v1/self/resume"), 0,             bcn_api_resume },
	{ BCN_ROUTE_ENDPOINTS, BCN_M_GET,  P("/v1/endpoints/"),  PREFIX | NAME, bcn_api_endpoints },
	{ BCN_ROUTE_PICK,      BCN_M_GET,  P("/v1/pick/"),       PREFIX | NAME, bcn_api_pick },
	{ BCN_ROUTE_KV,        BCN_M_GET,  P("/v1/kv/"),         PREFIX | KEY,  bcn_api_kv },
	{ BCN_ROUTE_KV,        BCN_M_GET,  P("/v1/kv"),          KEY,           bcn_api_kv },
	{ BCN_ROUTE_SECRETS,   BCN_M_GET,  P("/v1/secrets/"),    PREFIX | NAME, bcn_api_secret },
};
#undef P

/* ---- replies --------------------------------------------------------------- */

void bcn_api_finish(struct bcn_req *rc, int code)
{
	/* Every answer carries an index; routes with their own set it earlier. */
	if (!rc->index_set)
		bcn_api_set_index(rc, bcn_cache_index(rc->api->cache), false);
	bcn_metrics_request(&rc->api->metrics, rc->route, code, bcn_now_us() - rc->start_us);
	bcn_hreq_reply(rc->req, code);
}

void bcn_api_set_index(struct bcn_req *rc, uint64_t index, bool stale)
{
	char num[24];
	snprintf(num, sizeof(num), "%llu", (unsigned long long)index);
	bcn_hreq_header(rc->req, "X-Beacon-Index", num);
	if (stale)
		bcn_hreq_header(rc->req, "X-Beacon-Stale", "1");
	rc->index_set = true;
}

void bcn_api_reply_error(struct bcn_req *rc, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	size_t n;
	json_t *o;
	char *s;
	struct evbuffer *out;

	va_start(ap, fmt);
	n = bcn_utf8_vformat(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Names in messages are bytes from the URL or a registry: keep the body JSON. */
	o = json_pack("{so}", "error", bcn_json_text(msg, n));
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	out = bcn_hreq_body(rc->req);
	evbuffer_drain(out, evbuffer_get_length(out)); /* whatever the handler began */
	evbuffer_add_printf(out, "%s\n", s ? s : "{}");
	free(s);
	json_decref(o);
	bcn_api_finish(rc, code);
}

static void blob_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	bcn_blob_unref(arg);
}

void bcn_api_add_blob(struct bcn_req *rc, struct bcn_blob *b)
{
	evbuffer_add_reference(bcn_hreq_body(rc->req), b->data, b->len,
			       blob_cleanup, b);
}

/* Send a cached body by reference, with the trailing newline curl users expect. */
void bcn_api_reply_blob(struct bcn_req *rc, struct bcn_blob *b)
{
	if (!b) {
		bcn_api_reply_error(rc, 500, "out of memory");
		return;
	}
	bcn_api_add_blob(rc, b);
	bcn_api_finish(rc, 200);
}

void bcn_api_reply_json(struct bcn_req *rc, int code, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s) {
		bcn_api_reply_error(rc, 500, "out of memory");
		return;
	}
	evbuffer_add(bcn_hreq_body(rc->req), s, strlen(s));
	evbuffer_add(bcn_hreq_body(rc->req), "\n", 1);
	free(s);
	bcn_api_finish(rc, code);
}

/* ---- dispatch -------------------------------------------------------------- */

static const struct route *match(const char *uri, size_t plen, bool probe_only)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *r = &routes[i];

		if (probe_only && !(r->flags & PROBE))
			continue;
		if ((r->flags & PREFIX ? plen >= r->len : plen == r->len) && memcmp(uri, r->path, r->len) == 0)
			return r;
	}
	return NULL;
}

static bool method_ok(struct bcn_req *rc, enum bcn_method want)
{
	enum bcn_method got = bcn_hreq_method(rc->req);

	if (got == want || (want == BCN_M_GET && got == BCN_M_HEAD))
		return true;
	bcn_hreq_header(rc->req, "Allow", want == BCN_M_GET ? "GET, HEAD" : "POST");
	bcn_api_reply_error(rc, 405, "method not allowed here (use %s)",
			    want == BCN_M_GET ? "GET" : "POST");
	return false;
}

static void route(struct bcn_hreq *req, struct bcn_api *api, bool probe_only)
{
	struct bcn_req rc;
	size_t ulen, blen;
	const char *uri = bcn_hreq_target(req, &ulen);
	const char *q = memchr(uri, '?', ulen);
	size_t plen = q ? (size_t)(q - uri) : ulen;
	enum bcn_method m = bcn_hreq_method(req);
	const struct route *r;
	char err[512];

	rc.api = api;
	rc.req = req;
	rc.start_us = bcn_now_us();
	rc.index_set = false;
	rc.route = BCN_ROUTE_OTHER;
	rc.handler = NULL;
	rc.name[0] = '\0';

	bcn_hreq_body_in(req, &blen);
	if (blen > 0 && (m == BCN_M_GET || m == BCN_M_HEAD)) {
		memset(&rc.q, 0, offsetof(struct bcn_query, tag));
		bcn_api_reply_error(&rc, 400, "a GET request carries no body");
		return;
	}
	r = match(uri, plen, probe_only);
	if (r) {
		const char *rest = uri + r->len;
		size_t nlen = plen - r->len;

		rc.route = r->id;
		rc.handler = r->handler;
		if ((r->flags & NAME) &&
		    (nlen == 0 || memchr(rest, '/', nlen) ||
		     bcn_api_decode(rest, nlen, rc.name, sizeof(rc.name), false) < 0)) {
			bcn_api_reply_error(&rc, 400, "expected a %s name after %.*s",
					    r->id == BCN_ROUTE_SECRETS ? "secret" : "service",
					    (int)(rest - uri), uri);
			return;
		}
		if (r->flags & KEY) {
			/* The stored key is the URL's with a leading '/': /v1/kv/config/x -> /config/x. */
			rc.name[0] = '/';
			if (bcn_api_decode(rest, nlen, rc.name + 1, sizeof(rc.name) - 1, false) < 0) {
				bcn_api_reply_error(&rc, 400, "the key is malformed or longer than %d bytes",
						    BCN_API_MAX_NAME - 2);
				return;
			}
		}
	}
	if (bcn_api_parse_query(q ? q + 1 : NULL, &rc.q, err, sizeof(err)) < 0) {
		bcn_api_reply_error(&rc, 400, "%s", err);
		return;
	}
	if (!r) {
		bcn_api_reply_error(&rc, 404, "no such route: %.*s", SHOWN(uri, 100));
		return;
	}
	if (method_ok(&rc, r->method))
		r->handler(&rc);
}

void bcn_api_handle(struct bcn_hreq *req, void *api)
{
	route(req, api, false);
}

void bcn_api_handle_probe(struct bcn_hreq *req, void *api)
{
	route(req, api, true);
}
