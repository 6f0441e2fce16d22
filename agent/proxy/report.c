/*
 * report.c - what the proxies say about themselves: the JSON of
 * GET /v1/proxies and /v1/self, and the beacon_proxy_* Prometheus lines.
 * Computed when asked (counters are plain fields bumped on the data path).
 * Endpoint ids come from registries, so they are escaped for a label value
 * and repaired into UTF-8 for JSON.
 */
#include "proxy/proxy_internal.h"

#include <event2/buffer.h>
#include <string.h>

#include "base/timing.h"
#include "base/utf8.h"

static json_t *upstream_json(const struct px_upstream *up, uint64_t now)
{
	const struct bcn_endpoint *e = up->ep;
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "id", bcn_json_text(e->id, strlen(e->id)));
	json_object_set_new(o, "address", bcn_json_text(e->address, strlen(e->address)));
	json_object_set_new(o, "port", json_integer(e->port));
	json_object_set_new(o, "weight", json_integer(e->weight));
	/* false: it left discovery and its connections are draining. */
	json_object_set_new(o, "in_discovery", json_boolean(up->listed));
	json_object_set_new(o, "ejected", json_boolean(px_ejected(up, now)));
	json_object_set_new(o, "ejected_for_ms", json_integer(px_ejected(up, now) ?
			    (json_int_t)(up->ejected_until_ms - now) : 0));
	json_object_set_new(o, "active", json_integer(up->active));
	json_object_set_new(o, "total", json_integer((json_int_t)up->total));
	json_object_set_new(o, "connect_failures", json_integer((json_int_t)up->failures));
	json_object_set_new(o, "ejections", json_integer((json_int_t)up->ejections));
	json_object_set_new(o, "bytes_to_upstream", json_integer((json_int_t)up->bytes_up));
	json_object_set_new(o, "bytes_to_client", json_integer((json_int_t)up->bytes_down));
	return o;
}

static json_t *proxy_json(const struct px_proxy *p, bool upstreams, uint64_t now)
{
	json_t *o = json_object(), *ups = upstreams ? json_array() : NULL;

	if (!o || (upstreams && !ups)) {
		json_decref(o);
		json_decref(ups);
		return NULL;
	}
	json_object_set_new(o, "listen", json_string(p->listen));
	json_object_set_new(o, "service", json_string(p->service));
	json_object_set_new(o, "tag", json_string(p->tag));
	json_object_set_new(o, "policy", json_string(px_policy_name(p->policy)));
	json_object_set_new(o, "removed", json_boolean(p->retired));
	json_object_set_new(o, "active", json_integer((json_int_t)p->active));
	json_object_set_new(o, "max_connections", json_integer((json_int_t)p->max_connections));
	json_object_set_new(o, "accepted", json_integer((json_int_t)p->accepted));
	json_object_set_new(o, "refused", json_integer((json_int_t)p->refused));
	json_object_set_new(o, "no_endpoint", json_integer((json_int_t)p->no_endpoint));
	if (!upstreams) {
		size_t listed = 0;
		for (size_t i = 0; i < p->nups; i++)
			listed += p->ups[i]->listed;
		json_object_set_new(o, "endpoints", json_integer((json_int_t)listed));
		return o;
	}
	for (size_t i = 0; i < p->nups; i++) {
		json_t *u = upstream_json(p->ups[i], now);
		if (u)
			json_array_append_new(ups, u);
	}
	json_object_set_new(o, "upstreams", ups);
	return o;
}

static json_t *list(struct bcn_proxies *ps, bool upstreams)
{
	json_t *arr = json_array();
	const struct px_proxy_list *lists[2] = { &ps->live, &ps->retired };
	uint64_t now = bcn_now_ms();
	struct px_proxy *p;

	if (!arr)
		return NULL;
	for (int k = 0; k < 2; k++) {
		LIST_FOREACH(p, lists[k], link) {
			json_t *o = proxy_json(p, upstreams, now);
			if (o)
				json_array_append_new(arr, o);
		}
	}
	return arr;
}

json_t *bcn_proxies_json(struct bcn_proxies *ps)
{
	json_t *arr = ps ? list(ps, true) : json_array();

	return arr ? json_pack("{so}", "proxies", arr) : NULL;
}

json_t *bcn_proxies_self(struct bcn_proxies *ps)
{
	return ps ? list(ps, false) : json_array();
}

