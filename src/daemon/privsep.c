/*
 * privsep: users, chroot and file ownership (see privsep.h and
 * docs/security.md).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../backend/apop.h"
#include "../backend/trace_token.h"
#include "../core/config.h"
#include "../core/log.h"
#include "privsep.h"
#include "../core/xmalloc.h"

static __thread char privsep_ebuf[512];

static const char *
privsep_err(const char *what, const char *path)
{
	snprintf(privsep_ebuf, sizeof(privsep_ebuf), "%s%s%s: %s", what,
	    path != NULL ? " " : "", path != NULL ? path : "",
	    strerror(errno));
	return privsep_ebuf;
}

int
privsep_root(void)
{
	return geteuid() == 0;
}

int
privsep_lookup(const char *user, const char *group, struct privsep_id *id_r,
    const char **error_r)
{
	struct passwd *pw;
	struct group *gr;

	memset(id_r, 0, sizeof(*id_r));
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(privsep_ebuf, sizeof(privsep_ebuf), "user %s: no such "
		    "user (scripts/setup creates it; or set another in the "
		    "config)", user);
		*error_r = privsep_ebuf;
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(privsep_ebuf, sizeof(privsep_ebuf), "user %s: is "
		    "root; the daemon does not run as root after its start",
		    user);
		*error_r = privsep_ebuf;
		return -1;
	}
	id_r->uid = pw->pw_uid;
	errno = 0;
	if ((gr = getgrnam(group)) == NULL) {
		snprintf(privsep_ebuf, sizeof(privsep_ebuf), "group %s: no "
		    "such group (scripts/setup creates it; or set another in "
		    "the config)", group);
		*error_r = privsep_ebuf;
		return -1;
	}
	if (gr->gr_gid == 0) {
		snprintf(privsep_ebuf, sizeof(privsep_ebuf), "group %s: is "
		    "group 0", group);
		*error_r = privsep_ebuf;
		return -1;
	}
	id_r->gid = gr->gr_gid;
	xstrlcpy(id_r->user, user, sizeof(id_r->user));
	xstrlcpy(id_r->group, group, sizeof(id_r->group));
	return 0;
}

int
privsep_drop(const struct privsep_id *id, int keep_group,
    const char **error_r)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	gid_t groups[2];

	if (setgroups(keep_group ? 1 : 0, &id->gid) < 0) {
		*error_r = privsep_err("setgroups", NULL);
		return -1;
	}
	if (setresgid(id->gid, id->gid, id->gid) < 0) {
		*error_r = privsep_err("setresgid", NULL);
		return -1;
	}
	if (setresuid(id->uid, id->uid, id->uid) < 0) {
		*error_r = privsep_err("setresuid", NULL);
		return -1;
	}
	/* Trust nothing: read back every id, and root must be gone. */
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != id->uid || eu != id->uid || su != id->uid ||
	    rg != id->gid || eg != id->gid || sg != id->gid) {
		*error_r = "privileges not dropped: ids differ after setresuid";
		return -1;
	}
	int n = getgroups(2, groups);

	if (n < 0 || n > (keep_group ? 1 : 0) ||
	    (n == 1 && groups[0] != id->gid)) {
		*error_r = "privileges not dropped: supplementary groups remain";
		return -1;
	}
	if (setuid(0) != -1 || setgid(0) != -1) {
		*error_r = "privileges not dropped: setuid(0) still works";
		return -1;
	}
	return 0;
}

int
privsep_confine(const char *dir, const struct privsep_id *id,
    const char **error_r)
{
	struct rlimit rl = { 0, 0 };

	if (privsep_root()) {
		if (chroot(dir) < 0) {
			*error_r = privsep_err("chroot", dir);
			return -1;
		}
		if (chdir("/") < 0) {
			*error_r = privsep_err("chdir /", NULL);
			return -1;
		}
		if (privsep_drop(id, 0, error_r) < 0)
			return -1;
	}
	/* No setuid binary, file capability or exec can give anything
	 * back; and a session process never forks. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*error_r = privsep_err("prctl no_new_privs", NULL);
		return -1;
	}
	if (setrlimit(RLIMIT_NPROC, &rl) < 0) {
		*error_r = privsep_err("setrlimit nproc", NULL);
		return -1;
	}
	return 0;
}

/* mkdir -p: missing parents root-owned 0755, the last one with mode. */
static int
privsep_mkdirs(const char *path, mode_t mode)
{
	char *p = xstrdup(path);

	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			free(p);
			return -1;
		}
		*s = '/';
	}
	free(p);
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/*
 * Whether id could open path with amode (R_OK, W_OK, X_OK): asked with
 * id's effective ids, so every directory on the way counts. The master
 * is still single-threaded when it asks.
 */
static int
privsep_access_as(const struct privsep_id *id, const char *path, int amode)
{
	gid_t saved[64];
	int n = getgroups(64, saved), ok, e;

	if (n < 0 || setgroups(1, &id->gid) < 0)
		return -1;
	ok = setegid(id->gid) == 0 && seteuid(id->uid) == 0 &&
	    faccessat(AT_FDCWD, path, amode, AT_EACCESS) == 0;
	e = errno;
	if (seteuid(0) < 0 || setegid(0) < 0 || setgroups((size_t)n, saved) < 0)
		fatal("privsep: cannot become root again");
	errno = e;
	return ok ? 0 : -1;
}

