/*
 * queue: the delivery runner on the back side. It owns delivery threads
 * that take committed messages from spool_dir/queue, deliver each local
 * recipient into its Maildir, journal each finished recipient in ID.done,
 * and remove the message when every recipient is done. Remote recipients
 * stay queued untouched (outbound delivery is a later part).
 *
 * At start it purges incoming/ and schedules every message in queue/, so
 * what was acknowledged before a crash is delivered after the restart.
 */
#ifndef SEKISHO_QUEUE_H
#define SEKISHO_QUEUE_H

struct config;
struct queue;

/* Starts the threads. Returns NULL on error (error_r). */
struct queue *queue_start(const struct config *conf, const char **error_r);
/* A message was just committed: deliver it soon. Thread-safe. */
void queue_notify(struct queue *q, const char *id);
/* Stop threads after the delivery in progress (nothing half-done stays
 * visible: a Maildir file is in new/ only once complete). */
void queue_stop(struct queue **q);

/* Deliver everything deliverable now, in the calling thread (tests and
 * the CLI's "queue run"). Returns number of messages fully done. */
int queue_run_once(const struct config *conf, const char **error_r);

#endif
