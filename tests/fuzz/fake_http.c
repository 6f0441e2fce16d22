/*
 * fake_http.c - see fake_http.h. Implements every function of
 * agent/http/client.h, so harnesses link it before libbeacon.a and the
 * archive's real client (curl) is never pulled in.
 */
#include "fake_http.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/client.h"

#define DEFAULT_MAX_BODY ((size_t)64 << 20)

struct bcn_http {
	struct event_base *base;
	struct event *tick;
	struct bcn_http_call *calls, *last; /* in start order */
};

struct bcn_http_call {
	struct bcn_http *h;
	struct bcn_http_call *next;
	bcn_http_data_cb on_data;
	bcn_http_done_cb on_done;
	void *arg;
	struct bcn_http_group *group;
	void (*on_cancel)(void *arg);
	size_t max_body;
	bool due, in_done, keep_open;
	long status;
	char *hdrs;         /* "name\0value\0" pairs */
	size_t hdrs_len;
	char *body;
	size_t body_len, chunk;
};

#define MAX_CLIENTS 4
static struct bcn_http *clients[MAX_CLIENTS]; /* one per agent a harness makes */

static struct {
	const uint8_t *data;
	size_t size, pos;
	const struct fake_route *canned;
	size_t open;
} script;

void fake_http_script(const uint8_t *data, size_t size, const struct fake_route *canned)
{
	script.data = data;
	script.size = size;
	script.pos = 0;
	script.canned = canned;
}

void fake_http_reset(void)
{
	script.data = NULL;
	script.size = script.pos = 0;
	script.canned = NULL;
}

size_t fake_http_open(void)
{
	return script.open;
}

/* The next part of the script, or false when none is left. */
static bool next_part(const char **p, size_t *len)
{
	const char *s = (const char *)script.data + script.pos, *end = (const char *)script.data + script.size;
	const char *sep;

	if (!script.data || script.pos > script.size || (script.pos == script.size && script.pos != 0))
		return false;
	if (script.pos == script.size) { /* an empty script is one empty answer */
		script.pos++;
		*p = s;
		*len = 0;
		return true;
	}
	sep = memmem(s, (size_t)(end - s), "\n--\n", 4);
	*p = s;
	*len = sep ? (size_t)(sep - s) : (size_t)(end - s);
	script.pos = sep ? (size_t)(sep + 4 - (const char *)script.data) : script.size + 1;
	return true;
}

static void set_answer(struct bcn_http_call *c, const char *p, size_t len)
{
	const char *end = p + len, *nl;
	size_t i = 0;

	c->status = 200;
	c->due = true;
	/* No status line: the whole part is a 200's body. */
	while (i < len && i < 4 && p[i] >= '0' && p[i] <= '9')
		i++;
	if (i == 0 || (i < len && p[i] != '\n' && p[i] != ' ' && p[i] != '\r'))
		goto body;
	c->status = 0; /* the input is not NUL-terminated: no strtol */
	for (size_t k = 0; k < i; k++)
		c->status = c->status * 10 + (p[k] - '0');
	nl = memchr(p, '\n', len);
	p = nl ? nl + 1 : end;
	/* Headers up to an empty line. */
	while (p < end && *p != '\n') {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *colon;
		size_t l = eol ? (size_t)(eol - p) : (size_t)(end - p);
		colon = memchr(p, ':', l);
		if (colon) {
			const char *v = colon + 1;
			size_t nlen = (size_t)(colon - p), vlen;
			while (v < p + l && *v == ' ')
				v++;
			vlen = (size_t)(p + l - v);
			if (nlen == 12 && strncasecmp(p, "X-Fuzz-Chunk", 12) == 0) {
				c->chunk = 0;
				for (const char *d = v; d < p + l && *d >= '0' && *d <= '9' && c->chunk < 1000000; d++)
					c->chunk = c->chunk * 10 + (size_t)(*d - '0');
			} else if (nlen == 11 && strncasecmp(p, "X-Fuzz-Open", 11) == 0) {
				c->keep_open = v < p + l && *v != '0';
			} else if (!memchr(p, '\0', l)) {
				char *nh = realloc(c->hdrs, c->hdrs_len + nlen + vlen + 2);
				if (nh) {
					memcpy(nh + c->hdrs_len, p, nlen);
					nh[c->hdrs_len + nlen] = '\0';
					memcpy(nh + c->hdrs_len + nlen + 1, v, vlen);
					nh[c->hdrs_len + nlen + 1 + vlen] = '\0';
					c->hdrs = nh;
					c->hdrs_len += nlen + vlen + 2;
				}
			}
		}
		p = eol ? eol + 1 : end;
	}
	if (p < end)
		p++; /* the empty line */
body:
	c->body_len = (size_t)(end - p);
	c->body = malloc(c->body_len + 1);
	if (c->body)
		memcpy(c->body, p, c->body_len);
	else
		c->body_len = 0;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg);

