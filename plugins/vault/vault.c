/*
 * vault.c - the Vault secrets backend: config, lifecycle, state for /v1/self.
 *
 * "vault": {...} takes:
 *
 *   key                 default                   meaning
 *   address             "https://127.0.0.1:8200"  Vault's URL
 *   namespace           ""                        X-Vault-Namespace (Enterprise)
 *   auth.method         (required)                token, approle or kubernetes
 *   auth.token_file     "" / the service-account  token: the token; kubernetes: the
 *                       token path                service-account JWT
 *   auth.role_id_file   ""                        approle: the role_id
 *   auth.secret_id_file ""                        approle: the secret_id (optional for
 *                                                 roles without bind_secret_id)
 *   auth.remove_secret_id_file_after_reading  true  as Vault Agent
 *   auth.role           ""                        kubernetes: the Vault role
 *   auth.mount          approle / kubernetes      where the auth method is mounted
 *   secrets[]           []                        {name, path, refresh ("5m"),
 *                                                 allow_uids (the agent's uid),
 *                                                 version (KV v2 pin), kv_version
 *                                                 (0 detect, 1, 2)}
 *   tls                 {}                        ca_file, cert_file, key_file,
 *                                                 server_name, insecure_skip_verify
 *   timeout             "10s"                     limit of one request
 *   revoke_on_shutdown  true                      revoke a token beacon logged in for
 *                                                 (never token_file's) on SIGTERM
 *
 * On SIGHUP allow_uids and refresh change live; the rest needs a restart.
 *
 * Readiness (/ready): once every secret has been read once. It then stays
 * ready through outages: cached secrets are served, marked stale, and leased
 * ones until their lease ends.
 */
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vault.h"

#define MAX_UID 4294967294LL

#define A struct vault_auth_conf
static const struct bcn_cfg_field auth_fields[] = {
	BCN_ROW_STR(A, method, "method", NULL, BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY, "token, approle or kubernetes"),
	BCN_ROW_STR(A, token_file, "token_file", "", 0,
		    "file holding the token (token) or the service-account JWT (kubernetes)"),
	BCN_ROW_STR(A, role_id_file, "role_id_file", "", 0, "file holding the AppRole role_id"),
	BCN_ROW_STR(A, secret_id_file, "secret_id_file", "", 0, "file holding the AppRole secret_id"),
	BCN_ROW_BOOL(A, remove_secret_id_file_after_reading, "remove_secret_id_file_after_reading", "true", 0,
		     "delete secret_id_file once read"),
	BCN_ROW_STR(A, role, "role", "", 0, "Kubernetes auth role"),
	BCN_ROW_STR(A, mount, "mount", "", 0, "auth mount path (default approle or kubernetes)"),
	BCN_ROW_END,
};
#undef A

#define S struct vault_secret_conf
static const struct bcn_cfg_field secret_fields[] = {
	BCN_ROW_STR(S, name, "name", NULL, BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY, "name in /v1/secrets/{name}"),
	BCN_ROW_STR(S, path, "path", NULL, BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY, "Vault path, e.g. secret/data/web/db"),
	BCN_ROW_DURATION(S, refresh_ms, "refresh", "5m", BCN_MS(100), BCN_DAYS(1), 0,
			 "how often static secrets are read again"),
	BCN_ROW_JSON(S, allow_uids, "allow_uids", 0, "peer uids that may read it (default: the agent's)"),
	BCN_ROW_INT(S, version, "version", "0", 0, 1000000000000LL, 0, "KV v2 version to pin, 0 = latest"),
	BCN_ROW_INT(S, kv_version, "kv_version", "0", 0, 2, 0, "0 = detect, 1 or 2"),
	BCN_ROW_END,
};
#undef S

