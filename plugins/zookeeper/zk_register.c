/*
 * zk_register.c - this app's instance as an ephemeral znode, the Curator way.
 *
 * The znode <base>/<service>/<id> holds Curator's ServiceInstance JSON
 * (zk_data.c). It is ephemeral: the server deletes it when our session ends,
 * by close (stop) or expiry (the agent was gone longer than session_timeout).
 *
 * One operation at a time, reconciling what the znode should be (present
 * with `want`, or absent when drained or stopping) with what we know:
 *
 *   create parents (persistent, "exists" is fine) + create the ephemeral
 *     ok      -> registered
 *     exists  -> read it: ours (ephemeralOwner is our session, as after a
 *                reconnect) -> registered, update the data when it differs;
 *                another session's (a previous run, or our expired session
 *                the server has not reaped yet) -> delete it and create
 *                ours, as Curator's ServiceDiscoveryImpl does
 *   set data when the health status changed; "no node" -> create again
 *   delete when drained or stopping
 *
 * Requests of one session are applied in order, so the parents and the
 * ephemeral node go out together. Other failures retry with backoff;
 * connection loss waits for the next CONNECTED event, which reconciles again.
 * On stop: delete, then close the session (the server would delete an
 * ephemeral node at close anyway; the explicit delete makes it visible at
 * once even to watchers of a lagging follower).
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#include "zk.h"

static void reg_sync(struct zk_ctx *ctx);

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_str(char **dst, const char *v, size_t len)
{
	free(*dst);
	*dst = NULL;
	if (v) {
		*dst = malloc(len + 1);
		if (*dst) {
			memcpy(*dst, v, len);
			(*dst)[len] = '\0';
		}
	}
}

/* ---- completions ---------------------------------------------------------- */

static void retry_later(struct zk_ctx *ctx, const char *what, int rc)
{
	struct zk_reg *reg = &ctx->reg;

	snprintf(reg->err, sizeof(reg->err), "%s %s: %s", what, reg->path, zerror(rc));
	if (rc == ZCONNECTIONLOSS || rc == ZSESSIONEXPIRED || rc == ZCLOSING ||
	    rc == ZOPERATIONTIMEOUT)
		return; /* the next CONNECTED event reconciles */
	bcn_timer_ms(reg->retry_ev, bcn_backoff_ms(reg->attempt++, ZK_RETRY_BASE_MS, ZK_RETRY_MAX_MS));
}

static void stop_finish(struct zk_ctx *ctx)
{
	if (ctx->reg.stop_done && ctx->reg.stop_ev)
		bcn_timer_ms(ctx->reg.stop_ev, 0); /* close outside zookeeper_process */
}

static void on_create(int rc, const char *value, const void *data);
static void on_get(int rc, const char *value, int len, const struct Stat *st, const void *data);
static void on_set(int rc, const struct Stat *st, const void *data);
static void on_delete(int rc, const void *data);

static struct zk_op *begin(struct zk_ctx *ctx, enum zk_op_kind kind)
{
	struct zk_op *op = zk_op_new(ctx, kind, NULL, ctx->reg.path, 0);

	if (op)
		ctx->reg.busy = true;
	return op;
}

static void sent(struct zk_ctx *ctx, struct zk_op *op, int rc)
{
	if (rc == ZOK)
		return;
	/* Not queued (the handle died meanwhile): its completion never runs. */
	ctx->reg.busy = false;
	zk_op_free(op);
	retry_later(ctx, "cannot queue a request for", rc);
}

static void on_create(int rc, const char *value, const void *data)
{
	struct zk_op *op = (struct zk_op *)data;
	struct zk_ctx *ctx = op->ctx;
	struct zk_reg *reg = &ctx->reg;

	(void)value;
	if (!zk_op_live(op))
		goto out;
	if (op->kind == ZK_OP_PARENT) { /* the ephemeral create follows */
		if (rc != ZOK && rc != ZNODEEXISTS && rc != ZCONNECTIONLOSS && rc != ZCLOSING)
			bcn_warn(ctx->log, "cannot create %s: %s", op->path, zerror(rc));
		goto out;
	}
	reg->busy = false;
	if (rc == ZOK) {
		reg->registered = true;
		reg->attempt = 0;
		reg->err[0] = '\0';
		set_str(&reg->written, reg->want, reg->want ? strlen(reg->want) : 0);
		bcn_info(ctx->log, "registered %s", reg->path);
	} else if (rc == ZNODEEXISTS) {
		struct zk_op *g = begin(ctx, ZK_OP_REG_GET);
		if (g)
			sent(ctx, g, zoo_aget(ctx->zh, reg->path, 0, on_get, g));
		goto out;
	} else {
		retry_later(ctx, "cannot create", rc);
	}
	reg_sync(ctx);
	zk_report(ctx);
out:
	zk_op_free(op);
}

