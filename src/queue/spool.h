/*
 * spool: the durable on-disk queue (spool_dir):
 *   incoming/ID   being received; never acknowledged; removed at start
 *   queue/ID      committed: fsync'd file, renamed, directory fsync'd
 *   queue/ID.done delivery journal: one line per finished recipient,
 *                 "INDEX STATUS\n" (index into envelope rcpts), appended
 *                 and fsync'd after each delivery
 *
 * "250 queued as ID" may be sent only after spool_commit() returned 0.
 * These calls block (fsync): back side only.
 */
#ifndef SEKISHO_SPOOL_H
#define SEKISHO_SPOOL_H

#include "envelope.h"

/* Create spool_dir/{incoming,queue} if missing (mode 0700). */
int spool_init(const char *spool_dir, const char **error_r);

/*
 * Start a message: assign env->id if empty, create incoming/ID (0600),
 * write the envelope and then prepend (e.g. the Received header, already
 * CRLF-terminated; may be NULL). Returns 0 with *fd_r open for appending
 * the rest of the message; the caller writes, then commits or aborts.
 */
int spool_create(const char *spool_dir, struct envelope *env,
    const char *prepend, int *fd_r, const char **error_r);
/* fsync incoming/ID, rename to queue/ID, fsync both directories. The fd
 * given by spool_create may be closed before or after. */
int spool_commit(const char *spool_dir, const char *id, const char **error_r);
/* Remove incoming/ID (never acknowledged). */
void spool_abort(const char *spool_dir, const char *id);

/* Remove everything in incoming/ (at start: nothing there was acked). */
int spool_purge_incoming(const char *spool_dir, const char **error_r);

#endif
