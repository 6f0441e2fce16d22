/*
 * zk_watch.c - discovery (watch.services) and config values (watch.kv).
 *
 * A service is the znode <base>/<service>: getChildren with a watch lists its
 * instances, getData with a watch reads each one (zk_data.c parses Curator's
 * JSON). A child event lists again and reads only the new children (the
 * gone ones are withdrawn); a data event reads that child again. A service
 * znode that does not exist yet is watched with exists() until it does. After
 * every (re)connect everything is listed and read again, since events may
 * have been missed while disconnected; until then answers are stale.
 *
 * A KV prefix is a znode subtree: "/config/web/" is everything below the
 * znode /config/web, each znode's data the value of the key that is its path
 * (SPEC.md). A prefix that ends inside a name ("/config/we") walks /config
 * and keeps the keys that start with it. Any event in the subtree walks it
 * again (children and data, with watches) and hands the store the whole
 * result (bcn_report_kv_replace): KV trees are small, and a full walk cannot
 * drift. A walk that meets a connection problem is dropped, not published;
 * the reconnect walks again. At most ZK_MAX_KV_NODES znodes per subtree.
 *
 * Completions find their watch by kind, name and the watch's unique id
 * (struct zk_op), never by pointer: a watch removed by a reload is gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zookeeper/zookeeper.h>

#include "zk.h"

struct zk_watch {
	struct bcn_watch base;
	struct zk_ctx *ctx;
	char *root;               /* the znode read: <base>/<service> or the subtree root */
	uint64_t id;              /* unique: ops carry it */
	uint64_t gen;             /* handle generation pending counts for */
	size_t pending;           /* ops of this watch in flight */
	bool failed;              /* an op of this read failed (connection) */
	bool full;                /* the next listing reads every child */
	bool walking, again;      /* KV */
	bool too_many;
	char **kids;              /* service: sorted child names */
	size_t nkids;
	char **keys, **vals;      /* KV walk accumulator */
	size_t *lens, n, cap;
	size_t published;         /* KV keys handed to the store by the last walk */
};

static uint64_t next_id = 1;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_kid(const struct zk_watch *w, const char *name)
{
	return w->kids && bsearch(&name, w->kids, w->nkids, sizeof(char *), cmp_str);
}

static struct zk_watch *find(struct zk_ctx *ctx, const struct zk_op *op)
{
	struct bcn_watch *b;

	SLIST_FOREACH(b, &ctx->watches, link) {
		struct zk_watch *w = (struct zk_watch *)b;
		if (w->id == op->epoch)
			return w;
	}
	return NULL;
}

static void strings_cb(int rc, const struct String_vector *v, const struct Stat *st, const void *data);
static void data_cb(int rc, const char *value, int len, const struct Stat *st, const void *data);
static void exists_cb(int rc, const struct Stat *st, const void *data);

/* Send one read for w; counts it as pending. */
static void send_op(struct zk_watch *w, enum zk_op_kind kind, const char *path)
{
	struct zk_ctx *ctx = w->ctx;
	struct zk_op *op = zk_op_new(ctx, kind, w->base.name, path, w->id);
	int rc;

	if (!op) {
		w->failed = true;
		return;
	}
	if (w->gen != ctx->gen) {
		w->gen = ctx->gen;
		w->pending = 0; /* the old handle's ops are ignored when they end */
	}
	if (kind == ZK_OP_SVC_CHILDREN || kind == ZK_OP_KV_CHILDREN)
		rc = zoo_aget_children2(ctx->zh, path, 1, strings_cb, op);
	else if (kind == ZK_OP_SVC_DATA || kind == ZK_OP_KV_DATA)
		rc = zoo_aget(ctx->zh, path, 1, data_cb, op);
	else
		rc = zoo_aexists(ctx->zh, path, 1, exists_cb, op);
	if (rc != ZOK) {
		zk_op_free(op);
		if (rc == ZBADARGUMENTS) { /* a name ZooKeeper refuses: nothing to read, ever */
			snprintf(w->base.last_error, sizeof(w->base.last_error),
				 "%s is not a valid znode path", path);
			w->base.synced = w->base.fresh = true;
			return;
		}
		w->failed = true;
		return;
	}
	w->pending++;
}

static char *child_path(const char *root, const char *child)
{
	size_t n = strlen(root) + strlen(child) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", strcmp(root, "/") == 0 ? "" : root, child);
	return p;
}

/* ---- services -------------------------------------------------------------- */

static void svc_read(struct zk_watch *w, bool full)
{
	if (w->ctx->session != ZK_UP)
		return;
	w->full |= full;
	send_op(w, ZK_OP_SVC_CHILDREN, w->root);
}

