/*
 * log.h - leveled logging to stderr, as text or one JSON object per line.
 *
 * Logging is synchronous and unbuffered on purpose: stderr goes to journald or
 * the container runtime, both of which timestamp and buffer already. Callers
 * must never pass a secret or a token in a format argument; the logger cannot
 * know what is secret, so the rule is enforced by review and by the tests that
 * grep the agent's output for planted secrets.
 */
#ifndef BCN_LOG_H
#define BCN_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bcn_log_level { BCN_LOG_DEBUG, BCN_LOG_INFO, BCN_LOG_WARN, BCN_LOG_ERROR };
enum bcn_log_format { BCN_LOG_TEXT, BCN_LOG_JSON };

/* Set the threshold and output format. Safe to call at any time (reload). */
void bcn_log_setup(enum bcn_log_level level, enum bcn_log_format format);

/* Parse "debug", "info", "warn"/"warning", "error"; returns 0, or -1 when unknown. */
int bcn_log_level_parse(const char *s, enum bcn_log_level *out);
/* Parse "text" or "json"; returns 0, or -1 when unknown. */
int bcn_log_format_parse(const char *s, enum bcn_log_format *out);

/* True when messages at this level are written (skip building costly arguments). */
int bcn_log_enabled(enum bcn_log_level level);

/* Write one log line. `comp` names the part of the agent ("api", "etcd#0"). */
void bcn_log(enum bcn_log_level level, const char *comp, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void bcn_logv(enum bcn_log_level level, const char *comp, const char *fmt, va_list ap);

/*
 * Complaints: a warning that a peer or the system can repeat at will (every
 * blocking answer lists the same bad entry again, accept() fails on every
 * connection while descriptors run out) must not flood the log. A struct
 * bcn_complain, zeroed by its owner, remembers the current window; callers
 * ask bcn_complain_due before writing their line.
 */
struct bcn_complain {
	uint64_t window_start_ms;  /* bcn_now_ms() when the window opened */
	unsigned lines;            /* written in this window */
	unsigned suppressed;       /* not written in this window */
	bool started;              /* false until the first complaint */
};

/*
 * True when one more line may be written now: at most `burst` lines per
 * window of period_ms; otherwise counts the line as suppressed. When a new
 * window opens after lines were suppressed, first writes the warning
 * "<n> more <dropped> were not logged" under `comp` (dropped NULL: callers
 * whose lines carry their own running count say nothing).
 */
bool bcn_complain_due(struct bcn_complain *c, uint64_t period_ms, unsigned burst,
		      const char *comp, const char *dropped);

/*
 * "Said once" memory: true when hash h is among the last `slots` hashes
 * recorded in ring (*n counts every hash ever recorded); otherwise records h
 * and returns false. For lines that should appear once per (subject, reason)
 * however often a resync repeats them.
 */
bool bcn_complain_seen(uint64_t *ring, size_t slots, size_t *n, uint64_t h);

/*
 * Copy at most cap - 1 bytes of s (len bytes, may hold anything a peer sent)
 * into out for a log line, each byte outside printable ASCII as '?', and
 * NUL-terminate. True when s was cut short (callers add "...").
 */
bool bcn_log_printable(char *out, size_t cap, const char *s, size_t len);

#define bcn_debug(comp, ...) \
	do { if (bcn_log_enabled(BCN_LOG_DEBUG)) bcn_log(BCN_LOG_DEBUG, comp, __VA_ARGS__); } while (0)
#define bcn_info(comp, ...)  bcn_log(BCN_LOG_INFO, comp, __VA_ARGS__)
#define bcn_warn(comp, ...)  bcn_log(BCN_LOG_WARN, comp, __VA_ARGS__)
#define bcn_error(comp, ...) bcn_log(BCN_LOG_ERROR, comp, __VA_ARGS__)

#endif
