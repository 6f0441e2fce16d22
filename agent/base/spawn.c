/*
 * spawn.c - see spawn.h. posix_spawnp with POSIX_SPAWN_USEVFORK: no code of
 * ours runs between fork and exec, which is what a process with a libevent
 * loop, locked memory and secrets wants. The child gets a process group of
 * its own, so a timeout can kill its whole tree with kill(-pid) and a
 * terminal's ^C reaches beacon only (exec mode forwards it); and an empty
 * signal mask with default dispositions, so the signals the agent blocks or
 * handles are not blocked or ignored in the child.
 */
#include "base/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>

extern char **environ;

int bcn_spawn(pid_t *pid, char *const argv[], char *const envp[], const struct bcn_spawn_io *io)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int rc;

	posix_spawn_file_actions_init(&fa);
	if (io && io->null_stdin)
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (io && io->out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, io->out_fd, 1);
	if (io && io->err_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, io->err_fd, 2);
	if (io && io->close_rest)
		posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&at);
	posix_spawnattr_setpgroup(&at, 0);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_USEVFORK);
	rc = posix_spawnp(pid, argv[0], &fa, &at, argv, envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return rc;
}
