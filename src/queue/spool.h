/*
 * spool: the durable on-disk queue (spool_dir):
 *   incoming/ID   being received, or delivered at commit, emptied and kept
 *                 for the same session process's next message (its inode
 *                 reused);
 *                 never acknowledged; removed at start
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

#include <stdint.h>

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
/*
 * For a writer that formats the envelope itself (the SMTP session, given
 * only a descriptor): create incoming/ID (0600, must not exist) and
 * return it in *fd_r, empty and open for writing.
 */
int spool_open_incoming(const char *spool_dir, const char *id, int *fd_r,
    const char **error_r);
/*
 * issue 18: the same with the inode of incoming/OLD, a file the back side
 * kept after delivering it (a new file per message made ext4 allocate and
 * free an inode each time, most of the CPU a message): renamed to
 * incoming/ID (which must not exist) and emptied. 0 with *fd_r, -1 when it
 * cannot be (the caller removes OLD and creates ID as before).
 */
int spool_reuse_incoming(const char *spool_dir, const char *old,
    const char *id, int *fd_r);
/* Before spool_commit of such a file: 0 if incoming/ID starts with an
 * envelope that parses and names ID, so nothing the queue would reject
 * as corrupt is ever acknowledged. */
int spool_check_incoming(const char *spool_dir, const char *id,
    const char **error_r);
/*
 * Read and parse the envelope at the head of an open spool file (at
 * most SPOOL_ENVELOPE_MAX bytes up to its empty line; the message is
 * not read). On success *offset_r is where the message starts. On
 * error *corrupt_r tells a file that is not a valid spool file (1) from
 * an I/O error (0).
 */
#define SPOOL_ENVELOPE_MAX	(1024 * 1024)
int spool_read_envelope(int fd, struct envelope *env, size_t *offset_r,
    int *corrupt_r, const char **error_r);

/* fsync incoming/ID, rename to queue/ID, fsync both directories. The fd
 * given by spool_create may be closed before or after. */
int spool_commit(const char *spool_dir, const char *id, const char **error_r);
/* Remove incoming/ID (never acknowledged). */
void spool_abort(const char *spool_dir, const char *id);

/*
 * Free space for a new message (queue_minfree, RFC 1870 SIZE): 1 when the
 * space left on spool_dir's file system after want bytes is at least
 * minfree, 0 when not, -1 when it cannot be told. *avail_r is the space
 * available (UINT64_MAX when not looked up: minfree and want both 0).
 */
int spool_space(const char *spool_dir, uint64_t minfree, uint64_t want,
    uint64_t *avail_r, const char **error_r);

/* Remove everything in incoming/ (at start: nothing there was acked). */
int spool_purge_incoming(const char *spool_dir, const char **error_r);

/* Helpers shared by the queue part (spool, maildir, queue runner). */
/* write() all of buf, retrying short writes and EINTR; -1 with errno. */
int spool_write_full(int fd, const void *buf, size_t len);
/* fsync a directory, so names created or removed in it are durable;
 * -1 with errno. Thread-safe; concurrent callers for one directory share
 * one fsync that started after all of their changes (group commit). */
int spool_fsync_dir(const char *path);
/* Since start: directory fsyncs asked for, and fsyncs made for them. */
void spool_fsync_dir_stats(uint64_t *asked_r, uint64_t *done_r);
/* Of those fsyncs, the ones finished (tests). */
uint64_t spool_fsync_dir_ended(void);
/* "what: strerror(errno)" in a thread-local buffer, valid until the next
 * call in this thread: for error_r after a failed system call. */
const char *spool_errno_error(const char *what);

#endif
