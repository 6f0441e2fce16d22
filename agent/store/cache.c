/*
 * cache.c - see cache.h.
 *
 * Services live in an array sorted by name (a sidecar watches tens of them);
 * each service keeps its endpoints from all sources in one array sorted by
 * (id, source), so put/delete by id is a binary search and the merged view is
 * one pass that skips duplicate ids. Everything derived (merged view, passing
 * list, rendered bodies) is rebuilt lazily on the first read after a change
 * (cache_read.c), never on the write path, so a burst of registry events
 * costs one rebuild.
 */
#include "store/cache.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "base/log.h"

#include "store/cache_internal.h"

/* ---- waiters -------------------------------------------------------------- */

struct bcn_waits *bcn_cache_waits(struct bcn_cache *c)
{
	return c->waits;
}

struct bcn_wait *bcn_cache_wait(struct bcn_cache *c, const char *service, uint64_t index,
				bcn_wait_cb cb, void *arg)
{
	struct bcn_service *s = service ? bcn_cache_find(c, service) : NULL;
	unsigned space = service ? BCN_CACHE_Q_SERVICE : BCN_CACHE_Q_SERVICES;
	struct bcn_wait *w;

	if (service && !s)
		return NULL;
	w = bcn_wait_park(c->waits, space, service ? service : "", index, cb, arg);
	/* A queue made for this reader knows no index yet: tell it the current
	 * one, so a reader that saw an older index wakes on the next turn. */
	if (w)
		bcn_wait_signal(c->waits, space, service ? service : "", s ? s->index : c->index);
	return w;
}

/* ---- services ------------------------------------------------------------- */

static void service_invalidate(struct bcn_service *s)
{
	s->views_valid = false;
	for (int i = 0; i < 2; i++) {
		bcn_blob_unref(s->body[i]);
		s->body[i] = NULL;
	}
	bcn_pick_reset(&s->pick);
}

static void service_free(struct bcn_service *s)
{
	if (!s)
		return;
	service_invalidate(s);
	for (size_t i = 0; i < s->n; i++)
		free(s->ents[i]);
	free(s->ents);
	free(s->merged);
	free(s->passing);
	bcn_pick_state_free(&s->pick);
	free(s->name);
	free(s->name_json);
	free(s);
}

static ssize_t service_pos(const struct bcn_cache *c, const char *name, bool *found)
{
	size_t lo = 0, hi = c->nsvcs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int cmp = strcmp(c->svcs[mid]->name, name);
		if (cmp == 0) {
			*found = true;
			return (ssize_t)mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return (ssize_t)lo;
}

struct bcn_service *bcn_cache_find(struct bcn_cache *c, const char *name)
{
	bool found;
	ssize_t pos = service_pos(c, name, &found);
	return found ? c->svcs[pos] : NULL;
}

struct bcn_service *bcn_cache_service_at(struct bcn_cache *c, size_t i)
{
	return i < c->nsvcs ? c->svcs[i] : NULL;
}

void bcn_cache_schedule_flush_(struct bcn_cache *c)
{
	if (c->flush_ev && !event_pending(c->flush_ev, EV_TIMEOUT, NULL))
		event_active(c->flush_ev, EV_TIMEOUT, 0);
}

static void mark_changed(struct bcn_cache *c, struct bcn_service *s)
{
	service_invalidate(s);
	s->pending = true;
	c->list_changed = true;
	bcn_cache_schedule_flush_(c);
}

static struct bcn_service *service_get(struct bcn_cache *c, const char *name, bool create)
{
	bool found;
	ssize_t pos = service_pos(c, name, &found);
	struct bcn_service *s;

	if (found)
		return c->svcs[pos];
	if (!create)
		return NULL;
	if (c->nsvcs == c->capsvcs) {
		size_t cap = c->capsvcs ? c->capsvcs * 2 : 16;
		struct bcn_service **v = realloc(c->svcs, cap * sizeof(*v));
		if (!v)
			return NULL;
		c->svcs = v;
		c->capsvcs = cap;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->name = strdup(name);
	s->cache = c;
	{
		json_t *js = json_string(name);
		s->name_json = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
		json_decref(js);
	}
	if (!s->name || !s->name_json) {
		service_free(s);
		return NULL;
	}
	s->index = c->index;
	memmove(&c->svcs[pos + 1], &c->svcs[pos], (c->nsvcs - (size_t)pos) * sizeof(*c->svcs));
	c->svcs[pos] = s;
	c->nsvcs++;
	mark_changed(c, s);
	return s;
}

/* Drop a service nobody is responsible for and that has no endpoints left. */
static void service_maybe_remove(struct bcn_cache *c, struct bcn_service *s)
{
	bool found;
	ssize_t pos;

	if (s->watch_mask || s->n)
		return;
	pos = service_pos(c, s->name, &found);
	if (!found)
		return;
	memmove(&c->svcs[pos], &c->svcs[pos + 1], (c->nsvcs - (size_t)pos - 1) * sizeof(*c->svcs));
	c->nsvcs--;
	c->list_changed = true;
	bcn_cache_schedule_flush_(c);
	/* Readers parked on it learn on the next delivery that it is gone (they
	 * answer 404): any index they saw is below the next one. */
	bcn_wait_signal(c->waits, BCN_CACHE_Q_SERVICE, s->name, c->index + 1);
	service_free(s);
}

struct ent_key {
	const char *id;
	int src;
};

static int ent_key_cmp(const void *key, const void *elem)
{
	const struct ent_key *k = key;
	const struct bcn_endpoint *e = *(const struct bcn_endpoint *const *)elem;
	int cmp = strcmp(k->id, e->id);
	return cmp ? cmp : k->src - (int)e->src;
}

/* Position of (id, src) in s->ents, or where it would go. */
static size_t ent_pos(const struct bcn_service *s, const char *id, int src, bool *found)
{
	struct ent_key k = { id, src };

	return bcn_sorted_pos(s->ents, s->n, sizeof(s->ents[0]), &k, ent_key_cmp, found);
}

static int ent_cmp(const void *a, const void *b)
{
	const struct bcn_endpoint *x = *(const struct bcn_endpoint *const *)a;
	const struct bcn_endpoint *y = *(const struct bcn_endpoint *const *)b;
	int cmp = strcmp(x->id, y->id);
	return cmp ? cmp : (int)x->src - (int)y->src;
}

static int ents_reserve(struct bcn_service *s, size_t need)
{
	if (need <= s->cap)
		return 0;
	size_t cap = s->cap ? s->cap : 8;
	while (cap < need)
		cap *= 2;
	struct bcn_endpoint **v = realloc(s->ents, cap * sizeof(*v));
	if (!v)
		return -1;
	s->ents = v;
	s->cap = cap;
	return 0;
}

/* Remove every endpoint of src from s (order preserved). */
static size_t drop_source(struct bcn_service *s, int src)
{
	size_t j = 0, dropped = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (s->ents[i]->src == src) {
			free(s->ents[i]);
			dropped++;
		} else {
			s->ents[j++] = s->ents[i];
		}
	}
	s->n = j;
	return dropped;
}

/* ---- the cache ------------------------------------------------------------ */

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	bcn_cache_flush(arg);
}

