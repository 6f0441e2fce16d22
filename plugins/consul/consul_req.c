/*
 * consul_req.c - every request to the Consul agent, and what its answer means.
 *
 * A request is an HTTP call plus the plugin's view of the outcome: an HTTP
 * answer (whatever its status) proves the agent is there; anything else
 * (refused, timed out, closed mid-answer, TLS) means it is not, for every
 * request alike. The reply callback runs first, then the shared
 * reachability is updated, so the loop that noticed has already scheduled
 * its own retry when the others are told.
 *
 * The ACL token lives only in sodium memory (the header line) and in the
 * HTTP client's copies of requests marked sensitive, which it wipes. Error
 * texts are taken from Consul's answer bodies; should one ever quote the
 * token, the text is replaced by a generic sentence.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consul.h"

#define MSG_LEN 240
#define TOKEN_PREFIX "X-Consul-Token: "

struct consul_req {
	struct consul_ctx *ctx;
	struct bcn_http_call *call;
	uint64_t timeout_ms;
	consul_reply_cb cb;
	void *arg;
};

/* ---- helpers --------------------------------------------------------------- */

int consul_escape(char *out, size_t cap, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t at = strlen(out);

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			     c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
		if (at + (plain ? 1 : 3) >= cap)
			return -1;
		if (plain) {
			out[at++] = (char)c;
		} else {
			out[at++] = '%';
			out[at++] = hex[c >> 4];
			out[at++] = hex[c & 15];
		}
	}
	out[at] = '\0';
	return 0;
}

/* ---- answers --------------------------------------------------------------- */

static bool quotes_token(const struct consul_ctx *ctx, const char *body, size_t len)
{
	const char *tok;
	size_t tlen;

	if (!ctx->token_header)
		return false;
	tok = ctx->token_header + sizeof(TOKEN_PREFIX) - 1;
	tlen = strlen(tok);
	return tlen && memmem(body, len, tok, tlen) != NULL;
}

/* Consul's error text: the first line of the body, printable, short. */
static void error_text(const struct consul_ctx *ctx, const char *body, size_t len, char *out, size_t cap)
{
	size_t j = 0;

	if (quotes_token(ctx, body, len)) {
		snprintf(out, cap, "(the answer quoted the token; not shown)");
		return;
	}
	for (size_t i = 0; i < len && body[i] != '\n' && j + 1 < cap; i++)
		out[j++] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : '?';
	while (j > 0 && out[j - 1] == ' ')
		j--;
	out[j] = '\0';
	if (!j)
		snprintf(out, cap, "(no text)");
}

static void describe(struct consul_ctx *ctx, struct consul_reply *rep, char *msg)
{
	char text[160];

	error_text(ctx, rep->body, rep->len, text, sizeof(text));
	if (rep->status == 403) {
		rep->acl = true;
		if (strstr(text, "ACL not found"))
			snprintf(msg, MSG_LEN, "Consul does not know the ACL token (\"ACL not found\"): "
				 "check the token in token_file");
		else if (!ctx->token_header)
			snprintf(msg, MSG_LEN, "Consul refused the request without a token (%s): set token_file", text);
		else
			snprintf(msg, MSG_LEN, "the ACL token lacks a permission: %s", text);
		return;
	}
	snprintf(msg, MSG_LEN, "Consul answered HTTP %ld: %s", rep->status, text);
}

static uint64_t parse_index(const char *s, bool *ok)
{
	uint64_t v = 0;

	*ok = s && *s;
	for (; *ok && *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10) {
			*ok = false;
			break;
		}
		v = v * 10 + (uint64_t)(*s - '0');
	}
	return *ok ? v : 0;
}

