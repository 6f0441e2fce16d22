/*
 * endpoint.c - see endpoint.h.
 *
 * Building an endpoint is the only costly step: fields are validated, the
 * SPEC JSON is rendered once with jansson, and everything is copied into a
 * single allocation (struct, tag pointers, strings, JSON) so the cache can
 * hold thousands of them with one free() each and no ownership questions.
 * "status" is rendered last on purpose: a status change (the common update
 * from health checks) reuses the rendered bytes before it instead of
 * rebuilding the JSON, because the struct does not keep the meta object.
 */
#include "store/endpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds keep one endpoint's allocation small whatever a registry holds. */
enum { MAX_STR = 1024, MAX_TAGS = 64, MAX_ID = MAX_STR + sizeof(":65535") };

static const char ERR_NOMEM[] = "Out of memory while building an endpoint.";

static const char *const status_names[] = { "passing", "warning", "critical" };

const char *bcn_status_name(enum bcn_status st)
{
	return (unsigned)st <= BCN_CRITICAL ? status_names[st] : "unknown";
}

int bcn_status_parse(const char *s, enum bcn_status *out)
{
	for (unsigned i = 0; s && i <= BCN_CRITICAL; i++) {
		if (strcmp(s, status_names[i]) == 0) {
			*out = (enum bcn_status)i;
			return 0;
		}
	}
	return -1;
}

int bcn_endpoint_has_tag(const struct bcn_endpoint *e, const char *tag)
{
	for (size_t i = 0; e && tag && i < e->ntags; i++) {
		if (strcmp(e->tags[i], tag) == 0)
			return 1;
	}
	return 0;
}

/* ---- validation ---- */

/* Present, non-empty and bounded; C strings cannot hold NUL, so that is all. */
static int str_ok(const char *s)
{
	return s && *s && strnlen(s, MAX_STR + 1) <= MAX_STR;
}

/* jansson strings may embed NUL bytes, which the C side would silently cut. */
static int jstr_ok(const char *s, size_t len)
{
	return len <= MAX_STR && strlen(s) == len;
}

static const char *check_tags(const struct bcn_endpoint_spec *s)
{
	if (s->ntags > MAX_TAGS)
		return "An endpoint has at most 64 tags.";
	if (s->ntags && !s->tags)
		return "Endpoint tags are missing although ntags is not 0.";
	for (size_t i = 0; i < s->ntags; i++) {
		if (!str_ok(s->tags[i]))
			return "Endpoint tags must be non-empty strings of at most 1024 bytes.";
	}
	return NULL;
}

static const char *check_meta(json_t *meta)
{
	const char *key;
	size_t key_len;
	json_t *v;

	if (!meta)
		return NULL;
	if (!json_is_object(meta))
		return "Endpoint meta must be an object of strings.";
	json_object_keylen_foreach(meta, key, key_len, v) {
		if (!jstr_ok(key, key_len))
			return "Endpoint meta keys must be at most 1024 bytes without NUL.";
		if (!json_is_string(v))
			return "Endpoint meta values must be strings.";
		if (!jstr_ok(json_string_value(v), json_string_length(v)))
			return "Endpoint meta values must be at most 1024 bytes without NUL.";
	}
	return NULL;
}

static const char *check_spec(const struct bcn_endpoint_spec *s)
{
	if (!s)
		return "No endpoint was given.";
	if (!str_ok(s->service))
		return "Endpoint service must be a non-empty string of at most 1024 bytes.";
	if (!str_ok(s->address))
		return "Endpoint address must be a non-empty string of at most 1024 bytes.";
	if (s->id && *s->id && !str_ok(s->id))
		return "Endpoint id must be at most 1024 bytes.";
	if (s->port < 1 || s->port > 65535)
		return "Endpoint port must be an integer from 1 to 65535.";
	if (s->weight < 0 || s->weight > 65535)
		return "Endpoint weight must be an integer from 1 to 65535 (0 means 1).";
	if ((unsigned)s->status > BCN_CRITICAL)
		return "Endpoint status must be passing, warning or critical.";
	const char *err = check_tags(s);
	return err ? err : check_meta(s->meta);
}

/* ---- rendering ---- */

/* json_string() fails on bad UTF-8 and on no memory; tell them apart for the message. */
static json_t *utf8_string(const char *s, const char *bad_utf8, const char **err)
{
	json_t *v = json_string(s);

	if (v)
		return v;
	v = json_string_nocheck(s);
	*err = v ? bad_utf8 : ERR_NOMEM;
	json_decref(v);
	return NULL;
}

