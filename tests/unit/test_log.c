/* Unit tests for log.c's complaint helpers: the rate limit, the "said once"
 * memory and the printable copy of peer-sent names. */
#include <check.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "base/log.h"

START_TEST(test_complain_burst_then_suppressed)
{
	struct bcn_complain c = { 0 };
	struct timespec pause = { 0, 60 * 1000000 };
	int written = 0;

	bcn_log_setup(BCN_LOG_ERROR, BCN_LOG_TEXT); /* keep the summary line quiet */
	for (int i = 0; i < 10; i++)
		written += bcn_complain_due(&c, 50, 3, "test", "lines");
	ck_assert_int_eq(written, 3);
	ck_assert_uint_eq(c.suppressed, 7);
	/* A new window: the count starts again (and the summary was written). */
	nanosleep(&pause, NULL);
	ck_assert(bcn_complain_due(&c, 50, 3, "test", "lines"));
	ck_assert_uint_eq(c.suppressed, 0);
	ck_assert_uint_eq(c.lines, 1);
}
END_TEST

START_TEST(test_complain_once_a_period)
{
	struct bcn_complain c = { 0 };

	/* The first complaint is always due, whatever the clock reads. */
	ck_assert(bcn_complain_due(&c, 60000, 1, "test", NULL));
	ck_assert(!bcn_complain_due(&c, 60000, 1, "test", NULL));
	ck_assert(!bcn_complain_due(&c, 60000, 1, "test", NULL));
}
END_TEST

START_TEST(test_complain_seen_remembers_the_last_slots)
{
	uint64_t ring[4];
	size_t n = 0;

	ck_assert(!bcn_complain_seen(ring, 4, &n, 1));
	ck_assert(bcn_complain_seen(ring, 4, &n, 1));
	for (uint64_t h = 2; h <= 5; h++)
		ck_assert(!bcn_complain_seen(ring, 4, &n, h));
	/* 1 was pushed out by 2..5. */
	ck_assert(!bcn_complain_seen(ring, 4, &n, 1));
	ck_assert(bcn_complain_seen(ring, 4, &n, 5));
}
END_TEST

START_TEST(test_printable_replaces_and_cuts)
{
	char out[6];

	ck_assert(!bcn_log_printable(out, sizeof(out), "a\nb\x80", 4));
	ck_assert_str_eq(out, "a?b?");
	ck_assert(bcn_log_printable(out, sizeof(out), "abcdefgh", 8));
	ck_assert_str_eq(out, "abcde");
	ck_assert(!bcn_log_printable(out, sizeof(out), "abcde", 5));
	ck_assert_str_eq(out, "abcde");
	/* len, not a NUL, ends the input: a peer's name may hold one. */
	ck_assert(!bcn_log_printable(out, sizeof(out), "a\0b", 3));
	ck_assert_int_eq(memcmp(out, "a?b", 4), 0);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("complain");
	tcase_add_test(tc, test_complain_burst_then_suppressed);
	tcase_add_test(tc, test_complain_once_a_period);
	tcase_add_test(tc, test_complain_seen_remembers_the_last_slots);
	tcase_add_test(tc, test_printable_replaces_and_cuts);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(log_suite)
