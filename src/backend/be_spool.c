/*
 * be_spool: the back side's spool requests. The session writes the
 * envelope and message into a descriptor it is given; it never names or
 * opens a spool path. Commit parses the envelope back first, so nothing
 * the queue cannot read is ever acknowledged.
 */
#include <string.h>

#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../queue/queue.h"
#include "../queue/spool.h"
#include "backend.h"

int
be_spool_open(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *id, *error;
	int fd;

	if (msg_get_str(req, &id) < 0 || msg_end(req) < 0 || id == NULL)
		return -1;
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

int
be_spool_commit(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *id, *error;

	if (msg_get_str(req, &id) < 0 || msg_end(req) < 0 || id == NULL)
		return -1;
	if (spool_check_incoming(w->conf->spool_dir, id, &error) < 0 ||
	    spool_commit(w->conf->spool_dir, id, &error) < 0) {
		log_warnx("id=%s spool commit: %s", id, error);
		spool_abort(w->conf->spool_dir, id);
		msg_add_u32(reply, 1);
		msg_add_str(reply, error);
		return 0;
	}
	if (w->queue != NULL)
		queue_notify(w->queue, id);
	msg_add_u32(reply, 0);
	msg_add_str(reply, NULL);
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
