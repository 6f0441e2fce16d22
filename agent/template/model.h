/*
 * model.h - the data a template sees (SPEC.md "Templates"), built from the
 * store for one render, holding only what the template names.
 *
 * The names a parsed template uses are classified once into dependencies
 * (services, KV keys, secrets, node/self, the service list). A render builds
 * a jansson tree of exactly those; a secret's plaintext goes from the
 * secret store's guarded arena into jansson strings, which the zero-on-free
 * allocator wipes when the tree is released right after the render.
 */
#ifndef BCN_TEMPLATE_MODEL_H
#define BCN_TEMPLATE_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "template/files.h"
#include "store/wait.h"

struct bcn_core;
struct bcn_mst;

struct bcn_tmpl_dep {
	enum bcn_tmpl_ref kind;
	char *arg;               /* service name, key (with its leading '/'), secret name */
};

struct bcn_tmpl_deps {
	struct bcn_tmpl_dep *v;
	size_t n;
	bool secret;             /* names a secret: 0600 and a wiped buffer */
};

/* The dependencies of t (and of other templates in the same deps, e.g. the
 * exec env's several values). 0, or -1 when out of memory. */
int bcn_tmpl_deps_add(struct bcn_tmpl_deps *d, const struct bcn_mst *t);
void bcn_tmpl_deps_free(struct bcn_tmpl_deps *d); /* NULL-safe, leaves d empty */

/*
 * The root context for one render. *missing names the first dependency that
 * cannot be rendered yet (a secret not loaded), or is NULL. NULL when out of
 * memory or missing. Release with json_decref right after rendering.
 */
json_t *bcn_tmpl_data(struct bcn_core *core, const struct bcn_tmpl_deps *d, const char **missing);

/*
 * A reader parked on the queue of every dependency at once (store/wait.h):
 * the first queue that moves calls cb(arg) once and unparks the others.
 */
struct bcn_tmpl_slot {
	struct bcn_wait *w;
	struct bcn_tmpl_watch *watch;
};
struct bcn_tmpl_watch {
	struct bcn_tmpl_slot *slot;   /* d->n + 1 */
	size_t n;
	bcn_wait_cb cb;
	void *arg;
};
/* Park, having seen the store as it is now (unparks first). 0, or -1 when
 * out of memory (nothing parked). */
int bcn_tmpl_park(struct bcn_core *core, const struct bcn_tmpl_deps *d, struct bcn_tmpl_watch *w);
/* Unpark everything; cb will not run. NULL-safe; free with bcn_tmpl_watch_free. */
void bcn_tmpl_unpark(struct bcn_tmpl_watch *w);
void bcn_tmpl_watch_free(struct bcn_tmpl_watch *w);

#endif
