/*
 * exec.h - exec mode (SPEC.md "Exec mode"): the app runs as beacon's child
 * with environment variables rendered from templates, is restarted when
 * they change, gets the signals beacon gets, and its exit ends beacon with
 * its status. agent.c owns its life.
 */
#ifndef BCN_EXEC_H
#define BCN_EXEC_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

struct bcn_core;
struct bcn_exec;

/* The child ended on its own (or after bcn_exec_stop): code is its exit
 * status, 128 + the signal that killed it. */
typedef void (*bcn_exec_exited)(void *owner, int code);

/* From core->config->exec (prepared). NULL when out of memory or an env
 * template no longer parses (logged). Nothing starts before _synced. */
struct bcn_exec *bcn_exec_new(struct bcn_core *core, bcn_exec_exited exited, void *owner);
/* Kill the child's group (SIGKILL) and free. NULL-safe. */
void bcn_exec_free(struct bcn_exec *x);
/* The loop is over but the child still runs (it outlived the stop
 * deadline): SIGKILL, reap, and return the status to exit with (137). */
int bcn_exec_kill(struct bcn_exec *x);

/* Every source synced once: the child starts as soon as its env renders. */
void bcn_exec_synced(struct bcn_exec *x);
/* Pass sig on to the child (a no-op without one). */
void bcn_exec_forward(struct bcn_exec *x, int sig);
/* beacon is stopping: no more restarts; unless a signal was just forwarded,
 * send kill_signal; SIGKILL after kill_timeout. exited() reports the end. */
void bcn_exec_stop(struct bcn_exec *x, bool signalled);
/* The running child's pid (0: none): where templates' "signal" goes. */
pid_t bcn_exec_pid(const struct bcn_exec *x);
/* The /v1/self "exec" object. */
json_t *bcn_exec_self(const struct bcn_exec *x);

#endif
