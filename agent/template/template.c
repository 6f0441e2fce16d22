/*
 * template.c - the life of each configured template (template.h): wait for
 * a change on the store's queues, let it settle (wait.min / wait.max),
 * render, write only when the content changed, then run the command or send
 * the signal.
 *
 * Against render storms (vault#26283, consul-template#1065): a burst of
 * changes wakes a template once per loop turn (the wait primitive), every
 * wake inside wait.min pushes the render back (up to wait.max after the
 * first), unchanged output writes nothing and runs nothing, and a change
 * while the command runs is folded into one more run after it. A rendered
 * buffer is wiped when freed (bcn_mst_out), so a secret template leaves no
 * plaintext behind; its file gets 0600 unless perms says otherwise.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "template/template.h"
#include "template/model.h"
#include "template/runner.h"
#include "template/write.h"
#include "plugin/plugin.h"
#include "config/config.h"
#include "base/log.h"
#include "base/timing.h"

/* For /v1/self and /metrics. */
struct tmpl_stats {
	uint64_t renders, writes, render_errors, commands, commands_failed;
	time_t last_render, last_write;
	char last_error[256];
};

struct tmpl {
	struct bcn_templates *ts;
	const struct bcn_template_conf *conf;
	struct bcn_mst *mst;
	struct bcn_tmpl_deps deps;
	struct bcn_tmpl_watch watch;
	enum bcn_mst_escape esc;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	int sig;
	struct event *ev_render;
	uint64_t first_change_ms;   /* 0: no change waiting */
	struct bcn_cmd *cmd;
	bool rerun;                 /* the file changed while the command ran */
	struct tmpl_stats st;       /* carried over to the same destination on reload */
	char waiting[80];           /* what the first render waits for, "" once rendered */
	bool done_once;             /* a render ran to its end (written, unchanged or failed) */
};

struct bcn_templates {
	struct bcn_core *core;
	struct tmpl *t;
	size_t n;
	bool synced;
	pid_t (*child)(void *arg);
	void *child_arg;
	void (*all_rendered)(void *arg); /* once, when every template rendered once */
	size_t rendered;                 /* templates that did */
};

static void set_error(struct tmpl *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct tmpl *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->st.last_error, sizeof(t->st.last_error), fmt, ap);
	va_end(ap);
	bcn_error("template", "%s: %s", t->conf->destination, t->st.last_error);
}

static void changed(void *arg);

static void park(struct tmpl *t)
{
	t->watch.cb = changed;
	t->watch.arg = t;
	if (bcn_tmpl_park(t->ts->core, &t->deps, &t->watch) < 0)
		set_error(t, "out of memory: this template no longer follows changes");
}

static void run_command(struct tmpl *t);

