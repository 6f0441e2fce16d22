/*
 * vault_auth.c - getting a Vault token and keeping it alive.
 *
 *   token       the token in token_file; auth/token/lookup-self says its TTL
 *   approle     POST auth/<mount>/login {role_id, secret_id}
 *   kubernetes  POST auth/<mount>/login {role, jwt} with the service-account JWT
 *
 * Credential files are read at init and sealed by the secret store; like
 * Vault Agent, the secret_id file is removed after reading when
 * remove_secret_id_file_after_reading is set (the default), so the secret_id
 * only lives sealed in memory. Two files are read again later, as Vault
 * Agent does: the Kubernetes JWT before every login (kubelet rotates
 * projected service-account tokens, which expire), and token_file whenever
 * its token stopped working (an operator or another agent wrote a new one).
 * Both are small local files (tmpfs in a pod); an unreadable file keeps the
 * value read before.
 *
 * A renewable token is renewed (auth/token/renew-self, asking for its first
 * TTL again) at 2/3 of each TTL granted. A renewal that comes back capped
 * (less than asked: the max TTL is near) is the last one: the next step, at
 * 2/3 of what is left, is a fresh login, so the new token exists before the
 * old one dies. A renewal Vault refuses, or a token it calls invalid, means
 * logging in again now; a Vault that does not answer is retried with backoff
 * until the token expires. A 403 that does not say "invalid token" (older
 * Vaults say only "permission denied") is checked with lookup-self before
 * the token is thrown away. A token without Vault's default policy is denied
 * lookup-self itself (an ACL answer, not "invalid token"): it is kept, with
 * the TTL its login or renewal returned.
 */
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vault.h"

enum { NEXT_LOGIN = 1, NEXT_RENEW };
enum { BUSY_NONE, BUSY_LOGIN, BUSY_RENEW, BUSY_VERIFY, BUSY_REVOKE };

#define VERIFY_EVERY_MS 5000

static const char *method_name(enum vault_method m)
{
	switch (m) {
	case VAULT_APPROLE:    return "approle";
	case VAULT_KUBERNETES: return "kubernetes";
	default:               return "token";
	}
}

/* Tokens, ids and JWTs go into headers and JSON: printable ASCII only. */
static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return n > 0;
}

static int read_sealed(struct vault_ctx *v, const char *path, struct bcn_sealed *out, const char *key)
{
	char err[320];
	char *buf = bcn_read_secret_file(path, err, sizeof(err));
	size_t n;
	int rc;

	if (!buf) {
		bcn_error(v->log, "auth.%s: %s", key, err);
		return -1;
	}
	n = strlen(buf);
	if (!printable(buf, n) || n > VAULT_TOKEN_MAX) {
		bcn_error(v->log, "auth.%s: %s must hold one line of printable characters", key, path);
		sodium_free(buf);
		return -1;
	}
	rc = bcn_secrets_seal(v->store, out, buf, n);
	sodium_free(buf); /* wipes */
	if (rc < 0)
		bcn_error(v->log, "auth.%s: out of memory", key);
	return rc;
}

static void auth_tick(evutil_socket_t fd, short what, void *arg);

/* Where token_file's content lives: the token itself, or the JWT to log in with. */
static struct bcn_sealed *cred_of(struct vault_ctx *v)
{
	return v->method == VAULT_TOKEN ? &v->token : &v->jwt;
}

/* Read token_file again. 1 when it now holds something else, 0 when it is
 * the same or could not be read (the old value stays; the error is logged). */
