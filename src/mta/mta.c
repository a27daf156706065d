/*
 * mta: the outbound SMTP/LMTP client (see mta.h).
 *
 * One thread runs one event_base. Jobs arrive from queue threads on a
 * locked list and an eventfd. Each job goes to its destination (keyed by
 * mta_nexthop_key): to an idle connection of that destination, to a new
 * connection when the per-destination and total limits allow, or it
 * waits on the destination until a connection is free.
 *
 * A connection resolves its next hop (c-ares, sockets driven by this
 * loop), walks the address list (MX preference order, random among equal
 * preferences, RFC 5321 5.1) until a server greets it, says EHLO (LHLO
 * for LMTP, RFC 2033 4.1), upgrades with STARTTLS when offered
 * (RFC 3207; required with tls=require; after a failed handshake the
 * destination goes in plaintext for a while, mta_conn_tls_failed),
 * authenticates to a relayhost
 * (RFC 4954 PLAIN) only over TLS that verified the relayhost's
 * certificate and name (or implicit TLS, RFC 8314; docs/delivery.md
 * "Relayhost login"), then runs transactions: MAIL, RCPT..., DATA, sent
 * together when the server offers PIPELINING (RFC 2920 3.1), the
 * message dot-stuffed from the spool file (RFC 5321 4.5.2), or made
 * 7-bit MIME first for a server without 8BITMIME (RFC 6152 3,
 * mta_conn_convert). Between transactions it stays open a short while
 * for the next job.
 *
 * Every recipient of a job ends with a result: SENT, TEMPFAIL (4xx,
 * connection and DNS trouble) or PERMFAIL (5xx, NXDOMAIN, null MX,
 * over SIZE). What happens next (journal, retry, bounce) is the queue's.
 */
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ares.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/xmalloc.h"
#include "../core/base64.h"
#include "../policy/fcrdns.h"
#include "../queue/mime7.h"
#include "mta.h"
#include "mta_reply.h"

#define MTA_IDLE_TIME	5	/* seconds a connection waits for a job */
#define MTA_BODY_CHUNK	(64 * 1024)
#define MTA_BODY_HIGH	(256 * 1024)	/* output buffered while sending */
#define MTA_REPLY_MAX	(MTA_REPLY_LINE_MAX * MTA_REPLY_LINES)
/* A destination whose STARTTLS handshake failed is tried in plaintext
 * for this long (opportunistic TLS only), remembered for at most this
 * many destinations (the oldest is forgotten first). */
#define MTA_TLS_FALLBACK_TIME	(4 * 3600)
#define MTA_TLS_FALLBACK_MAX	1024

enum mta_state {
	MTA_S_RESOLVE,
	MTA_S_CONNECT,
	MTA_S_GREETING,
	MTA_S_EHLO,
	MTA_S_HELO,
	MTA_S_STARTTLS,
	MTA_S_TLS_HANDSHAKE,
	MTA_S_AUTH,
	MTA_S_IDLE,
	MTA_S_RSET,
	MTA_S_TX,		/* MAIL, RCPT..., DATA replies */
	MTA_S_BODY,
	MTA_S_DOT,		/* final reply(s) */
	MTA_S_QUIT,
};

static const char *const mta_state_names[] = {
	"resolve", "connect", "greeting", "ehlo", "helo", "starttls",
	"tls-handshake", "auth", "idle", "rset", "transaction", "body",
	"dot", "quit",
};

struct mta_addr {
	char			*name;		/* host name (MX target) */
	struct sockaddr_storage	 ss;
	socklen_t		 len;
};

struct mta_dest;

struct mta_conn {
	struct mta		*m;
	struct mta_dest		*dest;
	enum mta_state		 state;
	struct bufferevent	*bev;
	SSL			*ssl;
	int			 tls;		/* TLS is up */
	struct event		*idle_ev;

	/* resolving */
	char			**mx;		/* names in order to try */
	size_t			 mx_count, mx_next;
	struct mta_addr		*addrs;
	size_t			 addr_count, addr_next;
	int			 resolving;	/* a c-ares query is out */
	char			 fail_status[16];
	char			*fail_text;	/* why the last address failed */
	int			 fail_perm;

	struct mta_ehlo		 ehlo;
	char			*peer;		/* "name[ip]:port" */

	struct mta_job		*job;		/* the transaction's */
	size_t			 tx_step;	/* next reply expected */
	size_t			 tx_sent;	/* commands sent */
	size_t			 tx_accepted;	/* RCPTs with 2xx */
	size_t			 tx_lmtp_next;	/* LMTP: next rcpt's reply */
	int			 tx_dirty;	/* RSET needed before MAIL */
	off_t			 body_off;
	struct str		 conv;		/* the 7-bit form, when used */
	int			 conv_on;
	int			 body_bol;	/* at a line start */
	int			 body_last_lf;
	struct mta_reply	 reply;
	int			 dead;		/* freed at the next turn */

	struct mta_conn		*next;		/* dest's list */
};

struct mta_dest {
	char			*key;
	struct mta_nexthop	 nh;
	struct mta_job		*wait_head, *wait_tail;
	struct mta_conn		*conns;
	int			 nconns;
	struct mta_dest		*next;
};

struct mta {
	struct event_base	*base;
	pthread_t		 thread;
	int			 thread_started;
	int			 efd;
	struct event		*efd_ev;
	struct event		*ctl_ev;
	void			(*ctl_cb)(int, void *);
	void			*ctl_arg;

	pthread_mutex_t		 mutex;		/* guards incoming, stopping */
	struct mta_job		*in_head, *in_tail;
	int			 stopping;

	struct mta_dest		*dests;
	int			 nconns;

	SSL_CTX			*ssl_ctx;	/* opportunistic: no checks */
	SSL_CTX			*relay_ctx;	/* relayhost login: verifies */
	ares_channel		 ares;
	int			 ares_ok;
	struct event		*ares_timer;
	struct mta_sock {
		int		 fd;
		struct event	*ev;
		struct mta_sock	*next;
	}			*ares_socks;

	/* destinations whose TLS handshake failed: plaintext until */
	struct mta_tls_fallback {
		char		*key;
		time_t		 until;		/* CLOCK_MONOTONIC seconds */
	}			*tls_fallback;
	size_t			 tls_fallback_count;

	const struct mta_routes	*routes;
	char			*helo;
	int			 max_conns, max_per_dest;
	int			 connect_timeout, timeout;
};

static void mta_conn_free(struct mta_conn *c);
static void mta_conn_next_addr(struct mta_conn *c);
static void mta_conn_idle(struct mta_conn *c);
static void mta_dest_kick(struct mta *m);
static void mta_ares_timer_set(struct mta *m);

/* --- jobs ------------------------------------------------------------ */

struct mta_job *
mta_job_new(const char *id, const char *sender, int fd, off_t offset,
    size_t size, const struct mta_nexthop *nh)
{
	struct mta_job *job = xcalloc(1, sizeof(*job));

	xstrlcpy(job->id, id, sizeof(job->id));
	job->sender = xstrdup(sender);
	job->fd = fd;
	job->offset = offset;
	job->size = size;
	job->nh = *nh;
	job->nh.host = nh->host != NULL ? xstrdup(nh->host) : NULL;
	job->nh.path = nh->path != NULL ? xstrdup(nh->path) : NULL;
	job->key = mta_nexthop_key(nh);
	return job;
}

void
mta_job_add_rcpt(struct mta_job *job, size_t index, const char *address)
{
	struct mta_job_rcpt *r;

	job->rcpts = xreallocarray(job->rcpts, job->rcpt_count + 1,
	    sizeof(*job->rcpts));
	r = &job->rcpts[job->rcpt_count++];
	memset(r, 0, sizeof(*r));
	r->index = index;
	r->address = xstrdup(address);
	r->result = MTA_PENDING;
}

void
mta_job_free(struct mta_job **jobp)
{
	struct mta_job *job = *jobp;
	size_t i;

	if (job == NULL)
		return;
	for (i = 0; i < job->rcpt_count; i++) {
		free(job->rcpts[i].address);
		free(job->rcpts[i].reply);
	}
	free(job->rcpts);
	free(job->sender);
	free(job->key);
	free(job->relay);
	mta_nexthop_deinit(&job->nh);
	free(job);
	*jobp = NULL;
}

/* Set the result of one recipient, unless it has one already. */
static void
mta_rcpt_set(struct mta_job_rcpt *r, enum mta_result result,
    const char *status, const char *text, int smtp)
{
	if (r->result != MTA_PENDING)
		return;
	r->result = result;
	xstrlcpy(r->status, status, sizeof(r->status));
	free(r->reply);
	r->reply = xstrdup(text);
	r->reply_smtp = smtp;
}

/* A server reply as a result: its enhanced code when it has one of the
 * right class, else X.0.0 (RFC 3463 3.1). */
