/*
 * server: a session process (see server.h): its event loop, its copy of
 * every listener, the accept that hands a connection to its protocol,
 * the drains that stop it, the low-memory and out-of-descriptor
 * refusals. The master (master.c) starts it, already confined.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "../core/be_client.h"
#include "../core/config.h"
#include "../core/conn.h"
#include "../core/log.h"
#include "../core/mem.h"
#include "../core/metrics.h"
#include "../core/metrics_http.h"
#include "../core/xmalloc.h"
#include "../keys/keys.h"
#include "../policyd/policyd_session.h"
#include "../authpolicy/authpolicy_session.h"
#include "../pop3/pop3_session.h"
#include "../portal/portal.h"
#include "../smtp/smtp_session.h"
#include "limits.h"
#include "server.h"

#define SERVER_PAUSE_MS		250	/* listeners off after EMFILE */
#define SERVER_MEM_CHECK_MS	1000	/* while low: take the reserve back */

static void server_mem_check_arm(struct event *);

/* CLOCK_MONOTONIC, in ms */
static uint64_t
server_now_ms(void)
{
	return metrics_now_us() / 1000;
}

const char *
server_addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		if (inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len))
			return buf;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			if (inet_ntop(AF_INET, s6->sin6_addr.s6_addr + 12, buf,
			    (socklen_t)len))
				return buf;
		} else if (inet_ntop(AF_INET6, &s6->sin6_addr, buf,
		    (socklen_t)len))
			return buf;
	}
	xstrlcpy(buf, "unknown", len);
	return buf;
}

int
server_addr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

/* Who serves a connection on a listener of each role: one row a role. */
typedef void server_session_fn(struct server_loop *, const struct listen_conf *,
    int, const struct sockaddr *, socklen_t);

static server_session_fn *const server_session_new[] = {
	[LISTEN_MX] = smtp_session_new,
	[LISTEN_SUBMISSION] = smtp_session_new,
	[LISTEN_SUBMISSIONS] = smtp_session_new,
	[LISTEN_POP3] = pop3_session_new,
	[LISTEN_POP3S] = pop3_session_new,
	[LISTEN_POLICY] = policyd_session_new,
	[LISTEN_METRICS] = metrics_http_session_new,
	[LISTEN_AUTHPOLICY] = authpolicy_session_new,
};

/* ---- a session process ------------------------------------------- */

struct server_sproc;

struct server_listener {
	const struct listen_conf *lc;
	struct evconnlistener	 *evl;
	struct portal		 *portal;	/* role portal: evhttp instead */
	struct server_sproc	 *sp;
};

struct server_sproc {
	struct server_loop	 loop;
	struct server_listener	*l;
	size_t			 nl;
	int			 closed;	/* listeners gone */
	int			 paused;	/* EMFILE: off for a moment */
	uint64_t		 pause_logged;
	unsigned		 pauses;	/* since the last log line */
	uint64_t		 deadline;	/* then SERVER_STOP_ALL */
	uint64_t		 final;		/* then exit anyway */
	struct event		*ev_check;
	struct event		*ev_resume;
	struct event		*ev_mem;
	struct event		*ev_sig[3];
};

void
server_drain_add(struct server_loop *loop, struct server_drain *d,
    server_drain_cb *cb, void *arg)
{
	d->cb = cb;
	d->arg = arg;
	d->prev = NULL;
	d->next = loop->drains;
	if (loop->drains != NULL)
		loop->drains->prev = d;
	loop->drains = d;
}

void
server_drain_del(struct server_loop *loop, struct server_drain *d)
{
	if (d->cb == NULL)
		return;
	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		loop->drains = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	d->cb = NULL;
	d->prev = d->next = NULL;
}

int
server_loop_stopping(const struct server_loop *loop)
{
	return loop->stopping;
}

/*
 * The connection life of each role's sessions (conn.h): what a
 * connection is told while the process is low on memory. The metrics
 * listener's client sends first: closed.
 */
static const struct conn_vfuncs *const server_conn_vfuncs[] = {
	[LISTEN_MX] = &smtp_conn_vfuncs,
	[LISTEN_SUBMISSION] = &smtp_conn_vfuncs,
	[LISTEN_SUBMISSIONS] = &smtp_conn_vfuncs,
	[LISTEN_POP3] = &pop3_conn_vfuncs,
	[LISTEN_POP3S] = &pop3_conn_vfuncs,
	[LISTEN_POLICY] = &policyd_conn_vfuncs,
	[LISTEN_AUTHPOLICY] = &authpolicy_conn_vfuncs,
};

