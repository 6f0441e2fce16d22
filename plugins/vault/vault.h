/*
 * vault.h - what the files of the Vault secrets plugin share (not a public API).
 *
 * The plugin logs in to Vault, keeps its token alive, reads the configured
 * secrets and keeps them fresh, all with the agent's HTTP client on the
 * agent's loop. It is split by concern:
 *
 *   vault.c         config table and checks, lifecycle, readiness, /v1/self
 *   vault_http.c    every request: URL, headers (token, namespace), Vault's
 *                   error bodies, sealed/unreachable classification, backoff
 *   vault_auth.c    token / AppRole / Kubernetes login, renew-self at 2/3 of
 *                   the TTL, login again near the max TTL, revoke at stop
 *   vault_path.c    the path a secret is read from (KV v1 / v2, version pin)
 *   vault_secret.c  reading each secret (KV v1, KV v2, leased), refresh,
 *                   lease renewal and rotation, stale and expiry
 *
 * Secret data goes straight from the parsed answer into the core's secret
 * store (bcn_report_secret_put), which keeps it encrypted. Credentials (the
 * token, role_id, secret_id, the Kubernetes JWT) are sealed by the same
 * store's key (secrets/seal.h) and opened into its guarded arena only while
 * a request is being built.
 */
#ifndef BCN_VAULT_H
#define BCN_VAULT_H

#include <stdbool.h>
#include <stdint.h>

#include "plugin/plugin.h"

struct event;

#define VAULT_SA_TOKEN "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define VAULT_TOKEN_MAX 8192 /* longest token accepted from Vault or a file */
#define VAULT_RETRY_BASE_MS 250 /* retry delays (bcn_backoff_ms) ... */
#define VAULT_RETRY_MAX_MS 10000 /* ... capped at 10 s */

/* ---- configuration (vault.c) ---- */

struct vault_auth_conf {
	char *method, *token_file, *role_id_file, *secret_id_file, *role, *mount;
	bool remove_secret_id_file_after_reading;
};

struct vault_secret_conf {
	char *name, *path;
	uint64_t refresh_ms;
	json_t *allow_uids;   /* array of uids; NULL = the agent's own */
	int64_t version;      /* KV v2 version pin; 0 = latest */
	int64_t kv_version;   /* 0 = detect, 1, 2 */
};

struct vault_conf {
	char *address, *namespace_;
	struct vault_auth_conf auth;
	struct bcn_objlist secrets; /* struct vault_secret_conf */
	struct bcn_tls_conf tls;
	uint64_t timeout_ms;
	bool revoke_on_shutdown;
};

/* allow_uids as a uid array (the agent's uid when absent). malloc'd; NULL on OOM. */
uid_t *vault_uids(const json_t *allow_uids, size_t *n);

/* ---- requests (vault_http.c) ---- */

enum vault_outcome {
	VAULT_OK,          /* 2xx; body holds the answer (NULL for 204) */
	VAULT_REFUSED,     /* Vault answered 4xx: msg says why */
	VAULT_UNREACHABLE, /* no answer, 5xx, sealed */
};

struct vault_reply {
	enum vault_outcome outcome;
	long status;
	json_t *body;      /* the parsed JSON object (borrowed), or NULL */
	const char *msg;   /* not OK: one sentence, never a secret */
	bool sealed;       /* "Vault is sealed" */
	bool bad_token;    /* 403 "invalid token": revoked or expired */
	bool denied;       /* any 403 */
	bool acl_denied;   /* 403 in the shape of Vault's ACL check ("1 error occurred:
			    * permission denied"), without "invalid token": the token was
			    * accepted, this path is not in its policies */
};

struct vault_ctx;
struct vault_req;
typedef void (*vault_reply_cb)(struct vault_ctx *v, const struct vault_reply *r, void *arg);

#define VREQ_TOKEN 0x1 /* send X-Vault-Token */
#define VREQ_SHORT 0x2 /* at most 3 s: revoke at shutdown */

/* Send METHOD /v1/<path> with an optional JSON body (copied; may live in the
 * arena). cb runs exactly once unless cancelled. NULL when it could not be
 * started (cb is not called). */
struct vault_req *vault_request(struct vault_ctx *v, const char *method, const char *path,
				const char *body, size_t body_len, unsigned flags, vault_reply_cb cb,
				void *arg);
void vault_req_cancel(struct vault_req *r); /* NULL-safe; cb is not called */
/* Retry number `attempt` (0-based): 250 ms doubling to 10 s, +-20%. */
/* Write src as a quoted JSON string into dst (room for 6 * len + 3); returns its length. */
size_t vault_json_string(char *dst, const char *src, size_t len);
/* A duration in seconds from Vault (integer or real), clamped to
 * 0..VAULT_MAX_SECONDS: negative, NaN or missing -> 0. */
