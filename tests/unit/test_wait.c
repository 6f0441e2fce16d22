/*
 * test_wait.c - the wait primitive (store/wait.h): delivery once per loop
 * turn and never inside the signalling call, index semantics, cancel (also
 * from inside a wake-up), no wake-ups for other queues or spaces, prefix
 * signals, and a 10 000-signal burst that wakes a reader once.
 */
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "store/wait.h"
#include "testutil.h"

static int woken[8];
static struct bcn_wait *victim;   /* cancelled by on_wake_cancel */
static struct bcn_waits *reparker; /* on_wake_repark parks again here */

static void on_wake(void *arg)
{
	woken[(intptr_t)arg]++;
}

static void on_wake_cancel(void *arg)
{
	woken[(intptr_t)arg]++;
	bcn_wait_cancel(victim);
	victim = NULL;
}

static void on_wake_repark(void *arg)
{
	woken[(intptr_t)arg]++;
	/* Park again and signal at once: that is for the next delivery. */
	ck_assert_ptr_nonnull(bcn_wait_park(reparker, 0, "q", 10, on_wake, (void *)7));
	bcn_wait_signal(reparker, 0, "q", 11);
}

static void reset(void)
{
	memset(woken, 0, sizeof(woken));
}

START_TEST(test_delivered_on_the_loop_once_per_turn)
{
	struct event_base *base = event_base_new();
	struct bcn_waits *ws = bcn_waits_new(base);

	reset();
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 0, "svc", 5, on_wake, (void *)0));
	ck_assert_uint_eq(bcn_waits_parked(ws), 1);
	bcn_wait_signal(ws, 0, "svc", 6);
	ck_assert_int_eq(woken[0], 0); /* never from inside the signal */
	bcn_wait_signal(ws, 0, "svc", 7);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(woken[0], 1);
	ck_assert_uint_eq(bcn_waits_parked(ws), 0);
	ck_assert_uint_eq(bcn_waits_queues(ws, 0), 0); /* a queue lives while someone waits */
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(woken[0], 1);
	bcn_waits_free(ws);
	event_base_free(base);
}
END_TEST

START_TEST(test_index_semantics)
{
	struct bcn_waits *ws = bcn_waits_new(NULL);

	reset();
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 0, "k", 5, on_wake, (void *)0));
	/* Not past what the reader saw: nothing. */
	bcn_wait_signal(ws, 0, "k", 5);
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[0], 0);
	bcn_wait_signal(ws, 0, "k", 6);
	/* A reader that already saw 6 stays; one that saw 4 wakes with the first. */
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 0, "k", 6, on_wake, (void *)1));
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 0, "k", 4, on_wake, (void *)2));
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[0], 1);
	ck_assert_int_eq(woken[1], 0);
	ck_assert_int_eq(woken[2], 1);
	ck_assert_uint_eq(bcn_waits_parked(ws), 1);
	/* The queue still lives (reader 1): a late reader with an old index is
	 * woken by the next delivery without a new signal. */
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 0, "k", 3, on_wake, (void *)3));
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[3], 1);
	ck_assert_int_eq(woken[1], 0);
	bcn_wait_signal(ws, 0, "k", 7);
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[1], 1);
	ck_assert_ptr_null(bcn_wait_park(ws, BCN_WAIT_SPACES, "k", 1, on_wake, NULL));
	bcn_waits_free(ws);
}
END_TEST

START_TEST(test_no_spurious_wakes)
{
	struct bcn_waits *ws = bcn_waits_new(NULL);

	reset();
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 0, "a", 1, on_wake, (void *)0));
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 1, "a", 1, on_wake, (void *)1));
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 0, "ab", 1, on_wake, (void *)2));
	bcn_wait_signal(ws, 0, "b", 9);   /* another name */
	bcn_wait_signal(ws, 2, "a", 9);   /* another space */
	bcn_wait_signal(ws, 0, "", 9);
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[0] + woken[1] + woken[2], 0);
	bcn_wait_signal(ws, 0, "a", 9);   /* "a" only, not "ab" nor space 1 */
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[0], 1);
	ck_assert_int_eq(woken[1], 0);
	ck_assert_int_eq(woken[2], 0);
	bcn_waits_free(ws); /* drops the others without calling them */
	ck_assert_int_eq(woken[1] + woken[2], 0);
}
END_TEST

