/*
 * write.c - the atomic write of a rendered template (write.h).
 *
 * This is file I/O on the event loop: a template's file is small and local,
 * and the fsyncs are what make "never half-written, survives a crash" true
 * (consul-template and Vault Agent write the same way, synchronously). It
 * happens only when the content changed, at most once per wait.min.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "template/write.h"
#include "base/zalloc.h"

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int bcn_tmpl_write_atomic(const char *path, const char *data, size_t len, mode_t mode, uid_t uid,
			  gid_t gid, char *err, size_t errlen)
{
	char dir[4096], tmp[4200], *slash;
	int fd = -1, dfd;
	const char *what = "";

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = 0;
	else if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	const char *base = strrchr(path, '/');
	snprintf(tmp, sizeof(tmp), "%s/.%s.beacon-XXXXXX", dir, base ? base + 1 : path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a temporary file in %s: %s", dir, strerror(errno));
		return -1;
	}
	/* Mode and owner before the first byte, so a secret is never readable by others. */
	if (fchmod(fd, mode) < 0) {
		what = "set the mode of";
		goto fail;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0) {
		what = "set the owner of";
		goto fail;
	}
	if (write_all(fd, data, len) < 0) {
		what = "write";
		goto fail;
	}
	if (fsync(fd) < 0) {
		what = "fsync";
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		what = "close";
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		what = "rename over the destination";
		goto fail;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	snprintf(err, errlen, "cannot %s %s: %s", what, fd >= 0 || what[0] == 'r' ? tmp : path,
		 strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

bool bcn_tmpl_file_equals(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	bool same = false;
	char *buf = NULL;
	size_t got = 0;

	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != len)
		goto out;
	buf = bcn_zmalloc(len + 1); /* it may hold a secret */
	if (!buf)
		goto out;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	same = got == len && memcmp(buf, data, len) == 0;
out:
	bcn_zfree(buf);
	close(fd);
	return same;
}
