/*
 * zk.c - the ZooKeeper registry backend: config, lifecycle, state for /v1/self.
 *
 * "registry": {"backend": "zookeeper", ...} takes:
 *
 *   key              default              meaning
 *   servers          ["127.0.0.1:2181"]   host:port of the ensemble's members; the
 *                                         client library picks one and moves on
 *                                         when it fails
 *   base_path        "/services"          Curator's base path: <base>/<service>/<id>
 *   chroot           ""                   a path every other path is under ("/apps"),
 *                                         as the client library allows
 *   session_timeout  "10s"                asked of the server (which bounds it by its
 *                                         min/maxSessionTimeout); the ephemeral znode
 *                                         outlives a lost agent by this much
 *   auth_file        ""                   file holding "user:password" for digest auth
 *
 * Every key needs a restart; only the watch lists apply on SIGHUP.
 *
 * Readiness (/ready): connected, registered (when a service is configured
 * and not drained) and every watch read once. Like etcd and Consul, it then
 * stays ready through outages, answering from memory marked stale.
 */
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zk.h"

#define C struct zk_conf
#define RESTART BCN_CFG_RESTART
static const struct bcn_cfg_field zk_fields[] = {
	BCN_ROW_STRLIST(C, servers, "servers", "[\"127.0.0.1:2181\"]", BCN_CFG_NONEMPTY | RESTART,
			"ZooKeeper servers, host:port"),
	BCN_ROW_STR(C, base_path, "base_path", "/services", BCN_CFG_NONEMPTY | RESTART,
		    "Curator's base path of registrations"),
	BCN_ROW_STR(C, chroot, "chroot", "", RESTART, "path every znode is under"),
	BCN_ROW_DURATION(C, session_timeout_ms, "session_timeout", "10s", BCN_S(1), BCN_MIN(10), RESTART,
			 "ZooKeeper session timeout"),
	BCN_ROW_STR(C, auth_file, "auth_file", "", RESTART, "file holding user:password (digest)"),
	BCN_ROW_END,
};
#undef C
#undef RESTART

