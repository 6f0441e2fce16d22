/*
 * mustache_parse.c - Mustache source to the flat node array of
 * mustache_internal.h, once, at load.
 *
 * One pass over the source: find the next opening delimiter, read the tag
 * up to its closing delimiter, and decide whether the tag is "standalone"
 * (alone on its line but for spaces and tabs), in which case the spec
 * removes the whole line from the output and a partial inherits the line's
 * indentation. Every error names the tag's line and column; nothing the
 * input holds can make the parser recurse without bound (sections nest at
 * most BCN_MST_MAX_DEPTH deep, partials are at most MST_MAX_PARTIALS
 * distinct (name, indentation) pairs, each parsed once).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/mustache_internal.h"
#include "base/zalloc.h"

#define MAX_DELIM 16

struct parser {
	struct bcn_mst *t;
	const char *file;
	char *src;
	size_t len;
	char open[MAX_DELIM + 1], close[MAX_DELIM + 1];
	size_t olen, clen;
	bcn_mst_loader load;
	void *load_arg;
	struct bcn_mst_error *err;
	size_t pos_at;            /* position() resumes from here: nodes come in order */
	unsigned pos_line, pos_col;
};

bool bcn_mst_escape_parse(const char *s, enum bcn_mst_escape *out)
{
	static const char *const names[] = { "none", "html", "json" };

	for (size_t i = 0; i < 3; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum bcn_mst_escape)i;
			return true;
		}
	return false;
}

static void position(struct parser *p, size_t at, unsigned *line, unsigned *col)
{
	const char *src = p->src;
	unsigned l = 1, c = 1;
	size_t i = 0;

	if (p->pos_line && at >= p->pos_at) {
		i = p->pos_at;
		l = p->pos_line;
		c = p->pos_col;
	}
	for (; i < at; i++) {
		if (src[i] == '\n') {
			l++;
			c = 1;
		} else {
			c++;
		}
	}
	*line = l;
	*col = c;
	p->pos_at = at;
	p->pos_line = l;
	p->pos_col = c;
}

static int fail(struct parser *p, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct parser *p, size_t at, const char *fmt, ...)
{
	va_list ap;

	if (p->err->msg[0]) /* keep the innermost error (a partial's) */
		return -1;
	snprintf(p->err->file, sizeof(p->err->file), "%s", p->file);
	position(p, at, &p->err->line, &p->err->col);
	va_start(ap, fmt);
	vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static struct mst_node *add_node(struct parser *p, enum mst_type type, const char *s, size_t len,
				 size_t at)
{
	struct bcn_mst *t = p->t;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct mst_node *nn;

		if (cap > UINT32_MAX / 2)
			return NULL;
		nn = realloc(t->nodes, cap * sizeof(*nn));
		if (!nn)
			return NULL;
		t->nodes = nn;
		t->cap = cap;
	}
	struct mst_node *n = &t->nodes[t->n++];
	memset(n, 0, sizeof(*n));
	n->type = (uint8_t)type;
	n->s = s;
	n->len = len;
	n->first = type == MST_TEXT ? len : strcspn(s, ".");
	if (type != MST_TEXT && len == 1 && s[0] == '.')
		n->first = 1;
	position(p, at, &n->line, &n->col);
	return n;
}

