/*
 * model.c - the data model of templates (model.h): dependencies from the
 * names a template uses, the root context built from the store for one
 * render, and one reader parked on every dependency's queue.
 *
 * Endpoints are taken from their JSON rendered once in the store (the same
 * bytes /v1/endpoints serves), so a template sees exactly the API's ENDPOINT.
 */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "template/model.h"
#include "template/mustache.h"
#include "plugin/plugin.h"
#include "config/config.h"
#include "secrets/store.h"
#include "store/cache.h"
#include "base/utf8.h"

struct adder {
	struct bcn_tmpl_deps *d;
	int rc;
};

static void add_one(void *arg, const char *name)
{
	struct adder *a = arg;
	struct bcn_tmpl_deps *d = a->d;
	const char *s;
	size_t len;
	enum bcn_tmpl_ref k = bcn_tmpl_ref(name, &s, &len);
	char *key = NULL;
	struct bcn_tmpl_dep *nv;

	if (k == BCN_REF_NONE || a->rc)
		return;
	if (k == BCN_REF_KEY) {
		key = malloc(len + 2);
		if (key) {
			key[0] = '/';
			memcpy(key + 1, s, len);
			key[len + 1] = 0;
		}
	} else if (s) {
		key = strndup(s, len);
	} else {
		key = strdup("");
	}
	if (!key) {
		a->rc = -1;
		return;
	}
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].kind == k && strcmp(d->v[i].arg, key) == 0) {
			free(key);
			return;
		}
	nv = realloc(d->v, (d->n + 1) * sizeof(*nv));
	if (!nv) {
		free(key);
		a->rc = -1;
		return;
	}
	d->v = nv;
	d->v[d->n++] = (struct bcn_tmpl_dep){ .kind = k, .arg = key };
	if (k == BCN_REF_SECRET)
		d->secret = true;
}

int bcn_tmpl_deps_add(struct bcn_tmpl_deps *d, const struct bcn_mst *t)
{
	struct adder a = { .d = d };

	bcn_mst_names(t, add_one, &a);
	return a.rc;
}

void bcn_tmpl_deps_free(struct bcn_tmpl_deps *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].arg);
	free(d->v);
	memset(d, 0, sizeof(*d));
}

