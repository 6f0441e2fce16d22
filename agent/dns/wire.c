/*
 * wire.c - parse a DNS query and write answer records (see wire.h for why
 * this is our own code). Every read of the packet is checked against its
 * length right where it happens; names in the question may not use
 * compression (nothing precedes the question but the header, so a pointer
 * there is either a loop or an attack), which also makes compression loops
 * impossible by construction. Records after the question are walked only to
 * find the OPT record, and a pointer in their owner names is skipped, never
 * followed.
 */
#include "dns/wire.h"

#include <string.h>

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The question name at off: labels copied in lower case into q->name. */
static int parse_qname(const uint8_t *p, size_t len, size_t *off, struct bcn_dns_query *q)
{
	size_t at = *off, flat = 0;

	for (;;) {
		uint8_t l;
		if (at >= len)
			return -1;
		l = p[at];
		if (l == 0)
			break;
		if (l & 0xC0)     /* a pointer or an extended label type */
			return -1;
		/* 255 bytes of wire name at most, root byte included (RFC 1035 3.1). */
		if (at + 1 + l > len || (at - *off) + 1 + l + 1 > 255 || q->nlabels >= BCN_DNS_MAX_LABELS)
			return -1;
		if (flat)
			q->name[flat++] = '.';
		q->lstart[q->nlabels++] = (uint8_t)flat;
		for (size_t i = 0; i < l; i++) {
			uint8_t c = p[at + 1 + i];
			if (c >= 'A' && c <= 'Z')
				c = (uint8_t)(c - 'A' + 'a');
			if (c <= ' ' || c == '.' || c >= 0x7f)
				q->odd = true;
			q->name[flat++] = (char)c;
		}
		at += 1 + (size_t)l;
	}
	q->name[flat] = '\0';
	q->qname = p + *off;
	q->qname_len = at + 1 - *off;
	*off = at + 1;
	return 0;
}

/* Skip a record's owner name (pointers end it and are not followed). */
static int skip_name(const uint8_t *p, size_t len, size_t *off, bool *root)
{
	size_t at = *off;

	*root = at < len && p[at] == 0;
	for (;;) {
		if (at >= len)
			return -1;
		if (p[at] == 0) {
			*off = at + 1;
			return 0;
		}
		if ((p[at] & 0xC0) == 0xC0) {
			if (at + 2 > len)
				return -1;
			*off = at + 2;
			return 0;
		}
		if (p[at] & 0xC0)
			return -1;
		at += 1 + (size_t)p[at];
	}
}

int bcn_dns_parse(const uint8_t *p, size_t len, struct bcn_dns_query *q)
{
	size_t off = BCN_DNS_HDR;
	unsigned qd, an, ns, ar;
	bool opt_seen = false;

	memset(q, 0, offsetof(struct bcn_dns_query, name));
	q->name[0] = '\0';
	q->nlabels = 0;
	q->edns = false;
	q->edns_size = 0;
	q->edns_version = 0;
	if (len < BCN_DNS_HDR)
		return BCN_DNS_DROP;
	q->id = get16(p);
	q->flags = get16(p + 2);
	if (q->flags & 0x8000)
		return BCN_DNS_DROP;
	if (((q->flags >> 11) & 0xF) != 0)
		return BCN_DNS_NOTIMP;      /* only QUERY (no IQUERY, STATUS, NOTIFY, UPDATE) */
	qd = get16(p + 4);
	an = get16(p + 6);
	ns = get16(p + 8);
	ar = get16(p + 10);
	if (qd != 1 || an != 0 || ns != 0)
		return BCN_DNS_FORMERR;
	if (parse_qname(p, len, &off, q) < 0 || off + 4 > len) {
		q->nlabels = 0;
		q->name[0] = '\0';
		q->odd = false;
		return BCN_DNS_FORMERR;
	}
	q->qtype = get16(p + off);
	q->qclass = get16(p + off + 2);
	off += 4;
	q->have_question = true;
	for (unsigned i = 0; i < ar; i++) {
		bool root;
		uint16_t type, rdlen;
		if (skip_name(p, len, &off, &root) < 0 || off + 10 > len)
			return BCN_DNS_FORMERR;
		type = get16(p + off);
		rdlen = get16(p + off + 8);
		if (off + 10 + rdlen > len)
			return BCN_DNS_FORMERR;
		if (type == BCN_DNS_OPT) {
			/* RFC 6891 6.1.1: one OPT, owned by the root. */
			if (opt_seen || !root)
				return BCN_DNS_FORMERR;
			opt_seen = true;
			q->edns = true;
			q->edns_size = get16(p + off + 2);
			q->edns_version = p[off + 5];
		}
		off += 10 + (size_t)rdlen;
	}
	if (q->qtype == BCN_DNS_OPT)
		return BCN_DNS_FORMERR;
	return 0;
}

