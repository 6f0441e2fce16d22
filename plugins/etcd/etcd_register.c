/*
 * etcd_register.c - this app's key <prefix>/<service>/<id> on a lease.
 *
 * One operation at a time (grant, put or delete) moves what etcd holds
 * towards what it should hold; reg_step() compares the two after every
 * answer and every change, so a status change during a put, a drain during a
 * grant or a lost lease all end up in the right place without special cases:
 *
 *   want the key (a service, not drained): no lease -> grant; the key does
 *     not hold this app's current ENDPOINT JSON -> put it with the lease
 *   do not want it (drained):              the key may exist -> delete it
 *
 * The lease is kept alive every ttl/3 (the TTL etcd granted, which respects
 * its minimum) over /v3/lease/keepalive. A keepalive answering TTL <= 0, a put
 * answering "lease not found", or a reconnect after more than a TTL without
 * confirmation all mean the lease is gone: forget it and the next step grants
 * a new one and puts the key again.
 *
 * Draining deletes the key but keeps the lease alive, so resuming is a single
 * put. Stopping deletes the key and revokes the lease (etcd deletes what is
 * left on a revoked lease anyway), each with a short timeout; when etcd is
 * unreachable the key simply expires with its lease.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"

static void reg_step(struct etcd_ctx *ctx);

static json_t *lease_json(int64_t id)
{
	char s[24];
	snprintf(s, sizeof(s), "%" PRId64, id);
	return json_string(s);
}

static json_t *key_body(const struct etcd_reg *reg)
{
	return json_pack("{so}", "key", etcd_b64(reg->key, strlen(reg->key)));
}

static void schedule_keepalive(struct etcd_ctx *ctx, uint64_t ms)
{
	evtimer_del(ctx->reg.ka_ev);
	bcn_timer_ms(ctx->reg.ka_ev, ms);
}

static uint64_t keepalive_interval(const struct etcd_reg *reg)
{
	uint64_t ms = (uint64_t)reg->ttl_s * 1000 / 3;
	return ms < 300 ? 300 : ms;
}

/* etcd no longer has lease `id`: forget it; reg_step grants a new one. */
static void lease_lost(struct etcd_ctx *ctx, int64_t id, const char *why)
{
	struct etcd_reg *reg = &ctx->reg;

	if (id != reg->lease_id || !id)
		return;
	bcn_warn(ctx->log, "lease %" PRIx64 " is gone (%s); registering again with a new lease",
		 (uint64_t)id, why);
	reg->lease_id = 0;
	reg->ttl_s = 0;
	free(reg->put_value);
	reg->put_value = NULL;
	reg->registered = false;
	evtimer_del(reg->ka_ev);
	etcd_req_cancel(reg->ka);
	reg->ka = NULL;
	etcd_report(ctx);
}

/* etcd refused an operation: remember why and try again later. */
static void op_failed(struct etcd_ctx *ctx, const char *what, const struct etcd_reply *r)
{
	struct etcd_reg *reg = &ctx->reg;
	char err[sizeof(reg->err)];

	if (r->outcome == ETCD_UNREACHABLE)
		return; /* the session is reset right after this */
	snprintf(err, sizeof(err), "%s %s failed: %s", what, reg->key, r->msg);
	if (strcmp(err, reg->err) != 0)
		bcn_warn(ctx->log, "%s; retrying", err);
	memcpy(reg->err, err, sizeof(err));
	bcn_timer_ms(reg->retry_ev, bcn_backoff_ms(reg->attempt++, ETCD_RETRY_BASE_MS, ETCD_RETRY_MAX_MS));
	etcd_report(ctx);
}

static void op_succeeded(struct etcd_ctx *ctx)
{
	ctx->reg.attempt = 0;
	ctx->reg.err[0] = '\0';
}

