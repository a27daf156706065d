/*
 * sekisho-loadgen: the benchmark's load generator (bench/README.md).
 * One process, libevent + OpenSSL, event-driven; -j runs that many
 * threads, each with its own event_base and a share of the work, sharing
 * nothing but the SSL_CTX and the options. Modes: smtp (N messages over C
 * sessions, STARTTLS/TLS, AUTH PLAIN, pipelining), pop3 (USER/PASS, LIST,
 * RETR all, QUIT), policy (Postfix policy delegation requests), idle (hold
 * N connections open and probe that new ones are still greeted) and slow
 * (slowloris clients: one byte every S seconds, report when each is cut).
 * Prints one JSON object on stdout. Every run has a hard deadline; only
 * loopback targets unless --allow-remote.
 *
 * It stands alone (no src/ code): the server is the thing measured.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define LOADGEN_MAX_LINE	65536	/* longest reply line we buffer */
#define LOADGEN_MAX_KINDS	64	/* distinct error / answer kinds */
#define LOADGEN_KIND_LEN	48

enum loadgen_mode {
	MODE_SMTP,
	MODE_POP3,
	MODE_POLICY,
	MODE_IDLE,
	MODE_SLOW,
};

static const char *const loadgen_mode_names[] = {
	[MODE_SMTP] = "smtp",
	[MODE_POP3] = "pop3",
	[MODE_POLICY] = "policy",
	[MODE_IDLE] = "idle",
	[MODE_SLOW] = "slow",
};

enum loadgen_tls {
	TLS_NONE,
	TLS_STARTTLS,		/* STARTTLS (SMTP) or STLS (POP3) */
	TLS_IMPLICIT,
};

struct loadgen_user {
	char	*name;
	char	*pass;
};

struct loadgen_opts {
	enum loadgen_mode	 mode;
	const char		*host;
	const char		*port;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 allow_remote;
	int			 concurrency;
	int			 threads;
	double			 deadline;
	double			 timeout;
	enum loadgen_tls	 tls;
	/* smtp */
	const char		*auth;		/* USER:PASS */
	const char		*from;
	const char		**to;
	int			 nto;
	long			 messages;
	long			 size;
	long			 per_session;
	int			 pipelining;
	const char		*helo;
	/* pop3, policy */
	struct loadgen_user	*users;
	int			 nusers;
	long			 users_expand;
	long			 rounds;
	int			 dele;
	long			 requests;
	const char		*client_address;
	const char		*recipient;
	const char		*sender;
	const char		*state;
	/* idle, slow */
	long			 connections;
	double			 hold;
	double			 probe_interval;
	double			 interval;
	const char		*payload;
	const char		*ready_file;
	int			 ramp;		/* sessions awaiting greeting */
	double			 max_time;	/* then start nothing new */
};

struct loadgen_kind {
	char	name[LOADGEN_KIND_LEN];
	long	n;
};

struct loadgen_stats {
	long			 ok;
	long			 failed;
	long			 sessions;
	long			 bytes_out;
	long			 bytes_in;
	long			 messages;	/* pop3: retrieved */
	double			*lat;		/* ms */
	size_t			 nlat, lat_cap;
	double			*aux;		/* slow: seconds until cut */
	size_t			 naux, aux_cap;
	struct loadgen_kind	 errors[LOADGEN_MAX_KINDS];
	struct loadgen_kind	 answers[LOADGEN_MAX_KINDS];
	/* idle, slow */
	long			 established;
	long			 dropped;
	long			 probes;
	long			 probe_fail;
	long			 open_at_end;
};

struct loadgen_conn;

struct loadgen_thread {
	int			 idx;
	pthread_t		 tid;
	struct event_base	*base;
	struct event		*deadline_ev;
	struct event		*hold_ev;
	struct event		*probe_ev;
	long			 budget;	/* work units not yet started */
	long			 sessions_left;	/* pop3: sessions not started */
	long			 next_user;
	long			 next_request;
	int			 conc;
	int			 active;
	long			 to_connect;	/* idle/slow: not yet started */
	long			 pending;	/* idle/slow: not yet greeted */
	int			 holding;
	int			 deadline_hit;
	int			 greeting;	/* smtp/pop3: not yet greeted */
	int			 max_time_hit;
	long			 not_started;	/* work left at --max-time */
	struct event		*max_time_ev;
	struct loadgen_conn	*conns;		/* idle/slow: all, linked */
	char			*body;		/* smtp: shared message body */
	size_t			 body_len;
	long			 msg_seq;
	struct loadgen_stats	 st;
};

enum conn_stage {
	ST_GREET,
	ST_EHLO,
	ST_STARTTLS,
	ST_AUTH,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_BODY,
	ST_RSET,
	ST_QUIT,
	ST_USER,
	ST_PASS,
	ST_LIST,
	ST_LIST_BODY,
	ST_RETR,
	ST_RETR_BODY,
	ST_DELE,
	ST_POLICY,
	ST_HELD,
	ST_DONE,
};

static const char *const loadgen_stage_names[] = {
	[ST_GREET] = "greeting", [ST_EHLO] = "ehlo",
	[ST_STARTTLS] = "starttls", [ST_AUTH] = "auth", [ST_MAIL] = "mail",
	[ST_RCPT] = "rcpt", [ST_DATA] = "data", [ST_BODY] = "dot",
	[ST_RSET] = "rset", [ST_QUIT] = "quit", [ST_USER] = "user",
	[ST_PASS] = "pass", [ST_LIST] = "list", [ST_LIST_BODY] = "list",
	[ST_RETR] = "retr", [ST_RETR_BODY] = "retr", [ST_DELE] = "dele",
	[ST_POLICY] = "policy", [ST_HELD] = "held", [ST_DONE] = "done",
};

#define STAGE_RING	128

struct loadgen_conn {
	struct loadgen_thread	*t;
	struct bufferevent	*bev;
	struct loadgen_conn	*next;		/* idle/slow list */
	int			 tls_on;
	int			 connected;
	int			 probe;
	int			 closed;
	int			 ungreeted;	/* counted in t->greeting */
	/* replies expected, in order (pipelining) */
	enum conn_stage		 ring[STAGE_RING];
	int			 rhead, rcount;
	int			 in_reply;	/* a multi-line reply goes on */
	int			 code;
	int			 cap_pipelining;
	int			 ehlo_done;
	int			 authed;
	/* smtp transaction */
	long			 left;		/* messages of this session */
	int			 rcpt_ok;
	int			 rcpt_sent;
	int			 txn_pipelined;
	char			 txn_err[LOADGEN_KIND_LEN];
	double			 t0;
	/* pop3 */
	long			 user;
	long			*msgnums;
	size_t			 nmsg, msg_cap, cur;
	size_t			 scan_from;
	/* idle/slow */
	double			 t_connect;
	struct event		*drip;
	size_t			 payload_pos;
	char			 last[80];
	int			 said_after_greeting;
};

static struct loadgen_opts opts;
static SSL_CTX *loadgen_ssl_ctx;
static pthread_mutex_t loadgen_ready_lock = PTHREAD_MUTEX_INITIALIZER;
static int loadgen_threads_ready;

static void loadgen_session_start(struct loadgen_thread *);
static void loadgen_greeted(struct loadgen_conn *, int);
static void loadgen_conn_end(struct loadgen_conn *, const char *);
static void loadgen_smtp_next(struct loadgen_conn *);
static void loadgen_idle_launch(struct loadgen_thread *);

static void __attribute__((noreturn, format(printf, 1, 2)))
loadgen_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sekisho-loadgen: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void *
loadgen_alloc(size_t n)
{
	void *p;

	if ((p = calloc(1, n == 0 ? 1 : n)) == NULL)
		loadgen_die("out of memory");
	return p;
}

static void *
loadgen_grow(void *p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;

	if (need <= *cap)
		return p;
	ncap = *cap == 0 ? 64 : *cap;
	while (ncap < need)
		ncap *= 2;
	if ((p = reallocarray(p, ncap, elem)) == NULL)
		loadgen_die("out of memory");
	*cap = ncap;
	return p;
}

static char *
loadgen_strdup(const char *s)
{
	char *d;

	if ((d = strdup(s)) == NULL)
		loadgen_die("out of memory");
	return d;
}

static double
loadgen_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval
loadgen_tv(double s)
{
	struct timeval tv;

	tv.tv_sec = (time_t)s;
	tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
	return tv;
}

