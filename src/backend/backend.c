/*
 * backend: dispatcher and worker pool of the back side (see backend.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/be_proto.h"
#include "../core/channel.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/xmalloc.h"
#include "../store/store.h"
#include "backend.h"
#include "be_session.h"

/*
 * One session loop's channel. Each queued job holds a reference, and the
 * dispatcher one while it polls it; the descriptor is closed when the
 * last goes, so a worker never writes to a number reused meanwhile.
 */
struct be_chan {
	int			 fd;
	unsigned		 id;		/* for logs */
	pthread_mutex_t		 send_lock;
	int			 refs;		/* under backend.lock */
	int			 dead;		/* peer gone; under send_lock */
	struct be_chan		*next;		/* pending addition */
};

struct be_job {
	struct msg	 m;
	struct be_chan	*chan;
	struct be_job	*next;
};

struct backend {
	const struct config	*conf;		/* under lock; see be_work */
	int			 wake[2];	/* dispatcher: look again */

	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct be_job		*head, *tail;
	int			 stopping;
	int			 dispatch_stop;
	struct be_chan		*adds;		/* channels to start polling */
	unsigned		 chan_ids;

	pthread_rwlock_t	 geo_lock;
	struct geo		*geo;

	pthread_t		 dispatcher;
	pthread_t		*threads;
	struct be_worker	*workers;
	int			 nworkers;
	struct be_worker	 inline_w;	/* the dispatcher's own */
};

