/*
 * spawn.h - start a child process the one way the agent does it (health
 * check commands, template commands, exec mode's app).
 */
#ifndef BCN_SPAWN_H
#define BCN_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

/* Where the child's standard streams go. */
struct bcn_spawn_io {
	bool null_stdin;  /* stdin from /dev/null (else the agent's) */
	int out_fd;       /* dup'd onto stdout; -1: the agent's */
	int err_fd;       /* dup'd onto stderr; -1: the agent's */
	bool close_rest;  /* close every descriptor from 3 up in the child */
};

/* Run argv[0] (searched in PATH) with argv and envp (NULL: the agent's
 * environment), in a process group of its own, with an empty signal mask and
 * default signal dispositions; io NULL inherits the agent's streams. Returns
 * 0 with *pid set, or an errno value (the child could not be started). */
int bcn_spawn(pid_t *pid, char *const argv[], char *const envp[], const struct bcn_spawn_io *io);

#endif
