/*
 * api.c - the local HTTP/1.1 + JSON API of SPEC.md on the Unix socket, and
 * the probe-only routes of the optional TCP listener.
 *
 * The hot path is GET /v1/endpoints and /v1/pick: the path and query are
 * parsed in place without allocating, bodies come from the cache already
 * rendered and are handed to evhttp by reference, not copied. Blocking reads
 * park the request on a cache waiter plus one timer and answer from the same
 * code once either fires.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "config/config.h"
#include "secrets/secrets.h"
#include "http/server.h"
#include "base/timing.h"
#include "base/utf8.h"

#define MAX_WAIT_MS (5ULL * 60 * 1000)
#define DEFAULT_WAIT_MS (5ULL * 60 * 1000)
#define MAX_NAME 256
/* printf arguments "%.*s" for at most max bytes of s, cut between characters. */
#define SHOWN(s, max) (int)bcn_utf8_cut((s), strlen(s), (max)), (s)

struct bcn_api_wait {
	struct bcn_api_wait *next, *prev;
	struct bcn_agent *a;
	struct evhttp_request *req;
	struct event *timer;
	struct bcn_cache_wait *cw;
	struct bcn_secrets_wait *sw; /* BCN_ROUTE_SECRETS parks here instead of cw */
	struct req_ctx *rc;
};

/* Everything one request needs, parsed from its URI without allocation. */
struct req_ctx {
	struct bcn_agent *a;
	struct evhttp_request *req;
	enum bcn_route route;
	uint64_t start_us;
	bool has_tag, has_key, status_any, has_index, has_recurse;
	uint64_t index, wait_ms;
	/* Buffers last: only the fields above are zeroed per request. */
	char name[MAX_NAME];      /* service name from the path */
	char tag[MAX_NAME];
	char policy[MAX_NAME];
	char key[MAX_NAME];
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void finish(struct req_ctx *rc, int code, const char *reason)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(rc->req);
	/* Every answer carries an index; routes with their own set it earlier. */
	if (!evhttp_find_header(h, "X-Beacon-Index")) {
		char num[24];
		snprintf(num, sizeof(num), "%llu", (unsigned long long)bcn_cache_index(rc->a->core.cache));
		evhttp_add_header(h, "X-Beacon-Index", num);
	}
	bcn_metrics_request(&rc->a->metrics, rc->route, code, now_us() - rc->start_us);
	bcn_server_reply(rc->req, code, reason);
}

static const char *reason_for(int code)
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

static void set_index_headers(struct req_ctx *rc, uint64_t index, bool stale)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(rc->req);
	char num[24];
	snprintf(num, sizeof(num), "%llu", (unsigned long long)index);
	evhttp_add_header(h, "X-Beacon-Index", num);
	if (stale)
		evhttp_add_header(h, "X-Beacon-Stale", "1");
}

static void reply_error(struct req_ctx *rc, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_error(struct req_ctx *rc, int code, const char *fmt, ...)
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
	finish(rc, code, reason_for(code));
}

static void blob_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	bcn_blob_unref(arg);
}

/* Send a cached body by reference, with the trailing newline curl users expect. */
static void reply_blob(struct req_ctx *rc, struct bcn_blob *b)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(rc->req);
	if (!b) {
		reply_error(rc, 500, "out of memory");
		return;
	}
	evbuffer_add_reference(out, b->data, b->len, blob_cleanup, b);
	finish(rc, 200, "OK");
}

static void reply_json(struct req_ctx *rc, int code, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s) {
		reply_error(rc, 500, "out of memory");
		return;
	}
	evbuffer_add_printf(evhttp_request_get_output_buffer(rc->req), "%s\n", s);
	free(s);
	finish(rc, code, reason_for(code));
}

/* ---- URI parsing ----------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Percent-decode [s, s+len) into out (cap bytes). plus: '+' means space (query). */
static int decode(const char *s, size_t len, char *out, size_t cap, bool plus)
{
	size_t j = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return -1;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
			if (c == '\0')
				return -1;
		} else if (plus && c == '+') {
			c = ' ';
		}
		if (j + 1 >= cap)
			return -1;
		out[j++] = c;
	}
	out[j] = '\0';
	return 0;
}