#define VAULT_MAX_SECONDS (10ULL * 366 * 86400) /* 10 years: longer than any Vault max TTL */
uint64_t vault_seconds(const json_t *j);
/* A renewal point: 2/3 of ttl_ms, minus up to 3% jitter. */
uint64_t vault_two_thirds(uint64_t ttl_ms);

/* ---- paths (vault_path.c) ---- */

/* The path read for a configured secret: "secret/web/db" with kv_version 2
 * is "secret/data/web/db"; a version pin adds ?version=. NULL when out of
 * memory. Free it. */
char *vault_read_path(const struct vault_secret_conf *c);
/* The path read for configured path p once Vault named its mount (kv_version
 * 0): data/ after the mount on KV v2. NULL when no mount path fits. */
char *vault_kv_path(const char *p, const char *mount, bool v2, int64_t pin);

/* ---- authentication (vault_auth.c) ---- */

enum vault_method { VAULT_TOKEN, VAULT_APPROLE, VAULT_KUBERNETES };
enum vault_auth { AUTH_NONE, AUTH_OK, AUTH_FAILED };

/* Read and seal the credential files (cb_init). 0 or -1 (logged). */
int vault_auth_init(struct vault_ctx *v, const struct vault_auth_conf *c);
void vault_auth_start(struct vault_ctx *v);
/* A request was refused with 403: certain = Vault said the token is invalid;
 * otherwise the token is checked before anything is thrown away. */
void vault_auth_refused(struct vault_ctx *v, bool certain);
/* Stop timers and requests; revoke the token when configured; then done(). */
void vault_auth_stop(struct vault_ctx *v, bcn_stop_done_cb done);
void vault_auth_free(struct vault_ctx *v);
json_t *vault_auth_self(struct vault_ctx *v);

/* ---- secrets (vault_secret.c) ---- */

struct vault_secret;
int vault_secrets_init(struct vault_ctx *v, const struct vault_conf *c);
/* A token is there: read what waits for one. new_token: leases of the old
 * token die with it, so they are read again. */
void vault_secrets_token_ready(struct vault_ctx *v, bool new_token);
void vault_secrets_reload(struct vault_ctx *v, const struct vault_conf *c);
void vault_secrets_stop(struct vault_ctx *v);
void vault_secrets_free(struct vault_ctx *v);
/* Counts for readiness, and the first secret's problem (NULL when none). */
void vault_secrets_counts(const struct vault_ctx *v, size_t *loaded, size_t *stale,
			  const char **error);
json_t *vault_secrets_self(struct vault_ctx *v);

/* ---- the instance (vault.c) ---- */

struct vault_ctx {
	struct bcn_instance *ins;
	struct bcn_core *core;
	const char *log;               /* ins->name */
	struct bcn_secrets *store;

	/* Copied from the config at init: changing them needs a restart. */
	char *address;                 /* without a trailing '/' */
	char *ns_header;               /* "X-Vault-Namespace: ns", NULL without */
	uint64_t timeout_ms;
	bool revoke_on_shutdown;

	/* Authentication (vault_auth.c). */
	enum vault_method method;
	char *mount, *role;            /* auth mount path; Kubernetes role name */
	char *cred_path;               /* token_file (token and kubernetes methods) */
	bool token_from_file_new;      /* token_file held a new token: lookup-self it as fresh */
	struct bcn_sealed token, role_id, secret_id, jwt;
	enum vault_auth auth;          /* state of the token in `token` */
	bool token_ours;               /* from a login (revoked at stop), not token_file */
	bool ever_authed;
	unsigned token_gen;            /* bumped on every new token */
	uint64_t token_expires_ms;     /* monotonic; 0 = never */
	uint64_t token_ttl_s, token_increment_s;
	bool token_renewable, token_capped;
	bool lookup_denied;            /* lookup-self is not in the token's policies (logged once) */
	struct vault_req *auth_req;
	struct event *auth_ev;
	int auth_next;                 /* what auth_ev does (vault_auth.c) */
	int auth_busy;                 /* what auth_req is (vault_auth.c) */
	unsigned auth_attempt;
	uint64_t last_verify_ms;
	char auth_err[200];
	bcn_stop_done_cb stop_done;

	/* Secrets (vault_secret.c). */
	struct vault_secret *secrets;
	size_t nsecrets;

	/* Reachability, from the last answer (vault_http.c). */
	struct bcn_http_group *reqs;   /* every request in flight (made by the first) */
	bool down, sealed, stopping, ready;
	char err[256];
};

/* The instance's config. Its restart-only keys (all but the live ones) hold
 * the values the instance started with: the core keeps them on reload. */
static inline const struct vault_conf *vault_conf(const struct vault_ctx *ctx)
{
	return ctx->ins->conf;
}

/* Recompute readiness, state word and stale flag; report when they change. */
void vault_report(struct vault_ctx *v);

#endif
