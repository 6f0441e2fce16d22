/*
 * agent.c - the daemon's life: load the config, create the loop and what hangs
 * off it (cache, HTTP client, plugin instances, listeners), run until a
 * signal, reload on SIGHUP, stop gracefully (plugins deregister first) on
 * SIGTERM/SIGINT. Everything happens on one event loop in one thread.
 */
#include "agent.h"

#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "health/check.h"
#include "config/config.h"
#include "dns/dns.h"
#include "base/loop.h"
#include "base/sdnotify.h"
#include "base/timing.h"
#include "http/server.h"
#include "secrets/store.h"
#include "store/cache.h"
#include "proxy/proxy.h"
#include "template/template.h"
#include "exec/exec.h"

#define STOP_DEADLINE_S 10

static double elapsed_ms(uint64_t since_us)
{
	return (double)(bcn_now_us() - since_us) / 1e3;
}

bool bcn_agent_ready(struct bcn_agent *a, char *why, size_t len)
{
	if (a->stopping) {
		snprintf(why, len, "the agent is stopping");
		return false;
	}
	if (a->drained) {
		snprintf(why, len, "this instance is drained");
		return false;
	}
	for (size_t i = 0; i < a->nins; i++) {
		if (!a->ins[i].ready) {
			/* With the instance's problem, e.g. which watch fails. */
			snprintf(why, len, "%s is %s%s%s", a->ins[i].name, a->ins[i].state,
				 a->ins[i].last_error[0] ? ": " : "", a->ins[i].last_error);
			return false;
		}
	}
	return true;
}

static void notify_status(struct bcn_agent *a)
{
	char why[256];
	if (bcn_agent_ready(a, why, sizeof(why)))
		bcn_sd_notifyf("STATUS=ready, %zu services known", bcn_cache_nservices(a->core.cache));
	else
		bcn_sd_notifyf("STATUS=not ready: %s", why);
}

/* Every instance ready once (first sync, secrets loaded, registered):
 * templates may render from then on, also through later outages. */
static void templates_sync(struct bcn_agent *a)
{
	for (size_t i = 0; !a->synced && i < a->nins; i++)
		if (!a->ins[i].ready)
			return;
	a->synced = true;
	bcn_templates_synced(a->templates); /* exec mode: the child starts once they rendered */
}

static void state_changed(struct bcn_core *core, struct bcn_instance *ins)
{
	struct bcn_agent *a = core->owner;
	char why[8];
	(void)ins;
	templates_sync(a);
	if (a->start_to_ready_ms < 0 && bcn_agent_ready(a, why, sizeof(why))) {
		a->start_to_ready_ms = elapsed_ms(a->started_us);
		bcn_info("agent", "ready %.1f ms after start", a->start_to_ready_ms);
	}
	notify_status(a);
}

static void service_changed(struct bcn_agent *a)
{
	for (size_t i = 0; i < a->nins; i++) {
		if (a->ins[i].plugin->cb_service_changed)
			a->ins[i].plugin->cb_service_changed(&a->ins[i]);
	}
	notify_status(a);
}

void bcn_agent_drain(struct bcn_agent *a, bool drain)
{
	if (a->drained == drain)
		return;
	a->drained = drain;
	a->core.drained = drain;
	bcn_info("agent", drain ? "drained: leaving discovery" : "resumed: rejoining discovery");
	service_changed(a);
}

static void check_changed(enum bcn_status st, void *arg)
{
	struct bcn_agent *a = arg;
	a->core.service_status = st;
	service_changed(a);
}

/* ---- instances ------------------------------------------------------------ */

