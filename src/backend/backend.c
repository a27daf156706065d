/*
 * backend: the back side's worker pool, leader and followers (see backend.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/be_proto.h"
#include "../core/channel.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/xmalloc.h"
#include "../store/store.h"
#include "../queue/queue.h"
#include "be_keeper.h"
#include "backend.h"
#include "be_session.h"
#include "../milter/milter.h"

/*
 * What one channel may hold on the back side. A session has at most one
 * request in flight (it reads no command while one is pending; a portal
 * connection one per HTTP request), so a session process's outstanding
 * requests (queued, running, or answered but not yet written to its
 * socket) are at most its sessions: a few thousand is far above any
 * real one, and max_connections raises it. More is a session process
 * flooding the back side or not reading its replies: its channel is
 * closed (the master restarts it) before it takes the workers' time or
 * the back side's memory. The bytes and descriptors held for one channel
 * are bounded the same way (a request or reply is up to MSG_MAX_LEN; a
 * RETR reply carries a descriptor).
 */
#define BE_CHAN_MIN_CAP		4096
#define BE_CHAN_MAX_BYTES	(16 * 1024 * 1024)
#define BE_CHAN_MAX_FDS		256

/* A reply the socket had no room for, sealed. */
struct be_out {
	struct msg	 m;
	struct be_out	*next;
};

/*
 * One session loop's channel. Each queued job holds a reference, and the
 * poll set one while it holds it; the descriptor is closed when the
 * last goes, so a worker never writes to a number reused meanwhile.
 * Workers never wait on the socket: a reply that does not fit now is
 * queued, and the leader writes it when poll says POLLOUT.
 */
struct be_chan {
	int			 fd;
	unsigned		 id;		/* for logs */
	pthread_mutex_t		 send_lock;
	int			 refs;		/* under backend.lock */
	struct be_chan		*next;		/* pending addition */

	/* under backend.lock: its jobs, and its place in the round of
	 * channels with jobs (workers take one job per channel in turn,
	 * so a flood on one channel does not delay the others) */
	struct be_job		*jhead, *jtail;
	struct be_chan		*rnext;
	int			 in_ring;

	/* under send_lock */
	int			 dead;		/* dropped: nothing goes out */
	const char		*drop_why;	/* a worker asks the leader */
	char			 why[96];	/* backend_chan_account's */
	struct be_out		*ohead, *otail;	/* replies not written yet */
	unsigned		 outstanding;	/* requests not yet answered */
	size_t			 bytes;		/* requests + queued replies */
	unsigned		 nfds;		/* descriptors in queued replies */
};

struct be_job {
	struct msg	 m;
	struct be_chan	*chan;
	struct be_job	*next;
	struct be_defer	*defer;		/* a deferred reply's resumption */
};

/* A request answered later (backend.h). Holds a reference on chan. */
struct be_defer {
	struct backend	*be;
	struct be_chan	*chan;
	uint32_t	 type;
	uint64_t	 id;
	be_resume_fn	*fn;
	void		*arg;
};

/* A worker thread: its handler state, and how it is woken. */
struct be_thread {
	struct be_worker	 w;
	pthread_t		 thread;
	pthread_cond_t		 cond;		/* with backend.lock */
	int			 woken;		/* under backend.lock */
	struct be_thread	*next_idle;	/* under backend.lock */
};

/*
 * Leader and followers: there is no dispatcher thread. At most one
 * worker at a time, the leader, polls the channels (and the wake pipe);
 * what it reads it queues, it wakes a follower for each job but one,
 * and it runs that one itself: a request is read and answered by the
 * same thread, with no handover between threads (the handover, a
 * thread switch each way, cost most of a Postfix policy request at one
 * connection: docs/performance.md, W5). While it runs the job no one
 * polls, until a worker ends its job (and leads) or the standby wakes:
 * one idle worker sleeps at most BE_STANDBY_NS while the back side is
 * busy, and leads if no one does. Waking a follower to lead at every
 * job instead cost a thread switch per request too. So a request that
 * arrives while every worker is busy with a long job (an fsync, a slow
 * store) waits in its socket until one is free or the standby leads,
 * as it waited in the queue before.
 */
#define BE_STANDBY_NS	1000000		/* 1 ms */
#define BE_BUSY_NS	1000000000	/* busy: a job in the last second */
/* backend_poll: at most this long, and after a miss not for the next 1,
 * 2, 4 ... BE_SPIN_BACKOFF_MAX chances */
#define BE_SPIN_NS	200000		/* 200 µs */
#define BE_SPIN_BACKOFF_MAX	64
/* ... and only after this many poll rounds in a row read one request
 * each while no other job ran (several sessions asking: never) */
#define BE_SPIN_SERIAL	32

struct backend {
	const struct config	*conf;		/* under lock; see be_work */
	int			 wake[2];	/* the leader: look again */

