/*
 * test_http_client.c - the HTTP client against real servers on the same loop.
 *
 * Every test builds its own event_base, an evhttp server on 127.0.0.1:0 (or a
 * Unix socket, or a raw socket server for replies evhttp cannot produce) and
 * a client, runs the one loop with a safety timer, and tears everything down,
 * so a test proves behaviour end to end in one thread and leaks show under
 * valgrind. Server handlers: /echo/... answers with the path, /hold never
 * answers, /chunks streams 5 chunks 50 ms apart, /hdr sets X-Consul-Index,
 * /post echoes method, two headers and the body, /big sends 100000 bytes.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "http/client.h"
#include "base/log.h"

#define CHUNKS 5
#define BIG_LEN 100000
#define MAX_RAW 8

/* Server-side request we answer later (held or streamed). */
struct pend {
	struct evhttp_request *req; /* NULL once answered */
	struct event *tick;         /* chunk timer for streams, NULL for holds */
	int sent;
	struct pend *next;
};

static struct {
	struct event_base *base;
	struct bcn_http *h;
	struct evhttp *srv;
	int port;
	struct pend *pend;
	int chunks_sent;
	int stream_ended;
	int timed_out;
	int done_total, expect; /* loop breaks when done_total reaches expect */
	struct evconnlistener *raw;
	int raw_port;
	const char *raw_reply;
	struct bufferevent *raw_bev[MAX_RAW];
	char tmpdir[64];
	char sock_path[108];
} T;

struct result {
	char url[160];
	int done, ndata;
	long status;
	int error;
	char msg[256];
	char body[4096];
	size_t body_len, total;     /* bytes kept / bytes seen (collected or streamed) */
	size_t collected;           /* length of res->body in on_done */
	char hdr_done[32], hdr_data[32], index_data[32];
	int chunks_at_first_data;   /* server progress when the first piece arrived */
	int ended_at_done;
	int stop_at;                /* on_data returns 1 on this call number (0 = never) */
	double done_ms;
	struct bcn_http_call *call;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- test server ---- */

static void pend_add(struct evhttp_request *req, struct event *tick)
{
	struct pend *p = calloc(1, sizeof(*p));

	ck_assert_ptr_nonnull(p);
	p->req = req;
	p->tick = tick;
	p->next = T.pend;
	T.pend = p;
}

static void on_chunk_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pend *p = arg;
	struct evbuffer *b = evbuffer_new();

	(void)fd;
	(void)what;
	evbuffer_add_printf(b, "chunk%d;", p->sent++);
	evhttp_send_reply_chunk(p->req, b); /* no-op once the client left */
	evbuffer_free(b);
	T.chunks_sent = p->sent;
	if (p->sent == CHUNKS) {
		evhttp_send_reply_end(p->req); /* frees a request whose client left */
		p->req = NULL;
		T.stream_ended = 1;
		event_del(p->tick);
	}
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_PATCH: return "PATCH";
	case EVHTTP_REQ_HEAD: return "HEAD";
	default: return "OTHER";
	}
}

static void on_server_request(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *out = evbuffer_new();

	(void)arg;
	if (strncmp(uri, "/echo/", 6) == 0) {
		evbuffer_add(out, uri, strlen(uri));
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(uri, "/hold") == 0) {
		pend_add(req, NULL);
	} else if (strcmp(uri, "/chunks") == 0) {
		struct timeval tv = { 0, 50 * 1000 };
		struct event *tick;

		evhttp_add_header(evhttp_request_get_output_headers(req), "X-Stream", "yes");
		evhttp_send_reply_start(req, 200, "OK");
		pend_add(req, NULL);
		tick = event_new(T.base, -1, EV_PERSIST, on_chunk_tick, T.pend);
		ck_assert_ptr_nonnull(tick);
		T.pend->tick = tick;
		event_add(tick, &tv);
	} else if (strcmp(uri, "/hdr") == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "X-Consul-Index", "42");
		evbuffer_add(out, "h", 1);
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(uri, "/post") == 0) {
		const char *xt = evhttp_find_header(in, "X-Test");
		const char *ct = evhttp_find_header(in, "Content-Type");

		evbuffer_add_printf(out, "%s|%s|%s|", method_name(evhttp_request_get_command(req)),
				    xt ? xt : "-", ct ? ct : "-");
		evbuffer_add_buffer(out, evhttp_request_get_input_buffer(req));
		evhttp_send_reply(req, 201, "Created", out);
	} else if (strcmp(uri, "/big") == 0) {
		char *big = malloc(BIG_LEN);

		ck_assert_ptr_nonnull(big);
		for (size_t i = 0; i < BIG_LEN; i++)
			big[i] = (char)('a' + i % 26);
		evbuffer_add(out, big, BIG_LEN);
		free(big);
		evhttp_send_reply(req, 200, "OK", out);
	} else {
		evhttp_send_reply(req, 404, "Not Found", NULL);
	}
	evbuffer_free(out);
}

static struct evhttp *srv_new(void)
{
	struct evhttp *srv = evhttp_new(T.base);

