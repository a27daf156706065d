/*
 * fuzz_portal_http: raw HTTP requests to the settings page and its JSON
 * API, through the real portal code (portal_listen on a loopback socket,
 * plain HTTP as portal_plain_http = loopback allows): the request line and
 * headers (evhttp) and the framing check of them (portal_http_framing:
 * Content-Length, Transfer-Encoding, header names), cookies, query strings, urlencoded forms of the
 * subscriber and admin pages, and JSON bodies of /api/v1/ (jansson and
 * our checks of their keys and values). The back side is a stub on the
 * same loop that answers every portal request type (BE_PORTAL_*,
 * BE_ADMIN_*, BE_API_*) with a fixed typed reply of that type.
 *
 * Input: one byte choosing the stub's answer (be_portal_result, modulo),
 * then the bytes the client sends (one or more pipelined requests); the
 * client then half-closes. Whatever the server answers must start with
 * "HTTP/" and the connection must end (no hang on a half-closed client).
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/be_client.h"
#include "core/be_proto.h"
#include "core/channel.h"
#include "core/config.h"
#include "core/log.h"
#include "daemon/server.h"
#include "portal/portal.h"
#include "portal/portal_rows.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Tokens the pages expect back: 32 hex digits (PORTAL_TOKEN_LEN). */
#define FUZZ_TOKEN	"0123456789abcdef0123456789abcdef"

static struct {
	struct event_base	*base;
	struct config		*conf;
	struct server_loop	 loop;
	struct listen_conf	 lc;
	struct channel		*stub;
	struct portal		*portal;
	struct sockaddr_in	 addr;
	uint32_t		 answer;	/* be_portal_result to send */
} fz;

struct fuzz_client {
	int	 fd;
	int	 done;
	size_t	 got;
	char	 head[8];
};

static void
fuzz_stub_status(struct msg *r, uint32_t type)
{
	struct portal_sub sub = { 1900000000, "2030-03-17 12:00 JST",
	    "alice@example.jp", "192.0.2.1", "JP", "TLSv1.3", 3, 1,
	    "0123456789ABCDEF0123", "<x@y>" };
	struct portal_event ev = { 1900000000, "2030-03-17 12:00 JST",
	    "alice@example.jp", "overseas_refused", "192.0.2.1", "US",
	    "<b>From</b>" };

	msg_add_str(r, "alice@example.jp");
	msg_add_u32(r, 1);
	msg_add_str(r, "2030-03-17 12:00 JST");
	msg_add_u32(r, 7);
	msg_add_str(r, "US,<GB>");
	for (int i = 0; i < 8; i++)
		msg_add_i64(r, i * 100);
	msg_add_str(r, "2030-03-17 00:00 JST");
	msg_add_u32(r, 1);
	msg_add_u32(r, 1);
	msg_add_str(r, "info@example.jp");
	msg_add_u32(r, 1);
	msg_add_u32(r, 1);
	portal_rows_sub_pack(r, &sub);
	msg_add_u32(r, 1);
	msg_add_u32(r, 0);
	portal_rows_event_pack(r, &ev);
	/* RISK (issue 17), and HELD on the admin account page */
	msg_add_str(r, "hold");
	msg_add_u32(r, 1);
	msg_add_str(r, "2030-03-17 12:00 JST");
	msg_add_str(r, "automatic: <risk> score 64");
	msg_add_str(r, "2030-03-17 12:00 JST");
	msg_add_str(r, "2030-03-17 12:00 JST from 192.0.2.1 (JP), 3");
	msg_add_u32(r, 1);
	msg_add_i64(r, 645);
	msg_add_u32(r, 0);
	if (type == BE_ADMIN_ACCOUNT) {
		struct portal_held h = { "0123456789ABCDEF0123",
		    "2030-03-17 12:00 JST", "alice@example.jp", 2,
		    "a@x.example, b@y.example", 1234,
		    "Subject: <b>buy</b>\r\n", "risk", "automatic" };

		msg_add_u32(r, 1);
		msg_add_u32(r, 0);
		portal_rows_held_pack(r, &h);
	}
}

