/*
 * milter: the conversations with the filters (see milter.h). One thread,
 * one event base; every socket is non-blocking and every wait has a
 * timer. The filters' replies are parsed by milter_proto.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/xmalloc.h"
#include "milter.h"
#include "milter_proto.h"

/* Output held for one filter before we wait for it to read. */
#define MILTER_OUT_HIGH		(1024 * 1024)
#define MILTER_OUT_LOW		(256 * 1024)
/* The replies of a filter's plain reject and tempfail (Postfix's). */
#define MILTER_REJECT_REPLY	"550 5.7.1 Message refused by a mail filter"
#define MILTER_TEMPFAIL_REPLY	"451 4.7.1 Message deferred by a mail " \
	"filter, try again later"
/* SMFIR_PROGRESS restarts the wait, but one reply is never waited for
 * more than this many times its timeout. */
#define MILTER_PROGRESS_FACTOR	4
/* Changes one filter may ask for at the end of a message. */
#define MILTER_CHANGES_MAX	1000
/* Idle filter connections kept for their SMTP session's next message
 * (milter.h): at most this many in all, each at most this long. */
#define MILTER_IDLE_MAX		256
#define MILTER_IDLE_SECONDS	15
/* SMFIC_ABORT: what a kept connection's next message starts with */
#define MILTER_ABORT_PACKET	"\0\0\0\001A"

enum milter_step {
	STEP_OPTNEG,		/* awaiting the filter's OPTNEG */
	STEP_CONNECT,
	STEP_HELO,
	STEP_MAIL,
	STEP_RCPT,
	STEP_DATA,
	STEP_HEADER,
	STEP_EOH,
	STEP_BODY,
	STEP_EOM,
	STEP_DONE,
};

struct milter_conv {
	struct milter_engine	*e;
	struct milter_job	*job;
	struct milter_conv	*next, *prev;	/* the engine's list */
	int			 index;		/* filter in job->specs */
	const char		*spec;
	struct bufferevent	*bev;
	struct event		*timer;
	int			 connected;
	uint32_t		 actions, proto;
	enum milter_step	 step;		/* next to send */
	size_t			 item;		/* rcpt, header */
	off_t			 body_pos;
	int			 awaiting;	/* a reply is owed */
	int			 awaited_step;	/* what it answers */
	time_t			 deadline;	/* no progress beyond */
	/* this filter's changes, kept only if it ends well */
	struct milter_change	*changes;
	size_t			 nchanges;
	int			 body_replaced;
	struct str		 body;
	char			*quarantine;
	int			 finishing;
	/* the connection kept for the session (milter.h) */
	char			*key;		/* the session's; NULL: none */
	int			 reused;	/* from the idle pool */
	int			 answered;	/* a reply for this message */
	int			 park_ok;	/* may be kept when it ends */
	int			 fresh;		/* not from the pool */
};

/* A filter's connection waiting for its session's next message. */
struct milter_idle {
	struct milter_engine	*e;
	struct milter_idle	*next, *prev;
	char			*spec;
	char			*key;
	struct bufferevent	*bev;
	struct event		*timer;
	uint32_t		 actions, proto;
};

struct milter_engine {
	pthread_t		 thread;
	struct event_base	*base;
	int			 wake[2];
	struct event		*wake_ev;
	pthread_mutex_t		 lock;
	struct milter_job	**pending;	/* under lock */
	size_t			 npending;
	int			 stopping;	/* under lock */
	int			 joined;	/* halted: under lock */
	struct milter_conv	*convs;		/* the thread's */
	struct milter_idle	*idle;		/* the thread's, newest first */
	size_t			 nidle;
	/* nidle for other threads: a session's end costs the milter
	 * thread a wake-up only while something is kept */
	_Atomic size_t		 nidle_shared;
	char			**ended;	/* sessions over: under lock */
	size_t			 nended;
};

static void milter_conv_next_filter(struct milter_conv *);
static int milter_advance(struct milter_conv *);

/* ---- jobs ---------------------------------------------------------- */

struct milter_job *
milter_job_new(void)
{
	struct milter_job *job = xcalloc(1, sizeof(*job));

	str_init(&job->body);
	job->fd = -1;
	return job;
}

static void
milter_changes_free(struct milter_change *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].name);
		free(c[i].value);
	}
	free(c);
}

void
milter_job_free(struct milter_job *job)
{
	if (job == NULL)
		return;
	for (int i = 0; i < job->nspecs; i++)
		free(job->specs[i]);
	free(job->specs);
	free(job->id);
	free(job->session);
	free(job->hostname);
	free(job->daemon_name);
	free(job->if_addr);
	free(job->client_addr);
	free(job->client_port);
	free(job->helo);
	free(job->tls_version);
	free(job->cipher);
	free(job->auth_type);
	free(job->auth_authen);
	free(job->sender);
	for (size_t i = 0; i < job->nrcpts; i++)
		free(job->rcpts[i]);
	free(job->rcpts);
	for (size_t i = 0; i < job->nheaders; i++) {
		free(job->headers[i].name);
		free(job->headers[i].value);
	}
	free(job->headers);
	free(job->reply);
	free(job->verdict_by);
	free(job->quarantine);
	free(job->quarantine_by);
	milter_changes_free(job->changes, job->nchanges);
	str_deinit(&job->body);
	free(job);
}

