/*
 * etcd.h - what the files of the etcd registry plugin share (not a public API).
 *
 * The plugin talks to etcd v3 through its JSON gateway (/v3/...) over the
 * agent's HTTP client, so it needs neither gRPC nor threads. It is split by
 * concern:
 *
 *   etcd.c          config table, lifecycle callbacks, /v1/self, readiness
 *   etcd_conn.c     the session: endpoint rotation, backoff, liveness probe,
 *                   every request and its error classification
 *   etcd_auth.c     username/password authentication, the token
 *   etcd_data.c     base64/int64 spelling, prefix ranges, untrusted values
 *   etcd_register.c lease + put + keepalive, drain, deregistration
 *   etcd_watch.c    range + streaming watch of services and KV prefixes
 *
 * One session state drives everything: while it is UP, registration and
 * watches run; when any request finds the cluster unreachable the session
 * goes DOWN, every request is cancelled, the cache source is marked stale and
 * a reconnect is scheduled; on the next UP everything is read again.
 */
#ifndef BCN_ETCD_H
#define BCN_ETCD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "plugin/plugin.h"

struct event;

#define ETCD_MAX_VALUE (64 * 1024)   /* larger endpoint values are skipped */
#define ETCD_RETRY_BASE_MS 100       /* retry delays (bcn_backoff_ms) ... */
#define ETCD_RETRY_MAX_MS 10000      /* ... capped at 10 s */
#define ETCD_PROBE_INTERVAL_MS 2000  /* liveness request while connected */
#define ETCD_TOKEN_MAX 2048          /* size of the Authorization header buffer */

/* The "registry" object (backend "etcd"); see the table in etcd.c. */
struct etcd_conf {
	struct bcn_strlist endpoints;
	char *prefix;
	uint64_t ttl_ms;
	struct bcn_tls_conf tls;
	char *username, *password_file;
	uint64_t timeout_ms, dial_timeout_ms;
};

enum etcd_session { ETCD_DOWN, ETCD_CONNECTING, ETCD_UP };

/* ---- requests (etcd_conn.c) ---- */

enum etcd_outcome {
	ETCD_OK,          /* etcd answered; body holds the answer */
	ETCD_FAILED,      /* etcd (or our reader) refused: code and msg say why */
	ETCD_UNREACHABLE, /* no usable answer; the session is reset right after the callback */
};

struct etcd_reply {
	enum etcd_outcome outcome;
	json_t *body;     /* ETCD_OK, unary requests: the parsed answer (borrowed) */
	int code;         /* ETCD_FAILED: gRPC code, -1 when our reader stopped a stream */
	const char *msg;  /* not ETCD_OK: one sentence, never a secret */
};

struct etcd_ctx;
struct etcd_req;
typedef void (*etcd_reply_cb)(struct etcd_ctx *ctx, const struct etcd_reply *r, void *arg);

#define ETCD_REQ_SHORT 0x1 /* total timeout dial_timeout (liveness, stop) instead of timeout */

/* POST body (stolen; NULL, as from a failed json_pack, fails) to path on the current endpoint.
 * cb runs exactly once unless the request is cancelled. An answer saying the
 * auth token is no longer valid is retried once, transparently, with a new
 * token. NULL when it could not be started (cb is not called). */
struct etcd_req *etcd_request(struct etcd_ctx *ctx, const char *path, json_t *body,
			      unsigned flags, etcd_reply_cb cb, void *arg);
/* The same as a stream without total timeout: the body goes to on_data, cb
 * ends it (ETCD_FAILED with code -1 when on_data returned non-zero). */
struct etcd_req *etcd_stream(struct etcd_ctx *ctx, const char *path, json_t *body,
			     bcn_http_data_cb on_data, etcd_reply_cb cb, void *arg);
/* Cancel without calling cb. NULL-safe; not from the request's own on_data. */
void etcd_req_cancel(struct etcd_req *r);

/* Begin connecting (cb_start). */
void etcd_conn_start(struct etcd_ctx *ctx);
/* The token was refused somewhere we cannot retry (a watch): get a new one
 * (etcd_auth.c). */
void etcd_conn_reauth(struct etcd_ctx *ctx);
/* Authenticate with ctx's username and password (etcd_auth.c); the outcome
 * goes to etcd_conn_auth_ok / etcd_conn_auth_failed. */
void etcd_auth_start(struct etcd_ctx *ctx);
void etcd_conn_auth_ok(struct etcd_ctx *ctx);
void etcd_conn_auth_failed(struct etcd_ctx *ctx, const char *why);
/* Stop probing and reconnecting, cancel the auth exchange (cb_stop/cb_exit). */
void etcd_conn_stop(struct etcd_ctx *ctx);
/* Cancel every request still in flight (cb_exit). */
void etcd_conn_cancel_all(struct etcd_ctx *ctx);
const char *etcd_conn_endpoint(const struct etcd_ctx *ctx);
/* Delay of retry number `attempt` (0-based): 100 ms doubling to 10 s, +-20%. */

/* ---- etcd's data (etcd_data.c) ---- */

/* base64 of len bytes as a new jansson string; NULL on OOM. */
json_t *etcd_b64(const void *data, size_t len);
/* Decode a base64 member of obj into a malloc'd NUL-terminated buffer.
 * Absent member = empty. -1 when malformed or OOM. */
int etcd_b64_member(const json_t *obj, const char *name, char **out, size_t *len);
/*
 * int64 fields come as decimal strings ("revision": "12"). Read as a number
 * in [0, max]: absent, negative or not a number = 0, above max = max. Every
 * number etcd sends goes through here before any arithmetic, so a broken or
 * hostile member cannot overflow revision + 1 or ttl * 1000.
 */