static void
mta_rcpt_set_reply(struct mta_job_rcpt *r, const struct mta_reply *rep)
{
	struct str line = STR_INIT;
	char status[16];

	mta_reply_oneline(rep, &line, 400);
	if (rep->esc[0] != '\0')
		xstrlcpy(status, rep->esc, sizeof(status));
	else
		snprintf(status, sizeof(status), "%d.0.0", rep->code / 100);
	mta_rcpt_set(r, rep->code / 100 == 2 ? MTA_SENT :
	    rep->code / 100 == 5 ? MTA_PERMFAIL : MTA_TEMPFAIL, status,
	    str_c(&line), 1);
	str_deinit(&line);
}

static void
mta_job_fail_all(struct mta_job *job, enum mta_result result,
    const char *status, const char *text, int smtp)
{
	size_t i;

	for (i = 0; i < job->rcpt_count; i++)
		mta_rcpt_set(&job->rcpts[i], result, status, text, smtp);
}

static void
mta_job_fail_reply(struct mta_job *job, const struct mta_reply *rep)
{
	size_t i;

	for (i = 0; i < job->rcpt_count; i++)
		mta_rcpt_set_reply(&job->rcpts[i], rep);
}

static void
mta_job_done(struct mta_job *job)
{
	/* Nothing is left without a result. */
	mta_job_fail_all(job, MTA_TEMPFAIL, "4.4.2",
	    "connection ended before the transaction did", 0);
	job->done(job, job->done_arg);
}

/* --- destinations ---------------------------------------------------- */

