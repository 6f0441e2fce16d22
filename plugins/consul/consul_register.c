/*
 * consul_register.c - this app as a service of the local Consul agent.
 *
 * The service is registered through /v1/agent/service/register with one TTL
 * check, "beacon:<id>", that beacon drives from the core's health check of
 * the app: pass, warn or fail every TTL/2, and at once when the status
 * changes. Registration carries the current status as the check's initial
 * one, so a (re-)registration never flashes critical. A non-dev agent
 * ignores that status when it re-registers a TTL check it already knew: it
 * restores the status saved by the last update (agent.go loadCheckState),
 * which may be "passing" while the app is now critical. So every
 * successful registration is followed at once by a check update with the
 * current status.
 *
 * One request at a time (register, check update or deregister) moves what
 * the agent holds towards what it should hold; reg_step() compares the two
 * after every answer and every change:
 *
 *   want it (a service, not drained):  not registered -> register;
 *                                      status changed or TTL/2 passed -> update
 *   do not want it (drained):          it may exist -> deregister
 *
 * Anti-entropy: a Consul agent restarted without state forgets us. A check
 * update answered 404 says so directly (older agents with ACLs enabled say
 * 500 "Unknown check", hashicorp/consul#5821); a request that found the agent
 * unreachable says it may have happened, so the registration is redone as
 * soon as the agent answers again (registering is idempotent).
 *
 * Stopping deregisters with the request timeout. When the agent is
 * unreachable the check goes critical once its TTL runs out and Consul
 * removes the service after deregister_critical_after.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consul.h"

static void reg_step(struct consul_ctx *ctx);

static const char *const verb[] = { "pass", "warn", "fail" };

#define ANSWER_OK(r) ((r)->outcome == CONSUL_ANSWERED && (r)->status / 100 == 2)

/* Consul does not know the check or service: 404 'Unknown check ID "x"...'
 * today, 500 'Unknown check "x"' / 'Unknown service "x"' from older agents
 * with ACLs enabled (hashicorp/consul#5821). `what` is "check" or "service". */
static bool answer_unknown(const struct consul_reply *r, const char *what)
{
	char prefix[24];
	size_t n;

	if (r->outcome != CONSUL_ANSWERED)
		return false;
	if (r->status == 404)
		return true;
	n = (size_t)snprintf(prefix, sizeof(prefix), "Unknown %s ", what);
	return r->status == 500 && r->len >= n && memcmp(r->body, prefix, n) == 0;
}

static void schedule_update(struct consul_ctx *ctx)
{
	uint64_t ms = ctx->ttl_ms / 2;
	evtimer_del(ctx->reg.ttl_ev);
	bcn_timer_ms(ctx->reg.ttl_ev, ms < 200 ? 200 : ms);
}

static void retry_later(struct consul_ctx *ctx)
{
	bcn_timer_ms(ctx->reg.retry_ev, bcn_backoff_ms(ctx->reg.attempt++, CONSUL_RETRY_BASE_MS, CONSUL_RETRY_MAX_MS));
}

/* Consul refused or did not answer: remember why and try again later. */
static void op_failed(struct consul_ctx *ctx, const char *what, const struct consul_reply *r)
{
	struct consul_reg *reg = &ctx->reg;
	char err[sizeof(reg->err)];

	snprintf(err, sizeof(err), "%s %s failed: %s", what, reg->id, r->msg);
	if (r->acl)
		consul_acl_denied(ctx, r->msg); /* one line for the whole instance */
	else if (r->outcome == CONSUL_ANSWERED && strcmp(err, reg->err) != 0)
		bcn_warn(ctx->log, "%s; retrying", err);
	memcpy(reg->err, err, sizeof(err));
	reg->err_unreachable = r->outcome == CONSUL_UNREACHABLE;
	retry_later(ctx);
	if (r->outcome == CONSUL_ANSWERED)
		consul_report(ctx); /* else consul_lost() reports right after */
}

static void op_succeeded(struct consul_ctx *ctx)
{
	ctx->reg.attempt = 0;
	ctx->reg.err[0] = '\0';
	ctx->reg.err_unreachable = false;
}

/* Consul no longer has our service: register again now. */
static void registration_lost(struct consul_ctx *ctx, const char *why)
{
	struct consul_reg *reg = &ctx->reg;

	bcn_warn(ctx->log, "Consul lost the registration of %s (%s); registering again", reg->id, why);
	reg->registered = false;
	reg->sent_status = -1;
	reg->attempt = 0;
	evtimer_del(reg->ttl_ev);
}

