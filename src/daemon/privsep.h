/*
 * privsep: the privilege side of the process model (docs/security.md).
 *
 * The master (`sekisho serve`, started as root) prepares what only root
 * can: it makes the spool, the Maildirs, the database and the key files
 * the daemon writes owned by `user`:`group` and not world-readable,
 * and creates the empty directory the session processes are chrooted
 * to. The back side then drops to `user`:`group`; each session process
 * is chrooted there and drops to `session_user`:`session_group` with no
 * supplementary groups, no_new_privs and no right to fork. The CLI run
 * as root drops to `user`:`group` before it opens the store, so it
 * never leaves root-owned files the daemon cannot write.
 *
 * Started as any other user nothing can be dropped: privsep_root() is 0
 * and the processes run as that user (a developer's set-up).
 */
#ifndef SEKISHO_PRIVSEP_H
#define SEKISHO_PRIVSEP_H

#include <sys/types.h>

struct config;

struct privsep_id {
	uid_t	 uid;
	gid_t	 gid;
	char	 user[64];
	char	 group[64];
};

/* 1 when running as root, so that privileges can (and must) be dropped. */
int privsep_root(void);

/*
 * The uid and gid of a user and a group name (NSS: before any chroot).
 * -1 with error_r if either is unknown, or if the user is root (uid 0):
 * the daemon never runs as root after its start.
 */
int privsep_lookup(const char *user, const char *group,
    struct privsep_id *id_r, const char **error_r);

/*
 * Become id for good: supplementary groups (only id's group when
 * keep_group, else none), real/effective/saved gid and uid, verified
 * with getresuid/getresgid, and setuid(0) must fail afterwards. -1 with
 * error_r on any failure: the caller must not go on.
 */
int privsep_drop(const struct privsep_id *id, int keep_group,
    const char **error_r);

/*
 * A session process: chroot to dir, then privsep_drop(id, 0), then
 * no_new_privs and RLIMIT_NPROC 0 (it never forks or executes).
 */
int privsep_confine(const char *dir, const struct privsep_id *id,
    const char **error_r);

/*
 * The master, as root, before any process is forked: the session chroot
 * directory exists, is owned by root, writable by nobody else and empty;
 * the database's directory (sqlite:) exists and `user` may create the
 * -wal and -shm files there. Call before the store is first opened.
 */
int privsep_prepare_dirs(const struct config *conf,
    const struct privsep_id *user, const char **error_r);

/*
 * The master, as root, after the spool and the store schema exist: the
 * spool and maildir_root trees, the database (+ -wal, -shm) and the APOP
 * key belong to user and are not world-readable.
 */
int privsep_prepare_files(const struct config *conf,
    const struct privsep_id *user, const char **error_r);

/*
 * The CLI: when run as root, look up conf's user and group and drop to
 * them. 0 when done or not root; -1 with error_r.
 */
int privsep_cli_drop(const struct config *conf, const char **error_r);

#endif