	pthread_mutex_t		 lock;
	struct be_chan		*rhead, *rtail;	/* channels with jobs */
	int			 stopping;
	int			 leading;	/* a worker polls */
	struct be_thread	*idle;		/* workers waiting, newest first */
	struct be_thread	*standby;	/* the worker waiting timed */
	uint64_t		 last_job;	/* when one started (ns) */
	unsigned		 running;	/* workers running a job */
	size_t			 last_round;	/* jobs the last poll read */
	unsigned		 serial;	/* such rounds of one job in a row */
	/* the leader's only (backend_poll) */
	unsigned		 spin_skip, spin_backoff;
	struct be_chan		*adds;		/* channels to start polling */
	unsigned		 chan_ids;

	/* the poll set: only the leader of the moment uses it (handed
	 * from one leader to the next under lock) */
	struct be_chan		**chans;
	const char		**drop;
	struct pollfd		*pfd;
	size_t			 nchans, capchans;

	pthread_rwlock_t	 geo_lock;
	struct geo		*geo;

	struct milter_engine	*milter;

	struct be_thread	*threads;
	int			 nworkers;
};

static be_handler *const be_handlers[BE_TYPE_COUNT] = {
	[BE_AUTH] = be_auth,
	[BE_AUTHPOLICY] = be_authpolicy,
	[BE_RCPT] = be_rcpt,
	[BE_SPOOL_OPEN] = be_spool_open,
	[BE_SPOOL_COMMIT] = be_spool_commit,
	[BE_SPOOL_ABORT] = be_spool_abort,
	[BE_POLICY_MAIL] = be_policy_mail,
	[BE_POLICY_POSTFIX] = be_policy_postfix,
	[BE_POP3_OPEN] = be_pop3_open,
	[BE_POP3_RETR] = be_pop3_retr,
	[BE_POP3_UPDATE] = be_pop3_update,
	[BE_POP3_CLOSE] = be_pop3_close,
	[BE_APOP] = be_apop,
	[BE_POPBSMTP] = be_popbsmtp,
	[BE_SPOOL_SPACE] = be_spool_space,
	[BE_PORTAL_LOGIN] = be_portal,
	[BE_PORTAL_STATUS] = be_portal,
	[BE_PORTAL_OVERSEAS_ON] = be_portal,
	[BE_PORTAL_OVERSEAS_OFF] = be_portal,
	[BE_PORTAL_PASSWORD] = be_portal,
	[BE_PORTAL_APOP_ON] = be_portal,
	[BE_PORTAL_APOP_OFF] = be_portal,
	[BE_PORTAL_LOGOUT] = be_portal,
	[BE_ADMIN_LOGIN] = be_portal,
	[BE_ADMIN_SEARCH] = be_portal,
	[BE_ADMIN_ACCOUNT] = be_portal,
	[BE_ADMIN_AUDIT] = be_portal,
	[BE_ADMIN_TRACE] = be_portal,
	[BE_ADMIN_SUSPEND] = be_portal,
	[BE_ADMIN_RESUME] = be_portal,
	[BE_ADMIN_OVERSEAS_ON] = be_portal,
	[BE_ADMIN_OVERSEAS_OFF] = be_portal,
	[BE_ADMIN_LIMITS] = be_portal,
	[BE_ADMIN_LOGOUT] = be_portal,
	[BE_API_GET] = be_portal,
	[BE_API_OVERSEAS] = be_portal,
	[BE_API_LIMITS] = be_portal,
	[BE_API_HISTORY] = be_portal,
	[BE_ADMIN_RISK_TOP] = be_portal,
	[BE_ADMIN_RISK_CLEAR] = be_portal,
	[BE_ADMIN_RISK_HOLD] = be_portal,
	[BE_ADMIN_RISK_EXEMPT_ON] = be_portal,
	[BE_ADMIN_RISK_EXEMPT_OFF] = be_portal,
	[BE_ADMIN_WARN] = be_portal,
	[BE_ADMIN_HELD_RELEASE] = be_portal,
	[BE_ADMIN_HELD_DELETE] = be_portal,
	[BE_SESSION_END] = be_session_end_req,
	[BE_APOP_TIMESTAMP] = be_apop_timestamp,
	[BE_PORTAL_OWN_FROM_ON] = be_portal,
	[BE_PORTAL_OWN_FROM_OFF] = be_portal,
	[BE_RCPT_OPEN] = be_rcpt_open,
};

struct queue *
be_worker_queue(struct be_worker *w)
{
	return w->queue;
}

int
be_geo_lookup(struct be_worker *w, const char *client,
    struct sockaddr_storage *sa_r, struct geo_result *r)
{
	struct backend *be = w->backend;
	struct sockaddr_storage ss;
	int ret = 0;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, client, &((struct sockaddr_in *)&ss)->sin_addr)
	    == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, client,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	pthread_rwlock_rdlock(&be->geo_lock);
	if (ss.ss_family == 0 || be->geo == NULL) {
		memset(r, 0, sizeof(*r));
		r->kind = GEO_UNKNOWN;
		xstrlcpy(r->source, "none", sizeof(r->source));
		ret = ss.ss_family == 0 ? -1 : 0;
	} else
		geo_lookup(be->geo, (struct sockaddr *)&ss, r);
	pthread_rwlock_unlock(&be->geo_lock);
	if (sa_r != NULL)
		*sa_r = ss;
	return ret;
}

