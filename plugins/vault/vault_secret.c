/*
 * vault_secret.c - reading the configured secrets and keeping them fresh.
 *
 * What a path is decides how it is kept (kv_version 0 asks Vault which KV
 * version the mount has first, see vault_kv_path() in vault_path.c):
 *   KV v2   (a KV v2 mount, or kv_version 2): data.data, with
 *           data.metadata.version as the version; read again every `refresh`
 *   leased  (lease_id set): a dynamic secret. Renewable leases are renewed
 *           (sys/leases/renew, asking for the first duration again) at 2/3 of
 *           each duration; when a renewal comes back capped (the lease's max
 *           TTL is near) a new secret is read at 2/3 of what is left, before
 *           the old one ends. A lease that cannot be renewed is replaced the
 *           same way. Leases die with the token that made them, so a new
 *           token (login again) means new secrets too.
 *   rotating  (no lease, but data.ttl and a rotation_period/_schedule: static
 *           database credentials): read again when data.ttl runs out
 *   KV v1   anything else: data, read again every `refresh`
 *
 * Failures keep the last good data and mark it stale; retries back off with
 * jitter. Leased data stops being served when its lease ends (it would not
 * work anyway). Nothing here logs a value, a token or a lease's data.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vault.h"

enum vs_kind { VS_UNKNOWN, VS_KV1, VS_KV2, VS_LEASE, VS_ROTATING };
enum vs_next { VS_FETCH, VS_RENEW };

struct vault_secret {
	struct vault_ctx *v;
	struct bcn_secret *sec;      /* in the store */
	char *name;
	char *path;                  /* what is read, after /v1/ (with ?version=) */
	char *want;                  /* that path as configured (a reload compares it) */
	char *conf_path;             /* the configured path, without ?version= */
	int64_t pin;                 /* KV v2 version pin, 0 = latest */
	int64_t kv_version;          /* as configured: 0 detect, 1, 2 */
	bool kv2;
	bool detect;                 /* kv_version 0: ask sys/internal/ui/mounts first */
	uint64_t refresh_ms;
	enum vs_kind kind;
	struct vault_req *req;       /* the read or renewal in flight */
	struct event *timer;         /* next read or renewal */
	struct event *expire_ev;     /* end of the lease */
	enum vs_next next;
	unsigned attempt;
	bool waiting_token, loaded_once, stale, capped, renewable;
	char *lease_id;
	uint64_t lease_s, lease_increment_s, lease_expires_ms;
	unsigned token_gen;          /* the token the lease belongs to */
	char err[200];
};

static const char *kind_name(enum vs_kind k)
{
	switch (k) {
	case VS_KV1:   return "kv1";
	case VS_KV2:   return "kv2";
	case VS_LEASE: return "lease";
	case VS_ROTATING: return "rotating";
	default:       return "unknown";
	}
}

static void fetch(struct vault_secret *s);
static void renew(struct vault_secret *s);
static void detect(struct vault_secret *s);

static void schedule(struct vault_secret *s, enum vs_next next, uint64_t ms)
{
	if (s->v->stopping)
		return;
	evtimer_del(s->timer);
	s->next = next;
	bcn_timer_ms(s->timer, ms);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vault_secret *s = arg;

	(void)fd;
	(void)what;
	if (s->next == VS_RENEW && s->lease_id && bcn_report_secret_loaded(s->sec))
		renew(s);
	else
		fetch(s);
}

static void expire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vault_secret *s = arg;

	(void)fd;
	(void)what;
	bcn_warn(s->v->log, "the lease of secret %s ended before it could be renewed or replaced; "
		 "it is not served until Vault answers again", s->name);
	bcn_report_secret_drop(s->v->ins, s->sec);
	s->next = VS_FETCH; /* a renewal of an ended lease is pointless */
	free(s->lease_id);
	s->lease_id = NULL;
	vault_report(s->v);
}

static void set_stale(struct vault_secret *s, bool stale)
{
	s->stale = stale && s->loaded_once;
	bcn_report_secret_stale(s->v->ins, s->sec, s->stale);
}

/* A read or renewal did not work: keep what we have, say why, try again. */
static void failed(struct vault_secret *s, const struct vault_reply *r, const char *what,
		   enum vs_next next)
{
	char msg[sizeof(s->err)];

