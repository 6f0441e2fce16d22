/*
 * conn.c - one HTTP/1.1 connection of server.c: read, parse, answer in
 * order, time out.
 *
 * The hot path costs one read() per readable event and one writev() per
 * batch of answers (evbuffer_write), and no epoll_ctl per request: the read
 * event stays on for the connection's whole life, and the write event is
 * added only when the socket buffer is full. Reading stays on while a
 * request is parked (a blocking read), so a client that closes or resets
 * is noticed at once and its slot freed; its pipelined requests wait in
 * the buffer, parsed only once the parked one is answered, so answers leave
 * in request order.
 *
 * Each connection owns one read buffer (grown up to max_header_size +
 * max_body_size as needed) where heads are parsed in place (parser.c) and
 * chunked bodies decoded in place; nothing is allocated per header or per
 * request. An answer's head (request.c) is built in a fixed buffer and
 * joined with its body (cached bodies stay references) in the output
 * evbuffer.
 *
 * Times: timeout_ms of silence while a request is read or an answer
 * written closes the connection (a parked request is not silence); a
 * server with deadline_ms (the TCP probes) also closes a connection that
 * has not sent a whole request by then, whatever it trickles in.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/timing.h"
#include "http/server_internal.h"

#define FIRST_BUF 4096
/* Room past head + body limits for chunk-size lines and a trailer. */
#define BUF_SLACK 16384
/* Answers queued beyond this stop reading and parsing until written. */
#define OUT_HIGH (256 * 1024)
/* How long an error answer waits for the client to stop sending. */
#define LINGER_MS 2000

static bool conn_flush(struct bcn_conn *c);
static void conn_process(struct bcn_conn *c);

/* After bcn_hreq_reply queued an answer: the next request may go. */
void bcn_conn_answered(struct bcn_conn *c)
{
	c->busy = false;
	c->off = c->req_end;
	if (c->req_close)
		c->closing = true;
	if (!c->in_process)
		conn_process(c); /* answered later (a parked request): go on from here */
}

/* ---- the read buffer ---------------------------------------------------------- */

static size_t buf_max(const struct bcn_conn *c)
{
	return c->s->max_header + c->s->max_body + BUF_SLACK;
}

/* Room to read into: the consumed front is dropped, the buffer grows up to
 * its limit. Never while a request is being answered (it points into it). */
static bool make_room(struct bcn_conn *c)
{
	if (c->busy)
		return c->len < c->cap;
	if (c->off == c->len) {
		c->off = c->len = c->scan = 0;
		if (c->cap > 4 * FIRST_BUF) {
			/* A large body came and went: an idle connection keeps little. */
			free(c->buf);
			c->buf = NULL;
			c->cap = 0;
		}
	} else if (c->off > 0 && (c->cap - c->len < 1024 || c->len == c->cap)) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		if (c->have_head && c->head.chunked) {
			c->ch.start -= c->off;
			c->ch.in -= c->off;
		}
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : FIRST_BUF;
		char *b;
		if (cap > buf_max(c))
			cap = buf_max(c);
		if (cap <= c->cap)
			return false;
		b = realloc(c->buf, cap);
		if (!b)
			return false;
		c->buf = b;
		c->cap = cap;
	}
	return true;
}

/* ---- parsing ------------------------------------------------------------------ */

static void answer_error(struct bcn_conn *c, int code, const char *msg)
{
	struct bcn_hreq *r = &c->req;

	bcn_hreq_reset(r);
	r->method = c->have_head ? c->head.method : BCN_M_OTHER;
	evbuffer_drain(r->body, evbuffer_get_length(r->body));
	evbuffer_add_printf(r->body, "{\"error\":\"%s\"}\n", msg);
	c->have_head = false;
	c->req_close = true;
	c->linger = true;
	c->req_end = c->len;
	c->busy = true;
	bcn_hreq_reply(r, code);
}

static void parse_error(struct bcn_conn *c, enum bcn_http_err e)
{
	switch (e) {
	case BCN_HTTP_E_HEAD_TOO_BIG:
		answer_error(c, 400, "the request head is larger than socket.max_header_size allows");
		break;
	case BCN_HTTP_E_VERSION:
		answer_error(c, 505, "only HTTP/1.1 and HTTP/1.0 are served");
		break;
	case BCN_HTTP_E_FRAMING:
		answer_error(c, 400, "the request's Content-Length or Transfer-Encoding is invalid or conflicting");
		break;
	case BCN_HTTP_E_TE:
		answer_error(c, 501, "the only transfer coding served is chunked");
		break;
	case BCN_HTTP_E_EXPECT:
		answer_error(c, 417, "Expect is not supported: send the body without waiting for "
			     "100 Continue");
		break;
	case BCN_HTTP_E_BODY_TOO_BIG:
		answer_error(c, 413, "the request body is larger than socket.max_body_size allows");
		break;
	case BCN_HTTP_E_CHUNK:
		answer_error(c, 400, "the chunked request body is malformed (a chunk-size line is "
			     "not hex digits and extensions)");
		break;
	default:
		answer_error(c, 400, "the request is malformed (its request line or a header line)");
		break;
	}
}

