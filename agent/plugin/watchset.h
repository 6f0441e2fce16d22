/*
 * watchset.h - the set of watches a registry plugin keeps (watch.services, watch.kv).
 *
 * Every registry follows the same configured lists the same way: one watch
 * per service name or KV prefix, declared to the cache while it exists,
 * reconciled with core->config->watch at start and on every reload, counted
 * for readiness and listed in /v1/self. Only how a watch reads its registry
 * differs. So a plugin embeds struct bcn_watch as the FIRST member of its own
 * watch struct (the set casts between the two) and hands the set a small ops
 * table for the plugin-specific parts; the bookkeeping, the name checks and
 * the log lines live here once.
 */
#ifndef BCN_WATCHSET_H
#define BCN_WATCHSET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

struct bcn_instance;

/* The part of a plugin's watch the set reads. ops->create sets name (its
 * own copy, freed by ops->destroy) and kv; the plugin keeps synced, fresh
 * and last_error up to date; the set links link. */
struct bcn_watch {
	SLIST_ENTRY(bcn_watch) link;
	char *name;            /* service name, or KV prefix as the cache has it ("/config/") */
	bool kv;               /* a KV prefix, else a service */
	bool synced;           /* read completely at least once */
	bool fresh;            /* read since the last problem or reconnect */
	char last_error[200];  /* "" when none */
};

/* A plugin's set of watches (zeroed: empty). Walk it with
 * SLIST_FOREACH(w, &set, link). */
SLIST_HEAD(bcn_watch_list, bcn_watch);

struct bcn_watch_ops {
	/* A new, idle watch of the plugin's type with base.kv and base.name
	 * (a strdup of name) set. ctx is the plugin's context as given to
	 * bcn_watchset_apply. NULL when out of memory. */
	struct bcn_watch *(*create)(void *ctx, bool kv, const char *name);
	/* Begin reading: called once, right after the watch joined the set. */
	void (*start)(struct bcn_watch *w);
	/* Cancel everything in flight and free w (name included). NULL-safe. */
	void (*destroy)(struct bcn_watch *w);
	/* /v1/self: the state word ("watching", "waiting"...) of w. */
	const char *(*self_state)(const struct bcn_watch *w);
	/* /v1/self: a new object with the plugin's own fields of w, in order.
	 * NULL drops w's entry (out of memory). */
	json_t *(*self_fields)(const struct bcn_watch *w);
};

/*
 * Make the set match ins->core->config->watch: watches no longer
 * listed are withdrawn from the cache (bcn_cache_watch / bcn_cache_kv_watch
 * false), logged ("stopped watching ...") and destroyed; every listed one
 * missing is checked (a service name is non-empty without "/", a KV prefix
 * starts with "/"; a bad one is logged and skipped), created, declared to the
 * cache and started. "watching ..." is logged for new watches only when
 * announce is true (after the first contact, so start-up stays quiet).
 * Logs go under ins->name. ctx is passed to ops->create.
 */
void bcn_watchset_apply(struct bcn_watch_list *set, struct bcn_instance *ins,
			const struct bcn_watch_ops *ops, void *ctx, bool announce);

/* Destroy every watch of the set and leave it empty. The cache is not
 * told: this is for cb_exit, when the instance's source goes away anyway. */
void bcn_watchset_free_all(struct bcn_watch_list *set, const struct bcn_watch_ops *ops);

/*
 * Readiness counts of the set: *total watches, how many are *synced and
 * *fresh, and *error, the first watch's last_error that is not empty (NULL
 * when none; it points into the watch, valid until the set changes).
 */
void bcn_watchset_counts(const struct bcn_watch_list *set, size_t *total, size_t *synced,
			 size_t *fresh, const char **error);

/* The watch of this kind and name, or NULL. */
struct bcn_watch *bcn_watchset_find(const struct bcn_watch_list *set, bool kv, const char *name);

/*
 * The "watches" array of /v1/self: per watch {"type", "name", "state",
 * "synced", <ops->self_fields>, "error"}. A new reference; NULL when out of
 * memory.
 */
json_t *bcn_watchset_self(const struct bcn_watch_list *set, const struct bcn_watch_ops *ops);

#endif
