/*
 * fake_http.h - the agent's HTTP client (agent/http/client.h) with answers
 * scripted by the fuzzer, so a real plugin instance reads hostile backend
 * replies without sockets, curl or timing.
 *
 * A script is the fuzz input cut into parts at lines "--"; each part is one
 * answer in the shape of an HTTP response:
 *
 *   200                      status (0: the server is unreachable)
 *   X-Consul-Index: 7        headers, one per line
 *   X-Fuzz-Chunk: 5          (fake only) stream the body in 5-byte pieces
 *   X-Fuzz-Open: 1           (fake only) a stream stays open after its body
 *                            (empty line)
 *   {"body": ...}            body, to the end of the part
 *
 * Requests whose URL contains a canned route's text get that answer (the
 * plumbing a harness does not fuzz, e.g. etcd's status probe); every other
 * request gets the next part, in the order requests start; once the parts
 * run out, requests stay unanswered until cancelled. Answers come from the
 * event loop, one per callback, never from inside bcn_http_start, as with
 * the real client.
 */
#ifndef BCN_FAKE_HTTP_H
#define BCN_FAKE_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

struct fake_route {
	const char *match;   /* substring of the URL; NULL ends the table */
	const char *answer;  /* a part as above */
};

/* Use data as the script for requests started from now on, with canned
 * routes (NULL-terminated table, may be NULL). data must stay valid until
 * fake_http_reset. */
void fake_http_script(const uint8_t *data, size_t size, const struct fake_route *canned);
/* Run base until no answer is due. */
void fake_http_run(struct event_base *base);
/* Forget the script (requests still open stay open). */
void fake_http_reset(void);
/* Requests started and neither answered nor cancelled. */
size_t fake_http_open(void);

#endif
