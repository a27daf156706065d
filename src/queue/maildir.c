/*
 * maildir: local delivery into ROOT/domain/local/Maildir (see maildir.h
 * and https://cr.yp.to/proto/maildir.html).
 *
 * A message becomes visible only complete and on disk: it is written
 * and fsync'd in tmp/, unnamed (O_TMPFILE) or under a provisional name
 * where the file system cannot, then linked into new/ under its final
 * name, which carries ",S=<size>" (known only once the
 * CRLF to LF conversion is done), and new/ is fsync'd before we report
 * success. Reading a POP3 client sees either nothing or the whole file.
 *
 * The spool file is read with pread in bounded chunks, never whole.
 * Errors returned in error_r may point to a thread-local buffer
 * (spool_errno_error): use them before the next call in the thread.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "maildir.h"
#include "spool.h"

#define MAILDIR_CHUNK	(64 * 1024)

/* Part of every unique name: two deliveries in one microsecond in one
 * process still differ. */
static atomic_uint_fast64_t maildir_counter;

struct maildir_writer {
	int	 fd;
	int	 pending_cr;	/* a CR ended the last input chunk */
	long long lines;	/* LFs written: each is CRLF for POP3 */
	size_t	 len;
	/* dropping Return-Path fields of the message's own header */
	int	 in_header;	/* still in the header section */
	int	 bol;		/* at a line start */
	int	 skip;		/* in a Return-Path field */
	size_t	 held;		/* bytes of "Return-Path:" matched */
	char	 hold[16];	/* those bytes, as they came */
	char	 buf[MAILDIR_CHUNK];
};

#define MAILDIR_RP	"return-path:"
#define MAILDIR_RP_LEN	(sizeof(MAILDIR_RP) - 1)

/* The parts of local@domain, each safe as one path component. */
static int
maildir_split(const char *mailbox, const char **at_r)
{
	const char *at = strchr(mailbox, '@');
	const char *p;

	if (at == NULL || strchr(at + 1, '@') != NULL)
		return -1;
	if (at == mailbox || at[1] == '\0')
		return -1;
	if (mailbox[0] == '.' || at[1] == '.')
		return -1;
	for (p = mailbox; *p != '\0'; p++) {
		/* '/' would leave the root; control bytes have no place
		 * in an account name and make paths hard to audit. */
		if (*p == '/' || (unsigned char)*p < 0x20 || *p == 0x7f)
			return -1;
	}
	*at_r = at;
	return 0;
}

char *
maildir_path(const char *root, const char *mailbox)
{
	const char *at;

	if (root == NULL || mailbox == NULL ||
	    maildir_split(mailbox, &at) < 0)
		return NULL;
	return xasprintf("%s/%s/%.*s/Maildir", root, at + 1,
	    (int)(at - mailbox), mailbox);
}

/* mkdir 0700; a new directory's name is made durable in its parent. */
static int
maildir_mkdir(const char *path, const char *parent, const char **error_r)
{
	struct stat st;

	if (mkdir(path, 0700) == 0) {
		if (spool_fsync_dir(parent) < 0) {
			*error_r = spool_errno_error("cannot fsync Maildir "
			    "parent directory");
			return -1;
		}
		return 0;
	}
	if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (errno == EEXIST)
		errno = ENOTDIR;
	*error_r = spool_errno_error("cannot create Maildir directory");
	return -1;
}

static int
maildir_create_dirs(const char *root, const char *mailbox,
    const char *path, const char **error_r)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	const char *at = strchr(mailbox, '@');
	const char *slash = strrchr(root, '/');
	char *parent, *domain, *local, *sub;
	size_t i;
	int ret = -1;

	/* The usual case, every delivery but a mailbox's first: three
	 * stat calls instead of seven mkdir and stat calls. */
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		struct stat st;

		sub = xasprintf("%s/%s", path, subs[i]);
		ret = stat(sub, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
		free(sub);
		if (ret < 0)
			break;
	}
	if (ret == 0)
		return 0;

	/* The root too, so a fresh install needs no manual step. */
	parent = slash == NULL ? xstrdup(".") : slash == root ? xstrdup("/") :
	    xstrndup(root, (size_t)(slash - root));
	domain = xasprintf("%s/%s", root, at + 1);
	local = xasprintf("%s/%.*s", domain, (int)(at - mailbox), mailbox);
	if (maildir_mkdir(root, parent, error_r) < 0 ||
	    maildir_mkdir(domain, root, error_r) < 0 ||
	    maildir_mkdir(local, domain, error_r) < 0 ||
	    maildir_mkdir(path, local, error_r) < 0)
		goto out;
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		sub = xasprintf("%s/%s", path, subs[i]);
		ret = maildir_mkdir(sub, path, error_r);
		free(sub);
		if (ret < 0)
			goto out;
	}
	ret = 0;
