/*
 * portal_file: read and atomically replace the portal's files (see
 * portal_file.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/xmalloc.h"
#include "portal_file.h"

int
portal_file_read(const char *path, const char *key, size_t max,
    struct str *out, const char **error_r)
{
	static __thread char ebuf[300];
	char buf[4096];
	ssize_t n;
	int fd;

	if (path == NULL || *path == '\0') {
		snprintf(ebuf, sizeof(ebuf), "%s is not set", key);
		*error_r = ebuf;
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(ebuf, sizeof(ebuf), "%s: %s", path, strerror(errno));
		*error_r = ebuf;
		return -1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		str_append_n(out, buf, (size_t)n);
		if (out->len > max)
			break;
	}
	close(fd);
	if (n < 0 || out->len > max) {
		snprintf(ebuf, sizeof(ebuf), "%s: cannot read (or too large)",
		    path);
		*error_r = ebuf;
		return -1;
	}
	return 0;
}

int
portal_file_replace(const char *path, const struct str *text,
    const char **error_r)
{
	static __thread char ebuf[300];
	char *tmp = xasprintf("%s.tmp", path);
	int fd, ok;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ok = fd >= 0 && (text->len == 0 ||
	    write(fd, text->s, text->len) == (ssize_t)text->len) &&
	    fsync(fd) == 0;
	if (fd >= 0 && close(fd) != 0)
		ok = 0;
	if (!ok || rename(tmp, path) != 0) {
		snprintf(ebuf, sizeof(ebuf), "%s: %s", path, strerror(errno));
		*error_r = ebuf;
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}