/* The secrets list changes live on SIGHUP; the rest is read once at start. */
#define C struct vault_conf
#define RESTART BCN_CFG_RESTART
static const struct bcn_cfg_field vault_fields[] = {
	BCN_ROW_STR(C, address, "address", "https://127.0.0.1:8200", BCN_CFG_NONEMPTY | RESTART, "Vault's URL"),
	BCN_ROW_STR(C, namespace_, "namespace", "", RESTART, "Vault Enterprise namespace"),
	BCN_ROW_OBJECT(C, auth, "auth", auth_fields, BCN_CFG_REQUIRED | RESTART, "how to log in"),
	BCN_ROW_OBJLIST(C, secrets, "secrets", secret_fields, struct vault_secret_conf, 0, "secrets to serve"),
	BCN_ROW_OBJECT(C, tls, "tls", bcn_tls_fields, RESTART, "TLS files"),
	BCN_ROW_DURATION(C, timeout_ms, "timeout", "10s", BCN_MS(100), BCN_MIN(10), RESTART, "limit of one request"),
	BCN_ROW_BOOL(C, revoke_on_shutdown, "revoke_on_shutdown", "true", RESTART, "revoke the token at stop"),
	BCN_ROW_END,
};
#undef C
#undef RESTART

/* ---- checks ---------------------------------------------------------------- */

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= 128 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* Characters that need no escaping in a URL path (Vault paths never need more). */
static bool path_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= 512 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/@+=:~,") == n;
}

static void check_uids(const json_t *u, const char *path, struct bcn_cfg_errs *errs)
{
	size_t i;
	json_t *x;

	if (!json_is_array(u)) {
		bcn_cfg_err(errs, path, "expected an array of uids such as [1000]");
		return;
	}
	json_array_foreach(u, i, x) {
		if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > MAX_UID) {
			char p[300];
			snprintf(p, sizeof(p), "%.256s[%zu]", path, i);
			bcn_cfg_err(errs, p, "expected a uid (an integer from 0 to %lld)", MAX_UID);
		}
	}
}

static void check_auth(const struct vault_auth_conf *a, const char *path, struct bcn_cfg_errs *errs)
{
	char p[256];
	bool token = strcmp(a->method, "token") == 0, approle = strcmp(a->method, "approle") == 0;
	bool k8s = strcmp(a->method, "kubernetes") == 0;

#define AUTH_ERR(key, ...) do { snprintf(p, sizeof(p), "%s.auth.%s", path, key); \
	bcn_cfg_err(errs, p, __VA_ARGS__); } while (0)
	if (!token && !approle && !k8s) {
		AUTH_ERR("method", "unknown method \"%.40s\" (use token, approle or kubernetes)", a->method);
		return;
	}
	if (token && !a->token_file[0])
		AUTH_ERR("token_file", "the token method needs the file holding the token");
	if (approle && !a->role_id_file[0])
		AUTH_ERR("role_id_file", "the approle method needs the file holding the role_id");
	if (approle && a->token_file[0])
		AUTH_ERR("token_file", "not used by the approle method");
	if (!approle && (a->role_id_file[0] || a->secret_id_file[0]))
		AUTH_ERR(a->role_id_file[0] ? "role_id_file" : "secret_id_file", "only used by the approle method");
	if (k8s && !a->role[0])
		AUTH_ERR("role", "the kubernetes method needs the Vault role to log in as");
	if (!k8s && a->role[0])
		AUTH_ERR("role", "only used by the kubernetes method");
	if (token && a->mount[0])
		AUTH_ERR("mount", "not used by the token method");
	if (a->mount[0] && !path_ok(a->mount))
		AUTH_ERR("mount", "expected a mount path such as \"approle\"");
#undef AUTH_ERR
}