/* 1: a whole request is in c->req; 0: more bytes are needed (or an error
 * was answered: c->closing). */
static int next_request(struct bcn_conn *c)
{
	struct bcn_server *s = c->s;
	struct bcn_hreq *r = &c->req;
	const char *body;
	size_t body_len, end;

	if (!c->have_head) {
		enum bcn_http_err e;
		long hl;

		if (c->off == c->len)
			return 0;
		hl = bcn_http_head_end(c->buf + c->off, c->len - c->off, &c->scan, s->max_header);
		if (hl == 0)
			return 0;
		if (hl < 0) {
			parse_error(c, BCN_HTTP_E_HEAD_TOO_BIG);
			return 0;
		}
		c->have_head = true;
		e = bcn_http_parse_head(c->buf + c->off, (size_t)hl, &c->head);
		if (e == BCN_HTTP_PARSE_OK && c->head.has_length && c->head.content_length > s->max_body)
			e = BCN_HTTP_E_BODY_TOO_BIG;
		if (e != BCN_HTTP_PARSE_OK) {
			parse_error(c, e);
			return 0;
		}
		if (c->head.chunked)
			bcn_chunked_init(&c->ch, c->off + c->head.len);
	}
	body = c->buf + c->off + c->head.len;
	if (c->head.chunked) {
		enum bcn_http_err e;
		int rc = bcn_chunked_step(&c->ch, c->buf, &c->len, s->max_body, &e, &end);
		if (rc < 0) {
			parse_error(c, e);
			return 0;
		}
		if (rc == 0)
			return 0;
		body_len = c->ch.out;
	} else {
		body_len = (size_t)c->head.content_length;
		end = c->off + c->head.len + body_len;
		if (c->len < end)
			return 0;
	}
	c->have_head = false;
	c->scan = 0;
	c->req_end = end;
	c->keep_alive_10 = c->head.minor == 0 && c->head.conn_keep_alive && !c->head.conn_close;
	c->req_close = s->close_after || c->head.conn_close ||
		       (c->head.minor == 0 && !c->head.conn_keep_alive);
	bcn_hreq_reset(r);
	r->method = c->head.method;
	r->target = c->buf + c->off + c->head.target;
	r->target[c->head.target_len] = '\0'; /* was the space before the version */
	r->target_len = c->head.target_len;
	r->body_in = body;
	r->body_in_len = body_len;
	return 1;
}

/* Parse and answer what is complete in the buffer, then write the answers. */
static void conn_process(struct bcn_conn *c)
{
	struct bcn_server *s = c->s;

	c->in_process = true;
	while (!c->busy && !c->closing && evbuffer_get_length(c->out) < OUT_HIGH) {
		if (!next_request(c))
			break;
		c->busy = true;
		c->last_ms = bcn_now_ms();
		s->cb(&c->req, s->cb_arg);
	}
	c->in_process = false;
	if (c->busy && c->eof) {
		bcn_conn_close(c); /* a parked request whose client went away */
		return;
	}
	conn_flush(c);
}

/* ---- events ------------------------------------------------------------------- */

static void set_reading(struct bcn_conn *c, bool on)
{
	if (on == c->reading)
		return;
	if (on)
		event_add(&c->rev, NULL);
	else
		event_del(&c->rev);
	c->reading = on;
}