static int add_text(struct parser *p, size_t from, size_t to)
{
	if (to <= from)
		return 0;
	return add_node(p, MST_TEXT, p->src + from, to - from, from) ? 0 : -1;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Trim [*a, *b) of blanks. */
static void trim(const char *s, size_t *a, size_t *b)
{
	while (*a < *b && is_blank(s[*a]))
		(*a)++;
	while (*b > *a && is_blank(s[*b - 1]))
		(*b)--;
}

/* A name as written: non-empty, no blanks inside; "." or dot-separated
 * non-empty parts. NUL-terminates it in place (see mustache_internal.h). */
static const char *take_name(struct parser *p, size_t a, size_t b, size_t at)
{
	trim(p->src, &a, &b);
	if (a == b)
		return fail(p, at, "a tag needs a name"), NULL;
	for (size_t i = a; i < b; i++)
		if (is_blank(p->src[i]))
			return fail(p, at, "a name has no spaces (\"%.*s\")", (int)(b - a > 40 ? 40 : b - a),
				    p->src + a), NULL;
	if (!(b - a == 1 && p->src[a] == '.')) {
		for (size_t i = a; i < b; i++)
			if (p->src[i] == '.' && (i == a || i + 1 == b || p->src[i + 1] == '.'))
				return fail(p, at, "\"%.*s\" has an empty part between dots",
					    (int)(b - a > 40 ? 40 : b - a), p->src + a), NULL;
	}
	p->src[b] = 0;
	if (p->t->shared->names && !json_object_get(p->t->shared->names, p->src + a))
		json_object_set_new(p->t->shared->names, p->src + a, json_true());
	return p->src + a;
}

static int set_delims(struct parser *p, size_t a, size_t b, size_t at)
{
	size_t i, o0, o1, c0, c1;

	trim(p->src, &a, &b);
	o0 = i = a;
	while (i < b && !is_blank(p->src[i]))
		i++;
	o1 = i;
	while (i < b && is_blank(p->src[i]))
		i++;
	c0 = i;
	while (i < b && !is_blank(p->src[i]))
		i++;
	c1 = i;
	if (o1 == o0 || c1 == c0 || c1 != b)
		return fail(p, at, "a delimiter change takes two delimiters: {{=<%% %%>=}}");
	if (o1 - o0 > MAX_DELIM || c1 - c0 > MAX_DELIM)
		return fail(p, at, "a delimiter is at most %d bytes", MAX_DELIM);
	if (memchr(p->src + o0, '=', o1 - o0) || memchr(p->src + c0, '=', c1 - c0))
		return fail(p, at, "a delimiter cannot contain \"=\"");
	memcpy(p->open, p->src + o0, o1 - o0);
	p->open[o1 - o0] = 0;
	p->olen = o1 - o0;
	memcpy(p->close, p->src + c0, c1 - c0);
	p->close[c1 - c0] = 0;
	p->clen = c1 - c0;
	return 0;
}

static const char *find(const char *s, size_t len, size_t from, const char *needle, size_t nlen)
{
	if (from > len || len - from < nlen)
		return NULL;
	return memmem(s + from, len - from, needle, nlen);
}

static int parse_into(struct bcn_mst *t, char *src, size_t len, const char *file, bcn_mst_loader load,
		      void *load_arg, struct bcn_mst_error *err);

/* Copy of text with indent before each line (the spec's standalone partial
 * rule: the partial's own lines are indented, not what it interpolates). */
static char *indent_text(const char *text, size_t len, const char *ind, size_t ilen, size_t *out_len)
{
	size_t lines = 0, n, o = 0;
	char *r;

	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n' && i + 1 < len)
			lines++;
	if (len)
		lines++;
	n = len + lines * ilen;
	r = bcn_zmalloc(n + 1);
	if (!r)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (ilen && (i == 0 || text[i - 1] == '\n')) {
			memcpy(r + o, ind, ilen);
			o += ilen;
		}
		r[o++] = text[i];
	}
	r[o] = 0;
	*out_len = o;
	return r;
}

static struct bcn_mst *partial(struct parser *p, const char *name, const char *ind, size_t ilen,
			       size_t at)
{
	struct mst_shared *sh = p->t->shared;
	char key[512], file[128] = "";
	size_t tlen = 0, ilen2 = 0;
	char *text, *itext;
	struct bcn_mst *pt;

	snprintf(key, sizeof(key), "%s\n%.*s", name, (int)ilen, ind);
	for (size_t i = 0; i < sh->n; i++)
		if (strcmp(sh->key[i], key) == 0)
			return sh->partial[i];
	if (!p->load)
		return NULL;
	text = p->load(p->load_arg, name, &tlen, file, sizeof(file));
	if (!text)
		return NULL;
	if (sh->n == MST_MAX_PARTIALS) {
		bcn_zfree(text);
		fail(p, at, "more than %d partials (a recursive partial whose indentation grows?)",
		     MST_MAX_PARTIALS);
		return NULL;
	}
	itext = indent_text(text, tlen, ind, ilen, &ilen2);
	bcn_zfree(text);
	pt = calloc(1, sizeof(*pt));
	sh->key[sh->n] = strdup(key);
	if (!itext || !pt || !sh->key[sh->n]) {
		bcn_zfree(itext);
		free(pt);
		free(sh->key[sh->n]);
		fail(p, at, "out of memory");
		return NULL;
	}
	pt->shared = sh;
	sh->partial[sh->n++] = pt; /* before parsing: a recursive partial finds itself */
	if (parse_into(pt, itext, ilen2, file[0] ? file : name, p->load, p->load_arg, p->err) < 0)
		return NULL;
	return pt;
}

