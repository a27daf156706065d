/*
 * file: reading a whole file with a size cap, written once. The callers
 * keep their own error text; this says only what went wrong.
 */
#ifndef SEKISHO_FILE_H
#define SEKISHO_FILE_H

#include <stddef.h>

struct str;

enum file_read_result {
	FILE_READ_OK = 0,
	FILE_READ_OPEN,		/* open(2) failed; errno is set */
	FILE_READ_ERROR,	/* read(2) failed; errno is set */
	FILE_READ_LARGE,	/* more than max bytes */
};

/*
 * Read fd from its offset to its end (EINTR retried), at most max bytes:
 * appended to out, or, when out is NULL, into buf, which has room for
 * max + 1 bytes. *len_r (may be NULL) is what was read. On
 * FILE_READ_LARGE nothing past max is kept in out.
 */
enum file_read_result file_read_fd(int fd, size_t max, struct str *out,
    unsigned char *buf, size_t *len_r);
/* The same for the file at path, opened O_RDONLY | O_CLOEXEC and closed. */
enum file_read_result file_read(const char *path, size_t max,
    struct str *out, unsigned char *buf, size_t *len_r);
/* "PATH: cannot open: ERRNO", "PATH: read: ERRNO" or "PATH: larger than
 * MAX bytes" for result (errno as file_read left it), NULL for OK; in a
 * buffer of this thread's, valid until the next call. */
const char *file_read_error(enum file_read_result result, const char *path,
    size_t max);

#endif