static void grant_done(struct etcd_ctx *ctx, const struct etcd_reply *r, void *arg)
{
	struct etcd_reg *reg = &ctx->reg;
	int64_t id, ttl;
	(void)arg;

	reg->op = NULL;
	if (r->outcome != ETCD_OK) {
		op_failed(ctx, "granting a lease for", r);
		return;
	}
	id = etcd_int(r->body, "ID", ETCD_MAX_ID);
	ttl = etcd_int(r->body, "TTL", ETCD_MAX_TTL);
	if (id == 0 || ttl <= 0) {
		struct etcd_reply bad = { .outcome = ETCD_FAILED, .msg = "the answer has no lease ID or TTL" };
		op_failed(ctx, "granting a lease for", &bad);
		return;
	}
	op_succeeded(ctx);
	reg->lease_id = id;
	reg->ttl_s = ttl;
	reg->last_alive_ms = bcn_now_ms();
	if ((uint64_t)ttl * 1000 > ctx->ttl_ms + 999)
		bcn_info(ctx->log, "etcd granted lease %" PRIx64 " with a TTL of %" PRId64 " s (its minimum)",
			 (uint64_t)id, ttl);
	else
		bcn_debug(ctx->log, "granted lease %" PRIx64 ", TTL %" PRId64 " s", (uint64_t)id, ttl);
	schedule_keepalive(ctx, keepalive_interval(reg));
	reg_step(ctx);
}

static void put_done(struct etcd_ctx *ctx, const struct etcd_reply *r, void *arg)
{
	struct etcd_reg *reg = &ctx->reg;
	char *value = reg->sending;
	bool was = reg->registered;
	(void)arg;

	reg->op = NULL;
	reg->sending = NULL;
	if (r->outcome == ETCD_FAILED && r->msg && strstr(r->msg, "lease not found")) {
		free(value);
		lease_lost(ctx, reg->op_lease, "etcd answered the put: lease not found");
		reg_step(ctx);
		return;
	}
	if (r->outcome != ETCD_OK) {
		free(value);
		op_failed(ctx, "putting", r);
		return;
	}
	op_succeeded(ctx);
	free(reg->put_value);
	reg->put_value = value;
	reg->registered = true;
	if (!was)
		bcn_info(ctx->log, "registered %s (lease %" PRIx64 ", TTL %" PRId64 " s, status %s)", reg->key,
			 (uint64_t)reg->lease_id, reg->ttl_s, bcn_status_name(ctx->core->service_status));
	else
		bcn_info(ctx->log, "published status %s for %s", bcn_status_name(ctx->core->service_status),
			 reg->key);
	reg_step(ctx);
	etcd_report(ctx);
}

static void delete_done(struct etcd_ctx *ctx, const struct etcd_reply *r, void *arg)
{
	struct etcd_reg *reg = &ctx->reg;
	(void)arg;

	reg->op = NULL;
	if (r->outcome != ETCD_OK) {
		op_failed(ctx, "deleting", r);
		return;
	}
	op_succeeded(ctx);
	free(reg->put_value);
	reg->put_value = NULL;
	reg->key_maybe = false;
	reg->registered = false;
	bcn_info(ctx->log, "removed %s from discovery (drained); the lease stays alive", reg->key);
	reg_step(ctx);
	etcd_report(ctx);
}

static void start_op(struct etcd_ctx *ctx, const char *path, json_t *body, etcd_reply_cb cb)
{
	ctx->reg.op = etcd_request(ctx, path, body, 0, cb, NULL);
	if (!ctx->reg.op) {
		struct etcd_reply bad = { .outcome = ETCD_FAILED, .msg = "the request could not be started" };
		free(ctx->reg.sending);
		ctx->reg.sending = NULL;
		op_failed(ctx, "updating", &bad);
	}
}

static void reg_step(struct etcd_ctx *ctx)
{
	struct etcd_reg *reg = &ctx->reg;
	struct bcn_endpoint *ep;

	if (!reg->key || reg->op || ctx->session != ETCD_UP || ctx->stopping ||
	    evtimer_pending(reg->retry_ev, NULL))
		return;
	ep = bcn_core_self_endpoint(ctx->core);
	if (ep && !ctx->core->drained) {
		if (!reg->lease_id) {
			json_int_t ttl = (json_int_t)((ctx->ttl_ms + 999) / 1000);
			start_op(ctx, "/v3/lease/grant", json_pack("{sI}", "TTL", ttl), grant_done);
		} else if (!reg->put_value || strlen(reg->put_value) != ep->json_len ||
			   memcmp(reg->put_value, ep->json, ep->json_len) != 0) {
			reg->sending = strndup(ep->json, ep->json_len);
			reg->op_lease = reg->lease_id;
			reg->key_maybe = true; /* from now on it may have landed */
			start_op(ctx, "/v3/kv/put",
				 json_pack("{sososo}", "key", etcd_b64(reg->key, strlen(reg->key)),
					   "value", etcd_b64(ep->json, ep->json_len),
					   "lease", lease_json(reg->lease_id)),
				 put_done);
		}
	} else if (reg->key_maybe) {
		start_op(ctx, "/v3/kv/deleterange", key_body(reg), delete_done);
	}
	free(ep);
}

