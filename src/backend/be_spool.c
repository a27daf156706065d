/*
 * be_spool: the back side's spool requests. The session writes the
 * envelope and message into a descriptor it is given; it never names or
 * opens a spool path. Commit parses the envelope back first, so nothing
 * the queue cannot read is ever acknowledged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "be_risk.h"
#include "be_session.h"

/* RFC 5321 4.5.3.1.9 / RFC 3463 4.3.1: the mail system is full. */
#define BE_SPOOL_FULL	"452 4.3.1 Insufficient system storage, try again " \
	"later"

/*
 * queue_minfree with want more bytes to come: 1 room, 0 full (logged),
 * -1 unknown (logged). Nothing is acknowledged that would eat into the
 * floor, which is kept for what is already queued (bounces, journals).
 */
static int
be_spool_room(struct be_worker *w, const char *id, uint64_t want)
{
	uint64_t avail;
	const char *error;
	int r;

	r = spool_space(w->conf->spool_dir, w->conf->queue_minfree, want,
	    &avail, &error);
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
	uint64_t size;
	int r;

	if (msg_get_u64(req, &size) < 0 || msg_end(req) < 0)
		return -1;
	r = be_spool_room(w, "-", size);
	msg_add_u32(reply, r > 0 ? 0 : r == 0 ? 2 : 1);
	msg_add_str(reply, r > 0 ? NULL : r == 0 ? BE_SPOOL_FULL :
	    "451 4.3.0 Temporary failure checking the queue's free space, "
	    "try again later");
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

int
be_spool_open(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *id, *error;
	char old[QUEUE_ID_LEN + 1];
	uint64_t sess;
	int fd;

	if (be_session_begin(w, req, &sess) < 0 ||
	    msg_get_str(req, &id) < 0 || msg_end(req) < 0 || id == NULL)
		return -1;
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
	if (be_spool_room(w, id, 0) == 0) {
		msg_add_u32(reply, 2);
		msg_add_str(reply, BE_SPOOL_FULL);
		return 0;
	}
	if (spool_open_incoming(w->conf->spool_dir, id, &fd, &error) < 0) {
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
    int *nfrom_r, const char **why_r)
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
	close(fd);
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
	envelope_deinit(&env);
	if (ret < 0 && *nfrom_r > 0) {
		smtp_header_addresses_free(*from_r, *nfrom_r);
		*from_r = NULL;
		*nfrom_r = 0;
	}
	return ret;
}

int
be_spool_commit(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *id, *client, *tls, *msgid, *error, *why = "?";
	const char *account;
	uint32_t rcpts = 0;
	uint64_t size, sess;
	struct str answer = STR_INIT;
	struct be_session_txn t;
	enum policy_verdict v = POLICY_OK;
	struct store *st = NULL;
	char **from = NULL, hold_reason[256];
	int r, nfrom = 0, held;

	if (msg_get_u64(req, &sess) < 0 || msg_get_str(req, &id) < 0 ||
	    msg_get_u64(req, &size) < 0 || msg_get_str(req, &client) < 0 ||
	    msg_get_str(req, &tls) < 0 || msg_get_str(req, &msgid) < 0 ||
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
	    &why);
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
			spool_abort(w->conf->spool_dir, id);
			msg_add_u32(reply, v == POLICY_REJECT ? 2 : 1);
			msg_add_str(reply, str_c(&answer));
			str_deinit(&answer);
			be_session_txn_deinit(&t);
			return 0;
		}
	}
	/* issue 17: the message's risk signals; an account on hold has
	 * its submission accepted and kept (queue.h "held messages") */
	held = be_risk_commit(w, account, client, t.country, id, hold_reason,
	    sizeof(hold_reason));
	if (spool_check_incoming(w->conf->spool_dir, id, &error) < 0 ||
	    (held ? queue_hold_commit(w->conf->spool_dir, id, "risk", account,
	    hold_reason, &error) : spool_commit(w->conf->spool_dir, id,
	    &error)) < 0) {
		log_warnx("id=%s spool commit: %s", id, error);
		spool_abort(w->conf->spool_dir, id);
		if (account != NULL)
			policy_uncount(w->conf, st, account, t.overseas, rcpts);
		msg_add_u32(reply, 1);
		msg_add_str(reply, "451 4.3.0 Temporary failure: message not "
		    "queued, try again later");
		str_deinit(&answer);
		be_session_txn_deinit(&t);
		return 0;
	}
	if (account != NULL) {
		struct store_submission sub = {
			.queue_id = id, .message_id = msgid,
			.time = policy_now(), .account = account,
			.ip = client, .country = t.country, .tls = tls,
			.rcpts = rcpts, .size = (int64_t)size,
			.overseas = t.overseas,
		};

		/* The message is safe; a log row lost is only logged. */
		if (store_submission_add(st, &sub, &error) < 0)
			log_warnx("id=%s submission log: %s", id, error);
	}
	if (held)
		log_info("id=%s queue held by=risk account=%s", id, account);
	if (w->queue != NULL)
		queue_notify(w->queue, id);
	msg_add_u32(reply, 0);
	msg_add_str(reply, NULL);
	str_deinit(&answer);
	be_session_txn_deinit(&t);
	return 0;
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
