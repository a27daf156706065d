/*
 * be_mailbox: the back side of POP3. A POP3 session never names a file:
 * it opens its account's mailbox here (taking the one-session lock),
 * gets the listing through a memfd, asks for message N and gets its
 * descriptor, and at QUIT hands over the message numbers to delete.
 *
 * Mailboxes: ROOT/DOMAIN/LOCAL/Maildir, messages in new/ and cur/. The
 * UID of a message is its Maildir base name without the ":2,..." info
 * (stable across sessions and renames by other readers); the size is
 * the size as sent, with CRLF line ends: the ",W=" of the name (written
 * at delivery, Dovecot's convention), else counted from the file.
 *
 * The one-session lock (RFC 1939 4) is a lease in the store, shared by
 * every node: taken at open, renewed by the keeper thread while the
 * session lives (be_keeper.c), checked again before QUIT deletes
 * anything, and given back at close; a node that dies leaves leases that
 * run out after pop3_lock_lease. POP-before-SMTP windows are store rows
 * too, so a POP3 login at one node opens the window at all of them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../backend/apop.h"
#include "../queue/maildir.h"
#include "../queue/spool.h"
#include "../policy/policy.h"
#include "../store/store.h"
#include "be_keeper.h"
#include "be_session.h"
#include "backend.h"

#define BE_MBOX_MAX_MESSAGES	1000000
#define BE_UID_MAX		70	/* RFC 1939 7, UIDL */
#define BE_UPDATE_BATCH_MAX	8192	/* indexes in one BE_POP3_UPDATE */

struct be_mbox {
	uint64_t	 handle;
	char		*account;
	char		*path;		/* the Maildir */
	char		**files;	/* "new/NAME" or "cur/NAME" */
	uint32_t	 count;
	uint8_t		*marked;	/* for deletion at QUIT */
	char		 session[24];	/* the lease's session: the handle */
	int		 lost;		/* the lease was lost: no commit */
	int		 busy;		/* requests running on it */
	int		 closing;	/* free when no longer busy */
	struct be_mbox	*next;
};

static pthread_mutex_t be_mbox_lock = PTHREAD_MUTEX_INITIALIZER;
static struct be_mbox *be_mboxes;
static uint64_t be_mbox_serial;

/* One message while listing. */
struct be_entry {
	char		*rel;		/* "new/NAME" */
	char		*uid;
	uint64_t	 size;
};

static void
be_mbox_free(struct be_mbox *mb)
{
	for (uint32_t i = 0; i < mb->count; i++)
		free(mb->files[i]);
	free(mb->files);
	free(mb->marked);
	free(mb->account);
	free(mb->path);
	free(mb);
}

/* The mailbox of handle, marked busy; NULL if unknown or closing. */
static struct be_mbox *
be_mbox_get(uint64_t handle)
{
	struct be_mbox *mb;

	pthread_mutex_lock(&be_mbox_lock);
	for (mb = be_mboxes; mb != NULL; mb = mb->next)
		if (mb->handle == handle && !mb->closing) {
			mb->busy++;
			break;
		}
	pthread_mutex_unlock(&be_mbox_lock);
	return mb;
}

/* Unlink mb from the list (the lock held) and free it. */
static void
be_mbox_remove_locked(struct be_mbox *mb)
{
	for (struct be_mbox **pp = &be_mboxes; *pp != NULL;
	    pp = &(*pp)->next)
		if (*pp == mb) {
			*pp = mb->next;
			break;
		}
	be_mbox_free(mb);
}

static void
be_mbox_put(struct be_mbox *mb)
{
	pthread_mutex_lock(&be_mbox_lock);
	if (--mb->busy == 0 && mb->closing)
		be_mbox_remove_locked(mb);
	pthread_mutex_unlock(&be_mbox_lock);
}

/* ---- the lease ------------------------------------------------------- */

/* Leases of mailboxes whose channel closed, for the keeper to give back
 * (be_mailbox_abandon runs where no store is at hand). */
struct be_release {
	char			*account;
	char			 session[24];
	struct be_release	*next;
};