static void
server_refuse_low_memory(const struct listen_conf *lc, int fd)
{
	const struct conn_vfuncs *v = NULL;

	if ((size_t)lc->role < sizeof(server_conn_vfuncs) /
	    sizeof(server_conn_vfuncs[0]))
		v = server_conn_vfuncs[lc->role];
	conn_refuse_low_memory(v, lc, fd);
}

static void
server_on_accept(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct server_listener *l = arg;
	server_session_fn *fn = NULL;

	(void)evl;
	/* the reserve is gone: sessions already open may need the rest */
	if (mem_low()) {
		server_refuse_low_memory(l->lc, fd);
		server_mem_check_arm(l->sp->ev_mem);
		return;
	}
	if ((size_t)l->lc->role < sizeof(server_session_new) /
	    sizeof(server_session_new[0]))
		fn = server_session_new[l->lc->role];
	if (fn == NULL)
		fatalx("listener role %s has no session type",
		    config_role_name(l->lc->role));
	fn(&l->sp->loop, l->lc, fd, sa, (socklen_t)salen);
}

/*
 * While low on memory: try to take the reserve back once a second (logged
 * when it works, and new connections are served again). Armed by the
 * first connection refused, so a process with memory to spare has no
 * timer waking it.
 */
static void
server_mem_check_arm(struct event *ev)
{
	struct timeval tv = { SERVER_MEM_CHECK_MS / 1000,
	    (SERVER_MEM_CHECK_MS % 1000) * 1000 };

	if (!evtimer_pending(ev, NULL))
		evtimer_add(ev, &tv);
}

static void
server_on_mem_check(evutil_socket_t fd, short what, void *arg)
{
	struct event *ev = arg;

	(void)fd;
	(void)what;
	if (mem_low() && mem_recover() == 0)
		server_mem_check_arm(ev);
}

static void
server_listeners_enable(struct server_sproc *sp, int on)
{
	for (size_t i = 0; i < sp->nl; i++) {
		if (sp->l[i].evl == NULL)
			continue;
		if (on)
			evconnlistener_enable(sp->l[i].evl);
		else
			evconnlistener_disable(sp->l[i].evl);
	}
}

static void
server_on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct server_sproc *sp = arg;

	(void)fd;
	(void)what;
	sp->paused = 0;
	if (!sp->closed)
		server_listeners_enable(sp, 1);
}

/*
 * Out of descriptors (EMFILE, ENFILE) or kernel memory: accepting again
 * at once would spin on the same error. The listeners rest for a moment
 * (connections wait in the backlog), sessions already open go on, and
 * the condition is logged once per 10 s with how often it happened.
 */
static void
server_on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct server_listener *l = arg;
	struct server_sproc *sp = l->sp;
	int e = EVUTIL_SOCKET_ERROR();
	uint64_t now = server_now_ms();

	(void)evl;
	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) {
		log_warnx("accept: %s", strerror(e));
		return;
	}
	sp->pauses++;
	if (sp->pause_logged == 0 || now - sp->pause_logged >= 10000) {
		log_warnx("accept: %s: listeners paused for %d ms (%u times "
		    "since the last report)", strerror(e), SERVER_PAUSE_MS,
		    sp->pauses);
		sp->pause_logged = now;
		sp->pauses = 0;
	}
	if (sp->paused)
		return;
	sp->paused = 1;
	server_listeners_enable(sp, 0);
	struct timeval tv = { 0, SERVER_PAUSE_MS * 1000 };

	evtimer_add(sp->ev_resume, &tv);
}

static void
server_sproc_close_listeners(struct server_sproc *sp, int portal_too)
{
	sp->closed = 1;
	for (size_t i = 0; i < sp->nl; i++) {
		/* this process's copy of the socket: the others go on */
		if (sp->l[i].evl != NULL)
			evconnlistener_free(sp->l[i].evl);
		sp->l[i].evl = NULL;
		if (portal_too)
			portal_free(&sp->l[i].portal);
	}
}

static void
server_sproc_drain(struct server_sproc *sp, int level)
{
	struct server_drain *d, *next;

	if (level <= sp->loop.stopping)
		return;
	sp->loop.stopping = level;
	for (d = sp->loop.drains; d != NULL; d = next) {
		next = d->next;
		d->cb(d->arg);
	}
}