static int instances_create(struct bcn_agent *a)
{
	struct bcn_config *c = a->cfg;

	a->ins = calloc(c->ninstances ? c->ninstances : 1, sizeof(*a->ins));
	if (!a->ins)
		return -1;
	for (size_t i = 0; i < c->ninstances; i++) {
		struct bcn_instance *ins = &a->ins[i];
		size_t same = 0;
		for (size_t j = 0; j < i; j++)
			same += c->instances[j].plugin == c->instances[i].plugin;
		ins->plugin = c->instances[i].plugin;
		snprintf(ins->name, sizeof(ins->name), "%s#%zu", ins->plugin->name, same);
		/* The instance owns its config from here on. */
		ins->conf = c->instances[i].conf;
		c->instances[i].conf = NULL;
		ins->core = &a->core;
		snprintf(ins->state, sizeof(ins->state), "starting");
		ins->src = bcn_cache_source_add(a->core.cache, ins->name);
		a->nins++;
		if (ins->src < 0 || ins->plugin->cb_init(ins) < 0) {
			bcn_error("agent", "cannot initialise %s", ins->name);
			return -1;
		}
	}
	for (size_t i = 0; i < a->nins; i++) {
		if (a->ins[i].plugin->cb_start(&a->ins[i]) < 0) {
			bcn_error("agent", "cannot start %s", a->ins[i].name);
			return -1;
		}
	}
	return 0;
}

static bool has_secrets_plugin(const struct bcn_config *c)
{
	for (size_t i = 0; i < c->ninstances; i++) {
		if (c->instances[i].plugin->kind == BCN_PLUGIN_SECRETS)
			return true;
	}
	return false;
}

static void instances_free(struct bcn_agent *a)
{
	for (size_t i = 0; i < a->nins; i++) {
		struct bcn_instance *ins = &a->ins[i];
		ins->plugin->cb_exit(ins);
		bcn_instance_conf_free(ins->plugin->config_map, ins->conf);
	}
	free(a->ins);
	a->ins = NULL;
	a->nins = 0;
}

/* ---- the DNS interface ---------------------------------------------------- */

static int dns_start(struct bcn_agent *a)
{
	char err[256];

	if (!a->cfg->dns)
		return 0;
	a->dns = bcn_dns_new(a->base, a->core.cache, a->cfg->dns, err, sizeof(err));
	if (!a->dns)
		bcn_error("dns", "%s", err);
	return a->dns ? 0 : -1;
}

/* The socket stays as bound at start (port 53 may need a capability a
 * reload cannot count on): adding, removing or moving it needs a restart. */
static void dns_reload(struct bcn_agent *a, const struct bcn_config *nc)
{
	if (!a->dns != !nc->dns || (a->dns && bcn_dns_reload(a->dns, nc->dns) < 0))
		bcn_warn("agent", "changes to dns.listen (or adding or removing \"dns\") take effect after a restart");
}

/* ---- reload --------------------------------------------------------------- */

static bool same_instances(const struct bcn_config *old, const struct bcn_config *new)
{
	if (old->ninstances != new->ninstances)
		return false;
	for (size_t i = 0; i < old->ninstances; i++) {
		if (old->instances[i].plugin != new->instances[i].plugin ||
		    strcmp(old->instances[i].path, new->instances[i].path) != 0)
			return false;
	}
	return true;
}

static pid_t exec_child(void *arg);
static void exec_files_ready(void *arg);

