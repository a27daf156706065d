/*
 * queue: the delivery runner on the back side. Delivery threads take
 * committed messages from spool_dir/queue, deliver local recipients into
 * their Maildir (or hand them to LMTP), hand remote recipients to the
 * outbound client (src/mta/), journal every result in ID.done, bounce
 * permanent failures to the sender (dsn.h), retry temporary ones with
 * exponential back-off, and remove the message when every recipient is
 * done. Details and guarantees: docs/delivery.md.
 *
 * At start it purges incoming/ and schedules every message in queue/, so
 * what was acknowledged before a crash is delivered after the restart.
 *
 * The journal ID.done, one line per event of a recipient (INDEX is its
 * place in the envelope; the last line of an index wins; a line without
 * its LF was cut by a crash and is ignored):
 *   INDEX delivered [MAILBOX]          done, local Maildir
 *   INDEX sent RELAY                   done, accepted by SMTP/LMTP
 *   INDEX bounced                      done, in a DSN to the sender
 *   INDEX dropped                      done, failed; no DSN (sender <>)
 *   INDEX failed STATUS LAST REMOTE SMTP TEXT
 *                                      failed for good; DSN not yet sent
 *   INDEX deferred NEXT COUNT STATUS LAST REMOTE SMTP TEXT
 *                                      temporary failure; retry at NEXT
 *   INDEX warned                       delay warning sent
 * (NEXT, LAST: unix times; REMOTE "-" when none; SMTP 1 when TEXT is a
 * server reply; TEXT printable, to the end of the line.)
 *
 * Besides: ID.hold (empty) keeps the message from being tried.
 */
#ifndef SEKISHO_QUEUE_H
#define SEKISHO_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct queue;

/* Starts the threads. Returns NULL on error (error_r). */
struct queue *queue_start(const struct config *conf, const char **error_r);
/* A message was just committed: deliver it soon. Thread-safe. */
void queue_notify(struct queue *q, const char *id);
/* Try now, whatever the retry time: one message, or (id NULL) all,
 * reading queue/ again for messages not known yet. Thread-safe. */
void queue_flush(struct queue *q, const char *id);
/* Stop threads after the delivery in progress (nothing half-done stays
 * visible: a Maildir file is in new/ only once complete). */
void queue_stop(struct queue **q);

/* Deliver everything locally deliverable now, in the calling thread
 * (tests). Remote recipients are not tried. Returns the number of
 * messages fully done. */
int queue_run_once(const struct config *conf, const char **error_r);

/* --- reading a message's state (the queue CLI) ------------------------ */

enum queue_rcpt_status {
	QUEUE_RCPT_NEW,		/* never tried */
	QUEUE_RCPT_DEFERRED,
	QUEUE_RCPT_FAILED,	/* DSN pending */
	QUEUE_RCPT_DONE,
};

struct queue_rcpt_state {
	enum queue_rcpt_status status;
	char		 how[16];	/* done: delivered, sent, bounced... */
	int		 warned;
	int		 count;		/* temporary failures so far */
	int64_t		 next_try;	/* unix */
	int64_t		 last_try;
	char		 dsn[16];	/* "4.4.1" */
	char		*remote;	/* NULL if none */
	char		*text;		/* last reply or reason; NULL */
	int		 smtp;
};

/* Read path (a journal) into st[count] (zeroed first). 0, or -1 with
 * error_r on an I/O error; a missing file is no event. */
int queue_journal_read(const char *path, struct queue_rcpt_state *st,
    size_t count, const char *id, const char **error_r);
void queue_rcpt_states_free(struct queue_rcpt_state *st, size_t count);

/* The control channel: a datagram socket spool_dir/control on which the
 * daemon takes "flush" and "flush ID". Returns 1 if the daemon got it,
 * 0 if none is listening, -1 on another error (error_r). */
#define QUEUE_CONTROL_SOCKET	"control"
int queue_control_send(const char *spool_dir, const char *msg,
    const char **error_r);

#endif
