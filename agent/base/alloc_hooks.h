/*
 * alloc_hooks.h - hand the zero-on-free allocator (zalloc.h) to every library
 * that may hold a secret in its heap: jansson, libevent, libcurl and the
 * OpenSSL under libcurl. See alloc_hooks.c for what each hook covers.
 */
#ifndef BCN_ALLOC_HOOKS_H
#define BCN_ALLOC_HOOKS_H

#include <stdbool.h>

/* jansson and libevent. Call first thing in main, before either library
 * allocates anything. */
void bcn_alloc_hooks_install(void);

/* OpenSSL, then libcurl's one global initialisation (curl_global_init_mem).
 * Idempotent: the HTTP client calls it before its first curl handle. 0, or
 * -1 when libcurl cannot be initialised (logged). */
int bcn_alloc_hooks_curl_init(void);

/* True when OpenSSL took the allocator (its TLS buffers are wiped). */
bool bcn_alloc_hooks_tls_wiped(void);

#endif
