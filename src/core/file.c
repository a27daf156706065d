/*
 * file: reading a whole file with a size cap (see file.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "str.h"

enum file_read_result
file_read_fd(int fd, size_t max, struct str *out, unsigned char *buf,
    size_t *len_r)
{
	unsigned char chunk[65536], *to;
	size_t len = 0, room;
	struct stat st;
	ssize_t n;

	/* a file that says it is too large is not read at all */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (unsigned long long)st.st_size > max) {
		if (len_r != NULL)
			*len_r = 0;
		return FILE_READ_LARGE;
	}
	/* one byte more than allowed: a file that fills it is too large */
	while (len <= max) {
		to = out != NULL ? chunk : buf + len;
		room = out != NULL ? sizeof(chunk) : max + 1 - len;
		n = read(fd, to, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return FILE_READ_ERROR;
		if (n == 0)
			break;
		if (len + (size_t)n > max) {
			len += (size_t)n;
			break;
		}
		if (out != NULL)
			str_append_n(out, chunk, (size_t)n);
		len += (size_t)n;
	}
	if (len_r != NULL)
		*len_r = len > max ? max : len;
	return len > max ? FILE_READ_LARGE : FILE_READ_OK;
}

enum file_read_result
file_read(const char *path, size_t max, struct str *out, unsigned char *buf,
    size_t *len_r)
{
	enum file_read_result ret;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return FILE_READ_OPEN;
	ret = file_read_fd(fd, max, out, buf, len_r);
	saved = errno;
	close(fd);
	errno = saved;
	return ret;
}

const char *
file_read_error(enum file_read_result result, const char *path, size_t max)
{
	static _Thread_local char ebuf[512];

	switch (result) {
	case FILE_READ_OK:
		return NULL;
	case FILE_READ_OPEN:
		snprintf(ebuf, sizeof(ebuf), "%s: cannot open: %s", path,
		    strerror(errno));
		break;
	case FILE_READ_ERROR:
		snprintf(ebuf, sizeof(ebuf), "%s: read: %s", path,
		    strerror(errno));
		break;
	case FILE_READ_LARGE:
		snprintf(ebuf, sizeof(ebuf), "%s: larger than %zu bytes",
		    path, max);
		break;
	}
	return ebuf;
}
