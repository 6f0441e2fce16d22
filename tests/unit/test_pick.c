/*
 * test_pick.c - load-balancing policies: round robin cycles, random is
 * uniform and not secretly a cycle, smooth weighted round robin follows
 * nginx's exact sequence, and rendezvous hashing moves only the keys it must
 * when endpoints come and go.
 */
#include <stdio.h>
#include <string.h>

#include "store/pick.h"
#include "testutil.h"

enum { MAX_EPS = 16, NKEYS = 10000 };

static struct bcn_endpoint *eps[MAX_EPS];

/* Endpoint i is 10.0.0.i:8080 with the given weight. */
static const struct bcn_endpoint *ep(int i, int64_t weight)
{
	char addr[32];
	struct bcn_endpoint_spec s = { .service = "svc", .address = addr, .port = 8080,
				       .weight = weight };

	snprintf(addr, sizeof(addr), "10.0.0.%d", i);
	free(eps[i]);
	eps[i] = bcn_endpoint_new(&s, NULL);
	ck_assert_ptr_nonnull(eps[i]);
	return eps[i];
}

static void free_eps(void)
{
	for (int i = 0; i < MAX_EPS; i++) {
		free(eps[i]);
		eps[i] = NULL;
	}
}

/* Fill cand with endpoints 0..n-1, all of weight w. */
static void make_uniform(const struct bcn_endpoint **cand, int n, int64_t w)
{
	for (int i = 0; i < n; i++)
		cand[i] = ep(i, w);
}

static void count_picks(struct bcn_pick_state *st, enum bcn_pick_policy pol,
			const struct bcn_endpoint **cand, size_t n, int picks, int *counts)
{
	memset(counts, 0, n * sizeof(*counts));
	for (int i = 0; i < picks; i++) {
		ssize_t k = bcn_pick(st, pol, cand, n, NULL);
		if (k < 0 || (size_t)k >= n)
			ck_abort_msg("pick returned %zd for n=%zu", k, n);
		counts[k]++;
	}
}

/* ---- parsing, empty lists ---- */

START_TEST(policy_names_parse)
{
	enum bcn_pick_policy p = BCN_PICK_HASH;

	ck_assert_int_eq(bcn_pick_policy_parse(NULL, &p), 0);
	ck_assert_int_eq(p, BCN_PICK_ROUND_ROBIN);
	ck_assert_int_eq(bcn_pick_policy_parse("random", &p), 0);
	ck_assert_int_eq(p, BCN_PICK_RANDOM);
	ck_assert_int_eq(bcn_pick_policy_parse("", &p), 0);
	ck_assert_int_eq(p, BCN_PICK_ROUND_ROBIN);
	ck_assert_int_eq(bcn_pick_policy_parse("weighted", &p), 0);
	ck_assert_int_eq(p, BCN_PICK_WEIGHTED);
	ck_assert_int_eq(bcn_pick_policy_parse("hash", &p), 0);
	ck_assert_int_eq(p, BCN_PICK_HASH);
	ck_assert_int_eq(bcn_pick_policy_parse("round_robin", &p), 0);
	ck_assert_int_eq(p, BCN_PICK_ROUND_ROBIN);
	ck_assert_int_eq(bcn_pick_policy_parse("least_conn", &p), -1);
	ck_assert_int_eq(bcn_pick_policy_parse("Hash", &p), -1);
}
END_TEST

START_TEST(empty_list_gives_minus_one)
{
	struct bcn_pick_state st = { 0 };
	const struct bcn_endpoint *cand[1] = { NULL };

	for (int pol = BCN_PICK_ROUND_ROBIN; pol <= BCN_PICK_HASH; pol++) {
		ck_assert_int_eq(bcn_pick(&st, (enum bcn_pick_policy)pol, cand, 0, "k"), -1);
		ck_assert_int_eq(bcn_pick(&st, (enum bcn_pick_policy)pol, cand, 0, NULL), -1);
	}
	ck_assert_ptr_null(st.current);
	bcn_pick_state_free(&st);
}
END_TEST

/* ---- round robin ---- */

