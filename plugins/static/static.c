/*
 * static.c - services declared in the config ("static.services"), the first
 * source of the endpoint cache. Endpoints are always passing and never stale:
 * they are whatever the operator wrote, and a SIGHUP replaces them.
 */
#include <stdlib.h>
#include <string.h>

#include "plugin/plugin.h"

struct static_conf {
	json_t *services; /* {"name": [ {endpoint}, ... ]} */
};

struct static_ep_conf {
	char *id, *address, *status;
	int64_t port, weight;
	struct bcn_strlist tags;
	json_t *meta;
};

#define EP struct static_ep_conf
static const struct bcn_cfg_field ep_fields[] = {
	BCN_ROW_STR(EP, id, "id", NULL, 0, "instance id, default address:port"),
	BCN_ROW_STR(EP, address, "address", NULL, BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY, "address"),
	BCN_ROW_INT(EP, port, "port", NULL, 1, 65535, BCN_CFG_REQUIRED, "port"),
	BCN_ROW_STRLIST(EP, tags, "tags", NULL, 0, "tags"),
	BCN_ROW_STRMAP(EP, meta, "meta", 0, "metadata"),
	BCN_ROW_INT(EP, weight, "weight", "1", 1, 65535, 0, "weight"),
	BCN_ROW_STR(EP, status, "status", "passing", 0, "passing, warning or critical"),
	BCN_ROW_END,
};
#undef EP

static const struct bcn_cfg_field static_fields[] = {
	BCN_ROW_JSON(struct static_conf, services, "services", 0, "service name -> list of endpoints"),
	BCN_ROW_END,
};

/*
 * Build the endpoints of one service. With errs set, only validate and record
 * problems under path; otherwise hand the endpoints to the cache.
 */
static size_t build_service(struct bcn_instance *ins, const char *name, json_t *list,
			    const char *path, struct bcn_cfg_errs *errs)
{
	struct bcn_endpoint **eps;
	size_t i, n = 0, bad = 0;
	json_t *item;
	char epath[256];

	if (!json_is_array(list)) {
		if (errs)
			bcn_cfg_err(errs, path, "expected an array of endpoints");
		return 1;
	}
	eps = calloc(json_array_size(list) + 1, sizeof(*eps));
	if (!eps)
		return 1;
	json_array_foreach(list, i, item) {
		struct static_ep_conf ec;
		struct bcn_endpoint_spec spec;
		const char *err = NULL;
		enum bcn_status st = BCN_PASSING;

		memset(&ec, 0, sizeof(ec));
		snprintf(epath, sizeof(epath), "%s[%zu]", path, i);
		struct bcn_cfg_errs local = { 0 };
		size_t item_bad = bcn_cfg_fill(ep_fields, item, &ec, epath, errs ? errs : &local);
		bcn_cfg_errs_free(&local);
		bad += item_bad;
		if (bcn_status_parse(ec.status ? ec.status : "passing", &st) < 0) {
			if (errs)
				bcn_cfg_err(errs, epath, "unknown status \"%.40s\" (use passing, warning or critical)", ec.status);
			bad++;
		}
		memset(&spec, 0, sizeof(spec));
		spec.id = ec.id;
		spec.service = name;
		spec.address = ec.address;
		spec.port = ec.port;
		spec.tags = (const char *const *)ec.tags.v;
		spec.ntags = ec.tags.n;
		spec.meta = ec.meta;
		spec.weight = ec.weight;
		spec.status = st;
		if (!item_bad) {
			struct bcn_endpoint *e = bcn_endpoint_new(&spec, &err);
			if (e)
				eps[n++] = e;
			else if (errs)
				bcn_cfg_err(errs, epath, "%s", err);
		}
		bcn_cfg_free(ep_fields, &ec);
	}
	if (!errs && ins)
		bcn_report_endpoints_replace(ins, name, eps, n);
	else
		for (i = 0; i < n; i++)
			free(eps[i]);
	free(eps);
	return bad;
}

static void static_check(void *conf, const char *path, struct bcn_cfg_errs *errs)
{
	struct static_conf *sc = conf;
	const char *name;
	json_t *list;
	char spath[256];

	if (!sc->services)
		return;
	if (!json_is_object(sc->services)) {
		bcn_cfg_err(errs, path, "\"services\" must be an object of service name -> endpoints");
		return;
	}
	json_object_foreach(sc->services, name, list) {
		char svcs[256];
		snprintf(svcs, sizeof(svcs), "%s.services", path);
		bcn_cfg_path_key(spath, sizeof(spath), svcs, name);
		if (!name[0] || strchr(name, '/'))
			bcn_cfg_err(errs, spath, "a service name is non-empty and has no \"/\"");
		build_service(NULL, name, list, spath, errs);
	}
}

/* Publish conf's services; withdraw those of `old` that are gone. */
static void publish(struct bcn_instance *ins, struct static_conf *conf, struct static_conf *old)
{
	const char *name;
	json_t *list;

	if (old && old->services) {
		json_object_foreach(old->services, name, list) {
			if (!conf->services || !json_object_get(conf->services, name))
				bcn_report_watch(ins, name, false);
		}
	}
	if (conf->services) {
		json_object_foreach(conf->services, name, list) {
			bcn_report_watch(ins, name, true);
			build_service(ins, name, list, "", NULL);
		}
	}
}

static int static_init(struct bcn_instance *ins)
{
	(void)ins;
	return 0;
}

static int static_start(struct bcn_instance *ins)
{
	publish(ins, ins->conf, NULL);
	bcn_instance_report(ins, true, "loaded", NULL);
	return 0;
}

static void static_reload(struct bcn_instance *ins, void *new_conf)
{
	publish(ins, new_conf, ins->conf);
}

static void static_exit(struct bcn_instance *ins)
{
	(void)ins;
}

static void static_self(struct bcn_instance *ins, json_t *obj)
{
	struct static_conf *sc = ins->conf;
	json_object_set_new(obj, "services", json_integer(sc->services ? (json_int_t)json_object_size(sc->services) : 0));
}

const struct bcn_plugin bcn_plugin_static = {
	.name = "static",
	.description = "services declared in the config file",
	.kind = BCN_PLUGIN_SOURCE,
	.section = "static",
	.section_always = true, /* reloads can add static services */
	.config_map = static_fields,
	.config_size = sizeof(struct static_conf),
	.cb_check = static_check,
	.cb_init = static_init,
	.cb_start = static_start,
	.cb_reload = static_reload,
	.cb_exit = static_exit,
	.cb_self = static_self,
};