static struct mta_dest *
mta_dest_get(struct mta *m, const struct mta_job *job)
{
	struct mta_dest *d;

	for (d = m->dests; d != NULL; d = d->next)
		if (strcmp(d->key, job->key) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	d->key = xstrdup(job->key);
	d->nh = job->nh;
	d->nh.host = job->nh.host != NULL ? xstrdup(job->nh.host) : NULL;
	d->nh.path = job->nh.path != NULL ? xstrdup(job->nh.path) : NULL;
	d->next = m->dests;
	m->dests = d;
	return d;
}

static struct mta_job *
mta_dest_pop(struct mta_dest *d)
{
	struct mta_job *job = d->wait_head;

	if (job != NULL) {
		if ((d->wait_head = job->next) == NULL)
			d->wait_tail = NULL;
		job->next = NULL;
	}
	return job;
}

static void
mta_dest_push(struct mta_dest *d, struct mta_job *job)
{
	job->next = NULL;
	if (d->wait_tail != NULL)
		d->wait_tail->next = job;
	else
		d->wait_head = job;
	d->wait_tail = job;
}

/* --- the STARTTLS fallback ------------------------------------------ */

static time_t
mta_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Index of key in the fallback table (expired entries go first), or -1. */
static ssize_t
mta_tls_fallback_find(struct mta *m, const char *key)
{
	time_t now = mta_now();
	size_t i;

	for (i = 0; i < m->tls_fallback_count;) {
		if (m->tls_fallback[i].until <= now) {
			free(m->tls_fallback[i].key);
			m->tls_fallback[i] =
			    m->tls_fallback[--m->tls_fallback_count];
			continue;
		}
		if (strcmp(m->tls_fallback[i].key, key) == 0)
			return (ssize_t)i;
		i++;
	}
	return -1;
}

/* Remember that key's handshake failed: plaintext for a while. */
static void
mta_tls_fallback_add(struct mta *m, const char *key)
{
	ssize_t i = mta_tls_fallback_find(m, key);
	size_t j, oldest = 0;

	if (i < 0) {
		if (m->tls_fallback_count == MTA_TLS_FALLBACK_MAX) {
			for (j = 1; j < m->tls_fallback_count; j++)
				if (m->tls_fallback[j].until <
				    m->tls_fallback[oldest].until)
					oldest = j;
			free(m->tls_fallback[oldest].key);
			m->tls_fallback[oldest] =
			    m->tls_fallback[--m->tls_fallback_count];
		}
		if (m->tls_fallback == NULL)
			m->tls_fallback = xcalloc(MTA_TLS_FALLBACK_MAX,
			    sizeof(*m->tls_fallback));
		i = (ssize_t)m->tls_fallback_count++;
		m->tls_fallback[i].key = xstrdup(key);
	}
	m->tls_fallback[i].until = mta_now() + MTA_TLS_FALLBACK_TIME;
}

/* --- connection plumbing --------------------------------------------- */

static void
mta_conn_enter(struct mta_conn *c, enum mta_state s)
{
	log_debug("mta conn dest=%s state %s -> %s", c->dest->key,
	    mta_state_names[c->state], mta_state_names[s]);
	c->state = s;
}

static void
mta_conn_printf(struct mta_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
mta_conn_printf(struct mta_conn *c, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

static void
mta_conn_set_fail(struct mta_conn *c, int perm, const char *status,
    const char *text)
{
	c->fail_perm = perm;
	xstrlcpy(c->fail_status, status, sizeof(c->fail_status));
	free(c->fail_text);
	c->fail_text = xstrdup(text);
}

/*
 * The connection cannot go on. Before a transaction: try the next
 * address. During one: the job's open recipients are deferred and the
 * connection closed.
 */
static void
mta_conn_drop_perm(struct mta_conn *c, int perm, const char *status,
    const char *why)
{
	struct mta_job *job;

	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->ssl = NULL;
	}
	c->tls = 0;
	if (c->state >= MTA_S_TX && c->state <= MTA_S_DOT) {
		job = c->job;
		c->job = NULL;
		log_info("id=%s mta connection lost relay=%s state=%s "
		    "error=\"%s\"", job->id, c->peer != NULL ? c->peer : "-",
		    mta_state_names[c->state], why);
		mta_job_fail_all(job, MTA_TEMPFAIL, status, why, 0);
		mta_job_done(job);
		mta_conn_free(c);
		return;
	}
	if (c->state == MTA_S_IDLE || c->state == MTA_S_RSET ||
	    c->state == MTA_S_QUIT) {
		/* A reused connection went away before its new job
		 * started: the job waits for another connection. */
		if ((job = c->job) != NULL) {
			c->job = NULL;
			job->next = c->dest->wait_head;
			c->dest->wait_head = job;
			if (c->dest->wait_tail == NULL)
				c->dest->wait_tail = job;
		}
		mta_conn_free(c);
		return;
	}
	mta_conn_set_fail(c, perm, status, why);
	mta_conn_next_addr(c);
}

static void
mta_conn_drop(struct mta_conn *c, const char *status, const char *why)
{
	mta_conn_drop_perm(c, 0, status, why);
}

/*
 * The relayhost connection cannot be secured (no STARTTLS, STARTTLS
 * refused, handshake or certificate failure): one line with the
 * reason, then as any failed address: the next one, or the job is
 * deferred with status. The login and the mail are never sent.
 */
static void
mta_conn_tls_refuse(struct mta_conn *c, const char *status, const char *why)
{
	char rbuf[512];

	log_printable(rbuf, sizeof(rbuf), why, strlen(why));
	log_warnx("id=%s mta relayhost tls failed relay=%s dsn=%s "
	    "reason=\"%s\"", c->job != NULL ? c->job->id : "-",
	    c->peer != NULL ? c->peer : "-", status, rbuf);
	mta_conn_drop(c, status, why);
}

static void mta_conn_read(struct bufferevent *bev, void *arg);
static void mta_conn_write(struct bufferevent *bev, void *arg);
static void mta_conn_event(struct bufferevent *bev, short what, void *arg);

static void
mta_conn_timeouts(struct mta_conn *c, int seconds, int read)
{
	struct timeval tv = { seconds, 0 };

	bufferevent_set_timeouts(c->bev, read ? &tv : NULL, &tv);
}

/* --- the end of a job, connection reuse ------------------------------ */

/* The transaction is over: report, then take the next job or idle. */
static void
mta_conn_tx_end(struct mta_conn *c)
{
	struct mta_job *job = c->job;

	c->job = NULL;
	str_deinit(&c->conv);
	c->conv_on = 0;
	if (job != NULL)
		mta_job_done(job);
	if (c->bev == NULL) {
		mta_conn_free(c);
		return;
	}
	mta_conn_idle(c);
}

static void
mta_conn_start_tx(struct mta_conn *c);

static void
mta_conn_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct mta_conn *c = arg;

	(void)fd;
	(void)what;
	mta_conn_enter(c, MTA_S_QUIT);
	mta_conn_printf(c, "QUIT");
}

/* Between jobs: take a waiting one, or wait a little for one. */
static void
mta_conn_idle(struct mta_conn *c)
{
	struct timeval tv = { MTA_IDLE_TIME, 0 };
	struct mta_job *job;

	if ((job = mta_dest_pop(c->dest)) != NULL) {
		c->job = job;
		mta_conn_start_tx(c);
		return;
	}
	mta_conn_enter(c, MTA_S_IDLE);
	if (c->idle_ev == NULL)
		c->idle_ev = evtimer_new(c->m->base, mta_conn_idle_timeout, c);
	evtimer_add(c->idle_ev, &tv);
}

/* --- transactions ----------------------------------------------------- */

static void
mta_conn_send_step(struct mta_conn *c, size_t step)
{
	struct mta_job *job = c->job;

	if (step == 0) {
		struct evbuffer *out = bufferevent_get_output(c->bev);

		evbuffer_add_printf(out, "MAIL FROM:<%s>", job->sender);
		if (c->ehlo.ext & MTA_EXT_SIZE)
			evbuffer_add_printf(out, " SIZE=%zu", c->conv_on ?
			    c->conv.len : job->size);
		if (job->eightbit && (c->ehlo.ext & MTA_EXT_8BITMIME))
			evbuffer_add_printf(out, " BODY=8BITMIME");
		if (job->smtputf8 && (c->ehlo.ext & MTA_EXT_SMTPUTF8))
			evbuffer_add_printf(out, " SMTPUTF8");
		evbuffer_add(out, "\r\n", 2);
	} else if (step <= job->rcpt_count)
		mta_conn_printf(c, "RCPT TO:<%s>", job->rcpts[step - 1].address);
	else
		mta_conn_printf(c, "DATA");
}

/* A spool file read that failed (n < 0) or found the end early (n == 0:
 * errno left as it was, no "Success"). */
static void
mta_job_log_read(const struct mta_job *job, ssize_t n)
{
	if (n < 0)
		log_warn("id=%s mta cannot read spool file", job->id);
	else
		log_warnx("id=%s mta cannot read spool file: it ends early",
		    job->id);
}

/*
 * RFC 6152 3: an 8-bit message to a server without 8BITMIME goes as
 * 7-bit MIME (src/queue/mime7.c), converted in memory from the spool
 * file. 0, or -1 when it cannot be converted (the job has failed).
 * XXX: the conversion runs on the loop, in one go: a few milliseconds
 * a megabyte, bounded by the message size limit.
 */
static int
mta_conn_convert(struct mta_conn *c)
{
	struct mta_job *job = c->job;
	struct str why = STR_INIT;
	const char *error;
	char *buf;
	size_t got = 0;
	ssize_t n;

	str_clear(&c->conv);
	c->conv_on = 0;
	if (!job->eightbit || (c->ehlo.ext & MTA_EXT_8BITMIME))
		return 0;
	buf = xmalloc(job->size + 1);
	while (got < job->size) {
		n = pread(job->fd, buf + got, job->size - got,
		    job->offset + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			mta_job_log_read(job, n);
			free(buf);
			mta_job_fail_all(job, MTA_TEMPFAIL, "4.3.0",
			    "cannot read the spool file", 0);
			return -1;
		}
		got += (size_t)n;
	}
	if (mime7_convert(buf, job->size, &c->conv, &error) < 0) {
		free(buf);
		str_clear(&c->conv);
		str_printf(&why, "the message has 8-bit data, the server does "
		    "not offer 8BITMIME, and it cannot be made 7-bit MIME: %s",
		    error);
		log_info("id=%s mta 7bit conversion failed relay=%s "
		    "reason=\"%s\"", job->id, c->peer, error);
		mta_job_fail_all(job, MTA_PERMFAIL, "5.6.3", str_c(&why), 0);
		str_deinit(&why);
		return -1;
	}
	free(buf);
	c->conv_on = 1;
	log_info("id=%s mta converted to 7bit relay=%s size=%zu converted=%zu",
	    job->id, c->peer, job->size, c->conv.len);
	return 0;
}

static void
mta_conn_start_tx(struct mta_conn *c)
{
	struct mta_job *job = c->job;
	char buf[128];

	if (c->idle_ev != NULL)
		evtimer_del(c->idle_ev);
	free(job->relay);
	job->relay = xstrdup(c->peer);
	/* RFC 1870 6.1: do not send what the server said it refuses. */
	if ((c->ehlo.ext & MTA_EXT_SIZE) && c->ehlo.size > 0 &&
	    job->size > c->ehlo.size) {
		snprintf(buf, sizeof(buf), "message size %zu exceeds the "
		    "server's limit %llu", job->size, c->ehlo.size);
		mta_job_fail_all(job, MTA_PERMFAIL, "5.3.4", buf, 0);
		mta_conn_tx_end(c);
		return;
	}
	/* RFC 6531 3.2: an SMTPUTF8 message needs a server that has it. */
	if (job->smtputf8 && !(c->ehlo.ext & MTA_EXT_SMTPUTF8)) {
		mta_job_fail_all(job, MTA_PERMFAIL, "5.6.7",
		    "the server does not support SMTPUTF8", 0);
		mta_conn_tx_end(c);
		return;
	}
	if (c->tx_dirty) {
		mta_conn_enter(c, MTA_S_RSET);
		mta_conn_printf(c, "RSET");
		return;
	}
	if (mta_conn_convert(c) < 0) {
		mta_conn_tx_end(c);
		return;
	}
	if (c->conv_on && (c->ehlo.ext & MTA_EXT_SIZE) && c->ehlo.size > 0 &&
	    c->conv.len > c->ehlo.size) {
		snprintf(buf, sizeof(buf), "message size %zu (7-bit MIME) "
		    "exceeds the server's limit %llu", c->conv.len,
		    c->ehlo.size);
		mta_job_fail_all(job, MTA_PERMFAIL, "5.3.4", buf, 0);
		mta_conn_tx_end(c);
		return;
	}
	c->tx_step = 0;
	c->tx_sent = 0;
	c->tx_accepted = 0;
	c->tx_lmtp_next = 0;
	c->tx_dirty = 1;
	mta_conn_enter(c, MTA_S_TX);
	mta_conn_timeouts(c, c->m->timeout, 1);
	if (c->ehlo.ext & MTA_EXT_PIPELINING) {
		/* RFC 2920 3.1: MAIL, RCPTs and DATA in one group. */
		for (; c->tx_sent <= job->rcpt_count + 1; c->tx_sent++)
			mta_conn_send_step(c, c->tx_sent);
	} else
		mta_conn_send_step(c, c->tx_sent++);
}

/* Dot-stuff from the spool file into the output, up to the high mark. */
static void
mta_conn_body_fill(struct mta_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct mta_job *job = c->job;
	char buf[MTA_BODY_CHUNK];
	off_t end = job->offset + (off_t)(c->conv_on ? c->conv.len :
	    job->size);
	ssize_t n;
	size_t i, run;

	while (evbuffer_get_length(out) < MTA_BODY_HIGH && c->body_off < end) {
		size_t want = (size_t)(end - c->body_off);

		if (want > sizeof(buf))
			want = sizeof(buf);
		if (c->conv_on) {
			memcpy(buf, c->conv.s + (c->body_off - job->offset),
			    want);
			n = (ssize_t)want;
		} else
			n = pread(job->fd, buf, want, c->body_off);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			mta_job_log_read(job, n);
			mta_conn_drop(c, "4.3.0", "cannot read the spool file");
			return;
		}
		c->body_off += n;
		run = 0;
		for (i = 0; i < (size_t)n; i++) {
			/* RFC 5321 4.5.2 */
			if (c->body_bol && buf[i] == '.') {
				evbuffer_add(out, buf + run, i - run);
				evbuffer_add(out, ".", 1);
				run = i;
			}
			c->body_bol = buf[i] == '\n';
		}
		evbuffer_add(out, buf + run, (size_t)n - run);
		c->body_last_lf = buf[n - 1] == '\n';
	}
	if (c->body_off >= end) {
		if (end > job->offset && !c->body_last_lf)
			evbuffer_add(out, "\r\n", 2);
		evbuffer_add(out, ".\r\n", 3);
		mta_conn_enter(c, MTA_S_DOT);
		mta_conn_timeouts(c, c->m->timeout, 1);
	}
}