static void
loadgen_kind_add(struct loadgen_kind *k, const char *name, long n)
{
	int i;

	for (i = 0; i < LOADGEN_MAX_KINDS && k[i].name[0] != '\0'; i++)
		if (strcmp(k[i].name, name) == 0) {
			k[i].n += n;
			return;
		}
	if (i == LOADGEN_MAX_KINDS)
		i = LOADGEN_MAX_KINDS - 1;	/* the last one takes the rest */
	if (k[i].name[0] == '\0')
		snprintf(k[i].name, sizeof(k[i].name), "%s", name);
	k[i].n += n;
}

static void
loadgen_error(struct loadgen_thread *t, const char *kind, long n)
{
	if (n <= 0)
		return;
	t->st.failed += n;
	loadgen_kind_add(t->st.errors, kind, n);
}

static void
loadgen_latency(struct loadgen_stats *st, double ms)
{
	st->lat = loadgen_grow(st->lat, &st->lat_cap, st->nlat + 1,
	    sizeof(*st->lat));
	st->lat[st->nlat++] = ms;
}

static void
loadgen_aux(struct loadgen_stats *st, double v)
{
	st->aux = loadgen_grow(st->aux, &st->aux_cap, st->naux + 1,
	    sizeof(*st->aux));
	st->aux[st->naux++] = v;
}

/* --- connections ----------------------------------------------------- */

static void loadgen_read_cb(struct bufferevent *, void *);
static void loadgen_event_cb(struct bufferevent *, short, void *);
static void loadgen_push(struct loadgen_conn *, enum conn_stage);

static void
loadgen_set_timeout(struct loadgen_conn *c, int on)
{
	struct timeval tv = loadgen_tv(opts.timeout);

	bufferevent_set_timeouts(c->bev, on ? &tv : NULL, on ? &tv : NULL);
}

static struct loadgen_conn *
loadgen_conn_new(struct loadgen_thread *t)
{
	struct loadgen_conn *c;
	SSL *ssl;

	c = loadgen_alloc(sizeof(*c));
	c->t = t;
	if (opts.tls == TLS_IMPLICIT) {
		if ((ssl = SSL_new(loadgen_ssl_ctx)) == NULL)
			loadgen_die("SSL_new failed");
		c->bev = bufferevent_openssl_socket_new(t->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		c->tls_on = 1;
	} else
		c->bev = bufferevent_socket_new(t->base, -1,
		    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		loadgen_die("bufferevent_socket_new failed");
	bufferevent_setcb(c->bev, loadgen_read_cb, NULL, loadgen_event_cb, c);
	loadgen_set_timeout(c, 1);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->t_connect = loadgen_now();
	/* Expected before the connect completes: libevent may report the
	 * greeting (readable) before the connection (writable). */
	if (opts.mode != MODE_POLICY)
		loadgen_push(c, ST_GREET);
	if (opts.mode == MODE_SMTP || opts.mode == MODE_POP3) {
		c->ungreeted = 1;
		t->greeting++;
	}
	t->active++;
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&opts.ss,
	    (int)opts.sslen) < 0) {
		/* reported through the event callback on most errors; a
		 * synchronous failure is fd exhaustion or similar */
		c->closed = 1;
	}
	return c;
}

static void
loadgen_push(struct loadgen_conn *c, enum conn_stage s)
{
	if (c->rcount == STAGE_RING)
		loadgen_die("too many pipelined commands");
	c->ring[(c->rhead + c->rcount) % STAGE_RING] = s;
	c->rcount++;
}

static enum conn_stage
loadgen_peek(const struct loadgen_conn *c)
{
	return c->rcount == 0 ? ST_DONE : c->ring[c->rhead];
}

static void
loadgen_pop(struct loadgen_conn *c)
{
	if (c->rcount > 0) {
		c->rhead = (c->rhead + 1) % STAGE_RING;
		c->rcount--;
	}
}

static void
loadgen_send(struct loadgen_conn *c, const char *s)
{
	size_t n = strlen(s);

	bufferevent_write(c->bev, s, n);
	c->t->st.bytes_out += (long)n;
}

static void __attribute__((format(printf, 2, 3)))
loadgen_sendf(struct loadgen_conn *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		loadgen_die("command too long");
	loadgen_send(c, buf);
}

static const char *
loadgen_errno_kind(int e)
{
	switch (e) {
	case ECONNREFUSED:
		return "refused";
	case ECONNRESET:
		return "reset";
	case ETIMEDOUT:
		return "timeout";
	case EPIPE:
		return "pipe";
	case EMFILE:
	case ENFILE:
		return "fd_limit";
	case EADDRNOTAVAIL:
		return "no_port";
	default:
		return "socket";
	}
}

/* --- smtp ------------------------------------------------------------ */

static void
loadgen_smtp_body(struct loadgen_conn *c)
{
	struct loadgen_thread *t = c->t;
	char head[1024];
	int n;

	/* Unique Message-ID, a From the submission policy can align. */
	n = snprintf(head, sizeof(head),
	    "From: <%s>\r\nTo: <%s>\r\nSubject: sekisho-loadgen %d.%ld\r\n"
	    "Message-ID: <lg.%d.%d.%ld@loadgen.invalid>\r\n"
	    "Date: Thu, 01 Jan 2026 00:00:00 +0900\r\n\r\n",
	    opts.from, opts.to[0], t->idx, t->msg_seq, (int)getpid(), t->idx,
	    t->msg_seq);
	t->msg_seq++;
	if (n < 0 || (size_t)n >= sizeof(head))
		n = 0;
	bufferevent_write(c->bev, head, (size_t)n);
	evbuffer_add_reference(bufferevent_get_output(c->bev), t->body,
	    t->body_len, NULL, NULL);
	bufferevent_write(c->bev, ".\r\n", 3);
	t->st.bytes_out += n + (long)t->body_len + 3;
}

static void
loadgen_smtp_mail(struct loadgen_conn *c)
{
	loadgen_sendf(c, "MAIL FROM:<%s>\r\n", opts.from);
}

static void
loadgen_smtp_txn(struct loadgen_conn *c)
{
	c->t0 = loadgen_now();
	c->rcpt_ok = 0;
	c->rcpt_sent = 0;
	c->txn_err[0] = '\0';
	c->txn_pipelined = opts.pipelining && c->cap_pipelining;
	loadgen_smtp_mail(c);
	loadgen_push(c, ST_MAIL);
	if (c->txn_pipelined) {
		for (int i = 0; i < opts.nto; i++) {
			loadgen_sendf(c, "RCPT TO:<%s>\r\n", opts.to[i]);
			loadgen_push(c, ST_RCPT);
		}
		c->rcpt_sent = opts.nto;
		loadgen_send(c, "DATA\r\n");
		loadgen_push(c, ST_DATA);
	}
}

static void
loadgen_txn_fail(struct loadgen_conn *c, enum conn_stage s, int code)
{
	if (c->txn_err[0] == '\0')
		snprintf(c->txn_err, sizeof(c->txn_err), "%s:%d",
		    loadgen_stage_names[s], code);
}

/* The session cannot go on: what it had left fails with this kind. */
static void
loadgen_session_fail(struct loadgen_conn *c, enum conn_stage s, int code)
{
	char kind[LOADGEN_KIND_LEN];

	snprintf(kind, sizeof(kind), "%s:%d", loadgen_stage_names[s], code);
	loadgen_conn_end(c, kind);
}

/* The transaction is over (250 or a failure): count it, go on. */
static void
loadgen_txn_done(struct loadgen_conn *c)
{
	struct loadgen_thread *t = c->t;

	if (c->txn_err[0] == '\0') {
		t->st.ok++;
		loadgen_latency(&t->st, (loadgen_now() - c->t0) * 1000.0);
	} else {
		loadgen_error(t, c->txn_err, 1);
		c->left--;
		c->txn_err[0] = '\0';
		loadgen_send(c, "RSET\r\n");
		loadgen_push(c, ST_RSET);
		return;
	}
	c->left--;
	loadgen_smtp_next(c);
}

static void
loadgen_smtp_next(struct loadgen_conn *c)
{
	if (c->left > 0)
		loadgen_smtp_txn(c);
	else {
		loadgen_send(c, "QUIT\r\n");
		loadgen_push(c, ST_QUIT);
	}
}

