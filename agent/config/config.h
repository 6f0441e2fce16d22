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

#include "config/cfgmap.h"
#include "base/log.h"

struct bcn_plugin;

/* "tls": {"ca_file", "cert_file", "key_file", "server_name",
 * "insecure_skip_verify"} as every backend takes it. */
struct bcn_tls_conf {
	char *ca_file, *cert_file, *key_file;
	char *server_name;          /* SNI and certificate name; "" = the URL's host */
	bool insecure_skip_verify;
};
extern const struct bcn_cfg_field bcn_tls_fields[];
/* The checks no table can express (server_name is a host name), for a backend's cb_check. */
void bcn_tls_conf_check(const struct bcn_tls_conf *t, const char *path, struct bcn_cfg_errs *errs);
/* The warning tls.insecure_skip_verify earns, under `log`, at every start and
 * reload while the running instance uses it. */
void bcn_tls_warn_insecure(const char *log, bool insecure_skip_verify);

/* Read a secret (token, password) from a file named in the config: the whole
 * file, trailing newlines stripped, into sodium_malloc'd memory. NULL with a
 * sentence in err (never containing the file's content). Free with sodium_free. */
char *bcn_read_secret_file(const char *path, char *err, size_t errlen);

struct bcn_check_conf {
	char *http;                 /* URL, 2xx passing, 429 warning, else critical */
	char *tcp;                  /* "host:port" */
	struct bcn_strlist exec;    /* argv */
	uint64_t interval_ms, timeout_ms;
	int64_t rise, fall;
};

struct bcn_service_conf {
	char *name, *id, *address;
	int64_t port, weight;
	struct bcn_strlist tags;
	json_t *meta;
	struct bcn_check_conf *check; /* NULL: always passing */
};

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

/* On reload: `next` keeps the running values of the restart-only keys
 * (socket path, mode and group, the http listener, the service section);
 * the keys that differed are listed in `changed`. Returns their number. */
size_t bcn_config_keep_restart(struct bcn_config *running, struct bcn_config *next, char *changed,
				size_t len);

/* Free one instance config filled from plugin's config_map. NULL-safe. */
void bcn_instance_conf_free(const struct bcn_plugin *p, void *conf);

#endif
