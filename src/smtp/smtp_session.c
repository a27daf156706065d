/*
 * smtp_session: the SMTP server side of one connection (see
 * smtp_session.h). Three listener roles share it: "mx" (port 25, local
 * recipients only, no AUTH), "submission" (587, STARTTLS, AUTH required
 * before MAIL) and "submissions" (465, implicit TLS, RFC 8314).
 *
 * Shape (STYLE.md): commands are rows of smtp_cmd_table with a check
 * that only inspects state and replies with the error, and a proceed
 * that acts; the state changes only in smtp_enter_state(), which logs
 * "old -> new". Work that needs the store or the spool is a request to
 * the back side; while one is pending the session is "busy" and reads
 * no further command, so pipelined commands are answered in order.
 *
 * Message content (DATA) ends only at CRLF "." CRLF after a CRLF.
 * A bare LF or a lone CR anywhere in the content is refused at the end
 * of DATA with 550 5.6.0 and nothing is queued, so no SMTP-smuggling
 * variant (\n.\r\n, \r.\r, \n.\n, \r\n.\r) can end a message early or
 * start a second one.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../core/be_client.h"
#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/conn.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../daemon/server.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../queue/envelope.h"
#include "smtp_header.h"
#include "../core/base64.h"
#include "../core/sasl.h"
#include "smtp_parse.h"
#include "smtp_session.h"

enum smtp_state {
	SMTP_STATE_PROXY,	/* waiting for the PROXY header */
	SMTP_STATE_TLS,		/* TLS handshake in progress */
	SMTP_STATE_HELO,	/* greeted; HELO/EHLO needed */
	SMTP_STATE_READY,	/* no mail transaction */
	SMTP_STATE_AUTH,	/* AUTH exchange: 334 sent */
	SMTP_STATE_MAIL,	/* MAIL accepted, no recipient yet */
	SMTP_STATE_RCPT,	/* at least one recipient */
	SMTP_STATE_DATA,	/* reading message content */
	SMTP_STATE_QUIT,	/* last reply written; close when flushed */
	SMTP_STATE_COUNT
};

static const char *const smtp_state_names[SMTP_STATE_COUNT] = {
	"proxy", "tls", "helo", "ready", "auth", "mail", "rcpt", "data",
	"quit",
};

enum smtp_data_error {
	DATA_OK,
	DATA_BARE_LF,
	DATA_BARE_CR,
	DATA_LONG_LINE,
	DATA_TOO_BIG,
	DATA_IO,
};

enum smtp_auth_mech { AUTH_MECH_PLAIN, AUTH_MECH_LOGIN };

/*
 * Bounds on what goes into a back-side request (issue 13: a request
 * never outgrows a 64 KiB seam message, whatever the client sends).
 * A login name longer than any account, or a password longer than any
 * the store takes, is refused here with 501; a header From longer than
 * SMTP_FROM_MAX octets in a submission is refused with 554 5.6.0 (a
 * clear answer; the back side reads the From itself at commit and
 * finds no usable one in it); the Message-ID, only
 * logged with the submission, is cut to SMTP_MSGID_MAX octets.
 */
#define SMTP_AUTH_USER_MAX	512
#define SMTP_AUTH_PASS_MAX	1024
#define SMTP_FROM_MAX		4096
#define SMTP_MSGID_MAX		250

/* The longest Received token the session takes (trace_token.h
 * TRACE_TOKEN_MAX; the session side does not include it). */
#define SMTP_TRACE_TOKEN_MAX	600

/* The spool's room as the back side last told this process at MAIL
 * (BE_SPOOL_SPACE): see smtp_space_room. */
#define SMTP_SPACE_TTL_MS	1000
#define SMTP_SPACE_SLACK	((uint64_t)1 << 30)
static struct {
	uint64_t	 room;
	struct timespec	 when;
	int		 known;
} smtp_space;

struct smtp_session {
	struct conn		 conn;		/* first: the connection */

	enum smtp_state		 state;
	struct be_req		*req;		/* pending back-side request */
	int			 errors;

	char			*helo;
	int			 esmtp;
	char			*account;	/* authenticated account */

	enum smtp_auth_mech	 auth_mech;
	char			*auth_user;	/* LOGIN: first answer */
	char			*rcpt_pending;	/* RCPT awaiting the back side */
	int			 popbsmtp;	/* account by POP-before-SMTP */
	char			*mail_args;	/* MAIL awaiting POP-before-SMTP */


	/* transaction */
	struct envelope		 env;
	int			 in_txn;
	char			*mail_pending;	/* sender awaiting the policy */
	int			 mail_pending_utf8;

	/* the sending policy's answer to MAIL (submissions) */
	int64_t			 pol_rcpts_left;	/* -1: no limit */
	int64_t			 pol_rcpts_msg;		/* -1: no limit */
	struct str		 pol_rcpt_reply;
	int			 rcpt_over;	/* RCPTs refused over a limit */
	/* received_client = token: the Received header's client (issue
	 * 17 item 8), the back side's; NULL: the address */
	char			*trace_token;

	/* DATA */
	int			 spool_fd;
	int			 spool_early;	/* spool_fd opened with the
						   last RCPT, for DATA */
	int			 rcpt_open;	/* the RCPT asked BE_RCPT_OPEN */
	uint64_t		 commit_start;	/* metrics: commit round trip */
	struct evbuffer		*out;
	struct event		*data_timer;
	struct event		*cmd_timer;	/* smtp_timeout per line */
	size_t			 data_size;
	enum smtp_data_error	 data_error;
	int			 data_prev_crlf;
	int			 data_in_headers;
	int			 data_seen_msgid;
	int			 data_seen_date;
	struct str		 data_hdr;
	struct str		 held;		/* replies not sent yet */
	struct event		*held_ev;	/* smtp_reply_stop, later */
	size_t			 data_skip_len;	/* bytes of an over-long line */
	struct str		 data_from;	/* From field bodies */
	int			 data_in_from;	/* continuation lines follow */
	int			 data_from_long; /* over SMTP_FROM_MAX */
	char			*data_msgid;
};

#define SMTP_CMD_PRE_HELO	0x01	/* allowed before HELO/EHLO */
#define SMTP_CMD_ENDS_GROUP	0x02	/* RFC 2920 3.1: last in a group */

struct smtp_cmd_def {
	enum smtp_cmd	 cmd;
	int		 flags;
	/* 0: proceed; 1: answered, no error; -1: answered, an error */
	int		(*check)(struct smtp_session *, const char *);
	void		(*proceed)(struct smtp_session *, const char *);
};

static void smtp_process(struct smtp_session *);
static void smtp_free(struct smtp_session *);
static void smtp_abort_spool(struct smtp_session *);

static int
smtp_is_submission(const struct smtp_session *s)
{
	return s->conn.lc->role == LISTEN_SUBMISSION ||
	    s->conn.lc->role == LISTEN_SUBMISSIONS;
}

static void
smtp_enter_state(struct smtp_session *s, enum smtp_state new)
{
	if (s->state != new && log_debug_enabled())
		log_debug("session=%s state %s -> %s", s->conn.id,
		    smtp_state_names[s->state], smtp_state_names[new]);
	s->state = new;
	s->conn.quit = new == SMTP_STATE_QUIT;
}

static const char *
smtp_logid(const struct smtp_session *s)
{
	return s->in_txn ? s->env.id : s->conn.id;
}

/* Write one reply line; 4xx and 5xx are logged as rejects. */
static void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * A reply out. A 250 or 354 on a plain connection with nothing queued
 * before it is sent at once: through the bufferevent it cost two
 * epoll_ctl calls (the write event on, then off) and one more turn of the
 * loop per reply, four replies a message (issue 18). What the socket does
 * not take now, everything on TLS or behind a delayed reply, and every
 * other reply (a 220 before STARTTLS, a 221 or 421 before closing: the
 * connection's write callback acts once they are flushed) goes through
 * the bufferevent as before, in order.
 *
 * Such replies are held and sent together when the session stops
 * reading commands (smtp_reply_stop, at the end of smtp_process, which
 * every back-side answer's callback ends with; held_ev runs it too once
 * the callback that wrote has returned): RFC 2920 3.2 lets a server
 * hold replies as long as the client keeps sending commands, and never
 * while it waits for the client. A pipelined MAIL, RCPT and DATA then
 * get one send instead of three, and the client is woken once.
 */
#define SMTP_HELD_MAX	4096

static int
smtp_reply_direct(struct smtp_session *s, const char *p, size_t len)
{
	struct conn *c = &s->conn;

	return len > 4 && (memcmp(p, "250", 3) == 0 || memcmp(p, "354", 3) ==
	    0) && c->ssl == NULL && !c->tls && c->delayed == NULL &&
	    !c->quit && !c->eof && !c->starttls_pending &&
	    s->state != SMTP_STATE_QUIT && c->fd >= 0 &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
}

static void
smtp_reply_send(struct smtp_session *s, const char *p, size_t len)
{
	struct conn *c = &s->conn;

	if (smtp_reply_direct(s, p, len)) {
		ssize_t n = send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		}
	}
	if (len > 0)
		bufferevent_write(c->bev, p, len);
}

/* The held replies out, before anything written after them. */
static void
smtp_reply_flush(struct smtp_session *s)
{
	if (s->held.len == 0)
		return;
	smtp_reply_send(s, s->held.s, s->held.len);
	str_clear(&s->held);
}

static void
smtp_reply_write(struct smtp_session *s, const char *p, size_t len)
{
	if (s->held_ev != NULL && smtp_reply_direct(s, p, len) &&
	    s->held.len + len <= SMTP_HELD_MAX) {
		str_append_n(&s->held, p, len);
		event_active(s->held_ev, EV_TIMEOUT, 0);
		return;
	}
	smtp_reply_flush(s);
	smtp_reply_send(s, p, len);
}

