/*
 * cfgmap.c - see cfgmap.h. Each object is walked in three passes: reset every
 * field, so `out` can be released whatever happens next; convert the keys that
 * are present, in document order, so problems (unknown keys included) come out
 * in the order the user reads the file; then give the absent keys their
 * defaults. A problem never stops the walk, because `--check-config` should
 * show all of them at once: a field that fails is simply left empty.
 *
 * Paths: a key that is an identifier ([A-Za-z_][A-Za-z0-9_]*) is written
 * `$.a.b`; any other key uses the JSONPath bracket form with JSON string
 * escapes, `$.static.services["legacy-db"]`; an array element is `$.a.b[2]`.
 * Values and keys quoted in messages are cut after 40 characters with "...",
 * so one bad value cannot flood a terminal or a log line.
 */
#include "config/cfgmap.h"
#include "config/cfgtext.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


/* Go's time.Duration limit: every accepted duration converts to ns without overflow. */
#define DURATION_MAX_MS (INT64_MAX / 1000000)

#define EXPECT_DURATION "a duration string such as \"10s\""
#define EXPECT_MODE "an octal file mode string such as \"0660\""

static const char ERR_OOM[] = "out of memory";

bool bcn_strlist_has(const struct bcn_strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i], s) == 0)
			return true;
	}
	return false;
}

/* ---- problems ---------------------------------------------------------- */

static char *vformat(const char *fmt, va_list ap)
{
	va_list aq;
	char *s;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (s)
		vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = vformat(fmt, ap);
	va_end(ap);
	return s;
}

/* Takes ownership of msg. Out of memory drops the message; the caller's
 * problem count still says that something went wrong. */
static void list_push(char ***v, size_t *n, char *msg)
{
	char **grown;

	if (!msg)
		return;
	grown = realloc(*v, (*n + 1) * sizeof(*grown));
	if (!grown) {
		free(msg);
		return;
	}
	*v = grown;
	(*v)[(*n)++] = msg;
}

static void errs_push(struct bcn_cfg_errs *e, char *msg)
{
	if (e)
		list_push(&e->msg, &e->n, msg);
	else
		free(msg);
}

/* "path: text" (or text alone), malloc'd; NULL when out of memory. */
static char *with_path(const char *path, const char *fmt, va_list ap)
{
	char *text = vformat(fmt, ap), *s;

	if (!text || !path || !*path)
		return text;
	s = format("%s: %s", path, text);
	free(text);
	return s;
}

void bcn_cfg_err(struct bcn_cfg_errs *e, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errs_push(e, with_path(path, fmt, ap));
	va_end(ap);
}

void bcn_cfg_warn(struct bcn_cfg_errs *e, const char *path, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = with_path(path, fmt, ap);
	va_end(ap);
	if (e)
		list_push(&e->warn, &e->nwarn, msg);
	else
		free(msg);
}

void bcn_cfg_errs_free(struct bcn_cfg_errs *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->msg[i]);
	free(e->msg);
	e->msg = NULL;
	e->n = 0;
	for (size_t i = 0; i < e->nwarn; i++)
		free(e->warn[i]);
	free(e->warn);
	e->warn = NULL;
	e->nwarn = 0;
}

/* The walk's state: problems are counted here, not read back from errs, so a
 * message lost to out-of-memory still makes bcn_cfg_fill report failure. */
struct walk {
	struct bcn_cfg_errs *errs;
	size_t problems;
};

static void problem(struct walk *w, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(struct walk *w, const char *path, const char *fmt, ...)
{
	va_list ap;
	char *text;

	w->problems++;
	va_start(ap, fmt);
	text = vformat(fmt, ap);
	va_end(ap);
	if (text)
		bcn_cfg_err(w->errs, path, "%s", text);
	free(text);
}

/* ---- scalar conversions ------------------------------------------------- */

static void wrong_type(struct walk *w, const char *path, const char *expected, const json_t *v)
{
	char d[BCN_CFG_DESC_LEN];

	problem(w, path, "expected %s, got %s", expected, bcn_cfg_describe(v, d, sizeof(d)));
}

/* Expanded copy of the JSON string v, or NULL once the problem is recorded. */
static char *expand_at(struct walk *w, const json_t *v, const char *path)
{
	const char *err = ERR_OOM;
	char *s = bcn_expand_env(json_string_value(v), &err);

	if (!s)
		problem(w, path, "%s", err);
	return s;
}

/* The whole string is a decimal integer: no blanks, no '+', no trailing text. */
static bool parse_int64(const char *s, int64_t *out)
{
	const char *digits = *s == '-' ? s + 1 : s;
	char *end;
	long long v;

	if (*digits < '0' || *digits > '9')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static bool parse_mode(const char *s, unsigned *out)
{
	unsigned v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '7')
			return false;
		v = v * 8 + (unsigned)(*s - '0');
		if (v > 07777)
			return false;
	}
	*out = v;
	return true;
}

