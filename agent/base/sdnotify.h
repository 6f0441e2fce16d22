/*
 * sdnotify.h - tell systemd about the agent's state (sd_notify(3) protocol).
 *
 * The unit runs the agent as Type=notify with WatchdogSec=, so the agent sends
 * READY=1 once it serves, STATUS=... when something worth a glance changes,
 * RELOADING=1 / READY=1 around a SIGHUP reload, STOPPING=1 on shutdown and
 * WATCHDOG=1 from a timer in the event loop (a stuck loop stops the pings and
 * systemd restarts the agent). Outside systemd (a container, a shell) every
 * call is a cheap no-op, so callers never check where they run. The protocol
 * is written out in sdnotify.c; there is no libsystemd dependency.
 *
 * The functions read the environment on each call and never unset it: the
 * agent notifies many times over its life. They are not thread-safe against a
 * concurrent setenv(), which the agent never does.
 */
#ifndef BCN_SDNOTIFY_H
#define BCN_SDNOTIFY_H

#include <stdint.h>

/*
 * bcn_sd_notify
 *
 * Sends one notification datagram to the socket named by $NOTIFY_SOCKET: an
 * absolute path, or an abstract socket name when it starts with '@'.
 *
 * ARGUMENTS
 *  `state'   Newline-separated assignments, e.g. "READY=1\nSTATUS=serving".
 *            Sent as is, without a terminating NUL. Must not be NULL or empty.
 *
 * RETURN VALUE
 *  1 when the datagram was sent, 0 when $NOTIFY_SOCKET is unset or empty (not
 *  started by systemd), -1 on error with errno set: EINVAL for an empty state
 *  or a $NOTIFY_SOCKET that is neither absolute nor abstract, ENAMETOOLONG when
 *  it does not fit a socket address, or the error of socket(2)/sendmsg(2)
 *  (ENOENT, ECONNREFUSED, EAGAIN...). A failure is never fatal to the agent:
 *  callers log it and carry on.
 */
int bcn_sd_notify(const char *state);

/*
 * bcn_sd_notifyf
 *
 * Formats the state with printf(3) rules, then sends it like bcn_sd_notify().
 *
 * ARGUMENTS
 *  `fmt'     printf format, followed by its arguments.
 *
 * RETURN VALUE
 *  As bcn_sd_notify(); also -1 (errno ENOMEM or EINVAL) when formatting fails.
 *  When $NOTIFY_SOCKET is unset, returns 0 without formatting anything.
 */
int bcn_sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * bcn_sd_watchdog_usec
 *
 * Tells whether systemd expects watchdog pings from this process, and how
 * often. Ping (bcn_sd_notify("WATCHDOG=1")) at half the returned interval.
 *
 * RETURN VALUE
 *  The interval in microseconds from $WATCHDOG_USEC when it is a positive
 *  decimal number and $WATCHDOG_PID is either unset or equal to getpid()
 *  (so a child that inherited the environment does not ping for its parent);
 *  0 otherwise, meaning "no watchdog": don't arm the timer.
 */
uint64_t bcn_sd_watchdog_usec(void);

#endif
