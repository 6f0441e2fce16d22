/*
 * consul_data.c - Consul's answers as endpoints and config values.
 *
 * /v1/health/service/<name> lists every instance as {Node, Service, Checks}.
 * An instance's status is its worst check (node checks such as serfHealth
 * included): any critical -> critical, else any warning -> warning, else
 * passing; a status word we do not know counts as critical. Its address is
 * Service.Address, or Node.Address when that is empty (Consul's own rule);
 * its weight is Weights.Passing.
 *
 * Service IDs are unique per Consul node, not per cluster, and an ID left
 * out at registration defaults to the service name, so ten nodes commonly
 * carry ten "web" instances. An ID that appears on several nodes in one
 * answer is therefore served as "<id>@<node>"; an ID seen once stays as it is,
 * so the same instance registered in etcd and Consul is still listed once.
 *
 * Everything in an answer is untrusted: an instance that does not make a
 * valid ENDPOINT is skipped with one log line; an answer that is not the
 * expected JSON fails as a whole and the watch retries.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consul.h"

#define MAX_TAGS 64

static const char *str_member(const json_t *obj, const char *name)
{
	return json_string_value(json_object_get(obj, name));
}

static enum bcn_status worst_check(const json_t *checks)
{
	enum bcn_status worst = BCN_PASSING, st;
	const json_t *c;
	size_t i;

	json_array_foreach(checks, i, c) {
		if (bcn_status_parse(str_member(c, "Status") ? str_member(c, "Status") : "", &st) < 0)
			st = BCN_CRITICAL; /* "maintenance" or anything new: not safe to send traffic */
		if (st > worst)
			worst = st;
	}
	return worst;
}

struct instance {
	const json_t *svc;
	const char *id, *node;
	const char *address;
	enum bcn_status status;
	bool shared_id;
};

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct instance *)a)->id, ((const struct instance *)b)->id);
}

/* The fields every instance needs; NULL-free or skipped with a log line. */
static bool read_instance(struct consul_ctx *ctx, const char *service, const json_t *entry,
			  struct instance *in)
{
	const json_t *node = json_object_get(entry, "Node");
	const json_t *checks = json_object_get(entry, "Checks");
	char what[160];

	in->svc = json_object_get(entry, "Service");
	in->id = str_member(in->svc, "ID");
	in->node = str_member(node, "Node");
	if (!in->node)
		in->node = "";
	snprintf(what, sizeof(what), "an instance of %.60s on node \"%.60s\"", service, in->node);
	if (!json_is_object(in->svc)) {
		consul_skip(ctx, what, "it has no Service object");
		return false;
	}
	if (!in->id || !in->id[0]) {
		consul_skip(ctx, what, "its Service.ID is missing or empty");
		return false;
	}
	if (checks && !json_is_array(checks)) {
		consul_skip(ctx, what, "its Checks are not a list");
		return false;
	}
	in->address = str_member(in->svc, "Address");
	if (!in->address || !in->address[0])
		in->address = str_member(node, "Address");
	in->status = worst_check(checks);
	return true;
}

static struct bcn_endpoint *make_endpoint(struct consul_ctx *ctx, const char *service,
					  const struct instance *in)
{
	const json_t *svc = in->svc, *tags = json_object_get(svc, "Tags"), *meta = json_object_get(svc, "Meta");
	const json_t *port = json_object_get(svc, "Port");
	const json_t *passing = json_object_get(json_object_get(svc, "Weights"), "Passing");
	const char *tagv[MAX_TAGS], *err = NULL;
	struct bcn_endpoint_spec spec;
	struct bcn_endpoint *ep;
	char *id = NULL, what[160];
	const json_t *t;
	size_t i;

	snprintf(what, sizeof(what), "instance \"%.60s\" of %.60s", in->id, service);
	if (tags && !json_is_array(tags) && !json_is_null(tags)) {
		consul_skip(ctx, what, "its Tags are not a list");
		return NULL;
	}
	if (json_array_size(tags) > MAX_TAGS) {
		consul_skip(ctx, what, "it has more than %d tags", MAX_TAGS);
		return NULL;
	}
	json_array_foreach(tags, i, t) {
		tagv[i] = json_string_value(t);
		if (!tagv[i]) {
			consul_skip(ctx, what, "one of its tags is not a string");
			return NULL;
		}
	}
	if (!json_is_integer(port)) {
		consul_skip(ctx, what, "its Port is not a number");
		return NULL;
	}
	memset(&spec, 0, sizeof(spec));
	if (in->shared_id && asprintf(&id, "%s@%s", in->id, in->node) < 0)
		return NULL;
	spec.id = id ? id : in->id;
	spec.service = service;
	spec.address = in->address;
	spec.port = (int64_t)json_integer_value(port);
	spec.tags = tagv;
	spec.ntags = json_array_size(tags);
	spec.meta = json_is_object(meta) ? (json_t *)meta : NULL;
	spec.weight = json_is_integer(passing) ? (int64_t)json_integer_value(passing) : 1;
	if (spec.weight < 1 || spec.weight > 65535)
		spec.weight = spec.weight < 1 ? 1 : 65535;
	spec.status = in->status;
	ep = bcn_endpoint_new(&spec, &err);
	if (!ep)
		consul_skip(ctx, what, "%s", err ? err : "it is not a valid endpoint");
	free(id);
	return ep;
}

int consul_parse_health(struct consul_ctx *ctx, const char *service, const char *body, size_t len,
			struct bcn_endpoint ***eps, size_t *n, const char **why)
{
	struct instance *ins = NULL;
	json_t *root, *entry;
	size_t i, m = 0;
	int rc = -1;