static int reread_cred(struct vault_ctx *v)
{
	struct bcn_sealed fresh = { 0 }, *cur = cred_of(v);
	size_t mark = bcn_secrets_mark(v->store), l1 = 0, l2 = 0;
	const char *a, *b;
	int changed = 0;

	if (read_sealed(v, v->cred_path, &fresh, "token_file") < 0)
		return 0;
	a = bcn_secrets_unseal(v->store, &fresh, &l1);
	b = cur->box ? bcn_secrets_unseal(v->store, cur, &l2) : NULL;
	if (a && (!b || l1 != l2 || sodium_memcmp(a, b, l1) != 0))
		changed = 1;
	bcn_secrets_release(v->store, mark);
	if (changed) {
		bcn_sealed_clear(cur);
		*cur = fresh;
		bcn_info(v->log, "read a new %s from %s", v->method == VAULT_TOKEN ? "token" : "service-account JWT",
			 v->cred_path);
	} else {
		bcn_sealed_clear(&fresh);
	}
	return changed;
}

int vault_auth_init(struct vault_ctx *v, const struct vault_auth_conf *c)
{
	if (strcmp(c->method, "approle") == 0)
		v->method = VAULT_APPROLE;
	else if (strcmp(c->method, "kubernetes") == 0)
		v->method = VAULT_KUBERNETES;
	else
		v->method = VAULT_TOKEN;
	v->mount = strdup(c->mount[0] ? c->mount : v->method == VAULT_KUBERNETES ? "kubernetes" : "approle");
	v->role = strdup(c->role);
	v->auth_ev = evtimer_new(v->core->base, auth_tick, v);
	if (!v->mount || !v->role || !v->auth_ev) {
		bcn_error(v->log, "out of memory");
		return -1;
	}
	while (strlen(v->mount) > 1 && v->mount[strlen(v->mount) - 1] == '/')
		v->mount[strlen(v->mount) - 1] = '\0';

	switch (v->method) {
	case VAULT_TOKEN:
	case VAULT_KUBERNETES:
		v->cred_path = strdup(v->method == VAULT_TOKEN || c->token_file[0] ? c->token_file : VAULT_SA_TOKEN);
		if (!v->cred_path) {
			bcn_error(v->log, "out of memory");
			return -1;
		}
		return read_sealed(v, v->cred_path, cred_of(v), "token_file");
	case VAULT_APPROLE:
		if (read_sealed(v, c->role_id_file, &v->role_id, "role_id_file") < 0)
			return -1;
		if (!c->secret_id_file[0])
			return 0; /* a role with bind_secret_id=false */
		if (read_sealed(v, c->secret_id_file, &v->secret_id, "secret_id_file") < 0)
			return -1;
		if (c->remove_secret_id_file_after_reading) {
			if (unlink(c->secret_id_file) == 0)
				bcn_info(v->log, "removed %s after reading it (remove_secret_id_file_after_reading)",
					 c->secret_id_file);
			else
				bcn_warn(v->log, "could not remove %s after reading it: %m", c->secret_id_file);
		}
		return 0;
	}
	return -1;
}

/* ---- scheduling ------------------------------------------------------------ */

static void schedule(struct vault_ctx *v, int what, uint64_t ms)
{
	if (v->stopping)
		return;
	evtimer_del(v->auth_ev);
	v->auth_next = what;
	bcn_timer_ms(v->auth_ev, ms);
}

static bool token_expired(const struct vault_ctx *v)
{
	return v->token_expires_ms && bcn_now_ms() >= v->token_expires_ms;
}

static uint64_t left_ms(const struct vault_ctx *v)
{
	uint64_t now = bcn_now_ms();
	return v->token_expires_ms > now ? v->token_expires_ms - now : 0;
}

/* After every grant: renew at 2/3 of it, or log in again when it was the last. */
static void plan_next(struct vault_ctx *v, uint64_t granted_s)
{
	if (!v->token_expires_ms)
		return; /* never expires (a root token) */
	if (v->token_renewable && !v->token_capped)
		schedule(v, NEXT_RENEW, vault_two_thirds(granted_s * 1000));
	else if (v->method != VAULT_TOKEN)
		schedule(v, NEXT_LOGIN, vault_two_thirds(granted_s * 1000));
	/* token_file's token cannot be replaced: it is used until Vault refuses it. */
}