struct bcn_http *bcn_http_new(struct event_base *base)
{
	struct bcn_http *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->base = base;
	h->tick = event_new(base, -1, 0, tick_cb, h);
	if (!h->tick) {
		free(h);
		return NULL;
	}
	for (size_t i = 0; i < MAX_CLIENTS; i++) {
		if (!clients[i]) {
			clients[i] = h;
			return h;
		}
	}
	event_free(h->tick);
	free(h);
	return NULL;
}

/* No TLS here, so nothing to wipe. */
bool bcn_http_tls_buffers_wiped(void)
{
	return true;
}

static void unlink_call(struct bcn_http_call *c)
{
	struct bcn_http *h = c->h;
	struct bcn_http_call **pp = &h->calls, *prev = NULL;

	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = c->next;
	if (h->last == c)
		h->last = prev;
	script.open--;
}

static void call_free(struct bcn_http_call *c)
{
	free(c->hdrs);
	free(c->body);
	free(c);
}

void bcn_http_free(struct bcn_http *h)
{
	if (!h)
		return;
	while (h->calls) {
		struct bcn_http_call *c = h->calls;
		unlink_call(c);
		call_free(c);
	}
	event_free(h->tick);
	for (size_t i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i] == h)
			clients[i] = NULL;
	}
	free(h);
}

static void arm(struct bcn_http *h)
{
	for (struct bcn_http_call *c = h->calls; c; c = c->next) {
		if (c->due) {
			event_active(h->tick, EV_TIMEOUT, 1); /* no-op when already active */
			return;
		}
	}
}

struct bcn_http_call *bcn_http_start(struct bcn_http *h, const struct bcn_http_opts *o)
{
	struct bcn_http_call *c;
	const char *p;
	size_t len;

	if (!h || !o || !o->url || !o->on_done)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->h = h;
	c->on_data = o->on_data;
	c->on_done = o->on_done;
	c->arg = o->arg;
	c->group = o->group;
	c->on_cancel = o->on_cancel;
	c->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
	for (const struct fake_route *r = script.canned; r && r->match; r++) {
		if (strstr(o->url, r->match)) {
			set_answer(c, r->answer, strlen(r->answer));
			break;
		}
	}
	if (!c->due && next_part(&p, &len))
		set_answer(c, p, len);
	if (h->last)
		h->last->next = c;
	else
		h->calls = c;
	h->last = c;
	script.open++;
	arm(h);
	return c;
}

void bcn_http_cancel(struct bcn_http_call *c)
{
	if (!c || c->in_done)
		return;
	unlink_call(c);
	call_free(c);
}

/* A group tags its calls, as in the real client. */
struct bcn_http_group {
	struct bcn_http *h;
};

struct bcn_http_group *bcn_http_group_new(struct bcn_http *h)
{
	struct bcn_http_group *g = h ? calloc(1, sizeof(*g)) : NULL;

	if (g)
		g->h = h;
	return g;
}

void bcn_http_group_cancel(struct bcn_http_group *g)
{
	struct bcn_http_call *c, *next;

	for (c = g ? g->h->calls : NULL; c; c = next) {
		next = c->next;
		if (c->group != g || c->in_done)
			continue;
		void (*on_cancel)(void *) = c->on_cancel;
		void *arg = c->arg;

		bcn_http_cancel(c);
		if (on_cancel)
			on_cancel(arg);
	}
}