START_TEST(test_prefixes_and_all)
{
	struct bcn_waits *ws = bcn_waits_new(NULL);

	reset();
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 3, "/config/", 1, on_wake, (void *)0));
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 3, "/config/web/", 1, on_wake, (void *)1));
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 3, "/other/", 1, on_wake, (void *)2));
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 3, "/config/web/color/deeper", 1, on_wake, (void *)3));
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 3, "/", 1, on_wake, (void *)4));
	bcn_wait_signal_prefixes(ws, 3, "/config/web/color", 2);
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[0], 1);
	ck_assert_int_eq(woken[1], 1);
	ck_assert_int_eq(woken[2], 0);
	ck_assert_int_eq(woken[3], 0); /* longer than the key: not a prefix */
	ck_assert_int_eq(woken[4], 1);
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 4, "x", 1, on_wake, (void *)5));
	bcn_wait_signal_all(ws, 3, 3);
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[2], 1);
	ck_assert_int_eq(woken[3], 1);
	ck_assert_int_eq(woken[5], 0); /* another space */
	bcn_waits_free(ws);
}
END_TEST

START_TEST(test_cancel)
{
	struct bcn_waits *ws = bcn_waits_new(NULL);
	struct bcn_wait *a, *b;

	reset();
	a = bcn_wait_park(ws, 0, "q", 1, on_wake, (void *)0);
	b = bcn_wait_park(ws, 0, "q", 1, on_wake, (void *)1);
	bcn_wait_signal(ws, 0, "q", 2);
	bcn_wait_cancel(a);
	bcn_wait_cancel(NULL);
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[0], 0);
	ck_assert_int_eq(woken[1], 1);
	(void)b;

	/* Cancelling the last reader frees a queue that was ready. */
	a = bcn_wait_park(ws, 0, "r", 1, on_wake, (void *)2);
	bcn_wait_signal(ws, 0, "r", 2);
	bcn_wait_cancel(a);
	ck_assert_uint_eq(bcn_waits_queues(ws, 0), 0);
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[2], 0);

	/* A wake-up that cancels a reader due in the same delivery. */
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 0, "s", 1, on_wake_cancel, (void *)3));
	victim = bcn_wait_park(ws, 0, "s", 1, on_wake, (void *)4);
	bcn_wait_signal(ws, 0, "s", 2);
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[3], 1);
	ck_assert_int_eq(woken[4], 0);
	ck_assert_uint_eq(bcn_waits_parked(ws), 0);
	bcn_waits_free(ws);
}
END_TEST

START_TEST(test_signals_from_a_wake_wait_for_the_next_delivery)
{
	struct bcn_waits *ws = bcn_waits_new(NULL);

	reset();
	reparker = ws;
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 0, "q", 9, on_wake_repark, (void *)6));
	bcn_wait_signal(ws, 0, "q", 10);
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[6], 1);
	ck_assert_int_eq(woken[7], 0);
	bcn_waits_deliver(ws);
	ck_assert_int_eq(woken[7], 1);
	bcn_waits_free(ws);
}
END_TEST

START_TEST(test_burst_wakes_once)
{
	struct event_base *base = event_base_new();
	struct bcn_waits *ws = bcn_waits_new(base);
	char name[32];

	reset();
	ck_assert_ptr_nonnull(bcn_wait_park(ws, 0, "busy", 1, on_wake, (void *)0));
	/* Many queues, so the table grows under the burst. */
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "other-%d", i);
		ck_assert_ptr_nonnull(bcn_wait_park(ws, 1, name, 1, on_wake, (void *)1));
	}
	for (uint64_t i = 0; i < 10000; i++) {
		bcn_wait_signal(ws, 0, "busy", 2 + i);
		bcn_wait_signal_prefixes(ws, 1, "busy/key", 2 + i);
	}
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(woken[0], 1);
	ck_assert_int_eq(woken[1], 0);
	ck_assert_uint_eq(bcn_waits_queues(ws, 1), 1000);
	bcn_wait_signal_all(ws, 1, 20000);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(woken[1], 1000);
	ck_assert_uint_eq(bcn_waits_parked(ws), 0);
	bcn_waits_free(ws);
	event_base_free(base);
}
END_TEST

static Suite *wait_suite(void)
{
	Suite *s = suite_create("wait");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_delivered_on_the_loop_once_per_turn);
	tcase_add_test(tc, test_index_semantics);
	tcase_add_test(tc, test_no_spurious_wakes);
	tcase_add_test(tc, test_prefixes_and_all);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_signals_from_a_wake_wait_for_the_next_delivery);
	tcase_add_test(tc, test_burst_wakes_once);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(wait_suite)
