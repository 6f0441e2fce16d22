/*
 * loadgen.c - a closed-loop HTTP/1.1 load generator for `make bench`.
 *
 * It holds N keep-alive connections to one Unix socket or TCP host:port and
 * keeps exactly one request outstanding on each: the next request on a
 * connection is written the moment the previous answer is complete. It runs
 * for a warm-up period (answers discarded), then for a fixed duration or a
 * fixed number of answers, and prints one JSON object on stdout: req/s, a
 * latency distribution, status counts and its own CPU use (so a reader can see
 * whether the generator, not the server, was the bottleneck).
 *
 * It is built on libevent's core loop only (one persistent read event per
 * connection, raw read/write on the fd, a small hand-written response parser)
 * rather than on evhttp's client, so that the generator costs far less per
 * request than the servers it measures. Latencies go into a log-linear
 * histogram (HdrHistogram's layout: 256 linear sub-buckets per power of two,
 * under 0.4% error), so memory does not grow with the run.
 *
 * Answers may carry Content-Length or chunked bodies (etcd's gateway uses
 * either); a body delimited by the close of the connection is read to EOF.
 *
 *   loadgen (--unix PATH | --tcp HOST:PORT) [--path /x] [-c CONNS]
 *           [-d SECONDS | -n COUNT] [--warmup SECONDS] [--method GET|POST]
 *           [--body TEXT | --body-file FILE] [-H 'Name: value']...
 *           [--expect-status N] [--expect-bytes N] [--dump-body FILE]
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- latency histogram ---------------------------------------------------- */

#define SUB_BITS 8
#define SUB_COUNT (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB_COUNT)

struct hist {
	uint64_t count[NBUCKETS];
	uint64_t total, min, max;
	long double sum;
};

static unsigned hist_index(uint64_t v)
{
	if (v < SUB_COUNT)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - (SUB_BITS - 1);
	return shift * (SUB_COUNT / 2) + (unsigned)(v >> shift);
}

/* The middle of the values that share bucket i. */
static double hist_value(unsigned i)
{
	if (i < SUB_COUNT)
		return (double)i;
	unsigned shift = (i - SUB_COUNT / 2) / (SUB_COUNT / 2);
	uint64_t sub = (uint64_t)i - (uint64_t)shift * (SUB_COUNT / 2);
	uint64_t lo = sub << shift;
	return (double)lo + (double)((1ull << shift) - 1) / 2.0;
}

static void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->count[hist_index(v)]++;
	h->total++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* Smallest recorded value v such that at least p% of the samples are <= v. */
static double hist_pct(const struct hist *h, double p)
{
	uint64_t want, seen = 0;

	if (h->total == 0)
		return 0;
	want = (uint64_t)((p / 100.0) * (double)h->total + 0.999999);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < NBUCKETS; i++) {
		seen += h->count[i];
		if (seen >= want) {
			double v = hist_value(i);
			/* Exact ends are known; keep the estimate inside them. */
			if (v < (double)h->min)
				v = (double)h->min;
			if (v > (double)h->max)
				v = (double)h->max;
			return v;
		}
	}
	return (double)h->max;
}

/* ---- state ----------------------------------------------------------------- */

enum phase { WARMUP, MEASURE, DONE };

struct conn {
	struct lg *lg;
	int fd;
	struct event *rev, *wev;
	char *buf;
	size_t len, cap;
	size_t woff;            /* bytes of the request already written */
	uint64_t sent_ns;
	bool busy;              /* a request is outstanding */
};

struct lg {
	struct event_base *base;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool tcp;
	char *req;              /* the whole request, built once */
	size_t reqlen;
	int nconns;
	struct conn *conns;
	enum phase phase;
	uint64_t limit;         /* -n: answers to measure; 0 = by time */
	uint64_t issued;        /* requests started during MEASURE (for -n) */
	struct hist hist;
	uint64_t status[600];
	uint64_t errors_connect, errors_io, errors_parse, closed_by_peer, reconnects;
	uint64_t bad_status, bad_bytes;
	int expect_status;
	long long expect_bytes;
	long long first_body;   /* body length of the first answer, -1 before it */
	const char *dump_path;
	bool dumped;
	uint64_t t_start, t_end;
	struct rusage ru_start, ru_end;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "loadgen: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(2);
}

/* ---- connections ------------------------------------------------------------ */

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void send_next(struct conn *c);

