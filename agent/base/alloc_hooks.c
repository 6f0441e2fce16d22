/*
 * alloc_hooks.c - every library that may keep a secret in its heap gets the
 * zero-on-free allocator (zalloc.c), so the bytes are wiped when it frees
 * them instead of lingering until something overwrites them. All the
 * process-wide allocator patches live here, in one place:
 *
 *   - jansson (json_set_alloc_funcs): parsed Vault answers, json_dumps()
 *     output built by the plugins;
 *   - libevent (event_set_mem_functions): evbuffer chains, among them the
 *     answers of /v1/secrets on their way to the socket;
 *   - libcurl (curl_global_init_mem): the request headers carrying the Vault
 *     token, its own copies of bodies and URLs;
 *   - OpenSSL (CRYPTO_set_mem_functions): decrypted TLS records and key
 *     material.
 *
 * gnutls, which Debian's libcurl drags in unused, is told not to initialise
 * at all (_gnutls_global_init_skip below), so it holds nothing to wipe.
 *
 * What they cannot cover: memory a library gets without its hook (libc's
 * stdio buffers, getaddrinfo, a library's static arrays), blocks freed with
 * plain free() by our own code (they skip the wipe, see zalloc.h), and
 * OpenSSL when something allocated through it before the hook (it then
 * refuses it: bcn_alloc_hooks_tls_wiped() says so). Each hook must be in
 * place before its library's first allocation: jansson and libevent from
 * main (bcn_alloc_hooks_install), OpenSSL and libcurl from the HTTP client's
 * one global initialisation (bcn_alloc_hooks_curl_init), which runs before
 * the first curl handle and so before libcurl loads OpenSSL's state.
 */
#include "base/alloc_hooks.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>

#include "base/log.h"
#include "base/zalloc.h"

void bcn_alloc_hooks_install(void)
{
	json_set_alloc_funcs(bcn_zmalloc, bcn_zfree);
	event_set_mem_functions(bcn_zmalloc, bcn_zrealloc, bcn_zfree);
}

/*
 * Debian's libcurl loads gnutls (through librtmp and libldap) although beacon
 * only speaks HTTP(S) through OpenSSL (CURLOPT_PROTOCOLS_STR in http/client.c). gnutls
 * initialises itself when loaded (PKCS#11, ASN.1 trees: ~1 MiB of memory)
 * unless the program defines this symbol, as gnutls.h documents
 * (GNUTLS_SKIP_GLOBAL_INIT). A library that does use gnutls still calls
 * gnutls_global_init() itself first.
 */
int _gnutls_global_init_skip(void);
int _gnutls_global_init_skip(void)
{
	return 1;
}

/*
 * OpenSSL, libcurl's TLS, keeps decrypted records and key material in buffers
 * of its own. It gets the zero-on-free allocator too, so those are wiped when
 * freed. beacon does not link libcrypto itself (libcurl does), so the hook is
 * looked up at run time; OpenSSL accepts it only before its first allocation,
 * which curl_global_init makes.
 */
typedef int (*crypto_set_mem_fn)(void *(*m)(size_t, const char *, int),
				 void *(*r)(void *, size_t, const char *, int),
				 void (*f)(void *, const char *, int));

static bool tls_wiped;

static void *ossl_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return bcn_zmalloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return bcn_zrealloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	bcn_zfree(p);
}

static void wipe_openssl_buffers(void)
{
	crypto_set_mem_fn set;

	*(void **)&set = dlsym(RTLD_DEFAULT, "CRYPTO_set_mem_functions");
	if (set && set(ossl_malloc, ossl_realloc, ossl_free))
		tls_wiped = true;
	else
		bcn_debug("http", "OpenSSL's allocator could not be replaced (%s): its TLS buffers are "
			  "not wiped when freed", set ? "it had allocated already" : "no libcrypto");
}

bool bcn_alloc_hooks_tls_wiped(void)
{
	return tls_wiped;
}

/* The one place libcurl is initialised: with the zero-on-free allocator, so
 * the token headers and bodies curl copies are wiped when it frees them. */
int bcn_alloc_hooks_curl_init(void)
{
	static int ready;
	CURLcode rc;

	if (ready)
		return 0;
	wipe_openssl_buffers();
	rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, bcn_zmalloc, bcn_zfree, bcn_zrealloc,
				 bcn_zstrdup, bcn_zcalloc);
	if (rc != CURLE_OK) {
		bcn_error("http", "cannot initialise libcurl: %s", curl_easy_strerror(rc));
		return -1;
	}
	ready = 1;
	return 0;
}
