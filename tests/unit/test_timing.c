/* Unit tests for timing.c: the monotonic clock, retry delays and millisecond timers. */
#include <check.h>
#include <event2/event.h>
#include <time.h>

#include "testutil.h"
#include "base/timing.h"

START_TEST(test_backoff_grows_caps_and_jitters)
{
	uint64_t lo = UINT64_MAX, hi = 0;

	for (int i = 0; i < 2000; i++) {
		uint64_t ms = bcn_backoff_ms(0, 100, 10000);
		lo = ms < lo ? ms : lo;
		hi = ms > hi ? ms : hi;
	}
	/* +-20% around the base, and really spread (not a constant). */
	ck_assert_uint_ge(lo, 80);
	ck_assert_uint_le(hi, 120);
	ck_assert_uint_lt(lo, 90);
	ck_assert_uint_gt(hi, 110);
	for (unsigned a = 1; a < 6; a++) {
		uint64_t ms = bcn_backoff_ms(a, 100, 10000), mid = 100u << a;
		ck_assert_uint_ge(ms, mid * 80 / 100);
		ck_assert_uint_le(ms, mid * 120 / 100);
	}
	/* Capped, also for attempt counts that would overflow a shift. */
	for (unsigned a = 7; a < 200; a += 13) {
		uint64_t ms = bcn_backoff_ms(a, 250, 10000);
		ck_assert_uint_ge(ms, 8000);
		ck_assert_uint_le(ms, 12000);
	}
	ck_assert_uint_le(bcn_backoff_ms(UINT32_MAX, 100, 10000), 12000);
}
END_TEST

START_TEST(test_now_is_monotonic_ms_and_us)
{
	struct timespec pause = { 0, 20 * 1000000 };
	uint64_t us0 = bcn_now_us(), ms0 = bcn_now_ms(), us1, ms1;

	/* The two read one clock: ms is us / 1000 (one may tick in between). */
	ck_assert_uint_le(us0 / 1000, ms0);
	ck_assert_uint_le(ms0, us0 / 1000 + 1);
	nanosleep(&pause, NULL);
	us1 = bcn_now_us();
	ms1 = bcn_now_ms();
	ck_assert_uint_ge(us1 - us0, 20000);
	ck_assert_uint_ge(ms1 - ms0, 19);
	ck_assert_uint_lt(ms1 - ms0, 5000);
}
END_TEST

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	++*(int *)arg;
}

START_TEST(test_timer_ms)
{
	struct timeval tv = bcn_tv_ms(61500);
	ck_assert_int_eq(tv.tv_sec, 61);
	ck_assert_int_eq(tv.tv_usec, 500000);

	struct event_base *base = event_base_new();
	int fired = 0;
	struct event *ev = evtimer_new(base, on_timer, &fired);
	ck_assert_int_eq(bcn_timer_ms(ev, 20), 0);
	ck_assert(evtimer_pending(ev, NULL));
	event_base_dispatch(base);
	ck_assert_int_eq(fired, 1);
	event_free(ev);
	event_base_free(base);
}
END_TEST

static Suite *timing_suite(void)
{
	Suite *s = suite_create("timing");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_backoff_grows_caps_and_jitters);
	tcase_add_test(tc, test_timer_ms);
	tcase_add_test(tc, test_now_is_monotonic_ms_and_us);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(timing_suite)