static void vault_check(void *conf, const char *path, struct bcn_cfg_errs *errs)
{
	struct vault_conf *c = conf;
	const struct vault_secret_conf *s = c->secrets.v;
	char p[256];

	if ((strncmp(c->address, "http://", 7) != 0 && strncmp(c->address, "https://", 8) != 0) ||
	    strlen(c->address) > 512) {
		snprintf(p, sizeof(p), "%s.address", path);
		bcn_cfg_err(errs, p, "expected an http:// or https:// URL such as \"https://vault:8200\"");
	}
	if (c->namespace_[0] && !path_ok(c->namespace_)) {
		snprintf(p, sizeof(p), "%s.namespace", path);
		bcn_cfg_err(errs, p, "expected a namespace path such as \"team/app\"");
	}
	if (!c->tls.cert_file[0] != !c->tls.key_file[0]) {
		snprintf(p, sizeof(p), "%s.tls", path);
		bcn_cfg_err(errs, p, "give both \"cert_file\" and \"key_file\" for a client certificate, or neither");
	}
	snprintf(p, sizeof(p), "%s.tls", path);
	bcn_tls_conf_check(&c->tls, p, errs);
	check_auth(&c->auth, path, errs);
	for (size_t i = 0; i < c->secrets.n; i++) {
		char sp[128];

		snprintf(sp, sizeof(sp), "%s.secrets[%zu]", path, i);
		if (!name_ok(s[i].name)) {
			snprintf(p, sizeof(p), "%s.name", sp);
			bcn_cfg_err(errs, p, "a secret name uses only letters, digits, '.', '_' and '-'");
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(s[i].name, s[j].name) == 0) {
				snprintf(p, sizeof(p), "%s.name", sp);
				bcn_cfg_err(errs, p, "secret \"%.60s\" is already defined at %s.secrets[%zu]",
					    s[i].name, path, j);
			}
		}
		if (!path_ok(s[i].path)) {
			snprintf(p, sizeof(p), "%s.path", sp);
			bcn_cfg_err(errs, p, "expected a Vault path such as \"secret/data/web/db\" "
				    "(letters, digits and ._-/@+=:~, only; pin KV v2 versions with \"version\")");
		}
		if (s[i].version > 0 && (s[i].kv_version == 1 ||
					 (s[i].kv_version == 0 && !strstr(s[i].path, "/data/")))) {
			snprintf(p, sizeof(p), "%s.version", sp);
			bcn_cfg_err(errs, p, "only KV v2 secrets have versions (a path with \"/data/\", or kv_version 2)");
		}
		if (s[i].allow_uids) {
			snprintf(p, sizeof(p), "%s.allow_uids", sp);
			check_uids(s[i].allow_uids, p, errs);
		}
	}
}

uid_t *vault_uids(const json_t *allow_uids, size_t *n)
{
	size_t i, count = allow_uids ? json_array_size(allow_uids) : 1;
	uid_t *u = malloc((count ? count : 1) * sizeof(*u));
	json_t *x;

	if (!u)
		return NULL;
	*n = 0;
	if (!allow_uids) {
		u[(*n)++] = geteuid();
		return u;
	}
	json_array_foreach(allow_uids, i, x)
		u[(*n)++] = (uid_t)json_integer_value(x);
	return u;
}

/* ---- state ------------------------------------------------------------------ */

