/*
 * be_session: the back side's own record of each session it serves
 * (issue 13: authority lives on the back side).
 *
 * A request that acts for a session carries a u64 session number as its
 * first field, chosen by the session process and unique within its
 * channel. A record is keyed by (the back side's own channel id, that
 * number): a session process can only ever name, and so only confuse,
 * its own sessions. The record holds what the back side itself decided
 * for the session, and every later request is checked against it, never
 * against what the request says:
 *
 *   - the account: set only by the back side's own successful answer to
 *     BE_AUTH, BE_APOP or a BE_POPBSMTP match;
 *   - the APOP timestamp the back side issued (BE_APOP_TIMESTAMP);
 *   - the recipients accepted at BE_RCPT (address and mailbox), at most
 *     the configured recipients per message, the oldest forgotten first;
 *   - the sending policy's answer to the transaction's MAIL (sender,
 *     country, from abroad);
 *   - the spool file opened (queue id) and the POP3 mailbox opened.
 *
 * Thread-safe (one lock over the table; nothing slow is done under it).
 * Bounded: at most `cap` records per channel (the handler passes the
 * limit), over it a request that would make one is refused.
 */
#ifndef SEKISHO_BE_SESSION_H
#define SEKISHO_BE_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "../queue/envelope.h"

/* The transaction as the back side recorded it (be_session_txn). */
struct be_session_txn {
	char	*account;		/* NULL: not authenticated */
	int	 policy_ok;		/* BE_POLICY_MAIL answered OK */
	char	*sender;		/* the sender it was asked about */
	char	 country[16];
	int	 overseas;
};

/* What a session left behind when it ended (be_session_end). */
struct be_session_left {
	int		 has_mbox;
	uint64_t	 mbox;		/* be_mailbox handle */
	char		 spool_id[QUEUE_ID_LEN + 1];	/* "" if none */
};

/*
 * Make sure the record exists: 0 when it does (made now or before), -1
 * when the channel has cap records already or the session ended a
 * moment ago (a late request of a session that is gone; logged).
 */
int be_session_touch(unsigned chan, uint64_t sess, size_t cap);

/* The authenticated account (caller frees), or NULL. */
char *be_session_account(unsigned chan, uint64_t sess);
/* Set by the back side's own successful login answer; a record that is
 * gone is not made again. */
void be_session_set_account(unsigned chan, uint64_t sess,
    const char *account);

/* The APOP timestamp issued for the session (caller frees), or NULL. */
char *be_session_apop_timestamp(unsigned chan, uint64_t sess);
int be_session_set_apop_timestamp(unsigned chan, uint64_t sess,
    const char *timestamp);

/* A recipient the back side accepted (mailbox NULL: remote). At most cap
 * are kept; the oldest goes first. -1 if the record is gone. */
int be_session_rcpt_add(unsigned chan, uint64_t sess, const char *address,
    const char *mailbox, size_t cap);
/* 1 if that exact (address, mailbox) pair was accepted, else 0. */
int be_session_rcpt_accepted(unsigned chan, uint64_t sess,
    const char *address, const char *mailbox);

/* The policy's answer to MAIL (verdict OK only); resets the recipients:
 * a new transaction. */
void be_session_set_policy(unsigned chan, uint64_t sess, const char *sender,
    const char *country, int overseas);
/* Forget the transaction: recipients and policy answer. */
void be_session_txn_reset(unsigned chan, uint64_t sess);
/* A copy of the transaction; -1 if there is no record. */
int be_session_txn(unsigned chan, uint64_t sess, struct be_session_txn *t);
void be_session_txn_deinit(struct be_session_txn *t);

/* The spool file opened: old_r gets the one still open before ("" if
 * none), which the caller aborts. -1 if the record is gone. */
int be_session_spool_set(unsigned chan, uint64_t sess, const char *id,
    char old_r[QUEUE_ID_LEN + 1]);
/* 1 if id is the session's open spool file (it is then no longer
 * recorded: a file is committed or aborted once), else 0. */
int be_session_spool_take(unsigned chan, uint64_t sess, const char *id);

/* The mailbox opened: -1 if the record is gone or has one already. */
int be_session_mbox_set(unsigned chan, uint64_t sess, uint64_t handle);
/* The session's mailbox: 0 with *handle_r, -1 if none. */
int be_session_mbox(unsigned chan, uint64_t sess, uint64_t *handle_r);
/* The same, and no longer recorded (BE_POP3_CLOSE). */
int be_session_mbox_take(unsigned chan, uint64_t sess, uint64_t *handle_r);

/* BE_SESSION_END: drop the record; left_r says what to clean up. 0 if
 * there was one, -1 if not. */
int be_session_end(unsigned chan, uint64_t sess,
    struct be_session_left *left_r);
/* A channel that closed: drop all its records; their mailboxes are given
 * up (be_mailbox_abandon). */
void be_session_drop_channel(unsigned chan);
struct be_worker;
struct msg;

/* The records allowed per channel (from the config). */
size_t be_session_cap(const struct be_worker *w);
/* A handler's start: read the u64 session field and make sure the
 * record exists (be_session_touch); -1: refuse the request (BE_FAIL). */
int be_session_begin(struct be_worker *w, struct msg *req, uint64_t *sess_r);

/* Records held now (tests, metrics). */
size_t be_session_count(void);

#endif
