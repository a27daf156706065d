/*
 * milter: the back side's milter client (issue 16; docs/architecture.md
 * "Mail filters"). One thread with its own libevent base talks to every
 * filter of every message; the worker that runs BE_SPOOL_COMMIT hands it
 * a job and returns (its reply is deferred, backend.h), and the job's
 * done callback runs on the milter thread when every filter has answered
 * or failed. Nothing here blocks on a filter: connect, each answer and
 * the end of message have their timeouts, and a filter that is down,
 * late or talks garbage gets milter_default_action.
 *
 * The whole conversation runs at the end of DATA, before the commit:
 * OPTNEG, connect, helo, mail, each rcpt, data, each header, end of
 * headers, body chunks, end of message, quit; filters one after another
 * in the configured order. Each filter sees the message as received;
 * their changes are collected in order and applied by the caller.
 *
 * A filter's connection outlives the message for the rest of its SMTP
 * session, as Postfix keeps one per smtpd session: after a message has
 * ended well (any answer at or after MAIL) it waits idle, bounded in
 * number and time, and the session's next message starts on it with
 * SMFIC_ABORT, then HELO and MAIL (the filter keeps what CONNECT told
 * it). A job whose session (job->session, and every connect- and
 * helo-level fact) differs never gets it. A pooled connection that the
 * filter closed, or that fails before its first answer to the new
 * message, is replaced by a new one without failing the message.
 */
#ifndef SEKISHO_MILTER_H
#define SEKISHO_MILTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/config.h"
#include "../core/str.h"

struct milter_engine;

/* Start the milter thread; NULL with *error_r. */
struct milter_engine *milter_engine_start(const char **error_r);
/* End every conversation (a temporary failure: done is called for each,
 * on the milter thread), then stop the thread; milter_submit refuses
 * from then on. The memory stays (NULL: nothing). */
void milter_engine_halt(struct milter_engine *e);
/* Halt it if not yet, then free it. */
void milter_engine_stop(struct milter_engine **e);

enum milter_verdict {
	MILTER_ACCEPT,		/* go on with the commit */
	MILTER_REJECT,		/* reply: 5xx */
	MILTER_TEMPFAIL,	/* reply: 4xx */
	MILTER_DISCARD,		/* 250 to the client, nothing queued */
};

/* A header field: name, and the value after the colon as written
 * (leading space kept, line ends as LF). */
struct milter_header {
	char	*name;
	char	*value;
};

/* A change a filter asked for at end of message (MILTER_R_* cmd). */
struct milter_change {
	char	 cmd;		/* h i m + - e */
	uint32_t index;		/* i: position; m: occurrence (1-based) */
	char	*name;		/* header name; address (+ - e) */
	char	*value;		/* header value (m: "" deletes); NULL */
};

struct milter_job {
	/* set by the caller (copies, freed by milter_job_free) */
	char		**specs;	/* inet:..., unix:... */
	int		 nspecs;
	int		 connect_timeout, command_timeout, eom_timeout;
	enum milter_default_action default_action;
	size_t		 body_max;	/* a replaced body's cap */
	char		*id;		/* queue id: macro i, logs */
	char		*session;	/* the SMTP session's key (its
					 * filter connections are kept for
					 * its next message); NULL: none */
	/* macros and events */
	char		*hostname;	/* j, {if_name} */
	char		*daemon_name;
	char		*if_addr;
	char		*client_addr;
	char		*client_port;
	char		*helo;
	char		*tls_version, *cipher;
	char		*auth_type, *auth_authen;	/* NULL: none */
	char		*sender;	/* "" for <> */
	char		**rcpts;
	size_t		 nrcpts;
	struct milter_header *headers;
	size_t		 nheaders;
	int		 fd;		/* the spool file; the caller's */
	off_t		 body_off, body_end;

	/* the outcome, for done */
	enum milter_verdict verdict;
	char		*verdict_by;	/* the filter that refused or
					 * discarded (NULL: a default action) */
	char		*reply;		/* REJECT, TEMPFAIL: the SMTP reply */
	char		*quarantine;	/* reason: the message is held */
	char		*quarantine_by;	/* the filter's spec */
	struct milter_change *changes;
	size_t		 nchanges;
	int		 body_replaced;
	struct str	 body;		/* the new body (LF or CRLF) */

	/* called once, on the milter thread */
	void		(*done)(struct milter_job *job, void *arg);
	void		*arg;
};

/* The name of SMTP session sess of back-side channel chan, for
 * job->session and milter_session_end. */
#define MILTER_SESSION_MAX	48
void milter_session_name(char buf[MILTER_SESSION_MAX], unsigned chan,
    uint64_t sess);
/* The SMTP session is over: the filter connections kept for it get
 * SMFIC_QUIT (as Postfix quits at the end of an smtpd session). Any
 * thread; e may be NULL. */
void milter_session_end(struct milter_engine *e, const char *session);

/* A new job (zeroed, str initialised). */
struct milter_job *milter_job_new(void);
void milter_job_free(struct milter_job *job);
/* Hand a job over: 0, or -1 when the engine is stopping (done is then
 * never called; the caller answers). Any thread. */
int milter_submit(struct milter_engine *e, struct milter_job *job);

#endif