static void svc_children(struct zk_watch *w, int rc, const struct String_vector *v)
{
	struct zk_ctx *ctx = w->ctx;
	size_t n = 0, max = v && v->count > 0 ? (size_t)v->count : 0;
	char **kids;

	if (rc == ZNONODE) { /* no instance yet: watch for the service's creation */
		bcn_report_endpoints_replace(ctx->ins, w->base.name, NULL, 0);
		for (size_t i = 0; i < w->nkids; i++)
			free(w->kids[i]);
		w->nkids = 0;
		send_op(w, ZK_OP_SVC_EXISTS, w->root);
		return;
	}
	if (rc != ZOK) {
		w->failed = true;
		snprintf(w->base.last_error, sizeof(w->base.last_error), "cannot list %s: %s", w->root,
			 zerror(rc));
		return;
	}
	if (max > ZK_MAX_CHILDREN) {
		zk_skip(ctx, w->root, "it has %zu children; only the first %d are read", max, ZK_MAX_CHILDREN);
		max = ZK_MAX_CHILDREN;
	}
	kids = calloc(max ? max : 1, sizeof(*kids));
	if (!kids) {
		w->failed = true;
		return;
	}
	for (size_t i = 0; i < max; i++) {
		kids[n] = strdup(v->data[i]);
		if (kids[n])
			n++;
	}
	qsort(kids, n, sizeof(*kids), cmp_str);
	/* Withdraw the instances that are gone. */
	for (size_t i = 0; i < w->nkids; i++) {
		if (!bsearch(&w->kids[i], kids, n, sizeof(char *), cmp_str))
			bcn_report_endpoint_gone(ctx->ins, w->base.name, w->kids[i]);
	}
	/* Read the new ones (all of them on a full read). */
	for (size_t i = 0; i < n; i++) {
		if (w->full || !has_kid(w, kids[i])) {
			char *p = child_path(w->root, kids[i]);
			if (p)
				send_op(w, ZK_OP_SVC_DATA, p);
			free(p);
		}
	}
	for (size_t i = 0; i < w->nkids; i++)
		free(w->kids[i]);
	free(w->kids);
	w->kids = kids;
	w->nkids = n;
	w->full = false;
	w->base.last_error[0] = '\0';
}

static void svc_data(struct zk_watch *w, const char *path, int rc, const char *value, int len)
{
	struct zk_ctx *ctx = w->ctx;
	const char *id = strrchr(path, '/') + 1;
	struct bcn_endpoint *ep;
	char why[200];

	if (!has_kid(w, id))
		return;
	if (rc == ZNONODE) {
		bcn_report_endpoint_gone(ctx->ins, w->base.name, id);
		return;
	}
	if (rc != ZOK) {
		if (zk_transient(rc)) {
			w->failed = true;
			return;
		}
		zk_skip(ctx, path, "%s", zerror(rc));
		bcn_report_endpoint_gone(ctx->ins, w->base.name, id);
		return;
	}
	ep = zk_parse_instance(w->base.name, id, value ? value : "", value && len > 0 ? (size_t)len : 0,
			       why, sizeof(why));
	if (ep) {
		bcn_report_endpoint(ctx->ins, w->base.name, ep);
	} else {
		zk_skip(ctx, path, "%s", why);
		bcn_report_endpoint_gone(ctx->ins, w->base.name, id);
	}
}

/* ---- KV subtrees ------------------------------------------------------------ */

static void kv_clear(struct zk_watch *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->keys[i]);
		free(w->vals[i]);
	}
	w->n = 0;
}

static void kv_walk(struct zk_watch *w)
{
	if (w->ctx->session != ZK_UP)
		return;
	if (w->walking) {
		w->again = true;
		return;
	}
	kv_clear(w);
	w->walking = true;
	w->again = w->failed = w->too_many = false;
	send_op(w, ZK_OP_KV_CHILDREN, w->root);
	send_op(w, ZK_OP_KV_DATA, w->root);
}

static void kv_children(struct zk_watch *w, int rc, const struct String_vector *v, const char *path)
{
	if (rc == ZNONODE) {
		if (strcmp(path, w->root) == 0)
			send_op(w, ZK_OP_KV_EXISTS, w->root); /* told when it appears */
		return;
	}
	if (rc != ZOK) {
		if (zk_transient(rc))
			w->failed = true;
		else
			zk_skip(w->ctx, path, "cannot list its children: %s", zerror(rc));
		return;
	}
	for (int i = 0; v && i < v->count; i++) {
		char *p;
		if (w->n + w->pending / 2 >= ZK_MAX_KV_NODES) {
			w->too_many = true;
			return;
		}
		p = child_path(path, v->data[i]);
		if (!p) {
			w->failed = true;
			return;
		}
		if (strcmp(p, "/zookeeper") != 0) { /* the server's own subtree */
			send_op(w, ZK_OP_KV_CHILDREN, p);
			send_op(w, ZK_OP_KV_DATA, p);
		}
		free(p);
	}
}

