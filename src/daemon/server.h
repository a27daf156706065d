/*
 * server: a session process (docs/security.md, docs/architecture.md).
 *
 * The master (master.c) forks one per worker, confined (chrooted, as
 * `session_user`, its memory capped), and calls server_session_main: one
 * event loop, its own SO_REUSEPORT socket of every listener, one channel
 * to the back side and one to the key process. The protocols (smtp,
 * pop3, policyd, portal, metrics) get their connections from it and see
 * it as a struct server_loop.
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

/* What the master hands a session process it has confined. */
struct server_start {
	const struct config	*conf;		/* in effect */
	const struct config	*boot;		/* the start's: the listeners */
	SSL_CTX			*tls;
	int			 slot;		/* limits.h */
	unsigned		 spawns;	/* session processes started */
	const int		*fds;		/* its set: boot->listen order */
	size_t			 nl;
	int			 channel;	/* to the back side */
	int			 keys;		/* to the key process */
};

/* The session process's loop: runs until it is told to stop and its
 * sessions have ended, then exits. */
void server_session_main(const struct server_start *st)
    __attribute__((noreturn));

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

/* Printable address of sa ("192.0.2.1", "2001:db8::1"; v4-mapped v6
 * shown as v4), into buf of at least 64 bytes. */
const char *server_addr_str(const struct sockaddr *sa, char *buf, size_t len);
/* 1 if sa is loopback (127/8, ::1, ::ffff:127/104). */
int server_addr_is_loopback(const struct sockaddr *sa);

#endif