out:
	free(parent);
	free(domain);
	free(local);
	return ret;
}

static int
maildir_flush(struct maildir_writer *w)
{
	if (w->len == 0)
		return 0;
	if (spool_write_full(w->fd, w->buf, w->len) < 0)
		return -1;
	w->len = 0;
	return 0;
}

static int
maildir_put(struct maildir_writer *w, char c)
{
	if (w->len == sizeof(w->buf) && maildir_flush(w) < 0)
		return -1;
	w->buf[w->len++] = c;
	if (c == '\n')
		w->lines++;
	return 0;
}

/*
 * CRLF becomes LF. A lone CR or LF is kept as it is: the SMTP side
 * refuses bare CR and LF in DATA, so they do not occur in practice, and
 * changing them would alter a message we did not understand.
 */
static int
maildir_convert(struct maildir_writer *w, const char *in, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (w->pending_cr) {
			w->pending_cr = 0;
			if (in[i] == '\n') {
				if (maildir_put(w, '\n') < 0)
					return -1;
				continue;
			}
			if (maildir_put(w, '\r') < 0)
				return -1;
		}
		if (in[i] == '\r') {
			w->pending_cr = 1;
			continue;
		}
		if (maildir_put(w, in[i]) < 0)
			return -1;
	}
	return 0;
}

/*
 * The message's header section without its Return-Path fields (and
 * their continuation lines): the final delivery adds the one that
 * counts (RFC 5321 4.4), so a client cannot make a message with a
 * second one, or one that comes first. Postfix drops them too
 * (message_drop_headers). The start of a line is held back until it is
 * known not to be "Return-Path:".
 */
static int
maildir_filter(struct maildir_writer *w, const char *in, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		char c = in[i];

		if (!w->in_header)
			break;
		if (w->bol && w->skip) {
			if (c == ' ' || c == '\t') {
				w->bol = 0;
				continue;
			}
			w->skip = 0;
		}
		if (w->skip) {
			w->bol = c == '\n';
			continue;
		}
		if (w->bol && w->held == 0 && (c == '\r' || c == '\n')) {
			w->in_header = 0;	/* the empty line */
			if (maildir_convert(w, in + i, 1) < 0)
				return -1;
			w->bol = c == '\n';
			continue;
		}
		if (w->bol && w->held < MAILDIR_RP_LEN &&
		    tolower((unsigned char)c) == MAILDIR_RP[w->held]) {
			w->hold[w->held] = c;
			if (++w->held == MAILDIR_RP_LEN) {
				w->held = 0;
				w->skip = 1;
				w->bol = 0;
			}
			continue;
		}
		if (w->held > 0) {
			if (maildir_convert(w, w->hold, w->held) < 0)
				return -1;
			w->held = 0;
		}
		if (maildir_convert(w, &c, 1) < 0)
			return -1;
		w->bol = c == '\n';
	}
	if (i < len && maildir_convert(w, in + i, len - i) < 0)
		return -1;
	return 0;
}

static int
maildir_copy(struct maildir_writer *w, const char *prepend, int fd,
    off_t offset, const char **error_r)
{
	char *chunk;
	ssize_t n;
	int ret = -1;

	if (prepend != NULL &&
	    maildir_convert(w, prepend, strlen(prepend)) < 0) {
		*error_r = spool_errno_error("cannot write Maildir file");
		return -1;
	}
	chunk = xmalloc(MAILDIR_CHUNK);
	for (;;) {
		n = pread(fd, chunk, MAILDIR_CHUNK, offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = spool_errno_error("cannot read spool file");
			goto out;
		}
		if (n == 0)
			break;
		offset += n;
		if (maildir_filter(w, chunk, (size_t)n) < 0) {
			*error_r = spool_errno_error("cannot write Maildir "
			    "file");
			goto out;
		}
	}
	/* a held line start at the very end (no body, no line end) */
	if (w->held > 0 && maildir_convert(w, w->hold, w->held) < 0) {
		*error_r = spool_errno_error("cannot write Maildir file");
		goto out;
	}
	if ((w->pending_cr && maildir_put(w, '\r') < 0) ||
	    maildir_flush(w) < 0) {
		*error_r = spool_errno_error("cannot write Maildir file");
		goto out;
	}
	w->pending_cr = 0;
	ret = 0;
out:
	free(chunk);
	return ret;
}