static void
mta_conn_tx_reply(struct mta_conn *c)
{
	struct mta_job *job = c->job;
	const struct mta_reply *r = &c->reply;
	size_t step = c->tx_step++;

	if (step == 0) {
		if (r->code / 100 != 2)
			mta_job_fail_reply(job, r);
	} else if (step <= job->rcpt_count) {
		struct mta_job_rcpt *rc = &job->rcpts[step - 1];

		if (r->code / 100 == 2 && rc->result == MTA_PENDING)
			c->tx_accepted++;
		else if (rc->result == MTA_PENDING)
			mta_rcpt_set_reply(rc, r);
	} else {
		/* the DATA reply */
		if (r->code == 354 && c->tx_accepted > 0) {
			c->body_off = job->offset;
			c->body_bol = 1;
			c->body_last_lf = 1;
			mta_conn_enter(c, MTA_S_BODY);
			/* Reading stays on; the write side has its own
			 * timeout while the body goes out. */
			mta_conn_timeouts(c, c->m->timeout, 0);
			mta_conn_body_fill(c);
			return;
		}
		if (r->code == 354) {
			/* Nobody accepted but the server wants data: an
			 * empty message, whose reply is ignored. */
			mta_conn_printf(c, ".");
			mta_conn_enter(c, MTA_S_DOT);
			c->tx_accepted = 0;
			return;
		}
		if (c->tx_accepted > 0) {
			/* DATA refused: the accepted recipients get it */
			size_t i;

			for (i = 0; i < job->rcpt_count; i++)
				if (job->rcpts[i].result == MTA_PENDING)
					mta_rcpt_set_reply(&job->rcpts[i], r);
		}
		mta_conn_tx_end(c);
		return;
	}
	if (c->ehlo.ext & MTA_EXT_PIPELINING)
		return;
	/* One at a time: stop early when nothing can follow. */
	if (step == 0 && r->code / 100 != 2) {
		mta_conn_tx_end(c);
		return;
	}
	if (step == job->rcpt_count && c->tx_accepted == 0) {
		mta_conn_tx_end(c);
		return;
	}
	mta_conn_send_step(c, c->tx_sent++);
}

static void
mta_conn_dot_reply(struct mta_conn *c)
{
	struct mta_job *job = c->job;
	size_t i;

	if (c->tx_accepted == 0) {
		mta_conn_tx_end(c);
		return;
	}
	if (job->nh.proto == MTA_PROTO_LMTP) {
		/* RFC 2033 4.2: one reply per accepted recipient, in
		 * RCPT order. */
		for (i = c->tx_lmtp_next; i < job->rcpt_count; i++)
			if (job->rcpts[i].result == MTA_PENDING)
				break;
		if (i < job->rcpt_count) {
			mta_rcpt_set_reply(&job->rcpts[i], &c->reply);
			c->tx_lmtp_next = i + 1;
		}
		for (i = c->tx_lmtp_next; i < job->rcpt_count; i++)
			if (job->rcpts[i].result == MTA_PENDING)
				return;
	} else {
		for (i = 0; i < job->rcpt_count; i++)
			if (job->rcpts[i].result == MTA_PENDING)
				mta_rcpt_set_reply(&job->rcpts[i], &c->reply);
	}
	c->tx_dirty = 0;
	mta_conn_tx_end(c);
}

/* --- session setup ---------------------------------------------------- */

static void
mta_conn_send_ehlo(struct mta_conn *c)
{
	mta_conn_enter(c, MTA_S_EHLO);
	mta_conn_printf(c, "%s %s",
	    c->dest->nh.proto == MTA_PROTO_LMTP ? "LHLO" : "EHLO", c->m->helo);
}

static void
mta_conn_auth(struct mta_conn *c)
{
	struct str plain = STR_INIT, b64 = STR_INIT;
	const char *user, *password;

	/* Never in the clear, never to a server that was not verified
	 * (mta_conn_ready and the handshake see to it; this is the last
	 * line). */
	if (!c->tls || c->ssl == NULL || (c->dest->nh.verify &&
	    SSL_get_verify_result(c->ssl) != X509_V_OK)) {
		mta_conn_tls_refuse(c, "4.7.4", "no verified TLS for the login");
		return;
	}
	mta_routes_auth(c->m->routes, &user, &password);
	if (user == NULL || password == NULL) {
		mta_conn_drop(c, "4.7.0", "no relayhost login");
		return;
	}
	if (!(c->ehlo.ext & MTA_EXT_AUTH_PLAIN)) {
		mta_conn_set_fail(c, 0, "4.7.0",
		    "relayhost does not offer AUTH PLAIN");
		mta_conn_drop(c, "4.7.0", "relayhost does not offer AUTH PLAIN");
		return;
	}
	/* RFC 4616 2: authzid NUL authcid NUL passwd */
	str_append_c(&plain, '\0');
	str_append(&plain, user);
	str_append_c(&plain, '\0');
	str_append(&plain, password);
	base64_encode(str_c(&plain), plain.len, &b64);
	mta_conn_enter(c, MTA_S_AUTH);
	mta_conn_printf(c, "AUTH PLAIN %s", str_c(&b64));
	explicit_bzero(plain.s, plain.len);
	explicit_bzero(b64.s, b64.len);
	str_deinit(&plain);
	str_deinit(&b64);
}

/* EHLO done: STARTTLS, AUTH, or ready for a transaction. */
static void
mta_conn_ready(struct mta_conn *c)
{
	if (!c->tls && (c->ehlo.ext & MTA_EXT_STARTTLS) &&
	    c->dest->nh.path == NULL && !c->dest->nh.auth &&
	    c->dest->nh.tls != MTA_TLS_REQUIRE &&
	    mta_tls_fallback_find(c->m, c->dest->key) >= 0) {
		/* the handshake failed lately: opportunistic, in the
		 * clear (mta_conn_tls_failed) */
		log_info("id=%s mta starttls skipped dest=%s relay=%s "
		    "reason=\"handshake failed lately\"",
		    c->job != NULL ? c->job->id : "-", c->dest->key, c->peer);
		c->ehlo.ext &= ~MTA_EXT_STARTTLS;
	}
	if (!c->tls && (c->ehlo.ext & MTA_EXT_STARTTLS) &&
	    c->dest->nh.path == NULL) {
		mta_conn_enter(c, MTA_S_STARTTLS);
		mta_conn_printf(c, "STARTTLS");
		return;
	}
	if (!c->tls && c->dest->nh.auth) {
		mta_conn_tls_refuse(c, "4.7.4", "relayhost does not offer "
		    "STARTTLS: the login needs TLS");
		return;
	}
	if (!c->tls && c->dest->nh.tls == MTA_TLS_REQUIRE) {
		mta_conn_drop(c, "4.7.4",
		    "TLS is required, but the server does not offer STARTTLS");
		return;
	}
	if (c->dest->nh.auth && c->state != MTA_S_AUTH) {
		mta_conn_auth(c);
		return;
	}
	log_info("mta connected dest=%s relay=%s tls=%s", c->dest->key,
	    c->peer, c->tls ? "yes" : "no");
	mta_conn_timeouts(c, c->m->timeout, 1);
	c->tx_dirty = 0;
	mta_conn_start_tx(c);
}

/*
 * The relayhost login's TLS: the name to verify is the configured
 * relayhost host (not an MX name DNS gave: DNS is not authenticated),
 * RFC 6125 rules by OpenSSL, an address literal against the
 * certificate's IP addresses.
 */
static int
mta_conn_tls_verify_setup(struct mta_conn *c)
{
	const char *host = c->dest->nh.host;
	X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
	unsigned char buf[16];

	if (host == NULL)
		return -1;
	if (!c->dest->nh.verify) {
		/* relayhost_tls_verify = no, loopback only */
		SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	if (inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1)
			return -1;
	} else {
		X509_VERIFY_PARAM_set_hostflags(vp,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(c->ssl, host) != 1 ||
		    SSL_set_tlsext_host_name(c->ssl, host) != 1)
			return -1;
	}
	SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	return 0;
}