static int parse_query(struct req_ctx *rc, const char *q)
{
	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t klen = eq ? (size_t)(eq - q) : len;
		const char *v = eq ? eq + 1 : q + len;
		size_t vlen = eq ? len - klen - 1 : 0;
		char val[MAX_NAME];

		if (decode(v, vlen, val, sizeof(val), true) < 0) {
			reply_error(rc, 400, "query parameter \"%.*s\" is malformed or too long",
				    (int)bcn_utf8_cut(q, klen, 40), q);
			return -1;
		}
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(q, k, klen) == 0)
		if (KEY("tag")) {
			snprintf(rc->tag, sizeof(rc->tag), "%s", val);
			rc->has_tag = true;
		} else if (KEY("status")) {
			if (strcmp(val, "any") == 0)
				rc->status_any = true;
			else if (strcmp(val, "passing") != 0) {
				reply_error(rc, 400, "status must be \"passing\" or \"any\"");
				return -1;
			}
		} else if (KEY("index")) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(val, &end, 10);
			if (val[0] < '0' || val[0] > '9' || *end || errno == ERANGE) {
				reply_error(rc, 400, "index must be a non-negative integer");
				return -1;
			}
			rc->index = n;
			rc->has_index = true;
		} else if (KEY("wait")) {
			if (bcn_duration_parse(val, &rc->wait_ms) < 0) {
				reply_error(rc, 400, "wait must be a duration such as \"30s\"");
				return -1;
			}
			if (rc->wait_ms > MAX_WAIT_MS)
				rc->wait_ms = MAX_WAIT_MS;
		} else if (KEY("policy")) {
			snprintf(rc->policy, sizeof(rc->policy), "%s", val);
		} else if (KEY("key")) {
			snprintf(rc->key, sizeof(rc->key), "%s", val);
			rc->has_key = true;
		} else if (KEY("recurse")) {
			rc->has_recurse = true;
		}
		/* Other parameters are ignored, as Consul does. */
#undef KEY
		q = amp ? amp + 1 : NULL;
	}
	return 0;
}

/* ---- blocking reads ------------------------------------------------------- */

static void answer(struct req_ctx *rc);

static void wait_end(struct bcn_api_wait *w)
{
	struct bcn_agent *a = w->a;
	struct req_ctx *rc = w->rc;

	if (w->prev)
		w->prev->next = w->next;
	else
		a->waits = w->next;
	if (w->next)
		w->next->prev = w->prev;
	a->nwaits--;
	event_free(w->timer);
	bcn_cache_wait_cancel(w->cw);
	bcn_secrets_wait_cancel(w->sw);
	free(w);
	rc->has_index = false; /* answer now, whatever the index */
	answer(rc);
	free(rc);
}

static void wait_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	wait_end(arg);
}

static uint64_t kv_answer_index(struct req_ctx *rc);

static void wait_wake_cb(void *arg)
{
	struct bcn_api_wait *w = arg;
	w->cw = NULL; /* the cache freed it */
	w->sw = NULL; /* or the secret store did */
	/* KV wake-ups are for any key: keep waiting while ours did not move. */
	if (w->rc->route == BCN_ROUTE_KV && kv_answer_index(w->rc) <= w->rc->index) {
		w->cw = bcn_cache_kv_wait(w->a->core.cache, wait_wake_cb, w);
		if (w->cw)
			return;
	}
	wait_end(w);
}

