/*
 * pop3_session: the POP3 server side of one connection (see
 * pop3_session.h and docs/pop3.md).
 *
 * Shape (STYLE.md, as smtp_session.c): commands are rows of
 * pop3_cmd_table with flags saying in which RFC 1939 state they are
 * allowed, a check that only inspects state and replies with the error,
 * and a proceed that acts; the state changes only in pop3_enter_state(),
 * which logs "old -> new". While a back-side request is pending, or a
 * message is being sent, no further command is read, so pipelined
 * commands (RFC 2449 PIPELINING) are answered in order.
 *
 * RFC 1939 states: AUTHORIZATION until a login opens the mailbox (the
 * back side takes the one-session lock), TRANSACTION, and UPDATE, which
 * is entered only by QUIT: a connection that drops deletes nothing.
 * Every -ERR that RFC 2449 / RFC 3206 have a code for carries it:
 * [AUTH], [IN-USE], [SYS/TEMP], [SYS/PERM].
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../core/be_client.h"
#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/conn.h"
#include "../core/log.h"
#include "../daemon/server.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../core/base64.h"
#include "../core/sasl.h"
#include "pop3_parse.h"
#include "pop3_session.h"

/* RFC 2449 4: 255 octets for a command; SASL answers (RFC 5034 4) can
 * be longer with long passwords, so one limit a little above both. */
#define POP3_LINE_MAX		1024
#define POP3_MAX_ERRORS		10
#define POP3_STREAM_HIGH	(256 * 1024)	/* refill RETR output below */
#define POP3_STREAM_LOW		(64 * 1024)
#define POP3_CHUNK		(16 * 1024)
#define POP3_UPDATE_BATCH	8192		/* be_proto.h: n <= 8192 */
#define POP3_MAX_MESSAGES	1000000

enum pop3_state {
	POP3_STATE_PROXY,		/* waiting for the PROXY header */
	POP3_STATE_TLS,			/* TLS handshake in progress */
	POP3_STATE_AUTHORIZATION,	/* RFC 1939 4 */
	POP3_STATE_SASL,		/* AUTH exchange: "+ " sent */
	POP3_STATE_TRANSACTION,		/* RFC 1939 5 */
	POP3_STATE_RETR,		/* sending a message (RETR, TOP) */
	POP3_STATE_UPDATE,		/* RFC 1939 6: deleting after QUIT */
	POP3_STATE_QUIT,		/* last reply written; close */
	POP3_STATE_COUNT
};

static const char *const pop3_state_names[POP3_STATE_COUNT] = {
	"proxy", "tls", "authorization", "sasl", "transaction", "retr",
	"update", "quit",
};

enum pop3_mech { MECH_USER, MECH_APOP, MECH_PLAIN, MECH_LOGIN };

static const char *const pop3_mech_names[] = {
	"USER", "APOP", "PLAIN", "LOGIN",
};

struct pop3_msg {
	char		*uid;
	uint64_t	 size;		/* with CRLF line ends */
	int		 deleted;
};

struct pop3_session;

/* The pending BE_POP3_OPEN: it outlives a session that goes first, so
 * the lock the reply stands for is released (pop3_open_reply). */
struct pop3_open_ctx {
	struct pop3_session	*s;
	struct be_client	*be;
	uint64_t		 be_session;
};

struct pop3_session {
	struct conn		 conn;		/* first: the connection */

	enum pop3_state		 state;
	struct be_req		*req;		/* pending back-side request */
	struct pop3_open_ctx	*open_ctx;	/* when req is the OPEN */
	int			 errors;

	enum pop3_mech		 mech;
	char			*user;		/* USER / LOGIN name */
	char			*account;	/* logged in */

	/* the open mailbox (the back side knows it by be_session) */
	int			 have_handle;
	int			 quit_ok;	/* QUIT's deletions all done */
	struct pop3_msg		*msgs;
	uint32_t		 nmsgs;

	/* RETR / TOP */
	int			 retr_fd;
	uint32_t		 retr_index;
	int64_t			 top_lines;	/* -1: the whole message */
	int64_t			 body_lines;
	int			 in_headers;
	size_t			 line_len;	/* octets of this line so far */
	int			 prev_cr;
	uint64_t		 retr_bytes;
	int			 retr_is_top;
	/* the next message's descriptor, asked for while this one streams */
	struct be_req		*pre_req;	/* in flight */
	uint32_t		 pre_index;
	int			 pre_fd;	/* arrived, -1 if none */
	int			 pre_want;	/* RETR waits for pre_req */

	uint32_t		 update_pos;	/* QUIT: next index to send */

	/* for the logout line */
	unsigned		 retrieved;
	unsigned		 deleted;
	uint64_t		 bytes;
	int			 quit;
};

#define POP3_F_AUTHORIZATION	0x01	/* allowed before login */
#define POP3_F_TRANSACTION	0x02	/* allowed after login */

struct pop3_cmd_def {
	enum pop3_cmd	 cmd;
	int		 flags;
	int		(*check)(struct pop3_session *,
			    const struct pop3_command *);
	void		(*proceed)(struct pop3_session *,
			    const struct pop3_command *);
};

static void pop3_process(struct pop3_session *);
static void pop3_free(struct pop3_session *);
static int pop3_stream(struct pop3_session *);
static void pop3_update_send(struct pop3_session *);

static void
pop3_enter_state(struct pop3_session *s, enum pop3_state new)
{
	if (s->state != new && log_debug_enabled())
		log_debug("session=%s state %s -> %s", s->conn.id,
		    pop3_state_names[s->state], pop3_state_names[new]);
	s->state = new;
	s->conn.quit = new == POP3_STATE_QUIT;
}

/* One reply line; -ERR is logged as a reject. */
static void
pop3_reply(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;

	va_start(ap, fmt);
	str_vprintf(&line, fmt, ap);
	va_end(ap);
	if (line.len > 0 && line.s[0] == '-')
		log_info("session=%s pop3 reject client=%s state=%s "
		    "reply=\"%s\"", s->conn.id, s->conn.addr,
		    pop3_state_names[s->state], str_c(&line));
	str_append(&line, "\r\n");
	bufferevent_write(s->conn.bev, line.s, line.len);
	str_deinit(&line);
}

/* Count a client error; too many ends the session. */
static int
pop3_error(struct pop3_session *s)
{
	if (++s->errors < POP3_MAX_ERRORS)
		return 0;
	pop3_reply(s, "-ERR Too many errors, closing connection");
	pop3_enter_state(s, POP3_STATE_QUIT);
	return -1;
}

/*
 * Start a request that acts for this session: its number first. Every
 * field after it comes from one command line (POP3_LINE_MAX) or is a
 * number, so no request outgrows a seam message (issue 13).
 */
static void
pop3_msg_init(struct pop3_session *s, struct msg *m, uint32_t type)
{
	conn_msg_init(&s->conn, m, type);
}

