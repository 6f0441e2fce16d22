/*
 * fuzz_agent.h - a real agent for harnesses, minus its sockets and signals:
 * the config loaded from text, the cache, the secret store, the (fake) HTTP
 * client and the plugin instances, made as agent/agent.c makes them. Each input gets a
 * fresh cache and fresh instances (fuzz_agent_start .. fuzz_agent_stop), so
 * one input never depends on the one before.
 */
#ifndef BCN_FUZZ_AGENT_H
#define BCN_FUZZ_AGENT_H

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent.h"
#include "config/config.h"
#include "fake_http.h"
#include "secrets/store.h"
#include "fuzz_util.h"

static void fuzz_agent_state_changed(struct bcn_core *core, struct bcn_instance *ins)
{
	(void)core;
	(void)ins;
}

/* Load config_json as the agent's config (once per process). */
static inline void fuzz_agent_init(struct bcn_agent *a, const char *config_json)
{
	struct bcn_cfg_errs errs = { 0 };
	char path[64];
	int fd = memfd_create("beacon-fuzz-config", MFD_CLOEXEC);
	size_t len = strlen(config_json);

	memset(a, 0, sizeof(*a));
	if (fd < 0 || write(fd, config_json, len) != (ssize_t)len)
		fuzz_fail("cannot write the config");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	a->cfg = bcn_config_load(path, bcn_plugin_sections(), &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (!a->cfg)
		fuzz_fail("the harness's config does not load");
	close(fd);
	bcn_cfg_errs_free(&errs);
	a->base = event_base_new();
	a->core.base = a->base;
	a->core.config = a->cfg;
	a->core.owner = a;
	a->core.state_changed = fuzz_agent_state_changed;
	a->core.service_status = BCN_PASSING;
	a->core.http = bcn_http_new(a->base);
	a->ins = calloc(a->cfg->ninstances + 1, sizeof(*a->ins));
	if (!a->base || !a->core.http || !a->ins)
		fuzz_fail("out of memory setting up the agent");
}

/* A fresh cache and every instance initialised and started. */
static inline void fuzz_agent_start(struct bcn_agent *a)
{
	struct bcn_config *c = a->cfg;

	a->core.cache = bcn_cache_new(a->base);
	if (!a->core.cache)
		fuzz_fail("out of memory making the cache");
	/* The secret store, as agent.c makes it when a secrets plugin is configured. */
	for (size_t i = 0; i < c->ninstances && !a->core.secrets; i++) {
		if (c->instances[i].plugin->kind == BCN_PLUGIN_SECRETS &&
		    !(a->core.secrets = bcn_secrets_new(a->base)))
			fuzz_fail("cannot make the secret store");
	}
	for (size_t i = 0; i < c->ninstances; i++) {
		struct bcn_instance *ins = &a->ins[i];
		size_t same = 0;
		for (size_t j = 0; j < i; j++)
			same += c->instances[j].plugin == c->instances[i].plugin;
		memset(ins, 0, sizeof(*ins));
		ins->plugin = c->instances[i].plugin;
		snprintf(ins->name, sizeof(ins->name), "%s#%zu", ins->plugin->name, same);
		ins->conf = c->instances[i].conf; /* borrowed: the config keeps it for the next input */
		ins->core = &a->core;
		ins->src = bcn_cache_source_add(a->core.cache, ins->name);
		if (ins->src < 0 || ins->plugin->cb_init(ins) < 0)
			fuzz_fail("cannot initialise %s", ins->name);
		a->nins = i + 1;
	}
	for (size_t i = 0; i < a->nins; i++) {
		if (a->ins[i].plugin->cb_start(&a->ins[i]) < 0)
			fuzz_fail("cannot start %s", a->ins[i].name);
	}
	bcn_agent_api_fill(a); /* as agent.c does once the instances exist */
}

/* Exit every instance (which must cancel all its requests) and drop the cache. */
static inline void fuzz_agent_stop(struct bcn_agent *a)
{
	bcn_api_release_waits(&a->api);
	for (size_t i = 0; i < a->nins; i++)
		a->ins[i].plugin->cb_exit(&a->ins[i]);
	a->nins = 0;
	if (fake_http_open())
		fuzz_fail("%zu HTTP request(s) outlive their plugin instance", fake_http_open());
	/* Let timers the instances freed and deferred cache work settle. */
	event_base_loop(a->base, EVLOOP_NONBLOCK);
	bcn_cache_free(a->core.cache);
	a->core.cache = NULL;
	bcn_secrets_free(a->core.secrets);
	a->core.secrets = NULL;
	fake_http_reset();
}

/* Every body the cache serves for /v1/services and /v1/endpoints/<name> is JSON. */
static inline void fuzz_agent_check_bodies(struct bcn_agent *a)
{
	struct bcn_service *s;
	struct bcn_blob *b = bcn_cache_services_body(a->core.cache);
	json_t *j;

	if (b) {
		j = json_loadb(b->data, b->len, 0, NULL);
		if (!j)
			fuzz_fail("/v1/services is not JSON: %.*s", (int)(b->len > 200 ? 200 : b->len), b->data);
		json_decref(j);
		bcn_blob_unref(b);
	}
	for (size_t i = 0; (s = bcn_cache_service_at(a->core.cache, i)) != NULL; i++) {
		for (int passing = 0; passing < 2; passing++) {
			b = bcn_service_body(s, passing);
			if (!b)
				continue;
			j = json_loadb(b->data, b->len, 0, NULL);
			if (!json_is_object(j))
				fuzz_fail("/v1/endpoints/%s is not a JSON object", bcn_service_name(s));
			json_decref(j);
			bcn_blob_unref(b);
		}
	}
}

#endif