static bool in_range(const struct bcn_cfg_field *f, int64_t v)
{
	return (f->min == 0 && f->max == 0) || (v >= f->min && v <= f->max);
}

/* A half-open table range (INT64_MIN or INT64_MAX) reads as "at least"/"at most". */
static const char *int_range(const struct bcn_cfg_field *f, char *buf, size_t len)
{
	if (f->max == INT64_MAX)
		snprintf(buf, len, "of at least %" PRId64, f->min);
	else if (f->min == INT64_MIN)
		snprintf(buf, len, "of at most %" PRId64, f->max);
	else
		snprintf(buf, len, "from %" PRId64 " to %" PRId64, f->min, f->max);
	return buf;
}

static const char *duration_range(const struct bcn_cfg_field *f, char *buf, size_t len)
{
	char lo[32], hi[32];

	bcn_duration_format(f->min < 0 ? 0 : (uint64_t)f->min, lo, sizeof(lo));
	bcn_duration_format(f->max < 0 ? 0 : (uint64_t)f->max, hi, sizeof(hi));
	if (f->max >= DURATION_MAX_MS)
		snprintf(buf, len, "of at least \"%s\"", lo);
	else
		snprintf(buf, len, "from \"%s\" to \"%s\"", lo, hi);
	return buf;
}

static void conv_str(struct walk *w, const struct bcn_cfg_field *f, const json_t *v,
		     char **slot, const char *path)
{
	char d[BCN_CFG_DESC_LEN];
	char *s;

	if (!json_is_string(v)) {
		wrong_type(w, path, "a string", v);
		return;
	}
	s = expand_at(w, v, path);
	if (s && (f->flags & BCN_CFG_NONEMPTY) && !*s) {
		problem(w, path, "expected a non-empty string, got %s",
			bcn_cfg_describe_expanded(v, s, d, sizeof(d)));
		free(s);
		s = NULL;
	}
	*slot = s;
}

static void conv_int(struct walk *w, const struct bcn_cfg_field *f, const json_t *v,
		     int64_t *slot, const char *path)
{
	char d[BCN_CFG_DESC_LEN];
	int64_t n;

	if (json_is_integer(v)) {
		n = json_integer_value(v);
	} else if (json_is_string(v)) {
		char *s = expand_at(w, v, path);
		bool ok = s && parse_int64(s, &n);

		if (s && !ok)
			problem(w, path, "expected an integer, got %s",
				bcn_cfg_describe_expanded(v, s, d, sizeof(d)));
		free(s);
		if (!ok)
			return;
	} else {
		wrong_type(w, path, "an integer", v);
		return;
	}
	if (!in_range(f, n)) {
		problem(w, path, "expected an integer %s, got %" PRId64,
			int_range(f, d, sizeof(d)), n);
		return;
	}
	*slot = n;
}

static bool all_digits(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s);
}

static void conv_duration(struct walk *w, const struct bcn_cfg_field *f, const json_t *v,
			  uint64_t *slot, const char *path)
{
	char d[BCN_CFG_DESC_LEN], got[32];
	uint64_t ms;
	char *s;
	int rc;

	if (!json_is_string(v)) {
		wrong_type(w, path, EXPECT_DURATION, v);
		return;
	}
	s = expand_at(w, v, path);
	if (!s)
		return;
	rc = bcn_duration_parse(s, &ms);
	if (rc != 0)
		problem(w, path, "expected " EXPECT_DURATION ", got %s%s",
			bcn_cfg_describe_expanded(v, s, d, sizeof(d)),
			all_digits(s) ? " (add a unit: ms, s, m or h)" : "");
	free(s);
	if (rc != 0)
		return;
	/* ms <= DURATION_MAX_MS, so it fits the table's int64_t limits. */
	if (!in_range(f, (int64_t)ms)) {
		bcn_duration_format(ms, got, sizeof(got));
		problem(w, path, "expected a duration %s, got \"%s\"",
			duration_range(f, d, sizeof(d)), got);
		return;
	}
	*slot = ms;
}

