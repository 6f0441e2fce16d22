/*
 * etcd.c - the etcd registry backend: config, lifecycle, state for /v1/self.
 *
 * "registry": {"backend": "etcd", ...} takes:
 *
 *   key            default                     meaning
 *   endpoints      ["http://127.0.0.1:2379"]   client URLs, tried in turn on failure
 *   prefix         "/beacon/services"          keys are <prefix>/<service>/<id>
 *   ttl            "10s"                       lease TTL asked for; etcd may grant
 *                                              more (its minimum, ~2 s), which wins
 *   tls            {}                          ca_file, cert_file, key_file,
 *                                              server_name, insecure_skip_verify
 *   username       ""                          etcd user; needs password_file
 *   password_file  ""                          file holding the password
 *   timeout        "5s"                        limit of one request
 *   dial_timeout   "2s"                        connect limit, and the limit of the
 *                                              liveness request sent every 2 s
 *
 * Only the watch lists (top-level "watch") change on SIGHUP; changes to the
 * keys above are reported and take effect after a restart.
 *
 * Readiness (/ready): once connected, registered (when a service is
 * configured and not drained) and every watched service and prefix read
 * once. It then stays ready through outages: answers are served from the
 * last known state, marked stale, rather than taking every pod out at once.
 */
#include <event2/event.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"

/* Every key is read once at start: a change is logged and waits for a restart. */
#define C struct etcd_conf
#define RESTART BCN_CFG_RESTART
static const struct bcn_cfg_field etcd_fields[] = {
	BCN_ROW_STRLIST(C, endpoints, "endpoints", "[\"http://127.0.0.1:2379\"]", BCN_CFG_NONEMPTY | RESTART,
			"etcd client URLs"),
	BCN_ROW_STR(C, prefix, "prefix", "/beacon/services", BCN_CFG_NONEMPTY | RESTART, "key prefix of registrations"),
	BCN_ROW_DURATION(C, ttl_ms, "ttl", "10s", BCN_S(1), BCN_DAYS(1), RESTART, "lease TTL"),
	BCN_ROW_OBJECT(C, tls, "tls", bcn_tls_fields, RESTART, "TLS files"),
	BCN_ROW_STR(C, username, "username", "", RESTART, "etcd user name"),
	BCN_ROW_STR(C, password_file, "password_file", "", RESTART, "file holding the user's password"),
	BCN_ROW_DURATION(C, timeout_ms, "timeout", "5s", BCN_MS(100), BCN_MIN(10), RESTART, "limit of one request"),
	BCN_ROW_DURATION(C, dial_timeout_ms, "dial_timeout", "2s", BCN_MS(100), BCN_MIN(1), RESTART,
			 "connect and liveness limit"),
	BCN_ROW_END,
};
#undef C
#undef RESTART

static void etcd_check(void *conf, const char *path, struct bcn_cfg_errs *errs)
{
	struct etcd_conf *c = conf;
	char p[256];

	for (size_t i = 0; i < c->endpoints.n; i++) {
		const char *e = c->endpoints.v[i];
		if (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0) {
			snprintf(p, sizeof(p), "%s.endpoints[%zu]", path, i);
			bcn_cfg_err(errs, p, "expected an http:// or https:// URL such as \"http://127.0.0.1:2379\"");
		} else if (strlen(e) > 512) {
			snprintf(p, sizeof(p), "%s.endpoints[%zu]", path, i);
			bcn_cfg_err(errs, p, "URL too long");
		}
	}
	if (!c->tls.cert_file[0] != !c->tls.key_file[0]) {
		snprintf(p, sizeof(p), "%s.tls", path);
		bcn_cfg_err(errs, p, "give both \"cert_file\" and \"key_file\" for a client certificate, or neither");
	}
	snprintf(p, sizeof(p), "%s.tls", path);
	bcn_tls_conf_check(&c->tls, p, errs);
	if (!c->username[0] != !c->password_file[0]) {
		snprintf(p, sizeof(p), "%s.%s", path, c->username[0] ? "password_file" : "username");
		bcn_cfg_err(errs, p, "\"username\" and \"password_file\" go together");
	}
}

/* ---- state ---------------------------------------------------------------- */