START_TEST(round_robin_cycles_evenly)
{
	struct bcn_pick_state st = { 0 };
	const struct bcn_endpoint *cand[3];
	int counts[3];

	make_uniform(cand, 3, 1);
	for (int i = 0; i < 9; i++)
		ck_assert_int_eq(bcn_pick(&st, BCN_PICK_ROUND_ROBIN, cand, 3, NULL), i % 3);
	count_picks(&st, BCN_PICK_ROUND_ROBIN, cand, 3, 3000, counts);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(counts[i], 1000);
	/* weights do not matter to round robin */
	cand[0] = ep(0, 50);
	count_picks(&st, BCN_PICK_ROUND_ROBIN, cand, 3, 300, counts);
	ck_assert_int_eq(counts[0], 100);
	/* a shorter list keeps cycling over what is left */
	count_picks(&st, BCN_PICK_ROUND_ROBIN, cand, 2, 100, counts);
	ck_assert_int_eq(counts[0], 50);
	ck_assert_int_eq(counts[1], 50);
	bcn_pick_state_free(&st);
	free_eps();
}
END_TEST

/* ---- random ---- */

START_TEST(random_is_uniform_and_not_a_cycle)
{
	enum { N = 4, PICKS = 40000 };
	const struct bcn_endpoint *cand[N];
	int counts[N] = { 0 }, pairs[N][N] = { { 0 } };
	ssize_t prev = -1;

	make_uniform(cand, N, 1);
	for (int i = 0; i < PICKS; i++) {
		ssize_t k = bcn_pick(NULL, BCN_PICK_RANDOM, cand, N, NULL);
		if (k < 0 || k >= N)
			ck_abort_msg("random pick %zd out of range", k);
		counts[k]++;
		if (prev >= 0)
			pairs[prev][k]++;
		prev = k;
	}
	for (int i = 0; i < N; i++) {
		/* 25% +- 5% of 25% (about 6 standard deviations) */
		ck_assert_int_ge(counts[i], 9500);
		ck_assert_int_le(counts[i], 10500);
		/* every successor follows every endpoint about 1/16 of the time */
		for (int j = 0; j < N; j++)
			ck_assert_int_ge(pairs[i][j], 2000);
	}
}
END_TEST

START_TEST(random_single_candidate)
{
	const struct bcn_endpoint *cand[1] = { ep(0, 1) };

	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(bcn_pick(NULL, BCN_PICK_RANDOM, cand, 1, NULL), 0);
	free_eps();
}
END_TEST

/* ---- smooth weighted round robin ---- */

static void build_weighted(const struct bcn_endpoint **cand, const int64_t *w, int n)
{
	for (int i = 0; i < n; i++)
		cand[i] = ep(i, w[i]);
}

START_TEST(weighted_5_1_1_is_nginx_sequence)
{
	static const int64_t w[] = { 5, 1, 1 };
	static const int expect[] = { 0, 0, 1, 0, 2, 0, 0 }; /* a a b a c a a */
	struct bcn_pick_state st = { 0 };
	const struct bcn_endpoint *cand[3];
	int counts[3];

	build_weighted(cand, w, 3);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 7; i++)
			ck_assert_int_eq(bcn_pick(&st, BCN_PICK_WEIGHTED, cand, 3, NULL), expect[i]);
	}
	ck_assert_uint_eq(st.ncurrent, 3);
	count_picks(&st, BCN_PICK_WEIGHTED, cand, 3, 7000, counts);
	ck_assert_int_eq(counts[0], 5000);
	ck_assert_int_eq(counts[1], 1000);
	ck_assert_int_eq(counts[2], 1000);
	bcn_pick_state_free(&st);
	ck_assert_ptr_null(st.current);
	free_eps();
}
END_TEST

START_TEST(weighted_3_2_1_proportions)
{
	static const int64_t w[] = { 3, 2, 1 };
	static const int expect[] = { 0, 1, 0, 2, 1, 0 }; /* nginx: a b a c b a */
	struct bcn_pick_state st = { 0 };
	const struct bcn_endpoint *cand[3];
	int counts[3];

	build_weighted(cand, w, 3);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(bcn_pick(&st, BCN_PICK_WEIGHTED, cand, 3, NULL), expect[i]);
	count_picks(&st, BCN_PICK_WEIGHTED, cand, 3, 6000, counts);
	ck_assert_int_eq(counts[0], 3000);
	ck_assert_int_eq(counts[1], 2000);
	ck_assert_int_eq(counts[2], 1000);
	bcn_pick_state_free(&st);
	free_eps();
}
END_TEST

