/*
 * test_http_parser.c - the HTTP/1.1 request parser of the local API server
 * (agent/http/parser.c): finding the end of a head as bytes trickle in,
 * the request line and the headers the server acts on, the refusals that
 * keep requests from being smuggled or misread, and chunked bodies decoded
 * in place.
 */
#include <stdio.h>
#include <string.h>

#include "http/parser.h"
#include "testutil.h"

/* Parse s as one complete head; the error. */
static enum bcn_http_err parse(const char *s, struct bcn_http_head *h)
{
	size_t scan = 0;
	long n = bcn_http_head_end(s, strlen(s), &scan, 8192);
	ck_assert_int_gt(n, 0);
	return bcn_http_parse_head(s, (size_t)n, h);
}

START_TEST(test_head_end_incremental)
{
	const char *req = "\r\nGET /v1/x?y=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /next";
	size_t want = strlen(req) - strlen("GET /next"), scan = 0;
	long got = 0;
	/* One byte at a time, as a slow client sends: found exactly once, at the end. */
	for (size_t len = 1; len <= strlen(req); len++) {
		got = bcn_http_head_end(req, len, &scan, 8192);
		if (len < want)
			ck_assert_int_eq(got, 0);
		else
			break;
	}
	ck_assert_int_eq(got, (long)want);
	/* Bare LF line ends too. */
	scan = 0;
	ck_assert_int_eq(bcn_http_head_end("GET / HTTP/1.1\nA: b\n\n", 21, &scan, 8192), 21);
	/* Over the limit without an end: refused. */
	char big[300];
	memset(big, 'a', sizeof(big));
	scan = 0;
	ck_assert_int_eq(bcn_http_head_end(big, sizeof(big), &scan, 256), -1);
}
END_TEST

START_TEST(test_request_line_and_headers)
{
	struct bcn_http_head h;
	const char *s = "POST /v1/self/drain HTTP/1.1\r\nHost: a\r\ncontent-length: 12\r\n"
			"Connection: keep-alive, Close\r\nX-Other:\t v \r\n\r\n";
	ck_assert_int_eq(parse(s, &h), BCN_HTTP_PARSE_OK);
	ck_assert_int_eq(h.method, BCN_M_POST);
	ck_assert_int_eq((int)h.target_len, 14);
	ck_assert_int_eq(memcmp(s + h.target, "/v1/self/drain", 14), 0);
	ck_assert_int_eq(h.minor, 1);
	ck_assert(h.has_length && h.content_length == 12);
	ck_assert(h.conn_close && h.conn_keep_alive);

	ck_assert_int_eq(parse("HEAD / HTTP/1.0\r\n\r\n", &h), BCN_HTTP_PARSE_OK);
	ck_assert_int_eq(h.method, BCN_M_HEAD);
	ck_assert_int_eq(h.minor, 0);
	ck_assert_int_eq(parse("BREW /pot HTTP/1.1\r\n\r\n", &h), BCN_HTTP_PARSE_OK);
	ck_assert_int_eq(h.method, BCN_M_OTHER);
}
END_TEST

