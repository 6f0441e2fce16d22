/*
 * test_dns.c - the DNS query path without sockets (agent/dns/wire.c and
 * answer.c): the names of SPEC.md "DNS" against a real store, and the
 * hostile packets the listeners must survive (short, answers, compression
 * pointers, label overflows, QDCOUNT 0 and 100, truncated names, bad OPT).
 * Answers are checked by walking them with an independent little decoder.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dns/answer.h"
#include "dns/wire.h"
#include "store/cache.h"
#include "testutil.h"

static struct bcn_cache *cache;
static struct bcn_dns_zone zone;
static uint8_t out[BCN_DNS_TCP_MAX];

static struct bcn_endpoint *ep(const char *id, const char *addr, int port, const char *tag,
			       int weight, enum bcn_status st)
{
	const char *tags[1] = { tag };
	struct bcn_endpoint_spec s = { .id = id, .service = "payments", .address = addr, .port = port,
				       .tags = tags, .ntags = tag ? 1 : 0, .weight = weight, .status = st };
	const char *err = NULL;
	struct bcn_endpoint *e = bcn_endpoint_new(&s, &err);
	ck_assert_msg(e != NULL, "endpoint: %s", err ? err : "?");
	return e;
}

static void setup(void)
{
	struct bcn_endpoint *eps[5];
	int src;

	cache = bcn_cache_new(NULL);
	src = bcn_cache_source_add(cache, "static");
	eps[0] = ep("p1", "10.0.0.1", 8080, "v2", 5, BCN_PASSING);
	eps[1] = ep("p2", "10.0.0.2", 8081, NULL, 1, BCN_PASSING);
	eps[2] = ep("p3", "fd00::3", 8082, NULL, 1, BCN_PASSING);
	eps[3] = ep("p4", "db.example.com", 5432, NULL, 1, BCN_PASSING);
	eps[4] = ep("p5", "10.0.0.5", 80, "v2", 1, BCN_CRITICAL);
	bcn_cache_replace(cache, src, "payments", eps, 5);
	bcn_cache_watch(cache, src, "empty", true);
	bcn_cache_flush(cache);
	memset(&zone, 0, sizeof(zone));
	zone.cache = cache;
	ck_assert_int_eq(bcn_dns_zone_domain(&zone, "Beacon."), 0);
}

static void teardown(void)
{
	bcn_dns_zone_clear(&zone);
	bcn_cache_free(cache);
}

/* A query for name (dotted) and type; edns > 0 adds an OPT offering that size. */
static size_t query(uint8_t *p, const char *name, uint16_t type, int edns)
{
	size_t n = 12;
	memset(p, 0, 12);
	p[0] = 0xAB, p[1] = 0xCD, p[2] = 0x01, p[5] = 1, p[11] = edns > 0;
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);
		p[n++] = (uint8_t)l;
		memcpy(p + n, name, l);
		n += l;
		name += l + (dot ? 1 : 0);
	}
	p[n++] = 0;
	p[n++] = (uint8_t)(type >> 8), p[n++] = (uint8_t)type, p[n++] = 0, p[n++] = 1;
	if (edns > 0) {
		uint8_t opt[11] = { 0, 0, 41, (uint8_t)(edns >> 8), (uint8_t)edns, 0, 0, 0, 0, 0, 0 };
		memcpy(p + n, opt, 11);
		n += 11;
	}
	return n;
}

struct reply {
	int rcode, tc, aa, an, ns, ar;
	int types[2048];      /* answer, authority, additional types in order */
	uint32_t ttl0;
	char first_a[64];
};

static size_t skip(const uint8_t *p, size_t n, size_t off)
{
	while (off < n && p[off] && (p[off] & 0xC0) != 0xC0)
		off += p[off] + 1u;
	return off < n && p[off] ? off + 2 : off + 1;
}

