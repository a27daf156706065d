/*
 * queue: the delivery runner (see queue.h).
 *
 * Threads: two delivery workers and one scheduler share a list of
 * entries, one per known message, under one mutex. An entry is READY
 * (waiting for a worker, on the ready list), BUSY (one worker has it:
 * a message in flight is never handed to a second thread), WAIT (an
 * error: retried after a back-off of 1 min doubling to 1 h; the
 * scheduler wakes at the earliest retry time) or IDLE (only remote
 * recipients remain: nothing to do now, so it is not retried in a loop;
 * outbound scheduling is a later part).
 *
 * One delivery: lock the spool file (flock, so a "queue run" from the
 * CLI and the daemon never work on one message together), read the
 * envelope from its head, read the journal ID.done, deliver each local
 * recipient not yet journaled, and append "INDEX delivered" to the
 * journal and fsync it after each one. At a crash, at most the one
 * delivery in flight (in new/ but not yet journaled) is done again after
 * the restart: a duplicate, never a loss. When every recipient is done
 * the message, then its journal, are removed.
 *
 * An envelope that does not parse is moved to spool_dir/corrupt/ with a
 * warning: it is never delivered to a guess of its recipients.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "envelope.h"
#include "maildir.h"
#include "queue.h"
#include "spool.h"

#define QUEUE_WORKERS		2
#define QUEUE_JOURNAL_MAX	(16 * 1024 * 1024)
#define QUEUE_BACKOFF_MIN	60
#define QUEUE_BACKOFF_MAX	3600

enum queue_result {
	QUEUE_DONE,		/* every recipient done, message removed */
	QUEUE_PENDING,		/* remote recipients remain */
	QUEUE_RETRY,		/* an error; try again later */
	QUEUE_GONE,		/* not there any more (or moved to corrupt/) */
};

enum queue_state { QUEUE_READY, QUEUE_BUSY, QUEUE_WAIT, QUEUE_IDLE };

/* What a delivery needs from the config, copied so a reload cannot pull
 * strings from under a worker. */
struct queue_conf {
	char	*spool_dir;
	char	*maildir_root;
	char	*hostname;
};

struct queue_entry {
	char			 id[QUEUE_ID_LEN + 1];
	enum queue_state	 state;
	int			 renotify;	/* notified while BUSY */
	int			 backoff;	/* seconds, 0 after success */
	struct timespec		 retry_at;	/* CLOCK_MONOTONIC, WAIT */
	struct queue_entry	*prev, *next;	/* all entries */
	struct queue_entry	*next_ready;	/* READY entries, FIFO */
};

struct queue {
	struct queue_conf	 conf;
	pthread_mutex_t		 mutex;
	pthread_cond_t		 ready_cond;	/* workers wait here */
	pthread_cond_t		 sched_cond;	/* the scheduler waits here */
	int			 stopping;
	/* XXX: linear look-up by id; fine for the local queue, a hash
	 * table when outbound keeps thousands of entries. */
	struct queue_entry	*all;
	struct queue_entry	*ready_head, *ready_tail;
	pthread_t		 workers[QUEUE_WORKERS];
	size_t			 worker_count;
	pthread_t		 scheduler;
	int			 scheduler_started;
};

static void
queue_conf_init(struct queue_conf *c, const struct config *conf)
{
	c->spool_dir = xstrdup(conf->spool_dir);
	c->maildir_root = xstrdup(conf->maildir_root);
	c->hostname = conf->hostname != NULL ? xstrdup(conf->hostname) : NULL;
}

static void
queue_conf_deinit(struct queue_conf *c)
{
	xfree(&c->spool_dir);
	xfree(&c->maildir_root);
	xfree(&c->hostname);
}

/*
 * The journal: "INDEX STATUS\n" per finished recipient. Any status
 * means done (later parts add bounce statuses). An unterminated last
 * line is a write cut by a crash: that recipient is not done.
 */
