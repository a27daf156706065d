/*
 * server: the daemon's processes, their listeners and the connection
 * counts they share (see server.h, docs/security.md and
 * docs/architecture.md).
 *
 *   master (root)      binds, reads key files, prepares files, forks, waits
 *   back side (user)   queue, dispatcher, workers: store, spool, Maildir
 *   key process (user, chrooted) the TLS private keys; signs for the
 *                      session processes (src/keys/keys.h), one per
 *                      configuration generation
 *   session processes  (session_user, chrooted) one event loop each
 *
 * The master talks to the back side over a control channel (struct msg
 * on SOCK_SEQPACKET): new session channels (SCM_RIGHTS), a reloaded
 * config (a memfd), stop. Session processes get signals: SIGTERM stop,
 * SIGUSR1 retire (after a reload: no new connections, finish, exit).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <systemd/sd-daemon.h>

#include "../backend/backend.h"
#include "../keys/keys.h"
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
#include "conn.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "metrics_http.h"
#include "privsep.h"
#include "server.h"
#include "tls.h"
#include "xmalloc.h"

#define SERVER_SLOTS		256	/* session processes at once */
#define SERVER_CONFIG_MAX	(1024 * 1024)
#define SERVER_PAUSE_MS		250	/* listeners off after EMFILE */
#define SERVER_MEM_CHECK_MS	1000	/* while low: take the reserve back */
#define SERVER_KEYPROCS		16	/* key processes at once (generations) */
#define SERVER_KEYS_DEATHS	3	/* key process deaths in a minute: stop */

static void server_mem_check_arm(struct event *);

static uint64_t
server_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- connection limits, in memory shared by the processes ---------- */

/*
 * One entry per (client address, session process): the per-address
 * count is the sum over processes, and a dead process's entries can be
 * dropped whole. Open addressing with linear probing on the address
 * only, so every process's entry of an address is on one probe run.
 */
struct server_ip_ent {
	uint8_t		 key[17];	/* key[0]: 4 or 6; 0 = free */
	uint8_t		 pad;
	uint16_t	 slot;
	int32_t		 count;
};

/*
 * The mapping is written by every session process, so nothing in it is
 * trusted by the master (root) or by another process (issue 13): the
 * bounds used to walk it (the table's capacity, the mapping's size) live
 * in each process's own memory, set by the master before it forks; every
 * index read from it is checked against them; every loop over it is
 * bounded by them; and the lock is a plain word, not a pthread mutex
 * (glibc's robust mutex keeps list pointers and a kind, with priority
 * inheritance or ceilings, in the mutex itself, which the master would
 * act on). A session process that writes garbage over the mapping can at
 * worst spoil the counts until the master repairs them when a session
 * process dies (server_limits_reset_slot).
 */
struct server_shm {
	_Atomic int	 lock;		/* 0 free, else the holder's pid */
	int		 total;
	int		 slot_conns[SERVER_SLOTS];
	size_t		 used;
	struct server_ip_ent ent[];
};

static struct server_shm *server_shm;
static size_t server_shm_cap;		/* entries, a power of two */
static size_t server_shm_size;		/* bytes mapped */
static int server_shm_max;		/* max_connections at the start */
static int server_slot;		/* this process's */
/* the master's: which slots have a live session process */
static uint8_t server_slot_live[SERVER_SLOTS];

/* A lock held longer than this is taken over (its holder died, or is
 * stopped, or is a session process that keeps it to hurt the others). */
#define SERVER_SHM_LOCK_MS	500

static void
server_limits_init(int max_connections)
{
	size_t cap = 1024, size;
	void *p;

	while (cap < 2 * (size_t)max_connections)
		cap <<= 1;
	size = sizeof(struct server_shm) + cap * sizeof(struct server_ip_ent);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fatal("mmap connection counts (%zu bytes)", size);
	server_shm = p;
	server_shm_cap = cap;
	server_shm_size = size;
	server_shm_max = max_connections;
}

static struct server_shm *
server_shm_lock(const struct config *conf)
{
	static uint64_t stolen_logged;
	struct server_shm *sh;
	int me = (int)getpid();
	uint64_t start = 0;

	/* A tool or test without the daemon's master: a private table. */
	if (server_shm == NULL)
		server_limits_init(conf != NULL ? conf->max_connections : 1);
	sh = server_shm;
	for (unsigned spins = 0;; spins++) {
		int holder = 0;

		if (atomic_compare_exchange_strong(&sh->lock, &holder, me))
			return sh;
		if (holder == me)
			return sh;	/* garbage that happens to be us */
		if (spins < 100)
			continue;
		if (start == 0)
			start = server_now_ms();
		/* a holder that is no process, or gone: free */
		if (holder <= 0 || (kill(holder, 0) < 0 && errno == ESRCH) ||
		    server_now_ms() - start > SERVER_SHM_LOCK_MS) {
			if (atomic_compare_exchange_strong(&sh->lock, &holder,
			    me)) {
				if (server_now_ms() - stolen_logged > 10000) {
					stolen_logged = server_now_ms();
					log_warnx("connection counts: lock of "
					    "process %d taken over", holder);
				}
				return sh;
			}
			continue;
		}
		nanosleep(&(struct timespec){ 0, 100000 }, NULL);
	}
}

static void
server_shm_unlock(void)
{
	int me = (int)getpid();

	/* not ours any more if it was taken over: leave it */
	atomic_compare_exchange_strong(&server_shm->lock, &me, 0);
}

int
server_conn_acquire(const struct config *conf)
{
	struct server_shm *sh = server_shm_lock(conf);
	int r = 0;

	/* saturating: the numbers may be garbage a session process wrote */
	if (sh->total >= conf->max_connections || sh->total < 0)
		r = -1;
	else {
		sh->total++;
		if (sh->slot_conns[server_slot] < INT_MAX)
			sh->slot_conns[server_slot]++;
	}
	server_shm_unlock();
	return r;
}

void
server_conn_release(void)
{
	struct server_shm *sh = server_shm_lock(NULL);

	if (sh->total > 0)
		sh->total--;
	if (sh->slot_conns[server_slot] > 0)
		sh->slot_conns[server_slot]--;
	server_shm_unlock();
}

/* Sessions open in this process. */
static int
server_conn_mine(void)
{
	struct server_shm *sh = server_shm_lock(NULL);
	int n = sh->slot_conns[server_slot];

	server_shm_unlock();
	return n;
}

/* ipv6_client_prefix of this process (set by server_ip_acquire, which
 * always comes before the release of the same client). */
static int server_ip_prefix = 64;

/* An IPv6 client counts by its network (issue 13), IPv4 by address. */
static void
server_ip_key(const struct sockaddr *sa, uint8_t key[17])
{
	cidr_client_key(sa, server_ip_prefix, key);
}

static size_t
server_ip_home(const uint8_t key[17])
{
	unsigned h = 2166136261u;

	for (int i = 0; i < 17; i++)
		h = (h ^ key[i]) * 16777619u;
	return h & (server_shm_cap - 1);
}