int
backend_reload_geo(struct backend *be, const char **error_r)
{
	const struct config *conf;

	pthread_mutex_lock(&be->lock);
	conf = be->conf;
	pthread_mutex_unlock(&be->lock);

	struct geo *g = geo_open(conf, error_r), *old;

	if (g == NULL)
		return -1;
	pthread_rwlock_wrlock(&be->geo_lock);
	old = be->geo;
	be->geo = g;
	pthread_rwlock_unlock(&be->geo_lock);
	geo_close(&old);
	return 0;
}

struct store *
be_worker_store(struct be_worker *w)
{
	const char *error;

	if (w->store != NULL)
		return w->store;
	w->store = store_open(w->conf->store, &error);
	metrics_store_up(w->store != NULL);
	if (w->store == NULL) {
		log_warnx("backend: store %s: %s", w->conf->store, error);
		return NULL;
	}
	return w->store;
}

/* ch to the end of the ring of channels with jobs. backend.lock held. */
static void
backend_ring_append(struct backend *be, struct be_chan *ch)
{
	ch->rnext = NULL;
	if (be->rtail != NULL)
		be->rtail->rnext = ch;
	else
		be->rhead = ch;
	be->rtail = ch;
}

/* A job read by the leader (holding its reference to the channel) to
 * its channel's queue. backend.lock held. */
static void
backend_push(struct backend *be, struct be_job *job)
{
	struct be_chan *ch = job->chan;

	job->next = NULL;
	if (ch->jtail != NULL)
		ch->jtail->next = job;
	else
		ch->jhead = job;
	ch->jtail = job;
	if (!ch->in_ring) {
		ch->in_ring = 1;
		backend_ring_append(be, ch);
	}
}

/* Wake the newest idle worker, else the standby: 1 if one was.
 * backend.lock held. */
static int
backend_wake_one(struct backend *be)
{
	struct be_thread *t = be->idle;

	if (t != NULL) {
		be->idle = t->next_idle;
		t->next_idle = NULL;
	} else if ((t = be->standby) != NULL)
		be->standby = NULL;
	else
		return 0;
	t->woken = 1;
	pthread_cond_signal(&t->cond);
	return 1;
}

static uint64_t
backend_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The next job, one channel after another. backend.lock held; NULL if
 * none. */
static struct be_job *
backend_pop(struct backend *be)
{
	struct be_chan *ch = be->rhead;
	struct be_job *job;

	if (ch == NULL)
		return NULL;
	be->rhead = ch->rnext;
	if (be->rhead == NULL)
		be->rtail = NULL;
	job = ch->jhead;
	ch->jhead = job->next;
	if (ch->jhead == NULL) {
		ch->jtail = NULL;
		ch->in_ring = 0;
	} else
		backend_ring_append(be, ch);
	job->next = NULL;
	return job;
}

/* Replies not written yet. send_lock held. */
static void
backend_chan_clear_out(struct be_chan *ch)
{
	while (ch->ohead != NULL) {
		struct be_out *o = ch->ohead;

		ch->ohead = o->next;
		msg_deinit(&o->m);
		free(o);
	}
	ch->otail = NULL;
	ch->nfds = 0;
}

static void
backend_chan_unref(struct backend *be, struct be_chan *ch)
{
	int last;

	pthread_mutex_lock(&be->lock);
	last = --ch->refs == 0;
	pthread_mutex_unlock(&be->lock);
	if (!last)
		return;
	/* No job of the channel is left: its sessions' records go, and
	 * with them their POP3 locks and spool files (be_session.h). */
	be_session_drop_channel(ch->id);
	backend_chan_clear_out(ch);
	close(ch->fd);
	pthread_mutex_destroy(&ch->send_lock);
	free(ch);
}

static void
backend_wake(struct backend *be)
{
	/* A full pipe already says "look again". */
	if (write(be->wake[1], "x", 1) < 0 && errno != EAGAIN)
		log_warn("backend: wake");
}

/*
 * The one place a channel is dropped (its session process closed it,
 * or it went over its cap, or its socket failed): no reply goes out any
 * more, its queued jobs are skipped, and the session process sees EOF
 * now (shutdown), although the descriptor stays open until the last job
 * holding it ends. The poll set's reference goes.
 */
