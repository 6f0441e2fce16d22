/*
 * store.c - the secret store: named secrets, who may read them, their
 * versions, expiry and index, and the blocking reads on them (store.h).
 * Data is kept only sealed (seal.c): a put serialises into the guarded
 * arena, compares with what is stored, seals, and wipes the arena. A change
 * signals the secret's queue in the store's wait set (store/wait.h); readers
 * wake on the next loop turn, never inside the put.
 */
#include "secrets/secrets_internal.h"

#include <event2/buffer.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/timing.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)
#define wipe_stack bcn_secrets_wipe_stack

struct bcn_secret {
	struct bcn_secrets *store;
	char *name;
	uid_t *uids;
	size_t nuids;
	struct bcn_sealed data;  /* empty until the first put and after a drop */
	size_t plain_len;
	int64_t version;
	uint64_t expires_at_ms;  /* 0: no lease */
	uint64_t index;
	bool stale, dropped;
};

struct bcn_secrets *bcn_secrets_new(struct event_base *base)
{
	struct bcn_secrets *s = calloc(1, sizeof(*s));

	if (!s)
		goto fail;
	s->index = 1;
	if (!(s->waits = bcn_waits_new(base)) || bcn_seal_init_(s) < 0)
		goto fail;
	return s;
fail:
	bcn_error("secrets", "cannot create the secret store (out of memory or guarded memory)");
	bcn_secrets_free(s);
	return NULL;
}

static void secret_free(struct bcn_secret *sec)
{
	bcn_sealed_clear(&sec->data);
	free(sec->name);
	free(sec->uids);
	free(sec);
}

void bcn_secrets_free(struct bcn_secrets *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		secret_free(s->v[i]);
	free(s->v);
	bcn_waits_free(s->waits);
	bcn_seal_free_(s);
	free(s);
}

struct bcn_secret *bcn_secrets_find(const struct bcn_secrets *s, const char *name)
{
	for (size_t i = 0; s && i < s->n; i++) {
		if (strcmp(s->v[i]->name, name) == 0)
			return s->v[i];
	}
	return NULL;
}

uint64_t bcn_secrets_index(const struct bcn_secrets *s)
{
	return s ? s->index : 1;
}

struct bcn_secret *bcn_secrets_add(struct bcn_secrets *s, const char *name, const uid_t *uids,
				   size_t nuids)
{
	struct bcn_secret *sec, **v;

	if (bcn_secrets_find(s, name))
		return NULL;
	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v)
		return NULL;
	s->v = v;
	sec = calloc(1, sizeof(*sec));
	if (!sec)
		return NULL;
	sec->store = s;
	sec->index = s->index;
	sec->name = strdup(name);
	if (!sec->name || bcn_secret_set_uids(sec, uids, nuids) < 0) {
		secret_free(sec);
		return NULL;
	}
	s->v[s->n++] = sec;
	return sec;
}

int bcn_secret_set_uids(struct bcn_secret *sec, const uid_t *uids, size_t nuids)
{
	uid_t *u = malloc((nuids ? nuids : 1) * sizeof(*u));

	if (!u)
		return -1;
	if (nuids)
		memcpy(u, uids, nuids * sizeof(*u));
	free(sec->uids);
	sec->uids = u;
	sec->nuids = nuids;
	return 0;
}

static void bump(struct bcn_secret *sec)
{
	sec->index = ++sec->store->index;
	bcn_wait_signal(sec->store->waits, BCN_SECRETS_Q, sec->name, sec->index);
}

/* Is `plain` what sec holds now? Decrypts into the arena to compare. */
static bool same_data(struct bcn_secret *sec, const char *plain, size_t len)
{
	struct bcn_secrets *s = sec->store;
	size_t mark = bcn_secrets_mark(s);
	unsigned char *old;
	bool same = false;

	if (!sec->data.box || sec->plain_len != len)
		return false;
	old = bcn_secrets_scratch(s, len ? len : 1);
	if (old && bcn_open_ad_(s, &sec->data, old, sec->name) == 0)
		same = sodium_memcmp(old, plain, len) == 0;
	bcn_secrets_release(s, mark);
	return same;
}

int bcn_secret_put(struct bcn_secret *sec, const json_t *data, int64_t version,
		   uint64_t expires_at_ms)
{
	struct bcn_secrets *s = sec->store;
	size_t mark = bcn_secrets_mark(s), len;
	struct bcn_sealed box = { NULL, 0 };
	char *plain;
	int rc = -1;

	if (!json_is_object(data)) {
		bcn_warn("secrets", "secret %s: the data is not a JSON object", sec->name);
		return -1;
	}
	/* Size first, so the serialisation goes straight into guarded memory. */
	len = json_dumpb(data, NULL, 0, DUMP_FLAGS);
	if (len == 0 || len > BCN_SECRET_MAX_DATA) {
		bcn_warn("secrets", "secret %s: the data is empty or larger than %zu bytes", sec->name,
			 BCN_SECRET_MAX_DATA);
		return -1;
	}
	plain = bcn_secrets_scratch(s, len);
	if (!plain || json_dumpb(data, plain, len, DUMP_FLAGS) != len) {
		bcn_warn("secrets", "secret %s: no guarded memory to store it", sec->name);
		goto out;
	}
	wipe_stack();
	if (version < 0) /* the store counts versions: the next one if anything changed */
		version = !sec->data.box ? (sec->version > 0 ? sec->version + 1 : 1) :
			  same_data(sec, plain, len) ? sec->version : sec->version + 1;
	if (version == sec->version && same_data(sec, plain, len)) {
		rc = 0;
	} else {
		if (bcn_seal_ad_(s, &box, plain, len, sec->name) < 0) {
			bcn_warn("secrets", "secret %s: out of memory", sec->name);
			goto out;
		}
		bcn_sealed_clear(&sec->data);
		sec->data = box;
		sec->plain_len = len;
		sec->version = version;
		sec->dropped = false;
		bump(sec);
		rc = 1;
	}
	sec->expires_at_ms = expires_at_ms;
out:
	bcn_secrets_release(s, mark);
	return rc;
}