static void command_done(void *arg, int status, bool timed_out, const char *tail)
{
	struct tmpl *t = arg;
	char what[96];

	t->cmd = NULL;
	if (timed_out)
		snprintf(what, sizeof(what), "was killed after %llu ms",
			 (unsigned long long)t->conf->command_timeout_ms);
	else if (status >= 0 && WIFEXITED(status))
		snprintf(what, sizeof(what), "exited with status %d", WEXITSTATUS(status));
	else
		snprintf(what, sizeof(what), "ended by signal %d", status >= 0 ? WTERMSIG(status) : 0);
	if (timed_out || status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char shown[512] = "";
		size_t n = strlen(tail);
		while (n && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
			n--;
		t->st.commands_failed++;
		/* A command run for a secret file may print that file (a config
		 * check quoting the bad line): its stderr is not logged then. */
		if (t->deps.secret && n)
			snprintf(shown, sizeof(shown), "(not shown: the template renders a secret)");
		else
			bcn_log_printable(shown, sizeof(shown), tail, n);
		set_error(t, "command %s %s%s%s", t->conf->command.v[0], what, n ? "; stderr: " : "",
			  shown);
	} else {
		bcn_info("template", "%s: command %s %s", t->conf->destination, t->conf->command.v[0], what);
	}
	if (t->rerun) {
		t->rerun = false;
		run_command(t);
	}
}

static void run_command(struct tmpl *t)
{
	char err[256];

	if (t->cmd) {
		t->rerun = true; /* one more run once this one ends: changes coalesce */
		return;
	}
	t->st.commands++;
	t->cmd = bcn_cmd_run(t->ts->core->base, t->conf->command.v, t->conf->command_timeout_ms,
			     command_done, t, err, sizeof(err));
	if (!t->cmd) {
		t->st.commands_failed++;
		set_error(t, "%s", err);
	}
}

static pid_t pid_from_file(const char *path)
{
	FILE *f = fopen(path, "re");
	long pid = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid > 1 ? (pid_t)pid : 0;
}

static void send_signal(struct tmpl *t)
{
	pid_t pid = t->conf->pid_file[0] ? pid_from_file(t->conf->pid_file)
		    : t->ts->child ? t->ts->child(t->ts->child_arg) : 0;

	if (pid <= 0 && !t->conf->pid_file[0])
		return; /* no exec child yet: it reads the file when it starts */
	if (pid <= 0) {
		set_error(t, "no process to signal (no pid in %s)", t->conf->pid_file);
		return;
	}
	if (kill(pid, t->sig) < 0)
		set_error(t, "cannot signal process %ld: %s", (long)pid, strerror(errno));
}

static void render(struct tmpl *t)
{
	struct bcn_mst_out out = { 0 };
	const char *missing = NULL;
	char err[256];
	json_t *data;
	int rc;

	park(t); /* before anything can fail: a failed render waits for the next change */
	data = bcn_tmpl_data(t->ts->core, &t->deps, &missing);
	if (!data) {
		if (missing) {
			snprintf(t->waiting, sizeof(t->waiting), "secret %.60s", missing);
			bcn_debug("template", "%s: waiting for secret %s", t->conf->destination, missing);
		} else {
			set_error(t, "out of memory building the data");
		}
		return;
	}
	rc = bcn_mst_render(t->mst, data, t->esc, &out, err, sizeof(err));
	json_decref(data); /* the secrets in it are wiped (zero-on-free jansson) */
	t->waiting[0] = 0;
	t->st.renders++;
	t->st.last_render = time(NULL);
	if (rc < 0) {
		t->st.render_errors++;
		set_error(t, "render failed, keeping the last file: %s", err);
		goto out;
	}
	if (bcn_tmpl_file_equals(t->conf->destination, out.p, out.len))
		goto out; /* same bytes: no write, no command (mtime unchanged) */
	if (bcn_tmpl_write_atomic(t->conf->destination, out.p, out.len, t->mode, t->uid, t->gid, err,
				  sizeof(err)) < 0) {
		set_error(t, "%s", err);
		goto out;
	}
	t->st.writes++;
	t->st.last_write = t->st.last_render;
	t->st.last_error[0] = 0;
	bcn_info("template", "%s: rendered (%zu bytes)", t->conf->destination, out.len);
	if (t->conf->command.n)
		run_command(t);
	else if (t->sig > 0)
		send_signal(t);
out:
	bcn_mst_out_free(&out);
	if (!t->done_once) {
		t->done_once = true;
		if (++t->ts->rendered == t->ts->n && t->ts->all_rendered)
			t->ts->all_rendered(t->ts->child_arg);
	}
}

static void render_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tmpl *t = arg;
	(void)fd;
	(void)what;
	t->first_change_ms = 0;
	render(t);
}

/* A queue moved: render no sooner than wait.min after the last change and
 * no later than wait.max after the first. */
