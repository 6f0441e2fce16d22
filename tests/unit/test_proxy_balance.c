/*
 * test_proxy_balance.c - the choice among a proxy's upstreams, without
 * sockets: the upstream table follows the store (tags, endpoints that leave
 * while connections use them), least_conn divides by weight and breaks ties
 * round robin, a connection never retries an endpoint it tried, and outlier
 * ejection ejects after consecutive failures, never the last endpoint, and
 * is cleared by a success.
 */
#include <stdio.h>
#include <string.h>

#include "base/timing.h"
#include "proxy/proxy_internal.h"
#include "testutil.h"

static struct bcn_cache *cache;
static int src;
static struct bcn_proxies ps;
static struct px_proxy px;

static struct bcn_endpoint *ep(const char *id, const char *addr, int64_t weight, const char *tag)
{
	const char *tags[1] = { tag };
	struct bcn_endpoint_spec s = { .id = id, .service = "svc", .address = addr, .port = 80,
				       .weight = weight, .tags = tags, .ntags = tag ? 1 : 0 };
	struct bcn_endpoint *e = bcn_endpoint_new(&s, NULL);

	ck_assert_ptr_nonnull(e);
	return e;
}

static void setup(void)
{
	cache = bcn_cache_new(NULL);
	src = bcn_cache_source_add(cache, "static");
	bcn_cache_watch(cache, src, "svc", true);
	memset(&ps, 0, sizeof(ps));
	ps.cache = cache;
	memset(&px, 0, sizeof(px));
	px.ps = &ps;
	px.listen = "test";
	px.service = "svc";
	px.tag = "";
	px.policy = PX_ROUND_ROBIN;
	px.retries = 2;
	px.consecutive_failures = 3;
	px.ejection_ms = 60000;
	TAILQ_INIT(&px.conns);
}

static void teardown(void)
{
	px_upstreams_free(&px);
	bcn_cache_free(cache);
}

static void put3(int64_t wa, int64_t wb, int64_t wc)
{
	bcn_cache_put(cache, src, "svc", ep("a", "10.0.0.1", wa, "blue"));
	bcn_cache_put(cache, src, "svc", ep("b", "10.0.0.2", wb, "green"));
	bcn_cache_put(cache, src, "svc", ep("c", "10.0.0.3", wc, "blue"));
	bcn_cache_flush(cache);
	px_sync(&px);
}

static struct px_upstream *up(const char *id)
{
	for (size_t i = 0; i < px.nups; i++) {
		if (strcmp(px.ups[i]->ep->id, id) == 0)
			return px.ups[i];
	}
	return NULL;
}

static const char *choose(void)
{
	struct px_conn c = { 0 };
	struct px_upstream *u = px_choose(&px, &c);

	return u ? u->ep->id : NULL;
}

START_TEST(sync_follows_store_and_tags)
{
	put3(1, 1, 1);
	ck_assert_uint_eq(px.nups, 3);
	px.tag = "blue";
	px_sync(&px);
	ck_assert_uint_eq(px.nups, 2);
	ck_assert_ptr_null(up("b"));
	for (int i = 0; i < 10; i++)
		ck_assert_str_ne(choose(), "b");
}
END_TEST

START_TEST(leaving_endpoint_drains)
{
	put3(1, 1, 1);
	struct px_upstream *b = up("b");
	b->active = 1; /* one connection uses it */
	bcn_cache_delete(cache, src, "svc", "b");
	bcn_cache_flush(cache);
	px_sync(&px);
	ck_assert_ptr_eq(up("b"), b);
	ck_assert(!b->listed);
	for (int i = 0; i < 12; i++)
		ck_assert_str_ne(choose(), "b"); /* no new connections */
	b->active = 0;
	px_upstream_release(b); /* the last one ended: forgotten */
	ck_assert_ptr_null(up("b"));
	ck_assert_uint_eq(px.nups, 2);
}
END_TEST

START_TEST(non_ip_address_gets_nothing)
{
	bcn_cache_put(cache, src, "svc", ep("named", "db.example.com", 1, NULL));
	bcn_cache_put(cache, src, "svc", ep("ip", "10.0.0.9", 1, NULL));
	bcn_cache_flush(cache);
	px_sync(&px);
	for (int i = 0; i < 6; i++)
		ck_assert_str_eq(choose(), "ip");
}
END_TEST

