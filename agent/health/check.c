/*
 * check.c - see check.h.
 *
 * exec checks use posix_spawn (vfork semantics: the agent's pages, secrets
 * included, are never copied into a child), in their own process group so a
 * timeout kills the whole tree, with every descriptor but the output pipe
 * closed. The child is reaped by polling waitpid from a short timer after its
 * output closes: no SIGCHLD handler to share with anything else.
 */
#include "health/check.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/spawn.h"
#include "http/client.h"
#include "base/log.h"
#include "plugin/plugin.h"
#include "base/timing.h"

#define OUTPUT_MAX 512


enum kind { CK_HTTP, CK_TCP, CK_EXEC };

struct bcn_check {
	struct bcn_core *core;
	const struct bcn_check_conf *conf;
	enum kind kind;
	bcn_check_cb cb;
	void *arg;
	struct event *tick;        /* next run */
	struct event *deadline;    /* the running check's timeout */
	bool running;
	enum bcn_status status, candidate;
	int streak;
	uint64_t runs;
	char output[OUTPUT_MAX];
	uint64_t last_run_ms;          /* bcn_now_ms() when the last run began */

	struct bcn_http_call *call;       /* http */
	struct bufferevent *bev;          /* tcp */
	struct evdns_base *dns;
	pid_t pid;                        /* exec */
	int pipe_fd;
	struct event *pipe_ev, *reap_ev;
	char raw[OUTPUT_MAX];             /* what the exec child printed */
	size_t outlen;
	bool timed_out;
};

static void schedule_next(struct bcn_check *c)
{
	bcn_timer_ms(c->tick, c->conf->interval_ms);
}

/* Keep printable output only: it lands in /v1/self JSON and in logs. */
static void set_output(struct bcn_check *c, const char *s, size_t len)
{
	size_t j = 0;
	for (size_t i = 0; i < len && j + 1 < sizeof(c->output); i++)
		c->output[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : ' ';
	while (j > 0 && c->output[j - 1] == ' ')
		j--;
	c->output[j] = '\0';
}

static void finish(struct bcn_check *c, enum bcn_status r)
{
	int need;

	c->running = false;
	evtimer_del(c->deadline);
	c->runs++;
	if (r == c->status) {
		c->streak = 0;
	} else {
		if (r == c->candidate)
			c->streak++;
		else {
			c->candidate = r;
			c->streak = 1;
		}
		need = (int)(r == BCN_PASSING ? c->conf->rise : c->conf->fall);
		if (c->streak >= need) {
			bcn_info("check", "status %s -> %s: %s", bcn_status_name(c->status),
				 bcn_status_name(r), c->output);
			c->status = r;
			c->streak = 0;
			c->cb(r, c->arg);
		}
	}
	schedule_next(c);
}

/* ---- http ----------------------------------------------------------------- */

static void http_done(const struct bcn_http_response *res, void *arg)
{
	struct bcn_check *c = arg;
	char head[64], body[256];
	size_t n = 0;
	enum bcn_status r;

	c->call = NULL;
	if (res->error) {
		set_output(c, res->error_msg, strlen(res->error_msg));
		finish(c, BCN_CRITICAL);
		return;
	}
	if (res->body)
		n = (size_t)evbuffer_copyout(res->body, body, sizeof(body));
	r = res->status >= 200 && res->status < 300 ? BCN_PASSING :
	    res->status == 429 ? BCN_WARNING : BCN_CRITICAL;
	int hl = snprintf(head, sizeof(head), "HTTP %ld%s", res->status, n ? ": " : "");
	char out[sizeof(head) + sizeof(body)];
	memcpy(out, head, (size_t)hl);
	memcpy(out + hl, body, n);
	set_output(c, out, (size_t)hl + n);
	finish(c, r);
}

static void run_http(struct bcn_check *c)
{
	struct bcn_http_opts o;
	memset(&o, 0, sizeof(o));
	o.url = c->conf->http;
	o.timeout_ms = c->conf->timeout_ms;
	o.connect_timeout_ms = c->conf->timeout_ms;
	o.max_body = 64 * 1024;
	o.on_done = http_done;
	o.arg = c;
	c->call = bcn_http_start(c->core->http, &o);
	if (!c->call) {
		set_output(c, "could not start the HTTP request", 32);
		finish(c, BCN_CRITICAL);
	}
}

/* ---- tcp ------------------------------------------------------------------ */

static void tcp_event(struct bufferevent *bev, short what, void *arg)
{
	struct bcn_check *c = arg;
	char msg[160];
	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		snprintf(msg, sizeof(msg), "TCP connect to %s: ok", c->conf->tcp);
		set_output(c, msg, strlen(msg));
	} else {
		int err = EVUTIL_SOCKET_ERROR();
		int dnserr = bufferevent_socket_get_dns_error(c->bev);
		snprintf(msg, sizeof(msg), "TCP connect to %s: %s", c->conf->tcp,
			 dnserr ? evutil_gai_strerror(dnserr) : evutil_socket_error_to_string(err));
		set_output(c, msg, strlen(msg));
	}
	bufferevent_free(c->bev);
	c->bev = NULL;
	finish(c, (what & BEV_EVENT_CONNECTED) ? BCN_PASSING : BCN_CRITICAL);
}