static void kv_data(struct zk_watch *w, const char *path, int rc, const char *value, int len)
{
	size_t plen = strlen(w->base.name), l = value && len > 0 ? (size_t)len : 0;

	if (rc == ZNONODE)
		return;
	if (rc != ZOK) {
		if (zk_transient(rc))
			w->failed = true;
		else
			zk_skip(w->ctx, path, "%s", zerror(rc));
		return;
	}
	if (strcmp(path, w->root) == 0 || strncmp(path, w->base.name, plen) != 0)
		return; /* the walk's root, or a sibling outside a partial prefix */
	if (l > ZK_MAX_KV_VALUE) {
		zk_skip(w->ctx, path, "its value is %zu bytes, more than the %d a value may have", l,
			ZK_MAX_KV_VALUE);
		return;
	}
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 32;
		char **k = realloc(w->keys, nc * sizeof(*k));
		if (k)
			w->keys = k;
		char **vv = realloc(w->vals, nc * sizeof(*vv));
		if (vv)
			w->vals = vv;
		size_t *ls = realloc(w->lens, nc * sizeof(*ls));
		if (ls)
			w->lens = ls;
		if (!k || !vv || !ls) {
			w->failed = true;
			return;
		}
		w->cap = nc;
	}
	w->keys[w->n] = strdup(path);
	w->vals[w->n] = malloc(l + 1);
	if (!w->keys[w->n] || !w->vals[w->n]) {
		free(w->keys[w->n]);
		free(w->vals[w->n]);
		w->failed = true;
		return;
	}
	if (l)
		memcpy(w->vals[w->n], value, l);
	w->vals[w->n][l] = '\0';
	w->lens[w->n++] = l;
}

static void kv_done(struct zk_watch *w)
{
	struct zk_ctx *ctx = w->ctx;

	w->walking = false;
	if (w->failed) {
		kv_clear(w);
		if (w->again && ctx->session == ZK_UP)
			kv_walk(w);
		return;
	}
	if (w->too_many)
		snprintf(w->base.last_error, sizeof(w->base.last_error),
			 "%s has more than %d znodes; the rest are not read", w->root, ZK_MAX_KV_NODES);
	else
		w->base.last_error[0] = '\0';
	bcn_report_kv_replace(ctx->ins, w->base.name, (const char *const *)w->keys,
			      (const char *const *)w->vals, w->lens, w->n);
	w->published = w->n;
	kv_clear(w);
	if (w->again)
		kv_walk(w);
}

/* ---- completions -------------------------------------------------------------- */

static void finish(struct zk_watch *w)
{
	if (--w->pending > 0)
		return;
	if (w->base.kv && w->walking)
		kv_done(w);
	if (!w->failed && !w->walking) {
		w->base.synced = true;
		w->base.fresh = true;
	}
	w->failed = false;
	zk_report(w->ctx);
}

static void strings_cb(int rc, const struct String_vector *v, const struct Stat *st, const void *data)
{
	struct zk_op *op = (struct zk_op *)data;
	struct zk_watch *w = zk_op_live(op) ? find(op->ctx, op) : NULL;

	(void)st;
	if (w && w->gen == op->ctx->gen) {
		if (w->base.kv)
			kv_children(w, rc, v, op->path);
		else
			svc_children(w, rc, v);
		finish(w);
	}
	zk_op_free(op);
}

static void data_cb(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
	struct zk_op *op = (struct zk_op *)data;
	struct zk_watch *w = zk_op_live(op) ? find(op->ctx, op) : NULL;

	(void)st;
	if (w && w->gen == op->ctx->gen) {
		if (w->base.kv)
			kv_data(w, op->path, rc, value, len);
		else
			svc_data(w, op->path, rc, value, len);
		finish(w);
	}
	zk_op_free(op);
}

static void exists_cb(int rc, const struct Stat *st, const void *data)
{
	struct zk_op *op = (struct zk_op *)data;
	struct zk_watch *w = zk_op_live(op) ? find(op->ctx, op) : NULL;

	(void)st;
	if (w && w->gen == op->ctx->gen) {
		if (rc == ZOK) { /* created between the two calls: read it */
			if (w->base.kv)
				w->again = true;
			else
				svc_read(w, true);
		} else if (rc != ZNONODE) {
			w->failed = true;
		}
		finish(w);
	}
	zk_op_free(op);
}