/* Remove entry i, moving later entries of its probe run back into the
 * hole (no tombstones). The lock held. Bounded by the capacity: a table
 * written full by a session process cannot make it loop. */
static void
server_ip_delete(struct server_shm *sh, size_t i)
{
	size_t mask = server_shm_cap - 1, j = i, steps = 0;

	for (;;) {
		memset(&sh->ent[i], 0, sizeof(sh->ent[i]));
		for (;;) {
			j = (j + 1) & mask;
			if (sh->ent[j].key[0] == 0 || ++steps > mask) {
				if (sh->used > 0)
					sh->used--;
				return;
			}
			size_t k = server_ip_home(sh->ent[j].key);

			/* stays if its home is cyclically in (i, j] */
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			sh->ent[i] = sh->ent[j];
			i = j;
			break;
		}
	}
}

int
server_ip_acquire(const struct config *conf, const struct sockaddr *sa)
{
	static uint64_t full_logged;
	struct server_ip_ent *mine = NULL, *hole = NULL;
	uint8_t key[17];
	long long sum = 0;
	int r = 0;

	server_ip_prefix = conf->ipv6_client_prefix;
	server_ip_key(sa, key);
	if (key[0] == 0)
		return 0;	/* not an IP client: not counted */

	struct server_shm *sh = server_shm_lock(conf);
	size_t i = server_ip_home(key);

	/* at least one entry is free, unless a session process wrote over
	 * the table: then at most one pass */
	for (size_t n = 0; n < server_shm_cap;
	    n++, i = (i + 1) & (server_shm_cap - 1)) {
		struct server_ip_ent *e = &sh->ent[i];

		if (e->key[0] == 0) {
			hole = e;
			break;
		}
		if (memcmp(e->key, key, 17) != 0)
			continue;
		sum += e->count > 0 ? e->count : 0;
		if (e->slot == server_slot)
			mine = e;
	}
	if (sum >= conf->max_connections_per_ip)
		r = -1;
	else if (mine != NULL)
		mine->count += mine->count < INT32_MAX;
	else if (hole == NULL || sh->used + 2 > server_shm_cap) {
		r = -1;
		if (server_now_ms() - full_logged > 10000) {
			full_logged = server_now_ms();
			log_warnx("connection table full (%zu addresses): raise "
			    "max_connections and restart", sh->used);
		}
	} else {
		memcpy(hole->key, key, 17);
		hole->slot = (uint16_t)server_slot;
		hole->count = 1;
		sh->used++;
	}
	server_shm_unlock();
	return r;
}

void
server_ip_release(const struct sockaddr *sa)
{
	uint8_t key[17];

	server_ip_key(sa, key);
	if (key[0] == 0)
		return;

	struct server_shm *sh = server_shm_lock(NULL);
	size_t i = server_ip_home(key);

	for (size_t n = 0; n < server_shm_cap && sh->ent[i].key[0] != 0;
	    n++, i = (i + 1) & (server_shm_cap - 1)) {
		struct server_ip_ent *e = &sh->ent[i];

		if (e->slot != server_slot || memcmp(e->key, key, 17) != 0)
			continue;
		if (--e->count <= 0)
			server_ip_delete(sh, i);
		break;
	}
	server_shm_unlock();
}

/* An entry a session process could have made: a real address key, a
 * slot with a live process, a count within the limits. */
static int
server_ip_ent_valid(const struct server_ip_ent *e)
{
	static const uint8_t zero[12];

	if (e->key[0] == 4) {
		if (memcmp(e->key + 5, zero, 12) != 0)
			return 0;
	} else if (e->key[0] != 6)
		return 0;
	return e->slot < SERVER_SLOTS && server_slot_live[e->slot] &&
	    e->count > 0 && e->count <= server_shm_max;
}

/*
 * The master, once the process of slot is dead (or before one starts on
 * it): its counts go. The mapping may hold anything a session process
 * wrote, so the master reads it only within its own bounds and rebuilds
 * it: the counts of slots without a live process are zeroed, the others
 * kept within [0, max_connections], the total is their sum, and the
 * table keeps only the entries a live process could have made, placed
 * again by their hash. Garbage can spoil counts, never the master.
 */
static void
server_limits_reset_slot(int slot)
{
	/* the master's own copy of the entries kept, made once */
	static struct server_ip_ent *keep;
	struct server_shm *sh;
	size_t nkeep = 0, bad = 0;
	long long total = 0;

	if (keep == NULL)
		keep = xcalloc(server_shm_cap, sizeof(*keep));
	sh = server_shm_lock(NULL);

	if (slot >= 0 && slot < SERVER_SLOTS)
		server_slot_live[slot] = 0;
	for (int s = 0; s < SERVER_SLOTS; s++) {
		int v = sh->slot_conns[s];

		if (!server_slot_live[s] || v < 0)
			v = 0;
		else if (v > server_shm_max)
			v = server_shm_max;
		sh->slot_conns[s] = v;
		total += v;
	}
	sh->total = (int)(total > server_shm_max ? server_shm_max : total);
	for (size_t i = 0; i < server_shm_cap; i++) {
		struct server_ip_ent e = sh->ent[i];

		if (e.key[0] == 0)
			continue;
		if (server_ip_ent_valid(&e) && nkeep + 1 < server_shm_cap)
			keep[nkeep++] = e;
		else if (e.slot != slot)
			bad++;
	}
	memset(sh->ent, 0, server_shm_cap * sizeof(sh->ent[0]));
	for (size_t k = 0; k < nkeep; k++) {
		size_t i = server_ip_home(keep[k].key), n = 0;

		/* bounded: a session process may write meanwhile */
		while (sh->ent[i].key[0] != 0 && n++ < server_shm_cap)
			i = (i + 1) & (server_shm_cap - 1);
		if (sh->ent[i].key[0] != 0)
			continue;
		sh->ent[i] = keep[k];
		sh->ent[i].pad = 0;
	}
	sh->used = nkeep;
	server_shm_unlock();
	if (bad > 0)
		log_warnx("connection counts: %zu entries no session process "
		    "could have made dropped (a session process wrote over "
		    "the shared table)", bad);
}

/* The master: a session process now runs on slot. */
static void
server_limits_live(int slot)
{
	server_slot_live[slot] = 1;
}

#ifdef SEKISHO_TEST_HOOKS
/*
 * Test build only: a session process that gets SIGUSR2 writes garbage
 * over everything it shares with the master and the back side (as a
 * compromised one could), then aborts. The master must live on
 * (tests/e2e/test_seam_channel.py).
 */
static void
server_test_scribble(int sig)
{
	(void)sig;
	if (server_shm != NULL) {
		memset(server_shm, 0xff, server_shm_size);
		server_shm->used = (size_t)1 << 40;
		server_shm->total = INT32_MAX;
		for (size_t i = 0; i < server_shm_cap; i++)
			server_shm->ent[i].count = INT32_MAX;
	}
	metrics_test_scribble();
	abort();
}
#endif

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
 * holds the port, as every other mail server's start would. A daemon
 * just killed may still be going for a moment: a busy port is tried
 * again for up to 3 s.
 */
