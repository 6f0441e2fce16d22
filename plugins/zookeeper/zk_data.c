/*
 * zk_data.c - Apache Curator's ServiceInstance JSON, both ways.
 *
 * Curator's Service Discovery stores one instance per ephemeral znode
 * <base>/<name>/<id> as Jackson's rendering of ServiceInstance:
 *
 *   {"name": "payments", "id": "p-1", "address": "10.0.0.5", "port": 8080,
 *    "sslPort": null, "payload": {...}, "registrationTimeUTC": 1700000000000,
 *    "serviceType": "DYNAMIC", "uriSpec": null, "enabled": true}
 *
 * We write the payload as a plain JSON object {"tags", "meta", "weight",
 * "status"} without Spring's "@class" type tag (SPEC.md): a tagged payload
 * breaks plain Curator clients that read payloads as a Map. We read any
 * payload: beacon's, Spring Cloud Zookeeper's ZookeeperInstance ("metadata"
 * holds string pairs, "@class" ignored), or something else (defaults: no
 * tags, no meta, weight 1, passing). "enabled": false reads as critical, so
 * the instance is not served as passing. A missing "port" falls back to
 * "sslPort".
 *
 * Every byte comes from whoever can write the base path: the data is at most
 * ZK_MAX_INSTANCE bytes of valid UTF-8 JSON (jansson rejects invalid UTF-8),
 * its "id", when present, must be the znode's name (one znode cannot pose as
 * another instance), and the endpoint fields go through bcn_endpoint_new's
 * checks. A problem skips the instance with a reason; nothing else changes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zk.h"

char *zk_instance_json(const struct bcn_endpoint *self, const char *service, uint64_t reg_time_ms)
{
	json_t *ep, *payload, *obj;
	char *out = NULL;

	if (!self)
		return NULL;
	ep = json_loadb(self->json, self->json_len, 0, NULL);
	if (!ep)
		return NULL;
	payload = json_pack("{s:O?, s:O?, s:O?, s:O?}", "tags", json_object_get(ep, "tags"),
			    "meta", json_object_get(ep, "meta"), "weight", json_object_get(ep, "weight"),
			    "status", json_object_get(ep, "status"));
	obj = json_pack("{s:s, s:s, s:s, s:i, s:n, s:o*, s:I, s:s, s:n, s:b}", "name", service,
			"id", self->id, "address", self->address, "port", (int)self->port, "sslPort",
			"payload", payload, "registrationTimeUTC", (json_int_t)reg_time_ms,
			"serviceType", "DYNAMIC", "uriSpec", "enabled", 1);
	if (obj)
		out = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	json_decref(ep);
	return out;
}

static int why(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return -1;
}

/* tags: an array of strings; meta: an object of string values. */
static int read_payload(const json_t *payload, const char **tags, size_t *ntags, json_t **meta,
			int64_t *weight, enum bcn_status *status, char *w, size_t wl)
{
	const json_t *t, *m, *v;
	size_t i;

	if (!json_is_object(payload))
		return 0; /* a payload of another shape (or none): defaults */
	t = json_object_get(payload, "tags");
	if (json_is_array(t)) {
		if (json_array_size(t) > 64)
			return why(w, wl, "its payload has more than 64 tags");
		json_array_foreach(t, i, v) {
			if (!json_is_string(v))
				return why(w, wl, "its payload's \"tags\" holds a non-string");
			tags[(*ntags)++] = json_string_value(v);
		}
	} else if (t && !json_is_null(t)) {
		return why(w, wl, "its payload's \"tags\" is not an array");
	}
	m = json_object_get(payload, "meta");
	if (!m)
		m = json_object_get(payload, "metadata"); /* Spring Cloud's ZookeeperInstance */
	if (json_is_object(m)) {
		const char *k;
		*meta = json_object();
		if (!*meta)
			return why(w, wl, "out of memory");
		json_object_foreach((json_t *)m, k, v) {
			if (json_is_string(v))
				json_object_set(*meta, k, (json_t *)v);
			/* other values (Spring allows only strings) are left out */
		}
	} else if (m && !json_is_null(m)) {
		return why(w, wl, "its payload's meta is not an object");
	}
	v = json_object_get(payload, "weight");
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		*weight = n < 1 ? 1 : n > 65535 ? 65535 : n;
	}
	v = json_object_get(payload, "status");
	if (json_is_string(v) && bcn_status_parse(json_string_value(v), status) != 0)
		return why(w, wl, "its payload's \"status\" is not passing, warning or critical");
	return 0;
}

