/*
 * exec.c - exec mode (exec.h): beacon as a supervisor, after envconsul and
 * Vault Agent's process supervisor, with their pains in mind.
 *
 * The child starts once every source has synced and every env template
 * renders (a secret not loaded yet holds the start: never an empty
 * password). Its environment is beacon's own plus the rendered values; a
 * keyed hash of it (libsodium generichash, random key) is all that is kept
 * between renders, and the rendered strings are wiped (zero-on-free). A
 * change of the environment stops the child (kill_signal, SIGKILL after
 * kill_timeout) and starts it again; restarts of a child that did not live
 * long back off (0.25 s doubling to 5 s), so a flapping value cannot make a
 * tight restart loop. When the child exits on its own, beacon reports its
 * status (128 + signal when killed) to agent.c, which deregisters and exits
 * with it. The child's exit is seen through SIGCHLD (a libevent signal
 * event) and waitpid on its pid only, so the health checks' children are
 * never reaped here. stdin, stdout and stderr are the agent's own.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "exec/exec.h"
#include "base/spawn.h"
#include "template/model.h"
#include "template/mustache.h"
#include "template/runner.h"
#include "plugin/plugin.h"
#include "config/config.h"
#include "base/log.h"
#include "base/timing.h"
#include "base/zalloc.h"

extern char **environ;

#define LIVED_LONG_MS 10000 /* a child that ran this long resets the backoff */
#define BACKOFF_MAX_MS 5000 /* short enough that a real change after a flap lands soon */

struct env_var {
	const char *name;
	struct bcn_mst *mst;
};

struct bcn_exec {
	struct bcn_core *core;
	const struct bcn_exec_conf *conf;
	struct env_var *vars;
	size_t nvars;
	struct bcn_tmpl_deps deps;
	struct bcn_tmpl_watch watch;
	enum bcn_mst_escape esc;
	int kill_sig;
	bcn_exec_exited exited;
	void *owner;
	struct event *ev_chld, *ev_kill, *ev_start;
	pid_t pid;
	bool synced, stopping, restarting;
	unsigned char key[crypto_generichash_KEYBYTES];
	unsigned char env_hash[crypto_generichash_BYTES];
	bool have_hash;
	uint64_t started_ms;
	unsigned attempts;            /* quick restarts in a row */
	uint64_t starts, restarts;
	int last_code;
	char waiting[80];
};

static void env_changed(void *arg);

static void park(struct bcn_exec *x)
{
	x->watch.cb = env_changed;
	x->watch.arg = x;
	if (bcn_tmpl_park(x->core, &x->deps, &x->watch) < 0)
		bcn_error("exec", "out of memory: the environment no longer follows changes");
}

static void free_envp(char **envp, size_t n)
{
	for (size_t i = 0; envp && i < n; i++)
		bcn_zfree(envp[i]);
	bcn_zfree(envp);
}

/* beacon's environment without the names we set, then NAME=value for each
 * rendered var; and the keyed hash of the rendered part. NULL when a
 * dependency is missing (x->waiting says which) or on error. */
static char **render_env(struct bcn_exec *x, size_t *n, unsigned char *hash)
{
	const char *missing = NULL;
	json_t *data = bcn_tmpl_data(x->core, &x->deps, &missing);
	size_t cap = x->nvars + 1, k = 0;
	crypto_generichash_state st;
	char **envp = NULL, err[200];

	if (!data) {
		snprintf(x->waiting, sizeof(x->waiting), missing ? "secret %.60s" : "memory", missing);
		return NULL;
	}
	for (char **e = environ; *e; e++)
		cap++;
	envp = bcn_zcalloc(cap, sizeof(*envp));
	if (!envp)
		goto fail;
	for (char **e = environ; *e; e++) {
		bool ours = false;
		for (size_t i = 0; i < x->nvars && !ours; i++) {
			size_t l = strlen(x->vars[i].name);
			ours = strncmp(*e, x->vars[i].name, l) == 0 && (*e)[l] == '=';
		}
		if (!ours && !(envp[k++] = bcn_zstrdup(*e)))
			goto fail;
	}
	crypto_generichash_init(&st, x->key, sizeof(x->key), crypto_generichash_BYTES);
	for (size_t i = 0; i < x->nvars; i++) {
		struct bcn_mst_out out = { 0 };
		size_t l = strlen(x->vars[i].name);
		if (bcn_mst_render(x->vars[i].mst, data, x->esc, &out, err, sizeof(err)) < 0) {
			bcn_error("exec", "env %s: %s", x->vars[i].name, err);
			bcn_mst_out_free(&out);
			goto fail;
		}
		envp[k] = bcn_zmalloc(l + out.len + 2);
		if (!envp[k]) {
			bcn_mst_out_free(&out);
			goto fail;
		}
		memcpy(envp[k], x->vars[i].name, l);
		envp[k][l] = '=';
		memcpy(envp[k] + l + 1, out.p ? out.p : "", out.len + 1);
		crypto_generichash_update(&st, (const unsigned char *)envp[k], l + out.len + 2);
		k++;
		bcn_mst_out_free(&out);
	}
	crypto_generichash_final(&st, hash, crypto_generichash_BYTES);
	json_decref(data);
	x->waiting[0] = 0;
	*n = k;
	return envp;
fail:
	json_decref(data);
	free_envp(envp, k);
	return NULL;
}

