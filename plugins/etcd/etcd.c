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
#include <time.h>

#include "etcd.h"

#define F(type, field) BCN_CFG_##type, offsetof(struct etcd_conf, field)

static const struct bcn_cfg_field etcd_fields[] = {
	{ "endpoints", F(STRLIST, endpoints), "[\"http://127.0.0.1:2379\"]", BCN_CFG_NONEMPTY, 0, 0, NULL, 0, "etcd client URLs" },
	{ "prefix", F(STR, prefix), "/beacon/services", BCN_CFG_NONEMPTY, 0, 0, NULL, 0, "key prefix of registrations" },
	{ "ttl", F(DURATION, ttl_ms), "10s", 0, 1000, 86400000, NULL, 0, "lease TTL" },
	{ "tls", F(OBJECT, tls), NULL, 0, 0, 0, bcn_tls_fields, 0, "TLS files" },
	{ "username", F(STR, username), "", 0, 0, 0, NULL, 0, "etcd user name" },
	{ "password_file", F(STR, password_file), "", 0, 0, 0, NULL, 0, "file holding the user's password" },
	{ "timeout", F(DURATION, timeout_ms), "5s", 0, 100, 600000, NULL, 0, "limit of one request" },
	{ "dial_timeout", F(DURATION, dial_timeout_ms), "2s", 0, 100, 60000, NULL, 0, "connect and liveness limit" },
	{ NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL },
};

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

uint64_t etcd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void etcd_report(struct etcd_ctx *ctx)
{
	size_t total, synced, fresh;
	const char *watch_err, *err = NULL, *state;
	bool up = ctx->session == ETCD_UP;
	bool service = ctx->reg.key != NULL;
	bool need_reg = service && !ctx->core->drained;

	bcn_watchset_counts(ctx->watches, &total, &synced, &fresh, &watch_err);
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

static char *dup_or_null(const char *s)
{
	return s && s[0] ? strdup(s) : NULL;
}

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
	ctx->ca_file = dup_or_null(c->tls.ca_file);
	ctx->cert_file = dup_or_null(c->tls.cert_file);
	ctx->key_file = dup_or_null(c->tls.key_file);
	ctx->server_name = dup_or_null(c->tls.server_name);
	ctx->insecure_skip_verify = c->tls.insecure_skip_verify;
	bcn_tls_warn_insecure(ins->name, ctx->insecure_skip_verify);
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

static bool strlist_equal(const struct bcn_strlist *a, const struct bcn_strlist *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->v[i], b->v[i]) != 0)
			return false;
	}
	return true;
}

static void etcd_reload(struct bcn_instance *ins, void *new_conf)
{
	const struct etcd_conf *o = ins->conf, *n = new_conf;
	struct etcd_ctx *ctx = ins->ctx;
	char changed[256] = "";

#define CHANGED(cond, name) \
	do { if (cond) snprintf(changed + strlen(changed), sizeof(changed) - strlen(changed), "%s%s", \
				changed[0] ? ", " : "", name); } while (0)
	CHANGED(!strlist_equal(&o->endpoints, &n->endpoints), "endpoints");
	CHANGED(strcmp(o->prefix, n->prefix), "prefix");
	CHANGED(o->ttl_ms != n->ttl_ms, "ttl");
	CHANGED(!bcn_tls_conf_equal(&o->tls, &n->tls), "tls");
	CHANGED(strcmp(o->username, n->username) || strcmp(o->password_file, n->password_file), "auth");
	CHANGED(o->timeout_ms != n->timeout_ms || o->dial_timeout_ms != n->dial_timeout_ms, "timeouts");
#undef CHANGED
	if (changed[0])
		bcn_warn(ctx->log, "changes to %s take effect after a restart", changed);
	bcn_tls_warn_insecure(ctx->log, ctx->insecure_skip_verify); /* what runs until a restart */
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
	free(ctx->ca_file);
	free(ctx->cert_file);
	free(ctx->key_file);
	free(ctx->server_name);
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