	ck_assert_ptr_nonnull(srv);
	evhttp_set_allowed_methods(srv, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(srv, on_server_request, NULL);
	return srv;
}

static int fd_port(evutil_socket_t fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

/* Answer whatever is still pending (a request whose client left is freed by
 * that), then free the server, which frees requests still attached. */
static void srv_stop(void)
{
	while (T.pend) {
		struct pend *p = T.pend;

		T.pend = p->next;
		if (p->tick)
			event_free(p->tick);
		if (p->req && p->tick)
			evhttp_send_reply_end(p->req);
		else if (p->req)
			evhttp_send_reply(p->req, 503, "Stopping", NULL);
		free(p);
	}
	if (T.srv)
		evhttp_free(T.srv);
	T.srv = NULL;
}

/* ---- raw server, for replies evhttp cannot send (1xx with headers, not-TLS) ---- */

static void raw_drop(struct bufferevent *bev)
{
	for (int i = 0; i < MAX_RAW; i++)
		if (T.raw_bev[i] == bev)
			T.raw_bev[i] = NULL;
	bufferevent_free(bev);
}

static void on_raw_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	(void)arg;
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_write(bev, T.raw_reply, strlen(T.raw_reply));
}

static void on_raw_event(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		raw_drop(bev);
}

static void on_raw_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
			  void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(T.base, fd, BEV_OPT_CLOSE_ON_FREE);
	int i;

	(void)l, (void)sa, (void)salen, (void)arg;
	ck_assert_ptr_nonnull(bev);
	for (i = 0; i < MAX_RAW && T.raw_bev[i]; i++)
		;
	ck_assert_int_lt(i, MAX_RAW);
	T.raw_bev[i] = bev;
	bufferevent_setcb(bev, on_raw_read, NULL, on_raw_event, NULL);
	bufferevent_enable(bev, EV_READ);
}

static void raw_start(const char *reply)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	T.raw_reply = reply;
	T.raw = evconnlistener_new_bind(T.base, on_raw_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
					-1, (struct sockaddr *)&sin, sizeof(sin));
	ck_assert_ptr_nonnull(T.raw);
	T.raw_port = fd_port(evconnlistener_get_fd(T.raw));
}

/* ---- per-test setup, loop and client callbacks ---- */

static void t_begin(void)
{
	struct evhttp_bound_socket *bs;

	memset(&T, 0, sizeof(T));
	bcn_log_setup(BCN_LOG_ERROR, BCN_LOG_TEXT);
	T.base = event_base_new();
	ck_assert_ptr_nonnull(T.base);
	T.srv = srv_new();
	bs = evhttp_bind_socket_with_handle(T.srv, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(bs);
	T.port = fd_port(evhttp_bound_socket_get_fd(bs));
	ck_assert_int_gt(T.port, 0);
	T.h = bcn_http_new(T.base);
	ck_assert_ptr_nonnull(T.h);
}

static void t_end(void)
{
	bcn_http_free(T.h); /* before the server and the base, as the header demands */
	T.h = NULL;
	srv_stop();
	for (int i = 0; i < MAX_RAW; i++)
		if (T.raw_bev[i])
			raw_drop(T.raw_bev[i]);
	if (T.raw)
		evconnlistener_free(T.raw);
	event_base_free(T.base);
	if (T.sock_path[0])
		unlink(T.sock_path);
	if (T.tmpdir[0])
		rmdir(T.tmpdir);
}

static void on_safety(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	T.timed_out = 1;
	event_base_loopbreak(T.base);
}

/* Run the loop until a test callback breaks it; a bug trips the safety timer
 * (and fails the test) instead of hanging. */
static void run_loop(int safety_ms)
{
	struct timeval tv = { safety_ms / 1000, (safety_ms % 1000) * 1000 };
	struct event *safety = evtimer_new(T.base, on_safety, NULL);

	ck_assert_ptr_nonnull(safety);
	evtimer_add(safety, &tv);
	event_base_dispatch(T.base);
	event_free(safety);
	ck_assert_msg(!T.timed_out, "the loop ran into the %d ms safety timer", safety_ms);
}

static void keep(struct result *r, const void *data, size_t len)
{
	size_t room = sizeof(r->body) - 1 - r->body_len;
	size_t n = len < room ? len : room;

	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	r->total += len;
}

static void count_done(void)
{
	if (++T.done_total == T.expect)
		event_base_loopbreak(T.base);
}

static void on_done(const struct bcn_http_response *res, void *arg)
{
	struct result *r = arg;
	const char *v;

	r->done++;
	r->done_ms = now_ms();
	r->status = res->status;
	r->error = res->error;
	r->ended_at_done = T.stream_ended;
	ck_assert_ptr_nonnull(res->error_msg);
	snprintf(r->msg, sizeof(r->msg), "%s", res->error_msg);
	ck_assert_ptr_nonnull(res->body);
	r->collected = evbuffer_get_length(res->body);
	if (r->collected) {
		struct evbuffer_iovec vec[64];
		int n = evbuffer_peek(res->body, -1, NULL, vec, 64);

		for (int i = 0; i < n && i < 64; i++)
			keep(r, vec[i].iov_base, vec[i].iov_len);
	}
	v = bcn_http_header(res->call, "x-consul-index");
	snprintf(r->hdr_done, sizeof(r->hdr_done), "%s", v ? v : "");
	count_done();
}

static int on_data(const char *data, size_t len, void *arg)
{
	struct result *r = arg;
	const char *v;

	if (r->ndata++ == 0) {
		r->chunks_at_first_data = T.stream_ended ? CHUNKS + 1 : T.chunks_sent;
		v = bcn_http_header(r->call, "X-Stream");
		snprintf(r->hdr_data, sizeof(r->hdr_data), "%s", v ? v : "");
		v = bcn_http_header(r->call, "X-Consul-INDEX");
		snprintf(r->index_data, sizeof(r->index_data), "%s", v ? v : "");
	}
	keep(r, data, len);
	return r->stop_at && r->ndata >= r->stop_at;
}

static void opts_init(struct bcn_http_opts *o, struct result *r, const char *path)
{
	memset(o, 0, sizeof(*o));
	snprintf(r->url, sizeof(r->url), "http://127.0.0.1:%d%s", T.port, path);
	o->url = r->url;
	o->timeout_ms = 3000;
	o->on_done = on_done;
	o->arg = r;
}

static struct bcn_http_call *start(struct result *r, const char *path)
{
	struct bcn_http_opts o;

	opts_init(&o, r, path);
	r->call = bcn_http_start(T.h, &o);
	ck_assert_ptr_nonnull(r->call);
	return r->call;
}

/* ---- tests ---- */

START_TEST(test_concurrent)
{
	static struct result r[100];
	char path[32], want[32];

	t_begin();
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 100; i++) {
		snprintf(path, sizeof(path), "/echo/%d", i);
		start(&r[i], path);
	}
	ck_assert_uint_eq(bcn_http_active(T.h), 100);
	T.expect = 100;
	run_loop(4000);
	for (int i = 0; i < 100; i++) {
		snprintf(want, sizeof(want), "/echo/%d", i);
		ck_assert_int_eq(r[i].done, 1);
		ck_assert_int_eq(r[i].error, BCN_HTTP_OK);
		ck_assert_int_eq(r[i].status, 200);
		ck_assert_str_eq(r[i].body, want);
		ck_assert_str_eq(r[i].msg, "");
	}
	ck_assert_uint_eq(bcn_http_active(T.h), 0);
	t_end();
}
END_TEST

