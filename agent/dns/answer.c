/*
 * answer.c - the names beacon answers for (SPEC.md "DNS", after Consul):
 *
 *   <domain>                          SOA (and the SOA of every negative answer)
 *   <service>.service.<domain>        A, AAAA (rotated per query), SRV
 *   <tag>.<service>.service.<domain>  the same, endpoints carrying the tag
 *   <id>.<service>.service.<domain>   one endpoint: the SRV targets' names
 *   _<service>._tcp.service.<domain>  SRV as RFC 2782 names it
 *
 * read from the store's passing endpoints at the moment of the query (the
 * store keeps the last known state while a backend is away). Everything is
 * written straight into the answer buffer; owner names are pointers into the
 * question, so the client's case is echoed and a record costs 16 bytes (A).
 */
#include "dns/answer.h"
#include "dns/wire.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/cache.h"

const char *const bcn_dns_type_names[BCN_DNS_NTYPES] = { "A", "AAAA", "SRV", "SOA", "ANY", "other" };
const char *const bcn_dns_rcode_names[BCN_DNS_NRCODES] = {
	"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS",
};

/* SOA timers (RFC 1912 values); nobody transfers this zone, they only fill the record. */
#define SOA_REFRESH 3600
#define SOA_RETRY 600
#define SOA_EXPIRE 86400