static void
loadgen_smtp_ehlo(struct loadgen_conn *c)
{
	c->cap_pipelining = 0;
	loadgen_sendf(c, "EHLO %s\r\n", opts.helo);
	loadgen_push(c, ST_EHLO);
}

static void
loadgen_smtp_auth(struct loadgen_conn *c)
{
	const char *colon = strchr(opts.auth, ':');
	unsigned char raw[600];
	char b64[820];
	size_t ul, pl;
	int n;

	ul = (size_t)(colon - opts.auth);
	pl = strlen(colon + 1);
	if (ul + pl + 2 > sizeof(raw))
		loadgen_die("--auth too long");
	/* RFC 4616: authzid NUL authcid NUL passwd; authzid empty */
	raw[0] = '\0';
	memcpy(raw + 1, opts.auth, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, colon + 1, pl);
	n = EVP_EncodeBlock((unsigned char *)b64, raw, (int)(ul + pl + 2));
	if (n < 0)
		loadgen_die("base64 failed");
	loadgen_sendf(c, "AUTH PLAIN %s\r\n", b64);
	loadgen_push(c, ST_AUTH);
}

static void
loadgen_starttls(struct loadgen_conn *c)
{
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = SSL_new(loadgen_ssl_ctx)) == NULL)
		loadgen_die("SSL_new failed");
	bev = bufferevent_openssl_filter_new(c->t->base, c->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		loadgen_die("bufferevent_openssl_filter_new failed");
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	c->bev = bev;
	c->tls_on = 1;
	/* until the handshake is done (BEV_EVENT_CONNECTED) */
	loadgen_push(c, ST_STARTTLS);
	bufferevent_setcb(bev, loadgen_read_cb, NULL, loadgen_event_cb, c);
	loadgen_set_timeout(c, 1);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* After EHLO, or after STARTTLS + EHLO, or after AUTH. */
static void
loadgen_smtp_ready(struct loadgen_conn *c)
{
	if (opts.tls == TLS_STARTTLS && !c->tls_on) {
		loadgen_send(c, "STARTTLS\r\n");
		loadgen_push(c, ST_STARTTLS);
	} else if (opts.auth != NULL && !c->authed)
		loadgen_smtp_auth(c);
	else
		loadgen_smtp_next(c);
}

static void
loadgen_smtp_reply(struct loadgen_conn *c, enum conn_stage s, int code)
{
	switch (s) {
	case ST_GREET:
		if (code != 220) {
			loadgen_session_fail(c, s, code);
			return;
		}
		loadgen_greeted(c, 1);
		loadgen_smtp_ehlo(c);
		break;
	case ST_EHLO:
		if (code != 250) {
			loadgen_session_fail(c, s, code);
			return;
		}
		c->ehlo_done = 1;
		loadgen_smtp_ready(c);
		break;
	case ST_STARTTLS:
		if (code != 220) {
			loadgen_session_fail(c, s, code);
			return;
		}
		loadgen_starttls(c);	/* EHLO again once connected */
		break;
	case ST_AUTH:
		if (code != 235) {
			loadgen_session_fail(c, s, code);
			return;
		}
		c->authed = 1;
		loadgen_smtp_next(c);
		break;
	case ST_MAIL:
		if (code != 250)
			loadgen_txn_fail(c, s, code);
		if (c->txn_pipelined)
			break;
		if (code != 250) {
			loadgen_txn_done(c);
			break;
		}
		loadgen_sendf(c, "RCPT TO:<%s>\r\n", opts.to[0]);
		c->rcpt_sent = 1;
		loadgen_push(c, ST_RCPT);
		break;
	case ST_RCPT:
		/* one refused recipient fails the message */
		if (code == 250 || code == 251)
			c->rcpt_ok++;
		else
			loadgen_txn_fail(c, s, code);
		if (c->txn_pipelined)
			break;
		if (c->rcpt_sent < opts.nto) {
			loadgen_sendf(c, "RCPT TO:<%s>\r\n",
			    opts.to[c->rcpt_sent++]);
			loadgen_push(c, ST_RCPT);
		} else if (c->rcpt_ok == 0)
			loadgen_txn_done(c);
		else {
			loadgen_send(c, "DATA\r\n");
			loadgen_push(c, ST_DATA);
		}
		break;
	case ST_DATA:
		if (code != 354) {
			loadgen_txn_fail(c, s, code);
			loadgen_txn_done(c);
			break;
		}
		if (c->rcpt_ok == 0) {
			/* RFC 2920 3.1: DATA accepted with no valid
			 * recipient; send an empty message. */
			loadgen_send(c, ".\r\n");
		} else
			loadgen_smtp_body(c);
		loadgen_push(c, ST_BODY);
		break;
	case ST_BODY:
		if (code != 250)
			loadgen_txn_fail(c, s, code);
		loadgen_txn_done(c);
		break;
	case ST_RSET:
		loadgen_smtp_next(c);
		break;
	case ST_QUIT:
		loadgen_conn_end(c, NULL);
		break;
	default:
		loadgen_conn_end(c, "protocol");
		break;
	}
}

/* One line of an SMTP reply (RFC 5321 4.2.1: "CODE-" continues). */
static void
loadgen_smtp_line(struct loadgen_conn *c, const char *line, size_t len)
{
	enum conn_stage s = loadgen_peek(c);
	int code;

	if (len < 3 || line[0] < '1' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '9' || line[2] < '0' || line[2] > '9' ||
	    (len > 3 && line[3] != ' ' && line[3] != '-')) {
		loadgen_conn_end(c, "protocol");
		return;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (!c->in_reply)
		c->code = code;
	if (s == ST_EHLO && len >= 14 &&
	    strncasecmp(line + 4, "PIPELINING", 10) == 0)
		c->cap_pipelining = 1;
	if (len > 3 && line[3] == '-') {
		c->in_reply = 1;
		return;
	}
	c->in_reply = 0;
	if (s == ST_DONE) {
		/* unsolicited: a 421 before closing */
		loadgen_conn_end(c, code == 421 ? "421" : "protocol");
		return;
	}
	loadgen_pop(c);
	if (c->code == 421 && s != ST_QUIT) {
		loadgen_txn_fail(c, s, 421);
		loadgen_conn_end(c, c->txn_err);
		return;
	}
	loadgen_smtp_reply(c, s, c->code);
}

/* --- pop3 ------------------------------------------------------------ */

static void
loadgen_pop3_retr(struct loadgen_conn *c)
{
	if (c->cur < c->nmsg) {
		c->t0 = loadgen_now();
		loadgen_sendf(c, "RETR %ld\r\n", c->msgnums[c->cur]);
		loadgen_push(c, ST_RETR);
	} else {
		loadgen_send(c, "QUIT\r\n");
		loadgen_push(c, ST_QUIT);
	}
}

static void
loadgen_pop3_login(struct loadgen_conn *c)
{
	loadgen_sendf(c, "USER %s\r\n", opts.users[c->user].name);
	loadgen_push(c, ST_USER);
}

static void
loadgen_pop3_reply(struct loadgen_conn *c, const char *line, size_t len)
{
	enum conn_stage s = loadgen_peek(c);
	int ok = len >= 3 && strncmp(line, "+OK", 3) == 0;
	char kind[LOADGEN_KIND_LEN];

	if (s == ST_LIST_BODY) {
		char *end;
		long n;

		if (len == 1 && line[0] == '.') {
			loadgen_pop(c);
			c->cur = 0;
			loadgen_pop3_retr(c);
			return;
		}
		n = strtol(line, &end, 10);
		if (end == line || n <= 0) {
			loadgen_conn_end(c, "list:protocol");
			return;
		}
		c->msgnums = loadgen_grow(c->msgnums, &c->msg_cap, c->nmsg + 1,
		    sizeof(*c->msgnums));
		c->msgnums[c->nmsg++] = n;
		return;
	}
	if (s == ST_DONE) {
		loadgen_conn_end(c, "protocol");
		return;
	}
	loadgen_pop(c);
	if (!ok && s != ST_QUIT) {
		snprintf(kind, sizeof(kind), "%s:-ERR", loadgen_stage_names[s]);
		if (s == ST_RETR || s == ST_DELE) {
			/* the message is lost to this run; go on */
			loadgen_error(c->t, kind, 1);
			c->cur++;
			loadgen_pop3_retr(c);
			return;
		}
		loadgen_conn_end(c, kind);
		return;
	}
	switch (s) {
	case ST_GREET:
		loadgen_greeted(c, 1);
		if (opts.tls == TLS_STARTTLS && !c->tls_on) {
			loadgen_send(c, "STLS\r\n");
			loadgen_push(c, ST_STARTTLS);
		} else
			loadgen_pop3_login(c);
		break;
	case ST_STARTTLS:
		loadgen_starttls(c);	/* USER once connected */
		break;
	case ST_USER:
		loadgen_sendf(c, "PASS %s\r\n", opts.users[c->user].pass);
		loadgen_push(c, ST_PASS);
		break;
	case ST_PASS:
		loadgen_send(c, "LIST\r\n");
		loadgen_push(c, ST_LIST);
		break;
	case ST_LIST:
		loadgen_push(c, ST_LIST_BODY);
		break;
	case ST_RETR:
		c->scan_from = 0;
		loadgen_push(c, ST_RETR_BODY);
		break;
	case ST_DELE:
		c->cur++;
		loadgen_pop3_retr(c);
		break;
	case ST_QUIT:
		loadgen_conn_end(c, NULL);
		break;
	default:
		loadgen_conn_end(c, "protocol");
		break;
	}
}

/*
 * The body of a RETR answer ends with CRLF.CRLF (RFC 1939 3); an empty
 * message is only ".CRLF". Returns 1 when the whole body was consumed.
 */
static int
loadgen_pop3_body(struct loadgen_conn *c, struct evbuffer *in)
{
	struct evbuffer_ptr p;
	size_t len = evbuffer_get_length(in);
	unsigned char first[3];

	if (c->scan_from == 0 && len >= 3 &&
	    evbuffer_copyout(in, first, 3) == 3 &&
	    memcmp(first, ".\r\n", 3) == 0) {
		evbuffer_drain(in, 3);
		c->t->st.bytes_in += 3;
		return 1;
	}
	if (evbuffer_ptr_set(in, &p, c->scan_from, EVBUFFER_PTR_SET) < 0)
		return 0;
	p = evbuffer_search(in, "\r\n.\r\n", 5, &p);
	if (p.pos < 0) {
		c->scan_from = len >= 4 ? len - 4 : 0;
		return 0;
	}
	evbuffer_drain(in, (size_t)p.pos + 5);
	c->t->st.bytes_in += (long)p.pos + 5;
	return 1;
}

static void
loadgen_pop3_retrieved(struct loadgen_conn *c)
{
	struct loadgen_thread *t = c->t;

	loadgen_pop(c);
	t->st.ok++;
	t->st.messages++;
	loadgen_latency(&t->st, (loadgen_now() - c->t0) * 1000.0);
	if (opts.dele) {
		loadgen_sendf(c, "DELE %ld\r\n", c->msgnums[c->cur]);
		loadgen_push(c, ST_DELE);
	} else {
		c->cur++;
		loadgen_pop3_retr(c);
	}
}

/* --- policy ---------------------------------------------------------- */

static void
loadgen_expand(char *dst, size_t dstlen, const char *pattern, long n)
{
	const char *pct = strstr(pattern, "%d");

	if (pct == NULL)
		snprintf(dst, dstlen, "%s", pattern);
	else
		snprintf(dst, dstlen, "%.*s%ld%s", (int)(pct - pattern),
		    pattern, n, pct + 2);
}

static void
loadgen_policy_send(struct loadgen_conn *c)
{
	struct loadgen_thread *t = c->t;
	const char *user = "";
	long i;

	t->budget--;
	i = t->next_request++;
	if (opts.nusers > 0)
		user = opts.users[i % opts.nusers].name;
	c->t0 = loadgen_now();
	/* Postfix's policy delegation protocol (SMTPD_POLICY_README):
	 * name=value lines, ended by an empty line. */
	loadgen_sendf(c, "request=smtpd_access_policy\n"
	    "protocol_state=%s\nprotocol_name=ESMTP\n"
	    "client_address=%s\nclient_name=unknown\n"
	    "reverse_client_name=unknown\nhelo_name=loadgen.invalid\n"
	    "sender=%s\nrecipient=%s\nrecipient_count=1\n"
	    "queue_id=\ninstance=lg.%d.%ld\nsize=2048\n"
	    "sasl_method=plain\nsasl_username=%s\n\n",
	    opts.state, opts.client_address,
	    opts.sender != NULL ? opts.sender : user, opts.recipient, t->idx,
	    i, user);
	loadgen_push(c, ST_POLICY);
}

static void
loadgen_policy_line(struct loadgen_conn *c, const char *line, size_t len)
{
	struct loadgen_thread *t = c->t;
	char word[LOADGEN_KIND_LEN];
	size_t n;

	if (loadgen_peek(c) != ST_POLICY) {
		loadgen_conn_end(c, "protocol");
		return;
	}
	if (len > 7 && strncmp(line, "action=", 7) == 0) {
		/* the first word of the action names the answer */
		for (n = 0; n + 7 < len && n < sizeof(word) - 1 &&
		    line[7 + n] != ' '; n++)
			word[n] = line[7 + n];
		word[n] = '\0';
		loadgen_kind_add(t->st.answers, word, 1);
		c->code = 1;
		return;
	}
	if (len != 0)
		return;		/* other attributes: ignored */
	loadgen_pop(c);
	if (c->code != 1) {
		loadgen_error(t, "policy:no_action", 1);
	} else {
		t->st.ok++;
		loadgen_latency(&t->st, (loadgen_now() - c->t0) * 1000.0);
	}
	c->code = 0;
	if (t->budget > 0)
		loadgen_policy_send(c);
	else
		loadgen_conn_end(c, NULL);
}

/* --- idle and slow --------------------------------------------------- */

static int
loadgen_greeting_ok(const char *line, size_t len)
{
	return (len >= 1 && line[0] == '2') ||
	    (len >= 3 && strncmp(line, "+OK", 3) == 0);
}

static void
loadgen_drip_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loadgen_conn *c = arg;
	const char *p = opts.payload;
	size_t plen = strlen(p);

	(void)fd;
	(void)what;
	if (c->closed || plen == 0)
		return;
	bufferevent_write(c->bev, p + c->payload_pos % plen, 1);
	c->payload_pos++;
	c->t->st.bytes_out++;
}

static void
loadgen_thread_ready(void)
{
	FILE *f;
	int all;

	pthread_mutex_lock(&loadgen_ready_lock);
	all = ++loadgen_threads_ready == opts.threads;
	pthread_mutex_unlock(&loadgen_ready_lock);
	if (all && opts.ready_file != NULL) {
		if ((f = fopen(opts.ready_file, "w")) != NULL) {
			fprintf(f, "ready\n");
			fclose(f);
		}
	}
}

static void
loadgen_held_line(struct loadgen_conn *c, const char *line, size_t len)
{
	struct loadgen_thread *t = c->t;

	if (c->probe) {
		if (loadgen_greeting_ok(line, len)) {
			t->st.probes++;
			loadgen_latency(&t->st, (loadgen_now() - c->t_connect) *
			    1000.0);
		} else {
			t->st.probe_fail++;
		}
		loadgen_send(c, "QUIT\r\n");
		loadgen_conn_end(c, NULL);
		return;
	}
	if (loadgen_peek(c) == ST_GREET) {
		loadgen_pop(c);
		loadgen_push(c, ST_HELD);
		t->pending--;
		if (!loadgen_greeting_ok(line, len)) {
			char kind[LOADGEN_KIND_LEN];

			snprintf(kind, sizeof(kind), "greeting:%.3s", line);
			loadgen_conn_end(c, kind);
			return;
		}
		t->st.established++;
		t->st.ok++;
		/* held: the server may be silent as long as it likes */
		bufferevent_set_timeouts(c->bev, NULL, NULL);
		if (opts.mode == MODE_SLOW) {
			struct timeval tv = loadgen_tv(opts.interval);

			c->drip = event_new(t->base, -1, EV_PERSIST,
			    loadgen_drip_cb, c);
			event_add(c->drip, &tv);
		}
		loadgen_idle_launch(t);
		return;
	}
	/* what a server says to a held or slow client, usually its
	 * reason for closing: the reply code and the enhanced code */
	{
		size_t n = 0;
		int words = 0;

		while (n < len && n < sizeof(c->last) - 1) {
			if (line[n] == ' ' && ++words == 2)
				break;
			n++;
		}
		memcpy(c->last, line, n);
		c->last[n] = '\0';
	}
	c->said_after_greeting = 1;
}

/* --- dispatch -------------------------------------------------------- */

static void
loadgen_read_cb(struct bufferevent *bev, void *arg)
{
	struct loadgen_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	enum evbuffer_eol_style eol = opts.mode == MODE_POLICY ?
	    EVBUFFER_EOL_LF : EVBUFFER_EOL_CRLF;
	char *line;
	size_t len;

	c->connected = 1;
	while (!c->closed) {
		if (opts.mode == MODE_POP3 && loadgen_peek(c) == ST_RETR_BODY) {
			if (!loadgen_pop3_body(c, in))
				return;
			loadgen_pop3_retrieved(c);
			continue;
		}
		if ((line = evbuffer_readln(in, &len, eol)) == NULL) {
			if (evbuffer_get_length(in) > LOADGEN_MAX_LINE)
				loadgen_conn_end(c, "long_line");
			return;
		}
		c->t->st.bytes_in += (long)len + 2;
		switch (opts.mode) {
		case MODE_SMTP:
			loadgen_smtp_line(c, line, len);
			break;
		case MODE_POP3:
			loadgen_pop3_reply(c, line, len);
			break;
		case MODE_POLICY:
			loadgen_policy_line(c, line, len);
			break;
		case MODE_IDLE:
		case MODE_SLOW:
			loadgen_held_line(c, line, len);
			break;
		}
		free(line);
	}
}

static void
loadgen_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct loadgen_conn *c = arg;
	enum conn_stage s = loadgen_peek(c);
	char kind[LOADGEN_KIND_LEN];
	const char *why;
	int e = EVUTIL_SOCKET_ERROR();
	unsigned long ssl_err;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (s == ST_STARTTLS) {
			/* TLS is up after STARTTLS/STLS */
			loadgen_pop(c);
			if (opts.mode == MODE_SMTP)
				loadgen_smtp_ehlo(c);
			else
				loadgen_pop3_login(c);
			return;
		}
		c->connected = 1;
		if (opts.mode == MODE_POLICY) {
			if (c->t->budget == 0)
				loadgen_conn_end(c, NULL);
			else
				loadgen_policy_send(c);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		why = "timeout";
	else if (what & BEV_EVENT_EOF)
		why = "closed";
	else {
		ssl_err = bufferevent_get_openssl_error(c->bev);
		why = ssl_err != 0 ? "tls" : loadgen_errno_kind(e);
	}
	if (s == ST_QUIT || (s == ST_DONE && opts.mode == MODE_POLICY &&
	    c->t->budget == 0)) {
		loadgen_conn_end(c, NULL);
		return;
	}
	if (opts.mode == MODE_IDLE || opts.mode == MODE_SLOW) {
		if (s == ST_HELD && !c->probe) {
			c->t->st.dropped++;
			if (opts.mode == MODE_SLOW) {
				loadgen_aux(&c->t->st, loadgen_now() -
				    c->t_connect);
				loadgen_kind_add(c->t->st.answers,
				    c->said_after_greeting ? c->last : why, 1);
			}
			loadgen_conn_end(c, NULL);
			return;
		}
	}
	/* not connected yet: the connection (or implicit TLS) failed */
	snprintf(kind, sizeof(kind), "%s:%s",
	    !c->connected ? "connect" : loadgen_stage_names[s], why);
	loadgen_conn_end(c, kind);
}

static void
loadgen_conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	free(arg);
}