static void
backend_chan_drop(struct backend *be, struct be_chan *ch, const char *why)
{
	if (why == NULL)
		log_debug("backend: channel %u closed by its session process",
		    ch->id);
	else
		log_warnx("backend: channel %u closed: %s", ch->id, why);
	pthread_mutex_lock(&ch->send_lock);
	ch->dead = 1;
	backend_chan_clear_out(ch);
	pthread_mutex_unlock(&ch->send_lock);
	(void)shutdown(ch->fd, SHUT_RDWR);
	backend_chan_unref(be, ch);
}

/*
 * Write the queued replies the socket takes now (the leader, on
 * POLLOUT). -1 when the socket failed: the channel is to be dropped.
 */
static int
backend_chan_flush(struct be_chan *ch)
{
	int ret = 0;

	pthread_mutex_lock(&ch->send_lock);
	while (ch->ohead != NULL && !ch->dead) {
		struct be_out *o = ch->ohead;
		int r = channel_try_send(ch->fd, &o->m);

		if (r == 1)
			break;
		if (r < 0 && (errno == EPIPE || errno == ECONNRESET ||
		    errno == ENOTCONN)) {
			ret = -1;
			break;
		}
		if (r < 0)
			log_warn("backend: reply type=%u on channel %u dropped",
			    o->m.type, ch->id);
		ch->ohead = o->next;
		if (ch->ohead == NULL)
			ch->otail = NULL;
		ch->bytes -= o->m.buf.len;
		if (o->m.fd != -1)
			ch->nfds--;
		ch->outstanding--;
		msg_deinit(&o->m);
		free(o);
	}
	pthread_mutex_unlock(&ch->send_lock);
	return ret;
}

/*
 * A request arrived on ch: count it against the channel's caps. NULL if
 * it fits, else why the channel is to be closed.
 */
static const char *
backend_chan_account(struct be_chan *ch, const struct msg *m, unsigned cap)
{
	const char *r = NULL;

	pthread_mutex_lock(&ch->send_lock);
	ch->outstanding++;
	ch->bytes += m->buf.len;
	if (ch->outstanding > cap) {
		snprintf(ch->why, sizeof(ch->why), "over its cap of %u "
		    "outstanding requests", cap);
		r = ch->why;
	} else if (ch->bytes > BE_CHAN_MAX_BYTES) {
		snprintf(ch->why, sizeof(ch->why), "over its cap of %u bytes "
		    "held", (unsigned)BE_CHAN_MAX_BYTES);
		r = ch->why;
	}
	pthread_mutex_unlock(&ch->send_lock);
	return r;
}

/*
 * poll(2) the set; with spin_ns, first in a bounded spin. backend_work
 * asks for it when the leader has just answered the only request in
 * flight (one read, no other job running, and so for the last
 * BE_SPIN_SERIAL rounds): at one connection the next
 * request comes a few tens of microseconds later (a Postfix policy
 * client asks again as soon as it has its answer), and a thread that
 * sleeps in poll is woken across CPUs when it comes, about 30 µs a
 * request on the measured machine (docs/performance.md, W5). The spin
 * polls without waiting, yielding the CPU to whatever else is runnable,
 * for at most spin_ns (a turn the scheduler gave away for long ends it);
 * after one that found nothing the next 1, 2, 4 ... BE_SPIN_BACKOFF_MAX
 * are skipped, and a spin that found its request halves that (a client
 * that asks seldom, a loaded machine: a yield there can lose the CPU for
 * a time slice). So an idle back side never spins, and a busy one at
 * most once per request. Called by the leader only (its spin_* fields).
 */
static int
backend_poll(struct backend *be, struct pollfd *pfd, nfds_t n, int timeout,
    uint64_t spin_ns)
{
	uint64_t start, now;
	int r;

	if (timeout == 0 || spin_ns == 0)
		return poll(pfd, n, timeout);
	if (be->spin_skip > 0) {
		be->spin_skip--;
		return poll(pfd, n, timeout);
	}
	start = now = backend_now_ns();
	while (now - start < spin_ns) {
		if ((r = poll(pfd, n, 0)) != 0) {
			/* halved, not reset: a machine busy enough to
			 * make some spins miss keeps most of them off */
			be->spin_backoff /= 2;
			return r;
		}
		sched_yield();	/* a loaded machine: whoever is runnable */
		now = backend_now_ns();
	}
	/* nothing came: not spun for the next few, more after each miss
	 * in a row (a session that asks seldom, a loaded machine) */
	be->spin_backoff = be->spin_backoff == 0 ? 1 :
	    (be->spin_backoff < BE_SPIN_BACKOFF_MAX ? 2 * be->spin_backoff :
	    BE_SPIN_BACKOFF_MAX);
	be->spin_skip = be->spin_backoff;
	return poll(pfd, n, timeout);
}

/*
 * One round of the leader: take the new channels, poll every live
 * channel and the wake pipe (for up to timeout ms: 0 when jobs wait,
 * so that the leader goes on to one), write the replies that did not
 * fit, read what arrived into a list of jobs (*jobs_r, the number
 * returned), drop the channels whose session process is gone or that
 * went over a cap. A channel at EOF is a session process gone: it
 * leaves the poll set, and replies still owed to it are dropped. It
 * never blocks on a channel: every socket is non-blocking and polled.
 * Called without backend.lock, by the leader only.
 */
