/*
 * be_spool: the back side's spool requests. The session writes the
 * envelope and message into a descriptor it is given; it never names or
 * opens a spool path. Commit parses the envelope back first, so nothing
 * the queue cannot read is ever acknowledged.
 */
#include <inttypes.h>
#include <string.h>

#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/str.h"
#include "../policy/policy.h"
#include "../queue/queue.h"
#include "../queue/spool.h"
#include "../store/store.h"
#include "backend.h"

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

int
be_spool_open(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *id, *error;
	int fd;

	if (msg_get_str(req, &id) < 0 || msg_end(req) < 0 || id == NULL)
		return -1;
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
	msg_add_u32(reply, 0);
	msg_add_str(reply, NULL);
	msg_add_fd(reply, fd);
	return 0;
}

/* At most this many header From addresses are checked (RFC 5322 allows a
 * list; more than a few is not a subscriber's message). */
#define BE_SPOOL_MAX_FROM	32

int
be_spool_commit(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *id, *account, *client, *country, *tls, *msgid, *error;
	const char *from[BE_SPOOL_MAX_FROM];
	uint32_t rcpts, overseas, nfrom;
	uint64_t size;
	struct str answer = STR_INIT;
	enum policy_verdict v = POLICY_OK;
	struct store *st = NULL;

	if (msg_get_str(req, &id) < 0 || msg_get_str(req, &account) < 0 ||
	    msg_get_u32(req, &rcpts) < 0 || msg_get_u64(req, &size) < 0 ||
	    msg_get_u32(req, &overseas) < 0 || msg_get_str(req, &client) < 0 ||
	    msg_get_str(req, &country) < 0 || msg_get_str(req, &tls) < 0 ||
	    msg_get_str(req, &msgid) < 0 || msg_get_u32(req, &nfrom) < 0 ||
	    id == NULL || nfrom > BE_SPOOL_MAX_FROM)
		return -1;
	for (uint32_t i = 0; i < nfrom; i++)
		if (msg_get_str(req, &from[i]) < 0 || from[i] == NULL)
			return -1;
	if (msg_end(req) < 0)
		return -1;

	/* A submission: header From alignment and the send counts, in one
	 * step with the commit, so only accepted mail counts. */
	if (account != NULL) {
		if ((st = be_worker_store(w)) == NULL) {
			v = POLICY_TEMPFAIL;
			str_append(&answer, "451 4.3.0 Temporary failure: "
			    "account database unavailable, try again later");
		} else
			v = policy_commit(w->conf, st, account, client,
			    country, overseas != 0, rcpts, 1, from, nfrom,
			    &answer);
		if (v != POLICY_OK) {
			spool_abort(w->conf->spool_dir, id);
			msg_add_u32(reply, v == POLICY_REJECT ? 2 : 1);
			msg_add_str(reply, str_c(&answer));
			str_deinit(&answer);
			return 0;
		}
	}
	if (spool_check_incoming(w->conf->spool_dir, id, &error) < 0 ||
	    spool_commit(w->conf->spool_dir, id, &error) < 0) {
		log_warnx("id=%s spool commit: %s", id, error);
		spool_abort(w->conf->spool_dir, id);
		if (account != NULL)
			policy_uncount(w->conf, st, account, overseas != 0,
			    rcpts);
		msg_add_u32(reply, 1);
		msg_add_str(reply, "451 4.3.0 Temporary failure: message not "
		    "queued, try again later");
		str_deinit(&answer);
		return 0;
	}
	if (account != NULL) {
		struct store_submission sub = {
			.queue_id = id, .message_id = msgid,
			.time = policy_now(), .account = account,
			.ip = client, .country = country, .tls = tls,
			.rcpts = rcpts, .size = (int64_t)size,
			.overseas = overseas != 0,
		};

		/* The message is safe; a log row lost is only logged. */
		if (store_submission_add(st, &sub, &error) < 0)
			log_warnx("id=%s submission log: %s", id, error);
	}
	if (w->queue != NULL)
		queue_notify(w->queue, id);
	msg_add_u32(reply, 0);
	msg_add_str(reply, NULL);
	str_deinit(&answer);
	return 0;
}

int
be_spool_abort(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *id;

	if (msg_get_str(req, &id) < 0 || msg_end(req) < 0 || id == NULL)
		return -1;
	spool_abort(w->conf->spool_dir, id);
	msg_add_u32(reply, 0);
	return 0;
}
