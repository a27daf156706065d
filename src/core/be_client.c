/*
 * be_client: pending requests of one session loop, keyed by id.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "be_client.h"
#include "be_proto.h"
#include "channel.h"
#include "log.h"
#include "xmalloc.h"

#define BE_BUCKETS	1024
/* be_client_on_spin: at most this long, and after a miss not for the
 * next 1, 2, 4 ... BE_SPIN_BACKOFF_MAX chances */
#define BE_SPIN_NS		100000		/* 100 µs */
#define BE_SPIN_BACKOFF_MAX	64
/* ... and only after this many requests in a row were each the only
 * one out */
#define BE_SPIN_SERIAL		32

struct be_req {
	uint64_t	 id;
	be_reply_cb	*cb;		/* NULL once cancelled */
	void		*arg;
	struct be_req	*next;
};

struct be_client {
	struct event_base *base;
	struct channel	*ch;
	uint64_t	 next_id;
	uint64_t	 next_session;
	struct be_req	*bucket[BE_BUCKETS];
	/* requests that could not be sent: failed from the loop, never
	 * from inside be_client_request (its caller is mid-way) */
	struct event	*ev_failed;
	struct be_req	*failed;
	unsigned	 outstanding;	/* sent, not answered */
	unsigned	 spin_skip;	/* spins not to try after a miss */
	unsigned	 spin_backoff;
	unsigned	 serial;	/* requests in a row sent alone */
	struct event	*ev_spin;
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
	c->outstanding--;
	if (r->cb != NULL)
		r->cb(m->type == BE_FAIL ? NULL : m, r->arg);
	free(r);
}

static uint64_t
be_client_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The loop's last thing before it would sleep, when exactly one request
 * is out, the last BE_SPIN_SERIAL went out one at a time too, and
 * nothing else is ready: wait for its reply in a bounded spin
 * (poll without waiting, at most BE_SPIN_NS) instead of sleeping
 * in epoll_wait. A sleeping process is woken across CPUs when the reply
 * comes, about 30 µs a time on the measured machine, and at one Postfix
 * policy connection a request is a chain of such wake-ups
 * (docs/performance.md, W5). The reply itself is read by the loop, as
 * always: the spin only keeps this process on its CPU until it is there.
 * Each turn yields to whatever else is runnable; after a spin that saw
 * no reply, the next 1, 2, 4 ... BE_SPIN_BACKOFF_MAX are skipped, and
 * one that saw its reply halves that (a slow request: a durable count,
 * a spool commit; a loaded machine, where a yield can lose the CPU for
 * a time slice).
 */
static void
be_client_on_spin(evutil_socket_t fd, short what, void *arg)
{
	struct be_client *c = arg;
	struct pollfd pfd = { .fd = channel_fd(c->ch), .events = POLLIN };
	uint64_t start;

	(void)fd;
	(void)what;
	if (c->outstanding != 1 || event_base_get_num_events(c->base,
	    EVENT_BASE_COUNT_ACTIVE) > 0)
		return;
	if (c->spin_skip > 0) {
		c->spin_skip--;
		return;
	}
	start = be_client_now_ns();
	do {
		int r = poll(&pfd, 1, 0);

		if (r != 0 && !(r < 0 && errno == EINTR)) {
			/* halved, not reset: a machine busy enough to
			 * make some spins miss keeps most of them off */
			c->spin_backoff /= 2;
			return;
		}
		sched_yield();	/* a loaded machine: whoever is runnable */
	} while (be_client_now_ns() - start < BE_SPIN_NS);
	c->spin_backoff = c->spin_backoff == 0 ? 1 :
	    (c->spin_backoff < BE_SPIN_BACKOFF_MAX ? 2 * c->spin_backoff :
	    BE_SPIN_BACKOFF_MAX);
	c->spin_skip = c->spin_backoff;
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
	c->base = base;
	c->ev_failed = event_new(base, -1, 0, be_client_on_failed, c);
	c->ev_spin = event_new(base, -1, 0, be_client_on_spin, c);
	if (c->ev_failed == NULL || c->ev_spin == NULL)
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
	event_free(c->ev_spin);
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
	/* one at a time lately (one client asking, as Postfix does on
	 * one connection): else the loop has other sessions to serve,
	 * whose sockets the spin does not watch, and never spins */
	if (c->outstanding > 0)
		c->serial = 0;
	else if (c->serial < BE_SPIN_SERIAL)
		c->serial++;
	if (++c->outstanding == 1 && c->serial >= BE_SPIN_SERIAL)
		event_active(c->ev_spin, EV_TIMEOUT, 0);
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
