/*
 * consul.h - what the files of the Consul registry plugin share (not a public API).
 *
 * The plugin talks to the local Consul agent's HTTP API over the agent's HTTP
 * client (TCP, TLS or a Unix socket). There is no session to hold, unlike
 * etcd: registration and every watch are independent request loops. They
 * share one notion of reachability, so that whichever request notices first
 * that the agent is gone (refused, hung, connection closed) marks the whole
 * source stale and tells the others, and whichever notices first that it is
 * back wakes them up. Split by concern:
 *
 *   consul.c          config table, lifecycle callbacks, /v1/self, readiness
 *   consul_req.c      every request: URL, token header, TLS, error classes,
 *                     reachability, backoff
 *   consul_register.c agent service registration, TTL check, drain, stop
 *   consul_watch.c    blocking queries on /v1/health/service and /v1/kv
 *   consul_data.c     Consul's answers turned into endpoints and KV entries
 */
#ifndef BCN_CONSUL_H
#define BCN_CONSUL_H

#include <stdbool.h>
#include <stdint.h>

#include "plugin/plugin.h"

struct event;

#define CONSUL_MIN_QUERY_GAP_MS 200  /* rate limit: one query per watch per this */
/* Retry delays (bcn_backoff_ms): a local agent, so come back quickly after its restart. */
#define CONSUL_RETRY_BASE_MS 100
#define CONSUL_RETRY_MAX_MS 5000

/* The "registry" object (backend "consul"); see the table in consul.c. */
struct consul_conf {
	char *address;             /* http://host:port, https://host:port or unix:///path */
	char *token_file;
	char *datacenter;
	char *consistency;         /* "default" or "stale" (discovery and KV reads) */
	char *namespace_, *partition; /* Consul Enterprise; "" = the token's / agent's default */
	struct bcn_tls_conf tls;
	uint64_t ttl_ms, dereg_ms, wait_ms, timeout_ms;
};

/* ---- requests (consul_req.c) ---- */

enum consul_outcome {
	CONSUL_ANSWERED,   /* an HTTP answer; status says which */
	CONSUL_UNREACHABLE,/* no usable answer: refused, timed out, closed, TLS */
};

struct consul_reply {
	enum consul_outcome outcome;
	long status;
	const char *body;  /* the answer's bytes (not NUL-terminated) */
	size_t len;
	bool has_index;    /* X-Consul-Index was present and a number */
	uint64_t index;
	const char *msg;   /* not 2xx: one sentence for logs and /v1/self, never a secret */
	bool acl;          /* 403: the token is unknown or lacks a permission */
	bool filtered;     /* X-Consul-Results-Filtered-By-ACLs: the token cannot read everything */
	int known_leader;  /* X-Consul-KnownLeader: 1 true, 0 false, -1 absent */
	bool acl_deny;     /* X-Consul-Default-ACL-Policy: deny */
};

struct consul_ctx;
struct consul_req;
typedef void (*consul_reply_cb)(struct consul_ctx *ctx, const struct consul_reply *r, void *arg);

#define CONSUL_REQ_LONG 0x1   /* a blocking query: timeout wait + wait/16 + timeout */

/* method "GET" or "PUT"; path_query is "/v1/..." with its query string;
 * body may be NULL. cb runs exactly once unless cancelled. NULL when the
 * request could not be started (cb is not called). */
struct consul_req *consul_request(struct consul_ctx *ctx, const char *method, const char *path_query,
				  const char *body, unsigned flags, consul_reply_cb cb, void *arg);
void consul_req_cancel(struct consul_req *r); /* NULL-safe; cb is not called */

/* Append s to out (at most cap bytes, NUL-terminated) percent-encoded for a
 * URL path (keep_slash) or a query value. Returns -1 when it does not fit. */
int consul_escape(char *out, size_t cap, const char *s, bool keep_slash);

/* ---- Consul's data (consul_data.c) ---- */

/* The endpoints of one /v1/health/service answer: *eps (malloc'd array, the
 * caller frees it and hands the elements to the cache), *n. -1 with *why when
 * the answer is not the expected JSON at all; entries that are wrong on
 * their own are skipped with one log line each. */
int consul_parse_health(struct consul_ctx *ctx, const char *service, const char *body, size_t len,
			struct bcn_endpoint ***eps, size_t *n, const char **why);

struct consul_kv_list {
	char **keys, **vals;
	size_t *lens;
	size_t n;
};
/* The entries of one /v1/kv/<prefix>?recurse answer, keys as the cache
 * stores them ("/" + Consul's key). -1 with *why when malformed. */
int consul_parse_kv(struct consul_ctx *ctx, const char *cache_prefix, const char *body, size_t len,
		    struct consul_kv_list *out, const char **why);
void consul_kv_list_free(struct consul_kv_list *l);