void zk_watch_event(struct zk_ctx *ctx, int type, const char *path)
{
	struct bcn_watch *b;

	if (!path || ctx->session != ZK_UP)
		return;
	SLIST_FOREACH(b, &ctx->watches, link) {
		struct zk_watch *w = (struct zk_watch *)b;
		size_t rl = strlen(w->root);

		if (w->base.kv) {
			if (strcmp(w->root, "/") == 0 ||
			    (strncmp(path, w->root, rl) == 0 && (path[rl] == '\0' || path[rl] == '/')))
				kv_walk(w);
		} else if (strcmp(path, w->root) == 0) {
			svc_read(w, false);
		} else if (type == ZOO_CHANGED_EVENT && strncmp(path, w->root, rl) == 0 &&
			   path[rl] == '/' && !strchr(path + rl + 1, '/')) {
			send_op(w, ZK_OP_SVC_DATA, path);
		}
	}
}

/* ---- the set ------------------------------------------------------------------ */

static struct bcn_watch *w_create(void *arg, bool kv, const char *name)
{
	struct zk_ctx *ctx = arg;
	struct zk_watch *w = calloc(1, sizeof(*w));
	size_t n;

	if (!w)
		return NULL;
	w->ctx = ctx;
	w->id = next_id++;
	w->base.kv = kv;
	w->base.name = strdup(name);
	if (kv) {
		/* the subtree root: the prefix up to its last '/' ("/" for "/x") */
		n = (size_t)(strrchr(name, '/') - name);
		w->root = n ? strndup(name, n) : strdup("/");
	} else {
		n = strlen(ctx->base) + strlen(name) + 2;
		w->root = malloc(n);
		if (w->root)
			snprintf(w->root, n, "%s/%s", ctx->base, name);
	}
	if (!w->base.name || !w->root) {
		free(w->base.name);
		free(w->root);
		free(w);
		return NULL;
	}
	return &w->base;
}

static void w_start(struct bcn_watch *b)
{
	struct zk_watch *w = (struct zk_watch *)b;

	if (w->base.kv)
		kv_walk(w);
	else
		svc_read(w, true);
	zk_flush(w->ctx);
}

static void w_destroy(struct bcn_watch *b)
{
	struct zk_watch *w = (struct zk_watch *)b;

	if (!w)
		return;
	for (size_t i = 0; i < w->nkids; i++)
		free(w->kids[i]);
	free(w->kids);
	kv_clear(w);
	free(w->keys);
	free(w->vals);
	free(w->lens);
	free(w->root);
	free(w->base.name);
	free(w);
}

static const char *w_state(const struct bcn_watch *b)
{
	const struct zk_watch *w = (const struct zk_watch *)b;

	return w->base.fresh ? "watching" : w->pending ? "reading" : "waiting";
}

static json_t *w_fields(const struct bcn_watch *b)
{
	const struct zk_watch *w = (const struct zk_watch *)b;

	return json_pack("{s:s, s:I}", "znode", w->root, w->base.kv ? "nodes" : "children",
			 (json_int_t)(w->base.kv ? w->published : w->nkids));
}

static const struct bcn_watch_ops ops = {
	.create = w_create, .start = w_start, .destroy = w_destroy,
	.self_state = w_state, .self_fields = w_fields,
};

void zk_watch_apply(struct zk_ctx *ctx)
{
	bcn_watchset_apply(&ctx->watches, ctx->ins, &ops, ctx, ctx->ever_up);
}

void zk_watch_up(struct zk_ctx *ctx)
{
	struct bcn_watch *b;

	SLIST_FOREACH(b, &ctx->watches, link) {
		struct zk_watch *w = (struct zk_watch *)b;
		if (w->gen != ctx->gen) {
			w->gen = ctx->gen;
			w->pending = 0;
			w->walking = false;
		}
		w->failed = false;
		if (w->base.kv)
			kv_walk(w);
		else
			svc_read(w, true);
	}
}

void zk_watch_down(struct zk_ctx *ctx)
{
	struct bcn_watch *b;

	SLIST_FOREACH(b, &ctx->watches, link)
		b->fresh = false;
}

void zk_watch_free_all(struct zk_ctx *ctx)
{
	bcn_watchset_free_all(&ctx->watches, &ops);
}

json_t *zk_watch_self(const struct zk_ctx *ctx)
{
	return bcn_watchset_self(&ctx->watches, &ops);
}
