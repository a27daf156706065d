/*
 * master: the daemon (`sekisho serve`; docs/security.md,
 * docs/architecture.md).
 *
 * The master (root) binds every listener, builds the SSL_CTX, prepares
 * the files and forks the key process, the back side (as `user`: store,
 * spool, queue; back_proc.h) and one session process per worker
 * (chrooted, as `session_user`; server.h). It then only waits: for a
 * child that died (restarted), SIGHUP (reload: a new generation of
 * session processes, the old ones finish their sessions) and
 * SIGTERM/SIGINT (stop).
 */
#ifndef SEKISHO_MASTER_H
#define SEKISHO_MASTER_H

struct config;

/*
 * Runs until a stop signal. 0 on clean stop; -1 with error_r when it
 * cannot start; 1 when it stopped after a failure (logged), such as the
 * back side process dying.
 */
int master_run(const struct config *conf, const char **error_r);

#endif