void
maildir_return_path(const char *sender, struct str *out)
{
	const char *p;

	str_append(out, "Return-Path: <");
	for (p = sender != NULL ? sender : ""; *p != '\0'; p++)
		str_append_c(out, (unsigned char)*p < 0x20 || *p == 0x7f ||
		    *p == '<' || *p == '>' ? '?' : *p);
	str_append(out, ">\r\n");
}

/* The host part of a unique name; '/' and ':' are encoded as the
 * Maildir specification asks. */
static void
maildir_host(const char *host, struct str *out)
{
	char buf[256];

	if (host == NULL || *host == '\0') {
		if (gethostname(buf, sizeof(buf)) < 0 || buf[0] == '\0')
			xstrlcpy(buf, "localhost", sizeof(buf));
		buf[sizeof(buf) - 1] = '\0';
		host = buf;
	}
	for (; *host != '\0'; host++) {
		if (*host == '/')
			str_append(out, "\\057");
		else if (*host == ':')
			str_append(out, "\\072");
		else
			str_append_c(out, *host);
	}
}

#ifdef SEKISHO_TEST_HOOKS
/*
 * Fault injection (issue 18): SEKISHO_TEST_CRASH_MAILDIR_SYNC=N kills the
 * process with SIGKILL at its Nth Maildir file, written and not yet
 * fsync'd: a crash between a commit's write and its sync. Test builds
 * only.
 */
static void
maildir_test_crash(void)
{
	static _Atomic long seen;
	const char *v = getenv("SEKISHO_TEST_CRASH_MAILDIR_SYNC");
	long at = v != NULL ? strtol(v, NULL, 10) : 0;

	if (at > 0 && ++seen == at)
		raise(SIGKILL);
}
#endif

/*
 * The Maildir whose tmp/, new/ and cur/ this thread saw last, and when:
 * for a second after, a delivery into it skips the three stat calls
 * (issue 18: W1 delivers into one Maildir from 16 commit threads). A tmp/
 * removed meanwhile is made again when its file cannot be created.
 */
#define MAILDIR_KNOWN_SECONDS	1

static __thread char maildir_known[PATH_MAX];
static __thread time_t maildir_known_at;

static void
maildir_known_forget(void)
{
	maildir_known[0] = '\0';
}

/* 1 if path was seen whole by this thread in the last second; else 0,
 * and path is remembered as seen now (the caller makes sure it is). */
static int
maildir_known_now(const char *path)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if (maildir_known[0] != '\0' && now.tv_sec - maildir_known_at <
	    MAILDIR_KNOWN_SECONDS && strcmp(maildir_known, path) == 0)
		return 1;
	if (strlen(path) < sizeof(maildir_known)) {
		memcpy(maildir_known, path, strlen(path) + 1);
		maildir_known_at = now.tv_sec;
	}
	return 0;
}

/*
 * The file of a delivery is written unnamed (O_TMPFILE in tmp/) and gets
 * its only name when it is linked into new/, complete and fsync'd: no
 * name in tmp/ to create and remove, and, on ext4 without a journal, no
 * sync of tmp/ itself inside the file's fsync (a new name there is
 * synced with the file; measured in docs/performance.md, issue 18).
 * Readers see the same: nothing, then the whole file in new/. A crash
 * before the link leaves an inode with no name, which the file system
 * frees (its orphan list, or fsck without a journal), where a name in
 * tmp/ waited for a reader's clean-up. Where the kernel or the file
 * system has no O_TMPFILE, or there is no /proc to link it through, the
 * process goes back to a name in tmp/ for good.
 */
static atomic_int maildir_no_tmpfile;

/* From now on a name in tmp/: said once, for the operator. */
static void
maildir_tmpfile_off(const char *what, const char *where, int err)
{
	if (atomic_exchange(&maildir_no_tmpfile, 1) == 0)
		log_info("maildir: %s %s: %s; Maildir files get a name in "
		    "tmp/ from now on", what, where, strerror(err));
}

/* A way not yet refused here (*refused). A test build takes the way
 * after it when test_env is set, as where it is refused. */
static int
maildir_way_wanted(atomic_int *refused, const char *test_env)
{
#ifdef SEKISHO_TEST_HOOKS
	if (getenv(test_env) != NULL)
		return 0;
#else
	(void)test_env;
#endif
	return !atomic_load(refused);
}

/* the named way, as on a file system without O_TMPFILE, in a test */
static int
maildir_tmpfile_wanted(void)
{
	return maildir_way_wanted(&maildir_no_tmpfile,
	    "SEKISHO_TEST_MAILDIR_NAMED");
}

