/*
 * wire.h - the DNS wire format, as much of it as a stub resolver's query to
 * beacon needs (RFC 1035, RFC 6891 EDNS0): parse the header, the one
 * question and an OPT record; append records to an answer with a hard size
 * limit so a record either fits whole or is not written at all.
 *
 * Own code rather than ldns: a query here is one question and an OPT record,
 * an answer is A/AAAA/SRV/SOA/OPT whose names are the question's own name
 * with a label or two in front, so compression is "point back into the
 * question" and needs no table. That is ~250 lines with every bounds check in
 * one place (fuzzed by tests/fuzz/fuzz_dns.c), against a general library that
 * allocates per record and parses far more than a query can hold.
 */
#ifndef BCN_DNS_WIRE_H
#define BCN_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BCN_DNS_HDR 12
#define BCN_DNS_UDP_MIN 512       /* RFC 1035: what any client takes over UDP */
#define BCN_DNS_UDP_MAX 4096      /* the largest UDP answer we build (and advertise in OPT) */
#define BCN_DNS_TCP_MAX 65535     /* a TCP frame's length field */

enum bcn_dns_type {
	BCN_DNS_A = 1, BCN_DNS_NS = 2, BCN_DNS_SOA = 6, BCN_DNS_AAAA = 28, BCN_DNS_SRV = 33,
	BCN_DNS_OPT = 41, BCN_DNS_IXFR = 251, BCN_DNS_AXFR = 252, BCN_DNS_ANY = 255,
};

enum bcn_dns_rcode {
	BCN_DNS_NOERROR = 0, BCN_DNS_FORMERR = 1, BCN_DNS_SERVFAIL = 2, BCN_DNS_NXDOMAIN = 3,
	BCN_DNS_NOTIMP = 4, BCN_DNS_REFUSED = 5, BCN_DNS_BADVERS = 16,
};

/* bcn_dns_parse's result for a packet that gets no answer at all: too short
 * to hold a header (nothing to echo) or itself an answer (QR set: replying
 * could start a loop between two servers). */
#define BCN_DNS_DROP (-1)

#define BCN_DNS_MAX_LABELS 128

struct bcn_dns_query {
	uint16_t id, flags;          /* as received */
	uint16_t qtype, qclass;
	bool have_question;          /* the question parsed (echo it even in an error) */
	bool odd;                    /* a label holds '.', a space or a non-printable byte */
	const uint8_t *qname;        /* the question name in the packet, as sent (case kept) */
	size_t qname_len;            /* its wire length, root byte included */
	/* The name in lower case, labels joined by '.', no trailing dot ("" = root).
	 * Label i starts at name[lstart[i]]; in the answer its length byte sits at
	 * BCN_DNS_HDR + lstart[i], since both forms spend len+1 bytes per label. */
	char name[256];
	uint8_t lstart[BCN_DNS_MAX_LABELS];
	unsigned nlabels;
	bool edns;                   /* an OPT record came */
	uint16_t edns_size;          /* its offered UDP size */
	uint8_t edns_version;
};

/* Parse a query. 0 when it is well formed; BCN_DNS_DROP; otherwise the rcode
 * to answer with (FORMERR, NOTIMP), q filled as far as it parsed. Never reads
 * past len. */
int bcn_dns_parse(const uint8_t *pkt, size_t len, struct bcn_dns_query *q);

/* An answer under construction: writes never pass cap; a failed write leaves
 * len where it was, so a record is whole or absent. */
struct bcn_dns_out {
	uint8_t *buf;
	size_t len, cap;
	uint16_t an, ns, ar;
};

/* Header and question of the answer to q (the question copied as sent, so
 * the client sees its own case). rcode's low 4 bits go in the header. -1
 * when cap cannot hold them. */
int bcn_dns_begin(struct bcn_dns_out *o, const struct bcn_dns_query *q, int rcode, bool aa);
/* Set the header's counts and the TC bit. */
void bcn_dns_finish(struct bcn_dns_out *o, bool tc);

/* Owner names are written by the caller with these (then bcn_dns_rr). */
int bcn_dns_put_ptr(struct bcn_dns_out *o, size_t at);          /* a pointer to offset at */
int bcn_dns_put_label(struct bcn_dns_out *o, const char *s, size_t len);
int bcn_dns_put_root(struct bcn_dns_out *o);
/* Type, class IN, ttl and rdata of len bytes after an owner name. */
int bcn_dns_put_rr(struct bcn_dns_out *o, uint16_t type, uint32_t ttl, const void *rdata,
		   uint16_t len);
int bcn_dns_put16(struct bcn_dns_out *o, uint16_t v);
int bcn_dns_put32(struct bcn_dns_out *o, uint32_t v);
/* The OPT record of an EDNS answer: our UDP size, the extended rcode. */
int bcn_dns_put_opt(struct bcn_dns_out *o, int rcode);

/* Bytes a label needs in an answer: one a DNS label may hold, made of
 * [a-z0-9-_] (an endpoint id such as "10.0.0.1:8080" becomes "10-0-0-1-8080"),
 * at most 63. Writes into out[64], returns its length (0 for an empty id). */
size_t bcn_dns_label_of(const char *id, char out[64]);

#endif