static struct reply decode(const uint8_t *p, size_t n)
{
	struct reply r = { 0 };
	size_t off, total;
	ck_assert_uint_ge(n, 12);
	ck_assert_int_eq(p[0], 0xAB);
	r.rcode = p[3] & 15;
	r.tc = !!(p[2] & 2);
	r.aa = !!(p[2] & 4);
	r.an = p[6] << 8 | p[7], r.ns = p[8] << 8 | p[9], r.ar = p[10] << 8 | p[11];
	off = 12;
	if (p[5])
		off = skip(p, n, off) + 4;
	total = (size_t)(r.an + r.ns + r.ar);
	for (size_t i = 0; i < total && i < 2048; i++) {
		size_t rd;
		off = skip(p, n, off);
		ck_assert_uint_le(off + 10, n);
		r.types[i] = p[off] << 8 | p[off + 1];
		if (i == 0)
			r.ttl0 = (uint32_t)p[off + 4] << 24 | (uint32_t)p[off + 5] << 16 | p[off + 6] << 8 | p[off + 7];
		rd = (size_t)(p[off + 8] << 8 | p[off + 9]);
		if (i == 0 && r.types[i] == 1)
			inet_ntop(AF_INET, p + off + 10, r.first_a, sizeof(r.first_a));
		off += 10 + rd;
		ck_assert_uint_le(off, n);
	}
	ck_assert_uint_eq(off, n);  /* nothing after the last record */
	return r;
}

static struct reply ask(const char *name, uint16_t type, int edns, bool tcp)
{
	uint8_t q[512];
	size_t n = query(q, name, type, edns);
	size_t len = bcn_dns_answer(&zone, q, n, tcp, out, tcp ? BCN_DNS_TCP_MAX : BCN_DNS_UDP_MAX);
	ck_assert_uint_gt(len, 0);
	return decode(out, len);
}

START_TEST(test_a_aaaa_rotated)
{
	struct reply r = ask("payments.service.beacon", BCN_DNS_A, 0, false);
	char first[64];
	ck_assert_int_eq(r.rcode, 0);
	ck_assert_int_eq(r.aa, 1);
	ck_assert_int_eq(r.an, 2);   /* p1, p2: passing IPv4 only */
	ck_assert_int_eq(r.types[0], BCN_DNS_A);
	snprintf(first, sizeof(first), "%s", r.first_a);
	r = ask("payments.service.beacon", BCN_DNS_A, 0, false);
	ck_assert_str_ne(first, r.first_a);
	r = ask("payments.service.beacon", BCN_DNS_AAAA, 0, false);
	ck_assert_int_eq(r.an, 1);
	ck_assert_int_eq(r.types[0], BCN_DNS_AAAA);
}
END_TEST

START_TEST(test_srv_additional_tag_id)
{
	struct reply r = ask("_payments._tcp.service.beacon", BCN_DNS_SRV, 0, false);
	ck_assert_int_eq(r.rcode, 0);
	ck_assert_int_eq(r.an, 4);   /* the host name endpoint too */
	ck_assert_int_eq(r.ar, 3);   /* its target has no address of ours */
	r = ask("v2.payments.service.beacon", BCN_DNS_A, 0, false);
	ck_assert_int_eq(r.an, 1);
	ck_assert_str_eq(r.first_a, "10.0.0.1");
	r = ask("p2.payments.service.beacon", BCN_DNS_A, 0, false);
	ck_assert_int_eq(r.an, 1);
	ck_assert_str_eq(r.first_a, "10.0.0.2");
	r = ask("nosuchtag.payments.service.beacon", BCN_DNS_A, 0, false);
	ck_assert_int_eq(r.rcode, BCN_DNS_NXDOMAIN);
}
END_TEST

START_TEST(test_negative_answers)
{
	struct reply r = ask("nope.service.beacon", BCN_DNS_A, 0, false);
	ck_assert_int_eq(r.rcode, BCN_DNS_NXDOMAIN);
	ck_assert_int_eq(r.ns, 1);
	ck_assert_int_eq(r.types[0], BCN_DNS_SOA);
	r = ask("empty.service.beacon", BCN_DNS_A, 0, false);   /* known, nothing passing */
	ck_assert_int_eq(r.rcode, BCN_DNS_NXDOMAIN);
	r = ask("payments.service.beacon", 16 /* TXT */, 0, false);
	ck_assert_int_eq(r.rcode, 0);
	ck_assert_int_eq(r.an, 0);
	ck_assert_int_eq(r.ns, 1);
	r = ask("example.com", BCN_DNS_A, 0, false);
	ck_assert_int_eq(r.rcode, BCN_DNS_REFUSED);
	ck_assert_int_eq(r.aa, 0);
	r = ask("xbeacon", BCN_DNS_A, 0, false);
	ck_assert_int_eq(r.rcode, BCN_DNS_REFUSED);
	r = ask("BEACON", BCN_DNS_SOA, 0, false);
	ck_assert_int_eq(r.an, 1);
	ck_assert_int_eq(r.types[0], BCN_DNS_SOA);
}
END_TEST