/*
 * smtp_process stops: the held replies go unless the back side is
 * answering a command and the client has already sent a whole command
 * line after it (it is not waiting for us; the answer's callback runs
 * smtp_process again).
 */
static void
smtp_reply_stop(struct smtp_session *s)
{
	struct evbuffer *in;
	struct evbuffer_ptr eol;

	if (s->held.len == 0)
		return;
	if (s->req != NULL && s->conn.delayed == NULL &&
	    s->conn.bev != NULL) {
		in = bufferevent_get_input(s->conn.bev);
		eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
		if (eol.pos >= 0)
			return;
	}
	smtp_reply_flush(s);
}

static void
smtp_reply_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	smtp_reply_stop(arg);
}

static void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;

	va_start(ap, fmt);
	str_vprintf(&line, fmt, ap);
	va_end(ap);
	if (line.len > 0 && (line.s[0] == '4' || line.s[0] == '5'))
		log_info("%s=%s smtp reject client=%s state=%s reply=\"%s\"",
		    s->in_txn ? "id" : "session", smtp_logid(s), s->conn.addr,
		    smtp_state_names[s->state], str_c(&line));
	str_append(&line, "\r\n");
	smtp_reply_write(s, line.s, line.len);
	/*
	 * The client now has smtp_timeout for its next whole line: a
	 * deadline, not an idle timer, so a client sending a byte now and
	 * then (slowloris) is cut too. Not during DATA (its own timer).
	 */
	if (s->cmd_timer != NULL && s->state != SMTP_STATE_QUIT &&
	    strncmp(line.s, "354", 3) != 0)
		event_add(s->cmd_timer, &(struct timeval){
		    s->conn.conf->smtp_timeout, 0 });
	str_deinit(&line);
}

/* Count a client error; too many ends the session (RFC 5321 4.5.3.1). */
static int
smtp_error(struct smtp_session *s)
{
	if (++s->errors < s->conn.conf->smtp_max_errors)
		return 0;
	smtp_reply(s, "421 4.7.0 %s Too many errors, closing connection",
	    s->conn.conf->hostname);
	smtp_enter_state(s, SMTP_STATE_QUIT);
	return -1;
}

static void
smtp_txn_reset(struct smtp_session *s)
{
	envelope_deinit(&s->env);
	envelope_init(&s->env);
	/* a file opened with the last RCPT whose DATA never came: the
	 * back side removes it (it would at the next open or the end) */
	if (s->spool_early && s->spool_fd != -1 && s->in_txn)
		smtp_abort_spool(s);
	s->spool_early = 0;
	s->in_txn = 0;
	if (s->spool_fd != -1) {
		close(s->spool_fd);
		s->spool_fd = -1;
	}
	if (s->out != NULL)
		evbuffer_drain(s->out, evbuffer_get_length(s->out));
	str_clear(&s->data_hdr);
	str_clear(&s->data_from);
	s->data_in_from = 0;
	s->data_from_long = 0;
	xfree(&s->data_msgid);
	xfree(&s->mail_pending);
	s->pol_rcpts_left = -1;
	s->pol_rcpts_msg = -1;
	str_clear(&s->pol_rcpt_reply);
	xfree(&s->trace_token);
	s->rcpt_over = 0;
	if (s->data_timer != NULL)
		evtimer_del(s->data_timer);
}

/* Start a request that acts for this session: its number first. */
static void
smtp_msg_init(struct smtp_session *s, struct msg *m, uint32_t type)
{
	conn_msg_init(&s->conn, m, type);
}

static void
smtp_request(struct smtp_session *s, struct msg *m, be_reply_cb *cb)
{
	s->req = conn_request(&s->conn, m, cb, s);
}

/* ---- greeting, PROXY, TLS ---------------------------------------- */

static void
smtp_greet(struct smtp_session *s)
{
	if (conn_ip_acquire(&s->conn) < 0) {
		smtp_reply(s, "421 4.7.0 %s Too many connections from your "
		    "address, try again later", s->conn.conf->hostname);
		smtp_enter_state(s, SMTP_STATE_QUIT);
		return;
	}
	smtp_enter_state(s, SMTP_STATE_HELO);
	smtp_reply(s, "220 %s ESMTP sekisho", s->conn.conf->hostname);
	conn_set_timeouts(&s->conn);
}

static void
smtp_ready(struct conn *c)
{
	smtp_greet((struct smtp_session *)c);
}

static void
smtp_tls_starting(struct conn *c)
{
	smtp_enter_state((struct smtp_session *)c, SMTP_STATE_TLS);
}

/* STARTTLS done. RFC 3207 4.2: forget what the client said before TLS. */
static void
smtp_tls_ready(struct conn *c)
{
	struct smtp_session *s = (struct smtp_session *)c;

	xfree(&s->helo);
	s->esmtp = 0;
	smtp_enter_state(s, SMTP_STATE_HELO);
	event_add(s->cmd_timer, &(struct timeval){ s->conn.conf->smtp_timeout,
	    0 });
	smtp_process(s);
}

/* ---- commands ---------------------------------------------------- */

static int
smtp_check_helo(struct smtp_session *s, const char *args)
{
	/* A domain or address literal (RFC 5321 4.1.1.1); be lenient on
	 * what clients call themselves, strict on what could harm a header. */
	size_t n = strlen(args);

	if (n == 0 || n > 255 || strcspn(args, " \t") != n) {
		smtp_reply(s, "501 5.5.4 Syntax: EHLO hostname");
		return -1;
	}
	for (const char *p = args; *p != '\0'; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e ||
		    strchr("()<>;\\\"", *p) != NULL) {
			smtp_reply(s, "501 5.5.4 Invalid host name in EHLO");
			return -1;
		}
	return 0;
}

static int
smtp_auth_offered(const struct smtp_session *s)
{
	if (!smtp_is_submission(s))
		return 0;
	if (s->conn.tls)
		return 1;
	return s->conn.conf->submission_auth_without_tls ==
	    AUTH_WITHOUT_TLS_LOOPBACK &&
	    server_addr_is_loopback((const struct sockaddr *)&s->conn.client);
}

static void
smtp_proceed_ehlo(struct smtp_session *s, const char *args)
{
	smtp_txn_reset(s);
	free(s->helo);
	s->helo = xstrdup(args);
	s->esmtp = 1;
	smtp_enter_state(s, SMTP_STATE_READY);

	struct str r = STR_INIT;

	str_printf(&r, "250-%s Hello %s [%s]\r\n", s->conn.conf->hostname, args,
	    s->conn.addr);
	str_append(&r, "250-PIPELINING\r\n");
	str_printf(&r, "250-SIZE %zu\r\n", s->conn.conf->message_size_limit);
	str_append(&r, "250-8BITMIME\r\n");
	if (!s->conn.tls)
		str_append(&r, "250-STARTTLS\r\n");
	if (smtp_auth_offered(s) && s->account == NULL)
		str_append(&r, "250-AUTH PLAIN LOGIN\r\n");
	str_append(&r, "250-ENHANCEDSTATUSCODES\r\n");
	str_append(&r, "250 SMTPUTF8\r\n");
	smtp_reply_flush(s);
	bufferevent_write(s->conn.bev, r.s, r.len);
	str_deinit(&r);
}

static void
smtp_proceed_helo(struct smtp_session *s, const char *args)
{
	smtp_txn_reset(s);
	free(s->helo);
	s->helo = xstrdup(args);
	s->esmtp = 0;
	smtp_enter_state(s, SMTP_STATE_READY);
	smtp_reply(s, "250 %s", s->conn.conf->hostname);
}

static int
smtp_check_starttls(struct smtp_session *s, const char *args)
{
	if (s->conn.tls) {
		smtp_reply(s, "503 5.5.1 TLS already active");
		return -1;
	}
	if (*args != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return -1;
	}
	if (s->state != SMTP_STATE_READY) {
		smtp_reply(s, "503 5.5.1 STARTTLS not allowed during a mail "
		    "transaction");
		return -1;
	}
	return 0;
}

static void
smtp_proceed_starttls(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 4.2: what follows STARTTLS in plain text is discarded,
	 * never executed under TLS; TLS starts once the 220 is sent */
	conn_starttls(&s->conn, "starttls", "STARTTLS");
	smtp_enter_state(s, SMTP_STATE_TLS);
}

static int
smtp_check_auth(struct smtp_session *s, const char *args)
{
	char mech[32];
	size_t n = strcspn(args, " ");

	if (!smtp_is_submission(s)) {
		smtp_reply(s, "503 5.5.1 AUTH is not available on this port; "
		    "submit mail on port 587 or 465");
		return -1;
	}
	if (s->account != NULL) {
		smtp_reply(s, "503 5.5.1 Already authenticated");
		return -1;
	}
	if (s->state != SMTP_STATE_READY) {
		smtp_reply(s, "503 5.5.1 AUTH not allowed during a mail "
		    "transaction");
		return -1;
	}
	if (!smtp_auth_offered(s)) {
		/* RFC 4954 4: 538 when the mechanism needs encryption. */
		smtp_reply(s, "538 5.7.11 Encryption required: issue STARTTLS "
		    "first, then AUTH");
		return -1;
	}
	if (n == 0 || n >= sizeof(mech)) {
		smtp_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-"
		    "response]");
		return -1;
	}
	memcpy(mech, args, n);
	mech[n] = '\0';
	if (strcasecmp(mech, "PLAIN") != 0 && strcasecmp(mech, "LOGIN") != 0) {
		smtp_reply(s, "504 5.5.4 Unrecognized authentication type; "
		    "use PLAIN or LOGIN");
		return -1;
	}
	return 0;
}