/* ---- connections kept for the session ------------------------------ */

/* "QUIT", best effort, when nothing else is queued towards the filter. */
static void
milter_quit(struct bufferevent *bev, int abort_first)
{
	int fd = (int)bufferevent_getfd(bev);

	if (fd >= 0 && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		(void)!write(fd, abort_first ? "\0\0\0\001A\0\0\0\001Q" :
		    "\0\0\0\001Q", abort_first ? 10 : 5);
}

static void
milter_idle_free(struct milter_idle *m, int quit)
{
	struct milter_engine *e = m->e;

	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		e->idle = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	e->nidle--;
	atomic_store(&e->nidle_shared, e->nidle);
	event_free(m->timer);
	if (m->bev != NULL) {
		if (quit)
			milter_quit(m->bev, 0);
		bufferevent_free(m->bev);
	}
	free(m->spec);
	free(m->key);
	free(m);
}

/* An idle filter says something, or closes: it is not asked again on
 * this connection (nothing is owed to it, nothing from it is awaited). */
static void
milter_idle_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	milter_idle_free(arg, 0);
}

static void
milter_idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	milter_idle_free(arg, 0);
}

static void
milter_idle_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	milter_idle_free(arg, 1);
}

/* The kept connection to spec for the session key, taken out of the
 * pool (NULL: none). */
static struct bufferevent *
milter_idle_take(struct milter_engine *e, const char *spec, const char *key,
    uint32_t *actions_r, uint32_t *proto_r)
{
	for (struct milter_idle *m = e->idle; m != NULL; m = m->next) {
		struct bufferevent *bev = m->bev;

		if (strcmp(m->spec, spec) != 0 || strcmp(m->key, key) != 0)
			continue;
		*actions_r = m->actions;
		*proto_r = m->proto;
		m->bev = NULL;
		milter_idle_free(m, 0);
		return bev;
	}
	return NULL;
}

/* Keep c's connection for its session's next message: 0, or -1 when it
 * cannot be kept (c still has it). */
static int
milter_idle_put(struct milter_conv *c)
{
	struct milter_engine *e = c->e;
	struct milter_idle *m, *last = NULL;
	struct timeval tv = { .tv_sec = MILTER_IDLE_SECONDS, .tv_usec = 0 };

	if (c->key == NULL || !c->park_ok || !c->connected ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 ||
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		return -1;	/* more than it should have said: not kept */
	/* one per session and filter; beyond the bound the oldest goes */
	for (m = e->idle; m != NULL; m = m->next) {
		if (strcmp(m->spec, c->spec) == 0 &&
		    strcmp(m->key, c->key) == 0) {
			milter_idle_free(m, 1);
			break;
		}
	}
	if (e->nidle >= MILTER_IDLE_MAX) {
		for (m = e->idle; m != NULL; m = m->next)
			last = m;
		milter_idle_free(last, 1);
	}
	m = xcalloc(1, sizeof(*m));
	m->e = e;
	m->spec = xstrdup(c->spec);
	m->key = xstrdup(c->key);
	m->bev = c->bev;
	m->actions = c->actions;
	m->proto = c->proto;
	m->timer = evtimer_new(e->base, milter_idle_timeout_cb, m);
	bufferevent_setcb(m->bev, milter_idle_read_cb, NULL,
	    milter_idle_event_cb, m);
	m->next = e->idle;
	if (e->idle != NULL)
		e->idle->prev = m;
	e->idle = m;
	e->nidle++;
	atomic_store(&e->nidle_shared, e->nidle);
	evtimer_add(m->timer, &tv);
	c->bev = NULL;
	return 0;
}

/* Session name's kept connections: QUIT (on the thread). */
static void
milter_idle_end_session(struct milter_engine *e, const char *session)
{
	size_t n = strlen(session);
	struct milter_idle *m = e->idle, *next;

	for (; m != NULL; m = next) {
		next = m->next;
		if (strncmp(m->key, session, n) == 0 && m->key[n] == '\n')
			milter_idle_free(m, 1);
	}
}

void
milter_session_name(char buf[MILTER_SESSION_MAX], unsigned chan,
    uint64_t sess)
{
	snprintf(buf, MILTER_SESSION_MAX, "%u.%llu", chan,
	    (unsigned long long)sess);
}

/* The session key of a job: its session and every fact the filter was
 * told at CONNECT and HELO (and the account), so a kept connection is
 * only ever used for what the filter already believes. */
static char *
milter_job_key(const struct milter_job *j)
{
	const char *f[] = { j->client_addr, j->client_port, j->if_addr,
	    j->helo, j->tls_version, j->cipher, j->auth_authen };
	struct str k = STR_INIT;

	if (j->session == NULL)
		return NULL;
	str_append(&k, j->session);
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		str_append(&k, f[i] != NULL ? "\n+" : "\n-");
		if (f[i] != NULL)
			str_append(&k, f[i]);
	}
	return str_steal(&k);
}

