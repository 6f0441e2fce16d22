/*
 * metrics.c - see metrics.h, and GET /metrics: the Prometheus text of the
 * counters here plus the gauges read when scraped (cache, listeners, HTTP
 * client, backend instances). Status codes are folded into the handful the
 * API can produce, so the counter table is fixed-size and allocation-free.
 */
#include "api/metrics.h"

#include <event2/buffer.h>

#include "api/api_internal.h"
#include "http/client.h"
#include "http/server.h"
#include "plugin/plugin.h"
#include "store/cache.h"

static const char *const route_names[BCN_ROUTE_COUNT] = {
	"services", "endpoints", "pick", "kv", "secrets", "self", "drain", "resume",
	"health", "ready", "metrics", "proxies", "other",
};

static const int status_codes[8] = { 200, 400, 403, 404, 405, 413, 503, 500 };

/* Upper bounds in seconds; +Inf is implicit. */
static const double bucket_le[BCN_METRICS_NBUCKETS] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 10,
};

const char *bcn_route_name(enum bcn_route r)
{
	return r < BCN_ROUTE_COUNT ? route_names[r] : "other";
}

static int status_slot(int status)
{
	for (int i = 0; i < 7; i++) {
		if (status_codes[i] == status)
			return i;
	}
	return 7; /* anything else is reported as 500 */
}

void bcn_metrics_request(struct bcn_metrics *m, enum bcn_route r, int status, uint64_t usec)
{
	double secs = (double)usec / 1e6;
	int b = 0;

	if (r >= BCN_ROUTE_COUNT)
		r = BCN_ROUTE_OTHER;
	m->requests[r][status_slot(status)]++;
	while (b < BCN_METRICS_NBUCKETS && secs > bucket_le[b])
		b++;
	m->latency_buckets[b]++;
	m->latency_count++;
	m->latency_sum += secs;
}

void bcn_metrics_render(const struct bcn_metrics *m, struct evbuffer *out)
{
	uint64_t cum = 0;

	evbuffer_add_printf(out,
		"# HELP beacon_requests_total Local API requests answered, by route and status.\n"
		"# TYPE beacon_requests_total counter\n");
	for (int r = 0; r < BCN_ROUTE_COUNT; r++) {
		for (int k = 0; k < 8; k++) {
			if (m->requests[r][k])
				evbuffer_add_printf(out, "beacon_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
						    route_names[r], status_codes[k],
						    (unsigned long long)m->requests[r][k]);
		}
	}
	evbuffer_add_printf(out,
		"# HELP beacon_request_duration_seconds Time from request parsed to answer queued "
		"(blocking reads include their wait).\n"
		"# TYPE beacon_request_duration_seconds histogram\n");
	for (int b = 0; b < BCN_METRICS_NBUCKETS; b++) {
		cum += m->latency_buckets[b];
		evbuffer_add_printf(out, "beacon_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
				    bucket_le[b], (unsigned long long)cum);
	}
	cum += m->latency_buckets[BCN_METRICS_NBUCKETS];
	evbuffer_add_printf(out, "beacon_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
			    "beacon_request_duration_seconds_sum %.6f\n"
			    "beacon_request_duration_seconds_count %llu\n",
			    (unsigned long long)cum, m->latency_sum,
			    (unsigned long long)m->latency_count);
}

void bcn_api_metrics(struct bcn_req *rc)
{
	struct bcn_api *api = rc->api;
	struct evbuffer *out = bcn_hreq_body(rc->req);
	struct bcn_service *s;
	const char *iname;
	bool up;
	char why[8];

	bcn_hreq_set_type(rc->req, "text/plain; version=0.0.4");
	bcn_metrics_render(&api->metrics, out);
	evbuffer_add_printf(out, "# HELP beacon_build_info Version and compiled-in plugins.\n"
			    "# TYPE beacon_build_info gauge\nbeacon_build_info{version=\"%s\",plugins=\"",
			    BCN_VERSION);
	for (size_t i = 0; bcn_plugins[i]; i++)
		evbuffer_add_printf(out, "%s%s", i ? "," : "", bcn_plugins[i]->name);
	evbuffer_add_printf(out, "\"} 1\n");
	evbuffer_add_printf(out, "# HELP beacon_endpoints Endpoints known per service and status.\n"
			    "# TYPE beacon_endpoints gauge\n");
	for (size_t i = 0; (s = bcn_cache_service_at(api->cache, i)) != NULL; i++) {
		size_t all = bcn_service_count(s, false), pass = bcn_service_count(s, true);
		/* Service names come from config or registries: keep label values safe. */
		char name[BCN_API_MAX_NAME];
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
		(unsigned long long)bcn_cache_index(api->cache), api->ready(api->owner, why, sizeof(why)) ? 1 : 0,
		api->sock ? bcn_server_connections(api->sock) : 0,
		(unsigned long long)(api->sock ? bcn_server_rejected(api->sock) : 0),
		api->nwaits, api->http ? bcn_http_active(api->http) : 0);
	evbuffer_add_printf(out, "# HELP beacon_backend_up 1 when a backend instance is synced/ready.\n"
			    "# TYPE beacon_backend_up gauge\n");
	for (size_t i = 0; api->backend && api->backend(api->owner, i, &iname, &up); i++)
		evbuffer_add_printf(out, "beacon_backend_up{instance=\"%s\"} %d\n", iname, up ? 1 : 0);
	if (api->metrics_more)
		api->metrics_more(api->owner, out);
	bcn_api_finish(rc, 200);
}