static void conv_mode(struct walk *w, const json_t *v, unsigned *slot, const char *path)
{
	char d[BCN_CFG_DESC_LEN];
	unsigned mode;
	char *s;

	if (!json_is_string(v)) {
		wrong_type(w, path, EXPECT_MODE, v);
		return;
	}
	s = expand_at(w, v, path);
	if (!s)
		return;
	if (parse_mode(s, &mode))
		*slot = mode;
	else
		problem(w, path, "expected " EXPECT_MODE ", got %s",
			bcn_cfg_describe_expanded(v, s, d, sizeof(d)));
	free(s);
}

/* ---- containers --------------------------------------------------------- */

static void fill_object(struct walk *w, const struct bcn_cfg_field *table, json_t *obj,
			char *base, const char *path);

static void conv_strlist(struct walk *w, const struct bcn_cfg_field *f, const json_t *v,
			 struct bcn_strlist *l, const char *path)
{
	char ep[BCN_CFG_PATH_LEN], d[BCN_CFG_DESC_LEN];
	size_t n = json_array_size(v);

	if (!json_is_array(v)) {
		wrong_type(w, path, "an array of strings", v);
		return;
	}
	if (n == 0) {
		if (f->flags & BCN_CFG_NONEMPTY)
			problem(w, path, "expected a non-empty array of strings, got an empty array");
		return;
	}
	/* One slot more than needed: v stays NULL-terminated, ready for execvp. */
	l->v = calloc(n + 1, sizeof(*l->v));
	if (!l->v) {
		problem(w, path, "%s", ERR_OOM);
		return;
	}
	l->n = n;
	for (size_t i = 0; i < n; i++) {
		const json_t *el = json_array_get(v, i);
		char *s;

		bcn_cfg_path_index(ep, path, i);
		if (!json_is_string(el)) {
			wrong_type(w, ep, "a string", el);
			continue;
		}
		s = expand_at(w, el, ep);
		if (s && (f->flags & BCN_CFG_NONEMPTY) && !*s) {
			problem(w, ep, "expected a non-empty string, got %s",
				bcn_cfg_describe_expanded(el, s, d, sizeof(d)));
			free(s);
			s = NULL;
		}
		l->v[i] = s;
	}
}

static void strmap_put(struct walk *w, json_t *map, const char *key, const json_t *v,
		       const char *path)
{
	json_t *js;
	char *s;

	if (!json_is_string(v)) {
		wrong_type(w, path, "a string", v);
		return;
	}
	s = expand_at(w, v, path);
	if (!s)
		return;
	js = json_string(s);
	free(s);
	if (!js)
		problem(w, path, "the value is not valid UTF-8 after expanding ${VAR}; "
				 "check the variables it uses");
	else if (json_object_set_new(map, key, js) != 0)
		problem(w, path, "%s", ERR_OOM);
}

static void conv_strmap(struct walk *w, const struct bcn_cfg_field *f, json_t *v,
			json_t **slot, const char *path)
{
	char kp[BCN_CFG_PATH_LEN];
	const char *key;
	json_t *el;

	if (!json_is_object(v)) {
		wrong_type(w, path, "an object with string values", v);
		return;
	}
	if (json_object_size(v) == 0 && (f->flags & BCN_CFG_NONEMPTY)) {
		problem(w, path, "expected a non-empty object with string values, got an empty object");
		return;
	}
	*slot = json_object();
	if (!*slot) {
		problem(w, path, "%s", ERR_OOM);
		return;
	}
	json_object_foreach(v, key, el) {
		bcn_cfg_path_key_at(kp, path, key);
		strmap_put(w, *slot, key, el, kp);
	}
}