/* ---- one filter's end ---------------------------------------------- */

static void
milter_conv_close(struct milter_conv *c, int quit)
{
	if (c->timer != NULL)
		evtimer_del(c->timer);
	if (c->bev != NULL && quit && milter_idle_put(c) == 0)
		;	/* kept for the session's next message */
	else if (c->bev != NULL) {
		/* SMFIC_QUIT, best effort: the filter may be gone; first
		 * SMFIC_ABORT when a message was begun and not ended */
		int open_msg = (c->step >= STEP_RCPT && c->step != STEP_DONE) ||
		    (c->awaiting && c->awaited_step == STEP_EOM);

		if (quit && c->connected)
			milter_quit(c->bev, open_msg);
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->connected = 0;
	c->awaiting = 0;
	c->park_ok = 0;
	milter_changes_free(c->changes, c->nchanges);
	c->changes = NULL;
	c->nchanges = 0;
	c->body_replaced = 0;
	str_clear(&c->body);
	free(c->quarantine);
	c->quarantine = NULL;
}

/* The whole job is over: tell the caller, forget the conversation. */
static void
milter_conv_finish(struct milter_conv *c)
{
	struct milter_engine *e = c->e;
	struct milter_job *job = c->job;

	milter_conv_close(c, 1);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		e->convs = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->timer != NULL)
		event_free(c->timer);
	str_deinit(&c->body);
	free(c->key);
	free(c);
	job->done(job, job->arg);
}

/* One log line per filter verdict (docs/operations.md). */
static void
milter_log(const struct milter_conv *c, const char *verdict,
    const char *action, const char *reply, const char *reason)
{
	char rbuf[MILTER_TEXT_MAX + 1], wbuf[256];

	metrics_milter(verdict);

	log_info("id=%s milter=%s verdict=%s%s%s%s%s%s%s%s%s changes=%zu",
	    c->job->id, c->spec, verdict,
	    action != NULL ? " action=" : "", action != NULL ? action : "",
	    reason != NULL ? " reason=\"" : "",
	    reason != NULL ? log_escape(wbuf, sizeof(wbuf), reason) : "",
	    reason != NULL ? "\"" : "",
	    reply != NULL ? " reply=\"" : "",
	    reply != NULL ? log_escape(rbuf, sizeof(rbuf), reply) : "",
	    reply != NULL ? "\"" : "", c->nchanges);
}

/* A final verdict from filter c (reject, tempfail, discard): the job
 * ends, the later filters are not asked. */
static void
milter_conv_final(struct milter_conv *c, enum milter_verdict v,
    const char *reply)
{
	struct milter_job *job = c->job;

	job->verdict = v;
	free(job->reply);
	job->reply = reply != NULL ? xstrdup(reply) : NULL;
	milter_conv_finish(c);
}

/*
 * Filter c failed (down, late, garbage: why): milter_default_action.
 * accept: as if it were not configured (its changes dropped), the next
 * filter is asked; tempfail or reject end the job.
 */
static void
milter_conv_fail(struct milter_conv *c, const char *why)
{
	enum milter_default_action a = c->job->default_action;

	if (c->reused && !c->answered) {
		/* a kept connection the filter closed or broke before it said
		 * a word about this message: a new one, once; the message
		 * is not failed for it */
		log_info("id=%s milter=%s reconnect reason=\"%s\"",
		    c->job->id, c->spec, why);
		milter_conv_close(c, 0);
		c->fresh = 1;
		milter_conv_next_filter(c);
		return;
	}
	milter_changes_free(c->changes, c->nchanges);
	c->changes = NULL;
	c->nchanges = 0;
	milter_log(c, "default", a == MILTER_DEFAULT_ACCEPT ? "accept" :
	    a == MILTER_DEFAULT_REJECT ? "reject" : "tempfail", NULL, why);
	milter_conv_close(c, 0);
	if (a == MILTER_DEFAULT_ACCEPT) {
		c->index++;
		milter_conv_next_filter(c);
	} else if (a == MILTER_DEFAULT_REJECT)
		milter_conv_final(c, MILTER_REJECT, "554 5.7.1 Message "
		    "refused: a mail filter is not available");
	else
		milter_conv_final(c, MILTER_TEMPFAIL, "451 4.7.1 Mail filter "
		    "not available, try again later");
}

/* Filter c ended well (accept, or continue at the end of message): its
 * changes join the job's, the next filter is asked. */
static void
milter_conv_ok(struct milter_conv *c, const char *verdict)
{
	struct milter_job *job = c->job;

	milter_log(c, c->quarantine != NULL ? "quarantine" : verdict, NULL,
	    NULL, c->quarantine);
	if (c->nchanges > 0) {
		job->changes = xreallocarray(job->changes, job->nchanges +
		    c->nchanges, sizeof(*job->changes));
		memcpy(job->changes + job->nchanges, c->changes,
		    c->nchanges * sizeof(*c->changes));
		job->nchanges += c->nchanges;
		free(c->changes);
		c->changes = NULL;
		c->nchanges = 0;
	}
	if (c->body_replaced) {
		str_clear(&job->body);
		if (c->body.len > 0)
			str_append_n(&job->body, c->body.s, c->body.len);
		job->body_replaced = 1;
	}
	if (c->quarantine != NULL && job->quarantine == NULL) {
		job->quarantine = c->quarantine;
		job->quarantine_by = xstrdup(c->spec);
		c->quarantine = NULL;
	}
	milter_conv_close(c, 1);
	c->index++;
	milter_conv_next_filter(c);
}