static int
privsep_chroot_dir(const char *dir, const char **error_r)
{
	struct stat st;
	DIR *d;
	struct dirent *de;

	if (privsep_mkdirs(dir, 0755) < 0) {
		*error_r = privsep_err("session_chroot: cannot create", dir);
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		*error_r = privsep_err("session_chroot", dir);
		return -1;
	}
	/* As OpenSSH's ChrootDirectory: nobody but root may change it. */
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		snprintf(privsep_ebuf, sizeof(privsep_ebuf), "session_chroot "
		    "%s: must be a directory owned by root and writable by "
		    "nobody else", dir);
		*error_r = privsep_ebuf;
		return -1;
	}
	if ((d = opendir(dir)) == NULL) {
		*error_r = privsep_err("session_chroot", dir);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(privsep_ebuf, sizeof(privsep_ebuf), "session_chroot "
		    "%s: must be empty (it has %s)", dir, de->d_name);
		*error_r = privsep_ebuf;
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

/* The database file of a sqlite: store, or NULL (another backend). */
static const char *
privsep_sqlite_path(const struct config *conf)
{
	if (strncmp(conf->store, "sqlite:", 7) != 0)
		return NULL;
	return conf->store + 7;
}

int
privsep_prepare_dirs(const struct config *conf,
    const struct privsep_id *user, const char **error_r)
{
	const char *db = privsep_sqlite_path(conf);

	if (privsep_chroot_dir(conf->session_chroot, error_r) < 0)
		return -1;
	if (db == NULL)
		return 0;

	char *dir = xstrdup(db), *slash = strrchr(dir, '/');
	struct stat st;

	if (slash == NULL || slash == dir) {
		free(dir);
		*error_r = "store: the database must be in a directory of its "
		    "own, not /";
		return -1;
	}
	*slash = '\0';
	if (stat(dir, &st) < 0) {
		if (privsep_mkdirs(dir, 0750) < 0 ||
		    chown(dir, user->uid, user->gid) < 0) {
			*error_r = privsep_err("store: cannot create", dir);
			free(dir);
			return -1;
		}
	}
	/* SQLite makes DB-wal and DB-shm beside the database whenever it is
	 * opened, so the directory itself must be writable by user. */
	if (privsep_access_as(user, dir, W_OK | X_OK) < 0) {
		snprintf(privsep_ebuf, sizeof(privsep_ebuf), "store: user %s "
		    "cannot write to %s, where SQLite keeps the database's "
		    "-wal and -shm files (make it owned by %s)", user->user,
		    dir, user->user);
		*error_r = privsep_ebuf;
		free(dir);
		return -1;
	}
	free(dir);
	return 0;
}

/* The target of privsep_own_tree's walk (nftw has no argument). */
static const struct privsep_id *privsep_walk_id;
static int privsep_walk_errno;

static int
privsep_own_one(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_NS || flag == FTW_DNR) {
		privsep_walk_errno = errno;
		return 0;
	}
	if ((st->st_uid != privsep_walk_id->uid ||
	    st->st_gid != privsep_walk_id->gid) &&
	    lchown(path, privsep_walk_id->uid, privsep_walk_id->gid) < 0)
		privsep_walk_errno = errno;
	if (!S_ISLNK(st->st_mode) && (st->st_mode & S_IRWXO) != 0 &&
	    chmod(path, st->st_mode & 07770) < 0)
		privsep_walk_errno = errno;
	return 0;
}

/* Everything under path, path included, to id, nothing for others. */
static int
privsep_walk(const char *path, const struct privsep_id *id,
    const char **error_r)
{
	privsep_walk_id = id;
	privsep_walk_errno = 0;
	if (nftw(path, privsep_own_one, 32, FTW_PHYS) < 0)
		privsep_walk_errno = errno;
	if (privsep_walk_errno != 0) {
		errno = privsep_walk_errno;
		*error_r = privsep_err("cannot give to the daemon's user", path);
		return -1;
	}
	log_info("privsep: %s now belongs to %s:%s", path, id->user,
	    id->group);
	return 0;
}

/*
 * A directory made by root under a top that is already id's (spool_dir
 * given to the user by hand, then incoming/ and queue/ made by a start as
 * root): walk it. One level only: below that the daemon makes everything
 * as id itself.
 */
static int
privsep_own_children(const char *path, const struct privsep_id *id,
    const char **error_r)
{
	struct dirent *de;
	DIR *d;
	int r = 0;

	if ((d = opendir(path)) == NULL) {
		*error_r = privsep_err("cannot open", path);
		return -1;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		struct stat st;
		char *child;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		child = xasprintf("%s/%s", path, de->d_name);
		if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode) &&
		    (st.st_uid != id->uid || st.st_gid != id->gid))
			r = privsep_walk(child, id, error_r);
		free(child);
	}
	closedir(d);
	return r;
}

