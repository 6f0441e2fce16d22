/*
 * test_server.c - the request limits of the local API server: header size,
 * body size, connection count, idle timeout; the socket file's mode, the
 * refusal of a live owner, stale-file replacement; SO_PEERCRED identity;
 * accept() running out of descriptors; a parked request (answered later)
 * holding back the connection's pipelined requests, and its client closing
 * while parked noticed at once.
 * The server runs its loop in a forked child; the test talks to it with
 * plain blocking sockets, as a client would.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http/server.h"
#include "testutil.h"

static char dir[64], path[128];

/* The child's handler: /park is held until /release; /count says how many
 * parked requests were aborted; anything else answers the peer's uid. */
static struct bcn_hreq *parked;
static int aborted;

static void on_abort(void *arg)
{
	(void)arg;
	parked = NULL;
	aborted++;
}

static void handler(struct bcn_hreq *req, void *arg)
{
	const char *t = bcn_hreq_target(req, NULL);
	uid_t uid = 0;
	(void)arg;

	if (strcmp(t, "/park") == 0 && !parked) {
		parked = req;
		bcn_hreq_on_abort(req, on_abort, NULL);
		return;
	}
	if (strcmp(t, "/count") == 0) {
		evbuffer_add_printf(bcn_hreq_body(req), "{\"aborted\":%d}", aborted);
		bcn_hreq_reply(req, 200);
		return;
	}
	if (strcmp(t, "/release") == 0 && parked) {
		struct bcn_hreq *p = parked;
		parked = NULL;
		evbuffer_add_printf(bcn_hreq_body(p), "{\"parked\":true}");
		bcn_hreq_reply(p, 200);
	}
	bcn_hreq_peer(req, &uid, NULL);
	evbuffer_add_printf(bcn_hreq_body(req), "{\"uid\":%u}", (unsigned)uid);
	bcn_hreq_reply(req, 200);
}

static void mkpaths(void)
{
	snprintf(dir, sizeof(dir), "/tmp/bcn-srv-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s.sock", dir);
}

static void opts_default(struct bcn_server_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->unix_path = path;
	o->unix_mode = 0600;
	o->unix_gid = (gid_t)-1;
	o->max_connections = 64;
	o->max_header_size = 1024;
	o->max_body_size = 100;
	o->timeout_ms = 5000;
	o->cb = handler;
}

/* Fork a server child; returns its pid once the socket exists. */
static pid_t spawn(const struct bcn_server_opts *o)
{
	int ready[2];
	char c;
	ck_assert_int_eq(pipe(ready), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char err[256];
		struct event_base *base = event_base_new();
		struct bcn_server *s = bcn_server_new(base, o, err, sizeof(err));
		if (!s) {
			fprintf(stderr, "server: %s\n", err);
			_exit(3);
		}
		(void)!write(ready[1], "x", 1);
		event_base_dispatch(base);
		_exit(0);
	}
	close(ready[1]);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

static struct rlimit starved_saved;
static int starved_done_fd = -1;

static void unstarve_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	setrlimit(RLIMIT_NOFILE, &starved_saved);
	(void)!write(starved_done_fd, "y", 1);
}

/* As spawn, but the child logs to logpath and, once listening, lowers its
 * soft RLIMIT_NOFILE to its lowest free descriptor: every accept() fails
 * with EMFILE until SIGUSR1 restores the limit, which the child confirms
 * with a byte on *done. (The child itself restores it, not prlimit(2) from
 * the parent: valgrind keeps its own copy of the limit.) It exits by itself
 * after 20 s, should the test fail without stopping it. */