static void
smtp_auth_reply(struct msg *m, void *arg)
{
	struct smtp_session *s = arg;
	const char *account = NULL, *reason = NULL;
	uint32_t result = BE_AUTH_TEMPFAIL, delay = 0;
	int64_t locked = 0;
	char user[128], when[64];

	s->req = NULL;
	if (m != NULL && (msg_get_u32(m, &result) < 0 ||
	    msg_get_str(m, &account) < 0 || msg_get_str(m, &reason) < 0 ||
	    msg_get_u32(m, &delay) < 0 || msg_get_i64(m, &locked) < 0 ||
	    msg_end(m) < 0))
		result = BE_AUTH_TEMPFAIL;
	log_printable(user, sizeof(user), s->auth_user != NULL ?
	    s->auth_user : "", s->auth_user != NULL ? strlen(s->auth_user) :
	    0);
	smtp_enter_state(s, SMTP_STATE_READY);
	switch (result) {
	case BE_AUTH_OK:
		if (account == NULL)
			goto tempfail;
		s->account = xstrdup(account);
		log_info("session=%s smtp auth client=%s user=%s "
		    "mechanism=%s result=ok", s->conn.id, s->conn.addr, user,
		    s->auth_mech == AUTH_MECH_PLAIN ? "PLAIN" : "LOGIN");
		smtp_reply(s, "235 2.7.0 Authentication successful");
		break;
	case BE_AUTH_SUSPENDED:
		log_info("session=%s smtp auth client=%s user=%s "
		    "mechanism=%s result=suspended", s->conn.id, s->conn.addr,
		    user,
		    s->auth_mech == AUTH_MECH_PLAIN ? "PLAIN" : "LOGIN");
		smtp_reply(s, "535 5.7.8 Authentication refused: this account "
		    "is suspended; please contact your provider's support");
		smtp_error(s);
		break;
	case BE_AUTH_FAIL:
		log_info("session=%s smtp auth client=%s user=%s "
		    "mechanism=%s result=fail delay=%ums", s->conn.id,
		    s->conn.addr, user,
		    s->auth_mech == AUTH_MECH_PLAIN ? "PLAIN" : "LOGIN", delay);
		if (delay > 0) {
			/* Throttling: the answer waits; nothing else is read
			 * meanwhile (conn_delay). */
			conn_delay(&s->conn, delay, "535 5.7.8 "
			    "Authentication credentials invalid");
			xfree(&s->auth_user);
			return;
		}
		smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
		smtp_error(s);
		break;
	case BE_AUTH_LOCKED: {
		time_t t = (time_t)locked;
		struct tm tm;

		localtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M %Z", &tm);
		log_info("session=%s smtp auth client=%s user=%s result=locked "
		    "until=%s", s->conn.id, s->conn.addr, user, when);
		/* RFC 4954 6: 454 is a temporary authentication failure */
		smtp_reply(s, "454 4.7.0 Too many failed logins from your "
		    "address or to this account; try again after %s", when);
		smtp_error(s);
		break;
	}
	default:
	tempfail:
		log_info("session=%s smtp auth client=%s user=%s result=tempfail",
		    s->conn.id, s->conn.addr, user);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure, "
		    "try again later");
		break;
	}
	xfree(&s->auth_user);
	smtp_process(s);
}

static void
smtp_delayed(struct conn *c, const char *text)
{
	struct smtp_session *s = (struct smtp_session *)c;

	smtp_reply(s, "%s", text);
	if (smtp_error(s) < 0)
		return;
	smtp_process(s);
}

static void
smtp_auth_verify(struct smtp_session *s, const char *user, const char *pass)
{
	struct msg m;

	if (strlen(user) > SMTP_AUTH_USER_MAX ||
	    strlen(pass) > SMTP_AUTH_PASS_MAX) {
		smtp_enter_state(s, SMTP_STATE_READY);
		xfree(&s->auth_user);
		smtp_reply(s, "501 5.5.2 Authentication refused: user name or "
		    "password too long (at most %d and %d octets)",
		    SMTP_AUTH_USER_MAX, SMTP_AUTH_PASS_MAX);
		smtp_error(s);
		return;
	}
	/* A name with a control character is no login name (issue 13):
	 * a normal failure, the name escaped in the log. */
	if (!str_login_name_ok(user)) {
		char name[128];

		smtp_enter_state(s, SMTP_STATE_READY);
		log_info("session=%s smtp auth client=%s user=%s result=fail "
		    "reason=name", s->conn.id, s->conn.addr, log_escape(name,
		    sizeof(name), user));
		smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
		smtp_error(s);
		return;
	}
	free(s->auth_user);
	s->auth_user = xstrdup(user);
	smtp_msg_init(s, &m, BE_AUTH);
	msg_add_str(&m, "smtp");
	msg_add_str(&m, s->auth_mech == AUTH_MECH_PLAIN ? "PLAIN" : "LOGIN");
	msg_add_str(&m, user);
	msg_add_str(&m, pass);
	msg_add_str(&m, s->conn.addr);
	smtp_request(s, &m, smtp_auth_reply);
}

/* One client answer in the AUTH exchange (initial response or a line
 * after 334). "*" cancels (RFC 4954 4). */
