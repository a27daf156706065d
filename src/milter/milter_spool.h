/*
 * milter_spool: the spool file's side of the filters (back side): its
 * header section read into fields for the filters, and the file written
 * again with their changes before the commit (issue 16 item 3).
 */
#ifndef SEKISHO_MILTER_SPOOL_H
#define SEKISHO_MILTER_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

#include "../queue/envelope.h"
#include "milter.h"

/* The header section: at most this many octets and fields, else the
 * message cannot be shown to a filter (the default action applies). */
#define MILTER_SPOOL_HEADER_MAX	(1024 * 1024)
#define MILTER_SPOOL_FIELDS_MAX	10000

struct milter_field {
	char	*name;
	char	*value;		/* after the colon, line ends LF */
	char	*raw;		/* the field as in the file (CRLF), NULL
				 * once changed */
};

/*
 * The fields of the message in fd starting at offset (our Received:
 * first), and where its body starts and ends. 0, or -1 with *error_r.
 */
int milter_spool_fields(int fd, size_t offset, struct milter_field **f_r,
    size_t *n_r, off_t *body_off_r, off_t *end_r, const char **error_r);
void milter_spool_fields_free(struct milter_field *f, size_t n);

/* What an added recipient is: 0 a local mailbox (*mailbox_r, caller
 * frees), 1 remote, 2 an unknown local address (left out), -1 the store
 * cannot say now. */
typedef int milter_resolve_fn(void *arg, const char *address,
    char **mailbox_r);

/*
 * Write spool_dir/incoming/ID again (a new file renamed over it) with
 * the job's changes: env is changed in place (sender, recipients) and
 * written first, then the fields (the first, our Received:, is never
 * changed, moved or deleted), then the body (the job's new one, or the
 * old one copied from fd). The header fields added or changed are
 * appended to added (name NUL value NUL pairs counted in *nadded_r).
 * 0, 1 no recipient is left (the message is to be dropped), -1 with
 * *error_r (a temporary failure; the old file is left).
 */
int milter_spool_rewrite(const char *spool_dir, const char *id, int fd,
    size_t offset, struct envelope *env, const struct milter_job *job,
    milter_resolve_fn *resolve, void *resolve_arg, struct str *added,
    size_t *nadded_r, const char **error_r);

#endif