static void register_done(struct consul_ctx *ctx, const struct consul_reply *r, void *arg)
{
	struct consul_reg *reg = &ctx->reg;
	(void)arg;

	reg->op = NULL;
	if (!ANSWER_OK(r)) {
		op_failed(ctx, "registering", r);
		return;
	}
	op_succeeded(ctx);
	reg->registered = reg->maybe = true;
	reg->sent_status = reg->sending_status;
	reg->last_update_ms = bcn_now_ms();
	/* The agent may have restored an older saved status instead of ours
	 * (loadCheckState): say the current one again right away. */
	reg->update_due = true;
	reg->registrations++;
	bcn_info(ctx->log, "registered %s with check %s (TTL %llu ms, status %s)%s", reg->id, reg->check_id,
		 (unsigned long long)ctx->ttl_ms, bcn_status_name((enum bcn_status)reg->sent_status),
		 reg->registrations > 1 ? " again" : "");
	schedule_update(ctx);
	reg_step(ctx);
	consul_report(ctx);
}

static void update_done(struct consul_ctx *ctx, const struct consul_reply *r, void *arg)
{
	struct consul_reg *reg = &ctx->reg;
	int was = reg->sent_status;
	(void)arg;

	reg->op = NULL;
	if (answer_unknown(r, "check") ||
	    (r->outcome == CONSUL_ANSWERED && r->status == 500 && strstr(r->msg, "does not have associated TTL"))) {
		registration_lost(ctx, answer_unknown(r, "check") ? "it does not know the check"
							      : "the check is no longer a TTL check");
		reg_step(ctx);
		consul_report(ctx);
		return;
	}
	if (!ANSWER_OK(r)) {
		op_failed(ctx, "updating the check of", r);
		return;
	}
	op_succeeded(ctx);
	reg->sent_status = reg->sending_status;
	reg->last_update_ms = bcn_now_ms();
	reg->update_due = false;
	if (was != reg->sent_status)
		bcn_info(ctx->log, "published status %s for %s", bcn_status_name((enum bcn_status)reg->sent_status),
			 reg->id);
	schedule_update(ctx);
	reg_step(ctx);
	consul_report(ctx);
}

static void deregister_done(struct consul_ctx *ctx, const struct consul_reply *r, void *arg)
{
	struct consul_reg *reg = &ctx->reg;
	(void)arg;

	reg->op = NULL;
	/* Unknown: already gone, which is what we wanted. */
	if (!ANSWER_OK(r) && !answer_unknown(r, "service")) {
		op_failed(ctx, "deregistering", r);
		return;
	}
	op_succeeded(ctx);
	reg->registered = reg->maybe = false;
	reg->sent_status = -1;
	evtimer_del(reg->ttl_ev);
	bcn_info(ctx->log, "deregistered %s (drained)", reg->id);
	reg_step(ctx);
	consul_report(ctx);
}

static int start_register(struct consul_ctx *ctx)
{
	struct consul_reg *reg = &ctx->reg;
	json_t *check = json_object_get(reg->def, "Check");
	char *body;

	reg->sending_status = (int)ctx->core->service_status;
	json_object_set_new(check, "Status", json_string(bcn_status_name(ctx->core->service_status)));
	body = json_dumps(reg->def, JSON_COMPACT);
	if (!body)
		return -1;
	reg->maybe = true; /* from now on it may have landed */
	reg->op = consul_request(ctx, "PUT", "/v1/agent/service/register", body, 0, register_done, NULL);
	free(body);
	return reg->op ? 0 : -1;
}

/* prefix + escaped(name) [+ "?note=" + escaped(note)], malloc'd. */
static char *agent_path(const char *prefix, const char *name, const char *note)
{
	size_t cap = strlen(prefix) + 3 * strlen(name) + (note ? 8 + 3 * strlen(note) : 0) + 1;
	char *path = malloc(cap);

	if (!path)
		return NULL;
	snprintf(path, cap, "%s", prefix);
	consul_escape(path, cap, name, false);
	if (note) {
		strcat(path, "?note=");
		consul_escape(path, cap, note, false);
	}
	return path;
}

static int start_update(struct consul_ctx *ctx)
{
	struct consul_reg *reg = &ctx->reg;
	enum bcn_status st = ctx->core->service_status;
	char prefix[32], note[96], *path;

	reg->sending_status = (int)st;
	snprintf(prefix, sizeof(prefix), "/v1/agent/check/%s/", verb[st]);
	snprintf(note, sizeof(note), "beacon: the app's health check is %s", bcn_status_name(st));
	path = agent_path(prefix, reg->check_id, note);
	if (!path)
		return -1;
	reg->op = consul_request(ctx, "PUT", path, NULL, 0, update_done, NULL);
	free(path);
	return reg->op ? 0 : -1;
}

