/*
 * server: listeners, session loops, the back side and signals
 * (see server.h and docs/architecture.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "../backend/backend.h"
#include "../queue/queue.h"
#include "../queue/spool.h"
#include "../pop3/pop3_session.h"
#include "../policyd/policyd_session.h"
#include "../portal/portal.h"
#include "../smtp/smtp_session.h"
#include "../store/store.h"
#include "be_client.h"
#include "channel.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "server.h"
#include "tls.h"
#include "xmalloc.h"

/* ---- connection limits ------------------------------------------- */

static atomic_int server_conn_total;

int
server_conn_acquire(const struct config *conf)
{
	if (atomic_fetch_add(&server_conn_total, 1) >= conf->max_connections) {
		atomic_fetch_sub(&server_conn_total, 1);
		return -1;
	}
	return 0;
}

void
server_conn_release(void)
{
	atomic_fetch_sub(&server_conn_total, 1);
}

#define IP_BUCKETS	4096

struct ip_count {
	uint8_t		 key[17];
	int		 count;
	struct ip_count	*next;
};

static pthread_mutex_t ip_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ip_count *ip_bucket[IP_BUCKETS];

static void
server_ip_key(const struct sockaddr *sa, uint8_t key[17])
{
	memset(key, 0, 17);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		key[0] = 4;
		memcpy(key + 1, &s4->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			key[0] = 4;
			memcpy(key + 1, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, &s6->sin6_addr, 16);
		}
	}
}

static unsigned
server_ip_hash(const uint8_t key[17])
{
	unsigned h = 2166136261u;

	for (int i = 0; i < 17; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % IP_BUCKETS;
}

int
server_ip_acquire(const struct config *conf, const struct sockaddr *sa)
{
	uint8_t key[17];
	struct ip_count *c;
	int r = 0;

	server_ip_key(sa, key);
	unsigned h = server_ip_hash(key);

	pthread_mutex_lock(&ip_lock);
	for (c = ip_bucket[h]; c != NULL; c = c->next)
		if (memcmp(c->key, key, 17) == 0)
			break;
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		memcpy(c->key, key, 17);
		c->next = ip_bucket[h];
		ip_bucket[h] = c;
	}
	if (c->count >= conf->max_connections_per_ip)
		r = -1;
	else
		c->count++;
	pthread_mutex_unlock(&ip_lock);
	return r;
}

void
server_ip_release(const struct sockaddr *sa)
{
	uint8_t key[17];
	struct ip_count **pp;

	server_ip_key(sa, key);
	unsigned h = server_ip_hash(key);

	pthread_mutex_lock(&ip_lock);
	for (pp = &ip_bucket[h]; *pp != NULL; pp = &(*pp)->next) {
		struct ip_count *c = *pp;

		if (memcmp(c->key, key, 17) != 0)
			continue;
		if (--c->count <= 0) {
			*pp = c->next;
			free(c);
		}
		break;
	}
	pthread_mutex_unlock(&ip_lock);
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

/* ---- listeners --------------------------------------------------- */

struct server_listener {
	const struct listen_conf *lc;
	int			  fd;	/* bound, one per loop */
	struct evconnlistener	 *evl;
	struct server_loop	 *loop;
	struct portal		 *portal;	/* role portal: evhttp instead */
};

struct server_thread {
	struct server_loop	 loop;
	pthread_t		 thread;
	struct server_listener	*listeners;
	size_t			 nlisteners;
};

static int
server_bind_one(const struct listen_conf *lc, int family, const char *host,
    int reuseport, const char **error_r)
{
	static __thread char ebuf[256];
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, one = 1, zero = 0;

	memset(&ss, 0, sizeof(ss));
	unsigned port = (unsigned)strtoul(lc->port, NULL, 10);

	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (host == NULL)
			s6->sin6_addr = in6addr_any;
		else if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			goto badaddr;
		sslen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (host == NULL)
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			goto badaddr;
		sslen = sizeof(*s4);
	}
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto syserr;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Each loop has its own socket on the port; the kernel spreads
	 * connections over them. */
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
		    host == NULL ? &zero : &one, sizeof(int));
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 ||
	    listen(fd, 1024) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		goto syserr;
	}
	return fd;
