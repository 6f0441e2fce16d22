/*
 * zalloc.h - a zero-on-free allocator for the libraries that hold our secrets.
 *
 * jansson (parsed Vault answers), libcurl (request headers carrying the Vault
 * token, response buffers) and libevent (the evbuffer chains an answer of
 * /v1/secrets is copied into) free their buffers with free(), which leaves
 * the bytes in the heap until something overwrites them. These functions
 * wipe every block with sodium_memzero() before it goes back to libc, and a
 * growing realloc copies into a new block and wipes the old one.
 *
 * The size of a block is the one libc keeps in its own chunk header
 * (malloc_usable_size), not a header of ours: a pointer from bcn_zmalloc()
 * stays a plain malloc() pointer, so code that frees a library's result
 * with free() (json_dumps() strings all over the agent) keeps working; it
 * only skips the wipe.
 */
#ifndef BCN_ZALLOC_H
#define BCN_ZALLOC_H

#include <stddef.h>

void *bcn_zmalloc(size_t n);
void *bcn_zcalloc(size_t nmemb, size_t size);
/* realloc that never leaves a copy behind: shrinks in place (wiping the
 * tail), grows into a new block and wipes the old one. n == 0 frees. */
void *bcn_zrealloc(void *p, size_t n);
char *bcn_zstrdup(const char *s);
void bcn_zfree(void *p); /* NULL-safe */

/* Which libraries get this allocator, and when: alloc_hooks.h. */

/* For tests: what returns a wiped block to libc (free by default), so a test
 * can look at the block after the wipe and before the free. */
extern void (*bcn_zalloc_release)(void *p);

#endif