static void retry_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reg_step(arg);
}

/* ---- keepalive ----------------------------------------------------------- */

static void keepalive_done(struct etcd_ctx *ctx, const struct etcd_reply *r, void *arg)
{
	struct etcd_reg *reg = &ctx->reg;
	json_t *res;
	(void)arg;

	reg->ka = NULL;
	if (r->outcome == ETCD_UNREACHABLE)
		return;
	if (r->outcome != ETCD_OK) {
		bcn_debug(ctx->log, "lease keepalive failed: %s", r->msg);
		schedule_keepalive(ctx, keepalive_interval(reg));
		return;
	}
	res = json_object_get(r->body, "result");
	if (etcd_int(res, "ID", ETCD_MAX_ID) != reg->lease_id) {
		/* Malformed, or about a lease we already gave up: keep the current one alive. */
		if (reg->lease_id)
			schedule_keepalive(ctx, keepalive_interval(reg));
		return;
	}
	if (etcd_int(res, "TTL", ETCD_MAX_TTL) <= 0) {
		lease_lost(ctx, reg->lease_id, "the keepalive answered TTL 0: it expired or was revoked");
		reg_step(ctx);
		return;
	}
	reg->last_alive_ms = bcn_now_ms();
	schedule_keepalive(ctx, keepalive_interval(reg));
}

static void keepalive_tick(evutil_socket_t fd, short what, void *arg)
{
	struct etcd_ctx *ctx = arg;
	struct etcd_reg *reg = &ctx->reg;
	(void)fd;
	(void)what;

	if (ctx->session != ETCD_UP || !reg->lease_id || reg->ka || ctx->stopping)
		return;
	reg->ka = etcd_request(ctx, "/v3/lease/keepalive", json_pack("{so}", "ID", lease_json(reg->lease_id)),
			       0, keepalive_done, NULL);
	if (!reg->ka)
		schedule_keepalive(ctx, keepalive_interval(reg));
}

/* ---- session events ------------------------------------------------------ */

int etcd_reg_init(struct etcd_ctx *ctx)
{
	const struct bcn_service_conf *sc = bcn_core_service(ctx->core);
	struct etcd_reg *reg = &ctx->reg;

	reg->ka_ev = evtimer_new(ctx->core->base, keepalive_tick, ctx);
	reg->retry_ev = evtimer_new(ctx->core->base, retry_tick, ctx);
	if (!reg->ka_ev || !reg->retry_ev)
		return -1;
	if (!sc)
		return 0;
	if (strchr(sc->name, '/') || strchr(sc->id, '/') || !sc->id[0]) {
		bcn_error(ctx->log, "service name \"%s\" and id \"%s\" must be non-empty and free of \"/\" "
			  "to form the key <prefix>/<service>/<id>", sc->name, sc->id);
		return -1;
	}
	/* The core keeps the service section a registration started with until
	 * a restart, so the key never changes under us. */
	if (asprintf(&reg->key, "%s/%s/%s", ctx->prefix, sc->name, sc->id) < 0) {
		reg->key = NULL;
		return -1;
	}
	return 0;
}

void etcd_reg_free(struct etcd_ctx *ctx)
{
	struct etcd_reg *reg = &ctx->reg;

	etcd_req_cancel(reg->op);
	etcd_req_cancel(reg->ka);
	reg->op = reg->ka = NULL;
	if (reg->ka_ev)
		event_free(reg->ka_ev);
	if (reg->retry_ev)
		event_free(reg->retry_ev);
	reg->ka_ev = reg->retry_ev = NULL;
	free(reg->sending);
	free(reg->put_value);
	free(reg->key);
	reg->sending = reg->put_value = reg->key = NULL;
}

