/*
 * conn: the life of a protocol connection (see conn.h): PROXY header,
 * TLS start, limits, events, the end.
 */
#include <errno.h>
#include <stdio.h>
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
#include <openssl/err.h>

#include "be_client.h"
#include "be_proto.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "tls.h"
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

/* ---- the connection's life ---------------------------------------- */

static void conn_on_read(struct bufferevent *, void *);
static void conn_on_write(struct bufferevent *, void *);
static void conn_on_event(struct bufferevent *, short, void *);

static void
conn_on_drain(void *arg)
{
	struct conn *c = arg;

	/* what the session waits for is done first; it then checks
	 * server_loop_stopping() itself */
	if (c->bev != NULL && !c->v->waiting(c))
		c->v->drain(c);
}

/* Say why (conn_vfuncs.refuse_line) and close. */
static void
conn_refuse(const struct conn_vfuncs *v, const struct listen_conf *lc,
    int fd, enum conn_refusal why)
{
	const char *line = NULL;

	if (v != NULL && v->refuse_line != NULL)
		line = v->refuse_line(lc, why);
	/* Best effort: the socket is new, the write will not block. */
	if (line != NULL && write(fd, line, strlen(line)) < 0)
		log_debug("%s refusal: write failed", v->name);
	close(fd);
}

void
conn_refuse_low_memory(const struct conn_vfuncs *v,
    const struct listen_conf *lc, int fd)
{
	conn_refuse(v, lc, fd, CONN_REFUSE_MEMORY);
	/* the reason was logged once, with "memory low" */
	log_debug("low on memory: connection refused role=%s",
	    config_role_name(lc->role));
	metrics_conn_refused((int)lc->role, METRICS_CONN_MEMORY);
}

int
conn_init(struct conn *c, const struct conn_vfuncs *v,
    struct server_loop *loop, const struct listen_conf *lc, int fd,
    const struct sockaddr *sa, socklen_t salen)
{
	if (limits_conn_acquire(loop->conf) < 0) {
		conn_refuse(v, lc, fd, CONN_REFUSE_MAX);
		if (v->refuse_line != NULL)
			log_warnx("max_connections (%d) reached, connection "
			    "refused", loop->conf->max_connections);
		metrics_conn_refused((int)lc->role, METRICS_CONN_MAX);
		return -1;
	}
	c->v = v;
	c->loop = loop;
	c->conf = loop->conf;
	c->lc = lc;
	c->fd = fd;
	metrics_conn_open((int)lc->role);
	server_drain_add(loop, &c->drain, conn_on_drain, c);
	if ((size_t)salen > sizeof(c->peer))
		salen = sizeof(c->peer);
	memcpy(&c->peer, sa, salen);
	memcpy(&c->client, sa, salen);
	server_addr_str(sa, c->addr, sizeof(c->addr));
	if (v->has_id) {
		c->be_session = be_client_session(loop->be);
		snprintf(c->id, sizeof(c->id), "%02X%06lX", loop->index & 0xff,
		    ++loop->sessions & 0xffffff);
		snprintf(c->logid, sizeof(c->logid), "session=%s", c->id);
	} else
		xstrlcpy(c->logid, v->name, sizeof(c->logid));
	return 0;
}

void
conn_msg_init(struct conn *c, struct msg *m, uint32_t type)
{
	msg_init(m, type, 0);
	msg_add_u64(m, c->be_session);
	c->be_used = 1;
}

struct be_req *
conn_request(struct conn *c, struct msg *m, be_reply_cb *cb, void *arg)
{
	if (m->buf.len > MSG_MAX_LEN) {
		uint32_t type = m->type;

		log_warnx("%s back-side request type %u too large (%zu "
		    "octets), not sent", c->logid, type, m->buf.len);
		msg_deinit(m);
		msg_init(m, type, 0);
	}
	return be_client_request(c->loop->be, m, cb, arg);
}

int
conn_get_line(struct conn *c, size_t limit, struct str *line)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t eol_len;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len,
	    EVBUFFER_EOL_LF);

	if (p.pos < 0) {
		if (evbuffer_get_length(in) > limit) {
			/* Skip to the next LF and answer then, in order. */
			evbuffer_drain(in, evbuffer_get_length(in));
			c->skip_line = 1;
		}
		return 0;
	}
	size_t n = (size_t)p.pos + 1;

	if (c->skip_line || n > limit) {
		evbuffer_drain(in, n);
		c->skip_line = 0;
		return -1;
	}
	str_clear(line);
	str_append_n(line, evbuffer_pullup(in, (ev_ssize_t)n), n);
	evbuffer_drain(in, n);
	str_truncate(line, n - 1);
	return 1;
}

static void
conn_on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	char *text = c->delayed;

	(void)fd;
	(void)what;
	c->delayed = NULL;
	c->v->delayed(c, text != NULL ? text : "");
	free(text);
}

void
conn_delay(struct conn *c, uint32_t delay_ms, const char *text)
{
	if (c->delay_timer == NULL &&
	    (c->delay_timer = evtimer_new(c->loop->base, conn_on_delay,
	    c)) == NULL)
		fatalx("%s: out of memory for a session", c->v->name);
	free(c->delayed);
	c->delayed = xstrdup(text);
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };

	evtimer_add(c->delay_timer, &tv);
}

