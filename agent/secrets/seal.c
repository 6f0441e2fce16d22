/*
 * seal.c - the secret store's memory and crypto: mlock, the key, the
 * scratch arena and sealing (seal.h). Kept apart from the store (store.c)
 * because this is the part whose mistakes leak plaintext: it is small and
 * does nothing else.
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
#include "secrets/secrets_internal.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "base/log.h"

#define KEY_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define ARENA_MIN ((size_t)64 << 10)
#define ARENA_MAX (4 * BCN_SECRET_MAX_DATA)
#define CRED_AD "beacon credential"

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

int bcn_seal_ad_(struct bcn_secrets *s, struct bcn_sealed *v, const void *plain, size_t len,
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
int bcn_open_ad_(struct bcn_secrets *s, const struct bcn_sealed *v, unsigned char *dst,
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
	return bcn_seal_ad_(s, v, plain, len, CRED_AD);
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
	if (bcn_open_ad_(s, v, p, CRED_AD) < 0) {
		bcn_secrets_release(s, mark);
		return NULL;
	}
	p[n] = '\0';
	if (len)
		*len = n;
	return (const char *)p;
}

const void *bcn_secrets_key_page(const struct bcn_secrets *s)
{
	return s->key;
}

/* ---- life ------------------------------------------------------------------ */

int bcn_seal_init_(struct bcn_secrets *s)
{
	if (sodium_init() < 0) {
		bcn_error("secrets", "cannot initialise libsodium");
		return -1;
	}
	lock_memory();
	s->key = sodium_malloc(KEY_BYTES);
	if (!s->key || arena_grow(s, ARENA_MIN) < 0)
		return -1;
	if (!lock_memory())
		check_locked(s->key, KEY_BYTES);
	crypto_aead_xchacha20poly1305_ietf_keygen(s->key);
	sodium_mprotect_noaccess(s->key);
	return 0;
}

void bcn_seal_free_(struct bcn_secrets *s)
{
	if (s->key)
		sodium_free(s->key); /* wipes */
	if (s->arena)
		sodium_free(s->arena);
	s->key = s->arena = NULL;
}
