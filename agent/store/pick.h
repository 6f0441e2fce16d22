/*
 * pick.h - load-balancing policies for /v1/pick.
 *
 * round_robin and weighted keep per-service state; weighted is nginx's smooth
 * weighted round robin (no bursts toward the heaviest endpoint); hash is
 * weighted rendezvous hashing, so when an endpoint leaves only its keys move.
 */
#ifndef BCN_PICK_H
#define BCN_PICK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/endpoint.h"

enum bcn_pick_policy { BCN_PICK_ROUND_ROBIN, BCN_PICK_RANDOM, BCN_PICK_WEIGHTED, BCN_PICK_HASH };

/* Per-service state. Zero-initialised is valid. */
struct bcn_pick_state {
	uint64_t rr;
	int64_t *current;   /* smooth WRR current weights, one per candidate */
	size_t ncurrent;
};

/* "round_robin" (or NULL/""), "random", "weighted", "hash"; 0, or -1 when unknown. */
int bcn_pick_policy_parse(const char *s, enum bcn_pick_policy *out);

/* Forget WRR weights; call whenever the candidate list changes. */
void bcn_pick_reset(struct bcn_pick_state *st);
void bcn_pick_state_free(struct bcn_pick_state *st);

/*
 * Choose one of n candidates. `key` is required for BCN_PICK_HASH (a NULL key
 * falls back to round robin). Returns the index, or -1 when n == 0 or memory
 * for the weighted state could not be had.
 */
ssize_t bcn_pick(struct bcn_pick_state *st, enum bcn_pick_policy policy,
		 const struct bcn_endpoint *const *cand, size_t n, const char *key);

#endif
