/*
 * watchset.c - the set of watches a registry plugin keeps (see watchset.h).
 *
 * The set is a plain singly linked list (an SLIST): a handful of watches, walked on
 * reload and for readiness, never on a hot path. New watches go to the front,
 * as they always did, so /v1/self lists them newest first.
 */
#include <string.h>

#include "base/utf8.h"
#include "config/config.h"
#include "plugin/plugin.h"
#include "plugin/watchset.h"

static const char *kind(const struct bcn_watch *w)
{
	return w->kv ? "prefix" : "service";
}

struct bcn_watch *bcn_watchset_find(const struct bcn_watch_list *set, bool kv, const char *name)
{
	struct bcn_watch *w;

	SLIST_FOREACH(w, set, link) {
		if (w->kv == kv && strcmp(w->name, name) == 0)
			return w;
	}
	return NULL;
}

static void add(struct bcn_watch_list *set, struct bcn_instance *ins, const struct bcn_watch_ops *ops,
		void *ctx, bool announce, bool kv, const char *name)
{
	struct bcn_watch *w;

	if (bcn_watchset_find(set, kv, name))
		return;
	if (!kv && (!name[0] || strchr(name, '/'))) {
		bcn_warn(ins->name, "not watching service \"%s\": a service name is non-empty and has no \"/\"", name);
		return;
	}
	/* The config check refuses these already; a plugin must never see one. */
	if (kv && name[0] != '/') {
		bcn_warn(ins->name, "not watching prefix \"%s\": a key prefix starts with \"/\"", name);
		return;
	}
	w = ops->create(ctx, kv, name);
	if (!w) {
		bcn_error(ins->name, "cannot watch %s (out of memory)", name);
		return;
	}
	SLIST_INSERT_HEAD(set, w, link);
	if (kv)
		bcn_report_kv_watch(ins, name, true);
	else
		bcn_report_watch(ins, name, true);
	if (announce)
		bcn_info(ins->name, "watching %s %s", kind(w), name);
	ops->start(w);
}

void bcn_watchset_apply(struct bcn_watch_list *set, struct bcn_instance *ins,
			const struct bcn_watch_ops *ops, void *ctx, bool announce)
{
	const struct bcn_watch_conf *wc = &ins->core->config->watch;
	struct bcn_watch *w, *next;

	/* glibc's sys/queue.h has no SLIST_FOREACH_SAFE: next is kept by hand.
	 * SLIST_REMOVE walks the list again; it holds a handful of watches. */
	for (w = SLIST_FIRST(set); w; w = next) {
		next = SLIST_NEXT(w, link);
		if (bcn_strlist_has(w->kv ? &wc->kv : &wc->services, w->name))
			continue;
		SLIST_REMOVE(set, w, bcn_watch, link);
		bcn_info(ins->name, "stopped watching %s %s", kind(w), w->name);
		if (w->kv)
			bcn_report_kv_watch(ins, w->name, false);
		else
			bcn_report_watch(ins, w->name, false);
		ops->destroy(w);
	}
	for (size_t i = 0; i < wc->services.n; i++)
		add(set, ins, ops, ctx, announce, false, wc->services.v[i]);
	for (size_t i = 0; i < wc->kv.n; i++)
		add(set, ins, ops, ctx, announce, true, wc->kv.v[i]);
}

void bcn_watchset_free_all(struct bcn_watch_list *set, const struct bcn_watch_ops *ops)
{
	struct bcn_watch *w;

	while ((w = SLIST_FIRST(set)) != NULL) {
		SLIST_REMOVE_HEAD(set, link);
		ops->destroy(w);
	}
}

void bcn_watchset_counts(const struct bcn_watch_list *set, size_t *total, size_t *synced,
			 size_t *fresh, const char **error)
{
	const struct bcn_watch *w;

	*total = *synced = *fresh = 0;
	*error = NULL;
	SLIST_FOREACH(w, set, link) {
		(*total)++;
		*synced += w->synced;
		*fresh += w->fresh;
		if (!*error && w->last_error[0])
			*error = w->last_error;
	}
}

/* One entry; NULL (the entry is left out) when any part cannot be built. */
static json_t *self_entry(const struct bcn_watch *w, const struct bcn_watch_ops *ops)
{
	json_t *o = json_pack("{sssssssb}", "type", w->kv ? "kv" : "service", "name", w->name,
			      "state", ops->self_state(w), "synced", w->fresh);
	json_t *fields = o ? ops->self_fields(w) : NULL;

	if (!fields || json_object_update(o, fields) < 0 ||
	    json_object_set_new(o, "error", bcn_json_text(w->last_error, strlen(w->last_error))) < 0) {
		json_decref(o);
		o = NULL;
	}
	json_decref(fields);
	return o;
}

json_t *bcn_watchset_self(const struct bcn_watch_list *set, const struct bcn_watch_ops *ops)
{
	json_t *a = json_array();
	const struct bcn_watch *w;

	if (!a)
		return NULL;
	SLIST_FOREACH(w, set, link)
		json_array_append_new(a, self_entry(w, ops));
	return a;
}