START_TEST(test_timeout)
{
	struct result r = { 0 };
	struct bcn_http_opts o;
	double t0;

	t_begin();
	opts_init(&o, &r, "/hold");
	o.timeout_ms = 200;
	t0 = now_ms();
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));
	T.expect = 1;
	run_loop(3000);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.error, BCN_HTTP_ETIMEDOUT);
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_gt(strlen(r.msg), 0);
	ck_assert_msg(r.done_ms - t0 >= 190 && r.done_ms - t0 < 1500, "timed out after %.0f ms",
		      r.done_ms - t0);
	t_end();
}
END_TEST

START_TEST(test_low_speed)
{
	struct result r = { 0 };
	struct bcn_http_opts o;
	double t0;

	t_begin();
	opts_init(&o, &r, "/hold");
	o.timeout_ms = 0;
	o.low_speed_ms = 400; /* curl counts whole seconds: rounded up to 1 s */
	t0 = now_ms();
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));
	T.expect = 1;
	run_loop(4000);
	ck_assert_int_eq(r.error, BCN_HTTP_ETIMEDOUT);
	ck_assert_msg(r.done_ms - t0 >= 900 && r.done_ms - t0 < 3000, "stalled peer noticed after %.0f ms",
		      r.done_ms - t0);
	t_end();
}
END_TEST

START_TEST(test_refused)
{
	struct result r = { 0 };
	struct bcn_http_opts o;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd, port;

	t_begin();
	/* Bound but not listening: the kernel refuses, and nobody can take the port meanwhile. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	port = fd_port(fd);
	opts_init(&o, &r, "");
	snprintf(r.url, sizeof(r.url), "http://127.0.0.1:%d/echo/x", port);
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));
	T.expect = 1;
	run_loop(3000);
	close(fd);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.error, BCN_HTTP_ECONNECT);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.msg, "could not connect"));
	t_end();
}
END_TEST

START_TEST(test_chunked_stream)
{
	struct result r = { 0 };
	struct bcn_http_opts o;

	t_begin();
	opts_init(&o, &r, "/chunks");
	o.on_data = on_data;
	r.call = bcn_http_start(T.h, &o);
	ck_assert_ptr_nonnull(r.call);
	T.expect = 1;
	run_loop(3000);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.error, BCN_HTTP_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_ge(r.ndata, 3);
	ck_assert_msg(r.chunks_at_first_data < CHUNKS, "first piece came only after %d chunks",
		      r.chunks_at_first_data);
	ck_assert_str_eq(r.body, "chunk0;chunk1;chunk2;chunk3;chunk4;");
	ck_assert_uint_eq(r.collected, 0);     /* streamed, so nothing collected */
	ck_assert_str_eq(r.hdr_data, "yes");   /* headers readable during on_data */
	t_end();
}
END_TEST