/* The callback that ended the connection may still look at it (closed). */
static void
loadgen_conn_free_later(struct loadgen_conn *c)
{
	struct timeval tv = { 0, 0 };

	if (event_base_once(c->t->base, -1, EV_TIMEOUT, loadgen_conn_free_cb,
	    c, &tv) < 0)
		loadgen_die("event_base_once failed");
}

/*
 * A connection is over. why == NULL: it ended well. Otherwise the work it
 * had not finished counts as failed with that kind.
 */
static void
loadgen_conn_end(struct loadgen_conn *c, const char *why)
{
	struct loadgen_thread *t = c->t;
	char kind[LOADGEN_KIND_LEN];

	if (c->closed)
		return;
	c->closed = 1;
	loadgen_greeted(c, 0);
	if (why != NULL) {
		snprintf(kind, sizeof(kind), "%s", why);
		switch (opts.mode) {
		case MODE_SMTP:
			loadgen_error(t, kind, c->left);
			c->left = 0;
			break;
		case MODE_POP3:
			/* a failed session counts once */
			loadgen_error(t, kind, 1);
			break;
		case MODE_POLICY:
			/* the request in flight, or (no connection) one
			 * not yet sent, so that a refusing server cannot
			 * keep the run going */
			if (loadgen_peek(c) != ST_POLICY && t->budget > 0)
				t->budget--;
			loadgen_error(t, kind, 1);
			break;
		case MODE_IDLE:
		case MODE_SLOW:
			if (c->probe)
				t->st.probe_fail++;
			else {
				if (loadgen_peek(c) == ST_GREET ||
				    loadgen_peek(c) == ST_DONE)
					t->pending--;
				loadgen_error(t, kind, 1);
			}
			break;
		}
	} else if (opts.mode == MODE_SMTP || opts.mode == MODE_POP3)
		t->st.sessions++;
	if (c->drip != NULL) {
		event_free(c->drip);
		c->drip = NULL;
	}
	/* the write side may still hold QUIT: let it go, then free */
	bufferevent_free(c->bev);
	c->bev = NULL;
	free(c->msgnums);
	c->msgnums = NULL;
	t->active--;
	if (opts.mode == MODE_IDLE || opts.mode == MODE_SLOW) {
		/* held connections stay on the list, for the report */
		if (c->probe)
			loadgen_conn_free_later(c);
		loadgen_idle_launch(t);
		return;
	}
	loadgen_conn_free_later(c);
	loadgen_session_start(t);
}