/* ---- talking ------------------------------------------------------- */

static time_t
milter_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void
milter_arm(struct milter_conv *c, int seconds)
{
	struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };

	evtimer_add(c->timer, &tv);
}

static void
milter_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_conv *c = arg;

	(void)fd;
	(void)what;
	c->reused = 0;	/* a hung filter costs its timeout once */
	milter_conv_fail(c, !c->connected ? "connect timeout" :
	    c->step == STEP_OPTNEG ? "negotiation timeout" :
	    c->awaited_step == STEP_EOM ? "end of message timeout" :
	    "command timeout");
}

static void
milter_send(struct milter_conv *c, const struct str *s)
{
	evbuffer_add(bufferevent_get_output(c->bev), s->s, s->len);
}

static void
milter_macros(struct milter_conv *c, struct str *out, char stage)
{
	struct milter_job *j = c->job;
	char under[160];

	switch (stage) {
	case MILTER_C_CONNECT: {
		const char *n[] = { "j", "{daemon_name}", "{if_name}",
		    "{if_addr}", "{client_addr}", "{client_name}",
		    "{client_port}", "_", "v" };
		const char *v[] = { j->hostname, j->daemon_name, j->hostname,
		    j->if_addr, j->client_addr, "unknown", j->client_port,
		    under, "sekisho" };

		snprintf(under, sizeof(under), "unknown [%s]",
		    j->client_addr != NULL ? j->client_addr : "");
		milter_pack_macros(out, stage, n, v, 9);
		break;
	}
	case MILTER_C_HELO: {
		const char *n[] = { "{tls_version}", "{cipher}" };
		const char *v[] = { j->tls_version, j->cipher };

		milter_pack_macros(out, stage, n, v, 2);
		break;
	}
	case MILTER_C_MAIL: {
		const char *n[] = { "i", "{auth_type}", "{auth_authen}",
		    "{mail_addr}" };
		const char *v[] = { j->id, j->auth_authen != NULL ?
		    j->auth_type : NULL, j->auth_authen, j->sender };

		milter_pack_macros(out, stage, n, v, 4);
		break;
	}
	case MILTER_C_RCPT: {
		const char *n[] = { "{rcpt_addr}" };
		const char *v[] = { j->rcpts[c->item] };

		milter_pack_macros(out, stage, n, v, 1);
		break;
	}
	default: {
		const char *n[] = { "i" };
		const char *v[] = { j->id };

		milter_pack_macros(out, stage, n, v, 1);
		break;
	}
	}
}

/*
 * Send what comes next until a reply is owed (then the timer runs) or
 * the output is full (then the write callback calls again). 1 when c
 * is gone (failed).
 */
