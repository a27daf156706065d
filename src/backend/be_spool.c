/*
 * be_spool: the back side's spool requests. The session writes the
 * envelope and message into a descriptor it is given; it never names or
 * opens a spool path. Commit parses the envelope back first, so nothing
 * the queue cannot read is ever acknowledged.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../policy/policy.h"
#include "../queue/queue.h"
#include "../queue/spool.h"
#include "../smtp/smtp_header.h"
#include "../store/store.h"
#include "backend.h"
#include "be_own_from.h"
#include "be_risk.h"
#include "be_session.h"
#include "../milter/milter.h"
#include "../milter/milter_proto.h"
#include "../milter/milter_spool.h"

/* RFC 5321 4.5.3.1.9 / RFC 3463 4.3.1: the mail system is full. */
#define BE_SPOOL_FULL	"452 4.3.1 Insufficient system storage, try again " \
	"later"

/*
 * queue_minfree with want more bytes to come: 1 room, 0 full (logged),
 * -1 unknown (logged). Nothing is acknowledged that would eat into the
 * floor, which is kept for what is already queued (bounces, journals).
 */
static int
be_spool_room(struct be_worker *w, const char *id, uint64_t want,
    uint64_t *room_r)
{
	uint64_t avail;
	const char *error;
	int r;

	r = spool_space(w->conf->spool_dir, w->conf->queue_minfree, want,
	    &avail, &error);
	if (room_r != NULL)
		*room_r = r > 0 ? avail - w->conf->queue_minfree : 0;
	if (r < 0)
		log_warnx("id=%s spool space: %s", id, error);
	else if (r == 0)
		log_warnx("id=%s spool full avail=%" PRIu64 " minfree=%zu "
		    "size=%" PRIu64 " result=refused", id, avail,
		    w->conf->queue_minfree, want);
	return r;
}

int
be_spool_space(struct be_worker *w, struct msg *req, struct msg *reply)
{
	uint64_t size, room;
	int r;

	if (msg_get_u64(req, &size) < 0 || msg_end(req) < 0)
		return -1;
	r = be_spool_room(w, "-", size, &room);
	msg_add_u32(reply, r > 0 ? 0 : r == 0 ? 2 : 1);
	msg_add_str(reply, r > 0 ? NULL : r == 0 ? BE_SPOOL_FULL :
	    "451 4.3.0 Temporary failure checking the queue's free space, "
	    "try again later");
	msg_add_u64(reply, room);
	return 0;
}

/* The spool directory of the last BE_SPOOL_OPEN, for be_spool_abandon,
 * which has no config at hand (configs are never freed). */
static const char *be_spool_last_dir;

void
be_spool_abandon(const char *id)
{
	const char *dir = __atomic_load_n(&be_spool_last_dir,
	    __ATOMIC_ACQUIRE);

	if (dir != NULL && queue_id_valid(id))
		spool_abort(dir, id);
}

void
be_spool_drop(struct be_worker *w, const char *id)
{
	if (queue_id_valid(id))
		spool_abort(w->conf->spool_dir, id);
}

/*
 * 1 if queue/ID exists: a message already queued. The session chooses
 * the queue id; committing incoming/ID would rename over it and so
 * replace another session's queued message.
 * spool_commit's rename uses RENAME_NOREPLACE too, which closes the
 * window between this check and the rename.
 */
static int
be_spool_queued(struct be_worker *w, const char *id)
{
	char *path;
	struct stat st;
	int r;

	if (!queue_id_valid(id))
		return 0;
	path = xasprintf("%s/queue/%s", w->conf->spool_dir, id);
	r = lstat(path, &st) == 0 || errno != ENOENT;
	free(path);
	return r;
}

/*
 * issue 18: spool files kept for reuse, per channel. A message delivered
 * at commit leaves incoming/ID behind, emptied, instead of removing it,
 * and the next BE_SPOOL_OPEN of the same channel renames and empties it
 * (spool_reuse_incoming): a file per message, but no inode allocated and
 * freed per message (ext4 without a journal walks every inode freed in the
 * last seconds before it allocates one, holding the directory's lock: 6%
 * of W1's CPU in a clean profile, a third after a mass deletion). A file
 * goes back only to the session process that wrote it: another one's
 * descriptor never reaches it, and what the process may still write
 * through its old descriptor lands in its own next message, which it
 * writes anyway. Channels are never numbered twice; a channel that closes
 * has its files removed; whatever is left at a crash is in incoming/,
 * emptied at start.
 */
#define BE_SPOOL_REUSE_MAX	64

struct be_spool_reuse {
	unsigned		 chan;
	size_t			 n;
	char			 ids[BE_SPOOL_REUSE_MAX][QUEUE_ID_LEN + 1];
	struct be_spool_reuse	*next;
};

static pthread_mutex_t be_spool_reuse_lock = PTHREAD_MUTEX_INITIALIZER;
static struct be_spool_reuse *be_spool_reuses;

/* The channel's list (made when create), under the lock. */
static struct be_spool_reuse *
be_spool_reuse_find(unsigned chan, int create)
{
	struct be_spool_reuse *r;

	for (r = be_spool_reuses; r != NULL; r = r->next)
		if (r->chan == chan)
			return r;
	if (!create)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->chan = chan;
	r->next = be_spool_reuses;
	be_spool_reuses = r;
	return r;
}

/* incoming/ID, delivered: kept for the channel's next message, or removed
 * (the channel is gone, or has enough kept). Any thread. */
