/*
 * queue: the delivery runner (see queue.h, docs/delivery.md).
 *
 * Threads: QUEUE_WORKERS delivery workers and one scheduler share a list
 * of entries, one per known message, under one mutex; the outbound
 * client (src/mta/) has its own event loop thread. An entry is READY
 * (on the ready list), BUSY (one worker, or the outbound client, has it:
 * a message in flight is never handed out twice), WAIT (until retry_at:
 * the scheduler wakes at the earliest) or IDLE (held: not tried).
 *
 * One attempt: lock the spool file (flock: the CLI and the daemon never
 * work on one message together), read the envelope and the journal,
 * bounce what has outlived queue_lifetime, deliver due local recipients
 * into Maildir, and hand due remote (and LMTP) recipients to the
 * outbound client as jobs, one per next hop and at most MTA_JOB_RCPTS
 * recipients. The attempt, with the locked file, lives until every job
 * is back; each job's results are journaled (and fsync'd) by a worker
 * as soon as it returns. Then permanent failures become one DSN to the
 * sender, queued as a message of its own from <>, and the message is
 * removed when every recipient is done, else it waits for the earliest
 * retry.
 *
 * Duplicates: a recipient is journaled after the server accepted it (or
 * after the Maildir fsync), so a crash in between delivers it again; at
 * most the transactions in flight at the crash (one per connection) are
 * repeated. A DSN is committed before its recipients are journaled
 * "bounced": a crash in between sends it twice. Nothing is lost.
 *
 * An envelope that does not parse is moved to spool_dir/corrupt/ with a
 * warning: it is never delivered to a guess of its recipients.
 */
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../mta/mta.h"
#include "../mta/mta_route.h"
#include "commit.h"
#include "dsn.h"
#include "envelope.h"
#include "maildir.h"
#include "queue.h"
#include "spool.h"

#define QUEUE_WORKERS		4
/* Commits under way at once (commit.h): enough that 100 sessions' final
 * dots find a thread, and their fsyncs go to the disk together. */
#define QUEUE_COMMIT_THREADS	16
#define QUEUE_JOURNAL_MAX	(16 * 1024 * 1024)
#define QUEUE_BACKOFF_MIN	60	/* after an I/O error */
#define QUEUE_BACKOFF_MAX	3600
#define QUEUE_TEXT_MAX		400

enum queue_result {
	QUEUE_DONE,		/* every recipient done, message removed */
	QUEUE_WAIT,		/* next attempt at *next_r (unix) */
	QUEUE_RETRY,		/* an error; back off */
	QUEUE_GONE,		/* not there any more (or moved to corrupt/) */
	QUEUE_HELD,		/* ID.hold: not tried until released */
	QUEUE_OUTBOUND,		/* jobs out; the attempt finishes later */
};

enum queue_state { QUEUE_READY, QUEUE_BUSY, QUEUE_WAIT_STATE, QUEUE_IDLE };

/* What a delivery needs from the config, copied so a reload cannot pull
 * strings from under a worker. */
struct queue_conf {
	char		*spool_dir;
	char		*maildir_root;
	char		*hostname;
	int		 retry_min, retry_max, lifetime, delay_warning;
};

struct queue_entry {
	char			 id[QUEUE_ID_LEN + 1];
	enum queue_state	 state;
	int			 renotify;	/* notified while BUSY */
	int			 force;		/* flush: ignore retry times */
	int			 backoff;	/* seconds, after errors */
	struct timespec		 retry_at;	/* CLOCK_MONOTONIC, WAIT */
	struct queue_entry	*prev, *next;	/* all entries */
	struct queue_entry	*next_ready;	/* READY entries, FIFO */
};

/* One attempt at one message, possibly spanning outbound jobs. */
struct queue_attempt {
	struct queue		*q;		/* NULL in queue_run_once */
	struct queue_entry	*e;
	const struct queue_conf	*c;
	char			 id[QUEUE_ID_LEN + 1];
	int			 fd;		/* locked spool file */
	size_t			 offset, size;
	struct envelope		 env;
	struct queue_rcpt_state	*st;
	char			*path, *jpath;
	int			 jfd;
	int			 io_error;	/* journal: retry later */
	int			 force;
	pthread_mutex_t		 mutex;
	int			 pending;	/* jobs out */
	size_t			 unjournaled;	/* 1 + delivered, not journaled */
};

struct queue_done {
	struct mta_job		*job;
	struct queue_done	*next;
};

struct queue {
	struct queue_conf	 conf;
	pthread_mutex_t		 mutex;
	pthread_cond_t		 ready_cond;	/* workers wait here */
	pthread_cond_t		 sched_cond;	/* the scheduler waits here */
	int			 stopping;
	int			 flush_all;	/* scheduler: rescan, force */
	/* XXX: linear look-up by id; a hash table when the queue keeps
	 * many thousands of entries. */
	struct queue_entry	*all;
	struct queue_entry	*ready_head, *ready_tail;
	struct queue_done	*done_head, *done_tail;	/* jobs back */
	pthread_t		 workers[QUEUE_WORKERS];
	size_t			 worker_count;
	pthread_t		 scheduler;
	int			 scheduler_started;
	struct mta_routes	*routes;
	struct mta		*mta;
	int			 ctl_fd;
	struct commit_pool	*commits;
};

static void queue_notify_locked(struct queue *q, const char *id, int force);

static void
queue_conf_init(struct queue_conf *c, const struct config *conf)
{
	c->spool_dir = xstrdup(conf->spool_dir);
	c->maildir_root = xstrdup(conf->maildir_root);
	c->hostname = conf->hostname != NULL ? xstrdup(conf->hostname) :
	    xstrdup("localhost");
	c->retry_min = conf->queue_retry_min > 0 ? conf->queue_retry_min : 300;
	c->retry_max = conf->queue_retry_max > 0 ? conf->queue_retry_max :
	    3600;
	if (c->retry_max < c->retry_min)
		c->retry_max = c->retry_min;
	c->lifetime = conf->queue_lifetime > 0 ? conf->queue_lifetime :
	    5 * 86400;
	c->delay_warning = conf->delay_warning;
}

static void
queue_conf_deinit(struct queue_conf *c)
{
	xfree(&c->spool_dir);
	xfree(&c->maildir_root);
	xfree(&c->hostname);
}

/* --- the journal -------------------------------------------------------- */

void
queue_rcpt_states_free(struct queue_rcpt_state *st, size_t count)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < count; i++) {
		free(st[i].remote);
		free(st[i].text);
	}
	free(st);
}

/* Next blank-separated word of [*p, end) (not NUL-terminated). */
static int
queue_word(const char **p, const char *end, const char **w, size_t *len)
{
	const char *s = *p;

	while (s < end && *s == ' ')
		s++;
	*w = s;
	while (s < end && *s != ' ')
		s++;
	*len = (size_t)(s - *w);
	*p = s < end ? s + 1 : s;
	return *len > 0 ? 0 : -1;
}

static int
queue_num(const char *w, size_t len, int64_t *v)
{
	int64_t n = 0;
	size_t i;

	if (len == 0 || len > 18)
		return -1;
	for (i = 0; i < len; i++) {
		if (w[i] < '0' || w[i] > '9')
			return -1;
		n = n * 10 + (w[i] - '0');
	}
	*v = n;
	return 0;
}