static int
mta_conn_starttls(struct mta_conn *c)
{
	struct bufferevent *tls;
	const struct mta_addr *a = &c->addrs[c->addr_next - 1];
	unsigned char buf[16];

	/* RFC 3207 5 / the STARTTLS injection attacks: nothing may
	 * follow the 220 in the clear. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		return -1;
	if (c->dest->nh.auth) {
		if (c->m->relay_ctx == NULL ||
		    (c->ssl = SSL_new(c->m->relay_ctx)) == NULL)
			return -1;
		if (mta_conn_tls_verify_setup(c) < 0) {
			SSL_free(c->ssl);
			c->ssl = NULL;
			return -1;
		}
	} else {
		if ((c->ssl = SSL_new(c->m->ssl_ctx)) == NULL)
			return -1;
		if (a->name != NULL && inet_pton(AF_INET, a->name, buf) != 1 &&
		    inet_pton(AF_INET6, a->name, buf) != 1)
			SSL_set_tlsext_host_name(c->ssl, a->name);
	}
	tls = bufferevent_openssl_filter_new(c->m->base, c->bev, c->ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tls == NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		return -1;
	}
	c->bev = tls;
	bufferevent_setcb(tls, mta_conn_read, mta_conn_write, mta_conn_event,
	    c);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	mta_conn_enter(c, MTA_S_TLS_HANDSHAKE);
	return 0;
}

/* One complete reply in c->reply, in state c->state. */
static void
mta_conn_reply(struct mta_conn *c)
{
	struct mta_reply *r = &c->reply;
	struct str line = STR_INIT;
	int cls = r->code / 100;

	switch (c->state) {
	case MTA_S_GREETING:
		if (r->code != 220) {
			/* RFC 5321 3.1: 554 means no service here; try
			 * the next server. */
			mta_reply_oneline(r, &line, 400);
			mta_conn_drop_perm(c, cls == 5, cls == 5 ? "5.0.0" :
			    "4.0.0", str_c(&line));
			break;
		}
		mta_conn_timeouts(c, c->m->timeout, 1);
		mta_conn_send_ehlo(c);
		break;
	case MTA_S_EHLO:
		if (cls == 2) {
			mta_reply_ehlo(r, &c->ehlo);
			mta_conn_ready(c);
		} else if (cls == 5 && c->dest->nh.proto == MTA_PROTO_SMTP &&
		    !c->tls) {
			/* RFC 5321 3.2: an old server; HELO */
			mta_conn_enter(c, MTA_S_HELO);
			mta_conn_printf(c, "HELO %s", c->m->helo);
		} else {
			mta_reply_oneline(r, &line, 400);
			mta_conn_drop(c, "4.0.0", str_c(&line));
		}
		break;
	case MTA_S_HELO:
		if (cls != 2) {
			mta_reply_oneline(r, &line, 400);
			mta_conn_drop(c, "4.0.0", str_c(&line));
			break;
		}
		memset(&c->ehlo, 0, sizeof(c->ehlo));
		mta_conn_ready(c);
		break;
	case MTA_S_STARTTLS:
		if (r->code != 220 && c->dest->nh.auth) {
			struct str why = STR_INIT;

			mta_reply_oneline(r, &line, 400);
			str_printf(&why, "STARTTLS refused: %s", str_c(&line));
			mta_conn_tls_refuse(c, "4.7.4", str_c(&why));
			str_deinit(&why);
			break;
		}
		if (r->code != 220) {
			if (c->dest->nh.tls == MTA_TLS_REQUIRE) {
				mta_reply_oneline(r, &line, 400);
				mta_conn_drop(c, "4.7.4", str_c(&line));
				break;
			}
			/* opportunistic: go on in the clear */
			c->ehlo.ext &= ~MTA_EXT_STARTTLS;
			mta_conn_ready(c);
			break;
		}
		if (mta_conn_starttls(c) < 0) {
			if (c->dest->nh.auth)
				mta_conn_tls_refuse(c, "4.7.0",
				    "STARTTLS failed");
			else
				mta_conn_drop(c, "4.7.0", "STARTTLS failed");
		}
		break;
	case MTA_S_AUTH:
		if (r->code != 235) {
			mta_reply_oneline(r, &line, 400);
			log_warnx("mta auth failed dest=%s relay=%s reply=\"%s\"",
			    c->dest->key, c->peer, str_c(&line));
			/* XXX: a refused login defers rather than bounces:
			 * it is our configuration, not the recipient. */
			mta_conn_drop(c, "4.7.8", str_c(&line));
			break;
		}
		mta_conn_ready(c);
		break;
	case MTA_S_RSET:
		if (cls != 2) {
			mta_reply_oneline(r, &line, 400);
			mta_conn_drop(c, "4.0.0", str_c(&line));
			break;
		}
		c->tx_dirty = 0;
		mta_conn_start_tx(c);
		break;
	case MTA_S_TX:
		mta_conn_tx_reply(c);
		break;
	case MTA_S_DOT:
		mta_conn_dot_reply(c);
		break;
	case MTA_S_IDLE:
		/* e.g. 421 before closing: fine, just go */
		mta_conn_free(c);
		break;
	case MTA_S_QUIT:
		mta_conn_free(c);
		break;
	default:
		mta_conn_drop(c, "4.4.2", "unexpected reply");
		break;
	}
	str_deinit(&line);
}

static void
mta_conn_read(struct bufferevent *bev, void *arg)
{
	struct mta_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const char *error;
	size_t len, consumed;
	int r;

	while ((len = evbuffer_get_length(in)) > 0) {
		const char *p;

		if (len > MTA_REPLY_MAX)
			len = MTA_REPLY_MAX;
		p = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
		r = mta_reply_parse(p, len, &c->reply, &consumed, &error);
		if (r == 0 && len < MTA_REPLY_MAX)
			return;
		if (r <= 0) {
			mta_conn_drop(c, "4.4.2", r < 0 ? error :
			    "reply too long");
			return;
		}
		evbuffer_drain(in, consumed);
		if (c->state == MTA_S_BODY) {
			/* A reply before the end of the data can only be
			 * an error ending the session. */
			mta_conn_drop(c, "4.4.2", "reply during DATA");
			return;
		}
		mta_conn_reply(c);
		/* c stays allocated until the next loop turn: dead or with
		 * a new bufferevent (TLS), stop reading from this one. */
		if (c->dead || c->bev != bev)
			return;
	}
}

static void
mta_conn_write(struct bufferevent *bev, void *arg)
{
	struct mta_conn *c = arg;

	(void)bev;
	if (c->state == MTA_S_BODY)
		mta_conn_body_fill(c);
}

/*
 * A STARTTLS handshake failed (after the 220). Opportunistic TLS
 * (RFC 7435): the destination's next connections go in plaintext for
 * MTA_TLS_FALLBACK_TIME, as Postfix does; never with tls=require, nor
 * for the relayhost login (it needs verified TLS, and fails before
 * this) nor implicit TLS. This attempt still fails (the connection is
 * unusable), and the job goes on to the next address or is deferred.
 */
static void
mta_conn_tls_failed(struct mta_conn *c, const char *why)
{
	char rbuf[512];

	if (c->dest->nh.auth || c->dest->nh.tls == MTA_TLS_REQUIRE ||
	    c->dest->nh.tls_implicit || c->dest->nh.proto != MTA_PROTO_SMTP)
		return;
	mta_tls_fallback_add(c->m, c->dest->key);
	log_printable(rbuf, sizeof(rbuf), why, strlen(why));
	log_warnx("id=%s mta starttls failed dest=%s relay=%s "
	    "reason=\"%s\": next attempt in plaintext",
	    c->job != NULL ? c->job->id : "-", c->dest->key,
	    c->peer != NULL ? c->peer : "-", rbuf);
}

/*
 * Why the connection ended, for the log and the DSN. An errno is
 * printed only when there is one: a peer that closes (also in the middle
 * of a reply, or without a TLS close_notify) leaves errno 0, which
 * strerror would turn into "Success".
 */
static void
mta_conn_event_text(struct mta_conn *c, short what, int err, char *buf,
    size_t size)
{
	const char *state = mta_state_names[c->state];
	const char *mid = "";
	unsigned long e = 0;
	char ebuf[160];

	if (c->bev != NULL &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		mid = " in the middle of a reply";
	if (c->ssl != NULL && c->bev != NULL)
		e = bufferevent_get_openssl_error(c->bev);
	/* a TLS peer that closed without close_notify: closed, all the
	 * same (OpenSSL 3) */
	if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING &&
	    c->state != MTA_S_TLS_HANDSHAKE) {
		e = 0;
		err = 0;
	}
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(buf, size, "timeout in state %s", state);
	else if (c->state == MTA_S_TLS_HANDSHAKE && e != 0) {
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		snprintf(buf, size, "TLS handshake failed: %s", ebuf);
	} else if (c->state == MTA_S_TLS_HANDSHAKE)
		snprintf(buf, size, "TLS handshake failed: %s",
		    (what & BEV_EVENT_EOF) || err == 0 ? "connection closed "
		    "by the remote" : evutil_socket_error_to_string(err));
	else if ((what & BEV_EVENT_EOF) || (err == 0 && e == 0))
		snprintf(buf, size, "connection closed by the remote%s in "
		    "state %s", mid, state);
	else if (e != 0) {
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		snprintf(buf, size, "TLS error%s in state %s: %s", mid, state,
		    ebuf);
	} else
		snprintf(buf, size, "%s%s in state %s",
		    evutil_socket_error_to_string(err), mid, state);
}

static void
mta_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct mta_conn *c = arg;
	char buf[256];
	unsigned long e;
	int err = EVUTIL_SOCKET_ERROR();

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == MTA_S_TLS_HANDSHAKE) {
			if (c->dest->nh.auth && c->dest->nh.verify &&
			    (SSL_get0_peer_certificate(c->ssl) == NULL ||
			    SSL_get_verify_result(c->ssl) != X509_V_OK)) {
				/* not reached with SSL_VERIFY_PEER */
				mta_conn_tls_refuse(c, "4.7.5",
				    "certificate not verified");
				return;
			}
			c->tls = 1;
			log_debug("mta tls dest=%s relay=%s version=%s",
			    c->dest->key, c->peer, SSL_get_version(c->ssl));
			if (c->dest->nh.tls_implicit) {
				/* RFC 8314 3.3: the greeting comes over
				 * TLS */
				mta_conn_enter(c, MTA_S_GREETING);
				return;
			}
			mta_conn_send_ehlo(c);
			return;
		}
		if (c->dest->nh.tls_implicit) {
			if (mta_conn_starttls(c) < 0) {
				if (c->dest->nh.auth)
					mta_conn_tls_refuse(c, "4.7.0",
					    "cannot start TLS");
				else
					mta_conn_drop(c, "4.7.0",
					    "cannot start TLS");
			}
			return;
		}
		mta_conn_enter(c, MTA_S_GREETING);
		return;
	}
	if (c->state == MTA_S_TLS_HANDSHAKE && c->dest->nh.auth) {
		long v = c->ssl != NULL ? SSL_get_verify_result(c->ssl) :
		    X509_V_OK;

		if (v != X509_V_OK)
			snprintf(buf, sizeof(buf), "certificate verify failed: "
			    "%s", X509_verify_cert_error_string(v));
		else if ((what & BEV_EVENT_ERROR) &&
		    (e = bufferevent_get_openssl_error(c->bev)) != 0) {
			char ebuf[160];

			ERR_error_string_n(e, ebuf, sizeof(ebuf));
			snprintf(buf, sizeof(buf), "TLS handshake failed: %s",
			    ebuf);
		} else
			snprintf(buf, sizeof(buf), "TLS handshake failed: %s",
			    (what & BEV_EVENT_TIMEOUT) ? "timeout" :
			    (what & BEV_EVENT_EOF) ? "connection closed by "
			    "the server" : "connection error");
		mta_conn_tls_refuse(c, "4.7.5", buf);
		return;
	}
	mta_conn_event_text(c, what, err, buf, sizeof(buf));
	if (c->state == MTA_S_TLS_HANDSHAKE)
		mta_conn_tls_failed(c, buf);
	if (c->state == MTA_S_CONNECT || c->state == MTA_S_GREETING)
		mta_conn_drop(c, "4.4.1", buf);
	else
		mta_conn_drop(c, "4.4.2", buf);
}

