/*
 * parser.c - see parser.h.
 *
 * Strict where leniency lets requests be smuggled or misread (RFC 9112):
 * a header name ends at its colon with no space before it, obs-fold lines
 * are refused, Content-Length is digits only and every copy must agree, a
 * request with both Content-Length and Transfer-Encoding is refused, and
 * the only transfer coding is chunked. Lenient where it costs nothing: a
 * bare LF ends a line as CRLF does, and empty lines before the request line
 * are skipped. Chunk extensions are checked for shape and ignored.
 */
#include "http/parser.h"

#include <string.h>

enum { S_SIZE, S_DATA, S_DATA_END, S_TRAILER };

/* Longest chunk-size line (with extensions) and trailer section we wait for. */
#define MAX_CHUNK_LINE 1024
#define MAX_TRAILER 8192

static bool tchar(unsigned char c)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && memchr(extra, c, sizeof(extra) - 1));
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool ieq(const char *a, size_t alen, const char *lit)
{
	size_t n = strlen(lit);
	if (alen != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = a[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (c != lit[i])
			return false;
	}
	return true;
}

long bcn_http_head_end(const char *buf, size_t len, size_t *scan, size_t max)
{
	size_t lead = 0, i, end;

	while (lead < len && (buf[lead] == '\r' || buf[lead] == '\n'))
		lead++;
	for (i = *scan > lead ? *scan : lead; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 >= len)
			break; /* undecided until the next byte */
		if (buf[i + 1] == '\n') {
			end = i + 2;
			goto found;
		}
		if (buf[i + 1] == '\r') {
			if (i + 2 >= len)
				break;
			if (buf[i + 2] == '\n') {
				end = i + 3;
				goto found;
			}
		}
	}
	*scan = i;
	return len > max ? -1 : 0;
found:
	*scan = end;
	return end > max ? -1 : (long)end;
}

/* The next line of [p, end): its length without CR LF; *next past it. */
static size_t line(const char *p, const char *end, const char **next)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	size_t n;

	if (!nl)
		nl = end;
	*next = nl < end ? nl + 1 : end;
	n = (size_t)(nl - p);
	if (n && p[n - 1] == '\r')
		n--;
	return n;
}

static enum bcn_method method_of(const char *m, size_t n)
{
	static const struct { const char *name; enum bcn_method m; } tab[] = {
		{ "GET", BCN_M_GET }, { "HEAD", BCN_M_HEAD }, { "POST", BCN_M_POST },
		{ "PUT", BCN_M_PUT }, { "DELETE", BCN_M_DELETE }, { "OPTIONS", BCN_M_OPTIONS },
		{ "PATCH", BCN_M_PATCH },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strlen(tab[i].name) == n && memcmp(tab[i].name, m, n) == 0)
			return tab[i].m;
	return BCN_M_OTHER;
}

static enum bcn_http_err request_line(const char *buf, const char *p, size_t n,
				      struct bcn_http_head *h)
{
	size_t i = 0, m, t;

	while (i < n && tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ' ')
		return BCN_HTTP_E_MALFORMED;
	m = i++;
	t = i;
	while (i < n && (unsigned char)p[i] > 0x20 && p[i] != 0x7f)
		i++;
	if (i == t || i >= n || p[i] != ' ' || p[t] != '/')
		return BCN_HTTP_E_MALFORMED;
	h->method = method_of(p, m);
	h->target = (size_t)(p + t - buf);
	h->target_len = i - t;
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 6] != '.' ||
	    p[i + 5] < '0' || p[i + 5] > '9' || p[i + 7] < '0' || p[i + 7] > '9')
		return BCN_HTTP_E_MALFORMED;
	if (p[i + 5] != '1')
		return BCN_HTTP_E_VERSION;
	h->minor = p[i + 7] - '0';
	return BCN_HTTP_PARSE_OK;
}

/* Does the comma-separated token list v hold tok? */
static bool has_token(const char *v, size_t n, const char *tok)
{
	size_t i = 0;
	while (i < n) {
		size_t s, e;
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > s && ieq(v + s, e - s, tok))
			return true;
	}
	return false;
}

static enum bcn_http_err header(const char *p, size_t n, struct bcn_http_head *h)
{
	size_t i = 0, vs, ve;
	uint64_t v = 0;

	while (i < n && tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ':')
		return BCN_HTTP_E_MALFORMED; /* also obs-fold and "Name :" */
	vs = i + 1;
	while (vs < n && (p[vs] == ' ' || p[vs] == '\t'))
		vs++;
	ve = n;
	while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
		ve--;
	for (size_t k = vs; k < ve; k++) {
		unsigned char c = (unsigned char)p[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return BCN_HTTP_E_MALFORMED;
	}
	if (ieq(p, i, "content-length")) {
		if (vs == ve || ve - vs > 18)
			return BCN_HTTP_E_FRAMING;
		for (size_t k = vs; k < ve; k++) {
			if (p[k] < '0' || p[k] > '9')
				return BCN_HTTP_E_FRAMING;
			v = v * 10 + (uint64_t)(p[k] - '0');
		}
		if (h->has_length && v != h->content_length)
			return BCN_HTTP_E_FRAMING;
		h->has_length = true;
		h->content_length = v;
	} else if (ieq(p, i, "transfer-encoding")) {
		if (h->chunked || !ieq(p + vs, ve - vs, "chunked"))
			return BCN_HTTP_E_TE; /* chunked must be the one and last coding */
		h->chunked = true;
	} else if (ieq(p, i, "connection")) {
		h->conn_close |= has_token(p + vs, ve - vs, "close");
		h->conn_keep_alive |= has_token(p + vs, ve - vs, "keep-alive");
	} else if (ieq(p, i, "expect")) {
		h->expect = true;
	}
	return BCN_HTTP_PARSE_OK;
}

enum bcn_http_err bcn_http_parse_head(const char *buf, size_t hlen, struct bcn_http_head *h)
{
	const char *p = buf, *end = buf + hlen, *next;
	enum bcn_http_err e;
	size_t n;

