/*
 * cfgtext.c - how config problems are worded: values quoted as JSON string
 * literals and cut after QUOTE_CHARS characters (so one bad value cannot
 * flood a terminal or a log line), "expected X, got <this>" descriptions,
 * JSON paths of keys and elements, and the "did you mean" suggestion for an
 * unknown key. cfgmap.c walks the tables; this file only writes text.
 */
#include "config/cfgtext.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define QUOTE_CHARS 40     /* characters of a value shown in a message */
#define SUGGEST_DISTANCE 2 /* farther keys are not offered as "did you mean" */
#define SUGGEST_KEY_MAX 64 /* longer keys are not typos of a table key */

/* ---- describing values ------------------------------------------------- */

/* s as a JSON string literal, cut after QUOTE_CHARS characters (UTF-8 aware). */
const char *bcn_cfg_quote(const char *s, char *buf, size_t len)
{
	size_t o = 0, chars = 0;

	buf[o++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool starts_char = (c & 0xC0) != 0x80;

		if ((starts_char && chars++ == QUOTE_CHARS) || o + 12 >= len) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c == '\n') {
			memcpy(buf + o, "\\n", 2);
			o += 2;
		} else if (c == '\t') {
			memcpy(buf + o, "\\t", 2);
			o += 2;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(buf + o, len - o, "\\u%04x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* "8080.0" must not print as "8080": the reader would see no fault in it. */
static void describe_real(double d, char *buf, size_t len)
{
	int n = snprintf(buf, len, "a number %.15g", d);

	if (n > 0 && (size_t)n + 2 < len && !strpbrk(buf + 9, ".eni"))
		memcpy(buf + n, ".0", 3);
}

/* What was found, for "expected X, got <this>". */
const char *bcn_cfg_describe(const json_t *v, char *buf, size_t len)
{
	char q[BCN_CFG_QUOTE_LEN];

	switch (json_typeof(v)) {
	case JSON_STRING:
		snprintf(buf, len, "a string %s", bcn_cfg_quote(json_string_value(v), q, sizeof(q)));
		break;
	case JSON_INTEGER:
		snprintf(buf, len, "a number %" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		describe_real(json_real_value(v), buf, len);
		break;
	case JSON_TRUE:
		snprintf(buf, len, "true");
		break;
	case JSON_FALSE:
		snprintf(buf, len, "false");
		break;
	case JSON_NULL:
		snprintf(buf, len, "null");
		break;
	case JSON_ARRAY:
		snprintf(buf, len, "an array");
		break;
	case JSON_OBJECT:
		snprintf(buf, len, "an object");
		break;
	}
	return buf;
}

/* A string value as found, plus what it expanded to when ${VAR} changed it:
 * "${PORT}" expanding to "" is the usual cause of a bad number. */
const char *bcn_cfg_describe_expanded(const json_t *raw, const char *expanded, char *buf,
				     size_t len)
{
	char q1[BCN_CFG_QUOTE_LEN], q2[BCN_CFG_QUOTE_LEN];
	const char *s = json_string_value(raw);

	if (strcmp(s, expanded) == 0)
		snprintf(buf, len, "a string %s", bcn_cfg_quote(s, q1, sizeof(q1)));
	else
		snprintf(buf, len, "a string %s (expanded to %s)", bcn_cfg_quote(s, q1, sizeof(q1)),
			 bcn_cfg_quote(expanded, q2, sizeof(q2)));
	return buf;
}

/* ---- paths -------------------------------------------------------------- */

static bool is_ident_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (!first && c >= '0' && c <= '9');
}

static bool is_ident(const char *s)
{
	if (!is_ident_char(*s, true))
		return false;
	while (*++s)
		if (!is_ident_char(*s, false))
			return false;
	return true;
}

void bcn_cfg_path_key_at(char *out, const char *parent, const char *key)
{
	char q[BCN_CFG_QUOTE_LEN];

	if (!is_ident(key))
		snprintf(out, BCN_CFG_PATH_LEN, "%s[%s]", parent, bcn_cfg_quote(key, q, sizeof(q)));
	else if (strlen(key) > QUOTE_CHARS)
		snprintf(out, BCN_CFG_PATH_LEN, "%s.%.*s...", parent, QUOTE_CHARS, key);
	else
		snprintf(out, BCN_CFG_PATH_LEN, "%s.%s", parent, key);
}

void bcn_cfg_path_key(char *out, size_t len, const char *parent, const char *key)
{
	char tmp[BCN_CFG_PATH_LEN];
	bcn_cfg_path_key_at(tmp, parent, key);
	snprintf(out, len, "%s", tmp);
}

void bcn_cfg_path_index(char *out, const char *parent, size_t i)
{
	snprintf(out, BCN_CFG_PATH_LEN, "%s[%zu]", parent, i);
}

/* ---- "did you mean" ----------------------------------------------------- */

/* Optimal string alignment distance: a swapped pair ("chekc") counts as one edit. */
static size_t edit_distance(const char *a, const char *b)
{
	unsigned char d[SUGGEST_KEY_MAX + 1][SUGGEST_KEY_MAX + 1];
	size_t la = strlen(a), lb = strlen(b);

	if (la > SUGGEST_KEY_MAX || lb > SUGGEST_KEY_MAX)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned char)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned char)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			unsigned best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);

			if (d[i - 1][j] + 1u < best)
				best = d[i - 1][j] + 1u;
			if (d[i][j - 1] + 1u < best)
				best = d[i][j - 1] + 1u;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1u < best)
				best = d[i - 2][j - 2] + 1u;
			d[i][j] = (unsigned char)best;
		}
	}
	return d[la][lb];
}

/* The closest table key within SUGGEST_DISTANCE; the first one wins a tie. A
 * key of 4 characters or fewer gets 1 edit, else "x" would suggest "kv". */
const char *bcn_cfg_suggest(const struct bcn_cfg_field *table, const char *key)
{
	const char *best = NULL;
	size_t best_d = (strlen(key) <= 4 ? 1 : SUGGEST_DISTANCE) + 1;

	for (const struct bcn_cfg_field *f = table; f->key; f++) {
		size_t d = edit_distance(key, f->key);

		if (d < best_d) {
			best = f->key;
			best_d = d;
		}
	}
	return best;
}