/* --- connecting -------------------------------------------------------- */

static void
mta_conn_connect(struct mta_conn *c, const struct mta_addr *a)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)&a->ss;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		port = ntohs(s->sin_port);
	} else if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)&a->ss;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		port = ntohs(s->sin6_port);
	}
	free(c->peer);
	if (a->ss.ss_family == AF_UNIX)
		c->peer = xasprintf("%s", c->dest->nh.path);
	else
		c->peer = xasprintf("%s[%s]:%d", a->name, ip, port);
	memset(&c->ehlo, 0, sizeof(c->ehlo));
	c->tls = 0;
	c->bev = bufferevent_socket_new(c->m->base, -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL)
		fatalx("mta: bufferevent_socket_new");
	bufferevent_setcb(c->bev, mta_conn_read, mta_conn_write,
	    mta_conn_event, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, MTA_BODY_HIGH / 2, 0);
	mta_conn_timeouts(c, c->m->connect_timeout, 1);
	mta_conn_enter(c, MTA_S_CONNECT);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	log_debug("mta connect dest=%s relay=%s", c->dest->key, c->peer);
	if (bufferevent_socket_connect(c->bev, (const struct sockaddr *)&a->ss,
	    (int)a->len) < 0) {
		char buf[128];

		snprintf(buf, sizeof(buf), "connect: %s", errno != 0 ?
		    strerror(errno) : "cannot start the connection");
		bufferevent_free(c->bev);
		c->bev = NULL;
		mta_conn_set_fail(c, 0, "4.4.1", buf);
		mta_conn_next_addr(c);
	}
}

static void mta_conn_resolve_next(struct mta_conn *c);

/* Every address failed: the job (and the others waiting for this
 * destination, which would fail the same way now) get the last error. */
static void
mta_conn_give_up(struct mta_conn *c)
{
	struct mta_job *job;
	const char *text = c->fail_text != NULL ? c->fail_text :
	    "no address to connect to";
	const char *status = c->fail_status[0] != '\0' ? c->fail_status :
	    "4.4.1";
	enum mta_result res = c->fail_perm ? MTA_PERMFAIL : MTA_TEMPFAIL;

	if (c->job != NULL) {
		free(c->job->relay);
		c->job->relay = xstrdup(c->peer != NULL ? c->peer :
		    c->dest->nh.host != NULL ? c->dest->nh.host : "-");
		mta_job_fail_all(c->job, res, status, text, 0);
		job = c->job;
		c->job = NULL;
		mta_job_done(job);
	}
	while ((job = mta_dest_pop(c->dest)) != NULL) {
		job->relay = xstrdup(c->peer != NULL ? c->peer :
		    c->dest->nh.host != NULL ? c->dest->nh.host : "-");
		mta_job_fail_all(job, res, status, text, 0);
		mta_job_done(job);
	}
	mta_conn_free(c);
}

static void
mta_conn_next_addr(struct mta_conn *c)
{
	if (c->addr_next < c->addr_count) {
		mta_conn_connect(c, &c->addrs[c->addr_next++]);
		return;
	}
	mta_conn_resolve_next(c);
}

static void
mta_conn_add_addr(struct mta_conn *c, const char *name,
    const struct sockaddr *sa, socklen_t len, int port)
{
	struct mta_addr *a;

	if (len > sizeof(a->ss))
		return;
	c->addrs = xreallocarray(c->addrs, c->addr_count + 1,
	    sizeof(*c->addrs));
	a = &c->addrs[c->addr_count++];
	memset(a, 0, sizeof(*a));
	a->name = xstrdup(name);
	memcpy(&a->ss, sa, len);
	a->len = len;
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)(void *)&a->ss)->sin_port =
		    htons((uint16_t)port);
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)&a->ss)->sin6_port =
		    htons((uint16_t)port);
}

static void
mta_conn_clear_addrs(struct mta_conn *c)
{
	size_t i;

	for (i = 0; i < c->addr_count; i++)
		free(c->addrs[i].name);
	xfree(&c->addrs);
	c->addr_count = c->addr_next = 0;
}

static void
mta_ares_addrinfo_cb(void *arg, int status, int timeouts,
    struct ares_addrinfo *res)
{
	struct mta_conn *c = arg;
	struct ares_addrinfo_node *n;
	const char *name = c->mx[c->mx_next - 1];
	char buf[300];

	(void)timeouts;
	c->resolving = 0;
	if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION) {
		if (res != NULL)
			ares_freeaddrinfo(res);
		return;
	}
	mta_conn_clear_addrs(c);
	if (status == ARES_SUCCESS && res != NULL) {
		for (n = res->nodes; n != NULL; n = n->ai_next)
			if (n->ai_family == AF_INET || n->ai_family == AF_INET6)
				mta_conn_add_addr(c, name, n->ai_addr,
				    (socklen_t)n->ai_addrlen, c->dest->nh.port);
	}
	if (res != NULL)
		ares_freeaddrinfo(res);
	if (c->addr_count == 0) {
		/* RFC 5321 5.1: a name that does not resolve is skipped
		 * like an unreachable one. With one name only (no MX,
		 * or a given host), NXDOMAIN is permanent. */
		int perm = status == ARES_ENOTFOUND && c->mx_count == 1 &&
		    c->fail_text == NULL;

		snprintf(buf, sizeof(buf), "cannot resolve %s: %s", name,
		    status == ARES_SUCCESS ? "no address" :
		    ares_strerror(status));
		mta_conn_set_fail(c, perm, perm ? "5.1.2" : "4.4.3", buf);
	}
	mta_conn_next_addr(c);
}

/* 1 when name is an IPv4 or IPv6 literal, added as c's one address. */
static int
mta_conn_add_literal(struct mta_conn *c, const char *name)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, name, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, name, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		len = sizeof(*sin6);
	} else
		return 0;
	mta_conn_add_addr(c, name, (struct sockaddr *)&ss, len,
	    c->dest->nh.port);
	return 1;
}