	snprintf(msg, sizeof(msg), "%s secret %s (%s): %s", what, s->name, s->path,
		 r ? r->msg : "the request could not be started");
	if (strcmp(msg, s->err) != 0 && !(r && r->outcome == VAULT_UNREACHABLE))
		bcn_warn(s->v->log, "%s", msg); /* outages are logged once, by vault_http.c */
	snprintf(s->err, sizeof(s->err), "%s", msg);
	set_stale(s, true);
	if (r && r->denied) {
		vault_auth_refused(s->v, r->bad_token);
		if (r->bad_token || s->v->auth != AUTH_OK) {
			/* The token is being replaced: read again once it is there. */
			s->waiting_token = true;
			evtimer_del(s->timer);
			if (s->v->auth != AUTH_OK)
				return;
		}
	}
	schedule(s, next, bcn_backoff_ms(s->attempt++, VAULT_RETRY_BASE_MS, VAULT_RETRY_MAX_MS));
}

/* Take a successful read. 0, or -1 with why set. */
static int take_answer(struct vault_secret *s, json_t *body, char *why, size_t len)
{
	struct vault_ctx *v = s->v;
	json_t *data = json_object_get(body, "data");
	const char *lease = json_string_value(json_object_get(body, "lease_id"));
	uint64_t dur = vault_seconds(json_object_get(body, "lease_duration"));
	uint64_t now = bcn_now_ms(), expires = 0, rotate_s = 0;
	enum vs_kind kind;
	int64_t version = -1; /* the store counts */
	int changed;

	if (s->kv2) {
		json_t *meta = json_object_get(data, "metadata");
		json_int_t ver = json_integer_value(json_object_get(meta, "version"));

		data = json_object_get(data, "data");
		if (!json_is_object(data)) {
			snprintf(why, len, "the answer has no KV v2 data (is it a KV v2 path? set kv_version)");
			return -1;
		}
		if (ver > 0)
			version = ver;
		kind = VS_KV2;
	} else if (lease && lease[0] && dur > 0) {
		kind = VS_LEASE;
		expires = now + dur * 1000;
	} else if ((json_object_get(data, "rotation_period") || json_object_get(data, "rotation_schedule")) &&
		   json_is_number(json_object_get(data, "ttl"))) {
		kind = VS_ROTATING;
		/* data.ttl counts down on every read: kept, it would make each read a
		 * "change" (version bump, blocking readers woken). The answer is our
		 * own parsed copy, so it is taken out of it. */
		rotate_s = vault_seconds(json_object_get(data, "ttl"));
		json_object_del(data, "ttl");
	} else {
		kind = VS_KV1;
	}
	if (!json_is_object(data)) {
		snprintf(why, len, "the answer has no data object");
		return -1;
	}
	changed = bcn_report_secret_put(s->v->ins, s->sec, data, version, expires);
	if (changed < 0) {
		snprintf(why, len, "its data could not be stored (see the log)");
		return -1;
	}
	if (changed && s->loaded_once)
		bcn_info(v->log, "secret %s changed (version %lld)", s->name,
			 (long long)bcn_report_secret_version(s->sec));
	else if (changed)
		bcn_info(v->log, "secret %s loaded (%s, version %lld)", s->name, kind_name(kind),
			 (long long)bcn_report_secret_version(s->sec));
	s->kind = kind;
	s->loaded_once = true;
	s->attempt = 0;
	s->err[0] = '\0';
	set_stale(s, false);
	free(s->lease_id);
	s->lease_id = NULL;
	evtimer_del(s->expire_ev);
	if (kind == VS_ROTATING) {
		/* Static credentials (database/static-creds, ldap/static-cred): no
		 * lease, but data.ttl says when Vault rotates the password. Read
		 * again a second after that, as Vault Agent's templates do
		 * (consul-template vault_common.go leaseCheckWait), and at
		 * `refresh` at the latest. */
		uint64_t at = (rotate_s + 1) * 1000;

		schedule(s, VS_FETCH, at < s->refresh_ms ? at : s->refresh_ms);
		return 0;
	}
	if (kind != VS_LEASE) {
		schedule(s, VS_FETCH, s->refresh_ms);
		return 0;
	}
	s->lease_id = strdup(lease);
	s->renewable = json_is_true(json_object_get(body, "renewable"));
	s->capped = false;
	s->lease_s = s->lease_increment_s = dur;
	s->lease_expires_ms = expires;
	s->token_gen = v->token_gen;
	bcn_timer_ms(s->expire_ev, expires - now);
	if (s->renewable && s->lease_id) {
		schedule(s, VS_RENEW, vault_two_thirds(dur * 1000));
	} else {
		uint64_t at = vault_two_thirds(dur * 1000);
		schedule(s, VS_FETCH, at < s->refresh_ms ? at : s->refresh_ms);
	}
	return 0;
}