void bcn_secret_set_expiry(struct bcn_secret *sec, uint64_t expires_at_ms)
{
	sec->expires_at_ms = expires_at_ms;
}

void bcn_secret_set_stale(struct bcn_secret *sec, bool stale)
{
	sec->stale = stale;
}

void bcn_secret_drop(struct bcn_secret *sec)
{
	if (!sec->data.box)
		return;
	bcn_sealed_clear(&sec->data);
	sec->plain_len = 0;
	sec->expires_at_ms = 0;
	sec->dropped = true;
	bump(sec);
}

const char *bcn_secret_name(const struct bcn_secret *sec)
{
	return sec->name;
}

bool bcn_secret_loaded(const struct bcn_secret *sec)
{
	return sec->data.box &&
	       (sec->expires_at_ms == 0 || bcn_now_ms() < sec->expires_at_ms);
}

bool bcn_secret_ended(const struct bcn_secret *sec)
{
	return sec->dropped || (sec->data.box && !bcn_secret_loaded(sec));
}

bool bcn_secret_stale(const struct bcn_secret *sec)
{
	return sec->stale;
}

int64_t bcn_secret_version(const struct bcn_secret *sec)
{
	return sec->version;
}

uint64_t bcn_secret_index(const struct bcn_secret *sec)
{
	return sec->index;
}

bool bcn_secret_allows(const struct bcn_secret *sec, uid_t uid)
{
	for (size_t i = 0; i < sec->nuids; i++)
		if (sec->uids[i] == uid)
			return true;
	return false;
}

/* ---- answers ---------------------------------------------------------------- */

int bcn_secret_render(struct bcn_secret *sec, struct evbuffer *out)
{
	struct bcn_secrets *s = sec->store;
	size_t mark = bcn_secrets_mark(s), hl, tl;
	uint64_t now = bcn_now_ms();
	char head[64 + 256], tail[160], expires[32];
	json_t *jname;
	char *name;
	unsigned char *buf;
	int rc = -1;

	if (!bcn_secret_loaded(sec))
		return -1;
	jname = json_string(sec->name);
	name = jname ? json_dumps(jname, JSON_ENCODE_ANY) : NULL;
	json_decref(jname);
	if (!name)
		return -1;
	hl = (size_t)snprintf(head, sizeof(head), "{\"name\":%s,\"data\":", name);
	free(name);
	if (sec->expires_at_ms)
		snprintf(expires, sizeof(expires), "%llu",
			 (unsigned long long)((sec->expires_at_ms - now) / 1000));
	else
		snprintf(expires, sizeof(expires), "null");
	tl = (size_t)snprintf(tail, sizeof(tail), ",\"version\":%lld,\"expires_in\":%s,\"stale\":%s}\n",
			      (long long)sec->version, expires, sec->stale ? "true" : "false");
	if (hl >= sizeof(head) || tl >= sizeof(tail))
		return -1;
	buf = bcn_secrets_scratch(s, hl + sec->plain_len + tl);
	if (!buf)
		goto out;
	memcpy(buf, head, hl);
	if (bcn_open_ad_(s, &sec->data, buf + hl, sec->name) < 0) {
		bcn_error("secrets", "secret %s does not decrypt: dropping it", sec->name);
		bcn_secrets_release(s, mark);
		bcn_secret_drop(sec);
		return -1;
	}
	memcpy(buf + hl + sec->plain_len, tail, tl);
	rc = evbuffer_add(out, buf, hl + sec->plain_len + tl);
out:
	bcn_secrets_release(s, mark);
	return rc;
}

/* ---- blocking reads --------------------------------------------------------- */

struct bcn_wait *bcn_secrets_wait(struct bcn_secrets *s, const char *name, uint64_t index,
				  bcn_wait_cb cb, void *arg)
{
	struct bcn_secret *sec = bcn_secrets_find(s, name);
	struct bcn_wait *w;

	if (!sec)
		return NULL;
	w = bcn_wait_park(s->waits, BCN_SECRETS_Q, name, index, cb, arg);
	/* A queue made for this reader knows no index yet: tell it the
	 * secret's, so a reader that saw an older one wakes on the next turn. */
	if (w)
		bcn_wait_signal(s->waits, BCN_SECRETS_Q, name, sec->index);
	return w;
}

struct bcn_waits *bcn_secrets_waits(struct bcn_secrets *s)
{
	return s ? s->waits : NULL;
}

void bcn_secrets_flush(struct bcn_secrets *s)
{
	bcn_waits_deliver(s->waits);
}