/* The passing endpoints of s as a JSON array (the store's rendered bytes). */
static json_t *endpoints(struct bcn_service *s)
{
	json_t *arr = json_array();
	const struct bcn_endpoint *const *eps;
	size_t n = 0;

	if (!arr || !s)
		return arr;
	eps = bcn_service_passing(s, &n);
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_loadb(eps[i]->json, eps[i]->json_len, 0, NULL);
		if (!e || json_array_append_new(arr, e) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *self_endpoint(struct bcn_core *core)
{
	const struct bcn_service_conf *sv = core->config->service;
	json_t *tags;

	if (!sv)
		return json_null();
	tags = json_array();
	for (size_t i = 0; tags && i < sv->tags.n; i++)
		json_array_append_new(tags, json_string(sv->tags.v[i]));
	return json_pack("{sssssssIsososIss}", "id", sv->id, "service", sv->name, "address", sv->address,
			 "port", (json_int_t)sv->port, "tags", tags ? tags : json_array(),
			 "meta", sv->meta ? json_incref(sv->meta) : json_object(), "weight", (json_int_t)sv->weight,
			 "status", bcn_status_name(core->service_status));
}

/* secret's data object: plaintext from the guarded arena into jansson (wiped on free). */
static json_t *secret_data(struct bcn_secret *sec)
{
	struct evbuffer *b = evbuffer_new();
	json_t *all = NULL, *data = NULL;

	if (!b)
		return NULL;
	if (bcn_secret_render(sec, b) == 0) {
		size_t len = evbuffer_get_length(b);
		all = json_loadb((const char *)evbuffer_pullup(b, -1), len, 0, NULL);
		data = json_incref(json_object_get(all, "data"));
		json_decref(all);
	}
	evbuffer_free(b); /* libevent's memory is zero-on-free (alloc_hooks.c) */
	return data;
}

static json_t *child(json_t *o, const char *key)
{
	json_t *c = json_object_get(o, key);

	if (!c && (c = json_object()) && json_object_set_new(o, key, c) < 0)
		return NULL;
	return c;
}

static int set_new(json_t *o, const char *key, json_t *v)
{
	return o && v && json_object_set_new(o, key, v) == 0 ? 0 : -1;
}

json_t *bcn_tmpl_data(struct bcn_core *core, const struct bcn_tmpl_deps *d, const char **missing)
{
	json_t *root = json_object();
	int rc = root ? 0 : -1;

	*missing = NULL;
	for (size_t i = 0; i < d->n && rc == 0; i++) {
		const struct bcn_tmpl_dep *dep = &d->v[i];
		switch (dep->kind) {
		case BCN_REF_NODE:
			rc = set_new(root, "node", json_string(core->config->node));
			break;
		case BCN_REF_SELF:
			rc = set_new(root, "self", self_endpoint(core));
			break;
		case BCN_REF_SERVICE:
			rc = set_new(child(root, "service"), dep->arg,
				     endpoints(bcn_cache_find(core->cache, dep->arg)));
			break;
		case BCN_REF_SERVICES: {
			json_t *list = json_array();
			struct bcn_service *s;
			for (size_t k = 0; list && (s = bcn_cache_service_at(core->cache, k)); k++)
				json_array_append_new(list, json_pack("{ssso}", "name", bcn_service_name(s),
								      "endpoints", endpoints(s)));
			rc = set_new(root, "services", list);
			break;
		}
		case BCN_REF_KEY: {
			const struct bcn_kv_entry *e = bcn_cache_kv_get(core->cache, dep->arg);
			if (e && e->value)
				rc = set_new(child(root, "key"), dep->arg + 1, bcn_json_text(e->value, e->len));
			break;
		}
		case BCN_REF_SECRET: {
			struct bcn_secret *sec = bcn_secrets_find(core->secrets, dep->arg);
			json_t *data;
			if (!sec || !bcn_secret_loaded(sec)) {
				*missing = dep->arg;
				rc = -1;
				break;
			}
			data = secret_data(sec);
			if (!data) {
				*missing = dep->arg;
				rc = -1;
				break;
			}
			rc = set_new(child(root, "secret"), dep->arg, data);
			break;
		}
		case BCN_REF_NONE:
			break;
		}
	}
	if (rc < 0) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/* ---- one reader on every queue ------------------------------------------- */

static void slot_cb(void *arg)
{
	struct bcn_tmpl_slot *slot = arg;
	struct bcn_tmpl_watch *w = slot->watch;

	slot->w = NULL; /* this handle is gone */
	bcn_tmpl_unpark(w);
	w->cb(w->arg);
}

void bcn_tmpl_unpark(struct bcn_tmpl_watch *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++) {
		bcn_wait_cancel(w->slot[i].w);
		w->slot[i].w = NULL;
	}
	w->n = 0;
}

void bcn_tmpl_watch_free(struct bcn_tmpl_watch *w)
{
	if (!w)
		return;
	bcn_tmpl_unpark(w);
	free(w->slot);
	w->slot = NULL;
}

int bcn_tmpl_park(struct bcn_core *core, const struct bcn_tmpl_deps *d, struct bcn_tmpl_watch *w)
{
	uint64_t idx = bcn_cache_index(core->cache);
	bool list = false;

	bcn_tmpl_unpark(w);
	if (!w->slot && !(w->slot = calloc(d->n + 1, sizeof(*w->slot))))
		return -1;
	for (size_t i = 0; i < d->n; i++) {
		const struct bcn_tmpl_dep *dep = &d->v[i];
		struct bcn_tmpl_slot *s = &w->slot[w->n];
		struct bcn_secret *sec;

		s->watch = w;
		s->w = NULL;
		switch (dep->kind) {
		case BCN_REF_SERVICE:
			s->w = bcn_cache_wait(core->cache, dep->arg, idx, slot_cb, s);
			if (!s->w)
				list = true; /* not known yet: the service list moves when it appears */
			break;
		case BCN_REF_SERVICES:
			list = true;
			break;
		case BCN_REF_KEY:
			s->w = bcn_cache_kv_wait(core->cache, dep->arg, false, idx, slot_cb, s);
			if (!s->w)
				list = true;
			break;
		case BCN_REF_SECRET:
			sec = bcn_secrets_find(core->secrets, dep->arg);
			if (sec)
				s->w = bcn_secrets_wait(core->secrets, dep->arg, bcn_secret_index(sec), slot_cb, s);
			break;
		default: /* node and self come from the config: a reload re-renders */
			break;
		}
		if (s->w)
			w->n++;
	}
	if (list) {
		struct bcn_tmpl_slot *s = &w->slot[w->n];
		s->watch = w;
		s->w = bcn_cache_wait(core->cache, NULL, idx, slot_cb, s);
		if (s->w)
			w->n++;
	}
	return 0;
}
