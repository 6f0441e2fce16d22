/*
 * test_cache.c - the endpoint cache: merging sources, deduplication by id,
 * index bumps coalesced per loop turn, rendered bodies reused until a change,
 * stale flags, and blocking-read waiters.
 */
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "store/cache.h"
#include "testutil.h"

static struct bcn_endpoint *ep(const char *svc, const char *id, const char *addr, int port,
			       enum bcn_status st)
{
	struct bcn_endpoint_spec s = { .id = id, .service = svc, .address = addr, .port = port, .status = st };
	const char *err = NULL;
	struct bcn_endpoint *e = bcn_endpoint_new(&s, &err);
	ck_assert_msg(e != NULL, "endpoint: %s", err ? err : "?");
	return e;
}

START_TEST(test_replace_and_render)
{
	struct bcn_cache *c = bcn_cache_new(NULL);
	int src = bcn_cache_source_add(c, "static");
	struct bcn_endpoint *eps[3] = {
		ep("db", "b", "10.0.0.2", 5432, BCN_PASSING),
		ep("db", "a", "10.0.0.1", 5432, BCN_CRITICAL),
		ep("db", "c", "10.0.0.3", 5432, BCN_PASSING),
	};
	bcn_cache_watch(c, src, "db", true);
	bcn_cache_replace(c, src, "db", eps, 3);
	bcn_cache_flush(c);

	struct bcn_service *s = bcn_cache_find(c, "db");
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(bcn_service_count(s, false), 3);
	ck_assert_uint_eq(bcn_service_count(s, true), 2);

	size_t n;
	const struct bcn_endpoint *const *v = bcn_service_endpoints(s, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[0]->id, "a"); /* sorted by id */
	ck_assert_str_eq(v[2]->id, "c");

	struct bcn_blob *b1 = bcn_service_body(s, true);
	struct bcn_blob *b2 = bcn_service_body(s, true);
	ck_assert_ptr_eq(b1, b2); /* unchanged data: the same rendered bytes */
	ck_assert_ptr_nonnull(strstr(b1->data, "\"service\":\"db\""));
	ck_assert_ptr_null(strstr(b1->data, "\"id\":\"a\"")); /* critical is not passing */
	ck_assert_ptr_nonnull(strstr(b1->data, "\"id\":\"b\""));
	bcn_blob_unref(b1);
	bcn_blob_unref(b2);

	struct bcn_blob *all = bcn_service_body(s, false);
	ck_assert_ptr_nonnull(strstr(all->data, "\"id\":\"a\""));
	bcn_blob_unref(all);

	struct bcn_blob *sv = bcn_cache_services_body(c);
	ck_assert_ptr_nonnull(strstr(sv->data, "\"db\":2"));
	bcn_blob_unref(sv);
	bcn_cache_free(c);
}
END_TEST

START_TEST(test_index_moves_once_per_flush)
{
	struct bcn_cache *c = bcn_cache_new(NULL);
	int src = bcn_cache_source_add(c, "etcd#0");
	bcn_cache_watch(c, src, "web", true);
	bcn_cache_flush(c);
	uint64_t i0 = bcn_cache_index(c);

	for (int k = 0; k < 100; k++) {
		char id[16];
		snprintf(id, sizeof(id), "w%03d", k);
		bcn_cache_put(c, src, "web", ep("web", id, "10.0.1.1", 1000 + k, BCN_PASSING));
	}
	bcn_cache_flush(c);
	ck_assert_uint_eq(bcn_cache_index(c), i0 + 1);
	struct bcn_service *s = bcn_cache_find(c, "web");
	ck_assert_uint_eq(bcn_service_index(s), i0 + 1);
	ck_assert_uint_eq(bcn_service_count(s, false), 100);

	/* The same bytes again (a keepalive re-put) change nothing. */
	bcn_cache_put(c, src, "web", ep("web", "w005", "10.0.1.1", 1005, BCN_PASSING));
	bcn_cache_flush(c);
	ck_assert_uint_eq(bcn_cache_index(c), i0 + 1);

	bcn_cache_delete(c, src, "web", "w005");
	bcn_cache_delete(c, src, "web", "missing");
	bcn_cache_flush(c);
	ck_assert_uint_eq(bcn_cache_index(c), i0 + 2);
	ck_assert_uint_eq(bcn_service_count(s, false), 99);
	bcn_cache_free(c);
}
END_TEST