/* The tag at src[tag] (opening delimiter) ends at *next; handle it. */
static int tag(struct parser *p, size_t *text_start, size_t at, size_t *stack, size_t *depth)
{
	char *s = p->src;
	size_t c0 = at + p->olen, a, b, tag_end, q, r, next;
	char sigil = c0 < p->len ? s[c0] : 0;
	const char *hit;
	bool standalone = false;

	if (!strchr("#^/>!=&{", sigil) || sigil == 0)
		sigil = 0;
	a = c0 + (sigil ? 1 : 0);
	if (sigil == '{' || sigil == '=') {
		char close[MAX_DELIM + 2];
		close[0] = sigil == '{' ? '}' : '=';
		memcpy(close + 1, p->close, p->clen + 1);
		hit = find(s, p->len, a, close, p->clen + 1);
		if (!hit)
			return fail(p, at, "tag is never closed (no \"%s\")", close);
		b = (size_t)(hit - s);
		tag_end = b + p->clen + 1;
	} else {
		hit = find(s, p->len, a, p->close, p->clen);
		if (!hit)
			return fail(p, at, "tag is never closed (no \"%s\")", p->close);
		b = (size_t)(hit - s);
		tag_end = b + p->clen;
	}
	/* Standalone: only spaces and tabs between the line start and the tag,
	 * and between the tag and the line end (or the end of the text). */
	q = at;
	r = tag_end;
	next = tag_end;
	if (sigil && strchr("#^/>!=", sigil)) {
		while (q > *text_start && (s[q - 1] == ' ' || s[q - 1] == '\t'))
			q--;
		while (r < p->len && (s[r] == ' ' || s[r] == '\t'))
			r++;
		if ((q == 0 || s[q - 1] == '\n') &&
		    (r == p->len || s[r] == '\n' || (s[r] == '\r' && r + 1 < p->len && s[r + 1] == '\n'))) {
			standalone = true;
			next = r == p->len ? r : r + (s[r] == '\r' ? 2 : 1);
		}
	}
	if (add_text(p, *text_start, standalone ? q : at) < 0)
		return fail(p, at, "out of memory");
	*text_start = next;

	switch (sigil) {
	case '!':
		return 0;
	case '=':
		return set_delims(p, a, b, at);
	case '#': case '^': {
		const char *name = take_name(p, a, b, at);
		if (!name)
			return -1;
		if (*depth == BCN_MST_MAX_DEPTH)
			return fail(p, at, "sections nest more than %d deep", BCN_MST_MAX_DEPTH);
		if (!add_node(p, sigil == '#' ? MST_SECTION : MST_INVERTED, name, strlen(name), at))
			return fail(p, at, "out of memory");
		stack[(*depth)++] = p->t->n - 1;
		return 0;
	}
	case '/': {
		const char *name = take_name(p, a, b, at);
		struct mst_node *open;
		if (!name)
			return -1;
		if (*depth == 0)
			return fail(p, at, "{{/%s}} closes a section that was never opened", name);
		open = &p->t->nodes[stack[*depth - 1]];
		if (strcmp(open->s, name) != 0)
			return fail(p, at, "{{/%s}} does not close the section {{#%s}} opened at %u:%u",
				    name, open->s, open->line, open->col);
		open->end = (uint32_t)p->t->n;
		(*depth)--;
		return 0;
	}
	case '>': {
		const char *name = take_name(p, a, b, at);
		struct mst_node *n;
		struct bcn_mst *pt;
		if (!name)
			return -1;
		pt = partial(p, name, s + q, standalone ? at - q : 0, at);
		if (p->err->msg[0])
			return -1;
		n = add_node(p, MST_PARTIAL, name, strlen(name), at);
		if (!n)
			return fail(p, at, "out of memory");
		n->partial = pt;
		return 0;
	}
	default: {
		const char *name = take_name(p, a, b, at);
		if (!name)
			return -1;
		if (!add_node(p, sigil ? MST_RAW : MST_VAR, name, strlen(name), at))
			return fail(p, at, "out of memory");
		return 0;
	}
	}
}

/* c's slot in section s (see mustache_internal.h): the entry with the same
 * first part, or a new one while there is room. */
static void slot_of(struct bcn_mst *t, struct mst_node *s, struct mst_node *c)
{
	struct mst_slot *sl = &t->slots[s->slot0];

	if (c->first == 0 || (c->len == 1 && c->s[0] == '.'))
		return;
	for (size_t k = 0; k < s->nslot; k++) {
		if (sl[k].len == c->first && memcmp(sl[k].name, c->s, c->first) == 0) {
			c->slot = (uint8_t)(k + 1);
			return;
		}
	}
	if (s->nslot == MST_MAX_SLOTS)
		return;
	sl[s->nslot].name = c->s;
	sl[s->nslot].len = c->first;
	c->slot = ++s->nslot;
	t->nslots++;
}

