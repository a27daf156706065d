/*
 * policyd_session: the Postfix policy delegation protocol on a session
 * loop (see policyd_session.h). One request at a time per connection, as
 * Postfix sends them; the connection is kept for the next request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../core/be_client.h"
#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/conn.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../daemon/limits.h"
#include "../daemon/server.h"
#include "../core/xmalloc.h"
#include "policyd_parse.h"
#include "policyd_session.h"

struct policyd_session {
	struct conn		 conn;		/* first: the connection */
	struct be_req		*req;
	struct policyd_request	 r;
	int			 closing;
};

static void policyd_process(struct policyd_session *);

static void
policyd_free(struct policyd_session *s)
{
	if (s->req != NULL)
		be_req_cancel(s->req);
	policyd_request_clear(&s->r);
	conn_deinit(&s->conn);
	free(s);
}

/*
 * "action=...\n\n" to Postfix. Nothing waiting in the output (the usual
 * case: Postfix reads each answer before it asks again): written on the
 * socket now, one write(2), instead of through the bufferevent, which
 * arms the write event, writes at the next turn of the loop and disarms
 * it (two epoll_ctl and a loop turn per request: docs/performance.md,
 * W5). What the socket does not take now goes to the bufferevent, which
 * writes it when it can; the socket is non-blocking, so this never
 * waits for Postfix.
 */
static void
policyd_send(struct policyd_session *s, const char *action)
{
	struct evbuffer *out = bufferevent_get_output(s->conn.bev);
	size_t alen = strlen(action);
	char buf[POLICYD_MAX_LINE + 16];
	size_t len, off = 0;

	if (alen > POLICYD_MAX_LINE) {
		/* not one of sekisho's own answers: the long way */
		bufferevent_write(s->conn.bev, "action=", 7);
		bufferevent_write(s->conn.bev, action, alen);
		bufferevent_write(s->conn.bev, "\n\n", 2);
		return;
	}
	memcpy(buf, "action=", 7);
	memcpy(buf + 7, action, alen);
	memcpy(buf + 7 + alen, "\n\n", 2);
	len = alen + 9;
	if (evbuffer_get_length(out) == 0) {
		ssize_t w = send(s->conn.fd, buf, len, MSG_NOSIGNAL |
		    MSG_DONTWAIT);

		if (w > 0)
			off = (size_t)w;
		/* an error: the bufferevent tries and reports it */
	}
	if (off < len)
		bufferevent_write(s->conn.bev, buf + off, len - off);
}

static void
policyd_answer(struct msg *m, void *arg)
{
	struct policyd_session *s = arg;
	const char *action = NULL;

	s->req = NULL;
	if (m == NULL || msg_get_str(m, &action) < 0 || msg_end(m) < 0 ||
	    action == NULL)
		/* Postfix treats a broken policy server as a temporary
		 * failure too; saying so is clearer. */
		action = "451 4.3.0 Policy service temporarily unavailable";
	policyd_send(s, action);
	policyd_request_clear(&s->r);
	/* the daemon stops: Postfix asks its next one elsewhere */
	if (server_loop_stopping(s->conn.loop))
		s->closing = 1;
	if (s->closing && evbuffer_get_length(bufferevent_get_output(
	    s->conn.bev)) == 0) {
		/* all written already: no write callback will free it */
		policyd_free(s);
		return;
	}
	policyd_process(s);
}

static void
policyd_drain(struct conn *c)
{
	struct policyd_session *s = (struct policyd_session *)c;

	/* an answer being worked on is sent first (policyd_answer) */
	if (s->req != NULL || s->closing)
		return;
	s->closing = 1;
	if (evbuffer_get_length(bufferevent_get_output(s->conn.bev)) == 0)
		policyd_free(s);
}

/* The attributes passed on to the back side, in BE_POLICY_POSTFIX order. */
static const char *const policyd_passed[] = {
	"protocol_state", "sasl_username", "client_address", "sender",
	"recipient_count", "queue_id", "instance",
};

/* 0 when asked; -1 with *error_r when an attribute sekisho reads is
 * malformed (any other may hold what it likes: it is ignored). */
static int
policyd_ask(struct policyd_session *s, const char **error_r)
{
	const char *count = policyd_get(&s->r, "recipient_count");
	unsigned long n = 0;
	char *end;
	struct msg m;

	for (size_t i = 0; i < sizeof(policyd_passed) /
	    sizeof(policyd_passed[0]); i++)
		for (const char *c = policyd_get(&s->r, policyd_passed[i]);
		    *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f) {
				*error_r = "control character in a value";
				return -1;
			}
	if (*count != '\0') {
		n = strtoul(count, &end, 10);
		if (*count < '0' || *count > '9' || *end != '\0' ||
		    n > 1000000) {
			*error_r = "bad recipient_count";
			return -1;
		}
	}
	msg_init(&m, BE_POLICY_POSTFIX, 0);
	msg_add_str(&m, policyd_get(&s->r, "protocol_state"));
	msg_add_str(&m, policyd_get(&s->r, "sasl_username"));
	msg_add_str(&m, policyd_get(&s->r, "client_address"));
	msg_add_str(&m, policyd_get(&s->r, "sender"));
	msg_add_u32(&m, (uint32_t)n);
	msg_add_str(&m, policyd_get(&s->r, "queue_id"));
	msg_add_str(&m, policyd_get(&s->r, "instance"));
	s->req = be_client_request(s->conn.loop->be, &m, policyd_answer, s);
	return 0;
}