START_TEST(test_sources_merge_and_stale)
{
	struct bcn_cache *c = bcn_cache_new(NULL);
	int etcd = bcn_cache_source_add(c, "etcd#0");
	int consul = bcn_cache_source_add(c, "consul#0");
	bcn_cache_watch(c, etcd, "api", true);
	bcn_cache_watch(c, consul, "api", true);
	/* The same instance registered in both (a migration) is listed once;
	 * the passing copy wins. */
	bcn_cache_put(c, etcd, "api", ep("api", "api-1", "10.0.0.1", 80, BCN_CRITICAL));
	bcn_cache_put(c, consul, "api", ep("api", "api-1", "10.0.0.1", 80, BCN_PASSING));
	bcn_cache_put(c, consul, "api", ep("api", "api-2", "10.0.0.2", 80, BCN_PASSING));
	bcn_cache_flush(c);
	struct bcn_service *s = bcn_cache_find(c, "api");
	size_t n;
	const struct bcn_endpoint *const *v = bcn_service_endpoints(s, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(v[0]->status, BCN_PASSING);
	ck_assert_uint_eq(bcn_service_count(s, true), 2);

	ck_assert(!bcn_service_stale(s));
	uint64_t idx = bcn_cache_index(c);
	bcn_cache_set_stale(c, consul, true);
	ck_assert(bcn_service_stale(s));
	struct bcn_blob *b = bcn_service_body(s, true);
	ck_assert_ptr_nonnull(strstr(b->data, "\"stale\":true"));
	bcn_blob_unref(b);
	bcn_cache_flush(c);
	ck_assert_uint_eq(bcn_cache_index(c), idx); /* stale does not move the index */
	bcn_cache_set_stale(c, consul, false);
	b = bcn_service_body(s, true);
	ck_assert_ptr_nonnull(strstr(b->data, "\"stale\":false"));
	bcn_blob_unref(b);

	/* Withdrawing one source drops only its endpoints. */
	bcn_cache_watch(c, consul, "api", false);
	bcn_cache_flush(c);
	v = bcn_service_endpoints(s, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(v[0]->status, BCN_CRITICAL);
	bcn_cache_watch(c, etcd, "api", false);
	bcn_cache_flush(c);
	ck_assert_ptr_null(bcn_cache_find(c, "api"));
	bcn_cache_free(c);
}
END_TEST

static int woken;
static void on_wake(void *arg)
{
	(void)arg;
	woken++;
}

START_TEST(test_waiters_wake_on_change_only)
{
	struct event_base *base = event_base_new();
	struct bcn_cache *c = bcn_cache_new(base);
	int src = bcn_cache_source_add(c, "static");
	woken = 0;
	bcn_cache_watch(c, src, "a", true);
	bcn_cache_watch(c, src, "b", true);
	event_base_loop(base, EVLOOP_NONBLOCK);

	struct bcn_wait *wa = bcn_cache_wait(c, "a", bcn_cache_index(c), on_wake, NULL);
	struct bcn_wait *wb = bcn_cache_wait(c, "b", bcn_cache_index(c), on_wake, NULL);
	struct bcn_wait *wg = bcn_cache_wait(c, NULL, bcn_cache_index(c), on_wake, NULL);
	ck_assert_ptr_nonnull(wa);
	ck_assert_ptr_null(bcn_cache_wait(c, "unknown", 1, on_wake, NULL));

	bcn_cache_put(c, src, "a", ep("a", "x", "10.0.0.9", 1, BCN_PASSING));
	ck_assert_int_eq(woken, 0); /* never from inside the write */
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(woken, 2); /* "a" and the global waiter, not "b" */
	bcn_wait_cancel(wb);
	(void)wg;
	bcn_cache_free(c);
	event_base_free(base);
}
END_TEST

START_TEST(test_replace_dedupes_ids_within_a_source)
{
	struct bcn_cache *c = bcn_cache_new(NULL);
	int src = bcn_cache_source_add(c, "static");
	struct bcn_endpoint *eps[2] = {
		ep("s", "same", "10.0.0.1", 1, BCN_PASSING),
		ep("s", "same", "10.0.0.2", 2, BCN_PASSING),
	};
	bcn_cache_replace(c, src, "s", eps, 2);
	bcn_cache_flush(c);
	ck_assert_uint_eq(bcn_service_count(bcn_cache_find(c, "s"), false), 1);
	/* Replacing with nothing removes a service no source watches. */
	bcn_cache_replace(c, src, "s", NULL, 0);
	bcn_cache_flush(c);
	ck_assert_ptr_null(bcn_cache_find(c, "s"));
	bcn_cache_free(c);
}
END_TEST

START_TEST(test_ten_thousand_endpoints)
{
	struct bcn_cache *c = bcn_cache_new(NULL);
	int src = bcn_cache_source_add(c, "etcd#0");
	enum { N = 10000 };
	struct bcn_endpoint **eps = calloc(N, sizeof(*eps));
	for (int i = 0; i < N; i++) {
		char id[32];
		snprintf(id, sizeof(id), "big-%05d", N - i);
		eps[i] = ep("big", id, "10.2.0.1", 1 + i % 60000, BCN_PASSING);
	}
	bcn_cache_replace(c, src, "big", eps, N);
	free(eps);
	bcn_cache_flush(c);
	struct bcn_service *s = bcn_cache_find(c, "big");
	ck_assert_uint_eq(bcn_service_count(s, true), N);
	struct bcn_blob *b = bcn_service_body(s, true);
	ck_assert_uint_gt(b->len, (size_t)N * 100);
	ck_assert_ptr_nonnull(strstr(b->data, "big-00001"));
	bcn_blob_unref(b);
	bcn_cache_free(c);
}
END_TEST

START_TEST(test_kv_store)
{
	struct bcn_cache *c = bcn_cache_new(NULL);
	int src = bcn_cache_source_add(c, "etcd#0");
	size_t first;

	bcn_cache_kv_watch(c, src, "/config/web/", true);
	ck_assert(bcn_cache_kv_watched(c, "/config/web/color"));
	ck_assert(!bcn_cache_kv_watched(c, "/config/other"));

	bcn_cache_kv_put(c, src, "/config/web/color", "blue", 4);
	bcn_cache_kv_put(c, src, "/config/web/size", "xl", 2);
	bcn_cache_flush(c);
	uint64_t i1 = bcn_cache_index(c);
	ck_assert_str_eq(bcn_cache_kv_get(c, "/config/web/color")->value, "blue");
	ck_assert_uint_eq(bcn_cache_kv_index(c, "/config/web/color", false), i1);
	ck_assert_uint_eq(bcn_cache_kv_range(c, "/config/web/", &first), 2);

	/* Equal bytes again: nothing moves. */
	bcn_cache_kv_put(c, src, "/config/web/color", "blue", 4);
	bcn_cache_flush(c);
	ck_assert_uint_eq(bcn_cache_index(c), i1);

	/* A delete leaves a tombstone whose index moves the prefix's index. */
	bcn_cache_kv_delete(c, src, "/config/web/size");
	bcn_cache_flush(c);
	ck_assert_ptr_null(bcn_cache_kv_get(c, "/config/web/size"));
	ck_assert_uint_gt(bcn_cache_kv_index(c, "/config/web/", true), i1);
	ck_assert_uint_eq(bcn_cache_kv_index(c, "/config/web/color", false), i1);

	/* A resync replaces what the source had under the prefix. */
	const char *keys[] = { "/config/web/shape" };
	const char *vals[] = { "round" };
	size_t lens[] = { 5 };
	bcn_cache_kv_replace(c, src, "/config/web/", keys, vals, lens, 1);
	bcn_cache_flush(c);
	ck_assert_ptr_null(bcn_cache_kv_get(c, "/config/web/color"));
	ck_assert_str_eq(bcn_cache_kv_get(c, "/config/web/shape")->value, "round");

	/* Keys a backend should never send: not absolute, or outside the
	 * resynced prefix (found by fuzz_etcd: "" made the renderer read past
	 * the key). Neither is stored; the rest of the resync is. */
	const char *odd_keys[] = { "", "config/web/x", "/other/y", "/config/web/shape" };
	const char *odd_vals[] = { "a", "b", "c", "round" };
	size_t odd_lens[] = { 1, 1, 1, 5 };
	bcn_cache_kv_replace(c, src, "/config/web/", odd_keys, odd_vals, odd_lens, 4);
	bcn_cache_kv_put(c, src, "", "d", 1);
	bcn_cache_flush(c);
	ck_assert_ptr_null(bcn_cache_kv_get(c, ""));
	ck_assert_ptr_null(bcn_cache_kv_get(c, "config/web/x"));
	ck_assert_ptr_null(bcn_cache_kv_get(c, "/other/y"));
	ck_assert_str_eq(bcn_cache_kv_get(c, "/config/web/shape")->value, "round");

	bcn_cache_set_stale(c, src, true);
	ck_assert(bcn_cache_kv_stale(c, "/config/web/shape"));
	bcn_cache_kv_watch(c, src, "/config/web/", false);
	ck_assert(!bcn_cache_kv_watched(c, "/config/web/shape"));
	ck_assert_ptr_null(bcn_cache_kv_get(c, "/config/web/shape"));
	bcn_cache_free(c);
}
END_TEST

START_TEST(test_kv_rendered_once_per_change)
{
	struct bcn_cache *c = bcn_cache_new(NULL);
	int src = bcn_cache_source_add(c, "etcd#0");
	struct bcn_blob *b1, *b2, *b3;
	size_t big = BCN_KV_MAX_VALUE + 1;
	char *huge = malloc(big);

	ck_assert_ptr_nonnull(huge);
	memset(huge, 'x', big);
	bcn_cache_kv_watch(c, src, "/cfg/", true);
	bcn_cache_kv_put(c, src, "/cfg/a", "one", 3);
	bcn_cache_flush(c);
	b1 = bcn_cache_kv_body(bcn_cache_kv_get(c, "/cfg/a"));
	b2 = bcn_cache_kv_body(bcn_cache_kv_get(c, "/cfg/a"));
	ck_assert_ptr_eq(b1, b2); /* the same rendering, not a new one per read */
	ck_assert_str_eq(b1->data, "{\"key\":\"cfg/a\",\"value\":\"one\"");
	bcn_cache_kv_put(c, src, "/cfg/a", "two", 3);
	bcn_cache_flush(c);
	b3 = bcn_cache_kv_body(bcn_cache_kv_get(c, "/cfg/a"));
	ck_assert_ptr_ne(b3, b1);
	ck_assert_str_eq(b3->data, "{\"key\":\"cfg/a\",\"value\":\"two\"");
	ck_assert_str_eq(b1->data, "{\"key\":\"cfg/a\",\"value\":\"one\""); /* still ours */
	bcn_blob_unref(b1);
	bcn_blob_unref(b2);
	bcn_blob_unref(b3);

	/* NUL and bytes that are not UTF-8, in the value and the key: U+FFFD. */
	bcn_cache_kv_put(c, src, "/cfg/\xff", "a\0b\xc3", 4);
	bcn_cache_flush(c);
	b1 = bcn_cache_kv_body(bcn_cache_kv_get(c, "/cfg/\xff"));
	ck_assert_ptr_nonnull(b1);
	ck_assert_str_eq(b1->data, "{\"key\":\"cfg/\xef\xbf\xbd\",\"value\":\"a\xef\xbf\xbd" "b\xef\xbf\xbd\"");
	bcn_blob_unref(b1);

	/* Over the limit: skipped (the key reads as absent), an older value too. */
	bcn_cache_kv_put(c, src, "/cfg/a", huge, big);
	bcn_cache_kv_put(c, src, "/cfg/b", huge, big);
	bcn_cache_flush(c);
	ck_assert_ptr_null(bcn_cache_kv_get(c, "/cfg/a"));
	ck_assert_ptr_null(bcn_cache_kv_get(c, "/cfg/b"));
	/* At the limit it is served. */
	bcn_cache_kv_put(c, src, "/cfg/b", huge, big - 1);
	bcn_cache_flush(c);
	ck_assert_ptr_nonnull(bcn_cache_kv_get(c, "/cfg/b"));
	ck_assert_uint_eq(bcn_cache_kv_get(c, "/cfg/b")->len, big - 1);
	free(huge);
	bcn_cache_free(c);
}
END_TEST

START_TEST(test_unchanged_replace_keeps_index)
{
	struct bcn_cache *c = bcn_cache_new(NULL);
	int src = bcn_cache_source_add(c, "etcd#0");
	struct bcn_endpoint *a[2] = { ep("s", "x", "10.0.0.1", 1, BCN_PASSING), ep("s", "y", "10.0.0.2", 1, BCN_PASSING) };
	bcn_cache_replace(c, src, "s", a, 2);
	bcn_cache_flush(c);
	uint64_t idx = bcn_cache_index(c);
	/* The same set in another order (a reconnect's resync): no index step. */
	struct bcn_endpoint *b[2] = { ep("s", "y", "10.0.0.2", 1, BCN_PASSING), ep("s", "x", "10.0.0.1", 1, BCN_PASSING) };
	bcn_cache_replace(c, src, "s", b, 2);
	bcn_cache_flush(c);
	ck_assert_uint_eq(bcn_cache_index(c), idx);
	struct bcn_endpoint *d[1] = { ep("s", "x", "10.0.0.1", 1, BCN_CRITICAL) };
	bcn_cache_replace(c, src, "s", d, 1);
	bcn_cache_flush(c);
	ck_assert_uint_eq(bcn_cache_index(c), idx + 1);
	bcn_cache_free(c);
}
END_TEST


static int kv_woken[4];
static void on_kv_wake(void *arg)
{
	kv_woken[(intptr_t)arg]++;
}

/* A KV reader wakes for its own key (or, recursive, for its prefix) only. */
START_TEST(test_kv_waiters_wake_for_their_keys_only)
{
	struct event_base *base = event_base_new();
	struct bcn_cache *c = bcn_cache_new(base);
	int src = bcn_cache_source_add(c, "etcd#0");
	uint64_t ia, ib;

	memset(kv_woken, 0, sizeof(kv_woken));
	bcn_cache_kv_watch(c, src, "/config/", true);
	bcn_cache_kv_put(c, src, "/config/a", "1", 1);
	bcn_cache_kv_put(c, src, "/config/b", "1", 1);
	bcn_cache_kv_put(c, src, "/config/web/x", "1", 1);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ia = bcn_cache_kv_index(c, "/config/a", false);
	ib = bcn_cache_kv_index(c, "/config/web/", true);
	ck_assert_ptr_nonnull(bcn_cache_kv_wait(c, "/config/a", false, ia, on_kv_wake, (void *)0));
	ck_assert_ptr_nonnull(bcn_cache_kv_wait(c, "/config/web/", true, ib, on_kv_wake, (void *)1));
	ck_assert_ptr_nonnull(bcn_cache_kv_wait(c, "/config/", true, bcn_cache_kv_index(c, "/config/", true),
						on_kv_wake, (void *)2));
	/* A service's reader is not a KV reader. */
	bcn_cache_watch(c, src, "svc", true);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_ptr_nonnull(bcn_cache_wait(c, "svc", bcn_service_index(bcn_cache_find(c, "svc")),
					     on_kv_wake, (void *)3));
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(kv_woken[0] + kv_woken[1] + kv_woken[2] + kv_woken[3], 0);

	bcn_cache_kv_put(c, src, "/config/b", "2", 1);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(kv_woken[0], 0); /* key B changed: the reader of A sleeps on */
	ck_assert_int_eq(kv_woken[1], 0);
	ck_assert_int_eq(kv_woken[2], 1); /* the recursive reader of /config/ wakes */
	ck_assert_int_eq(kv_woken[3], 0);

	bcn_cache_kv_delete(c, src, "/config/web/x");
	ck_assert_int_eq(kv_woken[1], 0); /* never from inside the write */
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(kv_woken[1], 1);
	ck_assert_int_eq(kv_woken[0], 0);

	/* A burst on A wakes its reader once. */
	for (int i = 0; i < 10000; i++) {
		char v[16];
		snprintf(v, sizeof(v), "%d", i);
		bcn_cache_kv_put(c, src, "/config/a", v, strlen(v));
	}
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(kv_woken[0], 1);
	ck_assert_uint_gt(bcn_cache_kv_index(c, "/config/a", false), ia);

	ck_assert_int_eq(kv_woken[3], 0);
	/* A reader that saw an older index than the key's wakes on the next turn. */
	ck_assert_ptr_nonnull(bcn_cache_kv_wait(c, "/config/b", false, 1, on_kv_wake, (void *)0));
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(kv_woken[0], 2);
	bcn_cache_free(c);
	event_base_free(base);
}
END_TEST

static Suite *cache_suite(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_replace_and_render);
	tcase_add_test(tc, test_index_moves_once_per_flush);
	tcase_add_test(tc, test_sources_merge_and_stale);
	tcase_add_test(tc, test_waiters_wake_on_change_only);
	tcase_add_test(tc, test_replace_dedupes_ids_within_a_source);
	tcase_add_test(tc, test_ten_thousand_endpoints);
	tcase_add_test(tc, test_kv_store);
	tcase_add_test(tc, test_kv_rendered_once_per_change);
	tcase_add_test(tc, test_unchanged_replace_keeps_index);
	tcase_add_test(tc, test_kv_waiters_wake_for_their_keys_only);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(cache_suite)