	*eps = NULL;
	*n = 0;
	root = json_loadb(body, len, 0, NULL);
	if (!json_is_array(root)) {
		*why = root ? "the answer is not a JSON list" : "the answer is not valid JSON";
		goto out;
	}
	ins = calloc(json_array_size(root) + 1, sizeof(*ins));
	*eps = calloc(json_array_size(root) + 1, sizeof(**eps));
	if (!ins || !*eps) {
		*why = "out of memory";
		goto out;
	}
	json_array_foreach(root, i, entry) {
		if (read_instance(ctx, service, entry, &ins[m]))
			m++;
	}
	qsort(ins, m, sizeof(*ins), by_id);
	for (i = 0; i + 1 < m; i++) {
		if (strcmp(ins[i].id, ins[i + 1].id) == 0)
			ins[i].shared_id = ins[i + 1].shared_id = true;
	}
	for (i = 0; i < m; i++) {
		struct bcn_endpoint *ep = make_endpoint(ctx, service, &ins[i]);
		if (ep)
			(*eps)[(*n)++] = ep;
	}
	rc = 0;
out:
	if (rc < 0) {
		free(*eps);
		*eps = NULL;
	}
	free(ins);
	json_decref(root);
	return rc;
}

/* ---- KV ---------------------------------------------------------------------- */

void consul_kv_list_free(struct consul_kv_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->keys[i]);
		free(l->vals[i]);
	}
	free(l->keys);
	free(l->vals);
	free(l->lens);
	memset(l, 0, sizeof(*l));
}

/* Base64 (Consul's Value; null or absent = empty) into a malloc'd NUL-terminated buffer. */
static int decode_value(const json_t *v, char **out, size_t *len)
{
	const char *s = json_string_value(v), *end = NULL;
	size_t slen = s ? strlen(s) : 0, bin = 0;

	*len = 0;
	*out = malloc(slen / 4 * 3 + 4);
	if (!*out || (v && !json_is_null(v) && !s))
		goto bad;
	if (slen && (sodium_base642bin((unsigned char *)*out, slen / 4 * 3 + 3, s, slen, NULL, &bin, &end,
				       sodium_base64_VARIANT_ORIGINAL) != 0 || end != s + slen))
		goto bad;
	(*out)[bin] = '\0';
	*len = bin;
	return 0;
bad:
	free(*out);
	*out = NULL;
	return -1;
}

int consul_parse_kv(struct consul_ctx *ctx, const char *cache_prefix, const char *body, size_t len,
		    struct consul_kv_list *out, const char **why)
{
	size_t plen = strlen(cache_prefix) - 1, i, cap;
	json_t *root, *e;

	memset(out, 0, sizeof(*out));
	root = json_loadb(body, len, 0, NULL);
	if (!json_is_array(root)) {
		*why = root ? "the answer is not a JSON list" : "the answer is not valid JSON";
		json_decref(root);
		return -1;
	}
	cap = json_array_size(root) + 1;
	out->keys = calloc(cap, sizeof(*out->keys));
	out->vals = calloc(cap, sizeof(*out->vals));
	out->lens = calloc(cap, sizeof(*out->lens));
	if (!out->keys || !out->vals || !out->lens) {
		consul_kv_list_free(out);
		json_decref(root);
		*why = "out of memory";
		return -1;
	}
	json_array_foreach(root, i, e) {
		const char *key = str_member(e, "Key");
		char *value, *ckey;
		size_t vlen;

		/* Keys come from the prefix we asked for; anything else is not ours. */
		if (!key || strncmp(key, cache_prefix + 1, plen) != 0) {
			consul_skip(ctx, key ? key : "an entry without a Key", "it is outside the watched prefix %s",
				    cache_prefix);
			continue;
		}
		if (decode_value(json_object_get(e, "Value"), &value, &vlen) < 0) {
			consul_skip(ctx, key, "its Value is not valid base64");
			continue;
		}
		if (asprintf(&ckey, "/%s", key) < 0) {
			free(value);
			continue;
		}
		out->keys[out->n] = ckey;
		out->vals[out->n] = value;
		out->lens[out->n++] = vlen;
	}
	json_decref(root);
	return 0;
}

/* ---- skipped data -------------------------------------------------------------- */

/* One line per (what, message), at most 20 lines per 10 s: every blocking
 * answer repeats the same problems. `skipping` says which sentence to write. */
static void log_once(struct consul_ctx *ctx, bool skipping, const char *what, const char *fmt, va_list ap)
{
	enum { WINDOW_MS = 10000, LINES_PER_WINDOW = 20 };
	char msg[256], shown[124];
	uint64_t h;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	h = bcn_hash64(what, strlen(what)) * 31 + bcn_hash64(msg, strlen(msg));
	if (bcn_complain_seen(ctx->skipped, sizeof(ctx->skipped) / sizeof(ctx->skipped[0]),
			      &ctx->nskipped, h))
		return;
	if (!bcn_complain_due(&ctx->skips, WINDOW_MS, LINES_PER_WINDOW, ctx->log, "skipped entries"))
		return;
	bcn_log_printable(shown, sizeof(shown), what, strlen(what));
	if (skipping)
		bcn_warn(ctx->log, "skipping %s: %s", shown, msg);
	else
		bcn_warn(ctx->log, "%s: %s", shown, msg);
}

void consul_skip(struct consul_ctx *ctx, const char *what, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_once(ctx, true, what, fmt, ap);
	va_end(ap);
}

void consul_warn_once(struct consul_ctx *ctx, const char *what, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_once(ctx, false, what, fmt, ap);
	va_end(ap);
}
