/*
 * testcore.c - see testcore.h. Defines every function of
 * agent/plugin/report.c, so a test linking this file before libbeacon.a never
 * pulls the archive's real reporting API (or the store behind it) in.
 */
#include "testcore.h"

#include <check.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "secrets/store.h"

struct testcore *tc_current;

static struct tc_report *add(enum tc_kind kind, const char *name)
{
	struct testcore *t = tc_current;
	struct tc_report *r;

	ck_assert_ptr_nonnull(t);
	r = realloc(t->reports, (t->nreports + 1) * sizeof(*r));
	ck_assert_ptr_nonnull(r);
	t->reports = r;
	r = &t->reports[t->nreports++];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->name = name ? strdup(name) : NULL;
	return r;
}

static char *dup_bytes(const char *p, size_t len)
{
	char *s = malloc(len + 1);

	ck_assert_ptr_nonnull(s);
	if (len)
		memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

/* ---- plugin.h: the reporting API ------------------------------------------- */

void bcn_report_watch(struct bcn_instance *ins, const char *service, bool watch)
{
	(void)ins;
	add(TC_WATCH, service)->flag = watch;
}

void bcn_report_endpoint(struct bcn_instance *ins, const char *service, struct bcn_endpoint *ep)
{
	(void)ins;
	add(TC_ENDPOINT, service)->text = strdup(ep->json);
	free(ep);
}

void bcn_report_endpoint_gone(struct bcn_instance *ins, const char *service, const char *id)
{
	(void)ins;
	add(TC_ENDPOINT_GONE, service)->text = strdup(id);
}

void bcn_report_endpoints_replace(struct bcn_instance *ins, const char *service,
				  struct bcn_endpoint **eps, size_t n)
{
	struct tc_report *r = add(TC_ENDPOINTS_REPLACE, service);
	size_t len = 0;

	(void)ins;
	r->len = n;
	r->text = calloc(1, 1);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(eps[i]->id);

		r->text = realloc(r->text, len + l + 2);
		ck_assert_ptr_nonnull(r->text);
		if (i)
			r->text[len++] = ',';
		memcpy(r->text + len, eps[i]->id, l + 1);
		len += l;
		free(eps[i]);
	}
}

void bcn_report_kv_watch(struct bcn_instance *ins, const char *prefix, bool watch)
{
	(void)ins;
	add(TC_KV_WATCH, prefix)->flag = watch;
}

void bcn_report_kv_put(struct bcn_instance *ins, const char *key, const char *value, size_t len)
{
	struct tc_report *r = add(TC_KV_PUT, key);

	(void)ins;
	r->text = dup_bytes(value, len);
	r->len = len;
}

void bcn_report_kv_delete(struct bcn_instance *ins, const char *key)
{
	(void)ins;
	add(TC_KV_DELETE, key);
}

void bcn_report_kv_replace(struct bcn_instance *ins, const char *prefix, const char *const *keys,
			   const char *const *values, const size_t *lens, size_t n)
{
	struct tc_report *r = add(TC_KV_REPLACE, prefix);
	size_t len = 0;

	(void)ins;
	(void)values;
	(void)lens;
	r->len = n;
	r->text = calloc(1, 1);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(keys[i]);

		r->text = realloc(r->text, len + l + 2);
		ck_assert_ptr_nonnull(r->text);
		if (i)
			r->text[len++] = ',';
		memcpy(r->text + len, keys[i], l + 1);
		len += l;
	}
}

void bcn_report_stale(struct bcn_instance *ins, bool stale)
{
	(void)ins;
	add(TC_STALE, NULL)->flag = stale;
}

/* Secrets go to the core's real store too: the plugin reads them back
 * (loaded, version) and seals its credentials with the same store. */
struct bcn_secret *bcn_report_secret_declare(struct bcn_instance *ins, const char *name,
					     const uid_t *uids, size_t nuids)
{
	add(TC_SECRET_DECLARE, name);
	return ins->core->secrets ? bcn_secrets_add(ins->core->secrets, name, uids, nuids) : NULL;
}

bool bcn_report_secret_taken(struct bcn_instance *ins, const char *name)
{
	return bcn_secrets_find(ins->core->secrets, name) != NULL;
}

int bcn_report_secret_uids(struct bcn_instance *ins, struct bcn_secret *sec, const uid_t *uids,
			   size_t nuids)
{
	(void)ins;
	add(TC_SECRET_UIDS, bcn_secret_name(sec));
	return bcn_secret_set_uids(sec, uids, nuids);
}

int bcn_report_secret_put(struct bcn_instance *ins, struct bcn_secret *sec, const json_t *data,
			  int64_t version, uint64_t expires_at_ms)
{
	struct tc_report *r = add(TC_SECRET_PUT, bcn_secret_name(sec));

	(void)ins;
	r->text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	r->version = version;
	r->expires_at_ms = expires_at_ms;
	return bcn_secret_put(sec, data, version, expires_at_ms);
}

void bcn_report_secret_expiry(struct bcn_instance *ins, struct bcn_secret *sec, uint64_t expires_at_ms)
{
	(void)ins;
	add(TC_SECRET_EXPIRY, bcn_secret_name(sec))->expires_at_ms = expires_at_ms;
	bcn_secret_set_expiry(sec, expires_at_ms);
}

void bcn_report_secret_stale(struct bcn_instance *ins, struct bcn_secret *sec, bool stale)
{
	(void)ins;
	add(TC_SECRET_STALE, bcn_secret_name(sec))->flag = stale;
	bcn_secret_set_stale(sec, stale);
}

