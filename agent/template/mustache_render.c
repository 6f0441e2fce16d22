/*
 * mustache_render.c - walks a parsed template (mustache_internal.h) over a
 * jansson value into one growing buffer.
 *
 * The context stack is a fixed array on the C stack; a section pushes its
 * value (or each element of a list) and renders its node range; nothing is
 * allocated per node. Names resolve as the spec says: the first part from
 * the innermost context that has it, the rest only inside what it found (a
 * broken chain is empty, never looked up further out). A section's push
 * also fills its slots (mustache_internal.h): one walk of the pushed
 * object's keys finds every name its body asks for, so an item of a long
 * list is searched once, not once per name. The buffer grows
 * through bcn_zrealloc so a rendered secret leaves no stale copy.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include "template/mustache_internal.h"
#include "base/zalloc.h"

#define MST_HUGE_MIN ((size_t)2 << 20)  /* x86-64's huge page */

struct render {
	enum bcn_mst_escape esc;
	struct bcn_mst_out *out;
	json_t *stack[BCN_MST_MAX_DEPTH + 1];
	json_t **slots[BCN_MST_MAX_DEPTH + 1];  /* stack[i]'s filled slots, or NULL */
	size_t top;        /* stack[0..top) */
	size_t depth;      /* sections and partials being rendered */
	char *err;
	size_t errlen;
	int failed;
};

void bcn_mst_out_free(struct bcn_mst_out *o)
{
	if (!o)
		return;
	if (o->p)
		bcn_zfree(o->p);
	o->p = NULL;
	o->len = o->cap = 0;
}

static int fail(struct render *r, const char *msg)
{
	if (!r->failed)
		snprintf(r->err, r->errlen, "%s", msg);
	r->failed = 1;
	return -1;
}

/* Move the buffer to a new block of cap bytes (the old one wiped: a secret
 * leaves no stale copy). A block this large is asked for huge pages: the
 * first render of a long list spent more time in page faults than in
 * rendering (a hint only; where the kernel says no, nothing changes). */
static int grow(struct bcn_mst_out *o, size_t cap)
{
	char *np = bcn_zmalloc(cap);

	if (!np)
		return -1;
#ifdef MADV_HUGEPAGE
	if (cap >= MST_HUGE_MIN) {
		uintptr_t a = ((uintptr_t)np + MST_HUGE_MIN - 1) & ~(uintptr_t)(MST_HUGE_MIN - 1);
		uintptr_t b = ((uintptr_t)np + cap) & ~(uintptr_t)(MST_HUGE_MIN - 1);
		if (b > a)
			(void)madvise((void *)a, b - a, MADV_HUGEPAGE);
	}
#endif
	if (o->p) {
		memcpy(np, o->p, o->len + 1);
		bcn_zfree(o->p);
	}
	o->p = np;
	o->cap = cap;
	return 0;
}

static int reserve(struct render *r, size_t n)
{
	struct bcn_mst_out *o = r->out;
	size_t max = o->max ? o->max : BCN_MST_MAX_OUT;
	size_t cap;

	if (n > max || o->len > max - n)
		return fail(r, "the rendered output would pass its size limit");
	if (o->len + n + 1 <= o->cap)
		return 0;
	cap = o->cap ? o->cap : 256;
	while (cap < o->len + n + 1)
		cap *= 2;
	if (cap > max + 1)
		cap = max + 1; /* so the fast path of put() can never pass max */
	if (grow(o, cap) < 0)
		return fail(r, "out of memory while rendering");
	return 0;
}

/*
 * A long list is sized once: after its first MST_SIZE_AFTER items, room for
 * the rest at the same bytes per item (and an eighth more) in one step,
 * instead of doubling through every size on the way (each a copy, a wipe
 * and fresh pages to fault in). Only a guess: past the output limit, or
 * without memory, it does nothing and the buffer grows as before.
 */
#define MST_SIZE_AFTER 16
static void presize(struct render *r, size_t start, size_t done, size_t len)
{
	struct bcn_mst_out *o = r->out;
	size_t max = o->max ? o->max : BCN_MST_MAX_OUT;
	size_t per = (o->len - start) / done, left = len - done, need;

	if (per == 0 || left > max / per)
		return;
	need = per * left;
	need += need / 8;
	if (need > max - o->len || o->len + need + 1 <= o->cap)
		return;
	(void)grow(o, o->len + need + 1);
}

