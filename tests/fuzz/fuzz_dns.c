/*
 * fuzz_dns.c - packets into the DNS query path (agent/dns/wire.c parse,
 * agent/dns/answer.c names and records) against a store holding a few
 * services: IPv4, IPv6, a host name, tags, a critical endpoint, and one
 * large service so truncation and SRV additional records are reached.
 *
 * Input: byte 0 picks the transport (bit 0: TCP) and udp_answer_limit (bits
 * 1-3); the rest is the packet. Properties: an answer is never longer than
 * the room it was given (512 bytes, or the EDNS size, over UDP), echoes the
 * query's id, has QR set, and every record it counts is really there.
 */
#include <stdint.h>
#include <string.h>

#include "dns/answer.h"
#include "dns/wire.h"
#include "fuzz_util.h"
#include "store/cache.h"

static struct bcn_cache *cache;
static struct bcn_dns_zone zone;
static uint8_t out[BCN_DNS_TCP_MAX];

static void add(int src, const char *svc, const char *id, const char *addr, const char *tag,
		enum bcn_status st)
{
	const char *tags[1] = { tag };
	struct bcn_endpoint_spec s = { .id = id, .service = svc, .address = addr, .port = 80,
				       .tags = tags, .ntags = tag ? 1 : 0, .weight = 3, .status = st };
	const char *err;
	struct bcn_endpoint *e = bcn_endpoint_new(&s, &err);
	if (e)
		bcn_cache_put(cache, src, svc, e);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int src;
	char id[16], addr[32];

	(void)argc;
	(void)argv;
	cache = bcn_cache_new(NULL);
	src = bcn_cache_source_add(cache, "static");
	add(src, "payments", "p1", "10.0.0.1", "v2", BCN_PASSING);
	add(src, "payments", "p2", "fd00::2", NULL, BCN_PASSING);
	add(src, "payments", "p3", "db.example.com", "v2", BCN_PASSING);
	add(src, "payments", "p4", "10.0.0.4", NULL, BCN_CRITICAL);
	for (int i = 0; i < 300; i++) {
		snprintf(id, sizeof(id), "b%d", i);
		snprintf(addr, sizeof(addr), i % 2 ? "10.2.%d.%d" : "fd00::%x:%x", i / 200, i % 200 + 1);
		add(src, "big", id, addr, i % 3 ? NULL : "t", BCN_PASSING);
	}
	bcn_cache_watch(cache, src, "empty", true);
	bcn_cache_flush(cache);
	zone.cache = cache;
	zone.ttl = 5;
	bcn_dns_zone_domain(&zone, "beacon.");
	return 0;
}

static size_t skip_name(const uint8_t *p, size_t n, size_t off)
{
	for (int hops = 0; off < n && hops < 128; hops++) {
		if (p[off] == 0)
			return off + 1;
		if ((p[off] & 0xC0) == 0xC0)
			return off + 2;
		off += p[off] + 1u;
	}
	fuzz_fail("an answer name runs past the answer");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool tcp;
	size_t len, off, room;
	unsigned count;

	if (size < 1)
		return 0;
	tcp = data[0] & 1;
	zone.udp_answer_limit = (data[0] >> 1) & 7;
	len = bcn_dns_answer(&zone, data + 1, size - 1, tcp, out, tcp ? BCN_DNS_TCP_MAX : BCN_DNS_UDP_MAX);
	if (!len)
		return 0;
	room = tcp ? BCN_DNS_TCP_MAX : BCN_DNS_UDP_MAX;
	if (len > room || len < 12)
		fuzz_fail("answer of %zu bytes", len);
	if (!tcp && len > 512) {
		/* Only an EDNS query may get more than 512 bytes: its OPT is last. */
		if (len < 23 || out[len - 11] != 0 || out[len - 9] != 41)
			fuzz_fail("a %zu-byte UDP answer without EDNS", len);
	}
	if (memcmp(out, data + 1, 2) != 0 || !(out[2] & 0x80))
		fuzz_fail("answer id or QR bit wrong");
	off = 12;
	if (out[5])
		off = skip_name(out, len, off) + 4;
	count = (unsigned)(out[6] << 8 | out[7]) + (unsigned)(out[8] << 8 | out[9]) +
		(unsigned)(out[10] << 8 | out[11]);
	for (unsigned i = 0; i < count; i++) {
		off = skip_name(out, len, off);
		if (off + 10 > len)
			fuzz_fail("record %u of %u past the end", i, count);
		off += 10 + (size_t)(out[off + 8] << 8 | out[off + 9]);
	}
	if (off != len)
		fuzz_fail("answer holds %zu bytes after its records", len - off);
	return 0;
}
