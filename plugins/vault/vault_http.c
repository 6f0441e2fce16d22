/*
 * vault_http.c - every request to Vault, and what its answer means.
 *
 * Each request carries the namespace header and, when asked, the token; the
 * token is opened into the store's guarded arena just long enough for the
 * HTTP client to copy the header (requests are marked sensitive, so that copy
 * is wiped when the request ends). Vault's answers are classified once here:
 * OK, refused by Vault (4xx, with the first of its "errors" as the reason),
 * or unreachable (no answer, 5xx, sealed). The last classification drives
 * the instance's state (sealed / unreachable) and its recovery. One 301,
 * 302 or 307 (a standby pointing at the active node) is followed here, for
 * every request, as Vault's Go client does.
 *
 * Durations Vault sends (lease_duration, ttl) are clamped to 0..10 years by
 * vault_seconds() before any arithmetic: a huge or negative number from a
 * broken or hostile server must not overflow into "expired at once" or a
 * renewal loop.
 *
 * A parse error from jansson is never quoted: its text may contain a piece of
 * the body, which may be a secret.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vault.h"

#define MSG_LEN 240
#define SHORT_MS 3000

struct vault_req {
	struct vault_ctx *v;
	struct bcn_http_call *call;
	vault_reply_cb cb;
	void *arg;
	/* What following a redirect needs to send the request again: the same
	 * method, flags and body (sealed: a login body holds the secret_id or
	 * the JWT). */
	char method[8];
	unsigned flags;
	struct bcn_sealed body;
	bool has_body, redirected;
};

uint64_t vault_two_thirds(uint64_t ttl_ms)
{
	uint64_t at = ttl_ms * 2 / 3;

	return at - at * randombytes_uniform(4) / 100;
}

uint64_t vault_seconds(const json_t *j)
{
	double d;

	if (json_is_integer(j)) {
		json_int_t i = json_integer_value(j);
		return i <= 0 ? 0 : (uint64_t)i > VAULT_MAX_SECONDS ? VAULT_MAX_SECONDS : (uint64_t)i;
	}
	if (!json_is_real(j))
		return 0;
	d = json_real_value(j);
	if (!(d > 0)) /* negative, zero or NaN */
		return 0;
	return d >= (double)VAULT_MAX_SECONDS ? VAULT_MAX_SECONDS : (uint64_t)d;
}

size_t vault_json_string(char *dst, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t j = 0;

	dst[j++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c == '"' || c == '\\') {
			dst[j++] = '\\';
			dst[j++] = (char)c;
		} else if (c < 0x20) {
			memcpy(dst + j, "\\u00", 4);
			dst[j + 4] = hex[c >> 4];
			dst[j + 5] = hex[c & 15];
			j += 6;
		} else {
			dst[j++] = (char)c;
		}
	}
	dst[j++] = '"';
	dst[j] = '\0';
	return j;
}

/* ---- classification ------------------------------------------------------- */

/* Vault's first error (or warning) as one line: "1 error occurred:\n\t* permission
 * denied\n\n" becomes "permission denied". */
static void vault_error_text(const json_t *body, const char *key, char *out, size_t len)
{
	const json_t *errs = json_object_get(body, key);
	const char *e = json_string_value(json_array_get(errs, 0));
	size_t j = 0;
	bool space = false;

	out[0] = '\0';
	if (!e)
		return;
	if (strstr(e, "error occurred:") || strstr(e, "errors occurred:")) {
		const char *bullet = strchr(e, '*');
		if (bullet)
			e = bullet + 1;
	}
	for (; *e && j + 2 < len; e++) {
		unsigned char c = (unsigned char)*e;

		if (c == '*') {
			if (j && out[j - 1] != ';')
				out[j++] = ';';
			space = true;
			continue;
		}
		if (c < 0x20 || c == 0x7f || c == ' ') {
			space = true;
			continue;
		}
		if (space && j)
			out[j++] = ' ';
		space = false;
		out[j++] = (char)c;
	}
	while (j && (out[j - 1] == ';' || out[j - 1] == ' '))
		j--;
	out[j] = '\0';
}

static void classify(struct vault_ctx *v, const struct bcn_http_response *res,
		     struct vault_reply *rep, char *msg, json_t **body)
{
	char verr[160];
	size_t len;

