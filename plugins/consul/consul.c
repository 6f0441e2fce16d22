/*
 * consul.c - the Consul registry backend: config, lifecycle, state for /v1/self.
 *
 * "registry": {"backend": "consul", ...} takes:
 *
 *   key                        default                  meaning
 *   address                    "http://127.0.0.1:8500"  the local agent: http://, https://
 *                                                       or unix:///path/to/consul.sock
 *   token_file                 ""                       file holding the ACL token
 *   datacenter                 ""                       ?dc= of discovery and KV queries
 *   consistency                "default"                "stale": discovery and KV reads take
 *                                                       ?stale and keep working through a
 *                                                       leader election (possibly stale data)
 *   namespace, partition       ""                       Consul Enterprise: ?ns= / ?partition=
 *                                                       on every request, Namespace/Partition
 *                                                       in the registration (untested on a
 *                                                       real Enterprise server)
 *   tls                        {}                       ca_file, cert_file, key_file,
 *                                                       server_name, insecure_skip_verify
 *   ttl                        "10s"                    TTL of the check beacon drives;
 *                                                       updated every ttl/2
 *   deregister_critical_after  "1m"                     Consul removes the service after its
 *                                                       check was critical this long ("0": never;
 *                                                       Consul raises less than 1m to 1m)
 *   wait                       "5m"                     wait of blocking queries (max 10m)
 *   timeout                    "5s"                     limit of one request; a blocking query
 *                                                       gets wait + wait/16 + timeout
 *
 * Only the watch lists (top-level "watch") change on SIGHUP; changes to the
 * keys above are reported and take effect after a restart.
 *
 * Readiness (/ready): registered (when a service is configured and not
 * drained) and every watched service and prefix answered once. It then
 * stays ready through outages: answers are served from the last known
 * state, marked stale, until every query has answered again.
 */
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consul.h"

#define TOKEN_PREFIX "X-Consul-Token: "
#define TOKEN_MAX 4096

/* Every key is read once at start: a change is logged and waits for a restart. */
#define C struct consul_conf
#define RESTART BCN_CFG_RESTART
static const struct bcn_cfg_field consul_fields[] = {
	BCN_ROW_STR(C, address, "address", "http://127.0.0.1:8500", BCN_CFG_NONEMPTY | RESTART, "the local Consul agent"),
	BCN_ROW_STR(C, token_file, "token_file", "", RESTART, "file holding the ACL token"),
	BCN_ROW_STR(C, datacenter, "datacenter", "", RESTART, "datacenter of discovery and KV queries"),
	BCN_ROW_STR(C, consistency, "consistency", "default", RESTART, "\"default\" or \"stale\" reads"),
	BCN_ROW_STR(C, namespace_, "namespace", "", RESTART, "Consul Enterprise namespace"),
	BCN_ROW_STR(C, partition, "partition", "", RESTART, "Consul Enterprise admin partition"),
	BCN_ROW_OBJECT(C, tls, "tls", bcn_tls_fields, RESTART, "TLS files"),
	BCN_ROW_DURATION(C, ttl_ms, "ttl", "10s", BCN_MS(500), BCN_DAYS(1), RESTART,
			 "TTL of the health check beacon drives"),
	BCN_ROW_DURATION(C, dereg_ms, "deregister_critical_after", "1m", 0, BCN_DAYS(365), RESTART,
			 "Consul removes the service after its check was critical this long (0: never)"),
	BCN_ROW_DURATION(C, wait_ms, "wait", "5m", BCN_MS(100), BCN_MIN(10), RESTART, "wait of blocking queries"),
	BCN_ROW_DURATION(C, timeout_ms, "timeout", "5s", BCN_MS(100), BCN_MIN(10), RESTART, "limit of one request"),
	BCN_ROW_END,
};
#undef C
#undef RESTART