/* Log "skipping <what>: <why>" once per (what, why), at most 20 lines per 10 s. */
void consul_skip(struct consul_ctx *ctx, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same without "skipping": "<what>: <why>". */
void consul_warn_once(struct consul_ctx *ctx, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- registration (consul_register.c) ---- */

struct consul_reg {
	char *id;                  /* service id; NULL without a service */
	char *check_id;            /* "beacon:<id>" */
	json_t *def;               /* the register request; Check.Status is set per request */
	bool registered;           /* Consul has it, as far as we know */
	bool maybe;                /* it may exist: deregister when draining or stopping */
	bool update_due;           /* the TTL timer fired */
	int sent_status;           /* last status Consul accepted, -1 none */
	int sending_status;        /* the status of the request in flight */
	uint64_t last_update_ms;   /* when Consul last accepted a check update */
	uint64_t registrations;    /* successful registrations (anti-entropy shows here) */
	struct consul_req *op;     /* one request at a time */
	struct event *ttl_ev, *retry_ev;
	unsigned attempt;
	bcn_stop_done_cb stop_done;
	char err[200];
	bool err_unreachable;      /* err says the agent was unreachable */
};

int consul_reg_init(struct consul_ctx *ctx);
void consul_reg_free(struct consul_ctx *ctx);
void consul_reg_changed(struct consul_ctx *ctx); /* status or drain changed */
void consul_reg_lost(struct consul_ctx *ctx);    /* the agent was unreachable: it may have lost us */
void consul_reg_kick(struct consul_ctx *ctx);    /* the agent answers again: retry now */
void consul_reg_stop(struct consul_ctx *ctx, bcn_stop_done_cb done);
void consul_reg_self(const struct consul_ctx *ctx, json_t *obj);

/* ---- watches (consul_watch.c) ---- */

/* ctx->watches is kept by agent/plugin/watchset.c, which also counts it for
 * readiness (bcn_watchset_counts; fresh = answered since the last error).
 * Make the watch set match the configured watch lists (start, reload). */
void consul_watch_apply(struct consul_ctx *ctx);
/* The agent was found unreachable: restart every long poll (they would only
 * answer after `wait`), marking them not fresh. */
void consul_watch_lost(struct consul_ctx *ctx);
/* The agent answers again: retry waiting watches now. */
void consul_watch_kick(struct consul_ctx *ctx);
void consul_watch_stop_all(struct consul_ctx *ctx);
void consul_watch_free_all(struct consul_ctx *ctx);
json_t *consul_watch_self(const struct consul_ctx *ctx);

/* ---- the instance (consul.c) ---- */

struct consul_ctx {
	struct bcn_instance *ins;
	struct bcn_core *core;
	const char *log;               /* ins->name */

	/* Copied from the config at init: changing them needs a restart. */
	char *base_url;                /* "http://127.0.0.1:8500", "http://consul" for unix */
	char *unix_path;               /* NULL for TCP */
	char *address;                 /* as configured, for logs and /v1/self */
	char *dc_param;                /* "dc=<escaped>" or "" */
	char *scope_param;             /* "ns=<escaped>&partition=<escaped>" (either may be absent) or "" */
	bool stale_reads;              /* consistency "stale": ?stale on discovery and KV reads */
	char *token_header;            /* sodium_malloc'd "X-Consul-Token: <token>"; NULL without */
	uint64_t ttl_ms, dereg_ms, wait_ms, timeout_ms;

	bool down;                     /* the last request that tried found the agent unreachable */
	bool ever_answered, stopping, ready;
	char err[256];                 /* why it is down */
	char acl_err[256];             /* the last ACL refusal, "" when none */
	int known_leader;              /* the last X-Consul-KnownLeader seen: 1, 0, -1 never */
	bool acl_deny_anonymous;       /* default policy deny and no token: reads are filtered */
	struct bcn_http_group *reqs;   /* every request in flight (made by the first) */

	struct consul_reg reg;
	struct bcn_watch_list watches; /* each the base of a struct consul_watch */

	uint64_t skipped[256];         /* consul_skip: hashes of lines already logged */
	size_t nskipped;
	struct bcn_complain skips;     /* at most 20 of those lines per 10 s */
};

/* The instance's config. Its restart-only keys (all but the live ones) hold
 * the values the instance started with: the core keeps them on reload. */
static inline const struct consul_conf *consul_conf(const struct consul_ctx *ctx)
{
	return ctx->ins->conf;
}

/* Recompute readiness, state word and stale flag; report when they change. */
void consul_report(struct consul_ctx *ctx);
/* A request found the agent unreachable / got an HTTP answer. */
void consul_lost(struct consul_ctx *ctx, const char *why);
void consul_answered(struct consul_ctx *ctx);
/* Remember an ACL refusal (logged through the instance report, once). */
void consul_acl_denied(struct consul_ctx *ctx, const char *msg);
/* Note what an answer's headers say about the cluster (known leader, ACL
 * default policy); logs changes once. */
void consul_note_headers(struct consul_ctx *ctx, const struct consul_reply *r);

#endif
