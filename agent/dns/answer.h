/*
 * answer.h - from one query packet to one answer packet, against the store:
 * the naming rules of SPEC.md "DNS" (after Consul's DNS interface). Apart
 * from the sockets (dns.c) so the unit tests and the fuzz harness drive the
 * whole query path without a loop or a port.
 */
#ifndef BCN_DNS_ANSWER_H
#define BCN_DNS_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bcn_cache;
struct bcn_endpoint;

/* Query types and rcodes counted apart in beacon_dns_queries_total. */
enum { BCN_DNS_NTYPES = 6, BCN_DNS_NRCODES = 7 };
extern const char *const bcn_dns_type_names[BCN_DNS_NTYPES];
extern const char *const bcn_dns_rcode_names[BCN_DNS_NRCODES];

struct bcn_dns_stats {
	uint64_t queries[BCN_DNS_NTYPES][BCN_DNS_NRCODES];
	uint64_t truncated;   /* UDP answers sent with TC */
	uint64_t malformed;   /* answered FORMERR or dropped as unparseable */
};

struct bcn_dns_zone {
	struct bcn_cache *cache;
	char domain[254];             /* lower case, no trailing dot: "beacon" */
	uint32_t ttl;                 /* seconds, answers and the SOA (negative TTL) */
	unsigned udp_answer_limit;    /* 0: as many as fit */
	uint32_t rotate;              /* moves once per answered name: the rotation */
	struct bcn_dns_stats stats;
	/* Scratch for one answer, grown as services grow. */
	const struct bcn_endpoint **pick;
	uint16_t *target_at;
	size_t pick_cap;
};

/* Set domain (any case, trailing dot or not); -1 when it is not a DNS name. */
int bcn_dns_zone_domain(struct bcn_dns_zone *z, const char *domain);
/* Free the scratch. NULL-safe. */
void bcn_dns_zone_clear(struct bcn_dns_zone *z);

/*
 * Answer the query in pkt[len] into out (cap bytes: BCN_DNS_UDP_MAX is
 * enough for UDP, BCN_DNS_TCP_MAX for TCP); tcp lifts the 512/EDNS size
 * limit and udp_answer_limit. Returns the answer's length; 0 when the packet
 * gets no answer (BCN_DNS_DROP). Counts into z->stats.
 */
size_t bcn_dns_answer(struct bcn_dns_zone *z, const uint8_t *pkt, size_t len, bool tcp,
		      uint8_t *out, size_t cap);

#endif