static void reload(struct bcn_agent *a)
{
	struct bcn_cfg_errs errs = { 0 };
	struct bcn_config *nc, *old = a->cfg;
	char changed[256];

	bcn_sd_notify("RELOADING=1");
	nc = bcn_config_load(old->file, bcn_plugin_sections(), &errs);
	if (nc) {
		bcn_templates_prepare(nc, a->exec_argv, &errs);
		if (errs.n) {
			bcn_config_free(nc);
			nc = NULL;
		}
	}
	if (!nc) {
		bcn_error("agent", "reload refused, keeping the running config: %zu problem(s), first: %s",
			  errs.n, errs.n ? errs.msg[0] : "unknown");
		bcn_cfg_errs_free(&errs);
		bcn_sd_notify("READY=1");
		return;
	}
	bcn_log_setup(nc->log_level, nc->log_format);
	for (size_t i = 0; i < errs.nwarn; i++)
		bcn_warn("config", "%s", errs.warn[i]);
	bcn_cfg_errs_free(&errs);
	if (bcn_config_keep_restart(old, nc, changed, sizeof(changed)))
		bcn_warn("agent", "changes to %s take effect after a restart", changed);
	bcn_agent_listeners_reload(a, nc);
	dns_reload(a, nc);
	/* Proxies that stay keep their connections (agent/proxy/proxy.h). */
	bcn_proxies_apply(a->proxies, nc->proxies.v, nc->proxies.n);

	a->cfg = nc;
	a->core.config = nc;
	if (!same_instances(old, nc)) {
		bcn_warn("agent", "backend sections were added or removed: restart to apply; "
			 "other changes are applied");
	} else {
		for (size_t i = 0; i < a->nins; i++) {
			struct bcn_instance *ins = &a->ins[i];
			void *new_conf = nc->instances[i].conf;
			if (!ins->plugin->cb_reload)
				continue;
			nc->instances[i].conf = NULL;
			/* Restart-only keys keep their running values in new_conf. */
			if (ins->plugin->config_map &&
			    bcn_cfg_keep_restart(ins->plugin->config_map, ins->conf, new_conf, changed,
						 sizeof(changed)))
				bcn_warn(ins->name, "changes to %s take effect after a restart", changed);
			ins->plugin->cb_reload(ins, new_conf);
			bcn_instance_conf_free(ins->plugin->config_map, ins->conf);
			ins->conf = new_conf;
		}
	}
	{
		/* Templates follow the new config (they point into it): new ones,
		 * rendered at once when the sources have synced; unchanged output
		 * writes nothing. */
		struct bcn_templates *nt = bcn_templates_new(&a->core);
		bcn_templates_takeover(nt, a->templates); /* running commands, counters */
		bcn_templates_free(a->templates); /* they point into the old config */
		a->templates = nt;
		if (nt && a->exec) /* (a child not started yet starts once these rendered) */
			bcn_templates_set_child(nt, exec_child, exec_files_ready, a->exec);
		if (!nt)
			bcn_error("agent", "templates could not be reloaded (out of memory, or a source "
				  "file changed under the reload): they stop until the next reload");
		else if (a->synced)
			bcn_templates_synced(nt);
	}
	bcn_config_free(old);
	bcn_info("agent", "configuration reloaded from %s", nc->file);
	bcn_sd_notify("READY=1");
	notify_status(a);
}

/* ---- stop ----------------------------------------------------------------- */

static void stop_done(struct bcn_instance *ins)
{
	struct bcn_agent *a = ins->core->owner;
	/* A short grace period lets the answers to released blocking reads and
	 * other in-flight replies reach their clients before the sockets close. */
	struct timeval flush = { 0, 100 * 1000 };
	bcn_debug("agent", "%s stopped", ins->name);
	if (a->stops_pending > 0 && --a->stops_pending == 0)
		event_base_loopexit(a->base, &flush);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_agent *a = arg;
	(void)fd;
	(void)what;
	bcn_warn("agent", "backends did not finish stopping within %d s; exiting anyway", STOP_DEADLINE_S);
	event_base_loopexit(a->base, NULL);
}

static void begin_stop(struct bcn_agent *a, const char *why);

/* Exec mode: the child ended. On its own: deregister and exit with its
 * status. While stopping: the stop waited for it. */
static void exec_exited(void *owner, int code)
{
	struct bcn_agent *a = owner;

	a->exit_code = code;
	a->exec_ended = true;
	if (!a->stopping) {
		begin_stop(a, "the app exited");
		return;
	}
	if (a->exec_pending) {
		a->exec_pending = false;
		stop_done(&(struct bcn_instance){ .core = &a->core, .name = "exec" });
	}
}

static pid_t exec_child(void *arg)
{
	return bcn_exec_pid(arg);
}

static void exec_files_ready(void *arg)
{
	bcn_exec_synced(arg);
}

