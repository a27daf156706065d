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

struct be_job {
	struct msg	 m;
	int		 chan;		/* index into fds */
	struct be_job	*next;
};

struct backend {
	const struct config	*conf;
	int			*fds;
	pthread_mutex_t		*send_lock;	/* per channel */
	int			 nfds;
	int			 wake[2];	/* stop the dispatcher */

	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct be_job		*head, *tail;
	int			 stopping;

	pthread_rwlock_t	 geo_lock;
	struct geo		*geo;

	pthread_t		 dispatcher;
	pthread_t		*threads;
	struct be_worker	*workers;
	int			 nworkers;
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
	[BE_PORTAL] = be_portal,
	[BE_SPOOL_SPACE] = be_spool_space,
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
	struct geo *g = geo_open(be->conf, error_r), *old;

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

static void
backend_push(struct backend *be, struct be_job *job)
{
	pthread_mutex_lock(&be->lock);
	if (be->tail != NULL)
		be->tail->next = job;
	else
		be->head = job;
	be->tail = job;
	pthread_cond_signal(&be->cond);
	pthread_mutex_unlock(&be->lock);
}

static void *
backend_dispatch(void *arg)
{
	struct backend *be = arg;
	struct pollfd *pfd = xcalloc((size_t)be->nfds + 1, sizeof(*pfd));

	for (int i = 0; i < be->nfds; i++) {
		pfd[i].fd = be->fds[i];
		pfd[i].events = POLLIN;
	}
	pfd[be->nfds].fd = be->wake[0];
	pfd[be->nfds].events = POLLIN;
	for (;;) {
		if (poll(pfd, (nfds_t)be->nfds + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fatal("backend: poll");
		}
		if (pfd[be->nfds].revents != 0)
			break;
		for (int i = 0; i < be->nfds; i++) {
			if (pfd[i].revents == 0)
				continue;
			for (int n = 0; n < 64; n++) {
				struct be_job *job = xcalloc(1, sizeof(*job));
				int r = channel_recv(pfd[i].fd, &job->m);

				if (r <= 0) {
					free(job);
					if (r < 0)
						pfd[i].fd = -1;	/* loop gone */
					break;
				}
				job->chan = i;
				backend_push(be, job);
			}
		}
	}
	free(pfd);
	return NULL;
}

static void
backend_run_job(struct backend *be, struct be_worker *w, struct be_job *job)
{
	struct msg reply;
	be_handler *h = NULL;

	if (job->m.type < BE_TYPE_COUNT)
		h = be_handlers[job->m.type];
	msg_init(&reply, job->m.type, job->m.id);
	if (h == NULL || h(w, &job->m, &reply) < 0) {
		log_warnx("backend: malformed request type %u dropped",
		    job->m.type);
		msg_deinit(&reply);
		msg_init(&reply, BE_FAIL, job->m.id);
	}
	pthread_mutex_lock(&be->send_lock[job->chan]);
	if (channel_send_blocking(be->fds[job->chan], &reply) < 0)
		log_warn("backend: reply to loop %d", job->chan);
	pthread_mutex_unlock(&be->send_lock[job->chan]);
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
		pthread_mutex_unlock(&be->lock);
		backend_run_job(be, w, job);
		msg_deinit(&job->m);
		free(job);
	}
	store_close(&w->store);
	return NULL;
}

struct backend *
backend_start(const struct config *conf, struct queue *q, const int *fds,
    int nfds, const char **error_r)
{
	struct backend *be = xcalloc(1, sizeof(*be));

	be->conf = conf;
	be->nfds = nfds;
	be->fds = xcalloc((size_t)nfds, sizeof(int));
	be->send_lock = xcalloc((size_t)nfds, sizeof(pthread_mutex_t));
	for (int i = 0; i < nfds; i++) {
		be->fds[i] = fds[i];
		pthread_mutex_init(&be->send_lock[i], NULL);
	}
	pthread_mutex_init(&be->lock, NULL);
	pthread_cond_init(&be->cond, NULL);
	pthread_rwlock_init(&be->geo_lock, NULL);
	if ((be->geo = geo_open(conf, error_r)) == NULL)
		return NULL;
	if (pipe2(be->wake, O_CLOEXEC) < 0) {
		*error_r = "pipe failed";
		return NULL;
	}
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
	if (write(be->wake[1], "x", 1) < 0)
		log_warn("backend: wake");
	pthread_join(be->dispatcher, NULL);
	pthread_mutex_lock(&be->lock);
	be->stopping = 1;
	pthread_cond_broadcast(&be->cond);
	pthread_mutex_unlock(&be->lock);
	for (int i = 0; i < be->nworkers; i++)
		pthread_join(be->threads[i], NULL);
	for (int i = 0; i < be->nfds; i++) {
		close(be->fds[i]);
		pthread_mutex_destroy(&be->send_lock[i]);
	}
	close(be->wake[0]);
	close(be->wake[1]);
	geo_close(&be->geo);
	pthread_rwlock_destroy(&be->geo_lock);
	free(be->fds);
	free(be->send_lock);
	free(be->workers);
	free(be->threads);
	free(be);
	*bep = NULL;
}
