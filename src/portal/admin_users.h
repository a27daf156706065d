/*
 * admin_users: the abuse desk's accounts for the admin pages, separate
 * from subscribers, in the file admin_users_file: one line an admin,
 * "NAME CRYPT-HASH" (yescrypt from src/store/password.h). Written by
 * `sekisho admin add|del|passwd` (atomically, mode 0600), read by the
 * back side at each admin login.
 */
#ifndef SEKISHO_ADMIN_USERS_H
#define SEKISHO_ADMIN_USERS_H

/* 0: *hash_r is NAME's hash (caller frees); 1: no such admin; -1: the
 * file cannot be read (error_r). */
int admin_users_get(const char *path, const char *name, char **hash_r,
    const char **error_r);
/*
 * Set NAME's hash. mode 'a': add (refused if NAME exists), 'p': change
 * (refused if not). -1 with error_r on refusal or I/O error.
 */
int admin_users_set(const char *path, const char *name, const char *hash,
    char mode, const char **error_r);
/* 1 if no such admin. */
int admin_users_del(const char *path, const char *name, const char **error_r);

#endif