static int start_deregister(struct consul_ctx *ctx, consul_reply_cb cb)
{
	char *path = agent_path("/v1/agent/service/deregister/", ctx->reg.id, NULL);

	if (!path)
		return -1;
	ctx->reg.op = consul_request(ctx, "PUT", path, NULL, 0, cb, NULL);
	free(path);
	return ctx->reg.op ? 0 : -1;
}

static void reg_step(struct consul_ctx *ctx)
{
	struct consul_reg *reg = &ctx->reg;
	int rc = 0;

	if (!reg->id || reg->op || ctx->stopping || evtimer_pending(reg->retry_ev, NULL))
		return;
	if (!ctx->core->drained) {
		if (!reg->registered)
			rc = start_register(ctx);
		else if (reg->update_due || reg->sent_status != (int)ctx->core->service_status)
			rc = start_update(ctx);
	} else if (reg->maybe || reg->registered) {
		rc = start_deregister(ctx, deregister_done);
	}
	if (rc < 0) {
		struct consul_reply bad = { .outcome = CONSUL_ANSWERED, .msg = "the request could not be started" };
		op_failed(ctx, "a request about", &bad);
	}
}

static void retry_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reg_step(arg);
}

static void ttl_tick(evutil_socket_t fd, short what, void *arg)
{
	struct consul_ctx *ctx = arg;
	(void)fd;
	(void)what;
	ctx->reg.update_due = true;
	reg_step(ctx);
}

/* ---- life ---------------------------------------------------------------- */

static json_t *service_def(struct consul_ctx *ctx, const struct bcn_service_conf *sc)
{
	const struct consul_conf *conf = ctx->ins->conf;
	char ttl[32], dereg[32], name[300];
	json_t *def, *check, *tags = json_array();

	for (size_t i = 0; tags && i < sc->tags.n; i++)
		json_array_append_new(tags, json_string(sc->tags.v[i]));
	bcn_duration_format(ctx->ttl_ms, ttl, sizeof(ttl));
	snprintf(name, sizeof(name), "beacon health check of %.250s", sc->name);
	check = json_pack("{ssssssss}", "CheckID", ctx->reg.check_id, "Name", name, "TTL", ttl,
			  "Notes", "driven by the beacon sidecar from its own check of the app");
	if (check && ctx->dereg_ms) {
		bcn_duration_format(ctx->dereg_ms, dereg, sizeof(dereg));
		json_object_set_new(check, "DeregisterCriticalServiceAfter", json_string(dereg));
	}
	def = json_pack("{sssssosssIs{sIsi}so}", "ID", sc->id, "Name", sc->name, "Tags", tags,
			"Address", sc->address, "Port", (json_int_t)sc->port, "Weights", "Passing",
			(json_int_t)(sc->weight > 0 ? sc->weight : 1), "Warning", 1, "Check", check);
	if (def && sc->meta)
		json_object_set(def, "Meta", sc->meta);
	/* Consul Enterprise: the service's namespace and partition (the
	 * requests also carry ?ns= / ?partition=). */
	if (def && conf->namespace_[0])
		json_object_set_new(def, "Namespace", json_string(conf->namespace_));
	if (def && conf->partition[0])
		json_object_set_new(def, "Partition", json_string(conf->partition));
	return def;
}

int consul_reg_init(struct consul_ctx *ctx)
{
	const struct bcn_service_conf *sc = bcn_core_service(ctx->core);
	struct consul_reg *reg = &ctx->reg;

	reg->sent_status = -1;
	reg->ttl_ev = evtimer_new(ctx->core->base, ttl_tick, ctx);
	reg->retry_ev = evtimer_new(ctx->core->base, retry_tick, ctx);
	if (!reg->ttl_ev || !reg->retry_ev)
		return -1;
	if (!sc)
		return 0;
	if (!sc->id[0] || !sc->name[0]) {
		bcn_error(ctx->log, "a service registered in Consul needs a non-empty name and id");
		return -1;
	}
	/* The core keeps the service section a registration started with until
	 * a restart, so what we register never changes under us. */
	reg->id = strdup(sc->id);
	if (!reg->id || asprintf(&reg->check_id, "beacon:%s", sc->id) < 0) {
		reg->check_id = NULL;
		return -1;
	}
	reg->def = service_def(ctx, sc);
	return reg->def ? 0 : -1;
}