START_TEST(test_refusals)
{
	struct bcn_http_head h;
	static const struct { const char *req; enum bcn_http_err want; } cases[] = {
		{ "GET  / HTTP/1.1\r\n\r\n", BCN_HTTP_E_MALFORMED },
		{ "GET x HTTP/1.1\r\n\r\n", BCN_HTTP_E_MALFORMED },
		{ "GET / HTTP/1.1 \r\n\r\n", BCN_HTTP_E_MALFORMED },
		{ "GET / HTCPCP/1.0\r\n\r\n", BCN_HTTP_E_MALFORMED },
		{ "GET / HTTP/2.0\r\n\r\n", BCN_HTTP_E_VERSION },
		{ "GET / HTTP/1.1\r\nHost : a\r\n\r\n", BCN_HTTP_E_MALFORMED },
		{ "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", BCN_HTTP_E_MALFORMED },
		{ "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", BCN_HTTP_E_MALFORMED },
		{ "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", BCN_HTTP_E_FRAMING },
		{ "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", BCN_HTTP_E_FRAMING },
		{ "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", BCN_HTTP_E_FRAMING },
		{ "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", BCN_HTTP_E_FRAMING },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", BCN_HTTP_E_TE },
		{ "POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", BCN_HTTP_E_EXPECT },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(parse(cases[i].req, &h) == cases[i].want, "case %zu: %s", i, cases[i].req);
	/* Two equal Content-Lengths are one. */
	ck_assert_int_eq(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", &h),
			 BCN_HTTP_PARSE_OK);
}
END_TEST

/* Decode body (after a 4-byte fake head) fed in steps of `step` bytes. */
static int decode(const char *body, size_t step, uint64_t max, char *out, size_t *outlen,
		  enum bcn_http_err *err)
{
	char buf[4096];
	size_t blen = strlen(body), fed = 0, len = 4, end = 0;
	struct bcn_chunked c;
	int rc = 0;

	memcpy(buf, "HEAD", 4);
	bcn_chunked_init(&c, 4);
	while (fed < blen) {
		size_t n = blen - fed < step ? blen - fed : step;
		memcpy(buf + len, body + fed, n);
		len += n;
		fed += n;
		rc = bcn_chunked_step(&c, buf, &len, max, err, &end);
		if (rc != 0)
			break;
	}
	if (rc == 1) {
		memcpy(out, buf + 4, c.out);
		*outlen = c.out;
		ck_assert_uint_eq(end, len - (blen - fed));
	}
	return rc;
}

START_TEST(test_chunked)
{
	char out[256];
	size_t n = 0;
	enum bcn_http_err err;
	const char *ok[] = { "3;x=y\r\nabc\r\n0\r\n\r\n",
			     "3 ; name = \"quoted \\\" value\" ;flag\r\nabc\r\n2;n=v\r\nde\r\n0;last\r\n\r\n",
			     "1\nx\n0\nTrailer: t\n\n" };
	const char *want[] = { "abc", "abcde", "x" };
	for (size_t i = 0; i < 3; i++) {
		for (size_t step = 1; step < 64; step += 7) {
			ck_assert_int_eq(decode(ok[i], step, 1024, out, &n, &err), 1);
			ck_assert_int_eq((int)n, (int)strlen(want[i]));
			ck_assert_int_eq(memcmp(out, want[i], n), 0);
		}
	}
	const char *bad[] = { "3;\r\nabc\r\n0\r\n\r\n", "zz\r\nabc\r\n0\r\n\r\n", "3;x=\r\nabc\r\n0\r\n\r\n",
			      "3;x=\"open\r\nabc\r\n0\r\n\r\n", "3\r\nabcX\r\n0\r\n\r\n", "+3\r\nabc\r\n0\r\n\r\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(decode(bad[i], 100, 1024, out, &n, &err) == -1, "bad %zu", i);
		ck_assert_int_eq(err, BCN_HTTP_E_CHUNK);
	}
	ck_assert_int_eq(decode("800;x=y\r\nxxxx", 100, 1024, out, &n, &err), -1);
	ck_assert_int_eq(err, BCN_HTTP_E_BODY_TOO_BIG);
	ck_assert_int_eq(decode("ffffffffffffffffffffffff\r\n", 100, 1024, out, &n, &err), -1);
	ck_assert_int_eq(err, BCN_HTTP_E_BODY_TOO_BIG);
	/* Two chunks each under the limit, together over it. */
	ck_assert_int_eq(decode("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", 100, 5, out, &n, &err), -1);
	ck_assert_int_eq(err, BCN_HTTP_E_BODY_TOO_BIG);
}
END_TEST

static Suite *parser_suite(void)
{
	Suite *s = suite_create("http_parser");
	TCase *tc = tcase_create("parser");
	tcase_add_test(tc, test_head_end_incremental);
	tcase_add_test(tc, test_request_line_and_headers);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_chunked);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(parser_suite)
