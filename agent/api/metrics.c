/*
 * metrics.c - see metrics.h. Status codes are folded into the handful the
 * API can produce, so the counter table is fixed-size and allocation-free.
 */
#include "api/metrics.h"

#include <event2/buffer.h>

static const char *const route_names[BCN_ROUTE_COUNT] = {
	"services", "endpoints", "pick", "kv", "secrets", "self", "drain", "resume",
	"health", "ready", "metrics", "other",
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