/*
 * path and what is under it owned by id, nothing for others. The walk
 * runs when the top is not id's yet (the first start after a version
 * that ran as root); else only the top and the directories right under
 * it are checked, so a large maildir_root is not walked at every start.
 */
static int
privsep_own_tree(const char *path, const struct privsep_id *id,
    const char **error_r)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		*error_r = privsep_err("cannot stat", path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(privsep_ebuf, sizeof(privsep_ebuf), "%s: not a "
		    "directory", path);
		*error_r = privsep_ebuf;
		return -1;
	}
	if (st.st_uid != id->uid)
		return privsep_walk(path, id, error_r);
	if (st.st_gid != id->gid && chown(path, id->uid, id->gid) < 0) {
		*error_r = privsep_err("chown", path);
		return -1;
	}
	if ((st.st_mode & S_IRWXO) != 0 && chmod(path, st.st_mode & 07770) < 0) {
		*error_r = privsep_err("chmod", path);
		return -1;
	}
	return privsep_own_children(path, id, error_r);
}

/* A file the daemon reads or rewrites: id's, mode at most 0600. */
static int
privsep_own_file(const char *path, const struct privsep_id *id,
    const char **error_r)
{
	struct stat st;

	if (*path == '\0' || lstat(path, &st) < 0)
		return 0;	/* made later, by the daemon as user */
	if (!S_ISREG(st.st_mode)) {
		snprintf(privsep_ebuf, sizeof(privsep_ebuf), "%s: not a "
		    "regular file", path);
		*error_r = privsep_ebuf;
		return -1;
	}
	if ((st.st_uid != id->uid || st.st_gid != id->gid) &&
	    chown(path, id->uid, id->gid) < 0) {
		*error_r = privsep_err("chown", path);
		return -1;
	}
	if ((st.st_mode & 0177) != 0 && chmod(path, st.st_mode & 0600) < 0) {
		*error_r = privsep_err("chmod", path);
		return -1;
	}
	return 0;
}

int
privsep_prepare_files(const struct config *conf,
    const struct privsep_id *user, const char **error_r)
{
	const char *db = privsep_sqlite_path(conf);
	static const char *const db_suffix[] = { "", "-wal", "-shm",
	    "-journal" };

	if (privsep_own_tree(conf->spool_dir, user, error_r) < 0)
		return -1;
	if (privsep_mkdirs(conf->maildir_root, 0750) < 0) {
		*error_r = privsep_err("cannot create", conf->maildir_root);
		return -1;
	}
	if (privsep_own_tree(conf->maildir_root, user, error_r) < 0)
		return -1;
	for (size_t i = 0; db != NULL && i < sizeof(db_suffix) / sizeof(db_suffix[0]); i++) {
		char *p = xasprintf("%s%s", db, db_suffix[i]);
		int r = privsep_own_file(p, user, error_r);

		free(p);
		if (r < 0)
			return -1;
	}
	/* The APOP key is made here when missing and its directory exists
	 * (e.g. /etc/sekisho, which user cannot write to). */
	if (access(conf->apop_secret_key, F_OK) < 0) {
		char *dir = xstrdup(conf->apop_secret_key);
		char *slash = strrchr(dir, '/');
		unsigned char key[APOP_KEY_LEN];
		const char *error;

		if (slash != NULL)
			*slash = '\0';
		if (slash != NULL && slash != dir && access(dir, F_OK) == 0 &&
		    apop_key_load(conf->apop_secret_key, 1, key, &error) < 0)
			log_warnx("privsep: apop_secret_key not made: %s",
			    error);
		explicit_bzero(key, sizeof(key));
		free(dir);
	}
	if (privsep_own_file(conf->apop_secret_key, user, error_r) < 0)
		return -1;
	/* The Received token key likewise (received_client = token). */
	if (conf->received_client == RECEIVED_CLIENT_TOKEN) {
		const char *error;

		if (trace_token_key_make(conf, (int64_t)time(NULL),
		    &error) < 0)
			log_warnx("privsep: trace_token_key: %s", error);
		if (privsep_own_file(conf->trace_token_key, user,
		    error_r) < 0)
			return -1;
	}
	/* Read-only inputs of the back side: a warning, the daemon may do
	 * without them until they are fixed. */
	if (*conf->relayhost_auth_file != '\0' &&
	    privsep_access_as(user, conf->relayhost_auth_file, R_OK) < 0)
		log_warnx("privsep: user %s cannot read relayhost_auth_file "
		    "%s (make it root:%s 0640)", user->user,
		    conf->relayhost_auth_file, user->group);
	return 0;
}

int
privsep_cli_drop(const struct config *conf, const char **error_r)
{
	struct privsep_id id;

	if (!privsep_root())
		return 0;
	if (privsep_lookup(conf->user, conf->group, &id, error_r) < 0)
		return -1;
	/* What the tools create (the database, Maildirs, key files) is the
	 * daemon's to write, and nobody else's to read. */
	umask(027);
	return privsep_drop(&id, 1, error_r);
}