static int
milter_advance(struct milter_conv *c)
{
	struct milter_job *j = c->job;
	struct str out = STR_INIT;
	uint32_t p = c->proto;

	while (!c->awaiting && c->step != STEP_DONE) {
		int sent = 0, nr = 0, this = c->step;

		if (evbuffer_get_length(bufferevent_get_output(c->bev)) >
		    MILTER_OUT_HIGH)
			break;	/* the write callback calls again */
		str_clear(&out);
		switch (c->step) {
		case STEP_OPTNEG:
		case STEP_DONE:
			break;
		case STEP_CONNECT:
			if (!(p & MILTER_P_NOCONNECT)) {
				int v6 = j->client_addr != NULL &&
				    strchr(j->client_addr, ':') != NULL;
				unsigned long port = j->client_port != NULL ?
				    strtoul(j->client_port, NULL, 10) : 0;

				milter_macros(c, &out, MILTER_C_CONNECT);
				if (j->client_addr != NULL)
					milter_pack_connect(&out, "unknown",
					    v6 ? '6' : '4',
					    (uint16_t)port, j->client_addr);
				else
					milter_pack_connect(&out, "unknown",
					    'U', 0, NULL);
				sent = 1;
				nr = (p & MILTER_P_NR_CONN) != 0;
			}
			c->step = STEP_HELO;
			break;
		case STEP_HELO:
			if (!(p & MILTER_P_NOHELO)) {
				const char *h = j->helo != NULL ? j->helo :
				    "unknown";

				milter_macros(c, &out, MILTER_C_HELO);
				milter_pack_strings(&out, MILTER_C_HELO, &h, 1);
				sent = 1;
				nr = (p & MILTER_P_NR_HELO) != 0;
			}
			c->step = STEP_MAIL;
			break;
		case STEP_MAIL:
			if (!(p & MILTER_P_NOMAIL)) {
				char *a = xasprintf("<%s>", j->sender);
				const char *s = a;

				milter_macros(c, &out, MILTER_C_MAIL);
				milter_pack_strings(&out, MILTER_C_MAIL, &s, 1);
				free(a);
				sent = 1;
				nr = (p & MILTER_P_NR_MAIL) != 0;
			}
			c->step = STEP_RCPT;
			c->item = 0;
			break;
		case STEP_RCPT:
			if (c->item >= j->nrcpts) {
				c->step = STEP_DATA;
				break;
			}
			if (!(p & MILTER_P_NORCPT)) {
				char *a = xasprintf("<%s>", j->rcpts[c->item]);
				const char *s = a;

				milter_macros(c, &out, MILTER_C_RCPT);
				milter_pack_strings(&out, MILTER_C_RCPT, &s, 1);
				free(a);
				sent = 1;
				nr = (p & MILTER_P_NR_RCPT) != 0;
			}
			c->item++;
			break;
		case STEP_DATA:
			if (!(p & MILTER_P_NODATA)) {
				milter_macros(c, &out, MILTER_C_DATA);
				milter_pack(&out, MILTER_C_DATA, NULL, 0);
				sent = 1;
				nr = (p & MILTER_P_NR_DATA) != 0;
			}
			c->step = STEP_HEADER;
			c->item = 0;
			break;
		case STEP_HEADER:
			if (c->item >= j->nheaders || (p & MILTER_P_NOHDRS)) {
				c->step = STEP_EOH;
				break;
			} else {
				const struct milter_header *h =
				    &j->headers[c->item];
				const char *s[2] = { h->name, h->value };

				if (!(p & MILTER_P_HDR_LEADSPC))
					while (*s[1] == ' ' || *s[1] == '\t')
						s[1]++;
				milter_pack_strings(&out, MILTER_C_HEADER,
				    s, 2);
				sent = 1;
				nr = (p & MILTER_P_NR_HDR) != 0;
			}
			c->item++;
			break;
		case STEP_EOH:
			if (!(p & MILTER_P_NOEOH)) {
				milter_macros(c, &out, MILTER_C_EOH);
				milter_pack(&out, MILTER_C_EOH, NULL, 0);
				sent = 1;
				nr = (p & MILTER_P_NR_EOH) != 0;
			}
			c->step = STEP_BODY;
			c->body_pos = j->body_off;
			break;
		case STEP_BODY: {
			char buf[MILTER_BODY_CHUNK];
			size_t want = (size_t)(j->body_end - c->body_pos);
			ssize_t n;

			if ((p & MILTER_P_NOBODY) || want == 0) {
				c->step = STEP_EOM;
				break;
			}
			if (want > sizeof(buf))
				want = sizeof(buf);
			/* XXX: a read of the spool file on the milter thread;
			 * it was just written, so it comes from the page
			 * cache, and one chunk at a time. */
			n = pread(j->fd, buf, want, c->body_pos);
			if (n <= 0) {
				str_deinit(&out);
				milter_conv_fail(c, "cannot read the message");
				return 1;
			}
			milter_pack(&out, MILTER_C_BODY, buf, (size_t)n);
			c->body_pos += n;
			sent = 1;
			nr = (p & MILTER_P_NR_BODY) != 0;
			break;
		}
		case STEP_EOM:
			milter_macros(c, &out, MILTER_C_BODYEOB);
			milter_pack(&out, MILTER_C_BODYEOB, NULL, 0);
			sent = 1;
			c->step = STEP_DONE;
			break;
		}
		if (sent)
			milter_send(c, &out);
		if (sent && !nr) {
			int t = this == STEP_EOM ? j->eom_timeout :
			    j->command_timeout;

			c->awaiting = 1;
			c->awaited_step = this;
			c->deadline = milter_now() +
			    (time_t)t * MILTER_PROGRESS_FACTOR;
			milter_arm(c, t);
		}
	}
	str_deinit(&out);
	return 0;
}

/* A change at the end of message, if the filter negotiated it. */
static int
milter_change_add(struct milter_conv *c, const struct milter_reply *r,
    const char **why_r)
{
	struct milter_change *ch;
	uint32_t need;

	switch (r->cmd) {
	case MILTER_R_ADDHEADER:
		need = MILTER_A_ADDHDRS;
		break;
	case MILTER_R_INSHEADER:
		need = MILTER_A_ADDHDRS;
		break;
	case MILTER_R_CHGHEADER:
		need = MILTER_A_CHGHDRS;
		break;
	case MILTER_R_ADDRCPT:
		need = MILTER_A_ADDRCPT | MILTER_A_ADDRCPT_PAR;
		break;
	case MILTER_R_DELRCPT:
		need = MILTER_A_DELRCPT;
		break;
	default:
		need = MILTER_A_CHGFROM;
		break;
	}
	if ((c->actions & need) == 0) {
		*why_r = "a change it did not negotiate";
		return -1;
	}
	if (c->nchanges >= MILTER_CHANGES_MAX) {
		*why_r = "too many changes";
		return -1;
	}
	c->changes = xreallocarray(c->changes, c->nchanges + 1,
	    sizeof(*c->changes));
	ch = &c->changes[c->nchanges++];
	ch->cmd = r->cmd;
	ch->index = r->index;
	ch->name = xstrdup(r->name);
	ch->value = r->value != NULL && r->cmd != MILTER_R_ADDRCPT &&
	    r->cmd != MILTER_R_CHGFROM ? xstrdup(r->value) : NULL;
	return 0;
}

