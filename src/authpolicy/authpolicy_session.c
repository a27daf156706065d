/*
 * authpolicy_session: one HTTP/1.1 connection from Dovecot's auth
 * process (see authpolicy_session.h). Dovecot keeps connections open
 * and sends one request at a time; a request is read whole (head and
 * Content-Length body, both bounded), answered, and the next one read.
 * A client that breaks the protocol gets an HTTP error and the
 * connection is closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "../core/be_client.h"
#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/conn.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/msg.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../daemon/server.h"
#include "authpolicy_parse.h"
#include "authpolicy_session.h"

/* Idle between requests, longer than Dovecot keeps an idle connection
 * (10 s) so that Dovecot closes first and never sends into our close;
 * and the time a read may stall: a slow client is cut after it. */
#define AUTHPOLICY_TIMEOUT	15

struct authpolicy_session {
	struct conn		 conn;		/* first: the connection */
	struct be_req		*req;
	struct authpolicy_head	 head;
	int			 have_head;
	int			 closing;
};

static void authpolicy_process(struct authpolicy_session *);

static void
authpolicy_free(struct authpolicy_session *s)
{
	if (s->req != NULL)
		be_req_cancel(s->req);
	conn_deinit(&s->conn);
	free(s);
}

static void
authpolicy_respond(struct authpolicy_session *s, int code,
    const char *reason, const char *json)
{
	struct evbuffer *out = bufferevent_get_output(s->conn.bev);

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n%s\r\n%s", code, reason, strlen(json),
	    s->closing || s->head.close ? "Connection: close\r\n" : "", json);
}

/* An error: answered, then the connection ends. */
static void
authpolicy_refuse(struct authpolicy_session *s, int code, const char *reason,
    const char *why)
{
	char e[256];

	log_warnx("authpolicy client=%s refused: %s: %s", s->conn.addr,
	    reason, log_escape(e, sizeof(e), why));
	s->closing = 1;
	authpolicy_respond(s, code, reason,
	    "{\"status\":0,\"msg\":\"bad request\"}");
	bufferevent_disable(s->conn.bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(s->conn.bev),
	    evbuffer_get_length(bufferevent_get_input(s->conn.bev)));
}

/* JSON string escaping of a back-side message (ASCII printable kept). */
static void
authpolicy_json_str(struct str *b, const char *s)
{
	str_append_c(b, '"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			str_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			str_printf(b, "\\u%04x", c);
		else
			str_append_c(b, (char)c);
	}
	str_append_c(b, '"');
}

static void
authpolicy_answer(struct msg *m, void *arg)
{
	struct authpolicy_session *s = arg;
	const char *text = NULL;
	int64_t status = 0;
	struct str body = STR_INIT;

	s->req = NULL;
	if (m == NULL || msg_get_i64(m, &status) < 0 ||
	    msg_get_str(m, &text) < 0 || msg_end(m) < 0) {
		/* The back side cannot decide: Dovecot's own fallback
		 * (auth_policy_reject_on_fail) applies to a 5xx. */
		log_warnx("authpolicy client=%s: no decision from the back "
		    "side", s->conn.addr);
		authpolicy_respond(s, 503, "Service Unavailable",
		    "{\"status\":0,\"msg\":\"policy temporarily unavailable\"}");
		s->closing = 1;
	} else {
		str_printf(&body, "{\"status\":%lld,\"msg\":",
		    (long long)status);
		authpolicy_json_str(&body, text != NULL ? text : "");
		str_append_c(&body, '}');
		if (s->head.close || server_loop_stopping(s->conn.loop))
			s->closing = 1;
		authpolicy_respond(s, 200, "OK", str_c(&body));
	}
	str_deinit(&body);
	s->have_head = 0;
	if (s->closing)
		bufferevent_disable(s->conn.bev, EV_READ);
	else
		authpolicy_process(s);
}

/* 0 asked; -1 refused (answered) */
static int
authpolicy_ask(struct authpolicy_session *s, const char *body, size_t n)
{
	struct authpolicy_request r;
	const char *error;
	const char *secret = s->conn.conf->authpolicy_secret;
	struct msg m;

	if (secret == NULL || *secret == '\0') {
		authpolicy_refuse(s, 401, "Unauthorized",
		    "authpolicy_secret is not set");
		return -1;
	}
	if (!s->head.has_key || strlen(s->head.key) != strlen(secret) ||
	    CRYPTO_memcmp(s->head.key, secret, strlen(secret)) != 0) {
		authpolicy_refuse(s, 401, "Unauthorized",
		    s->head.has_key ? "wrong X-API-Key" : "no X-API-Key");
		return -1;
	}
	if (authpolicy_parse_body(body, n, &r, &error) < 0) {
		authpolicy_refuse(s, 400, "Bad Request", error);
		return -1;
	}
	msg_init(&m, BE_AUTHPOLICY, 0);
	msg_add_u32(&m, s->head.command == AUTHPOLICY_REPORT ? 1 : 0);
	msg_add_str(&m, r.login);
	msg_add_str(&m, r.remote);
	msg_add_str(&m, r.protocol);
	msg_add_str(&m, r.session_id);
	msg_add_str(&m, r.account);
	msg_add_u32(&m, r.success == 1);
	msg_add_u32(&m, r.policy_reject == 1);
	s->req = be_client_request(s->conn.loop->be, &m, authpolicy_answer,
	    s);
	return 0;
}

