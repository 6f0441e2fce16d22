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

#include "api/api.h"
#include "plugin/plugin.h"
#include "store/cache.h"

struct bcn_config;
struct bcn_server;
struct bcn_dns;

struct bcn_agent {
	struct event_base *base;
	struct bcn_core core;
	struct bcn_config *cfg;
	struct bcn_instance *ins;
	size_t nins;
	struct bcn_server *sock, *tcp;
	struct bcn_check *check;      /* the app's health check, NULL without one */
	struct event *ev_term, *ev_int, *ev_hup, *ev_watchdog, *ev_stop_deadline;
	struct bcn_api api;           /* the socket API's context (api/api.h) */
	bool drained, stopping;
	size_t stops_pending;
	uint64_t started_us;          /* bcn_now_us() at start */
	double start_to_ready_ms;     /* -1 until first ready */
	long nofile;                  /* RLIMIT_NOFILE after raising it; -1: none */
	int fd_capped_sock, fd_capped_probe; /* connection limits lowered to fit it, last logged */
	struct bcn_dns *dns;          /* the DNS interface (dns/dns.h); NULL without a "dns" section */
	struct bcn_proxies *proxies;  /* the local proxies (agent/proxy/), issue 14 */
	/* issue 12: templates and exec mode */
	struct bcn_templates *templates;
	char *const *exec_argv;       /* `agent -- CMD ARGS`, NULL without */
	bool synced;                  /* every instance was ready once: templates may render */
	struct bcn_exec *exec;        /* exec mode's child, NULL without */
	struct event *ev_usr1, *ev_usr2; /* forwarded to the child in exec mode */
	int exit_code;                /* exec mode: the child's status */
	bool exec_ended, exec_pending, exec_signalled;
};

/* Run `beacon agent --config file [-- CMD ARGS]` until SIGTERM/SIGINT (or,
 * in exec mode, until the child exits). Returns the exit code. */
int bcn_agent_main(const char *config_file, char *const *exec_argv);

/* Ready for traffic (SPEC /ready). With why set, fills one sentence when not. */
bool bcn_agent_ready(struct bcn_agent *a, char *why, size_t len);
/* Leave (true) or rejoin (false) discovery. */
void bcn_agent_drain(struct bcn_agent *a, bool drain);
/* The /v1/self object. */
json_t *bcn_agent_self(struct bcn_agent *a);

/* Fill a->api from the agent (cache, HTTP client, listener, secret store and
 * the callbacks), once they exist and before the loop serves a request. */
void bcn_agent_api_fill(struct bcn_agent *a);

/* listeners.c: raise RLIMIT_NOFILE to its hard limit and return it (-1:
 * none); start the socket and probe listeners from a->cfg (0 or -1,
 * logged); apply a reloaded config's limits to them. */
long bcn_agent_raise_nofile(void);
int bcn_agent_listeners_start(struct bcn_agent *a);
void bcn_agent_listeners_reload(struct bcn_agent *a, const struct bcn_config *nc);

#endif
