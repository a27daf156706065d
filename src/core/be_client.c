/*
 * be_client: pending requests of one session loop, keyed by id.
 */
#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>

#include "be_client.h"
#include "be_proto.h"
#include "channel.h"
#include "log.h"
#include "xmalloc.h"

#define BE_BUCKETS	1024

struct be_req {
	uint64_t	 id;
	be_reply_cb	*cb;		/* NULL once cancelled */
	void		*arg;
	struct be_req	*next;
};

struct be_client {
	struct channel	*ch;
	uint64_t	 next_id;
	uint64_t	 next_session;
	struct be_req	*bucket[BE_BUCKETS];
	/* requests that could not be sent: failed from the loop, never
	 * from inside be_client_request (its caller is mid-way) */
	struct event	*ev_failed;
	struct be_req	*failed;
};

static struct be_req *
be_client_take(struct be_client *c, uint64_t id)
{
	struct be_req **pp = &c->bucket[id % BE_BUCKETS];

	for (; *pp != NULL; pp = &(*pp)->next) {
		struct be_req *r = *pp;

		if (r->id == id) {
			*pp = r->next;
			return r;
		}
	}
	return NULL;
}

static void
be_client_on_msg(struct channel *ch, struct msg *m, void *arg)
{
	struct be_client *c = arg;

	(void)ch;
	if (m == NULL)
		fatalx("back side closed its channel");
	struct be_req *r = be_client_take(c, m->id);

	if (r == NULL) {
		log_warnx("be_client: reply to unknown request %llu",
		    (unsigned long long)m->id);
		return;
	}
	if (r->cb != NULL)
		r->cb(m->type == BE_FAIL ? NULL : m, r->arg);
	free(r);
}

/* The requests that were never sent get NULL, as for BE_FAIL. */
static void
be_client_on_failed(evutil_socket_t fd, short what, void *arg)
{
	struct be_client *c = arg;

	(void)fd;
	(void)what;
	while (c->failed != NULL) {
		struct be_req *r = c->failed;

		c->failed = r->next;
		if (r->cb != NULL)
			r->cb(NULL, r->arg);
		free(r);
	}
}

struct be_client *
be_client_new(struct event_base *base, int fd)
{
	struct be_client *c = xcalloc(1, sizeof(*c));

	c->next_id = 1;
	c->ch = channel_new(base, fd, be_client_on_msg, c);
	c->ev_failed = event_new(base, -1, 0, be_client_on_failed, c);
	if (c->ev_failed == NULL)
		fatalx("be_client: event_new failed");
	return c;
}

void
be_client_free(struct be_client **cp)
{
	struct be_client *c = *cp;

	if (c == NULL)
		return;
	channel_free(&c->ch);
	event_free(c->ev_failed);
	while (c->failed != NULL) {
		struct be_req *r = c->failed;

		c->failed = r->next;
		free(r);
	}
	for (size_t i = 0; i < BE_BUCKETS; i++) {
		while (c->bucket[i] != NULL) {
			struct be_req *r = c->bucket[i];

			c->bucket[i] = r->next;
			free(r);
		}
	}
	free(c);
	*cp = NULL;
}

struct be_req *
be_client_request(struct be_client *c, struct msg *m, be_reply_cb *cb,
    void *arg)
{
	struct be_req *r = xcalloc(1, sizeof(*r));
	uint32_t type = m->type;
	size_t size = m->buf.len;

	r->id = c->next_id++;
	r->cb = cb;
	r->arg = arg;
	m->id = r->id;
	if (channel_send(c->ch, m) < 0) {
		/* Too large (a field a client chose) or the channel failed:
		 * the caller's temporary failure, never an exit. */
		log_warnx("be_client: request type=%u size=%zu not sent "
		    "(over %u bytes, or the channel failed): failed", type,
		    size, (unsigned)MSG_MAX_LEN);
		r->next = c->failed;
		c->failed = r;
		event_active(c->ev_failed, EV_TIMEOUT, 0);
		return r;
	}
	r->next = c->bucket[r->id % BE_BUCKETS];
	c->bucket[r->id % BE_BUCKETS] = r;
	return r;
}

void
be_req_cancel(struct be_req *r)
{
	/* Freed when its reply arrives; the reply is then ignored. */
	r->cb = NULL;
	r->arg = NULL;
}

uint64_t
be_client_session(struct be_client *c)
{
	return ++c->next_session;
}