static void auth_failed(struct vault_ctx *v, const struct vault_reply *r, const char *what)
{
	char msg[sizeof(v->auth_err)];

	if (r->outcome == VAULT_REFUSED) {
		snprintf(msg, sizeof(msg), "%s: %s", what, r->msg);
		if (strcmp(msg, v->auth_err) != 0)
			bcn_warn(v->log, "%s", msg);
		snprintf(v->auth_err, sizeof(v->auth_err), "%s", msg);
		if (v->auth != AUTH_OK || token_expired(v))
			v->auth = AUTH_FAILED;
	}
	schedule(v, NEXT_LOGIN, bcn_backoff_ms(v->auth_attempt++, VAULT_RETRY_BASE_MS, VAULT_RETRY_MAX_MS));
}

/* A usable token arrived (login) or was confirmed (token_file). */
static void got_token(struct vault_ctx *v, uint64_t ttl, bool renewable, bool fresh)
{
	bool first = !v->ever_authed;

	v->auth = AUTH_OK;
	v->ever_authed = true;
	if (fresh || first)
		v->token_gen++;
	v->auth_attempt = 0;
	v->auth_err[0] = '\0';
	v->token_ttl_s = ttl;
	v->token_increment_s = ttl;
	v->token_renewable = renewable;
	v->token_capped = false;
	v->token_expires_ms = ttl ? bcn_now_ms() + ttl * 1000 : 0;
	if (fresh || first)
		bcn_info(v->log, "%s Vault with %s (token TTL %llus%s)",
			 v->method == VAULT_TOKEN ? "authenticated to" : "logged in to", method_name(v->method),
			 (unsigned long long)ttl, ttl == 0 && v->lookup_denied ? ", unknown: lookup-self is denied" :
			 ttl == 0 ? ", never expires" : renewable ? ", renewable" : ", not renewable");
	plan_next(v, ttl);
	vault_secrets_token_ready(v, fresh && !first);
}

/* ---- login ------------------------------------------------------------------ */

static void login_done(struct vault_ctx *v, const struct vault_reply *r, void *arg)
{
	json_t *auth, *tok;
	const char *t;
	size_t tl;

	(void)arg;
	v->auth_req = NULL;
	if (r->outcome != VAULT_OK) {
		char what[64];
		snprintf(what, sizeof(what), "Vault refused the %s login", method_name(v->method));
		auth_failed(v, r, what);
		return;
	}
	auth = json_object_get(r->body, "auth");
	tok = json_object_get(auth, "client_token");
	t = json_string_value(tok);
	tl = json_string_length(tok);
	if (!t || !printable(t, tl) || tl > VAULT_TOKEN_MAX ||
	    bcn_secrets_seal(v->store, &v->token, t, tl) < 0) {
		struct vault_reply bad = { .outcome = VAULT_REFUSED,
					   .msg = "the answer holds no usable client_token" };
		auth_failed(v, &bad, "Vault's login answer is unusable");
		return;
	}
	v->token_ours = true;
	got_token(v, vault_seconds(json_object_get(auth, "lease_duration")),
		  json_is_true(json_object_get(auth, "renewable")), true);
}

/* lookup-self is in Vault's default policy; a token created without it
 * (no_default_policy) is refused there although it works. That is not an
 * invalid token: the token is kept with the TTL its login or renewal gave. */
static void note_lookup_denied(struct vault_ctx *v)
{
	if (!v->lookup_denied)
		bcn_warn(v->log, "Vault denies auth/token/lookup-self to this token (a token without the "
			 "default policy?); %s", v->method == VAULT_TOKEN ?
			 "using it, with an unknown TTL, until Vault calls it invalid" :
			 "relying on the TTL its login or renewal returned");
	v->lookup_denied = true;
}

