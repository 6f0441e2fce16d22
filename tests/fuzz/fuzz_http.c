/*
 * fuzz_http.c - the local API server's request parser (agent/http/parser.c):
 * bytes as a client sends them on a connection, possibly several pipelined
 * requests with Content-Length or chunked bodies.
 *
 * Each input is parsed as the server does (find the end of a head, parse
 * it, then take the body), twice: once whole, once fed in pieces whose
 * sizes come from the input's first byte, as a slow client would send it.
 * The two must agree (the incremental scan and the in-place chunked decoder
 * may not depend on how the bytes arrive), every offset must stay inside
 * what was read, and a decoded body may never pass the limit.
 *
 * Input: one byte of piece size, then the bytes of the connection.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "http/parser.h"

#define MAX_HEAD 1024
#define MAX_BODY 512
#define MAX_REQS 16

struct outcome {
	int n;                          /* requests parsed */
	int err;                        /* the error that ended it (0: ran out of bytes) */
	uint64_t sig[MAX_REQS];         /* per request: method, target, body */
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

/* Parse the connection data[0, size) as it arrives in pieces of `piece`
 * bytes (0: all at once) into a buffer of our own, as conn.c does. */
static void run(const uint8_t *data, size_t size, size_t piece, struct outcome *o)
{
	char *buf = malloc(size + 1);
	size_t len = 0, fed = 0, off = 0, scan = 0;
	bool have = false;
	struct bcn_http_head h;
	struct bcn_chunked ch;

	memset(o, 0, sizeof(*o));
	if (!buf)
		return;
	while (o->n < MAX_REQS) {
		size_t end = 0, body_len;
		long hl;
		int rc;

		if (!have) {
			hl = bcn_http_head_end(buf + off, len - off, &scan, MAX_HEAD);
			if (hl < 0) {
				o->err = BCN_HTTP_E_HEAD_TOO_BIG;
				break;
			}
			if (hl == 0)
				goto more;
			if ((size_t)hl > len - off)
				fuzz_fail("head end %ld past the %zu bytes read", hl, len - off);
			enum bcn_http_err e = bcn_http_parse_head(buf + off, (size_t)hl, &h);
			if (e == BCN_HTTP_PARSE_OK && h.has_length && h.content_length > MAX_BODY)
				e = BCN_HTTP_E_BODY_TOO_BIG;
			if (e != BCN_HTTP_PARSE_OK) {
				o->err = (int)e;
				break;
			}
			if (h.target + h.target_len > h.len || h.target_len == 0 || buf[off + h.target] != '/')
				fuzz_fail("request target outside its head");
			have = true;
			if (h.chunked)
				bcn_chunked_init(&ch, off + h.len);
		}
		if (h.chunked) {
			enum bcn_http_err e = BCN_HTTP_PARSE_OK;
			rc = bcn_chunked_step(&ch, buf, &len, MAX_BODY, &e, &end);
			if (rc < 0) {
				o->err = (int)e;
				break;
			}
			if (rc == 0)
				goto more;
			body_len = ch.out;
			if (body_len > MAX_BODY || end > len || off + h.len + body_len > end)
				fuzz_fail("chunked body of %zu bytes ends at %zu of %zu", body_len, end, len);
		} else {
			body_len = (size_t)h.content_length;
			end = off + h.len + body_len;
			if (len < end)
				goto more;
		}
		uint64_t sig = mix(1469598103934665603ULL, &h.method, sizeof(h.method));
		sig = mix(sig, buf + off + h.target, h.target_len);
		sig = mix(sig, buf + off + h.len, body_len);
		o->sig[o->n++] = sig;
		off = end;
		scan = 0;
		have = false;
		continue;
more:
		if (fed == size)
			break;
		{
			size_t n = piece && size - fed > piece ? piece : size - fed;
			memcpy(buf + len, data + fed, n);
			len += n;
			fed += n;
		}
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole, pieces;

	if (size < 1)
		return 0;
	run(data + 1, size - 1, 0, &whole);
	run(data + 1, size - 1, (size_t)data[0] % 17 + 1, &pieces);
	if (whole.n != pieces.n || whole.err != pieces.err ||
	    memcmp(whole.sig, pieces.sig, sizeof(whole.sig)) != 0)
		fuzz_fail("parsed %d request(s) (error %d) whole, %d (error %d) in pieces of %d",
			  whole.n, whole.err, pieces.n, pieces.err, data[0] % 17 + 1);
	return 0;
}