	rep->msg = msg;
	rep->outcome = VAULT_UNREACHABLE;
	rep->status = res->status;
	switch (res->error) {
	case BCN_HTTP_OK:
		break;
	case BCN_HTTP_ECONNECT:
		snprintf(msg, MSG_LEN, "cannot connect to Vault at %s", v->address);
		return;
	case BCN_HTTP_ETIMEDOUT:
		snprintf(msg, MSG_LEN, "Vault at %s did not answer in time", v->address);
		return;
	case BCN_HTTP_ETLS:
		snprintf(msg, MSG_LEN, "TLS with Vault at %s failed: %s", v->address, res->error_msg);
		return;
	case BCN_HTTP_ETOOBIG:
		snprintf(msg, MSG_LEN, "Vault's answer is too large");
		return;
	default:
		snprintf(msg, MSG_LEN, "Vault at %s: %s", v->address, res->error_msg);
		return;
	}
	len = evbuffer_get_length(res->body);
	if (len) {
		/* One chain (the client hands the body over whole): no copy is made. */
		*body = json_loadb((const char *)evbuffer_pullup(res->body, -1), len, 0, NULL);
		bcn_secrets_wipe_stack();
	}
	if (*body && !json_is_object(*body)) {
		json_decref(*body);
		*body = NULL;
	}
	if (res->status >= 200 && res->status < 300) {
		if (len && !*body) {
			snprintf(msg, MSG_LEN, "Vault at %s answered HTTP %ld with something that is not "
				 "JSON (is it Vault's address?)", v->address, res->status);
			return;
		}
		rep->outcome = VAULT_OK;
		rep->body = *body;
		rep->msg = NULL;
		return;
	}
	vault_error_text(*body, "errors", verr, sizeof(verr));
	/* A KV v2 path read without data/ is a 404 whose body holds only a
	 * warning ("Invalid path for a versioned K/V secrets engine..."). */
	if (!verr[0])
		vault_error_text(*body, "warnings", verr, sizeof(verr));
	rep->body = *body;
	if (res->status == 503 && strstr(verr, "Vault is sealed")) {
		rep->sealed = true;
		snprintf(msg, MSG_LEN, "Vault at %s is sealed", v->address);
		return;
	}
	if (res->status >= 500 || res->status == 429 || res->status < 200 ||
	    (res->status >= 300 && res->status < 400)) {
		snprintf(msg, MSG_LEN, "Vault at %s answered HTTP %ld%s%s", v->address, res->status,
			 verr[0] ? ": " : "", verr);
		return;
	}
	rep->outcome = VAULT_REFUSED;
	rep->denied = res->status == 403;
	rep->bad_token = rep->denied && strstr(verr, "invalid token") != NULL;
	/* An ACL denial of a token Vault accepted is a multierror (request_handling.go
	 * CheckToken appends ErrPermissionDenied); Vaults before 1.17 answered an
	 * invalid token with a bare "permission denied". */
	if (rep->denied && !rep->bad_token) {
		const char *e = json_string_value(json_array_get(json_object_get(*body, "errors"), 0));
		rep->acl_denied = e && (strstr(e, "error occurred:") || strstr(e, "errors occurred:"));
	}
	snprintf(msg, MSG_LEN, "HTTP %ld: %s", res->status, verr[0] ? verr : "no reason given");
}

/* ---- requests -------------------------------------------------------------- */

static void req_free(struct vault_req *r)
{
	bcn_sealed_clear(&r->body);
	free(r);
}

/* The request's group cancelled it (vault_exit). */
static void req_cancelled(void *arg)
{
	req_free(arg);
}

static void req_done(const struct bcn_http_response *res, void *arg);

/* Start r's HTTP call to url: token (when asked) and namespace headers, the
 * body opened from its sealed copy. 0, or -1 when it could not be built or
 * started (logged). */