static void
smtp_auth_step(struct smtp_session *s, const char *answer)
{
	struct str dec = STR_INIT;
	const char *authz, *authc, *pass;

	evtimer_del(s->cmd_timer);
	if (strcmp(answer, "*") == 0) {
		smtp_enter_state(s, SMTP_STATE_READY);
		xfree(&s->auth_user);
		smtp_reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	if (base64_decode(answer, strlen(answer), &dec) < 0) {
		smtp_enter_state(s, SMTP_STATE_READY);
		xfree(&s->auth_user);
		smtp_reply(s, "501 5.5.2 Cannot decode response (base64)");
		smtp_error(s);
		goto done;
	}
	if (s->auth_mech == AUTH_MECH_PLAIN) {
		if (sasl_plain_split(&dec, &authz, &authc, &pass) < 0 ||
		    (*authz != '\0' && strcasecmp(authz, authc) != 0)) {
			smtp_enter_state(s, SMTP_STATE_READY);
			smtp_reply(s, "501 5.5.2 Malformed PLAIN response");
			smtp_error(s);
			goto done;
		}
		smtp_auth_verify(s, authc, pass);
		goto done;
	}
	/* LOGIN: user, then password, each base64 after a 334 prompt. */
	if (memchr(str_c(&dec), '\0', dec.len) != NULL || dec.len == 0) {
		smtp_enter_state(s, SMTP_STATE_READY);
		xfree(&s->auth_user);
		smtp_reply(s, "501 5.5.2 Malformed LOGIN response");
		smtp_error(s);
		goto done;
	}
	if (s->auth_user == NULL) {
		s->auth_user = xstrdup(str_c(&dec));
		smtp_enter_state(s, SMTP_STATE_AUTH);
		smtp_reply(s, "334 UGFzc3dvcmQ6");
		goto done;
	}
	char *user = s->auth_user;

	s->auth_user = NULL;
	smtp_auth_verify(s, user, str_c(&dec));
	free(user);
done:
	/* The password must not linger in freed memory. */
	if (dec.s != NULL)
		explicit_bzero(dec.s, dec.cap);
	str_deinit(&dec);
}

static void
smtp_proceed_auth(struct smtp_session *s, const char *args)
{
	const char *initial = strchr(args, ' ');

	s->auth_mech = strncasecmp(args, "PLAIN", 5) == 0 ? AUTH_MECH_PLAIN :
	    AUTH_MECH_LOGIN;
	xfree(&s->auth_user);
	if (initial != NULL) {
		while (*initial == ' ')
			initial++;
		/* RFC 4954 4: "=" is an empty initial response. */
		if (strcmp(initial, "=") == 0)
			initial = "";
		if (*initial != '\0' || s->auth_mech == AUTH_MECH_PLAIN) {
			smtp_enter_state(s, SMTP_STATE_AUTH);
			if (*initial == '\0')
				smtp_reply(s, "334 ");
			else
				smtp_auth_step(s, initial);
			return;
		}
	}
	smtp_enter_state(s, SMTP_STATE_AUTH);
	smtp_reply(s, s->auth_mech == AUTH_MECH_PLAIN ? "334 " :
	    "334 VXNlcm5hbWU6");
}

static int
smtp_check_mail(struct smtp_session *s, const char *args)
{
	(void)args;
	if (s->state != SMTP_STATE_READY) {
		smtp_reply(s, "503 5.5.1 Nested MAIL command");
		return -1;
	}
	/* With POP-before-SMTP on, the back side is asked first and the
	 * 530 comes from smtp_popbsmtp_reply. */
	if (smtp_is_submission(s) && s->account == NULL &&
	    !s->conn.conf->pop_before_smtp) {
		metrics_refused(METRICS_REFUSE_AUTH_REQUIRED);
		smtp_reply(s, "530 5.7.0 Authentication required: log in with "
		    "your mail address and password (SMTP AUTH)%s",
		    s->conn.tls ? "" : " after STARTTLS");
		return -1;
	}
	return 0;
}

/* Open the transaction: MAIL is accepted. */
static void
smtp_mail_accept(struct smtp_session *s, const char *sender, int smtputf8)
{
	char from[300];

	smtp_txn_reset(s);
	queue_id_new(s->env.id);
	s->in_txn = 1;
	s->env.sender = xstrdup(sender);
	s->env.smtputf8 = smtputf8;
	smtp_enter_state(s, SMTP_STATE_MAIL);
	log_info("id=%s session=%s mail client=%s from=<%s>%s%s", s->env.id,
	    s->conn.id, s->conn.addr, log_printable(from, sizeof(from),
	    s->env.sender,
	    strlen(s->env.sender)), s->account != NULL ? " account=" : "",
	    s->account != NULL ? s->account : "");
	smtp_reply(s, "250 2.1.0 Ok");
}

static void
smtp_policy_mail_reply(struct msg *m, void *arg)
{
	struct smtp_session *s = arg;
	const char *reply = NULL, *country = NULL, *rcpt_reply = NULL;
	const char *token = NULL;
	uint32_t verdict = 2, overseas = 0;
	int64_t left = -1, per_msg = -1;
	char *sender = s->mail_pending;

	s->req = NULL;
	s->mail_pending = NULL;
	if (m == NULL || msg_get_u32(m, &verdict) < 0 ||
	    msg_get_str(m, &reply) < 0 || msg_get_str(m, &country) < 0 ||
	    msg_get_u32(m, &overseas) < 0 || msg_get_i64(m, &left) < 0 ||
	    msg_get_i64(m, &per_msg) < 0 || msg_get_str(m, &rcpt_reply) < 0 ||
	    msg_get_str(m, &token) < 0 ||
	    msg_end(m) < 0 || (verdict != 0 && reply == NULL))
		verdict = 2, reply = NULL;
	if (verdict != 0) {
		/* The policy's own words: they say what to do. */
		if (reply != NULL)
			smtp_reply(s, "%s", reply);
		else
			smtp_reply(s, "451 4.3.0 Temporary failure checking "
			    "the sending policy, try again later");
		free(sender);
		smtp_process(s);
		return;
	}
	smtp_mail_accept(s, sender, s->mail_pending_utf8);
	free(sender);
	/* country and overseas are the back side's to keep (it uses its
	 * own record at commit) */
	(void)country;
	(void)overseas;
	s->pol_rcpts_left = left;
	s->pol_rcpts_msg = per_msg;
	str_clear(&s->pol_rcpt_reply);
	if (rcpt_reply != NULL)
		str_append(&s->pol_rcpt_reply, rcpt_reply);
	/* the back side's token text: bounded and of its alphabet, or
	 * "-" (no key: no client shown at all) */
	xfree(&s->trace_token);
	if (token != NULL && strlen(token) <= SMTP_TRACE_TOKEN_MAX &&
	    strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_.") == strlen(token))
		s->trace_token = xstrdup(token);
	else if (token != NULL)
		s->trace_token = xstrdup("-");
	smtp_process(s);
}

static void smtp_mail_step(struct smtp_session *, const char *, int);

/*
 * POP-before-SMTP (legacy, off by default; docs/pop3.md): a submission
 * without AUTH is let through when a POP3 login from this address has
 * opened a window, and is then that account's (logs, policy, limits);
 * Received says ESMTP(S), not ...A: this is not SMTP AUTH.
 */
static void
smtp_popbsmtp_reply(struct msg *m, void *arg)
{
	struct smtp_session *s = arg;
	const char *account = NULL;
	uint32_t result = 1;
	char *args = s->mail_args;

	s->req = NULL;
	s->mail_args = NULL;
	if (m == NULL || msg_get_u32(m, &result) < 0 ||
	    msg_get_str(m, &account) < 0 || msg_end(m) < 0)
		result = 1;
	if (result == 2) {
		/* the store cannot say now: not a refusal (be_mailbox.c) */
		smtp_reply(s, "451 4.3.0 Temporary failure checking "
		    "POP-before-SMTP, try again later");
	} else if (result != 0 || account == NULL || args == NULL) {
		smtp_reply(s, "530 5.7.0 Authentication required: log in with "
		    "your mail address and password (SMTP AUTH)%s",
		    s->conn.tls ? "" : " after STARTTLS");
		smtp_error(s);
	} else {
		s->account = xstrdup(account);
		s->popbsmtp = 1;
		log_info("session=%s popbsmtp=yes client=%s account=%s",
		    s->conn.id,
		    s->conn.addr, s->account);
		smtp_mail_step(s, args, 1);
	}
	free(args);
	smtp_process(s);
}

/* The back side's answer on free spool space (queue_minfree, SIZE). */
static void
smtp_spool_space_reply(struct msg *m, void *arg)
{
	struct smtp_session *s = arg;
	const char *reply = NULL;
	uint32_t result = 1;
	uint64_t room = 0;
	char *args = s->mail_args;

	s->req = NULL;
	s->mail_args = NULL;
	if (m == NULL || msg_get_u32(m, &result) < 0 ||
	    msg_get_str(m, &reply) < 0 || msg_get_u64(m, &room) < 0 ||
	    msg_end(m) < 0)
		result = 1, reply = NULL;
	if (result == 0) {
		smtp_space.room = room;
		clock_gettime(CLOCK_MONOTONIC_COARSE, &smtp_space.when);
		smtp_space.known = 1;
	}
	if (result == 0 && args != NULL)
		smtp_mail_step(s, args, 1);
	else if (reply != NULL)
		smtp_reply(s, "%s", reply);
	else
		smtp_reply(s, "451 4.3.0 Temporary failure checking the "
		    "queue's free space, try again later");
	free(args);
	smtp_process(s);
}

/*
 * Room for want more bytes above queue_minfree, from the back side's
 * last answer in this process: only when it is under a second old and
 * the room a GiB more than asked, so that every session of the process
 * could take a message of the largest size allowed since without
 * reaching the floor as that answer saw it. A courtesy before the
 * check that counts: BE_SPOOL_OPEN checks the floor again, and a disk
 * that fills fails the write (451/452 at the end of DATA).
 */
static int
smtp_space_room(uint64_t want)
{
	struct timespec now;
	int64_t ms;

	if (!smtp_space.known)
		return 0;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	ms = (int64_t)(now.tv_sec - smtp_space.when.tv_sec) * 1000 +
	    (now.tv_nsec - smtp_space.when.tv_nsec) / 1000000;
	if (ms < 0 || ms >= SMTP_SPACE_TTL_MS)
		return 0;
	return smtp_space.room > want &&
	    smtp_space.room - want >= SMTP_SPACE_SLACK;
}

static void
smtp_proceed_mail(struct smtp_session *s, const char *args)
{
	smtp_mail_step(s, args, 0);
}

/*
 * MAIL after its syntax: the spool's free space first (unless
 * space_checked), then POP-before-SMTP or the sending policy; each
 * back-side answer comes back here with the original arguments.
 */
static void
smtp_mail_step(struct smtp_session *s, const char *args, int space_checked)
{
	struct smtp_mail_args ma;
	struct msg m;

	switch (smtp_parse_mail(args, &ma)) {
	case SMTP_PARSE_OK:
		break;
	case SMTP_PARSE_BAD_ADDRESS:
		smtp_reply(s, "553 5.1.7 Bad sender address syntax");
		smtp_error(s);
		return;
	case SMTP_PARSE_BAD_PARAM:
		smtp_reply(s, "555 5.5.4 Unsupported MAIL FROM parameter");
		smtp_error(s);
		return;
	default:
		smtp_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		smtp_error(s);
		return;
	}
	if (ma.has_size && ma.size > s->conn.conf->message_size_limit) {
		metrics_refused(METRICS_REFUSE_SIZE);
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed limit of "
		    "%zu bytes", s->conn.conf->message_size_limit);
		smtp_mail_args_deinit(&ma);
		return;
	}
	/* RFC 1870 6.1 and queue_minfree: say 452 now rather than take a
	 * message there is no room for. */
	if (!space_checked && (s->conn.conf->queue_minfree > 0 ||
	    ma.has_size) &&
	    !smtp_space_room(ma.has_size ? (uint64_t)ma.size : 0)) {
		struct msg sm;

		msg_init(&sm, BE_SPOOL_SPACE, 0);
		msg_add_u64(&sm, ma.has_size ? (uint64_t)ma.size : 0);
		smtp_mail_args_deinit(&ma);
		free(s->mail_args);
		s->mail_args = xstrdup(args);
		smtp_request(s, &sm, smtp_spool_space_reply);
		return;
	}
	if (smtp_is_submission(s) && s->account == NULL) {
		struct msg pm;

		/* Only with pop_before_smtp on (smtp_check_mail). */
		smtp_mail_args_deinit(&ma);
		free(s->mail_args);
		s->mail_args = xstrdup(args);
		smtp_msg_init(s, &pm, BE_POPBSMTP);
		msg_add_str(&pm, s->conn.addr);
		smtp_request(s, &pm, smtp_popbsmtp_reply);
		return;
	}
	if (s->account == NULL) {
		/* mx: mail to local recipients; no sending policy */
		smtp_mail_accept(s, ma.address, ma.smtputf8);
		smtp_mail_args_deinit(&ma);
		return;
	}
	/* A submission: the sending policy decides (overseas rule, sender
	 * alignment, suspension, limits) on the back side. */
	free(s->mail_pending);
	s->mail_pending = xstrdup(ma.address);
	s->mail_pending_utf8 = ma.smtputf8;
	smtp_msg_init(s, &m, BE_POLICY_MAIL);
	msg_add_str(&m, ma.address);
	msg_add_str(&m, s->conn.addr);
	smtp_mail_args_deinit(&ma);
	smtp_request(s, &m, smtp_policy_mail_reply);
}

/*
 * A recipient refused for being one too many (RFC 5321 4.5.3.1.8, 3.3):
 * the client sends DATA for the ones accepted and the rest later, so the
 * refusal is no error until smtp_recipient_overshoot_limit of them in one
 * transaction (Postfix's smtpd_recipient_overshoot_limit). Mailing-list
 * software pipelines hundreds; counting each as an error ended the
 * session with 421 before DATA, and the message never went.
 */
static int
smtp_rcpt_overshoot(struct smtp_session *s)
{
	if (s->rcpt_over < s->conn.conf->smtp_recipient_overshoot_limit) {
		s->rcpt_over++;
		return 1;	/* answered; not an error */
	}
	return -1;
}

/* 0: go on; 1: answered (no error); -1: answered, an error. */
static int
smtp_check_rcpt(struct smtp_session *s, const char *args)
{
	(void)args;
	if (s->state != SMTP_STATE_MAIL && s->state != SMTP_STATE_RCPT) {
		smtp_reply(s, "503 5.5.1 Need MAIL command first");
		return -1;
	}
	/* Refused here, the excess never reaches the back side: its record
	 * of the session's recipients (be_session.c) holds the accepted. */
	if (s->env.rcpt_count >= (size_t)s->conn.conf->smtp_max_recipients) {
		/* RFC 5321 4.5.3.1.10: 452, the client sends the rest later */
		metrics_refused(METRICS_REFUSE_RECIPIENTS);
		smtp_reply(s, "452 4.5.3 Too many recipients (at most %d per "
		    "message)", s->conn.conf->smtp_max_recipients);
		return smtp_rcpt_overshoot(s);
	}
	if (s->pol_rcpts_msg >= 0 &&
	    (int64_t)s->env.rcpt_count >= s->pol_rcpts_msg) {
		metrics_refused(METRICS_REFUSE_RECIPIENTS);
		smtp_reply(s, "452 4.5.3 Too many recipients for one message "
		    "from this account (at most %lld)",
		    (long long)s->pol_rcpts_msg);
		return smtp_rcpt_overshoot(s);
	}
	if (s->pol_rcpts_left >= 0 &&
	    (int64_t)s->env.rcpt_count >= s->pol_rcpts_left) {
		/* the day's (or hour's) recipients are used up: the ones
		 * accepted may still go, as above */
		metrics_refused(METRICS_REFUSE_LIMIT);
		smtp_reply(s, "%s", str_c(&s->pol_rcpt_reply));
		return smtp_rcpt_overshoot(s);
	}
	return 0;
}

/* An accepted recipient's spool file from BE_RCPT_OPEN (*fd_r, then
 * -1) becomes the transaction's, for the DATA behind it. */
static void
smtp_spool_early(struct smtp_session *s, int *fd_r)
{
	if (*fd_r == -1)
		return;
	if (s->spool_fd != -1)
		close(s->spool_fd);
	s->spool_fd = *fd_r;
	s->spool_early = 1;
	*fd_r = -1;
}

static void
smtp_rcpt_reply(struct msg *m, void *arg)
{
	struct smtp_session *s = arg;
	const char *mailbox = NULL, *open_error = NULL;
	uint32_t result = BE_RCPT_TEMPFAIL, opened = 1;
	char *address = s->rcpt_pending;
	char rcpt[300];
	int fd = -1;

	s->req = NULL;
	s->rcpt_pending = NULL;
	if (m != NULL && (msg_get_u32(m, &result) < 0 ||
	    msg_get_str(m, &mailbox) < 0 || (s->rcpt_open &&
	    (msg_get_u32(m, &opened) < 0 ||
	    msg_get_str(m, &open_error) < 0)) || msg_end(m) < 0))
		result = BE_RCPT_TEMPFAIL, opened = 1;
	/* BE_RCPT_OPEN: the spool file for the DATA waiting behind this
	 * RCPT, kept below if the recipient is; a failed open is asked
	 * again at DATA, which answers it */
	if (s->rcpt_open && opened == 0)
		fd = msg_take_fd(m);
	s->rcpt_open = 0;
	log_printable(rcpt, sizeof(rcpt), address, strlen(address));
	switch (result) {
	case BE_RCPT_LOCAL:
		if (mailbox == NULL)
			goto tempfail;
		envelope_add_rcpt(&s->env, address, mailbox);
		smtp_enter_state(s, SMTP_STATE_RCPT);
		smtp_spool_early(s, &fd);
		log_info("id=%s rcpt to=<%s> mailbox=%s", s->env.id, rcpt,
		    mailbox);
		smtp_reply(s, "250 2.1.5 Ok");
		break;
	case BE_RCPT_REMOTE:
		if (s->account == NULL) {
			metrics_refused(METRICS_REFUSE_RELAY);
			smtp_reply(s, "550 5.7.1 <%s>: Relay access denied",
			    rcpt);
			smtp_error(s);
			break;
		}
		envelope_add_rcpt(&s->env, address, NULL);
		smtp_enter_state(s, SMTP_STATE_RCPT);
		smtp_spool_early(s, &fd);
		log_info("id=%s rcpt to=<%s> remote", s->env.id, rcpt);
		smtp_reply(s, "250 2.1.5 Ok");
		break;
	case BE_RCPT_UNKNOWN:
		metrics_refused(METRICS_REFUSE_UNKNOWN_USER);
		smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: "
		    "user unknown", rcpt);
		smtp_error(s);
		break;
	default:
	tempfail:
		smtp_reply(s, "451 4.3.0 <%s>: Temporary lookup failure, try "
		    "again later", rcpt);
		break;
	}
	if (fd != -1)
		close(fd);	/* the recipient was not kept */
	free(address);
	smtp_process(s);
}

