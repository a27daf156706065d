/*
 * channel: message transport over SOCK_SEQPACKET (see channel.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "channel.h"
#include "log.h"
#include "xmalloc.h"

struct channel_out {
	struct msg		 m;
	struct channel_out	*next;
};

struct channel {
	int			 fd;
	struct event		*ev_read;
	struct event		*ev_write;
	struct channel_out	*head, *tail;
	channel_cb		*cb;
	void			*arg;
};

int
channel_pair(int fds[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, fds);
}

ssize_t
channel_sendmsg(int s, const void *data, size_t len, int fd,
    const struct sockaddr *to, socklen_t tolen, int flags)
{
	struct msghdr mh;
	struct iovec iov;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;

	memset(&mh, 0, sizeof(mh));
	iov.iov_base = (void *)data;
	iov.iov_len = len;
	mh.msg_name = (void *)to;
	mh.msg_namelen = to != NULL ? tolen : 0;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd != -1) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(s, &mh, flags);
}

int
channel_try_send(int fd, struct msg *m)
{
	for (;;) {
		ssize_t n = channel_sendmsg(fd, m->buf.s, m->buf.len, m->fd,
		    NULL, 0, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			return 1;
		return -1;
	}
}

/*
 * Whether to log a dropped datagram: a peer that sends nothing else must
 * not fill the log, so at most CHANNEL_LOG_BURST lines per second per
 * thread (the back side's dispatcher is one), the rest only counted.
 */
#define CHANNEL_LOG_BURST	10

static int
channel_log_dropped(void)
{
	static __thread time_t second;
	static __thread unsigned n, skipped;
	time_t now = time(NULL);

	if (now != second) {
		if (skipped > 0)
			log_warnx("channel: %u more malformed or truncated "
			    "messages dropped", skipped);
		second = now;
		n = skipped = 0;
	}
	if (n < CHANNEL_LOG_BURST) {
		n++;
		return 1;
	}
	skipped++;
	return 0;
}

int
channel_recv(int fd, struct msg *m)
{
	static __thread unsigned char buf[MSG_MAX_LEN];
	struct msghdr mh;
	struct iovec iov;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cbuf;
	ssize_t n;
	int rfd = -1;

	memset(&mh, 0, sizeof(mh));
	iov.iov_base = buf;
	iov.iov_len = sizeof(buf);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	do {
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
	if (n == 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
	    c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (rfd == -1)
				rfd = f;
			else
				close(f);	/* one fd per message */
		}
	}
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
		/* over MSG_MAX_LEN: the kernel cut it, the rest is gone. m
		 * holds nothing (as for 0 and -1 everywhere here). */
		if (rfd != -1)
			close(rfd);
		if (channel_log_dropped())
			log_warnx("channel: truncated message (over %u bytes) "
			    "dropped", (unsigned)MSG_MAX_LEN);
		return 0;
	}
	if (msg_from_wire(m, buf, (size_t)n, rfd) < 0) {
		if (channel_log_dropped())
			log_warnx("channel: malformed message (%zd bytes) "
			    "dropped", n);
		msg_deinit(m);
		return 0;
	}
	return 1;
}

int
channel_send_blocking(int fd, struct msg *m)
{
	int r;

	if (msg_seal(m) < 0) {
		log_warnx("channel: message type=%u size=%zu over %u bytes, "
		    "not sent", m->type, m->buf.len, (unsigned)MSG_MAX_LEN);
		msg_deinit(m);
		return -1;
	}
	while ((r = channel_try_send(fd, m)) == 1) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };

		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			break;
	}
	msg_deinit(m);
	return r == 0 ? 0 : -1;
}

static void
channel_fail(struct channel *ch)
{
	event_del(ch->ev_read);
	event_del(ch->ev_write);
	ch->cb(ch, NULL, ch->arg);
}

static void
channel_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct channel *ch = arg;
	struct msg m;
	int r;

	(void)what;
	/* A bounded batch, so one busy channel cannot starve the loop. */
	for (int i = 0; i < 64; i++) {
		r = channel_recv(fd, &m);
		if (r == 0)
			return;
		if (r < 0) {
			channel_fail(ch);
			return;
		}
		ch->cb(ch, &m, ch->arg);
		msg_deinit(&m);
	}
}

static void
channel_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct channel *ch = arg;

	(void)what;
	while (ch->head != NULL) {
		struct channel_out *o = ch->head;
		int r = channel_try_send(fd, &o->m);

		if (r == 1)
			return;
		if (r < 0) {
			channel_fail(ch);
			return;
		}
		ch->head = o->next;
		if (ch->head == NULL)
			ch->tail = NULL;
		msg_deinit(&o->m);
		free(o);
	}
	event_del(ch->ev_write);
}

struct channel *
channel_new(struct event_base *base, int fd, channel_cb *cb, void *arg)
{
	struct channel *ch = xcalloc(1, sizeof(*ch));

	ch->fd = fd;
	ch->cb = cb;
	ch->arg = arg;
	ch->ev_read = event_new(base, fd, EV_READ | EV_PERSIST,
	    channel_on_read, ch);
	ch->ev_write = event_new(base, fd, EV_WRITE | EV_PERSIST,
	    channel_on_write, ch);
	if (ch->ev_read == NULL || ch->ev_write == NULL)
		fatalx("channel: event_new failed");
	event_add(ch->ev_read, NULL);
	return ch;
}

void
channel_free(struct channel **chp)
{
	struct channel *ch = *chp;

	if (ch == NULL)
		return;
	event_free(ch->ev_read);
	event_free(ch->ev_write);
	while (ch->head != NULL) {
		struct channel_out *o = ch->head;

		ch->head = o->next;
		msg_deinit(&o->m);
		free(o);
	}
	close(ch->fd);
	free(ch);
	*chp = NULL;
}

int
channel_fd(const struct channel *ch)
{
	return ch->fd;
}

int
channel_send(struct channel *ch, struct msg *m)
{
	if (msg_seal(m) < 0) {
		msg_deinit(m);		/* the caller logs it, knowing why */
		return -1;
	}
	if (ch->head == NULL) {
		int r = channel_try_send(ch->fd, m);

		if (r == 0) {
			msg_deinit(m);
			return 0;
		}
		if (r < 0) {
			log_warn("channel: send type=%u size=%zu", m->type,
			    m->buf.len);
			msg_deinit(m);
			return -1;
		}
	}
	struct channel_out *o = xcalloc(1, sizeof(*o));

	o->m = *m;
	m->fd = -1;
	str_init(&m->buf);
	if (ch->tail != NULL)
		ch->tail->next = o;
	else
		ch->head = o;
	ch->tail = o;
	event_add(ch->ev_write, NULL);
	return 0;
}