/* A label value: backslash, quote and newline escaped, as the text format says. */
static void label(struct evbuffer *out, const char *s)
{
	for (const char *c = s; *c; c++) {
		if (*c == '\\' || *c == '"')
			evbuffer_add_printf(out, "\\%c", *c);
		else if (*c == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, c, 1);
	}
}

static void proxy_labels(struct evbuffer *out, const char *name, const struct px_proxy *p)
{
	evbuffer_add_printf(out, "%s{proxy=\"", name);
	label(out, p->listen);
	evbuffer_add_printf(out, "\",service=\"");
	label(out, p->service);
	evbuffer_add(out, "\"", 1);
}

static void up_line(struct evbuffer *out, const char *name, const struct px_upstream *up,
		    const char *extra, unsigned long long v)
{
	proxy_labels(out, name, up->p);
	evbuffer_add_printf(out, ",upstream=\"");
	label(out, up->ep->id);
	evbuffer_add_printf(out, "\"%s} %llu\n", extra, v);
}

struct metric { const char *name, *type, *help; };
static const struct metric per_proxy[] = {
	{ "beacon_proxy_connections", "gauge", "Relayed connections open, per proxy." },
	{ "beacon_proxy_accepted_total", "counter", "Client connections accepted, per proxy." },
	{ "beacon_proxy_refused_total", "counter", "Client connections closed at once: max_connections reached." },
	{ "beacon_proxy_no_endpoint_total", "counter", "Client connections closed at once: no endpoint to send them to." },
};
static const struct metric per_upstream[] = {
	{ "beacon_proxy_upstream_connections", "gauge", "Relayed connections open, per upstream endpoint." },
	{ "beacon_proxy_upstream_connections_total", "counter", "Connections sent to the upstream endpoint (connect attempts)." },
	{ "beacon_proxy_upstream_connect_failures_total", "counter", "Failed connects (refused, timed out) to the endpoint." },
	{ "beacon_proxy_upstream_ejections_total", "counter", "Times the endpoint was ejected by outlier detection." },
	{ "beacon_proxy_upstream_ejected", "gauge", "1 while the endpoint is ejected." },
	{ "beacon_proxy_upstream_bytes_total", "counter", "Bytes relayed, by direction (to_upstream, to_client)." },
};

void bcn_proxies_metrics(struct bcn_proxies *ps, struct evbuffer *out)
{
	const struct px_proxy_list *lists[2] = { &ps->live, &ps->retired };
	uint64_t now = bcn_now_ms();
	struct px_proxy *p;

	if (!ps || (LIST_EMPTY(&ps->live) && LIST_EMPTY(&ps->retired)))
		return;
	for (size_t m = 0; m < sizeof(per_proxy) / sizeof(per_proxy[0]); m++) {
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", per_proxy[m].name,
				    per_proxy[m].help, per_proxy[m].name, per_proxy[m].type);
		for (int k = 0; k < 2; k++) {
			LIST_FOREACH(p, lists[k], link) {
				unsigned long long v[] = { p->active, p->accepted, p->refused, p->no_endpoint };
				proxy_labels(out, per_proxy[m].name, p);
				evbuffer_add_printf(out, "} %llu\n", v[m]);
			}
		}
	}
	for (size_t m = 0; m < sizeof(per_upstream) / sizeof(per_upstream[0]); m++) {
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", per_upstream[m].name,
				    per_upstream[m].help, per_upstream[m].name, per_upstream[m].type);
		for (int k = 0; k < 2; k++) {
			LIST_FOREACH(p, lists[k], link) {
				for (size_t i = 0; i < p->nups; i++) {
					const struct px_upstream *up = p->ups[i];
					const char *name = per_upstream[m].name;
					switch (m) {
					case 0: up_line(out, name, up, "", up->active); break;
					case 1: up_line(out, name, up, "", up->total); break;
					case 2: up_line(out, name, up, "", up->failures); break;
					case 3: up_line(out, name, up, "", up->ejections); break;
					case 4: up_line(out, name, up, "", px_ejected(up, now)); break;
					default:
						up_line(out, name, up, ",direction=\"to_upstream\"", up->bytes_up);
						up_line(out, name, up, ",direction=\"to_client\"", up->bytes_down);
					}
				}
			}
		}
	}
}