/* "STATUS LAST REMOTE SMTP TEXT" into s. */
static int
queue_parse_failure(const char *p, const char *end,
    struct queue_rcpt_state *s)
{
	const char *w;
	size_t len;
	int64_t v;

	if (queue_word(&p, end, &w, &len) < 0 || len >= sizeof(s->dsn))
		return -1;
	memcpy(s->dsn, w, len);
	s->dsn[len] = '\0';
	if (queue_word(&p, end, &w, &len) < 0 || queue_num(w, len, &v) < 0)
		return -1;
	s->last_try = v;
	if (queue_word(&p, end, &w, &len) < 0)
		return -1;
	free(s->remote);
	s->remote = len == 1 && w[0] == '-' ? NULL : xstrndup(w, len);
	if (queue_word(&p, end, &w, &len) < 0 || len != 1)
		return -1;
	s->smtp = w[0] == '1';
	free(s->text);
	s->text = p < end ? xstrndup(p, (size_t)(end - p)) : NULL;
	return 0;
}

static int
queue_journal_line(const char *p, const char *end,
    struct queue_rcpt_state *st, size_t count)
{
	struct queue_rcpt_state *s;
	const char *w;
	size_t len;
	int64_t idx, v;

	if (queue_word(&p, end, &w, &len) < 0 || queue_num(w, len, &idx) < 0 ||
	    (uint64_t)idx >= count)
		return -1;
	s = &st[idx];
	if (queue_word(&p, end, &w, &len) < 0)
		return -1;
	if ((len == 9 && memcmp(w, "delivered", 9) == 0) ||
	    (len == 4 && memcmp(w, "sent", 4) == 0) ||
	    (len == 7 && memcmp(w, "bounced", 7) == 0) ||
	    (len == 7 && memcmp(w, "dropped", 7) == 0)) {
		s->status = QUEUE_RCPT_DONE;
		memcpy(s->how, w, len);
		s->how[len] = '\0';
		return 0;
	}
	if (len == 6 && memcmp(w, "warned", 6) == 0) {
		s->warned = 1;
		return 0;
	}
	if (len == 6 && memcmp(w, "failed", 6) == 0) {
		if (s->status == QUEUE_RCPT_DONE)
			return 0;
		s->status = QUEUE_RCPT_FAILED;
		return queue_parse_failure(p, end, s);
	}
	if (len == 8 && memcmp(w, "deferred", 8) == 0) {
		if (s->status == QUEUE_RCPT_DONE ||
		    s->status == QUEUE_RCPT_FAILED)
			return 0;
		s->status = QUEUE_RCPT_DEFERRED;
		if (queue_word(&p, end, &w, &len) < 0 ||
		    queue_num(w, len, &v) < 0)
			return -1;
		s->next_try = v;
		if (queue_word(&p, end, &w, &len) < 0 ||
		    queue_num(w, len, &v) < 0)
			return -1;
		s->count = (int)v;
		return queue_parse_failure(p, end, s);
	}
	return -1;
}

int
queue_journal_read(const char *path, struct queue_rcpt_state *st,
    size_t count, const char *id, const char **error_r)
{
	struct str buf = STR_INIT;
	char chunk[4096];
	const char *p, *nl, *end;
	ssize_t n;
	int fd;

	memset(st, 0, count * sizeof(*st));
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
	/* An unterminated last line is a write cut by a crash. */
	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (queue_journal_line(p, nl, st, count) < 0)
			log_warnx("id=%s queue journal bad line ignored", id);
		p = nl + 1;
	}
	str_deinit(&buf);
	return 0;
}

/* Append one journal line and make it durable before going on. */
static int
queue_journal_append(struct queue_attempt *a, const char *line,
    const char **error_r)
{
	char *dir;
	int r;

	if (a->jfd < 0) {
		a->jfd = open(a->jpath, O_WRONLY | O_APPEND | O_CREAT |
		    O_CLOEXEC, 0600);
		if (a->jfd < 0) {
			*error_r = spool_errno_error("cannot open journal");
			return -1;
		}
		/* A journal whose name is lost in a crash would mean
		 * delivering every recipient again. */
		dir = xasprintf("%s/queue", a->c->spool_dir);
		r = spool_fsync_dir(dir);
		free(dir);
		if (r < 0) {
			*error_r = spool_errno_error("cannot fsync queue "
			    "directory");
			return -1;
		}
	}
	if (spool_write_full(a->jfd, line, strlen(line)) < 0 ||
	    fsync(a->jfd) < 0) {
		*error_r = spool_errno_error("cannot write journal");
		return -1;
	}
	return 0;
}

/* Journal a line for a recipient; on failure the attempt is marked so
 * the message is retried (and the line's event repeated at most). */