static be_handler *const be_handlers[BE_TYPE_COUNT] = {
	[BE_AUTH] = be_auth,
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
	[BE_SESSION_END] = be_session_end_req,
	[BE_APOP_TIMESTAMP] = be_apop_timestamp,
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

/*
 * Requests the dispatcher answers itself instead of handing them to a
 * worker: short, no store, no fsync. Handing over costs two thread
 * switches, which for a POP3 RETR (open a file, pass its descriptor)
 * was most of the work (W2 in docs/performance.md).
 */
static void backend_run_job(struct be_worker *, struct be_job *);

static int
backend_inline(uint32_t type)
{
	return type == BE_POP3_RETR;
}

static void
backend_push(struct backend *be, struct be_job *job)
{
	pthread_mutex_lock(&be->lock);
	job->chan->refs++;
	if (be->tail != NULL)
		be->tail->next = job;
	else
		be->head = job;
	be->tail = job;
	pthread_cond_signal(&be->cond);
	pthread_mutex_unlock(&be->lock);
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
 * The dispatcher: polls every live channel and the wake pipe, queues
 * what arrives. A channel at EOF is a session process gone: it leaves
 * the poll set, and replies still owed to it are dropped.
 */
static void *
backend_dispatch(void *arg)
{
	struct backend *be = arg;
	struct be_chan **chans = NULL;
	struct pollfd *pfd = NULL;
	size_t n = 0, cap = 0;

	for (;;) {
		/* new channels, or the end */
		pthread_mutex_lock(&be->lock);
		int stop = be->dispatch_stop;

		while (be->adds != NULL) {
			struct be_chan *ch = be->adds;

			be->adds = ch->next;
			if (n == cap) {
				cap = cap == 0 ? 16 : cap * 2;
				chans = xreallocarray(chans, cap,
				    sizeof(*chans));
			}
			chans[n++] = ch;
		}
		pthread_mutex_unlock(&be->lock);
		if (stop)
			break;
		pfd = xreallocarray(pfd, n + 1, sizeof(*pfd));
		for (size_t i = 0; i < n; i++) {
			pfd[i].fd = chans[i]->fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		pfd[n].fd = be->wake[0];
		pfd[n].events = POLLIN;
		pfd[n].revents = 0;
		if (poll(pfd, (nfds_t)n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fatal("backend: poll");
		}
		if (pfd[n].revents != 0) {
			char buf[64];

			while (read(be->wake[0], buf, sizeof(buf)) > 0)
				;
		}
		for (size_t i = 0; i < n; i++) {
			if (pfd[i].revents == 0)
				continue;
			for (int k = 0; k < 64; k++) {
				struct be_job *job = xcalloc(1, sizeof(*job));
				int r = channel_recv(pfd[i].fd, &job->m);

				if (r <= 0) {
					free(job);
					if (r < 0)
						pfd[i].fd = -1;	/* gone */
					break;
				}
				job->chan = chans[i];
				if (backend_inline(job->m.type)) {
					pthread_mutex_lock(&be->lock);
					be->inline_w.conf = be->conf;
					pthread_mutex_unlock(&be->lock);
					/* the channel is ours while we poll it */
					backend_run_job(&be->inline_w, job);
					msg_deinit(&job->m);
					free(job);
					continue;
				}
				backend_push(be, job);
			}
		}
		/* drop the channels whose session process is gone */
		size_t kept = 0;

		for (size_t i = 0; i < n; i++) {
			if (pfd[i].fd != -1) {
				chans[kept++] = chans[i];
				continue;
			}
			log_debug("backend: channel %u closed by its session "
			    "process", chans[i]->id);
			pthread_mutex_lock(&chans[i]->send_lock);
			chans[i]->dead = 1;
			pthread_mutex_unlock(&chans[i]->send_lock);
			backend_chan_unref(be, chans[i]);
		}
		n = kept;
	}
	for (size_t i = 0; i < n; i++)
		backend_chan_unref(be, chans[i]);
	free(chans);
	free(pfd);
	return NULL;
}

static void
backend_run_job(struct be_worker *w, struct be_job *job)
{
	struct be_chan *ch = job->chan;
	struct msg reply;
	be_handler *h = NULL;

	if (job->m.type < BE_TYPE_COUNT)
		h = be_handlers[job->m.type];
	msg_init(&reply, job->m.type, job->m.id);
	w->chan = ch->id;
	if (h == NULL || h(w, &job->m, &reply) < 0) {
		log_warnx("backend: malformed request type %u dropped",
		    job->m.type);
		msg_deinit(&reply);
		msg_init(&reply, BE_FAIL, job->m.id);
	}
	pthread_mutex_lock(&ch->send_lock);
	if (ch->dead)
		msg_deinit(&reply);
	else if (channel_send_blocking(ch->fd, &reply) < 0 && !ch->dead)
		log_warn("backend: reply on channel %u", ch->id);
	pthread_mutex_unlock(&ch->send_lock);
}

static void *
backend_work(void *arg)
{
	struct be_worker *w = arg;
	struct backend *be = w->backend;

	for (;;) {
		pthread_mutex_lock(&be->lock);
		while (be->head == NULL && !be->stopping)
			pthread_cond_wait(&be->cond, &be->lock);
		if (be->head == NULL) {
			pthread_mutex_unlock(&be->lock);
			break;
		}
		struct be_job *job = be->head;

		be->head = job->next;
		if (be->head == NULL)
			be->tail = NULL;
		/* A reload swaps be->conf; a job runs with one config from
		 * its start to its end (old ones are never freed). */
		w->conf = be->conf;
		pthread_mutex_unlock(&be->lock);
		backend_run_job(w, job);
		backend_chan_unref(be, job->chan);
		msg_deinit(&job->m);
		free(job);
	}
	store_close(&w->store);
	return NULL;
}

int
backend_add_channel(struct backend *be, int fd)
{
	struct be_chan *ch = xcalloc(1, sizeof(*ch));
	unsigned id;

	ch->fd = fd;
	ch->refs = 1;		/* the dispatcher's */
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
	pthread_cond_init(&be->cond, NULL);
	pthread_rwlock_init(&be->geo_lock, NULL);
	if ((be->geo = geo_open(conf, error_r)) == NULL)
		return NULL;
	if (pipe2(be->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = "pipe failed";
		return NULL;
	}
	for (int i = 0; i < nfds; i++)
		backend_add_channel(be, fds[i]);
	be->nworkers = conf->backend_threads;
	be->workers = xcalloc((size_t)be->nworkers, sizeof(*be->workers));
	be->threads = xcalloc((size_t)be->nworkers, sizeof(*be->threads));
	for (int i = 0; i < be->nworkers; i++) {
		struct be_worker *w = &be->workers[i];

		w->conf = conf;
		w->queue = q;
		w->index = i;
		w->backend = be;
		if (pthread_create(&be->threads[i], NULL, backend_work, w) != 0)
			fatalx("backend: cannot start worker thread");
	}
	be->inline_w.conf = conf;
	be->inline_w.queue = q;
	be->inline_w.index = -1;
	be->inline_w.backend = be;
	if (pthread_create(&be->dispatcher, NULL, backend_dispatch, be) != 0)
		fatalx("backend: cannot start dispatcher thread");
	return be;
}

void
backend_stop(struct backend **bep)
{
	struct backend *be = *bep;

	if (be == NULL)
		return;
	/* No new request; the ones queued are still answered (a commit in
	 * flight finishes), then the workers end. */
	pthread_mutex_lock(&be->lock);
	be->dispatch_stop = 1;
	pthread_mutex_unlock(&be->lock);
	backend_wake(be);
	pthread_join(be->dispatcher, NULL);
	pthread_mutex_lock(&be->lock);
	be->stopping = 1;
	pthread_cond_broadcast(&be->cond);
	pthread_mutex_unlock(&be->lock);
	for (int i = 0; i < be->nworkers; i++)
		pthread_join(be->threads[i], NULL);
	while (be->adds != NULL) {
		struct be_chan *ch = be->adds;

		be->adds = ch->next;
		backend_chan_unref(be, ch);
	}
	close(be->wake[0]);
	close(be->wake[1]);
	geo_close(&be->geo);
	pthread_rwlock_destroy(&be->geo_lock);
	free(be->workers);
	free(be->threads);
	free(be);
	*bep = NULL;
}