/* token_file's token: lookup-self tells whether it works and for how long. */
static void lookup_done(struct vault_ctx *v, const struct vault_reply *r, void *arg)
{
	json_t *data;

	(void)arg;
	v->auth_req = NULL;
	if (r->outcome == VAULT_REFUSED && r->acl_denied) {
		/* Vault accepted the token but will not say its TTL: use it. */
		note_lookup_denied(v);
		got_token(v, 0, false, v->token_from_file_new);
		v->token_from_file_new = false;
		return;
	}
	if (r->outcome != VAULT_OK) {
		if (r->denied)
			v->auth = AUTH_FAILED;
		auth_failed(v, r, "Vault refused the token in token_file");
		return;
	}
	data = json_object_get(r->body, "data");
	got_token(v, vault_seconds(json_object_get(data, "ttl")),
		  json_is_true(json_object_get(data, "renewable")), v->token_from_file_new);
	v->token_from_file_new = false;
}

/* Build {"k1":"v1","k2":"v2"} in the arena from up to two sealed values. */
static char *login_body(struct vault_ctx *v, const char *k1, const char *plain1,
			const struct bcn_sealed *s1, const char *k2, const struct bcn_sealed *s2,
			size_t *len)
{
	size_t l1 = 0, l2 = 0, need;
	const char *v1 = plain1, *v2 = NULL;
	char *body;

	need = 6 * (bcn_sealed_len(s1) + bcn_sealed_len(s2) + (plain1 ? strlen(plain1) : 0)) + 64;
	if (bcn_secrets_reserve(v->store, need + bcn_sealed_len(s1) + bcn_sealed_len(s2) + 64) < 0)
		return NULL;
	if (s1 && !(v1 = bcn_secrets_unseal(v->store, s1, &l1)))
		return NULL;
	if (!s1)
		l1 = strlen(v1);
	if (s2 && s2->box && !(v2 = bcn_secrets_unseal(v->store, s2, &l2)))
		return NULL;
	if (!(body = bcn_secrets_scratch(v->store, need)))
		return NULL;
	*len = (size_t)sprintf(body, "{\"%s\":", k1);
	*len += vault_json_string(body + *len, v1, l1);
	if (v2) {
		*len += (size_t)sprintf(body + *len, ",\"%s\":", k2);
		*len += vault_json_string(body + *len, v2, l2);
	}
	body[(*len)++] = '}';
	body[*len] = '\0';
	return body;
}

static void login(struct vault_ctx *v)
{
	size_t mark = bcn_secrets_mark(v->store), len = 0;
	char path[300], *body = NULL;

	if (v->auth == AUTH_OK && token_expired(v)) {
		bcn_warn(v->log, "the Vault token expired before it could be renewed; %s",
			 v->method == VAULT_TOKEN ? "checking token_file's token again" : "logging in again");
		v->auth = AUTH_NONE; /* requests wait for the new one (and say so: stale) */
	}
	if (v->stopping || v->auth_req)
		return;
	evtimer_del(v->auth_ev);
	if (v->method == VAULT_KUBERNETES || (v->method == VAULT_TOKEN && v->auth != AUTH_OK)) {
		if (reread_cred(v) && v->method == VAULT_TOKEN)
			v->token_from_file_new = true;
	}
	if (v->method == VAULT_TOKEN) {
		v->auth_req = vault_request(v, "GET", "auth/token/lookup-self", NULL, 0, VREQ_TOKEN,
					    lookup_done, v);
	} else {
		snprintf(path, sizeof(path), "auth/%s/login", v->mount);
		if (v->method == VAULT_APPROLE)
			body = login_body(v, "role_id", NULL, &v->role_id, "secret_id", &v->secret_id, &len);
		else
			body = login_body(v, "role", v->role, NULL, "jwt", &v->jwt, &len);
		if (body)
			v->auth_req = vault_request(v, "POST", path, body, len, 0, login_done, v);
		bcn_secrets_release(v->store, mark);
	}
	if (v->auth_req) {
		v->auth_busy = BUSY_LOGIN;
		return;
	}
	snprintf(v->auth_err, sizeof(v->auth_err), "could not send the login request");
	schedule(v, NEXT_LOGIN, bcn_backoff_ms(v->auth_attempt++, VAULT_RETRY_BASE_MS, VAULT_RETRY_MAX_MS));
}

