/*
 * commit: the pool of threads that make accepted messages durable (issue
 * 18, docs/architecture.md "Durability").
 *
 * A commit's durable part (the Maildir files and new/ fsync'd, or the spool
 * file and queue/) blocks on the disk for most of its time. Done on the
 * back side's few worker threads it held them from the quick requests
 * (RCPT, the spool file's open) and let only that few fsyncs be under way
 * at once, so the kernel and spool_fsync_dir had little to share. The pool
 * runs many commits at once: their file syncs go to the disk together
 * (one journal commit for several on ext4, XFS) and their directory syncs
 * are shared by spool_fsync_dir's group commit. A job's run function does
 * the blocking part and hands the reply back (be_defer_resume).
 */
#ifndef SEKISHO_COMMIT_H
#define SEKISHO_COMMIT_H

struct commit_pool;

typedef void commit_fn(void *arg);

/* threads > 0. Never NULL (fatal if no thread can start). */
struct commit_pool *commit_pool_new(int threads);
/* Run fn(arg) on a pool thread, in order of submission as threads free
 * up. After commit_pool_drain began, fn runs at once on the caller's
 * thread. */
void commit_pool_submit(struct commit_pool *p, commit_fn *fn, void *arg);
/* Wait until every job submitted has run (new ones then run inline). */
void commit_pool_drain(struct commit_pool *p);
/* Drain, stop the threads, free; *p NULL after. */
void commit_pool_free(struct commit_pool **p);
/* Jobs submitted and jobs that found every thread busy (metrics, tests). */
void commit_pool_stats(struct commit_pool *p, unsigned long *submitted_r,
    unsigned long *waited_r);

#endif