/*
 * A session got its greeting (or ended before). With --ramp, at most that
 * many sessions wait for their greeting at once: a burst of C connects
 * at the start would overflow a server's small listen backlog
 * (OpenSMTPD's is 5) and measure that instead of its throughput.
 */
static void
loadgen_greeted(struct loadgen_conn *c, int start_more)
{
	if (!c->ungreeted)
		return;
	c->ungreeted = 0;
	c->t->greeting--;
	if (start_more && opts.ramp > 0)
		loadgen_session_start(c->t);
}

/* Start sessions until the concurrency or the work runs out; stop the
 * loop when everything is done. */
static void
loadgen_session_start(struct loadgen_thread *t)
{
	struct loadgen_conn *c;

	while (t->active < t->conc) {
		if (opts.ramp > 0 && t->greeting >= opts.ramp &&
		    (opts.mode == MODE_SMTP || opts.mode == MODE_POP3))
			break;
		if (opts.mode == MODE_POP3) {
			if (t->sessions_left == 0)
				break;
			t->sessions_left--;
			c = loadgen_conn_new(t);
			c->user = t->next_user % opts.nusers;
			t->next_user += opts.threads;
		} else if (opts.mode == MODE_POLICY) {
			/* a connection per concurrent client; each sends
			 * until the thread's requests are used up */
			if (t->active >= t->budget)
				break;
			c = loadgen_conn_new(t);
		} else {
			if (t->budget == 0)
				break;
			c = loadgen_conn_new(t);
			c->left = opts.per_session < t->budget ?
			    opts.per_session : t->budget;
			t->budget -= c->left;
		}
		if (c->closed) {
			c->closed = 0;
			loadgen_conn_end(c, "connect:fd_limit");
			return;
		}
	}
	if (t->active == 0)
		event_base_loopexit(t->base, NULL);
}

static void
loadgen_hold_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loadgen_thread *t = arg;

	(void)fd;
	(void)what;
	event_base_loopexit(t->base, NULL);
}

static void
loadgen_probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loadgen_thread *t = arg;
	struct loadgen_conn *c;

	(void)fd;
	(void)what;
	c = loadgen_conn_new(t);
	c->probe = 1;
	if (c->closed) {
		c->closed = 0;
		loadgen_conn_end(c, "connect:fd_limit");
	}
}