/* Addresses of the next name in c->mx, or give up. */
static void
mta_conn_resolve_next(struct mta_conn *c)
{
	struct ares_addrinfo_hints hints;
	const char *name;

	if (c->mx_next >= c->mx_count) {
		mta_conn_give_up(c);
		return;
	}
	name = c->mx[c->mx_next++];
	mta_conn_enter(c, MTA_S_RESOLVE);
	mta_conn_clear_addrs(c);
	/* An address literal needs no look-up. */
	if (mta_conn_add_literal(c, name)) {
		mta_conn_next_addr(c);
		return;
	}
	if (!c->m->ares_ok) {
		mta_conn_set_fail(c, 0, "4.4.3", "no DNS resolver");
		mta_conn_resolve_next(c);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	c->resolving = 1;
	ares_getaddrinfo(c->m->ares, name, NULL, &hints, mta_ares_addrinfo_cb,
	    c);
	mta_ares_timer_set(c->m);
}

static int
mta_mx_cmp(const void *a, const void *b)
{
	const struct ares_mx_reply *const *x = a, *const *y = b;

	return (int)(*x)->priority - (int)(*y)->priority;
}

static void
mta_ares_mx_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct mta_conn *c = arg;
	struct ares_mx_reply *mx = NULL, *p, **v = NULL;
	size_t n = 0, i, j;
	char buf[300];

	(void)timeouts;
	c->resolving = 0;
	if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION)
		return;
	if (status == ARES_SUCCESS &&
	    (status = ares_parse_mx_reply(abuf, alen, &mx)) == ARES_SUCCESS) {
		for (p = mx; p != NULL; p = p->next)
			n++;
	}
	if (status == ARES_ENODATA || (status == ARES_SUCCESS && n == 0)) {
		/* RFC 5321 5.1: no MX, the domain itself is the host. */
		c->mx = xcalloc(1, sizeof(*c->mx));
		c->mx[0] = xstrdup(c->dest->nh.host);
		c->mx_count = 1;
		if (mx != NULL)
			ares_free_data(mx);
		mta_conn_resolve_next(c);
		return;
	}
	if (status != ARES_SUCCESS) {
		int perm = status == ARES_ENOTFOUND;

		snprintf(buf, sizeof(buf), "MX look-up of %s: %s",
		    c->dest->nh.host, ares_strerror(status));
		/* RFC 3463: 5.1.2 bad destination system; 4.4.3 the
		 * directory server failed. */
		mta_conn_set_fail(c, perm, perm ? "5.1.2" : "4.4.3", buf);
		mta_conn_give_up(c);
		return;
	}
	v = xcalloc(n, sizeof(*v));
	for (i = 0, p = mx; p != NULL; p = p->next)
		v[i++] = p;
	/* RFC 5321 5.1: random order among equal preferences. */
	for (i = n; i > 1; i--) {
		uint32_t r;

		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
			r = (uint32_t)i;
		j = r % i;
		p = v[i - 1];
		v[i - 1] = v[j];
		v[j] = p;
	}
	qsort(v, n, sizeof(*v), mta_mx_cmp);
	/* RFC 7505 3: one MX with an empty name ("."): no mail. */
	for (i = 0; i < n; i++) {
		if (v[i]->host == NULL || v[i]->host[0] == '\0' ||
		    strcmp(v[i]->host, ".") == 0) {
			if (n == 1) {
				snprintf(buf, sizeof(buf), "domain %s does not "
				    "accept mail (null MX, RFC 7505)",
				    c->dest->nh.host);
				mta_conn_set_fail(c, 1, "5.1.10", buf);
				free(v);
				ares_free_data(mx);
				mta_conn_give_up(c);
				return;
			}
			continue;
		}
		c->mx = xreallocarray(c->mx, c->mx_count + 1, sizeof(*c->mx));
		c->mx[c->mx_count++] = xstrdup(v[i]->host);
	}
	free(v);
	ares_free_data(mx);
	mta_conn_resolve_next(c);
}

static void
mta_conn_new(struct mta *m, struct mta_dest *d, struct mta_job *job)
{
	struct mta_conn *c = xcalloc(1, sizeof(*c));

	c->m = m;
	c->dest = d;
	c->job = job;
	mta_reply_init(&c->reply);
	c->next = d->conns;
	d->conns = c;
	d->nconns++;
	m->nconns++;
	c->state = MTA_S_RESOLVE;
	if (d->nh.path != NULL) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (xstrlcpy(sun.sun_path, d->nh.path, sizeof(sun.sun_path)) >=
		    sizeof(sun.sun_path)) {
			mta_conn_set_fail(c, 0, "4.3.5", "socket path too long");
			mta_conn_give_up(c);
			return;
		}
		c->mx = xcalloc(1, sizeof(*c->mx));
		c->mx[0] = xstrdup(d->nh.path);
		c->mx_count = c->mx_next = 1;
		mta_conn_add_addr(c, d->nh.path, (struct sockaddr *)&sun,
		    sizeof(sun), 0);
		mta_conn_next_addr(c);
		return;
	}
	if (d->nh.mx) {
		if (!m->ares_ok) {
			mta_conn_set_fail(c, 0, "4.4.3", "no DNS resolver");
			mta_conn_give_up(c);
			return;
		}
		c->resolving = 1;
		ares_query(m->ares, d->nh.host, 1 /* C_IN */, 15 /* T_MX */,
		    mta_ares_mx_cb, c);
		mta_ares_timer_set(m);
		return;
	}
	c->mx = xcalloc(1, sizeof(*c->mx));
	c->mx[0] = xstrdup(d->nh.host);
	c->mx_count = 1;
	mta_conn_resolve_next(c);
}

static void
mta_conn_reap(evutil_socket_t fd, short what, void *arg)
{
	struct mta_conn *c = arg;

	(void)fd;
	(void)what;
	free(c);
}

/*
 * Close and forget a connection. The memory itself goes at the next
 * loop turn, so that callers up the stack (a read callback handling
 * several replies) can still look at c->dead.
 */
static void
mta_conn_free(struct mta_conn *c)
{
	struct mta *m = c->m;
	struct mta_dest *d = c->dest;
	struct mta_conn **pp;
	struct timeval zero = { 0, 0 };
	size_t i;

	if (c->dead)
		return;
	c->dead = 1;
	for (pp = &d->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	d->nconns--;
	m->nconns--;
	if (c->job != NULL) {
		struct mta_job *job = c->job;

		c->job = NULL;
		mta_job_done(job);
	}
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->idle_ev != NULL)
		event_free(c->idle_ev);
	c->idle_ev = NULL;
	for (i = 0; i < c->mx_count; i++)
		free(c->mx[i]);
	xfree(&c->mx);
	c->mx_count = 0;
	mta_conn_clear_addrs(c);
	xfree(&c->fail_text);
	xfree(&c->peer);
	str_deinit(&c->conv);
	c->conv_on = 0;
	mta_reply_deinit(&c->reply);
	if (event_base_once(m->base, -1, EV_TIMEOUT, mta_conn_reap, c,
	    &zero) < 0)
		fatalx("mta: event_base_once");
	/* A slot is free: a job may be waiting for it. */
	if (!m->stopping)
		mta_dest_kick(m);
}

/* --- scheduling -------------------------------------------------------- */

/* Give a job a connection now, or leave it waiting on its destination. */
static int
mta_dest_run(struct mta *m, struct mta_dest *d, struct mta_job *job)
{
	struct mta_conn *c;

	for (c = d->conns; c != NULL; c = c->next) {
		if (c->state == MTA_S_IDLE && !c->dead) {
			c->job = job;
			mta_conn_start_tx(c);
			return 1;
		}
	}
	if (d->nconns < m->max_per_dest && m->nconns < m->max_conns) {
		mta_conn_new(m, d, job);
		return 1;
	}
	return 0;
}

/* Start waiting jobs wherever limits allow. */
static void
mta_dest_kick(struct mta *m)
{
	struct mta_dest *d, **pp;
	struct mta_job *job;

	for (d = m->dests; d != NULL; d = d->next) {
		while ((job = d->wait_head) != NULL) {
			mta_dest_pop(d);
			if (!mta_dest_run(m, d, job)) {
				/* back at the head, in order */
				job->next = d->wait_head;
				d->wait_head = job;
				if (d->wait_tail == NULL)
					d->wait_tail = job;
				break;
			}
		}
	}
	/* Forget destinations with nothing left. */
	for (pp = &m->dests; (d = *pp) != NULL;) {
		if (d->nconns == 0 && d->wait_head == NULL) {
			*pp = d->next;
			free(d->key);
			mta_nexthop_deinit(&d->nh);
			free(d);
		} else
			pp = &d->next;
	}
}

static void
mta_efd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mta *m = arg;
	struct mta_job *job, *next;
	uint64_t v;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("mta eventfd read");
	pthread_mutex_lock(&m->mutex);
	job = m->in_head;
	m->in_head = m->in_tail = NULL;
	if (m->stopping)
		event_base_loopbreak(m->base);
	pthread_mutex_unlock(&m->mutex);
	for (; job != NULL; job = next) {
		struct mta_dest *d;

		next = job->next;
		job->next = NULL;
		d = mta_dest_get(m, job);
		mta_dest_push(d, job);
	}
	mta_dest_kick(m);
}

void
mta_submit(struct mta *m, struct mta_job *job)
{
	uint64_t one = 1;

	job->next = NULL;
	pthread_mutex_lock(&m->mutex);
	if (m->in_tail != NULL)
		m->in_tail->next = job;
	else
		m->in_head = job;
	m->in_tail = job;
	pthread_mutex_unlock(&m->mutex);
	if (write(m->efd, &one, sizeof(one)) < 0)
		log_warn("mta eventfd write");
}

/* --- c-ares on this loop ------------------------------------------------ */