/* The next command waiting in the input is DATA (RFC 2920). */
static int
smtp_data_next(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->conn.bev);
	const unsigned char *p;

	if (s->conn.skip_line || evbuffer_get_length(in) < 6 ||
	    (p = evbuffer_pullup(in, 6)) == NULL)
		return 0;
	return strncasecmp((const char *)p, "DATA\r\n", 6) == 0;
}

static void
smtp_proceed_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_rcpt_args ra;
	struct msg m;

	switch (smtp_parse_rcpt(args, s->env.smtputf8, &ra)) {
	case SMTP_PARSE_OK:
		break;
	case SMTP_PARSE_BAD_ADDRESS:
		smtp_reply(s, "501 5.1.3 Bad recipient address syntax");
		smtp_error(s);
		return;
	case SMTP_PARSE_BAD_PARAM:
		smtp_reply(s, "555 5.5.4 Unsupported RCPT TO parameter");
		smtp_error(s);
		return;
	default:
		smtp_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		smtp_error(s);
		return;
	}
	s->rcpt_pending = xstrdup(ra.address);
	/* DATA already behind it: the spool file comes with the answer */
	s->rcpt_open = s->spool_fd == -1 && smtp_data_next(s);
	smtp_msg_init(s, &m, s->rcpt_open ? BE_RCPT_OPEN : BE_RCPT);
	msg_add_str(&m, ra.address);
	if (s->rcpt_open)
		msg_add_str(&m, s->env.id);
	smtp_rcpt_args_deinit(&ra);
	smtp_request(s, &m, smtp_rcpt_reply);
}

/* ---- DATA -------------------------------------------------------- */

static const char *
smtp_protocol(const struct smtp_session *s)
{
	if (!s->esmtp)
		return "SMTP";
	/* RFC 3848 */
	if (s->conn.tls && s->account != NULL && !s->popbsmtp)
		return "ESMTPSA";
	if (s->account != NULL && !s->popbsmtp)
		return "ESMTPA";
	return s->conn.tls ? "ESMTPS" : "ESMTP";
}

static void
smtp_rfc5322_date(struct str *out, time_t t)
{
	struct tm tm;
	char buf[64];

	localtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S %z", &tm);
	str_append(out, buf);
}

/* RFC 5321 4.4 trace header, with RFC 3848 protocol names. */
static void
smtp_received(struct smtp_session *s, struct str *out)
{
	const struct sockaddr *sa = (const struct sockaddr *)&s->conn.client;

	if (s->trace_token != NULL && s->account != NULL)
		/* received_client = token: neither the address nor the
		 * client's EHLO name (often its address), only the sealed
		 * token sekisho trace opens (docs/trace.md) */
		str_printf(out, "Received: from submission (token %s)\r\n",
		    s->trace_token);
	else {
		str_printf(out, "Received: from %s (%s%s]", s->helo != NULL ?
		    s->helo : "unknown", sa->sa_family == AF_INET6 &&
		    strchr(s->conn.addr, ':') != NULL ? "[IPv6:" : "[",
		    s->conn.addr);
		str_append(out, ")\r\n");
	}
	if (s->conn.tls)
		str_printf(out, "\t(using %s)\r\n", str_c(&s->conn.tls_info));
	if (s->account != NULL && s->conn.conf->received_show_account)
		str_printf(out, "\t(authenticated as %s)\r\n", s->account);
	str_printf(out, "\tby %s (sekisho) with %s id %s\r\n",
	    s->conn.conf->hostname, smtp_protocol(s), s->env.id);
	/* Name the recipient only when there is one (privacy of Bcc). */
	if (s->env.rcpt_count == 1)
		str_printf(out, "\tfor <%s>; ", s->env.rcpts[0].address);
	else
		str_append(out, "\t; ");
	smtp_rfc5322_date(out, (time_t)s->env.time);
	str_append(out, "\r\n");
}

/* Write what is buffered to the spool file. */
static int
smtp_data_flush(struct smtp_session *s)
{
	while (evbuffer_get_length(s->out) > 0) {
		int n = evbuffer_write(s->out, s->spool_fd);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_warn("id=%s spool write", s->env.id);
			return -1;
		}
		if (n == 0)
			return -1;
	}
	return 0;
}

static void
smtp_data_add(struct smtp_session *s, const char *p, size_t n)
{
	if (s->data_error != DATA_OK)
		return;
	s->data_size += n;
	if (s->data_size > s->conn.conf->message_size_limit) {
		s->data_error = DATA_TOO_BIG;
		return;
	}
	/* Out of memory even after the reserve (src/core/mem.c): the
	 * message is incomplete, so it must not get its 250. */
	if (evbuffer_add(s->out, p, n) < 0) {
		s->data_error = DATA_IO;
		return;
	}
	if (evbuffer_get_length(s->out) >= 65536 && smtp_data_flush(s) < 0)
		s->data_error = DATA_IO;
}

/* RFC 6409 8.2, 8.3: a submission without Date or Message-ID gets them. */
static void
smtp_data_end_headers(struct smtp_session *s)
{
	struct str add = STR_INIT;

	s->data_in_headers = 0;
	smtp_data_add(s, str_c(&s->data_hdr), s->data_hdr.len);
	str_clear(&s->data_hdr);
	if (smtp_is_submission(s)) {
		if (!s->data_seen_date) {
			str_append(&add, "Date: ");
			smtp_rfc5322_date(&add, time(NULL));
			str_append(&add, "\r\n");
		}
		if (!s->data_seen_msgid) {
			unsigned char rnd[8];

			arc4random_buf(rnd, sizeof(rnd));
			free(s->data_msgid);
			s->data_msgid = xasprintf("%s.%02x%02x%02x%02x%02x"
			    "%02x%02x%02x@%s", s->env.id, rnd[0], rnd[1],
			    rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7],
			    s->conn.conf->hostname);
			str_printf(&add, "Message-ID: <%s>\r\n", s->data_msgid);
		}
	}
	smtp_data_add(s, str_c(&add), add.len);
	str_deinit(&add);
}