static struct result cancel_r;

static void on_after_cancel(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	/* The server's freed connections have finalised by now; the cancelled call
	 * must have left no socket event and no armed timer: the safety timer is all. */
	ck_assert_int_eq(event_base_get_num_events(T.base, EVENT_BASE_COUNT_ADDED), 1);
	event_base_loopbreak(T.base);
}

static void on_cancel_timer(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { 0, 20 * 1000 };

	(void)fd, (void)what, (void)arg;
	bcn_http_cancel(cancel_r.call);
	bcn_http_cancel(NULL);
	ck_assert_uint_eq(bcn_http_active(T.h), 0);
	srv_stop();
	ck_assert_int_eq(event_base_once(T.base, -1, EV_TIMEOUT, on_after_cancel, NULL, &tv), 0);
}

START_TEST(test_cancel)
{
	struct timeval tv = { 0, 50 * 1000 };
	struct event *ev;

	t_begin();
	memset(&cancel_r, 0, sizeof(cancel_r));
	start(&cancel_r, "/hold");
	ck_assert_uint_eq(bcn_http_active(T.h), 1);
	ev = evtimer_new(T.base, on_cancel_timer, NULL);
	evtimer_add(ev, &tv);
	run_loop(3000);
	/* Nothing is left, so the loop now ends on its own. */
	ck_assert_int_eq(event_base_dispatch(T.base), 1);
	event_free(ev);
	ck_assert_int_eq(cancel_r.done, 0);
	ck_assert_uint_eq(bcn_http_active(T.h), 0);
	t_end();
}
END_TEST

START_TEST(test_headers)
{
	struct result r = { 0 }, s = { 0 };
	struct bcn_http_opts o;

	t_begin();
	start(&r, "/hdr");
	opts_init(&o, &s, "/hdr");
	o.on_data = on_data;
	s.call = bcn_http_start(T.h, &o);
	ck_assert_ptr_nonnull(s.call);
	T.expect = 2;
	run_loop(3000);
	ck_assert_int_eq(r.error, BCN_HTTP_OK);
	ck_assert_str_eq(r.hdr_done, "42");
	ck_assert_str_eq(s.hdr_done, "42");
	ck_assert_str_eq(s.index_data, "42"); /* also during on_data */
	ck_assert_str_eq(r.body, "h");
	ck_assert_ptr_null(bcn_http_header(NULL, "x-consul-index"));
	t_end();
}
END_TEST

static void on_done_1xx(const struct bcn_http_response *res, void *arg)
{
	const char *v;

	/* The 100's headers belong to an interim response and must be gone. */
	ck_assert_ptr_null(bcn_http_header(res->call, "X-Early"));
	v = bcn_http_header(res->call, "x-late");
	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(v, "yes");
	v = bcn_http_header(res->call, "X-SPACES");
	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(v, "padded value");
	on_done(res, arg);
}

START_TEST(test_headers_after_100_continue)
{
	struct result r = { 0 };
	struct bcn_http_opts o;

	t_begin();
	raw_start("HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\n"
		  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Late: yes\r\nX-Spaces:  padded value \r\n\r\nok");
	opts_init(&o, &r, "");
	snprintf(r.url, sizeof(r.url), "http://127.0.0.1:%d/", T.raw_port);
	o.on_done = on_done_1xx;
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));
	T.expect = 1;
	run_loop(3000);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.error, BCN_HTTP_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "ok");
	t_end();
}
END_TEST

START_TEST(test_methods_and_bodies)
{
	static const char *const hdrs[] = { "X-Test: abc", "Content-Type: text/plain", NULL };
	struct result post = { 0 }, put = { 0 }, del = { 0 }, patch = { 0 }, head = { 0 }, secret = { 0 };
	struct bcn_http_opts o;

	t_begin();
	opts_init(&o, &post, "/post");
	o.method = "POST";
	o.headers = hdrs;
	o.body = "a\0b"; /* binary body: body_len, not strlen, counts */
	o.body_len = 3;
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	opts_init(&o, &put, "/post");
	o.method = "PUT";
	o.headers = hdrs;
	o.body = "put-body";
	o.body_len = 8;
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	opts_init(&o, &del, "/post");
	o.method = "DELETE";
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	opts_init(&o, &patch, "/post");
	o.method = "PATCH";
	o.body = "{}";
	o.body_len = 2;
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	opts_init(&o, &head, "/echo/head");
	o.method = "HEAD";
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	opts_init(&o, &secret, "/post");
	o.method = "POST";
	o.headers = (const char *const[]){ "X-Test: s3cret-token", NULL };
	o.body = "secret-body";
	o.body_len = 11;
	o.sensitive = 1;
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	T.expect = 6;
	run_loop(3000);
	ck_assert_int_eq(post.status, 201);
	ck_assert_uint_eq(post.body_len, strlen("POST|abc|text/plain|") + 3);
	ck_assert_mem_eq(post.body, "POST|abc|text/plain|a\0b", post.body_len);
	ck_assert_str_eq(put.body, "PUT|abc|text/plain|put-body");
	ck_assert_str_eq(del.body, "DELETE|-|-|");
	ck_assert_int_eq(del.status, 201);
	ck_assert_str_eq(patch.body, "PATCH|-|application/x-www-form-urlencoded|{}");
	ck_assert_int_eq(head.error, BCN_HTTP_OK);
	ck_assert_int_eq(head.status, 200);
	ck_assert_uint_eq(head.body_len, 0);
	ck_assert_str_eq(secret.body, "POST|s3cret-token|application/x-www-form-urlencoded|secret-body");
	t_end();
}
END_TEST