void bcn_report_secret_drop(struct bcn_instance *ins, struct bcn_secret *sec)
{
	(void)ins;
	add(TC_SECRET_DROP, bcn_secret_name(sec));
	bcn_secret_drop(sec);
}

bool bcn_report_secret_loaded(const struct bcn_secret *sec)
{
	return bcn_secret_loaded(sec);
}

int64_t bcn_report_secret_version(const struct bcn_secret *sec)
{
	return bcn_secret_version(sec);
}

uint64_t bcn_report_secret_index(const struct bcn_secret *sec)
{
	return bcn_secret_index(sec);
}

const struct bcn_service_conf *bcn_core_service(const struct bcn_core *core)
{
	(void)core;
	return tc_current ? tc_current->service : NULL;
}

struct bcn_endpoint *bcn_core_self_endpoint(const struct bcn_core *core)
{
	const struct bcn_service_conf *sc = bcn_core_service(core);
	struct bcn_endpoint_spec spec;
	const char *err = NULL;

	if (!sc)
		return NULL;
	memset(&spec, 0, sizeof(spec));
	spec.id = sc->id;
	spec.service = sc->name;
	spec.address = sc->address;
	spec.port = sc->port;
	spec.tags = (const char *const *)sc->tags.v;
	spec.ntags = sc->tags.n;
	spec.meta = sc->meta;
	spec.weight = sc->weight;
	spec.status = core->service_status;
	return bcn_endpoint_new(&spec, &err);
}

/* ---- the instance ---------------------------------------------------------- */

static void state_changed(struct bcn_core *core, struct bcn_instance *ins)
{
	(void)core;
	(void)ins;
}

void tc_setup(struct testcore *t, const struct bcn_plugin *p, const char *conf_json, bool with_secrets)
{
	struct bcn_cfg_errs errs = { 0 };
	json_error_t jerr;
	json_t *obj = json_loads(conf_json, 0, &jerr);

	memset(t, 0, sizeof(*t));
	tc_current = t;
	ck_assert_msg(obj != NULL, "bad test config: %s", jerr.text);
	t->base = event_base_new();
	ck_assert_ptr_nonnull(t->base);
	t->core.base = t->base;
	t->core.http = bcn_http_new(t->base);
	t->core.service_status = BCN_PASSING;
	t->core.state_changed = state_changed;
	ck_assert_ptr_nonnull(t->core.http);
	if (with_secrets) {
		t->core.secrets = bcn_secrets_new(t->base);
		ck_assert_ptr_nonnull(t->core.secrets);
	}
	t->config = calloc(1, sizeof(*t->config));
	ck_assert_ptr_nonnull(t->config);
	t->core.config = t->config;
	t->ins.plugin = p;
	t->ins.core = &t->core;
	snprintf(t->ins.name, sizeof(t->ins.name), "%s#0", p->name);
	snprintf(t->ins.state, sizeof(t->ins.state), "starting");
	t->ins.conf = calloc(1, p->config_size);
	ck_assert_ptr_nonnull(t->ins.conf);
	bcn_cfg_fill(p->config_map, obj, t->ins.conf, "$.test", &errs);
	if (!errs.n && p->cb_check)
		p->cb_check(t->ins.conf, "$.test", &errs);
	ck_assert_msg(errs.n == 0, "test config refused: %s", errs.n ? errs.msg[0] : "");
	bcn_cfg_errs_free(&errs);
	json_decref(obj);
}

static void strlist_set(struct bcn_strlist *l, const char *const *v)
{
	for (size_t i = 0; v && v[i]; i++) {
		l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
		ck_assert_ptr_nonnull(l->v);
		l->v[l->n] = strdup(v[i]);
		ck_assert_ptr_nonnull(l->v[l->n]);
		l->n++;
	}
}

static void strlist_clear(struct bcn_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

void tc_watch(struct testcore *t, const char *const *services, const char *const *kv)
{
	strlist_set(&t->config->watch.services, services);
	strlist_set(&t->config->watch.kv, kv);
}

void tc_start(struct testcore *t, const char *script, const struct fake_route *canned)
{
	fake_http_script((const uint8_t *)script, strlen(script), canned);
	ck_assert_int_eq(t->ins.plugin->cb_init(&t->ins), 0);
	ck_assert_int_eq(t->ins.plugin->cb_start(&t->ins), 0);
	t->started = true;
	fake_http_run(t->base);
}

void tc_teardown(struct testcore *t)
{
	t->ins.plugin->cb_exit(&t->ins);
	ck_assert_uint_eq(fake_http_open(), 0);
	event_base_loop(t->base, EVLOOP_NONBLOCK);
	fake_http_reset();
	bcn_cfg_free(t->ins.plugin->config_map, t->ins.conf);
	free(t->ins.conf);
	strlist_clear(&t->config->watch.services);
	strlist_clear(&t->config->watch.kv);
	free(t->config);
	bcn_secrets_free(t->core.secrets);
	bcn_http_free(t->core.http);
	event_base_free(t->base);
	for (size_t i = 0; i < t->nreports; i++) {
		free(t->reports[i].name);
		free(t->reports[i].text);
	}
	free(t->reports);
	tc_current = NULL;
}

size_t tc_count(const struct testcore *t, enum tc_kind kind)
{
	size_t n = 0;

	for (size_t i = 0; i < t->nreports; i++)
		n += t->reports[i].kind == kind;
	return n;
}

const struct tc_report *tc_last(const struct testcore *t, enum tc_kind kind)
{
	for (size_t i = t->nreports; i-- > 0;) {
		if (t->reports[i].kind == kind)
			return &t->reports[i];
	}
	return NULL;
}
