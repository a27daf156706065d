/*
 * admin_users: the abuse desk's accounts for the admin pages, separate
 * from subscribers, in the store (store_admin_*), so an admin added on
 * one node logs in at every node: a name (1 to 32 of a-z, 0-9, -) and a
 * crypt(3) hash (yescrypt from src/store/password.h). Written by
 * `sekisho admin add|del|passwd`, read by the back side at each admin
 * login and request.
 */
#ifndef SEKISHO_ADMIN_USERS_H
#define SEKISHO_ADMIN_USERS_H

struct store;

/* 0: *hash_r is NAME's hash (caller frees); 1: no such admin; -1: the
 * store cannot answer (error_r). */
int admin_users_get(struct store *st, const char *name, char **hash_r,
    const char **error_r);
/*
 * Set NAME's hash. mode 'a': add (refused if NAME exists), 'p': change
 * (refused if not). -1 with error_r on refusal or store error.
 */
int admin_users_set(struct store *st, const char *name, const char *hash,
    char mode, const char **error_r);
/* 1 if no such admin. */
int admin_users_del(struct store *st, const char *name, const char **error_r);

#endif
