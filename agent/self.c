/*
 * self.c - what the agent shows of itself: the /v1/self object (registration
 * and backend states, the check, the outputs: DNS, proxies, templates, exec)
 * and the context the socket API runs with (struct bcn_api's callbacks).
 * The API sits on layer 4 beside the other outputs and never includes them,
 * so the agent relays what they report (agent.c keeps the daemon's life).
 */
#include "agent.h"

#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "base/timing.h"
#include "base/utf8.h"
#include "config/config.h"
#include "dns/dns.h"
#include "exec/exec.h"
#include "health/check.h"
#include "proxy/proxy.h"
#include "store/cache.h"
#include "template/template.h"

static const char *kind_name(enum bcn_plugin_kind k)
{
	switch (k) {
	case BCN_PLUGIN_REGISTRY: return "registry";
	case BCN_PLUGIN_SECRETS:  return "secrets";
	default:                  return "source";
	}
}

json_t *bcn_agent_self(struct bcn_agent *a)
{
	const struct bcn_config *c = a->cfg;
	char why[256] = "";
	bool ready = bcn_agent_ready(a, why, sizeof(why));
	json_t *o = json_object(), *backends = json_array(), *svc = json_null();

	if (!o || !backends) {
		json_decref(o);
		json_decref(backends);
		return NULL;
	}
	if (c->service) {
		svc = json_pack("{sssssssIsssbso}", "name", c->service->name, "id", c->service->id,
				"address", c->service->address, "port", (json_int_t)c->service->port,
				"status", bcn_status_name(a->core.service_status),
				"drained", a->drained,
				"check", a->check ? bcn_check_self(a->check) : json_null());
	}
	for (size_t i = 0; i < a->nins; i++) {
		struct bcn_instance *ins = &a->ins[i];
		/* state and error may quote a backend's bytes (not always UTF-8,
		 * or cut inside a character): repaired, never a lost entry. */
		json_t *b = json_pack("{sssssssosbsbso}", "name", ins->name, "plugin", ins->plugin->name,
				      "kind", kind_name(ins->plugin->kind),
				      "state", bcn_json_text(ins->state, strlen(ins->state)),
				      "ready", ins->ready, "stale", bcn_cache_source_stale(a->core.cache, ins->src),
				      "error", bcn_json_text(ins->last_error, strlen(ins->last_error)));
		if (b && ins->plugin->cb_self)
			ins->plugin->cb_self(ins, b);
		if (b)
			json_array_append_new(backends, b);
	}
	json_object_set_new(o, "node", json_string(c->node));
	json_object_set_new(o, "version", json_string(BCN_VERSION));
	json_object_set_new(o, "ready", json_boolean(ready));
	if (!ready)
		json_object_set_new(o, "not_ready_reason", bcn_json_text(why, strlen(why)));
	json_object_set_new(o, "drained", json_boolean(a->drained));
	json_object_set_new(o, "uptime_seconds", json_integer((json_int_t)((bcn_now_us() - a->started_us) / 1000000)));
	json_object_set_new(o, "service", svc ? svc : json_null());
	json_object_set_new(o, "backends", backends);
	json_object_set_new(o, "services", json_integer((json_int_t)bcn_cache_nservices(a->core.cache)));
	json_object_set_new(o, "index", json_integer((json_int_t)bcn_cache_index(a->core.cache)));
	if (a->dns)
		json_object_set_new(o, "dns", bcn_dns_self(a->dns));
	json_object_set_new(o, "proxies", bcn_proxies_self(a->proxies));
	json_object_set_new(o, "templates", bcn_templates_self(a->templates));
	if (a->exec)
		json_object_set_new(o, "exec", bcn_exec_self(a->exec));
	return o;
}

/* ---- the socket API's context -------------------------------------------- */

static bool api_ready(void *owner, char *why, size_t len)
{
	return bcn_agent_ready(owner, why, len);
}

static json_t *api_self(void *owner)
{
	return bcn_agent_self(owner);
}

static void api_drain(void *owner, bool drain)
{
	bcn_agent_drain(owner, drain);
}

static bool api_backend(void *owner, size_t i, const char **name, bool *ready)
{
	struct bcn_agent *a = owner;

	if (i >= a->nins)
		return false;
	*name = a->ins[i].name;
	*ready = a->ins[i].ready;
	return true;
}

/* The outputs beside the API (templates, DNS, proxies) append their
 * Prometheus lines here: one call per output the agent runs. */
static void api_metrics_more(void *owner, struct evbuffer *out)
{
	struct bcn_agent *a = owner;

	if (a->dns)
		bcn_dns_metrics(a->dns, out);
	if (a->proxies)
		bcn_proxies_metrics(a->proxies, out);
	bcn_templates_metrics(a->templates, out);
}

static json_t *api_proxies(void *owner)
{
	return bcn_proxies_json(((struct bcn_agent *)owner)->proxies);
}

void bcn_agent_api_fill(struct bcn_agent *a)
{
	a->api.base = a->base;
	a->api.cache = a->core.cache;
	a->api.http = a->core.http;
	a->api.sock = a->sock;
	a->api.secrets = a->core.secrets; /* NULL without a secrets plugin */
	a->api.owner = a;
	a->api.ready = api_ready;
	a->api.self = api_self;
	a->api.drain = api_drain;
	a->api.backend = api_backend;
	a->api.metrics_more = api_metrics_more;
	a->api.proxies = api_proxies;
}

