/*
 * zk_conn.c - the ZooKeeper handle on the agent's event loop.
 *
 * The single-threaded C client does no I/O of its own: after every call into
 * it we ask zookeeper_interest for the socket, the events it waits for and
 * the longest we may wait (pings, connect timeouts), arm one libevent event
 * with exactly that, and call zookeeper_process when it fires (readiness or
 * timeout). Completions and the watcher run inside zookeeper_process; calls
 * they make only queue requests, and the event is re-armed once after it.
 * Calls made elsewhere (timers, plugin callbacks) end with zk_flush.
 *
 * Sessions: the library reconnects by itself within a session (moving to the
 * next server of the list), keeping ephemeral nodes and watches; we mark the
 * data stale meanwhile and read everything again once connected. When the
 * server expires the session (the classic loss of ephemeral nodes: the agent
 * was partitioned or stopped for longer than session_timeout), the handle is
 * dead: one log line, then, from a timer (never inside zookeeper_process),
 * the handle is closed and a new one made; its CONNECTED event creates the
 * znode again and sets every watch again. A refused digest credential also
 * kills the handle; we retry with backoff.
 *
 * The library resolves host names with getaddrinfo when a handle is made:
 * give IP addresses in "servers" to keep that off the loop (README).
 * zookeeper_close sends the close request without waiting for the answer.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zookeeper/zookeeper.h>

#include "zk.h"

static struct bcn_complain lib_complain;

/* The library's own log lines (connect failures...), at most 5 per 30 s. */
static void zk_lib_log(const char *msg)
{
	if (bcn_complain_due(&lib_complain, 30000, 5, "zookeeper", "client library lines"))
		bcn_warn("zookeeper", "client library: %s", msg);
}

struct zk_op *zk_op_new(struct zk_ctx *ctx, enum zk_op_kind kind, const char *name,
			const char *path, uint64_t epoch)
{
	size_t n = strlen(path) + 1;
	struct zk_op *op = malloc(sizeof(*op) + n);

	if (!op)
		return NULL;
	op->ctx = ctx;
	op->gen = ctx->gen;
	op->epoch = epoch;
	op->kind = kind;
	op->name = name ? strdup(name) : NULL;
	memcpy(op->path, path, n);
	if (name && !op->name) {
		free(op);
		return NULL;
	}
	return op;
}

bool zk_op_live(const struct zk_op *op)
{
	return !op->ctx->closing && op->gen == op->ctx->gen && op->ctx->zh;
}

void zk_op_free(struct zk_op *op)
{
	if (!op)
		return;
	free(op->name);
	free(op);
}

bool zk_transient(int rc)
{
	return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONEXPIRED ||
	       rc == ZCLOSING || rc == ZSESSIONMOVED || rc == ZINVALIDSTATE || rc == ZSYSTEMERROR ||
	       rc == ZMARSHALLINGERROR;
}

int64_t zk_session_id(struct zk_ctx *ctx)
{
	const clientid_t *c = ctx->zh ? zoo_client_id(ctx->zh) : NULL;
	return c ? c->client_id : 0;
}

const char *zk_session_hex(struct zk_ctx *ctx)
{
	int64_t id = ctx->session == ZK_UP ? zk_session_id(ctx) : 0;

	if (!id)
		ctx->sid[0] = '\0';
	else
		snprintf(ctx->sid, sizeof(ctx->sid), "0x%" PRIx64, (uint64_t)id);
	return ctx->sid;
}

/* ---- driving the socket ------------------------------------------------- */

static void zk_io(evutil_socket_t fd, short what, void *arg)
{
	struct zk_ctx *ctx = arg;
	int ev = 0;

	(void)fd;
	if (!ctx->zh)
		return;
	if (what & EV_READ)
		ev |= ZOOKEEPER_READ;
	if (what & EV_WRITE)
		ev |= ZOOKEEPER_WRITE;
	ctx->in_process = true;
	zookeeper_process(ctx->zh, ev); /* errors arrive as session events */
	ctx->in_process = false;
	zk_flush(ctx);
}

void zk_flush(struct zk_ctx *ctx)
{
	struct timeval tv = {0, 0};
	int fd = -1, interest = 0, rc;
	short fl = 0;

	if (!ctx->zh || ctx->in_process || !ctx->io_ev)
		return;
	rc = zookeeper_interest(ctx->zh, &fd, &interest, &tv);
	event_del(ctx->io_ev);
	if (rc != ZOK && tv.tv_sec == 0 && tv.tv_usec < 50000)
		tv.tv_usec = 50000; /* no server reachable: look again soon, never spin */
	if (fd >= 0) {
		if (interest & ZOOKEEPER_READ)
			fl |= EV_READ;
		if (interest & ZOOKEEPER_WRITE)
			fl |= EV_WRITE;
	}
	event_assign(ctx->io_ev, ctx->core->base, fl ? fd : -1, fl, zk_io, ctx);
	event_add(ctx->io_ev, &tv);
}

/* ---- sessions ----------------------------------------------------------- */