/* Park rc until `service` (NULL: the service list) moves past rc->index. */
static void park(struct req_ctx *rc, const char *service)
{
	struct bcn_agent *a = rc->a;
	struct bcn_api_wait *w = calloc(1, sizeof(*w));
	struct req_ctx *copy = malloc(sizeof(*copy));
	uint64_t ms = rc->wait_ms ? rc->wait_ms : DEFAULT_WAIT_MS;

	if (!w || !copy)
		goto fail;
	*copy = *rc;
	w->a = a;
	w->req = rc->req;
	w->rc = copy;
	w->timer = evtimer_new(a->base, wait_timeout_cb, w);
	if (!w->timer)
		goto fail;
	if (rc->route == BCN_ROUTE_KV)
		w->cw = bcn_cache_kv_wait(a->core.cache, wait_wake_cb, w);
	else if (rc->route == BCN_ROUTE_SECRETS)
		w->sw = bcn_secrets_wait(service, rc->index, wait_wake_cb, w);
	else
		w->cw = bcn_cache_wait(a->core.cache, service, rc->index, wait_wake_cb, w);
	if (!w->cw && !w->sw)
		goto fail;
	bcn_timer_ms(w->timer, ms);
	w->next = a->waits;
	if (a->waits)
		a->waits->prev = w;
	a->waits = w;
	a->nwaits++;
	return;
fail:
	if (w && w->timer)
		event_free(w->timer);
	free(w);
	free(copy);
	rc->has_index = false;
	answer(rc);
}

void bcn_api_release_waits(struct bcn_agent *a)
{
	while (a->waits)
		wait_end(a->waits);
}

/* Hold the request when the client's index is current; answer otherwise.
 * An index ahead of ours (the agent restarted) is answered at once, so a
 * client never waits a full period for an index this agent never had. */
static bool should_park(const struct req_ctx *rc, uint64_t current)
{
	return rc->has_index && rc->index == current;
}

/* ---- routes --------------------------------------------------------------- */

static void route_services(struct req_ctx *rc)
{
	struct bcn_cache *c = rc->a->core.cache;
	uint64_t idx = bcn_cache_index(c);

	if (should_park(rc, idx)) {
		park(rc, NULL);
		return;
	}
	set_index_headers(rc, idx, false);
	reply_blob(rc, bcn_cache_services_body(c));
}

static void reply_filtered(struct req_ctx *rc, struct bcn_service *s)
{
	const struct bcn_endpoint *const *v;
	struct evbuffer *out = evhttp_request_get_output_buffer(rc->req);
	size_t n, k = 0;
	char *name;

	v = rc->status_any ? bcn_service_endpoints(s, &n) : bcn_service_passing(s, &n);
	{
		json_t *js = json_string(bcn_service_name(s));
		name = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
		json_decref(js);
	}
	evbuffer_add_printf(out, "{\"service\":%s,\"index\":%llu,\"stale\":%s,\"endpoints\":[",
			    name ? name : "\"\"", (unsigned long long)bcn_service_index(s),
			    bcn_service_stale(s) ? "true" : "false");
	free(name);
	for (size_t i = 0; i < n; i++) {
		if (!bcn_endpoint_has_tag(v[i], rc->tag))
			continue;
		if (k++)
			evbuffer_add(out, ",", 1);
		evbuffer_add(out, v[i]->json, v[i]->json_len);
	}
	evbuffer_add(out, "]}\n", 3);
	finish(rc, 200, "OK");
}

static void route_endpoints(struct req_ctx *rc)
{
	struct bcn_service *s = bcn_cache_find(rc->a->core.cache, rc->name);

	if (!s) {
		reply_error(rc, 404, "service \"%.*s\" is not known to this agent (add it to watch.services or static.services)", SHOWN(rc->name, 100));
		return;
	}
	if (should_park(rc, bcn_service_index(s))) {
		park(rc, rc->name);
		return;
	}
	set_index_headers(rc, bcn_service_index(s), bcn_service_stale(s));
	if (rc->has_tag)
		reply_filtered(rc, s);
	else
		reply_blob(rc, bcn_service_body(s, !rc->status_any));
}

