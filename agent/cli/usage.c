/*
 * usage.c - the usage text of `beacon` and of each subcommand.
 *
 * One table, so `beacon COMMAND --help` (stdout, exit 0) and a usage error
 * (the one-sentence message, then the command's synopsis on stderr, exit 2)
 * can never disagree. The man page (man/beacon.1) says the same at length;
 * keep the two in step when an option changes.
 */
#include "cli/cli.h"

#include <string.h>

#define SOCKET_HELP "      --socket PATH     the agent's socket (default $BEACON_SOCKET,\n" \
		    "                        else /run/beacon/beacon.sock)\n"
#define HELP_HELP   "  -h, --help            print this help and exit\n"

struct usage {
	const char *cmd;
	const char *synopsis; /* after "usage: " */
	const char *body;     /* what it does, then its options */
};

static const struct usage usages[] = {
	{ "agent", "beacon agent --config FILE [--check-config] [-- CMD [ARGS...]]",
	  "Run the sidecar in the foreground until SIGTERM or SIGINT; SIGHUP reloads FILE.\n"
	  "With -- CMD ARGS (exec mode), run CMD as a child with the rendered exec.env,\n"
	  "forward signals to it, and exit with its status when it exits.\n"
	  "\n"
	  "  -c, --config FILE     the JSON config file (also --config=FILE)\n"
	  "      --check-config    only validate FILE: each problem with its JSON path,\n"
	  "                        exit 0 when there is none, else 2\n"
	  HELP_HELP },
	{ "endpoints", "beacon endpoints SERVICE [--tag T] [--all] [--json]",
	  "Print the passing endpoints of SERVICE the agent knows, one a line:\n"
	  "address:port, status, id, tags.\n"
	  "\n"
	  "  -t, --tag T           only endpoints with tag T\n"
	  "  -a, --all             endpoints of every status, not only passing ones\n"
	  "  -j, --json            the agent's JSON answer as it is\n"
	  SOCKET_HELP HELP_HELP },
	{ "pick", "beacon pick SERVICE [--policy P] [--key K]",
	  "Print one passing endpoint of SERVICE as address:port ([address]:port for IPv6).\n"
	  "\n"
	  "  -p, --policy P        round_robin (default), random, weighted or hash\n"
	  "  -k, --key K           the key the hash policy hashes (required with it)\n"
	  SOCKET_HELP HELP_HELP },
	{ "kv", "beacon kv KEY [--recurse]",
	  "Print the value of KEY, under a prefix in watch.kv (a leading \"/\" is optional).\n"
	  "\n"
	  "  -r, --recurse         every key under KEY, one key=value a line\n"
	  SOCKET_HELP HELP_HELP },
	{ "secret", "beacon secret NAME [--field F]",
	  "Print the secret NAME as JSON, when the calling user is allowed to read it.\n"
	  "\n"
	  "  -f, --field F         only the field F (a string is printed as it is)\n"
	  SOCKET_HELP HELP_HELP },
	{ "status", "beacon status",
	  "Print the agent's readiness, service, backends and discovery, one line each.\n"
	  "\n"
	  SOCKET_HELP HELP_HELP },
	{ "drain", "beacon drain",
	  "Take this instance out of discovery (deregister it) until `beacon resume`.\n"
	  "\n"
	  SOCKET_HELP HELP_HELP },
	{ "render", "beacon render TEMPLATE [--data FILE] [--escape none|html|json]",
	  "Render the Mustache template file TEMPLATE once to stdout, against the running\n"
	  "agent's data (what the template names: node, self, services, service.NAME,\n"
	  "key.KEY, secret.NAME.FIELD) or against a JSON file. Exit 2 on a template error\n"
	  "(with its line:column).\n"
	  "\n"
	  "  -d, --data FILE       the root context from this JSON file (no agent needed)\n"
	  "  -e, --escape E        what {{name}} escapes: none (default), html or json\n"
	  SOCKET_HELP HELP_HELP },
	{ "resume", "beacon resume",
	  "Put a drained instance back into discovery.\n"
	  "\n"
	  SOCKET_HELP HELP_HELP },
};

static const char top_synopsis[] = "beacon COMMAND [options]";
static const char top_body[] =
	"A sidecar agent: registers the app, discovers services and serves secrets\n"
	"to it over a local socket.\n"
	"\n"
	"commands:\n"
	"  agent      run the sidecar (or only validate its config with --check-config)\n"
	"  endpoints  print the endpoints of a service\n"
	"  pick       print one endpoint of a service as address:port\n"
	"  kv         print a watched config value\n"
	"  secret     print a secret\n"
	"  status     print readiness, registration and backends\n"
	"  drain      take this instance out of discovery\n"
	"  resume     put it back\n"
	"  render     render a template once to stdout\n"
	"\n"
	"options:\n"
	SOCKET_HELP
	"  -h, --help            print this help (`beacon COMMAND --help`: a command's)\n"
	"      --version         print the version and the compiled-in plugins\n"
	"\n"
	"Exit codes: 0 ok, 1 runtime failure, 2 usage or config error. See beacon(1).\n";

static const struct usage *find(const char *cmd)
{
	for (size_t i = 0; cmd && i < sizeof(usages) / sizeof(usages[0]); i++) {
		if (strcmp(usages[i].cmd, cmd) == 0)
			return &usages[i];
	}
	return NULL;
}

bool bcn_cli_has_usage(const char *cmd)
{
	return find(cmd) != NULL;
}

int bcn_cli_help(const char *cmd)
{
	const struct usage *u = find(cmd);

	printf("usage: %s\n\n%s", u ? u->synopsis : top_synopsis, u ? u->body : top_body);
	return 0;
}

int bcn_cli_usage_error(const char *cmd, const char *msg)
{
	const struct usage *u = find(cmd);

	if (msg)
		fprintf(stderr, "beacon: %s\n", msg);
	if (u)
		fprintf(stderr, "usage: %s\n(see `beacon %s --help`)\n", u->synopsis, cmd);
	else
		fprintf(stderr, "usage: %s\n\n%s", top_synopsis, top_body); /* the list of commands */
	return 2;
}