static size_t
backend_poll_round(struct backend *be, int timeout, uint64_t spin_ns,
    struct be_job **jobs_r)
{
	struct be_job *head = NULL, **tail = &head;
	struct pollfd *pfd;
	const char **drop;
	struct be_chan **chans;
	size_t n, njobs = 0;
	unsigned chan_cap;

	/* new channels */
	pthread_mutex_lock(&be->lock);
	chan_cap = be->conf->max_connections > BE_CHAN_MIN_CAP / 2 ?
	    2 * (unsigned)be->conf->max_connections : BE_CHAN_MIN_CAP;
	while (be->adds != NULL) {
		struct be_chan *ch = be->adds;

		be->adds = ch->next;
		if (be->nchans == be->capchans) {
			be->capchans = be->capchans == 0 ? 16 :
			    be->capchans * 2;
			be->chans = xreallocarray(be->chans, be->capchans,
			    sizeof(*be->chans));
		}
		be->chans[be->nchans++] = ch;
	}
	pthread_mutex_unlock(&be->lock);
	n = be->nchans;
	chans = be->chans;
	pfd = be->pfd = xreallocarray(be->pfd, n + 1, sizeof(*pfd));
	drop = be->drop = xreallocarray(be->drop, n + 1, sizeof(*drop));
	for (size_t i = 0; i < n; i++) {
		pfd[i].fd = chans[i]->fd;
		pfd[i].events = POLLIN;
		pfd[i].revents = 0;
		drop[i] = NULL;
		pthread_mutex_lock(&chans[i]->send_lock);
		if (chans[i]->ohead != NULL)
			pfd[i].events |= POLLOUT;
		if (chans[i]->drop_why != NULL) {
			drop[i] = chans[i]->drop_why;
			pfd[i].fd = -1;
			timeout = 0;	/* drop it now */
		}
		pthread_mutex_unlock(&chans[i]->send_lock);
	}
	pfd[n].fd = be->wake[0];
	pfd[n].events = POLLIN;
	pfd[n].revents = 0;
	if (backend_poll(be, pfd, (nfds_t)n + 1, timeout, spin_ns) < 0) {
		if (errno == EINTR)
			return 0;
		fatal("backend: poll");
	}
	if (pfd[n].revents != 0) {
		char buf[64];

		while (read(be->wake[0], buf, sizeof(buf)) > 0)
			;
	}
	for (size_t i = 0; i < n; i++) {
		if (pfd[i].fd == -1 || pfd[i].revents == 0)
			continue;
		if ((pfd[i].revents & POLLOUT) != 0 &&
		    backend_chan_flush(chans[i]) < 0) {
			pfd[i].fd = -1;		/* gone */
			continue;
		}
		if ((pfd[i].revents & ~POLLOUT) == 0)
			continue;
		int got = 0;

		for (int k = 0; k < 64; k++) {
			struct be_job *job = xcalloc(1, sizeof(*job));
			int r = channel_recv(pfd[i].fd, &job->m);

			if (r <= 0) {
				free(job);
				if (r < 0)
					pfd[i].fd = -1;	/* gone */
				break;
			}
			drop[i] = backend_chan_account(chans[i], &job->m,
			    chan_cap);
			if (drop[i] != NULL) {
				msg_deinit(&job->m);
				free(job);
				pfd[i].fd = -1;
				break;
			}
			job->chan = chans[i];
			*tail = job;
			tail = &job->next;
			got++;
		}
		if (got > 0) {
			/* each job holds the channel (backend_chan_unref) */
			pthread_mutex_lock(&be->lock);
			chans[i]->refs += got;
			pthread_mutex_unlock(&be->lock);
			njobs += (size_t)got;
		}
	}
	/* drop the channels whose session process is gone, or that went
	 * over a cap (their jobs read just now are skipped when run) */
	size_t kept = 0;

	for (size_t i = 0; i < n; i++) {
		if (pfd[i].fd != -1) {
			chans[kept++] = chans[i];
			continue;
		}
		backend_chan_drop(be, chans[i], drop[i]);
	}
	be->nchans = kept;
	*jobs_r = head;
	return njobs;
}

/*
 * Queue or send a sealed reply on ch; never waits. A reply the socket
 * has no room for waits in the channel's queue for the leader.
 */
