/*
 * cache_read.c - the read side of the endpoint store: each service's merged
 * and passing views and its rendered JSON bodies, and the service list body.
 * Everything here is rebuilt lazily on the first read after a change (the
 * write path in cache.c only invalidates), and a rendered body is a
 * reference-counted blob, so a thousand readers of one answer share one
 * buffer and a write never waits for a reader.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/cache.h"
#include "store/cache_internal.h"

/* ---- blobs ---------------------------------------------------------------- */

struct bcn_blob *bcn_blob_new_(size_t len)
{
	struct bcn_blob *b = malloc(sizeof(*b) + len + 1);
	if (!b)
		return NULL;
	b->refs = 1;
	b->len = len;
	b->data[len] = '\0';
	return b;
}

void bcn_blob_unref(struct bcn_blob *b)
{
	if (b && --b->refs == 0)
		free(b);
}

static struct bcn_blob *blob_ref(struct bcn_blob *b)
{
	if (b)
		b->refs++;
	return b;
}

/* ---- reads ---------------------------------------------------------------- */

const char *bcn_service_name(const struct bcn_service *s) { return s->name; }
uint64_t bcn_service_index(const struct bcn_service *s) { return s->index; }

bool bcn_service_stale(const struct bcn_service *s)
{
	return (s->watch_mask & s->cache->stale_mask) != 0;
}

static int build_views(struct bcn_service *s)
{
	const struct bcn_endpoint **m, **p;
	size_t nm = 0, np = 0;

	if (s->views_valid)
		return 0;
	m = realloc(s->merged, (s->n ? s->n : 1) * sizeof(*m));
	if (!m)
		return -1;
	s->merged = m;
	p = realloc(s->passing, (s->n ? s->n : 1) * sizeof(*p));
	if (!p)
		return -1;
	s->passing = p;
	for (size_t i = 0; i < s->n; i++) {
		const struct bcn_endpoint *e = s->ents[i];
		/* Same id from two registries (a migration): show it once; the
		 * lowest source wins unless it is not passing and another is. */
		if (nm > 0 && strcmp(m[nm - 1]->id, e->id) == 0) {
			if (m[nm - 1]->status != BCN_PASSING && e->status == BCN_PASSING) {
				m[nm - 1] = e;
				p[np++] = e;
			}
			continue;
		}
		m[nm++] = e;
		if (e->status == BCN_PASSING)
			p[np++] = e;
	}
	s->nmerged = nm;
	s->npassing = np;
	s->views_valid = true;
	return 0;
}

size_t bcn_service_count(const struct bcn_service *s, bool passing_only)
{
	if (build_views((struct bcn_service *)s) < 0)
		return 0;
	return passing_only ? s->npassing : s->nmerged;
}

const struct bcn_endpoint *const *bcn_service_endpoints(struct bcn_service *s, size_t *n)
{
	*n = build_views(s) < 0 ? 0 : s->nmerged;
	return s->merged;
}

const struct bcn_endpoint *const *bcn_service_passing(struct bcn_service *s, size_t *n)
{
	*n = build_views(s) < 0 ? 0 : s->npassing;
	return s->passing;
}

struct bcn_pick_state *bcn_service_pick_state(struct bcn_service *s)
{
	return &s->pick;
}

/* The one renderer of an endpoint list (SPEC /v1/endpoints/{service}):
 * with tag set, only endpoints carrying it. */
static struct bcn_blob *render_service(struct bcn_service *s, bool passing_only, bool stale,
				       const char *tag)
{
	const struct bcn_endpoint *const *v;
	size_t n, len, off, k = 0;
	char head[160];
	struct bcn_blob *b;

	v = passing_only ? bcn_service_passing(s, &n) : bcn_service_endpoints(s, &n);
	int hl = snprintf(head, sizeof(head), ",\"index\":%llu,\"stale\":%s,\"endpoints\":[",
			  (unsigned long long)s->index, stale ? "true" : "false");
	len = strlen("{\"service\":") + strlen(s->name_json) + (size_t)hl + 3;
	for (size_t i = 0; i < n; i++)
		len += v[i]->json_len + 1;
	b = bcn_blob_new_(len);
	if (!b)
		return NULL;
	off = (size_t)sprintf(b->data, "{\"service\":%s%s", s->name_json, head);
	for (size_t i = 0; i < n; i++) {
		if (tag && !bcn_endpoint_has_tag(v[i], tag))
			continue;
		if (k++)
			b->data[off++] = ',';
		memcpy(b->data + off, v[i]->json, v[i]->json_len);
		off += v[i]->json_len;
	}
	b->data[off++] = ']';
	b->data[off++] = '}';
	b->data[off++] = '\n';
	b->len = off;
	b->data[off] = '\0';
	return b;
}

struct bcn_blob *bcn_service_render(struct bcn_service *s, bool passing_only, const char *tag)
{
	if (!tag)
		return bcn_service_body(s, passing_only);
	return render_service(s, passing_only, bcn_service_stale(s), tag);
}

struct bcn_blob *bcn_service_body(struct bcn_service *s, bool passing_only)
{
	int k = passing_only ? 1 : 0;
	bool stale = bcn_service_stale(s);

	/* When every endpoint passes, both answers are the same bytes: keep one. */
	if (!passing_only && bcn_service_count(s, false) == bcn_service_count(s, true))
		k = 1;

	if (s->body[k] && s->body_stale[k] != stale) {
		bcn_blob_unref(s->body[k]);
		s->body[k] = NULL;
	}
	if (!s->body[k]) {
		s->body[k] = render_service(s, k == 1, stale, NULL);
		s->body_stale[k] = stale;
	}
	return blob_ref(s->body[k]);
}

struct bcn_blob *bcn_cache_services_body(struct bcn_cache *c)
{
	size_t len, off;
	char num[32];
	struct bcn_blob *b;

	if (c->services_body)
		return blob_ref(c->services_body);
	len = 64;
	for (size_t i = 0; i < c->nsvcs; i++)
		len += strlen(c->svcs[i]->name_json) + 24;
	b = bcn_blob_new_(len);
	if (!b)
		return NULL;
	off = (size_t)sprintf(b->data, "{\"services\":{");
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct bcn_service *s = c->svcs[i];
		off += (size_t)sprintf(b->data + off, "%s%s:%zu", i ? "," : "", s->name_json,
				       bcn_service_count(s, true));
	}
	snprintf(num, sizeof(num), "%llu", (unsigned long long)c->index);
	off += (size_t)sprintf(b->data + off, "},\"index\":%s}\n", num);
	b->len = off;
	c->services_body = b;
	return blob_ref(b);
}
