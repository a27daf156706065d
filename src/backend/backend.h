/*
 * backend: the back side of the seam. It holds the store, the spool and
 * the queue, and does the blocking work (password hashing, SQLite,
 * fsync) on a pool of worker threads, so no session loop ever blocks.
 *
 * Session loops talk to it only through channels (be_proto.h): one
 * SOCK_SEQPACKET pair per session process. One worker at a time (the
 * leader) polls every channel, queues what it read and runs a job
 * itself; the others run the rest (backend.c, leader and followers).
 * Each runs the handler for the type and sends the reply back on the
 * same channel. It runs in
 * its own process as `user` (docs/security.md); channels come and go
 * with the session processes the master starts.
 */
#ifndef SEKISHO_BACKEND_H
#define SEKISHO_BACKEND_H

#include <sys/socket.h>

#include "../core/msg.h"
#include "../geo/geo.h"

struct account;
struct config;
struct queue;
struct store;
struct backend;

struct be_worker {
	const struct config	*conf;
	struct queue		*queue;
	struct store		*store;		/* opened lazily, per thread */
	int			 index;
	struct backend		*backend;
	/* The channel of the job being run (set per job): with a
	 * request's session number, the key of the back side's own
	 * session record (be_session.h). */
	unsigned		 chan;
	/* The job being run (set per job by backend_run_job), for
	 * be_worker_defer. */
	struct be_job		*job;
};

/* Returns 0 and fills reply (already msg_init'ed with the request's type
 * and id), or -1 when the request is malformed (BE_FAIL is sent). */
typedef int be_handler(struct be_worker *w, struct msg *req,
    struct msg *reply);

/*
 * A reply sent later (issue 16: the milter conversation at commit). A
 * handler calls be_worker_defer and returns BE_DEFERRED: no reply is sent
 * now, the channel stays (its records too) until the deferred reply is
 * done. Later, from any thread, be_defer_resume queues fn on the worker
 * pool as a job of that channel: fn fills reply (msg_init'ed with the
 * request's type and id; NULL when the channel is gone: fn only cleans
 * up) and returns 0, or -1 for BE_FAIL; then the reply is sent and d is
 * freed. Each defer is resumed exactly once.
 */
#define BE_DEFERRED	1
struct be_defer;
typedef int be_resume_fn(struct be_worker *w, struct msg *reply, void *arg);
struct be_defer *be_worker_defer(struct be_worker *w);
void be_defer_resume(struct be_defer *d, be_resume_fn *fn, void *arg);
/* The same, but fn runs now on the calling thread (any thread), with w
 * NULL: for a reply that needs no worker (no store), e.g. from the queue's
 * commit pool (issue 18), saving a hand-over to a worker. */
void be_defer_reply(struct be_defer *d, be_resume_fn *fn, void *arg);
/* The back side's milter thread (src/milter/milter.h). */
struct milter_engine *be_worker_milter(struct be_worker *w);

/* Handlers, by part. */
int be_auth(struct be_worker *w, struct msg *req, struct msg *reply);
/* A login's end (be_auth, be_apop): a failure counted against canon, or
 * the account taken into session sess on OK; then its metric and the
 * reply: result, the address (OK), the suspend reason (SUSPENDED), delay,
 * locked. */
void be_auth_reply(struct be_worker *w, struct store *st, uint64_t sess,
    const char *canon, const char *client, const char *service,
    uint32_t result, const struct account *a, int64_t locked,
    uint64_t start, struct msg *reply);
int be_rcpt(struct be_worker *w, struct msg *req, struct msg *reply);
int be_rcpt_answer(struct be_worker *w, uint64_t sess, const char *address,
    struct msg *reply);
int be_rcpt_open(struct be_worker *w, struct msg *req, struct msg *reply);
int be_spool_open(struct be_worker *w, struct msg *req, struct msg *reply);
int be_spool_commit(struct be_worker *w, struct msg *req, struct msg *reply);
int be_spool_abort(struct be_worker *w, struct msg *req, struct msg *reply);
int be_spool_space(struct be_worker *w, struct msg *req, struct msg *reply);
int be_policy_mail(struct be_worker *w, struct msg *req, struct msg *reply);
/* The notice into account's mailbox that something was refused from
 * abroad (service: "submission", "pop3" or "imap"), once a day per
 * account, country and service. */
void be_overseas_notice(struct be_worker *w, const char *account,
    const char *client, const char *country, const char *service);
int be_policy_postfix(struct be_worker *w, struct msg *req,
    struct msg *reply);
int be_pop3_open(struct be_worker *w, struct msg *req, struct msg *reply);
int be_pop3_retr(struct be_worker *w, struct msg *req, struct msg *reply);
int be_pop3_update(struct be_worker *w, struct msg *req, struct msg *reply);
int be_pop3_close(struct be_worker *w, struct msg *req, struct msg *reply);
int be_apop(struct be_worker *w, struct msg *req, struct msg *reply);
int be_popbsmtp(struct be_worker *w, struct msg *req, struct msg *reply);
int be_portal(struct be_worker *w, struct msg *req, struct msg *reply);
int be_apop_timestamp(struct be_worker *w, struct msg *req,
    struct msg *reply);
int be_authpolicy(struct be_worker *w, struct msg *req, struct msg *reply);
int be_session_end_req(struct be_worker *w, struct msg *req,
    struct msg *reply);

/* A channel gone: its session's mailbox is given up (the lease released
 * by the keeper thread), its spool file removed. Any thread. */
void be_mailbox_abandon(uint64_t handle);
void be_spool_abandon(const char *id);
/* A channel gone: the spool files kept for its reuse are removed. */
void be_spool_channel_gone(unsigned chan);
/* BE_SESSION_END: close the mailbox now (the lease given back). */
void be_mailbox_close_handle(struct be_worker *w, uint64_t handle);
/* BE_SESSION_END, a second BE_SPOOL_OPEN: remove an incoming file. */
void be_spool_drop(struct be_worker *w, const char *id);

/* The queue a notice or bounce is committed to (may be NULL in tests). */
struct queue *be_worker_queue(struct be_worker *w);

/*
 * The country of a printable client address, from the back side's geo
 * database (shared by all workers, replaced whole on reload). sa_r, when
 * not NULL, gets the parsed address. -1 if the text is not an address
 * (r is then GEO_UNKNOWN).
 */
int be_geo_lookup(struct be_worker *w, const char *client,
    struct sockaddr_storage *sa_r, struct geo_result *r);

/* The worker's store, opened on first use; NULL (logged) if it cannot be
 * opened now: the caller answers with a temporary failure. */
struct store *be_worker_store(struct be_worker *w);

/*
 * Start the workers, serving the given back-side channel
 * ends (one per session loop; taken over). conf and q must outlive it.
 */
struct backend *backend_start(const struct config *conf, struct queue *q,
    const int *fds, int nfds, const char **error_r);
/* Stop reading requests, answer those queued (a commit in flight ends),
 * stop the workers, close every channel. */
void backend_stop(struct backend **be);
/* SIGHUP: open the geo database again; on error the old one stays. */
int backend_reload_geo(struct backend *be, const char **error_r);
/*
 * Serve one more channel end (taken over): a new session process. Its
 * EOF removes it; replies owed to it are then dropped. Returns its id
 * (for logs). Any thread.
 */
int backend_add_channel(struct backend *be, int fd);
/*
 * SIGHUP: jobs started from now on see conf (which must outlive the
 * backend: old configs are never freed, a job may hold one); the geo
 * database is opened again from it (on error the old one stays, logged).
 */
void backend_reload(struct backend *be, const struct config *conf);

#endif
