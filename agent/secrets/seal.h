/*
 * seal.h - sealed credentials and the guarded scratch arena: the part of the
 * secret store a secrets plugin uses directly, and all of it plugin.h shows.
 *
 * A plugin keeps what it must present to its backend (the Vault token, an
 * AppRole secret_id, a Kubernetes JWT) sealed: encrypted with
 * XChaCha20-Poly1305 under the store's key, which lives in sodium_malloc'd
 * memory that is PROT_NONE except for the instant it is used. The
 * ciphertext may sit in the ordinary heap. Plaintext only ever exists in one
 * guarded arena (PROT_NONE while empty), for as long as it takes to build one
 * request or one answer, and is wiped when given back (seal.c). The store
 * itself (named secrets, readers' uids, versions, answers) is store.h, for
 * the core only; plugins report secrets through plugin.h's
 * bcn_report_secret_*() calls.
 *
 * Everything runs on the agent's loop thread; nothing here blocks.
 */
#ifndef BCN_SECRETS_SEAL_H
#define BCN_SECRETS_SEAL_H

#include <stddef.h>
#include <stdint.h>

struct bcn_secrets; /* a store: its key and its arena */

/* Largest data object of one secret, serialised (the arena holds a few). */
#define BCN_SECRET_MAX_DATA ((size_t)1 << 20)

/* Bytes encrypted under the store key; the ciphertext may sit in the heap. */
struct bcn_sealed {
	unsigned char *box; /* nonce || ciphertext || tag; NULL when empty */
	size_t len;
};

/* Seal len bytes of plain into v (replacing what it held). 0 or -1. */
int bcn_secrets_seal(struct bcn_secrets *s, struct bcn_sealed *v, const void *plain, size_t len);
void bcn_sealed_clear(struct bcn_sealed *v); /* NULL-safe */
/* Length of what v holds (0 when empty or NULL), without opening it. */
size_t bcn_sealed_len(const struct bcn_sealed *v);

/*
 * The arena is a stack: remember bcn_secrets_mark(), take memory with
 * bcn_secrets_scratch() / bcn_secrets_unseal(), and give everything back
 * (wiped) with bcn_secrets_release(mark). Pointers are valid until then. The
 * arena only grows while it is empty, so nested users get NULL rather than a
 * moved buffer when it is too small.
 */
size_t bcn_secrets_mark(const struct bcn_secrets *s);
/* Make sure n more bytes fit from here on, so that nested users do not run
 * out (grows only while the arena is empty). 0 or -1. */
int bcn_secrets_reserve(struct bcn_secrets *s, size_t n);
void *bcn_secrets_scratch(struct bcn_secrets *s, size_t n);
/* Decrypt v into the arena, NUL-terminated; *len is its length. NULL when v
 * is empty, was tampered with, or the arena is full. */
const char *bcn_secrets_unseal(struct bcn_secrets *s, const struct bcn_sealed *v, size_t *len);
void bcn_secrets_release(struct bcn_secrets *s, size_t mark);

/* Overwrite the stack below the caller after a library worked on plaintext
 * there (a parser's or a cipher's small buffers). */
void bcn_secrets_wipe_stack(void);

/* For tests: the guarded key page (PROT_NONE between uses). */
const void *bcn_secrets_key_page(const struct bcn_secrets *s);

#endif
