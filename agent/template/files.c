/*
 * files.c - template and partial files, and the root names of the data
 * model (files.h). Reading happens at load (start, reload, `beacon render`)
 * only, never while the loop serves: templates are parsed once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "template/files.h"
#include "base/zalloc.h"

char *bcn_tmpl_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;

	if (fd < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		goto fail;
	}
	if ((size_t)st.st_size > BCN_TMPL_MAX_FILE) {
		snprintf(err, errlen, "%s is larger than %zu bytes", path, BCN_TMPL_MAX_FILE);
		goto fail;
	}
	buf = bcn_zmalloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory reading %s", path);
		goto fail;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = 0;
	*len = got;
	return buf;
fail:
	bcn_zfree(buf);
	close(fd);
	return NULL;
}

char *bcn_tmpl_load_partial(void *arg, const char *name, size_t *len, char *file, size_t filelen)
{
	const char *dir = arg;
	char path[4096], err[256];

	if (!dir || strchr(name, '/') || name[0] == '.' || !name[0])
		return NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.mustache", dir, name) >= sizeof(path))
		return NULL;
	snprintf(file, filelen, "%s", path);
	return bcn_tmpl_read_file(path, len, err, sizeof(err));
}

struct bcn_mst *bcn_tmpl_parse_file(const char *path, struct bcn_mst_error *err)
{
	char dir[4096], msg[256];
	size_t len = 0;
	char *text, *slash;
	struct bcn_mst *t;

	memset(err, 0, sizeof(*err));
	text = bcn_tmpl_read_file(path, &len, msg, sizeof(msg));
	if (!text) {
		snprintf(err->file, sizeof(err->file), "%s", path);
		snprintf(err->msg, sizeof(err->msg), "%.159s", msg);
		return NULL;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	t = bcn_mst_parse(text, len, path, bcn_tmpl_load_partial, dir, err);
	bcn_zfree(text);
	return t;
}

static bool starts(const char *name, const char *root, const char **rest)
{
	size_t n = strlen(root);

	if (strncmp(name, root, n) != 0 || (name[n] != 0 && name[n] != '.'))
		return false;
	*rest = name[n] ? name + n + 1 : name + n;
	return true;
}

enum bcn_tmpl_ref bcn_tmpl_ref(const char *name, const char **arg, size_t *arglen)
{
	const char *rest;

	*arg = NULL;
	*arglen = 0;
	if (strcmp(name, "node") == 0)
		return BCN_REF_NODE;
	if (starts(name, "self", &rest))
		return BCN_REF_SELF;
	if (strcmp(name, "services") == 0)
		return BCN_REF_SERVICES;
	if (starts(name, "service", &rest) && *rest) {
		*arg = rest;
		*arglen = strcspn(rest, ".");
		return BCN_REF_SERVICE;
	}
	if (starts(name, "key", &rest) && *rest) {
		*arg = rest;
		*arglen = strcspn(rest, ".");
		return BCN_REF_KEY;
	}
	if (starts(name, "secret", &rest) && *rest) {
		*arg = rest;
		*arglen = strcspn(rest, ".");
		return BCN_REF_SECRET;
	}
	return BCN_REF_NONE;
}