static struct be_release *be_releases;

static void
be_mailbox_release_pending(struct store *st)
{
	struct be_release *list;
	const char *error;

	pthread_mutex_lock(&be_mbox_lock);
	list = be_releases;
	be_releases = NULL;
	pthread_mutex_unlock(&be_mbox_lock);
	while (list != NULL) {
		struct be_release *r = list;

		list = r->next;
		if (store_pop3_lock_release(st, r->account, be_keeper_node(),
		    r->session, &error) < 0)
			log_warnx("pop3: mailbox %s: unlock: %s", r->account,
			    error);
		else
			log_info("pop3: mailbox %s: lock given back (its "
			    "session process is gone)", r->account);
		free(r->account);
		free(r);
	}
}

void
be_mailbox_abandon(uint64_t handle)
{
	struct be_mbox *mb;
	int found = 0;

	pthread_mutex_lock(&be_mbox_lock);
	for (mb = be_mboxes; mb != NULL; mb = mb->next)
		if (mb->handle == handle && !mb->closing) {
			struct be_release *r = xcalloc(1, sizeof(*r));

			r->account = xstrdup(mb->account);
			xstrlcpy(r->session, mb->session, sizeof(r->session));
			r->next = be_releases;
			be_releases = r;
			mb->closing = 1;
			if (mb->busy == 0)
				be_mbox_remove_locked(mb);
			found = 1;
			break;
		}
	pthread_mutex_unlock(&be_mbox_lock);
	if (found)
		be_keeper_poke();
}

void
be_mailbox_renew(struct store *st, int64_t expires)
{
	struct be_lease {
		char	*account;
		char	 session[24];
		uint64_t handle;
	} *list = NULL;
	size_t n = 0;
	const char *error;

	be_mailbox_release_pending(st);
	/* Copied out: no store call is made with the lock held. */
	pthread_mutex_lock(&be_mbox_lock);
	for (struct be_mbox *mb = be_mboxes; mb != NULL; mb = mb->next) {
		if (mb->closing || mb->lost)
			continue;
		list = xreallocarray(list, n + 1, sizeof(*list));
		list[n].account = xstrdup(mb->account);
		xstrlcpy(list[n].session, mb->session, sizeof(list[n].session));
		list[n++].handle = mb->handle;
	}
	pthread_mutex_unlock(&be_mbox_lock);
	for (size_t i = 0; i < n; i++) {
		int r = store_pop3_lock_refresh(st, list[i].account,
		    be_keeper_node(), list[i].session, expires, &error);

		if (r < 0)
			log_warnx("pop3: mailbox %s: lease not renewed: %s",
			    list[i].account, error);
		else if (r == 1) {
			log_warnx("pop3: mailbox %s: lease lost (it ran out "
			    "and another session took the mailbox)",
			    list[i].account);
			pthread_mutex_lock(&be_mbox_lock);
			for (struct be_mbox *mb = be_mboxes; mb != NULL;
			    mb = mb->next)
				if (mb->handle == list[i].handle)
					mb->lost = 1;
			pthread_mutex_unlock(&be_mbox_lock);
		}
		free(list[i].account);
	}
	free(list);
}

/* ---- POP-before-SMTP ------------------------------------------------- */

static void
be_popbsmtp_record(struct be_worker *w, struct store *st, const char *client,
    const char *account)
{
	const char *error;

	/* The last login from an address owns its window. */
	if (store_popbsmtp_set(st, client, account, policy_now() +
	    w->conf->pop_before_smtp_window, &error) < 0) {
		log_warnx("pop-before-smtp: client=%s account=%s not "
		    "recorded: %s", client, account, error);
		return;
	}
	log_info("pop-before-smtp open client=%s account=%s window=%ds",
	    client, account, w->conf->pop_before_smtp_window);
}

/* Answers 0 open (with the account), 1 none, 2 the store cannot say
 * now: the session answers that with a temporary failure. */
