/*
 * server: the daemon. Binds every listener, starts the back side and one
 * session loop per worker (a thread with its own event_base, sharing
 * nothing with the others but the back side's channels and the
 * connection counters), and waits for SIGTERM/SIGINT.
 */
#ifndef SEKISHO_SERVER_H
#define SEKISHO_SERVER_H

#include <sys/socket.h>

#include <openssl/ssl.h>

struct config;
struct event_base;
struct be_client;
struct listen_conf;

struct server_loop {
	int			 index;
	struct event_base	*base;
	struct be_client	*be;
	const struct config	*conf;
	SSL_CTX			*tls;
	unsigned long		 sessions;	/* serial, for session ids */
};

/* Runs until a stop signal. 0 on clean stop; -1 with error_r at start. */
int server_run(const struct config *conf, const char **error_r);

/*
 * Connection limits. The total is taken at accept; the per-address count
 * once the client address is final (after a PROXY header). acquire: 0 ok,
 * -1 over the limit. Every success is paired with a release.
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
