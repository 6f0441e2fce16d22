/*
 * watchset.c - the set of watches a registry plugin keeps (see watchset.h).
 *
 * The set is a plain singly linked list: a handful of watches, walked on
 * reload and for readiness, never on a hot path. New watches go to the front,
 * as they always did, so /v1/self lists them newest first.
 */
#include <string.h>

#include "config/config.h"
#include "plugin/plugin.h"
#include "plugin/watchset.h"

static const char *kind(const struct bcn_watch *w)
{
	return w->kv ? "prefix" : "service";
}

struct bcn_watch *bcn_watchset_find(struct bcn_watch *head, bool kv, const char *name)
{
	for (struct bcn_watch *w = head; w; w = w->next) {
		if (w->kv == kv && strcmp(w->name, name) == 0)
			return w;
	}
	return NULL;
}

static void add(struct bcn_watch **head, struct bcn_instance *ins, const struct bcn_watch_ops *ops,
		void *ctx, bool announce, bool kv, const char *name)
{
	struct bcn_watch *w;

	if (bcn_watchset_find(*head, kv, name))
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
	w->next = *head;
	*head = w;
	if (kv)
		bcn_report_kv_watch(ins, name, true);
	else
		bcn_report_watch(ins, name, true);
	if (announce)
		bcn_info(ins->name, "watching %s %s", kind(w), name);
	ops->start(w);
}

void bcn_watchset_apply(struct bcn_watch **head, struct bcn_instance *ins,
			const struct bcn_watch_ops *ops, void *ctx, bool announce)
{
	const struct bcn_watch_conf *wc = &ins->core->config->watch;
	struct bcn_watch **pw = head, *w;

	while ((w = *pw) != NULL) {
		if (bcn_strlist_has(w->kv ? &wc->kv : &wc->services, w->name)) {
			pw = &w->next;
			continue;
		}
		*pw = w->next;
		bcn_info(ins->name, "stopped watching %s %s", kind(w), w->name);
		if (w->kv)
			bcn_report_kv_watch(ins, w->name, false);
		else
			bcn_report_watch(ins, w->name, false);
		ops->destroy(w);
	}
	for (size_t i = 0; i < wc->services.n; i++)
		add(head, ins, ops, ctx, announce, false, wc->services.v[i]);
	for (size_t i = 0; i < wc->kv.n; i++)
		add(head, ins, ops, ctx, announce, true, wc->kv.v[i]);
}

void bcn_watchset_free_all(struct bcn_watch **head, const struct bcn_watch_ops *ops)
{
	while (*head) {
		struct bcn_watch *w = *head;
		*head = w->next;
		ops->destroy(w);
	}
}

void bcn_watchset_counts(const struct bcn_watch *head, size_t *total, size_t *synced,
			 size_t *fresh, const char **error)
{
	*total = *synced = *fresh = 0;
	*error = NULL;
	for (const struct bcn_watch *w = head; w; w = w->next) {
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
	    json_object_set_new(o, "error", json_string(w->last_error)) < 0) {
		json_decref(o);
		o = NULL;
	}
	json_decref(fields);
	return o;
}

json_t *bcn_watchset_self(const struct bcn_watch *head, const struct bcn_watch_ops *ops)
{
	json_t *a = json_array();

	for (const struct bcn_watch *w = head; a && w; w = w->next)
		json_array_append_new(a, self_entry(w, ops));
	return a;
}
