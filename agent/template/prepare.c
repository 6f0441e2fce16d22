/*
 * prepare.c - the config rules of "templates" and "exec" that need the
 * template engine (config.c has their tables; it sits below template/ and
 * cannot parse a template).
 *
 * Run right after bcn_config_load (--check-config, start, reload): every
 * template parses (errors with line:column), the escape and signal names
 * are known, user and group exist, every secret a template names is
 * declared under vault.secrets, and the services and keys templates name
 * join watch.services and watch.kv, so the registries fetch them.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/template.h"
#include "template/files.h"
#include "template/model.h"
#include "template/runner.h"
#include "config/config.h"
#include "plugin/plugin.h"

static const char *str(const char *s)
{
	return s ? s : "";
}

/* The names under vault.secrets (the section's raw JSON; NULL without vault). */
static json_t *vault_secrets(const struct bcn_config *c)
{
	for (size_t i = 0; i < c->nsection_keys; i++)
		if (strcmp(c->section_key[i], "vault") == 0)
			return json_object_get(c->section_json[i], "secrets");
	return NULL;
}

static bool secret_declared(const struct bcn_config *c, const char *name)
{
	json_t *list = vault_secrets(c), *s;
	size_t i;

	json_array_foreach(list, i, s)
		if (json_is_string(json_object_get(s, "name")) &&
		    strcmp(json_string_value(json_object_get(s, "name")), name) == 0)
			return true;
	return false;
}

static bool have_registry(const struct bcn_config *c)
{
	for (size_t i = 0; i < c->ninstances; i++)
		if (c->instances[i].plugin->kind == BCN_PLUGIN_REGISTRY)
			return true;
	return false;
}

static bool kv_covered(const struct bcn_strlist *kv, const char *key)
{
	for (size_t i = 0; i < kv->n; i++)
		if (strncmp(key, kv->v[i], strlen(kv->v[i])) == 0)
			return true;
	return false;
}

static int strlist_add(struct bcn_strlist *l, const char *s)
{
	/* One slot more, NULL-terminated, as cfgmap.c keeps its lists. */
	char **nv = realloc(l->v, (l->n + 2) * sizeof(*nv));

	if (!nv)
		return -1;
	l->v = nv;
	if (!(l->v[l->n] = strdup(s)))
		return -1;
	l->v[++l->n] = NULL;
	return 0;
}

/* What the templates' names ask of the config: declared secrets, watches. */
static void deps_rules(struct bcn_config *c, const struct bcn_tmpl_deps *d, const char *path,
		       struct bcn_cfg_errs *errs)
{
	bool reg = have_registry(c);

	for (size_t i = 0; i < d->n; i++) {
		const struct bcn_tmpl_dep *dep = &d->v[i];
		switch (dep->kind) {
		case BCN_REF_SECRET:
			if (!secret_declared(c, dep->arg))
				bcn_cfg_err(errs, path, "the template uses secret \"%.60s\", which is not declared under vault.secrets",
					    dep->arg);
			break;
		case BCN_REF_SERVICE:
			if (reg && !bcn_strlist_has(&c->watch.services, dep->arg) &&
			    strlist_add(&c->watch.services, dep->arg) < 0)
				bcn_cfg_err(errs, path, "out of memory");
			break;
		case BCN_REF_KEY:
			if (reg && !kv_covered(&c->watch.kv, dep->arg) && strlist_add(&c->watch.kv, dep->arg) < 0)
				bcn_cfg_err(errs, path, "out of memory");
			break;
		default:
			break;
		}
	}
}

static void parse_error(struct bcn_cfg_errs *errs, const char *path, const struct bcn_mst_error *e)
{
	if (e->line)
		bcn_cfg_err(errs, path, "%s:%u:%u: %s", e->file, e->line, e->col, e->msg);
	else
		bcn_cfg_err(errs, path, "%s", e->msg);
}

struct bcn_mst *bcn_template_parse(const struct bcn_template_conf *t, const char *path,
				   struct bcn_mst_error *err)
{
	if (str(t->source)[0])
		return bcn_tmpl_parse_file(t->source, err);
	return bcn_mst_parse(str(t->contents), strlen(str(t->contents)), path, NULL, NULL, err);
}

static void prepare_template(struct bcn_config *c, struct bcn_template_conf *t, size_t i,
			     struct bcn_cfg_errs *errs)
{
	char path[64], cpath[80];
	enum bcn_mst_escape esc;
	struct bcn_mst_error e;
	struct bcn_tmpl_deps d = { 0 };
	struct bcn_mst *m;

