/*
 * runner.h - running a template's command (runner.c), and signal names.
 */
#ifndef BCN_TEMPLATE_RUNNER_H
#define BCN_TEMPLATE_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct bcn_cmd;

/* "SIGHUP", "HUP", "hup" or "1" -> 1; -1 for anything else. */
int bcn_signal_parse(const char *s);

/* Called once when the command ended: its wait status (waitpid), whether
 * it was killed at its timeout, and its last stderr lines (NUL-terminated,
 * maybe empty). The command is freed after this returns. */
typedef void (*bcn_cmd_done)(void *arg, int status, bool timed_out, const char *tail);

/*
 * Run argv (no shell; PATH searched) in its own process group, stdin from
 * /dev/null, stdout shared with the agent, stderr collected (the last lines
 * kept for the log). At timeout_ms the whole group gets SIGKILL. NULL with
 * a sentence in err when it cannot start.
 */
struct bcn_cmd *bcn_cmd_run(struct event_base *base, char *const *argv, uint64_t timeout_ms,
			    bcn_cmd_done done, void *arg, char *err, size_t errlen);
/* Report to another done(arg) from now on (a template reloaded). */
void bcn_cmd_rebind(struct bcn_cmd *c, bcn_cmd_done done, void *arg);
/* Stop caring: the group is killed, done is not called. NULL-safe. */
void bcn_cmd_free(struct bcn_cmd *c);

#endif