static int conn_open(struct conn *c)
{
	struct lg *lg = c->lg;
	int fd = socket(lg->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -1;
	/* Connect blocking (local peers answer at once), then go non-blocking. */
	if (connect(fd, (struct sockaddr *)&lg->addr, lg->addrlen) < 0) {
		close(fd);
		return -1;
	}
	if (lg->tcp)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	c->fd = fd;
	c->len = 0;
	c->woff = 0;
	c->busy = false;
	c->rev = event_new(lg->base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->wev = event_new(lg->base, fd, EV_WRITE, on_write, c);
	if (!c->rev || !c->wev)
		return -1;
	event_add(c->rev, NULL);
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	c->rev = c->wev = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->busy = false;
}

/* Drop the connection, open a new one and carry on (counted as a reconnect). */
static void conn_restart(struct conn *c)
{
	struct lg *lg = c->lg;
	conn_close(c);
	if (lg->phase == DONE)
		return;
	lg->reconnects++;
	if (conn_open(c) < 0) {
		lg->errors_connect++;
		conn_close(c);
		return; /* this connection is lost for the rest of the run */
	}
	send_next(c);
}

static void write_some(struct conn *c)
{
	struct lg *lg = c->lg;
	while (c->woff < lg->reqlen) {
		ssize_t n = write(c->fd, lg->req + c->woff, lg->reqlen - c->woff);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(c->wev, NULL);
				return;
			}
			lg->errors_io++;
			conn_restart(c);
			return;
		}
		c->woff += (size_t)n;
	}
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	write_some(arg);
}

static void send_next(struct conn *c)
{
	struct lg *lg = c->lg;

	if (lg->phase == DONE || c->fd < 0)
		return;
	if (lg->phase == MEASURE && lg->limit) {
		if (lg->issued >= lg->limit)
			return;
		lg->issued++;
	}
	c->busy = true;
	c->woff = 0;
	c->sent_ns = now_ns();
	write_some(c);
}

/* ---- answers ---------------------------------------------------------------- */

/* Header value of name in [h, end) (case-insensitive), or NULL; *vlen set. */
static const char *header(const char *h, const char *end, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	while (h < end) {
		const char *eol = memchr(h, '\n', (size_t)(end - h));
		if (!eol)
			eol = end;
		if ((size_t)(eol - h) > nl && h[nl] == ':' && strncasecmp(h, name, nl) == 0) {
			const char *v = h + nl + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			const char *ve = eol;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
				ve--;
			*vlen = (size_t)(ve - v);
			return v;
		}
		h = eol + 1;
	}
	return NULL;
}

/* Parse a chunked body at [p, end): total bytes consumed, 0 when incomplete,
 * -1 when malformed. *body gets the decoded length. */
static ssize_t chunked(const char *p, const char *end, size_t *body)
{
	const char *start = p;
	*body = 0;
	for (;;) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		char *q;
		if (!eol)
			return 0;
		unsigned long n = strtoul(p, &q, 16);
		if (q == p)
			return -1;
		p = eol + 2;
		if (n == 0) {
			/* No trailers expected: the last CRLF ends the body. */
			const char *fin = memmem(p, (size_t)(end - p), "\r\n", 2);
			if (!fin)
				return 0;
			return fin + 2 - start;
		}
		if ((size_t)(end - p) < n + 2)
			return 0;
		p += n + 2;
		*body += n;
	}
}

/* One complete answer of `total` bytes with body [body, body+blen). */
static void answered(struct conn *c, int status, const char *body, size_t blen, bool close_after)
{
	struct lg *lg = c->lg;
	uint64_t t = now_ns();

	c->busy = false;
	if (lg->first_body < 0)
		lg->first_body = (long long)blen;
	if (lg->dump_path && !lg->dumped) {
		FILE *f = fopen(lg->dump_path, "wb");
		if (f) {
			fwrite(body, 1, blen, f);
			fclose(f);
		}
		lg->dumped = true;
	}
	if (lg->phase == MEASURE) {
		hist_add(&lg->hist, t - c->sent_ns);
		if (status >= 100 && status < 600)
			lg->status[status]++;
		if (lg->expect_status && status != lg->expect_status)
			lg->bad_status++;
		if (lg->expect_bytes >= 0 && (long long)blen != lg->expect_bytes)
			lg->bad_bytes++;
		if (lg->limit && lg->hist.total >= lg->limit) {
			lg->t_end = t;
			getrusage(RUSAGE_SELF, &lg->ru_end);
			lg->phase = DONE;
			event_base_loopbreak(lg->base);
			return;
		}
	}
	if (close_after) {
		lg->closed_by_peer++;
		conn_restart(c);
		return;
	}
	send_next(c);
}