static void conv_objptr(struct walk *w, const struct bcn_cfg_field *f, json_t *v,
			void **slot, const char *path)
{
	if (!json_is_object(v)) {
		wrong_type(w, path, "an object", v);
		return;
	}
	*slot = calloc(1, f->sub_size);
	if (!*slot) {
		problem(w, path, "%s", ERR_OOM);
		return;
	}
	fill_object(w, f->sub, v, *slot, path);
}

static void conv_objlist(struct walk *w, const struct bcn_cfg_field *f, json_t *v,
			 struct bcn_objlist *l, const char *path)
{
	char ep[BCN_CFG_PATH_LEN];
	size_t n = json_array_size(v);

	if (!json_is_array(v)) {
		wrong_type(w, path, "an array of objects", v);
		return;
	}
	if (n == 0) {
		if (f->flags & BCN_CFG_NONEMPTY)
			problem(w, path, "expected a non-empty array of objects, got an empty array");
		return;
	}
	/* calloc: an element that is not an object stays all-zero, which is
	 * exactly the reset state bcn_cfg_free expects. */
	l->v = calloc(n, f->sub_size);
	if (!l->v) {
		problem(w, path, "%s", ERR_OOM);
		return;
	}
	l->n = n;
	for (size_t i = 0; i < n; i++) {
		json_t *el = json_array_get(v, i);

		bcn_cfg_path_index(ep, path, i);
		if (json_is_object(el))
			fill_object(w, f->sub, el, (char *)l->v + i * f->sub_size, ep);
		else
			wrong_type(w, ep, "an object", el);
	}
}

/* Convert a value present in the config (or a default) into the field. */
static void convert(struct walk *w, const struct bcn_cfg_field *f, json_t *v, char *base,
		    const char *path)
{
	void *slot = base + f->offset;

	switch (f->type) {
	case BCN_CFG_STR: conv_str(w, f, v, slot, path); break;
	case BCN_CFG_INT: conv_int(w, f, v, slot, path); break;
	case BCN_CFG_BOOL:
		if (json_is_boolean(v))
			*(bool *)slot = json_is_true(v);
		else
			wrong_type(w, path, "true or false", v);
		break;
	case BCN_CFG_DURATION: conv_duration(w, f, v, slot, path); break;
	case BCN_CFG_MODE: conv_mode(w, v, slot, path); break;
	case BCN_CFG_STRLIST: conv_strlist(w, f, v, slot, path); break;
	case BCN_CFG_STRMAP: conv_strmap(w, f, v, slot, path); break;
	case BCN_CFG_OBJECT:
		if (json_is_object(v))
			fill_object(w, f->sub, v, slot, path);
		else
			wrong_type(w, path, "an object", v);
		break;
	case BCN_CFG_OBJPTR: conv_objptr(w, f, v, slot, path); break;
	case BCN_CFG_OBJLIST: conv_objlist(w, f, v, slot, path); break;
	case BCN_CFG_JSON: *(json_t **)slot = json_incref(v); break;
	}
}

/* ---- walking a table ---------------------------------------------------- */

static const struct bcn_cfg_field no_fields[] = { { .key = NULL } };

/* Empty every field without freeing: `out` may hold garbage on entry. */
static void reset_table(const struct bcn_cfg_field *table, char *base)
{
	for (const struct bcn_cfg_field *f = table ? table : no_fields; f->key; f++) {
		void *slot = base + f->offset;

		switch (f->type) {
		case BCN_CFG_STR: *(char **)slot = NULL; break;
		case BCN_CFG_INT: *(int64_t *)slot = 0; break;
		case BCN_CFG_BOOL: *(bool *)slot = false; break;
		case BCN_CFG_DURATION: *(uint64_t *)slot = 0; break;
		case BCN_CFG_MODE: *(unsigned *)slot = 0; break;
		case BCN_CFG_STRLIST: *(struct bcn_strlist *)slot = (struct bcn_strlist){ 0 }; break;
		case BCN_CFG_OBJECT: reset_table(f->sub, slot); break;
		case BCN_CFG_OBJLIST: *(struct bcn_objlist *)slot = (struct bcn_objlist){ 0 }; break;
		case BCN_CFG_STRMAP:
		case BCN_CFG_JSON: *(json_t **)slot = NULL; break;
		case BCN_CFG_OBJPTR: *(void **)slot = NULL; break;
		}
	}
}