static int req_send(struct vault_req *r, const char *url)
{
	struct vault_ctx *v = r->v;
	const char *headers[5], *body = NULL;
	struct bcn_http_opts o;
	size_t nh = 0, mark = bcn_secrets_mark(v->store), body_len = 0;

	/* Room for the token header and the body; the arena only grows while
	 * empty (a login's caller still holds the body it built there). */
	if (mark == 0 &&
	    bcn_secrets_reserve(v->store, (bcn_sealed_len(&v->token) + bcn_sealed_len(&r->body)) * 2 + 128) < 0)
		goto fail;
	if (r->flags & VREQ_TOKEN) {
		size_t tl = 0;
		const char *tok;
		char *h;

		if (!(tok = bcn_secrets_unseal(v->store, &v->token, &tl)) ||
		    !(h = bcn_secrets_scratch(v->store, tl + sizeof("X-Vault-Token: "))))
			goto fail;
		memcpy(h, "X-Vault-Token: ", sizeof("X-Vault-Token: ") - 1);
		memcpy(h + sizeof("X-Vault-Token: ") - 1, tok, tl + 1);
		headers[nh++] = h;
	}
	if (r->has_body && !(body = bcn_secrets_unseal(v->store, &r->body, &body_len)))
		goto fail;
	if (v->ns_header)
		headers[nh++] = v->ns_header;
	headers[nh++] = "X-Vault-Request: true";
	if (body)
		headers[nh++] = "Content-Type: application/json";
	headers[nh] = NULL;

	memset(&o, 0, sizeof(o));
	o.method = r->method;
	o.url = url;
	o.headers = headers;
	o.body = body;
	o.body_len = body_len;
	o.timeout_ms = (r->flags & VREQ_SHORT) && v->timeout_ms > SHORT_MS ? SHORT_MS : v->timeout_ms;
	o.connect_timeout_ms = o.timeout_ms < 5000 ? o.timeout_ms : 5000;
	bcn_tls_http_opts(&vault_conf(v)->tls, &o);
	o.max_body = 4 * BCN_SECRET_MAX_DATA;
	o.sensitive = 1; /* tokens in headers, secrets in bodies */
	o.on_done = req_done;
	o.arg = r;
	o.group = v->reqs;
	o.on_cancel = req_cancelled;
	r->call = bcn_http_start(v->core->http, &o);
	bcn_secrets_release(v->store, mark);
	if (!r->call) {
		bcn_warn(v->log, "could not start a request to Vault (out of memory?)");
		return -1;
	}
	return 0;
fail:
	bcn_secrets_release(v->store, mark);
	bcn_warn(v->log, "could not build a request to Vault (out of memory or no token)");
	return -1;
}

/* A URL from a Location header that may be requested: absolute http(s), or
 * a path on the server that answered. Printable ASCII without spaces only. */
static char *redirect_url(const char *from, const char *loc, char *why, size_t why_len)
{
	size_t n = loc ? strlen(loc) : 0;
	char *url;

	if (!n || n > 2048) {
		snprintf(why, why_len, "without a usable Location");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)loc[i] <= 0x20 || (unsigned char)loc[i] >= 0x7f) {
			snprintf(why, why_len, "without a usable Location");
			return NULL;
		}
	}
	if (loc[0] == '/' && loc[1] != '/') {
		/* Relative to the origin that answered: scheme://host[:port]. */
		const char *host = strstr(from, "://") + 3, *end = strchr(host, '/');
		size_t origin = end ? (size_t)(end - from) : strlen(from);

		url = malloc(origin + n + 1);
		if (url) {
			memcpy(url, from, origin);
			memcpy(url + origin, loc, n + 1);
		}
	} else if (strncmp(loc, "https://", 8) == 0 || strncmp(loc, "http://", 7) == 0) {
		url = strdup(loc);
	} else {
		snprintf(why, why_len, "to something that is not an http(s) URL");
		return NULL;
	}
	if (!url) {
		snprintf(why, why_len, "and there is no memory to follow it");
		return NULL;
	}
	/* As Vault's Go client (api/client.go): never from https to http. */
	if (strncmp(from, "https://", 8) == 0 && strncmp(url, "https://", 8) != 0) {
		snprintf(why, why_len, "to an http:// address (refused: that would downgrade from https)");
		free(url);
		return NULL;
	}
	return url;
}