/*
 * One reply from the filter. Returns 1 when c is gone (finished or
 * failed): the caller stops reading.
 */
static int
milter_handle(struct milter_conv *c, const struct milter_reply *r)
{
	const char *why = "unexpected reply";
	int at_eom = c->awaited_step == STEP_EOM;

	if (c->step == STEP_OPTNEG) {
		if (r->cmd != MILTER_R_OPTNEG) {
			milter_conv_fail(c, "no option negotiation");
			return 1;
		}
		evtimer_del(c->timer);
		c->actions = r->actions & MILTER_A_OFFER;
		c->proto = r->protocol & MILTER_P_OFFER;
		/* DATA and the "no reply" steps came with version 4 and 6 */
		if (r->version < 6)
			c->proto &= ~(uint32_t)(MILTER_P_NR_CONN |
			    MILTER_P_NR_HELO | MILTER_P_NR_MAIL |
			    MILTER_P_NR_RCPT | MILTER_P_NR_DATA |
			    MILTER_P_NR_UNKN | MILTER_P_NR_EOH |
			    MILTER_P_NR_BODY | MILTER_P_HDR_LEADSPC |
			    MILTER_P_MDS_256K | MILTER_P_MDS_1M);
		if (r->version < 4)
			c->proto |= MILTER_P_NODATA;
		c->step = STEP_CONNECT;
		return milter_advance(c);
	}
	if (!c->awaiting) {
		milter_conv_fail(c, "reply without a command");
		return 1;
	}
	switch (r->cmd) {
	case MILTER_R_PROGRESS: {
		/* more time, up to the deadline: a filter that only ever
		 * says "progress" still costs a bounded time */
		time_t left = c->deadline - milter_now();
		int t = at_eom ? c->job->eom_timeout :
		    c->job->command_timeout;

		if (left <= 0) {
			milter_conv_fail(c, "progress beyond its deadline");
			return 1;
		}
		milter_arm(c, left < t ? (int)left : t);
		return 0;
	}
	case MILTER_R_CONTINUE:
		evtimer_del(c->timer);
		c->awaiting = 0;
		if (at_eom) {
			c->park_ok = 1;
			milter_conv_ok(c, "continue");
			return 1;
		}
		return milter_advance(c);
	case MILTER_R_SKIP:
		if (c->awaited_step != STEP_BODY)
			break;
		evtimer_del(c->timer);
		c->awaiting = 0;
		c->step = STEP_EOM;
		return milter_advance(c);
	case MILTER_R_REJECT:
	case MILTER_R_TEMPFAIL:
	case MILTER_R_REPLYCODE:
	case MILTER_R_DISCARD:
		/* the filter's own verdict, not a default action */
		free(c->job->verdict_by);
		c->job->verdict_by = xstrdup(c->spec);
		/* FALLTHROUGH */
	case MILTER_R_ACCEPT:
		if (at_eom)
			c->awaiting = 0;	/* the message is ended */
		/* an answer about the message (not the connection): the
		 * connection may serve the session's next one */
		c->park_ok = c->awaited_step >= STEP_MAIL;
		break;
	default:
		break;
	}
	switch (r->cmd) {
	case MILTER_R_ACCEPT:
		/* before the end of message: no more events, no changes */
		milter_conv_ok(c, "accept");
		return 1;
	case MILTER_R_REJECT:
		milter_log(c, "reject", NULL, MILTER_REJECT_REPLY, NULL);
		milter_conv_final(c, MILTER_REJECT, MILTER_REJECT_REPLY);
		return 1;
	case MILTER_R_TEMPFAIL:
		milter_log(c, "tempfail", NULL, MILTER_TEMPFAIL_REPLY, NULL);
		milter_conv_final(c, MILTER_TEMPFAIL, MILTER_TEMPFAIL_REPLY);
		return 1;
	case MILTER_R_REPLYCODE:
		milter_log(c, r->code[0] == '4' ? "tempfail" : "reject", NULL,
		    r->text, NULL);
		milter_conv_final(c, r->code[0] == '4' ? MILTER_TEMPFAIL :
		    MILTER_REJECT, r->text);
		return 1;
	case MILTER_R_DISCARD:
		milter_log(c, "discard", NULL, NULL, NULL);
		milter_conv_final(c, MILTER_DISCARD, NULL);
		return 1;
	case MILTER_R_QUARANTINE:
		if (!at_eom || !(c->actions & MILTER_A_QUARANTINE))
			break;
		free(c->quarantine);
		c->quarantine = xstrdup(r->text[0] != '\0' ? r->text :
		    "quarantined");
		return 0;
	case MILTER_R_REPLBODY:
		if (!at_eom || !(c->actions & MILTER_A_CHGBODY))
			break;
		if (!c->body_replaced)
			str_clear(&c->body);
		c->body_replaced = 1;
		if (c->body.len + r->len > c->job->body_max) {
			milter_conv_fail(c, "replaced body over "
			    "message_size_limit");
			return 1;
		}
		str_append_n(&c->body, r->data, r->len);
		return 0;
	case MILTER_R_ADDHEADER:
	case MILTER_R_INSHEADER:
	case MILTER_R_CHGHEADER:
	case MILTER_R_ADDRCPT:
	case MILTER_R_DELRCPT:
	case MILTER_R_CHGFROM:
		if (!at_eom)
			break;
		if (milter_change_add(c, r, &why) < 0) {
			milter_conv_fail(c, why);
			return 1;
		}
		return 0;
	case MILTER_R_SHUTDOWN:
	case MILTER_R_CONN_FAIL:
		why = "the filter closed the connection";
		break;
	default:
		break;
	}
	milter_conv_fail(c, why);
	return 1;
}