static void on_get(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
	struct zk_op *op = (struct zk_op *)data;
	struct zk_ctx *ctx = op->ctx;
	struct zk_reg *reg = &ctx->reg;

	if (!zk_op_live(op))
		goto out;
	reg->busy = false;
	if (rc == ZOK && st && st->ephemeralOwner == zk_session_id(ctx)) {
		reg->registered = true;   /* ours: kept across a reconnect */
		reg->err[0] = '\0';
		set_str(&reg->written, value, value && len > 0 ? (size_t)len : 0);
	} else if (rc == ZOK) {
		struct zk_op *d = begin(ctx, ZK_OP_REG_DELETE);
		bcn_info(ctx->log, "%s belongs to another session (a previous run?); replacing it", reg->path);
		if (d)
			sent(ctx, d, zoo_adelete(ctx->zh, reg->path, -1, on_delete, d));
		goto out;
	} else if (rc != ZNONODE) {
		retry_later(ctx, "cannot read", rc);
		goto out;
	}
	reg_sync(ctx);
	zk_report(ctx);
out:
	zk_op_free(op);
}

static void on_set(int rc, const struct Stat *st, const void *data)
{
	struct zk_op *op = (struct zk_op *)data;
	struct zk_ctx *ctx = op->ctx;
	struct zk_reg *reg = &ctx->reg;

	(void)st;
	if (!zk_op_live(op))
		goto out;
	reg->busy = false;
	if (rc == ZOK) {
		set_str(&reg->written, reg->want, reg->want ? strlen(reg->want) : 0);
		reg->attempt = 0;
	} else if (rc == ZNONODE) {
		reg->registered = false; /* deleted behind our back: create it again */
	} else {
		retry_later(ctx, "cannot update", rc);
		goto out;
	}
	reg_sync(ctx);
	zk_report(ctx);
out:
	zk_op_free(op);
}

static void on_delete(int rc, const void *data)
{
	struct zk_op *op = (struct zk_op *)data;
	struct zk_ctx *ctx = op->ctx;
	struct zk_reg *reg = &ctx->reg;

	if (!zk_op_live(op))
		goto out;
	reg->busy = false;
	if (rc == ZOK || rc == ZNONODE) {
		if (reg->registered)
			bcn_info(ctx->log, "deregistered %s", reg->path);
		reg->registered = false;
		set_str(&reg->written, NULL, 0);
	} else if (!ctx->stopping) {
		retry_later(ctx, "cannot delete", rc);
		goto out;
	}
	if (ctx->stopping)
		stop_finish(ctx);
	else
		reg_sync(ctx);
	zk_report(ctx);
out:
	zk_op_free(op);
}

/* ---- reconciling ---------------------------------------------------------- */

static void create_all(struct zk_ctx *ctx)
{
	struct zk_reg *reg = &ctx->reg;
	char *p = strdup(reg->path);
	struct zk_op *op;

	if (!p)
		return;
	/* Every ancestor, top down: "/a", "/a/b", ... "<base>/<service>". */
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		op = zk_op_new(ctx, ZK_OP_PARENT, NULL, p, 0);
		if (op && zoo_acreate(ctx->zh, p, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
				      on_create, op) != ZOK)
			zk_op_free(op);
		*s = '/';
	}
	free(p);
	op = begin(ctx, ZK_OP_REG_CREATE);
	if (op)
		sent(ctx, op, zoo_acreate(ctx->zh, reg->path, reg->want, (int)strlen(reg->want),
					  &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, on_create, op));
}

