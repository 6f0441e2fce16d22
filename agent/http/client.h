/*
 * http_client.h - asynchronous HTTP requests for plugins, on the agent's loop.
 *
 * One CURLM per agent, driven by libevent in the curl "hiperfifo" pattern:
 * libcurl tells us which sockets to watch and when to time out, libevent tells
 * libcurl when they are ready. Nothing here blocks and nothing spawns threads.
 * A request either streams its body to on_data (etcd watch, Consul blocking
 * queries) or collects it into an evbuffer handed to on_done. Exactly one
 * on_done call ends every request that was started and not cancelled.
 */
#ifndef BCN_HTTP_CLIENT_H
#define BCN_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct bcn_http;          /* the client: one per agent */
struct bcn_http_call;     /* one request in flight */
struct bcn_http_group;    /* requests one owner (a plugin instance) cancels together */

struct bcn_http_response {
	long status;                 /* HTTP status, 0 when no response arrived */
	int error;                   /* 0, or a BCN_HTTP_E* value below */
	const char *error_msg;       /* one sentence when error != 0 (never contains headers or bodies) */
	struct evbuffer *body;       /* collected body (empty when on_data streamed it); valid during on_done only */
	const struct bcn_http_call *call; /* for bcn_http_header() during on_done */
};

enum {
	BCN_HTTP_OK = 0,
	BCN_HTTP_ETIMEDOUT,  /* total timeout hit */
	BCN_HTTP_ECONNECT,   /* refused, unreachable, DNS failure */
	BCN_HTTP_ETLS,       /* certificate or handshake problem */
	BCN_HTTP_ETOOBIG,    /* collected body exceeded max_body */
	BCN_HTTP_EABORTED,   /* on_data asked to stop */
	BCN_HTTP_EOTHER,
};

/*
 * Streaming callback: called for each piece of body as it arrives, in order.
 * Return 0 to continue, non-zero to abort the request (on_done then reports
 * BCN_HTTP_EABORTED). Do not call bcn_http_cancel() on this call from here.
 */
typedef int (*bcn_http_data_cb)(const char *data, size_t len, void *arg);
/* Completion callback: the call is freed right after it returns. */
typedef void (*bcn_http_done_cb)(const struct bcn_http_response *res, void *arg);

struct bcn_http_opts {
	const char *method;          /* "GET" when NULL */
	const char *url;             /* http(s)://host:port/path?query */
	const char *unix_socket;     /* connect to this Unix socket instead of the URL's host */
	const char *const *headers;  /* NULL-terminated "Name: value" list, or NULL; copied */
	const void *body;            /* request body, copied; may be NULL */
	size_t body_len;
	uint64_t timeout_ms;         /* whole request; 0 = none (long streams) */
	uint64_t connect_timeout_ms; /* 0 = 5 s */
	uint64_t low_speed_ms;       /* abort when nothing arrives for this long (hung peers on streams); 0 = off */
	const char *ca_file, *cert_file, *key_file; /* TLS; NULL or "" = system defaults / none */
	/* TLS name for SNI and the certificate check instead of the URL's host (an
	 * IP address, say); the connection and the Host header keep the URL's
	 * host, as Go's tls.Config.ServerName does in the Vault and Consul clients.
	 * NULL or "" = the URL's host. Ignored for http:// and Unix sockets. */
	const char *server_name;
	bool insecure_skip_verify;   /* TLS: accept any certificate and name (testing only) */
	size_t max_body;             /* limit for a collected body; 0 = 64 MiB */
	int sensitive;               /* headers/body carry a secret: copies are wiped when freed */
	bcn_http_data_cb on_data;    /* NULL = collect the body */
	bcn_http_done_cb on_done;    /* required */
	void *arg;
	/* The group the request belongs to (NULL: none), and what to call
	 * instead of on_done when bcn_http_group_cancel ends it: a chance to
	 * free arg (optional; must neither start nor cancel a request). */
	struct bcn_http_group *group;
	void (*on_cancel)(void *arg);
};

/* Create the client on `base`. NULL on failure (logged). */
struct bcn_http *bcn_http_new(struct event_base *base);

/* True once OpenSSL (TLS under libcurl) allocates through the zero-on-free
 * allocator, so its buffers are wiped when freed (set up by bcn_http_new). */
bool bcn_http_tls_buffers_wiped(void);
/* Cancel every request without calling its on_done and free the client. NULL-safe.
 * Must be called before event_base_free(base). */
void bcn_http_free(struct bcn_http *h);

/* Start a request. Returns a handle valid until on_done returns or until
 * bcn_http_cancel(); NULL when it could not be started (on_done is not called). */
struct bcn_http_call *bcn_http_start(struct bcn_http *h, const struct bcn_http_opts *o);

/* Abort a request in flight; its on_done is not called. NULL-safe. Safe to
 * call from any callback except that call's own on_data. */
void bcn_http_cancel(struct bcn_http_call *c);

/*
 * Request groups: every request an owner starts with opts.group = g can be
 * cancelled in one call, so an instance that stops or loses its backend need
 * not keep its own list of what is in flight.
 */
/* A new empty group of h's requests. NULL on out of memory. */
struct bcn_http_group *bcn_http_group_new(struct bcn_http *h);
/* Cancel every request of g still in flight: no on_done is called, on_cancel
 * (when set) is. A request whose on_done is running is left to finish.
 * Requests of other groups are untouched. NULL-safe. */
void bcn_http_group_cancel(struct bcn_http_group *g);
/* Requests of g in flight. */
size_t bcn_http_group_active(const struct bcn_http_group *g);
/* bcn_http_group_cancel, then free g. NULL-safe. Before bcn_http_free. */
void bcn_http_group_free(struct bcn_http_group *g);

/* Response header value (case-insensitive name) during on_data/on_done, or NULL. */
const char *bcn_http_header(const struct bcn_http_call *c, const char *name);

/* Requests in flight (for tests and metrics). */
size_t bcn_http_active(const struct bcn_http *h);

#endif