static int
queue_read_journal(const char *path, unsigned char *done, size_t count,
    const char *id, const char **error_r)
{
	struct str buf = STR_INIT;
	char chunk[4096];
	const char *p, *nl, *end;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = spool_errno_error("cannot open journal");
		return -1;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = spool_errno_error("cannot read journal");
			close(fd);
			str_deinit(&buf);
			return -1;
		}
		if (n == 0)
			break;
		if (buf.len + (size_t)n > QUEUE_JOURNAL_MAX) {
			*error_r = "journal too large";
			close(fd);
			str_deinit(&buf);
			return -1;
		}
		str_append_n(&buf, chunk, (size_t)n);
	}
	close(fd);

	p = str_c(&buf);
	end = p + buf.len;
	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		unsigned long idx = 0;
		const char *q = p;

		while (q < nl && *q >= '0' && *q <= '9' && idx <= count)
			idx = idx * 10 + (unsigned long)(*q++ - '0');
		if (q == p || q >= nl || *q != ' ' || q + 1 == nl ||
		    idx >= count) {
			log_warnx("id=%s queue journal bad line ignored", id);
		} else {
			done[idx] = 1;
		}
		p = nl + 1;
	}
	str_deinit(&buf);
	return 0;
}

/* Move a spool file we cannot read as ours out of the way. */
static void
queue_move_corrupt(const struct queue_conf *c, const char *id,
    const char *why)
{
	char *dir, *from, *to;
	int created = 0;

	dir = xasprintf("%s/corrupt", c->spool_dir);
	if (mkdir(dir, 0700) == 0)
		created = 1;
	else if (errno != EEXIST)
		log_warn("id=%s queue cannot create %s", id, dir);
	if (created && spool_fsync_dir(c->spool_dir) < 0)
		log_warn("id=%s queue fsync %s", id, c->spool_dir);

	from = xasprintf("%s/queue/%s", c->spool_dir, id);
	to = xasprintf("%s/%s", dir, id);
	if (rename(from, to) < 0)
		log_warn("id=%s queue cannot move to corrupt/", id);
	else
		log_warnx("id=%s queue corrupt envelope error=\"%s\" "
		    "moved=%s", id, why, to);
	free(from);
	free(to);
	from = xasprintf("%s/queue/%s.done", c->spool_dir, id);
	to = xasprintf("%s/%s.done", dir, id);
	if (rename(from, to) < 0 && errno != ENOENT)
		log_warn("id=%s queue cannot move journal to corrupt/", id);
	free(from);
	free(to);
	if (spool_fsync_dir(dir) < 0)
		log_warn("id=%s queue fsync %s", id, dir);
	free(dir);
	dir = xasprintf("%s/queue", c->spool_dir);
	if (spool_fsync_dir(dir) < 0)
		log_warn("id=%s queue fsync %s", id, dir);
	free(dir);
}

/* Append one journal line and make it durable before going on. */
static int
queue_journal_append(const struct queue_conf *c, const char *path,
    int *fd, size_t idx, const char **error_r)
{
	char line[64], *dir;
	int n, r;

	if (*fd < 0) {
		*fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0600);
		if (*fd < 0) {
			*error_r = spool_errno_error("cannot open journal");
			return -1;
		}
		/* A journal whose name is lost in a crash would mean
		 * delivering every recipient again. */
		dir = xasprintf("%s/queue", c->spool_dir);
		r = spool_fsync_dir(dir);
		free(dir);
		if (r < 0) {
			*error_r = spool_errno_error("cannot fsync queue "
			    "directory");
			return -1;
		}
	}
	n = snprintf(line, sizeof(line), "%zu delivered\n", idx);
	if (spool_write_full(*fd, line, (size_t)n) < 0 || fsync(*fd) < 0) {
		*error_r = spool_errno_error("cannot write journal");
		return -1;
	}
	return 0;
}