/* ---- renewal ------------------------------------------------------------- */

static void renew_done(struct vault_ctx *v, const struct vault_reply *r, void *arg)
{
	json_t *auth;
	uint64_t ttl;

	(void)arg;
	v->auth_req = NULL;
	if (r->outcome == VAULT_OK) {
		auth = json_object_get(r->body, "auth");
		ttl = vault_seconds(json_object_get(auth, "lease_duration"));
		if (ttl == 0) {
			bcn_warn(v->log, "Vault renewed the token without a TTL; logging in again");
			login(v);
			return;
		}
		v->auth_attempt = 0;
		v->token_ttl_s = ttl;
		v->token_expires_ms = bcn_now_ms() + ttl * 1000;
		v->token_capped = ttl < v->token_increment_s;
		if (v->token_capped && v->method != VAULT_TOKEN)
			bcn_info(v->log, "the Vault token reached its max TTL (%llus left): logging in again "
				 "before it expires", (unsigned long long)ttl);
		else if (v->token_capped)
			bcn_warn(v->log, "the token in token_file reaches its max TTL in %llus and cannot be "
				 "renewed further; write a new token into token_file (it is read again when "
				 "this one stops working)", (unsigned long long)ttl);
		else
			bcn_debug(v->log, "renewed the Vault token for %llus", (unsigned long long)ttl);
		plan_next(v, ttl);
		return;
	}
	if (r->outcome == VAULT_UNREACHABLE && !(r->status >= 500 && r->body && !r->sealed)) {
		/* Vault did not answer: try again while the token lives. */
		if (!token_expired(v)) {
			uint64_t ms = bcn_backoff_ms(v->auth_attempt++, VAULT_RETRY_BASE_MS, VAULT_RETRY_MAX_MS), left = left_ms(v);
			schedule(v, NEXT_RENEW, ms < left ? ms : left);
			return;
		}
		v->auth = AUTH_NONE;
		login(v);
		return;
	}
	bcn_warn(v->log, "Vault refused to renew the token (%s); %s", r->msg,
		 v->method == VAULT_TOKEN ? "checking it" : "logging in again");
	if (r->bad_token)
		v->auth = AUTH_NONE;
	login(v);
}

static void renew(struct vault_ctx *v)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "{\"increment\":\"%llus\"}",
			 (unsigned long long)v->token_increment_s);

	if (v->stopping || v->auth_req)
		return;
	v->auth_req = vault_request(v, "POST", "auth/token/renew-self", body, (size_t)n, VREQ_TOKEN,
				    renew_done, v);
	if (v->auth_req)
		v->auth_busy = BUSY_RENEW;
	else
		schedule(v, NEXT_RENEW, bcn_backoff_ms(v->auth_attempt++, VAULT_RETRY_BASE_MS, VAULT_RETRY_MAX_MS));
}

static void auth_tick(evutil_socket_t fd, short what, void *arg)
{
	struct vault_ctx *v = arg;

	(void)fd;
	(void)what;
	if (v->auth_next == NEXT_RENEW && v->auth == AUTH_OK && !token_expired(v))
		renew(v);
	else
		login(v);
}

void vault_auth_start(struct vault_ctx *v)
{
	login(v);
}

/* ---- refusals seen by other requests ------------------------------------------ */

static void verify_done(struct vault_ctx *v, const struct vault_reply *r, void *arg)
{
	(void)arg;
	v->auth_req = NULL;
	if (r->outcome == VAULT_REFUSED && r->denied && !r->acl_denied) {
		vault_auth_refused(v, true);
		return;
	}
	if (r->outcome == VAULT_REFUSED && r->acl_denied)
		note_lookup_denied(v);
	/* The token is fine: the 403 was Vault's ACL (reported by that secret).
	 * Put back the renewal or login the verification displaced, at 2/3 of
	 * what is left of the token. */
	if (v->auth == AUTH_OK && v->token_expires_ms &&
	    ((v->token_renewable && !v->token_capped) || v->method != VAULT_TOKEN))
		schedule(v, v->token_renewable && !v->token_capped ? NEXT_RENEW : NEXT_LOGIN,
			 vault_two_thirds(left_ms(v)));
}

