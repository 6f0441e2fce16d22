/*
 * vault_http.c - every request to Vault, and what its answer means.
 *
 * Each request carries the namespace header and, when asked, the token; the
 * token is opened into the store's guarded arena just long enough for the
 * HTTP client to copy the header (requests are marked sensitive, so that copy
 * is wiped when the request ends). Vault's answers are classified once here:
 * OK, refused by Vault (4xx, with the first of its "errors" as the reason),
 * or unreachable (no answer, 5xx, sealed). The last classification drives
 * the instance's state (sealed / unreachable) and its recovery.
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
	struct vault_req *prev, *next;
	struct vault_ctx *v;
	struct bcn_http_call *call;
	vault_reply_cb cb;
	void *arg;
};

uint64_t vault_two_thirds(uint64_t ttl_ms)
{
	uint64_t at = ttl_ms * 2 / 3;

	return at - at * randombytes_uniform(4) / 100;
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

/* Vault's first error as one line: "1 error occurred:\n\t* permission denied\n\n"
 * becomes "permission denied". */
static void vault_error_text(const json_t *body, char *out, size_t len)
{
	const json_t *errs = json_object_get(body, "errors");
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
	vault_error_text(*body, verr, sizeof(verr));
	rep->body = *body;
	if (res->status == 503 && strstr(verr, "Vault is sealed")) {
		rep->sealed = true;
		snprintf(msg, MSG_LEN, "Vault at %s is sealed", v->address);
		return;
	}
	if (res->status >= 500 || res->status == 429 || res->status < 200) {
		snprintf(msg, MSG_LEN, "Vault at %s answered HTTP %ld%s%s", v->address, res->status,
			 verr[0] ? ": " : "", verr);
		return;
	}
	rep->outcome = VAULT_REFUSED;
	rep->denied = res->status == 403;
	rep->bad_token = rep->denied && strstr(verr, "invalid token") != NULL;
	snprintf(msg, MSG_LEN, "HTTP %ld: %s", res->status, verr[0] ? verr : "no reason given");
}

/* ---- requests -------------------------------------------------------------- */

static void req_unlink(struct vault_req *r)
{
	struct vault_ctx *v = r->v;

	if (r->prev)
		r->prev->next = r->next;
	else if (v->reqs == r)
		v->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void req_done(const struct bcn_http_response *res, void *arg)
{
	struct vault_req *r = arg;
	struct vault_ctx *v = r->v;
	struct vault_reply rep;
	char msg[MSG_LEN] = "";
	json_t *body = NULL;
	bool was_down = v->down;

	memset(&rep, 0, sizeof(rep));
	r->call = NULL;
	req_unlink(r);
	classify(v, res, &rep, msg, &body);
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
	free(r);
	vault_report(v);
}

struct vault_req *vault_request(struct vault_ctx *v, const char *method, const char *path,
				const char *body, size_t body_len, unsigned flags, vault_reply_cb cb,
				void *arg)
{
	struct vault_req *r = calloc(1, sizeof(*r));
	const char *headers[5];
	struct bcn_http_opts o;
	size_t nh = 0, mark = bcn_secrets_mark(v->store), url_len;
	char *url = NULL;

	if (!r)
		goto fail;
	url_len = strlen(v->address) + strlen(path) + 8;
	url = malloc(url_len);
	if (!url)
		goto fail;
	snprintf(url, url_len, "%s/v1/%s", v->address, path);
	if (flags & VREQ_TOKEN) {
		size_t tl = 0;
		const char *tok;
		char *h;

		if (bcn_secrets_reserve(v->store, bcn_sealed_len(&v->token) * 2 + 64) < 0 ||
		    !(tok = bcn_secrets_unseal(v->store, &v->token, &tl)) ||
		    !(h = bcn_secrets_scratch(v->store, tl + sizeof("X-Vault-Token: "))))
			goto fail;
		memcpy(h, "X-Vault-Token: ", sizeof("X-Vault-Token: ") - 1);
		memcpy(h + sizeof("X-Vault-Token: ") - 1, tok, tl + 1);
		headers[nh++] = h;
	}
	if (v->ns_header)
		headers[nh++] = v->ns_header;
	headers[nh++] = "X-Vault-Request: true";
	if (body)
		headers[nh++] = "Content-Type: application/json";
	headers[nh] = NULL;

	memset(&o, 0, sizeof(o));
	o.method = method;
	o.url = url;
	o.headers = headers;
	o.body = body;
	o.body_len = body_len;
	o.timeout_ms = (flags & VREQ_SHORT) && v->timeout_ms > SHORT_MS ? SHORT_MS : v->timeout_ms;
	o.connect_timeout_ms = o.timeout_ms < 5000 ? o.timeout_ms : 5000;
	o.ca_file = v->ca_file;
	o.cert_file = v->cert_file;
	o.key_file = v->key_file;
	o.server_name = v->server_name;
	o.insecure_skip_verify = v->insecure_skip_verify;
	o.max_body = 4 * BCN_SECRET_MAX_DATA;
	o.sensitive = 1; /* tokens in headers, secrets in bodies */
	o.on_done = req_done;
	o.arg = r;
	r->v = v;
	r->cb = cb;
	r->arg = arg;
	r->call = bcn_http_start(v->core->http, &o);
	bcn_secrets_release(v->store, mark);
	free(url);
	if (!r->call) {
		free(r);
		bcn_warn(v->log, "could not start a request to Vault (out of memory?)");
		return NULL;
	}
	r->next = v->reqs;
	if (v->reqs)
		v->reqs->prev = r;
	v->reqs = r;
	return r;
fail:
	bcn_secrets_release(v->store, mark);
	free(url);
	free(r);
	bcn_warn(v->log, "could not build a request to Vault (out of memory or no token)");
	return NULL;
}

void vault_req_cancel(struct vault_req *r)
{
	if (!r)
		return;
	bcn_http_cancel(r->call);
	req_unlink(r);
	free(r);
}

void vault_cancel_all(struct vault_ctx *v)
{
	while (v->reqs)
		vault_req_cancel(v->reqs);
}