static void
be_spool_recycle(unsigned chan, const char *spool_dir, const char *id)
{
	struct be_spool_reuse *r;
	char *path;
	int kept = 0, emptied;

	/* emptied now: no delivered message waits in incoming/, and its
	 * pages are dropped before they are ever written out (the reuse
	 * empties it again, in case the session process wrote into it) */
	path = xasprintf("%s/incoming/%s", spool_dir, id);
	emptied = truncate(path, 0) == 0;
	free(path);
	pthread_mutex_lock(&be_spool_reuse_lock);
	if (emptied && (r = be_spool_reuse_find(chan, 0)) != NULL &&
	    r->n < BE_SPOOL_REUSE_MAX) {
		xstrlcpy(r->ids[r->n++], id, sizeof(r->ids[0]));
		kept = 1;
	}
	pthread_mutex_unlock(&be_spool_reuse_lock);
	if (!kept)
		spool_abort(spool_dir, id);
}

void
be_spool_channel_gone(unsigned chan)
{
	struct be_spool_reuse **rp, *r = NULL;
	const char *dir = __atomic_load_n(&be_spool_last_dir,
	    __ATOMIC_ACQUIRE);

	pthread_mutex_lock(&be_spool_reuse_lock);
	for (rp = &be_spool_reuses; *rp != NULL; rp = &(*rp)->next)
		if ((*rp)->chan == chan) {
			r = *rp;
			*rp = r->next;
			break;
		}
	pthread_mutex_unlock(&be_spool_reuse_lock);
	if (r == NULL)
		return;
	for (size_t i = 0; dir != NULL && i < r->n; i++)
		spool_abort(dir, r->ids[i]);
	free(r);
}

/* incoming/ID for the channel: a kept file emptied, else a new one. */
static int
be_spool_create(struct be_worker *w, const char *id, int *fd_r,
    const char **error_r)
{
	struct be_spool_reuse *r;
	char old[QUEUE_ID_LEN + 1] = "";

	/* XXX: a request of a channel that closed, run after its close,
	 * makes its list again; what it then keeps (at most 64 emptied
	 * files, only if such a late message is also delivered) stays in
	 * incoming/ until the next start. Rare and bounded; not worth a
	 * channel-alive check across backend.c. */
	pthread_mutex_lock(&be_spool_reuse_lock);
	if ((r = be_spool_reuse_find(w->chan, 1))->n > 0)
		xstrlcpy(old, r->ids[--r->n], sizeof(old));
	pthread_mutex_unlock(&be_spool_reuse_lock);
	if (old[0] != '\0') {
		if (spool_reuse_incoming(w->conf->spool_dir, old, id,
		    fd_r) == 0)
			return 0;
		spool_abort(w->conf->spool_dir, old);
	}
	return spool_open_incoming(w->conf->spool_dir, id, fd_r, error_r);
}

/* BE_SPOOL_OPEN's answer for session sess, into reply; -1: the
 * session's record is gone (the request is refused). */
static int
be_spool_open_answer(struct be_worker *w, uint64_t sess, const char *id,
    struct msg *reply)
{
	const char *error;
	char old[QUEUE_ID_LEN + 1];
	int fd;

	__atomic_store_n(&be_spool_last_dir, w->conf->spool_dir,
	    __ATOMIC_RELEASE);
	if (be_spool_queued(w, id)) {
		log_warnx("id=%s backend: channel=%u session=%llu "
		    "refused=spool_open reason=\"queue id already queued\"",
		    id, w->chan, (unsigned long long)sess);
		msg_add_u32(reply, 1);
		msg_add_str(reply, "queue id in use");
		return 0;
	}
	/* A session that passed MAIL before the disk filled. */
	if (be_spool_room(w, id, 0, NULL) == 0) {
		msg_add_u32(reply, 2);
		msg_add_str(reply, BE_SPOOL_FULL);
		return 0;
	}
	if (be_spool_create(w, id, &fd, &error) < 0) {
		log_warnx("id=%s spool open: %s", id, error);
		msg_add_u32(reply, 1);
		msg_add_str(reply, error);
		return 0;
	}
	/* The session's one open spool file; one it left (its abort may
	 * still be queued behind this) is removed now. */
	if (be_session_spool_set(w->chan, sess, id, old) < 0) {
		close(fd);
		spool_abort(w->conf->spool_dir, id);
		return -1;
	}
	if (old[0] != '\0' && strcmp(old, id) != 0)
		spool_abort(w->conf->spool_dir, old);
	msg_add_u32(reply, 0);
	msg_add_str(reply, NULL);
	msg_add_fd(reply, fd);
	return 0;
}

int
be_spool_open(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *id;
	uint64_t sess;

	if (be_session_begin(w, req, &sess) < 0 ||
	    msg_get_str(req, &id) < 0 || msg_end(req) < 0 || id == NULL)
		return -1;
	return be_spool_open_answer(w, sess, id, reply);
}

/*
 * The last recipient before a pipelined DATA and the spool open in one
 * round trip (issue 18): BE_RCPT's answer, then BE_SPOOL_OPEN's when
 * the record took the recipient, else 3 and no file.
 */
int
be_rcpt_open(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *address, *id;
	uint64_t sess;

	if (be_session_begin(w, req, &sess) < 0 ||
	    msg_get_str(req, &address) < 0 || msg_get_str(req, &id) < 0 ||
	    msg_end(req) < 0 || address == NULL || id == NULL)
		return -1;
	if (!be_rcpt_answer(w, sess, address, reply)) {
		msg_add_u32(reply, 3);
		msg_add_str(reply, NULL);
		return 0;
	}
	return be_spool_open_answer(w, sess, id, reply);
}