void vault_report(struct vault_ctx *v)
{
	size_t loaded, stale;
	const char *serr, *err = NULL, *state;

	vault_secrets_counts(v, &loaded, &stale, &serr);
	if (!v->ready && v->ever_authed && loaded == v->nsecrets)
		v->ready = true; /* stays: outages are served stale, not unready */
	bcn_report_stale(v->ins, stale > 0);
	if (v->stopping) {
		state = "stopping";
	} else if (v->down) {
		state = v->sealed ? "sealed" : "unreachable";
		err = v->err;
	} else if (v->auth == AUTH_FAILED) {
		state = "auth failed";
		err = v->auth_err;
	} else if (v->auth != AUTH_OK) {
		state = "authenticating";
		err = v->auth_err;
	} else if (loaded < v->nsecrets) {
		state = "loading";
		err = serr;
	} else {
		state = stale ? "stale" : "synced";
		err = serr;
	}
	if (err && err[0])
		bcn_instance_report(v->ins, v->ready, state, "%s", err);
	else
		bcn_instance_report(v->ins, v->ready, state, NULL);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static int vault_init(struct bcn_instance *ins)
{
	struct vault_conf *c = ins->conf;
	struct vault_ctx *v;
	size_t n;

	v = calloc(1, sizeof(*v));
	if (!v)
		goto oom;
	ins->ctx = v;
	v->ins = ins;
	v->core = ins->core;
	v->log = ins->name;
	/* The core owns the store (it outlives this instance, so answers keep
	 * working until the agent exits); it exists whenever a secrets plugin
	 * is configured. */
	v->store = ins->core->secrets;
	if (!v->store) {
		bcn_error(ins->name, "the agent has no secret store");
		return -1;
	}
	v->address = strdup(c->address);
	if (!v->address)
		goto oom;
	n = strlen(v->address);
	while (n > 0 && v->address[n - 1] == '/')
		v->address[--n] = '\0';
	if (c->namespace_[0]) {
		n = strlen(c->namespace_) + sizeof("X-Vault-Namespace: ");
		v->ns_header = malloc(n);
		if (!v->ns_header)
			goto oom;
		snprintf(v->ns_header, n, "X-Vault-Namespace: %s", c->namespace_);
	}
	bcn_tls_warn_insecure(ins->name, c->tls.insecure_skip_verify);
	v->timeout_ms = c->timeout_ms;
	v->revoke_on_shutdown = c->revoke_on_shutdown;
	if (vault_auth_init(v, &c->auth) < 0)
		return -1;
	return vault_secrets_init(v, c);
oom:
	bcn_error(ins->name, "out of memory");
	return -1;
}

static int vault_start(struct bcn_instance *ins)
{
	struct vault_ctx *v = ins->ctx;

	vault_report(v);
	vault_auth_start(v);
	return 0;
}

static void vault_reload(struct bcn_instance *ins, void *new_conf)
{
	const struct vault_conf *n = new_conf;
	struct vault_ctx *v = ins->ctx;

	/* The core has kept the running values of the restart-only keys in
	 * new_conf and logged what changed; only the secrets list applies. */
	bcn_tls_warn_insecure(v->log, n->tls.insecure_skip_verify); /* what runs until a restart */
	vault_secrets_reload(v, n);
	vault_report(v);
}

static void vault_stop(struct bcn_instance *ins, bcn_stop_done_cb done)
{
	struct vault_ctx *v = ins->ctx;

	v->stopping = true;
	vault_secrets_stop(v);
	vault_report(v);
	vault_auth_stop(v, done);
}

static void vault_exit(struct bcn_instance *ins)
{
	struct vault_ctx *v = ins->ctx;

	if (!v)
		return;
	v->stopping = true;
	vault_secrets_free(v);
	bcn_http_group_free(v->reqs); /* cancels what is left */
	vault_auth_free(v);
	free(v->address);
	free(v->ns_header);
	free(v);
	ins->ctx = NULL;
}

static void vault_self(struct bcn_instance *ins, json_t *obj)
{
	struct vault_ctx *v = ins->ctx;

	json_object_set_new(obj, "address", json_string(v->address));
	json_object_set_new(obj, "auth", vault_auth_self(v));
	json_object_set_new(obj, "secrets", vault_secrets_self(v));
}

const struct bcn_plugin bcn_plugin_vault = {
	.name = "vault",
	.description = "HashiCorp Vault secrets: token/AppRole/Kubernetes auth, KV and leased secrets",
	.kind = BCN_PLUGIN_SECRETS,
	.section = "vault",
	.config_map = vault_fields,
	.config_size = sizeof(struct vault_conf),
	.cb_check = vault_check,
	.cb_init = vault_init,
	.cb_start = vault_start,
	.cb_reload = vault_reload,
	.cb_stop = vault_stop,
	.cb_exit = vault_exit,
	.cb_self = vault_self,
};