	memset(h, 0, sizeof(*h));
	h->len = hlen;
	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	n = line(p, end, &next);
	if ((e = request_line(buf, p, n, h)) != BCN_HTTP_PARSE_OK)
		return e;
	for (p = next; p < end; p = next) {
		n = line(p, end, &next);
		if (n == 0)
			break;
		if ((e = header(p, n, h)) != BCN_HTTP_PARSE_OK)
			return e;
	}
	if (h->chunked && (h->has_length || h->minor == 0))
		return BCN_HTTP_E_FRAMING;
	if (h->expect)
		return BCN_HTTP_E_EXPECT;
	return BCN_HTTP_PARSE_OK;
}

/* ---- chunked bodies ---------------------------------------------------------- */

static const char *skip_bws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) BWS, to e. */
static bool chunk_ext_ok(const char *p, const char *e)
{
	for (p = skip_bws(p, e); p < e; p = skip_bws(p, e)) {
		if (*p++ != ';')
			return false;
		p = skip_bws(p, e);
		if (p >= e || !tchar((unsigned char)*p))
			return false;
		while (p < e && tchar((unsigned char)*p))
			p++;
		p = skip_bws(p, e);
		if (p >= e || *p != '=')
			continue;
		p = skip_bws(p + 1, e);
		if (p < e && *p == '"') {
			for (p++; p < e && *p != '"'; p++) {
				if (*p == '\\' && ++p >= e)
					return false;
			}
			if (p >= e)
				return false;
			p++;
		} else if (p < e && tchar((unsigned char)*p)) {
			while (p < e && tchar((unsigned char)*p))
				p++;
		} else {
			return false;
		}
	}
	return true;
}

void bcn_chunked_init(struct bcn_chunked *c, size_t start)
{
	memset(c, 0, sizeof(*c));
	c->start = c->in = start;
	c->state = S_SIZE;
}

/* Raw bytes already decoded are dropped: what is left moves down behind the
 * decoded data, so a body of many small chunks needs no more room than its
 * decoded size plus one chunk line. */
static int more(struct bcn_chunked *c, char *buf, size_t *len)
{
	size_t to = c->start + c->out;
	if (c->in > to) {
		memmove(buf + to, buf + c->in, *len - c->in);
		*len -= c->in - to;
		c->in = to;
	}
	return 0;
}

int bcn_chunked_step(struct bcn_chunked *c, char *buf, size_t *lenp, uint64_t max,
		     enum bcn_http_err *err, size_t *end)
{
	size_t len = *lenp;

	for (;;) {
		const char *nl, *p, *e;
		uint64_t size = 0;
		size_t n;
		int d;

		switch (c->state) {
		case S_SIZE:
			nl = c->in < len ? memchr(buf + c->in, '\n', len - c->in) : NULL;
			if (!nl) {
				if (len - c->in > MAX_CHUNK_LINE)
					goto bad;
				return more(c, buf, lenp);
			}
			p = buf + c->in;
			if ((size_t)(nl - p) > MAX_CHUNK_LINE)
				goto bad; /* as if it had come slowly: the same answer */
			e = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
			if (p >= e || hexval((unsigned char)*p) < 0)
				goto bad;
			for (; p < e && (d = hexval((unsigned char)*p)) >= 0; p++)
				size = size > max ? size : size * 16 + (uint64_t)d; /* saturates past max */
			if (!chunk_ext_ok(p, e))
				goto bad;
			if (size > max || c->out + size > max) {
				*err = BCN_HTTP_E_BODY_TOO_BIG;
				return -1;
			}
			c->in = (size_t)(nl - buf) + 1;
			c->left = size;
			c->state = size ? S_DATA : S_TRAILER;
			break;
		case S_DATA:
			n = len - c->in;
			if (n > c->left)
				n = (size_t)c->left;
			memmove(buf + c->start + c->out, buf + c->in, n);
			c->out += n;
			c->in += n;
			c->left -= n;
			if (c->left)
				return more(c, buf, lenp);
			c->state = S_DATA_END;
			break;
		case S_DATA_END:
			if (c->in >= len)
				return more(c, buf, lenp);
			if (buf[c->in] == '\r') {
				if (c->in + 1 >= len)
					return more(c, buf, lenp);
				if (buf[c->in + 1] != '\n')
					goto bad;
				c->in++;
			} else if (buf[c->in] != '\n') {
				goto bad;
			}
			c->in++;
			c->state = S_SIZE;
			break;
		default: /* S_TRAILER: fields are skipped up to the empty line */
			nl = c->in < len ? memchr(buf + c->in, '\n', len - c->in) : NULL;
			if (!nl) {
				if (len - c->in > MAX_TRAILER)
					goto bad;
				return more(c, buf, lenp);
			}
			n = (size_t)(nl - (buf + c->in));
			if (n > MAX_TRAILER)
				goto bad;
			c->in = (size_t)(nl - buf) + 1;
			if (n == 0 || (n == 1 && nl[-1] == '\r')) {
				*end = c->in;
				return 1;
			}
			break;
		}
	}
bad:
	*err = BCN_HTTP_E_CHUNK;
	return -1;
}
