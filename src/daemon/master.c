/*
 * master: the daemon's first process (see master.h, docs/security.md and
 * docs/architecture.md). It stays root and network-silent:
 *
 *   master (root)      binds, reads key files, prepares files, forks, waits
 *   back side (user)   back_proc.c: queue, dispatcher, workers: store,
 *                      spool, Maildir
 *   key process (user, chrooted) the TLS private keys; signs for the
 *                      session processes (src/keys/keys.h), one per
 *                      configuration generation
 *   session processes  (session_user, chrooted) server.c: one event loop
 *                      each
 *
 * Each child is confined here, between the fork and its own start. The
 * master talks to the back side over a control channel (back_proc.h):
 * new session channels (SCM_RIGHTS), a reloaded config (a memfd), stop.
 * Session processes get signals: SIGTERM stop, SIGUSR1 retire (after a
 * reload: no new connections, finish, exit). The connection counts they
 * share are limits.c's.
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

#include "../core/file.h"
#include "../core/channel.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/mem.h"
#include "../core/metrics.h"
#include "../core/tls.h"
#include "../core/xmalloc.h"
#include "../keys/keys.h"
#include "../queue/spool.h"
#include "../store/store.h"
#include "back_proc.h"
#include "limits.h"
#include "master.h"
#include "privsep.h"
#include "server.h"

#define MASTER_KEYPROCS		16	/* key processes at once (generations) */
#define MASTER_KEYS_DEATHS	3	/* key process deaths in a minute: stop */

/* CLOCK_MONOTONIC, in ms */
static uint64_t
master_now_ms(void)
{
	return metrics_now_us() / 1000;
}

/* ---- listeners --------------------------------------------------- */