static void begin_stop(struct bcn_agent *a, const char *why)
{
	struct timeval tv = { STOP_DEADLINE_S, 0 };

	if (a->stopping) {
		bcn_warn("agent", "second %s: exiting now", why);
		event_base_loopexit(a->base, NULL);
		return;
	}
	a->stopping = true;
	bcn_info("agent", "%s: stopping", why);
	bcn_sd_notify("STOPPING=1");
	bcn_api_release_waits(&a->api);
	a->stops_pending = 1; /* held until every cb_stop was issued */
	if (a->exec && !a->exec_ended) {
		/* The child stops beside the deregistration; the loop ends when both did. */
		a->stops_pending++;
		a->exec_pending = true;
		bcn_exec_stop(a->exec, a->exec_signalled);
	}
	for (size_t i = 0; i < a->nins; i++) {
		if (a->ins[i].plugin->cb_stop) {
			a->stops_pending++;
			a->ins[i].plugin->cb_stop(&a->ins[i], stop_done);
		}
	}
	a->ev_stop_deadline = evtimer_new(a->base, deadline_cb, a);
	if (a->ev_stop_deadline)
		evtimer_add(a->ev_stop_deadline, &tv);
	stop_done(&(struct bcn_instance){ .core = &a->core, .name = "agent" });
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct bcn_agent *a = arg;
	(void)what;
	/* Exec mode: SIGTERM, SIGINT, SIGHUP, SIGUSR1/2 reach the child too. */
	if (a->exec && !a->stopping)
		bcn_exec_forward(a->exec, (int)sig);
	if (sig == SIGUSR1 || sig == SIGUSR2)
		return;
	if (sig == SIGHUP) {
		reload(a);
		return;
	}
	a->exec_signalled = a->exec != NULL;
	begin_stop(a, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	bcn_sd_notify("WATCHDOG=1");
}

/* ---- main ----------------------------------------------------------------- */

static void harden_process(void)
{
	struct rlimit no_core = { 0, 0 };
	/* No core dumps: a dump would hold whatever secrets were in memory. */
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
}

static int add_signal(struct bcn_agent *a, struct event **ev, int sig)
{
	*ev = evsignal_new(a->base, sig, signal_cb, a);
	return *ev && evsignal_add(*ev, NULL) == 0 ? 0 : -1;
}

int bcn_agent_main(const char *config_file, char *const *exec_argv)
{
	struct bcn_agent a;
	struct bcn_cfg_errs errs = { 0 };
	int rc = 1;
	uint64_t wd;

	memset(&a, 0, sizeof(a));
	a.started_us = bcn_now_us();
	a.start_to_ready_ms = -1;
	a.exec_argv = exec_argv;
	a.cfg = bcn_config_load(config_file, bcn_plugin_sections(), &errs);
	if (a.cfg) {
		bcn_templates_prepare(a.cfg, exec_argv, &errs);
		if (errs.n) {
			bcn_config_free(a.cfg);
			a.cfg = NULL;
		}
	}
	if (!a.cfg) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		fprintf(stderr, "beacon: %s has %zu problem(s); nothing was started\n", config_file, errs.n);
		bcn_cfg_errs_free(&errs);
		return 2;
	}
	bcn_log_setup(a.cfg->log_level, a.cfg->log_format);
	for (size_t i = 0; i < errs.nwarn; i++)
		bcn_warn("config", "%s", errs.warn[i]);
	bcn_cfg_errs_free(&errs);
	harden_process();
	a.nofile = bcn_agent_raise_nofile();

	{
		/* The changelist folds an add and a delete of the same event in
		 * one loop turn into one epoll_ctl or none (the HTTP server's
		 * write event when a socket buffer fills and drains). Its
		 * caveat, fds cloned with dup(), does not apply: the loop never
		 * dups (exec checks dup2 only in the child). */
		struct event_config *ec = event_config_new();
		if (ec)
			event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		a.base = ec ? event_base_new_with_config(ec) : NULL;
		if (ec)
			event_config_free(ec);
	}
	if (!a.base)
		goto out;
	a.core.base = a.base;
	a.core.config = a.cfg;
	a.core.owner = &a;
	a.core.state_changed = state_changed;
	a.core.cache = bcn_cache_new(a.base);
	a.core.http = bcn_http_new(a.base);
	if (!a.core.cache || !a.core.http)
		goto out;
	/* The secret store next to the endpoint store, only when a secrets
	 * plugin will fill it (it locks memory and may warn about limits). */
	if (has_secrets_plugin(a.cfg) && !(a.core.secrets = bcn_secrets_new(a.base)))
		goto out;
	if (add_signal(&a, &a.ev_term, SIGTERM) < 0 || add_signal(&a, &a.ev_int, SIGINT) < 0 ||
	    add_signal(&a, &a.ev_hup, SIGHUP) < 0)
		goto out;
	if (bcn_agent_listeners_start(&a) < 0 || dns_start(&a) < 0)
		goto out;
	a.proxies = bcn_proxies_new(a.base, a.core.cache);
	if (!a.proxies || bcn_proxies_apply(a.proxies, a.cfg->proxies.v, a.cfg->proxies.n) > 0)
		goto out;
	/* CAP_NET_BIND_SERVICE (systemd's AmbientCapabilities, for DNS or a
	 * proxy on a port below 1024) was needed for the binds above only:
	 * health checks and the exec child must not inherit it (a proxy added
	 * by a reload cannot take such a port). No-op without ambient
	 * capabilities. */
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	/* Without a check the app counts as passing; with one it starts
	 * critical until the check has passed `rise` times. */
	a.core.service_status = BCN_PASSING;
	if (a.cfg->service && a.cfg->service->check) {
		a.core.service_status = BCN_CRITICAL;
		a.check = bcn_check_new(&a.core, a.cfg->service->check, check_changed, &a);
		if (!a.check)
			goto out;
	}
	/* Templates before the instances: they park on the store, and render
	 * once every instance has synced (templates_sync). */
	if (!(a.templates = bcn_templates_new(&a.core)))
		goto out;
	if (a.cfg->exec) {
		if (!(a.exec = bcn_exec_new(&a.core, exec_exited, &a)) ||
		    add_signal(&a, &a.ev_usr1, SIGUSR1) < 0 || add_signal(&a, &a.ev_usr2, SIGUSR2) < 0)
			goto out;
		bcn_templates_set_child(a.templates, exec_child, exec_files_ready, a.exec);
	}
	if (instances_create(&a) < 0)
		goto out;
	/* Before the loop runs, so before any request: the listeners and the
	 * secret store exist now. */
	bcn_agent_api_fill(&a);

	wd = bcn_sd_watchdog_usec();
	if (wd) {
		struct timeval tv = { (time_t)(wd / 2 / 1000000), (suseconds_t)(wd / 2 % 1000000) };
		a.ev_watchdog = event_new(a.base, -1, EV_PERSIST, watchdog_cb, &a);
		if (a.ev_watchdog)
			event_add(a.ev_watchdog, &tv);
	}
	bcn_sd_notify("READY=1");
	state_changed(&a.core, NULL);

	bcn_loop_run(a.base);
	rc = 0;
	bcn_info("agent", "stopped");

out:
	if (rc)
		bcn_error("agent", "could not start; exiting");
	else if (a.exec)
		/* exec mode: exit with the child's status (killed now if it outlived the stop) */
		rc = a.exec_ended ? a.exit_code : bcn_exec_kill(a.exec);
	if (a.base)
		bcn_api_release_waits(&a.api);
	bcn_exec_free(a.exec);
	bcn_templates_free(a.templates);
	bcn_check_free(a.check);
	bcn_server_free(a.sock);
	bcn_server_free(a.tcp);
	bcn_dns_free(a.dns);
	bcn_proxies_free(a.proxies);
	instances_free(&a);
	bcn_secrets_free(a.core.secrets); /* wipes; after the plugins that filled it */
	bcn_http_free(a.core.http);
	bcn_cache_free(a.core.cache);
	if (a.ev_term) event_free(a.ev_term);
	if (a.ev_int) event_free(a.ev_int);
	if (a.ev_hup) event_free(a.ev_hup);
	if (a.ev_usr1) event_free(a.ev_usr1);
	if (a.ev_usr2) event_free(a.ev_usr2);
	if (a.ev_watchdog) event_free(a.ev_watchdog);
	if (a.ev_stop_deadline) event_free(a.ev_stop_deadline);
	if (a.base)
		event_base_free(a.base);
	bcn_config_free(a.cfg);
	return rc;
}