static void route_pick(struct req_ctx *rc)
{
	struct bcn_service *s = bcn_cache_find(rc->a->core.cache, rc->name);
	enum bcn_pick_policy policy;
	const struct bcn_endpoint *const *v;
	size_t n;
	ssize_t i;

	if (bcn_pick_policy_parse(rc->policy, &policy) < 0) {
		reply_error(rc, 400, "unknown policy \"%.*s\" (use round_robin, random, weighted or hash)",
			    SHOWN(rc->policy, 40));
		return;
	}
	if (policy == BCN_PICK_HASH && !rc->has_key) {
		reply_error(rc, 400, "policy \"hash\" needs a key parameter");
		return;
	}
	if (!s) {
		reply_error(rc, 404, "service \"%.*s\" is not known to this agent (add it to watch.services or static.services)", SHOWN(rc->name, 100));
		return;
	}
	set_index_headers(rc, bcn_service_index(s), bcn_service_stale(s));
	v = bcn_service_passing(s, &n);
	i = bcn_pick(bcn_service_pick_state(s), policy, v, n, rc->has_key ? rc->key : NULL);
	if (i < 0) {
		reply_error(rc, 503, "no passing endpoint of service \"%.*s\"", SHOWN(rc->name, 100));
		return;
	}
	struct evbuffer *out = evhttp_request_get_output_buffer(rc->req);
	evbuffer_add(out, v[i]->json, v[i]->json_len);
	evbuffer_add(out, "\n", 1);
	finish(rc, 200, "OK");
}

/* ---- /v1/kv ---------------------------------------------------------------- */

/* The stored key is the URL's key with a leading '/': /v1/kv/config/x -> /config/x. */
static uint64_t kv_answer_index(struct req_ctx *rc)
{
	return bcn_cache_kv_index(rc->a->core.cache, rc->name, rc->has_recurse);
}

static void route_kv(struct req_ctx *rc)
{
	struct bcn_cache *c = rc->a->core.cache;
	struct evbuffer *out = evhttp_request_get_output_buffer(rc->req);
	uint64_t idx;
	bool stale;

	if (!bcn_cache_kv_watched(c, rc->name)) {
		/* A recursive read of a parent of watched prefixes is fine too. */
		size_t first;
		if (!rc->has_recurse || bcn_cache_kv_range(c, rc->name, &first) == 0) {
			reply_error(rc, 404, "key \"%.*s\" is not under a watched prefix (see watch.kv)", SHOWN(rc->name + 1, 100));
			return;
		}
	}
	idx = kv_answer_index(rc);
	if (should_park(rc, idx) || (rc->has_index && rc->index > idx && rc->index <= bcn_cache_index(c))) {
		park(rc, NULL);
		return;
	}
	stale = bcn_cache_kv_stale(c, rc->name);
	set_index_headers(rc, idx, stale);
	/* Each entry's {"key":..,"value":.. is rendered once per change (cache_kv.c)
	 * and sent by reference; only the few bytes around it are written here. */
	if (rc->has_recurse) {
		size_t first, n = bcn_cache_kv_range(c, rc->name, &first), k = 0;
		for (size_t i = first; i < first + n; i++)
			k += bcn_cache_kv_at(c, i)->value != NULL;
		if (k == 0) {
			reply_error(rc, 404, "no keys under \"%.*s\"", SHOWN(rc->name + 1, 100));
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
			evbuffer_add_reference(out, b->data, b->len, blob_cleanup, b);
			evbuffer_add(out, "}", 1);
		}
		evbuffer_add_printf(out, "],\"index\":%llu,\"stale\":%s}\n", (unsigned long long)idx,
				    stale ? "true" : "false");
		finish(rc, 200, "OK");
		return;
	}
	struct bcn_blob *b = bcn_cache_kv_body(bcn_cache_kv_get(c, rc->name));
	if (!b) {
		reply_error(rc, 404, "key \"%.*s\" not found", SHOWN(rc->name + 1, 100));
		return;
	}
	evbuffer_add_reference(out, b->data, b->len, blob_cleanup, b);
	evbuffer_add_printf(out, ",\"index\":%llu,\"stale\":%s}\n", (unsigned long long)idx,
			    stale ? "true" : "false");
	finish(rc, 200, "OK");
}