static void
pop3_request(struct pop3_session *s, struct msg *m, be_reply_cb *cb)
{
	s->req = conn_request(&s->conn, m, cb, s);
}

/* USER/PASS and AUTH: after TLS, or on loopback when configured. */
static int
pop3_login_allowed(const struct pop3_session *s)
{
	if (s->conn.tls)
		return 1;
	return s->conn.conf->pop3_auth_without_tls ==
	    AUTH_WITHOUT_TLS_LOOPBACK && server_addr_is_loopback((const struct sockaddr *)&s->conn.client);
}

static uint64_t
pop3_total(const struct pop3_session *s, uint32_t *count_r)
{
	uint64_t total = 0;
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->nmsgs; i++)
		if (!s->msgs[i].deleted) {
			total += s->msgs[i].size;
			n++;
		}
	*count_r = n;
	return total;
}

/* ---- greeting, PROXY, TLS ---------------------------------------- */

static void
pop3_greet_reply(struct msg *m, void *arg)
{
	struct pop3_session *s = arg;
	const char *ts = NULL;

	s->req = NULL;
	if (m != NULL && (msg_get_str(m, &ts) < 0 || msg_end(m) < 0 ||
	    (ts != NULL && strlen(ts) > APOP_TIMESTAMP_MAX)))
		ts = NULL;
	pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
	/* Without one (the back side failed it) APOP cannot succeed; the
	 * other logins can. */
	if (ts != NULL)
		pop3_reply(s, "+OK sekisho POP3 server ready %s", ts);
	else
		pop3_reply(s, "+OK sekisho POP3 server ready");
	conn_set_timeouts(&s->conn);
	pop3_process(s);
}

static void
pop3_greet(struct pop3_session *s)
{
	struct msg m;

	if (conn_ip_acquire(&s->conn) < 0) {
		pop3_reply(s, "-ERR [SYS/TEMP] Too many connections from your "
		    "address, try again later");
		pop3_enter_state(s, POP3_STATE_QUIT);
		return;
	}
	/* RFC 1939 7: a timestamp unique to this greeting, for APOP,
	 * issued and kept by the back side: a digest captured elsewhere
	 * cannot be replayed here, even by this process. */
	pop3_msg_init(s, &m, BE_APOP_TIMESTAMP);
	pop3_request(s, &m, pop3_greet_reply);
}

static void
pop3_tls_starting(struct conn *c)
{
	pop3_enter_state((struct pop3_session *)c, POP3_STATE_TLS);
}

static void
pop3_ready(struct conn *c)
{
	pop3_greet((struct pop3_session *)c);
}

/* STLS done: RFC 2595 4: no new greeting; forget what was said before. */
static void
pop3_tls_ready(struct conn *c)
{
	struct pop3_session *s = (struct pop3_session *)c;

	xfree(&s->user);
	pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
	pop3_process(s);
}

/* ---- login ------------------------------------------------------- */

static void
pop3_free_mailbox(struct pop3_session *s)
{
	for (uint32_t i = 0; i < s->nmsgs; i++)
		free(s->msgs[i].uid);
	xfree(&s->msgs);
	s->nmsgs = 0;
}

/* The listing: "UID SIZE\n" lines, count of them. */
static int
pop3_read_listing(struct pop3_session *s, int fd, uint32_t count)
{
	struct str text = STR_INIT;
	char buf[POP3_CHUNK];
	const char *p, *nl;
	off_t off = 0;
	ssize_t n;
	uint32_t i = 0;

	if (count > POP3_MAX_MESSAGES)
		return -1;
	/* A memfd: memory, it does not block the loop. */
	while ((n = pread(fd, buf, sizeof(buf), off)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			str_deinit(&text);
			return -1;
		}
		str_append_n(&text, buf, (size_t)n);
		off += n;
	}
	s->msgs = xcalloc((size_t)count + 1, sizeof(*s->msgs));
	for (p = str_c(&text); i < count && (nl = strchr(p, '\n')) != NULL;
	    p = nl + 1) {
		const char *sp = memchr(p, ' ', (size_t)(nl - p));
		char *end;

		if (sp == NULL || sp == p)
			break;
		s->msgs[i].uid = xstrndup(p, (size_t)(sp - p));
		s->msgs[i].size = strtoull(sp + 1, &end, 10);
		i++;
		if (end != nl)
			break;
	}
	s->nmsgs = i;
	int bad = i != count || *p != '\0';

	str_deinit(&text);
	if (bad) {
		pop3_free_mailbox(s);
		return -1;
	}
	return 0;
}

static void
pop3_close_handle(struct be_client *be, uint64_t be_session)
{
	struct msg m;

	msg_init(&m, BE_POP3_CLOSE, 0);
	msg_add_u64(&m, be_session);
	(void)be_client_request(be, &m, NULL, NULL);
}

static void
pop3_open_reply(struct msg *m, void *arg)
{
	struct pop3_open_ctx *ctx = arg;
	struct pop3_session *s = ctx->s;
	uint32_t result = BE_POP3_TEMPFAIL, count = 0, total_n;
	uint64_t total;
	int fd = -1;

	if (m != NULL && (msg_get_u32(m, &result) < 0 ||
	    msg_get_u32(m, &count) < 0 || msg_end(m) < 0))
		result = BE_POP3_TEMPFAIL;
	if (result == BE_POP3_OK && m != NULL)
		fd = msg_take_fd(m);
	if (s == NULL) {
		/* The session went first: give the lock back. */
		if (result == BE_POP3_OK)
			pop3_close_handle(ctx->be, ctx->be_session);
		if (fd >= 0)
			close(fd);
		free(ctx);
		return;
	}
	free(ctx);
	s->open_ctx = NULL;
	s->req = NULL;
	if (result == BE_POP3_OK)
		s->have_handle = 1;
	if (result == BE_POP3_OK && (fd < 0 ||
	    pop3_read_listing(s, fd, count) < 0)) {
		log_warnx("session=%s pop3 mailbox %s: bad listing", s->conn.id,
		    s->account);
		result = BE_POP3_TEMPFAIL;
	}
	if (fd >= 0)
		close(fd);
	switch (result) {
	case BE_POP3_OK:
		total = pop3_total(s, &total_n);
		log_info("session=%s pop3 mailbox client=%s user=%s "
		    "messages=%u size=%llu", s->conn.id, s->conn.addr,
		    s->account,
		    total_n, (unsigned long long)total);
		pop3_enter_state(s, POP3_STATE_TRANSACTION);
		pop3_reply(s, "+OK Logged in, %u message%s (%llu octets)",
		    total_n, total_n == 1 ? "" : "s",
		    (unsigned long long)total);
		break;
	case BE_POP3_IN_USE:
		log_info("session=%s pop3 mailbox client=%s user=%s in use",
		    s->conn.id, s->conn.addr, s->account);
		xfree(&s->account);
		pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
		pop3_reply(s, "-ERR [IN-USE] Mailbox is in use by another POP3 "
		    "session; try again when it has ended");
		break;
	default:
		if (s->have_handle) {
			pop3_close_handle(s->conn.loop->be, s->conn.be_session);
			s->have_handle = 0;
		}
		xfree(&s->account);
		pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox now, "
		    "try again later");
		break;
	}
	pop3_process(s);
}