static int put(struct render *r, const char *s, size_t n)
{
	if (r->out->len + n + 1 > r->out->cap && reserve(r, n) < 0)
		return -1;
	memcpy(r->out->p + r->out->len, s, n);
	r->out->len += n;
	r->out->p[r->out->len] = 0;
	return 0;
}

/* s escaped as esc asks: runs of plain bytes are copied at once. */
static int put_escaped(struct render *r, const char *s, size_t n, enum bcn_mst_escape esc)
{
	size_t run = 0;

	if (esc == BCN_MST_ESC_NONE)
		return put(r, s, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *rep = NULL;
		char hex[8];

		if (esc == BCN_MST_ESC_HTML) {
			if (c == '&') rep = "&amp;";
			else if (c == '<') rep = "&lt;";
			else if (c == '>') rep = "&gt;";
			else if (c == '"') rep = "&quot;";
		} else {
			if (c == '"') rep = "\\\"";
			else if (c == '\\') rep = "\\\\";
			else if (c == '\n') rep = "\\n";
			else if (c == '\r') rep = "\\r";
			else if (c == '\t') rep = "\\t";
			else if (c == '\b') rep = "\\b";
			else if (c == '\f') rep = "\\f";
			else if (c < 0x20 || c == 0x7f) {
				snprintf(hex, sizeof(hex), "\\u%04x", c);
				rep = hex;
			}
		}
		if (!rep)
			continue;
		if (put(r, s + run, i - run) < 0 || put(r, rep, strlen(rep)) < 0)
			return -1;
		run = i + 1;
	}
	return put(r, s + run, n - run);
}

/* A double as Python's repr() writes it (pystache prints str(value)): the
 * shortest digits that read back the same, fixed notation for exponents
 * -4..15, else d.ddde+XX. */
