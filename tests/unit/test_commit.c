/*
 * test_commit: the commit path of issue 18. The commit pool (commit.h:
 * jobs run many at once, drain waits for every one, after the drain they
 * run inline), delivery at commit (queue_commit_deliver: every recipient
 * local goes straight into the Maildirs and the spool file goes; a remote
 * recipient leaves it to the queue; a recipient that fails leaves the
 * others journaled, so the queue does not deliver them twice), and, in the
 * fault-injection build (SEKISHO_TEST_HOOKS), a crash between a batch's
 * Maildir writes and their sync: nothing of that batch was acknowledged,
 * every acknowledged message is in new/.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/str.h"
#include "queue/commit.h"
#include "queue/envelope.h"
#include "queue/queue.h"
#include "queue/spool.h"
#include "unit.h"
#include "unit_queue.h"

static char base[64];
static const char *spool;	/* fresh()'s spool_dir */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static struct config
fresh(void)
{
	struct config c;

	if (base[0] != '\0')
		nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(base, sizeof(base), "/tmp/sekisho-test-commit-XXXXXX");
	if (mkdtemp(base) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	c = unit_queue_config(base);
	spool = c.spool_dir;
	return c;
}

/* Entries in base/sub. */
static int
count_dir(const char *sub)
{
	char path[1024];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", base, sub);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Is there base/sub/name? */
static int
exists(const char *sub, const char *name)
{
	char path[1024];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s/%s", base, sub, name);
	return stat(path, &st) == 0;
}

/* incoming/ID with rcpts (address, mailbox or NULL pairs), as a session
 * leaves it before the commit. */
static void
incoming(char id_r[QUEUE_ID_LEN + 1], const char *const *rcpts, size_t n,
    const char *subject)
{
	struct envelope env;
	struct str body = STR_INIT;
	const char *error = "?";
	int fd;

	envelope_init(&env);
	env.time = 1763800000;
	env.sender = strdup("alice@example.org");
	for (size_t i = 0; i < n; i++)
		envelope_add_rcpt(&env, rcpts[2 * i], rcpts[2 * i + 1]);
	str_printf(&body, "Subject: %s\r\n\r\nhello\r\n", subject);
	if (spool_init(spool, &error) < 0 ||
	    spool_create(spool, &env, "Received: by mx\r\n", &fd,
	    &error) < 0 ||
	    spool_write_full(fd, body.s, body.len) < 0) {
		fprintf(stderr, "incoming: %s\n", error);
		exit(2);
	}
	close(fd);
	memcpy(id_r, env.id, QUEUE_ID_LEN + 1);
	envelope_deinit(&env);
	str_deinit(&body);
}

/* --- the pool ------------------------------------------------------------ */

static _Atomic int running, most, ran;
static pthread_t inline_thread;

static void
slow_job(void *arg)
{
	int now = ++running, m;

	(void)arg;
	while ((m = most) < now && !atomic_compare_exchange_weak(&most, &m,
	    now))
		;
	usleep(50000);
	running--;
	ran++;
}

static void
inline_job(void *arg)
{
	(void)arg;
	inline_thread = pthread_self();
	ran++;
}

static void
test_pool(void)
{
	struct commit_pool *p = commit_pool_new(16);
	unsigned long submitted, waited;

	running = most = ran = 0;
	for (int i = 0; i < 8; i++)
		commit_pool_submit(p, slow_job, NULL);
	commit_pool_drain(p);
	/* every job ran before the drain returned, several at once */
	UNIT_CHECK_INT(ran, 8);
	UNIT_CHECK(most > 1);
	commit_pool_stats(p, &submitted, &waited);
	UNIT_CHECK_INT(submitted, 8);
	/* draining: a new job runs on the caller's thread */
	commit_pool_submit(p, inline_job, NULL);
	UNIT_CHECK_INT(ran, 9);
	UNIT_CHECK(pthread_equal(inline_thread, pthread_self()));
	commit_pool_free(&p);
	UNIT_CHECK(p == NULL);
	commit_pool_free(&p);

	/* jobs still queued at the free run before it returns */
	p = commit_pool_new(1);
	ran = 0;
	for (int i = 0; i < 5; i++)
		commit_pool_submit(p, slow_job, NULL);
	commit_pool_free(&p);
	UNIT_CHECK_INT(ran, 5);
}

/* --- delivery at commit ---------------------------------------------------- */

static void
test_commit_deliver(void)
{
	static const char *const local[] = {
		"bob@example.jp", "bob@example.jp",
		"info@example.jp", "carol@example.jp",	/* an alias */
	};
	static const char *const mixed[] = {
		"bob@example.jp", "bob@example.jp",
		"x@remote.example", NULL,
	};
	static const char *const failing[] = {
		"bob@example.jp", "bob@example.jp",
		"bad@example.jp", "../x@example.jp",
	};
	struct config c = fresh();
	struct queue *q;
	const char *error = NULL;
	char id[QUEUE_ID_LEN + 1], done[QUEUE_ID_LEN + 8];

	if (spool_init(spool, &error) < 0) {
		fprintf(stderr, "spool_init: %s\n", error);
		exit(2);
	}
	UNIT_CHECK_INT(queue_commit_deliver(NULL, "0", &error), 0);
	q = queue_start(&c, &error);
	UNIT_CHECK(q != NULL);
	if (q == NULL) {
		fprintf(stderr, "queue_start: %s\n", error);
		return;
	}

	/* every recipient local: in new/ at return, no spool file left */
	incoming(id, local, 2, "local");
	UNIT_CHECK_INT(queue_commit_deliver(q, id, &error), 1);
	UNIT_CHECK_INT(count_dir("mail/example.jp/bob/Maildir/new"),
	    1);
	UNIT_CHECK_INT(count_dir("mail/example.jp/carol/Maildir/new"), 1);
	UNIT_CHECK(!exists("spool/incoming", id));
	UNIT_CHECK_INT(count_dir("spool/queue"), 0);

	/* a remote recipient: the queue's, nothing delivered here */
	incoming(id, mixed, 2, "mixed");
	UNIT_CHECK_INT(queue_commit_deliver(q, id, &error), 0);
	UNIT_CHECK(exists("spool/incoming", id));
	UNIT_CHECK_INT(count_dir("mail/example.jp/bob/Maildir/new"),
	    1);
	spool_abort(spool, id);

	/* no such file: an error, nothing delivered */
	UNIT_CHECK_INT(queue_commit_deliver(q, "0000000000000000000A",
	    &error), -1);

	/* the envelope the back side checked is the one delivered, not
	 * what the file says by then (the session can still write it) */
	{
		static const char *const bob[] = {
			"bob@example.jp", "bob@example.jp",
		};
		struct envelope env;
		char path[1024];
		size_t offset;
		int fd, corrupt = 0;

		incoming(id, bob, 1, "checked");
		snprintf(path, sizeof(path), "%s/spool/incoming/%s", base, id);
		fd = open(path, O_RDONLY);
		UNIT_CHECK(fd >= 0);
		UNIT_CHECK_INT(spool_read_envelope(fd, &env, &offset,
		    &corrupt, &error), 0);
		/* as checked: carol only */
		free(env.rcpts[0].address);
		free(env.rcpts[0].mailbox);
		env.rcpts[0].address = strdup("carol@example.jp");
		env.rcpts[0].mailbox = strdup("carol@example.jp");
		UNIT_CHECK_INT(queue_commit_deliver_env(q, id, fd, &env,
		    offset, 0, &error), 1);
		envelope_deinit(&env);		/* taken over: empty */
		UNIT_CHECK_INT(count_dir("mail/example.jp/carol/Maildir/new"),
		    2);
		UNIT_CHECK_INT(count_dir("mail/example.jp/bob/Maildir/new"),
		    1);
		UNIT_CHECK(!exists("spool/incoming", id));
	}

	/* one recipient fails: the other is journaled before the spool
	 * commit, so the queue finishes without a second copy */
	incoming(id, failing, 2, "failing");
	UNIT_CHECK_INT(queue_commit_deliver(q, id, &error), 0);
	UNIT_CHECK_INT(count_dir("mail/example.jp/bob/Maildir/new"),
	    2);
	snprintf(done, sizeof(done), "%s.done", id);
	UNIT_CHECK(exists("spool/queue", done));
	UNIT_CHECK_INT(spool_commit(spool, id, &error), 0);
	queue_stop(&q);
	UNIT_CHECK_INT(queue_run_once(&c, &error), 0);
	UNIT_CHECK_INT(count_dir("mail/example.jp/bob/Maildir/new"),
	    2);
}

/* --- a crash between the writes and the sync --------------------------------- */

#ifdef SEKISHO_TEST_HOOKS
struct crash_job {
	struct queue	*q;
	char		 id[QUEUE_ID_LEN + 1];
	int		 index;
	int		 ack_fd;
};

static void
crash_job_run(void *arg)
{
	struct crash_job *j = arg;
	const char *error;

	/* the reply "250" only once the commit returned */
	if (queue_commit_deliver(j->q, j->id, &error) == 1)
		(void)!write(j->ack_fd, &j->index, sizeof(j->index));
}

/* Is message "crash-n" in bob's Maildir's sub folder? */
static int
in_dir(const char *sub, int n)
{
	char path[1024], want[64], buf[4096];
	struct dirent *de;
	DIR *d;
	int found = 0;

	snprintf(path, sizeof(path), "%s/mail/example.jp/bob/Maildir/%s",
	    base, sub);
	snprintf(want, sizeof(want), "Subject: crash-%d\n", n);
	if ((d = opendir(path)) == NULL)
		return 0;
	while (!found && (de = readdir(d)) != NULL) {
		int fd = de->d_name[0] == '.' ? -1 :
		    openat(dirfd(d), de->d_name, O_RDONLY);
		ssize_t got;

		if (fd < 0)
			continue;
		got = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[got > 0 ? got : 0] = '\0';
		found = strstr(buf, want) != NULL;
	}
	closedir(d);
	return found;
}

/* 1 if an unnamed file can be made in dir (O_TMPFILE) */
static int
tmpfile_here(const char *sub)
{
	char path[1024];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", base, sub);
	if ((fd = open(path, O_WRONLY | O_TMPFILE, 0600)) < 0)
		return 0;
	close(fd);
	return 1;
}

static void
test_crash_before_sync(void)
{
	static const char *const rcpt[] = { "bob@example.jp", "bob@example.jp" };
	enum { N = 24, CRASH_AT = 10 };
	struct config c = fresh();
	int acked[N] = { 0 };
	const char *error;
	int pfd[2], status, idx, nacked = 0, lost = 0;
	pid_t pid;

	if (pipe(pfd) < 0) {
		perror("pipe");
		exit(2);
	}
	if ((pid = fork()) == 0) {
		static struct crash_job jobs[N];
		struct queue *q;

		close(pfd[0]);
		setenv("SEKISHO_TEST_CRASH_MAILDIR_SYNC", "10", 1);
		if ((q = queue_start(&c, &error)) == NULL)
			_exit(3);
		/* one batch: every commit on the pool at once */
		for (int i = 0; i < N; i++) {
			char subject[32];

			snprintf(subject, sizeof(subject), "crash-%d", i);
			incoming(jobs[i].id, rcpt, 1, subject);
			jobs[i].q = q;
			jobs[i].index = i;
			jobs[i].ack_fd = pfd[1];
		}
		for (int i = 0; i < N; i++)
			queue_commit_async(q, crash_job_run, &jobs[i]);
		queue_commit_drain(q);
		_exit(4);	/* the hook did not fire */
	}
	close(pfd[1]);
	while (read(pfd[0], &idx, sizeof(idx)) == (ssize_t)sizeof(idx))
		if (idx >= 0 && idx < N) {
			acked[idx] = 1;
			nacked++;
		}
	close(pfd[0]);
	UNIT_CHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFSIGNALED(status))
		fprintf(stderr, "child exit %d\n", WEXITSTATUS(status));
	UNIT_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	UNIT_CHECK(nacked < CRASH_AT);

	/* the restart: incoming/ purged, the queue empty */
	{
		struct queue *q = queue_start(&c, &error);

		UNIT_CHECK(q != NULL);
		queue_stop(&q);
	}
	UNIT_CHECK_INT(count_dir("spool/incoming"), 0);
	UNIT_CHECK_INT(count_dir("spool/queue"), 0);
	/* every acknowledged message is in new/; the one the crash cut
	 * (written, never linked) was not acknowledged. Another thread may
	 * have been between its link into new/ and its answer: not
	 * acknowledged either (a duplicate when the client sends it again,
	 * docs/architecture.md). */
	for (int i = 0; i < N; i++) {
		if (acked[i])
			UNIT_CHECK(in_dir("new", i));
		if (in_dir("tmp", i))
			UNIT_CHECK(!acked[i]);
		if (!acked[i] && !in_dir("new", i))
			lost++;
	}
	UNIT_CHECK(lost >= 1);
	/* written unnamed (O_TMPFILE) where the file system can: the cut
	 * file leaves no name in tmp/ for anyone to clean up */
	if (tmpfile_here("mail/example.jp/bob/Maildir/tmp"))
		UNIT_CHECK_INT(count_dir("mail/example.jp/bob/Maildir/tmp"), 0);
}
#endif

/*
 * spool_reuse_incoming (issue 18): a delivered spool file's inode becomes
 * the next message's file, renamed and empty; never over a file that is
 * there, never a file with a second name.
 */
static void
test_reuse_incoming(void)
{
	static const char old[] = "0000000000010000000A";
	static const char id[] = "0000000000020000000B";
	static const char other[] = "0000000000030000000C";
	const char *error = NULL;
	char path[1024], path2[1024];
	struct stat st_old, st;
	int fd;

	fresh();
	UNIT_CHECK_INT(spool_init(spool, &error), 0);
	UNIT_CHECK_INT(spool_open_incoming(spool, old, &fd, &error), 0);
	UNIT_CHECK(write(fd, "old message\n", 12) == 12);
	UNIT_CHECK(fstat(fd, &st_old) == 0);
	close(fd);

	/* the user's case: the same inode, under the new name, empty */
	UNIT_CHECK_INT(spool_reuse_incoming(spool, old, id, &fd), 0);
	UNIT_CHECK(fstat(fd, &st) == 0);
	UNIT_CHECK(st.st_ino == st_old.st_ino);
	UNIT_CHECK_INT((int)st.st_size, 0);
	UNIT_CHECK(write(fd, "new\n", 4) == 4);
	close(fd);
	UNIT_CHECK(!exists("spool/incoming", old));
	snprintf(path, sizeof(path), "%s/incoming/%s", spool, id);
	UNIT_CHECK(stat(path, &st) == 0 && st.st_size == 4);

	/* never over a file that is there (O_EXCL's promise): the
	 * other file keeps its bytes */
	UNIT_CHECK_INT(spool_open_incoming(spool, other, &fd, &error), 0);
	close(fd);
	UNIT_CHECK_INT(spool_reuse_incoming(spool, other, id, &fd), -1);
	UNIT_CHECK(stat(path, &st) == 0 && st.st_size == 4);

	/* a file with a second name (linked elsewhere meanwhile) is not
	 * handed out: emptying it would empty the other name too */
	snprintf(path2, sizeof(path2), "%s/linked", base);
	UNIT_CHECK(link(path, path2) == 0);
	UNIT_CHECK_INT(spool_reuse_incoming(spool, id, old, &fd), -1);
	UNIT_CHECK(stat(path2, &st) == 0 && st.st_size == 4);
	UNIT_CHECK(!exists("spool/incoming", old));

	/* names that are not queue ids, and a file that is gone */
	UNIT_CHECK_INT(spool_reuse_incoming(spool, "../x", id, &fd), -1);
	UNIT_CHECK_INT(spool_reuse_incoming(spool, other, "../x", &fd), -1);
	UNIT_CHECK_INT(spool_reuse_incoming(spool, "0000000000090000000F", id,
	    &fd), -1);
}

int
main(void)
{
	log_init("test_commit", 1, LOG_LEVEL_WARN);
	test_pool();
	test_commit_deliver();
	test_reuse_incoming();
#ifdef SEKISHO_TEST_HOOKS
	test_crash_before_sync();
#endif
	if (unit_failed == 0)
		nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	UNIT_END();
}
