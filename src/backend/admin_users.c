/*
 * admin_users: admin accounts of the admin pages in the store (see
 * admin_users.h).
 */
#include <stdlib.h>
#include <time.h>

#include "../store/store.h"
#include "admin_users.h"
#include "api_token.h"

int
admin_users_get(struct store *st, const char *name, char **hash_r,
    const char **error_r)
{
	*hash_r = NULL;
	if (!store_name_ok(name))
		return 1;
	return store_admin_get(st, name, hash_r, error_r);
}

int
admin_users_set(struct store *st, const char *name, const char *hash,
    char mode, const char **error_r)
{
	if (!store_name_ok(name)) {
		*error_r = "an admin name is 1 to 32 of a-z, 0-9 and -";
		return -1;
	}
	if (mode == 'a')
		return store_admin_add(st, name, hash, (int64_t)time(NULL),
		    error_r) < 0 ? -1 : 0;
	return store_admin_set_password(st, name, hash, error_r) != 0 ? -1 : 0;
}

int
admin_users_del(struct store *st, const char *name, const char **error_r)
{
	return store_admin_del(st, name, error_r);
}
