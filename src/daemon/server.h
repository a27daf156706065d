/*
 * server: the daemon's processes (docs/security.md, docs/architecture.md).
 *
 * The master (root) binds every listener, builds the SSL_CTX, prepares
 * the files and forks the back side (as `user`: store, spool, queue) and
 * one session process per worker (chrooted, as `session_user`: one event
 * loop each, its own SO_REUSEPORT socket of every listener, one channel
 * to the back side). It then only waits: for a child that died
 * (restarted), SIGHUP (reload: a new generation of session processes,
 * the old ones finish their sessions) and SIGTERM/SIGINT (stop).
 */
#ifndef SEKISHO_SERVER_H
#define SEKISHO_SERVER_H

#include <sys/socket.h>

#include <openssl/ssl.h>

struct config;
struct event_base;
struct be_client;
struct listen_conf;

struct server_drain;

struct server_loop {
	int			 index;
	struct event_base	*base;
	struct be_client	*be;
	const struct config	*conf;
	SSL_CTX			*tls;
	unsigned long		 sessions;	/* serial, for session ids */
	int			 stopping;	/* SERVER_STOP_* */
	struct server_drain	*drains;	/* sessions to tell */
};

/*
 * Runs until a stop signal. 0 on clean stop; -1 with error_r when it
 * cannot start; 1 when it stopped after a failure (logged), such as the
 * back side process dying.
 */
int server_run(const struct config *conf, const char **error_r);

/*
 * Stopping. A session registers a drain callback; when its process
 * stops (SIGTERM, or the end of the time it was given after a reload) the
 * loop's stopping level rises and every callback runs. A session then
 * idle between commands says so (SMTP 421 4.3.2, POP3 -ERR [SYS/TEMP])
 * and closes; one busy (DATA, a pending request) finishes first and
 * checks server_loop_stopping() when it is idle again.
 *   SERVER_STOP_IDLE: sessions outside a transaction go;
 *   SERVER_STOP_ALL:  every session idle between commands goes.
 */
#define SERVER_STOP_NONE	0
#define SERVER_STOP_IDLE	1
#define SERVER_STOP_ALL		2

typedef void server_drain_cb(void *arg);

struct server_drain {
	server_drain_cb		*cb;
	void			*arg;
	struct server_drain	*prev, *next;
};

void server_drain_add(struct server_loop *loop, struct server_drain *d,
    server_drain_cb *cb, void *arg);
void server_drain_del(struct server_loop *loop, struct server_drain *d);
int server_loop_stopping(const struct server_loop *loop);

/*
 * Connection limits. The total is taken at accept; the per-address count
 * once the client address is final (after a PROXY header). acquire: 0 ok,
 * -1 over the limit. Every success is paired with a release. The counts
 * live in memory shared by every session process (made by the master),
 * with a slot per process: a process that dies takes its counts along.
 */
int server_conn_acquire(const struct config *conf);
void server_conn_release(void);
int server_ip_acquire(const struct config *conf, const struct sockaddr *sa);
void server_ip_release(const struct sockaddr *sa);

/* Printable address of sa ("192.0.2.1", "2001:db8::1"; v4-mapped v6
 * shown as v4), into buf of at least 64 bytes. */
const char *server_addr_str(const struct sockaddr *sa, char *buf, size_t len);
/* 1 if sa is loopback (127/8, ::1, ::ffff:127/104). */
int server_addr_is_loopback(const struct sockaddr *sa);

#endif