static void
pop3_open_mailbox(struct pop3_session *s)
{
	struct pop3_open_ctx *ctx = xcalloc(1, sizeof(*ctx));
	struct msg m;

	ctx->s = s;
	ctx->be = s->conn.loop->be;
	ctx->be_session = s->conn.be_session;
	s->open_ctx = ctx;
	/* The back side opens the mailbox of the account it authenticated
	 * for this session; the request names none. */
	pop3_msg_init(s, &m, BE_POP3_OPEN);
	msg_add_str(&m, s->conn.addr);
	s->req = be_client_request(s->conn.loop->be, &m, pop3_open_reply, ctx);
}

static void
pop3_delayed(struct conn *c, const char *text)
{
	struct pop3_session *s = (struct pop3_session *)c;

	pop3_reply(s, "%s", text);
	if (s->state != POP3_STATE_QUIT && pop3_error(s) < 0)
		return;
	pop3_process(s);
}

/* A failed login's answer, after the back side's delay (throttling). */
static void
pop3_login_refused(struct pop3_session *s, uint32_t delay_ms,
    const char *text)
{
	if (delay_ms == 0) {
		pop3_reply(s, "%s", text);
		pop3_error(s);
		return;
	}
	conn_delay(&s->conn, delay_ms, text);
}

/* BE_AUTH and BE_APOP replies: u32 result, str account, str reason, and
 * from BE_AUTH with throttling u32 delay (ms), i64 lock end. */
static void
pop3_auth_reply(struct msg *m, void *arg)
{
	struct pop3_session *s = arg;
	const char *account = NULL, *reason = NULL;
	uint32_t result = BE_AUTH_TEMPFAIL, delay = 0;
	int64_t until = 0;
	char user[128];

	s->req = NULL;
	if (m != NULL && (msg_get_u32(m, &result) < 0 ||
	    msg_get_str(m, &account) < 0 || msg_get_str(m, &reason) < 0 ||
	    (m->rpos < m->buf.len && (msg_get_u32(m, &delay) < 0 ||
	    msg_get_i64(m, &until) < 0)) || msg_end(m) < 0))
		result = BE_AUTH_TEMPFAIL;
	if (delay > 60000)
		delay = 60000;
	log_printable(user, sizeof(user), s->user != NULL ? s->user : "",
	    s->user != NULL ? strlen(s->user) : 0);
	pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
	switch (result) {
	case BE_AUTH_OK:
		if (account == NULL)
			goto tempfail;
		log_info("session=%s pop3 login client=%s user=%s "
		    "mechanism=%s result=ok", s->conn.id, s->conn.addr, user,
		    pop3_mech_names[s->mech]);
		xfree(&s->user);
		s->account = xstrdup(account);
		pop3_open_mailbox(s);
		return;
	case BE_AUTH_SUSPENDED:
		log_info("session=%s pop3 login client=%s user=%s "
		    "mechanism=%s result=suspended", s->conn.id, s->conn.addr,
		    user,
		    pop3_mech_names[s->mech]);
		/* RFC 3206 4: not the credentials; retrying will not help. */
		pop3_login_refused(s, delay, "-ERR [SYS/PERM] This account is "
		    "suspended; please contact your provider's support");
		break;
	case BE_AUTH_ABROAD: {
		/* overseas_restrict names pop3 (issue 17): the back side's
		 * text names the country and the settings page. */
		const char *t = reason != NULL ? reason : "Login from abroad "
		    "is turned off for this account";
		char text[400], line[420];

		log_info("session=%s pop3 login client=%s user=%s "
		    "mechanism=%s result=abroad", s->conn.id, s->conn.addr,
		    user, pop3_mech_names[s->mech]);
		log_printable(text, sizeof(text), t, strlen(t));
		snprintf(line, sizeof(line), "-ERR [AUTH] %s", text);
		pop3_login_refused(s, delay, line);
		break;
	}
	case BE_AUTH_FAIL:
		log_info("session=%s pop3 login client=%s user=%s "
		    "mechanism=%s result=fail", s->conn.id, s->conn.addr, user,
		    pop3_mech_names[s->mech]);
		pop3_login_refused(s, delay, s->mech == MECH_APOP ?
		    "-ERR [AUTH] Authentication failed (APOP must be turned on "
		    "for the account, with its own APOP password)" :
		    "-ERR [AUTH] Authentication failed");
		break;
	default:
		if (until > 0) {
			/* BE_AUTH_LOCKED: throttled, a lock end is given. */
			log_info("session=%s pop3 login client=%s user=%s "
			    "mechanism=%s result=locked", s->conn.id,
			    s->conn.addr, user,
			    pop3_mech_names[s->mech]);
			pop3_login_refused(s, delay, "-ERR [AUTH] Too many "
			    "failed logins; try again later");
			break;
		}
	tempfail:
		log_info("session=%s pop3 login client=%s user=%s "
		    "mechanism=%s result=tempfail", s->conn.id, s->conn.addr,
		    user,
		    pop3_mech_names[s->mech]);
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary authentication "
		    "failure, try again later");
		break;
	}
	xfree(&s->user);
	pop3_process(s);
}

/* A name with a control character is no login name (issue 13): a
 * normal failure, the name escaped in the log. 1 when refused. */
static int
pop3_login_name_refused(struct pop3_session *s, const char *user)
{
	char name[128];

	if (str_login_name_ok(user))
		return 0;
	log_info("session=%s pop3 login client=%s user=%s mechanism=%s "
	    "result=fail reason=name", s->conn.id, s->conn.addr,
	    log_escape(name,
	    sizeof(name), user), pop3_mech_names[s->mech]);
	if (user == s->user)
		xfree(&s->user);
	pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
	pop3_login_refused(s, 0, "-ERR [AUTH] Authentication failed");
	return 1;
}

/*
 * Authentication goes to the back side, which (policy issue) applies
 * the per-IP and per-account throttling of SMTP AUTH to service "pop3"
 * and answers a failure with the delay to wait: pop3_login_refused.
 */
static void
pop3_auth_verify(struct pop3_session *s, const char *user, const char *pass)
{
	struct msg m;

	if (pop3_login_name_refused(s, user))
		return;
	if (user != s->user) {
		free(s->user);
		s->user = xstrdup(user);
	}
	pop3_msg_init(s, &m, BE_AUTH);
	msg_add_str(&m, "pop3");
	msg_add_str(&m, pop3_mech_names[s->mech]);
	msg_add_str(&m, user);
	msg_add_str(&m, pass);
	msg_add_str(&m, s->conn.addr);
	pop3_request(s, &m, pop3_auth_reply);
}