int bcn_dns_zone_domain(struct bcn_dns_zone *z, const char *domain)
{
	size_t n = strlen(domain), label = 0;

	if (n && domain[n - 1] == '.')
		n--;
	if (n == 0 || n >= sizeof(z->domain))
		return -1;
	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? domain[i] : '.';
		if (c == '.') {
			if (label == 0 || label > 63)
				return -1;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			   c == '-' || c == '_') {
			label++;
		} else {
			return -1;
		}
		if (i < n)
			z->domain[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	z->domain[n] = '\0';
	return 0;
}

void bcn_dns_zone_clear(struct bcn_dns_zone *z)
{
	if (!z)
		return;
	free(z->pick);
	free(z->target_at);
	z->pick = NULL;
	z->target_at = NULL;
	z->pick_cap = 0;
}

static int type_index(uint16_t t)
{
	switch (t) {
	case BCN_DNS_A:    return 0;
	case BCN_DNS_AAAA: return 1;
	case BCN_DNS_SRV:  return 2;
	case BCN_DNS_SOA:  return 3;
	case BCN_DNS_ANY:  return 4;
	default:           return 5;
	}
}

/* Label i of the query's name: its text (lower case) and length. */
static const char *label(const struct bcn_dns_query *q, unsigned i, size_t *len)
{
	size_t end = i + 1 < q->nlabels ? (size_t)q->lstart[i + 1] - 1 : strlen(q->name);
	*len = end - q->lstart[i];
	return q->name + q->lstart[i];
}

static bool label_is(const struct bcn_dns_query *q, unsigned i, const char *s)
{
	size_t len;
	const char *l = label(q, i, &len);
	return len == strlen(s) && memcmp(l, s, len) == 0;
}

/* The SOA of the zone, owned by the domain at wire offset domain_at. */
static int put_soa(struct bcn_dns_out *o, const struct bcn_dns_zone *z, size_t domain_at)
{
	uint8_t rd[5 + 13 + 20], *p = rd;
	uint32_t serial = (uint32_t)bcn_cache_index(z->cache);
	uint32_t v[5] = { serial, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, z->ttl };
	size_t mark = o->len;

	*p++ = 2, memcpy(p, "ns", 2), p += 2;
	*p++ = (uint8_t)(0xC0 | domain_at >> 8), *p++ = (uint8_t)domain_at;
	*p++ = 10, memcpy(p, "hostmaster", 10), p += 10;
	*p++ = (uint8_t)(0xC0 | domain_at >> 8), *p++ = (uint8_t)domain_at;
	for (int i = 0; i < 5; i++, p += 4) {
		p[0] = (uint8_t)(v[i] >> 24), p[1] = (uint8_t)(v[i] >> 16);
		p[2] = (uint8_t)(v[i] >> 8), p[3] = (uint8_t)v[i];
	}
	if (bcn_dns_put_ptr(o, domain_at) < 0 ||
	    bcn_dns_put_rr(o, BCN_DNS_SOA, z->ttl, rd, (uint16_t)(p - rd)) < 0) {
		o->len = mark;
		return -1;
	}
	return 0;
}

static int grow(struct bcn_dns_zone *z, size_t n)
{
	const struct bcn_endpoint **p;
	uint16_t *t;

	if (n <= z->pick_cap)
		return 0;
	p = realloc(z->pick, n * sizeof(*p));
	if (!p)
		return -1;
	z->pick = p;
	t = realloc(z->target_at, n * sizeof(*t));
	if (!t)
		return -1;
	z->target_at = t;
	z->pick_cap = n;
	return 0;
}

/* Passing endpoints named by sel: one whose id reads as sel, else those
 * tagged sel (any case); all when sel is NULL. */
static size_t select_endpoints(struct bcn_dns_zone *z, struct bcn_service *s, const char *sel)
{
	size_t n, m = 0;
	const struct bcn_endpoint *const *eps = bcn_service_passing(s, &n);
	char l[64];

	if (!eps || grow(z, n ? n : 1) < 0)
		return 0;
	for (size_t i = 0; sel && i < n; i++) {
		if (bcn_dns_label_of(eps[i]->id, l) && strcmp(l, sel) == 0)
			z->pick[m++] = eps[i];
	}
	if (m)
		return m;
	for (size_t i = 0; i < n; i++) {
		bool ok = !sel;
		for (size_t t = 0; !ok && t < eps[i]->ntags; t++)
			ok = strcasecmp(eps[i]->tags[t], sel) == 0;
		if (ok)
			z->pick[m++] = eps[i];
	}
	return m;
}

/* The SRV target of an endpoint: "<id>." + (svc label) + the suffix of the
 * question from suffix_at, uncompressed as RFC 2782 asks; or the endpoint's
 * own host name. Returns its wire length, 0 when it cannot be a name. */
static size_t srv_target(const struct bcn_dns_query *q, const struct bcn_endpoint *e, bool ip,
			 const char *svc, size_t suffix_at, uint8_t out[256])
{
	size_t n = 0, len;
	char l[64];

	if (!ip) {
		const char *a = e->address;
		while (*a) {
			const char *dot = strchr(a, '.');
			len = dot ? (size_t)(dot - a) : strlen(a);
			if (len == 0 || len > 63 || n + len + 2 > 255)
				return 0;
			out[n++] = (uint8_t)len;
			memcpy(out + n, a, len);
			n += len;
			a += len + (dot ? 1 : 0);
		}
		out[n++] = 0;
		return n > 1 ? n : 0;
	}
	len = bcn_dns_label_of(e->id, l);
	if (!len)
		return 0;
	out[n++] = (uint8_t)len;
	memcpy(out + n, l, len);
	n += len;
	if (svc) {
		len = strlen(svc);
		if (len == 0 || len > 63)
			return 0;
		out[n++] = (uint8_t)len;
		memcpy(out + n, svc, len);
		n += len;
	}
	len = q->qname_len - (suffix_at - BCN_DNS_HDR);
	if (n + len > 255)
		return 0;
	memcpy(out + n, q->qname + (suffix_at - BCN_DNS_HDR), len);
	return n + len;
}

struct addr {
	int family;        /* AF_INET, AF_INET6, 0: a host name */
	uint8_t b[16];
};

static void parse_addr(const struct bcn_endpoint *e, struct addr *a)
{
	a->family = inet_pton(AF_INET, e->address, a->b) == 1    ? AF_INET
		    : inet_pton(AF_INET6, e->address, a->b) == 1 ? AF_INET6
								  : 0;
}

static bool room_left(const struct bcn_dns_zone *z, const struct bcn_dns_out *o, bool tcp)
{
	return tcp || !z->udp_answer_limit || o->an < z->udp_answer_limit;
}

/* An A or AAAA record owned by the name at owner_at (or, beyond the reach of
 * a pointer, by a copy of it). */
static int put_addr(struct bcn_dns_out *o, const struct bcn_dns_zone *z, size_t owner_at,
		    size_t owner_len, const struct addr *a)
{
	size_t mark = o->len;
	int rc;

	if (owner_at < 0x4000) {
		rc = bcn_dns_put_ptr(o, owner_at);
	} else {
		rc = o->cap - o->len >= owner_len ? 0 : -1;
		if (rc == 0) {
			memmove(o->buf + o->len, o->buf + owner_at, owner_len);
			o->len += owner_len;
		}
	}
	if (rc == 0)
		rc = bcn_dns_put_rr(o, a->family == AF_INET ? BCN_DNS_A : BCN_DNS_AAAA, z->ttl, a->b,
				    a->family == AF_INET ? 4 : 16);
	if (rc < 0)
		o->len = mark;
	return rc;
}

/* SRV answers, then the A/AAAA of their targets as additional records
 * (dropped without TC when they do not fit: RFC 2181 9). */
static bool put_srv(struct bcn_dns_zone *z, const struct bcn_dns_query *q, struct bcn_dns_out *o,
		    size_t m, size_t start, bool tcp, const char *svc, size_t suffix_at)
{
	size_t done = 0;
	uint8_t rd[6 + 256];
	struct addr a;

	for (; done < m && room_left(z, o, tcp); done++) {
		const struct bcn_endpoint *e = z->pick[(start + done) % m];
		size_t tlen, mark = o->len;
		z->target_at[done] = 0;
		parse_addr(e, &a);
		tlen = srv_target(q, e, a.family != 0, svc, suffix_at, rd + 6);
		if (!tlen)
			continue;
		rd[0] = 0, rd[1] = 1;  /* priority 1 */
		rd[2] = (uint8_t)(e->weight > 65535 ? 0xFF : e->weight >> 8);
		rd[3] = (uint8_t)(e->weight > 65535 ? 0xFF : e->weight);
		rd[4] = (uint8_t)(e->port >> 8), rd[5] = (uint8_t)e->port;
		if (bcn_dns_put_ptr(o, BCN_DNS_HDR) < 0 ||
		    bcn_dns_put_rr(o, BCN_DNS_SRV, z->ttl, rd, (uint16_t)(6 + tlen)) < 0) {
			o->len = mark;
			return true;
		}
		o->an++;
		if (a.family)
			z->target_at[done] = (uint16_t)(o->len - tlen);
	}
	for (size_t k = 0; k < done; k++) {
		size_t at = z->target_at[k], tlen = 1;
		if (!at)
			continue;
		/* The target is uncompressed: its length is its labels'. */
		while (o->buf[at + tlen - 1])
			tlen += o->buf[at + tlen - 1] + 1u;
		parse_addr(z->pick[(start + k) % m], &a);
		if (put_addr(o, z, at, tlen, &a) < 0)
			break;
		o->ar++;
	}
	return false;
}

/* A and AAAA answers (family 0: both, for ANY). True when one did not fit. */
static bool put_addrs(struct bcn_dns_zone *z, struct bcn_dns_out *o, size_t m, size_t start,
		      bool tcp, int family)
{
	struct addr a;

	for (size_t k = 0; k < m && room_left(z, o, tcp); k++) {
		parse_addr(z->pick[(start + k) % m], &a);
		if (!a.family || (family && a.family != family))
			continue;
		if (put_addr(o, z, BCN_DNS_HDR, 0, &a) < 0)
			return true;
		o->an++;
	}
	return false;
}

/* The answer to a well-formed query; returns its rcode, *tc when records
 * did not fit. */
static int resolve(struct bcn_dns_zone *z, const struct bcn_dns_query *q, struct bcn_dns_out *o,
		   bool tcp, bool *tc)
{
	size_t nl = strlen(q->name), dl = strlen(z->domain), domain_at, suffix_at, m;
	unsigned nrest = 0;
	const char *svc = NULL, *srv_svc = NULL, *sel = NULL;
	char svcbuf[64], selbuf[64];
	struct bcn_service *s;
	size_t len;
	const char *l;

	if (q->odd || nl < dl || memcmp(q->name + nl - dl, z->domain, dl) != 0 ||
	    (nl > dl && q->name[nl - dl - 1] != '.') || (q->qclass != 1 && q->qclass != BCN_DNS_ANY))
		return bcn_dns_begin(o, q, BCN_DNS_REFUSED, false), BCN_DNS_REFUSED;
	if (q->qtype == BCN_DNS_AXFR || q->qtype == BCN_DNS_IXFR)
		return bcn_dns_begin(o, q, BCN_DNS_NOTIMP, false), BCN_DNS_NOTIMP;
	while (nrest < q->nlabels && q->lstart[nrest] < nl - dl)
		nrest++;
	domain_at = BCN_DNS_HDR + (nrest < q->nlabels ? q->lstart[nrest] : 0);
	if (bcn_dns_begin(o, q, BCN_DNS_NOERROR, true) < 0)
		return BCN_DNS_SERVFAIL;
	if (nrest == 0) {
		/* The apex: its SOA, nothing else. */
		if (q->qtype == BCN_DNS_SOA || q->qtype == BCN_DNS_ANY) {
			if (put_soa(o, z, domain_at) == 0)
				o->an++;
		} else if (put_soa(o, z, domain_at) == 0) {
			o->ns++;
		}
		return BCN_DNS_NOERROR;
	}
	if ((nrest == 2 || nrest == 3) && label_is(q, nrest - 1, "service")) {
		suffix_at = BCN_DNS_HDR;
		l = label(q, nrest - 2, &len);
		memcpy(svcbuf, l, len);
		svcbuf[len] = '\0';
		svc = svcbuf;
		if (nrest == 3) {
			l = label(q, 0, &len);
			if (len > 1 && l[0] == '_' && label_is(q, 1, "_tcp")) {
				/* _<service>._tcp: the service is the first label without its '_'. */
				memcpy(svcbuf, l + 1, len - 1);
				svcbuf[len - 1] = '\0';
				srv_svc = svcbuf;
				suffix_at = BCN_DNS_HDR + q->lstart[2];
			} else {
				memcpy(selbuf, l, len);
				selbuf[len] = '\0';
				sel = selbuf;
				suffix_at = BCN_DNS_HDR + q->lstart[1];
			}
		}
	}
	s = svc ? bcn_cache_find(z->cache, svc) : NULL;
	m = s ? select_endpoints(z, s, sel) : 0;
	if (m == 0) {
		o->buf[3] = (uint8_t)((o->buf[3] & 0xF0) | BCN_DNS_NXDOMAIN);
		if (put_soa(o, z, domain_at) == 0)
			o->ns++;
		return BCN_DNS_NXDOMAIN;
	}
	z->rotate++;
	switch (q->qtype) {
	case BCN_DNS_A:    *tc = put_addrs(z, o, m, z->rotate % m, tcp, AF_INET); break;
	case BCN_DNS_AAAA: *tc = put_addrs(z, o, m, z->rotate % m, tcp, AF_INET6); break;
	case BCN_DNS_ANY:  *tc = put_addrs(z, o, m, z->rotate % m, tcp, 0); break;
	case BCN_DNS_SRV:  *tc = put_srv(z, q, o, m, z->rotate % m, tcp, srv_svc, suffix_at); break;
	default: break;
	}
	/* NODATA: the name is there, records of this type are not (RFC 2308 2.2). */
	if (o->an == 0 && !*tc && put_soa(o, z, domain_at) == 0)
		o->ns++;
	return BCN_DNS_NOERROR;
}

size_t bcn_dns_answer(struct bcn_dns_zone *z, const uint8_t *pkt, size_t len, bool tcp,
		      uint8_t *out, size_t cap)
{
	struct bcn_dns_query q;
	struct bcn_dns_out o = { .buf = out, .cap = cap };
	int rc = bcn_dns_parse(pkt, len, &q);
	size_t limit = BCN_DNS_UDP_MIN;
	bool tc = false;

	if (rc == BCN_DNS_DROP) {
		z->stats.malformed++;
		return 0;
	}
	if (!tcp && q.edns)
		limit = q.edns_size < BCN_DNS_UDP_MIN ? BCN_DNS_UDP_MIN
			: q.edns_size > BCN_DNS_UDP_MAX ? BCN_DNS_UDP_MAX : q.edns_size;
	if (!tcp && o.cap > limit)
		o.cap = limit;
	if (rc == 0 && q.edns && q.edns_version != 0)
		rc = BCN_DNS_BADVERS;   /* RFC 6891 6.1.3 */
	if (rc) {
		z->stats.malformed += rc == BCN_DNS_FORMERR;
		if (bcn_dns_begin(&o, &q, rc, false) < 0)
			return 0;
	} else {
		/* Room for the OPT record stays free whatever the answers take. */
		o.cap -= q.edns ? 11 : 0;
		rc = resolve(z, &q, &o, tcp, &tc);
		o.cap += q.edns ? 11 : 0;
		if (o.len < BCN_DNS_HDR)
			return 0;
	}
	if (q.edns)
		bcn_dns_put_opt(&o, rc);
	bcn_dns_finish(&o, tc);
	z->stats.truncated += tc;
	z->stats.queries[type_index(q.qtype)][rc == BCN_DNS_BADVERS ? 6 : rc] += 1;
	return o.len;
}
