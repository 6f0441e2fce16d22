/*
 * check.h - the agent's own health check of the app it sits next to.
 *
 * In the core, not in a registry plugin, so every registry (etcd, Consul)
 * publishes the same status: http (2xx passing, 429 warning, else critical),
 * tcp (connect), exec (exit 0 passing, 1 warning, else critical; killed at the
 * timeout). rise/fall consecutive results are needed to change status, so one
 * slow answer does not flap the registration. All on the agent's loop.
 */
#ifndef BCN_HEALTHCHECK_H
#define BCN_HEALTHCHECK_H

#include <jansson.h>

#include "config/config.h"
#include "store/endpoint.h"

struct bcn_core;
struct bcn_check;

/* Called when the debounced status changes. */
typedef void (*bcn_check_cb)(enum bcn_status st, void *arg);

/* Create and start checking at once, then every interval. NULL on failure (logged). */
struct bcn_check *bcn_check_new(struct bcn_core *core, const struct bcn_check_conf *conf,
				bcn_check_cb cb, void *arg);
/* Stop (kills a running exec child) and free. NULL-safe. */
void bcn_check_free(struct bcn_check *c);

enum bcn_status bcn_check_status(const struct bcn_check *c);
/* {"type","target","status","output","last_run_ms_ago","consecutive"...} for /v1/self. */
json_t *bcn_check_self(const struct bcn_check *c);

#endif