/* ---- AUTHORIZATION commands -------------------------------------- */

static int
pop3_check_login(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	if (!pop3_login_allowed(s)) {
		pop3_reply(s, "-ERR [AUTH] Plaintext authentication is not "
		    "allowed without TLS: use STLS first, or port 995");
		return -1;
	}
	return 0;
}

static void
pop3_proceed_user(struct pop3_session *s, const struct pop3_command *c)
{
	free(s->user);
	s->user = xstrndup(c->arg, c->arg1_len);
	/* Whether the user exists is said only after PASS. */
	pop3_reply(s, "+OK Send PASS");
}

static int
pop3_check_pass(struct pop3_session *s, const struct pop3_command *c)
{
	if (pop3_check_login(s, c) < 0)
		return -1;
	if (s->user == NULL) {
		pop3_reply(s, "-ERR Send USER first");
		return -1;
	}
	return 0;
}

static void
pop3_proceed_pass(struct pop3_session *s, const struct pop3_command *c)
{
	s->mech = MECH_USER;
	pop3_auth_verify(s, s->user, c->arg);
}

static void
pop3_proceed_apop(struct pop3_session *s, const struct pop3_command *c)
{
	struct msg m;

	/* APOP needs no TLS: it sends no password, only an MD5 digest
	 * (which TLS still protects far better; docs/pop3.md). */
	s->mech = MECH_APOP;
	free(s->user);
	s->user = xstrndup(c->arg, c->arg1_len);
	if (pop3_login_name_refused(s, s->user))
		return;
	/* the back side checks against the timestamp it issued */
	pop3_msg_init(s, &m, BE_APOP);
	msg_add_str(&m, s->user);
	msg_add_str(&m, c->arg2);
	msg_add_str(&m, s->conn.addr);
	pop3_request(s, &m, pop3_auth_reply);
}

/* One client answer in the AUTH exchange (RFC 5034 4). */
static void
pop3_sasl_step(struct pop3_session *s, const char *answer)
{
	struct str dec = STR_INIT;
	const char *authz, *authc, *pass;

	if (strcmp(answer, "*") == 0) {
		pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
		xfree(&s->user);
		pop3_reply(s, "-ERR Authentication cancelled");
		return;
	}
	if (base64_decode(answer, strlen(answer), &dec) < 0) {
		pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
		xfree(&s->user);
		pop3_reply(s, "-ERR Cannot decode response (base64)");
		pop3_error(s);
		goto done;
	}
	if (s->mech == MECH_PLAIN) {
		if (sasl_plain_split(&dec, &authz, &authc, &pass) < 0 ||
		    (*authz != '\0' && strcasecmp(authz, authc) != 0)) {
			pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
			pop3_reply(s, "-ERR Malformed PLAIN response");
			pop3_error(s);
			goto done;
		}
		pop3_auth_verify(s, authc, pass);
		goto done;
	}
	/* LOGIN: user, then password, each after a "+ " prompt. */
	if (dec.len == 0 || memchr(str_c(&dec), '\0', dec.len) != NULL) {
		pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
		xfree(&s->user);
		pop3_reply(s, "-ERR Malformed LOGIN response");
		pop3_error(s);
		goto done;
	}
	if (s->user == NULL) {
		s->user = xstrdup(str_c(&dec));
		pop3_reply(s, "+ UGFzc3dvcmQ6");
		goto done;
	}
	pop3_auth_verify(s, s->user, str_c(&dec));
done:
	if (dec.s != NULL)
		explicit_bzero(dec.s, dec.cap);
	str_deinit(&dec);
}

static int
pop3_check_auth(struct pop3_session *s, const struct pop3_command *c)
{
	if (pop3_check_login(s, c) < 0)
		return -1;
	if (c->arg1_len > 0 && !(c->arg1_len == 5 &&
	    strncasecmp(c->arg, "PLAIN", 5) == 0) && !(c->arg1_len == 5 &&
	    strncasecmp(c->arg, "LOGIN", 5) == 0)) {
		pop3_reply(s, "-ERR Unrecognized authentication type; use "
		    "PLAIN or LOGIN");
		return -1;
	}
	return 0;
}

static void
pop3_proceed_auth(struct pop3_session *s, const struct pop3_command *c)
{
	const char *initial = c->arg2;

	if (c->arg1_len == 0) {
		/* RFC 1734's bare AUTH, still sent by some clients: list
		 * the mechanisms. */
		bufferevent_write(s->conn.bev, "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n",
		    22);
		return;
	}
	s->mech = strncasecmp(c->arg, "PLAIN", 5) == 0 ? MECH_PLAIN :
	    MECH_LOGIN;
	xfree(&s->user);
	pop3_enter_state(s, POP3_STATE_SASL);
	/* RFC 5034 4: "=" is an empty initial response. */
	if (initial != NULL && strcmp(initial, "=") == 0)
		initial = s->mech == MECH_PLAIN ? "" : NULL;
	if (initial == NULL || *initial == '\0') {
		pop3_reply(s, s->mech == MECH_PLAIN ? "+ " : "+ VXNlcm5hbWU6");
		return;
	}
	pop3_sasl_step(s, initial);
}

static int
pop3_check_stls(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	if (s->conn.tls) {
		pop3_reply(s, "-ERR TLS already active");
		return -1;
	}
	if (s->conn.lc->role != LISTEN_POP3) {
		pop3_reply(s, "-ERR STLS not available here");
		return -1;
	}
	return 0;
}

static void
pop3_proceed_stls(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	pop3_reply(s, "+OK Begin TLS negotiation");
	/* RFC 2595 4: what follows STLS in plain text is discarded */
	conn_starttls(&s->conn, "stls", "STLS");
	pop3_enter_state(s, POP3_STATE_TLS);
}

