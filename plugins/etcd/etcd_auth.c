/*
 * etcd_auth.c - the authentication exchange with etcd: /v3/auth/authenticate
 * with the username and password, and the token cut out of the answer.
 *
 * The password and the token live only in sodium memory and in requests
 * marked sensitive (wiped when freed). The token is cut out of the answer by
 * hand, because jansson would copy it into memory that is freed without
 * being wiped. What a failure or a success means for the session (retry,
 * reconnect, send the queued requests) is decided in etcd_conn.c.
 */
#include <event2/buffer.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "etcd.h"

#define MSG_LEN 240

/* Append s as a JSON string body (quotes included); returns the new length. */
static size_t json_escape(char *out, size_t at, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	out[at++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[at++] = '\\';
			out[at++] = (char)ch;
		} else if (ch < 0x20) {
			memcpy(out + at, "\\u00", 4);
			out[at + 4] = hex[ch >> 4];
			out[at + 5] = hex[ch & 15];
			at += 6;
		} else {
			out[at++] = (char)ch;
		}
	}
	out[at++] = '"';
	return at;
}

/* Cut "token":"..." out of the answer into the header buffer. */
static int take_token(struct etcd_ctx *ctx, const char *body, size_t len)
{
	static const char key[] = "\"token\"";
	const char *p = memmem(body, len, key, sizeof(key) - 1), *end = body + len;
	size_t n = 0, at = sizeof("Authorization: ") - 1;

	if (!p)
		return -1;
	for (p += sizeof(key) - 1; p < end && (*p == ' ' || *p == ':'); p++)
		;
	if (p >= end || *p++ != '"')
		return -1;
	memcpy(ctx->auth_header, "Authorization: ", at);
	while (p + n < end && p[n] != '"') {
		/* Tokens are plain ASCII (simple or JWT): refuse escapes and controls. */
		if (p[n] == '\\' || (unsigned char)p[n] < 0x21 || (unsigned char)p[n] > 0x7e ||
		    at + n + 1 >= ETCD_TOKEN_MAX)
			goto bad;
		ctx->auth_header[at + n] = p[n];
		n++;
	}
	if (p + n >= end || n == 0)
		goto bad;
	ctx->auth_header[at + n] = '\0';
	return 0;
bad:
	sodium_memzero(ctx->auth_header, ETCD_TOKEN_MAX);
	return -1;
}

static void auth_done(const struct bcn_http_response *res, void *arg)
{
	struct etcd_ctx *ctx = arg;
	size_t len = evbuffer_get_length(res->body);
	const char *body = len ? (const char *)evbuffer_pullup(res->body, -1) : "";
	char msg[MSG_LEN];

	ctx->auth_call = NULL;
	if (res->error) {
		snprintf(msg, sizeof(msg), "authentication at %s failed: %s", etcd_conn_endpoint(ctx),
			 res->error_msg);
		etcd_conn_auth_failed(ctx, msg);
		return;
	}
	if (res->status != 200 || take_token(ctx, body, len) < 0) {
		/* An error answer holds etcd's sentence, never the password. */
		json_t *j = res->status != 200 ? json_loadb(body, len, 0, NULL) : NULL;
		const char *m = json_string_value(json_object_get(j, "message"));
		snprintf(msg, sizeof(msg), "authentication as user \"%.48s\" failed: %.100s; check username and password_file",
			 ctx->username, m ? m : "etcd answered without a token");
		json_decref(j);
		etcd_conn_auth_failed(ctx, msg);
		return;
	}
	bcn_debug(ctx->log, "authenticated as user \"%s\"", ctx->username);
	etcd_conn_auth_ok(ctx);
}

void etcd_auth_start(struct etcd_ctx *ctx)
{
	size_t cap = (strlen(ctx->username) + strlen(ctx->password)) * 6 + 64, at = 0;
	char *body = sodium_malloc(cap), url[1024];
	struct bcn_http_opts o;

	if (!body) {
		etcd_conn_auth_failed(ctx, "cannot allocate guarded memory for the authentication request");
		return;
	}
	memcpy(body + at, "{\"name\":", 8);
	at = json_escape(body, at + 8, ctx->username);
	memcpy(body + at, ",\"password\":", 12);
	at = json_escape(body, at + 12, ctx->password);
	body[at++] = '}';
	snprintf(url, sizeof(url), "%s/v3/auth/authenticate", etcd_conn_endpoint(ctx));
	memset(&o, 0, sizeof(o));
	o.method = "POST";
	o.url = url;
	o.headers = (const char *const[]){ "Content-Type: application/json", NULL };
	o.body = body;
	o.body_len = at;
	o.timeout_ms = ctx->timeout_ms;
	o.connect_timeout_ms = ctx->dial_timeout_ms;
	bcn_tls_http_opts(&etcd_conf(ctx)->tls, &o);
	o.sensitive = 1;
	o.on_done = auth_done;
	o.arg = ctx;
	ctx->auth_call = bcn_http_start(ctx->core->http, &o);
	sodium_free(body); /* the client copied it and wipes its copy */
	if (!ctx->auth_call)
		etcd_conn_auth_failed(ctx, "could not start the authentication request");
}

void etcd_conn_reauth(struct etcd_ctx *ctx)
{
	if (!ctx->password || ctx->auth_call)
		return;
	sodium_memzero(ctx->auth_header, ETCD_TOKEN_MAX);
	etcd_auth_start(ctx);
}
