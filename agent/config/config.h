/*
 * config.h - the agent's configuration (SPEC.md "Config file"), as C structs.
 *
 * The tables in config.c are the single declaration of every core key. The
 * sources' sections are described by the layer above (struct bcn_cfg_section,
 * from each plugin's descriptor) and filled by their own tables, so adding a
 * backend never touches this file or config.c.
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

/* The DNS interface (SPEC.md "DNS"); listen needs a restart, the rest is live. */
struct bcn_dns_conf {
	char *listen;               /* "host:port", UDP and TCP */
	char *domain;               /* lower case, no trailing dot after the check */
	uint64_t ttl_ms;
	int64_t udp_answer_limit;   /* 0: as many as fit */
	int64_t max_connections;    /* TCP */
	uint64_t idle_timeout_ms;   /* TCP */
};

/*
 * A config section a source takes, described by the layer above (each
 * plugin's descriptor: bcn_plugin_sections()), so this file names no backend.
 * A section is either a top-level object of its own ("<key>": {...}), or,
 * with list_key, one of several backends sharing a key and chosen by the
 * object's "backend" value: "registry": {...} or "registries": [{...}, ...].
 */
struct bcn_cfg_section {
	const char *key;            /* top-level key */
	const char *list_key;       /* the list form of a key shared by backends; NULL: a section of its own */
	const char *name;           /* the "backend" value choosing this one (with list_key) */
	const char *desc;
	bool always;                /* an instance even when the key is absent (reloads can then fill it) */
	const struct bcn_cfg_field *fields; /* NULL: no keys */
	size_t size;                /* of the struct fields fills */
	/* Cross-field checks after the fill; no I/O. Optional. */
	void (*check)(void *conf, const char *path, struct bcn_cfg_errs *errs);
	void (*check_service)(void *conf, const struct bcn_service_conf *svc, const char *path,
			      struct bcn_cfg_errs *errs);
	const struct bcn_plugin *plugin; /* opaque here: handed back in bcn_instance_conf */
};

/* One configured instance: its section's plugin and its filled config. */
struct bcn_instance_conf {
	const struct bcn_plugin *plugin;
	const struct bcn_cfg_section *section;
	void *conf;
	char path[48];              /* "$.registries[1]" */
};

/* One local proxy (SPEC "Local proxies"): a listener relayed to a service. */
struct bcn_proxy_outlier_conf {
	int64_t consecutive_failures;
	uint64_t ejection_ms;
};

struct bcn_proxy_conf {
	char *listen;               /* "host:port" or "unix:/path" */
	char *service, *tag, *policy;
	uint64_t connect_timeout_ms, idle_timeout_ms;
	int64_t retries, max_connections;
	struct bcn_proxy_outlier_conf outlier;
};

/* One entry of "templates" (SPEC.md "Templates"; issue 12). Checked and
 * parsed by template/ (bcn_templates_prepare), which also adds the services
 * and keys a template names to the watch lists. */
struct bcn_template_wait {
	uint64_t min_ms, max_ms;    /* 0: no wait */
};
struct bcn_template_conf {
	char *source, *contents;    /* exactly one */
	char *destination;
	unsigned perms;             /* 0: 0644, or 0600 when the template renders a secret */
	char *user, *group;         /* "": keep the agent's */
	struct bcn_template_wait wait;
	struct bcn_strlist command; /* argv, no shell */
	uint64_t command_timeout_ms;
	char *signal, *pid_file;    /* signal the pid_file's process (or the exec child) */
	char *escape;               /* none, html, json */
};

/* "exec" (SPEC.md "Exec mode"): the app as a child with rendered env. */
struct bcn_exec_conf {
	struct bcn_strlist command;
	json_t *env;                /* name -> template string */
	bool restart_on_change;
	char *kill_signal;
	uint64_t kill_timeout_ms;
	char *escape;
};

/* Top-level keys the sections may take, at most. */
#define BCN_CFG_MAX_SECTION_KEYS 16

struct bcn_config {
	char *node;
	struct bcn_socket_conf socket;
	struct bcn_http_conf *http;
	struct bcn_log_conf log;
	struct bcn_service_conf *service;
	struct bcn_watch_conf watch;
	struct bcn_dns_conf *dns;   /* NULL: no DNS interface */
	/* Each section key's raw JSON (NULL when absent), validated by the
	 * section's own table when its instance is built. */
	const char *section_key[BCN_CFG_MAX_SECTION_KEYS];
	json_t *section_json[BCN_CFG_MAX_SECTION_KEYS];
	size_t nsection_keys;

	/* derived */
	enum bcn_log_level log_level;
	enum bcn_log_format log_format;
	struct bcn_instance_conf *instances; /* in the order the sections' keys first appear */
	size_t ninstances;
	char *file;
	struct bcn_objlist proxies;  /* of struct bcn_proxy_conf (issue 14) */

	struct bcn_objlist templates; /* of struct bcn_template_conf */
	struct bcn_exec_conf *exec;   /* NULL without "exec" (or `agent -- CMD`) */
};

/* Load and validate FILE with the sections (ended by one with key NULL) the
 * compiled-in sources take. NULL when there is any problem; every problem is
 * in errs. */
struct bcn_config *bcn_config_load(const char *file, const struct bcn_cfg_section *sections,
				   struct bcn_cfg_errs *errs);
void bcn_config_free(struct bcn_config *c); /* NULL-safe */

/* On reload: `next` keeps the running values of the restart-only keys
 * (socket path, mode and group, the http listener, the service section);
 * the keys that differed are listed in `changed`. Returns their number. */
size_t bcn_config_keep_restart(struct bcn_config *running, struct bcn_config *next, char *changed,
				size_t len);

/* config/proxy_conf.c: the rules of the proxies section the table cannot
 * express (listen forms, policy names, duplicates); with a registry, each
 * proxy's service joins watch.services, as a proxy needs it discovered. */
void bcn_config_check_proxies(struct bcn_config *c, bool have_registry, struct bcn_cfg_errs *errs);

/* Free one instance config filled from the table `fields`. NULL-safe. */
void bcn_instance_conf_free(const struct bcn_cfg_field *fields, void *conf);

#endif
