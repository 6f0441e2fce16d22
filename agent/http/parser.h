/*
 * parser.h - the HTTP/1.1 request parser of beacon's own server (server.c).
 *
 * Pure functions over bytes a connection has read, so they can be unit
 * tested and fuzzed without sockets. Nothing is allocated: a parsed head
 * is offsets into the caller's buffer plus the few header values the server
 * acts on (Content-Length, Transfer-Encoding, Connection, Expect); other
 * headers are checked for shape and skipped. Incremental: the caller keeps
 * how far the end-of-head search got, so a head trickling in byte by byte
 * is scanned once, and a chunked body is decoded in place as it arrives.
 */
#ifndef BCN_HTTP_PARSER_H
#define BCN_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bcn_method {
	BCN_M_OTHER = 0, BCN_M_GET, BCN_M_HEAD, BCN_M_POST, BCN_M_PUT, BCN_M_DELETE,
	BCN_M_OPTIONS, BCN_M_PATCH,
};

/* What a head parse found wrong; each is answered with its own sentence. */
enum bcn_http_err {
	BCN_HTTP_PARSE_OK = 0,
	BCN_HTTP_E_MALFORMED,     /* 400: request line or a header line */
	BCN_HTTP_E_HEAD_TOO_BIG,  /* 400: over max_header_size (the answer it always had) */
	BCN_HTTP_E_VERSION,       /* 505: not HTTP/1.x */
	BCN_HTTP_E_FRAMING,       /* 400: conflicting or bad Content-Length / Transfer-Encoding */
	BCN_HTTP_E_TE,            /* 501: a transfer coding other than chunked */
	BCN_HTTP_E_EXPECT,        /* 417: Expect (100-continue is refused, see server.c) */
	BCN_HTTP_E_BODY_TOO_BIG,  /* 413 */
	BCN_HTTP_E_CHUNK,         /* 400: a malformed chunk-size line or chunk end */
};

struct bcn_http_head {
	enum bcn_method method;
	size_t target, target_len; /* offsets of the request target in the buffer */
	size_t len;                /* bytes of the whole head, request line to blank line */
	int minor;                 /* HTTP/1.<minor> */
	bool chunked, has_length, conn_close, conn_keep_alive, expect;
	uint64_t content_length;
};

/*
 * Look for the end of a head in buf[0, len). *scan is where the previous
 * call stopped (0 at first). Returns the head length once the blank line is
 * in, 0 when more bytes are needed, or -1 when max bytes passed without one.
 * Leading empty lines (RFC 9112 2.2) count as part of the head.
 */
long bcn_http_head_end(const char *buf, size_t len, size_t *scan, size_t max);

/* Parse a complete head of hlen bytes (from bcn_http_head_end). */
enum bcn_http_err bcn_http_parse_head(const char *buf, size_t hlen, struct bcn_http_head *h);

/*
 * Chunked body decoding in place. The body's first byte is at buf + start;
 * decoded data is moved down to start, so it ends up contiguous there.
 * Call with the bytes read so far (*len counts from buf); returns 1 when the
 * body and its trailer are complete (c->out its decoded size, *end the
 * offset just past it, where a pipelined request may follow), 0 for more
 * (raw bytes already decoded are dropped then: *len shrinks), or -1 with
 * *err. max: the body limit.
 */
struct bcn_chunked {
	size_t start;     /* where decoded data goes (fixed) */
	size_t out;       /* decoded bytes so far */
	size_t in;        /* next raw byte to look at */
	uint64_t left;    /* data bytes of the current chunk still to copy */
	int state;        /* parser.c: SIZE, DATA, DATA_END, TRAILER */
};
void bcn_chunked_init(struct bcn_chunked *c, size_t start);
int bcn_chunked_step(struct bcn_chunked *c, char *buf, size_t *len, uint64_t max,
		     enum bcn_http_err *err, size_t *end);

#endif