int64_t etcd_int(const json_t *obj, const char *name, int64_t max);
/* The ranges, far beyond what a real cluster reaches: */
#define ETCD_MAX_REVISION ((int64_t)1 << 62) /* a write per ns for 146 years */
#define ETCD_MAX_TTL INT64_C(9000000000)     /* s, etcd's MaxLeaseTTL (server/lease/lessor.go) */
#define ETCD_MAX_ID INT64_MAX                /* lease IDs: opaque positive int64, never computed with */
#define ETCD_MAX_CODE 1000                   /* gRPC status codes (0-16) */
/* The key just after every key starting with prefix (etcd's range_end). */
char *etcd_prefix_end(const char *prefix, size_t len, size_t *out_len);
/* The <id> of key base<id>, or NULL with *why when the key is outside the layout. */
const char *etcd_key_id(const char *base, size_t base_len, const char *key, size_t klen,
			size_t *idlen, const char **why);
/* The endpoint a key's value describes, or NULL after one etcd_skip line. */
struct bcn_endpoint *etcd_parse_endpoint(struct etcd_ctx *ctx, const char *service, const char *key,
					 size_t klen, const char *id, const char *value, size_t vlen);

/* ---- registration (etcd_register.c) ---- */

struct etcd_reg {
	char *key;                 /* <prefix>/<service>/<id>; NULL without a service */
	int64_t lease_id;          /* 0 = none */
	int64_t ttl_s;             /* as granted by etcd */
	char *put_value;           /* what the key holds as far as we know; NULL = unknown/absent */
	bool key_maybe;            /* the key may exist (delete it when drained or stopping) */
	bool registered;
	unsigned attempt;          /* retries after etcd refused an operation */
	struct etcd_req *op;       /* grant, put or delete in flight (one at a time) */
	char *sending;             /* the value of the put in flight */
	int64_t op_lease;          /* the lease the put in flight uses */
	struct etcd_req *ka;       /* keepalive in flight */
	struct event *ka_ev, *retry_ev;
	uint64_t last_alive_ms;    /* when etcd last confirmed the lease (bcn_now_ms) */
	bcn_stop_done_cb stop_done;
	int stop_phase;
	bool stop_failed;
	char err[200];
};

int etcd_reg_init(struct etcd_ctx *ctx);
void etcd_reg_free(struct etcd_ctx *ctx);
void etcd_reg_up(struct etcd_ctx *ctx);      /* session became UP */
void etcd_reg_down(struct etcd_ctx *ctx);    /* session lost: cancel, forget what we know */
void etcd_reg_changed(struct etcd_ctx *ctx); /* status or drain changed */
void etcd_reg_stop(struct etcd_ctx *ctx, bcn_stop_done_cb done);

/* ---- watches (etcd_watch.c) ---- */

/* ctx->watches is kept by agent/plugin/watchset.c, which also counts it for
 * readiness (bcn_watchset_counts; fresh = read since the last reconnect).
 * Make the watch set match the configured watch lists (start, reload). */
void etcd_watch_apply(struct etcd_ctx *ctx);
void etcd_watch_up(struct etcd_ctx *ctx);    /* session UP: range + watch everything */
void etcd_watch_down(struct etcd_ctx *ctx);  /* session lost: cancel everything */
void etcd_watch_free_all(struct etcd_ctx *ctx);
json_t *etcd_watch_self(const struct etcd_ctx *ctx);

/* ---- the instance (etcd.c) ---- */

struct etcd_ctx {
	struct bcn_instance *ins;
	struct bcn_core *core;
	const char *log;               /* ins->name */

	/* Copied from the config at init: changing them needs a restart. */
	char **endpoints;
	size_t nendpoints, cur;
	char *prefix;                  /* without a trailing '/' */
	uint64_t ttl_ms, timeout_ms, dial_timeout_ms;
	char *username;
	char *password;                /* sodium_malloc'd; NULL without auth */
	char *auth_header;             /* sodium_malloc'd "Authorization: <token>"; "" when none */

	/* Session (etcd_conn.c). */
	enum etcd_session session;
	bool ever_up, stopping, ready;
	unsigned attempt;
	struct event *retry_ev, *probe_ev;
	struct etcd_req *probe;
	struct bcn_http_call *auth_call;
	struct bcn_http_group *reqs;   /* every request in flight (made at init) */
	LIST_HEAD(, etcd_req) queued;  /* requests waiting for a token */
	int64_t revision;              /* highest store revision seen */
	char err[256];                 /* last session problem */

	struct etcd_reg reg;
	struct bcn_watch_list watches; /* each the base of a struct etcd_watch */

	/* Skipped-value log lines, remembered so each is logged once. */
	uint64_t skipped[512];
	size_t nskipped;
	struct bcn_complain skips;     /* at most 20 of those lines per 10 s */
};

/* The instance's config. Its restart-only keys (all but the live ones) hold
 * the values the instance started with: the core keeps them on reload. */
static inline const struct etcd_conf *etcd_conf(const struct etcd_ctx *ctx)
{
	return ctx->ins->conf;
}

/* Recompute readiness, state word and stale flag; report when they change. */
void etcd_report(struct etcd_ctx *ctx);
/* Log "skipping <key>: <why>" once per key and reason, rate-limited (etcd_data.c). */
void etcd_skip(struct etcd_ctx *ctx, const char *key, size_t key_len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