void vault_auth_refused(struct vault_ctx *v, bool certain)
{
	uint64_t now = bcn_now_ms();

	if (v->stopping)
		return;
	if (certain) {
		if (v->auth_req && v->auth_busy == BUSY_LOGIN)
			return; /* a new token is on its way */
		if (v->auth == AUTH_OK)
			bcn_warn(v->log, "Vault says the token is invalid (revoked or expired); %s",
				 v->method == VAULT_TOKEN ? "checking it again" : "logging in again");
		v->auth = AUTH_NONE;
		vault_req_cancel(v->auth_req);
		v->auth_req = NULL;
		login(v);
		return;
	}
	if (v->auth_req || v->auth != AUTH_OK || now - v->last_verify_ms < VERIFY_EVERY_MS)
		return;
	v->last_verify_ms = now;
	v->auth_req = vault_request(v, "GET", "auth/token/lookup-self", NULL, 0, VREQ_TOKEN,
				    verify_done, v);
	if (v->auth_req) {
		v->auth_busy = BUSY_VERIFY;
		evtimer_del(v->auth_ev); /* verify_done plans again */
	}
}

/* ---- stop ------------------------------------------------------------------ */

static void revoke_done(struct vault_ctx *v, const struct vault_reply *r, void *arg)
{
	bcn_stop_done_cb done = v->stop_done;

	(void)arg;
	v->auth_req = NULL;
	if (r->outcome == VAULT_OK)
		bcn_info(v->log, "revoked the Vault token (and the leases it holds)");
	else
		bcn_warn(v->log, "could not revoke the Vault token (%s); it expires on its own", r->msg);
	bcn_sealed_clear(&v->token);
	v->auth = AUTH_NONE;
	v->stop_done = NULL;
	if (done)
		done(v->ins);
}

void vault_auth_stop(struct vault_ctx *v, bcn_stop_done_cb done)
{
	evtimer_del(v->auth_ev);
	vault_req_cancel(v->auth_req);
	v->auth_req = NULL;
	if (v->revoke_on_shutdown && v->token_ours && v->auth == AUTH_OK && !token_expired(v)) {
		v->stop_done = done;
		v->auth_req = vault_request(v, "POST", "auth/token/revoke-self", NULL, 0,
					    VREQ_TOKEN | VREQ_SHORT, revoke_done, v);
		if (v->auth_req) {
			v->auth_busy = BUSY_REVOKE;
			return;
		}
		v->stop_done = NULL;
	}
	done(v->ins);
}

void vault_auth_free(struct vault_ctx *v)
{
	if (v->auth_ev)
		event_free(v->auth_ev);
	v->auth_ev = NULL;
	bcn_sealed_clear(&v->token);
	bcn_sealed_clear(&v->role_id);
	bcn_sealed_clear(&v->secret_id);
	bcn_sealed_clear(&v->jwt);
	free(v->cred_path);
	free(v->mount);
	free(v->role);
}

json_t *vault_auth_self(struct vault_ctx *v)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "method", json_string(method_name(v->method)));
	json_object_set_new(o, "authenticated", json_boolean(v->auth == AUTH_OK));
	json_object_set_new(o, "token_ttl", v->auth == AUTH_OK && v->token_expires_ms ?
				json_integer((json_int_t)(left_ms(v) / 1000)) : json_null());
	json_object_set_new(o, "token_renewable", json_boolean(v->token_renewable));
	json_object_set_new(o, "max_ttl_reached", json_boolean(v->token_capped));
	json_object_set_new(o, "logins", json_integer((json_int_t)v->token_gen));
	return o;
}
