/*
 * request.c - one request as a handler sees it (struct bcn_hreq, see
 * server.h): what was asked, and the answer being built. bcn_hreq_reply
 * builds the answer's head in a fixed buffer, without printf, and queues it
 * with the body on the connection (conn.c), which writes it with the other
 * answers of the same loop turn. A detached request (no connection) keeps
 * its answer instead, for unit tests and fuzz harnesses.
 */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/server_internal.h"

enum bcn_method bcn_hreq_method(const struct bcn_hreq *r)
{
	return r->method;
}

const char *bcn_hreq_target(const struct bcn_hreq *r, size_t *len)
{
	if (len)
		*len = r->target_len;
	return r->target;
}

const char *bcn_hreq_body_in(const struct bcn_hreq *r, size_t *len)
{
	*len = r->body_in_len;
	return r->body_in;
}

struct evbuffer *bcn_hreq_body(struct bcn_hreq *r)
{
	return r->body;
}

bool bcn_hreq_header(struct bcn_hreq *r, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);

	if (r->hdr_len + nl + vl + 5 > sizeof(r->hdr))
		return false;
	memcpy(r->hdr + r->hdr_len, name, nl);
	memcpy(r->hdr + r->hdr_len + nl, ": ", 2);
	memcpy(r->hdr + r->hdr_len + nl + 2, value, vl);
	memcpy(r->hdr + r->hdr_len + nl + 2 + vl, "\r\n", 3);
	r->hdr_len += nl + vl + 4;
	return true;
}

void bcn_hreq_set_type(struct bcn_hreq *r, const char *type)
{
	r->type = type;
}

void bcn_hreq_on_abort(struct bcn_hreq *r, void (*cb)(void *arg), void *arg)
{
	r->abort_cb = cb;
	r->abort_arg = arg;
}

int bcn_hreq_peer(struct bcn_hreq *r, uid_t *uid, pid_t *pid)
{
	struct bcn_conn *c = r->conn;

	if (!c)
		return -1;
	if (c->cred == 0) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		c->cred = -1;
		if (!c->s->tcp && getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
			c->uid = cred.uid;
			c->pid = cred.pid;
			c->cred = 1;
		}
	}
	if (c->cred < 0)
		return -1;
	if (uid)
		*uid = c->uid;
	if (pid)
		*pid = c->pid;
	return 0;
}

const char *bcn_http_reason(int code)
{
	switch (code) {
	case 100: return "Continue";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 417: return "Expectation Failed";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default:  return code < 500 ? "Bad Request" : "Internal Server Error";
	}
}

/* The Date header for this second (the loop's cached time: no system call). */
static const char *date_line(struct bcn_server *s)
{
	struct timeval tv;
	struct tm tm;

	if (event_base_gettimeofday_cached(s->base, &tv) < 0)
		tv.tv_sec = time(NULL);
	if (tv.tv_sec != s->date_sec || !s->date[0]) {
		s->date_sec = tv.tv_sec;
		gmtime_r(&s->date_sec, &tm);
		strftime(s->date, sizeof(s->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	}
	return s->date;
}

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

static char *put_u(char *p, unsigned long long v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

#define PUTS(p, lit) put((p), (lit), sizeof(lit) - 1)

void bcn_hreq_reset(struct bcn_hreq *r)
{
	r->type = NULL;
	r->hdr_len = 0;
	r->abort_cb = NULL;
	r->abort_arg = NULL;
}

void bcn_hreq_reply(struct bcn_hreq *r, int code)
{
	struct bcn_conn *c = r->conn;
	size_t blen = evbuffer_get_length(r->body);
	const char *reason = bcn_http_reason(code), *type = r->type ? r->type : "application/json";
	char head[BCN_HREQ_HDR_MAX + 512], *p = head;

	r->abort_cb = NULL;
	if (!c) {
		r->status = code;
		if (r->method == BCN_M_HEAD)
			evbuffer_drain(r->body, blen);
		return;
	}
	if (code < 100 || code > 999)
		code = 500;
	p = PUTS(p, "HTTP/1.1 ");
	p = put_u(p, (unsigned)code);
	*p++ = ' ';
	p = put(p, reason, strlen(reason));
	p = PUTS(p, "\r\nContent-Type: ");
	p = put(p, type, strnlen(type, 200));
	p = PUTS(p, "\r\nContent-Length: ");
	p = put_u(p, blen);
	p = PUTS(p, "\r\n");
	p = put(p, r->hdr, r->hdr_len);
	p = put(p, date_line(c->s), strlen(c->s->date));
	if (c->req_close)
		p = PUTS(p, "Connection: close\r\n");
	else if (c->keep_alive_10)
		p = PUTS(p, "Connection: keep-alive\r\n");
	p = PUTS(p, "\r\n");
	evbuffer_add(c->out, head, (size_t)(p - head));
	if (r->method == BCN_M_HEAD)
		evbuffer_drain(r->body, blen);
	else
		evbuffer_add_buffer(c->out, r->body);
	bcn_hreq_reset(r);
	bcn_conn_answered(c);
}

/* ---- detached requests (tests) ------------------------------------------------ */

struct bcn_hreq *bcn_hreq_detached_new(enum bcn_method m, const char *target,
				       const void *body, size_t body_len)
{
	struct bcn_hreq *r = calloc(1, sizeof(*r));
	size_t tl = strlen(target);

	if (!r)
		return NULL;
	r->method = m;
	r->target = malloc(tl + 1 + body_len + 1);
	r->body = evbuffer_new();
	if (!r->target || !r->body) {
		bcn_hreq_detached_free(r);
		return NULL;
	}
	memcpy(r->target, target, tl + 1);
	r->target_len = tl;
	if (body_len)
		memcpy(r->target + tl + 1, body, body_len);
	r->body_in = r->target + tl + 1;
	r->body_in_len = body_len;
	return r;
}

void bcn_hreq_detached_free(struct bcn_hreq *r)
{
	if (!r)
		return;
	if (r->abort_cb)
		r->abort_cb(r->abort_arg);
	free(r->target);
	if (r->body)
		evbuffer_free(r->body);
	free(r);
}

int bcn_hreq_status(const struct bcn_hreq *r)
{
	return r->status;
}

const char *bcn_hreq_type(const struct bcn_hreq *r)
{
	return r->type ? r->type : "application/json";
}

const char *bcn_hreq_headers(const struct bcn_hreq *r)
{
	return r->hdr;
}
