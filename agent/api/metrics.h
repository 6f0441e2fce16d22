/*
 * metrics.h - counters for /metrics (Prometheus text format, names beacon_*).
 *
 * Counting is a few array increments on the request path; everything else
 * (gauges from the cache and the instances) is computed when scraped.
 */
#ifndef BCN_METRICS_H
#define BCN_METRICS_H

#include <stdint.h>

struct evbuffer;

enum bcn_route {
	BCN_ROUTE_SERVICES, BCN_ROUTE_ENDPOINTS, BCN_ROUTE_PICK, BCN_ROUTE_KV,
	BCN_ROUTE_SECRETS, BCN_ROUTE_SELF, BCN_ROUTE_DRAIN, BCN_ROUTE_RESUME,
	BCN_ROUTE_HEALTH, BCN_ROUTE_READY, BCN_ROUTE_METRICS, BCN_ROUTE_PROXIES, BCN_ROUTE_OTHER,
	BCN_ROUTE_COUNT
};

#define BCN_METRICS_NBUCKETS 12

struct bcn_metrics {
	uint64_t requests[BCN_ROUTE_COUNT][8]; /* by status class: see metrics.c */
	uint64_t latency_buckets[BCN_METRICS_NBUCKETS + 1];
	uint64_t latency_count;
	double latency_sum;
};

const char *bcn_route_name(enum bcn_route r);
/* Count one answered request and its latency in microseconds. */
void bcn_metrics_request(struct bcn_metrics *m, enum bcn_route r, int status, uint64_t usec);
/* Append beacon_requests_total and the latency histogram. */
void bcn_metrics_render(const struct bcn_metrics *m, struct evbuffer *out);

#endif