/* Fill in the slots of every section of a parsed t; each name node belongs
 * to the nearest enclosing {{#section}} ({{^inverted}} ones push nothing). */
static int index_slots(struct bcn_mst *t)
{
	if (!t->n)
		return 0;
	/* one name per node at most: t->n entries always suffice */
	t->slots = calloc(t->n, sizeof(*t->slots));
	if (!t->slots)
		return -1;
	for (size_t i = 0; i < t->n; i++) {
		struct mst_node *s = &t->nodes[i];

		if (s->type != MST_SECTION)
			continue;
		s->slot0 = (uint32_t)t->nslots;
		for (size_t j = i + 1; j < s->end;) {
			struct mst_node *c = &t->nodes[j];

			if (c->type == MST_VAR || c->type == MST_RAW || c->type == MST_SECTION ||
			    c->type == MST_INVERTED)
				slot_of(t, s, c);
			/* a nested section's body is its own; an inverted one's is ours */
			j = c->type == MST_SECTION ? c->end : j + 1;
		}
	}
	return 0;
}

/* Parse src (owned by t from here on) into t. */
static int parse_into(struct bcn_mst *t, char *src, size_t len, const char *file, bcn_mst_loader load,
		      void *load_arg, struct bcn_mst_error *err)
{
	struct parser p = { .t = t, .file = file, .src = src, .len = len, .olen = 2, .clen = 2,
			    .load = load, .load_arg = load_arg, .err = err };
	size_t stack[BCN_MST_MAX_DEPTH], depth = 0, text_start = 0, pos = 0;

	t->src = src;
	t->srclen = len;
	strcpy(p.open, "{{");
	strcpy(p.close, "}}");
	for (;;) {
		const char *hit = find(src, len, pos, p.open, p.olen);
		if (!hit)
			break;
		if (tag(&p, &text_start, (size_t)(hit - src), stack, &depth) < 0)
			return -1;
		pos = text_start;
	}
	if (add_text(&p, text_start, len) < 0)
		return fail(&p, len, "out of memory");
	if (depth) {
		struct mst_node *open = &t->nodes[stack[depth - 1]];
		snprintf(err->file, sizeof(err->file), "%s", file);
		err->line = open->line;
		err->col = open->col;
		snprintf(err->msg, sizeof(err->msg), "section {{%c%s}} is never closed",
			 open->type == MST_SECTION ? '#' : '^', open->s);
		return -1;
	}
	if (index_slots(t) < 0)
		return fail(&p, len, "out of memory");
	return 0;
}

struct bcn_mst *bcn_mst_parse(const char *text, size_t len, const char *file, bcn_mst_loader load,
			      void *load_arg, struct bcn_mst_error *err)
{
	struct bcn_mst *t = calloc(1, sizeof(*t));
	struct mst_shared *sh = calloc(1, sizeof(*sh));
	char *src = bcn_zmalloc(len + 1);

	memset(err, 0, sizeof(*err));
	if (!t || !sh || !src || !(sh->names = json_object())) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		if (sh)
			json_decref(sh->names);
		free(t);
		free(sh);
		bcn_zfree(src);
		return NULL;
	}
	memcpy(src, text, len);
	src[len] = 0;
	t->shared = sh;
	t->is_root = 1;
	if (parse_into(t, src, len, file ? file : "template", load, load_arg, err) < 0) {
		if (!err->msg[0])
			snprintf(err->msg, sizeof(err->msg), "out of memory");
		bcn_mst_free(t);
		return NULL;
	}
	return t;
}

static void free_one(struct bcn_mst *t)
{
	if (!t)
		return;
	free(t->nodes);
	free(t->slots);
	if (t->src)
		bcn_zfree(t->src);
	free(t);
}

void bcn_mst_free(struct bcn_mst *t)
{
	if (!t || !t->is_root)
		return;
	for (size_t i = 0; i < t->shared->n; i++) {
		free_one(t->shared->partial[i]);
		free(t->shared->key[i]);
	}
	json_decref(t->shared->names);
	free(t->shared);
	free_one(t);
}

void bcn_mst_names(const struct bcn_mst *t, void (*fn)(void *arg, const char *name), void *arg)
{
	const char *k;
	json_t *v;

	json_object_foreach(t->shared->names, k, v)
		fn(arg, k);
}