static void run_tcp(struct bcn_check *c)
{
	char host[256];
	const char *colon = strrchr(c->conf->tcp, ':');
	size_t hl = colon ? (size_t)(colon - c->conf->tcp) : 0;
	int port = colon ? atoi(colon + 1) : 0;

	if (hl >= sizeof(host))
		hl = sizeof(host) - 1;
	memcpy(host, c->conf->tcp, hl);
	host[hl] = '\0';
	if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	if (!c->dns)
		c->dns = evdns_base_new(c->core->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
					EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	c->bev = bufferevent_socket_new(c->core->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		set_output(c, "out of memory", 13);
		finish(c, BCN_CRITICAL);
		return;
	}
	bufferevent_setcb(c->bev, NULL, NULL, tcp_event, c);
	/* On failure the event callback has already reported it. */
	bufferevent_socket_connect_hostname(c->bev, c->dns, AF_UNSPEC, host, port);
}

/* ---- exec ----------------------------------------------------------------- */

static void exec_cleanup(struct bcn_check *c)
{
	if (c->pipe_ev) {
		event_free(c->pipe_ev);
		c->pipe_ev = NULL;
	}
	if (c->pipe_fd >= 0) {
		close(c->pipe_fd);
		c->pipe_fd = -1;
	}
	if (c->reap_ev)
		evtimer_del(c->reap_ev);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_check *c = arg;
	struct timeval tv = { 0, 5000 };
	char msg[96];
	int st = 0;
	(void)fd;
	(void)what;
	pid_t r = waitpid(c->pid, &st, WNOHANG);
	if (r == 0) {
		evtimer_add(c->reap_ev, &tv); /* output closed, process not gone yet */
		return;
	}
	c->pid = 0;
	exec_cleanup(c);
	if (c->timed_out) {
		snprintf(msg, sizeof(msg), "timed out after %llu ms and was killed",
			 (unsigned long long)c->conf->timeout_ms);
		set_output(c, msg, strlen(msg));
		finish(c, BCN_CRITICAL);
		return;
	}
	if (r < 0 || !WIFEXITED(st)) {
		snprintf(msg, sizeof(msg), "ended by signal %d", r < 0 ? 0 : WTERMSIG(st));
		set_output(c, msg, strlen(msg));
		finish(c, BCN_CRITICAL);
		return;
	}
	if (c->outlen) {
		set_output(c, c->raw, c->outlen);
	} else {
		snprintf(msg, sizeof(msg), "exit status %d", WEXITSTATUS(st));
		set_output(c, msg, strlen(msg));
	}
	finish(c, WEXITSTATUS(st) == 0 ? BCN_PASSING : WEXITSTATUS(st) == 1 ? BCN_WARNING : BCN_CRITICAL);
}

static void pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_check *c = arg;
	char buf[1024];
	(void)what;
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n > 0) {
		size_t room = sizeof(c->raw) - c->outlen;
		size_t take = (size_t)n < room ? (size_t)n : room;
		memcpy(c->raw + c->outlen, buf, take);
		c->outlen += take;
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EOF: the child closed its output, usually by exiting. */
	event_free(c->pipe_ev);
	c->pipe_ev = NULL;
	close(c->pipe_fd);
	c->pipe_fd = -1;
	reap_cb(-1, 0, c);
}

