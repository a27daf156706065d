/*
 * mta: the outbound SMTP/LMTP client. One event loop thread, owned by the
 * queue (back side): its sockets never touch a session loop. The queue
 * hands it jobs (one transaction: one message, one next hop, up to
 * MTA_JOB_RCPTS recipients); it resolves the next hop with c-ares (MX per
 * RFC 5321 5.1, RFC 7505 null MX, A/AAAA fallback), connects (IPv4 and
 * IPv6), speaks EHLO/LHLO, STARTTLS, AUTH PLAIN, PIPELINING, SIZE,
 * 8BITMIME, sends the message from the spool file, and reports a result
 * per recipient through job->done, called on its own thread. It reuses
 * connections per destination and limits them per destination and in
 * total. It never touches the spool journal: the queue does that.
 */
#ifndef SEKISHO_MTA_H
#define SEKISHO_MTA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mta_route.h"

#define MTA_JOB_RCPTS	100	/* RFC 5321 4.5.3.1.8: at least 100 */

enum mta_result {
	MTA_PENDING,
	MTA_SENT,
	MTA_TEMPFAIL,
	MTA_PERMFAIL,
};

struct mta_job_rcpt {
	size_t		 index;		/* in the envelope (the queue's) */
	char		*address;	/* RCPT TO */
	enum mta_result	 result;
	char		 status[16];	/* RFC 3463 "5.1.1" */
	char		*reply;		/* one printable line */
	int		 reply_smtp;	/* reply is the server's */
};

struct mta_job {
	char			 id[24];	/* queue ID, for logs */
	char			*sender;	/* "" for <> */
	int			 fd;		/* spool file, not owned */
	off_t			 offset;	/* where the message starts */
	size_t			 size;		/* of the message */
	int			 eightbit;	/* message has 8-bit bytes */
	int			 smtputf8;
	struct mta_nexthop	 nh;
	char			*key;		/* mta_nexthop_key(&nh) */
	struct mta_job_rcpt	*rcpts;
	size_t			 rcpt_count;
	char			*relay;		/* "host[ip]:port" last tried */
	int			 aborted;	/* daemon stopping: no result */
	/* Called once on the mta thread when every recipient has a
	 * result (or aborted is set). */
	void			(*done)(struct mta_job *job, void *arg);
	void			*done_arg;
	struct mta_job		*next;		/* mta-internal */
};

struct config;
struct mta;

/* A job with its own copies of what is given; free with mta_job_free. */
struct mta_job *mta_job_new(const char *id, const char *sender, int fd,
    off_t offset, size_t size, const struct mta_nexthop *nh);
void mta_job_add_rcpt(struct mta_job *job, size_t index,
    const char *address);
void mta_job_free(struct mta_job **job);

/*
 * Start the loop thread. ctl_fd, when >= 0, is watched for reading on
 * the loop and ctl_cb called on the loop thread when it is readable
 * (the queue's control socket). NULL on error (error_r).
 */
struct mta *mta_start(const struct config *conf,
    const struct mta_routes *routes, int ctl_fd,
    void (*ctl_cb)(int fd, void *arg), void *ctl_arg, const char **error_r);
/* Thread-safe: the job belongs to the mta until job->done is called. */
void mta_submit(struct mta *m, struct mta_job *job);
/* Stop the thread; jobs not finished get done with aborted = 1. */
void mta_stop(struct mta **m);

#endif