static void
milter_read_cb(struct bufferevent *bev, void *arg)
{
	struct milter_conv *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		uint8_t hdr[4], *pkt;
		uint32_t len;
		struct milter_reply r;
		const char *error;
		int gone;

		if (evbuffer_copyout(in, hdr, 4) < 4)
			return;
		if (milter_frame_len(hdr, &len) < 0) {
			milter_conv_fail(c, "packet length out of bounds");
			return;
		}
		if (evbuffer_get_length(in) < (size_t)len + 4)
			return;
		/* taken out first: at the end of the message the input must
		 * be empty for the connection to be kept (milter_idle_put) */
		pkt = xmalloc(len);
		evbuffer_drain(in, 4);
		evbuffer_remove(in, pkt, len);
		if (milter_reply_parse(pkt, len, &r, &error) < 0) {
			free(pkt);
			milter_conv_fail(c, error);
			return;
		}
		c->answered = 1;
		gone = milter_handle(c, &r);
		free(pkt);
		if (gone)
			return;		/* c is gone (or on to the next filter) */
	}
}

static void
milter_write_cb(struct bufferevent *bev, void *arg)
{
	struct milter_conv *c = arg;

	(void)bev;
	if (c->connected && !c->awaiting && c->step != STEP_OPTNEG)
		(void)milter_advance(c);
}

static void
milter_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct milter_conv *c = arg;
	struct str out = STR_INIT;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		c->connected = 1;
		c->step = STEP_OPTNEG;
		milter_pack_optneg(&out, MILTER_VERSION, MILTER_A_OFFER,
		    MILTER_P_OFFER);
		milter_send(c, &out);
		str_deinit(&out);
		return;
	}
	milter_conv_fail(c, !c->connected ? "cannot connect" :
	    (what & BEV_EVENT_EOF) ? "the filter closed the connection" :
	    "connection error");
}

/* Connect to filter c->index, or end the job when none is left. */
static void
milter_conv_next_filter(struct milter_conv *c)
{
	struct milter_job *j = c->job;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const char *error;
	char *host;
	uint16_t port;
	int family;

	if (c->index >= j->nspecs) {
		milter_conv_finish(c);
		return;
	}
	c->spec = j->specs[c->index];
	c->step = STEP_OPTNEG;
	c->item = 0;
	c->awaiting = 0;
	c->awaited_step = STEP_OPTNEG;
	c->answered = 0;
	c->park_ok = 0;
	c->reused = 0;
	if (!c->fresh && c->key != NULL && (c->bev = milter_idle_take(c->e,
	    c->spec, c->key, &c->actions, &c->proto)) != NULL) {
		/* the session's kept connection: the filter knows CONNECT;
		 * the last message is ended, HELO again (Rspamd forgets it
		 * at SMFIC_ABORT), then MAIL; one write for all of it */
		bufferevent_setcb(c->bev, milter_read_cb, milter_write_cb,
		    milter_event_cb, c);
		c->connected = 1;
		c->reused = 1;
		c->step = STEP_HELO;
		evbuffer_add(bufferevent_get_output(c->bev),
		    MILTER_ABORT_PACKET, 5);
		(void)milter_advance(c);
		return;
	}
	c->fresh = 0;
	if (milter_spec_parse(c->spec, &family, &host, &port, &error) < 0) {
		milter_conv_fail(c, error);
		return;
	}
	memset(&ss, 0, sizeof(ss));
	if (family == AF_UNIX) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;

		sun->sun_family = AF_UNIX;
		xstrlcpy(sun->sun_path, host, sizeof(sun->sun_path));
		sslen = sizeof(*sun);
	} else if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		(void)inet_pton(AF_INET, host, &sin->sin_addr);
		sslen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		(void)inet_pton(AF_INET6, host, &sin6->sin6_addr);
		sslen = sizeof(*sin6);
	}
	free(host);
	c->bev = bufferevent_socket_new(c->e->base, -1,
	    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		milter_conv_fail(c, "cannot make a socket");
		return;
	}
	bufferevent_setcb(c->bev, milter_read_cb, milter_write_cb,
	    milter_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, MILTER_OUT_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	milter_arm(c, j->connect_timeout);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss,
	    (int)sslen) < 0) {
		milter_conv_fail(c, "cannot connect");
		return;
	}
}