/*
 * A standby that cannot forward answers 307 with the active node's address
 * in Location and an empty body (Vault's http/handler.go respondStandby).
 * Like Vault's Go client (api/client.go RawRequestWithContext), one 301,
 * 302 or 307 is followed: same method, token and body, never from https to
 * http; a second redirect is an error. 1 when the request was sent again.
 */
static int follow_redirect(struct vault_req *r, const struct bcn_http_response *res, char *msg)
{
	struct vault_ctx *v = r->v;
	char why[120], from[600];
	char *url;
	int rc;

	if (res->error != BCN_HTTP_OK || (res->status != 301 && res->status != 302 && res->status != 307))
		return 0;
	if (r->redirected) {
		snprintf(msg, MSG_LEN, "Vault at %s redirected the request twice (HTTP %ld after a redirect); "
			 "only one redirect is followed (no active node?)", v->address, res->status);
		return -1;
	}
	snprintf(from, sizeof(from), "%s/", v->address);
	url = redirect_url(from, bcn_http_header(res->call, "Location"), why, sizeof(why));
	if (!url) {
		snprintf(msg, MSG_LEN, "Vault at %s answered HTTP %ld %s", v->address, res->status, why);
		return -1;
	}
	bcn_debug(v->log, "Vault at %s answered HTTP %ld (a standby?): following it once", v->address,
		  res->status);
	r->redirected = true;
	rc = req_send(r, url);
	free(url);
	if (rc < 0) {
		snprintf(msg, MSG_LEN, "could not follow Vault's redirect (out of memory?)");
		return -1;
	}
	return 1;
}

static void req_done(const struct bcn_http_response *res, void *arg)
{
	struct vault_req *r = arg;
	struct vault_ctx *v = r->v;
	struct vault_reply rep;
	char msg[MSG_LEN] = "";
	json_t *body = NULL;
	bool was_down = v->down;
	int redir;

	memset(&rep, 0, sizeof(rep));
	r->call = NULL;
	redir = follow_redirect(r, res, msg);
	if (redir > 0)
		return; /* r lives on; its new call ends in req_done again */
	if (redir < 0) {
		rep.outcome = VAULT_UNREACHABLE;
		rep.status = res->status;
		rep.msg = msg;
	} else {
		classify(v, res, &rep, msg, &body);
	}
	if (rep.outcome == VAULT_UNREACHABLE) {
		if (!v->down || v->sealed != rep.sealed)
			bcn_warn(v->log, "%s; serving cached secrets and retrying", msg);
		v->down = true;
		v->sealed = rep.sealed;
		snprintf(v->err, sizeof(v->err), "%s", msg);
	} else if (v->down) {
		v->down = v->sealed = false;
		v->err[0] = '\0';
		if (was_down)
			bcn_info(v->log, "Vault at %s answers again", v->address);
	}
	r->cb(v, &rep, r->arg);
	json_decref(body);
	req_free(r);
	vault_report(v);
}

struct vault_req *vault_request(struct vault_ctx *v, const char *method, const char *path,
				const char *body, size_t body_len, unsigned flags, vault_reply_cb cb,
				void *arg)
{
	struct vault_req *r;
	size_t url_len;
	char *url = NULL;

	/* The instance's requests form one group, cancelled together at exit. */
	if (!v->reqs)
		v->reqs = bcn_http_group_new(v->core->http);
	r = v->reqs ? calloc(1, sizeof(*r)) : NULL;
	if (!r || !(url = malloc(url_len = strlen(v->address) + strlen(path) + 8)) ||
	    (body && bcn_secrets_seal(v->store, &r->body, body, body_len) < 0)) {
		if (r)
			req_free(r);
		free(url);
		bcn_warn(v->log, "could not build a request to Vault (out of memory)");
		return NULL;
	}
	snprintf(url, url_len, "%s/v1/%s", v->address, path);
	snprintf(r->method, sizeof(r->method), "%s", method);
	r->has_body = body != NULL;
	r->flags = flags;
	r->v = v;
	r->cb = cb;
	r->arg = arg;
	if (req_send(r, url) < 0) {
		free(url);
		req_free(r);
		return NULL;
	}
	free(url);
	return r;
}

void vault_req_cancel(struct vault_req *r)
{
	if (!r)
		return;
	bcn_http_cancel(r->call);
	req_free(r);
}