/* The body of an OK answer to each request type (be_proto.h). */
static void
fuzz_stub_body(struct msg *r, uint32_t type)
{
	struct portal_top top = { "alice@example.jp", 3, 7 };
	struct portal_refused ref = { "auth_locked_ip", "CN", 4 };
	struct portal_account_row acct = { "alice@example.jp", 0 };

	switch (type) {
	case BE_PORTAL_LOGIN:
	case BE_ADMIN_LOGIN:
		msg_add_str(r, FUZZ_TOKEN);
		msg_add_str(r, type == BE_ADMIN_LOGIN ? "desk" :
		    "alice@example.jp");
		return;
	case BE_PORTAL_STATUS:
		fuzz_stub_status(r, type);
		return;
	case BE_PORTAL_OVERSEAS_ON:
	case BE_PORTAL_OVERSEAS_OFF:
		msg_add_str(r, type == BE_PORTAL_OVERSEAS_ON ?
		    "2030-03-17 12:00 JST" : NULL);
		return;
	case BE_API_GET:
	case BE_API_OVERSEAS:
	case BE_API_LIMITS:
	case BE_API_HISTORY:
		msg_add_str(r, "{\"account\": \"alice@example.jp\"}");
		return;
	case BE_PORTAL_PASSWORD:
	case BE_PORTAL_APOP_ON:
	case BE_PORTAL_APOP_OFF:
	case BE_PORTAL_LOGOUT:
		return;
	default:
		break;
	}
	msg_add_str(r, "desk");
	switch (type) {
	case BE_ADMIN_SEARCH:
		msg_add_u32(r, 1);
		msg_add_i64(r, 5);
		msg_add_u32(r, 1);
		msg_add_u32(r, 0);
		portal_rows_top_pack(r, &top);
		msg_add_u32(r, 1);
		msg_add_u32(r, 1);
		portal_rows_refused_pack(r, &ref);
		msg_add_u32(r, 1);
		msg_add_u32(r, 1);
		portal_rows_account_pack(r, &acct);
		return;
	case BE_ADMIN_ACCOUNT:
		msg_add_u32(r, 0);
		fuzz_stub_status(r, type);
		return;
	case BE_ADMIN_RISK_TOP: {
		struct portal_risk k = { "alice@example.jp", 645, 2, 2 };

		msg_add_u32(r, 1);
		msg_add_u32(r, 1);
		portal_rows_risk_pack(r, &k);
		return;
	}
	case BE_ADMIN_WARN:
	case BE_ADMIN_HELD_RELEASE:
	case BE_ADMIN_HELD_DELETE:
		msg_add_u32(r, 1);
		return;
	case BE_ADMIN_AUDIT: {
		struct portal_event ev = { 1900000000, "2030-03-17 12:00 JST",
		    "alice@example.jp", "admin_suspend", "192.0.2.1", NULL,
		    "by desk: <spam>" };

		msg_add_u32(r, 1);
		msg_add_u32(r, 1);
		portal_rows_event_pack(r, &ev);
		return;
	}
	case BE_ADMIN_TRACE: {
		struct portal_sub sub = { 1900000000, "2030-03-17 12:00 JST",
		    "alice@example.jp", "192.0.2.1", "JP", NULL, 3, 0,
		    "0123456789ABCDEF0123", NULL };

		msg_add_u32(r, 1);
		msg_add_u32(r, 0);
		portal_rows_sub_pack(r, &sub);
		return;
	}
	default:
		return;
	}
}

static void
fuzz_stub_cb(struct channel *ch, struct msg *m, void *arg)
{
	struct msg r;

	(void)arg;
	if (m == NULL)
		return;
	if ((m->type < BE_PORTAL_LOGIN || m->type > BE_API_HISTORY) &&
	    (m->type < BE_ADMIN_RISK_TOP || m->type > BE_ADMIN_HELD_DELETE)) {
		msg_init(&r, BE_FAIL, m->id);
		channel_send(ch, &r);
		return;
	}
	/* HEAD, then the CSRF token and the body when OK */
	msg_init(&r, m->type, m->id);
	msg_add_u32(&r, fz.answer);
	msg_add_str(&r, fz.answer == BE_PORTAL_REFUSED ? "fail" : NULL);
	msg_add_i64(&r, 0);
	msg_add_str(&r, "2030-03-17 12:00 JST");
	msg_add_str(&r, "<b>spam</b>");
	if (fz.answer == BE_PORTAL_OK) {
		msg_add_str(&r, FUZZ_TOKEN);
		fuzz_stub_body(&r, m->type);
	}
	channel_send(ch, &r);
}

static void
fuzz_init(void)
{
	socklen_t len = sizeof(fz.addr);
	int fds[2], lfd, one = 1;

	log_init("fuzz", 1, LOG_LEVEL_WARN);
	fz.base = event_base_new();
	fz.conf = config_defaults();
	fz.conf->portal_plain_http = AUTH_WITHOUT_TLS_LOOPBACK;
	if (fz.base == NULL || channel_pair(fds) < 0)
		abort();
	fz.stub = channel_new(fz.base, fds[1], fuzz_stub_cb, NULL);
	fz.loop.base = fz.base;
	fz.loop.be = be_client_new(fz.base, fds[0]);
	fz.loop.conf = fz.conf;
	fz.loop.tls = NULL;

	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
		abort();
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	fz.addr.sin_family = AF_INET;
	fz.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&fz.addr, sizeof(fz.addr)) < 0 ||
	    listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&fz.addr, &len) < 0)
		abort();
	fz.lc.role = LISTEN_PORTAL;
	fz.lc.host = "127.0.0.1";
	fz.lc.port = "0";
	fz.lc.proxy = 0;
	{
		const char *error;

		if ((fz.portal = portal_listen(&fz.loop, &fz.lc, lfd,
		    &error)) == NULL)
			abort();
	}
}