static void
pop3_proceed_capa(struct pop3_session *s, const struct pop3_command *c)
{
	struct str r = STR_INIT;

	(void)c;
	/* RFC 2449 5; login capabilities only while they can be used. */
	str_append(&r, "+OK Capability list follows\r\nCAPA\r\nTOP\r\nUIDL\r\n"
	    "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
	if (s->state == POP3_STATE_AUTHORIZATION) {
		if (pop3_login_allowed(s))
			str_append(&r, "USER\r\nSASL PLAIN LOGIN\r\n");
		if (!s->conn.tls && s->conn.lc->role == LISTEN_POP3)
			str_append(&r, "STLS\r\n");
	}
	str_append(&r, "IMPLEMENTATION sekisho\r\n.\r\n");
	bufferevent_write(s->conn.bev, r.s, r.len);
	str_deinit(&r);
}

static void
pop3_logout_log(struct pop3_session *s)
{
	if (s->account == NULL)
		return;
	log_info("session=%s pop3 logout client=%s user=%s retrieved=%u "
	    "deleted=%u bytes=%llu quit=%s", s->conn.id, s->conn.addr,
	    s->account,
	    s->retrieved, s->deleted, (unsigned long long)s->bytes,
	    s->quit ? "yes" : "no");
	xfree(&s->account);
}

/*
 * QUIT's answer waits until the back side has given the mailbox back
 * (the store's lease): a client that logs in again at once, here or at
 * another node, must not find it "[IN-USE]" by its own last session.
 */
static void
pop3_quit_closed(struct msg *m, void *arg)
{
	struct pop3_session *s = arg;

	(void)m;
	s->req = NULL;
	s->quit = 1;
	if (s->quit_ok)
		pop3_reply(s, "+OK sekisho POP3 server signing off (%u "
		    "message%s deleted)", s->deleted, s->deleted == 1 ? "" :
		    "s");
	else
		pop3_reply(s, "-ERR [SYS/TEMP] Some deleted messages were not "
		    "removed; they will be there next time");
	pop3_logout_log(s);
	pop3_enter_state(s, POP3_STATE_QUIT);
	if (s->conn.eof)
		pop3_free(s);
}

static void
pop3_quit_close(struct pop3_session *s, int ok)
{
	struct msg m;

	s->quit_ok = ok;
	s->have_handle = 0;
	pop3_msg_init(s, &m, BE_POP3_CLOSE);
	pop3_request(s, &m, pop3_quit_closed);
}

static void
pop3_update_reply(struct msg *m, void *arg)
{
	struct pop3_session *s = arg;
	uint32_t result = BE_POP3_TEMPFAIL, deleted = 0;

	s->req = NULL;
	if (m != NULL && (msg_get_u32(m, &result) < 0 ||
	    msg_get_u32(m, &deleted) < 0 || msg_end(m) < 0))
		result = BE_POP3_TEMPFAIL;
	s->deleted += deleted;
	if (result == BE_POP3_OK && s->update_pos < s->nmsgs) {
		pop3_update_send(s);	/* more batches to send */
		return;
	}
	if (s->conn.eof) {
		pop3_free(s);		/* which gives the mailbox back */
		return;
	}
	pop3_quit_close(s, result == BE_POP3_OK);
}

/* RFC 1939 6: QUIT's deletions, sent in batches; the last commits. */
static void
pop3_update_send(struct pop3_session *s)
{
	struct msg m;
	uint32_t idx[POP3_UPDATE_BATCH], n = 0;

	while (s->update_pos < s->nmsgs && n < POP3_UPDATE_BATCH) {
		if (s->msgs[s->update_pos].deleted)
			idx[n++] = s->update_pos;
		s->update_pos++;
	}
	pop3_msg_init(s, &m, BE_POP3_UPDATE);
	msg_add_u32(&m, s->update_pos >= s->nmsgs ? 1 : 0);
	msg_add_u32(&m, n);
	for (uint32_t i = 0; i < n; i++)
		msg_add_u32(&m, idx[i]);
	pop3_request(s, &m, pop3_update_reply);
}

static void
pop3_proceed_quit(struct pop3_session *s, const struct pop3_command *c)
{
	uint32_t n;

	(void)c;
	if (s->state != POP3_STATE_TRANSACTION) {
		pop3_reply(s, "+OK sekisho POP3 server signing off");
		pop3_enter_state(s, POP3_STATE_QUIT);
		return;
	}
	pop3_enter_state(s, POP3_STATE_UPDATE);
	(void)pop3_total(s, &n);
	if (n == s->nmsgs) {
		/* nothing deleted */
		pop3_quit_close(s, 1);
		return;
	}
	s->update_pos = 0;
	pop3_update_send(s);
}

/* ---- TRANSACTION commands ---------------------------------------- */

/* A message number of an existing, not deleted message. */
static int
pop3_check_msg(struct pop3_session *s, const struct pop3_command *c)
{
	if (c->nnum == 0)
		return 0;
	if (c->num[0] == 0 || c->num[0] > s->nmsgs) {
		pop3_reply(s, "-ERR No such message");
		return -1;
	}
	if (s->msgs[c->num[0] - 1].deleted) {
		pop3_reply(s, "-ERR Message %u already deleted", c->num[0]);
		return -1;
	}
	return 0;
}

static void
pop3_proceed_stat(struct pop3_session *s, const struct pop3_command *c)
{
	uint32_t n;
	uint64_t total = pop3_total(s, &n);

	(void)c;
	pop3_reply(s, "+OK %u %llu", n, (unsigned long long)total);
}

/* LIST and UIDL (RFC 1939 5, 7): one message, or all not deleted. */
static void
pop3_list(struct pop3_session *s, const struct pop3_command *c, int uidl)
{
	struct str r = STR_INIT;
	uint32_t n;
	uint64_t total;

	if (c->nnum == 1) {
		const struct pop3_msg *msg = &s->msgs[c->num[0] - 1];

		if (uidl)
			pop3_reply(s, "+OK %u %s", c->num[0], msg->uid);
		else
			pop3_reply(s, "+OK %u %llu", c->num[0],
			    (unsigned long long)msg->size);
		return;
	}
	total = pop3_total(s, &n);
	if (uidl)
		str_append(&r, "+OK Unique-ID listing follows\r\n");
	else
		str_printf(&r, "+OK %u message%s (%llu octets)\r\n", n,
		    n == 1 ? "" : "s", (unsigned long long)total);
	for (uint32_t i = 0; i < s->nmsgs; i++) {
		if (s->msgs[i].deleted)
			continue;
		if (uidl)
			str_printf(&r, "%u %s\r\n", i + 1, s->msgs[i].uid);
		else
			str_printf(&r, "%u %llu\r\n", i + 1,
			    (unsigned long long)s->msgs[i].size);
	}
	str_append(&r, ".\r\n");
	bufferevent_write(s->conn.bev, r.s, r.len);
	str_deinit(&r);
}

static void
pop3_proceed_list(struct pop3_session *s, const struct pop3_command *c)
{
	pop3_list(s, c, 0);
}

static void
pop3_proceed_uidl(struct pop3_session *s, const struct pop3_command *c)
{
	pop3_list(s, c, 1);
}

static void
pop3_proceed_dele(struct pop3_session *s, const struct pop3_command *c)
{
	/* Only marked: removed at QUIT (RFC 1939 6), never before. */
	s->msgs[c->num[0] - 1].deleted = 1;
	pop3_reply(s, "+OK Message %u deleted", c->num[0]);
}

static void
pop3_proceed_rset(struct pop3_session *s, const struct pop3_command *c)
{
	uint32_t n;
	uint64_t total;

	(void)c;
	for (uint32_t i = 0; i < s->nmsgs; i++)
		s->msgs[i].deleted = 0;
	total = pop3_total(s, &n);
	pop3_reply(s, "+OK Maildrop has %u message%s (%llu octets)", n,
	    n == 1 ? "" : "s", (unsigned long long)total);
}

static void
pop3_proceed_noop(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	pop3_reply(s, "+OK");
}

static void pop3_prefetch(struct pop3_session *, uint32_t);

/* A BE_POP3_RETR reply: its result and descriptor (-1 if none). */
static uint32_t
pop3_retr_result(struct msg *m, int *fd_r)
{
	uint32_t result = BE_POP3_TEMPFAIL;

	*fd_r = -1;
	if (m != NULL && (msg_get_u32(m, &result) < 0 || msg_end(m) < 0))
		result = BE_POP3_TEMPFAIL;
	if (result == BE_POP3_OK && m != NULL)
		*fd_r = msg_take_fd(m);
	if (result == BE_POP3_OK && *fd_r < 0)
		result = BE_POP3_TEMPFAIL;
	return result;
}

/* The "+OK" and the start of streaming, once the descriptor is here. */
static void
pop3_retr_begin(struct pop3_session *s, int fd)
{
	s->retr_fd = fd;
	s->in_headers = 1;
	s->body_lines = 0;
	s->line_len = 0;
	s->prev_cr = 0;
	s->retr_bytes = 0;
	if (s->retr_is_top)
		pop3_reply(s, "+OK Top of message follows");
	else
		pop3_reply(s, "+OK %llu octets",
		    (unsigned long long)s->msgs[s->retr_index].size);
	pop3_enter_state(s, POP3_STATE_RETR);
	bufferevent_setwatermark(s->conn.bev, EV_WRITE, POP3_STREAM_LOW, 0);
	/* clients fetch in order: have the next one ready (W2 in
	 * docs/performance.md: a back-side round trip per message) */
	if (!s->retr_is_top)
		pop3_prefetch(s, s->retr_index + 1);
}

static void
pop3_retr_done(struct pop3_session *s, uint32_t result, int fd)
{
	if (s->conn.eof) {
		if (fd >= 0)
			close(fd);
		pop3_free(s);
		return;
	}
	if (result == BE_POP3_GONE) {
		pop3_reply(s, "-ERR Message %u was removed by another "
		    "program", s->retr_index + 1);
		pop3_process(s);
		return;
	}
	if (result != BE_POP3_OK) {
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot read message %u now, "
		    "try again later", s->retr_index + 1);
		pop3_process(s);
		return;
	}
	pop3_retr_begin(s, fd);
	if (pop3_stream(s) == 1)
		pop3_process(s);
}