static void
policyd_process(struct policyd_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->conn.bev);

	while (s->req == NULL && !s->closing) {
		size_t eol;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol,
		    EVBUFFER_EOL_LF);
		const char *error = NULL;

		if (p.pos < 0) {
			if (evbuffer_get_length(in) > POLICYD_MAX_LINE + 2) {
				error = "line too long";
				goto bad;
			}
			break;
		}
		size_t n = (size_t)p.pos;
		char *line = xmalloc(n + 1);

		evbuffer_remove(in, line, n);
		evbuffer_drain(in, 1);
		line[n] = '\0';
		int r = policyd_parse_line(&s->r, line, n, &error);

		free(line);
		if (r < 0)
			goto bad;
		if (r == 1) {
			if (s->r.lines == 0)
				continue;	/* stray empty line */
			if (policyd_ask(s, &error) < 0)
				goto bad;
		}
		continue;
bad:
		/* Not Postfix, or a broken one. SMTPD_POLICY_README: the
		 * server logs and closes, with no reply (Postfix then
		 * retries, and at last answers its own default action). */
		log_warnx("policy client=%s bad request: %s: closing",
		    s->conn.addr, error);
		s->closing = 1;
		bufferevent_disable(s->conn.bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(
		    s->conn.bev)) == 0) {
			policyd_free(s);
			return;
		}
		/* an earlier answer goes first: policyd_on_write frees */
	}
	if (s->conn.eof && s->req == NULL)
		policyd_free(s);
}

/* Postfix waits for each answer: input while one is pending (or while
 * closing) is bounded, then cut (conn.h) */
static int
policyd_waiting(struct conn *c)
{
	struct policyd_session *s = (struct policyd_session *)c;

	return s->req != NULL || s->closing;
}

static void
policyd_cut(struct conn *c)
{
	struct policyd_session *s = (struct policyd_session *)c;

	if (s->req == NULL)
		policyd_free(s);	/* else freed when the answer comes */
}

static void
policyd_read(struct conn *c)
{
	policyd_process((struct policyd_session *)c);
}

static void
policyd_write(struct conn *c)
{
	struct policyd_session *s = (struct policyd_session *)c;

	if (s->closing)
		policyd_free(s);
}

/* The client closed, timed out or failed: freed now, or when the answer
 * being worked on comes. */
static void
policyd_gone(struct conn *c)
{
	struct policyd_session *s = (struct policyd_session *)c;

	s->conn.eof = 1;
	if (s->req == NULL)
		policyd_free(s);
}

static void
policyd_conn_free(struct conn *c)
{
	policyd_free((struct policyd_session *)c);
}

const struct conn_vfuncs policyd_conn_vfuncs = {
	.name = "policy",
	.refuse_line = NULL,	/* the protocol cannot say it */
	.has_id = 0,
	.cut_warns = 1,		/* Postfix does not do that */
	.read = policyd_read,
	.waiting = policyd_waiting,
	.cut = policyd_cut,
	.write = policyd_write,
	.timeout = policyd_gone,
	.eof = policyd_gone,
	.error = policyd_gone,
	.drain = policyd_drain,
	.free = policyd_conn_free,
};

void
policyd_session_new(struct server_loop *loop, const struct listen_conf *lc,
    int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct policyd_session *s;

	/* Only the listed networks may ask (policy_clients: an answer
	 * spends an account's quota and may send a notice). The address is
	 * the socket's own: this listener takes no PROXY header. */
	if (!cidr_match(loop->conf->policy_clients,
	    loop->conf->policy_clients_count, sa)) {
		char addr[64];

		metrics_conn_refused(LISTEN_POLICY, METRICS_CONN_NOT_ALLOWED);
		log_warnx("policy client=%s refused: not in policy_clients",
		    server_addr_str(sa, addr, sizeof(addr)));
		close(fd);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	if (conn_init(&s->conn, &policyd_conn_vfuncs, loop, lc, fd, sa,
	    salen) < 0) {
		free(s);
		return;
	}
	policyd_request_init(&s->r);
	s->conn.line_max = POLICYD_MAX_LINE;
	conn_start_plain(&s->conn);
	/* Postfix keeps idle policy connections (max_idle 300s). */
	bufferevent_set_timeouts(s->conn.bev, &(struct timeval){ 600, 0 },
	    NULL);
	log_info("policy connect client=%s", s->conn.addr);
}