START_TEST(test_case_echoed)
{
	uint8_t q[512];
	size_t n = query(q, "PayMents.Service.BEACON", BCN_DNS_A, 0);
	size_t len = bcn_dns_answer(&zone, q, n, false, out, BCN_DNS_UDP_MAX);
	ck_assert_uint_gt(len, n);
	ck_assert_int_eq(memcmp(out + 12, q + 12, n - 12), 0);
	ck_assert_int_eq(decode(out, len).an, 2);
}
END_TEST

/* Many endpoints: TC over 512 bytes or the EDNS size, none over TCP, and
 * udp_answer_limit without TC. */
START_TEST(test_truncation_and_limits)
{
	struct bcn_endpoint *eps[600];
	char id[32], addr[32];
	struct reply r;
	int src = bcn_cache_source_add(cache, "more");

	for (int i = 0; i < 600; i++) {
		snprintf(id, sizeof(id), "big-%d", i);
		snprintf(addr, sizeof(addr), "10.1.%d.%d", i / 250, i % 250 + 1);
		eps[i] = ep(id, addr, 80, NULL, 1, BCN_PASSING);
	}
	bcn_cache_replace(cache, src, "big", eps, 600);
	bcn_cache_flush(cache);
	r = ask("big.service.beacon", BCN_DNS_A, 0, false);
	ck_assert_int_eq(r.tc, 1);
	ck_assert_int_le(12 + 24 + r.an * 16, 512);
	r = ask("big.service.beacon", BCN_DNS_A, 1232, false);
	ck_assert_int_eq(r.tc, 1);
	ck_assert_int_gt(r.an, 60);
	ck_assert_int_eq(r.types[r.an], BCN_DNS_OPT);   /* the OPT always fits */
	r = ask("big.service.beacon", BCN_DNS_A, 0, true);
	ck_assert_int_eq(r.tc, 0);
	ck_assert_int_eq(r.an, 600);
	/* SRV over TCP: additional records whose owner is beyond a pointer's reach. */
	r = ask("big.service.beacon", BCN_DNS_SRV, 0, true);
	ck_assert_int_eq(r.an, 600);
	ck_assert_int_gt(r.ar, 100);
	zone.udp_answer_limit = 3;
	r = ask("big.service.beacon", BCN_DNS_A, 0, false);
	ck_assert_int_eq(r.tc, 0);
	ck_assert_int_eq(r.an, 3);
	ck_assert_uint_eq(zone.stats.truncated, 2);
}
END_TEST

START_TEST(test_edns)
{
	uint8_t q[512];
	size_t n = query(q, "payments.service.beacon", BCN_DNS_A, 4096);
	struct reply r;
	size_t len;

	r = ask("payments.service.beacon", BCN_DNS_A, 4096, false);
	ck_assert_int_eq(r.ar, 1);
	ck_assert_int_eq(r.types[r.an], BCN_DNS_OPT);
	q[n - 5] = 1;  /* EDNS version 1 */
	len = bcn_dns_answer(&zone, q, n, false, out, BCN_DNS_UDP_MAX);
	r = decode(out, len);
	ck_assert_int_eq(r.rcode, 0);
	ck_assert_int_eq(r.an, 0);
	ck_assert_int_eq(out[len - 11 + 5], 1);  /* extended rcode: BADVERS = 16 */
	q[n - 5] = 0;
	memcpy(q + n, q + n - 11, 11);  /* a second OPT */
	q[11] = 2;
	len = bcn_dns_answer(&zone, q, n + 11, false, out, BCN_DNS_UDP_MAX);
	ck_assert_int_eq(out[3] & 15, BCN_DNS_FORMERR);
}
END_TEST