static void fetch_done(struct vault_ctx *v, const struct vault_reply *r, void *arg)
{
	struct vault_secret *s = arg;
	char why[160];
	struct vault_reply bad;

	(void)v;
	s->req = NULL;
	if (r->outcome != VAULT_OK) {
		failed(s, r, "cannot read", VS_FETCH);
		return;
	}
	if (take_answer(s, r->body, why, sizeof(why)) == 0)
		return;
	memset(&bad, 0, sizeof(bad));
	bad.outcome = VAULT_REFUSED;
	bad.msg = why;
	failed(s, &bad, "cannot use", VS_FETCH);
}

static void fetch(struct vault_secret *s)
{
	struct vault_ctx *v = s->v;

	if (v->stopping)
		return;
	evtimer_del(s->timer);
	vault_req_cancel(s->req);
	s->req = NULL;
	if (v->auth != AUTH_OK) {
		/* Due but no token (Vault down past the token's TTL, or refused):
		 * what we serve is no longer being refreshed. */
		s->waiting_token = true;
		set_stale(s, true);
		return;
	}
	s->waiting_token = false;
	if (s->detect) {
		detect(s);
		return;
	}
	s->req = vault_request(v, "GET", s->path, NULL, 0, VREQ_TOKEN, fetch_done, s);
	if (!s->req)
		failed(s, NULL, "cannot read", VS_FETCH);
}

static void renew_done(struct vault_ctx *v, const struct vault_reply *r, void *arg)
{
	struct vault_secret *s = arg;
	uint64_t dur, now;

	s->req = NULL;
	if (r->outcome == VAULT_REFUSED && !r->denied) {
		/* Revoked, expired or not renewable after all: replace it. */
		bcn_warn(v->log, "Vault would not renew the lease of secret %s (%s); reading a new one",
			 s->name, r->msg);
		fetch(s);
		return;
	}
	if (r->outcome != VAULT_OK) {
		failed(s, r, "cannot renew the lease of", VS_RENEW);
		return;
	}
	dur = vault_seconds(json_object_get(r->body, "lease_duration"));
	if (dur == 0) {
		fetch(s);
		return;
	}
	now = bcn_now_ms();
	s->attempt = 0;
	s->err[0] = '\0';
	set_stale(s, false);
	s->lease_s = dur;
	s->lease_expires_ms = now + dur * 1000;
	bcn_report_secret_expiry(s->v->ins, s->sec, s->lease_expires_ms);
	evtimer_del(s->expire_ev);
	bcn_timer_ms(s->expire_ev, dur * 1000);
	s->capped = dur < s->lease_increment_s;
	if (s->capped) {
		bcn_info(v->log, "the lease of secret %s reaches its max TTL in %llus; reading a new "
			 "secret before it ends", s->name, (unsigned long long)dur);
		schedule(s, VS_FETCH, vault_two_thirds(dur * 1000));
	} else {
		bcn_debug(v->log, "renewed the lease of secret %s for %llus", s->name, (unsigned long long)dur);
		schedule(s, VS_RENEW, vault_two_thirds(dur * 1000));
	}
}

static void renew(struct vault_secret *s)
{
	struct vault_ctx *v = s->v;
	size_t n = strlen(s->lease_id);
	char *body = malloc(6 * n + 64);
	size_t len;

	if (v->stopping || !body) {
		free(body);
		if (!v->stopping)
			failed(s, NULL, "cannot renew the lease of", VS_RENEW);
		return;
	}
	if (v->auth != AUTH_OK) {
		free(body);
		s->waiting_token = true;
		set_stale(s, true);
		return;
	}
	len = (size_t)sprintf(body, "{\"lease_id\":");
	len += vault_json_string(body + len, s->lease_id, n);
	len += (size_t)sprintf(body + len, ",\"increment\":%llu}", (unsigned long long)s->lease_increment_s);
	s->req = vault_request(v, "PUT", "sys/leases/renew", body, len, VREQ_TOKEN, renew_done, s);
	free(body);
	if (!s->req)
		failed(s, NULL, "cannot renew the lease of", VS_RENEW);
}