void etcd_report(struct etcd_ctx *ctx)
{
	size_t total, synced, fresh;
	const char *watch_err, *err = NULL, *state;
	bool up = ctx->session == ETCD_UP;
	bool service = ctx->reg.key != NULL;
	bool need_reg = service && !ctx->core->drained;

	bcn_watchset_counts(&ctx->watches, &total, &synced, &fresh, &watch_err);
	bcn_report_stale(ctx->ins, !up || fresh < total);
	if (up && synced == total && (!need_reg || ctx->reg.registered))
		ctx->ready = true; /* stays: outages are served stale, not unready */

	if (ctx->stopping) {
		state = "stopping";
	} else if (!up) {
		state = ctx->ever_up ? "unreachable" : "connecting";
		err = ctx->err;
	} else if (fresh < total) {
		state = "syncing";
		err = watch_err;
	} else if (need_reg && !ctx->reg.registered) {
		state = "registering";
		err = ctx->reg.err;
	} else if (service && ctx->core->drained) {
		state = "drained";
	} else {
		state = service ? "registered" : "synced";
	}
	if (err && err[0])
		bcn_instance_report(ctx->ins, ctx->ready, state, "%s", err);
	else
		bcn_instance_report(ctx->ins, ctx->ready, state, NULL);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void strip_slashes(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
}

static int etcd_init(struct bcn_instance *ins)
{
	struct etcd_conf *c = ins->conf;
	struct etcd_ctx *ctx;
	char err[256];

	if (sodium_init() < 0) {
		bcn_error(ins->name, "cannot initialise libsodium");
		return -1;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		goto oom;
	ins->ctx = ctx;
	ctx->ins = ins;
	ctx->core = ins->core;
	ctx->log = ins->name;
	ctx->reqs = bcn_http_group_new(ins->core->http);
	if (!ctx->reqs)
		goto oom;
	ctx->endpoints = calloc(c->endpoints.n, sizeof(*ctx->endpoints));
	if (!ctx->endpoints)
		goto oom;
	for (size_t i = 0; i < c->endpoints.n; i++) {
		ctx->endpoints[i] = strdup(c->endpoints.v[i]);
		if (!ctx->endpoints[i])
			goto oom;
		ctx->nendpoints++;
		strip_slashes(ctx->endpoints[i]);
	}
	ctx->prefix = strdup(c->prefix);
	ctx->username = strdup(c->username);
	ctx->auth_header = sodium_malloc(ETCD_TOKEN_MAX);
	if (!ctx->prefix || !ctx->username || !ctx->auth_header)
		goto oom;
	ctx->auth_header[0] = '\0';
	strip_slashes(ctx->prefix);
	ctx->ttl_ms = c->ttl_ms;
	ctx->timeout_ms = c->timeout_ms;
	ctx->dial_timeout_ms = c->dial_timeout_ms;
	bcn_tls_warn_insecure(ins->name, c->tls.insecure_skip_verify);
	if (c->username[0]) {
		ctx->password = bcn_read_secret_file(c->password_file, err, sizeof(err));
		if (!ctx->password) {
			bcn_error(ins->name, "%s", err);
			return -1;
		}
	}
	return etcd_reg_init(ctx);
oom:
	bcn_error(ins->name, "out of memory");
	return -1;
}

static int etcd_start(struct bcn_instance *ins)
{
	struct etcd_ctx *ctx = ins->ctx;

	etcd_watch_apply(ctx);
	etcd_report(ctx);
	etcd_conn_start(ctx);
	if (!ctx->retry_ev || !ctx->probe_ev)
		return -1;
	return 0;
}

/* Every key of this plugin is restart-only: the core has kept the running
 * values in new_conf and logged what changed. Only the watch lists apply. */
static void etcd_reload(struct bcn_instance *ins, void *new_conf)
{
	const struct etcd_conf *n = new_conf;
	struct etcd_ctx *ctx = ins->ctx;

	bcn_tls_warn_insecure(ctx->log, n->tls.insecure_skip_verify); /* what runs until a restart */
	etcd_watch_apply(ctx);
	etcd_report(ctx);
}

static void etcd_service_changed(struct bcn_instance *ins)
{
	etcd_reg_changed(ins->ctx);
}

static void etcd_stop(struct bcn_instance *ins, bcn_stop_done_cb done)
{
	struct etcd_ctx *ctx = ins->ctx;

	ctx->stopping = true;
	etcd_conn_stop(ctx);
	etcd_watch_down(ctx);
	etcd_report(ctx);
	etcd_reg_stop(ctx, done);
}

static void etcd_exit(struct bcn_instance *ins)
{
	struct etcd_ctx *ctx = ins->ctx;

	if (!ctx)
		return;
	ctx->stopping = true;
	etcd_conn_stop(ctx);
	etcd_watch_free_all(ctx);
	etcd_reg_free(ctx);
	etcd_conn_cancel_all(ctx);
	bcn_http_group_free(ctx->reqs);
	if (ctx->retry_ev)
		event_free(ctx->retry_ev);
	if (ctx->probe_ev)
		event_free(ctx->probe_ev);
	for (size_t i = 0; i < ctx->nendpoints; i++)
		free(ctx->endpoints[i]);
	free(ctx->endpoints);
	free(ctx->prefix);
	free(ctx->username);
	if (ctx->password)
		sodium_free(ctx->password);
	if (ctx->auth_header)
		sodium_free(ctx->auth_header);
	free(ctx);
	ins->ctx = NULL;
}

static void etcd_self(struct bcn_instance *ins, json_t *obj)
{
	struct etcd_ctx *ctx = ins->ctx;
	const struct etcd_reg *reg = &ctx->reg;

	json_object_set_new(obj, "endpoint", json_string(etcd_conn_endpoint(ctx)));
	json_object_set_new(obj, "key", reg->key ? json_string(reg->key) : json_null());
	json_object_set_new(obj, "registered", json_boolean(reg->registered));
	json_object_set_new(obj, "lease_id", json_integer((json_int_t)reg->lease_id));
	json_object_set_new(obj, "ttl", json_integer((json_int_t)(reg->ttl_s ? reg->ttl_s : (int64_t)(ctx->ttl_ms / 1000))));
	json_object_set_new(obj, "revision", json_integer((json_int_t)ctx->revision));
	json_object_set_new(obj, "watches", etcd_watch_self(ctx));
}

const struct bcn_plugin bcn_plugin_etcd = {
	.name = "etcd",
	.description = "etcd v3 registry: lease-based registration, watched discovery and config",
	.kind = BCN_PLUGIN_REGISTRY,
	.section = "registry",
	.section_list = "registries",
	.config_map = etcd_fields,
	.config_size = sizeof(struct etcd_conf),
	.cb_check = etcd_check,
	.cb_init = etcd_init,
	.cb_start = etcd_start,
	.cb_reload = etcd_reload,
	.cb_service_changed = etcd_service_changed,
	.cb_stop = etcd_stop,
	.cb_exit = etcd_exit,
	.cb_self = etcd_self,
};