static void reg_sync(struct zk_ctx *ctx)
{
	struct zk_reg *reg = &ctx->reg;
	const struct bcn_service_conf *svc = bcn_core_service(ctx->core);
	bool want = !ctx->core->drained && !ctx->stopping;
	struct zk_op *op;

	if (!reg->path || reg->busy || ctx->session != ZK_UP || !ctx->zh)
		return;
	if (want) {
		struct bcn_endpoint *self = bcn_core_self_endpoint(ctx->core);
		char *j = svc ? zk_instance_json(self, svc->name, reg->reg_time_ms) : NULL;
		free(self);
		if (!j) {
			snprintf(reg->err, sizeof(reg->err), "cannot build the instance JSON (out of memory)");
			return;
		}
		free(reg->want);
		reg->want = j;
		if (!reg->registered) {
			create_all(ctx);
		} else if (!reg->written || strcmp(reg->written, reg->want) != 0) {
			op = begin(ctx, ZK_OP_REG_SET);
			if (op)
				sent(ctx, op, zoo_aset(ctx->zh, reg->path, reg->want, (int)strlen(reg->want),
						       -1, on_set, op));
		}
	} else if (reg->registered || reg->written || ctx->stopping) {
		op = begin(ctx, ZK_OP_REG_DELETE);
		if (op)
			sent(ctx, op, zoo_adelete(ctx->zh, reg->path, -1, on_delete, op));
	}
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reg_sync(arg);
	zk_flush(arg);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct zk_ctx *ctx = arg;
	bcn_stop_done_cb done = ctx->reg.stop_done;

	(void)fd;
	(void)what;
	ctx->reg.stop_done = NULL;
	if (!done)
		return;
	if (ctx->reg.busy)
		bcn_warn(ctx->log, "ZooKeeper did not confirm the delete of %s within %d ms; closing the session",
			 ctx->reg.path, ZK_STOP_WAIT_MS);
	zk_conn_close(ctx); /* ends the session: the server drops what is left */
	done(ctx->ins);
}

/* ---- the interface -------------------------------------------------------- */

int zk_reg_init(struct zk_ctx *ctx)
{
	struct zk_reg *reg = &ctx->reg;
	const struct bcn_service_conf *svc = bcn_core_service(ctx->core);
	struct bcn_endpoint *self;
	size_t n;

	reg->retry_ev = evtimer_new(ctx->core->base, retry_cb, ctx);
	reg->stop_ev = evtimer_new(ctx->core->base, stop_cb, ctx);
	if (!reg->retry_ev || !reg->stop_ev)
		return -1;
	reg->reg_time_ms = wall_ms();
	if (!svc)
		return 0;
	self = bcn_core_self_endpoint(ctx->core);
	if (!self)
		return -1;
	n = strlen(ctx->base) + strlen(svc->name) + strlen(self->id) + 3;
	reg->path = malloc(n);
	reg->svc_path = malloc(n);
	if (reg->path && reg->svc_path) {
		snprintf(reg->path, n, "%s/%s/%s", ctx->base, svc->name, self->id);
		snprintf(reg->svc_path, n, "%s/%s", ctx->base, svc->name);
	}
	free(self);
	return reg->path && reg->svc_path ? 0 : -1;
}

void zk_reg_free(struct zk_ctx *ctx)
{
	struct zk_reg *reg = &ctx->reg;

	if (reg->retry_ev)
		event_free(reg->retry_ev);
	if (reg->stop_ev)
		event_free(reg->stop_ev);
	free(reg->path);
	free(reg->svc_path);
	free(reg->want);
	free(reg->written);
	memset(reg, 0, sizeof(*reg));
}

void zk_reg_up(struct zk_ctx *ctx)
{
	/* Within a session the znode survives a reconnect; check it anyway
	 * (create -> "exists" -> ours?), which also covers a lost update. */
	ctx->reg.registered = false;
	ctx->reg.attempt = 0;
	reg_sync(ctx);
}

void zk_reg_down(struct zk_ctx *ctx)
{
	ctx->reg.busy = false;
	ctx->reg.registered = false;
	set_str(&ctx->reg.written, NULL, 0);
}

void zk_reg_changed(struct zk_ctx *ctx)
{
	reg_sync(ctx);
	zk_flush(ctx);
	zk_report(ctx);
}

void zk_reg_stop(struct zk_ctx *ctx, bcn_stop_done_cb done)
{
	struct zk_reg *reg = &ctx->reg;

	reg->stop_done = done;
	event_del(reg->retry_ev);
	if (reg->path && ctx->session == ZK_UP && ctx->zh) {
		if (!reg->busy)
			reg_sync(ctx); /* a delete; its completion finishes */
		zk_flush(ctx);
		/* (a busy op's completion reconciles to the delete.) A server
		 * that does not answer is not waited for: close anyway, the
		 * session then ends by expiry. */
		bcn_timer_ms(reg->stop_ev, ZK_STOP_WAIT_MS);
		return;
	}
	stop_finish(ctx);
}