static const struct bcn_cfg_field *find_field(const struct bcn_cfg_field *table, const char *key)
{
	for (const struct bcn_cfg_field *f = table; f->key; f++)
		if (strcmp(f->key, key) == 0)
			return f;
	return NULL;
}

static void unknown_key(struct walk *w, const struct bcn_cfg_field *table, const char *key,
			const char *path)
{
	const char *near = bcn_cfg_suggest(table, key);
	char q[BCN_CFG_QUOTE_LEN];

	if (near)
		problem(w, path, "unknown key %s (did you mean \"%s\"?)", bcn_cfg_quote(key, q, sizeof(q)),
			near);
	else
		problem(w, path, "unknown key %s", bcn_cfg_quote(key, q, sizeof(q)));
}

/* Defaults are written as in the config: scalars in their string form (so
 * "${HOSTNAME}" and "10s" work), structured types as JSON text ("[\"a\"]"). A
 * bad default is a bug in the table; "(default)" in the path says so. */
static void apply_default(struct walk *w, const struct bcn_cfg_field *f, char *base,
			  const char *path)
{
	char dpath[BCN_CFG_PATH_LEN + sizeof(" (default)")];
	json_error_t jerr;
	json_t *d;

	snprintf(dpath, sizeof(dpath), "%s (default)", path);
	switch (f->type) {
	case BCN_CFG_STR:
	case BCN_CFG_INT:
	case BCN_CFG_DURATION:
	case BCN_CFG_MODE:
		d = json_string(f->def);
		snprintf(jerr.text, sizeof(jerr.text), "not valid UTF-8");
		break;
	default:
		d = json_loads(f->def, JSON_DECODE_ANY, &jerr);
		break;
	}
	if (!d) {
		problem(w, dpath, "the field table's default is invalid: %s", jerr.text);
		return;
	}
	convert(w, f, d, base, dpath);
	json_decref(d);
}

static void fill_absent(struct walk *w, const struct bcn_cfg_field *f, char *base,
			const char *path)
{
	char **str = (char **)(base + f->offset);

	if (f->flags & BCN_CFG_REQUIRED) {
		if (f->desc)
			problem(w, path, "missing required key (%s)", f->desc);
		else
			problem(w, path, "missing required key");
	} else if (f->def) {
		apply_default(w, f, base, path);
	} else if (f->type == BCN_CFG_STR) {
		*str = strdup("");
		if (!*str)
			problem(w, path, "%s", ERR_OOM);
	} else if (f->type == BCN_CFG_OBJECT) {
		fill_object(w, f->sub, NULL, base + f->offset, path);
	}
}

static void fill_object(struct walk *w, const struct bcn_cfg_field *table, json_t *obj,
			char *base, const char *path)
{
	char kp[BCN_CFG_PATH_LEN];
	const char *key;
	json_t *v;

	if (!table)
		table = no_fields;
	reset_table(table, base);
	if (obj) {
		json_object_foreach(obj, key, v) {
			const struct bcn_cfg_field *f = find_field(table, key);

			bcn_cfg_path_key_at(kp, path, key);
			if (f)
				convert(w, f, v, base, kp);
			else
				unknown_key(w, table, key, kp);
		}
	}
	for (const struct bcn_cfg_field *f = table; f->key; f++) {
		if (!obj || !json_object_get(obj, f->key)) {
			bcn_cfg_path_key_at(kp, path, f->key);
			fill_absent(w, f, base, kp);
		}
	}
}

/* `out` is overwritten, never freed first: on reload, fill a fresh struct and
 * bcn_cfg_free the old one once nothing uses it. */
size_t bcn_cfg_fill(const struct bcn_cfg_field *table, json_t *obj, void *out,
		    const char *path, struct bcn_cfg_errs *errs)
{
	struct walk w = { .errs = errs };

	if (!path)
		path = "$";
	if (!out) {
		problem(&w, path, "nothing to fill (a NULL struct was given)");
	} else if (obj && !json_is_object(obj)) {
		reset_table(table, out);
		wrong_type(&w, path, "an object", obj);
	} else {
		fill_object(&w, table, obj, out, path);
	}
	return w.problems;
}

/* ---- releasing ---------------------------------------------------------- */