static void req_done(const struct bcn_http_response *res, void *arg)
{
	struct consul_req *r = arg;
	struct consul_ctx *ctx = r->ctx;
	struct consul_reply rep = { 0 };
	char msg[MSG_LEN] = "";
	const char *f;
	size_t n;

	r->call = NULL;
	rep.status = res->status;
	if (res->error) {
		/* Stable sentences (curl's texts carry timings), so that the same
		 * problem is logged once and not on every retry. */
		rep.outcome = CONSUL_UNREACHABLE;
		if (res->error == BCN_HTTP_ECONNECT)
			snprintf(msg, sizeof(msg), "cannot connect to the Consul agent at %s", ctx->address);
		else if (res->error == BCN_HTTP_ETIMEDOUT)
			snprintf(msg, sizeof(msg), "the Consul agent at %s did not answer within %llu ms", ctx->address,
				 (unsigned long long)r->timeout_ms);
		else
			snprintf(msg, sizeof(msg), "the connection to the Consul agent at %s failed: %s", ctx->address,
				 res->error_msg);
		n = strlen(msg);
		if (n && msg[n - 1] == '.')
			msg[n - 1] = '\0';
		rep.msg = msg;
	} else {
		rep.outcome = CONSUL_ANSWERED;
		rep.len = evbuffer_get_length(res->body);
		rep.body = rep.len ? (const char *)evbuffer_pullup(res->body, -1) : "";
		if (!rep.body) {
			rep.body = "";
			rep.len = 0;
		}
		rep.index = parse_index(bcn_http_header(res->call, "X-Consul-Index"), &rep.has_index);
		f = bcn_http_header(res->call, "X-Consul-Results-Filtered-By-Acls");
		rep.filtered = f && strcmp(f, "true") == 0;
		/* setMeta/setKnownLeader (agent/http.go) on reads; every answer
		 * carries the ACL default policy (agent/http.go, since 1.9). */
		f = bcn_http_header(res->call, "X-Consul-KnownLeader");
		rep.known_leader = !f ? -1 : strcmp(f, "false") != 0;
		f = bcn_http_header(res->call, "X-Consul-Default-ACL-Policy");
		rep.acl_deny = f && strcmp(f, "deny") == 0;
		if (rep.status < 200 || rep.status > 299) {
			describe(ctx, &rep, msg);
			rep.msg = msg;
		}
		/* Before the callback, so what it reports already counts the agent as there. */
		consul_answered(ctx);
		consul_note_headers(ctx, &rep);
	}
	r->cb(ctx, &rep, r->arg);
	free(r);
	if (rep.outcome == CONSUL_UNREACHABLE)
		consul_lost(ctx, msg);
}

/* ---- requests -------------------------------------------------------------- */

struct consul_req *consul_request(struct consul_ctx *ctx, const char *method, const char *path_query,
				  const char *body, unsigned flags, consul_reply_cb cb, void *arg)
{
	const char *headers[3] = { NULL, NULL, NULL };
	struct bcn_http_opts o;
	struct consul_req *r;
	char *url = NULL;
	size_t nh = 0;

	/* The instance's requests form one group, cancelled together at exit. */
	if (!ctx->reqs)
		ctx->reqs = bcn_http_group_new(ctx->core->http);
	r = ctx->reqs ? calloc(1, sizeof(*r)) : NULL;
	/* Enterprise namespace and partition scope every request alike. */
	if (!r || asprintf(&url, "%s%s%s%s", ctx->base_url, path_query,
			   ctx->scope_param[0] ? (strchr(path_query, '?') ? "&" : "?") : "", ctx->scope_param) < 0) {
		free(r);
		bcn_warn(ctx->log, "could not start a request to Consul (out of memory)");
		return NULL;
	}
	r->ctx = ctx;
	r->cb = cb;
	r->arg = arg;
	if (ctx->token_header)
		headers[nh++] = ctx->token_header;
	if (body)
		headers[nh++] = "Content-Type: application/json";
	memset(&o, 0, sizeof(o));
	o.method = method;
	o.url = url;
	o.unix_socket = ctx->unix_path;
	o.headers = headers;
	o.body = body;
	o.body_len = body ? strlen(body) : 0;
	/* Consul holds a blocking query up to wait + wait/16 before it answers. */
	o.timeout_ms = ctx->timeout_ms;
	if (flags & CONSUL_REQ_LONG)
		o.timeout_ms += ctx->wait_ms + ctx->wait_ms / 16;
	o.connect_timeout_ms = ctx->timeout_ms;
	r->timeout_ms = o.timeout_ms;
	bcn_tls_http_opts(&consul_conf(ctx)->tls, &o);
	o.sensitive = ctx->token_header != NULL;
	o.on_done = req_done;
	o.arg = r;
	o.group = ctx->reqs;
	o.on_cancel = free;
	r->call = bcn_http_start(ctx->core->http, &o);
	free(url);
	if (!r->call) {
		free(r);
		return NULL;
	}
	return r;
}

void consul_req_cancel(struct consul_req *r)
{
	if (!r)
		return;
	bcn_http_cancel(r->call);
	free(r);
}
