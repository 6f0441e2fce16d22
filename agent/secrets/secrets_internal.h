/*
 * secrets_internal.h - the store's structure, shared by seal.c (key, arena,
 * sealing) and store.c (named secrets and their waits). Not for use outside
 * agent/secrets/.
 */
#ifndef BCN_SECRETS_INTERNAL_H
#define BCN_SECRETS_INTERNAL_H

#include "secrets/store.h"

struct bcn_secrets {
	/* seal.c */
	unsigned char *key;        /* guarded, PROT_NONE unless key_users > 0 */
	int key_users;
	unsigned char *arena;      /* guarded, PROT_NONE while arena_top == 0 */
	size_t arena_cap, arena_top;
	/* store.c */
	struct bcn_waits *waits;   /* readers of one secret: queue (BCN_SECRETS_Q, name) */
	uint64_t index;
	struct bcn_secret **v;
	size_t n;
};

/* Initialise libsodium, lock memory, make the key and the arena. 0 or -1. */
int bcn_seal_init_(struct bcn_secrets *s);
/* Wipe and free the key and the arena. */
void bcn_seal_free_(struct bcn_secrets *s);
/* Seal len bytes of plain into v with additional data ad. 0 or -1. */
int bcn_seal_ad_(struct bcn_secrets *s, struct bcn_sealed *v, const void *plain, size_t len,
		 const char *ad);
/* Open v into dst (its plaintext length). 0, or -1 when forged. */
int bcn_open_ad_(struct bcn_secrets *s, const struct bcn_sealed *v, unsigned char *dst,
		 const char *ad);

#endif