#define BE_SPOOL_FORGED	"554 5.7.0 Message refused: its envelope does " \
	"not match the transaction"

/* The header section read back for From (more: no usable From), and the
 * From field text kept (the session refuses more than 4096 octets). */
#define BE_SPOOL_HEADER_MAX	(256 * 1024)
#define BE_SPOOL_FROM_MAX	8192

/* "From:" or "From :" (RFC 5322 4.5.3, obsolete but legal). */
static int
be_spool_is_from(const char *p, size_t len)
{
	size_t i = 4;

	if (len < 5 || strncasecmp(p, "From", 4) != 0)
		return 0;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < len && p[i] == ':';
}

/*
 * The header From addresses of the spool file fd whose message starts at
 * offset, read by the back side itself (never taken from the session):
 * the count (0: none), or -1 when there is no usable From (more than
 * SMTP_HEADER_MAX_ADDRS addresses, a field longer than BE_SPOOL_FROM_MAX,
 * a header section longer than BE_SPOOL_HEADER_MAX, a read error).
 */
static int
be_spool_header_from(int fd, size_t offset, char ***from_r)
{
	struct str head = STR_INIT, from = STR_INIT;
	char buf[8192];
	off_t off = (off_t)offset;
	int in_from = 0, ret = -1, complete = 0;
	ssize_t n;

	*from_r = NULL;
	while (head.len < BE_SPOOL_HEADER_MAX) {
		if ((n = pread(fd, buf, sizeof(buf), off)) < 0) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		if (n == 0) {
			complete = 1;	/* a message without a body */
			break;
		}
		str_append_n(&head, buf, (size_t)n);
		off += n;
		if (memmem(head.s, head.len, "\n\r\n", 3) != NULL ||
		    memmem(head.s, head.len, "\n\n", 2) != NULL) {
			complete = 1;
			break;
		}
	}
	if (!complete)
		goto out;
	for (const char *p = str_c(&head), *end = p + head.len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0)
			break;			/* the end of the header section */
		if (p[0] == ' ' || p[0] == '\t') {
			if (in_from)
				str_append_n(&from, p, len);
		} else if ((in_from = be_spool_is_from(p, len)) != 0) {
			const char *colon = memchr(p, ':', len);

			if (from.len > 0)
				str_append_c(&from, ',');
			str_append_n(&from, colon + 1,
			    len - (size_t)(colon + 1 - p));
		}
		if (from.len > BE_SPOOL_FROM_MAX)
			goto out;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	ret = smtp_header_addresses(str_c(&from), from.len, from_r);
out:
	str_deinit(&head);
	str_deinit(&from);
	return ret;
}

/* The envelope checked at commit, with its open file (issue 18). */
struct be_checked {
	struct envelope		 env;
	int			 fd;		/* -1: none */
	size_t			 offset;
};

static void
be_checked_deinit(struct be_checked *c)
{
	if (c->fd >= 0) {
		envelope_deinit(&c->env);
		close(c->fd);
		c->fd = -1;
	}
}

/*
 * The envelope the session wrote, against what the back side decided
 * for the session: every recipient accepted at BE_RCPT, the account the
 * session authenticated, for a submission the sender the policy was
 * asked about. 0 matches (*rcpts_r the recipient count), -1 refused
 * (logged; *why_r), -2 the file cannot be read.
 */
static int
be_spool_envelope_check(struct be_worker *w, uint64_t sess, const char *id,
    const struct be_session_txn *t, uint32_t *rcpts_r, char ***from_r,
    int *nfrom_r, const char **why_r, struct be_checked *checked_r)
{
	struct envelope env;
	const char *error;
	size_t offset;
	char *path;
	int fd, corrupt = 0, ret = 0;

	path = xasprintf("%s/incoming/%s", w->conf->spool_dir, id);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0)
		return -2;
	if (spool_read_envelope(fd, &env, &offset, &corrupt, &error) < 0) {
		close(fd);
		*why_r = "unreadable envelope";
		return corrupt ? -1 : -2;
	}
	/* A submission's header From, for alignment: read here. */
	*from_r = NULL;
	*nfrom_r = t->account != NULL ? be_spool_header_from(fd, offset,
	    from_r) : 0;
	if (strcmp(env.id, id) != 0)
		*why_r = "envelope id is not the file name", ret = -1;
	else if (be_spool_queued(w, id))
		*why_r = "queue id already queued", ret = -1;
	else if ((env.auth == NULL) != (t->account == NULL) ||
	    (env.auth != NULL && strcmp(env.auth, t->account) != 0))
		*why_r = "envelope account is not the session's", ret = -1;
	else if (t->account != NULL && !t->policy_ok)
		*why_r = "no policy answer to MAIL", ret = -1;
	else if (t->account != NULL && (t->sender == NULL ||
	    strcmp(env.sender, t->sender) != 0))
		*why_r = "sender is not the one the policy checked", ret = -1;
	else if (env.rcpt_count == 0 || env.rcpt_count > UINT32_MAX)
		*why_r = "no recipient", ret = -1;
	for (size_t i = 0; ret == 0 && i < env.rcpt_count; i++)
		if (!be_session_rcpt_accepted(w->chan, sess,
		    env.rcpts[i].address, env.rcpts[i].mailbox))
			*why_r = "recipient not accepted", ret = -1;
	*rcpts_r = (uint32_t)env.rcpt_count;
	if (ret == 0) {
		/* issue 18: delivery at commit takes what was checked */
		checked_r->env = env;
		checked_r->fd = fd;
		checked_r->offset = offset;
	} else {
		envelope_deinit(&env);
		close(fd);
	}
	if (ret < 0 && *nfrom_r > 0) {
		smtp_header_addresses_free(*from_r, *nfrom_r);
		*from_r = NULL;
		*nfrom_r = 0;
	}
	return ret;
}

