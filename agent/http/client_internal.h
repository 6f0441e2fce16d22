/*
 * client_internal.h - the HTTP client's structures, shared by client.c (the
 * multi handle on libevent, the calls' lives, groups) and client_call.c (one
 * call's easy handle: its options, what it collects, its outcome). Not for
 * use outside agent/http/.
 */
#ifndef BCN_HTTP_CLIENT_INTERNAL_H
#define BCN_HTTP_CLIENT_INTERNAL_H

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/queue.h>

#include "http/client.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_MAX_BODY ((size_t)64 << 20)
/* curl 7.88 limits each header line but not their total; a peer must not make us grow without bound. */
#define MAX_HEADER_BYTES ((size_t)256 << 10)
/* RFC 9110 token characters: what a method may contain. */
#define TOKEN_CHARS "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#define FIRST_BUF_CAP ((size_t)1024)

/* One watched socket; curl hands it back to us through curl_multi_assign. */
struct http_sock {
	struct event *ev;
	LIST_ENTRY(http_sock) link;
};

struct bcn_http {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	LIST_HEAD(, bcn_http_call) calls; /* every call we own, including doomed ones */
	LIST_HEAD(, http_sock) socks;     /* kept so teardown frees what curl forgot to remove */
	size_t active;
	int in_curl;      /* curl_multi_socket_action is on the stack */
	int depth;        /* one of our event handlers is on the stack */
	int unsettled;    /* some call is doomed or waits to be added */
	int free_pending; /* bcn_http_free was called from a callback */
};

/* A group is a tag on its calls: cancelling it walks the client's list. */
struct bcn_http_group {
	struct bcn_http *h;
};

struct bcn_http_call {
	struct bcn_http *h;
	LIST_ENTRY(bcn_http_call) link;
	CURL *easy;
	struct curl_slist *req_headers;
	struct curl_slist *connect_to; /* tls server_name: where the URL's host really is */
	char *named_url;               /* the URL with server_name as its host, or NULL */
	char *req_body;
	size_t req_body_len;
	char *body; /* collected response body */
	size_t body_len, body_cap, max_body;
	char *hdrs; /* final response's headers as "name\0value\0"... */
	size_t hdrs_len, hdrs_cap;
	struct evbuffer *out; /* handed to on_done; allocated up front so on_done always gets one */
	bcn_http_data_cb on_data;
	bcn_http_done_cb on_done;
	void *arg;
	struct bcn_http_group *group; /* compared only: the group may be gone once doomed */
	void (*on_cancel)(void *arg);
	uint64_t timeout_ms, connect_timeout_ms;
	int sensitive;
	int added;   /* in the multi handle */
	int doomed;  /* cancelled; freed once curl is off the stack */
	int in_done; /* its on_done runs: cancelling it is a no-op */
	int error;   /* BCN_HTTP_E* decided by our own callbacks */
	char errbuf[CURL_ERROR_SIZE];
	char msg[CURL_ERROR_SIZE + 128];
};

/* Free a buffer, wiping it first when it held something sensitive. */
static inline void wipe_free(void *p, size_t n, int sensitive)
{
	if (p && sensitive)
		sodium_memzero(p, n);
	free(p);
}

static inline void call_fail(struct bcn_http_call *c, int error, const char *msg)
{
	c->error = error;
	snprintf(c->msg, sizeof(c->msg), "%s", msg);
}

/* Set up c's easy handle from o (client_call.c). 0, or -1 with c->msg set. */
int bcn_http_call_setup_(struct bcn_http_call *c, const struct bcn_http_opts *o);
/* Decide c's error and message from curl's result (client_call.c). */
void bcn_http_classify_(struct bcn_http_call *c, CURLcode rc);

#endif