static void free_field(const struct bcn_cfg_field *f, void *slot)
{
	switch (f->type) {
	case BCN_CFG_STR:
		free(*(char **)slot);
		*(char **)slot = NULL;
		break;
	case BCN_CFG_STRLIST: {
		struct bcn_strlist *l = slot;

		for (size_t i = 0; i < l->n; i++)
			free(l->v[i]);
		free(l->v);
		*l = (struct bcn_strlist){ 0 };
		break;
	}
	case BCN_CFG_STRMAP:
	case BCN_CFG_JSON:
		json_decref(*(json_t **)slot);
		*(json_t **)slot = NULL;
		break;
	case BCN_CFG_OBJECT:
		bcn_cfg_free(f->sub, slot);
		break;
	case BCN_CFG_OBJPTR:
		bcn_cfg_free(f->sub, *(void **)slot);
		free(*(void **)slot);
		*(void **)slot = NULL;
		break;
	case BCN_CFG_OBJLIST: {
		struct bcn_objlist *l = slot;

		for (size_t i = 0; i < l->n; i++)
			bcn_cfg_free(f->sub, (char *)l->v + i * f->sub_size);
		free(l->v);
		*l = (struct bcn_objlist){ 0 };
		break;
	}
	case BCN_CFG_INT:
	case BCN_CFG_BOOL:
	case BCN_CFG_DURATION:
	case BCN_CFG_MODE:
		break;
	}
}

void bcn_cfg_free(const struct bcn_cfg_field *table, void *out)
{
	if (!table || !out)
		return;
	for (const struct bcn_cfg_field *f = table; f->key; f++)
		free_field(f, (char *)out + f->offset);
}

/* ---- restart-only keys ------------------------------------------------------ */

