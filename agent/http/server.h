/*
 * server.h - an evhttp server with the limits evhttp lacks by default.
 *
 * Used twice: the local API on a Unix socket (created here with a safe umask,
 * its mode and group, refusing a path a live agent owns) and the optional TCP
 * listener for probes. Each server caps header size, body size, idle time and
 * the number of open connections, so one bad client cannot starve the rest,
 * and pauses accepting for a moment when accept() runs out of descriptors.
 */
#ifndef BCN_SERVER_H
#define BCN_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct evhttp_request;
struct bcn_server;

typedef void (*bcn_server_cb)(struct evhttp_request *req, void *arg);

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

/* Apply new limits (reload). Existing connections keep their old limits. */
void bcn_server_set_limits(struct bcn_server *s, const struct bcn_server_opts *o);

/* Open connections now, and connections turned away or closed by a limit since start. */
int bcn_server_connections(const struct bcn_server *s);
uint64_t bcn_server_rejected(const struct bcn_server *s);

/* Peer credentials of a Unix-socket request (SO_PEERCRED, unix_socket.c).
 * 0, or -1 when unknown. */
int bcn_server_peer(struct evhttp_request *req, uid_t *uid, pid_t *pid);

/* For bcn_server_new: create the socket file at path (mode, group; gid -1
 * keeps ours), refusing a live owner and replacing a stale file, and listen.
 * The descriptor, or -1 with err filled (unix_socket.c). */
int bcn_unix_listen(const char *path, unsigned mode, gid_t gid, char *err, size_t errlen);

/*
 * evhttp_send_reply(req, code, reason, NULL), then write the answer to the
 * socket at once when it fits, instead of a loop turn later (see reply.c).
 * req is gone afterwards, as with evhttp_send_reply.
 */
void bcn_server_reply(struct evhttp_request *req, int code, const char *reason);

#endif
