/*
 * expand.c - ${VAR} and ${VAR:-default} in config strings, shell-like: an
 * unset variable expands to "", the default applies when unset or empty,
 * "$$" is a literal "$". Results are not expanded again (no recursion, so a
 * value from the environment can never inject another reference).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfgmap.h"

static const char ERR_UNTERMINATED[] =
	"unterminated \"${\": close it with \"}\", or write \"$$\" for a literal \"$\"";
static const char ERR_NAME[] =
	"invalid variable name in \"${...}\": use letters, digits and \"_\", not starting with a digit";
static const char ERR_FORM[] = "unsupported \"${...}\" form: use ${VAR} or ${VAR:-default}";
static const char ERR_OOM[] = "out of memory";

static bool is_ident_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (!first && c >= '0' && c <= '9');
}

struct buf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	/* n == 0 returns early: memcpy to a still-NULL buffer is undefined even for 0 bytes. */
	if (b->oom || n == 0)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *grown;

		while (cap < b->len + n)
			cap *= 2;
		grown = realloc(b->s, cap);
		if (!grown) {
			b->oom = true;
			return;
		}
		b->s = grown;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
}

/* Expand one ${...}; p points after "${". Returns the rest of the input, or
 * NULL with *err set. The default runs to the first '}', taken verbatim. */
static const char *expand_one(const char *p, struct buf *b, const char **err)
{
	const char *close = strchr(p, '}'), *def = NULL, *val;
	size_t n = 0;
	char *name;

	if (!close) {
		*err = ERR_UNTERMINATED;
		return NULL;
	}
	while (p + n < close && is_ident_char(p[n], n == 0))
		n++;
	if (n == 0) {
		*err = ERR_NAME;
		return NULL;
	}
	if (p + n != close) {
		/* A shell operator means a form we don't support; anything else is a bad name. */
		if (p[n] != ':' || p[n + 1] != '-') {
			*err = strchr(":-=?+#%/", p[n]) ? ERR_FORM : ERR_NAME;
			return NULL;
		}
		def = p + n + 2;
	}
	name = strndup(p, n);
	if (!name) {
		*err = ERR_OOM;
		return NULL;
	}
	val = getenv(name);
	free(name);
	if (def && (!val || !*val))
		buf_add(b, def, (size_t)(close - def));
	else if (val)
		buf_add(b, val, strlen(val));
	return close + 1;
}

char *bcn_expand_env(const char *in, const char **err)
{
	struct buf b = { 0 };
	const char *p = in, *msg = ERR_OOM;

	if (!in)
		goto fail;
	while (*p) {
		const char *dollar = strchr(p, '$');

		if (!dollar) {
			buf_add(&b, p, strlen(p));
			break;
		}
		buf_add(&b, p, (size_t)(dollar - p));
		if (dollar[1] == '{') {
			p = expand_one(dollar + 2, &b, &msg);
			if (!p)
				goto fail;
		} else {
			/* "$$" is one '$'; a '$' before anything else is kept as written. */
			buf_add(&b, "$", 1);
			p = dollar + (dollar[1] == '$' ? 2 : 1);
		}
	}
	buf_add(&b, "", 1);
	if (b.oom) {
		msg = ERR_OOM;
		goto fail;
	}
	return b.s;
fail:
	free(b.s);
	if (err)
		*err = msg;
	return NULL;
}