static void run_exec(struct bcn_check *c)
{
	int p[2];
	char *const *argv = (char *const *)c->conf->exec.v;
	int rc;

	if (pipe2(p, O_CLOEXEC) < 0) {
		set_output(c, "cannot create a pipe", 20);
		finish(c, BCN_CRITICAL);
		return;
	}
	rc = bcn_spawn(&c->pid, argv, NULL,
		       &(struct bcn_spawn_io){ .null_stdin = true, .out_fd = p[1], .err_fd = p[1], .close_rest = true });
	close(p[1]);
	if (rc != 0) {
		char msg[300];
		close(p[0]);
		c->pid = 0;
		snprintf(msg, sizeof(msg), "cannot run %s: %s", argv[0], strerror(rc));
		set_output(c, msg, strlen(msg));
		finish(c, BCN_CRITICAL);
		return;
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	c->pipe_fd = p[0];
	c->outlen = 0;
	c->timed_out = false;
	c->pipe_ev = event_new(c->core->base, p[0], EV_READ | EV_PERSIST, pipe_cb, c);
	if (c->pipe_ev)
		event_add(c->pipe_ev, NULL);
}

/* ---- scheduling ----------------------------------------------------------- */

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_check *c = arg;
	char msg[128];
	(void)fd;
	(void)what;
	switch (c->kind) {
	case CK_EXEC:
		/* Kill the group; reap_cb reports once it is gone. */
		c->timed_out = true;
		if (c->pid > 0)
			kill(-c->pid, SIGKILL);
		if (c->pipe_ev) {
			event_free(c->pipe_ev);
			c->pipe_ev = NULL;
			close(c->pipe_fd);
			c->pipe_fd = -1;
		}
		reap_cb(-1, 0, c);
		return;
	case CK_TCP:
		if (c->bev) {
			bufferevent_free(c->bev);
			c->bev = NULL;
		}
		break;
	case CK_HTTP:
		/* libcurl enforces the timeout itself; this is a backstop. */
		bcn_http_cancel(c->call);
		c->call = NULL;
		break;
	}
	snprintf(msg, sizeof(msg), "timed out after %llu ms", (unsigned long long)c->conf->timeout_ms);
	set_output(c, msg, strlen(msg));
	finish(c, BCN_CRITICAL);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_check *c = arg;
	/* HTTP has its own timeout; others get ours (plus slack for HTTP). */
	uint64_t ms = c->conf->timeout_ms + (c->kind == CK_HTTP ? 1000 : 0);
	(void)fd;
	(void)what;
	if (c->running)
		return;
	c->running = true;
	c->last_run_ms = bcn_now_ms();
	bcn_timer_ms(c->deadline, ms);
	switch (c->kind) {
	case CK_HTTP: run_http(c); break;
	case CK_TCP:  run_tcp(c); break;
	case CK_EXEC: run_exec(c); break;
	}
}

struct bcn_check *bcn_check_new(struct bcn_core *core, const struct bcn_check_conf *conf,
				bcn_check_cb cb, void *arg)
{
	struct bcn_check *c = calloc(1, sizeof(*c));
	struct timeval now = { 0, 0 };

	if (!c)
		return NULL;
	c->core = core;
	c->conf = conf;
	c->cb = cb;
	c->arg = arg;
	c->pipe_fd = -1;
	c->status = c->candidate = BCN_CRITICAL;
	snprintf(c->output, sizeof(c->output), "not checked yet");
	c->kind = conf->http[0] ? CK_HTTP : conf->tcp[0] ? CK_TCP : CK_EXEC;
	c->tick = evtimer_new(core->base, tick_cb, c);
	c->deadline = evtimer_new(core->base, deadline_cb, c);
	c->reap_ev = evtimer_new(core->base, reap_cb, c);
	if (!c->tick || !c->deadline || !c->reap_ev) {
		bcn_check_free(c);
		return NULL;
	}
	evtimer_add(c->tick, &now); /* first run right away */
	return c;
}

void bcn_check_free(struct bcn_check *c)
{
	if (!c)
		return;
	if (c->call)
		bcn_http_cancel(c->call);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->pid > 0) {
		int st;
		kill(-c->pid, SIGKILL);
		waitpid(c->pid, &st, 0);
	}
	exec_cleanup(c);
	if (c->tick) event_free(c->tick);
	if (c->deadline) event_free(c->deadline);
	if (c->reap_ev) event_free(c->reap_ev);
	if (c->dns)
		evdns_base_free(c->dns, 0);
	free(c);
}

enum bcn_status bcn_check_status(const struct bcn_check *c)
{
	return c->status;
}

json_t *bcn_check_self(const struct bcn_check *c)
{
	static const char *const kinds[] = { "http", "tcp", "exec" };
	const char *target = c->kind == CK_HTTP ? c->conf->http : c->kind == CK_TCP ? c->conf->tcp : c->conf->exec.v[0];
	json_int_t ago = -1;

	if (c->runs)
		ago = (json_int_t)(bcn_now_ms() - c->last_run_ms);
	return json_pack("{sssssssssIsIsIsI}", "type", kinds[c->kind], "target", target,
			 "status", bcn_status_name(c->status), "output", c->output,
			 "runs", (json_int_t)c->runs, "last_run_ms_ago", ago,
			 "interval_ms", (json_int_t)c->conf->interval_ms,
			 "streak", (json_int_t)c->streak);
}
