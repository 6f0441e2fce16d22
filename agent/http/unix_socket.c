/*
 * unix_socket.c - what is particular to serving on a Unix socket: creating
 * the socket file safely and knowing who is on the other end.
 *
 * The socket file is made here: a live owner is refused, a stale file
 * replaced, and the file is bound under umask 0177 so nobody can connect
 * between bind and chmod. (The peer's identity comes from the kernel,
 * SO_PEERCRED, read once per connection in conn.c, never from anything the
 * client sends; the secrets API relies on it.)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"
#include "http/server.h"

/* Create the Unix socket file: refuse a live owner, replace a stale file. */
int bcn_unix_listen(const char *path, unsigned mode, gid_t gid, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd = -1;
	mode_t old;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path %s is too long", path);
		return -1;
	}
	strcpy(sa.sun_path, path);

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket; remove it or choose another socket.path", path);
			return -1;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			snprintf(err, errlen, "another agent is already serving %s; stop it first or choose another socket.path", path);
			return -1;
		}
		if (fd >= 0)
			close(fd);
		if (unlink(path) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
			return -1;
		}
		bcn_info("server", "replaced stale socket file %s", path);
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	/* Nobody may connect between bind and chmod: bind under umask 0177. */
	old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0)
		goto fail;
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)
		goto fail_unlink;
	if (chmod(path, mode) < 0)
		goto fail_unlink;
	if (listen(fd, 1024) < 0)
		goto fail_unlink;
	return fd;

fail_unlink:
	unlink(path);
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}