static void changed(void *arg)
{
	struct tmpl *t = arg;
	uint64_t now = bcn_now_ms(), due;

	park(t);
	if (!t->first_change_ms)
		t->first_change_ms = now;
	due = now + t->conf->wait.min_ms;
	if (t->conf->wait.max_ms && t->first_change_ms + t->conf->wait.max_ms < due)
		due = t->first_change_ms + t->conf->wait.max_ms;
	bcn_timer_ms(t->ev_render, due > now ? due - now : 0);
}

static int init_one(struct bcn_templates *ts, struct tmpl *t, const struct bcn_template_conf *conf, size_t i)
{
	struct bcn_mst_error e;
	char path[64];

	t->ts = ts;
	t->conf = conf;
	t->uid = (uid_t)-1;
	t->gid = (gid_t)-1;
	snprintf(path, sizeof(path), "$.templates[%zu].contents", i);
	t->mst = bcn_template_parse(conf, path, &e);
	if (!t->mst) {
		bcn_error("template", "%s: %s:%u:%u: %s", conf->destination, e.file, e.line, e.col, e.msg);
		return -1;
	}
	if (bcn_tmpl_deps_add(&t->deps, t->mst) < 0)
		return -1;
	bcn_mst_escape_parse(conf->escape, &t->esc);
	t->mode = conf->perms ? conf->perms : t->deps.secret ? 0600 : 0644;
	t->sig = conf->signal[0] ? bcn_signal_parse(conf->signal) : 0;
	if (conf->user[0]) {
		struct passwd *pw = getpwnam(conf->user);
		if (pw)
			t->uid = pw->pw_uid;
	}
	if (conf->group[0]) {
		struct group *gr = getgrnam(conf->group);
		if (gr)
			t->gid = gr->gr_gid;
	}
	snprintf(t->waiting, sizeof(t->waiting), "the first sync of every source");
	t->ev_render = evtimer_new(ts->core->base, render_cb, t);
	return t->ev_render ? 0 : -1;
}

struct bcn_templates *bcn_templates_new(struct bcn_core *core)
{
	const struct bcn_config *c = core->config;
	struct bcn_templates *ts = calloc(1, sizeof(*ts));

	if (!ts)
		return NULL;
	ts->core = core;
	ts->t = calloc(c->templates.n ? c->templates.n : 1, sizeof(*ts->t));
	if (!ts->t) {
		free(ts);
		return NULL;
	}
	for (size_t i = 0; i < c->templates.n; i++) {
		ts->n++;
		if (init_one(ts, &ts->t[i], &((const struct bcn_template_conf *)c->templates.v)[i], i) < 0) {
			bcn_templates_free(ts);
			return NULL;
		}
	}
	return ts;
}

void bcn_templates_free(struct bcn_templates *ts)
{
	if (!ts)
		return;
	for (size_t i = 0; i < ts->n; i++) {
		struct tmpl *t = &ts->t[i];
		bcn_tmpl_watch_free(&t->watch);
		if (t->ev_render)
			event_free(t->ev_render);
		bcn_cmd_free(t->cmd);
		bcn_tmpl_deps_free(&t->deps);
		bcn_mst_free(t->mst);
	}
	free(ts->t);
	free(ts);
}

void bcn_templates_takeover(struct bcn_templates *ts, struct bcn_templates *old)
{
	for (size_t i = 0; ts && old && i < ts->n; i++) {
		struct tmpl *t = &ts->t[i];
		for (size_t k = 0; k < old->n; k++) {
			struct tmpl *o = &old->t[k];
			if (strcmp(o->conf->destination, t->conf->destination) != 0)
				continue;
			if (o->cmd) {
				t->cmd = o->cmd;
				o->cmd = NULL;
				bcn_cmd_rebind(t->cmd, command_done, t);
				t->rerun = o->rerun;
			}
			t->st = o->st;
			break;
		}
	}
}

void bcn_templates_synced(struct bcn_templates *ts)
{
	if (!ts || ts->synced)
		return;
	ts->synced = true;
	for (size_t i = 0; i < ts->n; i++)
		bcn_timer_ms(ts->t[i].ev_render, 0);
	if (!ts->n && ts->all_rendered)
		ts->all_rendered(ts->child_arg);
}

