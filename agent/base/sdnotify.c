/*
 * sdnotify.c - see sdnotify.h. The sd_notify(3) wire protocol, self-contained.
 *
 * The protocol is one datagram of "KEY=value\n..." text to the AF_UNIX socket
 * named by $NOTIFY_SOCKET; systemd reads the sender's credentials from the
 * kernel, so nothing else goes with it. That is small enough to write out
 * (as HAProxy's src/systemd.c does) instead of linking libsystemd, which
 * would add a large library and its own dependencies to a small sidecar that
 * mostly runs in containers, where systemd is absent and every call here is a
 * no-op returning 0. Each call opens a fresh socket, sends and
 * closes: notifications are rare (the watchdog pings every WatchdogSec/2), and
 * keeping no descriptor means nothing leaks into the exec health checks the
 * agent forks and nothing goes stale if systemd re-creates its socket.
 * sendmsg() on a local datagram socket returns at once unless PID 1's queue is
 * full; MSG_NOSIGNAL keeps a vanished receiver from raising SIGPIPE.
 */
#include "base/sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"

/* A bad $NOTIFY_SOCKET would otherwise be reported on every watchdog ping. */
static int warned_bad_socket;

/*
 * Fill *sa from $NOTIFY_SOCKET's value: "/path" or "@abstract" (the '@' stands
 * for the leading NUL of a Linux abstract address). Returns 0, or -1 with errno.
 */
static int notify_address(const char *name, struct sockaddr_un *sa, socklen_t *sa_len)
{
	size_t n = strlen(name);
	int abstract = name[0] == '@';

	if ((name[0] != '/' && !abstract) || n < 2) {
		errno = EINVAL;
		goto bad;
	}
	/* A path needs room for its NUL; an abstract name may fill sun_path. */
	if (n > sizeof(sa->sun_path) - (abstract ? 0 : 1)) {
		errno = ENAMETOOLONG;
		goto bad;
	}
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, name, n);
	if (abstract)
		sa->sun_path[0] = '\0';
	/* Abstract names are length-delimited: the length must be exact. */
	*sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 0 : 1));
	return 0;

bad:
	if (!warned_bad_socket) {
		warned_bad_socket = 1;
		bcn_warn("sdnotify", "NOTIFY_SOCKET=\"%s\" is not an absolute path or an "
			 "@abstract name of at most %zu bytes; systemd will not hear from "
			 "the agent, check the unit's environment", name,
			 sizeof(sa->sun_path) - 1);
	}
	return -1;
}

int bcn_sd_notify(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t sa_len;
	ssize_t sent;
	int fd, saved;

	if (state == NULL || state[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (name == NULL || name[0] == '\0')
		return 0;
	if (notify_address(name, &sa, &sa_len) < 0)
		return -1;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;

	struct iovec iov = { .iov_base = (void *)state, .iov_len = strlen(state) };
	struct msghdr mh = {
		.msg_name = &sa, .msg_namelen = sa_len,
		.msg_iov = &iov, .msg_iovlen = 1,
	};
	do
		sent = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);

	saved = errno;
	close(fd);
	errno = saved;
	/* A datagram goes whole or not at all, so any non-negative count is success. */
	return sent < 0 ? -1 : 1;
}

int bcn_sd_notifyf(const char *fmt, ...)
{
	const char *name = getenv("NOTIFY_SOCKET");
	char small[256], *buf = small;
	va_list ap;
	int n, ret, saved;

	/* Skip the formatting entirely outside systemd: the common case in containers. */
	if (name == NULL || name[0] == '\0')
		return 0;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		errno = EINVAL;
		return -1;
	}
	if ((size_t)n >= sizeof(small)) {
		buf = malloc((size_t)n + 1);
		if (buf == NULL)
			return -1;
		va_start(ap, fmt);
		vsnprintf(buf, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}

	ret = bcn_sd_notify(buf);
	if (buf != small) {
		saved = errno;
		free(buf);
		errno = saved;
	}
	return ret;
}

/* Strict unsigned decimal: digits only (strtoull would accept "-1" and " 5"). */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

uint64_t bcn_sd_watchdog_usec(void)
{
	const char *usec_s = getenv("WATCHDOG_USEC");
	const char *pid_s = getenv("WATCHDOG_PID");
	uint64_t usec, pid;

	if (usec_s == NULL || parse_u64(usec_s, &usec) < 0 || usec == 0)
		return 0;
	/* Unset means "whoever reads it"; set but unparsable means "not us". */
	if (pid_s != NULL && (parse_u64(pid_s, &pid) < 0 || pid != (uint64_t)getpid()))
		return 0;
	return usec;
}