/* A socket's event, or the timer's (EV_TIMEOUT: no socket, timeouts only). */
static void
mta_ares_process(evutil_socket_t fd, short what, void *arg)
{
	struct mta *m = arg;

	ares_process_fd(m->ares,
	    (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	mta_ares_timer_set(m);
}

static void
mta_ares_timer_set(struct mta *m)
{
	struct timeval tv, *t;

	if (!m->ares_ok)
		return;
	t = ares_timeout(m->ares, NULL, &tv);
	if (t != NULL)
		evtimer_add(m->ares_timer, t);
	else
		evtimer_del(m->ares_timer);
}

/* c-ares opens, watches and closes its sockets through this. */
static void
mta_ares_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct mta *m = data;
	struct mta_sock *s, **pp;

	for (pp = &m->ares_socks; (s = *pp) != NULL; pp = &s->next)
		if (s->fd == fd)
			break;
	if (s != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (!readable && !writable) {
		if (s != NULL) {
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->next = m->ares_socks;
		m->ares_socks = s;
	}
	s->ev = event_new(m->base, fd, EV_PERSIST |
	    (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0),
	    mta_ares_process, m);
	event_add(s->ev, NULL);
}

static int
mta_ares_init(struct mta *m, const struct config *conf, const char **error_r)
{
	struct ares_options opts;
	int optmask = ARES_OPT_SOCK_STATE_CB, r;
	static char lookups_dns[] = "b";

	if ((r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		*error_r = ares_strerror(r);
		return -1;
	}
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = mta_ares_sock_state;
	opts.sock_state_cb_data = m;
	if (conf->dns_servers_count > 0) {
		/* Named servers only: no /etc/hosts, no search list. */
		opts.lookups = lookups_dns;
		opts.ndomains = 0;
		optmask |= ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS;
	}
	if ((r = ares_init_options(&m->ares, &opts, optmask)) !=
	    ARES_SUCCESS) {
		*error_r = ares_strerror(r);
		return -1;
	}
	m->ares_ok = 1;
	if ((r = fcrdns_set_servers(m->ares, conf)) != ARES_SUCCESS) {
		*error_r = ares_strerror(r);
		return -1;
	}
	m->ares_timer = evtimer_new(m->base, mta_ares_process, m);
	return 0;
}

/* --- the thread --------------------------------------------------------- */

static void
mta_ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mta *m = arg;

	(void)what;
	m->ctl_cb(fd, m->ctl_arg);
}

static void *
mta_thread(void *arg)
{
	struct mta *m = arg;

	event_base_dispatch(m->base);
	return NULL;
}

/*
 * The context for the relayhost login: the peer's chain is verified
 * against relayhost_tls_ca_file, or the system store (the name is set
 * per connection, mta_conn_tls_verify_setup).
 */
static int
mta_relay_ctx_new(struct mta *m, const struct config *conf,
    const char **error_r)
{
	static __thread char errbuf[512];
	const char *ca = conf->relayhost_tls_ca_file;
	const char *reason;

	if ((m->relay_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		*error_r = "mta: SSL_CTX_new failed";
		return -1;
	}
	SSL_CTX_set_min_proto_version(m->relay_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(m->relay_ctx, SSL_VERIFY_PEER, NULL);
	if (ca != NULL && ca[0] != '\0') {
		if (SSL_CTX_load_verify_locations(m->relay_ctx, ca, NULL) == 1)
			return 0;
		reason = ERR_reason_error_string(ERR_get_error());
		snprintf(errbuf, sizeof(errbuf), "relayhost_tls_ca_file %s: "
		    "%s", ca, reason != NULL ? reason : "cannot load");
		ERR_clear_error();
		*error_r = errbuf;
		return -1;
	}
	if (SSL_CTX_set_default_verify_paths(m->relay_ctx) != 1) {
		ERR_clear_error();
		*error_r = "mta: cannot load the system CA store";
		return -1;
	}
	return 0;
}

struct mta *
mta_start(const struct config *conf, const struct mta_routes *routes,
    int ctl_fd, void (*ctl_cb)(int, void *), void *ctl_arg,
    const char **error_r)
{
	struct mta *m = xcalloc(1, sizeof(*m));
	sigset_t all, old;
	int err;

	m->efd = -1;
	pthread_mutex_init(&m->mutex, NULL);
	m->routes = routes;
	m->helo = xstrdup(conf->outbound_helo != NULL &&
	    conf->outbound_helo[0] != '\0' ? conf->outbound_helo :
	    conf->hostname);
	m->max_conns = conf->outbound_connections;
	m->max_per_dest = conf->outbound_connections_per_destination;
	m->connect_timeout = conf->outbound_connect_timeout;
	m->timeout = conf->outbound_timeout;
	if ((m->base = event_base_new()) == NULL) {
		*error_r = "mta: event_base_new failed";
		goto fail;
	}
	if ((m->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		*error_r = "mta: SSL_CTX_new failed";
		goto fail;
	}
	/*
	 * XXX: opportunistic TLS (RFC 7435) does not authenticate the
	 * server: without DANE or MTA-STS there is no name to check an
	 * MX certificate against. tls=require means encrypted, as
	 * Postfix's "encrypt" level.
	 */
	SSL_CTX_set_verify(m->ssl_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(m->ssl_ctx, TLS1_2_VERSION);
	if (conf->relayhost_auth_file != NULL &&
	    conf->relayhost_auth_file[0] != '\0' &&
	    mta_relay_ctx_new(m, conf, error_r) < 0)
		goto fail;
	if (mta_ares_init(m, conf, error_r) < 0)
		goto fail;
	if ((m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		*error_r = "mta: eventfd failed";
		goto fail;
	}
	m->efd_ev = event_new(m->base, m->efd, EV_READ | EV_PERSIST,
	    mta_efd_cb, m);
	event_add(m->efd_ev, NULL);
	if (ctl_fd >= 0) {
		m->ctl_cb = ctl_cb;
		m->ctl_arg = ctl_arg;
		m->ctl_ev = event_new(m->base, ctl_fd, EV_READ | EV_PERSIST,
		    mta_ctl_cb, m);
		event_add(m->ctl_ev, NULL);
	}
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&m->thread, NULL, mta_thread, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		*error_r = "mta: cannot start its thread";
		goto fail;
	}
	m->thread_started = 1;
	return m;
fail:
	mta_stop(&m);
	return NULL;
}

void
mta_stop(struct mta **mp)
{
	struct mta *m = *mp;
	struct mta_dest *d;
	struct mta_conn *c;
	struct mta_job *job, *next;
	struct mta_sock *s;
	uint64_t one = 1;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mutex);
	m->stopping = 1;
	pthread_mutex_unlock(&m->mutex);
	if (m->thread_started) {
		if (write(m->efd, &one, sizeof(one)) < 0)
			log_warn("mta eventfd write");
		pthread_join(m->thread, NULL);
	}
	/* The loop is stopped: tear down here. c-ares first, so that no
	 * callback of a query runs on a freed connection. */
	if (m->ares_ok) {
		ares_destroy(m->ares);
		m->ares_ok = 0;
	}
	while ((d = m->dests) != NULL) {
		while ((c = d->conns) != NULL) {
			if (c->job != NULL)
				c->job->aborted = 1;
			mta_conn_free(c);
		}
		while ((job = mta_dest_pop(d)) != NULL) {
			job->aborted = 1;
			job->done(job, job->done_arg);
		}
		m->dests = d->next;
		free(d->key);
		mta_nexthop_deinit(&d->nh);
		free(d);
	}
	for (job = m->in_head; job != NULL; job = next) {
		next = job->next;
		job->aborted = 1;
		job->done(job, job->done_arg);
	}
	m->in_head = m->in_tail = NULL;
	while (m->tls_fallback_count > 0)
		free(m->tls_fallback[--m->tls_fallback_count].key);
	xfree(&m->tls_fallback);
	/* run the deferred frees */
	if (m->base != NULL)
		event_base_loop(m->base, EVLOOP_NONBLOCK);
	while ((s = m->ares_socks) != NULL) {
		m->ares_socks = s->next;
		if (s->ev != NULL)
			event_free(s->ev);
		free(s);
	}
	if (m->ares_timer != NULL)
		event_free(m->ares_timer);
	if (m->efd_ev != NULL)
		event_free(m->efd_ev);
	if (m->ctl_ev != NULL)
		event_free(m->ctl_ev);
	if (m->efd >= 0)
		close(m->efd);
	if (m->ssl_ctx != NULL)
		SSL_CTX_free(m->ssl_ctx);
	if (m->relay_ctx != NULL)
		SSL_CTX_free(m->relay_ctx);
	if (m->base != NULL)
		event_base_free(m->base);
	free(m->helo);
	pthread_mutex_destroy(&m->mutex);
	free(m);
	*mp = NULL;
}