static pid_t spawn_starved(const struct bcn_server_opts *o, const char *logpath, int *done)
{
	int ready[2];
	char c;
	ck_assert_int_eq(pipe(ready), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char err[256];
		int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (logfd < 0 || dup2(logfd, 2) < 0)
			_exit(3);
		close(logfd);
		struct event_base *base = event_base_new();
		struct bcn_server *s = bcn_server_new(base, o, err, sizeof(err));
		if (!s) {
			fprintf(stderr, "server: %s\n", err);
			_exit(3);
		}
		signal(SIGPIPE, SIG_IGN); /* as the agent: answers to closed clients */
		struct event *unstarve = evsignal_new(base, SIGUSR1, unstarve_cb, NULL);
		struct timeval life = { 20, 0 };
		if (!unstarve || evsignal_add(unstarve, NULL) < 0)
			_exit(3);
		event_base_loopexit(base, &life);
		int lowest = open("/dev/null", O_RDONLY);
		getrlimit(RLIMIT_NOFILE, &starved_saved);
		close(lowest);
		struct rlimit rl = { (rlim_t)lowest, starved_saved.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(3);
		starved_done_fd = ready[1];
		(void)!write(ready[1], "x", 1);
		event_base_dispatch(base);
		_exit(0);
	}
	close(ready[1]);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	*done = ready[0];
	return pid;
}

/* CPU time (user + system) a process has used, in seconds. */
static double cpu_seconds(pid_t pid)
{
	char file[64], stat[1024];
	unsigned long utime = 0, stime = 0;
	snprintf(file, sizeof(file), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(file, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	/* Fields 14 and 15, counted after the ")" that ends the command name. */
	char *p = strrchr(stat, ')');
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				&utime, &stime), 2);
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static void stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(path);
	rmdir(dir);
}

static int dial(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Read until the peer closes, `want` appears, or ms pass. Returns bytes read. */
static ssize_t recv_until(int fd, char *buf, size_t cap, const char *want, int ms)
{
	size_t len = 0;
	buf[0] = '\0';
	while (len + 1 < cap) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, ms) <= 0)
			break;
		ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (want && strstr(buf, want))
			break;
	}
	return (ssize_t)len;
}

static const char GET[] = "GET /x HTTP/1.1\r\nHost: b\r\n\r\n";

START_TEST(test_basic_and_peercred)
{
	struct bcn_server_opts o;
	char buf[4096], want[32];
	mkpaths();
	opts_default(&o);
	pid_t pid = spawn(&o);
	int fd = dial();
	ck_assert_int_eq(send(fd, GET, strlen(GET), 0), (ssize_t)strlen(GET));
	snprintf(want, sizeof(want), "{\"uid\":%u}", (unsigned)getuid());
	recv_until(fd, buf, sizeof(buf), want, 2000);
	ck_assert_ptr_nonnull(strstr(buf, "200 OK"));
	ck_assert_ptr_nonnull(strstr(buf, want));
	close(fd);

	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	stop(pid);
}
END_TEST

START_TEST(test_header_limit)
{
	struct bcn_server_opts o;
	char buf[4096], big[8192];
	mkpaths();
	opts_default(&o);
	pid_t pid = spawn(&o);
	int fd = dial();
	memset(big, 'a', sizeof(big));
	int n = snprintf(big, sizeof(big), "GET /x HTTP/1.1\r\nX-Big: ");
	big[n] = 'a';
	memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
	(void)!send(fd, big, sizeof(big), MSG_NOSIGNAL);
	recv_until(fd, buf, sizeof(buf), NULL, 2000);
	/* Either an error status or a closed connection; never a 200. */
	ck_assert_ptr_null(strstr(buf, "200 OK"));
	close(fd);
	/* And the server still answers others. */
	fd = dial();
	(void)!send(fd, GET, strlen(GET), 0);
	recv_until(fd, buf, sizeof(buf), "uid", 2000);
	ck_assert_ptr_nonnull(strstr(buf, "200 OK"));
	close(fd);
	stop(pid);
}
END_TEST

START_TEST(test_body_limit)
{
	struct bcn_server_opts o;
	char buf[4096], req[2048];
	mkpaths();
	opts_default(&o);
	pid_t pid = spawn(&o);
	int fd = dial();
	int n = snprintf(req, sizeof(req), "POST /x HTTP/1.1\r\nHost: b\r\nContent-Length: 1000\r\n\r\n");
	memset(req + n, 'b', 1000);
	(void)!send(fd, req, (size_t)n + 1000, MSG_NOSIGNAL);
	recv_until(fd, buf, sizeof(buf), "\r\n\r\n", 2000);
	ck_assert_ptr_nonnull(strstr(buf, "413"));
	close(fd);
	stop(pid);
}
END_TEST

