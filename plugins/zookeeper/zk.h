/*
 * zk.h - what the files of the ZooKeeper registry plugin share (not a public API).
 *
 * The plugin speaks to ZooKeeper through Debian's C client, the
 * single-threaded library (libzookeeper_st): its asynchronous calls only
 * queue requests, and the agent's libevent loop drives the socket
 * (zookeeper_interest says which fd, which events and how long to wait;
 * zookeeper_process runs on readiness or timeout and calls our completions
 * and watcher). No threads, no blocking call on the loop. The layout is
 * Apache Curator's Service Discovery (SPEC.md), so Java services using
 * Curator or Spring Cloud Zookeeper and beacon see each other.
 *
 *   zk.c          config table, lifecycle callbacks, /v1/self, readiness
 *   zk_conn.c     the handle: loop integration, session events, expiry ->
 *                 new session, the op records every completion gets
 *   zk_register.c the ephemeral znode: parents, create, update, drain, stop
 *   zk_watch.c    discovery (children + data with watches) and KV subtrees
 *   zk_data.c     Curator's ServiceInstance JSON, both ways; skip logging
 *
 * Every completion gets a heap record (struct zk_op) naming what it was for
 * by value (kind, watch name, path) and the handle generation; it never holds
 * a pointer to a watch, so a watch removed by a reload or a handle replaced
 * after expiry leaves nothing dangling: the completion finds nothing and
 * frees its record. Node events go to the handle's one watcher (watch=1 in
 * the calls) and are dispatched by path.
 */
#ifndef BCN_ZK_H
#define BCN_ZK_H

#include <stdbool.h>
#include <stdint.h>

#include "plugin/plugin.h"

#define ZK_MAX_INSTANCE (64 * 1024)  /* larger instance znodes are skipped */
#define ZK_MAX_KV_NODES 10000        /* nodes of one KV subtree */
#define ZK_MAX_KV_VALUE (1024 * 1024) /* the store's limit of a KV value (README, Limits) */
#define ZK_MAX_CHILDREN 100000       /* instances of one service */
#define ZK_STOP_WAIT_MS 2000         /* longest wait for the delete at stop */
#define ZK_RETRY_BASE_MS 100
#define ZK_RETRY_MAX_MS 10000

/* The "registry" object (backend "zookeeper"); see the table in zk.c. */
struct zk_conf {
	struct bcn_strlist servers;
	char *base_path;
	char *chroot;
	uint64_t session_timeout_ms;
	char *auth_file;
};

enum zk_session { ZK_DOWN, ZK_CONNECTING, ZK_UP };

enum zk_op_kind {
	ZK_OP_PARENT, ZK_OP_REG_CREATE, ZK_OP_REG_GET, ZK_OP_REG_SET, ZK_OP_REG_DELETE,
	ZK_OP_SVC_CHILDREN, ZK_OP_SVC_EXISTS, ZK_OP_SVC_DATA,
	ZK_OP_KV_CHILDREN, ZK_OP_KV_DATA, ZK_OP_KV_EXISTS,
};

struct zk_ctx;
struct String_vector;
struct event;

/* What one completion is for; freed by the completion. */
struct zk_op {
	struct zk_ctx *ctx;
	uint64_t gen;         /* handle generation it was sent on */
	uint64_t epoch;       /* the watch's read epoch (KV walks, service reads) */
	enum zk_op_kind kind;
	char *name;           /* watch name (service or KV prefix), or NULL */
	char path[];          /* the znode */
};

/* ---- the handle (zk_conn.c) ---- */

int zk_conn_init(struct zk_ctx *ctx);    /* events; no I/O */
void zk_conn_start(struct zk_ctx *ctx);  /* first handle */
void zk_conn_close(struct zk_ctx *ctx);  /* close the handle (completions fire, ignored) */
void zk_conn_free(struct zk_ctx *ctx);
/* Register the queued requests with the loop; call after async calls made
 * outside a completion (no-op inside one: the loop re-arms after it). */
void zk_flush(struct zk_ctx *ctx);
/* A new op record for path; NULL on OOM (logged by the caller). */
struct zk_op *zk_op_new(struct zk_ctx *ctx, enum zk_op_kind kind, const char *name,
			const char *path, uint64_t epoch);