size_t bcn_http_group_active(const struct bcn_http_group *g)
{
	size_t n = 0;

	for (const struct bcn_http_call *c = g ? g->h->calls : NULL; c; c = c->next)
		n += c->group == g && !c->in_done;
	return n;
}

void bcn_http_group_free(struct bcn_http_group *g)
{
	bcn_http_group_cancel(g);
	free(g);
}

const char *bcn_http_header(const struct bcn_http_call *c, const char *name)
{
	size_t off = 0;

	if (!c || !name)
		return NULL;
	while (off < c->hdrs_len) {
		const char *n = c->hdrs + off, *v = n + strlen(n) + 1;
		if (strcasecmp(n, name) == 0)
			return v;
		off = (size_t)(v + strlen(v) + 1 - c->hdrs);
	}
	return NULL;
}

size_t bcn_http_active(const struct bcn_http *h)
{
	size_t n = 0;

	for (const struct bcn_http_call *c = h ? h->calls : NULL; c; c = c->next)
		n++;
	return n;
}

/* Answer the oldest call that has an answer due, as the real client would. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_http *h = arg;
	struct bcn_http_response res = { 0 };
	struct bcn_http_call *c;
	struct evbuffer *out;

	(void)fd;
	(void)what;
	for (c = h->calls; c && !c->due; c = c->next)
		;
	if (!c)
		return;
	if (c->on_data && c->keep_open && c->status != 0) {
		/* A stream that stays open after its body: answered, not ended. */
		size_t step = c->chunk ? c->chunk : c->body_len;
		c->due = false;
		for (size_t off = 0; off < c->body_len; off += step) {
			size_t n = c->body_len - off < step ? c->body_len - off : step;
			if (c->on_data(c->body + off, n, c->arg) != 0) {
				c->keep_open = false; /* the reader stopped it: end it below */
				c->due = true;
				c->body_len = 0;
				res.error = BCN_HTTP_EABORTED;
				break;
			}
		}
		if (!c->due) {
			arm(h);
			return;
		}
	}
	unlink_call(c);
	out = evbuffer_new();
	res.status = c->status;
	res.body = out;
	res.call = c;
	res.error_msg = "";
	if (res.error) {
		res.error_msg = "the response stream was stopped by its reader.";
	} else if (c->status == 0) {
		res.error = BCN_HTTP_ECONNECT;
		res.error_msg = "the server refused the connection (fake).";
	} else if (c->on_data) {
		size_t step = c->chunk ? c->chunk : c->body_len;
		for (size_t off = 0; off < c->body_len; off += step) {
			size_t n = c->body_len - off < step ? c->body_len - off : step;
			if (c->on_data(c->body + off, n, c->arg) != 0) {
				res.error = BCN_HTTP_EABORTED;
				res.error_msg = "the response stream was stopped by its reader.";
				break;
			}
		}
	} else if (c->body_len > c->max_body) {
		res.error = BCN_HTTP_ETOOBIG;
		res.error_msg = "the response body is larger than the limit.";
	} else if (!out || evbuffer_add(out, c->body, c->body_len) != 0) {
		res.error = BCN_HTTP_EOTHER;
		res.error_msg = "out of memory while handing over the response body.";
	}
	c->in_done = true;
	c->on_done(&res, c->arg);
	if (out)
		evbuffer_free(out);
	call_free(c);
	arm(h);
}

static bool any_due(struct event_base *base)
{
	for (size_t i = 0; i < MAX_CLIENTS; i++) {
		if (!clients[i] || clients[i]->base != base)
			continue;
		for (struct bcn_http_call *c = clients[i]->calls; c; c = c->next)
			if (c->due)
				return true;
	}
	return false;
}

void fake_http_run(struct event_base *base)
{
	/* A few idle turns after the last answer let zero-delay timers and
	 * deferred callbacks start the requests that follow it. */
	for (int idle = 0, turns = 0; idle < 4 && turns < 100000; turns++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		idle = any_due(base) ? 0 : idle + 1;
	}
}