static void
backend_reply(struct backend *be, struct be_chan *ch, struct msg *reply)
{
	int wake = 0;

	pthread_mutex_lock(&ch->send_lock);
	if (ch->dead) {
		msg_deinit(reply);
		pthread_mutex_unlock(&ch->send_lock);
		return;
	}
	if (ch->ohead == NULL) {
		int r = channel_try_send(ch->fd, reply);

		if (r != 1) {
			if (r < 0)
				log_warn("backend: reply type=%u on channel %u",
				    reply->type, ch->id);
			ch->outstanding--;
			msg_deinit(reply);
			pthread_mutex_unlock(&ch->send_lock);
			return;
		}
		wake = 1;	/* the leader polls for POLLOUT now */
	}
	struct be_out *o = xcalloc(1, sizeof(*o));

	o->m = *reply;
	reply->fd = -1;
	str_init(&reply->buf);
	if (ch->otail != NULL)
		ch->otail->next = o;
	else
		ch->ohead = o;
	ch->otail = o;
	ch->bytes += o->m.buf.len;
	if (o->m.fd != -1)
		ch->nfds++;
	if (ch->drop_why == NULL && ch->bytes > BE_CHAN_MAX_BYTES) {
		ch->drop_why = "over its cap of bytes held (replies not read)";
		wake = 1;
	} else if (ch->drop_why == NULL && ch->nfds > BE_CHAN_MAX_FDS) {
		ch->drop_why = "over its cap of descriptors held (replies not "
		    "read)";
		wake = 1;
	}
	pthread_mutex_unlock(&ch->send_lock);
	if (wake)
		backend_wake(be);
}

/* Seal reply and send it, BE_FAIL when it does not fit. */
static void
backend_send_reply_be(struct backend *be, struct be_chan *ch, uint64_t id,
    struct msg *reply)
{
	if (msg_seal(reply) < 0) {
		/* never an exit: that request fails, the others go on */
		log_warnx("backend: reply type=%u size=%zu to request %llu on "
		    "channel %u over %u bytes: failed", reply->type,
		    reply->buf.len, (unsigned long long)id, ch->id,
		    (unsigned)MSG_MAX_LEN);
		msg_deinit(reply);
		msg_init(reply, BE_FAIL, id);
		(void)msg_seal(reply);
	}
	backend_reply(be, ch, reply);
}

static void
backend_send_reply(struct be_worker *w, struct be_chan *ch, uint64_t id,
    struct msg *reply)
{
	backend_send_reply_be(w->backend, ch, id, reply);
}

struct be_defer *
be_worker_defer(struct be_worker *w)
{
	struct be_defer *d = xcalloc(1, sizeof(*d));
	struct backend *be = w->backend;

	d->be = be;
	d->chan = w->job->chan;
	d->type = w->job->m.type;
	d->id = w->job->m.id;
	pthread_mutex_lock(&be->lock);
	d->chan->refs++;
	pthread_mutex_unlock(&be->lock);
	return d;
}

void
be_defer_resume(struct be_defer *d, be_resume_fn *fn, void *arg)
{
	struct backend *be = d->be;
	struct be_job *job = xcalloc(1, sizeof(*job));
	int woken;

	d->fn = fn;
	d->arg = arg;
	job->chan = d->chan;
	job->defer = d;
	msg_init(&job->m, 0, 0);
	pthread_mutex_lock(&be->lock);
	job->chan->refs++;	/* the job's, as the leader takes for one read */
	backend_push(be, job);
	woken = backend_wake_one(be);
	pthread_mutex_unlock(&be->lock);
	if (!woken)
		backend_wake(be);	/* every worker busy: the leader looks */
}

void
be_defer_reply(struct be_defer *d, be_resume_fn *fn, void *arg)
{
	struct msg reply;
	int dead;

	pthread_mutex_lock(&d->chan->send_lock);
	dead = d->chan->dead;
	pthread_mutex_unlock(&d->chan->send_lock);
	if (dead)
		(void)fn(NULL, NULL, arg);
	else {
		msg_init(&reply, d->type, d->id);
		if (fn(NULL, &reply, arg) < 0) {
			msg_deinit(&reply);
			msg_init(&reply, BE_FAIL, d->id);
		}
		backend_send_reply_be(d->be, d->chan, d->id, &reply);
	}
	backend_chan_unref(d->be, d->chan);	/* the defer's */
	free(d);
}

struct milter_engine *
be_worker_milter(struct be_worker *w)
{
	return w->backend->milter;
}

/* A deferred reply's second half, on a worker. */
static void
backend_resume_job(struct be_worker *w, struct be_job *job, int dead)
{
	struct be_defer *d = job->defer;
	struct msg reply;

	job->defer = NULL;
	if (dead)
		(void)d->fn(w, NULL, d->arg);
	else {
		msg_init(&reply, d->type, d->id);
		if (d->fn(w, &reply, d->arg) < 0) {
			msg_deinit(&reply);
			msg_init(&reply, BE_FAIL, d->id);
		}
		backend_send_reply(w, d->chan, d->id, &reply);
	}
	w->job = NULL;
	backend_chan_unref(d->be, d->chan);	/* the defer's */
	free(d);
}