/* The handler lives in api_secrets.c; 0 means park until the secret changes. */
static void route_secrets(struct req_ctx *rc)
{
	int code = bcn_api_secret(rc->req, rc->name, rc->has_index, rc->index);

	if (code == 0)
		park(rc, rc->name);
	else
		finish(rc, code, reason_for(code));
}

static void route_self(struct req_ctx *rc)
{
	set_index_headers(rc, bcn_cache_index(rc->a->core.cache), false);
	reply_json(rc, 200, bcn_agent_self(rc->a));
}

static void route_drain(struct req_ctx *rc, bool drain)
{
	bcn_agent_drain(rc->a, drain);
	set_index_headers(rc, bcn_cache_index(rc->a->core.cache), false);
	reply_json(rc, 200, json_pack("{sb}", "drained", drain));
}

static void route_health(struct req_ctx *rc)
{
	reply_json(rc, 200, json_pack("{ss}", "status", "ok"));
}

static void route_ready(struct req_ctx *rc)
{
	char why[256];
	if (bcn_agent_ready(rc->a, why, sizeof(why)))
		reply_json(rc, 200, json_pack("{sb}", "ready", 1));
	else
		/* why may quote a backend's words, cut at 256 bytes: keep it JSON. */
		reply_json(rc, 503, json_pack("{sbso}", "ready", 0, "reason", bcn_json_text(why, strlen(why))));
}

static void route_metrics(struct req_ctx *rc);

/* ---- router --------------------------------------------------------------- */

/* Match "/v1/<word>/" prefix; returns the rest (the name) or NULL. */
static const char *after(const char *path, size_t plen, const char *prefix)
{
	size_t l = strlen(prefix);
	return plen >= l && memcmp(path, prefix, l) == 0 ? path + l : NULL;
}

static void answer(struct req_ctx *rc)
{
	switch (rc->route) {
	case BCN_ROUTE_SERVICES:  route_services(rc); break;
	case BCN_ROUTE_ENDPOINTS: route_endpoints(rc); break;
	case BCN_ROUTE_KV:        route_kv(rc); break;
	case BCN_ROUTE_SECRETS:   route_secrets(rc); break;
	default: reply_error(rc, 500, "internal routing error"); break;
	}
}

/* HEAD is GET without the body wherever GET is allowed (bcn_server_reply drops it). */
static bool method_ok(struct req_ctx *rc, enum evhttp_cmd_type want)
{
	enum evhttp_cmd_type got = evhttp_request_get_command(rc->req);

	if (got == want || (want == EVHTTP_REQ_GET && got == EVHTTP_REQ_HEAD))
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(rc->req), "Allow",
			  want == EVHTTP_REQ_GET ? "GET, HEAD" : "POST");
	reply_error(rc, 405, "method not allowed here (use %s)", want == EVHTTP_REQ_GET ? "GET" : "POST");
	return false;
}

static void route(struct evhttp_request *req, struct bcn_agent *a, bool probe_only)
{
	struct req_ctx rc;
	const char *uri = evhttp_request_get_uri(req);
	const char *q = strchr(uri, '?');
	size_t plen = q ? (size_t)(q - uri) : strlen(uri);
	const char *rest;

	memset(&rc, 0, offsetof(struct req_ctx, name));
	rc.name[0] = rc.tag[0] = rc.policy[0] = rc.key[0] = '\0';
	rc.a = a;
	rc.req = req;
	rc.start_us = now_us();
	rc.route = BCN_ROUTE_OTHER;

	if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > 0 &&
	    (evhttp_request_get_command(req) == EVHTTP_REQ_GET ||
	     evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)) {
		reply_error(&rc, 400, "a GET request carries no body");
		return;
	}