static void
queue_journal(struct queue_attempt *a, size_t idx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
queue_journal(struct queue_attempt *a, size_t idx, const char *fmt, ...)
{
	struct str line = STR_INIT;
	const char *error;
	va_list ap;
	size_t i;

	str_printf(&line, "%zu ", idx);
	va_start(ap, fmt);
	str_vprintf(&line, fmt, ap);
	va_end(ap);
	/* one line, whatever a server put in its text */
	for (i = 0; i < line.len; i++)
		if (line.s[i] == '\n' || line.s[i] == '\r')
			line.s[i] = ' ';
	str_append_c(&line, '\n');
	if (!a->io_error && queue_journal_append(a, str_c(&line),
	    &error) < 0) {
		log_warnx("id=%s queue journal error=\"%s\"", a->id, error);
		a->io_error = 1;
	}
	str_deinit(&line);
}

/* The arguments may point into *s itself (keeping the last error). */
static void
queue_state_set(struct queue_rcpt_state *s, enum queue_rcpt_status status,
    const char *dsn, const char *remote, const char *text, int smtp,
    int64_t now)
{
	char *r = remote != NULL ? xstrdup(remote) : NULL;
	char *t = text != NULL ? xstrdup(text) : NULL;
	char d[sizeof(s->dsn)];

	xstrlcpy(d, dsn, sizeof(d));
	memcpy(s->dsn, d, sizeof(d));
	s->status = status;
	free(s->remote);
	s->remote = r;
	free(s->text);
	s->text = t;
	s->smtp = smtp;
	s->last_try = now;
}

/* "failed ..." or "deferred ..." tail, with remote and text printable. */
static void
queue_journal_failure(struct queue_attempt *a, size_t idx,
    const struct queue_rcpt_state *s)
{
	char text[QUEUE_TEXT_MAX + 4], remote[256];
	const char *t = s->text != NULL ? s->text : "";
	const char *r = s->remote != NULL ? s->remote : "-";

	log_printable(text, sizeof(text), t, strlen(t));
	log_printable(remote, sizeof(remote), r, strlen(r));
	/* a blank would split the word */
	for (char *p = remote; *p != '\0'; p++)
		if (*p == ' ')
			*p = '_';
	if (s->status == QUEUE_RCPT_FAILED)
		queue_journal(a, idx, "failed %s %" PRId64 " %s %d %s", s->dsn,
		    s->last_try, remote, s->smtp, text);
	else
		queue_journal(a, idx, "deferred %" PRId64 " %d %s %" PRId64
		    " %s %d %s", s->next_try, s->count, s->dsn, s->last_try,
		    remote, s->smtp, text);
}

/* Exponential back-off per recipient: retry_min * 2^(count-1), capped. */
static int64_t
queue_backoff(const struct queue_conf *c, int count)
{
	int64_t d = c->retry_min;
	int i;

	for (i = 1; i < count && d < c->retry_max; i++)
		d *= 2;
	return d > c->retry_max ? c->retry_max : d;
}

/* A temporary failure now: deferred, or failed when the next try would
 * come after the end of the message's life anyway. */
static void
queue_record_tempfail(struct queue_attempt *a, size_t idx, const char *dsn,
    const char *remote, const char *text, int smtp, int64_t now)
{
	struct queue_rcpt_state *s = &a->st[idx];

	queue_state_set(s, QUEUE_RCPT_DEFERRED, dsn, remote, text, smtp, now);
	s->count++;
	s->next_try = now + queue_backoff(a->c, s->count);
	queue_journal_failure(a, idx, s);
}

static void
queue_record_permfail(struct queue_attempt *a, size_t idx, const char *dsn,
    const char *remote, const char *text, int smtp, int64_t now)
{
	struct queue_rcpt_state *s = &a->st[idx];

	queue_state_set(s, QUEUE_RCPT_FAILED, dsn, remote, text, smtp, now);
	queue_journal_failure(a, idx, s);
}

/* Metrics: one recipient's attempt ended (an LMTP recipient has a
 * mailbox: local). */
static void
queue_metrics_result(const struct queue_attempt *a, size_t idx,
    enum metrics_delivery_result r)
{
	metrics_delivery(a->env.rcpts[idx].mailbox != NULL ?
	    METRICS_DELIVERY_LOCAL : METRICS_DELIVERY_REMOTE, r,
	    metrics_queue_id_ms(a->id));
}

static void
queue_log_result(const struct queue_attempt *a, size_t idx,
    const char *relay, const char *status, const char *dsn, const char *text,
    int64_t now)
{
	char abuf[256], rbuf[256], tbuf[QUEUE_TEXT_MAX + 4];
	const char *addr = a->env.rcpts[idx].address;

	log_printable(abuf, sizeof(abuf), addr, strlen(addr));
	log_printable(rbuf, sizeof(rbuf), relay != NULL ? relay : "-",
	    strlen(relay != NULL ? relay : "-"));
	log_printable(tbuf, sizeof(tbuf), text != NULL ? text : "",
	    strlen(text != NULL ? text : ""));
	log_info("id=%s deliver rcpt=%s relay=%s status=%s delay=%" PRId64
	    "s dsn=%s reply=\"%s\"", a->id, abuf, rbuf, status,
	    now - a->env.time, dsn, tbuf);
}

/* --- files ----------------------------------------------------------------- */

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

/* --- bounces ------------------------------------------------------------------ */

/*
 * Queue a DSN to the sender for the recipients in idx[n]. The sender of
 * an authenticated submission is the account's own address, so it is
 * delivered to that account's mailbox; any other sender is remote.
 * Returns 0 with the new message committed (and notified).
 */
static int
queue_send_dsn(struct queue_attempt *a, const size_t *idx, size_t n,
    int delayed, int64_t now)
{
	struct dsn_info info;
	struct dsn_rcpt *r = xcalloc(n, sizeof(*r));
	struct envelope benv;
	struct str msg = STR_INIT, hdr = STR_INIT;
	char buf[8192], date[64], bid[QUEUE_ID_LEN + 1];
	const char *error;
	size_t i, got = 0;
	ssize_t k;
	int fd = -1, ret = -1;
	struct tm tm;
	time_t tt = (time_t)now;

	/* the original header section, bounded */
	while (got < DSN_HEADERS_MAX) {
		k = pread(a->fd, buf, sizeof(buf), (off_t)(a->offset + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		str_append_n(&hdr, buf, (size_t)k);
		got += (size_t)k;
		if (memmem(str_c(&hdr), hdr.len, "\r\n\r\n", 4) != NULL)
			break;
	}
	for (i = 0; i < n; i++) {
		const struct queue_rcpt_state *s = &a->st[idx[i]];

		r[i].address = a->env.rcpts[idx[i]].address;
		r[i].status = s->dsn[0] != '\0' ? s->dsn : "5.0.0";
		r[i].remote_mta = s->remote;
		r[i].diagnostic = s->text;
		r[i].diagnostic_smtp = s->smtp;
		r[i].last_attempt = s->last_try;
	}
	envelope_init(&benv);
	queue_id_new(bid);
	memset(&info, 0, sizeof(info));
	info.hostname = a->c->hostname;
	info.id = a->id;
	info.msgid_id = bid;
	info.to = a->env.sender;
	info.arrival = a->env.time;
	info.now = now;
	info.delayed = delayed;
	info.rcpts = r;
	info.rcpt_count = n;
	info.headers = str_c(&hdr);
	info.headers_len = dsn_header_length(str_c(&hdr), hdr.len);
	if (dsn_format(&info, &msg) < 0)
		goto out;

	xstrlcpy(benv.id, bid, sizeof(benv.id));
	benv.time = now;
	benv.sender = xstrdup("");
	benv.client = xstrdup("127.0.0.1");
	benv.helo = xstrdup(a->c->hostname);
	benv.protocol = xstrdup("SMTP");
	envelope_add_rcpt(&benv, a->env.sender, a->env.auth);
	localtime_r(&tt, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	str_clear(&hdr);
	/* RFC 5321 4.4: our trace line on what we originate */
	str_printf(&hdr, "Received: by %s (sekisho) id %s;\r\n\t%s\r\n",
	    a->c->hostname, bid, date);
	if (spool_create(a->c->spool_dir, &benv, str_c(&hdr), &fd,
	    &error) < 0) {
		log_warnx("id=%s queue cannot create DSN error=\"%s\"", a->id,
		    error);
		goto out;
	}
	if (spool_write_full(fd, str_c(&msg), msg.len) < 0) {
		log_warn("id=%s queue cannot write DSN", a->id);
		close(fd);
		spool_abort(a->c->spool_dir, bid);
		goto out;
	}
	close(fd);
	if (spool_commit(a->c->spool_dir, bid, &error) < 0) {
		log_warnx("id=%s queue cannot commit DSN error=\"%s\"", a->id,
		    error);
		spool_abort(a->c->spool_dir, bid);
		goto out;
	}
	log_info("id=%s queue %s dsn=%s to=<%s> rcpts=%zu", a->id,
	    delayed ? "delay-warning" : "bounce", bid, a->env.sender, n);
	if (a->q != NULL)
		queue_notify(a->q, bid);
	ret = 0;
out:
	envelope_deinit(&benv);
	str_deinit(&msg);
	str_deinit(&hdr);
	free(r);
	return ret;
}

/* The failed recipients: one DSN (none for <>), then journal them. */
static void
queue_bounce(struct queue_attempt *a, int64_t now)
{
	size_t *idx = xcalloc(a->env.rcpt_count, sizeof(*idx)), n = 0, i;

	for (i = 0; i < a->env.rcpt_count; i++)
		if (a->st[i].status == QUEUE_RCPT_FAILED)
			idx[n++] = i;
	if (n == 0) {
		free(idx);
		return;
	}
	if (a->env.sender[0] == '\0') {
		/* RFC 5321 6.1, 4.5.5: never a DSN to the null sender. */
		for (i = 0; i < n; i++) {
			queue_journal(a, idx[i], "dropped");
			a->st[idx[i]].status = QUEUE_RCPT_DONE;
		}
		log_info("id=%s queue bounce skipped: null sender rcpts=%zu",
		    a->id, n);
	} else if (queue_send_dsn(a, idx, n, 0, now) == 0) {
		for (i = 0; i < n; i++) {
			queue_journal(a, idx[i], "bounced");
			a->st[idx[i]].status = QUEUE_RCPT_DONE;
		}
	} else
		a->io_error = 1;
	free(idx);
}

/* delay_warning: once, for recipients still deferred that long. */
static void
queue_delay_warning(struct queue_attempt *a, int64_t now)
{
	size_t *idx, n = 0, i;

	if (a->c->delay_warning <= 0 || a->env.sender[0] == '\0' ||
	    now < a->env.time + a->c->delay_warning)
		return;
	idx = xcalloc(a->env.rcpt_count, sizeof(*idx));
	for (i = 0; i < a->env.rcpt_count; i++)
		if (a->st[i].status == QUEUE_RCPT_DEFERRED && !a->st[i].warned)
			idx[n++] = i;
	if (n > 0 && queue_send_dsn(a, idx, n, 1, now) == 0) {
		for (i = 0; i < n; i++) {
			queue_journal(a, idx[i], "warned");
			a->st[idx[i]].warned = 1;
		}
	}
	free(idx);
}

/* queue_lifetime is over: what is not done has failed (RFC 3463 4.4.7
 * when it was never even tried, else the last temporary error). */
static void
queue_expire(struct queue_attempt *a, int64_t now)
{
	struct str text = STR_INIT;
	size_t i;

	if (now < a->env.time + a->c->lifetime)
		return;
	for (i = 0; i < a->env.rcpt_count; i++) {
		struct queue_rcpt_state *s = &a->st[i];

		if (s->status == QUEUE_RCPT_DONE ||
		    s->status == QUEUE_RCPT_FAILED)
			continue;
		str_clear(&text);
		str_append(&text, "delivery time expired (queue_lifetime)");
		if (s->text != NULL) {
			str_append(&text, "; last error: ");
			str_append(&text, s->text);
		}
		/* keep the server's own code of the last try */
		queue_state_set(s, QUEUE_RCPT_FAILED, s->count > 0 &&
		    s->dsn[0] != '\0' ? s->dsn : "4.4.7", s->remote,
		    str_c(&text), 0, s->last_try > 0 ? s->last_try : now);
		queue_journal_failure(a, i, s);
		queue_log_result(a, i, s->remote, "bounced", s->dsn,
		    str_c(&text), now);
		queue_metrics_result(a, i, METRICS_BOUNCED);
	}
	str_deinit(&text);
}

/* --- an attempt -------------------------------------------------------------- */

static void
queue_attempt_free(struct queue_attempt *a)
{
	if (a->jfd >= 0)
		close(a->jfd);
	if (a->fd >= 0)
		close(a->fd);
	queue_rcpt_states_free(a->st, a->env.rcpt_count);
	envelope_deinit(&a->env);
	free(a->path);
	free(a->jpath);
	pthread_mutex_destroy(&a->mutex);
	free(a);
}

/* Every job is back: bounce, warn, remove or decide the next try. */
static enum queue_result
queue_attempt_finish(struct queue_attempt *a, int64_t *next_r)
{
	int64_t now = (int64_t)time(NULL), next = 0;
	char *dir;
	size_t i;
	int all_done = 1;

	queue_bounce(a, now);
	queue_delay_warning(a, now);
	if (a->io_error)
		return QUEUE_RETRY;
	for (i = 0; i < a->env.rcpt_count; i++) {
		const struct queue_rcpt_state *s = &a->st[i];
		int64_t t;

		if (s->status == QUEUE_RCPT_DONE)
			continue;
		all_done = 0;
		/* never tried here: a remote one with no outbound
		 * client (queue_run_once): the daemon's business */
		t = s->status == QUEUE_RCPT_NEW ? now + a->c->retry_min :
		    s->next_try;
		if (next == 0 || t < next)
			next = t;
	}
	if (!all_done) {
		int64_t end = a->env.time + a->c->lifetime;

		if (end < next)
			next = end;
		if (a->c->delay_warning > 0 && a->env.sender[0] != '\0') {
			int64_t w = a->env.time + a->c->delay_warning;

			if (w > now && w < next)
				next = w;
		}
		*next_r = next;
		return QUEUE_WAIT;
	}

	/*
	 * The message first, then its journal: a crash in between leaves
	 * a journal without a message (removed at the next scan), never
	 * a message without its journal (delivered again to everyone).
	 */
	if (unlink(a->path) < 0) {
		log_warn("id=%s queue unlink", a->id);
		if (a->unjournaled > 0)
			queue_journal(a, a->unjournaled - 1, "delivered");
		return QUEUE_RETRY;
	}
	dir = xasprintf("%s/queue", a->c->spool_dir);
	if (spool_fsync_dir(dir) < 0)
		log_warn("id=%s queue fsync %s", a->id, dir);
	free(dir);
	if (unlink(a->jpath) < 0 && errno != ENOENT)
		log_warn("id=%s queue unlink journal", a->id);
	log_info("id=%s queue removed status=done", a->id);
	return QUEUE_DONE;
}

static int
queue_due(const struct queue_attempt *a, size_t i, int64_t now)
{
	const struct queue_rcpt_state *s = &a->st[i];

	if (s->status == QUEUE_RCPT_NEW)
		return 1;
	if (s->status != QUEUE_RCPT_DEFERRED)
		return 0;
	return a->force || s->next_try <= now;
}

/* Is every recipient but idx delivered (or otherwise finished)? */
static int
queue_others_done(const struct queue_attempt *a, size_t idx)
{
	for (size_t j = 0; j < a->env.rcpt_count; j++)
		if (j != idx && a->st[j].status != QUEUE_RCPT_DONE)
			return 0;
	return 1;
}

/* One local recipient into its Maildir, logged either way; 0 delivered
 * (and counted), -1 with error_r (the caller records the deferral). */
static int
queue_maildir_one(struct queue_attempt *a, size_t i, const char **error_r)
{
	const struct envelope_rcpt *r = &a->env.rcpts[i];
	struct str rp = STR_INIT;
	char abuf[256], mbuf[256];
	char *name;

	log_printable(abuf, sizeof(abuf), r->address, strlen(r->address));
	log_printable(mbuf, sizeof(mbuf), r->mailbox, strlen(r->mailbox));
	/* RFC 5321 4.4: final delivery adds Return-Path (<> for bounces
	 * and notices), before our Received header. */
	maildir_return_path(a->env.sender, &rp);
	if (maildir_deliver(a->c->maildir_root, r->mailbox, a->c->hostname,
	    str_c(&rp), a->fd, (off_t)a->offset, &name, error_r) < 0) {
		str_deinit(&rp);
		log_warnx("id=%s deliver rcpt=%s mailbox=%s status=deferred "
		    "error=\"%s\"", a->id, abuf, mbuf, *error_r);
		return -1;
	}
	str_deinit(&rp);
	log_info("id=%s deliver rcpt=%s mailbox=%s status=delivered "
	    "maildir=%s", a->id, abuf, mbuf, name);
	free(name);
	a->st[i].status = QUEUE_RCPT_DONE;
	return 0;
}

static void
queue_deliver_maildir(struct queue_attempt *a, size_t i, int64_t now)
{
	const char *error;

	if (queue_maildir_one(a, i, &error) < 0) {
		queue_record_tempfail(a, i, "4.3.0", NULL, error, 0, now);
		queue_metrics_result(a, i, METRICS_DEFERRED);
		return;
	}
	/*
	 * The last recipient: the message is removed next
	 * (queue_attempt_finish), so its journal line would be written,
	 * fsync'd and deleted at once: two fsyncs of eight per message
	 * (docs/performance.md). A crash before the removal delivers this
	 * recipient again, as one being delivered at a crash always may
	 * (docs/architecture.md); a failed removal journals it then.
	 */
	if (!a->io_error && queue_others_done(a, i))
		a->unjournaled = i + 1;
	else
		queue_journal(a, i, "delivered");
	queue_metrics_result(a, i, METRICS_DELIVERED);
}

/* Does the message have bytes above 127 (for BODY=8BITMIME)? */
static int
queue_eightbit(int fd, size_t offset, size_t size)
{
	char buf[65536];
	size_t got = 0, i;
	ssize_t n;

	while (got < size) {
		n = pread(fd, buf, sizeof(buf), (off_t)(offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (i = 0; i < (size_t)n; i++)
			if ((unsigned char)buf[i] >= 0x80)
				return 1;
		got += (size_t)n;
	}
	return 0;
}

static void queue_job_done(struct mta_job *job, void *arg);

/* Group due outbound recipients into jobs, one per next hop. */
static size_t
queue_make_jobs(struct queue_attempt *a, int64_t now, struct mta_job ***jobs_r)
{
	struct mta_job **jobs = NULL;
	struct mta_nexthop lmtp, nh;
	size_t njobs = 0, i, j;
	int have_lmtp, eight = -1;

	have_lmtp = mta_routes_local_lmtp(a->q->routes, &lmtp);
	for (i = 0; i < a->env.rcpt_count; i++) {
		const struct envelope_rcpt *r = &a->env.rcpts[i];
		struct mta_job *job = NULL;
		const char *rcpt, *at;
		char *key;

		if (!queue_due(a, i, now))
			continue;
		if (r->mailbox != NULL && !have_lmtp)
			continue;	/* Maildir */
		if (r->mailbox != NULL) {
			/* LMTP knows accounts, not our aliases. */
			rcpt = r->mailbox;
			nh = lmtp;
			nh.host = lmtp.host != NULL ? xstrdup(lmtp.host) : NULL;
			nh.path = lmtp.path != NULL ? xstrdup(lmtp.path) : NULL;
		} else {
			rcpt = r->address;
			at = strrchr(r->address, '@');
			mta_routes_remote(a->q->routes,
			    at != NULL ? at + 1 : "", &nh);
		}
		key = mta_nexthop_key(&nh);
		for (j = 0; j < njobs; j++) {
			if (strcmp(jobs[j]->key, key) == 0 &&
			    jobs[j]->rcpt_count < MTA_JOB_RCPTS) {
				job = jobs[j];
				break;
			}
		}
		if (job == NULL) {
			if (eight < 0)
				eight = queue_eightbit(a->fd, a->offset,
				    a->size);
			job = mta_job_new(a->id, a->env.sender, a->fd,
			    (off_t)a->offset, a->size, &nh);
			job->eightbit = eight;
			job->smtputf8 = a->env.smtputf8;
			job->done = queue_job_done;
			job->done_arg = a;
			jobs = xreallocarray(jobs, njobs + 1, sizeof(*jobs));
			jobs[njobs++] = job;
		}
		mta_job_add_rcpt(job, i, rcpt);
		free(key);
		mta_nexthop_deinit(&nh);
	}
	if (have_lmtp)
		mta_nexthop_deinit(&lmtp);
	*jobs_r = jobs;
	return njobs;
}

/*
 * Start an attempt at message id. QUEUE_OUTBOUND: jobs are out and the
 * attempt ends in queue_job_done; otherwise it is over.
 */
static enum queue_result
queue_deliver(struct queue *q, struct queue_entry *e,
    const struct queue_conf *c, const char *id, int force, int64_t *next_r)
{
	struct queue_attempt *a = xcalloc(1, sizeof(*a));
	struct mta_job **jobs = NULL;
	struct stat st;
	const char *error;
	char *hold;
	size_t consumed, i, njobs = 0;
	int64_t now = (int64_t)time(NULL);
	enum queue_result ret = QUEUE_RETRY;
	int corrupt;

	a->q = q;
	a->e = e;
	a->c = c;
	a->jfd = -1;
	a->force = force;
	pthread_mutex_init(&a->mutex, NULL);
	xstrlcpy(a->id, id, sizeof(a->id));
	envelope_init(&a->env);
	a->path = xasprintf("%s/queue/%s", c->spool_dir, id);
	a->jpath = xasprintf("%s.done", a->path);
	if ((a->fd = open(a->path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			ret = QUEUE_GONE;
		else
			log_warn("id=%s queue open", id);
		goto out;
	}
	if (flock(a->fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			log_debug("id=%s queue busy in another process", id);
		else
			log_warn("id=%s queue flock", id);
		goto out;
	}
	/* Whoever held the lock before us may have finished it. */
	if (fstat(a->fd, &st) < 0) {
		log_warn("id=%s queue fstat", id);
		goto out;
	}
	if (st.st_nlink == 0) {
		ret = QUEUE_GONE;
		goto out;
	}
	hold = xasprintf("%s.hold", a->path);
	if (access(hold, F_OK) == 0) {
		free(hold);
		log_debug("id=%s queue held", id);
		ret = QUEUE_HELD;
		goto out;
	}
	free(hold);

	if (spool_read_envelope(a->fd, &a->env, &consumed, &corrupt,
	    &error) < 0) {
		if (corrupt) {
			queue_move_corrupt(c, id, error);
			ret = QUEUE_GONE;
		} else
			log_warnx("id=%s queue error=\"%s\"", id, error);
		goto out;
	}
	if (strcmp(a->env.id, id) != 0) {
		queue_move_corrupt(c, id, "envelope id is not the file name");
		ret = QUEUE_GONE;
		goto out;
	}
	a->offset = consumed;
	a->size = (size_t)st.st_size > consumed ?
	    (size_t)st.st_size - consumed : 0;
	a->st = xcalloc(a->env.rcpt_count, sizeof(*a->st));
	if (queue_journal_read(a->jpath, a->st, a->env.rcpt_count, id,
	    &error) < 0) {
		log_warnx("id=%s queue error=\"%s\"", id, error);
		goto out;
	}

	queue_expire(a, now);
	for (i = 0; i < a->env.rcpt_count; i++) {
		if (a->env.rcpts[i].mailbox == NULL || !queue_due(a, i, now))
			continue;
		if (q != NULL && mta_routes_local_lmtp(q->routes, NULL))
			continue;
		queue_deliver_maildir(a, i, now);
	}
	if (q != NULL && q->mta != NULL && !a->io_error)
		njobs = queue_make_jobs(a, now, &jobs);
	if (njobs > 0) {
		/* Set before the first submit: jobs may come back at once. */
		a->pending = (int)njobs;
		for (i = 0; i < njobs; i++)
			mta_submit(q->mta, jobs[i]);
		free(jobs);
		return QUEUE_OUTBOUND;
	}
	ret = queue_attempt_finish(a, next_r);
out:
	queue_attempt_free(a);
	return ret;
}

/*
 * Delivery at commit (queue.h): the message is still incoming/ID, not
 * acknowledged. Every recipient goes into its Maildir (each file fsync'd,
 * linked into new/, new/ fsync'd with the group commit of
 * spool_fsync_dir), then incoming/ID is removed: the Maildir copies are
 * the durable ones, so nothing needs the spool file's own fsync, the
 * rename into queue/, the queue's second read and the removal from
 * queue/. incoming/ID's unlink needs no fsync: a name that comes back
 * after a crash is in incoming/, purged at the next start.
 */
int
queue_commit_deliver(struct queue *q, const char *id, const char **error_r)
{
	return queue_commit_deliver_env(q, id, -1, NULL, 0, 0, error_r);
}

int
queue_commit_deliver_env(struct queue *q, const char *id, int fd,
    struct envelope *env, size_t offset, int keep, const char **error_r)
{
	struct queue_attempt *a;
	size_t consumed, i, delivered = 0;
	struct stat st;
	int corrupt, ret = 0;

	if (q == NULL || !queue_id_valid(id) ||
	    mta_routes_local_lmtp(q->routes, NULL)) {
		if (env != NULL) {
			envelope_deinit(env);
			envelope_init(env);
		}
		if (fd >= 0)
			close(fd);
		return 0;
	}
	a = xcalloc(1, sizeof(*a));
	a->q = q;
	a->c = &q->conf;
	a->jfd = -1;
	pthread_mutex_init(&a->mutex, NULL);
	xstrlcpy(a->id, id, sizeof(a->id));
	envelope_init(&a->env);
	a->path = xasprintf("%s/incoming/%s", q->conf.spool_dir, id);
	a->jpath = xasprintf("%s/queue/%s.done", q->conf.spool_dir, id);
	if (env != NULL) {
		/* the envelope the back side checked, and its file */
		a->env = *env;
		envelope_init(env);
		a->fd = fd;
		consumed = offset;
		if (fstat(a->fd, &st) < 0) {
			*error_r = spool_errno_error("cannot stat spool file");
			ret = -1;
			goto out;
		}
	} else if ((a->fd = open(a->path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(a->fd, &st) < 0) {
		*error_r = spool_errno_error("cannot open spool file");
		ret = -1;
		goto out;
	} else if (spool_read_envelope(a->fd, &a->env, &consumed, &corrupt,
	    error_r) < 0) {
		ret = -1;
		goto out;
	}
	if (strcmp(a->env.id, id) != 0) {
		*error_r = "envelope id is not the file name";
		ret = -1;
		goto out;
	}
	for (i = 0; i < a->env.rcpt_count; i++)
		if (a->env.rcpts[i].mailbox == NULL)
			goto out;	/* a remote recipient: the queue's */
	a->offset = consumed;
	a->size = (size_t)st.st_size > consumed ?
	    (size_t)st.st_size - consumed : 0;
	a->st = xcalloc(a->env.rcpt_count, sizeof(*a->st));
	for (i = 0; i < a->env.rcpt_count; i++) {
		const char *error;

		if (queue_maildir_one(a, i, &error) < 0)
			break;
		queue_metrics_result(a, i, METRICS_DELIVERED);
		delivered++;
	}
	if (delivered == a->env.rcpt_count) {
		if (!keep && unlink(a->path) < 0)
			log_warn("id=%s queue unlink incoming", id);
		log_info("id=%s queue removed status=done", id);
		ret = 1;
		goto out;
	}
	/*
	 * A recipient failed: the message goes to the queue as usual and
	 * what was delivered is journaled first, so the queue does not
	 * deliver it again (a journal whose message never comes is removed
	 * at the next scan). A journal that fails costs duplicates, never a
	 * loss.
	 */
	for (i = 0; i < delivered; i++)
		queue_journal(a, i, "delivered");
out:
	queue_attempt_free(a);
	return ret;
}

void
queue_commit_async(struct queue *q, commit_fn *fn, void *arg)
{
	if (q == NULL || q->commits == NULL)
		fn(arg);
	else
		commit_pool_submit(q->commits, fn, arg);
}

void
queue_commit_drain(struct queue *q)
{
	if (q != NULL && q->commits != NULL)
		commit_pool_drain(q->commits);
}

/* A job is back (worker thread): journal and log each result. */
static enum queue_result
queue_job_result(struct mta_job *job, int64_t *next_r, int *last_r)
{
	struct queue_attempt *a = job->done_arg;
	int64_t now = (int64_t)time(NULL);
	enum queue_result ret = QUEUE_OUTBOUND;
	size_t i;

	pthread_mutex_lock(&a->mutex);
	if (!job->aborted) {
		for (i = 0; i < job->rcpt_count; i++) {
			const struct mta_job_rcpt *r = &job->rcpts[i];
			size_t idx = r->index;
			char relay[256];

			if (idx >= a->env.rcpt_count)
				continue;
			xstrlcpy(relay, job->relay != NULL ? job->relay : "-",
			    sizeof(relay));
			switch (r->result) {
			case MTA_SENT:
				queue_journal(a, idx, "sent %s", relay);
				a->st[idx].status = QUEUE_RCPT_DONE;
				queue_log_result(a, idx, relay, "sent",
				    r->status, r->reply, now);
				queue_metrics_result(a, idx, METRICS_DELIVERED);
				break;
			case MTA_PERMFAIL:
				queue_record_permfail(a, idx, r->status,
				    relay, r->reply, r->reply_smtp, now);
				queue_log_result(a, idx, relay, "bounced",
				    r->status, r->reply, now);
				queue_metrics_result(a, idx, METRICS_BOUNCED);
				break;
			default:
				queue_record_tempfail(a, idx, r->status,
				    relay, r->reply, r->reply_smtp, now);
				queue_log_result(a, idx, relay, "deferred",
				    r->status, r->reply, now);
				queue_metrics_result(a, idx, METRICS_DEFERRED);
				break;
			}
		}
	}
	*last_r = --a->pending == 0;
	if (*last_r && !job->aborted)
		ret = queue_attempt_finish(a, next_r);
	pthread_mutex_unlock(&a->mutex);
	return ret;
}

/* Called on the mta thread: hand the job to a worker for journaling. */
static void
queue_job_done(struct mta_job *job, void *arg)
{
	struct queue_attempt *a = arg;
	struct queue *q = a->q;
	struct queue_done *d = xcalloc(1, sizeof(*d));

	d->job = job;
	pthread_mutex_lock(&q->mutex);
	if (q->done_tail != NULL)
		q->done_tail->next = d;
	else
		q->done_head = d;
	q->done_tail = d;
	pthread_cond_signal(&q->ready_cond);
	pthread_mutex_unlock(&q->mutex);
}

/* --- scanning ------------------------------------------------------------------- */

/*
 * Calls fn for each message in queue/. A journal whose message is gone
 * was left by a crash between the two unlinks: removed here, as is a
 * hold mark without its message older than an hour.
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
		    (strcmp(de->d_name + QUEUE_ID_LEN, ".done") == 0 ||
		    strcmp(de->d_name + QUEUE_ID_LEN, ".hold") == 0)) {
			memcpy(name, de->d_name, QUEUE_ID_LEN);
			name[QUEUE_ID_LEN] = '\0';
			/* A hold mark is written just before its message is
			 * committed (queue_hold_commit): only an old one is
			 * stale. */
			if (fstatat(dirfd(dir), name, &st, 0) < 0 &&
			    errno == ENOENT &&
			    (de->d_name[QUEUE_ID_LEN + 1] == 'd' ||
			    (fstatat(dirfd(dir), de->d_name, &st, 0) == 0 &&
			    st.st_mtime < time(NULL) - 3600)) &&
			    unlinkat(dirfd(dir), de->d_name, 0) == 0)
				log_info("id=%s queue removed stale %s",
				    name, de->d_name + QUEUE_ID_LEN + 1);
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
	int64_t next;

	if (queue_deliver(NULL, NULL, rc->conf, id, 0, &next) == QUEUE_DONE)
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
	 * it while this runs.
	 */
	queue_conf_init(&c, conf);
	rc.conf = &c;
	rc.done = 0;
	ret = queue_scan(&c, queue_run_one, &rc, error_r);
	queue_conf_deinit(&c);
	return ret < 0 ? -1 : rc.done;
}

/* --- entries ---------------------------------------------------------------------- */

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

/* The queue's gauges for the metrics: messages known and the arrival of
 * the oldest, from its ID. Called with q->mutex held. */
static void
queue_metrics_gauges(struct queue *q)
{
	struct queue_entry *e;
	uint64_t oldest = 0, ms;
	int64_t n = 0;

	for (e = q->all; e != NULL; e = e->next) {
		n++;
		ms = metrics_queue_id_ms(e->id);
		if (ms != 0 && (oldest == 0 || ms < oldest))
			oldest = ms;
	}
	metrics_queue(n, (int64_t)oldest);
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
	queue_metrics_gauges(q);
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
queue_notify_locked(struct queue *q, const char *id, int force)
{
	struct queue_entry *e;

	if ((e = queue_find(q, id)) != NULL) {
		if (force)
			e->force = 1;
		switch (e->state) {
		case QUEUE_READY:
			break;
		case QUEUE_BUSY:
			e->renotify = 1;
			break;
		case QUEUE_WAIT_STATE:
		case QUEUE_IDLE:
			queue_make_ready(q, e);
			break;
		}
		return;
	}
	e = xcalloc(1, sizeof(*e));
	xstrlcpy(e->id, id, sizeof(e->id));
	e->force = force;
	e->next = q->all;
	if (q->all != NULL)
		q->all->prev = e;
	q->all = e;
	queue_metrics_gauges(q);
	queue_make_ready(q, e);
}

static void
queue_scan_add(const char *id, void *ctx)
{
	queue_notify_locked(ctx, id, 0);
}

static void
queue_scan_force(const char *id, void *ctx)
{
	queue_notify_locked(ctx, id, 1);
}

void
queue_notify(struct queue *q, const char *id)
{
	if (!queue_id_valid(id)) {
		log_warnx("queue notify with a bad queue id ignored");
		return;
	}
	pthread_mutex_lock(&q->mutex);
	queue_notify_locked(q, id, 0);
	pthread_mutex_unlock(&q->mutex);
}

void
queue_flush(struct queue *q, const char *id)
{
	pthread_mutex_lock(&q->mutex);
	if (id != NULL && queue_id_valid(id))
		queue_notify_locked(q, id, 1);
	else if (id == NULL) {
		/* reading the directory is the scheduler's job */
		q->flush_all = 1;
		pthread_cond_signal(&q->sched_cond);
	}
	pthread_mutex_unlock(&q->mutex);
}

/* Called with q->mutex held, after an attempt at e. */
static void
queue_finish(struct queue *q, struct queue_entry *e, enum queue_result r,
    int64_t next)
{
	struct timespec now;
	int64_t wait;

	switch (r) {
	case QUEUE_OUTBOUND:
		return;		/* still BUSY */
	case QUEUE_DONE:
	case QUEUE_GONE:
		queue_unlink(q, e);
		free(e);
		return;
	case QUEUE_HELD:
		e->state = QUEUE_IDLE;
		break;
	case QUEUE_WAIT:
		e->backoff = 0;
		wait = next - (int64_t)time(NULL);
		if (wait < 0)
			wait = 0;
		clock_gettime(CLOCK_MONOTONIC, &e->retry_at);
		e->retry_at.tv_sec += (time_t)wait;
		e->state = QUEUE_WAIT_STATE;
		log_debug("id=%s queue waiting retry_in=%" PRId64, e->id,
		    wait);
		pthread_cond_signal(&q->sched_cond);
		break;
	case QUEUE_RETRY:
		e->backoff = e->backoff == 0 ? QUEUE_BACKOFF_MIN :
		    e->backoff >= QUEUE_BACKOFF_MAX / 2 ? QUEUE_BACKOFF_MAX :
		    e->backoff * 2;
		clock_gettime(CLOCK_MONOTONIC, &now);
		e->retry_at = now;
		e->retry_at.tv_sec += e->backoff;
		e->state = QUEUE_WAIT_STATE;
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

/* --- threads ------------------------------------------------------------------------ */

static void *
queue_worker(void *arg)
{
	struct queue *q = arg;
	struct queue_entry *e;
	struct queue_done *d;
	char id[QUEUE_ID_LEN + 1];
	enum queue_result r;
	int64_t next = 0;
	int force, last;

	pthread_mutex_lock(&q->mutex);
	while (!q->stopping) {
		if ((d = q->done_head) != NULL) {
			struct queue_attempt *a = d->job->done_arg;

			if ((q->done_head = d->next) == NULL)
				q->done_tail = NULL;
			pthread_mutex_unlock(&q->mutex);
			r = queue_job_result(d->job, &next, &last);
			e = a->e;
			mta_job_free(&d->job);
			free(d);
			if (last)
				queue_attempt_free(a);
			pthread_mutex_lock(&q->mutex);
			if (last)
				queue_finish(q, e, r == QUEUE_OUTBOUND ?
				    QUEUE_RETRY : r, next);
			continue;
		}
		if ((e = q->ready_head) == NULL) {
			pthread_cond_wait(&q->ready_cond, &q->mutex);
			continue;
		}
		if ((q->ready_head = e->next_ready) == NULL)
			q->ready_tail = NULL;
		e->next_ready = NULL;
		e->state = QUEUE_BUSY;
		e->renotify = 0;
		force = e->force;
		e->force = 0;
		memcpy(id, e->id, sizeof(id));
		pthread_mutex_unlock(&q->mutex);

		r = queue_deliver(q, e, &q->conf, id, force, &next);

		pthread_mutex_lock(&q->mutex);
		/* A BUSY entry is never freed by another thread. */
		queue_finish(q, e, r, next);
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
	const char *error;
	int have_next;

	pthread_mutex_lock(&q->mutex);
	while (!q->stopping) {
		if (q->flush_all) {
			q->flush_all = 0;
			for (e = q->all; e != NULL; e = e->next) {
				if (e->state == QUEUE_IDLE)
					continue;	/* held */
				e->force = 1;
				if (e->state == QUEUE_WAIT_STATE)
					queue_make_ready(q, e);
				else if (e->state == QUEUE_BUSY)
					e->renotify = 1;
			}
			/* and what is not known yet (a released hold) */
			if (queue_scan(&q->conf, queue_scan_force, q,
			    &error) < 0)
				log_warnx("queue flush error=\"%s\"", error);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		have_next = 0;
		for (e = q->all; e != NULL; e = e->next) {
			if (e->state != QUEUE_WAIT_STATE)
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

/* --- the control channel ------------------------------------------------------------ */

static char *
queue_control_path(const char *spool_dir)
{
	return xasprintf("%s/%s", spool_dir, QUEUE_CONTROL_SOCKET);
}

/* On the mta loop thread: "flush", "flush ID", or "status" (answered to
 * the sender's address: sekisho status, cli_status.c). */
static void
queue_control_read(int fd, void *arg)
{
	struct queue *q = arg;
	struct sockaddr_un from;
	socklen_t fromlen = sizeof(from);
	char buf[128];
	ssize_t n;

	while ((n = recvfrom(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT,
	    (struct sockaddr *)&from, &fromlen)) >= 0) {
		buf[n] = '\0';
		if (strcmp(buf, "status") == 0) {
			struct str st = STR_INIT;

			metrics_status(&st);
			if (fromlen <= sizeof(sa_family_t) || sendto(fd,
			    str_c(&st), st.len, MSG_DONTWAIT,
			    (struct sockaddr *)&from, fromlen) < 0)
				log_warn("queue control: status not sent");
			str_deinit(&st);
		} else if (strcmp(buf, "flush") == 0) {
			log_info("queue control flush all");
			queue_flush(q, NULL);
		} else if (strncmp(buf, "flush ", 6) == 0 &&
		    queue_id_valid(buf + 6)) {
			log_info("id=%s queue control flush", buf + 6);
			queue_flush(q, buf + 6);
		} else
			log_warnx("queue control: unknown message ignored");
		fromlen = sizeof(from);
	}
}

/* The control socket's address in spool_dir; -1 when it does not fit. */
static int
queue_control_addr(const char *spool_dir, struct sockaddr_un *sun,
    const char **error_r)
{
	char *path = queue_control_path(spool_dir);
	size_t n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = xstrlcpy(sun->sun_path, path, sizeof(sun->sun_path));
	free(path);
	if (n >= sizeof(sun->sun_path)) {
		*error_r = "spool_dir too long for the control socket";
		return -1;
	}
	return 0;
}

static int
queue_control_open(const char *spool_dir, const char **error_r)
{
	struct sockaddr_un sun;
	int fd;

	if (queue_control_addr(spool_dir, &sun, error_r) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*error_r = spool_errno_error("control socket");
		return -1;
	}
	/* A socket left by a killed daemon is stale. */
	unlink(sun.sun_path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(sun.sun_path, 0600) < 0) {
		*error_r = spool_errno_error("bind control socket");
		close(fd);
		return -1;
	}
	return fd;
}

int
queue_control_send(const char *spool_dir, const char *msg,
    const char **error_r)
{
	struct sockaddr_un sun;
	int fd, r;

	if (queue_control_addr(spool_dir, &sun, error_r) < 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		*error_r = spool_errno_error("socket");
		return -1;
	}
	r = (int)sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sun,
	    sizeof(sun));
	close(fd);
	if (r < 0) {
		if (errno == ECONNREFUSED || errno == ENOENT)
			return 0;
		*error_r = spool_errno_error("send to the daemon");
		return -1;
	}
	return 1;
}

/* --- start and stop ------------------------------------------------------------------ */

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
	q->ctl_fd = -1;
	queue_conf_init(&q->conf, conf);
	pthread_mutex_init(&q->mutex, NULL);
	pthread_cond_init(&q->ready_cond, NULL);
	pthread_condattr_init(&attr);
	/* Retry times must not jump with the wall clock. */
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&q->sched_cond, &attr);
	pthread_condattr_destroy(&attr);

	if ((q->routes = mta_routes_new(conf, error_r)) == NULL) {
		queue_stop(&q);
		return NULL;
	}
	if ((q->ctl_fd = queue_control_open(conf->spool_dir, error_r)) < 0) {
		queue_stop(&q);
		return NULL;
	}
	if ((q->mta = mta_start(conf, q->routes, q->ctl_fd,
	    queue_control_read, q, error_r)) == NULL) {
		queue_stop(&q);
		return NULL;
	}

	/* No thread can run yet, but queue_notify_locked expects it. */
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
	q->commits = commit_pool_new(QUEUE_COMMIT_THREADS);
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
	struct queue_done *d;
	char *path;
	size_t i;

	if (q == NULL)
		return;
	/* commits still under way finish first (their replies are owed) */
	commit_pool_free(&q->commits);
	pthread_mutex_lock(&q->mutex);
	q->stopping = 1;
	pthread_cond_broadcast(&q->ready_cond);
	pthread_cond_broadcast(&q->sched_cond);
	pthread_mutex_unlock(&q->mutex);
	for (i = 0; i < q->worker_count; i++)
		pthread_join(q->workers[i], NULL);
	if (q->scheduler_started)
		pthread_join(q->scheduler, NULL);
	/* The outbound client last: jobs it still has come back aborted
	 * onto the done list, and their attempts are freed below without
	 * journaling (the next start tries them again). */
	mta_stop(&q->mta);
	while ((d = q->done_head) != NULL) {
		struct queue_attempt *a = d->job->done_arg;
		int last;

		q->done_head = d->next;
		pthread_mutex_lock(&a->mutex);
		last = --a->pending == 0;
		pthread_mutex_unlock(&a->mutex);
		mta_job_free(&d->job);
		free(d);
		if (last)
			queue_attempt_free(a);
	}
	if (q->ctl_fd >= 0) {
		close(q->ctl_fd);
		path = queue_control_path(q->conf.spool_dir);
		unlink(path);
		free(path);
	}
	mta_routes_free(&q->routes);

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
