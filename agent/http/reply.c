/*
 * reply.c - how an answer leaves the server: bcn_server_reply, which every
 * route uses. It fixes what libevent 2.1 gets wrong about HEAD and writes the
 * answer in the same loop turn instead of the two evhttp would take, so a
 * cached answer costs one writev after its readv. Kept apart from server.c,
 * which is about accepting and limiting connections.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>

#include "http/server.h"

/*
 * HEAD is answered as GET would be, without the body (RFC 9110 9.3.2).
 * libevent 2.1 sends a HEAD answer's body anyway and leaves out the
 * Content-Length and Content-Type that GET would carry: set both from the
 * body, then drop it.
 */
static void head_only(struct evhttp_request *req)
{
	struct evbuffer *body = evhttp_request_get_output_buffer(req);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char len[24];

	if (!evhttp_find_header(h, "Content-Length")) {
		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
		evhttp_add_header(h, "Content-Length", len);
	}
	if (!evhttp_find_header(h, "Content-Type"))
		evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_drain(body, evbuffer_get_length(body));
}

/*
 * evhttp queues an answer, turns EV_WRITE on, waits for epoll to call the
 * socket writable, writes, and only then turns EV_WRITE off and EV_READ back
 * on for the next request: two loop turns and, even with the epoll
 * changelist, two epoll_ctl calls per request. Written here while the
 * request is being answered, the callback evhttp waits for ("all written")
 * runs deferred in this same loop turn, so the on/off pairs cancel out in
 * the changelist and a cached answer costs one writev after its readv, as
 * nginx's. An answer that does not fit in the socket buffer, or a socket
 * that fails, is left to libevent exactly as before. (The bufferevents are
 * made with BEV_OPT_DEFER_CALLBACKS in server.c's bev_cb, so the trigger
 * below never re-enters evhttp from inside its own request callback.)
 */
void bcn_server_reply(struct evhttp_request *req, int code, const char *reason)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	struct evbuffer *out;
	evutil_socket_t fd;

	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
		head_only(req);
	evhttp_send_reply(req, code, reason, NULL);
	if (!evcon || !(bev = evhttp_connection_get_bufferevent(evcon)))
		return;
	fd = bufferevent_getfd(bev);
	out = bufferevent_get_output(bev);
	if (fd < 0 || evbuffer_get_length(out) == 0)
		return;
	/* A socket bufferevent keeps its output's front frozen outside its own
	 * write callback; the write below stands in for that callback. */
	evbuffer_unfreeze(out, 1);
	evbuffer_write(out, fd);
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) == 0)
		bufferevent_trigger(bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}