int
be_popbsmtp(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *client, *error;
	char *account = NULL;
	struct store *st;
	uint32_t result = 1;
	uint64_t sess;

	if (be_session_begin(w, req, &sess) < 0 ||
	    msg_get_str(req, &client) < 0 || msg_end(req) < 0 ||
	    client == NULL)
		return -1;
	if (w->conf->pop_before_smtp) {
		int r = -1;

		if ((st = be_worker_store(w)) != NULL &&
		    (r = store_popbsmtp_get(st, client, policy_now(), &account,
		    &error)) < 0)
			log_warnx("pop-before-smtp: look-up client=%s: %s",
			    client, error);
		result = r == 0 ? 0 : r == 1 ? 1 : 2;
		if (result == 0 && account == NULL)
			result = 2;
	}
	/* A match is a login of the back side's own. */
	if (result == 0)
		be_session_set_account(w->chan, sess, account);
	msg_add_u32(reply, result);
	msg_add_str(reply, result == 0 ? account : NULL);
	free(account);
	return 0;
}

/* ---- listing --------------------------------------------------------- */

static int
be_entry_cmp(const void *a, const void *b)
{
	const struct be_entry *x = a, *y = b;
	int c = strcmp(x->uid, y->uid);

	return c != 0 ? c : strcmp(x->rel, y->rel);
}

/* The UID of a Maildir name: the base name without ":2,FLAGS". A name
 * POP3 cannot carry (RFC 1939 7: 1 to 70 of 0x21..0x7E) is hashed. */
static char *
be_uid(const char *name)
{
	size_t n = strcspn(name, ":");
	int ok = n > 0 && n <= BE_UID_MAX;

	for (size_t i = 0; ok && i < n; i++)
		if ((unsigned char)name[i] < 0x21 ||
		    (unsigned char)name[i] > 0x7e)
			ok = 0;
	if (ok)
		return xstrndup(name, n);

	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct str hex = STR_INIT;

	if (EVP_Digest(name, n, md, &mdlen, EVP_sha256(), NULL) != 1)
		mdlen = 0;
	for (unsigned i = 0; i < mdlen && i < 16; i++)
		str_printf(&hex, "%02x", md[i]);
	if (hex.len == 0)
		str_append(&hex, "x");
	return str_steal(&hex);
}

/* ",W=<n>" in the base name (Dovecot's size with CRLF line ends). */
static int
be_name_wsize(const char *name, uint64_t *size_r)
{
	size_t n = strcspn(name, ":");
	const char *p;

	for (p = name; (p = strstr(p, ",W=")) != NULL && p < name + n; p += 3) {
		uint64_t v = 0;
		const char *d = p + 3;

		if (*d < '0' || *d > '9')
			continue;
		for (; *d >= '0' && *d <= '9' && v < UINT64_MAX / 10; d++)
			v = v * 10 + (uint64_t)(*d - '0');
		if (*d != ',' && *d != ':' && *d != '\0')
			continue;
		*size_r = v;
		return 0;
	}
	return -1;
}

/* The size as sent: LF becomes CRLF unless a CR is already there. */
static int
be_count_size(int dirfd, const char *rel, uint64_t *size_r)
{
	char buf[65536];
	uint64_t size = 0;
	int prev_cr = 0;
	ssize_t n;
	int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' && !prev_cr)
				size++;
			prev_cr = buf[i] == '\r';
		}
		size += (uint64_t)n;
	}
	close(fd);
	*size_r = size;
	return 0;
}