static void
loadgen_idle_launch(struct loadgen_thread *t)
{
	struct loadgen_conn *c;
	struct timeval tv;

	while (t->to_connect > 0 && t->pending < t->conc) {
		t->to_connect--;
		t->pending++;
		c = loadgen_conn_new(t);
		c->next = t->conns;
		t->conns = c;
		if (c->closed) {
			c->closed = 0;
			loadgen_conn_end(c, "connect:fd_limit");
			return;
		}
	}
	if (t->to_connect == 0 && t->pending == 0 && !t->holding) {
		t->holding = 1;
		loadgen_thread_ready();
		if (opts.hold > 0) {
			tv = loadgen_tv(opts.hold);
			t->hold_ev = evtimer_new(t->base, loadgen_hold_end_cb, t);
			evtimer_add(t->hold_ev, &tv);
		}
		if (t->idx == 0 && opts.mode == MODE_IDLE &&
		    opts.probe_interval > 0) {
			tv = loadgen_tv(opts.probe_interval);
			t->probe_ev = event_new(t->base, -1, EV_PERSIST,
			    loadgen_probe_cb, t);
			event_add(t->probe_ev, &tv);
		}
	}
	/* slow without --hold: done when every client was cut */
	if (opts.mode == MODE_SLOW && t->holding && opts.hold <= 0 &&
	    t->active == 0)
		event_base_loopexit(t->base, NULL);
	if (opts.mode == MODE_IDLE && t->holding && opts.hold <= 0 &&
	    t->active == 0)
		event_base_loopexit(t->base, NULL);
}

/* --max-time: nothing new starts; what is under way finishes. */
static void
loadgen_max_time_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loadgen_thread *t = arg;

	(void)fd;
	(void)what;
	t->max_time_hit = 1;
	t->not_started += t->budget + t->sessions_left;
	t->budget = 0;
	t->sessions_left = 0;
	if (t->active == 0)
		event_base_loopexit(t->base, NULL);
}

static void
loadgen_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loadgen_thread *t = arg;

	(void)fd;
	(void)what;
	t->deadline_hit = 1;
	event_base_loopbreak(t->base);
}

static void
loadgen_smtp_body_init(struct loadgen_thread *t)
{
	long n = opts.size > 400 ? opts.size - 300 : 100;
	size_t i = 0;

	/* lines of 76 characters: no line starts with a dot, so no
	 * transparency stuffing is needed (RFC 5321 4.5.2) */
	t->body = loadgen_alloc((size_t)n + 80);
	while ((long)i < n) {
		size_t line = 76;

		for (size_t j = 0; j < line; j++)
			t->body[i + j] = (char)('a' + (j + (size_t)t->idx) % 26);
		t->body[i + line] = '\r';
		t->body[i + line + 1] = '\n';
		i += line + 2;
	}
	t->body_len = i;
}

static void *
loadgen_thread_main(void *arg)
{
	struct loadgen_thread *t = arg;
	struct timeval tv = loadgen_tv(opts.deadline);

	t->deadline_ev = evtimer_new(t->base, loadgen_deadline_cb, t);
	evtimer_add(t->deadline_ev, &tv);
	if (opts.max_time > 0) {
		struct timeval mt = loadgen_tv(opts.max_time);

		t->max_time_ev = evtimer_new(t->base, loadgen_max_time_cb, t);
		evtimer_add(t->max_time_ev, &mt);
	}
	if (opts.mode == MODE_IDLE || opts.mode == MODE_SLOW)
		loadgen_idle_launch(t);
	else
		loadgen_session_start(t);
	event_base_dispatch(t->base);
	return NULL;
}

/* --- results --------------------------------------------------------- */

static int
loadgen_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
loadgen_pct(const double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0.0;
	/* nearest rank */
	i = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (i == 0)
		i = 1;
	if (i > n)
		i = n;
	return v[i - 1];
}

static void
loadgen_json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void
loadgen_json_kinds(const char *name, const struct loadgen_kind *k)
{
	printf(",\"%s\":{", name);
	for (int i = 0; i < LOADGEN_MAX_KINDS && k[i].name[0] != '\0'; i++) {
		if (i > 0)
			putchar(',');
		loadgen_json_str(k[i].name);
		printf(":%ld", k[i].n);
	}
	putchar('}');
}

static void
loadgen_report(struct loadgen_thread *ts, double elapsed)
{
	struct loadgen_stats all;
	int deadline_hit = 0, max_time_hit = 0;
	long not_started = 0;

	memset(&all, 0, sizeof(all));
	for (int i = 0; i < opts.threads; i++) {
		struct loadgen_stats *s = &ts[i].st;

		all.ok += s->ok;
		all.failed += s->failed;
		all.sessions += s->sessions;
		all.bytes_out += s->bytes_out;
		all.bytes_in += s->bytes_in;
		all.messages += s->messages;
		all.established += s->established;
		all.dropped += s->dropped;
		all.probes += s->probes;
		all.probe_fail += s->probe_fail;
		for (size_t j = 0; j < s->nlat; j++)
			loadgen_latency(&all, s->lat[j]);
		for (size_t j = 0; j < s->naux; j++)
			loadgen_aux(&all, s->aux[j]);
		for (int j = 0; j < LOADGEN_MAX_KINDS; j++) {
			if (s->errors[j].name[0] != '\0')
				loadgen_kind_add(all.errors, s->errors[j].name,
				    s->errors[j].n);
			if (s->answers[j].name[0] != '\0')
				loadgen_kind_add(all.answers,
				    s->answers[j].name, s->answers[j].n);
		}
		if (ts[i].max_time_hit)
			max_time_hit = 1;
		not_started += ts[i].not_started;
		if (ts[i].deadline_hit) {
			deadline_hit = 1;
			/* work never started or never finished */
			if (opts.mode == MODE_SMTP || opts.mode == MODE_POLICY)
				loadgen_kind_add(all.errors, "deadline",
				    ts[i].budget);
		}
		if (opts.mode == MODE_IDLE || opts.mode == MODE_SLOW)
			for (struct loadgen_conn *c = ts[i].conns; c != NULL;
			    c = c->next)
				if (!c->closed)
					all.open_at_end++;
	}
	if (all.nlat > 0)
		qsort(all.lat, all.nlat, sizeof(*all.lat), loadgen_cmp_double);
	if (all.naux > 0)
		qsort(all.aux, all.naux, sizeof(*all.aux), loadgen_cmp_double);
	printf("{\"mode\":\"%s\",\"ok\":%ld,\"failed\":%ld",
	    loadgen_mode_names[opts.mode], all.ok, all.failed);
	loadgen_json_kinds("errors", all.errors);
	printf(",\"elapsed\":%.3f,\"rate\":%.1f", elapsed,
	    elapsed > 0 ? (double)all.ok / elapsed : 0.0);
	printf(",\"latency_ms\":{\"n\":%zu,\"p50\":%.3f,\"p90\":%.3f,"
	    "\"p99\":%.3f,\"max\":%.3f}", all.nlat,
	    loadgen_pct(all.lat, all.nlat, 50), loadgen_pct(all.lat, all.nlat,
	    90), loadgen_pct(all.lat, all.nlat, 99),
	    all.nlat > 0 ? all.lat[all.nlat - 1] : 0.0);
	printf(",\"deadline_hit\":%s,\"threads\":%d,\"concurrency\":%d",
	    deadline_hit ? "true" : "false", opts.threads, opts.concurrency);
	printf(",\"max_time_hit\":%s,\"not_started\":%ld,\"ramp\":%d",
	    max_time_hit ? "true" : "false", not_started, opts.ramp);
	printf(",\"bytes_out\":%ld,\"bytes_in\":%ld", all.bytes_out,
	    all.bytes_in);
	switch (opts.mode) {
	case MODE_SMTP:
		printf(",\"attempted\":%ld,\"sessions\":%ld,\"size\":%ld",
		    opts.messages, all.sessions, opts.size);
		break;
	case MODE_POP3:
		printf(",\"sessions\":%ld,\"messages\":%ld", all.sessions,
		    all.messages);
		break;
	case MODE_POLICY:
		printf(",\"attempted\":%ld", opts.requests);
		loadgen_json_kinds("actions", all.answers);
		break;
	case MODE_IDLE:
		printf(",\"connections\":%ld,\"established\":%ld,"
		    "\"dropped\":%ld,\"open_at_end\":%ld,\"probes\":%ld,"
		    "\"probe_fail\":%ld", opts.connections, all.established,
		    all.dropped, all.open_at_end, all.probes, all.probe_fail);
		break;
	case MODE_SLOW:
		printf(",\"connections\":%ld,\"established\":%ld,\"cut\":%ld,"
		    "\"open_at_end\":%ld", opts.connections, all.established,
		    all.dropped, all.open_at_end);
		printf(",\"cut_after_s\":{\"min\":%.1f,\"p50\":%.1f,"
		    "\"max\":%.1f}", all.naux > 0 ? all.aux[0] : 0.0,
		    loadgen_pct(all.aux, all.naux, 50),
		    all.naux > 0 ? all.aux[all.naux - 1] : 0.0);
		loadgen_json_kinds("server_said", all.answers);
		break;
	}
	printf("}\n");
	fflush(stdout);
	free(all.lat);
	free(all.aux);
}