/*
 * A commit between the worker that checked it and the one that ends it
 * (when the filters are asked in between, backend.h "deferred").
 */
struct be_commit {
	char			*id;
	unsigned		 chan;		/* whose file it is */
	uint64_t		 sess;
	uint64_t		 size;
	char			*client, *tls, *msgid, *mech, *if_addr;
	uint32_t		 port;
	int			 submission;	/* the role's milters */
	uint32_t		 rcpts;
	struct be_session_txn	 t;
	struct be_defer		*defer;
	struct milter_job	*job;
	int			 fd;		/* the file shown to filters */
	/* issue 18: the durable step on the commit pool (commit.h) */
	int			 may_defer;	/* called by the request */
	int			 direct;	/* delivered at commit */
	int			 result;	/* of be_commit_durable */
	struct be_checked	 checked;	/* fd -1 when none */
	char			*spool_dir;
	struct queue		*queue;
	char			 error[256];
};

static void
be_commit_free(struct be_commit *bc)
{
	free(bc->id);
	free(bc->client);
	free(bc->tls);
	free(bc->msgid);
	free(bc->mech);
	free(bc->if_addr);
	free(bc->spool_dir);
	be_checked_deinit(&bc->checked);
	be_session_txn_deinit(&bc->t);
	milter_job_free(bc->job);
	if (bc->fd >= 0)
		close(bc->fd);
	free(bc);
}

static char *
be_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* Not queued after all: the file goes, the send counts are given back. */
static void
be_commit_undo(struct be_worker *w, struct be_commit *bc)
{
	struct store *st;

	spool_abort(w != NULL ? w->conf->spool_dir : bc->spool_dir, bc->id);
	if (w != NULL && bc->t.account != NULL &&
	    (st = be_worker_store(w)) != NULL)
		policy_uncount(w->conf, st, bc->t.account, bc->t.overseas,
		    bc->rcpts);
}

/* "TLSv1.3 with cipher NAME (...)" (tls_describe): version and cipher
 * for the filters' macros. */
static void
be_commit_tls(const char *tls, char **version_r, char **cipher_r)
{
	const char *sp, *c;

	*version_r = *cipher_r = NULL;
	if (tls == NULL || (sp = strchr(tls, ' ')) == NULL)
		return;
	*version_r = xstrndup(tls, (size_t)(sp - tls));
	if ((c = strstr(sp, " with cipher ")) != NULL) {
		c += strlen(" with cipher ");
		*cipher_r = xstrndup(c, strcspn(c, " "));
	}
}

/*
 * The filters' job for bc: the envelope and header fields read back from
 * the file, the macros from the record. 0, or -1 (logged): the message
 * cannot be shown to a filter.
 */
static int
be_commit_job(struct be_worker *w, struct be_commit *bc, char **specs,
    int nspecs)
{
	const struct config *conf = w->conf;
	struct milter_job *job = milter_job_new();
	struct milter_field *f = NULL;
	struct envelope env;
	const char *error;
	size_t offset, n = 0;
	char *path;
	int corrupt = 0;

	job->specs = specs;
	job->nspecs = nspecs;
	bc->job = job;
	path = xasprintf("%s/incoming/%s", conf->spool_dir, bc->id);
	bc->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (bc->fd < 0 || spool_read_envelope(bc->fd, &env, &offset,
	    &corrupt, &error) < 0) {
		log_warnx("id=%s milter: cannot read the message back",
		    bc->id);
		return -1;
	}
	if (milter_spool_fields(bc->fd, offset, &f, &n, &job->body_off,
	    &job->body_end, &error) < 0) {
		log_warnx("id=%s milter: message not shown to the filters: %s",
		    bc->id, error);
		envelope_deinit(&env);
		return -1;
	}
	job->headers = xcalloc(n + 1, sizeof(*job->headers));
	for (size_t i = 0; i < n; i++) {
		job->headers[i].name = f[i].name;
		job->headers[i].value = f[i].value;
		f[i].name = f[i].value = NULL;
	}
	job->nheaders = n;
	milter_spool_fields_free(f, n);
	job->connect_timeout = conf->milter_connect_timeout;
	job->command_timeout = conf->milter_command_timeout;
	job->eom_timeout = conf->milter_eom_timeout;
	job->default_action = conf->milter_default_action;
	job->body_max = conf->message_size_limit;
	job->id = xstrdup(bc->id);
	/* the filters' connections are kept for the session (milter.h) */
	job->session = xmalloc(MILTER_SESSION_MAX);
	milter_session_name(job->session, w->chan, bc->sess);
	job->hostname = xstrdup(conf->hostname);
	/* as Postfix's default: Rspamd takes it for the authserv-id of
	 * its Authentication-Results (RFC 8601: the host's name) */
	job->daemon_name = xstrdup(conf->hostname);
	job->if_addr = be_dup(bc->if_addr);
	job->client_addr = xstrdup(bc->client);
	job->client_port = bc->port != 0 ? xasprintf("%u", bc->port) : NULL;
	job->helo = be_dup(env.helo);
	be_commit_tls(bc->tls, &job->tls_version, &job->cipher);
	/* the account is the record's, never the session's word */
	if (bc->t.account != NULL) {
		job->auth_authen = xstrdup(bc->t.account);
		job->auth_type = xstrdup(bc->mech != NULL ? bc->mech :
		    "POP-before-SMTP");
	}
	job->sender = xstrdup(env.sender);
	job->rcpts = xcalloc(env.rcpt_count + 1, sizeof(*job->rcpts));
	for (size_t i = 0; i < env.rcpt_count; i++)
		job->rcpts[i] = xstrdup(env.rcpts[i].address);
	job->nrcpts = env.rcpt_count;
	job->fd = bc->fd;
	envelope_deinit(&env);
	return 0;
}