START_TEST(test_max_body)
{
	struct result small = { 0 }, streamed = { 0 }, fits = { 0 }, wiped = { 0 };
	struct bcn_http_opts o;

	t_begin();
	opts_init(&o, &small, "/big");
	o.max_body = 1000; /* Content-Length says too big: refused up front */
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	opts_init(&o, &streamed, "/chunks");
	o.max_body = 10; /* chunked, no length: caught while collecting */
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	opts_init(&o, &fits, "/big");
	o.max_body = BIG_LEN; /* exactly at the limit is fine */
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	opts_init(&o, &wiped, "/big");
	o.sensitive = 1; /* the wiping growth path */
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	T.expect = 4;
	run_loop(3000);
	ck_assert_int_eq(small.error, BCN_HTTP_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(small.msg, "1000-byte limit"));
	ck_assert_uint_eq(small.collected, 0); /* refused on Content-Length, before any byte */
	ck_assert_int_eq(streamed.error, BCN_HTTP_ETOOBIG);
	ck_assert_uint_le(streamed.collected, 10);
	ck_assert_int_eq(fits.error, BCN_HTTP_OK);
	ck_assert_uint_eq(fits.collected, BIG_LEN);
	ck_assert_uint_eq(fits.total, BIG_LEN);
	ck_assert_int_eq(wiped.error, BCN_HTTP_OK);
	ck_assert_uint_eq(wiped.collected, BIG_LEN);
	ck_assert_int_eq(wiped.body[27], 'b');
	t_end();
}
END_TEST

START_TEST(test_abort_from_on_data)
{
	struct result r = { 0 };
	struct bcn_http_opts o;

	t_begin();
	opts_init(&o, &r, "/chunks");
	o.on_data = on_data;
	r.stop_at = 1;
	r.call = bcn_http_start(T.h, &o);
	ck_assert_ptr_nonnull(r.call);
	T.expect = 1;
	run_loop(3000);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.error, BCN_HTTP_EABORTED);
	ck_assert_int_eq(r.ndata, 1);
	ck_assert_int_eq(r.ended_at_done, 0); /* stopped right away, not at the end */
	ck_assert_int_gt(strlen(r.msg), 0);
	t_end();
}
END_TEST