/* --- options --------------------------------------------------------- */

static void __attribute__((noreturn))
loadgen_usage(void)
{
	fprintf(stderr,
"usage: sekisho-loadgen MODE -p PORT [options]   (bench/README.md)\n"
"modes: smtp pop3 policy idle slow\n"
"common: -H HOST (127.0.0.1) -p PORT -c CONCURRENCY (10) -j THREADS (1)\n"
"        --deadline S (600) --timeout S (60) --allow-remote\n"
"        --max-time S (start nothing new after S; not an error)\n"
"        --ramp N (smtp, pop3: at most N sessions awaiting greeting)\n"
"        --starttls | --tls\n"
"smtp:   --from ADDR --to ADDR [--to ...] --messages N --size BYTES\n"
"        --per-session M (1) --auth USER:PASS --pipelining --helo NAME\n"
"pop3:   --user USER:PASS [--user ...] [--users K: USER has %%d]\n"
"        --rounds R (1) --dele\n"
"policy: --requests N --user USER [--users K] --client-address A\n"
"        --recipient ADDR --sender ADDR --state RCPT|END-OF-MESSAGE\n"
"idle:   --connections N --hold S --probe-interval S (1) --ready-file F\n"
"slow:   --connections N --interval S (1) --hold S --payload TEXT\n"
"        --ready-file F\n");
	exit(2);
}

static long
loadgen_num(const char *s, const char *what, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		loadgen_die("%s: not a number from %ld to %ld: %s", what, min,
		    max, s);
	return v;
}

static double
loadgen_secs(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 86400)
		loadgen_die("%s: not a number of seconds: %s", what, s);
	return v;
}

static int
loadgen_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return 0;
}

static void
loadgen_resolve(void)
{
	struct addrinfo hints, *res, *ai;
	int rv;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((rv = getaddrinfo(opts.host, opts.port, &hints, &res)) != 0)
		loadgen_die("%s port %s: %s", opts.host, opts.port,
		    gai_strerror(rv));
	/* Every address the name has must be loopback: a name that also
	 * resolves elsewhere is not a loopback target. */
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if (!opts.allow_remote && !loadgen_is_loopback(ai->ai_addr))
			loadgen_die("%s is not a loopback address (use "
			    "--allow-remote for another host)", opts.host);
	memcpy(&opts.ss, res->ai_addr, res->ai_addrlen);
	opts.sslen = res->ai_addrlen;
	freeaddrinfo(res);
}

static void
loadgen_add_user(const char *spec)
{
	const char *colon = strchr(spec, ':');
	struct loadgen_user *u;

	opts.users = reallocarray(opts.users, (size_t)opts.nusers + 1,
	    sizeof(*opts.users));
	if (opts.users == NULL)
		loadgen_die("out of memory");
	u = &opts.users[opts.nusers++];
	if (colon == NULL) {
		u->name = loadgen_strdup(spec);
		u->pass = loadgen_strdup("");
	} else {
		u->name = loadgen_strdup(spec);
		u->name[colon - spec] = '\0';
		u->pass = loadgen_strdup(colon + 1);
	}
}

/* --users K: every USER with %d becomes K users, numbered from 1. */
static void
loadgen_expand_users(void)
{
	struct loadgen_user *old = opts.users;
	int nold = opts.nusers;
	char name[512];

	if (opts.users_expand <= 0)
		return;
	opts.users = NULL;
	opts.nusers = 0;
	for (int i = 0; i < nold; i++) {
		if (strstr(old[i].name, "%d") == NULL) {
			loadgen_add_user(old[i].name);
			free(opts.users[opts.nusers - 1].pass);
			opts.users[opts.nusers - 1].pass =
			    loadgen_strdup(old[i].pass);
			continue;
		}
		for (long k = 1; k <= opts.users_expand; k++) {
			struct loadgen_user *u;

			loadgen_expand(name, sizeof(name), old[i].name, k);
			opts.users = reallocarray(opts.users,
			    (size_t)opts.nusers + 1, sizeof(*opts.users));
			if (opts.users == NULL)
				loadgen_die("out of memory");
			u = &opts.users[opts.nusers++];
			u->name = loadgen_strdup(name);
			u->pass = loadgen_strdup(old[i].pass);
		}
	}
	for (int i = 0; i < nold; i++) {
		free(old[i].name);
		free(old[i].pass);
	}
	free(old);
}

enum {
	OPT_DEADLINE = 256, OPT_TIMEOUT, OPT_ALLOW_REMOTE, OPT_STARTTLS,
	OPT_TLS, OPT_AUTH, OPT_FROM, OPT_TO, OPT_MESSAGES, OPT_SIZE,
	OPT_PER_SESSION, OPT_PIPELINING, OPT_HELO, OPT_USER, OPT_USERS,
	OPT_ROUNDS, OPT_DELE, OPT_REQUESTS, OPT_CLIENT, OPT_RECIPIENT,
	OPT_SENDER, OPT_STATE, OPT_CONNECTIONS, OPT_HOLD, OPT_PROBE,
	OPT_INTERVAL, OPT_PAYLOAD, OPT_READY, OPT_STLS, OPT_MAX_TIME,
	OPT_RAMP,
};

static const struct option loadgen_longopts[] = {
	{ "host", required_argument, NULL, 'H' },
	{ "port", required_argument, NULL, 'p' },
	{ "concurrency", required_argument, NULL, 'c' },
	{ "threads", required_argument, NULL, 'j' },
	{ "deadline", required_argument, NULL, OPT_DEADLINE },
	{ "max-time", required_argument, NULL, OPT_MAX_TIME },
	{ "ramp", required_argument, NULL, OPT_RAMP },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE },
	{ "starttls", no_argument, NULL, OPT_STARTTLS },
	{ "stls", no_argument, NULL, OPT_STLS },
	{ "tls", no_argument, NULL, OPT_TLS },
	{ "auth", required_argument, NULL, OPT_AUTH },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "to", required_argument, NULL, OPT_TO },
	{ "messages", required_argument, NULL, OPT_MESSAGES },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "per-session", required_argument, NULL, OPT_PER_SESSION },
	{ "pipelining", no_argument, NULL, OPT_PIPELINING },
	{ "helo", required_argument, NULL, OPT_HELO },
	{ "user", required_argument, NULL, OPT_USER },
	{ "users", required_argument, NULL, OPT_USERS },
	{ "rounds", required_argument, NULL, OPT_ROUNDS },
	{ "dele", no_argument, NULL, OPT_DELE },
	{ "requests", required_argument, NULL, OPT_REQUESTS },
	{ "client-address", required_argument, NULL, OPT_CLIENT },
	{ "recipient", required_argument, NULL, OPT_RECIPIENT },
	{ "sender", required_argument, NULL, OPT_SENDER },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "connections", required_argument, NULL, OPT_CONNECTIONS },
	{ "hold", required_argument, NULL, OPT_HOLD },
	{ "probe-interval", required_argument, NULL, OPT_PROBE },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "payload", required_argument, NULL, OPT_PAYLOAD },
	{ "ready-file", required_argument, NULL, OPT_READY },
	{ NULL, 0, NULL, 0 },
};

