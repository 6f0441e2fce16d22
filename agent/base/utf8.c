/*
 * utf8.c - see utf8.h. The validity rules are RFC 3629's (no overlong forms,
 * no surrogates, nothing above U+10FFFF); each invalid byte is replaced on its
 * own, so a value that is mostly text stays readable.
 */
#include "base/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t bcn_utf8_seq(const unsigned char *p, size_t left)
{
	size_t need;

	if (left == 0 || p[0] == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] < 0xe0)
		need = 2;
	else if (p[0] >= 0xe0 && p[0] < 0xf0)
		need = 3;
	else if (p[0] >= 0xf0 && p[0] < 0xf5)
		need = 4;
	else
		return 0;
	if (need > left)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	}
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return need;
}

size_t bcn_utf8_cut(const char *s, size_t len, size_t max)
{
	size_t i = 0;

	if (len <= max)
		return len;
	while (i < len) {
		size_t n = bcn_utf8_seq((const unsigned char *)s + i, len - i);
		if (n == 0)
			n = 1;
		if (i + n > max)
			break;
		i += n;
	}
	return i;
}

size_t bcn_utf8_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
	int r = vsnprintf(buf, cap, fmt, ap);
	size_t n, k;

	if (r < 0 || cap == 0) {
		if (cap)
			buf[0] = '\0';
		return 0;
	}
	n = strlen(buf);
	if ((size_t)r < cap)
		return n;
	/* Truncated: drop a last character that lost its tail. */
	k = n;
	while (k > 0 && n - k < 3 && ((unsigned char)buf[k - 1] & 0xc0) == 0x80)
		k--;
	if (k > 0 && (unsigned char)buf[k - 1] >= 0xc2 &&
	    bcn_utf8_seq((const unsigned char *)buf + k - 1, n - k + 1) == 0)
		n = k - 1;
	buf[n] = '\0';
	return n;
}

json_t *bcn_json_text(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, j, n;
	char *fixed;
	json_t *v;

	while (i < len && (n = bcn_utf8_seq(u + i, len - i)) != 0)
		i += n;
	if (i == len)
		return json_stringn_nocheck(s, len);
	/* Each invalid byte grows to three; the valid prefix is copied as is. */
	fixed = malloc(len * 3 + 1);
	if (!fixed)
		return NULL;
	memcpy(fixed, s, i);
	j = i;
	while (i < len) {
		n = bcn_utf8_seq(u + i, len - i);
		if (n) {
			memcpy(fixed + j, s + i, n);
			j += n;
			i += n;
		} else {
			memcpy(fixed + j, "\xef\xbf\xbd", 3);
			j += 3;
			i++;
		}
	}
	v = json_stringn_nocheck(fixed, j);
	free(fixed);
	return v;
}