START_TEST(test_unix_socket)
{
	struct result r = { 0 }, missing = { 0 };
	struct bcn_http_opts o;
	struct sockaddr_un sa_un = { .sun_family = AF_UNIX };
	struct evconnlistener *l;
	char missing_path[160];
	int fd;

	t_begin();
	snprintf(T.tmpdir, sizeof(T.tmpdir), "/tmp/bcn-http-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(T.tmpdir));
	snprintf(T.sock_path, sizeof(T.sock_path), "%s/s", T.tmpdir);
	snprintf(sa_un.sun_path, sizeof(sa_un.sun_path), "%s", T.sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa_un, sizeof(sa_un)), 0);
	ck_assert_int_eq(evutil_make_socket_nonblocking(fd), 0);
	l = evconnlistener_new(T.base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	ck_assert_ptr_nonnull(l);
	ck_assert_ptr_nonnull(evhttp_bind_listener(T.srv, l)); /* the server frees it */

	opts_init(&o, &r, "");
	snprintf(r.url, sizeof(r.url), "http://localhost/echo/unix");
	o.unix_socket = T.sock_path;
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	opts_init(&o, &missing, "");
	snprintf(missing.url, sizeof(missing.url), "http://localhost/echo/unix");
	snprintf(missing_path, sizeof(missing_path), "%s/nobody-here", T.tmpdir);
	o.unix_socket = missing_path;
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	T.expect = 2;
	run_loop(3000);
	ck_assert_int_eq(r.error, BCN_HTTP_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "/echo/unix");
	ck_assert_int_eq(missing.error, BCN_HTTP_ECONNECT);
	t_end();
}
END_TEST

/* on_done starting and cancelling requests */
static struct result re_hold, re_first, re_second;

static void on_done_first(const struct bcn_http_response *res, void *arg)
{
	on_done(res, arg);
	ck_assert_uint_eq(bcn_http_active(T.h), 1); /* only the held one */
	bcn_http_cancel(re_hold.call);
	ck_assert_uint_eq(bcn_http_active(T.h), 0);
	bcn_http_cancel(re_first.call); /* its own on_done: a harmless no-op */
	start(&re_second, "/echo/second");
	ck_assert_uint_eq(bcn_http_active(T.h), 1);
}

START_TEST(test_on_done_reentrancy)
{
	struct bcn_http_opts o;

	t_begin();
	memset(&re_hold, 0, sizeof(re_hold));
	memset(&re_first, 0, sizeof(re_first));
	memset(&re_second, 0, sizeof(re_second));
	start(&re_hold, "/hold");
	opts_init(&o, &re_first, "/echo/first");
	o.on_done = on_done_first;
	re_first.call = bcn_http_start(T.h, &o);
	ck_assert_ptr_nonnull(re_first.call);
	T.expect = 2; /* first and second; the held one must never report */
	run_loop(3000);
	ck_assert_int_eq(re_hold.done, 0);
	ck_assert_int_eq(re_first.done, 1);
	ck_assert_str_eq(re_first.body, "/echo/first");
	ck_assert_int_eq(re_second.done, 1);
	ck_assert_str_eq(re_second.body, "/echo/second");
	ck_assert_uint_eq(bcn_http_active(T.h), 0);
	t_end();
}
END_TEST

/* on_data (curl on the stack) cancelling others, itself, and starting a request */
static struct result rd_stream, rd_hold, rd_new, rd_self;

static int on_data_meddling(const char *data, size_t len, void *arg)
{
	int first = ((struct result *)arg)->ndata == 0;

	if (first) {
		size_t before = bcn_http_active(T.h);

		ck_assert_int_eq(rd_hold.done, 0);
		bcn_http_cancel(rd_hold.call);
		ck_assert_uint_eq(bcn_http_active(T.h), before - 1);
		start(&rd_new, "/echo/from-on-data");
		ck_assert_uint_eq(bcn_http_active(T.h), before);
	}
	return on_data(data, len, arg);
}

static int on_data_cancel_self(const char *data, size_t len, void *arg)
{
	on_data(data, len, arg);
	bcn_http_cancel(rd_self.call);
	return 0;
}

START_TEST(test_on_data_reentrancy)
{
	struct bcn_http_opts o;

	t_begin();
	memset(&rd_stream, 0, sizeof(rd_stream));
	memset(&rd_hold, 0, sizeof(rd_hold));
	memset(&rd_new, 0, sizeof(rd_new));
	memset(&rd_self, 0, sizeof(rd_self));
	start(&rd_hold, "/hold");
	opts_init(&o, &rd_self, "/chunks");
	o.on_data = on_data_cancel_self;
	rd_self.call = bcn_http_start(T.h, &o);
	ck_assert_ptr_nonnull(rd_self.call);
	opts_init(&o, &rd_stream, "/chunks");
	o.on_data = on_data_meddling;
	rd_stream.call = bcn_http_start(T.h, &o);
	ck_assert_ptr_nonnull(rd_stream.call);
	T.expect = 2; /* the stream and the request started from its on_data */
	run_loop(3000);
	ck_assert_int_eq(rd_stream.error, BCN_HTTP_OK);
	ck_assert_str_eq(rd_stream.body, "chunk0;chunk1;chunk2;chunk3;chunk4;");
	ck_assert_int_eq(rd_new.done, 1);
	ck_assert_str_eq(rd_new.body, "/echo/from-on-data");
	ck_assert_int_eq(rd_hold.done, 0);
	ck_assert_int_eq(rd_self.done, 0);
	ck_assert_int_eq(rd_self.ndata, 1);
	ck_assert_uint_eq(bcn_http_active(T.h), 0);
	t_end();
}
END_TEST

/* Two calls that time out together; the first on_done cancels the other,
 * whose completion may already be queued in the same batch. */
static struct result pair[2];

static void on_done_cancel_partner(const struct bcn_http_response *res, void *arg)
{
	struct result *r = arg;

	on_done(res, arg);
	bcn_http_cancel(pair[r == &pair[0]].call);
	event_base_loopbreak(T.base);
}

START_TEST(test_cancel_queued_completion)
{
	struct bcn_http_opts o;

	t_begin();
	memset(pair, 0, sizeof(pair));
	for (int i = 0; i < 2; i++) {
		opts_init(&o, &pair[i], "/hold");
		o.timeout_ms = 150;
		o.on_done = on_done_cancel_partner;
		pair[i].call = bcn_http_start(T.h, &o);
		ck_assert_ptr_nonnull(pair[i].call);
	}
	run_loop(3000);
	ck_assert_int_eq(pair[0].done + pair[1].done, 1);
	ck_assert_uint_eq(bcn_http_active(T.h), 0);
	t_end();
}
END_TEST

/* bcn_http_free with calls in flight: from a timer, from on_done, from on_data */
static struct result fr[4];

static void on_free_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	bcn_http_free(T.h);
	T.h = NULL;
	event_base_loopbreak(T.base);
}