static void
pop3_retr_reply(struct msg *m, void *arg)
{
	struct pop3_session *s = arg;
	uint32_t result;
	int fd;

	s->req = NULL;
	result = pop3_retr_result(m, &fd);
	pop3_retr_done(s, result, fd);
}

/*
 * The prefetched descriptor. If a RETR already waits for it (pre_want,
 * and s->req is this request, so the session counts as busy) it goes on
 * as after its own request; else it is kept for the RETR to come. A
 * failed prefetch is forgotten: that RETR then asks again, and gets the
 * error (or the file) from its own request.
 */
static void
pop3_prefetch_reply(struct msg *m, void *arg)
{
	struct pop3_session *s = arg;
	uint32_t result;
	int fd;

	s->pre_req = NULL;
	if (s->pre_want) {
		s->pre_want = 0;
		pop3_retr_reply(m, s);	/* s->req was this request */
		return;
	}
	result = pop3_retr_result(m, &fd);
	if (result == BE_POP3_OK && !s->conn.eof)
		s->pre_fd = fd;
	else if (fd >= 0)
		close(fd);
}

static void
pop3_prefetch_drop(struct pop3_session *s)
{
	if (s->pre_fd >= 0)
		close(s->pre_fd);
	s->pre_fd = -1;
}

static void
pop3_prefetch(struct pop3_session *s, uint32_t index)
{
	struct msg m;

	if (s->pre_req != NULL || index >= s->nmsgs ||
	    s->msgs[index].deleted || s->conn.eof)
		return;
	pop3_prefetch_drop(s);
	s->pre_index = index;
	pop3_msg_init(s, &m, BE_POP3_RETR);
	msg_add_u32(&m, index);
	s->pre_req = be_client_request(s->conn.loop->be, &m,
	    pop3_prefetch_reply,
	    s);
}

static void
pop3_retr_request(struct pop3_session *s, uint32_t num, int64_t top)
{
	struct msg m;

	s->retr_index = num - 1;
	s->retr_is_top = top >= 0;
	s->top_lines = top;
	pop3_msg_init(s, &m, BE_POP3_RETR);
	msg_add_u32(&m, s->retr_index);
	pop3_request(s, &m, pop3_retr_reply);
}

static void
pop3_proceed_retr(struct pop3_session *s, const struct pop3_command *c)
{
	uint32_t index = c->num[0] - 1;
	int fd;

	if (s->pre_fd >= 0 && s->pre_index == index) {
		/* no round trip; the write callback streams it */
		fd = s->pre_fd;
		s->pre_fd = -1;
		s->retr_index = index;
		s->retr_is_top = 0;
		s->top_lines = -1;
		pop3_retr_begin(s, fd);
		return;
	}
	if (s->pre_req != NULL && s->pre_index == index) {
		s->retr_index = index;
		s->retr_is_top = 0;
		s->top_lines = -1;
		s->pre_want = 1;
		s->req = s->pre_req;	/* busy until it comes */
		return;
	}
	pop3_prefetch_drop(s);
	pop3_retr_request(s, c->num[0], -1);
}

static void
pop3_proceed_top(struct pop3_session *s, const struct pop3_command *c)
{
	pop3_retr_request(s, c->num[0], (int64_t)c->num[1]);
}

/* The end of RETR or TOP: the terminating line (RFC 1939 3). */
static void
pop3_stream_end(struct pop3_session *s, struct str *out)
{
	if (s->line_len > 0)
		str_append(out, "\r\n");
	str_append(out, ".\r\n");
	close(s->retr_fd);
	s->retr_fd = -1;
	if (!s->retr_is_top)
		s->retrieved++;
	s->bytes += s->retr_bytes;
	bufferevent_setwatermark(s->conn.bev, EV_WRITE, 0, 0);
	pop3_enter_state(s, POP3_STATE_TRANSACTION);
}

/*
 * Send more of the message: LF becomes CRLF (Maildir files have LF line
 * ends; a CRLF already there is kept), a line starting with "." gets
 * another (RFC 1939 3, byte-stuffing), TOP stops after its body lines.
 * Fills the output up to POP3_STREAM_HIGH; the write callback asks for
 * more, so a large message is never held whole.
 * XXX: read(2) of a regular file on the session loop: a page-cache miss
 * blocks the loop for a disk read. Accepted for now (chunks are small);
 * the fix is reading on the back side into a pipe.
 * Returns 1 when the message is done, 0 when more is to come, -1 when
 * the session was freed.
 */
