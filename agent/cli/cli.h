/*
 * cli.h - the client subcommands: talk to a running agent over its socket.
 */
#ifndef BCN_CLI_H
#define BCN_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* Run a client subcommand (argv[0] is its name). Returns the exit code (0, 1, 2). */
int bcn_cli_main(int argc, char **argv);

/* True when `cmd` is a subcommand with its own usage text (agent included). */
bool bcn_cli_has_usage(const char *cmd);

/* `--help`: the usage of `cmd` (NULL or unknown: of beacon itself) on stdout. Returns 0. */
int bcn_cli_help(const char *cmd);

/* A usage error: "beacon: msg" (when msg) and cmd's synopsis on stderr. Returns 2. */
int bcn_cli_usage_error(const char *cmd, const char *msg);

/* One request to the agent at socket `sock` (curl_global_init done by the
 * caller). Returns the HTTP status, or -1 when the agent could not be reached
 * or did not answer JSON (a sentence printed on stderr); *body gets the
 * parsed answer (NULL on -1). `beacon render` builds its data with it. */
long bcn_cli_call(const char *sock, const char *method, const char *path, json_t **body);

/* The default socket when neither --socket nor $BEACON_SOCKET names one. */
#define BCN_CLI_DEFAULT_SOCKET "/run/beacon/beacon.sock"

#endif