START_TEST(weighted_reset_after_weight_change)
{
	static const int64_t heavy[] = { 5, 1, 1 }, even[] = { 1, 1, 1 };
	struct bcn_pick_state st = { 0 };
	const struct bcn_endpoint *cand[3];

	build_weighted(cand, heavy, 3);
	for (int i = 0; i < 3; i++) /* a a b: leaves current = {1, -4, 3} */
		bcn_pick(&st, BCN_PICK_WEIGHTED, cand, 3, NULL);
	build_weighted(cand, even, 3);
	/* same count, new weights: without a reset the leftover credit decides (c) */
	ck_assert_int_eq(bcn_pick(&st, BCN_PICK_WEIGHTED, cand, 3, NULL), 2);

	/* after a reset the new weights start a fresh sequence */
	bcn_pick_reset(&st);
	ck_assert_ptr_null(st.current);
	ck_assert_uint_eq(st.ncurrent, 0);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(bcn_pick(&st, BCN_PICK_WEIGHTED, cand, 3, NULL), i % 3);
	bcn_pick_state_free(&st);
	free_eps();
}
END_TEST

START_TEST(weighted_resizes_when_list_changes)
{
	static const int64_t w[] = { 5, 1, 1, 2 };
	struct bcn_pick_state st = { 0 };
	const struct bcn_endpoint *cand[4];
	int counts[4];

	build_weighted(cand, w, 4);
	bcn_pick(&st, BCN_PICK_WEIGHTED, cand, 3, NULL);
	/* a longer list: the state grows and starts over, exact shares per period */
	count_picks(&st, BCN_PICK_WEIGHTED, cand, 4, 900, counts);
	ck_assert_uint_eq(st.ncurrent, 4);
	ck_assert_int_eq(counts[0], 500);
	ck_assert_int_eq(counts[3], 200);
	/* and a shorter one */
	count_picks(&st, BCN_PICK_WEIGHTED, cand + 2, 2, 300, counts);
	ck_assert_uint_eq(st.ncurrent, 2);
	ck_assert_int_eq(counts[0], 100);
	ck_assert_int_eq(counts[1], 200);
	bcn_pick_state_free(&st);
	free_eps();
}
END_TEST

/* ---- hash ---- */

static char keys[NKEYS][24];

static void make_keys(void)
{
	for (int i = 0; i < NKEYS; i++)
		snprintf(keys[i], sizeof(keys[i]), "user-%d", i);
}

/* owner[k] = the endpoint key k lands on. */
static void assign(const struct bcn_endpoint **cand, size_t n, const struct bcn_endpoint **owner)
{
	for (int k = 0; k < NKEYS; k++) {
		ssize_t i = bcn_pick(NULL, BCN_PICK_HASH, cand, n, keys[k]);
		if (i < 0 || (size_t)i >= n)
			ck_abort_msg("hash pick %zd out of range", i);
		owner[k] = cand[i];
	}
}

static int share_of(const struct bcn_endpoint **owner, const struct bcn_endpoint *e)
{
	int c = 0;

	for (int k = 0; k < NKEYS; k++)
		c += owner[k] == e;
	return c;
}

static const struct bcn_endpoint *owner_a[NKEYS], *owner_b[NKEYS];

START_TEST(hash_same_key_same_endpoint)
{
	struct bcn_pick_state st = { 0 };
	const struct bcn_endpoint *cand[5], *rev[5];

	make_uniform(cand, 5, 1);
	ssize_t first = bcn_pick(&st, BCN_PICK_HASH, cand, 5, "session-42");
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(bcn_pick(&st, BCN_PICK_HASH, cand, 5, "session-42"), first);
	ck_assert_uint_eq(st.rr, 0); /* a keyed pick leaves the round robin alone */

	/* the list order does not matter, only ids do */
	make_keys();
	assign(cand, 5, owner_a);
	for (int i = 0; i < 5; i++)
		rev[i] = cand[4 - i];
	assign(rev, 5, owner_b);
	ck_assert_int_eq(memcmp(owner_a, owner_b, sizeof(owner_a)), 0);
	free_eps();
}
END_TEST

START_TEST(hash_spreads_evenly)
{
	const struct bcn_endpoint *cand[10];

	make_keys();
	make_uniform(cand, 10, 1);
	assign(cand, 10, owner_a);
	for (int i = 0; i < 10; i++) {
		int c = share_of(owner_a, cand[i]);
		ck_assert_msg(c >= 750 && c <= 1250, "endpoint %d got %d of 10000 keys", i, c);
	}
	free_eps();
}
END_TEST