static int
server_probe(const struct listen_conf *lc, const char **error_r)
{
	static __thread char ebuf[300];
	int fd;

	for (int tries = 0;; tries++) {
		if ((fd = server_bind(lc, 0, error_r)) >= 0)
			break;
		if (errno != EADDRINUSE)
			return -1;
		if (tries >= 30) {
			snprintf(ebuf, sizeof(ebuf), "%s (is another sekisho "
			    "or mail server running?)", *error_r);
			*error_r = ebuf;
			return -1;
		}
		usleep(100 * 1000);
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
	int n = server_conn_mine();

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

struct server_master;
static void server_session_main(struct server_master *, int, int, int)
    __attribute__((noreturn));
static void server_keys_close_ctls(struct server_master *);

/* ---- the master's state ------------------------------------------ */

struct server_child {
	pid_t		 pid;		/* 0: slot free */
	int		 set;		/* listener set it serves */
	int		 gen;		/* configuration generation */
	int		 retiring;	/* told to finish (SIGUSR1) */
	uint64_t	 started;
	uint64_t	 delay;		/* before the next restart, ms */
	uint64_t	 restart_at;	/* pending restart when != 0 */
};

/* A key process: the current generation's, or one still serving the
 * session processes of an older one (its ctl closed). */
struct server_keyproc {
	pid_t		 pid;		/* 0: entry free */
	int		 ctl;		/* -1 once retired */
	int		 gen;
};

struct server_master {
	const struct config	*conf;		/* in effect */
	const struct config	*boot;		/* the start's: listen */
	struct config		**confs;	/* reloaded, freed at exit */
	size_t			 nconfs;
	SSL_CTX			*tls;
	int			 nsets;		/* session processes */
	size_t			 nl;		/* listeners per set */
	int			*fds;		/* nsets * nl, bound */
	int			 ctl;		/* to the back side */
	pid_t			 back;
	pid_t			 pid;
	int			 gen;
	unsigned		 spawns;	/* session processes started */
	int			 stopping;
	int			 root;
	struct privsep_id	 user;
	struct privsep_id	 session;
	struct server_child	 child[SERVER_SLOTS];
	struct server_keyproc	 kp[SERVER_KEYPROCS];
	int			 kp_cur;	/* in kp[], -1: none */
	struct keys_blob	*blob;		/* its key files' bytes */
	int			 kp_child_fd;	/* for the session being forked */
	uint64_t		 kp_deaths[SERVER_KEYS_DEATHS];
	int			 kp_dead;	/* the current one died */
};

enum server_ctl_type {
	SERVER_CTL_READY = 1,	/* back -> master: u32 ok, str error */
	SERVER_CTL_CHANNEL,	/* u32 slot; fd: a session channel's end */
	SERVER_CTL_RELOAD,	/* str path; fd: memfd with the file's text */
	SERVER_CTL_STOP,
};

static enum log_level
server_log_level(const char *name)
{
	if (strcmp(name, "debug") == 0)
		return LOG_LEVEL_DEBUG;
	if (strcmp(name, "warn") == 0)
		return LOG_LEVEL_WARN;
	return LOG_LEVEL_INFO;
}

/* A child: only the signals it handles itself, none blocked. */
static void
server_child_signals(void)
{
	sigset_t none;

	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Die with the master: a kill -9 of it is a kill -9 of the daemon. Set
 * after any uid change, which clears it. */
static void
server_child_tie(pid_t master)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != master)
		_exit(1);
}

/* ---- a session process's life ------------------------------------ */

static void
server_session_main(struct server_master *m, int slot, int set, int chfd)
{
	struct server_sproc sp;
	const struct config *conf = m->conf;
	const char *error;
	static const int sigs[3] = { SIGTERM, SIGINT, SIGUSR1 };

	prctl(PR_SET_NAME, "sekisho-session");
	close(m->ctl);
	server_keys_close_ctls(m);
	keys_client_attach(m->kp_child_fd);
	for (int i = 0; i < m->nsets; i++)
		for (size_t j = 0; i != set && j < m->nl; j++)
			close(m->fds[(size_t)i * m->nl + j]);
	if (privsep_confine(conf->session_chroot, &m->session, &error) < 0)
		fatalx("session process: %s", error);
	/* the reserve first: it counts in the cap, which it must not
	 * find full */
	mem_process_init("session process",
	    mem_reserve_size(conf->session_memory_limit));
	if (mem_limit(conf->session_memory_limit, &error) < 0)
		fatal("session process: %s", error);
	server_child_tie(m->pid);
	server_child_signals();
	server_slot = slot;
#ifdef SEKISHO_TEST_HOOKS
	signal(SIGUSR2, server_test_scribble);
#endif

	memset(&sp, 0, sizeof(sp));
	sp.loop.index = slot;
	sp.loop.conf = conf;
	sp.loop.tls = m->tls;
	/* session ids of a restarted process must not repeat its
	 * predecessor's: each start gets its own range of the serial */
	sp.loop.sessions = ((unsigned long)m->spawns & 0xff) << 16;
	if ((sp.loop.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	sp.loop.be = be_client_new(sp.loop.base, chfd);
	sp.nl = m->nl;
	sp.l = xcalloc(m->nl, sizeof(*sp.l));
	for (size_t j = 0; j < m->nl; j++) {
		struct server_listener *l = &sp.l[j];
		int fd = m->fds[(size_t)set * m->nl + j];

		l->lc = &m->boot->listen[j];
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

/* ---- the back side process --------------------------------------- */

/* The config text of a reload, from its memfd. NULL on error (logged). */
static struct config *
server_back_config(const char *path, int fd)
{
	struct str text = STR_INIT, errors = STR_INIT;
	struct config *conf = NULL;
	char buf[8192];
	ssize_t n;

	if (lseek(fd, 0, SEEK_SET) < 0)
		log_warn("SIGHUP: config memfd");
	while ((n = read(fd, buf, sizeof(buf))) > 0 &&
	    text.len <= SERVER_CONFIG_MAX)
		str_append_n(&text, buf, (size_t)n);
	if (n < 0)
		log_warn("SIGHUP: config memfd");
	else if (config_load_buffer(path, text.s != NULL ? text.s : "",
	    text.len, &conf, &errors) < 0)
		log_warnx("SIGHUP: back side cannot use the config: %s",
		    str_c(&errors));
	str_deinit(&text);
	str_deinit(&errors);
	return conf;
}

static void
server_back_main(struct server_master *m, int ctl)
{
	const struct config *conf = m->conf;
	struct backend *be = NULL;
	struct queue *q = NULL;
	const char *error = NULL;
	struct msg r;

	prctl(PR_SET_NAME, "sekisho-back");
	for (size_t i = 0; i < (size_t)m->nsets * m->nl; i++)
		close(m->fds[i]);
	server_keys_close_ctls(m);
	SSL_CTX_free(m->tls);
	m->tls = NULL;
	if (m->root && privsep_drop(&m->user, 1, &error) < 0)
		fatalx("back side: %s", error);
	mem_process_init("back side", MEM_RESERVE_MIN);
	server_child_tie(m->pid);
	/* Only the master tells it what to do: a SIGTERM meant for the
	 * whole group (systemd, ^C) must not stop it before the sessions. */
	signal(SIGCHLD, SIG_DFL);
	if ((q = queue_start(conf, &error)) != NULL &&
	    (be = backend_start(conf, q, NULL, 0, &error)) == NULL)
		queue_stop(&q);
	msg_init(&r, SERVER_CTL_READY, 0);
	msg_add_u32(&r, be != NULL);
	msg_add_str(&r, be != NULL ? NULL : error);
	if (channel_send_blocking(ctl, &r) < 0 || be == NULL)
		exit(1);

	for (;;) {
		struct pollfd pfd = { .fd = ctl, .events = POLLIN };
		struct msg cm;
		int rr, stop = 0;

		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fatal("back side: poll");
		}
		while ((rr = channel_recv(ctl, &cm)) == 1) {
			int fd = msg_take_fd(&cm);
			const char *path = NULL;
			struct config *nc;

			switch (cm.type) {
			case SERVER_CTL_CHANNEL:
				if (fd == -1)
					break;
				backend_add_channel(be, fd);
				fd = -1;
				break;
			case SERVER_CTL_RELOAD:
				/* old configs stay: a job may hold one */
				if (fd != -1 &&
				    msg_get_str(&cm, &path) == 0 &&
				    path != NULL &&
				    (nc = server_back_config(path, fd)) != NULL) {
					log_set_level(server_log_level(
					    nc->log_level));
					backend_reload(be, nc);
				}
				break;
			case SERVER_CTL_STOP:
				stop = 1;
				break;
			default:
				log_warnx("back side: control message %u "
				    "ignored", cm.type);
			}
			if (fd != -1)
				close(fd);
			msg_deinit(&cm);
		}
		if (rr < 0 || stop)
			break;	/* told to, or the master is gone */
	}
	backend_stop(&be);
	queue_stop(&q);
	exit(0);
}

/* ---- the key process --------------------------------------------- */

/* A child: the key processes' control sockets are the master's only. */
static void
server_keys_close_ctls(struct server_master *m)
{
	for (int k = 0; k < SERVER_KEYPROCS; k++)
		if (m->kp[k].pid != 0 && m->kp[k].ctl != -1) {
			close(m->kp[k].ctl);
			m->kp[k].ctl = -1;
		}
}

/*
 * The key process: chrooted like a session process but as `user`, not
 * session_user, so that no session process may ptrace it; not dumpable,
 * so that the back side (same uid) cannot either; no_new_privs, no fork.
 */
static void __attribute__((noreturn))
server_keys_main(struct server_master *m, int ctl)
{
	const char *error;

	prctl(PR_SET_NAME, "sekisho-keys");
	if (m->fds != NULL)
		for (size_t i = 0; i < (size_t)m->nsets * m->nl; i++)
			close(m->fds[i]);
	if (m->ctl != -1)
		close(m->ctl);
	server_keys_close_ctls(m);
	if (privsep_confine(m->conf->session_chroot, &m->user, &error) < 0)
		fatalx("key process: %s", error);
	mem_process_init("key process", MEM_RESERVE_MIN);
	server_child_tie(m->pid);
	server_child_signals();
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fatal("key process: prctl dumpable");
	keyproc_main(ctl);
}

/*
 * Fork a key process and hand it blob: its entry in m->kp, with the
 * public keys in pubs_r; -1 with error_r (it is gone again).
 */
static int
server_keys_start(struct server_master *m, const struct keys_blob *blob,
    struct keys_pubs *pubs_r, const char **error_r)
{
	int k, pair[2];
	pid_t pid;

	for (k = 0; k < SERVER_KEYPROCS && m->kp[k].pid != 0; k++)
		;
	if (k == SERVER_KEYPROCS) {
		*error_r = "keys: too many key processes (older generations "
		    "still finishing)";
		return -1;
	}
	if (channel_pair(pair) < 0) {
		*error_r = "keys: socketpair failed";
		return -1;
	}
	if ((pid = fork()) < 0) {
		close(pair[0]);
		close(pair[1]);
		*error_r = "keys: fork failed";
		return -1;
	}
	if (pid == 0) {
		close(pair[0]);
		server_keys_main(m, pair[1]);
	}
	close(pair[1]);
	if (keys_blob_send(blob, pair[0], pubs_r, error_r) < 0) {
		close(pair[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	m->kp[k].pid = pid;
	m->kp[k].ctl = pair[0];
	m->kp[k].gen = m->gen;
	return k;
}

/* No new channels for k: it ends when its session processes have. */
static void
server_keys_retire(struct server_master *m, int k)
{
	if (k < 0 || m->kp[k].pid == 0 || m->kp[k].ctl == -1)
		return;
	close(m->kp[k].ctl);
	m->kp[k].ctl = -1;
}

/*
 * One generation's keys: read the key files of conf (root may), start a
 * key process with them, build the SSL_CTX from the certificates and
 * the public keys it answers. The master never parses a private key.
 */
static int
server_keys_load(struct server_master *m, const struct config *conf,
    SSL_CTX **tls_r, int *kp_r, struct keys_blob **blob_r,
    const char **error_r)
{
	struct keys_blob *blob = NULL;
	struct keys_pubs pubs = { 0, NULL };
	SSL_CTX *tls;
	char **paths;
	size_t n;
	int k, r;

	if (tls_key_files(conf, &paths, &n, error_r) < 0)
		return -1;
	r = keys_blob_load(paths, n, &blob, error_r);
	tls_key_files_free(paths, n);
	if (r < 0)
		return -1;
	if ((k = server_keys_start(m, blob, &pubs, error_r)) < 0) {
		keys_blob_free(&blob);
		return -1;
	}
	tls = tls_server_ctx(conf, &pubs, error_r);
	keys_pubs_free(&pubs);
	if (tls == NULL) {
		kill(m->kp[k].pid, SIGKILL);
		server_keys_retire(m, k);
		keys_blob_free(&blob);
		return -1;
	}
	*tls_r = tls;
	*kp_r = k;
	*blob_r = blob;
	return 0;
}

/* A dead child that was a key process: 1, else 0. */
static int
server_keys_reaped(struct server_master *m, pid_t pid, const char *how)
{
	for (int k = 0; k < SERVER_KEYPROCS; k++) {
		if (m->kp[k].pid != pid)
			continue;
		m->kp[k].pid = 0;
		if (m->kp[k].ctl != -1)
			close(m->kp[k].ctl);
		m->kp[k].ctl = -1;
		if (k == m->kp_cur && !m->stopping) {
			log_warnx("key process %ld %s", (long)pid, how);
			m->kp_cur = -1;
			m->kp_dead = 1;
		} else
			log_info("key process %ld finished (%s)", (long)pid,
			    how);
		return 1;
	}
	return 0;
}

static void server_new_generation(struct server_master *, const char *);

/*
 * The current key process died: a new one from the same key bytes, and
 * a new generation of session processes with channels to it (the old
 * one retires; a STARTTLS in a session it still has fails). Three deaths
 * in a minute is a crash loop: -1, and the daemon stops.
 */
static int
server_keys_restart(struct server_master *m)
{
	struct keys_pubs pubs = { 0, NULL };
	uint64_t now = server_now_ms();
	const char *error;
	int k;

	m->kp_dead = 0;
	memmove(&m->kp_deaths[0], &m->kp_deaths[1],
	    sizeof(m->kp_deaths) - sizeof(m->kp_deaths[0]));
	m->kp_deaths[SERVER_KEYS_DEATHS - 1] = now;
	if (m->kp_deaths[0] != 0 && now - m->kp_deaths[0] < 60000) {
		log_warnx("key process died %d times in a minute: stopping",
		    SERVER_KEYS_DEATHS);
		return -1;
	}
	if ((k = server_keys_start(m, m->blob, &pubs, &error)) < 0) {
		log_warnx("key process: cannot restart it: %s: stopping",
		    error);
		return -1;
	}
	keys_pubs_free(&pubs);
	m->kp_cur = k;
	server_new_generation(m, "key process restarted");
	return 0;
}

/* At the stop, once no session process is left. */
static void
server_keys_stop(struct server_master *m)
{
	for (int k = 0; k < SERVER_KEYPROCS; k++) {
		if (m->kp[k].pid == 0)
			continue;
		server_keys_retire(m, k);
		kill(m->kp[k].pid, SIGTERM);
		waitpid(m->kp[k].pid, NULL, 0);
		m->kp[k].pid = 0;
	}
	m->kp_cur = -1;
	keys_blob_free(&m->blob);
}

/* ---- the master -------------------------------------------------- */

#ifdef SEKISHO_TEST_HOOKS
/*
 * Test build only (make asan): on SIGUSR2 the master makes one more
 * session channel, hands the back side its end exactly as for a session
 * process (SERVER_CTL_CHANNEL), and sends the other end by SCM_RIGHTS to
 * the datagram socket named by SEKISHO_TEST_CHANNEL. The hostile-session
 * test (tests/e2e/test_seam.py) speaks the seam on it as a compromised
 * session process would. The release build has none of this.
 */
static void
server_test_channel(struct server_master *m)
{
	const char *path = getenv("SEKISHO_TEST_CHANNEL");
	struct sockaddr_un sun;
	struct msghdr mh;
	struct iovec iov;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msg cm;
	char one = 'c';
	int pair[2], s;

	if (path == NULL || strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("test hook: SEKISHO_TEST_CHANNEL unset or too long");
		return;
	}
	if (channel_pair(pair) < 0) {
		log_warn("test hook: socketpair");
		return;
	}
	msg_init(&cm, SERVER_CTL_CHANNEL, 0);
	msg_add_u32(&cm, (uint32_t)SERVER_SLOTS);
	msg_add_fd(&cm, pair[1]);
	if (channel_send_blocking(m->ctl, &cm) < 0) {
		log_warn("test hook: channel to the back side");
		close(pair[0]);
		return;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	memset(&mh, 0, sizeof(mh));
	memset(&cbuf, 0, sizeof(cbuf));
	iov.iov_base = &one;
	iov.iov_len = 1;
	mh.msg_name = &sun;
	mh.msg_namelen = sizeof(sun);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &pair[0], sizeof(int));
	if ((s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    sendmsg(s, &mh, 0) < 0)
		log_warn("test hook: send to %s", path);
	else
		log_info("test hook: a back-side channel handed to %s", path);
	if (s >= 0)
		close(s);
	close(pair[0]);
}

/*
 * Test build only: when a datagram socket named SEKISHO_TEST_CHANNEL
 * plus "-keys" exists, SIGUSR2 also makes a channel to the current key
 * process, as for a session process, and sends its end there
 * (tests/e2e/test_keys.py speaks to the key process as a compromised
 * session process would).
 */
static void
server_test_keys_channel(struct server_master *m)
{
	const char *base = getenv("SEKISHO_TEST_CHANNEL");
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct sockaddr_un sun;
	struct msghdr mh;
	struct iovec iov;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msg cm;
	char one = 'k';
	int pair[2], s;

	if (base == NULL || m->kp_cur < 0 ||
	    snprintf(path, sizeof(path), "%s-keys", base) >= (int)sizeof(path) ||
	    access(path, F_OK) < 0)
		return;
	if (channel_pair(pair) < 0)
		return;
	msg_init(&cm, KEYS_CTL_CHANNEL, 0);
	msg_add_fd(&cm, pair[1]);
	if (channel_send_blocking(m->kp[m->kp_cur].ctl, &cm) < 0) {
		close(pair[0]);
		return;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	memset(&mh, 0, sizeof(mh));
	memset(&cbuf, 0, sizeof(cbuf));
	iov.iov_base = &one;
	iov.iov_len = 1;
	mh.msg_name = &sun;
	mh.msg_namelen = sizeof(sun);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &pair[0], sizeof(int));
	if ((s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    sendmsg(s, &mh, 0) < 0)
		log_warn("test hook: send to %s", path);
	else
		log_info("test hook: a key-process channel handed to %s", path);
	if (s >= 0)
		close(s);
	close(pair[0]);
}
#endif

static int
server_free_slot(const struct server_master *m)
{
	for (int s = 0; s < SERVER_SLOTS; s++)
		if (m->child[s].pid == 0 && m->child[s].restart_at == 0)
			return s;
	return -1;
}

/* A new session process for set on slot, with the config in effect. */
static int
server_spawn(struct server_master *m, int slot, int set)
{
	struct server_child *c = &m->child[slot];
	struct msg cm;
	int pair[2], kpair[2];
	pid_t pid;

	/* its channel to the key process: its only way to a signature */
	if (m->kp_cur < 0) {
		log_warnx("session process: no key process (restarting)");
		return -1;
	}
	if (channel_pair(kpair) < 0) {
		log_warn("session process: socketpair");
		return -1;
	}
	msg_init(&cm, KEYS_CTL_CHANNEL, 0);
	msg_add_fd(&cm, kpair[1]);
	if (channel_send_blocking(m->kp[m->kp_cur].ctl, &cm) < 0) {
		log_warn("session process: channel to the key process");
		close(kpair[0]);
		return -1;
	}
	if (channel_pair(pair) < 0) {
		log_warn("session process: socketpair");
		close(kpair[0]);
		return -1;
	}
	/* the back side's end first: the session may ask at once */
	msg_init(&cm, SERVER_CTL_CHANNEL, 0);
	msg_add_u32(&cm, (uint32_t)slot);
	msg_add_fd(&cm, pair[1]);
	if (channel_send_blocking(m->ctl, &cm) < 0) {
		log_warn("session process: channel to the back side");
		close(pair[0]);
		close(kpair[0]);
		return -1;
	}
	server_limits_reset_slot(slot);
	m->spawns++;
	m->kp_child_fd = kpair[0];
	if ((pid = fork()) < 0) {
		log_warn("session process: fork");
		close(pair[0]);
		close(kpair[0]);
		return -1;
	}
	if (pid == 0)
		server_session_main(m, slot, set, pair[0]);
	close(pair[0]);
	server_limits_live(slot);
	close(kpair[0]);
	m->kp_child_fd = -1;
	c->pid = pid;
	c->set = set;
	c->gen = m->gen;
	c->retiring = 0;
	c->started = server_now_ms();
	c->restart_at = 0;
	log_info("session process %ld started slot=%d generation=%d",
	    (long)pid, slot, m->gen);
	return 0;
}

static void
server_describe_exit(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "exited on signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
}

/*
 * Collect dead children. A session process that was not told to go is
 * restarted on its slot, at most once a second, backing off to 30 s
 * while each one dies young. Returns 1 if the back side died.
 */
static int
server_reap(struct server_master *m, int *back_status_r)
{
	char how[64];
	int status, back_dead = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		server_describe_exit(status, how, sizeof(how));
		if (pid == m->back) {
			m->back = 0;
			*back_status_r = status;
			back_dead = 1;
			if (!m->stopping)
				log_warnx("back side process %ld %s", (long)pid,
				    how);
			continue;
		}
		int s;

		if (server_keys_reaped(m, pid, how))
			continue;
		for (s = 0; s < SERVER_SLOTS; s++)
			if (m->child[s].pid == pid)
				break;
		if (s == SERVER_SLOTS)
			continue;
		struct server_child *c = &m->child[s];
		uint64_t now = server_now_ms();

		c->pid = 0;
		server_limits_reset_slot(s);
		if (c->retiring || m->stopping) {
			log_info("session process %ld finished (%s)", (long)pid,
			    how);
			continue;
		}
		c->delay = now - c->started < 10000 ?
		    (c->delay == 0 ? 1000 : c->delay * 2) : 1000;
		if (c->delay > 30000)
			c->delay = 30000;
		c->restart_at = c->started + c->delay > now ?
		    c->started + c->delay : now;
		log_warnx("session process %ld %s: restarting it in %llu ms",
		    (long)pid, how,
		    (unsigned long long)(c->restart_at - now));
	}
	return back_dead;
}

static void
server_restarts(struct server_master *m)
{
	uint64_t now = server_now_ms();

	for (int s = 0; s < SERVER_SLOTS; s++) {
		struct server_child *c = &m->child[s];

		if (c->restart_at == 0 || c->restart_at > now)
			continue;
		c->restart_at = 0;
		if (server_spawn(m, s, c->set) < 0)
			c->restart_at = now + 1000;
	}
}

/* ms until the next pending restart, at most max. */
static uint64_t
server_next_wait(const struct server_master *m, uint64_t max)
{
	uint64_t now = server_now_ms(), w = max;

	for (int s = 0; s < SERVER_SLOTS; s++) {
		uint64_t at = m->child[s].restart_at;

		if (at != 0)
			w = at <= now ? 0 : (at - now < w ? at - now : w);
	}
	return w;
}

/* Wait for a signal of set, at most ms. The signal, or 0. */
static int
server_wait(const sigset_t *set, uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000),
	    (long)(ms % 1000) * 1000000 };
	int sig = sigtimedwait(set, NULL, &ts);

	return sig < 0 ? 0 : sig;
}

static int
server_alive(const struct server_master *m)
{
	int n = 0;

	for (int s = 0; s < SERVER_SLOTS; s++)
		n += m->child[s].pid != 0;
	return n;
}

static void
server_signal_sessions(struct server_master *m, int sig)
{
	for (int s = 0; s < SERVER_SLOTS; s++)
		if (m->child[s].pid != 0)
			kill(m->child[s].pid, sig);
}

/*
 * The stop: the listeners close (the master's copies, and each session
 * process its own), sessions get shutdown_timeout to finish, then the
 * back side answers what it was asked (a commit in flight ends) and
 * stops the queue. Returns the back side's exit status.
 */
static int
server_stop(struct server_master *m, const sigset_t *sigs)
{
	int back_status = 0;
	uint64_t deadline;

	m->stopping = 1;
	sd_notify(0, "STOPPING=1");
	for (size_t i = 0; i < (size_t)m->nsets * m->nl; i++)
		close(m->fds[i]);
	m->nsets = 0;
	server_signal_sessions(m, SIGTERM);
	deadline = server_now_ms() +
	    (uint64_t)m->conf->shutdown_timeout * 1000 + 5000;
	while (server_alive(m) > 0) {
		server_reap(m, &back_status);
		if (server_alive(m) == 0)
			break;
		if (server_now_ms() > deadline) {
			log_warnx("session processes still running after "
			    "shutdown_timeout: killed");
			server_signal_sessions(m, SIGKILL);
			deadline = UINT64_MAX;
		}
		server_wait(sigs, 200);
	}
	if (m->back != 0) {
		struct msg cm;

		msg_init(&cm, SERVER_CTL_STOP, 0);
		if (channel_send_blocking(m->ctl, &cm) < 0)
			kill(m->back, SIGTERM);
		deadline = server_now_ms() + 60000;
		while (m->back != 0) {
			server_reap(m, &back_status);
			if (m->back == 0)
				break;
			if (server_now_ms() > deadline) {
				log_warnx("back side still running 60 s after "
				    "the stop: killed");
				kill(m->back, SIGKILL);
				deadline = UINT64_MAX;
			}
			server_wait(sigs, 200);
		}
	}
	server_keys_stop(m);
	return back_status;
}

/* Read the config file (root may read a file user cannot). */
static int
server_read_file(const char *path, struct str *text, const char **error_r)
{
	static char ebuf[512];
	char buf[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(ebuf, sizeof(ebuf), "%s: cannot open: %s", path,
		    strerror(errno));
		*error_r = ebuf;
		return -1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (text->len + (size_t)n > SERVER_CONFIG_MAX) {
			close(fd);
			snprintf(ebuf, sizeof(ebuf), "%s: larger than %d "
			    "bytes", path, SERVER_CONFIG_MAX);
			*error_r = ebuf;
			return -1;
		}
		str_append_n(text, buf, (size_t)n);
	}
	close(fd);
	if (n < 0) {
		snprintf(ebuf, sizeof(ebuf), "%s: read: %s", path,
		    strerror(errno));
		*error_r = ebuf;
		return -1;
	}
	return 0;
}

static int
server_listen_same(const struct config *a, const struct config *b)
{
	if (a->listen_count != b->listen_count)
		return 0;
	for (size_t i = 0; i < a->listen_count; i++) {
		const struct listen_conf *x = &a->listen[i], *y = &b->listen[i];

		if (x->role != y->role || x->proxy != y->proxy ||
		    strcmp(x->host, y->host) != 0 ||
		    strcmp(x->port, y->port) != 0)
			return 0;
	}
	return 1;
}

static void
server_keep_str(char **newv, const char *oldv, const char *key)
{
	if (strcmp(*newv, oldv) == 0)
		return;
	log_warnx("SIGHUP: %s changed: needs a restart; %s stays in effect",
	    key, oldv);
	free(*newv);
	*newv = xstrdup(oldv);
}

static void
server_keep_int(int *newv, int oldv, const char *key)
{
	if (*newv == oldv)
		return;
	log_warnx("SIGHUP: %s changed: needs a restart; %d stays in effect",
	    key, oldv);
	*newv = oldv;
}

/* What a running daemon cannot change: the old value stays, said so. */
static void
server_keep_restart_keys(const struct config *old, struct config *nc)
{
	if (!server_listen_same(old, nc))
		log_warnx("SIGHUP: listen changed: needs a restart; the old "
		    "listeners stay");
	server_keep_int(&nc->workers, old->workers, "workers");
	server_keep_int(&nc->backend_threads, old->backend_threads,
	    "backend_threads");
	server_keep_str(&nc->store, old->store, "store");
	server_keep_str(&nc->spool_dir, old->spool_dir, "spool_dir");
	server_keep_str(&nc->maildir_root, old->maildir_root, "maildir_root");
	server_keep_str(&nc->timezone, old->timezone, "timezone");
	server_keep_str(&nc->user, old->user, "user");
	server_keep_str(&nc->group, old->group, "group");
	server_keep_str(&nc->session_user, old->session_user, "session_user");
	server_keep_str(&nc->session_group, old->session_group,
	    "session_group");
	server_keep_str(&nc->session_chroot, old->session_chroot,
	    "session_chroot");
}

/*
 * A new generation of session processes with the config, SSL_CTX and
 * key process in effect; the old one retires (no new connections,
 * sessions finish).
 */
static void
server_new_generation(struct server_master *m, const char *why)
{
	int old_gen = m->gen;

	m->gen++;
	for (int set = 0; set < m->nsets; set++) {
		int slot = server_free_slot(m);

		if (slot < 0 || server_spawn(m, slot, set) < 0) {
			log_warnx("%s: no session process for listener "
			    "set %d (too many still finishing)", why, set);
			continue;
		}
	}
	for (int s = 0; s < SERVER_SLOTS; s++) {
		struct server_child *c = &m->child[s];

		if (c->gen > old_gen || c->retiring)
			continue;
		c->restart_at = 0;	/* the new generation has it */
		if (c->pid == 0)
			continue;
		c->retiring = 1;
		kill(c->pid, SIGUSR1);
	}
}

/*
 * SIGHUP. A config with errors is refused whole (each FILE:LINE logged)
 * and the old one stays. Else: a new SSL_CTX (certificates read again),
 * the back side gets the text (in a memfd: it cannot read a root-only
 * file) and swaps, a new generation of session processes starts with
 * it, and the old generation stops accepting and finishes its sessions.
 */
static void
server_reload(struct server_master *m)
{
	struct str text = STR_INIT, errors = STR_INIT;
	struct config *nc = NULL;
	const char *error, *path = m->conf->path;
	struct keys_blob *blob = NULL;
	SSL_CTX *tls;
	struct timespec ts;
	int fd, kp;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000);
	log_info("SIGHUP: reading %s", path);
	if (server_read_file(path, &text, &error) < 0) {
		log_warnx("SIGHUP: %s; the old configuration stays in effect",
		    error);
		goto out;
	}
	if (config_load_buffer(path, text.s != NULL ? text.s : "", text.len,
	    &nc, &errors) < 0) {
		char *save = NULL;

		for (char *line = errors.s != NULL ?
		    strtok_r(errors.s, "\n", &save) : NULL; line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			log_warnx("SIGHUP: %s", line);
		log_warnx("SIGHUP: config not reloaded: the old configuration "
		    "stays in effect");
		goto out;
	}
	server_keep_restart_keys(m->conf, nc);
	/* keys and certificates read again, by a new key process */
	if (server_keys_load(m, nc, &tls, &kp, &blob, &error) < 0) {
		log_warnx("SIGHUP: %s: config not reloaded: the old "
		    "configuration stays in effect", error);
		config_free(&nc);
		goto out;
	}

	/* the back side: geo, trusted networks, limits, ... */
	if ((fd = memfd_create("sekisho.conf", MFD_CLOEXEC)) < 0 ||
	    write(fd, text.s, text.len) != (ssize_t)text.len) {
		log_warn("SIGHUP: memfd for the back side");
		if (fd >= 0)
			close(fd);
	} else {
		struct msg cm;

		msg_init(&cm, SERVER_CTL_RELOAD, 0);
		msg_add_str(&cm, path);
		msg_add_fd(&cm, fd);
		if (channel_send_blocking(m->ctl, &cm) < 0)
			log_warn("SIGHUP: config to the back side");
	}

	/* the sessions: a new generation, the old one retires; the old
	 * key process serves the old one's sessions until they end */
	m->confs = xreallocarray(m->confs, m->nconfs + 1, sizeof(*m->confs));
	m->confs[m->nconfs++] = nc;
	m->conf = nc;
	SSL_CTX_free(m->tls);
	m->tls = tls;
	server_keys_retire(m, m->kp_cur);
	m->kp_cur = kp;
	keys_blob_free(&m->blob);
	m->blob = blob;
	log_set_level(server_log_level(nc->log_level));
	server_new_generation(m, "SIGHUP");
	log_info("SIGHUP: configuration reloaded (generation %d)", m->gen);
	metrics_reloaded(m->conf);
out:
	sd_notify(0, "READY=1");
	str_deinit(&text);
	str_deinit(&errors);
}

/* ---- run --------------------------------------------------------- */

static int
server_prepare(struct server_master *m, const struct config *conf,
    const char **error_r)
{
	static char ebuf[300];
	struct store *st;

	m->root = privsep_root();
	if (m->root) {
		if (privsep_lookup(conf->user, conf->group, &m->user,
		    error_r) < 0 ||
		    privsep_lookup(conf->session_user, conf->session_group,
		    &m->session, error_r) < 0)
			return -1;
		/* Same uid: a session process could ptrace the back side. */
		if (m->user.uid == m->session.uid) {
			snprintf(ebuf, sizeof(ebuf), "session_user must "
			    "differ from user (both %s)", conf->user);
			*error_r = ebuf;
			return -1;
		}
		if (privsep_prepare_dirs(conf, &m->user, error_r) < 0)
			return -1;
	} else
		log_warnx("not started as root: every process runs as uid %ld "
		    "with no chroot (docs/security.md)", (long)getuid());
	if (spool_init(conf->spool_dir, error_r) < 0)
		return -1;
	if ((st = store_open(conf->store, error_r)) == NULL)
		return -1;
	if (store_init_schema(st, error_r) < 0) {
		store_close(&st);
		return -1;
	}
	store_close(&st);
	if (m->root && privsep_prepare_files(conf, &m->user, error_r) < 0)
		return -1;
	return 0;
}

static int
server_start_back(struct server_master *m, const char **error_r)
{
	static char ebuf[512];
	int pair[2], status = 0;

	if (channel_pair(pair) < 0) {
		*error_r = "socketpair failed";
		return -1;
	}
	if ((m->back = fork()) < 0) {
		*error_r = "fork failed";
		return -1;
	}
	if (m->back == 0) {
		close(pair[0]);
		server_back_main(m, pair[1]);
	}
	close(pair[1]);
	m->ctl = pair[0];
	/* until it says it runs (the queue scanned, workers started) */
	for (;;) {
		struct pollfd pfd = { .fd = m->ctl, .events = POLLIN };
		struct msg r;
		uint32_t ok = 0;
		const char *err = NULL;
		int rr;

		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR) {
			*error_r = "poll failed";
			return -1;
		}
		if ((rr = channel_recv(m->ctl, &r)) == 0) {
			if (waitpid(m->back, &status, WNOHANG) == m->back) {
				m->back = 0;
				*error_r = "the back side process died at start";
				return -1;
			}
			continue;
		}
		if (rr < 0) {
			waitpid(m->back, &status, 0);
			m->back = 0;
			*error_r = "the back side process died at start";
			return -1;
		}
		if (r.type != SERVER_CTL_READY || msg_get_u32(&r, &ok) < 0 ||
		    msg_get_str(&r, &err) < 0) {
			msg_deinit(&r);
			*error_r = "the back side process sent nonsense";
			return -1;
		}
		if (!ok) {
			snprintf(ebuf, sizeof(ebuf), "%s",
			    err != NULL ? err : "back side failed");
			*error_r = ebuf;
			msg_deinit(&r);
			waitpid(m->back, &status, 0);
			m->back = 0;
			return -1;
		}
		msg_deinit(&r);
		return 0;
	}
}

int
server_run(const struct config *conf, const char **error_r)
{
	static struct server_master m;
	sigset_t sigs;
	time_t now;
	struct tm tm;
	int nloops = conf->workers, failed = 0, back_status = 0;

	/* main did it before reading the config (it builds an SSL_CTX);
	 * for any other caller, before the first libevent object */
	mem_init();
	if (conf->session_memory_limit != 0 && mem_limit_supported() < 0)
		log_warnx("session_memory_limit is not applied: an ASan "
		    "build (its shadow memory counts)");
	else if (conf->session_memory_limit != 0 &&
	    conf->session_memory_limit < MEM_LIMIT_MIN)
		log_warnx("session_memory_limit %zu is too small for a session "
		    "process: %zu is used", conf->session_memory_limit,
		    MEM_LIMIT_MIN);
	metrics_init(conf);	/* shared memory: before any fork */
	if (nloops <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		nloops = n > 0 ? (int)n : 1;
	}
	if (nloops > SERVER_SLOTS / 2)
		nloops = SERVER_SLOTS / 2;
	if (evthread_use_pthreads() < 0) {
		*error_r = "libevent without thread support";
		return -1;
	}
	/* The master takes its signals with sigtimedwait; children unblock
	 * what they handle. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
#ifdef SEKISHO_TEST_HOOKS
	sigaddset(&sigs, SIGUSR2);
#endif
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Nothing the daemon makes is for others to read. */
	umask(027);
	/* The zone's rules are read now: a chrooted session process could
	 * not read /usr/share/zoneinfo later. */
	tzset();
	now = time(NULL);
	localtime_r(&now, &tm);

	m.conf = conf;
	m.boot = conf;
	m.pid = getpid();
	m.nsets = nloops;
	m.nl = conf->listen_count;
	m.ctl = -1;
	if (server_prepare(&m, conf, error_r) < 0)
		return -1;
	m.kp_cur = -1;
	m.kp_child_fd = -1;
	for (int k = 0; k < SERVER_KEYPROCS; k++)
		m.kp[k].ctl = -1;
	if (server_keys_load(&m, conf, &m.tls, &m.kp_cur, &m.blob,
	    error_r) < 0)
		return -1;
	for (size_t j = 0; j < conf->listen_count; j++)
		if (server_probe(&conf->listen[j], error_r) < 0)
			return -1;
	/* Every set is bound now, by root; they outlive the processes
	 * that use them, so a restart or a reload loses no connection
	 * waiting in a backlog. */
	m.fds = xcalloc((size_t)nloops * m.nl + 1, sizeof(int));
	for (int i = 0; i < nloops; i++)
		for (size_t j = 0; j < m.nl; j++)
			if ((m.fds[(size_t)i * m.nl + j] = server_bind(
			    &conf->listen[j], 1, error_r)) < 0)
				return -1;
	server_limits_init(conf->max_connections);

	if (server_start_back(&m, error_r) < 0)
		return -1;
	for (int i = 0; i < nloops; i++)
		if (server_spawn(&m, i, i) < 0)
			m.child[i].restart_at = server_now_ms() + 1000;
	for (size_t j = 0; j < conf->listen_count; j++)
		log_info("listening role=%s addr=%s port=%s%s",
		    config_role_name(conf->listen[j].role),
		    conf->listen[j].host, conf->listen[j].port,
		    conf->listen[j].proxy ? " proxy=yes" : "");
	log_info("sekisho started loops=%d backend_threads=%d hostname=%s "
	    "user=%s session_user=%s", nloops, conf->backend_threads,
	    conf->hostname, m.root ? conf->user : "(not root)",
	    m.root ? conf->session_user : "(not root)");
	sd_notify(0, "READY=1");

	for (;;) {
		int sig = server_wait(&sigs, server_next_wait(&m, 1000));

		if (server_reap(&m, &back_status)) {
			failed = 1;
			break;
		}
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("stopping on signal %d", sig);
			break;
		}
		if (sig == SIGHUP)
			server_reload(&m);
#ifdef SEKISHO_TEST_HOOKS
		if (sig == SIGUSR2) {
			server_test_channel(&m);
			server_test_keys_channel(&m);
		}
#endif
		if (m.kp_dead && server_keys_restart(&m) < 0) {
			failed = 1;
			break;
		}
		server_restarts(&m);
	}
	if (failed && m.back == 0)
		log_warnx("the back side is gone: stopping the session "
		    "processes (a service manager restarts the daemon)");
	back_status = server_stop(&m, &sigs) | back_status;
	SSL_CTX_free(m.tls);
	free(m.fds);
	close(m.ctl);
	for (size_t i = 0; i < m.nconfs; i++)
		config_free(&m.confs[i]);
	free(m.confs);
	if (failed || back_status != 0) {
		log_warnx("stopped after a failure");
		return 1;
	}
	log_info("stopped");
	return 0;
}
