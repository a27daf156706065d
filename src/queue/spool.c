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

int
spool_fsync_dir(const char *path)
{
	int fd, ret, saved;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	ret = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return ret;
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
	if (rename(from, to) < 0) {
		*error_r = spool_errno_error(
		    "cannot move spool file into queue");
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
	/* Not needed for the promise, but keeps a stale incoming/ name
	 * from coming back after a crash (it would only be purged). */
	dir = xasprintf("%s/incoming", spool_dir);
	if (spool_fsync_dir(dir) < 0)
		log_warn("id=%s spool fsync incoming", id);
	free(dir);
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