static void spawn(struct bcn_exec *x)
{
	size_t n = 0;
	unsigned char hash[crypto_generichash_BYTES];
	char **envp;
	int rc;

	if (x->pid || x->stopping || !x->synced)
		return;
	park(x);
	envp = render_env(x, &n, hash);
	if (!envp) {
		bcn_info("exec", "%s waits for %s", x->conf->command.v[0], x->waiting);
		return;
	}
	/* The app keeps beacon's stdin, stdout and stderr; its own process
	 * group: a terminal's ^C reaches beacon, which forwards it. */
	rc = bcn_spawn(&x->pid, x->conf->command.v, envp, NULL);
	free_envp(envp, n);
	if (rc != 0) {
		x->pid = 0;
		bcn_error("exec", "cannot run %s: %s", x->conf->command.v[0], strerror(rc));
		x->last_code = 127;
		x->stopping = true; /* it ended: nothing starts again */
		bcn_tmpl_unpark(&x->watch);
		if (x->exited)
			x->exited(x->owner, 127);
		return;
	}
	memcpy(x->env_hash, hash, sizeof(hash));
	x->have_hash = true;
	x->started_ms = bcn_now_ms();
	x->starts++;
	bcn_info("exec", "started %s (pid %ld)", x->conf->command.v[0], (long)x->pid);
}

static void start_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	spawn(arg);
}

static void kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_exec *x = arg;
	(void)fd;
	(void)what;
	if (x->pid > 0) {
		bcn_warn("exec", "%s did not stop within %llu ms: SIGKILL", x->conf->command.v[0],
			 (unsigned long long)x->conf->kill_timeout_ms);
		kill(-x->pid, SIGKILL);
		kill(x->pid, SIGKILL);
	}
}

/* Ask the child to stop: kill_signal now (unless just forwarded), SIGKILL later. */
static void ask_stop(struct bcn_exec *x, bool signalled)
{
	if (x->pid <= 0)
		return;
	if (!signalled)
		kill(x->pid, x->kill_sig);
	bcn_timer_ms(x->ev_kill, x->conf->kill_timeout_ms);
}

static void chld_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcn_exec *x = arg;
	int st = 0, code;
	pid_t r;
	(void)fd;
	(void)what;

	if (x->pid <= 0 || (r = waitpid(x->pid, &st, WNOHANG)) == 0)
		return; /* another child of the agent (a health check) */
	if (r < 0 && errno != ECHILD)
		return;
	code = r < 0 ? 1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	x->last_code = code;
	x->pid = 0;
	evtimer_del(x->ev_kill);
	if (x->restarting && !x->stopping) {
		/* Stopped for a new environment: start again, backing off when
		 * the last one did not live long. */
		uint64_t lived = bcn_now_ms() - x->started_ms, delay = 0;
		x->restarting = false;
		x->restarts++;
		if (lived < LIVED_LONG_MS)
			delay = bcn_backoff_ms(x->attempts++, 250, BACKOFF_MAX_MS);
		else
			x->attempts = 0;
		bcn_info("exec", "restarting %s with its new environment%s", x->conf->command.v[0],
			 delay ? " (backing off)" : "");
		bcn_timer_ms(x->ev_start, delay);
		return;
	}
	x->stopping = true; /* it ended: nothing starts again */
	bcn_tmpl_unpark(&x->watch);
	bcn_info("exec", "%s exited with %s %d", x->conf->command.v[0],
		 r >= 0 && !WIFEXITED(st) ? "signal" : "status", r >= 0 && !WIFEXITED(st) ? WTERMSIG(st) : code);
	if (x->exited)
		x->exited(x->owner, code);
}

/* A dependency moved: restart when the rendered environment differs. */
static void env_changed(void *arg)
{
	struct bcn_exec *x = arg;
	unsigned char hash[crypto_generichash_BYTES];
	size_t n = 0;
	char **envp;

	if (!x->pid) {
		if (evtimer_pending(x->ev_start, NULL))
			park(x); /* backing off: the start renders the newest env then */
		else
			spawn(x); /* waiting for its first environment */
		return;
	}
	park(x);
	if (!x->conf->restart_on_change || x->restarting || x->stopping)
		return;
	envp = render_env(x, &n, hash);
	if (!envp)
		return;
	free_envp(envp, n);
	if (x->have_hash && sodium_memcmp(hash, x->env_hash, sizeof(hash)) == 0)
		return;
	bcn_info("exec", "the environment of %s changed: stopping it", x->conf->command.v[0]);
	x->restarting = true;
	ask_stop(x, false);
}

