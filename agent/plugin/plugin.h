/*
 * plugin.h - everything a backend plugin includes (after Fluent Bit / collectd).
 *
 * A plugin is a fixed descriptor (struct bcn_plugin) compiled into the binary
 * and listed by `beacon --version`. Each configured use of it is an instance
 * (struct bcn_instance) holding the plugin's own context. The core fills the
 * instance's config struct from the plugin's config_map, then calls the
 * callbacks on the agent's single event loop. A plugin reports what it learns
 * through the instance-scoped bcn_report_*() calls below (endpoints, KV,
 * secrets, staleness) and its own state through bcn_instance_report(); it
 * never touches the store, the agent config, the socket API or another
 * plugin. This header and the lower-layer headers it includes for types and
 * helpers are all a plugin sees, so a test core implementing these few
 * functions is enough to run a plugin in a unit test. No callback may block.
 */
#ifndef BCN_PLUGIN_H
#define BCN_PLUGIN_H

#include <jansson.h>
#include <stdbool.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/log.h"
#include "base/timing.h"
#include "config/backend.h"   /* tls block, credential files, the service section */
#include "config/cfgmap.h"
#include "http/client.h"
#include "plugin/watchset.h"
#include "secrets/seal.h"     /* sealed credentials, the guarded arena */
#include "store/endpoint.h"

struct event_base;
struct bcn_cache;
struct bcn_config;
struct bcn_secrets;
struct bcn_secret;
struct bcn_instance;
struct bcn_core;

enum bcn_plugin_kind {
	BCN_PLUGIN_SOURCE,   /* feeds endpoints only (static) */
	BCN_PLUGIN_REGISTRY, /* registers this service and discovers others (etcd, consul) */
	BCN_PLUGIN_SECRETS,  /* fetches secrets (vault) */
};

/* What the agent offers every instance. Owned by the agent. */
struct bcn_core {
	struct event_base *base;
	struct bcn_http *http;
	struct bcn_cache *cache;         /* the store; plugins write it through bcn_report_*() */
	/* The secret store (/v1/secrets); NULL when no secrets plugin is
	 * configured. Plugins declare secrets through bcn_report_secret_*() and
	 * seal credentials with it (bcn_secrets_seal). */
	struct bcn_secrets *secrets;
	const struct bcn_config *config; /* the running config; replaced on reload; not for plugins */
	/* This app as registries publish it: the debounced health-check status
	 * (passing when there is no check) and whether it is drained. */
	enum bcn_status service_status;
	bool drained;
	/* Called by bcn_instance_report when an instance's readiness or state changes. */
	void (*state_changed)(struct bcn_core *core, struct bcn_instance *ins);
	void *owner;                     /* the agent */
};

struct bcn_instance {
	const struct bcn_plugin *plugin;
	char name[48];       /* "etcd#0": plugin name and position, used in logs and /v1/self */
	void *conf;          /* filled from plugin->config_map; owned by the core */
	void *ctx;           /* the plugin's own context, created in cb_init, freed in cb_exit */
	struct bcn_core *core;
	int src;             /* cache source id of this instance */
	bool ready;          /* first sync / registration done (drives /ready) */
	char state[32];      /* short word for /v1/self and `beacon status`: "synced", "connecting" */
	char last_error[256];/* last problem, one sentence, "" when none; never holds a secret */
};

/* Called by the core when cb_stop has finished (deregistered, revoked...). */
typedef void (*bcn_stop_done_cb)(struct bcn_instance *ins);

struct bcn_plugin {
	const char *name;
	const char *description;
	enum bcn_plugin_kind kind;
	/* The config section an instance is made from: a top-level key of its
	 * own ("vault"), or with section_list a key backends share, the object
	 * chosen by "backend" equal to this plugin's name: "registry": {...}, or
	 * one of "registries": [...]. */
	const char *section;
	const char *section_list;
	bool section_always;                    /* an instance even without the key (static) */
	const struct bcn_cfg_field *config_map; /* keys of the instance's config object */
	size_t config_size;                     /* size of the struct config_map fills */

	/* Extra validation after config_map filled conf (cross-field rules).
	 * Add problems to errs under `path`. Runs for --check-config too, so no
	 * I/O. Optional. */
	void (*cb_check)(void *conf, const char *path, struct bcn_cfg_errs *errs);
	/* The same for the top-level "service" this registry would register
	 * (limits of the backend, such as Consul's on metadata); runs after
	 * cb_check when a service is configured. No I/O. Optional. */
	void (*cb_check_service)(void *conf, const struct bcn_service_conf *svc, const char *path,
				 struct bcn_cfg_errs *errs);

	/* Create ins->ctx from ins->conf; no I/O yet. 0 or -1 (logged). Required. */
	int (*cb_init)(struct bcn_instance *ins);
	/* Begin work on the loop. 0 or -1 (logged). Required. */
	int (*cb_start)(struct bcn_instance *ins);
	/* The config was reloaded: core->config is already the new one and new_conf
	 * is this instance's new config (the core frees the old one afterwards).
	 * The rows flagged BCN_CFG_RESTART already hold their running values in
	 * new_conf, and the core has logged the ones that changed: apply the
	 * rest live. Optional. */
	void (*cb_reload)(struct bcn_instance *ins, void *new_conf);
	/* core->service_status or core->drained changed: publish it (drained =
	 * take this app out of discovery, undrained = put it back). Optional. */
	void (*cb_service_changed)(struct bcn_instance *ins);
	/* Graceful stop (deregister, revoke); call done(ins) when finished, maybe
	 * synchronously. The core gives up after a deadline. Optional. */
	void (*cb_stop)(struct bcn_instance *ins, bcn_stop_done_cb done);
	/* Free ctx; cancel every request and timer. NULL-safe on a failed init. Required. */
	void (*cb_exit)(struct bcn_instance *ins);
	/* Add plugin-specific fields to this instance's /v1/self object. Optional. */
	void (*cb_self)(struct bcn_instance *ins, json_t *obj);
};