/* Packets that are not a proper query: dropped or FORMERR, nothing read past them. */
START_TEST(test_hostile)
{
	uint8_t q[1024];
	size_t n, len;
	uint64_t before;

	for (size_t i = 0; i < 12; i++) {
		memset(q, 0xFF, sizeof(q));
		ck_assert_uint_eq(bcn_dns_answer(&zone, q, i, false, out, BCN_DNS_UDP_MAX), 0);
	}
	n = query(q, "payments.service.beacon", BCN_DNS_A, 0);
	q[2] |= 0x80;   /* a response: never answered */
	ck_assert_uint_eq(bcn_dns_answer(&zone, q, n, false, out, BCN_DNS_UDP_MAX), 0);
	q[2] &= 0x7F;
	q[5] = 0;       /* QDCOUNT 0 */
	len = bcn_dns_answer(&zone, q, n, false, out, BCN_DNS_UDP_MAX);
	ck_assert_int_eq(out[3] & 15, BCN_DNS_FORMERR);
	ck_assert_int_eq(out[5], 0);
	q[5] = 100;     /* QDCOUNT 100 */
	len = bcn_dns_answer(&zone, q, n, false, out, BCN_DNS_UDP_MAX);
	ck_assert_int_eq(out[3] & 15, BCN_DNS_FORMERR);
	q[5] = 1;
	before = zone.stats.malformed;
	/* A compression pointer to itself (a loop), and one into the header. */
	memcpy(q + 12, "\xC0\x0C\x00\x01\x00\x01", 6);
	len = bcn_dns_answer(&zone, q, 18, false, out, BCN_DNS_UDP_MAX);
	ck_assert_int_eq(out[3] & 15, BCN_DNS_FORMERR);
	memcpy(q + 12, "\x01" "a\xC0\x02\x00\x01\x00\x01", 8);
	len = bcn_dns_answer(&zone, q, 20, false, out, BCN_DNS_UDP_MAX);
	ck_assert_int_eq(out[3] & 15, BCN_DNS_FORMERR);
	/* A label claiming 64 bytes, and one running past the packet. */
	q[12] = 64;
	memset(q + 13, 'a', 80);
	q[93] = 0;
	len = bcn_dns_answer(&zone, q, 98, false, out, BCN_DNS_UDP_MAX);
	ck_assert_int_eq(out[3] & 15, BCN_DNS_FORMERR);
	q[12] = 40;
	len = bcn_dns_answer(&zone, q, 30, false, out, BCN_DNS_UDP_MAX);
	ck_assert_int_eq(out[3] & 15, BCN_DNS_FORMERR);
	/* A name over 255 bytes: 5 labels of 63. */
	for (int i = 0; i < 5; i++) {
		q[12 + i * 64] = 63;
		memset(q + 13 + i * 64, 'b', 63);
	}
	q[12 + 320] = 0;
	memcpy(q + 333, "\x00\x01\x00\x01", 4);
	len = bcn_dns_answer(&zone, q, 337, false, out, BCN_DNS_UDP_MAX);
	ck_assert_int_eq(out[3] & 15, BCN_DNS_FORMERR);
	ck_assert_uint_eq(zone.stats.malformed - before, 5);
	/* Opcode NOTIFY: NOTIMP. */
	n = query(q, "payments.service.beacon", BCN_DNS_A, 0);
	q[2] = 0x20;
	len = bcn_dns_answer(&zone, q, n, false, out, BCN_DNS_UDP_MAX);
	ck_assert_int_eq(out[3] & 15, BCN_DNS_NOTIMP);
	/* A label with a dot inside is not our name. */
	n = query(q, "payments.service.beacon", BCN_DNS_A, 0);
	q[13 + 3] = '.';
	len = bcn_dns_answer(&zone, q, n, false, out, BCN_DNS_UDP_MAX);
	ck_assert_int_eq(out[3] & 15, BCN_DNS_REFUSED);
	(void)len;
}
END_TEST

START_TEST(test_label_of)
{
	char l[64];
	ck_assert_uint_eq(bcn_dns_label_of("10.0.0.1:8080", l), 13);
	ck_assert_str_eq(l, "10-0-0-1-8080");
	ck_assert_uint_eq(bcn_dns_label_of("Web_1", l), 5);
	ck_assert_str_eq(l, "web_1");
	ck_assert_int_eq(bcn_dns_zone_domain(&zone, "bad..name"), -1);
	ck_assert_int_eq(bcn_dns_zone_domain(&zone, "svc.Example.COM."), 0);
	ck_assert_str_eq(zone.domain, "svc.example.com");
}
END_TEST

static Suite *dns_suite(void)
{
	Suite *s = suite_create("dns");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_a_aaaa_rotated);
	tcase_add_test(tc, test_srv_additional_tag_id);
	tcase_add_test(tc, test_negative_answers);
	tcase_add_test(tc, test_case_echoed);
	tcase_add_test(tc, test_truncation_and_limits);
	tcase_add_test(tc, test_edns);
	tcase_add_test(tc, test_hostile);
	tcase_add_test(tc, test_label_of);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(dns_suite)