/* Try to take one answer off the front of c->buf. 1 = took one, 0 = need more. */
static int parse_one(struct conn *c, bool eof)
{
	struct lg *lg = c->lg;
	char *hend = memmem(c->buf, c->len, "\r\n\r\n", 4);
	const char *v;
	size_t vlen, hlen, need, blen;
	int status;
	bool close_after = false;

	if (!hend)
		return 0;
	hlen = (size_t)(hend - c->buf) + 4;
	if (c->len < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0) {
		lg->errors_parse++;
		return -1;
	}
	status = atoi(c->buf + 9);
	v = header(c->buf, hend + 2, "Connection", &vlen);
	if (v && vlen == 5 && strncasecmp(v, "close", 5) == 0)
		close_after = true;
	if (c->buf[7] == '0' && !(v && vlen == 10 && strncasecmp(v, "keep-alive", 10) == 0))
		close_after = true; /* HTTP/1.0 without keep-alive */
	if ((v = header(c->buf, hend + 2, "Content-Length", &vlen)) != NULL) {
		blen = strtoul(v, NULL, 10);
		need = hlen + blen;
		if (c->len < need)
			return 0;
		answered(c, status, c->buf + hlen, blen, close_after);
	} else if ((v = header(c->buf, hend + 2, "Transfer-Encoding", &vlen)) != NULL &&
		   vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0) {
		ssize_t n = chunked(c->buf + hlen, c->buf + c->len, &blen);
		if (n < 0) {
			lg->errors_parse++;
			return -1;
		}
		if (n == 0)
			return 0;
		need = hlen + (size_t)n;
		/* blen is the decoded length; a dump keeps the chunk framing. */
		answered(c, status, c->buf + hlen, blen, close_after);
	} else if (status == 204 || status == 304 || (status >= 100 && status < 200)) {
		need = hlen;
		answered(c, status, c->buf + hlen, 0, close_after);
	} else {
		if (!eof)
			return 0;
		need = c->len;
		answered(c, status, c->buf + hlen, c->len - hlen, true);
	}
	/* answered() may have restarted or closed the connection. */
	if (c->fd < 0 || c->len == 0)
		return -2;
	if (need < c->len)
		memmove(c->buf, c->buf + need, c->len - need);
	c->len -= need;
	return 1;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct lg *lg = c->lg;
	bool eof = false;
	(void)what;

	for (;;) {
		if (c->cap - c->len < 4096) {
			size_t cap = c->cap ? c->cap * 2 : 65536;
			char *b = realloc(c->buf, cap);
			if (!b)
				die("%s", "out of memory");
			c->buf = b;
			c->cap = cap;
		}
		size_t room = c->cap - c->len;
		ssize_t n = read(fd, c->buf + c->len, room);
		if (n > 0) {
			c->len += (size_t)n;
			if ((size_t)n < room)
				break; /* short read: the socket is drained */
			continue;
		}
		if (n == 0) {
			eof = true;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		lg->errors_io++;
		conn_restart(c);
		return;
	}
	for (;;) {
		int r = parse_one(c, eof);
		if (r == 1)
			continue;
		if (r == -2)
			return; /* the connection was replaced or the run ended */
		if (r < 0) {
			conn_restart(c);
			return;
		}
		break;
	}
	if (eof) {
		if (c->busy || c->len)
			lg->closed_by_peer++;
		conn_restart(c);
	}
}

/* ---- run ---------------------------------------------------------------------- */

static void start_measuring(evutil_socket_t fd, short what, void *arg)
{
	struct lg *lg = arg;
	(void)fd;
	(void)what;
	hist_reset(&lg->hist);
	memset(lg->status, 0, sizeof(lg->status));
	lg->bad_status = lg->bad_bytes = 0;
	lg->errors_io = lg->errors_parse = lg->closed_by_peer = lg->reconnects = 0;
	lg->phase = MEASURE;
	lg->t_start = now_ns();
	getrusage(RUSAGE_SELF, &lg->ru_start);
}

static void stop(evutil_socket_t fd, short what, void *arg)
{
	struct lg *lg = arg;
	(void)fd;
	(void)what;
	lg->t_end = now_ns();
	getrusage(RUSAGE_SELF, &lg->ru_end);
	lg->phase = DONE;
	event_base_loopbreak(lg->base);
}

static double tv_s(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void report(struct lg *lg, const char *target, const char *path, const char *method,
		   double warmup)
{
	double secs = (double)(lg->t_end - lg->t_start) / 1e9;
	double cpu = tv_s(&lg->ru_end.ru_utime) - tv_s(&lg->ru_start.ru_utime) +
		     tv_s(&lg->ru_end.ru_stime) - tv_s(&lg->ru_start.ru_stime);
	const struct hist *h = &lg->hist;
	bool first = true;

	printf("{\"target\":");
	json_str(target);
	printf(",\"path\":");
	json_str(path);
	printf(",\"method\":");
	json_str(method);
	printf(",\"connections\":%d,\"warmup_s\":%.3f,\"duration_s\":%.3f,\"requests\":%" PRIu64
	       ",\"req_per_s\":%.1f", lg->nconns, warmup, secs, h->total, secs > 0 ? (double)h->total / secs : 0.0);
	printf(",\"latency_us\":{\"min\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
	       "\"max\":%.1f,\"mean\":%.1f}",
	       h->total ? (double)h->min / 1e3 : 0.0, hist_pct(h, 50) / 1e3, hist_pct(h, 90) / 1e3,
	       hist_pct(h, 99) / 1e3, hist_pct(h, 99.9) / 1e3, (double)h->max / 1e3,
	       h->total ? (double)(h->sum / h->total) / 1e3 : 0.0);
	printf(",\"status\":{");
	for (int i = 0; i < 600; i++) {
		if (lg->status[i]) {
			printf("%s\"%d\":%" PRIu64, first ? "" : ",", i, lg->status[i]);
			first = false;
		}
	}
	printf("},\"unexpected_status\":%" PRIu64 ",\"unexpected_bytes\":%" PRIu64
	       ",\"body_bytes\":%lld,\"errors\":{\"connect\":%" PRIu64 ",\"io\":%" PRIu64
	       ",\"parse\":%" PRIu64 ",\"closed_by_peer\":%" PRIu64 "},\"reconnects\":%" PRIu64
	       ",\"loadgen_cpu_s\":%.3f,\"loadgen_cpu_util\":%.3f}\n",
	       lg->bad_status, lg->bad_bytes, lg->first_body, lg->errors_connect, lg->errors_io,
	       lg->errors_parse, lg->closed_by_peer, lg->reconnects, cpu, secs > 0 ? cpu / secs : 0.0);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen (--unix PATH | --tcp HOST:PORT) [--path /x] [-c CONNS]\n"
		"               [-d SECONDS | -n COUNT] [--warmup SECONDS] [--method GET|POST]\n"
		"               [--body TEXT | --body-file FILE] [-H 'Name: value']...\n"
		"               [--host NAME] [--expect-status N] [--expect-bytes N] [--dump-body FILE]\n");
	exit(2);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0;

	*len = 0;
	if (!f)
		die("cannot read %s", path);
	for (;;) {
		if (cap - *len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			if (!buf)
				die("%s", "out of memory");
		}
		size_t n = fread(buf + *len, 1, cap - *len, f);
		*len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	return buf;
}

static void resolve(struct lg *lg, const char *unix_path, const char *tcp)
{
	memset(&lg->addr, 0, sizeof(lg->addr));
	if (unix_path) {
		struct sockaddr_un *sa = (struct sockaddr_un *)&lg->addr;
		if (strlen(unix_path) >= sizeof(sa->sun_path))
			die("socket path %s is too long", unix_path);
		sa->sun_family = AF_UNIX;
		strcpy(sa->sun_path, unix_path);
		lg->addrlen = sizeof(*sa);
		return;
	}
	char host[256];
	const char *colon = strrchr(tcp, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	if (!colon || (size_t)(colon - tcp) >= sizeof(host))
		die("expected HOST:PORT, got %s", tcp);
	memcpy(host, tcp, (size_t)(colon - tcp));
	host[colon - tcp] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
		die("cannot resolve %s", tcp);
	memcpy(&lg->addr, ai->ai_addr, ai->ai_addrlen);
	lg->addrlen = ai->ai_addrlen;
	lg->tcp = true;
	freeaddrinfo(ai);
}

int main(int argc, char **argv)
{
	static struct lg lg;
	const char *unix_path = NULL, *tcp = NULL, *path = "/", *method = "GET", *host = NULL;
	const char *headers[32];
	char *body = NULL;
	size_t bodylen = 0, nheaders = 0;
	double duration = 5, warmup = 1;
	char target[512];

	lg.nconns = 1;
	lg.expect_bytes = -1;
	lg.first_body = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
#define ARG() (i + 1 < argc ? argv[++i] : (usage(), ""))
		if (!strcmp(a, "--unix"))
			unix_path = ARG();
		else if (!strcmp(a, "--tcp"))
			tcp = ARG();
		else if (!strcmp(a, "--path"))
			path = ARG();
		else if (!strcmp(a, "-c") || !strcmp(a, "--connections"))
			lg.nconns = atoi(ARG());
		else if (!strcmp(a, "-d") || !strcmp(a, "--duration"))
			duration = atof(ARG());
		else if (!strcmp(a, "-n") || !strcmp(a, "--count"))
			lg.limit = strtoull(ARG(), NULL, 10);
		else if (!strcmp(a, "--warmup"))
			warmup = atof(ARG());
		else if (!strcmp(a, "--method"))
			method = ARG();
		else if (!strcmp(a, "--body")) {
			const char *b = ARG();
			bodylen = strlen(b);
			body = strdup(b);
		} else if (!strcmp(a, "--body-file"))
			body = read_file(ARG(), &bodylen);
		else if (!strcmp(a, "-H") || !strcmp(a, "--header")) {
			if (nheaders == sizeof(headers) / sizeof(headers[0]))
				die("%s", "too many headers");
			headers[nheaders++] = ARG();
		} else if (!strcmp(a, "--host"))
			host = ARG();
		else if (!strcmp(a, "--expect-status"))
			lg.expect_status = atoi(ARG());
		else if (!strcmp(a, "--expect-bytes"))
			lg.expect_bytes = atoll(ARG());
		else if (!strcmp(a, "--dump-body"))
			lg.dump_path = ARG();
		else
			usage();
#undef ARG
	}
	if (!!unix_path == !!tcp || lg.nconns < 1 || (duration <= 0 && !lg.limit))
		usage();
	signal(SIGPIPE, SIG_IGN);
	resolve(&lg, unix_path, tcp);
	snprintf(target, sizeof(target), "%s%s", unix_path ? "unix:" : "tcp:", unix_path ? unix_path : tcp);

	/* The request, built once: every request of the run is the same bytes. */
	{
		size_t cap = 1024 + strlen(path) + bodylen;
		for (size_t i = 0; i < nheaders; i++)
			cap += strlen(headers[i]) + 2;
		lg.req = malloc(cap);
		if (!lg.req)
			die("%s", "out of memory");
		int n = snprintf(lg.req, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path,
				 host ? host : (tcp ? tcp : "localhost"));
		for (size_t i = 0; i < nheaders; i++)
			n += snprintf(lg.req + n, cap - (size_t)n, "%s\r\n", headers[i]);
		if (body)
			n += snprintf(lg.req + n, cap - (size_t)n, "Content-Length: %zu\r\n", bodylen);
		n += snprintf(lg.req + n, cap - (size_t)n, "\r\n");
		if (body) {
			memcpy(lg.req + n, body, bodylen);
			n += (int)bodylen;
		}
		lg.reqlen = (size_t)n;
	}

	lg.base = event_base_new();
	if (!lg.base)
		die("%s", "cannot create an event base");
	lg.conns = calloc((size_t)lg.nconns, sizeof(*lg.conns));
	if (!lg.conns)
		die("%s", "out of memory");
	for (int i = 0; i < lg.nconns; i++) {
		lg.conns[i].lg = &lg;
		lg.conns[i].fd = -1;
		if (conn_open(&lg.conns[i]) < 0)
			die("cannot connect to %s", target);
	}

	struct event *t_measure = evtimer_new(lg.base, start_measuring, &lg);
	struct event *t_stop = evtimer_new(lg.base, stop, &lg);
	if (warmup > 0) {
		struct timeval tv = { (time_t)warmup, (suseconds_t)((warmup - (double)(time_t)warmup) * 1e6) };
		lg.phase = WARMUP;
		evtimer_add(t_measure, &tv);
	} else {
		start_measuring(-1, 0, &lg);
	}
	if (!lg.limit) {
		double end = warmup + duration;
		struct timeval tv = { (time_t)end, (suseconds_t)((end - (double)(time_t)end) * 1e6) };
		evtimer_add(t_stop, &tv);
	}
	for (int i = 0; i < lg.nconns; i++)
		send_next(&lg.conns[i]);
	event_base_dispatch(lg.base);
	if (lg.phase != DONE) {
		/* Every connection died before the end. */
		lg.t_end = now_ns();
		getrusage(RUSAGE_SELF, &lg.ru_end);
	}
	report(&lg, target, path, method, warmup);

	for (int i = 0; i < lg.nconns; i++) {
		conn_close(&lg.conns[i]);
		free(lg.conns[i].buf);
	}
	free(lg.conns);
	event_free(t_measure);
	event_free(t_stop);
	event_base_free(lg.base);
	free(lg.req);
	free(body);
	return lg.hist.total > 0 ? 0 : 1;
}
