/*
 * utf8.h - text from registries and URLs as valid UTF-8.
 *
 * Keys, values and names reach the API as bytes (etcd and Consul store any
 * bytes, a URL may spell %FF). JSON needs UTF-8, and jansson refuses
 * anything else, so every answer that quotes such bytes goes through here:
 * a byte that does not start a valid sequence, and NUL, become U+FFFD, as
 * the README promises for KV values. Messages that shorten a name cut it on a
 * character boundary, never inside one.
 */
#ifndef BCN_UTF8_H
#define BCN_UTF8_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>

/* Length (1-4) of the valid UTF-8 sequence at p, or 0 when it is invalid or NUL. */
size_t bcn_utf8_seq(const unsigned char *p, size_t left);

/* The longest prefix of s[0, len) of at most max bytes that ends between
 * characters (an invalid byte counts as one character). */
size_t bcn_utf8_cut(const char *s, size_t len, size_t max);

/* vsnprintf into buf; when the text is cut at cap, the cut never splits a
 * character. Returns the length written. */
size_t bcn_utf8_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* A JSON string of s[0, len) with invalid bytes and NUL replaced by U+FFFD. NULL on OOM. */
json_t *bcn_json_text(const char *s, size_t len);

#endif