#define IS(p) (plen == sizeof(p) - 1 && memcmp(uri, p, plen) == 0)
	if (IS("/health"))
		rc.route = BCN_ROUTE_HEALTH;
	else if (IS("/ready"))
		rc.route = BCN_ROUTE_READY;
	else if (IS("/metrics"))
		rc.route = BCN_ROUTE_METRICS;
	else if (probe_only)
		rc.route = BCN_ROUTE_OTHER;
	else if (IS("/v1/services"))
		rc.route = BCN_ROUTE_SERVICES;
	else if (IS("/v1/self"))
		rc.route = BCN_ROUTE_SELF;
	else if (IS("/v1/self/drain"))
		rc.route = BCN_ROUTE_DRAIN;
	else if (IS("/v1/self/resume"))
		rc.route = BCN_ROUTE_RESUME;
	else if ((rest = after(uri, plen, "/v1/endpoints/")) != NULL)
		rc.route = BCN_ROUTE_ENDPOINTS;
	else if ((rest = after(uri, plen, "/v1/pick/")) != NULL)
		rc.route = BCN_ROUTE_PICK;
	else if ((rest = after(uri, plen, "/v1/kv/")) != NULL || ((rest = uri + plen), IS("/v1/kv")))
		rc.route = BCN_ROUTE_KV;
	else if ((rest = after(uri, plen, "/v1/secrets/")) != NULL)
		rc.route = BCN_ROUTE_SECRETS;
#undef IS

	if (rc.route == BCN_ROUTE_ENDPOINTS || rc.route == BCN_ROUTE_PICK || rc.route == BCN_ROUTE_SECRETS) {
		size_t nlen = plen - (size_t)(rest - uri);
		if (nlen == 0 || memchr(rest, '/', nlen) ||
		    decode(rest, nlen, rc.name, sizeof(rc.name), false) < 0) {
			reply_error(&rc, 400, "expected a %s name after %.*s",
				    rc.route == BCN_ROUTE_SECRETS ? "secret" : "service", (int)(rest - uri), uri);
			return;
		}
	}
	if (rc.route == BCN_ROUTE_KV) {
		size_t nlen = plen - (size_t)(rest - uri);
		rc.name[0] = '/';
		if (decode(rest, nlen, rc.name + 1, sizeof(rc.name) - 1, false) < 0) {
			reply_error(&rc, 400, "the key is malformed or longer than %d bytes", MAX_NAME - 2);
			return;
		}
	}
	if (parse_query(&rc, q ? q + 1 : NULL) < 0)
		return;

	switch (rc.route) {
	case BCN_ROUTE_HEALTH:
		if (method_ok(&rc, EVHTTP_REQ_GET))
			route_health(&rc);
		break;
	case BCN_ROUTE_READY:
		if (method_ok(&rc, EVHTTP_REQ_GET))
			route_ready(&rc);
		break;
	case BCN_ROUTE_METRICS:
		if (method_ok(&rc, EVHTTP_REQ_GET))
			route_metrics(&rc);
		break;
	case BCN_ROUTE_SERVICES:
	case BCN_ROUTE_ENDPOINTS:
		if (method_ok(&rc, EVHTTP_REQ_GET))
			answer(&rc);
		break;
	case BCN_ROUTE_PICK:
		if (method_ok(&rc, EVHTTP_REQ_GET))
			route_pick(&rc);
		break;
	case BCN_ROUTE_SELF:
		if (method_ok(&rc, EVHTTP_REQ_GET))
			route_self(&rc);
		break;
	case BCN_ROUTE_DRAIN:
	case BCN_ROUTE_RESUME:
		if (method_ok(&rc, EVHTTP_REQ_POST))
			route_drain(&rc, rc.route == BCN_ROUTE_DRAIN);
		break;
	case BCN_ROUTE_KV:
		if (method_ok(&rc, EVHTTP_REQ_GET))
			answer(&rc);
		break;
	case BCN_ROUTE_SECRETS:
		if (method_ok(&rc, EVHTTP_REQ_GET))
			answer(&rc);
		break;
	default:
		reply_error(&rc, 404, "no such route: %.*s", SHOWN(uri, 100));
		break;
	}
}

