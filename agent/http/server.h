/*
 * server.h - beacon's own small HTTP/1.1 server on the libevent core.
 *
 * Used twice: the local API on a Unix socket (created here with a safe umask,
 * its mode and group, refusing a path a live agent owns) and the optional TCP
 * listener for probes. Each server caps header size, body size, idle time and
 * the number of open connections, so one bad client cannot starve the rest,
 * and pauses accepting for a moment when accept() runs out of descriptors.
 *
 * A request is handed to the callback as a struct bcn_hreq; the handler
 * writes the answer body into bcn_hreq_body() (an evbuffer: text, copies,
 * or cached bodies by reference), may add headers, and calls
 * bcn_hreq_reply() once, now or later (a parked blocking read). Every
 * answer, the server's own errors included, is JSON unless the handler sets
 * another type. Answers go out in request order; a connection's later
 * pipelined requests wait for an earlier parked one.
 */
#ifndef BCN_SERVER_H
#define BCN_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "http/parser.h"

struct event_base;
struct evbuffer;
struct bcn_server;
struct bcn_hreq;

typedef void (*bcn_server_cb)(struct bcn_hreq *req, void *arg);

struct bcn_server_opts {
	const char *unix_path;   /* either this ... */
	unsigned unix_mode;
	gid_t unix_gid;          /* (gid_t)-1: keep the agent's group */
	const char *tcp_listen;  /* ... or "host:port" */
	int max_connections;
	long max_header_size, max_body_size;
	uint64_t timeout_ms;
	/* A whole-request deadline from accept (0: none), whatever the client
	 * trickles in; an answer still being written then gets timeout_ms more.
	 * Only for a server whose callback answers at once (no parked requests). */
	uint64_t deadline_ms;
	bool close_after_answer;  /* one request per connection */
	bcn_server_cb cb;
	void *arg;
};

/* Create and start listening. NULL with a one-sentence reason in err. */
struct bcn_server *bcn_server_new(struct event_base *base, const struct bcn_server_opts *o,
				  char *err, size_t errlen);
/* Close the listener and every connection; remove the socket file. NULL-safe. */
void bcn_server_free(struct bcn_server *s);

/* Apply new limits (reload). Connections keep their buffers; new limits
 * apply to the next request. */
void bcn_server_set_limits(struct bcn_server *s, const struct bcn_server_opts *o);

/* Open connections now, and connections turned away or closed by a limit since start. */
int bcn_server_connections(const struct bcn_server *s);
uint64_t bcn_server_rejected(const struct bcn_server *s);

/* For bcn_server_new: create the socket file at path (mode, group; gid -1
 * keeps ours), refusing a live owner and replacing a stale file, and listen.
 * The descriptor, or -1 with err filled (unix_socket.c). */
int bcn_unix_listen(const char *path, unsigned mode, gid_t gid, char *err, size_t errlen);

/* ---- one request (valid from the callback until bcn_hreq_reply) ---- */

enum bcn_method bcn_hreq_method(const struct bcn_hreq *r);
/* The request target ("/v1/x?y"), NUL-terminated; *len its length. */
const char *bcn_hreq_target(const struct bcn_hreq *r, size_t *len);
/* The request body (decoded when it came chunked). */
const char *bcn_hreq_body_in(const struct bcn_hreq *r, size_t *len);
/* Where the answer body goes. */
struct evbuffer *bcn_hreq_body(struct bcn_hreq *r);
/* Add a header line to the answer ("Name", "value"); a fixed-size area
 * holds them (~600 bytes): false when it is full. Content-Type is given
 * with bcn_hreq_set_type. */
bool bcn_hreq_header(struct bcn_hreq *r, const char *name, const char *value);
/* The answer's Content-Type (a string that outlives the request); default
 * application/json. */
void bcn_hreq_set_type(struct bcn_hreq *r, const char *type);
/* Send the answer: code and its reason, the headers, the body (dropped for
 * HEAD, its length kept). The request is gone afterwards. */
void bcn_hreq_reply(struct bcn_hreq *r, int code);
/* The reason phrase the server uses for code. */
const char *bcn_http_reason(int code);
/* Peer credentials (SO_PEERCRED, read once per connection): 0, or -1 when
 * unknown (not a Unix socket). */
int bcn_hreq_peer(struct bcn_hreq *r, uid_t *uid, pid_t *pid);
/* Called (once) when the connection goes away before the answer, e.g. the
 * client of a parked blocking read closed: whoever holds r lets go of it
 * without answering. Cleared by bcn_hreq_reply. */
void bcn_hreq_on_abort(struct bcn_hreq *r, void (*cb)(void *arg), void *arg);

/* A request without a connection (unit tests, fuzz harnesses): bcn_hreq_reply
 * keeps the answer for bcn_hreq_status / bcn_hreq_body / bcn_hreq_type. */
struct bcn_hreq *bcn_hreq_detached_new(enum bcn_method m, const char *target,
				       const void *body, size_t body_len);
void bcn_hreq_detached_free(struct bcn_hreq *r);
/* 0 until answered. */
int bcn_hreq_status(const struct bcn_hreq *r);
const char *bcn_hreq_type(const struct bcn_hreq *r);
/* The extra header lines as sent ("Name: value\r\n"...). */
const char *bcn_hreq_headers(const struct bcn_hreq *r);

#endif