/* True when op belongs to the live handle (else the caller only frees it). */
bool zk_op_live(const struct zk_op *op);
void zk_op_free(struct zk_op *op);
/* A failure of the connection (the read is retried after the reconnect),
 * rather than an answer about the znode (NOAUTH...: the znode is skipped). */
bool zk_transient(int rc);
/* The session id as 0x... for logs and /v1/self ("" when none). */
const char *zk_session_hex(struct zk_ctx *ctx);
int64_t zk_session_id(struct zk_ctx *ctx);

/* ---- registration (zk_register.c) ---- */

struct zk_reg {
	char *path;                /* <base>/<service>/<id>; NULL without a service */
	char *svc_path;            /* <base>/<service> */
	char *want;                /* the JSON the znode should hold */
	char *written;             /* what we last wrote (NULL: unknown/absent) */
	bool registered;           /* the znode exists and is ours */
	bool busy;                 /* an operation is in flight */
	unsigned attempt;
	uint64_t reg_time_ms;      /* registrationTimeUTC, kept across updates */
	struct event *retry_ev, *stop_ev;
	bcn_stop_done_cb stop_done;
	char err[200];
};

int zk_reg_init(struct zk_ctx *ctx);
void zk_reg_free(struct zk_ctx *ctx);
void zk_reg_up(struct zk_ctx *ctx);       /* connected (again): make sure the znode is there */
void zk_reg_down(struct zk_ctx *ctx);     /* new handle: forget what we knew */
void zk_reg_changed(struct zk_ctx *ctx);  /* status or drain changed */
void zk_reg_stop(struct zk_ctx *ctx, bcn_stop_done_cb done);

/* ---- watches (zk_watch.c) ---- */

void zk_watch_apply(struct zk_ctx *ctx);
void zk_watch_up(struct zk_ctx *ctx);     /* connected (again): read everything */
void zk_watch_down(struct zk_ctx *ctx);   /* connection lost: not fresh */
void zk_watch_free_all(struct zk_ctx *ctx);
json_t *zk_watch_self(const struct zk_ctx *ctx);
void zk_watch_event(struct zk_ctx *ctx, int type, const char *path);
void zk_watch_children(struct zk_op *op, int rc, const struct String_vector *v);
void zk_watch_data(struct zk_op *op, int rc, const char *value, int len);
void zk_watch_exists(struct zk_op *op, int rc);

/* ---- Curator's JSON (zk_data.c) ---- */

/* Curator's ServiceInstance JSON for this app (payload untagged: tags, meta,
 * weight, status). malloc'd; NULL on OOM or without a service. */
char *zk_instance_json(const struct bcn_endpoint *self, const char *service, uint64_t reg_time_ms);
/* The endpoint an instance znode `id` of `service` describes; NULL with *why
 * (a sentence) when it is not one. Reads Curator's fields and the payload
 * as beacon writes it, as Spring Cloud's ZookeeperInstance ("metadata"),
 * or anything else (defaults). */
struct bcn_endpoint *zk_parse_instance(const char *service, const char *id, const char *data,
				       size_t len, char *why, size_t whylen);
/* Log "skipping <path>: <why>" once per path and reason, rate-limited. */
void zk_skip(struct zk_ctx *ctx, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- the instance (zk.c) ---- */

struct zk_ctx {
	struct bcn_instance *ins;
	struct bcn_core *core;
	const char *log;

	char *hosts;                   /* "h:p,h:p/chroot" for zookeeper_init */
	char *base;                    /* base_path without trailing '/' */
	uint64_t session_timeout_ms;
	char *auth;                    /* sodium_malloc'd "user:password"; NULL without */

	/* The handle (zk_conn.c). */
	void *zh;                      /* zhandle_t */
	uint64_t gen;                  /* bumped per handle */
	enum zk_session session;
	bool ever_up, stopping, closing, ready, in_process;
	int64_t last_session;          /* to log a new session once */
	unsigned attempt;
	struct event *io_ev, *new_ev;
	char sid[24];
	char err[256];

	struct zk_reg reg;
	struct bcn_watch_list watches; /* each the base of a struct zk_watch */

	uint64_t skipped[512];
	size_t nskipped;
	struct bcn_complain skips;
};

static inline const struct zk_conf *zk_conf(const struct zk_ctx *ctx)
{
	return ctx->ins->conf;
}

void zk_report(struct zk_ctx *ctx);

#endif