static void
backend_run_job(struct be_worker *w, struct be_job *job)
{
	struct be_chan *ch = job->chan;
	struct msg reply;
	be_handler *h = NULL;
	int dead, r = -1;

	pthread_mutex_lock(&ch->send_lock);
	dead = ch->dead;
	/* a deferred reply's resume job was never counted in (its
	 * message is empty, not a request read from the channel) */
	if (job->defer == NULL)
		ch->bytes -= job->m.buf.len;
	pthread_mutex_unlock(&ch->send_lock);
	w->chan = ch->id;
	w->job = job;
	if (job->defer != NULL) {
		backend_resume_job(w, job, dead);
		return;
	}
	if (dead)
		return;		/* dropped: its queued jobs are skipped */
	if (job->m.type < BE_TYPE_COUNT)
		h = be_handlers[job->m.type];
	msg_init(&reply, job->m.type, job->m.id);
	if (h != NULL)
		r = h(w, &job->m, &reply);
	w->job = NULL;
	if (r == BE_DEFERRED) {
		msg_deinit(&reply);
		return;		/* answered through be_defer_resume */
	}
	if (r < 0) {
		log_warnx("backend: malformed request type %u dropped",
		    job->m.type);
		msg_deinit(&reply);
		msg_init(&reply, BE_FAIL, job->m.id);
	}
	backend_send_reply(w, ch, job->m.id, &reply);
}

/* Run one job taken from the queue, then let its channel go. */
static void
backend_job_done(struct backend *be, struct be_worker *w, struct be_job *job)
{
	backend_run_job(w, job);
	backend_chan_unref(be, job->chan);
	msg_deinit(&job->m);
	free(job);
}

/*
 * A worker: leads when no one does (polls the channels, queues what it
 * read), runs a job when one waits, else waits to be woken. A leader
 * that read jobs wakes a follower to lead while it runs one (so the
 * channels are always polled while a job may wait on the store or the
 * disk) and one more follower for each further job.
 */
static void *
backend_work(void *arg)
{
	struct be_thread *t = arg;
	struct be_worker *w = &t->w;
	struct backend *be = w->backend;
	int ran = 0;		/* the last turn ran a job */

	/* The store now, not at the first request: opening it (SQLite's
	 * pragmas, a PostgreSQL connection) took most of the first
	 * request's 40 ms (docs/performance.md W5). A store down now is
	 * opened again at the next request, as before. */
	(void)be_worker_store(w);
	pthread_mutex_lock(&be->lock);
	for (;;) {
		struct be_job *job;

		if (!be->leading && !be->stopping) {
			struct be_job *jobs = NULL;
			int timeout = be->rhead != NULL ? 0 : -1;
			uint64_t spin = 0;
			size_t n;

			/* the one request in flight answered just now by
			 * this thread, no other job running: spin before
			 * sleeping (backend_poll) */
			if (ran && be->running == 0 && be->last_round == 1 &&
			    be->serial >= BE_SPIN_SERIAL)
				spin = BE_SPIN_NS;
			be->leading = 1;
			pthread_mutex_unlock(&be->lock);
			n = backend_poll_round(be, timeout, spin, &jobs);
			pthread_mutex_lock(&be->lock);
			be->leading = 0;
			be->last_round = n;
			/* rounds in a row that read one request while no
			 * other ran: one client asking, one at a time */
			if (n == 1 && be->running == 0) {
				if (be->serial < BE_SPIN_SERIAL)
					be->serial++;
			} else if (n > 0)
				be->serial = 0;
			while (jobs != NULL) {
				struct be_job *next = jobs->next;

				backend_push(be, jobs);
				jobs = next;
			}
			/* The jobs after the one this thread runs, and
			 * when it read more than one (requests come from
			 * many sessions at once) a worker to lead: new ones
			 * are read while these run, as a dispatcher would. */
			for (size_t i = 0; i < n; i++)
				if ((i > 0 || n > 1) && !backend_wake_one(be))
					break;
		}
		if ((job = backend_pop(be)) != NULL) {
			be->last_job = backend_now_ns();
			/* No one polls while this one works: if no standby
			 * waits (the back side was idle), an idle worker
			 * becomes it (once, not at every job). */
			if (!be->leading && be->standby == NULL &&
			    be->idle != NULL && !be->stopping)
				(void)backend_wake_one(be);
			/* A reload swaps be->conf; a job runs with one config
			 * from its start to its end (old ones are never
			 * freed). */
			w->conf = be->conf;
			be->running++;
			pthread_mutex_unlock(&be->lock);
			backend_job_done(be, w, job);
			pthread_mutex_lock(&be->lock);
			be->running--;
			ran = 1;
			continue;
		}
		ran = 0;
		if (be->stopping)
			break;
		if (!be->leading)
			continue;	/* lead */
		t->woken = 0;
		if (be->standby == NULL &&
		    backend_now_ns() - be->last_job < BE_BUSY_NS) {
			/* the standby: back in BE_STANDBY_NS, to lead if
			 * the leader is still busy with a job by then */
			struct timespec ts;

			be->standby = t;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += BE_STANDBY_NS;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			while (!t->woken && pthread_cond_timedwait(&t->cond,
			    &be->lock, &ts) == 0)
				;
			if (be->standby == t)
				be->standby = NULL;
			continue;
		}
		t->next_idle = be->idle;
		be->idle = t;
		while (!t->woken)
			pthread_cond_wait(&t->cond, &be->lock);
	}
	pthread_mutex_unlock(&be->lock);
	store_close(&w->store);
	return NULL;
}