/* A znode path: "/" then non-empty names, no "." or ".." names, no control bytes. */
static const char *path_problem(const char *p, bool root_ok)
{
	if (p[0] != '/')
		return "expected an absolute znode path such as \"/services\"";
	if (strcmp(p, "/") == 0)
		return root_ok ? NULL : "the root cannot be the base path";
	if (p[strlen(p) - 1] == '/')
		return "a znode path does not end with \"/\"";
	if (strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../") ||
	    !strcmp(p + strlen(p) - 2, "/.") || (strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/..")))
		return "empty, \".\" or \"..\" names are not allowed in a znode path";
	for (const unsigned char *c = (const unsigned char *)p; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			return "control characters are not allowed in a znode path";
	if (strlen(p) > 1024)
		return "path too long";
	return NULL;
}

static void zk_check(void *conf, const char *path, struct bcn_cfg_errs *errs)
{
	struct zk_conf *c = conf;
	const char *why;
	char p[256];

	for (size_t i = 0; i < c->servers.n; i++) {
		const char *s = c->servers.v[i], *colon = strrchr(s, ':');
		char *end;
		long port = colon ? strtol(colon + 1, &end, 10) : 0;
		if (!colon || colon == s || port < 1 || port > 65535 || *end || strchr(s, ',') ||
		    strchr(s, '/') || strlen(s) > 256) {
			snprintf(p, sizeof(p), "%s.servers[%zu]", path, i);
			bcn_cfg_err(errs, p, "expected host:port such as \"127.0.0.1:2181\" (a chroot goes in \"chroot\")");
		}
	}
	if ((why = path_problem(c->base_path, false))) {
		snprintf(p, sizeof(p), "%s.base_path", path);
		bcn_cfg_err(errs, p, "%s", why);
	}
	if (c->chroot[0] && (why = path_problem(c->chroot, false))) {
		snprintf(p, sizeof(p), "%s.chroot", path);
		bcn_cfg_err(errs, p, "%s", why);
	}
}

static void zk_check_service(void *conf, const struct bcn_service_conf *svc, const char *path,
			     struct bcn_cfg_errs *errs)
{
	(void)conf;
	(void)path;
	/* (A missing name is reported by the service's own checks.) */
	if (svc->name && (strchr(svc->name, '/') || !strcmp(svc->name, ".") || !strcmp(svc->name, "..")))
		bcn_cfg_err(errs, "$.service.name", "a ZooKeeper service name cannot contain \"/\" or be \".\" or \"..\"");
	if (svc->id && (strchr(svc->id, '/') || !strcmp(svc->id, ".") || !strcmp(svc->id, "..")))
		bcn_cfg_err(errs, "$.service.id", "a ZooKeeper instance id cannot contain \"/\" or be \".\" or \"..\"");
}

/* ---- state ---------------------------------------------------------------- */

void zk_report(struct zk_ctx *ctx)
{
	size_t total, synced, fresh;
	const char *watch_err, *err = NULL, *state;
	bool up = ctx->session == ZK_UP;
	bool service = ctx->reg.path != NULL;
	bool need_reg = service && !ctx->core->drained;

	if (ctx->closing)
		return;
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

static int zk_init(struct bcn_instance *ins)
{
	struct zk_conf *c = ins->conf;
	struct zk_ctx *ctx;
	size_t n = 1;
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
	for (size_t i = 0; i < c->servers.n; i++)
		n += strlen(c->servers.v[i]) + 1;
	n += strlen(c->chroot);
	ctx->hosts = calloc(1, n);
	ctx->base = strdup(c->base_path);
	if (!ctx->hosts || !ctx->base)
		goto oom;
	for (size_t i = 0; i < c->servers.n; i++) {
		if (i)
			strcat(ctx->hosts, ",");
		strcat(ctx->hosts, c->servers.v[i]);
	}
	strcat(ctx->hosts, c->chroot);
	ctx->session_timeout_ms = c->session_timeout_ms;
	if (c->auth_file[0]) {
		ctx->auth = bcn_read_secret_file(c->auth_file, err, sizeof(err));
		if (!ctx->auth) {
			bcn_error(ins->name, "%s", err);
			return -1;
		}
		if (!strchr(ctx->auth, ':') || ctx->auth[0] == ':') {
			bcn_error(ins->name, "auth_file %s must hold user:password", c->auth_file);
			return -1;
		}
	}
	if (zk_conn_init(ctx) != 0)
		goto oom;
	return zk_reg_init(ctx);
oom:
	bcn_error(ins->name, "out of memory");
	return -1;
}

static int zk_start(struct bcn_instance *ins)
{
	struct zk_ctx *ctx = ins->ctx;

	zk_watch_apply(ctx);
	zk_report(ctx);
	zk_conn_start(ctx);
	return 0;
}

static void zk_reload(struct bcn_instance *ins, void *new_conf)
{
	struct zk_ctx *ctx = ins->ctx;

	(void)new_conf; /* every key is restart-only: the core kept them and logged changes */
	zk_watch_apply(ctx);
	zk_flush(ctx);
	zk_report(ctx);
}

static void zk_service_changed(struct bcn_instance *ins)
{
	zk_reg_changed(ins->ctx);
}

static void zk_stop(struct bcn_instance *ins, bcn_stop_done_cb done)
{
	struct zk_ctx *ctx = ins->ctx;

	ctx->stopping = true;
	zk_watch_down(ctx);
	zk_report(ctx);
	zk_reg_stop(ctx, done);
}

static void zk_exit(struct bcn_instance *ins)
{
	struct zk_ctx *ctx = ins->ctx;

	if (!ctx)
		return;
	ctx->stopping = true;
	zk_conn_free(ctx);   /* closes the handle first: its completions still find ctx */
	zk_watch_free_all(ctx);
	zk_reg_free(ctx);
	free(ctx->hosts);
	free(ctx->base);
	if (ctx->auth)
		sodium_free(ctx->auth);
	free(ctx);
	ins->ctx = NULL;
}

static void zk_self(struct bcn_instance *ins, json_t *obj)
{
	struct zk_ctx *ctx = ins->ctx;

	json_object_set_new(obj, "servers", json_string(ctx->hosts));
	json_object_set_new(obj, "session", json_string(zk_session_hex(ctx)));
	json_object_set_new(obj, "znode", ctx->reg.path ? json_string(ctx->reg.path) : json_null());
	json_object_set_new(obj, "registered", json_boolean(ctx->reg.registered));
	json_object_set_new(obj, "session_timeout_ms", json_integer((json_int_t)ctx->session_timeout_ms));
	json_object_set_new(obj, "watches", zk_watch_self(ctx));
}

const struct bcn_plugin bcn_plugin_zookeeper = {
	.name = "zookeeper",
	.description = "ZooKeeper registry in Apache Curator's Service Discovery layout",
	.kind = BCN_PLUGIN_REGISTRY,
	.section = "registry",
	.section_list = "registries",
	.config_map = zk_fields,
	.config_size = sizeof(struct zk_conf),
	.cb_check = zk_check,
	.cb_check_service = zk_check_service,
	.cb_init = zk_init,
	.cb_start = zk_start,
	.cb_reload = zk_reload,
	.cb_service_changed = zk_service_changed,
	.cb_stop = zk_stop,
	.cb_exit = zk_exit,
	.cb_self = zk_self,
};