static int
be_list_sub(int dirfd, const char *sub, struct be_entry **list,
    size_t *count, const char **error_r)
{
	DIR *d;
	struct dirent *de;
	int subfd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (subfd < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = spool_errno_error("cannot open Maildir folder");
		return -1;
	}
	if ((d = fdopendir(subfd)) == NULL) {
		close(subfd);
		*error_r = spool_errno_error("cannot read Maildir folder");
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		struct be_entry e;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(subfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;	/* gone since readdir, or not mail */
		if (*count >= BE_MBOX_MAX_MESSAGES)
			break;
		e.rel = xasprintf("%s/%s", sub, de->d_name);
		e.uid = be_uid(de->d_name);
		if (be_name_wsize(de->d_name, &e.size) < 0 &&
		    be_count_size(dirfd, e.rel, &e.size) < 0) {
			free(e.rel);
			free(e.uid);
			continue;
		}
		*list = xreallocarray(*list, *count + 1, sizeof(**list));
		(*list)[(*count)++] = e;
	}
	closedir(d);
	return 0;
}

/* Fill mb->files and write "UID SIZE\n" lines to a new memfd. */
static int
be_mbox_scan(struct be_mbox *mb, int *fd_r, const char **error_r)
{
	struct be_entry *list = NULL;
	struct str out = STR_INIT;
	size_t count = 0;
	int dirfd, fd = -1, ret = -1;

	dirfd = open(mb->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 && errno != ENOENT) {
		*error_r = spool_errno_error("cannot open Maildir");
		return -1;
	}
	/* No Maildir yet: nothing was ever delivered, an empty mailbox. */
	if (dirfd >= 0 && (be_list_sub(dirfd, "new", &list, &count,
	    error_r) < 0 || be_list_sub(dirfd, "cur", &list, &count,
	    error_r) < 0))
		goto out;
	if (count > 1)
		qsort(list, count, sizeof(*list), be_entry_cmp);
	mb->files = xcalloc(count + 1, sizeof(*mb->files));
	mb->marked = xcalloc(count + 1, 1);
	for (size_t i = 0; i < count; i++) {
		str_printf(&out, "%s %llu\n", list[i].uid,
		    (unsigned long long)list[i].size);
		mb->files[i] = list[i].rel;
		list[i].rel = NULL;
	}
	mb->count = (uint32_t)count;
	if ((fd = memfd_create("sekisho-pop3-list", MFD_CLOEXEC)) < 0 ||
	    spool_write_full(fd, str_c(&out), out.len) < 0 ||
	    lseek(fd, 0, SEEK_SET) < 0) {
		*error_r = spool_errno_error("cannot make the listing");
		if (fd >= 0)
			close(fd);
		goto out;
	}
	*fd_r = fd;
	ret = 0;
out:
	for (size_t i = 0; i < count; i++) {
		free(list[i].rel);
		free(list[i].uid);
	}
	free(list);
	str_deinit(&out);
	if (dirfd >= 0)
		close(dirfd);
	return ret;
}

/* ---- requests -------------------------------------------------------- */

static void
be_pop3_open_fail(struct msg *reply, uint32_t result)
{
	msg_add_u32(reply, result);
	msg_add_u32(reply, 0);
}

/* A request refused for its session's record (logged). */
static int
be_pop3_refuse(struct be_worker *w, uint64_t sess, const char *what,
    const char *why)
{
	log_warnx("backend: channel=%u session=%llu refused=%s reason=%s",
	    w->chan, (unsigned long long)sess, what, why);
	return -1;
}

static int
be_pop3_open_account(struct be_worker *w, struct msg *reply, uint64_t sess,
    const char *account, const char *client);

int
be_pop3_open(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *client;
	uint64_t sess, handle;
	char *account;
	int r;

	if (msg_get_u64(req, &sess) < 0 || msg_get_str(req, &client) < 0 ||
	    msg_end(req) < 0 || client == NULL)
		return -1;
	/* The mailbox of the account the back side authenticated for this
	 * session, never one the request names. */
	if ((account = be_session_account(w->chan, sess)) == NULL)
		return be_pop3_refuse(w, sess, "pop3_open",
		    "not-authenticated");
	if (be_session_mbox(w->chan, sess, &handle) == 0) {
		free(account);
		return be_pop3_refuse(w, sess, "pop3_open", "already-open");
	}
	r = be_pop3_open_account(w, reply, sess, account, client);
	free(account);
	return r;
}

static int
be_pop3_open_account(struct be_worker *w, struct msg *reply, uint64_t sess,
    const char *account, const char *client)
{
	const char *error = "?";
	struct be_mbox *mb;
	struct store *st;
	char *path;
	int fd = -1, r;

	be_keeper_start(w->conf);
	/* The store down is a temporary failure, never "in use". */
	if ((st = be_worker_store(w)) == NULL) {
		be_pop3_open_fail(reply, BE_POP3_TEMPFAIL);
		return 0;
	}
	/* The login succeeded (the session asks only then): that is what
	 * opens a POP-before-SMTP window, even if the mailbox is busy. */
	if (w->conf->pop_before_smtp)
		be_popbsmtp_record(w, st, client, account);
	if ((path = maildir_path(w->conf->maildir_root, account)) == NULL) {
		log_warnx("pop3: account %s has no usable Maildir path",
		    account);
		be_pop3_open_fail(reply, BE_POP3_TEMPFAIL);
		return 0;
	}
	mb = xcalloc(1, sizeof(*mb));
	mb->account = xstrdup(account);
	mb->path = path;
	mb->busy = 1;
	pthread_mutex_lock(&be_mbox_lock);
	mb->handle = ++be_mbox_serial;
	pthread_mutex_unlock(&be_mbox_lock);
	(void)snprintf(mb->session, sizeof(mb->session), "%llu",
	    (unsigned long long)mb->handle);
	r = store_pop3_lock_take(st, account, be_keeper_node(), mb->session,
	    policy_now(), policy_now() + w->conf->pop3_lock_lease, &error);
	if (r != 0) {
		if (r < 0)
			log_warnx("pop3: mailbox %s: lock: %s", account, error);
		be_mbox_free(mb);
		be_pop3_open_fail(reply, r == 1 ? BE_POP3_IN_USE :
		    BE_POP3_TEMPFAIL);
		return 0;
	}
	if (be_mbox_scan(mb, &fd, &error) < 0) {
		log_warnx("pop3: mailbox %s: %s", account, error);
		if (store_pop3_lock_release(st, account, be_keeper_node(),
		    mb->session, &error) < 0)
			log_warnx("pop3: mailbox %s: unlock: %s", account,
			    error);
		be_mbox_free(mb);
		be_pop3_open_fail(reply, BE_POP3_TEMPFAIL);
		return 0;
	}
	pthread_mutex_lock(&be_mbox_lock);
	mb->next = be_mboxes;
	be_mboxes = mb;
	pthread_mutex_unlock(&be_mbox_lock);
	/* The session's one mailbox; if it ended meanwhile (or opened one
	 * in parallel), the lock goes back at once. */
	if (be_session_mbox_set(w->chan, sess, mb->handle) < 0) {
		uint64_t handle = mb->handle;

		close(fd);
		be_mbox_put(mb);
		be_mailbox_close_handle(w, handle);
		return be_pop3_refuse(w, sess, "pop3_open", "session-gone");
	}
	msg_add_u32(reply, BE_POP3_OK);
	msg_add_u32(reply, mb->count);
	msg_add_fd(reply, fd);
	be_mbox_put(mb);
	return 0;
}

/*
 * Another program that shares the Maildir (Dovecot's IMAP, docs/imap.md)
 * renames a message as it reads and flags it: new/NAME becomes
 * cur/NAME:2,S, and the flags change again later. The message keeps its
 * base name (the UID), so it is found again by that in new/ and cur/:
 * 0 with mb->files[i] updated, -1 when it is gone (expunged there).
 */
static int
be_mbox_relocate(int dirfd, struct be_mbox *mb, uint32_t i)
{
	const char *old = strchr(mb->files[i], '/');
	size_t base;
	int found = 0;

	if (old == NULL)
		return -1;
	old++;
	base = strcspn(old, ":");
	for (int j = 0; j < 2 && !found; j++) {
		const char *sub = j == 0 ? "cur" : "new";
		int subfd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC);
		DIR *d;
		struct dirent *de;

		if (subfd < 0)
			continue;
		if ((d = fdopendir(subfd)) == NULL) {
			close(subfd);
			continue;
		}
		while ((de = readdir(d)) != NULL)
			if (strncmp(de->d_name, old, base) == 0 &&
			    (de->d_name[base] == '\0' ||
			    de->d_name[base] == ':')) {
				char *rel = xasprintf("%s/%s", sub, de->d_name);

				free(mb->files[i]);
				mb->files[i] = rel;
				found = 1;
				break;
			}
		closedir(d);
	}
	return found ? 0 : -1;
}

