/*
 * server_internal.h - what server.c (listening, accepting, limits) and
 * conn.c (one connection: reading, parsing, answering, timing out) share.
 * Not for use outside agent/http/.
 */
#ifndef BCN_SERVER_INTERNAL_H
#define BCN_SERVER_INTERNAL_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "base/log.h"
#include "http/parser.h"
#include "http/server.h"

#define BCN_HREQ_HDR_MAX 640

struct bcn_hreq {
	struct bcn_conn *conn;        /* NULL: detached (tests) */
	enum bcn_method method;
	char *target;
	size_t target_len;
	const char *body_in;
	size_t body_in_len;
	struct evbuffer *body;        /* the answer's */
	const char *type;
	size_t hdr_len;
	int status;                   /* detached: the answer's code */
	void (*abort_cb)(void *arg);
	void *abort_arg;
	char hdr[BCN_HREQ_HDR_MAX];   /* extra answer header lines */
};

struct bcn_conn {
	struct bcn_server *s;
	int fd;
	struct event rev, wev, timer;
	char *buf;                    /* what was read: [off, len) not yet consumed */
	size_t cap, len, off, scan, req_end;
	struct bcn_http_head head;
	struct bcn_chunked ch;
	struct evbuffer *out;         /* answers not yet written */
	struct bcn_hreq req;
	uint64_t last_ms, deadline_at;
	uid_t uid;
	pid_t pid;
	int cred;                     /* 0 unknown yet, 1 known, -1 none */
	bool have_head, busy, eof, closing, linger, in_process;
	bool reading, writing, answering, req_close, keep_alive_10;
	LIST_ENTRY(bcn_conn) link;
};

struct bcn_server {
	struct event_base *base;
	int lfd;
	struct event lev, resume_ev;
	bool lev_ready, resume_ready;
	char *unix_path;
	bool tcp;
	char where[128];              /* the path or address, for log lines */
	int max_conns, nconns;
	size_t max_header, max_body;
	uint64_t timeout_ms, deadline_ms;
	bool close_after;
	bool accepting, paused;
	uint64_t rejected, accept_failures;
	struct bcn_complain limit_warned, accept_warned;
	bcn_server_cb cb;
	void *cb_arg;
	LIST_HEAD(, bcn_conn) conns;
	time_t date_sec;
	char date[40];                /* "Date: ..." for the current second */
};

/* conn.c: take over an accepted descriptor (false: not taken, the caller closes). */
bool bcn_conn_new(struct bcn_server *s, int fd);
/* conn.c: close at once (the parked request, if any, is aborted). */
void bcn_conn_close(struct bcn_conn *c);
/* conn.c: the current request was answered (request.c). */
void bcn_conn_answered(struct bcn_conn *c);
/* request.c: forget the answer's type, headers and abort callback. */
void bcn_hreq_reset(struct bcn_hreq *r);
/* server.c: a connection is gone; accept again if the limit allowed. */
void bcn_server_conn_gone(struct bcn_server *s);

#endif