syserr:
	snprintf(ebuf, sizeof(ebuf), "listen %s %s:%s: %s",
	    config_role_name(lc->role), lc->host, lc->port, strerror(errno));
	*error_r = ebuf;
	return -1;
badaddr:
	snprintf(ebuf, sizeof(ebuf), "listen %s: bad address %s",
	    config_role_name(lc->role), lc->host);
	*error_r = ebuf;
	return -1;
}

static int
server_bind(const struct listen_conf *lc, int reuseport, const char **error_r)
{
	if (strcmp(lc->host, "*") == 0) {
		int fd = server_bind_one(lc, AF_INET6, NULL, reuseport,
		    error_r);

		/* no IPv6 on this host: all IPv4 addresses */
		if (fd < 0 && errno == EAFNOSUPPORT)
			fd = server_bind_one(lc, AF_INET, NULL, reuseport,
			    error_r);
		return fd;
	}
	return server_bind_one(lc, strchr(lc->host, ':') != NULL ?
	    AF_INET6 : AF_INET, lc->host, reuseport, error_r);
}

/*
 * SO_REUSEPORT would let a second daemon (or anything else of the same
 * user) share a port silently. A bind without it first fails if anyone
 * holds the port, as every other mail server's start would.
 */
static int
server_probe(const struct listen_conf *lc, const char **error_r)
{
	static __thread char ebuf[300];
	int fd = server_bind(lc, 0, error_r);

	if (fd < 0) {
		if (errno == EADDRINUSE) {
			snprintf(ebuf, sizeof(ebuf), "%s (is another sekisho "
			    "or mail server running?)", *error_r);
			*error_r = ebuf;
		}
		return -1;
	}
	close(fd);
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
};

static void
server_on_accept(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct server_listener *l = arg;
	server_session_fn *fn = NULL;

	(void)evl;
	if ((size_t)l->lc->role < sizeof(server_session_new) /
	    sizeof(server_session_new[0]))
		fn = server_session_new[l->lc->role];
	if (fn == NULL)
		fatalx("listener role %s has no session type",
		    config_role_name(l->lc->role));
	fn(l->loop, l->lc, fd, sa, (socklen_t)salen);
}

static void
server_on_accept_error(struct evconnlistener *evl, void *arg)
{
	(void)evl;
	(void)arg;
	/* EMFILE and friends: the listener keeps going; say it once. */
	log_warn("accept");
}

static void *
server_loop_main(void *arg)
{
	struct server_thread *t = arg;

	event_base_dispatch(t->loop.base);
	return NULL;
}

/* ---- run --------------------------------------------------------- */

