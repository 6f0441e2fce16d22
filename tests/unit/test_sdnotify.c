/*
 * test_sdnotify.c - the sd_notify client against a real datagram socket.
 *
 * Each test plays systemd's part: it binds an AF_UNIX datagram socket (a file
 * in a fresh temp dir, or an abstract name), points $NOTIFY_SOCKET at it and
 * reads back exactly what the agent sent. No systemd is needed. A checked
 * fixture clears the variables first, so the tests also hold under CK_FORK=no
 * (valgrind), where the environment is shared between tests.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/sdnotify.h"
#include "testutil.h"

static char tmpdir[64];
static char sock_path[128];
static int rx_fd = -1;

static void clear_env(void)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

static void setup(void)
{
	clear_env();
	tmpdir[0] = sock_path[0] = '\0';
	rx_fd = -1;
}

static void teardown(void)
{
	if (rx_fd >= 0)
		close(rx_fd);
	rx_fd = -1;
	if (sock_path[0])
		unlink(sock_path);
	if (tmpdir[0])
		rmdir(tmpdir);
	clear_env();
}

/* Bind a datagram socket at `name` ("/path" or "@abstract"); a 2s receive
 * timeout turns a lost datagram into a failed assertion instead of a hang. */
static int bind_receiver(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 2 };
	size_t n = strlen(name);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	int fd;

	ck_assert_uint_lt(n, sizeof(sa.sun_path));
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(bind(fd, (struct sockaddr *)&sa, len) == 0, "bind %s: %s", name,
		      strerror(errno));
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