static size_t py_float(double v, char *buf, size_t len)
{
	char e[40], digits[24];
	int p, exp10, nd = 0;
	size_t o = 0;

	if (!isfinite(v))
		return (size_t)snprintf(buf, len, "%s", isnan(v) ? "nan" : v < 0 ? "-inf" : "inf");
	for (p = 1; p <= 17; p++) {
		snprintf(e, sizeof(e), "%.*e", p - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	/* e is "-d.ddde+XX" */
	const char *q = e;
	if (*q == '-') {
		buf[o++] = '-';
		q++;
	}
	for (; *q && *q != 'e'; q++)
		if (*q != '.')
			digits[nd++] = *q;
	exp10 = atoi(q + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	if (exp10 >= -4 && exp10 < 16) {
		if (exp10 >= nd - 1) {
			memcpy(buf + o, digits, (size_t)nd);
			o += (size_t)nd;
			for (int i = nd - 1; i < exp10; i++)
				buf[o++] = '0';
			memcpy(buf + o, ".0", 2);
			o += 2;
		} else if (exp10 >= 0) {
			memcpy(buf + o, digits, (size_t)exp10 + 1);
			o += (size_t)exp10 + 1;
			buf[o++] = '.';
			memcpy(buf + o, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
			o += (size_t)(nd - exp10 - 1);
		} else {
			buf[o++] = '0';
			buf[o++] = '.';
			for (int i = -1; i > exp10; i--)
				buf[o++] = '0';
			memcpy(buf + o, digits, (size_t)nd);
			o += (size_t)nd;
		}
		buf[o] = 0;
		return o;
	}
	buf[o++] = digits[0];
	if (nd > 1) {
		buf[o++] = '.';
		memcpy(buf + o, digits + 1, (size_t)nd - 1);
		o += (size_t)nd - 1;
	}
	return o + (size_t)snprintf(buf + o, len - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
}

static int put_value(struct render *r, json_t *v, enum bcn_mst_escape esc)
{
	char num[64];
	size_t n;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return put_escaped(r, json_string_value(v), json_string_length(v), esc);
	case JSON_INTEGER: {
		/* by hand: snprintf was a tenth of the render time of an upstream list */
		json_int_t iv = json_integer_value(v);
		unsigned long long u = iv < 0 ? 0ULL - (unsigned long long)iv : (unsigned long long)iv;
		char *p = num + sizeof(num);
		do {
			*--p = (char)('0' + u % 10);
			u /= 10;
		} while (u);
		if (iv < 0)
			*--p = '-';
		return put(r, p, (size_t)(num + sizeof(num) - p)); /* digits need no escape */
	}
	case JSON_REAL:
		n = py_float(json_real_value(v), num, sizeof(num));
		return put_escaped(r, num, n, esc);
	case JSON_TRUE:
		return put_escaped(r, "true", 4, esc);
	case JSON_FALSE:
		return put_escaped(r, "false", 5, esc);
	case JSON_NULL:
		return 0;
	default: {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		int rc;
		if (!s)
			return fail(r, "out of memory while rendering");
		rc = put_escaped(r, s, strlen(s), esc);
		bcn_zfree(s);
		return rc;
	}
	}
}

/* One member of a small object by a walk of its keys in order (cheaper than
 * jansson's hash of the name for the ENDPOINT-sized objects templates walk);
 * the hash for larger ones. */
static json_t *get(json_t *o, const char *name, size_t len)
{
	void *it;

	if (json_object_size(o) > 12)
		return json_object_getn(o, name, len);
	for (it = json_object_iter(o); it; it = json_object_iter_next(o, it)) {
		const char *k = json_object_iter_key(it);
		if (k[0] == name[0] && json_object_iter_key_len(it) == len && memcmp(k, name, len) == 0)
			return json_object_iter_value(it);
	}
	return NULL;
}

/* The slots of section s for ctx: one walk of ctx's keys (or a hash lookup
 * per slot for a large object), stopping once every slot is found. */
static void fill_slots(json_t **slot, json_t *ctx, const struct bcn_mst *t,
		       const struct mst_node *s)
{
	const struct mst_slot *sl = &t->slots[s->slot0];
	size_t ns = s->nslot, found = 0;
	void *it;

	memset(slot, 0, ns * sizeof(*slot));
	if (!ns || !json_is_object(ctx))
		return;
	if (json_object_size(ctx) > 12) {
		for (size_t k = 0; k < ns; k++)
			slot[k] = json_object_getn(ctx, sl[k].name, sl[k].len);
		return;
	}
	for (it = json_object_iter(ctx); it && found < ns; it = json_object_iter_next(ctx, it)) {
		const char *key = json_object_iter_key(it);
		size_t klen = json_object_iter_key_len(it);

		for (size_t k = 0; k < ns; k++) {
			if (sl[k].len == klen && sl[k].name[0] == key[0] && !slot[k] &&
			    memcmp(sl[k].name, key, klen) == 0) {
				slot[k] = json_object_iter_value(it);
				found++;
				break;
			}
		}
	}
}

/* n's name (dotted, NUL-terminated) against the context stack; NULL when absent. */
static json_t *lookup(struct render *r, const struct mst_node *n)
{
	const char *name = n->s, *dot;
	json_t *v = NULL;
	size_t len = n->first, i = r->top;

	if (n->len == 1 && name[0] == '.')
		return r->top ? r->stack[r->top - 1] : NULL;
	dot = len < n->len ? name + len : NULL;
	/* the innermost context's answer is in its slots (absent there: look further out) */
	if (n->slot && i && r->slots[i - 1])
		v = r->slots[--i][n->slot - 1];
	while (!v && i-- > 0) {
		if (json_is_object(r->stack[i]))
			v = get(r->stack[i], name, len);
	}
	while (v && dot) {
		name = dot + 1;
		dot = strchr(name, '.');
		len = dot ? (size_t)(dot - name) : strlen(name);
		v = json_is_object(v) ? get(v, name, len) : NULL;
	}
	return v;
}

/* Python's truth (what pystache tests a section with). */
static bool truthy(json_t *v)
{
	switch (v ? json_typeof(v) : JSON_NULL) {
	case JSON_NULL: case JSON_FALSE:
		return false;
	case JSON_STRING:
		return json_string_length(v) != 0;
	case JSON_INTEGER:
		return json_integer_value(v) != 0;
	case JSON_REAL:
		return json_real_value(v) != 0;
	case JSON_ARRAY:
		return json_array_size(v) != 0;
	case JSON_OBJECT:
		return json_object_size(v) != 0;
	default:
		return true;
	}
}

static int range(struct render *r, const struct bcn_mst *t, size_t from, size_t to);

/*
 * Over a long list the render waits on memory, not on work: an item's keys,
 * values and strings are a dozen small blocks that no longer sit in cache,
 * and walking them is a chain of dependent loads. jansson allocates an item's
 * blocks one after the other as it parses (and the model builds it the same
 * way), so an item spans the addresses from its object to the next item's.
 * While rendering item k we ask the CPU for item k + AHEAD's span (measured
 * on the gap between the two items before it, at most 2 KiB). Where that
 * guess of layout is wrong the prefetch costs a few cycles and nothing else.
 */
#define MST_PREFETCH_AHEAD 2
#define MST_PREFETCH_MAX 2048
/* items (~2 MiB): a shorter list stays in cache, where the loop cost ~4% */
#define MST_PREFETCH_MIN 2048
static inline void prefetch_item(json_t *list, size_t k, size_t len)
{
	const char *a, *b;
	size_t span;

	if (k >= len || k < 1)
		return;
	b = (const char *)json_array_get(list, k);
	a = (const char *)json_array_get(list, k - 1);
	span = b > a && (size_t)(b - a) <= MST_PREFETCH_MAX ? (size_t)(b - a) : 64;
	for (size_t o = 0; o < span; o += 64)
		__builtin_prefetch(b + o);
}

/* Render section s's body (nodes[from..to)) with ctx pushed; its slots
 * live in this frame, so nothing is allocated per item. */
static int push_range(struct render *r, const struct bcn_mst *t, const struct mst_node *s,
		      json_t *ctx, size_t from, size_t to)
{
	json_t *slot[MST_MAX_SLOTS];
	int rc;

	if (r->top == BCN_MST_MAX_DEPTH || r->depth == BCN_MST_MAX_DEPTH)
		return fail(r, "sections or partials nest too deep while rendering");
	fill_slots(slot, ctx, t, s);
	r->slots[r->top] = slot;
	r->stack[r->top++] = ctx;
	r->depth++;
	rc = range(r, t, from, to);
	r->depth--;
	r->top--;
	return rc;
}

static int range(struct render *r, const struct bcn_mst *t, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		const struct mst_node *n = &t->nodes[i];
		json_t *v;

		switch (n->type) {
		case MST_TEXT:
			if (put(r, n->s, n->len) < 0)
				return -1;
			break;
		case MST_VAR: case MST_RAW:
			v = lookup(r, n);
			if (v && put_value(r, v, n->type == MST_VAR ? r->esc : BCN_MST_ESC_NONE) < 0)
				return -1;
			break;
		case MST_SECTION:
			v = lookup(r, n);
			if (truthy(v)) {
				if (json_is_array(v)) {
					size_t k, len = json_array_size(v), start = r->out->len;
					for (k = 0; k < len; k++) {
						if (k == MST_SIZE_AFTER && len >= 4 * MST_SIZE_AFTER)
							presize(r, start, k, len);
						if (len >= MST_PREFETCH_MIN)
							prefetch_item(v, k + MST_PREFETCH_AHEAD, len);
						if (push_range(r, t, n, json_array_get(v, k), i + 1, n->end) < 0)
							return -1;
					}
				} else if (push_range(r, t, n, v, i + 1, n->end) < 0) {
					return -1;
				}
			}
			i = n->end - 1;
			break;
		case MST_INVERTED:
			v = lookup(r, n);
			if (!truthy(v) && range(r, t, i + 1, n->end) < 0)
				return -1;
			i = n->end - 1;
			break;
		case MST_PARTIAL:
			if (!n->partial)
				break;
			if (r->depth == BCN_MST_MAX_DEPTH)
				return fail(r, "sections or partials nest too deep while rendering");
			r->depth++;
			if (range(r, n->partial, 0, n->partial->n) < 0)
				return -1;
			r->depth--;
			break;
		}
	}
	return 0;
}

int bcn_mst_render(const struct bcn_mst *t, json_t *data, enum bcn_mst_escape esc,
		   struct bcn_mst_out *out, char *err, size_t errlen)
{
	struct render r = { .esc = esc, .out = out, .err = err, .errlen = errlen };

	if (errlen)
		err[0] = 0;
	if (data)
		r.stack[r.top++] = data; /* r.slots[0] NULL: the root has none */
	if (reserve(&r, 0) < 0)
		return -1;
	return range(&r, t, 0, t->n);
}
