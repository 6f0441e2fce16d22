/*
 * pick.c - see pick.h.
 *
 * Every policy is O(n) over the candidates with no allocation except the
 * weighted state, because a pick answers each /v1/pick request. Hash picks
 * depend only on endpoint ids and weights, never on list order, so agents on
 * different machines send the same key to the same endpoint. The random
 * generator is process-wide and unlocked: picks run on the event loop thread.
 */
#include "store/pick.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

static const char *const policy_names[] = { "round_robin", "random", "weighted", "hash" };

int bcn_pick_policy_parse(const char *s, enum bcn_pick_policy *out)
{
	if (!s || !*s) {
		*out = BCN_PICK_ROUND_ROBIN;
		return 0;
	}
	for (unsigned i = 0; i < sizeof(policy_names) / sizeof(policy_names[0]); i++) {
		if (strcmp(s, policy_names[i]) == 0) {
			*out = (enum bcn_pick_policy)i;
			return 0;
		}
	}
	return -1;
}

void bcn_pick_reset(struct bcn_pick_state *st)
{
	if (!st)
		return;
	free(st->current);
	st->current = NULL;
	st->ncurrent = 0;
}

void bcn_pick_state_free(struct bcn_pick_state *st)
{
	bcn_pick_reset(st);
}

/* rr is never reset: restarting at 0 on every list change would favour the first endpoint. */
static size_t pick_round_robin(struct bcn_pick_state *st, size_t n)
{
	return (size_t)(st->rr++ % n);
}

/* splitmix64: tiny, passes BigCrush, and any seed (even 0) is fine. */
static uint64_t next_random(void)
{
	static uint64_t state;
	static int seeded;

	if (!seeded) {
		/* randombytes_buf still works then (it seeds itself lazily); say so once. */
		if (sodium_init() < 0)
			bcn_warn("pick", "libsodium did not initialise; random picks still work");
		randombytes_buf(&state, sizeof(state));
		seeded = 1;
	}
	uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Modulo bias is at most n / 2^64: irrelevant for load balancing. */
static size_t pick_random(size_t n)
{
	return (size_t)(next_random() % n);
}

/* A new candidate count starts the smooth sequence afresh. */
static int size_current(struct bcn_pick_state *st, size_t n)
{
	if (st->ncurrent == n)
		return 0;
	int64_t *cur = realloc(st->current, n * sizeof(*cur));
	if (!cur)
		return -1;
	memset(cur, 0, n * sizeof(*cur));
	st->current = cur;
	st->ncurrent = n;
	return 0;
}

/*
 * nginx's smooth weighted round robin: each candidate gains its weight, the
 * richest wins and pays the total. Over sum(weights) picks each endpoint is
 * chosen exactly `weight` times, interleaved rather than in bursts.
 */
static ssize_t pick_weighted(struct bcn_pick_state *st, const struct bcn_endpoint *const *cand,
			     size_t n)
{
	int64_t total = 0;
	size_t best = 0;

	if (size_current(st, n))
		return -1;
	for (size_t i = 0; i < n; i++) {
		st->current[i] += cand[i]->weight;
		total += cand[i]->weight;
		if (st->current[i] > st->current[best])
			best = i;
	}
	st->current[best] -= total;
	return (ssize_t)best;
}

static int all_weights_equal(const struct bcn_endpoint *const *cand, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (cand[i]->weight != cand[0]->weight)
			return 0;
	}
	return 1;
}

/*
 * Weighted rendezvous score -w / ln(u), u uniform in (0, 1) from the hash:
 * the winner is endpoint i with probability w_i / sum(w). 52 bits + 0.5 is
 * exact in a double, so u is never 0 nor 1 (log would give -inf or 0).
 */
static double weighted_score(uint64_t h, uint32_t weight)
{
	double u = ((double)(h >> 12) + 0.5) * 0x1p-52;

	return -(double)weight / log(u);
}

/* Equal ranks (a hash collision) go to the smaller id, so order never matters. */
static int id_before(const struct bcn_endpoint *a, const struct bcn_endpoint *b)
{
	return strcmp(a->id, b->id) < 0;
}

static size_t pick_hash(const struct bcn_endpoint *const *cand, size_t n, const char *key)
{
	uint64_t kh = bcn_hash64(key, strlen(key));
	int uniform = all_weights_equal(cand, n);
	size_t best = 0;
	uint64_t best_h = bcn_fmix64(cand[0]->id_hash ^ kh);
	double best_score = uniform ? 0 : weighted_score(best_h, cand[0]->weight);

	for (size_t i = 1; i < n; i++) {
		uint64_t h = bcn_fmix64(cand[i]->id_hash ^ kh);
		/* With equal weights the raw hash ranks the same, without a log per candidate. */
		double score = uniform ? 0 : weighted_score(h, cand[i]->weight);
		int better = uniform ? h > best_h : score > best_score;
		int tie = uniform ? h == best_h : score == best_score;

		if (better || (tie && id_before(cand[i], cand[best]))) {
			best = i;
			best_h = h;
			best_score = score;
		}
	}
	return best;
}

ssize_t bcn_pick(struct bcn_pick_state *st, enum bcn_pick_policy policy,
		 const struct bcn_endpoint *const *cand, size_t n, const char *key)
{
	if (n == 0 || !cand)
		return -1;
	switch (policy) {
	case BCN_PICK_RANDOM:
		return (ssize_t)pick_random(n);
	case BCN_PICK_WEIGHTED:
		return st ? pick_weighted(st, cand, n) : -1;
	case BCN_PICK_HASH:
		if (key)
			return (ssize_t)pick_hash(cand, n, key);
		break;
	case BCN_PICK_ROUND_ROBIN:
		break;
	}
	return st ? (ssize_t)pick_round_robin(st, n) : -1;
}