static void on_done_free(const struct bcn_http_response *res, void *arg)
{
	on_done(res, arg);
	bcn_http_free(T.h);
	T.h = NULL;
	event_base_loopbreak(T.base);
}

static int on_data_free(const char *data, size_t len, void *arg)
{
	on_data(data, len, arg);
	bcn_http_free(T.h);
	T.h = NULL;
	event_base_loopbreak(T.base);
	return 0;
}

START_TEST(test_free_in_flight)
{
	struct timeval tv = { 0, 30 * 1000 };
	struct bcn_http_opts o;
	struct event *ev;

	/* from a timer */
	t_begin();
	memset(fr, 0, sizeof(fr));
	start(&fr[0], "/hold");
	start(&fr[1], "/hold");
	start(&fr[2], "/chunks");
	ev = evtimer_new(T.base, on_free_timer, NULL);
	evtimer_add(ev, &tv);
	run_loop(3000);
	event_free(ev);
	ck_assert_ptr_null(T.h);
	ck_assert_int_eq(fr[0].done + fr[1].done + fr[2].done, 0);
	t_end();

	/* from on_done */
	t_begin();
	memset(fr, 0, sizeof(fr));
	start(&fr[0], "/hold");
	opts_init(&o, &fr[1], "/echo/x");
	o.on_done = on_done_free;
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));
	run_loop(3000);
	ck_assert_ptr_null(T.h);
	ck_assert_int_eq(fr[0].done, 0);
	ck_assert_int_eq(fr[1].done, 1);
	t_end();

	/* from on_data, curl on the stack */
	t_begin();
	memset(fr, 0, sizeof(fr));
	start(&fr[0], "/hold");
	opts_init(&o, &fr[1], "/chunks");
	o.on_data = on_data_free;
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));
	run_loop(3000);
	ck_assert_ptr_null(T.h);
	ck_assert_int_eq(fr[1].ndata, 1);
	ck_assert_int_eq(fr[0].done + fr[1].done, 0);
	t_end();
}
END_TEST

START_TEST(test_tls_errors)
{
	struct result plain = { 0 }, badca = { 0 };
	struct bcn_http_opts o;

	t_begin();
	raw_start("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
	opts_init(&o, &plain, "");
	snprintf(plain.url, sizeof(plain.url), "https://127.0.0.1:%d/", T.raw_port);
	o.timeout_ms = 20000; /* loading the system CA store is slow under valgrind */
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	opts_init(&o, &badca, "");
	snprintf(badca.url, sizeof(badca.url), "https://127.0.0.1:%d/", T.raw_port);
	o.timeout_ms = 20000;
	o.ca_file = "/nonexistent/ca.pem";
	o.cert_file = "";
	o.key_file = "";
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o));

	/* OpenSSL runs on the zero-on-free allocator (wiped TLS buffers). */
	ck_assert(bcn_http_tls_buffers_wiped());
	T.expect = 2;
	run_loop(25000);
	ck_assert_int_eq(plain.error, BCN_HTTP_ETLS);
	ck_assert_ptr_nonnull(strstr(plain.msg, "TLS"));
	ck_assert_int_eq(badca.error, BCN_HTTP_ETLS);
	t_end();
}
END_TEST

START_TEST(test_bad_arguments)
{
	struct result r = { 0 };
	struct bcn_http_opts o;

	t_begin();
	opts_init(&o, &r, "/echo/x");
	ck_assert_ptr_null(bcn_http_start(NULL, &o));
	ck_assert_ptr_null(bcn_http_start(T.h, NULL));
	o.on_done = NULL;
	ck_assert_ptr_null(bcn_http_start(T.h, &o));
	opts_init(&o, &r, "/echo/x");
	o.url = NULL;
	ck_assert_ptr_null(bcn_http_start(T.h, &o));
	opts_init(&o, &r, "/echo/x");
	o.method = "GET /evil HTTP/1.1\r\nX:"; /* not a token */
	ck_assert_ptr_null(bcn_http_start(T.h, &o));
	opts_init(&o, &r, "/echo/x");
	o.headers = (const char *const[]){ "X-A: 1\r\nX-Injected: 1", NULL };
	ck_assert_ptr_null(bcn_http_start(T.h, &o));
	opts_init(&o, &r, "/echo/x");
	snprintf(r.url, sizeof(r.url), "file:///etc/passwd"); /* only http(s) */
	T.expect = 1;
	ck_assert_ptr_nonnull(bcn_http_start(T.h, &o)); /* curl refuses the scheme when it runs */
	run_loop(3000);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.error, BCN_HTTP_EOTHER);
	ck_assert_uint_eq(r.collected, 0);
	ck_assert_uint_eq(bcn_http_active(T.h), 0);
	ck_assert_uint_eq(bcn_http_active(NULL), 0);
	ck_assert_int_eq(r.done, 1); /* the refused starts above never called on_done */
	ck_assert_ptr_null(bcn_http_new(NULL));
	bcn_http_cancel(NULL);
	bcn_http_free(NULL);
	t_end();
}
END_TEST

/* Request groups: cancelling one group ends its calls without on_done (but
 * with on_cancel), leaves other groups and ungrouped calls alone, and spares
 * a call whose own on_done cancels its group. */