/* ---- KV version detection ----------------------------------------------------- */

static void detect_done(struct vault_ctx *v, const struct vault_reply *r, void *arg)
{
	struct vault_secret *s = arg;
	json_t *data = json_object_get(r->body, "data");
	const char *mount = json_string_value(json_object_get(data, "path"));
	const char *type = json_string_value(json_object_get(data, "type"));
	const char *ver = json_string_value(json_object_get(json_object_get(data, "options"), "version"));
	bool v2 = type && strcmp(type, "kv") == 0 && ver && strcmp(ver, "2") == 0;
	char *path;

	s->req = NULL;
	if (r->outcome != VAULT_OK && !(r->outcome == VAULT_REFUSED && !r->bad_token &&
					 (r->status == 403 || r->status == 404))) {
		failed(s, r, "cannot detect the KV version of", VS_FETCH);
		return;
	}
	if (r->outcome != VAULT_OK) {
		/* Denied (or an older Vault without it): what the path says. */
		bcn_info(v->log, "secret %s: cannot detect its KV version (%s); reading %s as configured",
			 s->name, r->msg, s->path);
	} else if (!mount || !(path = vault_kv_path(s->conf_path, mount, v2, s->pin))) {
		bcn_warn(v->log, "secret %s: Vault's mount for %s is unusable; reading it as configured",
			 s->name, s->conf_path);
	} else {
		bool kv = type && strcmp(type, "kv") == 0;

		bcn_info(v->log, "secret %s: %s is %s%s mount; reading %s", s->name, mount,
			 kv ? (v2 ? "a KV v2" : "a KV v1") : "a ", kv ? "" : type ? type : "non-KV", path);
		free(s->path);
		s->path = path;
		s->kv2 = v2;
	}
	s->detect = false;
	fetch(s);
}

static void detect(struct vault_secret *s)
{
	size_t n = strlen(s->conf_path) + sizeof("sys/internal/ui/mounts/");
	char *path = malloc(n);

	if (path) {
		snprintf(path, n, "sys/internal/ui/mounts/%s", s->conf_path);
		s->req = vault_request(s->v, "GET", path, NULL, 0, VREQ_TOKEN, detect_done, s);
		free(path);
	}
	if (!s->req)
		failed(s, NULL, "cannot detect the KV version of", VS_FETCH);
}

/* ---- the set ---------------------------------------------------------------- */

int vault_secrets_init(struct vault_ctx *v, const struct vault_conf *c)
{
	const struct vault_secret_conf *sc = c->secrets.v;

	v->secrets = calloc(c->secrets.n ? c->secrets.n : 1, sizeof(*v->secrets));
	if (!v->secrets)
		goto oom;
	for (size_t i = 0; i < c->secrets.n; i++) {
		struct vault_secret *s = &v->secrets[i];
		size_t nuids = 0;
		uid_t *uids = vault_uids(sc[i].allow_uids, &nuids);
		const char *p;

		v->nsecrets++;
		s->v = v;
		s->name = strdup(sc[i].name);
		s->path = vault_read_path(&sc[i]);
		s->want = vault_read_path(&sc[i]);
		for (p = sc[i].path; *p == '/'; p++)
			;
		s->conf_path = strdup(p);
		s->pin = sc[i].version;
		s->kv_version = sc[i].kv_version;
		s->detect = sc[i].kv_version == 0;
		/* Until detection says otherwise (or when it cannot), "/data/" decides. */
		s->kv2 = sc[i].kv_version == 2 || (sc[i].kv_version == 0 && strstr(sc[i].path, "/data/"));
		s->refresh_ms = sc[i].refresh_ms;
		s->waiting_token = true;
		s->timer = evtimer_new(v->core->base, timer_cb, s);
		s->expire_ev = evtimer_new(v->core->base, expire_cb, s);
		if (uids)
			s->sec = bcn_report_secret_declare(v->ins, sc[i].name, uids, nuids);
		free(uids);
		if (!s->name || !s->path || !s->want || !s->conf_path || !s->timer || !s->expire_ev || !s->sec) {
			if (uids && !s->sec && bcn_report_secret_taken(v->ins, sc[i].name))
				bcn_error(v->log, "secret name %s is used twice", sc[i].name);
			goto oom;
		}
	}
	return 0;
oom:
	bcn_error(v->log, "cannot set up the secrets (out of memory?)");
	return -1;
}