START_TEST(test_connection_limit)
{
	struct bcn_server_opts o;
	char buf[4096];
	int idle[3];
	mkpaths();
	opts_default(&o);
	o.max_connections = 3;
	pid_t pid = spawn(&o);
	for (int i = 0; i < 3; i++)
		idle[i] = dial();
	usleep(100 * 1000);
	/* The 4th connects (kernel backlog) but is not served while 3 are open. */
	int extra = dial();
	(void)!send(extra, GET, strlen(GET), 0);
	ck_assert_int_eq(recv_until(extra, buf, sizeof(buf), "uid", 300), 0);
	close(idle[0]);
	recv_until(extra, buf, sizeof(buf), "uid", 2000);
	ck_assert_ptr_nonnull(strstr(buf, "200 OK"));
	close(extra);
	close(idle[1]);
	close(idle[2]);
	/* Counting came back down: a fresh client is served at once. */
	usleep(50 * 1000);
	int again = dial();
	(void)!send(again, GET, strlen(GET), 0);
	recv_until(again, buf, sizeof(buf), "uid", 2000);
	ck_assert_ptr_nonnull(strstr(buf, "200 OK"));
	close(again);
	stop(pid);
}
END_TEST

START_TEST(test_idle_timeout)
{
	struct bcn_server_opts o;
	char buf[64];
	mkpaths();
	opts_default(&o);
	o.timeout_ms = 300;
	pid_t pid = spawn(&o);
	int fd = dial();
	(void)!send(fd, "GET /x HTTP/1.1\r\n", 17, 0); /* a stalled, partial request */
	struct pollfd p = { fd, POLLIN, 0 };
	/* Well before the 3 s bound: the server gives up on it after 300 ms. */
	ck_assert_int_eq(poll(&p, 1, 3000), 1);
	memset(buf, 0, sizeof(buf));
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
	/* Closed (0), reset, or an error status: never a success. */
	ck_assert_msg(n <= 0 || strstr(buf, "HTTP/1.1 4") != NULL, "unexpected answer: %s", buf);
	close(fd);
	stop(pid);
}
END_TEST