int
backend_add_channel(struct backend *be, int fd)
{
	struct be_chan *ch = xcalloc(1, sizeof(*ch));
	unsigned id;

	ch->fd = fd;
	ch->refs = 1;		/* the poll set's */
	pthread_mutex_init(&ch->send_lock, NULL);
	pthread_mutex_lock(&be->lock);
	id = ch->id = ++be->chan_ids;
	ch->next = be->adds;
	be->adds = ch;
	pthread_mutex_unlock(&be->lock);
	/* ch may be gone already: its session process may have died */
	backend_wake(be);
	return (int)id;
}

void
backend_reload(struct backend *be, const struct config *conf)
{
	const char *error;

	pthread_mutex_lock(&be->lock);
	be->conf = conf;
	pthread_mutex_unlock(&be->lock);
	be_keeper_reload(conf);
	/* The country database can change under a running daemon (a new
	 * GeoLite2 file); sessions go on. */
	if (backend_reload_geo(be, &error) < 0)
		log_warnx("SIGHUP: geo database not reloaded, keeping the old "
		    "one: %s", error);
	else
		log_info("SIGHUP: geo database reloaded (%s)",
		    conf->geo_database);
}

struct backend *
backend_start(const struct config *conf, struct queue *q, const int *fds,
    int nfds, const char **error_r)
{
	struct backend *be = xcalloc(1, sizeof(*be));

	be->conf = conf;
	pthread_mutex_init(&be->lock, NULL);
	pthread_rwlock_init(&be->geo_lock, NULL);
	if ((be->geo = geo_open(conf, error_r)) == NULL)
		return NULL;
	if (pipe2(be->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = "pipe failed";
		return NULL;
	}
	for (int i = 0; i < nfds; i++)
		backend_add_channel(be, fds[i]);
	/* the milter thread: conversations at commit (src/milter/) */
	if ((be->milter = milter_engine_start(error_r)) == NULL)
		return NULL;
	be->nworkers = conf->backend_threads;
	be->threads = xcalloc((size_t)be->nworkers, sizeof(*be->threads));
	for (int i = 0; i < be->nworkers; i++) {
		struct be_thread *t = &be->threads[i];
		pthread_condattr_t ca;

		t->w.conf = conf;
		t->w.queue = q;
		t->w.index = i;
		t->w.backend = be;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&t->cond, &ca);
		pthread_condattr_destroy(&ca);
		if (pthread_create(&t->thread, NULL, backend_work, t) != 0)
			fatalx("backend: cannot start worker thread");
	}
	/* retention sweeps run wherever the back side runs (issue 17) */
	be_keeper_start(conf);
	return be;
}

void
backend_stop(struct backend **bep)
{
	struct backend *be = *bep;

	if (be == NULL)
		return;
	/* Conversations with filters still running end first (a temporary
	 * failure to their clients), while the workers still run: their
	 * replies are jobs like any other. A commit asking the engine from
	 * now on is refused by it (milter_submit); the engine's memory goes
	 * only once no worker can look at it. */
	milter_engine_halt(be->milter);
	/* Commits on the queue's pool (issue 18) finish too: their replies
	 * are sent or queued for the workers as well. */
	if (be->nworkers > 0)
		queue_commit_drain(be->threads[0].w.queue);
	/* No new request; the ones queued are still answered (a commit in
	 * flight finishes), then the workers end. */
	pthread_mutex_lock(&be->lock);
	be->stopping = 1;
	while (backend_wake_one(be))
		;
	pthread_mutex_unlock(&be->lock);
	backend_wake(be);	/* the leader, in poll */
	for (int i = 0; i < be->nworkers; i++) {
		pthread_join(be->threads[i].thread, NULL);
		pthread_cond_destroy(&be->threads[i].cond);
	}
	for (size_t i = 0; i < be->nchans; i++)
		backend_chan_unref(be, be->chans[i]);
	while (be->adds != NULL) {
		struct be_chan *ch = be->adds;

		be->adds = ch->next;
		backend_chan_unref(be, ch);
	}
	milter_engine_stop(&be->milter);
	close(be->wake[0]);
	close(be->wake[1]);
	geo_close(&be->geo);
	pthread_rwlock_destroy(&be->geo_lock);
	free(be->threads);
	free(be->chans);
	free(be->drop);
	free(be->pfd);
	free(be);
	*bep = NULL;
}