struct bcn_cache *bcn_cache_new(struct event_base *base)
{
	struct bcn_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->base = base;
	c->index = 1;
	c->waits = bcn_waits_new(base);
	if (!c->waits || (base && !(c->flush_ev = event_new(base, -1, 0, flush_cb, c)))) {
		bcn_cache_free(c);
		return NULL;
	}
	return c;
}

void bcn_cache_free(struct bcn_cache *c)
{
	if (!c)
		return;
	if (c->flush_ev)
		event_free(c->flush_ev);
	for (size_t i = 0; i < c->nsvcs; i++)
		service_free(c->svcs[i]);
	free(c->svcs);
	for (int i = 0; i < c->nsrc; i++)
		free(c->src_names[i]);
	bcn_blob_unref(c->services_body);
	bcn_cache_kv_free_(c);
	bcn_waits_free(c->waits);
	free(c);
}

int bcn_cache_source_add(struct bcn_cache *c, const char *name)
{
	if (c->nsrc >= BCN_CACHE_MAX_SOURCES)
		return -1;
	c->src_names[c->nsrc] = strdup(name);
	if (!c->src_names[c->nsrc])
		return -1;
	return c->nsrc++;
}

const char *bcn_cache_source_name(const struct bcn_cache *c, int src)
{
	return src >= 0 && src < c->nsrc ? c->src_names[src] : "?";
}

void bcn_cache_watch(struct bcn_cache *c, int src, const char *service, bool watch)
{
	struct bcn_service *s = service_get(c, service, watch);
	uint64_t bit = 1ULL << src;

	if (!s)
		return;
	if (watch) {
		if (!(s->watch_mask & bit)) {
			s->watch_mask |= bit;
			mark_changed(c, s);
		}
		return;
	}
	s->watch_mask &= ~bit;
	if (drop_source(s, src))
		mark_changed(c, s);
	service_maybe_remove(c, s);
}

static int ep_cmp_id(const void *a, const void *b)
{
	const struct bcn_endpoint *x = *(const struct bcn_endpoint *const *)a;
	const struct bcn_endpoint *y = *(const struct bcn_endpoint *const *)b;
	return strcmp(x->id, y->id);
}

/* True when src's endpoints of s are exactly eps (sorts eps by id). */
static bool same_set(struct bcn_service *s, int src, struct bcn_endpoint **eps, size_t n)
{
	size_t k = 0;

	if (n > 1)
		qsort(eps, n, sizeof(*eps), ep_cmp_id);
	for (size_t i = 0; i < s->n; i++) {
		const struct bcn_endpoint *e = s->ents[i];
		if (e->src != src)
			continue;
		if (k >= n || e->json_len != eps[k]->json_len ||
		    memcmp(e->json, eps[k]->json, e->json_len) != 0)
			return false;
		k++;
	}
	return k == n;
}