/* The offset of the field's body when line is that field, else 0
 * ("From :" included: smtp_header.h). */
static size_t
smtp_header_is(const char *line, size_t len, const char *name)
{
	return smtp_header_field(line, len, name);
}

/* Keep From field text, at most SMTP_FROM_MAX octets (beyond: marked,
 * and a submission is refused at the end of DATA). */
static void
smtp_data_from_add(struct smtp_session *s, const char *sep, const char *p,
    size_t n)
{
	size_t seplen = strlen(sep);

	if (s->data_from_long || s->data_from.len + seplen + n >
	    SMTP_FROM_MAX) {
		s->data_from_long = 1;
		return;
	}
	str_append(&s->data_from, sep);
	str_append_n(&s->data_from, p, n);
}

/* One content line (without its line end), already unstuffed. */
static void
smtp_data_line(struct smtp_session *s, const char *line, size_t len)
{
	if (s->data_in_headers) {
		int field = len > 0 && line[0] != ' ' && line[0] != '\t' &&
		    memchr(line, ':', len) != NULL;
		int cont = len > 0 && (line[0] == ' ' || line[0] == '\t');

		if (len == 0 || (!field && !cont)) {
			/* End of the header section; a body line without
			 * the empty separator gets one. */
			smtp_data_end_headers(s);
			if (len != 0)
				smtp_data_add(s, "\r\n", 2);
		} else {
			if (cont && s->data_in_from)
				smtp_data_from_add(s, "", line, len);
			else if (!cont)
				s->data_in_from = 0;
			size_t body;

			if ((body = smtp_header_is(line, len, "From")) > 0) {
				/* more than one From is kept whole: every
				 * address in it must be the account's */
				smtp_data_from_add(s, s->data_from.len > 0 ?
				    "," : "", line + body, len - body);
				s->data_in_from = 1;
			}
			if ((body = smtp_header_is(line, len,
			    "Message-ID")) > 0) {
				s->data_seen_msgid = 1;
				if (s->data_msgid == NULL)
					s->data_msgid = smtp_header_msgid(
					    line + body, len - body);
			}
			if (smtp_header_is(line, len, "Date"))
				s->data_seen_date = 1;
			str_append_n(&s->data_hdr, line, len);
			str_append(&s->data_hdr, "\r\n");
			if (s->data_hdr.len > s->conn.conf->message_size_limit)
				s->data_error = DATA_TOO_BIG;
			return;
		}
	}
	smtp_data_add(s, line, len);
	smtp_data_add(s, "\r\n", 2);
}

static void smtp_data_done(struct smtp_session *s);

/*
 * Consume message content from the input. Returns 1 when the final
 * "." line was read, 0 when more input is needed.
 */
static int
smtp_data_read(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->conn.bev);
	size_t limit = s->conn.conf->smtp_data_line_length_limit;

	for (;;) {
		size_t eol_len;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len,
		    EVBUFFER_EOL_LF);
		size_t avail = evbuffer_get_length(in);

		if (p.pos < 0) {
			/* No line end yet: an over-long line is dropped as
			 * it comes, keeping its last byte for the CR check. */
			if (avail > limit + 2) {
				size_t drop = avail - 1;

				s->data_skip_len += drop;
				evbuffer_drain(in, drop);
				if (s->data_error == DATA_OK)
					s->data_error = DATA_LONG_LINE;
			}
			return 0;
		}
		size_t n = (size_t)p.pos + 1;	/* with the LF */
		char *line = xmalloc(n + 1);

		evbuffer_remove(in, line, n);
		line[n] = '\0';
		int crlf = n >= 2 && line[n - 2] == '\r';
		size_t len = crlf ? n - 2 : n - 1;
		int skipped = s->data_skip_len > 0;

		s->data_skip_len = 0;

		if (!crlf) {
			if (s->data_error == DATA_OK)
				s->data_error = DATA_BARE_LF;
		} else if (memchr(line, '\r', len) != NULL) {
			if (s->data_error == DATA_OK)
				s->data_error = DATA_BARE_CR;
		}
		/* The end: "." CRLF, right after a CRLF (RFC 5321 4.1.1.4). */
		if (!skipped && crlf && s->data_prev_crlf && len == 1 &&
		    line[0] == '.') {
			free(line);
			return 1;
		}
		s->data_prev_crlf = crlf;
		if (skipped || len > limit) {
			if (s->data_error == DATA_OK)
				s->data_error = DATA_LONG_LINE;
		} else if (s->data_error == DATA_OK) {
			/* RFC 5321 4.5.2: remove one leading dot */
			if (len > 0 && line[0] == '.')
				smtp_data_line(s, line + 1, len - 1);
			else
				smtp_data_line(s, line, len);
		}
		free(line);
	}
}

/* No whole command line within smtp_timeout of our last reply. */
static void
smtp_cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	if (s->state == SMTP_STATE_QUIT || s->state == SMTP_STATE_DATA)
		return;		/* closing already, or DATA's own timer */
	log_info("session=%s timeout client=%s state=%s after %d s without "
	    "a whole command line", s->conn.id, s->conn.addr,
	    smtp_state_names[s->state], s->conn.conf->smtp_timeout);
	if (s->state == SMTP_STATE_PROXY || s->state == SMTP_STATE_TLS) {
		smtp_free(s);
		return;
	}
	/* RFC 5321 4.5.3.2: say why before closing */
	smtp_enter_state(s, SMTP_STATE_QUIT);
	smtp_reply(s, "421 4.4.2 %s Timeout, closing connection",
	    s->conn.conf->hostname);
	conn_close_after_reply(&s->conn);
}

static void
smtp_data_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	log_info("id=%s data timeout client=%s after %d s", s->env.id,
	    s->conn.addr, s->conn.conf->smtp_data_timeout);
	smtp_free(s);
}

static void smtp_spool_ready(struct smtp_session *);

static void
smtp_spool_open_reply(struct msg *m, void *arg)
{
	struct smtp_session *s = arg;
	uint32_t result = 1;
	const char *error = NULL;

	s->req = NULL;
	if (m != NULL && (msg_get_u32(m, &result) < 0 ||
	    msg_get_str(m, &error) < 0 || msg_end(m) < 0))
		result = 1;
	if (result == 0 && m != NULL)
		s->spool_fd = msg_take_fd(m);
	if (result == 2 && error != NULL && strncmp(error, "452 ", 4) == 0)
		smtp_reply(s, "%s", error);	/* below queue_minfree */
	else if (result != 0 || s->spool_fd == -1)
		smtp_reply(s, "451 4.3.0 Temporary failure: cannot queue the "
		    "message now, try again later");
	if (result != 0 || s->spool_fd == -1) {
		smtp_txn_reset(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		smtp_process(s);
		return;
	}
	smtp_spool_ready(s);
	smtp_process(s);
}

/* DATA with s->spool_fd open: the envelope and Received first, then 354
 * (the caller goes on reading: smtp_process). */
static void
smtp_spool_ready(struct smtp_session *s)
{
	struct str head = STR_INIT;

	s->env.time = (int64_t)time(NULL);
	free(s->env.client);
	s->env.client = xstrdup(s->conn.addr);
	free(s->env.helo);
	s->env.helo = xstrdup(s->helo != NULL ? s->helo : "unknown");
	free(s->env.protocol);
	s->env.protocol = xstrdup(smtp_protocol(s));
	free(s->env.auth);
	s->env.auth = s->account != NULL ? xstrdup(s->account) : NULL;
	if (envelope_format(&s->env, &head) < 0) {
		str_deinit(&head);
		smtp_reply(s, "451 4.3.0 Temporary failure: bad envelope");
		smtp_txn_reset(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		return;
	}
	smtp_received(s, &head);
	s->data_size = 0;
	s->data_error = DATA_OK;
	/* the envelope and Received: the file is worthless without them */
	if (evbuffer_add(s->out, head.s, head.len) < 0)
		s->data_error = DATA_IO;
	str_deinit(&head);

	s->data_prev_crlf = 1;
	s->data_in_headers = 1;
	s->data_seen_msgid = 0;
	s->data_seen_date = 0;
	s->data_skip_len = 0;
	str_clear(&s->data_hdr);
	smtp_enter_state(s, SMTP_STATE_DATA);
	event_add(s->data_timer, &(struct timeval){
	    s->conn.conf->smtp_data_timeout, 0 });
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static int
smtp_check_data(struct smtp_session *s, const char *args)
{
	if (s->state == SMTP_STATE_MAIL) {
		smtp_reply(s, "554 5.5.1 No valid recipients");
		return -1;
	}
	if (s->state != SMTP_STATE_RCPT) {
		smtp_reply(s, "503 5.5.1 Need MAIL and RCPT commands first");
		return -1;
	}
	if (*args != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: DATA");
		return -1;
	}
	return 0;
}

static void
smtp_proceed_data(struct smtp_session *s, const char *args)
{
	struct msg m;

	(void)args;
	if (s->spool_early && s->spool_fd != -1) {
		s->spool_early = 0;	/* opened with the last RCPT */
		smtp_spool_ready(s);
		return;
	}
	smtp_msg_init(s, &m, BE_SPOOL_OPEN);
	msg_add_str(&m, s->env.id);
	smtp_request(s, &m, smtp_spool_open_reply);
}

static void
smtp_commit_reply(struct msg *m, void *arg)
{
	struct smtp_session *s = arg;
	uint32_t result = 1;
	const char *answer = NULL;

	s->req = NULL;
	if (m != NULL && (msg_get_u32(m, &result) < 0 ||
	    msg_get_str(m, &answer) < 0 || msg_end(m) < 0))
		result = 1, answer = NULL;
	if (result == 0) {
		log_info("id=%s queued client=%s from=<%s> rcpts=%zu size=%zu "
		    "protocol=%s%s%s", s->env.id, s->conn.addr, s->env.sender,
		    s->env.rcpt_count, s->data_size, smtp_protocol(s),
		    s->account != NULL ? " account=" : "",
		    s->account != NULL ? s->account : "");
		smtp_reply(s, "250 2.0.0 Ok: queued as %s", s->env.id);
		metrics_accepted((int)s->conn.lc->role, s->commit_start);
	} else if (answer != NULL)
		smtp_reply(s, "%s", answer);
	else {
		metrics_refused(METRICS_REFUSE_TEMPFAIL);
		smtp_reply(s, "451 4.3.0 Temporary failure: message not "
		    "queued, try again later");
	}
	if (m == NULL)
		smtp_abort_spool(s);	/* never committed (e.g. not sent) */
	smtp_txn_reset(s);
	smtp_enter_state(s, SMTP_STATE_READY);
	smtp_process(s);
}

static void
smtp_abort_spool(struct smtp_session *s)
{
	struct msg m;

	s->spool_early = 0;
	smtp_msg_init(s, &m, BE_SPOOL_ABORT);
	msg_add_str(&m, s->env.id);
	(void)be_client_request(s->conn.loop->be, &m, NULL, NULL);
}

/* BE_SPOOL_COMMIT's filter fields: listener role, SASL mechanism,
 * local address, client port (be_proto.h). */
static void
smtp_commit_filter_info(struct smtp_session *s, struct msg *m)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	char addr[INET6_ADDRSTRLEN] = "";
	uint32_t port = 0;

	msg_add_u32(m, (uint32_t)s->conn.lc->role);
	msg_add_str(m, s->account == NULL || s->popbsmtp ? NULL :
	    s->auth_mech == AUTH_MECH_PLAIN ? "PLAIN" : "LOGIN");
	memset(&local, 0, sizeof(local));
	if (getsockname(s->conn.fd, (struct sockaddr *)&local, &len) == 0) {
		if (local.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&local)->
			    sin_addr, addr, sizeof(addr));
		else if (local.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&local)->
			    sin6_addr, addr, sizeof(addr));
	}
	msg_add_str(m, addr[0] != '\0' ? addr : NULL);
	if (s->conn.client.ss_family == AF_INET)
		port = ntohs(((struct sockaddr_in *)&s->conn.client)->sin_port);
	else if (s->conn.client.ss_family == AF_INET6)
		port = ntohs(((struct sockaddr_in6 *)&s->conn.client)->
		    sin6_port);
	msg_add_u32(m, port);
}