void
conn_deinit(struct conn *c)
{
	if (c->be_used) {
		struct msg m;

		/* The back side drops its record of the session. */
		msg_init(&m, BE_SESSION_END, 0);
		msg_add_u64(&m, c->be_session);
		(void)be_client_request(c->loop->be, &m, NULL, NULL);
	}
	log_info("%s disconnect client=%s", c->logid, c->addr);
	server_drain_del(c->loop, &c->drain);
	if (c->counted_ip)
		limits_ip_release((struct sockaddr *)&c->client);
	limits_conn_release();
	metrics_conn_close((int)c->lc->role);
	conn_proxy_free(&c->proxy);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->v->has_id)
		conn_linger_close(c->loop->base, c->fd);
	else
		close(c->fd);
	str_deinit(&c->tls_info);
	if (c->delay_timer != NULL)
		event_free(c->delay_timer);
	free(c->delayed);
}

int
conn_ip_acquire(struct conn *c)
{
	if (limits_ip_acquire(c->conf, (struct sockaddr *)&c->client) < 0) {
		metrics_conn_refused((int)c->lc->role, METRICS_CONN_PER_IP);
		return -1;
	}
	c->counted_ip = 1;
	return 0;
}

void
conn_set_timeouts(struct conn *c)
{
	struct timeval tv = { c->timeout, 0 };

	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

void
conn_close_after_reply(struct conn *c)
{
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_set_timeouts(c->bev, NULL, &(struct timeval){ 10, 0 });
}

static void
conn_tls_start(struct conn *c)
{
	/* The plain bufferevent goes; the socket stays and TLS starts on
	 * it. Nothing it had read ahead survives. */
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->bev = conn_tls_bev(c->loop->base, c->loop->tls, c->fd, &c->ssl);
	if (c->bev == NULL) {
		log_warnx("%s tls: cannot start", c->logid);
		c->v->free(c);
		return;
	}
	c->handshaking = 1;
	c->v->tls_starting(c);
	bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event,
	    c);
	conn_set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

void
conn_starttls(struct conn *c, const char *word, const char *cmd)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t pending = evbuffer_get_length(in);

	if (pending > 0) {
		log_info("%s %s discarded=%zu bytes pipelined after %s",
		    c->logid, word, pending, cmd);
		evbuffer_drain(in, pending);
	}
	/* TLS starts once the reply is on the wire (conn_on_write). */
	bufferevent_disable(c->bev, EV_READ);
	c->starttls_pending = 1;
}

static void
conn_tls_done(struct conn *c)
{
	c->handshaking = 0;
	c->tls = 1;
	str_clear(&c->tls_info);
	tls_describe(c->ssl, &c->tls_info);
	log_info("%s tls client=%s %s", c->logid, c->addr,
	    str_c(&c->tls_info));
	if (c->implicit_tls && !c->greeted) {
		c->greeted = 1;
		c->v->ready(c);
		return;
	}
	c->v->tls_ready(c);
}

void
conn_start_plain(struct conn *c)
{
	c->bev = conn_plain_bev(c->loop->base, c->fd);
	if (c->bev == NULL)
		fatalx("%s: out of memory for a session", c->v->name);
	bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event,
	    c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
conn_client_ready(struct conn *c)
{
	server_addr_str((struct sockaddr *)&c->client, c->addr,
	    sizeof(c->addr));
	log_info("%s connect client=%s role=%s", c->logid, c->addr,
	    config_role_name(c->lc->role));
	if (c->implicit_tls) {
		conn_tls_start(c);
		return;
	}
	conn_start_plain(c);
	c->greeted = 1;
	c->v->ready(c);
}

/* The PROXY header from a trusted load balancer. */
static void
conn_proxy_header(void *arg, const struct proxy_result *pr, const char *error)
{
	struct conn *c = arg;

	c->proxy = NULL;
	if (error != NULL) {
		log_warnx("%s proxy header refused from %s: %s", c->logid,
		    c->addr, error);
		c->v->free(c);
		return;
	}
	if (!pr->local)
		memcpy(&c->client, &pr->src, pr->srclen);
	conn_client_ready(c);
}

void
conn_start(struct conn *c)
{
	if (c->lc->proxy && cidr_match(c->conf->proxy_trusted,
	    c->conf->proxy_trusted_count, (struct sockaddr *)&c->peer)) {
		c->proxy = conn_proxy_read(c->loop->base, c->fd,
		    c->conf->proxy_timeout, conn_proxy_header, c);
		return;
	}
	conn_client_ready(c);
}

static void
conn_on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->quit) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (!c->eof && conn_input_wait(bev, c->v->waiting(c), c->line_max) <
	    0) {
		/* as if the client had gone: freed once the wait is over */
		if (c->v->cut_warns)
			log_warnx("%s client=%s cut: %zu bytes of input while "
			    "waiting", c->logid, c->addr,
			    evbuffer_get_length(in));
		else
			log_info("%s client=%s cut: %zu bytes of input while "
			    "waiting", c->logid, c->addr,
			    evbuffer_get_length(in));
		bufferevent_disable(bev, EV_READ);
		evbuffer_drain(in, evbuffer_get_length(in));
		c->eof = 1;
		c->v->cut(c);
		return;
	}
	c->v->read(c);
}

static void
conn_on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->quit) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			c->v->free(c);
	} else if (c->starttls_pending) {
		c->starttls_pending = 0;
		conn_tls_start(c);
	} else if (c->v->write != NULL)
		c->v->write(c);
}

static void
conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		conn_tls_done(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		c->v->timeout(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		c->eof = 1;
		c->v->eof(c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		if (c->handshaking && c->ssl != NULL) {
			unsigned long e = bufferevent_get_openssl_error(bev);
			char ebuf[256];

			ERR_error_string_n(e, ebuf, sizeof(ebuf));
			log_info("%s tls handshake failed client=%s: %s",
			    c->logid, c->addr, e != 0 ? ebuf : "closed");
		}
		if (c->v->error != NULL)
			c->v->error(c);
		else
			c->v->free(c);
	}
}