void bcn_templates_set_child(struct bcn_templates *ts, pid_t (*child)(void *arg),
			     void (*all_rendered)(void *arg), void *arg)
{
	if (ts) {
		ts->child = child;
		ts->all_rendered = all_rendered;
		ts->child_arg = arg;
	}
}

static json_t *when(time_t t)
{
	char buf[32];
	struct tm tm;

	if (!t || !gmtime_r(&t, &tm))
		return json_null();
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

json_t *bcn_templates_self(struct bcn_templates *ts)
{
	json_t *list = json_array();

	for (size_t i = 0; ts && list && i < ts->n; i++) {
		struct tmpl *t = &ts->t[i];
		json_t *o = json_pack("{sssosIsIsIsIsIsososs}", "destination", t->conf->destination,
				      "source", t->conf->source[0] ? json_string(t->conf->source) : json_null(),
				      "renders", (json_int_t)t->st.renders, "writes", (json_int_t)t->st.writes,
				      "render_errors", (json_int_t)t->st.render_errors,
				      "commands", (json_int_t)t->st.commands,
				      "commands_failed", (json_int_t)t->st.commands_failed,
				      "last_render", when(t->st.last_render), "last_write", when(t->st.last_write),
				      "last_error", t->st.last_error);
		if (o && t->waiting[0])
			json_object_set_new(o, "waiting_for", json_string(t->waiting));
		if (o)
			json_array_append_new(list, o);
	}
	return list;
}

/* A Prometheus label value: \ " and newline escaped. */
static void label(char *out, size_t cap, const char *s)
{
	size_t o = 0;

	for (; *s && o + 3 < cap; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			out[o++] = '\\';
			out[o++] = *s == '\n' ? 'n' : *s;
		} else {
			out[o++] = *s;
		}
	}
	out[o] = 0;
}

void bcn_templates_metrics(struct bcn_templates *ts, struct evbuffer *out)
{
	static const struct { const char *name, *help; size_t off; } ctr[] = {
		{ "renders_total", "Renders of the template", offsetof(struct tmpl, st.renders) },
		{ "writes_total", "Writes of the destination (content changed)", offsetof(struct tmpl, st.writes) },
		{ "render_errors_total", "Renders that failed", offsetof(struct tmpl, st.render_errors) },
		{ "commands_total", "Commands run after a write", offsetof(struct tmpl, st.commands) },
		{ "command_failures_total", "Commands that failed or timed out", offsetof(struct tmpl, st.commands_failed) },
	};
	char dest[512];

	if (!ts || !ts->n)
		return;
	for (size_t k = 0; k < sizeof(ctr) / sizeof(ctr[0]); k++) {
		evbuffer_add_printf(out, "# HELP beacon_template_%s %s.\n# TYPE beacon_template_%s counter\n",
				    ctr[k].name, ctr[k].help, ctr[k].name);
		for (size_t i = 0; i < ts->n; i++) {
			label(dest, sizeof(dest), ts->t[i].conf->destination);
			evbuffer_add_printf(out, "beacon_template_%s{destination=\"%s\"} %llu\n", ctr[k].name, dest,
					    (unsigned long long)*(const uint64_t *)((const char *)&ts->t[i] + ctr[k].off));
		}
	}
	evbuffer_add_printf(out, "# HELP beacon_template_last_write_timestamp_seconds When the destination was last written.\n"
			    "# TYPE beacon_template_last_write_timestamp_seconds gauge\n");
	for (size_t i = 0; i < ts->n; i++) {
		label(dest, sizeof(dest), ts->t[i].conf->destination);
		evbuffer_add_printf(out, "beacon_template_last_write_timestamp_seconds{destination=\"%s\"} %lld\n",
				    dest, (long long)ts->t[i].st.last_write);
	}
}