	snprintf(path, sizeof(path), "$.templates[%zu]", i);
	if (!!str(t->source)[0] == !!str(t->contents)[0]) {
		bcn_cfg_err(errs, path, "give exactly one of \"source\" (a file) or \"contents\"");
		return;
	}
	if (!bcn_mst_escape_parse(str(t->escape), &esc))
		bcn_cfg_err(errs, path, "escape is none, html or json (got \"%.20s\")", str(t->escape));
	if (str(t->signal)[0] && bcn_signal_parse(t->signal) < 0)
		bcn_cfg_err(errs, path, "unknown signal \"%.20s\" (e.g. \"SIGHUP\")", t->signal);
	if (str(t->signal)[0] && !str(t->pid_file)[0] && !c->exec)
		bcn_cfg_err(errs, path, "\"signal\" needs \"pid_file\" (or exec mode, whose child gets it)");
	if (str(t->pid_file)[0] && !str(t->signal)[0])
		bcn_cfg_err(errs, path, "\"pid_file\" without \"signal\" does nothing");
	if (t->command.n && str(t->signal)[0])
		bcn_cfg_err(errs, path, "give \"command\" or \"signal\", not both");
	if (str(t->user)[0] && !getpwnam(t->user))
		bcn_cfg_err(errs, path, "no such user \"%.40s\"", t->user);
	if (str(t->group)[0] && !getgrnam(t->group))
		bcn_cfg_err(errs, path, "no such group \"%.40s\"", t->group);
	if (t->perms & ~07777u)
		bcn_cfg_err(errs, path, "perms is an octal mode like \"0640\"");
	snprintf(cpath, sizeof(cpath), "%s.contents", path);
	m = bcn_template_parse(t, cpath, &e);
	if (!m) {
		parse_error(errs, path, &e);
		return;
	}
	if (bcn_tmpl_deps_add(&d, m) < 0)
		bcn_cfg_err(errs, path, "out of memory");
	deps_rules(c, &d, path, errs);
	bcn_tmpl_deps_free(&d);
	bcn_mst_free(m);
}

static void prepare_exec(struct bcn_config *c, struct bcn_cfg_errs *errs)
{
	struct bcn_exec_conf *x = c->exec;
	struct bcn_tmpl_deps d = { 0 };
	enum bcn_mst_escape esc;
	const char *name;
	json_t *v;

	if (!x->command.n)
		bcn_cfg_err(errs, "$.exec.command", "exec needs a command (or `beacon agent -c FILE -- CMD ARGS`)");
	if (bcn_signal_parse(str(x->kill_signal)) < 0)
		bcn_cfg_err(errs, "$.exec.kill_signal", "unknown signal \"%.20s\" (e.g. \"SIGTERM\")",
			    str(x->kill_signal));
	if (!bcn_mst_escape_parse(str(x->escape), &esc))
		bcn_cfg_err(errs, "$.exec.escape", "escape is none, html or json");
	if (x->env && !json_is_object(x->env)) {
		bcn_cfg_err(errs, "$.exec.env", "env is an object of NAME: template strings");
		return;
	}
	json_object_foreach(x->env, name, v) {
		char path[128];
		struct bcn_mst_error e;
		struct bcn_mst *m;

		snprintf(path, sizeof(path), "$.exec.env.%.60s", name);
		if (!json_is_string(v)) {
			bcn_cfg_err(errs, path, "an env value is a string (a template)");
			continue;
		}
		if (!name[0] || strchr(name, '=')) {
			bcn_cfg_err(errs, path, "not a variable name");
			continue;
		}
		m = bcn_mst_parse(json_string_value(v), json_string_length(v), path, NULL, NULL, &e);
		if (!m) {
			parse_error(errs, path, &e);
			continue;
		}
		if (bcn_tmpl_deps_add(&d, m) < 0)
			bcn_cfg_err(errs, path, "out of memory");
		bcn_mst_free(m);
	}
	deps_rules(c, &d, "$.exec.env", errs);
	bcn_tmpl_deps_free(&d);
}

/* `agent -- CMD ARGS`: the command line wins over exec.command. */
static int exec_from_argv(struct bcn_config *c, char *const *argv)
{
	struct bcn_exec_conf *x = c->exec;
	size_t n = 0;

	if (!x) {
		x = c->exec = calloc(1, sizeof(*x));
		if (!x || !(x->kill_signal = strdup("SIGTERM")) || !(x->escape = strdup("none")))
			return -1;
		x->restart_on_change = true;
		x->kill_timeout_ms = 10000;
	}
	for (size_t i = 0; i < x->command.n; i++)
		free(x->command.v[i]);
	free(x->command.v);
	x->command.v = NULL;
	x->command.n = 0;
	while (argv[n])
		n++;
	for (size_t i = 0; i < n; i++)
		if (strlist_add(&x->command, argv[i]) < 0)
			return -1;
	return 0;
}

void bcn_templates_prepare(struct bcn_config *c, char *const *exec_argv, struct bcn_cfg_errs *errs)
{
	struct bcn_template_conf *t = c->templates.v;

	if (exec_argv && exec_argv[0] && exec_from_argv(c, exec_argv) < 0)
		bcn_cfg_err(errs, "$.exec", "out of memory");
	for (size_t i = 0; i < c->templates.n; i++)
		prepare_template(c, &t[i], i, errs);
	if (c->exec)
		prepare_exec(c, errs);
}
