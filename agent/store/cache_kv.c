/*
 * cache_kv.c - watched config values (watch.kv) in the cache: one array of
 * entries sorted by key, so a prefix is a contiguous range. A deletion leaves
 * a tombstone carrying the index of the delete, so a blocking read of a key
 * that went away still sees its index move.
 *
 * Each value's JSON is rendered once, when it is stored, and served by
 * reference: a large value read often costs a copy into the socket, not a
 * re-encoding per read. Values over BCN_KV_MAX_VALUE are skipped as etcd
 * endpoint values over their limit are (the key reads as absent) and logged
 * once per key: a tombstone marked too_large remembers that it was said.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/cache_internal.h"
#include "base/log.h"
#include "base/utf8.h"

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int kv_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, (*(const struct bcn_kv_entry *const *)elem)->key);
}

static size_t kv_pos(const struct bcn_cache *c, const char *key, bool *found)
{
	return bcn_sorted_pos(c->kv, c->nkv, sizeof(c->kv[0]), key, kv_key_cmp, found);
}

/* {"key":K,"value":V (the API adds index, stale and the brace). Keys are
 * shown without their leading '/'. NULL on OOM. */
static struct bcn_blob *kv_render(const char *key, const char *value, size_t len)
{
	json_t *k = bcn_json_text(key + 1, strlen(key + 1)), *v = bcn_json_text(value, len);
	char *ks = k ? json_dumps(k, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	char *vs = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	struct bcn_blob *b = NULL;
	size_t n;

	json_decref(k);
	json_decref(v);
	if (!ks || !vs)
		goto out;
	n = strlen(ks) + strlen(vs) + sizeof("{\"key\":,\"value\":") - 1;
	b = bcn_blob_new_(n);
	if (b)
		snprintf(b->data, n + 1, "{\"key\":%s,\"value\":%s", ks, vs);
out:
	free(ks);
	free(vs);
	return b;
}

static void kv_entry_free(struct bcn_kv_entry *e)
{
	if (e)
		bcn_blob_unref(e->body);
	free(e);
}

/* One allocation: entry, key, value (NUL-terminated for convenience). */
static struct bcn_kv_entry *kv_entry_new(const char *key, const char *value, size_t len,
					 uint64_t index, int src)
{
	size_t klen = strlen(key) + 1, vlen = value ? len + 1 : 0;
	struct bcn_kv_entry *e = malloc(sizeof(*e) + klen + vlen);
	char *p;
	if (!e)
		return NULL;
	e->too_large = false;
	e->body = value ? kv_render(key, value, len) : NULL;
	if (value && !e->body) {
		free(e);
		return NULL;
	}
	p = (char *)(e + 1);
	memcpy(p, key, klen);
	e->key = p;
	if (value) {
		memcpy(p + klen, value, len);
		p[klen + len] = '\0';
		e->value = p + klen;
	} else {
		e->value = NULL;
	}
	e->len = value ? len : 0;
	e->index = index;
	e->src = (uint8_t)src;
	return e;
}

static void kv_changed(struct bcn_cache *c)
{
	c->kv_pending = true;
	bcn_cache_schedule_flush_(c);
}

/* Store e at key's position (replacing what is there). Takes ownership. */
static void kv_store(struct bcn_cache *c, struct bcn_kv_entry *e)
{
	bool found;
	size_t pos = kv_pos(c, e->key, &found);

	if (found) {
		kv_entry_free(c->kv[pos]);
		c->kv[pos] = e;
	} else {
		if (c->nkv == c->capkv) {
			size_t cap = c->capkv ? c->capkv * 2 : 32;
			struct bcn_kv_entry **v = realloc(c->kv, cap * sizeof(*v));
			if (!v) {
				kv_entry_free(e);
				return;
			}
			c->kv = v;
			c->capkv = cap;
		}
		memmove(&c->kv[pos + 1], &c->kv[pos], (c->nkv - pos) * sizeof(*c->kv));
		c->kv[pos] = e;
		c->nkv++;
	}
	kv_changed(c);
}

void bcn_cache_kv_watch(struct bcn_cache *c, int src, const char *prefix, bool watch)
{
	size_t i;
	for (i = 0; i < c->nkvp; i++) {
		if (c->kvp[i].src == src && strcmp(c->kvp[i].prefix, prefix) == 0)
			break;
	}
	if (watch && i == c->nkvp) {
		struct kv_prefix *v = realloc(c->kvp, (c->nkvp + 1) * sizeof(*v));
		if (!v)
			return;
		c->kvp = v;
		c->kvp[c->nkvp].prefix = strdup(prefix);
		c->kvp[c->nkvp].src = src;
		if (c->kvp[c->nkvp].prefix)
			c->nkvp++;
	} else if (!watch && i < c->nkvp) {
		free(c->kvp[i].prefix);
		c->kvp[i] = c->kvp[--c->nkvp];
		/* Forget what src had under that prefix: no longer watched. */
		size_t j = 0;
		for (size_t k = 0; k < c->nkv; k++) {
			if (c->kv[k]->src == src && has_prefix(c->kv[k]->key, prefix))
				kv_entry_free(c->kv[k]);
			else
				c->kv[j++] = c->kv[k];
		}
		c->nkv = j;
		c->kv_all_pending = true; /* keys went without a tombstone */
		kv_changed(c);
	}
}

bool bcn_cache_kv_watched(const struct bcn_cache *c, const char *key)
{
	for (size_t i = 0; i < c->nkvp; i++) {
		if (has_prefix(key, c->kvp[i].prefix))
			return true;
	}
	return false;
}

bool bcn_cache_kv_stale(const struct bcn_cache *c, const char *key)
{
	for (size_t i = 0; i < c->nkvp; i++) {
		if ((has_prefix(key, c->kvp[i].prefix) || has_prefix(c->kvp[i].prefix, key)) &&
		    bcn_cache_source_stale(c, c->kvp[i].src))
			return true;
	}
	return false;
}

void bcn_cache_kv_put(struct bcn_cache *c, int src, const char *key, const char *value, size_t len)
{
	bool found;
	size_t pos;
	struct bcn_kv_entry *e;

	/* Every stored key is absolute ("/config/web/color"): answers show it
	 * without its '/'. A backend that sends anything else (a hostile or
	 * broken etcd answering "" or "x") is not believed. */
	if (key[0] != '/')
		return;
	pos = kv_pos(c, key, &found);
	if (found && c->kv[pos]->value && c->kv[pos]->len == len &&
	    memcmp(c->kv[pos]->value, value, len) == 0)
		return;
	if (len > BCN_KV_MAX_VALUE) {
		char shown[121];
		bool cut;
		if (found && c->kv[pos]->too_large)
			return; /* said once already */
		cut = bcn_log_printable(shown, sizeof(shown), key, strlen(key));
		bcn_warn("kv", "skipping %s%s: its value is %zu bytes, more than the %d a value may have",
			 shown, cut ? "..." : "", len, BCN_KV_MAX_VALUE);
		e = kv_entry_new(key, NULL, 0, c->index + 1, src);
		if (e) {
			e->too_large = true;
			kv_store(c, e);
		}
		return;
	}
	/* The flush this change schedules produces index + 1. */
	e = kv_entry_new(key, value ? value : "", len, c->index + 1, src);
	if (e)
		kv_store(c, e);
}

void bcn_cache_kv_delete(struct bcn_cache *c, int src, const char *key)
{
	bool found;
	size_t pos = kv_pos(c, key, &found);
	struct bcn_kv_entry *e;

	if (!found || !c->kv[pos]->value)
		return;
	e = kv_entry_new(key, NULL, 0, c->index + 1, src);
	if (e)
		kv_store(c, e);
}

void bcn_cache_kv_replace(struct bcn_cache *c, int src, const char *prefix, const char *const *keys,
			  const char *const *values, const size_t *lens, size_t n)
{
	/* Delete what is gone, then put what is there (puts of equal bytes are no-ops). */
	for (size_t i = 0; i < c->nkv; i++) {
		const struct bcn_kv_entry *e = c->kv[i];
		bool keep = false;
		if (e->src != src || !e->value || !has_prefix(e->key, prefix))
			continue;
		for (size_t k = 0; k < n && !keep; k++)
			keep = strcmp(keys[k], e->key) == 0;
		if (!keep) {
			char *key = strdup(e->key);
			if (key) {
				bcn_cache_kv_delete(c, src, key);
				free(key);
			}
		}
	}
	for (size_t k = 0; k < n; k++) {
		if (has_prefix(keys[k], prefix)) /* a resync of prefix holds nothing else */
			bcn_cache_kv_put(c, src, keys[k], values[k], lens[k]);
	}
}

const struct bcn_kv_entry *bcn_cache_kv_get(struct bcn_cache *c, const char *key)
{
	bool found;
	size_t pos = kv_pos(c, key, &found);
	return found && c->kv[pos]->value ? c->kv[pos] : NULL;
}

struct bcn_blob *bcn_cache_kv_body(const struct bcn_kv_entry *e)
{
	if (!e || !e->body)
		return NULL;
	e->body->refs++;
	return e->body;
}

size_t bcn_cache_kv_range(struct bcn_cache *c, const char *prefix, size_t *first)
{
	bool found;
	size_t pos = kv_pos(c, prefix, &found), n = 0;
	*first = pos;
	for (size_t i = pos; i < c->nkv && has_prefix(c->kv[i]->key, prefix); i++)
		n++;
	return n; /* tombstones included: callers skip value == NULL */
}

const struct bcn_kv_entry *bcn_cache_kv_at(struct bcn_cache *c, size_t pos)
{
	return pos < c->nkv ? c->kv[pos] : NULL;
}

uint64_t bcn_cache_kv_index(struct bcn_cache *c, const char *key, bool recurse)
{
	uint64_t idx = 1;
	if (recurse) {
		size_t first, n = bcn_cache_kv_range(c, key, &first);
		for (size_t i = first; i < first + n; i++)
			if (c->kv[i]->index > idx)
				idx = c->kv[i]->index;
	} else {
		bool found;
		size_t pos = kv_pos(c, key, &found);
		if (found)
			idx = c->kv[pos]->index;
	}
	return idx;
}

struct bcn_wait *bcn_cache_kv_wait(struct bcn_cache *c, const char *key, bool recurse,
				   uint64_t index, bcn_wait_cb cb, void *arg)
{
	unsigned space = recurse ? BCN_CACHE_Q_KV_TREE : BCN_CACHE_Q_KV;
	struct bcn_wait *w = bcn_wait_park(c->waits, space, key, index, cb, arg);

	/* As bcn_cache_wait: the queue learns the index of what it covers. */
	if (w)
		bcn_wait_signal(c->waits, space, key, bcn_cache_kv_index(c, key, recurse));
	return w;
}

/* Entries changed in this flush carry its index (puts and deletes stamp
 * c->index + 1 before the flush moves c->index there): one pass finds them,
 * and only when someone waits on a KV queue at all. */
void bcn_cache_kv_signal_(struct bcn_cache *c)
{
	struct bcn_waits *ws = c->waits;

	if (c->kv_all_pending) {
		c->kv_all_pending = false;
		bcn_wait_signal_all(ws, BCN_CACHE_Q_KV, c->index);
		bcn_wait_signal_all(ws, BCN_CACHE_Q_KV_TREE, c->index);
		return;
	}
	if (!bcn_waits_queues(ws, BCN_CACHE_Q_KV) && !bcn_waits_queues(ws, BCN_CACHE_Q_KV_TREE))
		return;
	for (size_t i = 0; i < c->nkv; i++) {
		const struct bcn_kv_entry *e = c->kv[i];
		if (e->index != c->index)
			continue;
		bcn_wait_signal(ws, BCN_CACHE_Q_KV, e->key, c->index);
		bcn_wait_signal_prefixes(ws, BCN_CACHE_Q_KV_TREE, e->key, c->index);
	}
}

void bcn_cache_kv_free_(struct bcn_cache *c)
{
	for (size_t i = 0; i < c->nkv; i++)
		kv_entry_free(c->kv[i]);
	free(c->kv);
	for (size_t i = 0; i < c->nkvp; i++)
		free(c->kvp[i].prefix);
	free(c->kvp);
}