void bcn_api_handle(struct evhttp_request *req, void *agent)
{
	route(req, agent, false);
}

void bcn_api_handle_probe(struct evhttp_request *req, void *agent)
{
	route(req, agent, true);
}

/* ---- /metrics ------------------------------------------------------------- */

static void route_metrics(struct req_ctx *rc)
{
	struct bcn_agent *a = rc->a;
	struct evbuffer *out = evhttp_request_get_output_buffer(rc->req);
	struct bcn_service *s;
	char why[8];

	evhttp_add_header(evhttp_request_get_output_headers(rc->req), "Content-Type",
			  "text/plain; version=0.0.4");
	bcn_metrics_render(&a->metrics, out);
	evbuffer_add_printf(out, "# HELP beacon_build_info Version and compiled-in plugins.\n"
			    "# TYPE beacon_build_info gauge\nbeacon_build_info{version=\"%s\",plugins=\"",
			    BCN_VERSION);
	for (size_t i = 0; bcn_plugins[i]; i++)
		evbuffer_add_printf(out, "%s%s", i ? "," : "", bcn_plugins[i]->name);
	evbuffer_add_printf(out, "\"} 1\n");
	evbuffer_add_printf(out, "# HELP beacon_endpoints Endpoints known per service and status.\n"
			    "# TYPE beacon_endpoints gauge\n");
	for (size_t i = 0; (s = bcn_cache_service_at(a->core.cache, i)) != NULL; i++) {
		size_t all = bcn_service_count(s, false), pass = bcn_service_count(s, true);
		/* Service names come from config or registries: keep label values safe. */
		char name[MAX_NAME];
		size_t j = 0;
		for (const char *p = bcn_service_name(s); *p && j + 2 < sizeof(name); p++) {
			if (*p == '"' || *p == '\\')
				name[j++] = '\\';
			name[j++] = *p == '\n' ? ' ' : *p;
		}
		name[j] = '\0';
		evbuffer_add_printf(out, "beacon_endpoints{service=\"%s\",status=\"passing\"} %zu\n"
				    "beacon_endpoints{service=\"%s\",status=\"not_passing\"} %zu\n",
				    name, pass, name, all - pass);
	}
	evbuffer_add_printf(out,
		"# HELP beacon_index Current discovery index.\n# TYPE beacon_index gauge\nbeacon_index %llu\n"
		"# HELP beacon_ready 1 when /ready answers 200.\n# TYPE beacon_ready gauge\nbeacon_ready %d\n"
		"# HELP beacon_connections Open local API connections.\n# TYPE beacon_connections gauge\nbeacon_connections %d\n"
		"# HELP beacon_connection_limit_hits_total Times the connection limit stopped accepting.\n"
		"# TYPE beacon_connection_limit_hits_total counter\nbeacon_connection_limit_hits_total %llu\n"
		"# HELP beacon_blocking_queries Blocking reads being held.\n# TYPE beacon_blocking_queries gauge\nbeacon_blocking_queries %zu\n"
		"# HELP beacon_http_client_requests Backend requests in flight.\n# TYPE beacon_http_client_requests gauge\nbeacon_http_client_requests %zu\n",
		(unsigned long long)bcn_cache_index(a->core.cache), bcn_agent_ready(a, why, sizeof(why)) ? 1 : 0,
		bcn_server_connections(a->sock), (unsigned long long)bcn_server_rejected(a->sock),
		a->nwaits, a->core.http ? bcn_http_active(a->core.http) : 0);
	evbuffer_add_printf(out, "# HELP beacon_backend_up 1 when a backend instance is synced/ready.\n"
			    "# TYPE beacon_backend_up gauge\n");
	for (size_t i = 0; i < a->nins; i++)
		evbuffer_add_printf(out, "beacon_backend_up{instance=\"%s\"} %d\n", a->ins[i].name,
				    a->ins[i].ready ? 1 : 0);
	finish(rc, 200, "OK");
}