static json_t *render_tags(const struct bcn_endpoint_spec *s, const char **err)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < s->ntags; i++) {
		json_t *t = utf8_string(s->tags[i], "Endpoint tags must be valid UTF-8.", err);
		if (json_array_append_new(arr, t)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/*
 * The ENDPOINT JSON without its status member and closing brace: compact, keys
 * in SPEC order, UTF-8 kept as is. Returns a jansson-allocated string.
 */
static char *render_head(const struct bcn_endpoint_spec *s, const char *id, int default_id,
			 uint32_t weight, const char **err)
{
	json_t *root = json_object();
	char *out = NULL;

	*err = NULL;
	if (!root ||
	    json_object_set_new(root, "id", utf8_string(id, default_id ?
				"Endpoint address must be valid UTF-8." :
				"Endpoint id must be valid UTF-8.", err)) ||
	    json_object_set_new(root, "service", utf8_string(s->service,
				"Endpoint service must be valid UTF-8.", err)) ||
	    json_object_set_new(root, "address", utf8_string(s->address,
				"Endpoint address must be valid UTF-8.", err)) ||
	    json_object_set_new(root, "port", json_integer(s->port)) ||
	    json_object_set_new(root, "tags", render_tags(s, err)) ||
	    json_object_set_new(root, "meta", s->meta ? json_incref(s->meta) : json_object()) ||
	    json_object_set_new(root, "weight", json_integer(weight)))
		goto out;
	out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	if (!out && !*err)
		*err = ERR_NOMEM;
	json_decref(root);
	if (out)
		out[strlen(out) - 1] = '\0'; /* drop "}": pack() appends the status */
	return out;
}

/* ---- the single allocation ---- */

/* Everything pack() copies; json_head is the rendered JSON up to the status member. */
struct parts {
	const char *id, *service, *address;
	const char *const *tags;
	size_t ntags;
	const char *json_head;
	size_t head_len;
	uint32_t weight;
	uint16_t port;
	uint8_t status, src;
};

static const char STATUS_FMT[] = ",\"status\":\"%s\"}";

static size_t status_tail_len(enum bcn_status st)
{
	return sizeof(STATUS_FMT) - 1 - 2 + strlen(bcn_status_name(st));
}

static char *put_str(char **cur, const char *s, size_t len)
{
	char *start = *cur;

	memcpy(start, s, len);
	start[len] = '\0';
	*cur += len + 1;
	return start;
}

static struct bcn_endpoint *pack(const struct parts *p)
{
	size_t id_len = strlen(p->id), svc_len = strlen(p->service);
	size_t addr_len = strlen(p->address), tail_len = status_tail_len(p->status);
	size_t size = sizeof(struct bcn_endpoint) + p->ntags * sizeof(char *) +
		      id_len + svc_len + addr_len + 3 + p->head_len + tail_len + 1;

	for (size_t i = 0; i < p->ntags; i++)
		size += strlen(p->tags[i]) + 1;

	struct bcn_endpoint *e = malloc(size);
	if (!e)
		return NULL;
	/* The struct's size is a multiple of its (pointer) alignment, so the array fits. */
	const char **tags = (const char **)(e + 1);
	char *cur = (char *)(tags + p->ntags);

	*e = (struct bcn_endpoint){
		.id = put_str(&cur, p->id, id_len),
		.service = put_str(&cur, p->service, svc_len),
		.address = put_str(&cur, p->address, addr_len),
		.tags = tags,
		.id_hash = bcn_hash64(p->id, id_len),
		.weight = p->weight,
		.port = p->port,
		.ntags = (uint16_t)p->ntags,
		.status = p->status,
		.src = p->src,
	};
	for (size_t i = 0; i < p->ntags; i++)
		tags[i] = put_str(&cur, p->tags[i], strlen(p->tags[i]));
	e->json = cur;
	memcpy(cur, p->json_head, p->head_len);
	sprintf(cur + p->head_len, STATUS_FMT, bcn_status_name(p->status));
	e->json_len = p->head_len + tail_len;
	return e;
}

/* ---- public constructors ---- */

struct bcn_endpoint *bcn_endpoint_new(const struct bcn_endpoint_spec *s, const char **err)
{
	const char *unused;
	char id_buf[MAX_ID];

	if (!err)
		err = &unused;
	*err = check_spec(s);
	if (*err)
		return NULL;

	int default_id = !s->id || !*s->id;
	const char *id = s->id;
	if (default_id) {
		snprintf(id_buf, sizeof(id_buf), "%s:%u", s->address, (unsigned)s->port);
		id = id_buf;
	}
	uint32_t weight = s->weight ? (uint32_t)s->weight : 1;
	char *head = render_head(s, id, default_id, weight, err);
	if (!head)
		return NULL;

	struct parts p = {
		.id = id, .service = s->service, .address = s->address,
		.tags = s->tags, .ntags = s->ntags,
		.json_head = head, .head_len = strlen(head),
		.weight = weight, .port = (uint16_t)s->port, .status = (uint8_t)s->status,
	};
	struct bcn_endpoint *e = pack(&p);
	json_free_t jfree;
	json_get_alloc_funcs(NULL, &jfree); /* the agent may install a zeroing allocator */
	jfree(head);
	if (!e)
		*err = ERR_NOMEM;
	return e;
}

struct bcn_endpoint *bcn_endpoint_with_status(const struct bcn_endpoint *e, enum bcn_status st)
{
	if (!e || (unsigned)st > BCN_CRITICAL)
		return NULL;
	struct parts p = {
		.id = e->id, .service = e->service, .address = e->address,
		.tags = e->tags, .ntags = e->ntags,
		.json_head = e->json,
		.head_len = e->json_len - status_tail_len((enum bcn_status)e->status),
		.weight = e->weight, .port = e->port, .status = (uint8_t)st, .src = e->src,
	};
	return pack(&p);
}

/* ---- from registry JSON ---- */

/* Messages name the offending key; one buffer suffices in the single-threaded agent. */
static const char *type_error(const char *key, const char *want)
{
	static char buf[96];

	snprintf(buf, sizeof(buf), "Endpoint \"%s\" must be %s.", key, want);
	return buf;
}

/* A JSON null counts as absent: Go-written registries emit null for empty slices/maps. */
static json_t *member(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

static int get_string(const json_t *obj, const char *key, int required, const char **out,
		      const char **err)
{
	json_t *v = member(obj, key);

	if (!v && !required)
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		*err = type_error(key, "a string without NUL bytes");
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

static int get_integer(const json_t *obj, const char *key, int required, int64_t *out,
		       const char **err)
{
	json_t *v = member(obj, key);

	if (!v && !required)
		return 0;
	if (!json_is_integer(v)) {
		*err = type_error(key, "an integer");
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

static int get_tags(const json_t *obj, const char **tags, size_t *ntags, const char **err)
{
	json_t *arr = member(obj, "tags"), *v;
	size_t i;

	if (!arr)
		return 0;
	if (!json_is_array(arr)) {
		*err = type_error("tags", "an array of strings");
		return -1;
	}
	if (json_array_size(arr) > MAX_TAGS) {
		*err = "An endpoint has at most 64 tags.";
		return -1;
	}
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
			*err = type_error("tags", "an array of strings without NUL bytes");
			return -1;
		}
		tags[i] = json_string_value(v);
	}
	*ntags = json_array_size(arr);
	return 0;
}

static int get_status(const json_t *obj, enum bcn_status *out, const char **err)
{
	const char *name = NULL;

	if (get_string(obj, "status", 0, &name, err))
		return -1;
	if (name && bcn_status_parse(name, out)) {
		*err = "Endpoint status must be passing, warning or critical.";
		return -1;
	}
	return 0;
}

struct bcn_endpoint *bcn_endpoint_from_json(const json_t *obj, const char *service,
					    const char **err)
{
	const char *unused, *tags[MAX_TAGS];
	struct bcn_endpoint_spec s = { .status = BCN_PASSING, .tags = tags };

	if (!err)
		err = &unused;
	if (!json_is_object(obj)) {
		*err = "An endpoint must be a JSON object.";
		return NULL;
	}
	/* Values are type-checked here; ranges and lengths are bcn_endpoint_new's job. */
	if (get_string(obj, "address", 1, &s.address, err) ||
	    get_integer(obj, "port", 1, &s.port, err) ||
	    get_string(obj, "id", 0, &s.id, err) ||
	    get_string(obj, "service", 0, &s.service, err) ||
	    get_tags(obj, tags, &s.ntags, err) ||
	    get_integer(obj, "weight", 0, &s.weight, err) ||
	    get_status(obj, &s.status, err))
		return NULL;
	s.meta = member(obj, "meta");
	if (s.meta && !json_is_object(s.meta)) {
		*err = type_error("meta", "an object of strings");
		return NULL;
	}
	if (service)
		s.service = service;
	return bcn_endpoint_new(&s, err);
}