/* A socket file in a fresh temp dir, with $NOTIFY_SOCKET pointing at it. */
static void listen_on_path(void)
{
	strcpy(tmpdir, "/tmp/bcn-sdnotify-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(sock_path, sizeof(sock_path), "%s/notify", tmpdir);
	rx_fd = bind_receiver(sock_path);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", sock_path, 1), 0);
}

static void expect_datagram(const char *want)
{
	char buf[2048];
	ssize_t n = recvfrom(rx_fd, buf, sizeof(buf), 0, NULL, NULL);

	ck_assert_msg(n >= 0, "recvfrom: %s", strerror(errno));
	ck_assert_int_eq(n, (ssize_t)strlen(want));
	ck_assert(memcmp(buf, want, (size_t)n) == 0);
}

START_TEST(test_path_socket_gets_exact_bytes)
{
	listen_on_path();
	ck_assert_int_eq(bcn_sd_notify("READY=1\nSTATUS=x"), 1);
	expect_datagram("READY=1\nSTATUS=x");

	/* The variable stays set: the agent notifies many times. */
	ck_assert_str_eq(getenv("NOTIFY_SOCKET"), sock_path);
	ck_assert_int_eq(bcn_sd_notify("WATCHDOG=1"), 1);
	expect_datagram("WATCHDOG=1");
}
END_TEST

START_TEST(test_abstract_socket)
{
	char name[64];

	snprintf(name, sizeof(name), "@beacon-test-sdnotify-%ld", (long)getpid());
	rx_fd = bind_receiver(name);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
	ck_assert_int_eq(bcn_sd_notify("READY=1\nSTATUS=x"), 1);
	expect_datagram("READY=1\nSTATUS=x");
}
END_TEST

START_TEST(test_notifyf_formats)
{
	char big[1200], want[1300];

	listen_on_path();
	ck_assert_int_eq(bcn_sd_notifyf("STATUS=%d endpoints for %s", 3, "payments"), 1);
	expect_datagram("STATUS=3 endpoints for payments");

	/* Longer than notifyf's stack buffer: takes the heap path. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(want, sizeof(want), "STATUS=%s", big);
	ck_assert_int_eq(bcn_sd_notifyf("STATUS=%s", big), 1);
	expect_datagram(want);
}
END_TEST

START_TEST(test_not_under_systemd_returns_0)
{
	ck_assert_int_eq(bcn_sd_notify("READY=1"), 0);
	ck_assert_int_eq(bcn_sd_notifyf("STATUS=%s", "x"), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", "", 1), 0);
	ck_assert_int_eq(bcn_sd_notify("READY=1"), 0);
}
END_TEST

START_TEST(test_bad_socket_returns_error)
{
	char longpath[200];

	setenv("NOTIFY_SOCKET", "/nonexistent-beacon-dir/notify", 1);
	errno = 0;
	ck_assert_int_eq(bcn_sd_notify("READY=1"), -1);
	ck_assert_int_eq(errno, ENOENT);

	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	ck_assert_int_eq(bcn_sd_notify("READY=1"), -1);
	ck_assert_int_eq(errno, EINVAL);

	setenv("NOTIFY_SOCKET", "@", 1);
	ck_assert_int_eq(bcn_sd_notify("READY=1"), -1);
	ck_assert_int_eq(errno, EINVAL);

	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longpath, 1);
	ck_assert_int_eq(bcn_sd_notify("READY=1"), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
}
END_TEST

START_TEST(test_socket_without_reader_returns_error)
{
	listen_on_path();
	close(rx_fd); /* the file stays, nobody reads it: systemd went away */
	rx_fd = -1;
	ck_assert_int_eq(bcn_sd_notify("READY=1"), -1);
	ck_assert_int_eq(errno, ECONNREFUSED);
}
END_TEST

START_TEST(test_empty_state_is_error)
{
	listen_on_path();
	ck_assert_int_eq(bcn_sd_notify(""), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(bcn_sd_notify(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_watchdog_usec)
{
	char pid[32];

	ck_assert_uint_eq(bcn_sd_watchdog_usec(), 0);

	setenv("WATCHDOG_USEC", "30000000", 1);
	ck_assert_uint_eq(bcn_sd_watchdog_usec(), 30000000);

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	ck_assert_uint_eq(bcn_sd_watchdog_usec(), 30000000);

	/* Meant for another process (we are a child that inherited it). */
	snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	ck_assert_uint_eq(bcn_sd_watchdog_usec(), 0);
	setenv("WATCHDOG_PID", "not-a-pid", 1);
	ck_assert_uint_eq(bcn_sd_watchdog_usec(), 0);
	setenv("WATCHDOG_PID", "", 1);
	ck_assert_uint_eq(bcn_sd_watchdog_usec(), 0);
	unsetenv("WATCHDOG_PID");

	setenv("WATCHDOG_USEC", "18446744073709551615", 1);
	ck_assert(bcn_sd_watchdog_usec() == UINT64_MAX);

	/* PID alone is not a watchdog. */
	unsetenv("WATCHDOG_USEC");
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	ck_assert_uint_eq(bcn_sd_watchdog_usec(), 0);
}
END_TEST

START_TEST(test_watchdog_usec_rejects_garbage)
{
	static const char *const bad[] = {
		"", "0", "-1", " 5", "5 ", "5s", "abc", "18446744073709551616",
		"99999999999999999999999",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		ck_assert_msg(bcn_sd_watchdog_usec() == 0, "WATCHDOG_USEC=\"%s\" accepted", bad[i]);
	}
}
END_TEST

static Suite *sdnotify_suite(void)
{
	Suite *s = suite_create("sdnotify");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_path_socket_gets_exact_bytes);
	tcase_add_test(tc, test_abstract_socket);
	tcase_add_test(tc, test_notifyf_formats);
	tcase_add_test(tc, test_not_under_systemd_returns_0);
	tcase_add_test(tc, test_bad_socket_returns_error);
	tcase_add_test(tc, test_socket_without_reader_returns_error);
	tcase_add_test(tc, test_empty_state_is_error);
	tcase_add_test(tc, test_watchdog_usec);
	tcase_add_test(tc, test_watchdog_usec_rejects_garbage);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(sdnotify_suite)