static struct result gr_a[3], gr_b, gr_none, gr_quick, gr_held[2];
static struct bcn_http_group *grp_a, *grp_b, *grp_c;
static int gr_cancelled;

static void on_group_cancel(void *arg)
{
	struct result *r = arg;

	ck_assert_int_eq(r->done, 0);
	gr_cancelled++;
}

static void gr_start(struct result *r, const char *path, struct bcn_http_group *g)
{
	struct bcn_http_opts o;

	memset(r, 0, sizeof(*r));
	opts_init(&o, r, path);
	o.group = g;
	o.on_cancel = on_group_cancel;
	r->call = bcn_http_start(T.h, &o);
	ck_assert_ptr_nonnull(r->call);
}

static void on_group_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	ck_assert_uint_eq(bcn_http_group_active(grp_a), 3);
	bcn_http_group_cancel(grp_a);
	ck_assert_int_eq(gr_cancelled, 3);
	ck_assert_uint_eq(bcn_http_group_active(grp_a), 0);
	ck_assert_uint_eq(bcn_http_group_active(grp_b), 1);
	ck_assert_uint_eq(bcn_http_active(T.h), 2);
	bcn_http_group_cancel(grp_a); /* nothing left: a no-op */
	bcn_http_group_cancel(NULL);
	ck_assert_int_eq(gr_cancelled, 3);
	event_base_loopbreak(T.base);
}

/* The quick call's on_done cancels its own group: the held calls go, it stays. */
static void on_done_cancel_group(const struct bcn_http_response *res, void *arg)
{
	on_done(res, arg);
	bcn_http_group_cancel(grp_c);
	ck_assert_uint_eq(bcn_http_group_active(grp_c), 0);
}

START_TEST(test_group_cancel)
{
	struct timeval tv = { 0, 50 * 1000 };
	struct bcn_http_opts o;
	struct event *ev;

	t_begin();
	gr_cancelled = 0;
	grp_a = bcn_http_group_new(T.h);
	grp_b = bcn_http_group_new(T.h);
	grp_c = bcn_http_group_new(T.h);
	ck_assert_ptr_nonnull(grp_a);
	ck_assert_ptr_nonnull(grp_b);
	ck_assert_ptr_nonnull(grp_c);
	ck_assert_ptr_null(bcn_http_group_new(NULL));
	for (int i = 0; i < 3; i++)
		gr_start(&gr_a[i], "/hold", grp_a);
	gr_start(&gr_b, "/hold", grp_b);
	gr_start(&gr_none, "/hold", NULL);
	ev = evtimer_new(T.base, on_group_timer, NULL);
	evtimer_add(ev, &tv);
	run_loop(3000);
	event_free(ev);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(gr_a[i].done, 0);
	ck_assert_int_eq(gr_b.done, 0);
	ck_assert_int_eq(gr_none.done, 0);

	/* Freeing a group cancels what it still has. */
	bcn_http_group_free(grp_b);
	ck_assert_int_eq(gr_cancelled, 4);
	ck_assert_uint_eq(bcn_http_active(T.h), 1);
	bcn_http_cancel(gr_none.call);
	bcn_http_group_free(NULL);

	gr_start(&gr_held[0], "/hold", grp_c);
	gr_start(&gr_held[1], "/hold", grp_c);
	memset(&gr_quick, 0, sizeof(gr_quick));
	opts_init(&o, &gr_quick, "/echo/quick");
	o.group = grp_c;
	o.on_cancel = on_group_cancel;
	o.on_done = on_done_cancel_group;
	gr_quick.call = bcn_http_start(T.h, &o);
	ck_assert_ptr_nonnull(gr_quick.call);
	T.expect = 1;
	run_loop(3000);
	ck_assert_int_eq(gr_quick.done, 1);
	ck_assert_int_eq(gr_quick.status, 200);
	ck_assert_int_eq(gr_held[0].done + gr_held[1].done, 0);
	ck_assert_int_eq(gr_cancelled, 6);
	ck_assert_uint_eq(bcn_http_active(T.h), 0);
	bcn_http_group_free(grp_a);
	bcn_http_group_free(grp_c);
	t_end();
}
END_TEST

static Suite *http_client_suite(void)
{
	Suite *s = suite_create("http_client");
	TCase *tc = tcase_create("loop");

	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_concurrent);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_low_speed);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_chunked_stream);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_headers);
	tcase_add_test(tc, test_headers_after_100_continue);
	tcase_add_test(tc, test_methods_and_bodies);
	tcase_add_test(tc, test_max_body);
	tcase_add_test(tc, test_abort_from_on_data);
	tcase_add_test(tc, test_unix_socket);
	tcase_add_test(tc, test_on_done_reentrancy);
	tcase_add_test(tc, test_on_data_reentrancy);
	tcase_add_test(tc, test_cancel_queued_completion);
	tcase_add_test(tc, test_free_in_flight);
	tcase_add_test(tc, test_tls_errors);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_group_cancel);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(http_client_suite)