/* Write what is queued; close when done and due. false: c is gone. */
static bool conn_flush(struct bcn_conn *c)
{
	size_t left = evbuffer_get_length(c->out);

	if (left) {
		int n = evbuffer_write(c->out, c->fd);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			bcn_conn_close(c);
			return false;
		}
		if (n > 0)
			c->last_ms = bcn_now_ms();
		left = evbuffer_get_length(c->out);
	}
	if (left) {
		if (!c->writing && event_add(&c->wev, NULL) == 0)
			c->writing = true;
		if (left >= OUT_HIGH)
			set_reading(c, false);
		return true;
	}
	if (c->writing) {
		event_del(&c->wev);
		c->writing = false;
	}
	if (c->closing || (c->eof && !c->busy)) {
		if (c->linger && !c->eof) {
			/* Unread input would make close() send a reset that can
			 * destroy the error answer in flight: stop writing, read
			 * and drop what still comes, then close. */
			shutdown(c->fd, SHUT_WR);
			c->linger = false;
			c->eof = false;
			c->closing = true;
			c->deadline_at = bcn_now_ms() + LINGER_MS;
			bcn_timer_ms(&c->timer, LINGER_MS);
			set_reading(c, true);
			return true;
		}
		if (!c->linger || c->eof) {
			bcn_conn_close(c);
			return false;
		}
	}
	if (!c->eof && !c->closing)
		set_reading(c, true);
	return true;
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_conn *c = arg;
	ssize_t n;
	(void)what;

	if (c->closing) {
		/* Lingering after an error answer: drop the rest. */
		char junk[4096];
		n = read(fd, junk, sizeof(junk));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			bcn_conn_close(c);
		return;
	}
	if (!make_room(c)) {
		set_reading(c, false); /* full while a request is parked */
		return;
	}
	n = read(fd, c->buf + c->len, c->cap - c->len);
	if (n > 0) {
		c->len += (size_t)n;
		c->last_ms = bcn_now_ms();
	} else if (n == 0) {
		c->eof = true;
		set_reading(c, false);
	} else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		return;
	} else {
		bcn_conn_close(c); /* reset */
		return;
	}
	if (c->busy) {
		if (c->eof)
			bcn_conn_close(c);
		return;
	}
	conn_process(c);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_conn *c = arg;
	(void)fd;
	(void)what;

	if (!conn_flush(c))
		return;
	if (!c->busy && !c->closing && evbuffer_get_length(c->out) == 0 && c->off < c->len)
		conn_process(c); /* requests held back while answers queued */
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_conn *c = arg;
	struct bcn_server *s = c->s;
	uint64_t now = bcn_now_ms(), next = UINT64_MAX;
	bool parked = c->busy && evbuffer_get_length(c->out) == 0;
	(void)fd;
	(void)what;

	if (c->deadline_at) {
		if (now >= c->deadline_at) {
			if (!c->closing && !c->answering && evbuffer_get_length(c->out) > 0) {
				/* The request came in time; its answer is still being
				 * written (larger than the socket buffers): one more
				 * timeout for that. */
				c->answering = true;
				c->deadline_at = now + s->timeout_ms;
			} else {
				bcn_conn_close(c);
				return;
			}
		}
		next = c->deadline_at - now;
	}
	if (!parked && !c->closing) {
		uint64_t idle = now - c->last_ms;
		if (idle >= s->timeout_ms) {
			bcn_conn_close(c);
			return;
		}
		if (s->timeout_ms - idle < next)
			next = s->timeout_ms - idle;
	}
	if (next == UINT64_MAX)
		next = s->timeout_ms; /* parked: look again later */
	bcn_timer_ms(&c->timer, next);
}

bool bcn_conn_new(struct bcn_server *s, int fd)
{
	struct bcn_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return false;
	c->s = s;
	c->fd = fd;
	c->out = evbuffer_new();
	c->req.body = evbuffer_new();
	c->req.conn = c;
	if (!c->out || !c->req.body ||
	    event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, read_cb, c) < 0 ||
	    event_assign(&c->wev, s->base, fd, EV_WRITE | EV_PERSIST, write_cb, c) < 0 ||
	    evtimer_assign(&c->timer, s->base, timer_cb, c) < 0 || event_add(&c->rev, NULL) < 0) {
		if (c->out)
			evbuffer_free(c->out);
		if (c->req.body)
			evbuffer_free(c->req.body);
		free(c);
		return false;
	}
	c->reading = true;
	c->last_ms = bcn_now_ms();
	if (s->deadline_ms)
		c->deadline_at = c->last_ms + s->deadline_ms;
	bcn_timer_ms(&c->timer, s->deadline_ms && s->deadline_ms < s->timeout_ms ?
		     s->deadline_ms : s->timeout_ms);
	LIST_INSERT_HEAD(&s->conns, c, link);
	return true;
}

void bcn_conn_close(struct bcn_conn *c)
{
	struct bcn_server *s = c->s;

	if (c->busy && c->req.abort_cb) {
		void (*cb)(void *) = c->req.abort_cb;
		c->req.abort_cb = NULL;
		cb(c->req.abort_arg);
	}
	LIST_REMOVE(c, link);
	event_del(&c->rev);
	event_del(&c->wev);
	event_del(&c->timer);
	close(c->fd);
	evbuffer_free(c->out);
	evbuffer_free(c->req.body);
	free(c->buf);
	free(c);
	bcn_server_conn_gone(s);
}
