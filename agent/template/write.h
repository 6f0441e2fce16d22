/*
 * write.h - writing a rendered file atomically (write.c).
 */
#ifndef BCN_TEMPLATE_WRITE_H
#define BCN_TEMPLATE_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Replace path with data: a temporary file in the same folder (so rename is
 * atomic), mode `mode`, owner uid/gid ((uid_t)-1 / (gid_t)-1: keep), written
 * in full, fsync'd, renamed over path, and the folder fsync'd so the rename
 * survives a crash. A reader sees the old file or the new one, never a
 * half-written one. 0, or -1 with a sentence in err (path is untouched and
 * the temporary file removed).
 */
int bcn_tmpl_write_atomic(const char *path, const char *data, size_t len, mode_t mode, uid_t uid,
			  gid_t gid, char *err, size_t errlen);

/* True when path holds exactly data (so nothing needs writing). */
bool bcn_tmpl_file_equals(const char *path, const char *data, size_t len);

#endif