static enum queue_result
queue_deliver(const struct queue_conf *c, const char *id)
{
	struct envelope env;
	struct stat st;
	char *path, *jpath, *dir;
	char abuf[256], mbuf[256];
	const char *error;
	unsigned char *done = NULL;
	size_t consumed, i, remaining = 0;
	enum queue_result ret = QUEUE_RETRY;
	int fd, jfd = -1, corrupt, failed = 0;

	envelope_init(&env);
	path = xasprintf("%s/queue/%s", c->spool_dir, id);
	jpath = xasprintf("%s.done", path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			ret = QUEUE_GONE;
		else
			log_warn("id=%s queue open", id);
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			log_debug("id=%s queue busy in another process", id);
		else
			log_warn("id=%s queue flock", id);
		goto out;
	}
	/* Whoever held the lock before us may have finished it. */
	if (fstat(fd, &st) < 0) {
		log_warn("id=%s queue fstat", id);
		goto out;
	}
	if (st.st_nlink == 0) {
		ret = QUEUE_GONE;
		goto out;
	}

	if (spool_read_envelope(fd, &env, &consumed, &corrupt, &error) < 0) {
		if (corrupt) {
			queue_move_corrupt(c, id, error);
			ret = QUEUE_GONE;
		} else
			log_warnx("id=%s queue error=\"%s\"", id, error);
		goto out;
	}
	if (strcmp(env.id, id) != 0) {
		queue_move_corrupt(c, id, "envelope id is not the file name");
		ret = QUEUE_GONE;
		goto out;
	}

	done = xcalloc(env.rcpt_count, 1);
	if (queue_read_journal(jpath, done, env.rcpt_count, id, &error) < 0) {
		log_warnx("id=%s queue error=\"%s\"", id, error);
		goto out;
	}

	for (i = 0; i < env.rcpt_count; i++) {
		const struct envelope_rcpt *r = &env.rcpts[i];
		char *name;

		if (done[i])
			continue;
		if (r->mailbox == NULL) {
			remaining++;
			continue;
		}
		log_printable(abuf, sizeof(abuf), r->address,
		    strlen(r->address));
		log_printable(mbuf, sizeof(mbuf), r->mailbox,
		    strlen(r->mailbox));
		if (maildir_deliver(c->maildir_root, r->mailbox, c->hostname,
		    NULL, fd, (off_t)consumed, &name, &error) < 0) {
			log_warnx("id=%s deliver rcpt=%s mailbox=%s "
			    "status=deferred error=\"%s\"", id, abuf, mbuf,
			    error);
			failed = 1;
			continue;
		}
		log_info("id=%s deliver rcpt=%s mailbox=%s status=delivered "
		    "maildir=%s", id, abuf, mbuf, name);
		free(name);
		if (queue_journal_append(c, jpath, &jfd, i, &error) < 0) {
			/* Delivered but not journaled: a retry delivers it
			 * again. Stop here so it is one duplicate only. */
			log_warnx("id=%s queue journal rcpt=%s error=\"%s\"",
			    id, abuf, error);
			failed = 1;
			break;
		}
		done[i] = 1;
	}
	if (failed) {
		ret = QUEUE_RETRY;
		goto out;
	}
	if (remaining > 0) {
		ret = QUEUE_PENDING;
		goto out;
	}

	/*
	 * The message first, then its journal: a crash in between leaves
	 * a journal without a message (removed at the next scan), never
	 * a message without its journal (delivered again to everyone).
	 */
	if (unlink(path) < 0) {
		log_warn("id=%s queue unlink", id);
		goto out;
	}
	dir = xasprintf("%s/queue", c->spool_dir);
	if (spool_fsync_dir(dir) < 0)
		log_warn("id=%s queue fsync %s", id, dir);
	if (unlink(jpath) < 0 && errno != ENOENT)
		log_warn("id=%s queue unlink journal", id);
	free(dir);
	log_info("id=%s queue removed status=done", id);
	ret = QUEUE_DONE;
out:
	if (jfd >= 0)
		close(jfd);
	if (fd >= 0)
		close(fd);
	free(done);
	free(path);
	free(jpath);
	envelope_deinit(&env);
	return ret;
}

/*
 * Calls fn for each message in queue/. A journal whose message is gone
 * was left by a crash between the two unlinks: removed here.
 */
static int
queue_scan(const struct queue_conf *c,
    void (*fn)(const char *id, void *ctx), void *ctx, const char **error_r)
{
	struct dirent *de;
	struct stat st;
	char *path, name[64];
	DIR *dir;
	size_t len;

	path = xasprintf("%s/queue", c->spool_dir);
	dir = opendir(path);
	free(path);
	if (dir == NULL) {
		*error_r = spool_errno_error("cannot open spool_dir/queue");
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		len = strlen(de->d_name);
		if (len == QUEUE_ID_LEN + 5 &&
		    strcmp(de->d_name + QUEUE_ID_LEN, ".done") == 0) {
			memcpy(name, de->d_name, QUEUE_ID_LEN);
			name[QUEUE_ID_LEN] = '\0';
			if (fstatat(dirfd(dir), name, &st, 0) < 0 &&
			    errno == ENOENT &&
			    unlinkat(dirfd(dir), de->d_name, 0) == 0)
				log_info("id=%s queue removed stale journal",
				    name);
			continue;
		}
		if (!queue_id_valid(de->d_name)) {
			log_warnx("queue stray file=%s ignored",
			    log_printable(name, sizeof(name), de->d_name, len));
			continue;
		}
		fn(de->d_name, ctx);
	}
	closedir(dir);
	return 0;
}