/* ---- the thread ---------------------------------------------------- */

static void
milter_start_job(struct milter_engine *e, struct milter_job *job)
{
	struct milter_conv *c = xcalloc(1, sizeof(*c));

	c->e = e;
	c->job = job;
	str_init(&c->body);
	c->timer = evtimer_new(e->base, milter_timeout_cb, c);
	c->next = e->convs;
	if (e->convs != NULL)
		e->convs->prev = c;
	e->convs = c;
	job->verdict = MILTER_ACCEPT;
	c->key = milter_job_key(job);
	milter_conv_next_filter(c);
}

static void
milter_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_engine *e = arg;
	struct milter_job **jobs;
	char **ended;
	size_t n, nended;
	int stopping;
	char buf[64];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&e->lock);
	jobs = e->pending;
	n = e->npending;
	e->pending = NULL;
	e->npending = 0;
	ended = e->ended;
	nended = e->nended;
	e->ended = NULL;
	e->nended = 0;
	stopping = e->stopping;
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i < nended; i++) {
		milter_idle_end_session(e, ended[i]);
		free(ended[i]);
	}
	free(ended);
	for (size_t i = 0; i < n; i++)
		milter_start_job(e, jobs[i]);
	free(jobs);
	if (stopping) {
		/* every conversation ends: a temporary failure */
		while (e->convs != NULL) {
			struct milter_conv *c = e->convs;

			milter_log(c, "default", "tempfail", NULL,
			    "shutting down");
			milter_conv_final(c, MILTER_TEMPFAIL, "451 4.3.2 "
			    "System shutting down, try again later");
		}
		while (e->idle != NULL)
			milter_idle_free(e->idle, 1);
		event_base_loopbreak(e->base);
	}
}

static void *
milter_thread(void *arg)
{
	struct milter_engine *e = arg;

	event_base_dispatch(e->base);
	return NULL;
}

static void
milter_wake(struct milter_engine *e)
{
	if (write(e->wake[1], "x", 1) < 0 && errno != EAGAIN)
		log_warn("milter: wake");
}

struct milter_engine *
milter_engine_start(const char **error_r)
{
	struct milter_engine *e = xcalloc(1, sizeof(*e));

	atomic_init(&e->nidle_shared, 0);
	pthread_mutex_init(&e->lock, NULL);
	if (pipe2(e->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = "milter: pipe failed";
		free(e);
		return NULL;
	}
	if ((e->base = event_base_new()) == NULL) {
		*error_r = "milter: event_base_new failed";
		close(e->wake[0]);
		close(e->wake[1]);
		free(e);
		return NULL;
	}
	e->wake_ev = event_new(e->base, e->wake[0], EV_READ | EV_PERSIST,
	    milter_wake_cb, e);
	event_add(e->wake_ev, NULL);
	if (pthread_create(&e->thread, NULL, milter_thread, e) != 0)
		fatalx("milter: cannot start the milter thread");
	return e;
}

void
milter_engine_halt(struct milter_engine *e)
{
	int joined;

	if (e == NULL)
		return;
	pthread_mutex_lock(&e->lock);
	joined = e->joined;
	e->stopping = 1;
	e->joined = 1;
	pthread_mutex_unlock(&e->lock);
	if (joined)
		return;
	milter_wake(e);
	pthread_join(e->thread, NULL);
}

void
milter_engine_stop(struct milter_engine **ep)
{
	struct milter_engine *e = *ep;

	if (e == NULL)
		return;
	milter_engine_halt(e);
	event_free(e->wake_ev);
	event_base_free(e->base);
	close(e->wake[0]);
	close(e->wake[1]);
	pthread_mutex_destroy(&e->lock);
	free(e->pending);
	for (size_t i = 0; i < e->nended; i++)
		free(e->ended[i]);
	free(e->ended);
	free(e);
	*ep = NULL;
}

void
milter_session_end(struct milter_engine *e, const char *session)
{
	if (e == NULL || atomic_load(&e->nidle_shared) == 0)
		return;		/* XXX: one kept just now stays to its timeout */
	pthread_mutex_lock(&e->lock);
	if (e->stopping) {
		pthread_mutex_unlock(&e->lock);
		return;
	}
	e->ended = xreallocarray(e->ended, e->nended + 1,
	    sizeof(*e->ended));
	e->ended[e->nended++] = xstrdup(session);
	pthread_mutex_unlock(&e->lock);
	milter_wake(e);
}

int
milter_submit(struct milter_engine *e, struct milter_job *job)
{
	pthread_mutex_lock(&e->lock);
	if (e->stopping) {
		pthread_mutex_unlock(&e->lock);
		return -1;
	}
	e->pending = xreallocarray(e->pending, e->npending + 1,
	    sizeof(*e->pending));
	e->pending[e->npending++] = job;
	pthread_mutex_unlock(&e->lock);
	milter_wake(e);
	return 0;
}