static bool str_equal(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool table_equal(const struct bcn_cfg_field *table, const char *a, const char *b);

static bool field_equal(const struct bcn_cfg_field *f, const char *a, const char *b)
{
	const void *x = a + f->offset, *y = b + f->offset;

	switch (f->type) {
	case BCN_CFG_STR: return str_equal(*(char *const *)x, *(char *const *)y);
	case BCN_CFG_INT: return *(const int64_t *)x == *(const int64_t *)y;
	case BCN_CFG_BOOL: return *(const bool *)x == *(const bool *)y;
	case BCN_CFG_DURATION: return *(const uint64_t *)x == *(const uint64_t *)y;
	case BCN_CFG_MODE: return *(const unsigned *)x == *(const unsigned *)y;
	case BCN_CFG_STRLIST: {
		const struct bcn_strlist *l = x, *m = y;

		if (l->n != m->n)
			return false;
		for (size_t i = 0; i < l->n; i++)
			if (!str_equal(l->v[i], m->v[i]))
				return false;
		return true;
	}
	case BCN_CFG_STRMAP:
	case BCN_CFG_JSON: {
		json_t *j = *(json_t *const *)x, *k = *(json_t *const *)y;

		return (!j && !k) || (j && k && json_equal(j, k));
	}
	case BCN_CFG_OBJECT: return table_equal(f->sub, x, y);
	case BCN_CFG_OBJPTR: {
		const char *p = *(char *const *)x, *q = *(char *const *)y;

		return (!p && !q) || (p && q && table_equal(f->sub, p, q));
	}
	case BCN_CFG_OBJLIST: {
		const struct bcn_objlist *l = x, *m = y;

		if (l->n != m->n)
			return false;
		for (size_t i = 0; i < l->n; i++)
			if (!table_equal(f->sub, (const char *)l->v + i * f->sub_size,
					 (const char *)m->v + i * f->sub_size))
				return false;
		return true;
	}
	}
	return false;
}

static bool table_equal(const struct bcn_cfg_field *table, const char *a, const char *b)
{
	for (const struct bcn_cfg_field *f = table; f && f->key; f++)
		if (!field_equal(f, a, b))
			return false;
	return true;
}

static size_t slot_size(enum bcn_cfg_type t)
{
	switch (t) {
	case BCN_CFG_STR: return sizeof(char *);
	case BCN_CFG_INT: return sizeof(int64_t);
	case BCN_CFG_BOOL: return sizeof(bool);
	case BCN_CFG_DURATION: return sizeof(uint64_t);
	case BCN_CFG_MODE: return sizeof(unsigned);
	case BCN_CFG_STRLIST: return sizeof(struct bcn_strlist);
	case BCN_CFG_STRMAP:
	case BCN_CFG_JSON: return sizeof(json_t *);
	case BCN_CFG_OBJPTR: return sizeof(void *);
	case BCN_CFG_OBJLIST: return sizeof(struct bcn_objlist);
	case BCN_CFG_OBJECT: break; /* swapped member by member */
	}
	return 0;
}

/* Exchange one field's value between two structs the same table filled: the
 * pointers move, nothing is copied, so whatever points into the running value
 * (a health check into its service section) stays valid. */
static void swap_field(const struct bcn_cfg_field *f, char *a, char *b)
{
	unsigned char tmp[sizeof(struct bcn_objlist) > sizeof(struct bcn_strlist) ?
				  sizeof(struct bcn_objlist) : sizeof(struct bcn_strlist)];
	size_t n = slot_size(f->type);

	if (f->type == BCN_CFG_OBJECT) {
		for (const struct bcn_cfg_field *s = f->sub; s && s->key; s++)
			swap_field(s, a + f->offset, b + f->offset);
		return;
	}
	memcpy(tmp, a + f->offset, n);
	memcpy(a + f->offset, b + f->offset, n);
	memcpy(b + f->offset, tmp, n);
}

static void keep_table(const struct bcn_cfg_field *table, char *running, char *next,
		       const char *prefix, char *changed, size_t len, size_t *count)
{
	for (const struct bcn_cfg_field *f = table; f && f->key; f++) {
		if (!(f->flags & BCN_CFG_RESTART)) {
			char sub[BCN_CFG_PATH_LEN];

			/* Flagged rows inside an unflagged object ("socket.path"). */
			if (f->type != BCN_CFG_OBJECT)
				continue;
			snprintf(sub, sizeof(sub), "%s%s.", prefix, f->key);
			keep_table(f->sub, running + f->offset, next + f->offset, sub, changed, len, count);
			continue;
		}
		if (!field_equal(f, running, next)) {
			size_t used = strlen(changed);

			snprintf(changed + used, len - used, "%s%s%s", used ? ", " : "", prefix, f->key);
			(*count)++;
		}
		swap_field(f, running, next);
	}
}

size_t bcn_cfg_keep_restart(const struct bcn_cfg_field *table, void *running, void *next,
			    char *changed, size_t len)
{
	size_t count = 0;

	if (len)
		changed[0] = '\0';
	if (running && next && len)
		keep_table(table, running, next, "", changed, len, &count);
	return count;
}

/* ---- loading ------------------------------------------------------------ */

/* "FILE:LINE:COLUMN: text", the shape editors and compilers use to jump there. */
static void parse_error(struct bcn_cfg_errs *errs, const char *file, const json_error_t *jerr)
{
	char *where = NULL;

	if (jerr->line > 0)
		where = format("%s:%d:%d", file, jerr->line, jerr->column);
	bcn_cfg_err(errs, where ? where : file, "%s", jerr->text);
	free(where);
}

json_t *bcn_cfg_load_file(const char *file, struct bcn_cfg_errs *errs)
{
	char d[BCN_CFG_DESC_LEN];
	json_error_t jerr;
	json_t *root = NULL;
	struct stat st;
	FILE *fp;

	if (!file) {
		bcn_cfg_err(errs, NULL, "no config file given");
		return NULL;
	}
	/* "e": O_CLOEXEC, so exec health checks never inherit the descriptor. */
	fp = fopen(file, "re");
	if (!fp) {
		bcn_cfg_err(errs, file, "cannot open: %s", strerror(errno));
		return NULL;
	}
	/* A directory opens fine on Linux and would only fail later as a vague parse error. */
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		bcn_cfg_err(errs, file, "cannot open: %s", strerror(EISDIR));
		goto out;
	}
	/* JSON_DECODE_ANY so a top-level scalar gets our sentence, not jansson's. */
	root = json_loadf(fp, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		parse_error(errs, file, &jerr);
		goto out;
	}
	if (!json_is_object(root)) {
		bcn_cfg_err(errs, file, "expected a JSON object at the top level, got %s",
			    bcn_cfg_describe(root, d, sizeof(d)));
		json_decref(root);
		root = NULL;
	}
out:
	fclose(fp);
	return root;
}
