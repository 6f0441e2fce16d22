/*
 * zalloc.c - see zalloc.h. Every block is wiped over its whole usable size
 * (what libc really reserved, which may exceed what was asked for and may
 * have held an earlier, larger use of the same bytes after a shrink).
 */
#include "base/zalloc.h"

#include <malloc.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void (*bcn_zalloc_release)(void *p) = free;

void *bcn_zmalloc(size_t n)
{
	return malloc(n ? n : 1);
}

void *bcn_zcalloc(size_t nmemb, size_t size)
{
	return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void bcn_zfree(void *p)
{
	if (!p)
		return;
	sodium_memzero(p, malloc_usable_size(p));
	bcn_zalloc_release(p);
}

void *bcn_zrealloc(void *p, size_t n)
{
	size_t have;
	void *q;

	if (!p)
		return bcn_zmalloc(n);
	if (n == 0) {
		bcn_zfree(p);
		return NULL;
	}
	have = malloc_usable_size(p);
	if (n <= have) {
		/* Keep the block: the bytes past n are no longer the caller's. */
		sodium_memzero((char *)p + n, have - n);
		return p;
	}
	q = malloc(n);
	if (!q)
		return NULL; /* as realloc: p stays valid */
	memcpy(q, p, have);
	bcn_zfree(p);
	return q;
}

char *bcn_zstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = bcn_zmalloc(n);

	if (d)
		memcpy(d, s, n);
	return d;
}
