/*
 * agent.h - the daemon: one event loop that owns the config, the plugin
 * instances, the cache, the HTTP client and the listeners.
 */
#ifndef BCN_AGENT_H
#define BCN_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "api/metrics.h"
#include "plugin/plugin.h"
#include "store/cache.h"

struct bcn_config;
struct bcn_server;
struct bcn_api_wait;
struct evhttp_request;

struct bcn_agent {
	struct event_base *base;
	struct bcn_core core;
	struct bcn_config *cfg;
	struct bcn_instance *ins;
	size_t nins;
	struct bcn_server *sock, *tcp;
	struct bcn_check *check;      /* the app's health check, NULL without one */
	struct event *ev_term, *ev_int, *ev_hup, *ev_watchdog, *ev_stop_deadline;
	struct bcn_metrics metrics;
	struct bcn_api_wait *waits;   /* parked blocking reads (api.c) */
	size_t nwaits;
	bool drained, stopping;
	size_t stops_pending;
	struct timespec started;
	double start_to_ready_ms;     /* -1 until first ready */
	long nofile;                  /* RLIMIT_NOFILE after raising it; -1: none */
	int fd_capped_sock, fd_capped_probe; /* connection limits lowered to fit it, last logged */
};

/* Run `beacon agent --config file` until SIGTERM/SIGINT. Returns the exit code. */
int bcn_agent_main(const char *config_file);

/* Ready for traffic (SPEC /ready). With why set, fills one sentence when not. */
bool bcn_agent_ready(struct bcn_agent *a, char *why, size_t len);
/* Leave (true) or rejoin (false) discovery. */
void bcn_agent_drain(struct bcn_agent *a, bool drain);
/* The /v1/self object. */
json_t *bcn_agent_self(struct bcn_agent *a);

/* The API router for the Unix socket and the probe-only router for TCP (api.c). */
void bcn_api_handle(struct evhttp_request *req, void *agent);
void bcn_api_handle_probe(struct evhttp_request *req, void *agent);
/* Answer every parked blocking read now (shutdown). */
void bcn_api_release_waits(struct bcn_agent *a);

#endif