/* ---- writing ---------------------------------------------------------------- */

static int put(struct bcn_dns_out *o, const void *b, size_t n)
{
	if (n > o->cap - o->len)
		return -1;
	memcpy(o->buf + o->len, b, n);
	o->len += n;
	return 0;
}

int bcn_dns_put16(struct bcn_dns_out *o, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	return put(o, b, 2);
}

int bcn_dns_put32(struct bcn_dns_out *o, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	return put(o, b, 4);
}

int bcn_dns_begin(struct bcn_dns_out *o, const struct bcn_dns_query *q, int rcode, bool aa)
{
	/* QR, the opcode as asked, AA for our own names, RD echoed; never RA:
	 * beacon does not recurse, so a resolver must not take it for one. */
	uint16_t flags = (uint16_t)(0x8000 | (q->flags & 0x7800) | (aa ? 0x0400 : 0) |
				    (q->flags & 0x0100) | (rcode & 0xF));
	o->len = 0;
	o->an = o->ns = o->ar = 0;
	if (bcn_dns_put16(o, q->id) < 0 || bcn_dns_put16(o, flags) < 0 ||
	    bcn_dns_put16(o, q->have_question ? 1 : 0) < 0 || bcn_dns_put32(o, 0) < 0 ||
	    bcn_dns_put16(o, 0) < 0)
		return -1;
	if (q->have_question && (put(o, q->qname, q->qname_len) < 0 || bcn_dns_put16(o, q->qtype) < 0 ||
				 bcn_dns_put16(o, q->qclass) < 0))
		return -1;
	return 0;
}

void bcn_dns_finish(struct bcn_dns_out *o, bool tc)
{
	if (o->len < BCN_DNS_HDR)
		return;
	if (tc)
		o->buf[2] |= 0x02;
	o->buf[6] = (uint8_t)(o->an >> 8);
	o->buf[7] = (uint8_t)o->an;
	o->buf[8] = (uint8_t)(o->ns >> 8);
	o->buf[9] = (uint8_t)o->ns;
	o->buf[10] = (uint8_t)(o->ar >> 8);
	o->buf[11] = (uint8_t)o->ar;
}

int bcn_dns_put_ptr(struct bcn_dns_out *o, size_t at)
{
	return bcn_dns_put16(o, (uint16_t)(0xC000 | (at & 0x3FFF)));
}

int bcn_dns_put_label(struct bcn_dns_out *o, const char *s, size_t len)
{
	uint8_t l = (uint8_t)len;
	if (len == 0 || len > 63 || o->cap - o->len < len + 1)
		return -1;
	put(o, &l, 1);
	return put(o, s, len);
}

int bcn_dns_put_root(struct bcn_dns_out *o)
{
	uint8_t z = 0;
	return put(o, &z, 1);
}

int bcn_dns_put_rr(struct bcn_dns_out *o, uint16_t type, uint32_t ttl, const void *rdata,
		   uint16_t len)
{
	if (o->cap - o->len < 10u + len)
		return -1;
	bcn_dns_put16(o, type);
	bcn_dns_put16(o, 1);  /* IN */
	bcn_dns_put32(o, ttl);
	bcn_dns_put16(o, len);
	return put(o, rdata, len);
}

int bcn_dns_put_opt(struct bcn_dns_out *o, int rcode)
{
	uint8_t opt[11] = { 0, 0, BCN_DNS_OPT, BCN_DNS_UDP_MAX >> 8, BCN_DNS_UDP_MAX & 0xFF,
			    (uint8_t)(rcode >> 4), 0, 0, 0, 0, 0 };
	if (put(o, opt, sizeof(opt)) < 0)
		return -1;
	o->ar++;
	return 0;
}

size_t bcn_dns_label_of(const char *id, char out[64])
{
	size_t n = 0;

	for (; *id && n < 63; id++) {
		char c = *id;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			c = '-';
		out[n++] = c;
	}
	out[n] = '\0';
	return n;
}