struct bcn_exec *bcn_exec_new(struct bcn_core *core, bcn_exec_exited exited, void *owner)
{
	const struct bcn_exec_conf *conf = core->config->exec;
	struct bcn_exec *x = calloc(1, sizeof(*x));
	const char *name;
	json_t *v;

	if (!x)
		return NULL;
	x->core = core;
	x->conf = conf;
	x->exited = exited;
	x->owner = owner;
	x->kill_sig = bcn_signal_parse(conf->kill_signal);
	bcn_mst_escape_parse(conf->escape, &x->esc);
	randombytes_buf(x->key, sizeof(x->key));
	x->vars = calloc(json_object_size(conf->env) + 1, sizeof(*x->vars));
	if (!x->vars)
		goto fail;
	json_object_foreach(conf->env, name, v) {
		struct bcn_mst_error e;
		struct env_var *ev = &x->vars[x->nvars];
		ev->name = name;
		ev->mst = bcn_mst_parse(json_string_value(v), json_string_length(v), name, NULL, NULL, &e);
		if (!ev->mst) {
			bcn_error("exec", "env %s: %u:%u: %s", name, e.line, e.col, e.msg);
			goto fail;
		}
		x->nvars++;
		if (bcn_tmpl_deps_add(&x->deps, ev->mst) < 0)
			goto fail;
	}
	x->ev_chld = evsignal_new(core->base, SIGCHLD, chld_cb, x);
	x->ev_kill = evtimer_new(core->base, kill_cb, x);
	x->ev_start = evtimer_new(core->base, start_cb, x);
	if (!x->ev_chld || !x->ev_kill || !x->ev_start || evsignal_add(x->ev_chld, NULL) < 0)
		goto fail;
	snprintf(x->waiting, sizeof(x->waiting), "the first sync of every source");
	return x;
fail:
	bcn_exec_free(x);
	return NULL;
}

void bcn_exec_free(struct bcn_exec *x)
{
	if (!x)
		return;
	if (x->pid > 0) {
		kill(-x->pid, SIGKILL);
		kill(x->pid, SIGKILL);
		waitpid(x->pid, NULL, 0); /* SIGKILL: returns at once */
	}
	bcn_tmpl_watch_free(&x->watch);
	if (x->ev_chld)
		event_free(x->ev_chld);
	if (x->ev_kill)
		event_free(x->ev_kill);
	if (x->ev_start)
		event_free(x->ev_start);
	for (size_t i = 0; i < x->nvars; i++)
		bcn_mst_free(x->vars[i].mst);
	free(x->vars);
	bcn_tmpl_deps_free(&x->deps);
	sodium_memzero(x->key, sizeof(x->key));
	free(x);
}

int bcn_exec_kill(struct bcn_exec *x)
{
	int st = 0;

	if (!x || x->pid <= 0)
		return x ? x->last_code : 0;
	kill(-x->pid, SIGKILL);
	kill(x->pid, SIGKILL);
	if (waitpid(x->pid, &st, 0) == x->pid)
		x->last_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	x->pid = 0;
	return x->last_code;
}

void bcn_exec_synced(struct bcn_exec *x)
{
	if (!x || x->synced)
		return;
	x->synced = true;
	spawn(x);
}

void bcn_exec_forward(struct bcn_exec *x, int sig)
{
	if (x && x->pid > 0)
		kill(x->pid, sig);
}

void bcn_exec_stop(struct bcn_exec *x, bool signalled)
{
	if (!x)
		return;
	x->stopping = true;
	evtimer_del(x->ev_start);
	bcn_tmpl_unpark(&x->watch);
	if (x->pid > 0)
		ask_stop(x, signalled);
	else if (x->exited)
		x->exited(x->owner, x->last_code); /* nothing running (still waiting, or between restarts) */
}

pid_t bcn_exec_pid(const struct bcn_exec *x)
{
	return x ? x->pid : 0;
}

json_t *bcn_exec_self(const struct bcn_exec *x)
{
	json_t *o;

	if (!x)
		return json_null();
	o = json_pack("{sssIsIsIsbsi}", "command", x->conf->command.v[0], "pid", (json_int_t)x->pid,
		      "starts", (json_int_t)x->starts, "restarts", (json_int_t)x->restarts,
		      "restart_on_change", x->conf->restart_on_change, "last_exit_code", x->last_code);
	if (o && x->waiting[0] && !x->pid)
		json_object_set_new(o, "waiting_for", json_string(x->waiting));
	return o;
}
