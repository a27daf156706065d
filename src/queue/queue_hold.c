/*
 * queue_hold: held messages (queue.h "held messages"). A message is held
 * while spool_dir/queue/ID.hold exists; the delivery runner never tries
 * it (queue.c checks the mark under the message's flock). The mark says
 * when, by what and why (format in queue.h), so the desk sees it after
 * a restart. Only the back side and the operator's CLI write marks: a
 * session process never names a spool path (docs/security.md).
 *
 * A message committed held (quarantine, an account on hold) gets its
 * mark before its name in queue/, so no runner can see it unheld.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "envelope.h"
#include "queue.h"
#include "spool.h"

#define QUEUE_HOLD_MAGIC	"SEKISHO-HOLD 1"
#define QUEUE_HOLD_FILE_MAX	4096
#define QUEUE_HOLD_LOCK_WAIT	100	/* tenths of a second */

/* Printable ASCII only, cut to size: a value is one line of the mark. */
static void
queue_hold_clean(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	if (src != NULL)
		for (; *src != '\0' && i + 1 < size; src++)
			dst[i++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
	dst[i] = '\0';
}

static char *
queue_hold_path(const char *spool_dir, const char *id)
{
	return xasprintf("%s/queue/%s.hold", spool_dir, id);
}

int
queue_hold_mark(const char *spool_dir, const char *id, const char *by,
    const char *account, const char *reason, const char **error_r)
{
	struct queue_hold h;
	struct str s = STR_INIT;
	char *tmp, *path, *dir;
	int fd, ret = -1;

	if (!queue_id_valid(id)) {
		*error_r = "bad queue id";
		return -1;
	}
	memset(&h, 0, sizeof(h));
	h.time = (int64_t)time(NULL);
	queue_hold_clean(h.by, sizeof(h.by), by != NULL ? by : "-");
	queue_hold_clean(h.account, sizeof(h.account), account);
	queue_hold_clean(h.reason, sizeof(h.reason), reason);
	str_printf(&s, QUEUE_HOLD_MAGIC "\ntime %" PRId64 "\nby %s\n",
	    h.time, h.by[0] != '\0' ? h.by : "-");
	if (h.account[0] != '\0')
		str_printf(&s, "account %s\n", h.account);
	str_printf(&s, "reason %s\n", h.reason);

	/* a dot name: the queue's scan skips it */
	tmp = xasprintf("%s/queue/.%s.hold.tmp", spool_dir, id);
	path = queue_hold_path(spool_dir, id);
	dir = xasprintf("%s/queue", spool_dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = spool_errno_error("cannot create the hold mark");
		goto out;
	}
	if (spool_write_full(fd, str_c(&s), s.len) < 0 || fsync(fd) < 0) {
		*error_r = spool_errno_error("cannot write the hold mark");
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		*error_r = spool_errno_error("cannot rename the hold mark");
		unlink(tmp);
		goto out;
	}
	if (spool_fsync_dir(dir) < 0) {
		*error_r = spool_errno_error("cannot fsync spool_dir/queue");
		goto out;
	}
	ret = 0;
out:
	str_deinit(&s);
	free(tmp);
	free(path);
	free(dir);
	return ret;
}

int
queue_hold_read(const char *spool_dir, const char *id, struct queue_hold *h)
{
	char buf[QUEUE_HOLD_FILE_MAX + 1], *p, *nl, *line;
	char *path;
	ssize_t n;
	int fd;

	memset(h, 0, sizeof(*h));
	if (!queue_id_valid(id))
		return -1;
	path = queue_hold_path(spool_dir, id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	n = read(fd, buf, QUEUE_HOLD_FILE_MAX);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	/* An empty mark is the operator's "queue hold ID" of old. */
	xstrlcpy(h->by, "operator", sizeof(h->by));
	if (n == 0 || strncmp(buf, QUEUE_HOLD_MAGIC "\n",
	    strlen(QUEUE_HOLD_MAGIC) + 1) != 0)
		return 1;
	for (p = buf + strlen(QUEUE_HOLD_MAGIC) + 1;
	    (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		*nl = '\0';
		line = p;
		if (strncmp(line, "time ", 5) == 0)
			h->time = strtoll(line + 5, NULL, 10);
		else if (strncmp(line, "by ", 3) == 0)
			queue_hold_clean(h->by, sizeof(h->by), line + 3);
		else if (strncmp(line, "account ", 8) == 0)
			queue_hold_clean(h->account, sizeof(h->account),
			    line + 8);
		else if (strncmp(line, "reason ", 7) == 0)
			queue_hold_clean(h->reason, sizeof(h->reason),
			    line + 7);
	}
	return 1;
}

int
queue_hold_commit(const char *spool_dir, const char *id, const char *by,
    const char *account, const char *reason, const char **error_r)
{
	char *path;

	if (queue_hold_mark(spool_dir, id, by, account, reason, error_r) < 0)
		return -1;
	if (spool_commit(spool_dir, id, error_r) < 0) {
		path = queue_hold_path(spool_dir, id);
		unlink(path);
		free(path);
		return -1;
	}
	return 0;
}

int
queue_hold_release(const char *spool_dir, const char *id,
    const char **error_r)
{
	char *path, *dir;
	struct stat st;

	if (!queue_id_valid(id)) {
		*error_r = "bad queue id";
		return -1;
	}
	path = xasprintf("%s/queue/%s", spool_dir, id);
	if (stat(path, &st) < 0) {
		free(path);
		*error_r = "no such message";
		return 0;
	}
	free(path);
	/* One unlink wins: two desks releasing at once release once. */
	path = queue_hold_path(spool_dir, id);
	if (unlink(path) < 0) {
		free(path);
		if (errno == ENOENT) {
			*error_r = "not held";
			return 0;
		}
		*error_r = spool_errno_error("cannot remove the hold mark");
		return -1;
	}
	free(path);
	dir = xasprintf("%s/queue", spool_dir);
	(void)spool_fsync_dir(dir);
	free(dir);
	return 1;
}

int
queue_hold_delete(const char *spool_dir, const char *id, int held_only,
    const char **error_r)
{
	struct stat st;
	char *path, *dir;
	int fd, i;

	if (!queue_id_valid(id)) {
		*error_r = "bad queue id";
		return -1;
	}
	path = xasprintf("%s/queue/%s", spool_dir, id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(path);
		if (errno == ENOENT) {
			*error_r = "no such message";
			return 0;
		}
		*error_r = spool_errno_error("open");
		return -1;
	}
	/* the runner's lock: never under a delivery in progress */
	for (i = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; i++) {
		if (i >= QUEUE_HOLD_LOCK_WAIT) {
			*error_r = "the message is being delivered; try again";
			goto fail;
		}
		usleep(100000);
	}
	if (fstat(fd, &st) == 0 && st.st_nlink == 0) {
		*error_r = "no such message (delivered)";
		free(path);
		close(fd);
		return 0;
	}
	if (held_only) {
		struct queue_hold h;

		if (queue_hold_read(spool_dir, id, &h) != 1) {
			*error_r = "not held";
			free(path);
			close(fd);
			return 0;
		}
	}
	/* the message first, as the runner does */
	if (unlink(path) < 0) {
		*error_r = spool_errno_error("unlink");
		goto fail;
	}
	free(path);
	dir = xasprintf("%s/queue", spool_dir);
	if (spool_fsync_dir(dir) < 0)
		log_warn("queue: fsync %s", dir);
	free(dir);
	path = xasprintf("%s/queue/%s.done", spool_dir, id);
	unlink(path);
	free(path);
	path = queue_hold_path(spool_dir, id);
	unlink(path);
	free(path);
	close(fd);
	return 1;
fail:
	free(path);
	close(fd);
	return -1;
}

void
queue_hold_unload(struct queue_held *m)
{
	envelope_deinit(&m->env);
	memset(m, 0, sizeof(*m));
}

int
queue_hold_load(const char *spool_dir, const char *id, struct queue_held *m,
    const char **error_r)
{
	struct stat st;
	char *path;
	size_t consumed;
	int fd, corrupt, r;

	memset(m, 0, sizeof(*m));
	envelope_init(&m->env);
	if (!queue_id_valid(id)) {
		*error_r = "bad queue id";
		return -1;
	}
	xstrlcpy(m->id, id, sizeof(m->id));
	path = xasprintf("%s/queue/%s", spool_dir, id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0) {
		*error_r = errno == ENOENT ? "no such message" :
		    spool_errno_error("open");
		return -1;
	}
	if (fstat(fd, &st) < 0 || spool_read_envelope(fd, &m->env, &consumed,
	    &corrupt, error_r) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	m->size = (size_t)st.st_size > consumed ?
	    (size_t)st.st_size - consumed : 0;
	if ((r = queue_hold_read(spool_dir, id, &m->hold)) < 0) {
		*error_r = "cannot read the hold mark";
		queue_hold_unload(m);
		return -1;
	}
	m->held = r;
	return 0;
}

static int
queue_hold_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **
queue_ids_sorted(const char *spool_dir, size_t *n_r, int *error_r)
{
	struct dirent *de;
	char **ids = NULL, *path;
	size_t n = 0;
	DIR *dir;

	*error_r = 0;
	path = xasprintf("%s/queue", spool_dir);
	dir = opendir(path);
	free(path);
	if (dir != NULL) {
		while ((de = readdir(dir)) != NULL) {
			if (!queue_id_valid(de->d_name))
				continue;
			ids = xreallocarray(ids, n + 1, sizeof(*ids));
			ids[n++] = xstrdup(de->d_name);
		}
		closedir(dir);
	} else
		*error_r = 1;
	if (n > 0)
		qsort(ids, n, sizeof(*ids), queue_hold_cmp);
	*n_r = n;
	return ids;
}

int
queue_hold_each(const char *spool_dir, const char *account, int held_only,
    int (*fn)(const struct queue_held *m, void *ctx), void *ctx)
{
	struct queue_held m;
	const char *error;
	char **ids;
	size_t n = 0, i;
	int ret = 0, bad;

	ids = queue_ids_sorted(spool_dir, &n, &bad);
	if (bad)
		return -1;
	for (i = 0; i < n; i++) {
		if (ret == 0 && queue_hold_load(spool_dir, ids[i], &m,
		    &error) == 0) {
			if ((!held_only || m.held) && (account == NULL ||
			    (m.env.auth != NULL &&
			    strcasecmp(m.env.auth, account) == 0)))
				ret = fn(&m, ctx);
			queue_hold_unload(&m);
		}
		free(ids[i]);
	}
	free(ids);
	return ret < 0 ? -1 : 0;
}

int
queue_hold_headers(const char *spool_dir, const char *id, size_t max,
    struct str *out)
{
	struct envelope env;
	char *path, *buf, *end;
	size_t consumed;
	ssize_t n;
	int fd, corrupt;
	const char *error;

	if (!queue_id_valid(id))
		return -1;
	path = xasprintf("%s/queue/%s", spool_dir, id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -1;
	if (spool_read_envelope(fd, &env, &consumed, &corrupt, &error) < 0) {
		close(fd);
		return -1;
	}
	envelope_deinit(&env);
	buf = xmalloc(max + 1);
	n = pread(fd, buf, max, (off_t)consumed);
	close(fd);
	if (n < 0) {
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	/* up to the empty line that ends the header */
	if ((end = strstr(buf, "\r\n\r\n")) != NULL)
		end[2] = '\0';
	str_append(out, buf);
	free(buf);
	return 0;
}
