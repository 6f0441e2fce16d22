/*
 * runner.c - a template's command: argv in its own process group, killed at
 * its timeout, its exit status and last stderr lines reported (runner.h).
 *
 * posix_spawn with vfork semantics, as the exec health checks do
 * (health/check.c): the agent's pages, which may hold secrets, are never
 * copied into a forked image. The child is reaped by polling waitpid on a
 * short timer for that pid only, so no SIGCHLD handler is shared with the
 * health checks or exec mode.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "template/runner.h"
#include "base/spawn.h"


#define TAIL 1024
#define REAP_MS 20

struct bcn_cmd {
	pid_t pid;
	int fd;
	struct event *ev_read, *ev_reap, *ev_timeout;
	bool timed_out;
	char tail[TAIL + 1];
	size_t len;
	bcn_cmd_done done;
	void *arg;
};

int bcn_signal_parse(const char *s)
{
	static const struct { const char *name; int sig; } sigs[] = {
		{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
		{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "TERM", SIGTERM }, { "CONT", SIGCONT },
		{ "STOP", SIGSTOP }, { "WINCH", SIGWINCH }, { "ALRM", SIGALRM },
	};
	char *end;
	long n;

	if (!s || !*s)
		return -1;
	n = strtol(s, &end, 10);
	if (!*end)
		return n > 0 && n < NSIG ? (int)n : -1;
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (strcasecmp(s, sigs[i].name) == 0)
			return sigs[i].sig;
	return -1;
}

/* Keep the last TAIL bytes of stderr. */
static void keep(struct bcn_cmd *c, const char *p, size_t n)
{
	if (n >= TAIL) {
		memcpy(c->tail, p + n - TAIL, TAIL);
		c->len = TAIL;
		return;
	}
	if (c->len + n > TAIL) {
		size_t drop = c->len + n - TAIL;
		memmove(c->tail, c->tail + drop, c->len - drop);
		c->len -= drop;
	}
	memcpy(c->tail + c->len, p, n);
	c->len += n;
}

static void drain(struct bcn_cmd *c)
{
	char buf[4096];
	ssize_t n;

	while (c->fd >= 0 && (n = read(c->fd, buf, sizeof(buf))) > 0)
		keep(c, buf, (size_t)n);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_cmd *c = arg;
	(void)fd;
	(void)what;
	drain(c);
}

static void release(struct bcn_cmd *c)
{
	if (c->ev_read)
		event_free(c->ev_read);
	if (c->ev_reap)
		event_free(c->ev_reap);
	if (c->ev_timeout)
		event_free(c->ev_timeout);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_cmd *c = arg;
	int st = 0;
	pid_t r;
	(void)fd;
	(void)what;

	r = waitpid(c->pid, &st, WNOHANG);
	if (r == 0 || (r < 0 && errno == EINTR))
		return;
	drain(c);
	c->tail[c->len] = 0;
	c->pid = 0;
	c->done(c->arg, r < 0 ? -1 : st, c->timed_out, c->tail);
	release(c);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_cmd *c = arg;
	(void)fd;
	(void)what;
	c->timed_out = true;
	if (c->pid > 0)
		kill(-c->pid, SIGKILL);
}

struct bcn_cmd *bcn_cmd_run(struct event_base *base, char *const *argv, uint64_t timeout_ms,
			    bcn_cmd_done done, void *arg, char *err, size_t errlen)
{
	struct bcn_cmd *c = calloc(1, sizeof(*c));
	struct timeval reap = { 0, REAP_MS * 1000 };
	struct timeval tmo = { (time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000 };
	int p[2], rc;

	if (!c || pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "cannot start %s: %s", argv[0], c ? strerror(errno) : "out of memory");
		free(c);
		return NULL;
	}
	c->fd = p[0];
	c->done = done;
	c->arg = arg;
	/* stdout stays the agent's; stderr is read for the log. */
	rc = bcn_spawn(&c->pid, argv, NULL,
		       &(struct bcn_spawn_io){ .null_stdin = true, .out_fd = -1, .err_fd = p[1], .close_rest = true });
	close(p[1]);
	if (rc != 0) {
		snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(rc));
		c->pid = 0;
		release(c);
		return NULL;
	}
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	c->ev_read = event_new(base, c->fd, EV_READ | EV_PERSIST, read_cb, c);
	c->ev_reap = event_new(base, -1, EV_PERSIST, reap_cb, c);
	c->ev_timeout = evtimer_new(base, timeout_cb, c);
	if (!c->ev_read || !c->ev_reap || !c->ev_timeout) {
		kill(-c->pid, SIGKILL);
		snprintf(err, errlen, "out of memory watching %s", argv[0]);
		bcn_cmd_free(c);
		return NULL;
	}
	event_add(c->ev_read, NULL);
	event_add(c->ev_reap, &reap);
	evtimer_add(c->ev_timeout, &tmo);
	return c;
}

void bcn_cmd_rebind(struct bcn_cmd *c, bcn_cmd_done done, void *arg)
{
	c->done = done;
	c->arg = arg;
}

void bcn_cmd_free(struct bcn_cmd *c)
{
	if (!c)
		return;
	if (c->pid > 0) {
		kill(-c->pid, SIGKILL);
		waitpid(c->pid, NULL, WNOHANG); /* a zombie at worst, until the agent exits */
	}
	release(c);
}