START_TEST(test_accept_out_of_descriptors_pauses)
{
	struct bcn_server_opts o;
	char logpath[192], log[8192], buf[4096];
	int clients[4], done;
	char c;
	mkpaths();
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	opts_default(&o);
	pid_t pid = spawn_starved(&o, logpath, &done);
	for (int i = 0; i < 4; i++)
		clients[i] = dial(); /* queued by the kernel: accept() fails with EMFILE */
	(void)!send(clients[0], GET, strlen(GET), 0);

	double cpu0 = cpu_seconds(pid);
	usleep(1500 * 1000);
	double cpu = cpu_seconds(pid) - cpu0;
	/* Without a pause, libevent retries accept() at once, forever: 100% CPU. */
	ck_assert_msg(cpu < 0.15, "the server used %.2f s of CPU in 1.5 s while out of descriptors", cpu);

	int fd = open(logpath, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ssize_t n = read(fd, log, sizeof(log) - 1);
	close(fd);
	log[n > 0 ? n : 0] = '\0';
	int lines = 0;
	for (char *p = log; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	ck_assert_msg(lines == 1, "expected one log line, got %d:\n%.2000s", lines, log);
	ck_assert_ptr_nonnull(strstr(log, strerror(EMFILE)));
	ck_assert_ptr_nonnull(strstr(log, "LimitNOFILE"));

	/* Descriptors free again: served within a pause. (A fresh client:
	 * valgrind emulates EMFILE by closing what the kernel accepted.) */
	ck_assert_int_eq(kill(pid, SIGUSR1), 0);
	ck_assert_int_eq(read(done, &c, 1), 1);
	close(done);
	for (int i = 0; i < 4; i++)
		close(clients[i]);
	int again = dial();
	(void)!send(again, GET, strlen(GET), 0);
	recv_until(again, buf, sizeof(buf), "uid", 5000);
	ck_assert_ptr_nonnull(strstr(buf, "200 OK"));
	close(again);
	unlink(logpath);
	stop(pid);
}
END_TEST

START_TEST(test_live_owner_refused_stale_replaced)
{
	struct bcn_server_opts o;
	char err[256], buf[4096];
	mkpaths();
	opts_default(&o);
	pid_t pid = spawn(&o);
	struct event_base *base = event_base_new();
	struct bcn_server *s = bcn_server_new(base, &o, err, sizeof(err));
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(err, "another agent"));
	/* The first one still serves. */
	int fd = dial();
	(void)!send(fd, GET, strlen(GET), 0);
	recv_until(fd, buf, sizeof(buf), "uid", 2000);
	ck_assert_ptr_nonnull(strstr(buf, "200 OK"));
	close(fd);
	kill(pid, SIGKILL); /* leaves a stale socket file behind */
	waitpid(pid, NULL, 0);
	ck_assert_int_eq(access(path, F_OK), 0);
	s = bcn_server_new(base, &o, err, sizeof(err));
	ck_assert_msg(s != NULL, "stale socket not replaced: %s", err);
	bcn_server_free(s);
	ck_assert_int_ne(access(path, F_OK), 0); /* removed on free */

	/* A regular file is never removed. */
	FILE *f = fopen(path, "w");
	fclose(f);
	ck_assert_ptr_null(bcn_server_new(base, &o, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "not a socket"));
	unlink(path);
	rmdir(dir);
	event_base_free(base);
}
END_TEST

/* One request on a fresh connection; the answer in buf. */
static void ask(const char *target, char *buf, size_t cap, const char *want)
{
	char req[256];
	int fd = dial();
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: b\r\n\r\n", target);
	ck_assert_int_eq(send(fd, req, (size_t)n, 0), n);
	recv_until(fd, buf, cap, want, 2000);
	close(fd);
}

START_TEST(test_parked_then_pipelined_in_order)
{
	struct bcn_server_opts o;
	char buf[4096];
	static const char two[] = "GET /park HTTP/1.1\r\nHost: b\r\n\r\nGET /x HTTP/1.1\r\nHost: b\r\n\r\n";
	mkpaths();
	opts_default(&o);
	pid_t pid = spawn(&o);
	int fd = dial();
	ck_assert_int_eq(send(fd, two, strlen(two), 0), (ssize_t)strlen(two));
	/* Nothing yet: the first is parked, the second waits behind it. */
	ck_assert_int_eq(recv_until(fd, buf, sizeof(buf), "uid", 300), 0);
	ask("/release", buf, sizeof(buf), "uid");
	ck_assert_ptr_nonnull(strstr(buf, "200 OK"));
	recv_until(fd, buf, sizeof(buf), "uid", 2000);
	char *first = strstr(buf, "parked"), *second = strstr(buf, "uid");
	ck_assert_ptr_nonnull(first);
	ck_assert_ptr_nonnull(second);
	ck_assert(first < second);
	close(fd);
	stop(pid);
}
END_TEST

START_TEST(test_parked_client_close_noticed)
{
	struct bcn_server_opts o;
	char buf[4096];
	static const char park[] = "GET /park HTTP/1.1\r\nHost: b\r\n\r\n";
	mkpaths();
	opts_default(&o);
	o.max_connections = 2;
	pid_t pid = spawn(&o);
	int fd = dial();
	ck_assert_int_eq(send(fd, park, strlen(park), 0), (ssize_t)strlen(park));
	ask("/count", buf, sizeof(buf), "}");
	ck_assert_ptr_nonnull(strstr(buf, "{\"aborted\":0}"));
	close(fd);
	/* The server hears the close while the request is parked: aborted,
	 * and its slot is free (max 2: the two asks below need it). */
	bool seen = false;
	for (int i = 0; i < 50 && !seen; i++) {
		ask("/count", buf, sizeof(buf), "}");
		seen = strstr(buf, "{\"aborted\":1}") != NULL;
		if (!seen)
			usleep(20 * 1000);
	}
	ck_assert_msg(seen, "a closed parked client was not noticed: %s", buf);
	stop(pid);
}
END_TEST

static Suite *server_suite(void)
{
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("limits");
	tcase_add_test(tc, test_basic_and_peercred);
	tcase_add_test(tc, test_header_limit);
	tcase_add_test(tc, test_body_limit);
	tcase_add_test(tc, test_connection_limit);
	tcase_add_test(tc, test_idle_timeout);
	tcase_add_test(tc, test_accept_out_of_descriptors_pauses);
	tcase_add_test(tc, test_live_owner_refused_stale_replaced);
	tcase_add_test(tc, test_parked_then_pipelined_in_order);
	tcase_add_test(tc, test_parked_client_close_noticed);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(server_suite)
