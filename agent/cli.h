/*
 * cli.h - the client subcommands: talk to a running agent over its socket.
 */
#ifndef BCN_CLI_H
#define BCN_CLI_H

/* Run a client subcommand (argv[0] is its name). Returns the exit code (0, 1, 2). */
int bcn_cli_main(int argc, char **argv);

#endif
