/*
 * log.c - see log.h. One line per call, written with a single write(2) so
 * lines from the agent and from the exec health checks it forks never interleave.
 */
#include "base/log.h"
#include "base/timing.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum bcn_log_level g_level = BCN_LOG_INFO;
static enum bcn_log_format g_format = BCN_LOG_TEXT;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void bcn_log_setup(enum bcn_log_level level, enum bcn_log_format format)
{
	g_level = level;
	g_format = format;
}

int bcn_log_level_parse(const char *s, enum bcn_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum bcn_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = BCN_LOG_WARN;
		return 0;
	}
	return -1;
}

int bcn_log_format_parse(const char *s, enum bcn_log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = BCN_LOG_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = BCN_LOG_JSON;
	else
		return -1;
	return 0;
}

int bcn_log_enabled(enum bcn_log_level level)
{
	return level >= g_level;
}

/* Append s to buf as JSON string content (no quotes); returns new length. */
static size_t json_escape(char *buf, size_t len, size_t cap, const char *s)
{
	for (; *s && len + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[len++] = '\\';
			buf[len++] = (char)c;
		} else if (c == '\n') {
			buf[len++] = '\\';
			buf[len++] = 'n';
		} else if (c < 0x20) {
			len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", c);
		} else {
			buf[len++] = (char)c;
		}
	}
	return len;
}

void bcn_logv(enum bcn_log_level level, const char *comp, const char *fmt, va_list ap)
{
	char msg[2048], line[4608], ts[40];
	struct timespec now;
	struct tm tm;
	size_t len;

	if (level < g_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	len = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + len, sizeof(ts) - len, ".%03ldZ", now.tv_nsec / 1000000);

	if (g_format == BCN_LOG_JSON) {
		len = (size_t)snprintf(line, sizeof(line),
			"{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"", ts, level_names[level]);
		len = json_escape(line, len, sizeof(line) - 16, comp ? comp : "agent");
		len += (size_t)snprintf(line + len, sizeof(line) - len, "\",\"msg\":\"");
		len = json_escape(line, len, sizeof(line) - 4, msg);
		len += (size_t)snprintf(line + len, sizeof(line) - len, "\"}\n");
	} else {
		int n = snprintf(line, sizeof(line), "%s %-5s %s: %s\n", ts, level_names[level],
				 comp ? comp : "agent", msg);
		len = n < 0 ? 0 : (size_t)n;
		if (len >= sizeof(line)) {
			len = sizeof(line) - 1;
			line[len - 1] = '\n';
		}
	}
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

void bcn_log(enum bcn_log_level level, const char *comp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bcn_logv(level, comp, fmt, ap);
	va_end(ap);
}

bool bcn_complain_due(struct bcn_complain *c, uint64_t period_ms, unsigned burst,
		      const char *comp, const char *dropped)
{
	uint64_t now = bcn_now_ms();

	if (!c->started || now - c->window_start_ms > period_ms) {
		if (c->suppressed && dropped)
			bcn_warn(comp, "%u more %s were not logged", c->suppressed, dropped);
		c->started = true;
		c->window_start_ms = now;
		c->lines = c->suppressed = 0;
	}
	if (c->lines >= burst) {
		c->suppressed++;
		return false;
	}
	c->lines++;
	return true;
}

bool bcn_complain_seen(uint64_t *ring, size_t slots, size_t *n, uint64_t h)
{
	size_t remembered = *n < slots ? *n : slots;

	for (size_t i = 0; i < remembered; i++) {
		if (ring[i] == h)
			return true;
	}
	ring[(*n)++ % slots] = h;
	return false;
}

bool bcn_log_printable(char *out, size_t cap, const char *s, size_t len)
{
	size_t i;

	if (cap == 0)
		return len > 0;
	for (i = 0; i < len && i + 1 < cap; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[i] = '\0';
	return i < len;
}
