/*
 * spool: the durable queue on disk (layout in spool.h).
 *
 * The promise behind "250 queued as ID" (PRODUCT.md: nothing acknowledged
 * is lost) rests on spool_commit: the file's data is fsync'd before it
 * gets its name in queue/, and queue/ is fsync'd before the caller may
 * acknowledge. A crash before that leaves the file in incoming/ (or a
 * rename that did not reach the disk), which is never acknowledged and
 * is removed at the next start. A message in queue/ that the client was
 * not told about (crash between rename and reply) is delivered anyway:
 * a possible duplicate, never a loss.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "spool.h"

int
spool_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

const char *
spool_errno_error(const char *what)
{
	static _Thread_local char buf[256];

	snprintf(buf, sizeof(buf), "%s: %s", what, strerror(errno));
	return buf;
}

static int
spool_fsync_dir_now(const char *path)
{
	int fd, ret, saved;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
#ifdef SEKISHO_TEST_HOOKS
	/* a slow disk, so that others come while this one runs */
	const char *delay = getenv("SEKISHO_TEST_FSYNC_DIR_DELAY_MS");

	if (delay != NULL)
		usleep((useconds_t)atoi(delay) * 1000);
#endif
	ret = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return ret;
}

/*
 * Group commit of directory fsyncs. Under load many threads make a
 * rename or unlink in the same directory (queue/, a busy Maildir's new/)
 * and each needs it on disk before it may answer. One fsync started
 * after a change covers it, so a thread takes a ticket after its change
 * and returns only after a fsync that began after that ticket has
 * finished. The first to come when none runs leads: it runs the fsync
 * for everyone whose ticket came before it began. Who comes while one
 * runs waits in line, woken exactly once: answered, when the fsync that
 * covers it is done, or made the next leader (the first in line), who
 * runs the next fsync for all in line then. Nobody is woken only to find
 * it must wait again (under W1 that was 1.4 waits a message, issue 18).
 * Fewer journal commits, nothing weaker. A slot is one directory at a
 * time; a thread whose directory's slot is taken by another directory
 * simply fsyncs on its own.
 */
#define SPOOL_SYNC_SLOTS	64

enum spool_wait_state {
	SPOOL_WAITING,
	SPOOL_COVERED,		/* a fsync that started after us is done */
	SPOOL_LEAD,		/* we run the next one */
};

struct spool_waiter {
	pthread_cond_t		 cond;
	uint64_t		 ticket;
	enum spool_wait_state	 state;
	int			 ret;		/* of the covering fsync */
	int			 error;
	struct spool_waiter	*next;
};

struct spool_sync {
	pthread_mutex_t		 mutex;
	char			 path[PATH_MAX];	/* "" when idle */
	uint64_t		 ticket;	/* last ticket handed out */
	int			 running;	/* a fsync is under way */
	unsigned		 users;		/* threads in this slot */
	struct spool_waiter	*line, **line_tail;	/* ticket order */
};

static struct spool_sync spool_syncs[SPOOL_SYNC_SLOTS];
static _Atomic uint64_t spool_sync_asked, spool_sync_done, spool_sync_ended;
static pthread_once_t spool_syncs_once = PTHREAD_ONCE_INIT;

static void
spool_syncs_init(void)
{
	for (size_t i = 0; i < SPOOL_SYNC_SLOTS; i++) {
		pthread_mutex_init(&spool_syncs[i].mutex, NULL);
		spool_syncs[i].line_tail = &spool_syncs[i].line;
	}
}

static int
spool_fsync_dir_alone(const char *path)
{
	int ret;

	spool_sync_done++;
	ret = spool_fsync_dir_now(path);
	spool_sync_ended++;
	return ret;
}

