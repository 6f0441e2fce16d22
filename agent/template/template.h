/*
 * template.h - the "templates" output (SPEC.md "Templates"): files rendered
 * from the store, written atomically when their content changes, followed
 * by a command or a signal. agent.c owns its life.
 *
 * Each template parks on the store's wait queues of what it names
 * (store/wait.h via model.h); a wake starts the wait.min/wait.max clock, and
 * the render happens when it runs out. Nothing is rendered before the agent
 * says every source has synced once (bcn_templates_synced), so a template
 * never renders half-known state (an empty upstream list at start).
 */
#ifndef BCN_TEMPLATE_H
#define BCN_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "template/mustache.h"

struct bcn_core;
struct bcn_config;
struct bcn_cfg_errs;
struct bcn_template_conf;
struct evbuffer;
struct bcn_templates;

/* After bcn_config_load: the template and exec rules that need the engine
 * (prepare.c); exec_argv (NULL-terminated, or NULL) is `agent -- CMD ARGS`.
 * Adds what templates name to c->watch. Problems go to errs. */
void bcn_templates_prepare(struct bcn_config *c, char *const *exec_argv, struct bcn_cfg_errs *errs);

/* Parse one configured template (source file or contents). */
struct bcn_mst *bcn_template_parse(const struct bcn_template_conf *t, const char *path,
				   struct bcn_mst_error *err);

/* The templates of core->config (prepared). NULL when out of memory or a
 * template no longer parses (logged). Nothing renders before _synced. */
struct bcn_templates *bcn_templates_new(struct bcn_core *core);
/* Stop: waits cancelled, running commands killed. NULL-safe. */
void bcn_templates_free(struct bcn_templates *ts);

/* On reload: the new set takes over from old what belongs to the same
 * destination (a command still running, the counters of /v1/self and
 * /metrics), so a SIGHUP never kills an `nginx -s reload` half-way. Call
 * before freeing old. */
void bcn_templates_takeover(struct bcn_templates *ts, struct bcn_templates *old);

/* Every source has synced once: first renders may happen. Idempotent. */
void bcn_templates_synced(struct bcn_templates *ts);
/* Exec mode (set by agent.c): where `signal` goes when a template has no
 * pid_file: child(arg) is the exec child's pid (0: none right now, the
 * signal is skipped); all_rendered(arg) runs once, when every template has
 * rendered once after the sync (at once without templates), so the child
 * starts with its files in place, as consul-template's exec mode does. */
void bcn_templates_set_child(struct bcn_templates *ts, pid_t (*child)(void *arg),
			     void (*all_rendered)(void *arg), void *arg);

/* The /v1/self "templates" list. */
json_t *bcn_templates_self(struct bcn_templates *ts);
/* beacon_template_* lines for /metrics. */
void bcn_templates_metrics(struct bcn_templates *ts, struct evbuffer *out);

#endif
