/*
 * report.c - the instance-scoped reporting API of plugin.h: what a plugin
 * instance learned goes into the core's stores under that instance's name.
 *
 * Each call only adds the instance's source id (or the core's secret store)
 * to the store call it stands for, so a plugin never names the store and a
 * unit test can replace this one file with a test core that records the
 * calls. Also here: the view of this app's service section plugins get
 * instead of the agent config.
 */
#include <string.h>

#include "config/config.h"
#include "plugin/plugin.h"
#include "secrets/store.h"
#include "store/cache.h"

/* ---- endpoints and KV ---------------------------------------------------- */

void bcn_report_watch(struct bcn_instance *ins, const char *service, bool watch)
{
	bcn_cache_watch(ins->core->cache, ins->src, service, watch);
}

void bcn_report_endpoint(struct bcn_instance *ins, const char *service, struct bcn_endpoint *ep)
{
	bcn_cache_put(ins->core->cache, ins->src, service, ep);
}

void bcn_report_endpoint_gone(struct bcn_instance *ins, const char *service, const char *id)
{
	bcn_cache_delete(ins->core->cache, ins->src, service, id);
}

void bcn_report_endpoints_replace(struct bcn_instance *ins, const char *service,
				  struct bcn_endpoint **eps, size_t n)
{
	bcn_cache_replace(ins->core->cache, ins->src, service, eps, n);
}

void bcn_report_kv_watch(struct bcn_instance *ins, const char *prefix, bool watch)
{
	bcn_cache_kv_watch(ins->core->cache, ins->src, prefix, watch);
}

void bcn_report_kv_put(struct bcn_instance *ins, const char *key, const char *value, size_t len)
{
	bcn_cache_kv_put(ins->core->cache, ins->src, key, value, len);
}

void bcn_report_kv_delete(struct bcn_instance *ins, const char *key)
{
	bcn_cache_kv_delete(ins->core->cache, ins->src, key);
}

void bcn_report_kv_replace(struct bcn_instance *ins, const char *prefix, const char *const *keys,
			   const char *const *values, const size_t *lens, size_t n)
{
	bcn_cache_kv_replace(ins->core->cache, ins->src, prefix, keys, values, lens, n);
}

void bcn_report_stale(struct bcn_instance *ins, bool stale)
{
	bcn_cache_set_stale(ins->core->cache, ins->src, stale);
}

/* ---- secrets ------------------------------------------------------------- */

struct bcn_secret *bcn_report_secret_declare(struct bcn_instance *ins, const char *name,
					     const uid_t *uids, size_t nuids)
{
	if (!ins->core->secrets)
		return NULL;
	return bcn_secrets_add(ins->core->secrets, name, uids, nuids);
}

bool bcn_report_secret_taken(struct bcn_instance *ins, const char *name)
{
	(void)ins;
	return bcn_secrets_find(ins->core->secrets, name) != NULL;
}

int bcn_report_secret_uids(struct bcn_instance *ins, struct bcn_secret *sec, const uid_t *uids,
			   size_t nuids)
{
	(void)ins;
	return bcn_secret_set_uids(sec, uids, nuids);
}

int bcn_report_secret_put(struct bcn_instance *ins, struct bcn_secret *sec, const json_t *data,
			  int64_t version, uint64_t expires_at_ms)
{
	(void)ins;
	return bcn_secret_put(sec, data, version, expires_at_ms);
}

void bcn_report_secret_expiry(struct bcn_instance *ins, struct bcn_secret *sec, uint64_t expires_at_ms)
{
	(void)ins;
	bcn_secret_set_expiry(sec, expires_at_ms);
}

void bcn_report_secret_stale(struct bcn_instance *ins, struct bcn_secret *sec, bool stale)
{
	(void)ins;
	bcn_secret_set_stale(sec, stale);
}

void bcn_report_secret_drop(struct bcn_instance *ins, struct bcn_secret *sec)
{
	(void)ins;
	bcn_secret_drop(sec);
}

bool bcn_report_secret_loaded(const struct bcn_secret *sec)
{
	return bcn_secret_loaded(sec);
}

int64_t bcn_report_secret_version(const struct bcn_secret *sec)
{
	return bcn_secret_version(sec);
}

uint64_t bcn_report_secret_index(const struct bcn_secret *sec)
{
	return bcn_secret_index(sec);
}

/* ---- this app ------------------------------------------------------------ */

const struct bcn_service_conf *bcn_core_service(const struct bcn_core *core)
{
	return core->config ? core->config->service : NULL;
}

struct bcn_endpoint *bcn_core_self_endpoint(const struct bcn_core *core)
{
	const struct bcn_service_conf *sc = bcn_core_service(core);
	struct bcn_endpoint_spec spec;
	const char *err = NULL;
	struct bcn_endpoint *e;

	if (!sc)
		return NULL;
	memset(&spec, 0, sizeof(spec));
	spec.id = sc->id;
	spec.service = sc->name;
	spec.address = sc->address;
	spec.port = sc->port;
	spec.tags = (const char *const *)sc->tags.v;
	spec.ntags = sc->tags.n;
	spec.meta = sc->meta;
	spec.weight = sc->weight;
	spec.status = core->service_status;
	e = bcn_endpoint_new(&spec, &err);
	if (!e)
		bcn_error("agent", "cannot build this service's endpoint: %s", err ? err : "unknown error");
	return e;
}
