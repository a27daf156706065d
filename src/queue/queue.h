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
 * Besides: ID.hold keeps the message from being tried (queue_hold.c).
 */
#ifndef SEKISHO_QUEUE_H
#define SEKISHO_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

struct config;
struct queue;

/* Starts the threads. Returns NULL on error (error_r). */
struct queue *queue_start(const struct config *conf, const char **error_r);
/* A message was just committed: deliver it soon. Thread-safe. */
void queue_notify(struct queue *q, const char *id);
/*
 * Delivery at commit (issue 18): incoming/ID, whose envelope the back side
 * checked, goes straight into the Maildirs when every recipient is local
 * (and no LMTP route takes local mail): each Maildir file and new/ are
 * fsync'd, the delivery is logged as the queue logs it, and incoming/ID is
 * removed. Returns 1 when done (the caller acknowledges; no spool_commit,
 * no queue_notify); 0 when the message is for the queue (a remote
 * recipient, or a delivery failed: the recipients delivered are journaled
 * in queue/ID.done first), then the caller commits it as before; -1 with
 * error_r when the spool file cannot be read (nothing delivered). The
 * caller holds it only when nothing (risk, a filter) holds the message.
 */
int queue_commit_deliver(struct queue *q, const char *id,
    const char **error_r);
/* The same with the envelope the caller read from incoming/ID and checked
 * (fd open on that file, offset where the message starts): both are taken
 * over (fd closed, env left empty), so what is delivered is what was
 * checked, whatever the file's envelope says by then. With keep, a
 * message done (1) leaves incoming/ID to the caller, who reuses its inode
 * (spool_reuse_incoming) or removes it. */
int queue_commit_deliver_env(struct queue *q, const char *id, int fd,
    struct envelope *env, size_t offset, int keep, const char **error_r);
/* Run fn(arg) on the queue's commit pool (commit.h: the blocking half of
 * a commit, many at once); at once on this thread when q is NULL or the
 * pool is draining. */
void queue_commit_async(struct queue *q, void (*fn)(void *), void *arg);
/* Wait for the commits under way (the back side's stop, before its
 * workers end: their replies go through them). */
void queue_commit_drain(struct queue *q);
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

/* --- held messages (queue_hold.c) -------------------------------------- *
 *
 * spool_dir/queue/ID.hold marks a held message; the runner never tries
 * it. Its text (an empty mark, from older versions, is a hold by the
 * operator without a reason):
 *   SEKISHO-HOLD 1
 *   time 1763800000        when it was held (unix)
 *   by risk                what held it: risk, milter, desk:NAME, cli...
 *   account alice@ex.jp    (optional) the account whose mail it is
 *   reason TEXT            printable ASCII, to the end of the line
 * These calls block (fsync): back side and CLI only, never a session.
 */
struct str;

struct queue_hold {
	int64_t	 time;
	char	 by[64];
	char	 account[256];
	char	 reason[256];
};

/* Hold a message (queued, or about to be committed): write ID.hold
 * durably (tmp file, fsync, rename, fsync queue/). Values are cut to
 * size and made printable. 0, or -1 with error_r. */
int queue_hold_mark(const char *spool_dir, const char *id, const char *by,
    const char *account, const char *reason, const char **error_r);
/*
 * Commit incoming/ID as a held message: the mark first, then
 * spool_commit, so the runner never sees it unheld. The caller
 * acknowledges (250) and calls queue_notify as after spool_commit. 0, or
 * -1 with error_r (nothing committed, no mark left).
 */
int queue_hold_commit(const char *spool_dir, const char *id, const char *by,
    const char *account, const char *reason, const char **error_r);
/* 1 held (h filled), 0 not held, -1 on an error. */
int queue_hold_read(const char *spool_dir, const char *id,
    struct queue_hold *h);
/* Remove the mark: 1 released (the caller then has it tried:
 * queue_flush or the control socket), 0 not held or no such message
 * (error_r says which), -1 on an error. Of two releases racing, one
 * returns 1: the message is delivered once. */
int queue_hold_release(const char *spool_dir, const char *id,
    const char **error_r);
/* Delete a message (no bounce) under the runner's lock, waiting up to 10
 * s for a delivery in progress; held_only: only if held. 1 deleted, 0 not
 * there (or not held; error_r), -1 on an error. */
int queue_hold_delete(const char *spool_dir, const char *id, int held_only,
    const char **error_r);

struct queue_held {
	char			 id[QUEUE_ID_LEN + 1];
	struct envelope		 env;
	size_t			 size;		/* of the message */
	int			 held;
	struct queue_hold	 hold;
};
/* One message's envelope, size and hold mark. 0, or -1 (error_r). */
int queue_hold_load(const char *spool_dir, const char *id,
    struct queue_held *m, const char **error_r);
void queue_hold_unload(struct queue_held *m);
/* The IDs in SPOOL/queue/, sorted (IDs sort by time), n in *n_r (free
 * each and the array); *error_r 1 when the folder cannot be read. */
char **queue_ids_sorted(const char *spool_dir, size_t *n_r, int *error_r);

/* fn for each message in queue/ in ID order (held ones only if
 * held_only; account: only that account's submissions, or NULL); fn
 * returns <0 to stop. 0, or -1 when queue/ cannot be read. */
int queue_hold_each(const char *spool_dir, const char *account,
    int held_only, int (*fn)(const struct queue_held *m, void *ctx),
    void *ctx);
/* The message's header section (at most max bytes) appended to out. */
int queue_hold_headers(const char *spool_dir, const char *id, size_t max,
    struct str *out);

#endif
