/*
 * secrets.c - see secrets.h.
 *
 * Two guarded (sodium_malloc) buffers per store, whatever the number of
 * secrets: the 32-byte key and the scratch arena. Guard pages and mlock cost
 * per allocation, so plaintext never gets a buffer of its own; it is built
 * in the arena, used, and wiped. Ciphertexts are plain heap memory: they are
 * useless without the key and are bound to their secret's name (AEAD
 * additional data), so one secret's box cannot be served as another's.
 *
 * Libraries sometimes stage a partial block of plaintext on the stack (the
 * stream cipher's last block, a serialiser's small buffers); wipe_stack()
 * overwrites the stack below the caller after such calls.
 */
#include "secrets/secrets.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "base/log.h"

#define KEY_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define ARENA_MIN ((size_t)64 << 10)
#define ARENA_MAX (4 * BCN_SECRET_MAX_DATA)
#define CRED_AD "beacon credential"
#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)

#if defined(__SANITIZE_ADDRESS__)
#define BCN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BCN_ASAN 1
#endif
#endif
#ifndef BCN_ASAN
#define BCN_ASAN 0
#endif

struct bcn_secrets_wait {
	struct bcn_secrets_wait *prev, *next;
	struct bcn_secret *sec;
	uint64_t index;
	bcn_cache_wake_cb cb;
	void *arg;
};

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
	bool stale, wake, dropped;
	struct bcn_secrets_wait *waiters;
};

struct bcn_secrets {
	struct bcn_secrets *next;  /* every live store, for bcn_secrets_find */
	struct event *wake_ev;
	unsigned char *key;        /* guarded, PROT_NONE unless key_users > 0 */
	int key_users;
	unsigned char *arena;      /* guarded, PROT_NONE while arena_top == 0 */
	size_t arena_cap, arena_top;
	uint64_t index;
	struct bcn_secret **v;
	size_t n;
};

static struct bcn_secrets *stores;

uint64_t bcn_secrets_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Overwrite the stack below the caller, where a library just worked on plaintext. */
__attribute__((noinline)) void bcn_secrets_wipe_stack(void)
{
	unsigned char pad[16384];

	sodium_memzero(pad, sizeof(pad));
	__asm__ __volatile__("" : : "r"(pad) : "memory");
}

#define wipe_stack bcn_secrets_wipe_stack

/* ---- memory locking -------------------------------------------------------- */

static bool has_cap_ipc_lock(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long caps = 0;
	bool found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			found = true;
			break;
		}
	}
	fclose(f);
	return found && (caps & (1ULL << 14)); /* CAP_IPC_LOCK */
}

/* mlockall when nothing can make it fail later (no limit, or CAP_IPC_LOCK):
 * under a finite RLIMIT_MEMLOCK, MCL_FUTURE would turn growth past the limit
 * into allocation failures. Otherwise only the guarded buffers are locked
 * (sodium_malloc does that), and we say so once. */
static bool lock_memory(void)
{
	static int state; /* 0 not tried, 1 locked, 2 not */
	struct rlimit rl = { 0, 0 };

	if (state)
		return state == 1;
	state = 2;
	if (BCN_ASAN) {
		bcn_warn("secrets", "memory is not locked: AddressSanitizer's shadow memory cannot be");
		return false;
	}
	getrlimit(RLIMIT_MEMLOCK, &rl);
	if (rl.rlim_cur == RLIM_INFINITY || has_cap_ipc_lock()) {
		if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) {
			state = 1;
			bcn_debug("secrets", "all memory locked (mlockall): secrets never reach swap");
			return true;
		}
		bcn_warn("secrets", "mlockall failed (%s): only the secret store's guarded memory is locked",
			 strerror(errno));
		return false;
	}
	bcn_warn("secrets", "RLIMIT_MEMLOCK is %llu KiB and the agent lacks CAP_IPC_LOCK: only the secret "
		 "store's guarded memory is locked; raise the limit (systemd LimitMEMLOCK=infinity) "
		 "to lock everything", (unsigned long long)(rl.rlim_cur / 1024));
	return false;
}

/* sodium_malloc locks its pages but ignores failure: check, and say it once. */
static void check_locked(void *p, size_t n)
{
	static bool warned;

	if (sodium_mlock(p, n) != 0 && !warned) {
		warned = true;
		bcn_warn("secrets", "cannot lock the secret store's memory (%s): it may reach swap",
			 strerror(errno));
	}
}

/* ---- key and arena --------------------------------------------------------- */

static void key_open(struct bcn_secrets *s)
{
	if (s->key_users++ == 0)
		sodium_mprotect_readonly(s->key);
}

static void key_close(struct bcn_secrets *s)
{
	if (--s->key_users == 0)
		sodium_mprotect_noaccess(s->key);
}