int
spool_fsync_dir(const char *path)
{
	struct spool_sync *g;
	struct spool_waiter me, *w;
	uint64_t h = 1469598103934665603ULL, target;
	int ret, saved;

	spool_sync_asked++;
	if (strlen(path) >= sizeof(g->path))
		return spool_fsync_dir_alone(path);
	for (const char *p = path; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;	/* FNV-1a */
	pthread_once(&spool_syncs_once, spool_syncs_init);
	g = &spool_syncs[h % SPOOL_SYNC_SLOTS];

	pthread_mutex_lock(&g->mutex);
	if (g->users > 0 && strcmp(g->path, path) != 0) {
		pthread_mutex_unlock(&g->mutex);
		return spool_fsync_dir_alone(path);
	}
	if (g->users++ == 0)
		xstrlcpy(g->path, path, sizeof(g->path));
	me.ticket = ++g->ticket;
	if (g->running) {
		/* in line until a fsync begun after us is done, or we are
		 * to run it */
		pthread_cond_init(&me.cond, NULL);
		me.state = SPOOL_WAITING;
		me.next = NULL;
		*g->line_tail = &me;
		g->line_tail = &me.next;
		while (me.state == SPOOL_WAITING)
			pthread_cond_wait(&me.cond, &g->mutex);
		pthread_cond_destroy(&me.cond);
		if (me.state == SPOOL_COVERED) {
			ret = me.ret;
			saved = me.error;
			goto out;
		}
		/* SPOOL_LEAD: taken out of the line, running still set */
	}
	g->running = 1;
	target = g->ticket;
	pthread_mutex_unlock(&g->mutex);
	spool_sync_done++;
	ret = spool_fsync_dir_now(path);
	saved = errno;
	spool_sync_ended++;
	pthread_mutex_lock(&g->mutex);
	/* Everyone in line with a ticket up to target came before this
	 * fsync began: answered with its result. Signalled under the
	 * mutex: a waiter's record is on its stack, gone once it may run. */
	while ((w = g->line) != NULL && w->ticket <= target) {
		if ((g->line = w->next) == NULL)
			g->line_tail = &g->line;
		w->ret = ret;
		w->error = saved;
		w->state = SPOOL_COVERED;
		pthread_cond_signal(&w->cond);
	}
	if ((w = g->line) != NULL) {
		/* came while it ran: the first of them runs the next */
		if ((g->line = w->next) == NULL)
			g->line_tail = &g->line;
		w->state = SPOOL_LEAD;
		pthread_cond_signal(&w->cond);
	} else
		g->running = 0;
out:
	if (--g->users == 0)
		g->path[0] = '\0';
	pthread_mutex_unlock(&g->mutex);
	errno = saved;
	return ret;
}

void
spool_fsync_dir_stats(uint64_t *asked_r, uint64_t *done_r)
{
	*asked_r = spool_sync_asked;
	*done_r = spool_sync_done;
}

uint64_t
spool_fsync_dir_ended(void)
{
	return spool_sync_ended;
}

/* mkdir that accepts an existing directory; 1 if it was created. */
static int
spool_mkdir(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return 1;
	if (errno != EEXIST)
		return -1;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

int
spool_init(const char *spool_dir, const char **error_r)
{
	static const char *const subdirs[] = { "incoming", "queue" };
	char *path;
	size_t i;
	int created = 0, r;

	if ((r = spool_mkdir(spool_dir)) < 0) {
		*error_r = spool_errno_error("cannot create spool_dir");
		return -1;
	}
	for (i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		path = xasprintf("%s/%s", spool_dir, subdirs[i]);
		r = spool_mkdir(path);
		free(path);
		if (r < 0) {
			*error_r = spool_errno_error(i == 0 ?
			    "cannot create spool_dir/incoming" :
			    "cannot create spool_dir/queue");
			return -1;
		}
		created |= r;
	}
	/* New directories must themselves survive a crash before the
	 * first message is acknowledged in them. */
	if (created && spool_fsync_dir(spool_dir) < 0) {
		*error_r = spool_errno_error("cannot fsync spool_dir");
		return -1;
	}
	return 0;
}

int
spool_create(const char *spool_dir, struct envelope *env,
    const char *prepend, int *fd_r, const char **error_r)
{
	struct str head = STR_INIT;
	char *path = NULL;
	int fd = -1, own_id = 0, tries;

	if (env->id[0] == '\0') {
		queue_id_new(env->id);
		own_id = 1;
	}
	if (!queue_id_valid(env->id)) {
		*error_r = "bad queue id";
		return -1;
	}
	for (tries = 0; fd < 0; tries++) {
		free(path);
		path = xasprintf("%s/incoming/%s", spool_dir, env->id);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			break;
		/* A collision with another process's ID: take the next. */
		if (errno != EEXIST || !own_id || tries >= 3) {
			*error_r = spool_errno_error(
			    "cannot create spool file");
			free(path);
			return -1;
		}
		queue_id_new(env->id);
	}

	if (envelope_format(env, &head) < 0) {
		*error_r = "envelope value holds CR, LF or TAB, or is missing";
		goto fail;
	}
	if (prepend != NULL)
		str_append(&head, prepend);
	if (spool_write_full(fd, head.s, head.len) < 0) {
		*error_r = spool_errno_error("cannot write spool file");
		goto fail;
	}
	str_deinit(&head);
	free(path);
	*fd_r = fd;
	return 0;
fail:
	str_deinit(&head);
	close(fd);
	unlink(path);
	free(path);
	return -1;
}

int
spool_open_incoming(const char *spool_dir, const char *id, int *fd_r,
    const char **error_r)
{
	char *path;
	int fd;

	if (!queue_id_valid(id)) {
		*error_r = "bad queue id";
		return -1;
	}
	path = xasprintf("%s/incoming/%s", spool_dir, id);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	free(path);
	if (fd < 0) {
		*error_r = spool_errno_error("cannot create spool file");
		return -1;
	}
	*fd_r = fd;
	return 0;
}

int
spool_reuse_incoming(const char *spool_dir, const char *old, const char *id,
    int *fd_r)
{
	char *from, *to;
	struct stat st;
	int fd = -1;

	if (!queue_id_valid(old) || !queue_id_valid(id))
		return -1;
	from = xasprintf("%s/incoming/%s", spool_dir, old);
	to = xasprintf("%s/incoming/%s", spool_dir, id);
	/* never over a file that is there: O_EXCL's promise */
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0)
		goto out;
	/*
	 * Only a plain file with no other name (never one linked elsewhere
	 * meanwhile), emptied for the new message. Emptied through a
	 * descriptor of its own, closed at once: ext4 (auto_da_alloc)
	 * writes out a file emptied this way when the descriptor is
	 * closed, which would be the session's, after the new message is
	 * in it; closed empty, nothing is written, and the message's pages
	 * are dropped with the next reuse before they ever reach the disk
	 * (no blocks allocated, none freed, no discard).
	 */
	if ((fd = open(to, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 ||
	    fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    ftruncate(fd, 0) < 0 || close(fd) < 0 ||
	    (fd = open(to, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (fd >= 0)
			close(fd);
		fd = -1;
		(void)unlink(to);
	}
out:
	free(from);
	free(to);
	if (fd < 0)
		return -1;
	*fd_r = fd;
	return 0;
}

int
spool_read_envelope(int fd, struct envelope *env, size_t *offset_r,
    int *corrupt_r, const char **error_r)
{
	struct str head = STR_INIT;
	char chunk[8192];
	size_t want, from;
	ssize_t n;
	int ret = -1;

	*corrupt_r = 0;
	envelope_init(env);
	/* "\n\n": the end of a line, then the envelope's empty line. */
	for (;;) {
		if (head.len >= SPOOL_ENVELOPE_MAX) {
			*corrupt_r = 1;
			*error_r = "envelope larger than 1 MiB";
			goto out;
		}
		want = SPOOL_ENVELOPE_MAX - head.len;
		if (want > sizeof(chunk))
			want = sizeof(chunk);
		n = pread(fd, chunk, want, (off_t)head.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = spool_errno_error("cannot read spool file");
			goto out;
		}
		if (n == 0) {
			*corrupt_r = 1;
			*error_r = "envelope not terminated by an empty line";
			goto out;
		}
		from = head.len > 0 ? head.len - 1 : 0;
		str_append_n(&head, chunk, (size_t)n);
		if (memmem(head.s + from, head.len - from, "\n\n", 2) != NULL)
			break;
	}
	if (envelope_parse(head.s, head.len, env, offset_r, error_r) < 0) {
		*corrupt_r = 1;
		goto out;
	}
	ret = 0;
out:
	str_deinit(&head);
	return ret;
}

int
spool_check_incoming(const char *spool_dir, const char *id,
    const char **error_r)
{
	struct envelope env;
	char *path;
	size_t offset;
	int fd, corrupt, ret;

	if (!queue_id_valid(id)) {
		*error_r = "bad queue id";
		return -1;
	}
	path = xasprintf("%s/incoming/%s", spool_dir, id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0) {
		*error_r = spool_errno_error("cannot open spool file");
		return -1;
	}
	ret = spool_read_envelope(fd, &env, &offset, &corrupt, error_r);
	close(fd);
	if (ret == 0 && strcmp(env.id, id) != 0) {
		*error_r = "envelope id is not the file name";
		ret = -1;
	}
	envelope_deinit(&env);
	return ret;
}

int
spool_commit(const char *spool_dir, const char *id, const char **error_r)
{
	char *from, *to, *dir;
	int fd, ret = -1;

	if (!queue_id_valid(id)) {
		*error_r = "bad queue id";
		return -1;
	}
	from = xasprintf("%s/incoming/%s", spool_dir, id);
	to = xasprintf("%s/queue/%s", spool_dir, id);

	if ((fd = open(from, O_RDONLY | O_CLOEXEC)) < 0) {
		*error_r = spool_errno_error("cannot open spool file");
		goto out;
	}
	if (fsync(fd) < 0) {
		*error_r = spool_errno_error("cannot fsync spool file");
		close(fd);
		goto out;
	}
	close(fd);
	/* Never over a queued message: the session chose the id (docs/
	 * security.md). A file system without RENAME_NOREPLACE (EINVAL)
	 * keeps the back side's check before the commit. */
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0 &&
	    (errno != EINVAL || rename(from, to) < 0)) {
		*error_r = errno == EEXIST ? "queue id already queued" :
		    spool_errno_error("cannot move spool file into queue");
		goto out;
	}
	dir = xasprintf("%s/queue", spool_dir);
	ret = spool_fsync_dir(dir);
	free(dir);
	if (ret < 0) {
		/*
		 * We cannot say the new name is on disk, so we must not
		 * let the caller acknowledge. Put the file back where it
		 * is never delivered; if even that fails, it may be
		 * delivered though refused: a duplicate, never a loss.
		 */
		*error_r = spool_errno_error(
		    "cannot fsync spool queue directory");
		if (rename(to, from) < 0)
			log_warn("id=%s spool commit undo failed", id);
		goto out;
	}
	/*
	 * incoming/ is not fsync'd: the promise needs only the new name.
	 * A journaling file system commits a rename as one change anyway,
	 * and where the old name could come back after a crash it is a
	 * second link to a queued file, which spool_purge_incoming removes
	 * at the next start without touching the one in queue/.
	 */
	ret = 0;
out:
	free(from);
	free(to);
	return ret;
}

void
spool_abort(const char *spool_dir, const char *id)
{
	char *path;

	if (!queue_id_valid(id))
		return;
	path = xasprintf("%s/incoming/%s", spool_dir, id);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("id=%s spool abort unlink", id);
	free(path);
}

int
spool_space(const char *spool_dir, uint64_t minfree, uint64_t want,
    uint64_t *avail_r, const char **error_r)
{
	struct statvfs sv;
	uint64_t avail;

	*avail_r = UINT64_MAX;
	if (minfree == 0 && want == 0)
		return 1;
	if (statvfs(spool_dir, &sv) < 0) {
		*error_r = spool_errno_error("cannot statvfs spool_dir");
		return -1;
	}
	/* f_bavail: what an unprivileged writer may still use (the root
	 * reserve of ext4 is not ours to fill). */
	avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	*avail_r = avail;
	if (avail < minfree || want > avail - minfree)
		return 0;
	return 1;
}

int
spool_purge_incoming(const char *spool_dir, const char **error_r)
{
	struct dirent *de;
	char *path;
	DIR *dir;
	int ret = 0;

	path = xasprintf("%s/incoming", spool_dir);
	if ((dir = opendir(path)) == NULL) {
		free(path);
		*error_r = spool_errno_error(
		    "cannot open spool_dir/incoming");
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(dir), de->d_name, 0) < 0 &&
		    errno != ENOENT) {
			char name[64];

			log_warn("spool purge incoming file=%s",
			    log_printable(name, sizeof(name), de->d_name,
			    strlen(de->d_name)));
			*error_r = spool_errno_error(
			    "cannot remove a file in spool_dir/incoming");
			ret = -1;
		}
	}
	closedir(dir);
	free(path);
	return ret;
}
