/*
 * fuzz_milter_spool: the header section of a spool file read for the
 * filters (milter_spool_fields). The message is the client's, so any
 * bytes: fields must come out bounded, with names free of ':' and line
 * ends, and the body offset inside the file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "milter/milter_spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct milter_field *f;
	size_t n;
	off_t body, end;
	const char *error;
	int fd = memfd_create("fuzz", 0);

	if (fd < 0)
		return 0;
	if (size > 0 && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	if (milter_spool_fields(fd, 0, &f, &n, &body, &end, &error) == 0) {
		if (end != (off_t)size || body < 0 || body > end)
			abort();
		if (n > MILTER_SPOOL_FIELDS_MAX)
			abort();
		for (size_t i = 0; i < n; i++) {
			if (strchr(f[i].name, ':') != NULL ||
			    strchr(f[i].name, '\n') != NULL)
				abort();
			if (strlen(f[i].raw) > size)
				abort();
		}
		milter_spool_fields_free(f, n);
	}
	close(fd);
	return 0;
}