static int arena_grow(struct bcn_secrets *s, size_t need)
{
	size_t cap = ARENA_MIN;
	unsigned char *a;

	while (cap < need)
		cap *= 2;
	if (cap > ARENA_MAX)
		cap = ARENA_MAX;
	a = sodium_malloc(cap);
	if (!a) {
		bcn_warn("secrets", "cannot allocate %zu bytes of guarded memory", cap);
		return -1;
	}
	if (!lock_memory())
		check_locked(a, cap);
	sodium_mprotect_noaccess(a);
	if (s->arena)
		sodium_free(s->arena); /* wipes */
	s->arena = a;
	s->arena_cap = cap;
	return 0;
}

size_t bcn_secrets_mark(const struct bcn_secrets *s)
{
	return s->arena_top;
}

int bcn_secrets_reserve(struct bcn_secrets *s, size_t n)
{
	if (n > ARENA_MAX || n > ARENA_MAX - s->arena_top)
		return -1;
	if (n <= s->arena_cap - s->arena_top)
		return 0;
	return s->arena_top == 0 ? arena_grow(s, n) : -1;
}

void *bcn_secrets_scratch(struct bcn_secrets *s, size_t n)
{
	size_t need = (n + 15) & ~(size_t)15;
	unsigned char *p;

	if (need < n || need > ARENA_MAX)
		return NULL;
	if (need > s->arena_cap - s->arena_top &&
	    (s->arena_top != 0 || arena_grow(s, need) < 0))
		return NULL;
	if (s->arena_top == 0)
		sodium_mprotect_readwrite(s->arena);
	p = s->arena + s->arena_top;
	s->arena_top += need;
	return p;
}

void bcn_secrets_release(struct bcn_secrets *s, size_t mark)
{
	if (mark >= s->arena_top)
		return;
	sodium_memzero(s->arena + mark, s->arena_top - mark);
	s->arena_top = mark;
	if (mark == 0)
		sodium_mprotect_noaccess(s->arena);
}

/* ---- sealing ---------------------------------------------------------------- */

static int seal_ad(struct bcn_secrets *s, struct bcn_sealed *v, const void *plain, size_t len,
		   const char *ad)
{
	size_t blen = NONCE_BYTES + len + TAG_BYTES;
	unsigned char *box = malloc(blen);
	unsigned long long clen = 0;

	if (!box)
		return -1;
	randombytes_buf(box, NONCE_BYTES);
	key_open(s);
	crypto_aead_xchacha20poly1305_ietf_encrypt(box + NONCE_BYTES, &clen, plain, len,
						   (const unsigned char *)ad, strlen(ad), NULL, box,
						   s->key);
	key_close(s);
	wipe_stack();
	bcn_sealed_clear(v);
	v->box = box;
	v->len = blen;
	return 0;
}

/* Decrypt v into dst (v->len - NONCE - TAG bytes). 0, or -1 when forged. */
static int open_ad(struct bcn_secrets *s, const struct bcn_sealed *v, unsigned char *dst,
		   const char *ad)
{
	unsigned long long mlen = 0;
	int rc;

	key_open(s);
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt(dst, &mlen, NULL, v->box + NONCE_BYTES,
							v->len - NONCE_BYTES, (const unsigned char *)ad,
							strlen(ad), v->box, s->key);
	key_close(s);
	wipe_stack();
	return rc == 0 ? 0 : -1;
}

static size_t sealed_plain_len(const struct bcn_sealed *v)
{
	return v && v->box && v->len >= NONCE_BYTES + TAG_BYTES ? v->len - NONCE_BYTES - TAG_BYTES : 0;
}

size_t bcn_sealed_len(const struct bcn_sealed *v)
{
	return sealed_plain_len(v);
}

int bcn_secrets_seal(struct bcn_secrets *s, struct bcn_sealed *v, const void *plain, size_t len)
{
	return seal_ad(s, v, plain, len, CRED_AD);
}

void bcn_sealed_clear(struct bcn_sealed *v)
{
	if (!v)
		return;
	free(v->box);
	v->box = NULL;
	v->len = 0;
}

const char *bcn_secrets_unseal(struct bcn_secrets *s, const struct bcn_sealed *v, size_t *len)
{
	size_t mark = bcn_secrets_mark(s), n = sealed_plain_len(v);
	unsigned char *p;

	if (!v->box)
		return NULL;
	p = bcn_secrets_scratch(s, n + 1);
	if (!p)
		return NULL;
	if (open_ad(s, v, p, CRED_AD) < 0) {
		bcn_secrets_release(s, mark);
		return NULL;
	}
	p[n] = '\0';
	if (len)
		*len = n;
	return (const char *)p;
}

/* ---- the store -------------------------------------------------------------- */

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	bcn_secrets_flush(arg);
}

struct bcn_secrets *bcn_secrets_new(struct event_base *base)
{
	struct bcn_secrets *s;

