/*
 * backend.h - the parts of the configuration a backend plugin sees: the "tls"
 * block every backend takes, reading a credential file named in the config,
 * and the top-level "service" a registry publishes.
 *
 * They live apart from config.h so that plugin.h can offer them without
 * showing a plugin the whole agent config (a plugin sees only plugin.h and
 * what it includes). Implemented in config.c.
 */
#ifndef BCN_CONFIG_BACKEND_H
#define BCN_CONFIG_BACKEND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfgmap.h"

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

#endif