/* An added recipient, looked up as BE_RCPT does. */
static int
be_commit_resolve(void *arg, const char *address, char **mailbox_r)
{
	struct be_worker *w = arg;
	struct store *st = be_worker_store(w);
	const char *error;
	char *lookup;
	int local = 0, r;

	*mailbox_r = NULL;
	if (strchr(address, '@') == NULL)
		return 2;	/* no domain: nowhere to send it */
	if (st == NULL)
		return -1;
	lookup = xstrdup(address);
	for (char *c = lookup; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	r = store_resolve_recipient(st, lookup, mailbox_r, &local, &error);
	free(lookup);
	if (r < 0) {
		log_warnx("backend: recipient lookup: %s", error);
		return -1;
	}
	if (r == 0)
		return *mailbox_r != NULL ? 0 : -1;
	return local ? 2 : 1;
}

/*
 * A quarantine: the message is committed HELD (issue 17's state: never
 * tried until `sekisho queue release`). The one place that says how.
 */
static int
be_milter_hold(struct be_worker *w, struct be_commit *bc,
    const char **error_r)
{
	char *reason = xasprintf("quarantined by milter %s: %s",
	    bc->job->quarantine_by, bc->job->quarantine);
	int r;

	r = queue_hold_commit(w->conf->spool_dir, bc->id, "milter",
	    bc->t.account, reason, error_r);
	free(reason);
	return r;
}

/* A filter's verdict on a subscriber's own submission, for the risk
 * score (be_risk.h). */
static void
be_commit_spam(struct be_worker *w, struct be_commit *bc)
{
	struct milter_job *job = bc->job;
	struct store *st = be_worker_store(w);
	char *verdict;

	if (st == NULL)
		return;
	if (job->verdict == MILTER_ACCEPT)
		verdict = xasprintf("milter %s quarantine: %s",
		    job->quarantine_by, job->quarantine);
	else
		verdict = xasprintf("milter %s %s%s%s", job->verdict_by,
		    job->verdict == MILTER_DISCARD ? "discard" : "reject",
		    job->reply != NULL ? ": " : "",
		    job->reply != NULL ? job->reply : "");
	be_risk_spam(w->conf, st, w->queue, bc->t.account, bc->client,
	    bc->t.country, verdict);
	free(verdict);
}

#define BE_SPOOL_TEMPFAIL	"451 4.3.0 Temporary failure: message not " \
	"queued, try again later"

/*
 * The end of a commit, on a worker: the filters' verdict and changes,
 * the refuse_own_from hook, the commit (held when quarantined), the
 * reply. Frees bc.
 */
static int be_commit_durable(struct be_commit *, const char *,
    struct queue *);
static void be_commit_durable_job(void *);
static int be_commit_durable_done(struct be_worker *, struct msg *, void *);
static int be_commit_done(struct be_worker *, struct msg *,
    struct be_commit *, int);

static int
be_commit_finish(struct be_worker *w, struct msg *reply, struct be_commit *bc)
{
	struct milter_job *job = bc->job;
	const char *error, *id = bc->id;
	struct str answer = STR_INIT, added = STR_INIT;
	const char **anames = NULL, **avalues = NULL;
	size_t nadded = 0;
	char hold_reason[256];
	int r, held = 0, risk_held;

	/* issue 17: a filter's refusal, discard or quarantine of a
	 * subscriber's own submission is a risk signal */
	if (job != NULL && bc->t.account != NULL && ((job->verdict_by !=
	    NULL && (job->verdict == MILTER_REJECT ||
	    job->verdict == MILTER_DISCARD)) || (job->verdict ==
	    MILTER_ACCEPT && job->quarantine != NULL)))
		be_commit_spam(w, bc);
	if (job != NULL && job->verdict != MILTER_ACCEPT) {
		/* a discard was accepted as far as the client knows: it
		 * counts; a refusal does not */
		if (job->verdict == MILTER_DISCARD)
			spool_abort(w->conf->spool_dir, id);
		else
			be_commit_undo(w, bc);
		if (job->verdict == MILTER_DISCARD) {
			log_info("id=%s discarded by a mail filter", id);
			msg_add_u32(reply, 0);
			msg_add_str(reply, NULL);
		} else {
			msg_add_u32(reply, job->verdict == MILTER_REJECT ? 2 :
			    1);
			msg_add_str(reply, job->reply);
		}
		be_commit_free(bc);
		return 0;
	}
	if (job != NULL && (job->nchanges > 0 || job->body_replaced)) {
		struct envelope env;
		size_t offset;
		int corrupt = 0;

		if (spool_read_envelope(bc->fd, &env, &offset, &corrupt,
		    &error) < 0)
			r = -1;
		else {
			r = milter_spool_rewrite(w->conf->spool_dir, id, bc->fd,
			    offset, &env, job, be_commit_resolve, w, &added,
			    &nadded, &error);
			envelope_deinit(&env);
		}
		if (r != 0) {
			if (r == 1) {
				log_info("id=%s discarded: the mail filters "
				    "removed every recipient", id);
				spool_abort(w->conf->spool_dir, id);
			} else {
				log_warnx("id=%s milter changes: %s", id,
				    error);
				be_commit_undo(w, bc);
			}
			msg_add_u32(reply, r == 1 ? 0 : 1);
			msg_add_str(reply, r == 1 ? NULL : BE_SPOOL_TEMPFAIL);
			str_deinit(&added);
			be_commit_free(bc);
			return 0;
		}
	}

	/* refuse_own_from (be_own_from.h): the message as it will be
	 * committed, with the headers the filters added */
	{
		struct be_filtered m = {
			.id = id, .submission = bc->submission,
			.account = bc->t.account, .client = bc->client,
		};
		struct envelope env;
		size_t offset = 0;
		int corrupt = 0, fd = -1;

		anames = xcalloc(nadded + 1, sizeof(*anames));
		avalues = xcalloc(nadded + 1, sizeof(*avalues));
		for (size_t i = 0, at = 0; i < nadded; i++) {
			anames[i] = added.s + at;
			at += strlen(anames[i]) + 1;
			avalues[i] = added.s + at;
			at += strlen(avalues[i]) + 1;
		}
		m.added_names = anames;
		m.added_values = avalues;
		m.nadded = nadded;
		if (bc->checked.fd >= 0) {
			/* no filter asked: the envelope and file the commit
			 * checked (issue 18: no second open and parse) */
			m.env = &bc->checked.env;
			m.fd = bc->checked.fd;
			m.offset = bc->checked.offset;
			r = be_own_from_check(w, &m, &answer);
		} else {
			char *path = xasprintf("%s/incoming/%s",
			    w->conf->spool_dir, id);

			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			free(path);
			if (fd < 0 || spool_read_envelope(fd, &env, &offset,
			    &corrupt, &error) < 0) {
				r = -1;
				str_append(&answer, BE_SPOOL_TEMPFAIL);
			} else {
				m.env = &env;
				m.fd = fd;
				m.offset = offset;
				r = be_own_from_check(w, &m, &answer);
				envelope_deinit(&env);
			}
		}
		if (fd >= 0)
			close(fd);
		free(anames);
		free(avalues);
		str_deinit(&added);
		if (r != 0) {
			be_commit_undo(w, bc);
			msg_add_u32(reply, r > 0 ? 2 : 1);
			msg_add_str(reply, answer.len > 0 ? str_c(&answer) :
			    BE_SPOOL_TEMPFAIL);
			str_deinit(&answer);
			be_commit_free(bc);
			return 0;
		}
	}

	/* issue 17: the message's risk signals; an account on hold has
	 * its submission accepted and kept (queue.h "held messages") */
	/* (issue 18) without an account it only looks at a bounce's
	 * senders: the checked envelope says whether it is one, without
	 * reading the file again */
	if (bc->t.account == NULL && bc->checked.fd >= 0 &&
	    bc->checked.env.sender[0] != '\0')
		risk_held = 0;
	else
		risk_held = be_risk_commit(w, bc->t.account, bc->client,
		    bc->t.country, id, hold_reason, sizeof(hold_reason));
	held = job != NULL && job->quarantine != NULL;
	str_deinit(&answer);
	if (!held && !risk_held && bc->may_defer && w->queue != NULL) {
		/* issue 18: the disk's half on the commit pool (commit.h),
		 * many at once; this worker goes on with other requests */
		bc->spool_dir = xstrdup(w->conf->spool_dir);
		bc->queue = w->queue;
		bc->defer = be_worker_defer(w);
		queue_commit_async(w->queue, be_commit_durable_job, bc);
		return BE_DEFERRED;
	}
	if (held || risk_held) {
		if (spool_check_incoming(w->conf->spool_dir, id, &error) < 0 ||
		    (risk_held ? queue_hold_commit(w->conf->spool_dir, id,
		    "risk", bc->t.account, hold_reason, &error) :
		    be_milter_hold(w, bc, &error)) < 0) {
			xstrlcpy(bc->error, error, sizeof(bc->error));
			r = -1;
		} else
			r = 0;
	} else
		r = be_commit_durable(bc, w->conf->spool_dir, w->queue);
	if (r == 0 && risk_held)
		log_info("id=%s queue held by=risk account=%s", id,
		    bc->t.account);
	else if (r == 0 && held)
		log_info("id=%s held by=milter milter=%s", id,
		    job->quarantine_by);
	return be_commit_done(w, reply, bc, r);
}

/*
 * The durable step of a message nothing holds (any thread: no worker, no
 * store). Every recipient local: straight into the Maildirs, durable there
 * before the 250 (queue_commit_deliver); else, or when one of them failed,
 * the spool commit into queue/. 0, or -1 with bc->error.
 */
static int
be_commit_durable(struct be_commit *bc, const char *spool_dir,
    struct queue *q)
{
	const char *error = "?";

	if (bc->checked.fd >= 0) {
		bc->direct = queue_commit_deliver_env(q, bc->id,
		    bc->checked.fd, &bc->checked.env, bc->checked.offset, 1,
		    &error);
		bc->checked.fd = -1;	/* taken over */
		if (bc->direct == 1)	/* incoming/ID left to us */
			be_spool_recycle(bc->chan, spool_dir, bc->id);
	} else
		bc->direct = queue_commit_deliver(q, bc->id, &error);
	if (bc->direct < 0 || (bc->direct == 0 &&
	    (spool_check_incoming(spool_dir, bc->id, &error) < 0 ||
	    spool_commit(spool_dir, bc->id, &error) < 0))) {
		/* error may be a thread's own buffer (spool_errno_error) */
		xstrlcpy(bc->error, error, sizeof(bc->error));
		bc->direct = 0;
		return -1;
	}
	return 0;
}

/* On a commit pool thread (commit.h). */
static void
be_commit_durable_job(void *arg)
{
	struct be_commit *bc = arg;

	bc->result = be_commit_durable(bc, bc->spool_dir, bc->queue);
	/* no account: nothing for the store (no count to undo, no
	 * submission log), so the reply goes from here, not through a
	 * worker (one hand-over fewer a message) */
	if (bc->t.account == NULL)
		be_defer_reply(bc->defer, be_commit_durable_done, bc);
	else
		be_defer_resume(bc->defer, be_commit_durable_done, bc);
}

/* Back on a worker: the reply (be_commit_done). */
static int
be_commit_durable_done(struct be_worker *w, struct msg *reply, void *arg)
{
	struct be_commit *bc = arg;
	struct msg scratch;
	int r;

	if (reply != NULL)
		return be_commit_done(w, reply, bc, bc->result);
	/* The session process went away: the client saw no 250 and may
	 * send it again (a duplicate, never a loss); the rest as usual. */
	if (bc->result == 0)
		log_warnx("id=%s committed, but the session went away before "
		    "the reply", bc->id);
	msg_init(&scratch, 0, 0);
	r = be_commit_done(w, &scratch, bc, bc->result);
	msg_deinit(&scratch);
	return r;
}

/* After the durable step (r 0 done, -1 failed with bc->error): the
 * submission log, the queue told, the reply; bc freed. w is NULL on a
 * commit pool thread (be_defer_reply): then there is no account. */
static int
be_commit_done(struct be_worker *w, struct msg *reply, struct be_commit *bc,
    int r)
{
	const char *error, *id = bc->id;

	if (r < 0) {
		log_warnx("id=%s spool commit: %s", id, bc->error);
		be_commit_undo(w, bc);
		msg_add_u32(reply, 1);
		msg_add_str(reply, BE_SPOOL_TEMPFAIL);
		be_commit_free(bc);
		return 0;
	}
	if (w != NULL && bc->t.account != NULL) {
		struct store *st = be_worker_store(w);
		struct store_submission sub = {
			.queue_id = id, .message_id = bc->msgid,
			.time = policy_now(), .account = bc->t.account,
			.ip = bc->client, .country = bc->t.country,
			.tls = bc->tls, .rcpts = bc->rcpts,
			.size = (int64_t)bc->size, .overseas = bc->t.overseas,
		};

		/* The message is safe; a log row lost is only logged. */
		if (st == NULL || store_submission_add(st, &sub, &error) < 0)
			log_warnx("id=%s submission log: %s", id,
			    st == NULL ? "store unavailable" : error);
	}
	if (!bc->direct && (w != NULL ? w->queue : bc->queue) != NULL)
		queue_notify(w != NULL ? w->queue : bc->queue, id);
	msg_add_u32(reply, 0);
	msg_add_str(reply, NULL);
	be_commit_free(bc);
	return 0;
}

/* The filters are done (milter thread): the rest on a worker. */
static int
be_commit_resume(struct be_worker *w, struct msg *reply, void *arg)
{
	struct be_commit *bc = arg;

	if (reply == NULL) {
		/* the session process is gone: nothing was acknowledged */
		log_warnx("id=%s not queued: the session went away while "
		    "the mail filters ran", bc->id);
		be_commit_undo(w, bc);
		be_commit_free(bc);
		return 0;
	}
	return be_commit_finish(w, reply, bc);
}

static void
be_commit_filtered(struct milter_job *job, void *arg)
{
	struct be_commit *bc = arg;

	(void)job;
	be_defer_resume(bc->defer, be_commit_resume, bc);
}

int
be_spool_commit(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *id, *client, *tls, *msgid, *mech, *if_addr, *why = "?";
	const char *account, *list;
	uint32_t rcpts = 0, role, port;
	uint64_t size, sess;
	struct str answer = STR_INIT;
	struct be_session_txn t;
	enum policy_verdict v = POLICY_OK;
	struct store *st = NULL;
	struct be_commit *bc;
	struct be_checked checked = { .fd = -1 };
	char **from = NULL, **specs;
	int r, nfrom = 0, nspecs;

	if (msg_get_u64(req, &sess) < 0 || msg_get_str(req, &id) < 0 ||
	    msg_get_u64(req, &size) < 0 || msg_get_str(req, &client) < 0 ||
	    msg_get_str(req, &tls) < 0 || msg_get_str(req, &msgid) < 0 ||
	    msg_get_u32(req, &role) < 0 || msg_get_str(req, &mech) < 0 ||
	    msg_get_str(req, &if_addr) < 0 || msg_get_u32(req, &port) < 0 ||
	    msg_end(req) < 0 || id == NULL || client == NULL)
		return -1;
	/* Only the file this session opened, and only once. */
	if (!be_session_spool_take(w->chan, sess, id)) {
		log_warnx("backend: channel=%u session=%llu refused=commit "
		    "reason=\"spool file not opened by the session\"", w->chan,
		    (unsigned long long)sess);
		return -1;
	}
	(void)be_session_txn(w->chan, sess, &t);
	account = t.account;
	r = be_spool_envelope_check(w, sess, id, &t, &rcpts, &from, &nfrom,
	    &why, &checked);
	/* the transaction ends here, whatever comes of it */
	be_session_txn_reset(w->chan, sess);
	if (r < 0) {
		if (r == -1)
			log_warnx("id=%s backend: channel=%u session=%llu "
			    "refused=commit reason=\"%s\"", id, w->chan,
			    (unsigned long long)sess, why);
		else
			log_warnx("id=%s spool commit: cannot read the "
			    "envelope back", id);
		spool_abort(w->conf->spool_dir, id);
		msg_add_u32(reply, r == -1 ? 2 : 1);
		msg_add_str(reply, r == -1 ? BE_SPOOL_FORGED : "451 4.3.0 "
		    "Temporary failure: message not queued, try again later");
		be_session_txn_deinit(&t);
		return 0;
	}

	/* A submission: header From alignment and the send counts, in one
	 * step with the commit, so only accepted mail counts. The account,
	 * country and from-abroad flag are the back side's own. */
	if (account != NULL) {
		if ((st = be_worker_store(w)) == NULL) {
			v = POLICY_TEMPFAIL;
			str_append(&answer, "451 4.3.0 Temporary failure: "
			    "account database unavailable, try again later");
		} else
			/* too many or unusable: none, and the policy refuses
			 * for want of a From it can check */
			v = policy_commit(w->conf, st, account, client,
			    t.country, t.overseas, rcpts, 1,
			    (const char *const *)from,
			    nfrom > 0 ? (size_t)nfrom : 0, &answer);
		if (nfrom > 0)
			smtp_header_addresses_free(from, nfrom);
		if (v != POLICY_OK) {
			if (st != NULL)	/* a limit reached: a risk signal */
				(void)be_risk_update(w->conf, st, w->queue,
				    account);
			be_checked_deinit(&checked);
			spool_abort(w->conf->spool_dir, id);
			msg_add_u32(reply, v == POLICY_REJECT ? 2 : 1);
			msg_add_str(reply, str_c(&answer));
			str_deinit(&answer);
			be_session_txn_deinit(&t);
			return 0;
		}
	}
	str_deinit(&answer);

	bc = xcalloc(1, sizeof(*bc));
	bc->fd = -1;
	bc->checked = checked;		/* taken over */
	bc->id = xstrdup(id);
	bc->chan = w->chan;
	bc->sess = sess;
	bc->size = size;
	bc->client = xstrdup(client);
	bc->tls = be_dup(tls);
	bc->msgid = be_dup(msgid);
	bc->mech = be_dup(mech);
	bc->if_addr = be_dup(if_addr);
	bc->port = port;
	bc->rcpts = rcpts;
	bc->t = t;		/* taken over */
	/* The role's filters: an authenticated session is a submission
	 * whatever its listener. */
	bc->submission = account != NULL || role == LISTEN_SUBMISSION ||
	    role == LISTEN_SUBMISSIONS;
	list = bc->submission ? w->conf->milters_submission :
	    w->conf->milters_mx;
	nspecs = milter_specs_split(list != NULL ? list : "", &specs, &why);
	if (nspecs > 0 && be_worker_milter(w) == NULL) {
		milter_specs_free(specs, nspecs);
		nspecs = 0;
	}
	if (nspecs > 0)
		/* the filters may change the message: read it again */
		be_checked_deinit(&bc->checked);
	if (nspecs <= 0) {
		bc->may_defer = 1;
		return be_commit_finish(w, reply, bc);
	}
	if (be_commit_job(w, bc, specs, nspecs) < 0) {
		/* not shown to any filter: the default action for all */
		bc->job->verdict = w->conf->milter_default_action ==
		    MILTER_DEFAULT_ACCEPT ? MILTER_ACCEPT :
		    w->conf->milter_default_action == MILTER_DEFAULT_REJECT ?
		    MILTER_REJECT : MILTER_TEMPFAIL;
		bc->job->reply = xstrdup(bc->job->verdict == MILTER_REJECT ?
		    "554 5.7.1 Message refused: it cannot be filtered" :
		    "451 4.7.1 Message cannot be filtered now, try again "
		    "later");
		return be_commit_finish(w, reply, bc);
	}
	/* The reply waits for the filters (milter.h); this worker goes on
	 * with other jobs. */
	bc->defer = be_worker_defer(w);
	bc->job->done = be_commit_filtered;
	bc->job->arg = bc;
	if (milter_submit(be_worker_milter(w), bc->job) < 0) {
		bc->job->verdict = MILTER_TEMPFAIL;
		bc->job->reply = xstrdup("451 4.3.2 System shutting down, try "
		    "again later");
		be_defer_resume(bc->defer, be_commit_resume, bc);
	}
	return BE_DEFERRED;
}

int
be_spool_abort(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *id;
	uint64_t sess;

	if (msg_get_u64(req, &sess) < 0 || msg_get_str(req, &id) < 0 ||
	    msg_end(req) < 0 || id == NULL)
		return -1;
	/* Only the session's own file: never another session's. */
	if (be_session_spool_take(w->chan, sess, id))
		spool_abort(w->conf->spool_dir, id);
	/* The recipients stay: a RCPT of the next transaction may have
	 * run before this (no reply is awaited for an abort); the next
	 * MAIL's policy answer or commit resets them. */
	msg_add_u32(reply, 0);
	return 0;
}