void vault_secrets_token_ready(struct vault_ctx *v, bool new_token)
{
	for (size_t i = 0; i < v->nsecrets; i++) {
		struct vault_secret *s = &v->secrets[i];

		if (s->waiting_token) {
			fetch(s);
		} else if (new_token && s->kind == VS_LEASE && s->token_gen != v->token_gen) {
			bcn_info(v->log, "reading a new lease for secret %s: the old one ends with the old token",
				 s->name);
			fetch(s);
		}
	}
}

void vault_secrets_reload(struct vault_ctx *v, const struct vault_conf *c)
{
	const struct vault_secret_conf *sc = c->secrets.v;
	bool other = c->secrets.n != v->nsecrets;

	for (size_t i = 0; i < c->secrets.n && i < v->nsecrets; i++) {
		struct vault_secret *s = &v->secrets[i];
		char *path = vault_read_path(&sc[i]);
		size_t nuids = 0;
		uid_t *uids;

		if (strcmp(s->name, sc[i].name) != 0 || !path || strcmp(path, s->want) != 0 ||
		    sc[i].kv_version != s->kv_version) {
			other = true;
			free(path);
			continue;
		}
		free(path);
		uids = vault_uids(sc[i].allow_uids, &nuids);
		if (!uids || bcn_report_secret_uids(v->ins, s->sec, uids, nuids) < 0)
			bcn_warn(v->log, "out of memory: allow_uids of secret %s unchanged", s->name);
		free(uids);
		s->refresh_ms = sc[i].refresh_ms; /* from the next read on */
	}
	if (other)
		bcn_warn(v->log, "secrets added, removed, renamed or moved take effect after a restart; "
			 "allow_uids and refresh changes are applied");
}

void vault_secrets_stop(struct vault_ctx *v)
{
	for (size_t i = 0; i < v->nsecrets; i++) {
		struct vault_secret *s = &v->secrets[i];

		if (s->timer)
			evtimer_del(s->timer);
		vault_req_cancel(s->req);
		s->req = NULL;
	}
}

void vault_secrets_free(struct vault_ctx *v)
{
	for (size_t i = 0; i < v->nsecrets; i++) {
		struct vault_secret *s = &v->secrets[i];

		vault_req_cancel(s->req);
		if (s->timer)
			event_free(s->timer);
		if (s->expire_ev)
			event_free(s->expire_ev);
		free(s->name);
		free(s->path);
		free(s->want);
		free(s->conf_path);
		free(s->lease_id);
	}
	free(v->secrets);
	v->secrets = NULL;
	v->nsecrets = 0;
}

void vault_secrets_counts(const struct vault_ctx *v, size_t *loaded, size_t *stale,
			  const char **error)
{
	*loaded = *stale = 0;
	*error = NULL;
	for (size_t i = 0; i < v->nsecrets; i++) {
		const struct vault_secret *s = &v->secrets[i];

		*loaded += s->loaded_once;
		*stale += s->stale;
		if (!*error && s->err[0])
			*error = s->err;
	}
}

json_t *vault_secrets_self(struct vault_ctx *v)
{
	json_t *a = json_array();
	uint64_t now = bcn_now_ms();

	for (size_t i = 0; a && i < v->nsecrets; i++) {
		struct vault_secret *s = &v->secrets[i];
		bool lease = s->kind == VS_LEASE && s->lease_id && s->lease_expires_ms > now;
		json_t *o = json_pack("{sssssssbsbsIsIss}", "name", s->name, "path", s->path,
				      "kind", kind_name(s->kind), "loaded", bcn_report_secret_loaded(s->sec),
				      "stale", s->stale, "version", (json_int_t)bcn_report_secret_version(s->sec),
				      "index", (json_int_t)bcn_report_secret_index(s->sec), "error", s->err);

		if (!o)
			continue;
		json_object_set_new(o, "expires_in", lease ?
				    json_integer((json_int_t)((s->lease_expires_ms - now) / 1000)) : json_null());
		if (s->kind == VS_LEASE)
			json_object_set_new(o, "max_ttl_reached", json_boolean(s->capped));
		json_array_append_new(a, o);
	}
	return a;
}
