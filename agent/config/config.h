/*
 * config.h - the agent's configuration (SPEC.md "Config file"), as C structs.
 *
 * The tables in config.c are the single declaration of every key. Backend
 * sections (registry, vault, static) are filled by their plugin's own
 * config_map, so adding a backend never touches this file.
 */
#ifndef BCN_CONFIG_H
#define BCN_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/backend.h"
#include "config/cfgmap.h"
#include "base/log.h"

struct bcn_plugin;

struct bcn_socket_conf {
	char *path;
	unsigned mode;
	char *group;                /* "" = the agent's own group */
	int64_t max_connections, max_header_size, max_body_size;
	uint64_t timeout_ms;        /* idle/read/write timeout of a connection */
	gid_t gid;                  /* resolved group, (gid_t)-1 when none */
};

struct bcn_http_conf {
	char *listen;               /* "host:port" */
};

struct bcn_log_conf {
	char *level, *format;
};

struct bcn_watch_conf {
	struct bcn_strlist services, kv;
};

/* One configured plugin instance: its descriptor and its filled config. */
struct bcn_instance_conf {
	const struct bcn_plugin *plugin;
	void *conf;
	char path[48];              /* "$.registries[1]" */
};

struct bcn_config {
	char *node;
	struct bcn_socket_conf socket;
	struct bcn_http_conf *http;
	struct bcn_log_conf log;
	json_t *registry, *registries;
	struct bcn_service_conf *service;
	struct bcn_watch_conf watch;
	json_t *static_;            /* raw "static" object; validated by the static plugin */
	json_t *vault;              /* raw; validated by the secrets plugin */

	/* derived */
	enum bcn_log_level log_level;
	enum bcn_log_format log_format;
	struct bcn_instance_conf *instances; /* static first, then registries, then secrets */
	size_t ninstances;
	char *file;
};

/* Load and validate FILE. NULL when there is any problem; every problem is in errs. */
struct bcn_config *bcn_config_load(const char *file, struct bcn_cfg_errs *errs);
void bcn_config_free(struct bcn_config *c); /* NULL-safe */

/* Free one instance config filled from plugin's config_map. NULL-safe. */
void bcn_instance_conf_free(const struct bcn_plugin *p, void *conf);

#endif