START_TEST(least_conn_by_weight_ties_round_robin)
{
	int seen[3] = { 0 };

	px.policy = PX_LEAST_CONN;
	put3(1, 2, 1);
	up("a")->active = 1;
	up("b")->active = 1; /* 1/2: the least loaded */
	up("c")->active = 1;
	ck_assert_str_eq(choose(), "b");
	up("b")->active = 2; /* now all equal per weight: rotate */
	for (int i = 0; i < 30; i++)
		seen[choose()[0] - 'a']++;
	ck_assert_int_eq(seen[0], 10);
	ck_assert_int_eq(seen[1], 10);
	ck_assert_int_eq(seen[2], 10);
}
END_TEST

START_TEST(retry_skips_tried)
{
	struct px_conn c = { 0 };

	put3(1, 1, 1);
	for (int i = 0; i < 3; i++) {
		struct px_upstream *u = px_choose(&px, &c);
		ck_assert_ptr_nonnull(u);
		for (unsigned k = 0; k < c.ntried; k++)
			ck_assert_ptr_ne(c.tried[k], u);
		c.tried[c.ntried++] = u;
	}
	ck_assert_ptr_null(px_choose(&px, &c));
}
END_TEST

START_TEST(ejection_after_consecutive_failures)
{
	put3(1, 1, 1);
	struct px_upstream *a = up("a");
	px_connect_failed(a);
	px_connect_failed(a);
	px_connect_ok(a); /* a success resets the count */
	px_connect_failed(a);
	px_connect_failed(a);
	ck_assert(!px_ejected(a, bcn_now_ms()));
	px_connect_failed(a);
	ck_assert(px_ejected(a, bcn_now_ms()));
	ck_assert_uint_eq(a->ejections, 1);
	ck_assert_uint_eq(a->failures, 5);
	for (int i = 0; i < 10; i++)
		ck_assert_str_ne(choose(), "a");
	/* the ejection ends: it is chosen again */
	a->ejected_until_ms = bcn_now_ms();
	int got = 0;
	for (int i = 0; i < 6; i++)
		got += strcmp(choose(), "a") == 0;
	ck_assert_int_eq(got, 2);
}
END_TEST

START_TEST(never_ejects_the_last)
{
	put3(1, 1, 1);
	for (int i = 0; i < 3; i++)
		px_connect_failed(up("a"));
	for (int i = 0; i < 3; i++)
		px_connect_failed(up("b"));
	for (int i = 0; i < 9; i++)
		px_connect_failed(up("c"));
	ck_assert(px_ejected(up("a"), bcn_now_ms()));
	ck_assert(px_ejected(up("b"), bcn_now_ms()));
	ck_assert(!px_ejected(up("c"), bcn_now_ms()));
	ck_assert_uint_eq(up("c")->ejections, 0);
	ck_assert_str_eq(choose(), "c");
	/* c leaves discovery: an ejected endpoint beats refusing the client */
	bcn_cache_delete(cache, src, "svc", "c");
	bcn_cache_flush(cache);
	px_sync(&px);
	ck_assert_ptr_nonnull(choose());
}
END_TEST

START_TEST(weighted_and_hash_reuse_pick)
{
	int seen[3] = { 0 };
	struct px_conn c = { 0 };

	px.policy = PX_WEIGHTED;
	put3(1, 2, 3);
	for (int i = 0; i < 60; i++)
		seen[choose()[0] - 'a']++;
	ck_assert_int_eq(seen[0], 10);
	ck_assert_int_eq(seen[1], 20);
	ck_assert_int_eq(seen[2], 30);
	px.policy = PX_HASH;
	snprintf(c.key, sizeof(c.key), "192.0.2.7");
	struct px_upstream *first = px_choose(&px, &c);
	for (int i = 0; i < 10; i++)
		ck_assert_ptr_eq(px_choose(&px, &c), first);
}
END_TEST

START_TEST(policy_names)
{
	enum px_policy p;

	ck_assert_int_eq(px_policy_parse("least_conn", &p), 0);
	ck_assert_int_eq(p, PX_LEAST_CONN);
	ck_assert_str_eq(px_policy_name(p), "least_conn");
	ck_assert_int_eq(px_policy_parse("fastest", &p), -1);
}
END_TEST

static Suite *proxy_suite(void)
{
	Suite *s = suite_create("proxy_balance");
	TCase *t = tcase_create("balance");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, sync_follows_store_and_tags);
	tcase_add_test(t, leaving_endpoint_drains);
	tcase_add_test(t, non_ip_address_gets_nothing);
	tcase_add_test(t, least_conn_by_weight_ties_round_robin);
	tcase_add_test(t, retry_skips_tried);
	tcase_add_test(t, ejection_after_consecutive_failures);
	tcase_add_test(t, never_ejects_the_last);
	tcase_add_test(t, weighted_and_hash_reuse_pick);
	tcase_add_test(t, policy_names);
	suite_add_tcase(s, t);
	return s;
}

BCN_TEST_MAIN(proxy_suite)