int
be_pop3_retr(struct be_worker *w, struct msg *req, struct msg *reply)
{
	struct be_mbox *mb;
	uint64_t handle, sess;
	uint32_t index;
	int fd = -1, dirfd, gone = 0;

	if (msg_get_u64(req, &sess) < 0 || msg_get_u32(req, &index) < 0 ||
	    msg_end(req) < 0)
		return -1;
	if (be_session_mbox(w->chan, sess, &handle) < 0)
		return be_pop3_refuse(w, sess, "pop3_retr", "no-mailbox");
	if ((mb = be_mbox_get(handle)) == NULL) {
		msg_add_u32(reply, BE_POP3_TEMPFAIL);
		return 0;
	}
	if (index >= mb->count) {
		be_mbox_put(mb);
		return -1;
	}
	if ((dirfd = open(mb->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fd = openat(dirfd, mb->files[index], O_RDONLY | O_CLOEXEC |
		    O_NOFOLLOW);
		gone = fd < 0 && errno == ENOENT;
		/* renamed by IMAP meanwhile (seen, flagged): same UID */
		if (gone && be_mbox_relocate(dirfd, mb, index) == 0) {
			fd = openat(dirfd, mb->files[index], O_RDONLY |
			    O_CLOEXEC | O_NOFOLLOW);
			gone = fd < 0 && errno == ENOENT;
		}
		close(dirfd);
	}
	if (fd < 0) {
		if (!gone)
			log_warn("pop3: mailbox %s: open %s", mb->account,
			    mb->files[index]);
		msg_add_u32(reply, gone ? BE_POP3_GONE : BE_POP3_TEMPFAIL);
	} else {
		msg_add_u32(reply, BE_POP3_OK);
		msg_add_fd(reply, fd);
	}
	be_mbox_put(mb);
	return 0;
}

/* RFC 1939 6: the UPDATE state. Every marked file is unlinked and the
 * folders fsync'd, so a "+OK" to QUIT means the deletions are durable. */
static int
be_mbox_commit(struct be_mbox *mb, uint32_t *deleted_r)
{
	int dirfd, touched[2] = { 0, 0 }, ret = 0;
	uint32_t deleted = 0;

	if ((dirfd = open(mb->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	for (uint32_t i = 0; i < mb->count; i++) {
		if (!mb->marked[i])
			continue;
		int r = unlinkat(dirfd, mb->files[i], 0);
		int gone = r < 0 && errno == ENOENT;

		/* renamed by IMAP meanwhile: the same message, deleted
		 * under its new name; gone there: nothing to do */
		if (gone && be_mbox_relocate(dirfd, mb, i) == 0) {
			r = unlinkat(dirfd, mb->files[i], 0);
			gone = r < 0 && errno == ENOENT;
		}
		if (r < 0 && !gone) {
			log_warn("pop3: mailbox %s: unlink %s", mb->account,
			    mb->files[i]);
			ret = -1;
			continue;
		}
		deleted++;
		touched[strncmp(mb->files[i], "new/", 4) == 0 ? 0 : 1] = 1;
		mb->marked[i] = 0;
	}
	for (int j = 0; j < 2; j++) {
		int fd;

		if (!touched[j])
			continue;
		fd = openat(dirfd, j == 0 ? "new" : "cur", O_RDONLY |
		    O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0) {
			log_warn("pop3: mailbox %s: fsync %s", mb->account,
			    j == 0 ? "new" : "cur");
			ret = -1;
		}
		if (fd >= 0)
			close(fd);
	}
	close(dirfd);
	*deleted_r = deleted;
	return ret;
}

/* Renew mb's lease now: 0 still ours, -1 lost or not known (logged). */
static int
be_mbox_lease_check(struct be_worker *w, struct be_mbox *mb)
{
	const char *error;
	struct store *st;
	int r, lost;

	pthread_mutex_lock(&be_mbox_lock);
	lost = mb->lost;
	pthread_mutex_unlock(&be_mbox_lock);
	if (lost)
		return -1;
	if ((st = be_worker_store(w)) == NULL)
		return -1;
	r = store_pop3_lock_refresh(st, mb->account, be_keeper_node(),
	    mb->session, policy_now() + w->conf->pop3_lock_lease, &error);
	if (r < 0)
		log_warnx("pop3: mailbox %s: lease: %s", mb->account, error);
	else if (r == 1)
		log_warnx("pop3: mailbox %s: lease lost; nothing deleted",
		    mb->account);
	return r == 0 ? 0 : -1;
}

int
be_pop3_update(struct be_worker *w, struct msg *req, struct msg *reply)
{
	struct be_mbox *mb;
	uint64_t handle, sess;
	uint32_t commit, n, index, deleted = 0;
	uint32_t *idx;
	int ret = 0;

	if (msg_get_u64(req, &sess) < 0 || msg_get_u32(req, &commit) < 0 ||
	    msg_get_u32(req, &n) < 0 || n > BE_UPDATE_BATCH_MAX)
		return -1;
	idx = xcalloc(n + 1, sizeof(*idx));
	for (uint32_t i = 0; i < n; i++)
		if (msg_get_u32(req, &idx[i]) < 0) {
			free(idx);
			return -1;
		}
	if (msg_end(req) < 0) {
		free(idx);
		return -1;
	}
	if (be_session_mbox(w->chan, sess, &handle) < 0) {
		free(idx);
		return be_pop3_refuse(w, sess, "pop3_update", "no-mailbox");
	}
	if ((mb = be_mbox_get(handle)) == NULL) {
		free(idx);
		msg_add_u32(reply, BE_POP3_TEMPFAIL);
		msg_add_u32(reply, 0);
		return 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		index = idx[i];
		if (index < mb->count)
			mb->marked[index] = 1;
	}
	free(idx);
	/* Delete only while the mailbox is still ours: a lease that ran
	 * out (this node cut off from the store) may be another node's. */
	if (commit && (ret = be_mbox_lease_check(w, mb)) == 0)
		ret = be_mbox_commit(mb, &deleted);
	msg_add_u32(reply, ret == 0 ? BE_POP3_OK : BE_POP3_TEMPFAIL);
	msg_add_u32(reply, deleted);
	be_mbox_put(mb);
	return 0;
}

int
be_pop3_close(struct be_worker *w, struct msg *req, struct msg *reply)
{
	uint64_t handle, sess;

	if (msg_get_u64(req, &sess) < 0 || msg_end(req) < 0)
		return -1;
	if (be_session_mbox_take(w->chan, sess, &handle) == 0)
		be_mailbox_close_handle(w, handle);
	msg_add_u32(reply, 0);
	return 0;
}

void
be_mailbox_close_handle(struct be_worker *w, uint64_t handle)
{
	struct be_mbox *mb;
	struct store *st;
	char *account = NULL, session[24] = "";
	const char *error;

	/* Nothing marked is deleted: only a commit (QUIT) deletes. */
	pthread_mutex_lock(&be_mbox_lock);
	for (mb = be_mboxes; mb != NULL; mb = mb->next)
		if (mb->handle == handle && !mb->closing)
			break;
	if (mb != NULL) {
		mb->closing = 1;
		account = xstrdup(mb->account);
		xstrlcpy(session, mb->session, sizeof(session));
		if (mb->busy == 0)
			be_mbox_remove_locked(mb);
	}
	pthread_mutex_unlock(&be_mbox_lock);
	/* Given back at once; if the store is down now, it runs out. */
	if (account != NULL && (st = be_worker_store(w)) != NULL &&
	    store_pop3_lock_release(st, account, be_keeper_node(), session,
	    &error) < 0)
		log_warnx("pop3: mailbox %s: unlock: %s", account, error);
	free(account);
}

/* ---- APOP ------------------------------------------------------------ */

static int
be_apop_verify(struct be_worker *w, struct store *st, const char *address,
    const char *timestamp, const char *digest)
{
	unsigned char key[APOP_KEY_LEN];
	struct str secret = STR_INIT;
	const char *error;
	char *sealed = NULL;
	int r, ok = 0;

	r = store_apop_get(st, address, &sealed, &error);
	if (r < 0) {
		log_warnx("backend: apop look-up: %s", error);
		return -1;
	}
	if (r == 1) {
		log_info("pop3 apop user=%s: APOP is not enabled for the "
		    "account", address);
		return 0;
	}
	if (apop_key_load(w->conf->apop_secret_key, 0, key, &error) < 0) {
		log_warnx("backend: %s", error);
		free(sealed);
		return -1;
	}
	if (apop_unseal(key, address, sealed, &secret, &error) < 0)
		log_warnx("backend: account %s: %s", address, error);
	else
		ok = apop_check(timestamp, str_c(&secret), digest);
	OPENSSL_cleanse(key, sizeof(key));
	if (secret.s != NULL)
		OPENSSL_cleanse(secret.s, secret.cap);
	str_deinit(&secret);
	free(sealed);
	return ok;
}

int
be_apop(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *user, *digest, *client, *error;
	struct account a;
	struct store *st;
	uint32_t result;
	int r;
	uint64_t start = metrics_now_us(), sess;
	char *timestamp;

	if (msg_get_u64(req, &sess) < 0 || msg_get_str(req, &user) < 0 ||
	    msg_get_str(req, &digest) < 0 || msg_get_str(req, &client) < 0 ||
	    msg_end(req) < 0 || user == NULL || digest == NULL ||
	    client == NULL)
		return -1;
	/* The timestamp the back side issued for this session's greeting:
	 * a digest made for another greeting never matches. */
	if ((timestamp = be_session_apop_timestamp(w->chan, sess)) == NULL)
		return be_pop3_refuse(w, sess, "apop", "no-timestamp-issued");
	if ((st = be_worker_store(w)) == NULL) {
		free(timestamp);
		metrics_auth(METRICS_SVC_APOP, METRICS_AUTH_TEMPFAIL, start);
		msg_add_u32(reply, BE_AUTH_TEMPFAIL);
		msg_add_str(reply, NULL);
		msg_add_str(reply, NULL);
		msg_add_u32(reply, 0);
		msg_add_i64(reply, 0);
		return 0;
	}
	char *canon = xstrdup(user);
	int64_t locked = 0;

	for (char *c = canon; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	memset(&a, 0, sizeof(a));
	/* The same throttling as every other login (policy.c): a lock
	 * holds against the right digest too. */
	r = -1;
	if (policy_auth_check(w->conf, st, canon, client, &locked) == 1)
		result = BE_AUTH_LOCKED;
	else if ((r = store_account_get(st, canon, &a, &error)) < 0) {
		log_warnx("backend: apop look-up: %s", error);
		result = BE_AUTH_TEMPFAIL;
	} else if (r == 1)
		result = BE_AUTH_FAIL;
	else {
		int ok = be_apop_verify(w, st, a.address, timestamp, digest);

		if (ok < 0)
			result = BE_AUTH_TEMPFAIL;
		else if (ok == 0)
			result = BE_AUTH_FAIL;
		else if (a.suspended)
			result = BE_AUTH_SUSPENDED;
		else
			result = BE_AUTH_OK;
	}
	be_auth_reply(w, st, sess, canon, client, "apop", result, &a, locked,
	    start, reply);
	free(canon);
	free(timestamp);
	if (r == 0)
		account_deinit(&a);
	return 0;
}

int
be_apop_timestamp(struct be_worker *w, struct msg *req, struct msg *reply)
{
	struct str ts = STR_INIT;
	uint64_t sess;

	if (be_session_begin(w, req, &sess) < 0 || msg_end(req) < 0)
		return -1;
	/* RFC 1939 7: unique per greeting, and unpredictable. */
	apop_timestamp(&ts, w->conf->hostname);
	if (be_session_set_apop_timestamp(w->chan, sess, str_c(&ts)) < 0) {
		str_deinit(&ts);
		return -1;
	}
	msg_add_str(reply, str_c(&ts));
	str_deinit(&ts);
	return 0;
}