/* Set ready/state/last_error in one call; logs state changes. fmt may be NULL (no error). */
void bcn_instance_report(struct bcn_instance *ins, bool ready, const char *state,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* This app's ENDPOINT (SPEC) from config->service and core->service_status;
 * NULL when no service is configured. Free with free(). */
struct bcn_endpoint *bcn_core_self_endpoint(const struct bcn_core *core);

/* This app's "service" section of the running config (bcn_core_self_endpoint
 * is it as an endpoint); NULL when none is configured. */
const struct bcn_service_conf *bcn_core_service(const struct bcn_core *core);

/*
 * ---- reporting: what an instance learned, into the store ------------------
 *
 * Every call is scoped to the instance that reports (as Fluent Bit's
 * flb_input_log_append(ins, ...)): the store keeps each instance's data apart
 * and merges it for readers. Changes made in one loop turn are published
 * together. None of these calls blocks or calls back into the plugin.
 */

/* Declare that ins is responsible for `service` (so the service exists, maybe
 * empty, and is served stale while ins is). watch=false withdraws it and
 * drops ins's endpoints of that service. */
void bcn_report_watch(struct bcn_instance *ins, const char *service, bool watch);
/* Add or replace one endpoint (by id) of service; takes ownership of ep. */
void bcn_report_endpoint(struct bcn_instance *ins, const char *service, struct bcn_endpoint *ep);
/* Remove ins's endpoint `id` of service; no-op when absent. */
void bcn_report_endpoint_gone(struct bcn_instance *ins, const char *service, const char *id);
/* Replace ins's whole endpoint set of service (a resync); takes ownership of
 * eps[i], not of eps. */
void bcn_report_endpoints_replace(struct bcn_instance *ins, const char *service,
				  struct bcn_endpoint **eps, size_t n);

/* Declare that ins watches KV `prefix` (reads under it are answered, maybe 404). */
void bcn_report_kv_watch(struct bcn_instance *ins, const char *prefix, bool watch);
/* Set one key (key and value are copied; unchanged bytes are a no-op). */
void bcn_report_kv_put(struct bcn_instance *ins, const char *key, const char *value, size_t len);
void bcn_report_kv_delete(struct bcn_instance *ins, const char *key);
/* Replace everything ins has under prefix with keys[i] = values[i] (lens[i] bytes). */
void bcn_report_kv_replace(struct bcn_instance *ins, const char *prefix, const char *const *keys,
			   const char *const *values, const size_t *lens, size_t n);

/* The backend is unreachable (everything ins reported is served stale) or back. */
void bcn_report_stale(struct bcn_instance *ins, bool stale);

/* Declare secret `name` in the core's secret store, readable by the peer uids
 * given (copied). NULL when out of memory, when there is no secret store or
 * when the name is taken (bcn_report_secret_taken tells). */
struct bcn_secret *bcn_report_secret_declare(struct bcn_instance *ins, const char *name,
					     const uid_t *uids, size_t nuids);
/* True when some secret of that name exists already. */
bool bcn_report_secret_taken(struct bcn_instance *ins, const char *name);
/* Replace who may read it (reload). 0 or -1 (out of memory: unchanged). */
int bcn_report_secret_uids(struct bcn_instance *ins, struct bcn_secret *sec, const uid_t *uids,
			   size_t nuids);
/* New data (a JSON object), version (negative: count changes) and expiry
 * (CLOCK_MONOTONIC ms, 0 for none). 1 changed, 0 unchanged, -1 error (logged). */
int bcn_report_secret_put(struct bcn_instance *ins, struct bcn_secret *sec, const json_t *data,
			  int64_t version, uint64_t expires_at_ms);
/* A renewed lease: new expiry for the same data. */
void bcn_report_secret_expiry(struct bcn_instance *ins, struct bcn_secret *sec, uint64_t expires_at_ms);
/* The source could not refresh it (answers say stale), or it could again. */
void bcn_report_secret_stale(struct bcn_instance *ins, struct bcn_secret *sec, bool stale);
/* Forget its data (the lease ended): reads get 503 until the next put. */
void bcn_report_secret_drop(struct bcn_instance *ins, struct bcn_secret *sec);
/* What the store holds for sec, for the plugin's log and self report: data
 * that has not expired, the version answers show, the index readers wait on. */
bool bcn_report_secret_loaded(const struct bcn_secret *sec);
int64_t bcn_report_secret_version(const struct bcn_secret *sec);
uint64_t bcn_report_secret_index(const struct bcn_secret *sec);

/* Point a request's TLS options at a backend's "tls" block (the strings are
 * borrowed: t must outlive the bcn_http_start call, as the config does). */
void bcn_tls_http_opts(const struct bcn_tls_conf *t, struct bcn_http_opts *o);

/* Compiled-in plugins, NULL-terminated. */
extern const struct bcn_plugin *const bcn_plugins[];
/* Their config sections, for bcn_config_load (ended by a NULL key). */
const struct bcn_cfg_section *bcn_plugin_sections(void);
const struct bcn_plugin *bcn_plugin_find(const char *name, enum bcn_plugin_kind kind);

#endif
