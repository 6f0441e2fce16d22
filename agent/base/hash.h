/*
 * hash.h - the one non-cryptographic hash of the agent: 64-bit FNV-1a, with
 * MurmurHash3's fmix64 as a final mix where the high bits matter.
 *
 * FNV-1a is exposed step by step because the wait table (store/wait.c) hashes
 * every prefix of a key in one pass; bcn_hash64 is the whole-buffer form used
 * for endpoint ids, pick keys and "logged once" memories. Values are stable
 * across runs and builds (a unit test pins them): rendezvous picks must agree
 * between agents. Not for anything an attacker must not be able to collide.
 * Everything is static inline: these are a few instructions per byte.
 */
#ifndef BCN_HASH_H
#define BCN_HASH_H

#include <stddef.h>
#include <stdint.h>

#define BCN_FNV_START 0xcbf29ce484222325ULL /* the 64-bit FNV offset basis */
#define BCN_FNV_PRIME 0x100000001b3ULL

/* One FNV-1a step: h with byte c folded in. */
static inline uint64_t bcn_fnv1a_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * BCN_FNV_PRIME;
}

/* fmix64 from MurmurHash3: FNV-1a alone leaves the high bits poorly mixed. */
static inline uint64_t bcn_fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* FNV-1a of len bytes, then fmix64. */
static inline uint64_t bcn_hash64(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = BCN_FNV_START;

	for (size_t i = 0; i < len; i++)
		h = bcn_fnv1a_step(h, p[i]);
	return bcn_fmix64(h);
}

#endif