struct bcn_endpoint *zk_parse_instance(const char *service, const char *id, const char *data,
				       size_t len, char *w, size_t wl)
{
	struct bcn_endpoint_spec s = {.service = service, .status = BCN_PASSING};
	const char *tags[64], *err = NULL;
	struct bcn_endpoint *ep = NULL;
	const json_t *jid, *port, *en;
	json_t *obj, *meta = NULL;
	json_error_t jerr;

	w[0] = '\0';
	if (len > ZK_MAX_INSTANCE) {
		why(w, wl, "its data is %zu bytes, more than the %d an instance may have", len,
		    ZK_MAX_INSTANCE);
		return NULL;
	}
	if (len == 0) {
		why(w, wl, "it holds no data (not a Curator ServiceInstance)");
		return NULL;
	}
	obj = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(obj)) {
		if (obj)
			why(w, wl, "its data is not a JSON object");
		else
			why(w, wl, "its data is not valid JSON (%s)", jerr.text);
		json_decref(obj);
		return NULL;
	}
	jid = json_object_get(obj, "id");
	port = json_object_get(obj, "port");
	if (!port || json_is_null(port))
		port = json_object_get(obj, "sslPort");
	en = json_object_get(obj, "enabled");
	if (jid && !json_is_string(jid)) {
		why(w, wl, "its \"id\" is not a string");
	} else if (jid && strcmp(json_string_value(jid), id) != 0) {
		why(w, wl, "its \"id\" is not the znode's name");
	} else if (!json_is_string(json_object_get(obj, "address"))) {
		why(w, wl, "it has no \"address\" string");
	} else if (!json_is_integer(port)) {
		why(w, wl, "it has no integer \"port\" or \"sslPort\"");
	} else if (read_payload(json_object_get(obj, "payload"), tags, &s.ntags, &meta, &s.weight,
				&s.status, w, wl) == 0) {
		s.id = id;
		s.address = json_string_value(json_object_get(obj, "address"));
		s.port = json_integer_value(port);
		s.tags = tags;
		s.meta = meta;
		if (json_is_false(en))
			s.status = BCN_CRITICAL;
		ep = bcn_endpoint_new(&s, &err);
		if (!ep)
			why(w, wl, "%s", err ? err : "invalid endpoint");
	}
	json_decref(meta);
	json_decref(obj);
	return ep;
}

void zk_skip(struct zk_ctx *ctx, const char *path, const char *fmt, ...)
{
	enum { WINDOW_MS = 10000, LINES_PER_WINDOW = 20, SHOWN = 160 };
	char msg[256], shown[SHOWN + 1];
	size_t plen = strlen(path);
	uint64_t h;
	bool cut;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Each (znode, problem) is logged once: a resync must not repeat them all. */
	h = bcn_hash64(path, plen) * 31 + bcn_hash64(msg, strlen(msg));
	if (bcn_complain_seen(ctx->skipped, sizeof(ctx->skipped) / sizeof(ctx->skipped[0]),
			      &ctx->nskipped, h))
		return;
	if (!bcn_complain_due(&ctx->skips, WINDOW_MS, LINES_PER_WINDOW, ctx->log, "skipped znodes"))
		return;
	cut = bcn_log_printable(shown, sizeof(shown), path, plen);
	bcn_warn(ctx->log, "skipping %s%s: %s", shown, cut ? "..." : "", msg);
}