/* fd; -2 dir gone (ENOENT); -3 not supported here; -1 other (errno) */
static int
maildir_open_tmpfile(const char *tmpdir)
{
	int fd = open(tmpdir, O_WRONLY | O_TMPFILE | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	if (errno == ENOENT)
		return -2;
	if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
		maildir_tmpfile_off("no unnamed file (O_TMPFILE) in", tmpdir,
		    errno);
		return -3;
	}
	return -1;
}

/* linkat(fd, "", AT_EMPTY_PATH) refused here (a kernel before 6.10 asks
 * for CAP_DAC_READ_SEARCH): linked through /proc from then on. */
static atomic_int maildir_no_empty_path;

/* the way through /proc, as on a kernel before 6.10, in a test */
static int
maildir_empty_path_wanted(void)
{
	return maildir_way_wanted(&maildir_no_empty_path,
	    "SEKISHO_TEST_MAILDIR_PROC_LINK");
}

/* 0 linked as new; -3 cannot link an unnamed file here (no /proc, no
 * hard links); -1 other (errno) */
static int
maildir_link_tmpfile(int fd, const char *new)
{
	char proc[64];
	int saved, tried = 0;

	/* The descriptor itself: no walk of /proc/self/fd/N each time
	 * (3.6 % of the CPU of W1 in a profile, issue 18). */
	if (maildir_empty_path_wanted()) {
		if (linkat(fd, "", AT_FDCWD, new, AT_EMPTY_PATH) == 0)
			return 0;
		if (errno != ENOENT && errno != EPERM && errno != EINVAL)
			return -1;
		tried = 1;	/* refused, or new/ is gone: /proc tells */
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, new, AT_SYMLINK_FOLLOW) == 0) {
		if (tried)
			atomic_store(&maildir_no_empty_path, 1);
		return 0;
	}
	saved = errno;
	if ((saved == ENOENT && access("/proc/self/fd", F_OK) < 0) ||
	    saved == EPERM || saved == ENOTSUP || saved == EOPNOTSUPP ||
	    saved == ENOSYS) {
		maildir_tmpfile_off("cannot link an unnamed file as", new,
		    saved);
		return -3;
	}
	errno = saved;
	return -1;
}

/* A unique name (the Maildir specification's time.MusecPpid, and a
 * counter: two deliveries in one microsecond in one process differ). */
static void
maildir_unique(struct str *name, const struct timespec *ts,
    const char *hostpart)
{
	str_clear(name);
	str_printf(name, "%lld.M%ldP%ldQ%" PRIuFAST64 ".%s",
	    (long long)ts->tv_sec, ts->tv_nsec / 1000, (long)getpid(),
	    (uint_fast64_t)atomic_fetch_add(&maildir_counter, 1), hostpart);
}

static void
maildir_free_parts(struct maildir_writer *w, char *path, char *tmp,
    char *new, char *tmpdir, struct str *name, struct str *hostpart)
{
	free(w);
	free(path);
	free(tmp);
	free(new);
	free(tmpdir);
	str_deinit(name);
	str_deinit(hostpart);
}