START_TEST(hash_removal_moves_only_removed_keys)
{
	const struct bcn_endpoint *cand[10], *left[9];
	int moved = 0, wrongly_moved = 0, n = 0;

	make_keys();
	make_uniform(cand, 10, 1);
	assign(cand, 10, owner_a);
	for (int i = 0; i < 10; i++) {
		if (i != 3)
			left[n++] = cand[i];
	}
	assign(left, 9, owner_b);
	for (int k = 0; k < NKEYS; k++) {
		if (owner_a[k] == cand[3])
			moved++;
		else
			wrongly_moved += owner_a[k] != owner_b[k];
		ck_assert(owner_b[k] != cand[3]);
	}
	ck_assert_int_eq(wrongly_moved, 0);
	ck_assert_msg(moved >= 750 && moved <= 1250, "%d keys moved", moved);
	free_eps();
}
END_TEST

START_TEST(hash_addition_moves_keys_onto_new_only)
{
	const struct bcn_endpoint *cand[11];
	int moved = 0, elsewhere = 0;

	make_keys();
	make_uniform(cand, 11, 1);
	assign(cand, 10, owner_a);
	assign(cand, 11, owner_b);
	for (int k = 0; k < NKEYS; k++) {
		if (owner_a[k] != owner_b[k]) {
			moved++;
			elsewhere += owner_b[k] != cand[10];
		}
	}
	ck_assert_int_eq(elsewhere, 0);
	/* 1/11 = 9.1% of keys */
	ck_assert_msg(moved >= 659 && moved <= 1159, "%d keys moved", moved);
	free_eps();
}
END_TEST

START_TEST(hash_weighted_share_and_stability)
{
	const struct bcn_endpoint *cand[4] = { ep(0, 3), ep(1, 1), ep(2, 1), ep(3, 1) };
	const struct bcn_endpoint *left[3] = { cand[0], cand[1], cand[3] };
	int wrongly_moved = 0;

	make_keys();
	assign(cand, 4, owner_a);
	int heavy = share_of(owner_a, cand[0]);
	ck_assert_msg(heavy >= 4500 && heavy <= 5500, "weight 3 of 6 got %d keys", heavy);
	for (int i = 1; i < 4; i++) {
		int c = share_of(owner_a, cand[i]);
		ck_assert_msg(c >= 1167 && c <= 2167, "weight 1 of 6 got %d keys", c);
	}
	/* weighted rendezvous keeps the minimal-movement property */
	assign(left, 3, owner_b);
	for (int k = 0; k < NKEYS; k++) {
		if (owner_a[k] != cand[2])
			wrongly_moved += owner_a[k] != owner_b[k];
	}
	ck_assert_int_eq(wrongly_moved, 0);
	free_eps();
}
END_TEST

START_TEST(hash_without_key_is_round_robin)
{
	struct bcn_pick_state st = { 0 };
	const struct bcn_endpoint *cand[3];

	make_uniform(cand, 3, 1);
	for (int i = 0; i < 9; i++)
		ck_assert_int_eq(bcn_pick(&st, BCN_PICK_HASH, cand, 3, NULL), i % 3);
	/* and it shares the cycle with plain round robin */
	ck_assert_int_eq(bcn_pick(&st, BCN_PICK_ROUND_ROBIN, cand, 3, NULL), 0);
	ck_assert_int_eq(bcn_pick(&st, BCN_PICK_HASH, cand, 3, NULL), 1);
	free_eps();
}
END_TEST

static Suite *pick_suite(void)
{
	Suite *s = suite_create("pick");
	TCase *basic = tcase_create("basic"), *weighted = tcase_create("weighted"),
	      *hash = tcase_create("hash");

	tcase_add_test(basic, policy_names_parse);
	tcase_add_test(basic, empty_list_gives_minus_one);
	tcase_add_test(basic, round_robin_cycles_evenly);
	tcase_add_test(basic, random_is_uniform_and_not_a_cycle);
	tcase_add_test(basic, random_single_candidate);
	tcase_add_test(weighted, weighted_5_1_1_is_nginx_sequence);
	tcase_add_test(weighted, weighted_3_2_1_proportions);
	tcase_add_test(weighted, weighted_reset_after_weight_change);
	tcase_add_test(weighted, weighted_resizes_when_list_changes);
	tcase_add_test(hash, hash_same_key_same_endpoint);
	tcase_add_test(hash, hash_spreads_evenly);
	tcase_add_test(hash, hash_removal_moves_only_removed_keys);
	tcase_add_test(hash, hash_addition_moves_keys_onto_new_only);
	tcase_add_test(hash, hash_weighted_share_and_stability);
	tcase_add_test(hash, hash_without_key_is_round_robin);
	suite_add_tcase(s, basic);
	suite_add_tcase(s, weighted);
	suite_add_tcase(s, hash);
	return s;
}

BCN_TEST_MAIN(pick_suite)