static void
authpolicy_process(struct authpolicy_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->conn.bev);

	while (s->req == NULL && !s->closing) {
		size_t avail = evbuffer_get_length(in);
		const char *error;

		if (!s->have_head) {
			size_t n = avail < AUTHPOLICY_MAX_HEAD ? avail :
			    AUTHPOLICY_MAX_HEAD;
			const char *buf = (const char *)evbuffer_pullup(in,
			    (ev_ssize_t)n);
			long hl;

			if (n == 0)
				break;
			if ((hl = authpolicy_head_len(buf, n)) < 0) {
				authpolicy_refuse(s, 431,
				    "Request Header Fields Too Large",
				    "head too long");
				break;
			}
			if (hl == 0)
				break;
			if (authpolicy_parse_head(buf, (size_t)hl, &s->head,
			    &error) < 0) {
				authpolicy_refuse(s,
				    strcmp(error, "body too large") == 0 ?
				    413 : 400, strcmp(error, "body too large")
				    == 0 ? "Payload Too Large" : "Bad Request",
				    error);
				break;
			}
			evbuffer_drain(in, (size_t)hl);
			s->have_head = 1;
			continue;
		}
		if (avail < s->head.content_length)
			break;
		const char *body = (const char *)evbuffer_pullup(in,
		    (ev_ssize_t)s->head.content_length);
		size_t cl = s->head.content_length;

		if (body == NULL)
			body = "";
		if (authpolicy_ask(s, body, cl) < 0)
			break;
		evbuffer_drain(in, cl);
	}
	if (s->conn.eof && s->req == NULL)
		authpolicy_free(s);
}

/* Dovecot waits for each answer: input meanwhile is bounded (conn.h) */
static int
authpolicy_waiting(struct conn *c)
{
	struct authpolicy_session *s = (struct authpolicy_session *)c;

	return s->req != NULL || s->closing;
}

static void
authpolicy_cut(struct conn *c)
{
	struct authpolicy_session *s = (struct authpolicy_session *)c;

	if (s->req == NULL)
		authpolicy_free(s);
}

static void
authpolicy_read(struct conn *c)
{
	authpolicy_process((struct authpolicy_session *)c);
}

static void
authpolicy_write(struct conn *c)
{
	struct authpolicy_session *s = (struct authpolicy_session *)c;

	if (s->closing && s->req == NULL)
		authpolicy_free(s);
}

static void
authpolicy_timeout(struct conn *c)
{
	struct authpolicy_session *s = (struct authpolicy_session *)c;

	if (s->have_head || evbuffer_get_length(bufferevent_get_input(
	    c->bev)) > 0)
		log_warnx("authpolicy client=%s: request not complete in "
		    "%d s: closing", c->addr, AUTHPOLICY_TIMEOUT);
	s->conn.eof = 1;
	if (s->req == NULL)
		authpolicy_free(s);
}

static void
authpolicy_gone(struct conn *c)
{
	struct authpolicy_session *s = (struct authpolicy_session *)c;

	s->conn.eof = 1;
	if (s->req == NULL)
		authpolicy_free(s);
}

static void
authpolicy_drain(struct conn *c)
{
	struct authpolicy_session *s = (struct authpolicy_session *)c;

	if (s->req != NULL || s->closing)
		return;
	s->closing = 1;
	if (evbuffer_get_length(bufferevent_get_output(s->conn.bev)) == 0)
		authpolicy_free(s);
}

static void
authpolicy_conn_free(struct conn *c)
{
	authpolicy_free((struct authpolicy_session *)c);
}

const struct conn_vfuncs authpolicy_conn_vfuncs = {
	.name = "authpolicy",
	.refuse_line = NULL,
	.has_id = 0,
	.cut_warns = 1,
	.read = authpolicy_read,
	.waiting = authpolicy_waiting,
	.cut = authpolicy_cut,
	.write = authpolicy_write,
	.timeout = authpolicy_timeout,
	.eof = authpolicy_gone,
	.error = authpolicy_gone,
	.drain = authpolicy_drain,
	.free = authpolicy_conn_free,
};

void
authpolicy_session_new(struct server_loop *loop, const struct listen_conf *lc,
    int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct authpolicy_session *s;

	/* Only Dovecot's auth processes may ask: an answer counts
	 * failures and may lock an address out. */
	if (!cidr_match(loop->conf->authpolicy_clients,
	    loop->conf->authpolicy_clients_count, sa)) {
		char addr[64];

		metrics_conn_refused(LISTEN_AUTHPOLICY,
		    METRICS_CONN_NOT_ALLOWED);
		log_warnx("authpolicy client=%s refused: not in "
		    "authpolicy_clients", server_addr_str(sa, addr,
		    sizeof(addr)));
		close(fd);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	if (conn_init(&s->conn, &authpolicy_conn_vfuncs, loop, lc, fd, sa,
	    salen) < 0) {
		free(s);
		return;
	}
	/* input while a request is being decided: at most one more
	 * request's worth (conn_input_wait) */
	s->conn.line_max = AUTHPOLICY_MAX_HEAD + AUTHPOLICY_MAX_BODY;
	conn_start_plain(&s->conn);
	bufferevent_set_timeouts(s->conn.bev,
	    &(struct timeval){ AUTHPOLICY_TIMEOUT, 0 },
	    &(struct timeval){ AUTHPOLICY_TIMEOUT, 0 });
	log_debug("authpolicy connect client=%s", s->conn.addr);
}
