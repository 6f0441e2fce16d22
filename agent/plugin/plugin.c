/*
 * plugin.c - the table of compiled-in plugins and the instance helper every
 * plugin shares (the reporting API is in report.c). Adding a backend means
 * adding its descriptor here and its folder under plugins/; nothing else in
 * the core changes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/utf8.h"
#include "config/config.h"
#include "plugin/plugin.h"

extern const struct bcn_plugin bcn_plugin_static;
extern const struct bcn_plugin bcn_plugin_etcd;
extern const struct bcn_plugin bcn_plugin_vault;
extern const struct bcn_plugin bcn_plugin_consul;
extern const struct bcn_plugin bcn_plugin_zookeeper;

const struct bcn_plugin *const bcn_plugins[] = {
	&bcn_plugin_static,
	&bcn_plugin_etcd,
	&bcn_plugin_consul,
	&bcn_plugin_vault,
	&bcn_plugin_zookeeper,
	NULL,
};

const struct bcn_cfg_section *bcn_plugin_sections(void)
{
	/* One slot per plugin; bcn_plugins' NULL leaves the last one ending it. */
	static struct bcn_cfg_section s[sizeof(bcn_plugins) / sizeof(bcn_plugins[0])];

	for (size_t i = 0; bcn_plugins[i]; i++) {
		const struct bcn_plugin *p = bcn_plugins[i];

		s[i] = (struct bcn_cfg_section){
			.key = p->section,
			.list_key = p->section_list,
			.name = p->name,
			.desc = p->description,
			.always = p->section_always,
			.fields = p->config_map,
			.size = p->config_size,
			.check = p->cb_check,
			.check_service = p->cb_check_service,
			.plugin = p,
		};
	}
	return s;
}

const struct bcn_plugin *bcn_plugin_find(const char *name, enum bcn_plugin_kind kind)
{
	for (size_t i = 0; bcn_plugins[i]; i++) {
		if (bcn_plugins[i]->kind == kind && strcmp(bcn_plugins[i]->name, name) == 0)
			return bcn_plugins[i];
	}
	return NULL;
}

void bcn_instance_report(struct bcn_instance *ins, bool ready, const char *state,
			 const char *fmt, ...)
{
	char err[sizeof(ins->last_error)] = "";
	bool changed;

	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		bcn_utf8_vformat(err, sizeof(err), fmt, ap); /* a cut never splits a character */
		va_end(ap);
	}
	changed = ins->ready != ready || strcmp(ins->state, state) != 0 ||
		  (fmt && strcmp(ins->last_error, err) != 0);
	ins->ready = ready;
	snprintf(ins->state, sizeof(ins->state), "%s", state);
	if (fmt)
		snprintf(ins->last_error, sizeof(ins->last_error), "%s", err);
	else
		ins->last_error[0] = '\0';
	if (!changed)
		return;
	if (fmt)
		bcn_warn(ins->name, "%s: %s", state, err);
	else
		bcn_info(ins->name, "%s", state);
	if (ins->core && ins->core->state_changed)
		ins->core->state_changed(ins->core, ins);
}

void bcn_tls_http_opts(const struct bcn_tls_conf *t, struct bcn_http_opts *o)
{
	o->ca_file = t->ca_file;
	o->cert_file = t->cert_file;
	o->key_file = t->key_file;
	o->server_name = t->server_name;
	o->insecure_skip_verify = t->insecure_skip_verify;
}