struct queue_run_ctx {
	const struct queue_conf	*conf;
	int			 done;
};

static void
queue_run_one(const char *id, void *ctx)
{
	struct queue_run_ctx *rc = ctx;

	if (queue_deliver(rc->conf, id) == QUEUE_DONE)
		rc->done++;
}

int
queue_run_once(const struct config *conf, const char **error_r)
{
	struct queue_conf c;
	struct queue_run_ctx rc;
	int ret;

	/*
	 * incoming/ is not purged here: the daemon may be receiving into
	 * it while the CLI runs the queue.
	 */
	queue_conf_init(&c, conf);
	rc.conf = &c;
	rc.done = 0;
	ret = queue_scan(&c, queue_run_one, &rc, error_r);
	queue_conf_deinit(&c);
	return ret < 0 ? -1 : rc.done;
}

/* Called with q->mutex held. */
static struct queue_entry *
queue_find(struct queue *q, const char *id)
{
	struct queue_entry *e;

	for (e = q->all; e != NULL; e = e->next) {
		if (strcmp(e->id, id) == 0)
			return e;
	}
	return NULL;
}

/* Called with q->mutex held; e is not on the ready list. */
static void
queue_unlink(struct queue *q, struct queue_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		q->all = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
}

/* Called with q->mutex held. */
static void
queue_make_ready(struct queue *q, struct queue_entry *e)
{
	e->state = QUEUE_READY;
	e->next_ready = NULL;
	if (q->ready_tail != NULL)
		q->ready_tail->next_ready = e;
	else
		q->ready_head = e;
	q->ready_tail = e;
	pthread_cond_signal(&q->ready_cond);
}

/* Called with q->mutex held. */
static void
queue_add(struct queue *q, const char *id)
{
	struct queue_entry *e;

	if ((e = queue_find(q, id)) != NULL) {
		switch (e->state) {
		case QUEUE_READY:
			break;
		case QUEUE_BUSY:
			e->renotify = 1;
			break;
		case QUEUE_WAIT:
		case QUEUE_IDLE:
			queue_make_ready(q, e);
			break;
		}
		return;
	}
	e = xcalloc(1, sizeof(*e));
	xstrlcpy(e->id, id, sizeof(e->id));
	e->next = q->all;
	if (q->all != NULL)
		q->all->prev = e;
	q->all = e;
	queue_make_ready(q, e);
}

static void
queue_scan_add(const char *id, void *ctx)
{
	queue_add(ctx, id);
}

void
queue_notify(struct queue *q, const char *id)
{
	if (!queue_id_valid(id)) {
		log_warnx("queue notify with a bad queue id ignored");
		return;
	}
	pthread_mutex_lock(&q->mutex);
	queue_add(q, id);
	pthread_mutex_unlock(&q->mutex);
}

/* Called with q->mutex held, after a delivery attempt of e. */
static void
queue_finish(struct queue *q, struct queue_entry *e, enum queue_result r)
{
	switch (r) {
	case QUEUE_DONE:
	case QUEUE_GONE:
		queue_unlink(q, e);
		free(e);
		return;
	case QUEUE_PENDING:
		e->backoff = 0;
		e->state = QUEUE_IDLE;
		break;
	case QUEUE_RETRY:
		e->backoff = e->backoff == 0 ? QUEUE_BACKOFF_MIN :
		    e->backoff >= QUEUE_BACKOFF_MAX / 2 ? QUEUE_BACKOFF_MAX :
		    e->backoff * 2;
		clock_gettime(CLOCK_MONOTONIC, &e->retry_at);
		e->retry_at.tv_sec += e->backoff;
		e->state = QUEUE_WAIT;
		log_info("id=%s queue deferred retry_in=%d", e->id,
		    e->backoff);
		pthread_cond_signal(&q->sched_cond);
		break;
	}
	if (e->renotify) {
		e->renotify = 0;
		queue_make_ready(q, e);
	}
}