int
maildir_deliver(const char *root, const char *mailbox, const char *host,
    const char *prepend, int fd, off_t offset, char **name_r,
    const char **error_r)
{
	struct maildir_writer *w = NULL;
	struct str name = STR_INIT, hostpart = STR_INIT;
	struct timespec ts;
	struct stat st;
	char *path, *tmp = NULL, *new = NULL, *newdir = NULL, *tmpdir = NULL;
	int out = -1, tries, linked = 0, anon = 0, ret = -1;

	if ((path = maildir_path(root, mailbox)) == NULL) {
		*error_r = "bad mailbox path";
		return -1;
	}
	if (!maildir_known_now(path) &&
	    maildir_create_dirs(root, mailbox, path, error_r) < 0)
		goto fail;
	maildir_host(host, &hostpart);

	tmpdir = xasprintf("%s/tmp", path);
	if (maildir_tmpfile_wanted()) {
		out = maildir_open_tmpfile(tmpdir);
		/* tmp/ gone since it was seen: made again */
		if (out == -2) {
			maildir_known_forget();
			if (maildir_create_dirs(root, mailbox, path,
			    error_r) < 0)
				goto fail;
			out = maildir_open_tmpfile(tmpdir);
		}
		if (out >= 0)
			anon = 1;
		else if (out != -3) {	/* -3: not here, a name in tmp/ */
			*error_r = spool_errno_error("cannot create Maildir "
			    "file in tmp/");
			goto fail;
		}
	}
	for (tries = 0; out < 0; tries++) {
		clock_gettime(CLOCK_REALTIME, &ts);
		maildir_unique(&name, &ts, str_c(&hostpart));
		free(tmp);
		tmp = xasprintf("%s/tmp/%s", path, str_c(&name));
		out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		/* tmp/ gone since it was seen: made again, once */
		if (out < 0 && errno == ENOENT && tries == 0) {
			maildir_known_forget();
			if (maildir_create_dirs(root, mailbox, path,
			    error_r) < 0)
				goto fail;
			out = open(tmp, O_WRONLY | O_CREAT | O_EXCL |
			    O_CLOEXEC, 0600);
		}
		/* Only another process with our pid (a reused pid, a
		 * container) could hold the name: take the next one. */
		if (out < 0 && (errno != EEXIST || tries >= 3)) {
			*error_r = spool_errno_error("cannot create Maildir "
			    "tmp file");
			xfree(&tmp);
			goto fail;
		}
	}

	w = xmalloc(sizeof(*w));
	w->fd = out;
	w->pending_cr = 0;
	w->lines = 0;
	w->len = 0;
	w->in_header = 1;
	w->bol = 1;
	w->skip = 0;
	w->held = 0;
	if (maildir_copy(w, prepend, fd, offset, error_r) < 0)
		goto fail;
#ifdef SEKISHO_TEST_HOOKS
	maildir_test_crash();
#endif
	if (fsync(out) < 0) {
		*error_r = spool_errno_error("cannot fsync Maildir file");
		goto fail;
	}
	if (fstat(out, &st) < 0) {
		*error_r = spool_errno_error("cannot stat Maildir file");
		goto fail;
	}
	/* an unnamed file stays open until it is linked */
	if (!anon) {
		if (close(out) < 0) {
			out = -1;
			*error_r = spool_errno_error("cannot close Maildir "
			    "file");
			goto fail;
		}
		out = -1;
	}

	if (anon) {
		/* The name is made now: unique from here on, as a name
		 * in tmp/ would be from its creation. */
		clock_gettime(CLOCK_REALTIME, &ts);
		maildir_unique(&name, &ts, str_c(&hostpart));
	}
	/* W= first: the name still ends in S=, as readers expect. */
	str_printf(&name, ",W=%lld,S=%lld", (long long)st.st_size + w->lines,
	    (long long)st.st_size);
	new = xasprintf("%s/new/%s", path, str_c(&name));
	if (anon) {
		int r = maildir_link_tmpfile(out, new);

		close(out);
		out = -1;
		if (r == 0)
			linked = 1;
		else if (r == -3) {
			/* no /proc, or no links here: the whole delivery
			 * again with a name in tmp/ (nothing was linked) */
			maildir_free_parts(w, path, tmp, new, tmpdir, &name,
			    &hostpart);
			return maildir_deliver(root, mailbox, host, prepend,
			    fd, offset, name_r, error_r);
		} else {
			*error_r = spool_errno_error("cannot link Maildir "
			    "file into new/");
			goto fail;
		}
	} else if (link(tmp, new) == 0) {
		linked = 1;
		if (unlink(tmp) < 0) {
			*error_r = spool_errno_error("cannot remove Maildir "
			    "tmp file");
			goto fail;
		}
	} else if (errno == EPERM || errno == ENOTSUP ||
	    errno == EOPNOTSUPP || errno == ENOSYS) {
		/* No hard links on this file system (some FUSE and
		 * network ones); the name is unique, rename is safe. */
		if (rename(tmp, new) < 0) {
			*error_r = spool_errno_error("cannot move Maildir "
			    "file into new/");
			goto fail;
		}
		linked = 1;
	} else {
		*error_r = spool_errno_error("cannot link Maildir file into "
		    "new/");
		goto fail;
	}
	newdir = xasprintf("%s/new", path);
	if (spool_fsync_dir(newdir) < 0) {
		/* Not known to be durable: take it back so the queue's
		 * retry does not deliver it twice. */
		*error_r = spool_errno_error("cannot fsync Maildir new/");
		goto fail;
	}
	if (name_r != NULL)
		*name_r = str_steal(&name);
	ret = 0;
	goto done;
fail:
	maildir_known_forget();		/* seen again next time */
	if (out >= 0)
		close(out);
	if (tmp != NULL)
		unlink(tmp);
	if (linked)
		unlink(new);
done:
	maildir_free_parts(w, path, tmp, new, tmpdir, &name, &hostpart);
	free(newdir);
	return ret;
}
