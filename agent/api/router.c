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
 * the body wherever GET is allowed (bcn_server_reply drops it).
 *
 * The hot path is GET /v1/endpoints and /v1/pick: the path and query are
 * parsed in place without allocating, bodies come from the cache already
 * rendered and are handed to evhttp by reference, not copied.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
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
	enum evhttp_cmd_type method; /* GET also answers HEAD */
	const char *path;
	size_t len;                  /* strlen(path), kept so the hot path does not count */
	unsigned flags;
	bcn_api_handler handler;
};

#define P(path) path, sizeof(path) - 1

/* First match wins. */
static const struct route routes[] = {
	{ BCN_ROUTE_HEALTH,    EVHTTP_REQ_GET,  P("/health"),         PROBE,         bcn_api_health },
	{ BCN_ROUTE_READY,     EVHTTP_REQ_GET,  P("/ready"),          PROBE,         bcn_api_ready },
	{ BCN_ROUTE_METRICS,   EVHTTP_REQ_GET,  P("/metrics"),        PROBE,         bcn_api_metrics },
	{ BCN_ROUTE_SERVICES,  EVHTTP_REQ_GET,  P("/v1/services"),    0,             bcn_api_services },
	{ BCN_ROUTE_SELF,      EVHTTP_REQ_GET,  P("/v1/self"),        0,             bcn_api_self },
	{ BCN_ROUTE_PROXIES,   EVHTTP_REQ_GET,  P("/v1/proxies"),     0,             bcn_api_proxies },
	{ BCN_ROUTE_DRAIN,     EVHTTP_REQ_POST, P("/v1/self/drain"),  0,             bcn_api_drain },
	{ BCN_ROUTE_RESUME,    EVHTTP_REQ_POST, P("/v1/self/resume"), 0,             bcn_api_resume },
	{ BCN_ROUTE_ENDPOINTS, EVHTTP_REQ_GET,  P("/v1/endpoints/"),  PREFIX | NAME, bcn_api_endpoints },
	{ BCN_ROUTE_PICK,      EVHTTP_REQ_GET,  P("/v1/pick/"),       PREFIX | NAME, bcn_api_pick },
	{ BCN_ROUTE_KV,        EVHTTP_REQ_GET,  P("/v1/kv/"),         PREFIX | KEY,  bcn_api_kv },
	{ BCN_ROUTE_KV,        EVHTTP_REQ_GET,  P("/v1/kv"),          KEY,           bcn_api_kv },
	{ BCN_ROUTE_SECRETS,   EVHTTP_REQ_GET,  P("/v1/secrets/"),    PREFIX | NAME, bcn_api_secret },
};
#undef P

/* ---- replies --------------------------------------------------------------- */

const char *bcn_api_reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 503: return "Service Unavailable";
	default:  return "Internal Server Error";
	}
}

void bcn_api_finish(struct bcn_req *rc, int code)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(rc->req);
	/* Every answer carries an index; routes with their own set it earlier. */
	if (!evhttp_find_header(h, "X-Beacon-Index")) {
		char num[24];
		snprintf(num, sizeof(num), "%llu", (unsigned long long)bcn_cache_index(rc->api->cache));
		evhttp_add_header(h, "X-Beacon-Index", num);
	}
	bcn_metrics_request(&rc->api->metrics, rc->route, code, bcn_now_us() - rc->start_us);
	bcn_server_reply(rc->req, code, bcn_api_reason(code));
}

void bcn_api_set_index(struct bcn_req *rc, uint64_t index, bool stale)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(rc->req);
	char num[24];
	snprintf(num, sizeof(num), "%llu", (unsigned long long)index);
	evhttp_add_header(h, "X-Beacon-Index", num);
	if (stale)
		evhttp_add_header(h, "X-Beacon-Stale", "1");
}

void bcn_api_reply_error(struct bcn_req *rc, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	size_t n;
	json_t *o;
	char *s;

	va_start(ap, fmt);
	n = bcn_utf8_vformat(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Names in messages are bytes from the URL or a registry: keep the body JSON. */
	o = json_pack("{so}", "error", bcn_json_text(msg, n));
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	evbuffer_add_printf(evhttp_request_get_output_buffer(rc->req), "%s\n", s ? s : "{}");
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
	evbuffer_add_reference(evhttp_request_get_output_buffer(rc->req), b->data, b->len,
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
	evbuffer_add_printf(evhttp_request_get_output_buffer(rc->req), "%s\n", s);
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

static bool method_ok(struct bcn_req *rc, enum evhttp_cmd_type want)
{
	enum evhttp_cmd_type got = evhttp_request_get_command(rc->req);

	if (got == want || (want == EVHTTP_REQ_GET && got == EVHTTP_REQ_HEAD))
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(rc->req), "Allow",
			  want == EVHTTP_REQ_GET ? "GET, HEAD" : "POST");
	bcn_api_reply_error(rc, 405, "method not allowed here (use %s)",
			    want == EVHTTP_REQ_GET ? "GET" : "POST");
	return false;
}

static void route(struct evhttp_request *req, struct bcn_api *api, bool probe_only)
{
	struct bcn_req rc;
	const char *uri = evhttp_request_get_uri(req);
	const char *q = strchr(uri, '?');
	size_t plen = q ? (size_t)(q - uri) : strlen(uri);
	const struct route *r;
	char err[512];

	rc.api = api;
	rc.req = req;
	rc.start_us = bcn_now_us();
	rc.route = BCN_ROUTE_OTHER;
	rc.handler = NULL;
	rc.name[0] = '\0';

	if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > 0 &&
	    (evhttp_request_get_command(req) == EVHTTP_REQ_GET ||
	     evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)) {
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

void bcn_api_handle(struct evhttp_request *req, void *api)
{
	route(req, api, false);
}

void bcn_api_handle_probe(struct evhttp_request *req, void *api)
{
	route(req, api, true);
}
