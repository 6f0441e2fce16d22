/* Unit tests for loop.c: the event loop's interrupt mitigation. A child
 * process writes a byte to each of n socketpairs every millisecond, like
 * clients under load; the loop's callbacks read what is there and count as
 * work the way the proxy's do. How many bytes one read finds tells whether
 * the loop napped (several) or was woken for each byte (one). */
#include <check.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "base/loop.h"

static unsigned long reads, bytes;

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf));

	(void)what;
	(void)arg;
	bcn_loop_work();
	if (n > 0) {
		reads++;
		bytes += (unsigned long)n;
	}
}

/* Bytes per read over ms milliseconds with n streams fed every 1 ms. */
static double per_read(const char *nap_us, int n, int ms)
{
	struct event_base *base = event_base_new();
	struct event *ev[2];
	int sv[2][2];
	struct timeval tv = { ms / 1000, ms % 1000 * 1000 };
	pid_t child;

	ck_assert_ptr_nonnull(base);
	setenv("BCN_LOOP_NAP_US", nap_us, 1);
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
		ev[i] = event_new(base, sv[i][0], EV_READ | EV_PERSIST, on_ready, NULL);
		event_add(ev[i], NULL);
	}
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct timespec ts = { 0, 1000000 };
		for (;;) {
			for (int i = 0; i < n; i++)
				if (write(sv[i][1], "x", 1) != 1)
					_exit(0);
			nanosleep(&ts, NULL);
		}
	}
	event_base_loopexit(base, &tv);
	reads = bytes = 0;
	ck_assert_int_eq(bcn_loop_run(base), 0);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	for (int i = 0; i < n; i++) {
		event_free(ev[i]);
		close(sv[i][0]);
		close(sv[i][1]);
	}
	event_base_free(base);
	ck_assert_uint_gt(reads, 0);
	return (double)bytes / (double)reads;
}

START_TEST(test_busy_loop_naps_instead_of_blocking)
{
	/* Two streams: every turn has two events, so the loop naps 5 ms and
	 * then finds about five bytes per stream in one read. */
	double napping = per_read("5000", 2, 300);

	ck_assert_double_ge(napping, 3.0);
}
END_TEST

START_TEST(test_one_stream_never_naps)
{
	/* One stream alone (a lone client) is served at each byte. */
	double alone = per_read("5000", 1, 300);

	ck_assert_double_le(alone, 1.5);
}
END_TEST

START_TEST(test_nap_zero_is_a_plain_loop)
{
	double plain = per_read("0", 2, 300);

	ck_assert_double_le(plain, 1.5);
}
END_TEST

static void stop_now(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

START_TEST(test_ends_on_loopbreak_and_when_empty)
{
	struct event_base *base = event_base_new();
	struct event *ev = evtimer_new(base, stop_now, base);
	struct timeval tv = { 0, 10000 };

	setenv("BCN_LOOP_NAP_US", "20", 1);
	evtimer_add(ev, &tv);
	ck_assert_int_eq(bcn_loop_run(base), 0); /* broken out of by the timer */
	ck_assert_int_eq(bcn_loop_run(base), 0); /* nothing left to wait for */
	event_free(ev);
	event_base_free(base);
}
END_TEST

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_busy_loop_naps_instead_of_blocking);
	tcase_add_test(tc, test_one_stream_never_naps);
	tcase_add_test(tc, test_nap_zero_is_a_plain_loop);
	tcase_add_test(tc, test_ends_on_loopbreak_and_when_empty);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(loop_suite)