void etcd_reg_up(struct etcd_ctx *ctx)
{
	struct etcd_reg *reg = &ctx->reg;

	if (!reg->key)
		return;
	reg->attempt = 0;
	if (reg->lease_id && bcn_now_ms() - reg->last_alive_ms > (uint64_t)reg->ttl_s * 1000) {
		bcn_info(ctx->log, "etcd was unreachable for longer than the lease TTL (%" PRId64 " s): "
			 "registering with a new lease", reg->ttl_s);
		reg->lease_id = 0;
	}
	if (reg->lease_id)
		schedule_keepalive(ctx, 0);
	reg_step(ctx); /* put_value is unknown after a reconnect: the key is put again */
}

void etcd_reg_down(struct etcd_ctx *ctx)
{
	struct etcd_reg *reg = &ctx->reg;

	etcd_req_cancel(reg->op);
	etcd_req_cancel(reg->ka);
	reg->op = reg->ka = NULL;
	free(reg->sending);
	reg->sending = NULL;
	evtimer_del(reg->ka_ev);
	evtimer_del(reg->retry_ev);
	free(reg->put_value);
	reg->put_value = NULL;
	reg->registered = false;
}

void etcd_reg_changed(struct etcd_ctx *ctx)
{
	/* An operator's drain or resume should not wait for a retry backoff. */
	evtimer_del(ctx->reg.retry_ev);
	ctx->reg.attempt = 0;
	reg_step(ctx);
	etcd_report(ctx);
}

/* ---- stop ---------------------------------------------------------------- */

static void stop_next(struct etcd_ctx *ctx);

static void stop_op_done(struct etcd_ctx *ctx, const struct etcd_reply *r, void *arg)
{
	const char *what = arg;

	ctx->reg.op = NULL;
	if (r->outcome != ETCD_OK) {
		bcn_warn(ctx->log, "%s during shutdown failed: %s", what, r->msg);
		ctx->reg.stop_failed = true;
	}
	stop_next(ctx);
}

static void stop_next(struct etcd_ctx *ctx)
{
	struct etcd_reg *reg = &ctx->reg;

	if (reg->stop_phase == 0) {
		reg->stop_phase = 1;
		if (reg->key_maybe || reg->lease_id) {
			reg->op = etcd_request(ctx, "/v3/kv/deleterange", key_body(reg), ETCD_REQ_SHORT,
					       stop_op_done, "deleting the key");
			if (reg->op)
				return;
		}
	}
	if (reg->stop_phase == 1) {
		reg->stop_phase = 2;
		if (reg->lease_id) {
			reg->op = etcd_request(ctx, "/v3/lease/revoke",
					       json_pack("{so}", "ID", lease_json(reg->lease_id)),
					       ETCD_REQ_SHORT, stop_op_done, "revoking the lease");
			if (reg->op)
				return;
		}
	}
	if (reg->stop_phase == 2) {
		reg->stop_phase = 3;
		if (!reg->stop_failed)
			bcn_info(ctx->log, "deregistered %s and revoked lease %" PRIx64, reg->key,
				 (uint64_t)reg->lease_id);
		reg->lease_id = 0;
		reg->registered = false;
		reg->key_maybe = false;
		if (reg->stop_done)
			reg->stop_done(ctx->ins);
	}
}

void etcd_reg_stop(struct etcd_ctx *ctx, bcn_stop_done_cb done)
{
	struct etcd_reg *reg = &ctx->reg;
	bool was_up = ctx->session == ETCD_UP;

	etcd_req_cancel(reg->op);
	etcd_req_cancel(reg->ka);
	reg->op = reg->ka = NULL;
	free(reg->sending);
	reg->sending = NULL;
	evtimer_del(reg->ka_ev);
	evtimer_del(reg->retry_ev);
	reg->stop_done = done;
	if (!reg->key || (!reg->key_maybe && !reg->lease_id)) {
		done(ctx->ins);
		return;
	}
	if (!was_up) {
		bcn_warn(ctx->log, "etcd is unreachable: %s expires with its lease within %" PRId64 " s",
			 reg->key, reg->ttl_s ? reg->ttl_s : (int64_t)(ctx->ttl_ms / 1000));
		done(ctx->ins);
		return;
	}
	stop_next(ctx);
}