/* The harness itself failed (not the server): say why, then stop. */
static void
fuzz_fail(const char *what, int err)
{
	fprintf(stderr, "fuzz_portal_http: %s: %s\n", what, strerror(err));
	abort();
}

static void
fuzz_client_read(evutil_socket_t fd, short what, void *arg)
{
	struct fuzz_client *c = arg;
	char buf[16384];
	ssize_t n;

	(void)what;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			/* Only the start is checked: the status line. */
			for (ssize_t i = 0; i < n && c->got < sizeof(c->head);
			    i++)
				c->head[c->got++] = buf[i];
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		c->done = 1;	/* EOF or reset: the server closed */
		event_base_loopbreak(fz.base);
		return;
	}
}

static void
fuzz_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(fz.base);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_client c = { .fd = -1 };
	struct event *rev, *tev;
	const uint8_t *p;
	size_t left;
	int rounds;

	if (fz.base == NULL)
		fuzz_init();
	if (size < 1)
		return 0;
	fz.answer = data[0] % (BE_PORTAL_TEMPFAIL + 1);
	p = data + 1;
	left = size - 1;

	/* The client closes first (SHUT_WR below), so each connection
	 * leaves its port in TIME_WAIT for a minute; at ten thousand inputs
	 * a second, a kernel that does not reuse such ports for loopback
	 * (net.ipv4.tcp_tw_reuse=0) runs one source address out of its
	 * 28,000 (connect: EADDRNOTAVAIL). Each input comes from the next of
	 * 4096 loopback addresses, 127.1.0.0 to 127.1.15.255. */
	if ((c.fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		fuzz_fail("socket", errno);
	{
		static unsigned int next;
		struct sockaddr_in src = { .sin_family = AF_INET };
		int one = 1;

		src.sin_addr.s_addr = htonl(0x7f010000u | (next++ & 0xfffu));
		setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		if (bind(c.fd, (struct sockaddr *)&src, sizeof(src)) < 0)
			fuzz_fail("bind", errno);
	}
	/* libFuzzer's SIGALRM (its -timeout watch) may interrupt a blocking
	 * connect(), which then goes on by itself: so connect without
	 * blocking and wait for the outcome, as often as interrupted. */
	fcntl(c.fd, F_SETFL, O_NONBLOCK);
	if (connect(c.fd, (struct sockaddr *)&fz.addr, sizeof(fz.addr)) < 0) {
		struct pollfd pfd = { .fd = c.fd, .events = POLLOUT };
		int err = errno;
		socklen_t elen = sizeof(err);

		if (err != EINPROGRESS && err != EINTR)
			fuzz_fail("connect", err);
		while (poll(&pfd, 1, 20000) < 0 && errno == EINTR)
			;
		if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			fuzz_fail("getsockopt", errno);
		if (err != 0)
			fuzz_fail("connect", err);
	}
	/* Loopback buffers take a request of the sizes fuzzed (-max_len);
	 * what they do not take is cut, as a client that gave up. */
	while (left > 0) {
		ssize_t n = write(c.fd, p, left);

		if (n <= 0)
			break;
		p += n;
		left -= (size_t)n;
	}
	shutdown(c.fd, SHUT_WR);

	rev = event_new(fz.base, c.fd, EV_READ | EV_PERSIST,
	    fuzz_client_read, &c);
	tev = evtimer_new(fz.base, fuzz_timeout, NULL);
	event_add(rev, NULL);
	/* evhttp closes on EOF after its answers; 20 s is a hang (the
	 * fuzzer's own -timeout usually reports it first). */
	event_add(tev, &(struct timeval){ 20, 0 });
	while (!c.done && event_pending(tev, EV_TIMEOUT, NULL))
		event_base_loop(fz.base, EVLOOP_ONCE);
	if (!c.done)
		abort();	/* the server kept a half-closed client */
	event_free(rev);
	event_free(tev);
	close(c.fd);
	/* Let the server side free the connection before the next input
	 * (and before a leak check). */
	for (rounds = 0; rounds < 4; rounds++)
		event_base_loop(fz.base, EVLOOP_NONBLOCK);
	/* evhttp answers in the request's version, even "HTTP/0.1". */
	if (c.got > 0 && (c.got < 5 || memcmp(c.head, "HTTP/", 5) != 0))
		abort();
	return 0;
}