static void zk_watcher(zhandle_t *zh, int type, int state, const char *path, void *arg);

static void zk_new_handle(struct zk_ctx *ctx)
{
	zk_conn_close(ctx);
	if (ctx->stopping)
		return;
	ctx->gen++;
	ctx->session = ZK_CONNECTING;
	zk_reg_down(ctx);
	ctx->zh = zookeeper_init2(ctx->hosts, zk_watcher, (int)ctx->session_timeout_ms, NULL, ctx, 0,
				  zk_lib_log);
	if (!ctx->zh) {
		snprintf(ctx->err, sizeof(ctx->err), "cannot create a ZooKeeper handle for %s: %s",
			 ctx->hosts, strerror(errno));
		bcn_timer_ms(ctx->new_ev, bcn_backoff_ms(ctx->attempt++, ZK_RETRY_BASE_MS * 10,
							 ZK_RETRY_MAX_MS));
		zk_report(ctx);
		return;
	}
	if (ctx->auth) {
		/* The library keeps its copy to send again on every reconnect. */
		if (zoo_add_auth(ctx->zh, "digest", ctx->auth, (int)strlen(ctx->auth), NULL, NULL) != ZOK)
			bcn_warn(ctx->log, "cannot queue the digest credential");
	}
	zk_report(ctx);
	zk_flush(ctx);
}

static void zk_new_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	zk_new_handle(arg);
}

static void zk_watcher(zhandle_t *zh, int type, int state, const char *path, void *arg)
{
	struct zk_ctx *ctx = arg;
	int64_t sid;

	if (ctx->closing || zh != ctx->zh)
		return;
	if (type != ZOO_SESSION_EVENT) {
		zk_watch_event(ctx, type, path);
		return;
	}
	if (state == ZOO_CONNECTED_STATE) {
		sid = zk_session_id(ctx);
		ctx->session = ZK_UP;
		ctx->attempt = 0;
		ctx->err[0] = '\0';
		if (sid != ctx->last_session)
			bcn_info(ctx->log, "session 0x%" PRIx64 " established (timeout %d ms)",
				 (uint64_t)sid, zoo_recv_timeout(zh));
		else if (ctx->ever_up)
			bcn_info(ctx->log, "reconnected, session 0x%" PRIx64 " kept", (uint64_t)sid);
		ctx->last_session = sid;
		ctx->ever_up = true;
		zk_reg_up(ctx);
		zk_watch_up(ctx);
	} else if (state == ZOO_CONNECTING_STATE || state == ZOO_ASSOCIATING_STATE) {
		if (ctx->session == ZK_UP)
			snprintf(ctx->err, sizeof(ctx->err), "connection lost; reconnecting (session kept for %d ms)",
				 zoo_recv_timeout(zh));
		ctx->session = ZK_CONNECTING;
		zk_watch_down(ctx);
	} else if (state == ZOO_EXPIRED_SESSION_STATE) {
		bcn_warn(ctx->log, "session 0x%" PRIx64 " expired (ephemeral znode lost); starting a new session",
			 (uint64_t)ctx->last_session);
		snprintf(ctx->err, sizeof(ctx->err), "session expired; starting a new one");
		ctx->session = ZK_DOWN;
		zk_watch_down(ctx);
		bcn_timer_ms(ctx->new_ev, 0);
	} else if (state == ZOO_AUTH_FAILED_STATE) {
		snprintf(ctx->err, sizeof(ctx->err), "ZooKeeper refused the digest credential of auth_file");
		bcn_error(ctx->log, "%s", ctx->err);
		ctx->session = ZK_DOWN;
		zk_watch_down(ctx);
		bcn_timer_ms(ctx->new_ev, bcn_backoff_ms(ctx->attempt++, 1000, 30000));
	}
	zk_report(ctx);
}

/* ---- life ---------------------------------------------------------------- */

int zk_conn_init(struct zk_ctx *ctx)
{
	ctx->io_ev = event_new(ctx->core->base, -1, 0, zk_io, ctx);
	ctx->new_ev = evtimer_new(ctx->core->base, zk_new_cb, ctx);
	if (!ctx->io_ev || !ctx->new_ev)
		return -1;
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	return 0;
}

void zk_conn_start(struct zk_ctx *ctx)
{
	zk_new_handle(ctx);
}

void zk_conn_close(struct zk_ctx *ctx)
{
	zhandle_t *zh = ctx->zh;

	if (!zh)
		return;
	if (ctx->io_ev)
		event_del(ctx->io_ev);
	ctx->gen++;          /* completions fired by the close are for the old handle */
	ctx->zh = NULL;
	zookeeper_close(zh);
	ctx->session = ZK_DOWN;
}

void zk_conn_free(struct zk_ctx *ctx)
{
	ctx->closing = true;
	zk_conn_close(ctx);
	if (ctx->io_ev)
		event_free(ctx->io_ev);
	if (ctx->new_ev)
		event_free(ctx->new_ev);
	ctx->io_ev = ctx->new_ev = NULL;
}