	if (sodium_init() < 0) {
		bcn_error("secrets", "cannot initialise libsodium");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto oom;
	s->index = 1;
	if (base && !(s->wake_ev = event_new(base, -1, 0, wake_cb, s)))
		goto oom;
	lock_memory();
	s->key = sodium_malloc(KEY_BYTES);
	if (!s->key || arena_grow(s, ARENA_MIN) < 0)
		goto oom;
	if (!lock_memory())
		check_locked(s->key, KEY_BYTES);
	crypto_aead_xchacha20poly1305_ietf_keygen(s->key);
	sodium_mprotect_noaccess(s->key);
	s->next = stores;
	stores = s;
	return s;
oom:
	bcn_error("secrets", "cannot create the secret store (out of memory or guarded memory)");
	bcn_secrets_free(s);
	return NULL;
}

static void secret_free(struct bcn_secret *sec)
{
	while (sec->waiters) {
		struct bcn_secrets_wait *w = sec->waiters;
		sec->waiters = w->next;
		free(w);
	}
	bcn_sealed_clear(&sec->data);
	free(sec->name);
	free(sec->uids);
	free(sec);
}

void bcn_secrets_free(struct bcn_secrets *s)
{
	struct bcn_secrets **pp;

	if (!s)
		return;
	for (pp = &stores; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	for (size_t i = 0; i < s->n; i++)
		secret_free(s->v[i]);
	free(s->v);
	if (s->wake_ev)
		event_free(s->wake_ev);
	if (s->key)
		sodium_free(s->key);
	if (s->arena)
		sodium_free(s->arena);
	free(s);
}

struct bcn_secret *bcn_secrets_find(const char *name)
{
	for (struct bcn_secrets *s = stores; s; s = s->next) {
		for (size_t i = 0; i < s->n; i++) {
			if (strcmp(s->v[i]->name, name) == 0)
				return s->v[i];
		}
	}
	return NULL;
}

uint64_t bcn_secrets_index_any(void)
{
	uint64_t idx = 1;

	for (struct bcn_secrets *s = stores; s; s = s->next)
		if (s->index > idx)
			idx = s->index;
	return idx;
}

struct bcn_secret *bcn_secrets_add(struct bcn_secrets *s, const char *name, const uid_t *uids,
				   size_t nuids)
{
	struct bcn_secret *sec, **v;

	if (bcn_secrets_find(name))
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

static void schedule_wake(struct bcn_secret *sec)
{
	sec->wake = true;
	if (sec->store->wake_ev)
		event_active(sec->store->wake_ev, EV_TIMEOUT, 1);
}

static void bump(struct bcn_secret *sec)
{
	sec->index = ++sec->store->index;
	schedule_wake(sec);
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
	if (old && open_ad(s, &sec->data, old, sec->name) == 0)
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
		if (seal_ad(s, &box, plain, len, sec->name) < 0) {
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
	       (sec->expires_at_ms == 0 || bcn_secrets_now_ms() < sec->expires_at_ms);
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

const void *bcn_secrets_key_page(const struct bcn_secrets *s)
{
	return s->key;
}

/* ---- answers ---------------------------------------------------------------- */

int bcn_secret_render(struct bcn_secret *sec, struct evbuffer *out)
{
	struct bcn_secrets *s = sec->store;
	size_t mark = bcn_secrets_mark(s), hl, tl;
	uint64_t now = bcn_secrets_now_ms();
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
	if (open_ad(s, &sec->data, buf + hl, sec->name) < 0) {
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

struct bcn_secrets_wait *bcn_secrets_wait(const char *name, uint64_t index, bcn_cache_wake_cb cb,
					  void *arg)
{
	struct bcn_secret *sec = bcn_secrets_find(name);
	struct bcn_secrets_wait *w;

	if (!sec || !(w = calloc(1, sizeof(*w))))
		return NULL;
	w->sec = sec;
	w->index = index;
	w->cb = cb;
	w->arg = arg;
	w->next = sec->waiters;
	if (sec->waiters)
		sec->waiters->prev = w;
	sec->waiters = w;
	if (sec->index != index)
		schedule_wake(sec);
	return w;
}

static void wait_unlink(struct bcn_secrets_wait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		w->sec->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
}

void bcn_secrets_wait_cancel(struct bcn_secrets_wait *w)
{
	if (!w)
		return;
	wait_unlink(w);
	free(w);
}

void bcn_secrets_flush(struct bcn_secrets *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct bcn_secret *sec = s->v[i];

		if (!sec->wake)
			continue;
		sec->wake = false;
		/* Callbacks may park new readers or cancel others: rescan each time. */
		for (;;) {
			struct bcn_secrets_wait *w = sec->waiters;
			bcn_cache_wake_cb cb;
			void *arg;

			while (w && w->index == sec->index)
				w = w->next;
			if (!w)
				break;
			cb = w->cb;
			arg = w->arg;
			wait_unlink(w);
			free(w);
			cb(arg);
		}
	}
}