static int
pop3_stream(struct pop3_session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->conn.bev);
	struct str buf = STR_INIT;
	char in[POP3_CHUNK];
	int done = 0;

	while (!done && evbuffer_get_length(out) < POP3_STREAM_HIGH) {
		ssize_t n = read(s->retr_fd, in, sizeof(in));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_warn("session=%s pop3 read message %u", s->conn.id,
			    s->retr_index + 1);
			str_deinit(&buf);
			pop3_free(s);
			return -1;
		}
		str_clear(&buf);
		if (n == 0) {
			pop3_stream_end(s, &buf);
			done = 1;
		}
		for (size_t i = 0; i < (size_t)n && !done; i++) {
			const char *nl;
			size_t run;

			if (s->line_len == 0 && in[i] == '.')
				str_append_c(&buf, '.');
			/* the rest of the line as one run, not byte by byte */
			nl = memchr(in + i, '\n', (size_t)n - i);
			run = nl != NULL ? (size_t)(nl - (in + i)) : (size_t)n - i;
			if (run > 0) {
				str_append_n(&buf, in + i, run);
				s->line_len += run;
				s->prev_cr = in[i + run - 1] == '\r';
				i += run;
			}
			if (nl == NULL)
				break;
			if (!s->prev_cr)
				str_append_c(&buf, '\r');
			str_append_c(&buf, '\n');
			/* An empty line (or a lone CR) ends the header. */
			if (s->in_headers && s->line_len <= (size_t)s->prev_cr)
				s->in_headers = 0;
			else if (!s->in_headers)
				s->body_lines++;
			s->line_len = 0;
			s->prev_cr = 0;
			if (s->top_lines >= 0 && !s->in_headers &&
			    s->body_lines >= s->top_lines) {
				pop3_stream_end(s, &buf);
				done = 1;
			}
		}
		s->retr_bytes += buf.len;
		evbuffer_add(out, buf.s, buf.len);
	}
	str_deinit(&buf);
	return done;
}

static const struct pop3_cmd_def pop3_cmd_table[] = {
	{ POP3_CMD_USER, POP3_F_AUTHORIZATION, pop3_check_login,
	    pop3_proceed_user },
	{ POP3_CMD_PASS, POP3_F_AUTHORIZATION, pop3_check_pass,
	    pop3_proceed_pass },
	{ POP3_CMD_APOP, POP3_F_AUTHORIZATION, NULL, pop3_proceed_apop },
	{ POP3_CMD_AUTH, POP3_F_AUTHORIZATION, pop3_check_auth,
	    pop3_proceed_auth },
	{ POP3_CMD_STLS, POP3_F_AUTHORIZATION, pop3_check_stls,
	    pop3_proceed_stls },
	{ POP3_CMD_CAPA, POP3_F_AUTHORIZATION | POP3_F_TRANSACTION, NULL,
	    pop3_proceed_capa },
	{ POP3_CMD_QUIT, POP3_F_AUTHORIZATION | POP3_F_TRANSACTION, NULL,
	    pop3_proceed_quit },
	{ POP3_CMD_STAT, POP3_F_TRANSACTION, NULL, pop3_proceed_stat },
	{ POP3_CMD_LIST, POP3_F_TRANSACTION, pop3_check_msg,
	    pop3_proceed_list },
	{ POP3_CMD_RETR, POP3_F_TRANSACTION, pop3_check_msg,
	    pop3_proceed_retr },
	{ POP3_CMD_DELE, POP3_F_TRANSACTION, pop3_check_msg,
	    pop3_proceed_dele },
	{ POP3_CMD_NOOP, POP3_F_TRANSACTION, NULL, pop3_proceed_noop },
	{ POP3_CMD_RSET, POP3_F_TRANSACTION, NULL, pop3_proceed_rset },
	{ POP3_CMD_TOP, POP3_F_TRANSACTION, pop3_check_msg, pop3_proceed_top },
	{ POP3_CMD_UIDL, POP3_F_TRANSACTION, pop3_check_msg,
	    pop3_proceed_uidl },
};

static void
pop3_command(struct pop3_session *s, const char *line, size_t len)
{
	const struct pop3_cmd_def *def = NULL;
	struct pop3_command c;

	switch (pop3_parse_command(line, len, &c)) {
	case POP3_PARSE_OK:
		break;
	case POP3_PARSE_BAD_CHAR:
		pop3_reply(s, "-ERR Syntax error: control character in the "
		    "command line");
		pop3_error(s);
		return;
	case POP3_PARSE_SYNTAX:
		pop3_reply(s, "-ERR Syntax error in the arguments of %s",
		    pop3_cmd_name(c.cmd));
		pop3_error(s);
		return;
	default:
		if (len >= 6 && strncasecmp(line, "PROXY ", 6) == 0)
			pop3_reply(s,
			    "-ERR PROXY header not accepted from your "
			    "address");
		else
			pop3_reply(s, "-ERR Unknown command");
		pop3_error(s);
		return;
	}
	for (size_t i = 0; i < sizeof(pop3_cmd_table) /
	    sizeof(pop3_cmd_table[0]); i++)
		if (pop3_cmd_table[i].cmd == c.cmd)
			def = &pop3_cmd_table[i];
	if (def == NULL) {
		pop3_reply(s, "-ERR Unknown command");
		pop3_error(s);
		return;
	}
	if (s->state == POP3_STATE_AUTHORIZATION &&
	    (def->flags & POP3_F_AUTHORIZATION) == 0) {
		pop3_reply(s, "-ERR Log in first (USER and PASS, APOP or "
		    "AUTH)");
		pop3_error(s);
		return;
	}
	if (s->state == POP3_STATE_TRANSACTION &&
	    (def->flags & POP3_F_TRANSACTION) == 0) {
		pop3_reply(s, "-ERR Already logged in");
		pop3_error(s);
		return;
	}
	if (def->check != NULL && def->check(s, &c) < 0) {
		if (s->state != POP3_STATE_QUIT)
			pop3_error(s);
		return;
	}
	def->proceed(s, &c);
}

/*
 * One line from the input, without its line end (CRLF, or a bare LF
 * from a sloppy client: POP3 has no message content to smuggle).
 * Returns 1 and the line, 0 when more input is needed, -1 when a bad
 * line was consumed and answered.
 */
static int
pop3_get_line(struct pop3_session *s, struct str *line)
{
	int r = conn_get_line(&s->conn, POP3_LINE_MAX, line);

	if (r < 0) {
		pop3_reply(s, "-ERR Line too long (at most %d octets)",
		    POP3_LINE_MAX);
		pop3_error(s);
		return -1;
	}
	if (r == 1 && line->len > 0 && line->s[line->len - 1] == '\r')
		str_truncate(line, line->len - 1);
	return r;
}