static void
server_on_check(evutil_socket_t fd, short what, void *arg)
{
	struct server_sproc *sp = arg;
	uint64_t now = server_now_ms();
	int n = limits_conn_mine();

	(void)fd;
	(void)what;
	if (n == 0) {
		event_base_loopbreak(sp->loop.base);
		return;
	}
	if (now >= sp->deadline && sp->loop.stopping < SERVER_STOP_ALL) {
		log_info("session process: shutdown_timeout over, %d "
		    "session(s) still open: closing the idle ones", n);
		server_sproc_drain(sp, SERVER_STOP_ALL);
		sp->final = now + 2000;
		return;
	}
	if (sp->final != 0 && now >= sp->final) {
		log_info("session process: %d session(s) still busy at the "
		    "end of shutdown_timeout: closed", n);
		event_base_loopbreak(sp->loop.base);
	}
}

/*
 * SIGTERM/SIGINT: stop at once (no new connection; idle sessions told
 * 421); SIGUSR1: retire after a reload (no new connection; sessions go
 * on until they end or shutdown_timeout passes).
 */
static void
server_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server_sproc *sp = arg;
	int first = !sp->closed;

	(void)what;
	if (first) {
		struct timeval tv = { 0, 100 * 1000 };

		sp->deadline = server_now_ms() +
		    (uint64_t)sp->loop.conf->shutdown_timeout * 1000;
		event_add(sp->ev_check, &tv);
	}
	if (sig == SIGUSR1) {
		if (first)
			server_sproc_close_listeners(sp, 0);
		return;
	}
	server_sproc_close_listeners(sp, 1);
	server_sproc_drain(sp, SERVER_STOP_IDLE);
}

/* ---- a session process's life ------------------------------------ */

void
server_session_main(const struct server_start *st)
{
	struct server_sproc sp;
	const struct config *conf = st->conf;
	const char *error;
	static const int sigs[3] = { SIGTERM, SIGINT, SIGUSR1 };

	keys_client_attach(st->keys);
	memset(&sp, 0, sizeof(sp));
	sp.loop.index = st->slot;
	sp.loop.conf = conf;
	sp.loop.tls = st->tls;
	/* session ids of a restarted process must not repeat its
	 * predecessor's: each start gets its own range of the serial */
	sp.loop.sessions = ((unsigned long)st->spawns & 0xff) << 16;
	if ((sp.loop.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	sp.loop.be = be_client_new(sp.loop.base, st->channel);
	sp.nl = st->nl;
	sp.l = xcalloc(st->nl, sizeof(*sp.l));
	for (size_t j = 0; j < st->nl; j++) {
		struct server_listener *l = &sp.l[j];
		int fd = st->fds[j];

		l->lc = &st->boot->listen[j];
		l->sp = &sp;
		/* The settings page is served by evhttp, which accepts on
		 * the socket itself. */
		if (l->lc->role == LISTEN_PORTAL) {
			l->portal = portal_listen(&sp.loop, l->lc, fd, &error);
			if (l->portal == NULL)
				fatalx("session process: %s", error);
			continue;
		}
		l->evl = evconnlistener_new(sp.loop.base, server_on_accept, l,
		    LEV_OPT_CLOSE_ON_FREE, -1, fd);
		if (l->evl == NULL)
			fatalx("evconnlistener_new failed");
		evconnlistener_set_error_cb(l->evl, server_on_accept_error);
	}
	sp.ev_check = event_new(sp.loop.base, -1, EV_PERSIST, server_on_check,
	    &sp);
	sp.ev_resume = evtimer_new(sp.loop.base, server_on_resume, &sp);
	sp.ev_mem = evtimer_new(sp.loop.base, server_on_mem_check,
	    event_self_cbarg());
	for (int i = 0; i < 3; i++) {
		sp.ev_sig[i] = evsignal_new(sp.loop.base, sigs[i],
		    server_on_signal, &sp);
		if (sp.ev_sig[i] == NULL || evsignal_add(sp.ev_sig[i], NULL) < 0)
			fatalx("session process: cannot catch signal %d",
			    sigs[i]);
	}
	if (sp.ev_check == NULL || sp.ev_resume == NULL || sp.ev_mem == NULL)
		fatalx("session process: out of memory");

	event_base_dispatch(sp.loop.base);

	/* Sessions still open are dropped with the process; nothing they
	 * had not been told "250" for is lost. */
	server_sproc_close_listeners(&sp, 1);
	for (int i = 0; i < 3; i++)
		event_free(sp.ev_sig[i]);
	event_free(sp.ev_check);
	event_free(sp.ev_resume);
	event_free(sp.ev_mem);
	free(sp.l);
	exit(0);
}
