/*
 * conn: PROXY header and TLS start for protocol sessions (see conn.h).
 */
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "conn.h"
#include "log.h"
#include "xmalloc.h"

struct conn_proxy {
	struct event	*ev;
	conn_proxy_cb	*cb;
	void		*arg;
};

static void
conn_proxy_done(struct conn_proxy *p, const struct proxy_result *pr,
    const char *error)
{
	conn_proxy_cb *cb = p->cb;
	void *arg = p->arg;

	event_free(p->ev);
	free(p);
	cb(arg, pr, error);
}

static void
conn_on_proxy(evutil_socket_t fd, short what, void *arg)
{
	struct conn_proxy *p = arg;
	unsigned char buf[PROXY_MAX_HEADER];
	struct proxy_result pr;
	const char *error = "timeout";
	ssize_t len;
	int n;

	if (what & EV_TIMEOUT) {
		conn_proxy_done(p, NULL, error);
		return;
	}
	len = recv(fd, buf, sizeof(buf), MSG_PEEK);
	if (len < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (len <= 0) {
		conn_proxy_done(p, NULL, len == 0 ? "closed before the header" :
		    strerror(errno));
		return;
	}
	n = proxy_parse(buf, (size_t)len, &pr, &error);
	if (n == 0 && (size_t)len < sizeof(buf))
		return;
	if (n <= 0) {
		conn_proxy_done(p, NULL, n == 0 ? "too long" : error);
		return;
	}
	if (recv(fd, buf, (size_t)n, 0) != n) {
		conn_proxy_done(p, NULL, "short read");
		return;
	}
	conn_proxy_done(p, &pr, NULL);
}

struct conn_proxy *
conn_proxy_read(struct event_base *base, int fd, int timeout, conn_proxy_cb *cb,
    void *arg)
{
	struct conn_proxy *p = xcalloc(1, sizeof(*p));

	p->cb = cb;
	p->arg = arg;
	p->ev = event_new(base, fd, EV_READ | EV_PERSIST | EV_ET, conn_on_proxy,
	    p);
	if (p->ev == NULL)
		fatalx("conn: out of memory for a PROXY reader");
	event_add(p->ev, &(struct timeval){ timeout, 0 });
	return p;
}

void
conn_proxy_free(struct conn_proxy **pp)
{
	struct conn_proxy *p = *pp;

	if (p == NULL)
		return;
	event_free(p->ev);
	free(p);
	*pp = NULL;
}

int
conn_input_wait(struct bufferevent *bev, int waiting, size_t line_max)
{
	size_t bound = CONN_WAIT_INPUT_MAX + line_max;

	if (!waiting) {
		/* reading a command or DATA: the line limits bound it */
		bufferevent_setwatermark(bev, EV_READ, 0, 0);
		return 0;
	}
	bufferevent_setwatermark(bev, EV_READ, 0, bound);
	return evbuffer_get_length(bufferevent_get_input(bev)) >= bound ?
	    -1 : 0;
}

#define CONN_LINGER_SECONDS	2

static void
conn_on_linger(evutil_socket_t fd, short what, void *arg)
{
	struct event **evp = arg;
	char buf[4096];
	ssize_t n;

	if ((what & EV_READ) != 0) {
		while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
			;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;		/* more may come; the timeout bounds it */
	}
	event_free(*evp);
	free(evp);
	close(fd);
}

void
conn_linger_close(struct event_base *base, int fd)
{
	struct event **evp;

	if (shutdown(fd, SHUT_WR) < 0) {
		close(fd);	/* not connected any more: nothing to wait for */
		return;
	}
	evp = xmalloc(sizeof(*evp));
	*evp = event_new(base, fd, EV_READ | EV_PERSIST, conn_on_linger, evp);
	if (*evp == NULL) {
		free(evp);
		close(fd);
		return;
	}
	event_add(*evp, &(struct timeval){ CONN_LINGER_SECONDS, 0 });
}

/*
 * Replies that depend on the back side (RCPT, the end of DATA, RETR) go
 * out one by one as the answers come. With Nagle's algorithm a reply
 * sent while the previous one is unacknowledged waits for that ACK,
 * which a pipelining client delays by 40 ms on Linux: one message per
 * 40 ms per session (docs/performance.md). Replies written in one
 * callback still leave in one segment: the bufferevent gathers them.
 */
void
conn_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct bufferevent *
conn_plain_bev(struct event_base *base, int fd)
{
	conn_nodelay(fd);
	return bufferevent_socket_new(base, fd, 0);
}

struct bufferevent *
conn_tls_bev(struct event_base *base, SSL_CTX *ctx, int fd, SSL **ssl_r)
{
	struct bufferevent *bev;
	SSL *ssl = SSL_new(ctx);

	*ssl_r = NULL;
	if (ssl == NULL)
		return NULL;
	/*
	 * Each write becomes its own TLS record and segment: a reply's
	 * status line and then its body (POP3 RETR) or several pipelined
	 * replies. With Nagle the second waits for the ACK of the first,
	 * which the client delays (40 ms on Linux): docs/performance.md.
	 */
	conn_nodelay(fd);
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, 0);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* Clients often close without close_notify; not an attack here. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	*ssl_r = ssl;
	return bev;
}
