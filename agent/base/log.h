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

#define bcn_debug(comp, ...) \
	do { if (bcn_log_enabled(BCN_LOG_DEBUG)) bcn_log(BCN_LOG_DEBUG, comp, __VA_ARGS__); } while (0)
#define bcn_info(comp, ...)  bcn_log(BCN_LOG_INFO, comp, __VA_ARGS__)
#define bcn_warn(comp, ...)  bcn_log(BCN_LOG_WARN, comp, __VA_ARGS__)
#define bcn_error(comp, ...) bcn_log(BCN_LOG_ERROR, comp, __VA_ARGS__)

#endif