static void
loadgen_parse(int argc, char **argv)
{
	int ch, mode = -1;

	if (argc < 2)
		loadgen_usage();
	for (size_t i = 0; i < sizeof(loadgen_mode_names) /
	    sizeof(loadgen_mode_names[0]); i++)
		if (strcmp(argv[1], loadgen_mode_names[i]) == 0)
			mode = (int)i;
	if (mode < 0)
		loadgen_usage();
	opts.mode = (enum loadgen_mode)mode;
	opts.host = "127.0.0.1";
	opts.concurrency = 10;
	opts.threads = 1;
	opts.deadline = 600;
	opts.timeout = 60;
	opts.messages = 100;
	opts.size = 2048;
	opts.per_session = 1;
	opts.helo = "loadgen.invalid";
	opts.rounds = 1;
	opts.requests = 1000;
	opts.client_address = "127.0.0.1";
	opts.recipient = "rcpt@example.org";
	opts.state = "RCPT";
	opts.connections = 100;
	opts.probe_interval = 1;
	opts.interval = 1;
	opts.payload = "EHLO slowloris.invalid";
	optind = 2;
	while ((ch = getopt_long(argc, argv, "H:p:c:j:", loadgen_longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'H':
			opts.host = optarg;
			break;
		case 'p':
			opts.port = optarg;
			break;
		case 'c':
			opts.concurrency = (int)loadgen_num(optarg,
			    "--concurrency", 1, 100000);
			break;
		case 'j':
			opts.threads = (int)loadgen_num(optarg, "--threads",
			    1, 64);
			break;
		case OPT_DEADLINE:
			opts.deadline = loadgen_secs(optarg, "--deadline");
			break;
		case OPT_MAX_TIME:
			opts.max_time = loadgen_secs(optarg, "--max-time");
			break;
		case OPT_RAMP:
			opts.ramp = (int)loadgen_num(optarg, "--ramp", 1,
			    100000);
			break;
		case OPT_TIMEOUT:
			opts.timeout = loadgen_secs(optarg, "--timeout");
			break;
		case OPT_ALLOW_REMOTE:
			opts.allow_remote = 1;
			break;
		case OPT_STARTTLS:
		case OPT_STLS:
			opts.tls = TLS_STARTTLS;
			break;
		case OPT_TLS:
			opts.tls = TLS_IMPLICIT;
			break;
		case OPT_AUTH:
			if (strchr(optarg, ':') == NULL)
				loadgen_die("--auth wants USER:PASS");
			opts.auth = optarg;
			break;
		case OPT_FROM:
			opts.from = optarg;
			break;
		case OPT_TO:
			opts.to = reallocarray(opts.to, (size_t)opts.nto + 1,
			    sizeof(*opts.to));
			if (opts.to == NULL)
				loadgen_die("out of memory");
			opts.to[opts.nto++] = optarg;
			break;
		case OPT_MESSAGES:
			opts.messages = loadgen_num(optarg, "--messages", 1,
			    100000000);
			break;
		case OPT_SIZE:
			opts.size = loadgen_num(optarg, "--size", 1, 100000000);
			break;
		case OPT_PER_SESSION:
			opts.per_session = loadgen_num(optarg, "--per-session",
			    1, 100000000);
			break;
		case OPT_PIPELINING:
			opts.pipelining = 1;
			break;
		case OPT_HELO:
			opts.helo = optarg;
			break;
		case OPT_USER:
			loadgen_add_user(optarg);
			break;
		case OPT_USERS:
			opts.users_expand = loadgen_num(optarg, "--users", 1,
			    1000000);
			break;
		case OPT_ROUNDS:
			opts.rounds = loadgen_num(optarg, "--rounds", 1,
			    1000000);
			break;
		case OPT_DELE:
			opts.dele = 1;
			break;
		case OPT_REQUESTS:
			opts.requests = loadgen_num(optarg, "--requests", 1,
			    100000000);
			break;
		case OPT_CLIENT:
			opts.client_address = optarg;
			break;
		case OPT_RECIPIENT:
			opts.recipient = optarg;
			break;
		case OPT_SENDER:
			opts.sender = optarg;
			break;
		case OPT_STATE:
			opts.state = optarg;
			break;
		case OPT_CONNECTIONS:
			opts.connections = loadgen_num(optarg, "--connections",
			    1, 1000000);
			break;
		case OPT_HOLD:
			opts.hold = loadgen_secs(optarg, "--hold");
			break;
		case OPT_PROBE:
			opts.probe_interval = loadgen_secs(optarg,
			    "--probe-interval");
			break;
		case OPT_INTERVAL:
			opts.interval = loadgen_secs(optarg, "--interval");
			if (opts.interval <= 0)
				loadgen_die("--interval must be above 0");
			break;
		case OPT_PAYLOAD:
			opts.payload = optarg;
			break;
		case OPT_READY:
			opts.ready_file = optarg;
			break;
		default:
			loadgen_usage();
		}
	}
	if (optind != argc || opts.port == NULL)
		loadgen_usage();
	loadgen_expand_users();
	switch (opts.mode) {
	case MODE_SMTP:
		if (opts.from == NULL || opts.nto == 0)
			loadgen_die("smtp needs --from and --to");
		if (opts.nto > STAGE_RING - 4)
			loadgen_die("too many --to");
		break;
	case MODE_POP3:
		if (opts.nusers == 0)
			loadgen_die("pop3 needs --user");
		break;
	case MODE_POLICY:
		if (opts.tls != TLS_NONE)
			loadgen_die("policy has no TLS");
		break;
	case MODE_IDLE:
	case MODE_SLOW:
		break;
	}
	if (opts.mode == MODE_IDLE && opts.hold <= 0)
		opts.hold = 10;
	if (opts.mode == MODE_SLOW || opts.mode == MODE_IDLE) {
		if (opts.hold > 0 && opts.hold >= opts.deadline)
			opts.deadline = opts.hold + 60;
	}
}

/* Room for the connections asked for: raise the soft fd limit. */
static void
loadgen_fd_limit(void)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)opts.concurrency + (rlim_t)opts.connections +
	    64;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	struct loadgen_thread *ts;
	double start, elapsed;
	long total, conc, sessions;

	loadgen_parse(argc, argv);
	loadgen_resolve();
	loadgen_fd_limit();
	signal(SIGPIPE, SIG_IGN);
	/* the hard stop, should the loops fail to stop themselves */
	alarm((unsigned)opts.deadline + 30);

	if (opts.tls != TLS_NONE) {
		if ((loadgen_ssl_ctx = SSL_CTX_new(TLS_client_method())) ==
		    NULL)
			loadgen_die("SSL_CTX_new failed");
		/* loopback benchmark against self-signed certificates:
		 * the peer is not verified */
		SSL_CTX_set_verify(loadgen_ssl_ctx, SSL_VERIFY_NONE, NULL);
	}
	if (opts.threads > opts.concurrency && opts.mode != MODE_IDLE &&
	    opts.mode != MODE_SLOW)
		opts.threads = opts.concurrency;
	ts = loadgen_alloc(sizeof(*ts) * (size_t)opts.threads);
	switch (opts.mode) {
	case MODE_SMTP:
		total = opts.messages;
		break;
	case MODE_POLICY:
		total = opts.requests;
		break;
	default:
		total = opts.connections;
		break;
	}
	sessions = (long)opts.nusers * opts.rounds;
	conc = opts.concurrency;
	for (int i = 0; i < opts.threads; i++) {
		struct loadgen_thread *t = &ts[i];
		long share = total / opts.threads +
		    (i < total % opts.threads);

		t->idx = i;
		if ((t->base = event_base_new()) == NULL)
			loadgen_die("event_base_new failed");
		t->conc = (int)(conc / opts.threads +
		    (i < conc % opts.threads));
		if (t->conc < 1)
			t->conc = 1;
		t->budget = share;
		t->to_connect = share;
		t->sessions_left = sessions / opts.threads +
		    (i < sessions % opts.threads);
		t->next_user = i;
		if (opts.mode == MODE_SMTP)
			loadgen_smtp_body_init(t);
	}
	start = loadgen_now();
	for (int i = 0; i < opts.threads; i++)
		if (i > 0 && pthread_create(&ts[i].tid, NULL,
		    loadgen_thread_main, &ts[i]) != 0)
			loadgen_die("pthread_create failed");
	loadgen_thread_main(&ts[0]);
	for (int i = 1; i < opts.threads; i++)
		pthread_join(ts[i].tid, NULL);
	elapsed = loadgen_now() - start;
	loadgen_report(ts, elapsed);
	return 0;
}
