/*
 * commit: a pool of threads for the blocking half of a commit (commit.h).
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "../core/log.h"
#include "../core/xmalloc.h"
#include "commit.h"

struct commit_job {
	commit_fn		*fn;
	void			*arg;
	struct commit_job	*next;
};

struct commit_pool {
	pthread_mutex_t		 lock;
	pthread_cond_t		 work;		/* threads wait for jobs */
	pthread_cond_t		 idle;		/* drain waits here */
	struct commit_job	*head, *tail;
	int			 nthreads;
	pthread_t		*threads;
	int			 busy;		/* jobs running */
	int			 waiting;	/* threads waiting for work */
	int			 draining, stopping;
	unsigned long		 submitted, waited;
};

static void *
commit_pool_thread(void *arg)
{
	struct commit_pool *p = arg;
	struct commit_job *j;
	struct sched_param sp = { 0 };

	/*
	 * A commit thread sleeps in its fsyncs and is woken by the disk's
	 * interrupts; under SCHED_BATCH its wake-up does not preempt the
	 * session process or worker on the CPU, it runs when that one
	 * sleeps or its slice ends (issue 18: CPU a message 0.36 -> 0.33 ms
	 * at 20 sessions, 0.30 -> 0.27 at 100, docs/performance.md). Only
	 * these threads: the same for every process was no gain.
	 */
	(void)pthread_setname_np(pthread_self(), "sekisho-commit");
	if (pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp) != 0)
		log_debug("commit: SCHED_BATCH refused, the default kept");
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->head == NULL && !p->stopping) {
			p->waiting++;
			pthread_cond_wait(&p->work, &p->lock);
			p->waiting--;
		}
		if (p->head == NULL)
			break;
		j = p->head;
		if ((p->head = j->next) == NULL)
			p->tail = NULL;
		p->busy++;
		pthread_mutex_unlock(&p->lock);
		j->fn(j->arg);
		free(j);
		pthread_mutex_lock(&p->lock);
		if (--p->busy == 0 && p->head == NULL)
			pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct commit_pool *
commit_pool_new(int threads)
{
	struct commit_pool *p = xcalloc(1, sizeof(*p));

	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->idle, NULL);
	p->threads = xcalloc((size_t)threads, sizeof(*p->threads));
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], NULL, commit_pool_thread,
		    p) != 0) {
			if (i == 0)
				fatal("commit: cannot start a thread");
			log_warnx("commit: %d of %d threads started", i,
			    threads);
			break;
		}
		p->nthreads++;
	}
	return p;
}

void
commit_pool_submit(struct commit_pool *p, commit_fn *fn, void *arg)
{
	struct commit_job *j;

	pthread_mutex_lock(&p->lock);
	if (p->draining) {
		pthread_mutex_unlock(&p->lock);
		fn(arg);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->fn = fn;
	j->arg = arg;
	if (p->tail != NULL)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->submitted++;
	if (p->waiting == 0)
		p->waited++;
	pthread_mutex_unlock(&p->lock);
	/* after the unlock: the thread woken does not wake up only to wait
	 * for the lock this thread still holds (a task switch more) */
	pthread_cond_signal(&p->work);
}

void
commit_pool_drain(struct commit_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->draining = 1;
	while (p->head != NULL || p->busy > 0)
		pthread_cond_wait(&p->idle, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

void
commit_pool_free(struct commit_pool **pp)
{
	struct commit_pool *p = *pp;

	if (p == NULL)
		return;
	commit_pool_drain(p);
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->idle);
	free(p->threads);
	free(p);
	*pp = NULL;
}

void
commit_pool_stats(struct commit_pool *p, unsigned long *submitted_r,
    unsigned long *waited_r)
{
	pthread_mutex_lock(&p->lock);
	*submitted_r = p->submitted;
	*waited_r = p->waited;
	pthread_mutex_unlock(&p->lock);
}