/*
 * The daemon stops (server.h): a session idle between commands before
 * login (or after it, once time is up) is told so and closed; nothing
 * marked is deleted without QUIT (RFC 1939 6).
 */
static void
pop3_stop_idle(struct pop3_session *s)
{
	int level = server_loop_stopping(s->conn.loop);

	if (level == SERVER_STOP_NONE || s->req != NULL ||
	    s->conn.delayed != NULL ||
	    (s->state != POP3_STATE_AUTHORIZATION &&
	    s->state != POP3_STATE_TRANSACTION) ||
	    (s->state == POP3_STATE_TRANSACTION && level < SERVER_STOP_ALL))
		return;
	pop3_reply(s, "-ERR [SYS/TEMP] Service shutting down, closing "
	    "connection");
	pop3_enter_state(s, POP3_STATE_QUIT);
	conn_close_after_reply(&s->conn);
}

static void
pop3_drain(struct conn *c)
{
	/* a complete line already read is answered first */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
		pop3_stop_idle((struct pop3_session *)c);
}

static void
pop3_process(struct pop3_session *s)
{
	struct str line = STR_INIT;

	while (s->req == NULL && s->conn.delayed == NULL) {
		if (s->state != POP3_STATE_AUTHORIZATION &&
		    s->state != POP3_STATE_SASL &&
		    s->state != POP3_STATE_TRANSACTION)
			break;
		int r = pop3_get_line(s, &line);

		if (r == 0) {
			pop3_stop_idle(s);
			break;
		}
		if (r < 0)
			continue;
		if (s->state == POP3_STATE_SASL)
			pop3_sasl_step(s, str_c(&line));
		else
			pop3_command(s, line.s, line.len);
		if (line.s != NULL)
			explicit_bzero(line.s, line.cap);	/* passwords */
	}
	str_deinit(&line);
	if (s->conn.eof && s->req == NULL && s->state != POP3_STATE_QUIT)
		pop3_free(s);
}

/* ---- events and lifetime ----------------------------------------- */

static void
pop3_read(struct conn *c)
{
	pop3_process((struct pop3_session *)c);
}

static int
pop3_waiting(struct conn *c)
{
	struct pop3_session *s = (struct pop3_session *)c;

	return s->req != NULL || s->conn.delayed != NULL ||
	    s->state == POP3_STATE_RETR;
}

static void
pop3_cut(struct conn *c)
{
	pop3_reply((struct pop3_session *)c, "-ERR Too much input while "
	    "waiting, closing connection");
}

static void
pop3_write(struct conn *c)
{
	struct pop3_session *s = (struct pop3_session *)c;

	if (s->state == POP3_STATE_RETR && pop3_stream(s) == 1)
		pop3_process(s);
}

static void
pop3_timeout(struct conn *c)
{
	struct pop3_session *s = (struct pop3_session *)c;

	log_info("session=%s timeout client=%s state=%s", s->conn.id,
	    s->conn.addr, pop3_state_names[s->state]);
	if (s->state == POP3_STATE_AUTHORIZATION ||
	    s->state == POP3_STATE_SASL ||
	    s->state == POP3_STATE_TRANSACTION) {
		/* RFC 1939 3: the autologout timer; no UPDATE. */
		pop3_reply(s, "-ERR Autologout: idle for too long, closing "
		    "connection");
		pop3_enter_state(s, POP3_STATE_QUIT);
		conn_close_after_reply(&s->conn);
		return;
	}
	pop3_free(s);
}

static void
pop3_eof(struct conn *c)
{
	struct pop3_session *s = (struct pop3_session *)c;

	if (s->req != NULL || s->conn.delayed != NULL)
		return;	/* freed when the reply is done */
	pop3_free(s);
}

static void
pop3_conn_free(struct conn *c)
{
	pop3_free((struct pop3_session *)c);
}

/* Refusals before a session (conn.h); 995 (implicit TLS) cannot be
 * spoken to without a handshake while low on memory: closed. XXX: over
 * max_connections the -ERR goes out on 995 too, in plain text (as it
 * always did). */
static const char *
pop3_refuse_line(const struct listen_conf *lc, enum conn_refusal why)
{
	if (why == CONN_REFUSE_MAX)
		return "-ERR [SYS/TEMP] Too many connections, try again "
		    "later\r\n";
	if (lc->role == LISTEN_POP3S)
		return NULL;
	return "-ERR [SYS/TEMP] low on memory, try again later\r\n";
}

const struct conn_vfuncs pop3_conn_vfuncs = {
	.name = "pop3",
	.refuse_line = pop3_refuse_line,
	.has_id = 1,
	.ready = pop3_ready,
	.tls_starting = pop3_tls_starting,
	.tls_ready = pop3_tls_ready,
	.read = pop3_read,
	.waiting = pop3_waiting,
	.cut = pop3_cut,
	.write = pop3_write,
	.delayed = pop3_delayed,
	.timeout = pop3_timeout,
	.eof = pop3_eof,
	.drain = pop3_drain,
	.free = pop3_conn_free,
};

static void
pop3_free(struct pop3_session *s)
{
	if (s->open_ctx != NULL)
		s->open_ctx->s = NULL;	/* its reply releases the lock */
	else if (s->req != NULL)
		be_req_cancel(s->req);
	if (s->pre_req != NULL && s->pre_req != s->req)
		be_req_cancel(s->pre_req);
	pop3_prefetch_drop(s);
	/* A dropped connection (no QUIT) deletes nothing: the back side
	 * only forgets what was marked (RFC 1939 6). */
	if (s->have_handle)
		pop3_close_handle(s->conn.loop->be, s->conn.be_session);
	pop3_logout_log(s);
	/* the back side drops its record (and a mailbox still open by an
	 * OPEN in flight): conn_deinit */
	conn_deinit(&s->conn);
	if (s->retr_fd != -1)
		close(s->retr_fd);
	pop3_free_mailbox(s);
	free(s->user);
	free(s);
}

void
pop3_session_new(struct server_loop *loop, const struct listen_conf *lc,
    int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));

	if (conn_init(&s->conn, &pop3_conn_vfuncs, loop, lc, fd, sa,
	    salen) < 0) {
		free(s);
		return;
	}
	/* every session ends with BE_SESSION_END (an OPEN may be in
	 * flight whatever was asked) */
	s->conn.be_used = 1;
	s->conn.implicit_tls = lc->role == LISTEN_POP3S;
	s->conn.timeout = loop->conf->pop3_timeout;
	s->conn.line_max = POP3_LINE_MAX;
	s->retr_fd = -1;
	s->pre_fd = -1;
	conn_start(&s->conn);
}
