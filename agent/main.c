/*
 * main.c - `beacon`: one binary, subcommands in the style of `consul agent`.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "cli/cli.h"
#include "config/config.h"
#include "plugin/plugin.h"
#include "base/alloc_hooks.h"
#include "template/render_cmd.h"
#include "template/template.h"

static void version(void)
{
	printf("beacon %s\nplugins:", BCN_VERSION);
	for (size_t i = 0; bcn_plugins[i]; i++)
		printf(" %s", bcn_plugins[i]->name);
	printf("\n");
	for (size_t i = 0; bcn_plugins[i]; i++)
		printf("  %-8s %s\n", bcn_plugins[i]->name, bcn_plugins[i]->description);
}

static int check_config(const char *file, char *const *exec_argv)
{
	struct bcn_cfg_errs errs = { 0 };
	struct bcn_config *c = bcn_config_load(file, bcn_plugin_sections(), &errs);

	if (c) {
		/* templates and exec: the rules that need the template engine */
		bcn_templates_prepare(c, exec_argv, &errs);
		if (errs.n) {
			bcn_config_free(c);
			c = NULL;
		}
	}

	for (size_t i = 0; i < errs.nwarn; i++)
		fprintf(stderr, "warning: %s\n", errs.warn[i]);
	if (!c) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		fprintf(stderr, "beacon: %s has %zu problem(s)\n", file, errs.n);
		bcn_cfg_errs_free(&errs);
		return 2;
	}
	printf("%s: configuration is valid%s\n", file, errs.nwarn ? " (see the warnings)" : "");
	bcn_cfg_errs_free(&errs);
	bcn_config_free(c);
	return 0;
}

static int agent_cmd(int argc, char **argv)
{
	const char *file = NULL;
	char **exec_argv = NULL;
	int check = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			/* exec mode: the rest is the app's argv */
			if (i + 1 >= argc)
				return bcn_cli_usage_error("agent", "\"--\" must be followed by the command to run");
			exec_argv = argv + i + 1;
			break;
		} else if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc)
			file = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			file = argv[i] + 9;
		else if (strcmp(argv[i], "--check-config") == 0)
			check = 1;
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return bcn_cli_help("agent");
		else {
			char msg[96];
			snprintf(msg, sizeof(msg), "unknown agent option \"%.40s\"", argv[i]);
			return bcn_cli_usage_error("agent", msg);
		}
	}
	if (!file)
		return bcn_cli_usage_error("agent", "agent needs --config FILE");
	if (check)
		return check_config(file, exec_argv);
	if (sodium_init() < 0) {
		fprintf(stderr, "beacon: libsodium could not be initialised\n");
		return 1;
	}
	return bcn_agent_main(file, exec_argv);
}

int main(int argc, char **argv)
{
	bcn_alloc_hooks_install(); /* before jansson or libevent allocate anything */
	if (argc < 2)
		return bcn_cli_usage_error(NULL, NULL);
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		version();
		return 0;
	}
	if (strcmp(argv[1], "agent") == 0)
		return agent_cmd(argc - 1, argv + 1);
	/* render needs the template engine, which cli/ (on base/ only) cannot
	 * include. `beacon --socket S render ...` works too: the leading
	 * --socket options move after the command, where render reads them. */
	{
		int i = 1;
		while (i < argc && (strncmp(argv[i], "--socket=", 9) == 0 ||
				    (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)))
			i += argv[i][8] == '=' ? 1 : 2;
		if (i < argc && strcmp(argv[i], "render") == 0) {
			char *cmd = argv[i];
			memmove(argv + 2, argv + 1, (size_t)(i - 1) * sizeof(*argv));
			argv[1] = cmd;
			return bcn_render_cmd(argc - 1, argv + 1);
		}
	}
	return bcn_cli_main(argc - 1, argv + 1);
}