int
server_run(const struct config *conf, const char **error_r)
{
	struct server_thread *threads;
	struct backend *be;
	struct queue *q;
	struct store *st;
	SSL_CTX *tls;
	sigset_t sigs;
	int nloops = conf->workers;
	int sig;

	metrics_init(conf);	/* shared memory: before any fork */
	if (nloops <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		nloops = n > 0 ? (int)n : 1;
	}
	if (evthread_use_pthreads() < 0) {
		*error_r = "libevent without thread support";
		return -1;
	}
	/* Signals are taken by sigwait in this thread only. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (spool_init(conf->spool_dir, error_r) < 0)
		return -1;
	if ((st = store_open(conf->store, error_r)) == NULL)
		return -1;
	if (store_init_schema(st, error_r) < 0) {
		store_close(&st);
		return -1;
	}
	store_close(&st);
	if ((tls = tls_server_ctx(conf, error_r)) == NULL)
		return -1;

	for (size_t j = 0; j < conf->listen_count; j++)
		if (server_probe(&conf->listen[j], error_r) < 0)
			return -1;
	threads = xcalloc((size_t)nloops, sizeof(*threads));
	int *be_fds = xcalloc((size_t)nloops, sizeof(int));

	for (int i = 0; i < nloops; i++) {
		struct server_thread *t = &threads[i];
		int pair[2];

		t->loop.index = i;
		t->loop.conf = conf;
		t->loop.tls = tls;
		if ((t->loop.base = event_base_new()) == NULL)
			fatalx("event_base_new failed");
		if (channel_pair(pair) < 0)
			fatal("socketpair");
		t->loop.be = be_client_new(t->loop.base, pair[0]);
		be_fds[i] = pair[1];
		t->nlisteners = conf->listen_count;
		t->listeners = xcalloc(conf->listen_count,
		    sizeof(*t->listeners));
		for (size_t j = 0; j < conf->listen_count; j++) {
			struct server_listener *l = &t->listeners[j];

			l->lc = &conf->listen[j];
			l->loop = &t->loop;
			if ((l->fd = server_bind(l->lc, 1, error_r)) < 0)
				return -1;
			/* The settings page is served by evhttp, which
			 * accepts on the socket itself. */
			if (l->lc->role == LISTEN_PORTAL) {
				l->portal = portal_listen(&t->loop, l->lc,
				    l->fd, error_r);
				if (l->portal == NULL)
					return -1;
				continue;
			}
			l->evl = evconnlistener_new(t->loop.base,
			    server_on_accept, l, LEV_OPT_CLOSE_ON_FREE, -1,
			    l->fd);
			if (l->evl == NULL)
				fatalx("evconnlistener_new failed");
			evconnlistener_set_error_cb(l->evl,
			    server_on_accept_error);
		}
	}
	if ((q = queue_start(conf, error_r)) == NULL)
		return -1;
	if ((be = backend_start(conf, q, be_fds, nloops, error_r)) == NULL)
		return -1;
	free(be_fds);
	for (size_t j = 0; j < conf->listen_count; j++)
		log_info("listening role=%s addr=%s port=%s%s",
		    config_role_name(conf->listen[j].role),
		    conf->listen[j].host, conf->listen[j].port,
		    conf->listen[j].proxy ? " proxy=yes" : "");
	for (int i = 0; i < nloops; i++)
		if (pthread_create(&threads[i].thread, NULL, server_loop_main,
		    &threads[i]) != 0)
			fatalx("cannot start session loop");
	log_info("sekisho started loops=%d backend_threads=%d hostname=%s",
	    nloops, conf->backend_threads, conf->hostname);

	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			const char *gerr;

			/* The country database can change under a running
			 * daemon (a new GeoLite2 file); sessions go on. XXX:
			 * the rest of the config reloads with the hardening
			 * issue. */
			if (backend_reload_geo(be, &gerr) < 0)
				log_warnx("SIGHUP: geo database not reloaded, "
				    "keeping the old one: %s", gerr);
			else {
				log_info("SIGHUP: geo database reloaded (%s)",
				    conf->geo_database);
				metrics_reloaded(conf);
			}
			continue;
		}
		break;
	}
	log_info("stopping on signal %d", sig);
	for (int i = 0; i < nloops; i++)
		event_base_loopbreak(threads[i].loop.base);
	for (int i = 0; i < nloops; i++)
		pthread_join(threads[i].thread, NULL);
	backend_stop(&be);
	queue_stop(&q);
	for (int i = 0; i < nloops; i++) {
		for (size_t j = 0; j < threads[i].nlisteners; j++) {
			if (threads[i].listeners[j].evl != NULL)
				evconnlistener_free(threads[i].listeners[j].evl);
			portal_free(&threads[i].listeners[j].portal);
		}
		free(threads[i].listeners);
	}
	/* Sessions still open are dropped with their loops; nothing they
	 * had not been told "250" for is lost. */
	free(threads);
	SSL_CTX_free(tls);
	log_info("stopped");
	return 0;
}