static int
master_bind_one(const struct listen_conf *lc, int family, const char *host,
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
master_bind(const struct listen_conf *lc, int reuseport, const char **error_r)
{
	if (strcmp(lc->host, "*") == 0) {
		int fd = master_bind_one(lc, AF_INET6, NULL, reuseport,
		    error_r);

		/* no IPv6 on this host: all IPv4 addresses */
		if (fd < 0 && errno == EAFNOSUPPORT)
			fd = master_bind_one(lc, AF_INET, NULL, reuseport,
			    error_r);
		return fd;
	}
	return master_bind_one(lc, strchr(lc->host, ':') != NULL ?
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
master_probe(const struct listen_conf *lc, const char **error_r)
{
	static __thread char ebuf[300];
	int fd;

	for (int tries = 0;; tries++) {
		if ((fd = master_bind(lc, 0, error_r)) >= 0)
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

struct master;
static void master_keys_close_ctls(struct master *);

/* ---- the master's state ------------------------------------------ */

struct master_child {
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
struct master_keyproc {
	pid_t		 pid;		/* 0: entry free */
	int		 ctl;		/* -1 once retired */
	int		 gen;
};

struct master {
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
	struct master_child	 child[LIMITS_SLOTS];
	struct master_keyproc	 kp[MASTER_KEYPROCS];
	int			 kp_cur;	/* in kp[], -1: none */
	struct keys_blob	*blob;		/* its key files' bytes */
	int			 kp_child_fd;	/* for the session being forked */
	uint64_t		 kp_deaths[MASTER_KEYS_DEATHS];
	int			 kp_dead;	/* the current one died */
};

/* A child: only the signals it handles itself, none blocked. */
static void
master_child_signals(void)
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
master_child_tie(pid_t master)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != master)
		_exit(1);
}

/* ---- starting a session process ---------------------------------- */

/* The child of a fork for a session process: confined, then its loop
 * (server.c). */
static void __attribute__((noreturn))
master_session_start(struct master *m, int slot, int set, int chfd)
{
	struct server_start st;
	const struct config *conf = m->conf;
	const char *error;

	prctl(PR_SET_NAME, "sekisho-session");
	close(m->ctl);
	master_keys_close_ctls(m);
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
	master_child_tie(m->pid);
	master_child_signals();
	limits_set_slot(slot);
#ifdef SEKISHO_TEST_HOOKS
	signal(SIGUSR2, limits_test_scribble);
#endif

	memset(&st, 0, sizeof(st));
	st.conf = conf;
	st.boot = m->boot;
	st.tls = m->tls;
	st.slot = slot;
	st.spawns = m->spawns;
	st.fds = &m->fds[(size_t)set * m->nl];
	st.nl = m->nl;
	st.channel = chfd;
	st.keys = m->kp_child_fd;
	server_session_main(&st);
}

/* ---- starting the back side --------------------------------------- */

/* The child of a fork for the back side: as `user`, then its loop
 * (back_proc.c). */
static void __attribute__((noreturn))
master_back_start(struct master *m, int ctl)
{
	const char *error = NULL;

	prctl(PR_SET_NAME, "sekisho-back");
	for (size_t i = 0; i < (size_t)m->nsets * m->nl; i++)
		close(m->fds[i]);
	master_keys_close_ctls(m);
	SSL_CTX_free(m->tls);
	m->tls = NULL;
	if (m->root && privsep_drop(&m->user, 1, &error) < 0)
		fatalx("back side: %s", error);
	mem_process_init("back side", MEM_RESERVE_MIN);
	master_child_tie(m->pid);
	/* Only the master tells it what to do: a SIGTERM meant for the
	 * whole group (systemd, ^C) must not stop it before the sessions. */
	signal(SIGCHLD, SIG_DFL);
	back_proc_main(m->conf, ctl);
}

/* ---- the key process --------------------------------------------- */

/* A child: the key processes' control sockets are the master's only. */
static void
master_keys_close_ctls(struct master *m)
{
	for (int k = 0; k < MASTER_KEYPROCS; k++)
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
master_keys_main(struct master *m, int ctl)
{
	const char *error;

	prctl(PR_SET_NAME, "sekisho-keys");
	if (m->fds != NULL)
		for (size_t i = 0; i < (size_t)m->nsets * m->nl; i++)
			close(m->fds[i]);
	if (m->ctl != -1)
		close(m->ctl);
	master_keys_close_ctls(m);
	if (privsep_confine(m->conf->session_chroot, &m->user, &error) < 0)
		fatalx("key process: %s", error);
	mem_process_init("key process", MEM_RESERVE_MIN);
	master_child_tie(m->pid);
	master_child_signals();
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fatal("key process: prctl dumpable");
	keyproc_main(ctl);
}

/*
 * Fork a key process and hand it blob: its entry in m->kp, with the
 * public keys in pubs_r; -1 with error_r (it is gone again).
 */
static int
master_keys_start(struct master *m, const struct keys_blob *blob,
    struct keys_pubs *pubs_r, const char **error_r)
{
	int k, pair[2];
	pid_t pid;

	for (k = 0; k < MASTER_KEYPROCS && m->kp[k].pid != 0; k++)
		;
	if (k == MASTER_KEYPROCS) {
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
		master_keys_main(m, pair[1]);
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
master_keys_retire(struct master *m, int k)
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
master_keys_load(struct master *m, const struct config *conf,
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
	if ((k = master_keys_start(m, blob, &pubs, error_r)) < 0) {
		keys_blob_free(&blob);
		return -1;
	}
	tls = tls_server_ctx(conf, &pubs, error_r);
	keys_pubs_free(&pubs);
	if (tls == NULL) {
		kill(m->kp[k].pid, SIGKILL);
		master_keys_retire(m, k);
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
master_keys_reaped(struct master *m, pid_t pid, const char *how)
{
	for (int k = 0; k < MASTER_KEYPROCS; k++) {
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

static void master_new_generation(struct master *, const char *);

/*
 * The current key process died: a new one from the same key bytes, and
 * a new generation of session processes with channels to it (the old
 * one retires; a STARTTLS in a session it still has fails). Three deaths
 * in a minute is a crash loop: -1, and the daemon stops.
 */
static int
master_keys_restart(struct master *m)
{
	struct keys_pubs pubs = { 0, NULL };
	uint64_t now = master_now_ms();
	const char *error;
	int k;

	m->kp_dead = 0;
	memmove(&m->kp_deaths[0], &m->kp_deaths[1],
	    sizeof(m->kp_deaths) - sizeof(m->kp_deaths[0]));
	m->kp_deaths[MASTER_KEYS_DEATHS - 1] = now;
	if (m->kp_deaths[0] != 0 && now - m->kp_deaths[0] < 60000) {
		log_warnx("key process died %d times in a minute: stopping",
		    MASTER_KEYS_DEATHS);
		return -1;
	}
	if ((k = master_keys_start(m, m->blob, &pubs, &error)) < 0) {
		log_warnx("key process: cannot restart it: %s: stopping",
		    error);
		return -1;
	}
	keys_pubs_free(&pubs);
	m->kp_cur = k;
	master_new_generation(m, "key process restarted");
	return 0;
}

/* At the stop, once no session process is left. */
static void
master_keys_stop(struct master *m)
{
	for (int k = 0; k < MASTER_KEYPROCS; k++) {
		if (m->kp[k].pid == 0)
			continue;
		master_keys_retire(m, k);
		kill(m->kp[k].pid, SIGTERM);
		waitpid(m->kp[k].pid, NULL, 0);
		m->kp[k].pid = 0;
	}
	m->kp_cur = -1;
	keys_blob_free(&m->blob);
}

/* ---- the master -------------------------------------------------- */

#ifdef SEKISHO_TEST_HOOKS
#define MASTER_SUN_PATH	sizeof(((struct sockaddr_un *)0)->sun_path)

/* Send fd (then closed) with the byte one to the datagram socket at path
 * (shorter than MASTER_SUN_PATH); what is logged. */
static void
master_test_hand(const char *path, char one, int fd, const char *what)
{
	struct sockaddr_un sun;
	int s;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if ((s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    channel_sendmsg(s, &one, 1, fd, (struct sockaddr *)&sun,
	    sizeof(sun), 0) < 0)
		log_warn("test hook: send to %s", path);
	else
		log_info("test hook: %s handed to %s", what, path);
	if (s >= 0)
		close(s);
	close(fd);
}

/*
 * Test build only (make asan): on SIGUSR2 the master makes one more
 * session channel, hands the back side its end exactly as for a session
 * process (BACK_PROC_CTL_CHANNEL), and sends the other end by SCM_RIGHTS to
 * the datagram socket named by SEKISHO_TEST_CHANNEL. The hostile-session
 * test (tests/e2e/test_seam.py) speaks the seam on it as a compromised
 * session process would. The release build has none of this.
 */
static void
master_test_channel(struct master *m)
{
	const char *path = getenv("SEKISHO_TEST_CHANNEL");
	struct msg cm;
	int pair[2];

	if (path == NULL || strlen(path) >= MASTER_SUN_PATH) {
		log_warnx("test hook: SEKISHO_TEST_CHANNEL unset or too long");
		return;
	}
	if (channel_pair(pair) < 0) {
		log_warn("test hook: socketpair");
		return;
	}
	msg_init(&cm, BACK_PROC_CTL_CHANNEL, 0);
	msg_add_u32(&cm, (uint32_t)LIMITS_SLOTS);
	msg_add_fd(&cm, pair[1]);
	if (channel_send_blocking(m->ctl, &cm) < 0) {
		log_warn("test hook: channel to the back side");
		close(pair[0]);
		return;
	}
	master_test_hand(path, 'c', pair[0], "a back-side channel");
}

/*
 * Test build only: when a datagram socket named SEKISHO_TEST_CHANNEL
 * plus "-keys" exists, SIGUSR2 also makes a channel to the current key
 * process, as for a session process, and sends its end there
 * (tests/e2e/test_keys.py speaks to the key process as a compromised
 * session process would).
 */
static void
master_test_keys_channel(struct master *m)
{
	const char *base = getenv("SEKISHO_TEST_CHANNEL");
	char path[MASTER_SUN_PATH];
	struct msg cm;
	int pair[2];

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
	master_test_hand(path, 'k', pair[0], "a key-process channel");
}
#endif

static int
master_free_slot(const struct master *m)
{
	for (int s = 0; s < LIMITS_SLOTS; s++)
		if (m->child[s].pid == 0 && m->child[s].restart_at == 0)
			return s;
	return -1;
}

/* A new session process for set on slot, with the config in effect. */
static int
master_spawn(struct master *m, int slot, int set)
{
	struct master_child *c = &m->child[slot];
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
	msg_init(&cm, BACK_PROC_CTL_CHANNEL, 0);
	msg_add_u32(&cm, (uint32_t)slot);
	msg_add_fd(&cm, pair[1]);
	if (channel_send_blocking(m->ctl, &cm) < 0) {
		log_warn("session process: channel to the back side");
		close(pair[0]);
		close(kpair[0]);
		return -1;
	}
	limits_reset_slot(slot);
	m->spawns++;
	m->kp_child_fd = kpair[0];
	if ((pid = fork()) < 0) {
		log_warn("session process: fork");
		close(pair[0]);
		close(kpair[0]);
		return -1;
	}
	if (pid == 0)
		master_session_start(m, slot, set, pair[0]);
	close(pair[0]);
	limits_live(slot);
	close(kpair[0]);
	m->kp_child_fd = -1;
	c->pid = pid;
	c->set = set;
	c->gen = m->gen;
	c->retiring = 0;
	c->started = master_now_ms();
	c->restart_at = 0;
	log_info("session process %ld started slot=%d generation=%d",
	    (long)pid, slot, m->gen);
	return 0;
}

static void
master_describe_exit(int status, char *buf, size_t len)
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
master_reap(struct master *m, int *back_status_r)
{
	char how[64];
	int status, back_dead = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		master_describe_exit(status, how, sizeof(how));
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

		if (master_keys_reaped(m, pid, how))
			continue;
		for (s = 0; s < LIMITS_SLOTS; s++)
			if (m->child[s].pid == pid)
				break;
		if (s == LIMITS_SLOTS)
			continue;
		struct master_child *c = &m->child[s];
		uint64_t now = master_now_ms();

		c->pid = 0;
		limits_reset_slot(s);
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
master_restarts(struct master *m)
{
	uint64_t now = master_now_ms();

	for (int s = 0; s < LIMITS_SLOTS; s++) {
		struct master_child *c = &m->child[s];

		if (c->restart_at == 0 || c->restart_at > now)
			continue;
		c->restart_at = 0;
		if (master_spawn(m, s, c->set) < 0)
			c->restart_at = now + 1000;
	}
}

/* ms until the next pending restart, at most max. */
static uint64_t
master_next_wait(const struct master *m, uint64_t max)
{
	uint64_t now = master_now_ms(), w = max;

	for (int s = 0; s < LIMITS_SLOTS; s++) {
		uint64_t at = m->child[s].restart_at;

		if (at != 0)
			w = at <= now ? 0 : (at - now < w ? at - now : w);
	}
	return w;
}

/* Wait for a signal of set, at most ms. The signal, or 0. */
static int
master_wait(const sigset_t *set, uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000),
	    (long)(ms % 1000) * 1000000 };
	int sig = sigtimedwait(set, NULL, &ts);

	return sig < 0 ? 0 : sig;
}

static int
master_alive(const struct master *m)
{
	int n = 0;

	for (int s = 0; s < LIMITS_SLOTS; s++)
		n += m->child[s].pid != 0;
	return n;
}

static void
master_signal_sessions(struct master *m, int sig)
{
	for (int s = 0; s < LIMITS_SLOTS; s++)
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
master_stop(struct master *m, const sigset_t *sigs)
{
	int back_status = 0;
	uint64_t deadline;

	m->stopping = 1;
	sd_notify(0, "STOPPING=1");
	for (size_t i = 0; i < (size_t)m->nsets * m->nl; i++)
		close(m->fds[i]);
	m->nsets = 0;
	master_signal_sessions(m, SIGTERM);
	deadline = master_now_ms() +
	    (uint64_t)m->conf->shutdown_timeout * 1000 + 5000;
	while (master_alive(m) > 0) {
		master_reap(m, &back_status);
		if (master_alive(m) == 0)
			break;
		if (master_now_ms() > deadline) {
			log_warnx("session processes still running after "
			    "shutdown_timeout: killed");
			master_signal_sessions(m, SIGKILL);
			deadline = UINT64_MAX;
		}
		master_wait(sigs, 200);
	}
	if (m->back != 0) {
		struct msg cm;

		msg_init(&cm, BACK_PROC_CTL_STOP, 0);
		if (channel_send_blocking(m->ctl, &cm) < 0)
			kill(m->back, SIGTERM);
		deadline = master_now_ms() + 60000;
		while (m->back != 0) {
			master_reap(m, &back_status);
			if (m->back == 0)
				break;
			if (master_now_ms() > deadline) {
				log_warnx("back side still running 60 s after "
				    "the stop: killed");
				kill(m->back, SIGKILL);
				deadline = UINT64_MAX;
			}
			master_wait(sigs, 200);
		}
	}
	master_keys_stop(m);
	return back_status;
}

/* Read the config file (root may read a file user cannot). */
static int
master_read_file(const char *path, struct str *text, const char **error_r)
{
	enum file_read_result r;

	if ((r = file_read(path, CONFIG_TEXT_MAX, text, NULL, NULL)) ==
	    FILE_READ_OK)
		return 0;
	*error_r = file_read_error(r, path, CONFIG_TEXT_MAX);
	return -1;
}

static int
master_listen_same(const struct config *a, const struct config *b)
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
master_keep_str(char **newv, const char *oldv, const char *key)
{
	if (strcmp(*newv, oldv) == 0)
		return;
	log_warnx("SIGHUP: %s changed: needs a restart; %s stays in effect",
	    key, oldv);
	free(*newv);
	*newv = xstrdup(oldv);
}

static void
master_keep_int(int *newv, int oldv, const char *key)
{
	if (*newv == oldv)
		return;
	log_warnx("SIGHUP: %s changed: needs a restart; %d stays in effect",
	    key, oldv);
	*newv = oldv;
}

/* What a running daemon cannot change: the old value stays, said so. */
static void
master_keep_restart_keys(const struct config *old, struct config *nc)
{
	if (!master_listen_same(old, nc))
		log_warnx("SIGHUP: listen changed: needs a restart; the old "
		    "listeners stay");
	master_keep_int(&nc->workers, old->workers, "workers");
	master_keep_int(&nc->backend_threads, old->backend_threads,
	    "backend_threads");
	master_keep_str(&nc->store, old->store, "store");
	master_keep_str(&nc->spool_dir, old->spool_dir, "spool_dir");
	master_keep_str(&nc->maildir_root, old->maildir_root, "maildir_root");
	master_keep_str(&nc->timezone, old->timezone, "timezone");
	master_keep_str(&nc->user, old->user, "user");
	master_keep_str(&nc->group, old->group, "group");
	master_keep_str(&nc->session_user, old->session_user, "session_user");
	master_keep_str(&nc->session_group, old->session_group,
	    "session_group");
	master_keep_str(&nc->session_chroot, old->session_chroot,
	    "session_chroot");
}

/*
 * A new generation of session processes with the config, SSL_CTX and
 * key process in effect; the old one retires (no new connections,
 * sessions finish).
 */
static void
master_new_generation(struct master *m, const char *why)
{
	int old_gen = m->gen;

	m->gen++;
	for (int set = 0; set < m->nsets; set++) {
		int slot = master_free_slot(m);

		if (slot < 0 || master_spawn(m, slot, set) < 0) {
			log_warnx("%s: no session process for listener "
			    "set %d (too many still finishing)", why, set);
			continue;
		}
	}
	for (int s = 0; s < LIMITS_SLOTS; s++) {
		struct master_child *c = &m->child[s];

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
master_reload(struct master *m)
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
	if (master_read_file(path, &text, &error) < 0) {
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
	master_keep_restart_keys(m->conf, nc);
	/* keys and certificates read again, by a new key process */
	if (master_keys_load(m, nc, &tls, &kp, &blob, &error) < 0) {
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

		msg_init(&cm, BACK_PROC_CTL_RELOAD, 0);
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
	master_keys_retire(m, m->kp_cur);
	m->kp_cur = kp;
	keys_blob_free(&m->blob);
	m->blob = blob;
	log_set_level(log_level_parse(nc->log_level));
	master_new_generation(m, "SIGHUP");
	log_info("SIGHUP: configuration reloaded (generation %d)", m->gen);
	metrics_reloaded(m->conf);
out:
	sd_notify(0, "READY=1");
	str_deinit(&text);
	str_deinit(&errors);
}

/* ---- run --------------------------------------------------------- */

static int
master_prepare(struct master *m, const struct config *conf,
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
master_start_back(struct master *m, const char **error_r)
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
		master_back_start(m, pair[1]);
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
		if (r.type != BACK_PROC_CTL_READY || msg_get_u32(&r, &ok) < 0 ||
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
master_run(const struct config *conf, const char **error_r)
{
	static struct master m;
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
		/* One per two cores: the back side's threads (its workers,
		 * the commit pool) want the others. On two cores one loop
		 * took W1 10 % (20 sessions) and 18 % (100) further than
		 * two, with 8 % and 16 % less CPU a message (issue 18,
		 * docs/performance.md): a loop woken with more connections
		 * ready at once switches less. */
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		nloops = n >= 2 ? (int)(n / 2) : 1;
	}
	if (nloops > LIMITS_SLOTS / 2)
		nloops = LIMITS_SLOTS / 2;
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
	if (master_prepare(&m, conf, error_r) < 0)
		return -1;
	m.kp_cur = -1;
	m.kp_child_fd = -1;
	for (int k = 0; k < MASTER_KEYPROCS; k++)
		m.kp[k].ctl = -1;
	if (master_keys_load(&m, conf, &m.tls, &m.kp_cur, &m.blob,
	    error_r) < 0)
		return -1;
	for (size_t j = 0; j < conf->listen_count; j++)
		if (master_probe(&conf->listen[j], error_r) < 0)
			return -1;
	/* Every set is bound now, by root; they outlive the processes
	 * that use them, so a restart or a reload loses no connection
	 * waiting in a backlog. */
	m.fds = xcalloc((size_t)nloops * m.nl + 1, sizeof(int));
	for (int i = 0; i < nloops; i++)
		for (size_t j = 0; j < m.nl; j++)
			if ((m.fds[(size_t)i * m.nl + j] = master_bind(
			    &conf->listen[j], 1, error_r)) < 0)
				return -1;
	limits_init(conf->max_connections);

	if (master_start_back(&m, error_r) < 0)
		return -1;
	for (int i = 0; i < nloops; i++)
		if (master_spawn(&m, i, i) < 0)
			m.child[i].restart_at = master_now_ms() + 1000;
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
		int sig = master_wait(&sigs, master_next_wait(&m, 1000));

		if (master_reap(&m, &back_status)) {
			failed = 1;
			break;
		}
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("stopping on signal %d", sig);
			break;
		}
		if (sig == SIGHUP)
			master_reload(&m);
#ifdef SEKISHO_TEST_HOOKS
		if (sig == SIGUSR2) {
			master_test_channel(&m);
			master_test_keys_channel(&m);
		}
#endif
		if (m.kp_dead && master_keys_restart(&m) < 0) {
			failed = 1;
			break;
		}
		master_restarts(&m);
	}
	if (failed && m.back == 0)
		log_warnx("the back side is gone: stopping the session "
		    "processes (a service manager restarts the daemon)");
	back_status = master_stop(&m, &sigs) | back_status;
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