void consul_reg_free(struct consul_ctx *ctx)
{
	struct consul_reg *reg = &ctx->reg;

	consul_req_cancel(reg->op);
	reg->op = NULL;
	if (reg->ttl_ev)
		event_free(reg->ttl_ev);
	if (reg->retry_ev)
		event_free(reg->retry_ev);
	reg->ttl_ev = reg->retry_ev = NULL;
	json_decref(reg->def);
	free(reg->id);
	free(reg->check_id);
	reg->def = NULL;
	reg->id = reg->check_id = NULL;
}

void consul_reg_changed(struct consul_ctx *ctx)
{
	/* An operator's drain or resume, or a new status, should not wait for a backoff. */
	if (!ctx->reg.id)
		return;
	evtimer_del(ctx->reg.retry_ev);
	ctx->reg.attempt = 0;
	reg_step(ctx);
	consul_report(ctx);
}

void consul_reg_lost(struct consul_ctx *ctx)
{
	struct consul_reg *reg = &ctx->reg;

	if (!reg->id || ctx->stopping)
		return;
	if (reg->registered) {
		reg->registered = false; /* maybe stays: the service may well still be there */
		reg->sent_status = -1;
		evtimer_del(reg->ttl_ev);
	}
	if (!reg->op && !evtimer_pending(reg->retry_ev, NULL))
		retry_later(ctx);
}

void consul_reg_kick(struct consul_ctx *ctx)
{
	if (ctx->reg.err_unreachable) /* no longer true; a new problem sets its own */
		ctx->reg.err[0] = '\0';
	ctx->reg.err_unreachable = false;
	if (!ctx->reg.id || !evtimer_pending(ctx->reg.retry_ev, NULL))
		return;
	evtimer_del(ctx->reg.retry_ev);
	reg_step(ctx);
}

/* ---- stop ---------------------------------------------------------------- */

static void stop_done(struct consul_ctx *ctx, const struct consul_reply *r, void *arg)
{
	struct consul_reg *reg = &ctx->reg;
	(void)arg;

	reg->op = NULL;
	if (ANSWER_OK(r) || answer_unknown(r, "service"))
		bcn_info(ctx->log, "deregistered %s", reg->id);
	else
		bcn_warn(ctx->log, "deregistering %s during shutdown failed: %s", reg->id, r->msg);
	reg->registered = reg->maybe = false;
	if (reg->stop_done)
		reg->stop_done(ctx->ins);
}

void consul_reg_stop(struct consul_ctx *ctx, bcn_stop_done_cb done)
{
	struct consul_reg *reg = &ctx->reg;

	consul_req_cancel(reg->op);
	reg->op = NULL;
	evtimer_del(reg->ttl_ev);
	evtimer_del(reg->retry_ev);
	reg->stop_done = done;
	if (!reg->id || (!reg->maybe && !reg->registered)) {
		done(ctx->ins);
		return;
	}
	if (ctx->down) {
		char after[32];
		bcn_duration_format(ctx->dereg_ms, after, sizeof(after));
		if (ctx->dereg_ms)
			bcn_warn(ctx->log, "Consul is unreachable: %s turns critical within the TTL and is removed "
				 "by Consul after %s", reg->id, after);
		else
			bcn_warn(ctx->log, "Consul is unreachable: %s turns critical within the TTL and stays "
				 "registered (deregister_critical_after is 0)", reg->id);
		done(ctx->ins);
		return;
	}
	if (start_deregister(ctx, stop_done) < 0)
		done(ctx->ins);
}

void consul_reg_self(const struct consul_ctx *ctx, json_t *obj)
{
	const struct consul_reg *reg = &ctx->reg;

	json_object_set_new(obj, "service_id", reg->id ? json_string(reg->id) : json_null());
	json_object_set_new(obj, "check_id", reg->check_id ? json_string(reg->check_id) : json_null());
	json_object_set_new(obj, "registered", json_boolean(reg->registered));
	json_object_set_new(obj, "registrations", json_integer((json_int_t)reg->registrations));
	json_object_set_new(obj, "last_check_status_sent",
			    reg->sent_status >= 0 ? json_string(bcn_status_name((enum bcn_status)reg->sent_status))
						  : json_null());
	json_object_set_new(obj, "last_check_update_ms_ago",
			    reg->last_update_ms ? json_integer((json_int_t)(bcn_now_ms() - reg->last_update_ms))
						: json_null());
}
