/*
 * limits: the total of connections and the connections per client
 * address, counted across the session processes in memory the master
 * maps before it forks, with a slot per session process so that a dead
 * process's counts can be dropped (limits_reset_slot).
 *
 * The mapping is written by every session process, so the master (root)
 * trusts no bound, index or lock read from it (docs/security.md,
 * "Connection limits across processes"): the bounds it walks it with are
 * its own, and it rebuilds the table when a session process dies.
 */
#ifndef SEKISHO_LIMITS_H
#define SEKISHO_LIMITS_H

#include <sys/socket.h>

struct config;

#define LIMITS_SLOTS		256	/* session processes at once */

/*
 * Connection limits. The total is taken at accept; the per-address count
 * once the client address is final (after a PROXY header). acquire: 0 ok,
 * -1 over the limit. Every success is paired with a release.
 */
int limits_conn_acquire(const struct config *conf);
void limits_conn_release(void);
int limits_ip_acquire(const struct config *conf, const struct sockaddr *sa);
void limits_ip_release(const struct sockaddr *sa);

/* The master, before any fork: the mapping for max_connections. (A tool
 * or test without the master gets a private table at the first use.) */
void limits_init(int max_connections);
/* The master: slot's process is gone (or about to start): its counts go,
 * and the table is rebuilt within the master's own bounds. */
void limits_reset_slot(int slot);
/* The master: a session process now runs on slot. */
void limits_live(int slot);

/* A session process: its slot, once, before its first connection. */
void limits_set_slot(int slot);
/* A session process: its own sessions still open. */
int limits_conn_mine(void);

#ifdef SEKISHO_TEST_HOOKS
/* Test build only: a session process's SIGUSR2 handler writes garbage
 * over the shared mapping (and the metrics'), then aborts. */
void limits_test_scribble(int sig);
#endif

#endif