static void consul_check(void *conf, const char *path, struct bcn_cfg_errs *errs)
{
	struct consul_conf *c = conf;
	const char *a = c->address;
	char p[256];

	snprintf(p, sizeof(p), "%s.address", path);
	if (strncmp(a, "unix://", 7) == 0) {
		if (a[7] != '/')
			bcn_cfg_err(errs, p, "a Unix socket address is unix:///absolute/path/to/consul.sock");
		else if (strlen(a + 7) >= 108)
			bcn_cfg_err(errs, p, "the socket path is too long (at most 107 bytes)");
	} else if (strncmp(a, "http://", 7) != 0 && strncmp(a, "https://", 8) != 0) {
		bcn_cfg_err(errs, p, "expected an http:// or https:// URL such as \"http://127.0.0.1:8500\", "
			    "or unix:///path/to/consul.sock");
	} else if (strlen(a) > 512) {
		bcn_cfg_err(errs, p, "URL too long");
	} else if (strpbrk(a + 8, "?#")) {
		bcn_cfg_err(errs, p, "give the agent's base URL only, without a query");
	}
	if (!c->tls.cert_file[0] != !c->tls.key_file[0]) {
		snprintf(p, sizeof(p), "%s.tls", path);
		bcn_cfg_err(errs, p, "give both \"cert_file\" and \"key_file\" for a client certificate, or neither");
	}
	snprintf(p, sizeof(p), "%s.tls", path);
	bcn_tls_conf_check(&c->tls, p, errs);
	if (c->datacenter[0] && (strlen(c->datacenter) > 64 ||
				 c->datacenter[strspn(c->datacenter, "abcdefghijklmnopqrstuvwxyz"
							 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")])) {
		snprintf(p, sizeof(p), "%s.datacenter", path);
		bcn_cfg_err(errs, p, "a datacenter name has at most 64 letters, digits, '-', '_' or '.'");
	}
	if (strcmp(c->consistency, "default") != 0 && strcmp(c->consistency, "stale") != 0) {
		snprintf(p, sizeof(p), "%s.consistency", path);
		bcn_cfg_err(errs, p, "expected \"default\" or \"stale\", got \"%.40s\"", c->consistency);
	}
	for (int i = 0; i < 2; i++) {
		const char *v = i ? c->partition : c->namespace_;
		size_t n = strlen(v);
		/* Enterprise names: letters, digits and '-', starting and ending
		 * with a letter or digit, at most 64 (validNamespaceName). */
		if (n && (n > 64 || v[strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")] ||
			  v[0] == '-' || v[n - 1] == '-')) {
			snprintf(p, sizeof(p), "%s.%s", path, i ? "partition" : "namespace");
			bcn_cfg_err(errs, p, "a %s name has at most 64 letters, digits or '-' (not first or last)",
				    i ? "partition" : "namespace");
		}
	}
	if (c->dereg_ms && c->dereg_ms < 60000) {
		/* api-docs/agent/check, DeregisterCriticalServiceAfter: "The minimum
		 * timeout is 1 minute, and the process that reaps critical services
		 * runs every 30 seconds." Valid, but not what was asked for. */
		snprintf(p, sizeof(p), "%s.deregister_critical_after", path);
		bcn_cfg_warn(errs, p, "Consul raises it to 1m and reaps every 30s: a critical service is "
			     "removed 1m to 1m30s after its check turned critical");
	}
}

/* Consul's limits on service metadata (agent/structs/structs.go in
 * hashicorp/consul: ValidateServiceMetadata, validateMetaPair, metaKeyFormat
 * `^[a-zA-Z0-9_-]+$`, metaKeyMaxLength 128, metaValueMaxLength 512,
 * metaMaxKeyPairs 64, the reserved prefix "consul-"). Consul answers a
 * registration that breaks them with 400, so it would be retried forever:
 * refuse the config instead. */
static void consul_check_service(void *conf, const struct bcn_service_conf *svc, const char *path,
				 struct bcn_cfg_errs *errs)
{
	const char *key;
	json_t *v;
	char p[300];
	(void)conf;

	if (json_object_size(svc->meta) > 64)
		bcn_cfg_err(errs, "$.service.meta", "Consul (the registry at %s) would refuse the registration: "
			    "at most 64 meta pairs, got %zu", path, json_object_size(svc->meta));
	json_object_foreach(svc->meta, key, v) {
		const char *why = NULL;
		size_t klen = strlen(key);

		if (!klen)
			why = "a meta key is empty";
		else if (key[strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")])
			why = "a meta key holds only letters, digits, '_' and '-'";
		else if (klen > 128)
			why = "a meta key has at most 128 bytes";
		else if (strncmp(key, "consul-", 7) == 0)
			why = "the key prefix \"consul-\" is reserved for Consul's own keys";
		else if (strlen(json_string_value(v) ? json_string_value(v) : "") > 512)
			why = "a meta value has at most 512 bytes";
		if (!why)
			continue;
		bcn_cfg_path_key(p, sizeof(p), "$.service.meta", key);
		bcn_cfg_err(errs, p, "Consul (the registry at %s) would refuse the registration: %s", path, why);
	}
}

/* ---- state ---------------------------------------------------------------- */

void consul_report(struct consul_ctx *ctx)
{
	size_t total, synced, fresh;
	const char *watch_err, *err = NULL, *state;
	char named[300];
	bool service = ctx->reg.id != NULL;
	bool need_reg = service && !ctx->core->drained;
	const struct bcn_watch *w;

	bcn_watchset_counts(&ctx->watches, &total, &synced, &fresh, &watch_err);
	/* Say which watch fails: /ready and /v1/self show this sentence. */
	SLIST_FOREACH(w, &ctx->watches, link) {
		if (watch_err && w->last_error == watch_err) {
			snprintf(named, sizeof(named), "query of %s %s failed: %s", w->kv ? "prefix" : "service",
				 w->name, watch_err);
			watch_err = named;
			break;
		}
	}
	bcn_report_stale(ctx->ins, ctx->down || fresh < total);
	if (synced == total && (!need_reg || ctx->reg.registered))
		ctx->ready = true; /* stays: outages are served stale, not unready */

	if (ctx->stopping) {
		state = "stopping";
	} else if (ctx->down) {
		state = ctx->ever_answered ? "unreachable" : "connecting";
		err = ctx->err;
	} else if (!ctx->ever_answered && (total || need_reg)) {
		state = "connecting";
	} else if (fresh < total) {
		state = "syncing";
		err = ctx->acl_err[0] ? ctx->acl_err : watch_err;
	} else if (need_reg && !ctx->reg.registered) {
		state = "registering";
		err = ctx->acl_err[0] ? ctx->acl_err : ctx->reg.err;
	} else {
		state = !service ? "synced" : ctx->core->drained ? "drained" : "registered";
		ctx->acl_err[0] = '\0'; /* everything we need works */
	}
	if (err && err[0])
		bcn_instance_report(ctx->ins, ctx->ready, state, "%s", err);
	else
		bcn_instance_report(ctx->ins, ctx->ready, state, NULL);
}

void consul_lost(struct consul_ctx *ctx, const char *why)
{
	snprintf(ctx->err, sizeof(ctx->err), "%s", why);
	if (ctx->down || ctx->stopping) {
		consul_report(ctx);
		return;
	}
	ctx->down = true;
	/* Before the first answer the instance report says it ("connecting: ..."). */
	if (ctx->ever_answered)
		bcn_warn(ctx->log, "lost the Consul agent: %s; serving the last known state", why);
	consul_watch_lost(ctx);
	consul_reg_lost(ctx);
	consul_report(ctx);
}

void consul_answered(struct consul_ctx *ctx)
{
	if (!ctx->ever_answered)
		bcn_info(ctx->log, "connected to the Consul agent at %s", ctx->address);
	ctx->ever_answered = true;
	if (!ctx->down)
		return;
	ctx->down = false;
	ctx->err[0] = '\0';
	bcn_info(ctx->log, "the Consul agent at %s answers again", ctx->address);
	/* Whoever waits in a backoff can go now. */
	consul_reg_kick(ctx);
	consul_watch_kick(ctx);
}

void consul_acl_denied(struct consul_ctx *ctx, const char *msg)
{
	/* Logged by bcn_instance_report when it changes: once, not per request. */
	snprintf(ctx->acl_err, sizeof(ctx->acl_err), "%s", msg);
}

#define NO_LEADER_WARNING "Consul has no known leader (an election, or quorum lost): answers come " \
	"from a server without contact to a leader and may be stale"
#define ACL_DENY_WARNING "Consul's ACL default policy is deny and no token_file is set: discovery and " \
	"KV answers leave out everything the anonymous token may not read (an empty answer looks like " \
	"no instances)"

void consul_note_headers(struct consul_ctx *ctx, const struct consul_reply *r)
{
	/* Only reads carry X-Consul-KnownLeader; without ?stale a read with no
	 * leader fails instead (500 "No cluster leader", the RPC forwarding in
	 * agent/consul/rpc.go), and that error is reported by the watch. */
	if (r->known_leader >= 0 && r->known_leader != ctx->known_leader) {
		if (!r->known_leader)
			bcn_warn(ctx->log, "%s", NO_LEADER_WARNING);
		else if (ctx->known_leader == 0)
			bcn_info(ctx->log, "Consul has a known leader again");
		ctx->known_leader = r->known_leader;
	}
	if (r->acl_deny && !ctx->token_header && !ctx->acl_deny_anonymous) {
		ctx->acl_deny_anonymous = true;
		bcn_warn(ctx->log, "%s", ACL_DENY_WARNING);
	}
}

/* ---- lifecycle ------------------------------------------------------------ */

/* "X-Consul-Token: <token>" in guarded memory; the file's buffer is wiped. */
static int load_token(struct consul_ctx *ctx, const char *file)
{
	char err[256], *tok = bcn_read_secret_file(file, err, sizeof(err));
	size_t len;
	bool ok;

	if (!tok) {
		bcn_error(ctx->log, "%s", err);
		return -1;
	}
	len = strlen(tok);
	/* Tokens are UUIDs; anything else could not travel in a header anyway. */
	ok = len <= TOKEN_MAX;
	for (size_t i = 0; ok && i < len; i++)
		ok = (unsigned char)tok[i] >= 0x21 && (unsigned char)tok[i] <= 0x7e;
	if (!ok) {
		bcn_error(ctx->log, "%s does not hold an ACL token (one word of visible ASCII, at most %d bytes)",
			  file, TOKEN_MAX);
		sodium_free(tok);
		return -1;
	}
	ctx->token_header = sodium_malloc(sizeof(TOKEN_PREFIX) + len);
	if (!ctx->token_header) {
		bcn_error(ctx->log, "cannot allocate guarded memory for the ACL token");
		sodium_free(tok);
		return -1;
	}
	memcpy(ctx->token_header, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1);
	memcpy(ctx->token_header + sizeof(TOKEN_PREFIX) - 1, tok, len + 1);
	sodium_free(tok);
	return 0;
}

static int consul_init(struct bcn_instance *ins)
{
	struct consul_conf *c = ins->conf;
	struct consul_ctx *ctx;
	size_t n;

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
	ctx->address = strdup(c->address);
	if (strncmp(c->address, "unix://", 7) == 0) {
		/* The host part is ignored on a Unix socket; "consul" reads well in logs. */
		ctx->unix_path = strdup(c->address + 7);
		ctx->base_url = strdup("http://consul");
		if (!ctx->unix_path)
			goto oom;
	} else {
		ctx->base_url = strdup(c->address);
	}
	n = 3 * strlen(c->datacenter) + 4;
	ctx->dc_param = malloc(n);
	if (!ctx->address || !ctx->base_url || !ctx->dc_param)
		goto oom;
	snprintf(ctx->dc_param, n, "%s", c->datacenter[0] ? "dc=" : "");
	consul_escape(ctx->dc_param, n, c->datacenter, false);
	n = 3 * (strlen(c->namespace_) + strlen(c->partition)) + 16;
	ctx->scope_param = malloc(n);
	if (!ctx->scope_param)
		goto oom;
	snprintf(ctx->scope_param, n, "%s", c->namespace_[0] ? "ns=" : "");
	consul_escape(ctx->scope_param, n, c->namespace_, false);
	if (c->partition[0]) {
		strcat(ctx->scope_param, c->namespace_[0] ? "&partition=" : "partition=");
		consul_escape(ctx->scope_param, n, c->partition, false);
	}
	ctx->stale_reads = strcmp(c->consistency, "stale") == 0;
	ctx->known_leader = -1;
	n = strlen(ctx->base_url);
	while (n > 0 && ctx->base_url[n - 1] == '/')
		ctx->base_url[--n] = '\0';
	bcn_tls_warn_insecure(ins->name, c->tls.insecure_skip_verify);
	ctx->ttl_ms = c->ttl_ms;
	ctx->dereg_ms = c->dereg_ms;
	ctx->wait_ms = c->wait_ms;
	ctx->timeout_ms = c->timeout_ms;
	if (c->token_file[0] && load_token(ctx, c->token_file) < 0)
		return -1;
	return consul_reg_init(ctx);
oom:
	bcn_error(ins->name, "out of memory");
	return -1;
}

static int consul_start(struct bcn_instance *ins)
{
	struct consul_ctx *ctx = ins->ctx;

	consul_watch_apply(ctx);
	consul_reg_changed(ctx); /* registers */
	consul_report(ctx);
	return 0;
}

/* Every key of this plugin is restart-only: the core has kept the running
 * values in new_conf and logged what changed. Only the watch lists apply. */
static void consul_reload(struct bcn_instance *ins, void *new_conf)
{
	const struct consul_conf *n = new_conf;
	struct consul_ctx *ctx = ins->ctx;

	bcn_tls_warn_insecure(ctx->log, n->tls.insecure_skip_verify); /* what runs until a restart */
	consul_watch_apply(ctx);
	consul_report(ctx);
}

static void consul_service_changed(struct bcn_instance *ins)
{
	consul_reg_changed(ins->ctx);
}

static void consul_stop(struct bcn_instance *ins, bcn_stop_done_cb done)
{
	struct consul_ctx *ctx = ins->ctx;

	ctx->stopping = true;
	consul_watch_stop_all(ctx);
	consul_report(ctx);
	consul_reg_stop(ctx, done);
}

static void consul_exit(struct bcn_instance *ins)
{
	struct consul_ctx *ctx = ins->ctx;

	if (!ctx)
		return;
	ctx->stopping = true;
	consul_watch_free_all(ctx);
	consul_reg_free(ctx);
	bcn_http_group_free(ctx->reqs); /* cancels what is left */
	free(ctx->address);
	free(ctx->base_url);
	free(ctx->unix_path);
	free(ctx->dc_param);
	free(ctx->scope_param);
	if (ctx->token_header)
		sodium_free(ctx->token_header);
	free(ctx);
	ins->ctx = NULL;
}

static void consul_self(struct bcn_instance *ins, json_t *obj)
{
	struct consul_ctx *ctx = ins->ctx;
	const struct consul_conf *c = ins->conf;
	json_t *warnings = json_array();

	json_object_set_new(obj, "address", json_string(ctx->address));
	json_object_set_new(obj, "datacenter", json_string(c->datacenter));
	json_object_set_new(obj, "consistency", json_string(c->consistency));
	json_object_set_new(obj, "namespace", json_string(c->namespace_));
	json_object_set_new(obj, "partition", json_string(c->partition));
	json_object_set_new(obj, "token", json_boolean(ctx->token_header != NULL)); /* whether, never which */
	json_object_set_new(obj, "reachable", json_boolean(ctx->ever_answered && !ctx->down));
	json_object_set_new(obj, "known_leader", ctx->known_leader < 0 ? json_null() : json_boolean(ctx->known_leader));
	if (ctx->known_leader == 0)
		json_array_append_new(warnings, json_string(NO_LEADER_WARNING));
	if (ctx->acl_deny_anonymous)
		json_array_append_new(warnings, json_string(ACL_DENY_WARNING));
	json_object_set_new(obj, "warnings", warnings);
	json_object_set_new(obj, "ttl_ms", json_integer((json_int_t)ctx->ttl_ms));
	consul_reg_self(ctx, obj);
	json_object_set_new(obj, "watches", consul_watch_self(ctx));
}

const struct bcn_plugin bcn_plugin_consul = {
	.name = "consul",
	.description = "Consul registry: agent registration with a TTL check, blocking-query discovery and config",
	.kind = BCN_PLUGIN_REGISTRY,
	.section = "registry",
	.section_list = "registries",
	.config_map = consul_fields,
	.config_size = sizeof(struct consul_conf),
	.cb_check = consul_check,
	.cb_check_service = consul_check_service,
	.cb_init = consul_init,
	.cb_start = consul_start,
	.cb_reload = consul_reload,
	.cb_service_changed = consul_service_changed,
	.cb_stop = consul_stop,
	.cb_exit = consul_exit,
	.cb_self = consul_self,
};