static void
smtp_data_done(struct smtp_session *s)
{
	struct msg m;

	evtimer_del(s->data_timer);
	if (s->data_error == DATA_OK && s->data_in_headers)
		smtp_data_end_headers(s);
	if (s->data_error == DATA_OK && smtp_data_flush(s) < 0)
		s->data_error = DATA_IO;
	close(s->spool_fd);
	s->spool_fd = -1;
	if (s->data_error != DATA_OK) {
		smtp_abort_spool(s);
		metrics_refused(s->data_error == DATA_TOO_BIG ?
		    METRICS_REFUSE_SIZE : s->data_error == DATA_IO ?
		    METRICS_REFUSE_TEMPFAIL : METRICS_REFUSE_CONTENT);
		switch (s->data_error) {
		case DATA_BARE_LF:
			smtp_reply(s, "550 5.6.0 Message refused: bare LF in "
			    "message content; lines must end with CR LF "
			    "(RFC 5321 2.3.8)");
			break;
		case DATA_BARE_CR:
			smtp_reply(s, "550 5.6.0 Message refused: bare CR in "
			    "message content; lines must end with CR LF "
			    "(RFC 5321 2.3.8)");
			break;
		case DATA_LONG_LINE:
			smtp_reply(s, "550 5.6.0 Message refused: a line is "
			    "longer than %zu octets (RFC 5322 2.1.1)",
			    s->conn.conf->smtp_data_line_length_limit);
			break;
		case DATA_TOO_BIG:
			smtp_reply(s, "552 5.3.4 Message size exceeds fixed "
			    "limit of %zu bytes",
			    s->conn.conf->message_size_limit);
			break;
		default:
			/* ENOSPC, EIO: logged at the write; the partial file
			 * is removed by the abort above. */
			log_warnx("id=%s not queued client=%s reason=spool-write "
			    "incoming=removed", s->env.id, s->conn.addr);
			smtp_reply(s, "451 4.3.0 Temporary failure writing the "
			    "message, try again later");
			break;
		}
		smtp_txn_reset(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		return;
	}
	if (s->account != NULL && s->data_from_long) {
		/* Its addresses could not all be checked: refused, the
		 * session goes on. */
		smtp_abort_spool(s);
		metrics_refused(METRICS_REFUSE_CONTENT);
		smtp_reply(s, "554 5.6.0 Message refused: the header From is "
		    "longer than %d octets", SMTP_FROM_MAX);
		smtp_txn_reset(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		return;
	}
	/* Only logged with the submission: cut, not refused. */
	if (s->data_msgid != NULL && strlen(s->data_msgid) > SMTP_MSGID_MAX)
		s->data_msgid[SMTP_MSGID_MAX] = '\0';
	s->commit_start = metrics_now_us();
	/* The account, recipients, country and from-abroad flag are the
	 * back side's own record of this session (be_proto.h). */
	smtp_msg_init(s, &m, BE_SPOOL_COMMIT);
	msg_add_str(&m, s->env.id);
	msg_add_u64(&m, (uint64_t)s->data_size);
	msg_add_str(&m, s->conn.addr);
	msg_add_str(&m, s->conn.tls ? str_c(&s->conn.tls_info) : NULL);
	msg_add_str(&m, s->data_msgid);
	/* for the mail filters' macros (issue 16): only this process knows
	 * them; the back side takes no authority from them */
	smtp_commit_filter_info(s, &m);
	/* the header From is read back from the spool file by the back side
	 * itself, for alignment */
	smtp_request(s, &m, smtp_commit_reply);
}

/* ---- the rest of the commands ------------------------------------ */

static void
smtp_proceed_rset(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_txn_reset(s);
	if (s->state != SMTP_STATE_HELO)
		smtp_enter_state(s, SMTP_STATE_READY);
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
smtp_proceed_noop(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
smtp_proceed_quit(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, "221 2.0.0 %s closing connection",
	    s->conn.conf->hostname);
	smtp_enter_state(s, SMTP_STATE_QUIT);
}

static void
smtp_proceed_vrfy(struct smtp_session *s, const char *args)
{
	(void)args;
	/* RFC 5321 3.5.3: 252 rather than disclosing accounts. */
	smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message "
	    "and attempt delivery");
}

static void
smtp_proceed_expn(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, "502 5.5.1 EXPN not available");
}

static void
smtp_proceed_help(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, "214 2.0.0 See RFC 5321; commands: EHLO HELO MAIL RCPT "
	    "DATA RSET NOOP QUIT VRFY STARTTLS AUTH");
}

static void
smtp_proceed_bdat(struct smtp_session *s, const char *args)
{
	(void)args;
	/* CHUNKING is not offered in EHLO; BDAT is an unknown command. */
	smtp_reply(s, "502 5.5.1 BDAT not supported (CHUNKING not offered)");
	smtp_error(s);
}

static const struct smtp_cmd_def smtp_cmd_table[] = {
	{ SMTP_CMD_HELO, SMTP_CMD_PRE_HELO, smtp_check_helo,
	    smtp_proceed_helo },
	{ SMTP_CMD_EHLO, SMTP_CMD_PRE_HELO | SMTP_CMD_ENDS_GROUP,
	    smtp_check_helo, smtp_proceed_ehlo },
	{ SMTP_CMD_STARTTLS, SMTP_CMD_ENDS_GROUP, smtp_check_starttls,
	    smtp_proceed_starttls },
	{ SMTP_CMD_AUTH, SMTP_CMD_ENDS_GROUP, smtp_check_auth,
	    smtp_proceed_auth },
	{ SMTP_CMD_MAIL, 0, smtp_check_mail, smtp_proceed_mail },
	{ SMTP_CMD_RCPT, 0, smtp_check_rcpt, smtp_proceed_rcpt },
	{ SMTP_CMD_DATA, SMTP_CMD_ENDS_GROUP, smtp_check_data,
	    smtp_proceed_data },
	{ SMTP_CMD_RSET, SMTP_CMD_PRE_HELO, NULL, smtp_proceed_rset },
	{ SMTP_CMD_NOOP, SMTP_CMD_PRE_HELO | SMTP_CMD_ENDS_GROUP, NULL,
	    smtp_proceed_noop },
	{ SMTP_CMD_QUIT, SMTP_CMD_PRE_HELO | SMTP_CMD_ENDS_GROUP, NULL,
	    smtp_proceed_quit },
	{ SMTP_CMD_VRFY, SMTP_CMD_ENDS_GROUP, NULL, smtp_proceed_vrfy },
	{ SMTP_CMD_EXPN, SMTP_CMD_ENDS_GROUP, NULL, smtp_proceed_expn },
	{ SMTP_CMD_HELP, SMTP_CMD_PRE_HELO, NULL, smtp_proceed_help },
	{ SMTP_CMD_BDAT, 0, NULL, smtp_proceed_bdat },
};