void bcn_cache_replace(struct bcn_cache *c, int src, const char *service,
		       struct bcn_endpoint **eps, size_t n)
{
	struct bcn_service *s = service_get(c, service, n > 0);
	size_t i;

	if (!s) {
		for (i = 0; i < n; i++)
			free(eps[i]);
		return;
	}
	if (same_set(s, src, eps, n)) {
		/* A resync that found what we had: no index step, no wake-ups. */
		for (i = 0; i < n; i++)
			free(eps[i]);
		return;
	}
	drop_source(s, src);
	if (ents_reserve(s, s->n + n) < 0) {
		bcn_error("cache", "out of memory storing %zu endpoints of %s", n, service);
		for (i = 0; i < n; i++)
			free(eps[i]);
		n = 0;
	}
	for (i = 0; i < n; i++) {
		eps[i]->src = (uint8_t)src;
		s->ents[s->n++] = eps[i];
	}
	if (s->n > 1)
		qsort(s->ents, s->n, sizeof(*s->ents), ent_cmp);
	/* A source may hand in the same id twice: keep the last one given. */
	size_t j = 0;
	for (i = 0; i < s->n; i++) {
		if (j > 0 && s->ents[j - 1]->src == s->ents[i]->src &&
		    strcmp(s->ents[j - 1]->id, s->ents[i]->id) == 0) {
			free(s->ents[j - 1]);
			s->ents[j - 1] = s->ents[i];
		} else {
			s->ents[j++] = s->ents[i];
		}
	}
	s->n = j;
	mark_changed(c, s);
	service_maybe_remove(c, s);
}

void bcn_cache_put(struct bcn_cache *c, int src, const char *service, struct bcn_endpoint *ep)
{
	struct bcn_service *s = service_get(c, service, true);
	bool found;
	size_t pos;

	if (!s || ents_reserve(s, s->n + 1) < 0) {
		free(ep);
		return;
	}
	ep->src = (uint8_t)src;
	pos = ent_pos(s, ep->id, src, &found);
	if (found) {
		/* Unchanged bytes: no index bump, no wake-up (keepalive re-puts). */
		if (s->ents[pos]->json_len == ep->json_len &&
		    memcmp(s->ents[pos]->json, ep->json, ep->json_len) == 0) {
			free(ep);
			return;
		}
		free(s->ents[pos]);
		s->ents[pos] = ep;
	} else {
		memmove(&s->ents[pos + 1], &s->ents[pos], (s->n - pos) * sizeof(*s->ents));
		s->ents[pos] = ep;
		s->n++;
	}
	mark_changed(c, s);
}

void bcn_cache_delete(struct bcn_cache *c, int src, const char *service, const char *id)
{
	struct bcn_service *s = service_get(c, service, false);
	bool found;
	size_t pos;

	if (!s)
		return;
	pos = ent_pos(s, id, src, &found);
	if (!found)
		return;
	free(s->ents[pos]);
	memmove(&s->ents[pos], &s->ents[pos + 1], (s->n - pos - 1) * sizeof(*s->ents));
	s->n--;
	mark_changed(c, s);
	service_maybe_remove(c, s);
}

void bcn_cache_set_stale(struct bcn_cache *c, int src, bool stale)
{
	uint64_t bit = 1ULL << src;
	if (stale == !!(c->stale_mask & bit))
		return;
	if (stale)
		c->stale_mask |= bit;
	else
		c->stale_mask &= ~bit;
	/* Bodies carry the stale flag; they are re-rendered on the next read
	 * (bcn_service_body compares), the index does not move. */
}

bool bcn_cache_source_stale(const struct bcn_cache *c, int src)
{
	return (c->stale_mask >> src) & 1;
}

uint64_t bcn_cache_index(const struct bcn_cache *c)
{
	return c->index;
}

size_t bcn_cache_nservices(const struct bcn_cache *c)
{
	return c->nsvcs;
}

void bcn_cache_flush(struct bcn_cache *c)
{
	bool services = c->list_changed;

	for (size_t i = 0; i < c->nsvcs; i++) {
		if (c->svcs[i]->pending)
			services = true;
	}
	if (!services && !c->kv_pending)
		return;
	c->index++;
	c->list_changed = false;
	bcn_blob_unref(c->services_body);
	c->services_body = NULL;
	/* Signals only mark queues; readers wake in the wait set's own event,
	 * after this flush, and see every index already moved. */
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct bcn_service *s = c->svcs[i];
		if (!s->pending)
			continue;
		s->pending = false;
		s->index = c->index;
		bcn_wait_signal(c->waits, BCN_CACHE_Q_SERVICE, s->name, c->index);
	}
	/* /v1/services answers with the global index (SPEC), so its readers
	 * hold until that moves, whatever moved it. */
	bcn_wait_signal(c->waits, BCN_CACHE_Q_SERVICES, "", c->index);
	if (c->kv_pending) {
		c->kv_pending = false;
		bcn_cache_kv_signal_(c);
	}
}