static void *
queue_worker(void *arg)
{
	struct queue *q = arg;
	struct queue_entry *e;
	char id[QUEUE_ID_LEN + 1];
	enum queue_result r;

	pthread_mutex_lock(&q->mutex);
	while (!q->stopping) {
		if ((e = q->ready_head) == NULL) {
			pthread_cond_wait(&q->ready_cond, &q->mutex);
			continue;
		}
		if ((q->ready_head = e->next_ready) == NULL)
			q->ready_tail = NULL;
		e->next_ready = NULL;
		e->state = QUEUE_BUSY;
		e->renotify = 0;
		memcpy(id, e->id, sizeof(id));
		pthread_mutex_unlock(&q->mutex);

		r = queue_deliver(&q->conf, id);

		pthread_mutex_lock(&q->mutex);
		/* A BUSY entry is never freed by another thread. */
		queue_finish(q, e, r);
	}
	pthread_mutex_unlock(&q->mutex);
	return NULL;
}

static int
queue_ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	    (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Wakes at the earliest retry time and hands due entries to workers. */
static void *
queue_scheduler(void *arg)
{
	struct queue *q = arg;
	struct queue_entry *e;
	struct timespec now, next;
	int have_next;

	pthread_mutex_lock(&q->mutex);
	while (!q->stopping) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		have_next = 0;
		for (e = q->all; e != NULL; e = e->next) {
			if (e->state != QUEUE_WAIT)
				continue;
			if (!queue_ts_before(&now, &e->retry_at))
				queue_make_ready(q, e);
			else if (!have_next ||
			    queue_ts_before(&e->retry_at, &next)) {
				next = e->retry_at;
				have_next = 1;
			}
		}
		if (have_next)
			pthread_cond_timedwait(&q->sched_cond, &q->mutex,
			    &next);
		else
			pthread_cond_wait(&q->sched_cond, &q->mutex);
	}
	pthread_mutex_unlock(&q->mutex);
	return NULL;
}

struct queue *
queue_start(const struct config *conf, const char **error_r)
{
	struct queue *q;
	pthread_condattr_t attr;
	sigset_t all, old;
	size_t i;
	int err;

	if (conf->spool_dir == NULL || conf->maildir_root == NULL) {
		*error_r = "spool_dir and maildir_root must be set";
		return NULL;
	}
	if (spool_init(conf->spool_dir, error_r) < 0)
		return NULL;
	/* Synchronously, before anything can be received into it. */
	if (spool_purge_incoming(conf->spool_dir, error_r) < 0)
		return NULL;

	q = xcalloc(1, sizeof(*q));
	queue_conf_init(&q->conf, conf);
	pthread_mutex_init(&q->mutex, NULL);
	pthread_cond_init(&q->ready_cond, NULL);
	pthread_condattr_init(&attr);
	/* Retry times must not jump with the wall clock. */
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&q->sched_cond, &attr);
	pthread_condattr_destroy(&attr);

	/* No thread can run yet, but queue_add expects the lock. */
	pthread_mutex_lock(&q->mutex);
	err = queue_scan(&q->conf, queue_scan_add, q, error_r);
	pthread_mutex_unlock(&q->mutex);
	if (err < 0) {
		queue_stop(&q);
		return NULL;
	}

	/* Signals belong to the main loop, not to these threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < QUEUE_WORKERS; i++) {
		if ((err = pthread_create(&q->workers[i], NULL, queue_worker,
		    q)) != 0)
			break;
		q->worker_count++;
	}
	if (err == 0 && (err = pthread_create(&q->scheduler, NULL,
	    queue_scheduler, q)) == 0)
		q->scheduler_started = 1;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		errno = err;
		*error_r = spool_errno_error("cannot start queue threads");
		queue_stop(&q);
		return NULL;
	}
	log_info("queue started workers=%d", QUEUE_WORKERS);
	return q;
}

void
queue_stop(struct queue **qp)
{
	struct queue *q = *qp;
	struct queue_entry *e;
	size_t i;

	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mutex);
	q->stopping = 1;
	pthread_cond_broadcast(&q->ready_cond);
	pthread_cond_broadcast(&q->sched_cond);
	pthread_mutex_unlock(&q->mutex);
	for (i = 0; i < q->worker_count; i++)
		pthread_join(q->workers[i], NULL);
	if (q->scheduler_started)
		pthread_join(q->scheduler, NULL);

	while ((e = q->all) != NULL) {
		queue_unlink(q, e);
		free(e);
	}
	pthread_mutex_destroy(&q->mutex);
	pthread_cond_destroy(&q->ready_cond);
	pthread_cond_destroy(&q->sched_cond);
	queue_conf_deinit(&q->conf);
	free(q);
	*qp = NULL;
}