static void
smtp_command(struct smtp_session *s, const char *line, size_t len)
{
	const struct smtp_cmd_def *def = NULL;
	enum smtp_cmd cmd;
	const char *args;
	int r;

	evtimer_del(s->cmd_timer);
	switch (smtp_parse_command(line, len, &cmd, &args)) {
	case SMTP_PARSE_OK:
		break;
	case SMTP_PARSE_NUL:
		smtp_reply(s, "500 5.5.2 Syntax error: NUL, CR or LF inside "
		    "the command line");
		smtp_error(s);
		return;
	default:
		smtp_reply(s, "500 5.5.2 Syntax error");
		smtp_error(s);
		return;
	}
	for (size_t i = 0; i < sizeof(smtp_cmd_table) /
	    sizeof(smtp_cmd_table[0]); i++)
		if (smtp_cmd_table[i].cmd == cmd)
			def = &smtp_cmd_table[i];
	if (def == NULL) {
		if (len >= 6 && strncasecmp(line, "PROXY ", 6) == 0)
			smtp_reply(s, "500 5.5.1 PROXY header not accepted "
			    "from your address");
		else
			smtp_reply(s, "500 5.5.1 Command unrecognized");
		smtp_error(s);
		return;
	}
	if (s->state == SMTP_STATE_HELO &&
	    (def->flags & SMTP_CMD_PRE_HELO) == 0) {
		smtp_reply(s, "503 5.5.1 Send HELO/EHLO first");
		smtp_error(s);
		return;
	}
	if (def->check != NULL && (r = def->check(s, args)) != 0) {
		/* 1: refused, but no client error (smtp_rcpt_overshoot) */
		if (r < 0 && s->state != SMTP_STATE_QUIT)
			smtp_error(s);
		return;
	}
	def->proceed(s, args);
}

/*
 * One command line from the input, CRLF required (RFC 5321 2.3.8).
 * Returns 1 and the line (without CRLF) in *line_r, 0 when more input is
 * needed, -1 when a bad line was consumed and answered.
 */
static int
smtp_get_line(struct smtp_session *s, struct str *line)
{
	size_t limit = s->conn.conf->smtp_line_length_limit;
	int r = conn_get_line(&s->conn, limit, line);

	if (r < 0) {
		smtp_reply(s, "500 5.5.2 Line too long (at most %zu octets)",
		    limit);
		smtp_error(s);
		return -1;
	}
	if (r == 0)
		return 0;
	if (line->len == 0 || line->s[line->len - 1] != '\r') {
		smtp_reply(s, "500 5.5.2 Syntax error: command lines must end "
		    "with CR LF");
		smtp_error(s);
		return -1;
	}
	str_truncate(line, line->len - 1);
	return 1;
}

/*
 * The daemon stops (server.h): a session idle between commands, outside
 * a transaction (or in one, once time is up), is told so and closed
 * (RFC 5321 3.8).
 */
static void
smtp_stop_idle(struct smtp_session *s)
{
	int level = server_loop_stopping(s->conn.loop);

	if (level == SERVER_STOP_NONE || s->req != NULL ||
	    s->conn.delayed != NULL ||
	    (s->state != SMTP_STATE_HELO && s->state != SMTP_STATE_READY &&
	    s->state != SMTP_STATE_MAIL && s->state != SMTP_STATE_RCPT) ||
	    (s->in_txn && level < SERVER_STOP_ALL))
		return;
	smtp_reply(s, "421 4.3.2 %s Service shutting down, closing "
	    "connection", s->conn.conf->hostname);
	smtp_enter_state(s, SMTP_STATE_QUIT);
	conn_close_after_reply(&s->conn);
}

static void
smtp_drain(struct conn *c)
{
	/* a complete line already read is answered first */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
		smtp_stop_idle((struct smtp_session *)c);
}

static void
smtp_process(struct smtp_session *s)
{
	struct str line = STR_INIT;

	while (s->req == NULL && s->conn.delayed == NULL) {
		if (s->state == SMTP_STATE_DATA) {
			if (smtp_data_read(s) == 0)
				break;
			smtp_data_done(s);
			continue;
		}
		if (s->state != SMTP_STATE_HELO &&
		    s->state != SMTP_STATE_READY &&
		    s->state != SMTP_STATE_AUTH &&
		    s->state != SMTP_STATE_MAIL &&
		    s->state != SMTP_STATE_RCPT)
			break;
		int r = smtp_get_line(s, &line);

		if (r == 0) {
			smtp_stop_idle(s);
			break;
		}
		if (r < 0)
			continue;
		if (s->state == SMTP_STATE_AUTH)
			smtp_auth_step(s, str_c(&line));
		else
			smtp_command(s, line.s, line.len);
		if (line.s != NULL)
			explicit_bzero(line.s, line.cap);	/* AUTH data */
	}
	str_deinit(&line);
	smtp_reply_stop(s);
	if (s->conn.eof && s->req == NULL && s->conn.delayed == NULL &&
	    s->state != SMTP_STATE_QUIT)
		smtp_free(s);
}

/* ---- events and lifetime ----------------------------------------- */

static void
smtp_read(struct conn *c)
{
	smtp_process((struct smtp_session *)c);
}

static int
smtp_waiting(struct conn *c)
{
	struct smtp_session *s = (struct smtp_session *)c;

	return s->req != NULL || s->conn.delayed != NULL;
}

static void
smtp_cut(struct conn *c)
{
	struct smtp_session *s = (struct smtp_session *)c;

	smtp_reply(s, "421 4.7.0 %s Too much input while waiting, closing "
	    "connection", s->conn.conf->hostname);
}

static void
smtp_timeout(struct conn *c)
{
	struct smtp_session *s = (struct smtp_session *)c;

	log_info("session=%s timeout client=%s state=%s", s->conn.id,
	    s->conn.addr, smtp_state_names[s->state]);
	if (s->state == SMTP_STATE_PROXY || s->state == SMTP_STATE_TLS) {
		smtp_free(s);
		return;
	}
	/* RFC 5321 4.5.3.2: say why before closing */
	smtp_reply(s, "421 4.4.2 %s Timeout, closing connection",
	    s->conn.conf->hostname);
	smtp_enter_state(s, SMTP_STATE_QUIT);
	conn_close_after_reply(&s->conn);
}

static void
smtp_eof(struct conn *c)
{
	struct smtp_session *s = (struct smtp_session *)c;

	if (s->state == SMTP_STATE_DATA)
		log_info("id=%s lost connection in DATA client=%s", s->env.id,
		    s->conn.addr);
	if (s->req != NULL || s->conn.delayed != NULL)
		return;	/* freed when the pending reply arrives */
	smtp_free(s);
}

static void
smtp_conn_free(struct conn *c)
{
	smtp_free((struct smtp_session *)c);
}

/*
 * Refusals before a session (conn.h). RFC 3463 X.3.2: system not
 * accepting network messages. Implicit TLS (465) cannot be spoken to
 * without a handshake while low on memory: closed. XXX: over
 * max_connections the 421 is written on 465 too, in plain text (as it
 * always was): a TLS client reads it as a failed handshake.
 */
static const char *
smtp_refuse_line(const struct listen_conf *lc, enum conn_refusal why)
{
	if (why == CONN_REFUSE_MAX)
		return "421 4.3.2 Too many connections, try again later\r\n";
	if (lc->role == LISTEN_SUBMISSIONS)
		return NULL;
	return "421 4.3.2 Service not available, low on memory, try again "
	    "later\r\n";
}

const struct conn_vfuncs smtp_conn_vfuncs = {
	.name = "smtp",
	.refuse_line = smtp_refuse_line,
	.has_id = 1,
	.ready = smtp_ready,
	.tls_starting = smtp_tls_starting,
	.tls_ready = smtp_tls_ready,
	.read = smtp_read,
	.waiting = smtp_waiting,
	.cut = smtp_cut,
	.delayed = smtp_delayed,
	.timeout = smtp_timeout,
	.eof = smtp_eof,
	.drain = smtp_drain,
	.free = smtp_conn_free,
};

static void
smtp_free(struct smtp_session *s)
{
	if (s->req != NULL)
		be_req_cancel(s->req);
	if (s->state == SMTP_STATE_DATA ||
	    (s->spool_fd != -1 && s->in_txn))
		smtp_abort_spool(s);
	conn_deinit(&s->conn);
	smtp_txn_reset(s);
	envelope_deinit(&s->env);
	if (s->out != NULL)
		evbuffer_free(s->out);
	if (s->data_timer != NULL)
		event_free(s->data_timer);
	if (s->cmd_timer != NULL)
		event_free(s->cmd_timer);
	str_deinit(&s->pol_rcpt_reply);
	free(s->trace_token);
	str_deinit(&s->data_from);
	free(s->data_msgid);
	free(s->mail_pending);
	str_deinit(&s->data_hdr);
	str_deinit(&s->held);
	if (s->held_ev != NULL)
		event_free(s->held_ev);
	free(s->helo);
	free(s->account);
	free(s->auth_user);
	free(s->rcpt_pending);
	free(s->mail_args);
	free(s);
}

void
smtp_session_new(struct server_loop *loop, const struct listen_conf *lc,
    int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct event_base *base = loop->base;
	struct smtp_session *s = xcalloc(1, sizeof(*s));

	if (conn_init(&s->conn, &smtp_conn_vfuncs, loop, lc, fd, sa,
	    salen) < 0) {
		free(s);
		return;
	}
	s->conn.implicit_tls = lc->role == LISTEN_SUBMISSIONS;
	s->conn.timeout = loop->conf->smtp_timeout;
	s->conn.line_max = loop->conf->smtp_line_length_limit;
	s->spool_fd = -1;
	envelope_init(&s->env);
	s->out = evbuffer_new();
	s->data_timer = evtimer_new(base, smtp_data_timeout, s);
	s->cmd_timer = evtimer_new(base, smtp_cmd_timeout, s);
	s->held_ev = event_new(base, -1, 0, smtp_reply_later, s);
	s->pol_rcpts_left = -1;
	s->pol_rcpts_msg = -1;
	if (s->out == NULL || s->data_timer == NULL || s->cmd_timer == NULL)
		fatalx("smtp: out of memory for a session");
	conn_start(&s->conn);
}
