/*
 * admin_users: admin accounts of the admin pages in a file (see
 * admin_users.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/str.h"
#include "../core/xmalloc.h"
#include "admin_users.h"
#include "portal_file.h"
#include "api_token.h"

#define ADMIN_USERS_FILE_MAX	(1024 * 1024)

/* Split "NAME HASH" in place; 0 if both are there. */
static int
admin_users_fields(char *line, char **name, char **hash)
{
	char *sp = strchr(line, ' ');

	if (sp == NULL || sp == line || sp[1] == '\0')
		return -1;
	*sp = '\0';
	*name = line;
	*hash = sp + 1;
	return 0;
}

int
admin_users_get(const char *path, const char *name, char **hash_r,
    const char **error_r)
{
	struct str text = STR_INIT;
	char *p, *line, *n, *h;
	int r = 1;

	if (portal_file_read(path, "admin_users_file", ADMIN_USERS_FILE_MAX, &text, error_r) < 0) {
		str_deinit(&text);
		return -1;
	}
	p = text.s;
	while (p != NULL && (line = strsep(&p, "\n")) != NULL)
		if (admin_users_fields(line, &n, &h) == 0 &&
		    strcmp(n, name) == 0) {
			*hash_r = xstrdup(h);
			r = 0;
			break;
		}
	str_deinit(&text);
	return r;
}

/* Rewrite the file with NAME's line replaced (hash) or dropped (NULL). */
static int
admin_users_rewrite(const char *path, const char *name, const char *hash,
    int *found_r, const char **error_r)
{
	struct str text = STR_INIT, out = STR_INIT;
	char *p, *line, *n, *h;
	int r = -1;

	*found_r = 0;
	if (portal_file_read(path, "admin_users_file", ADMIN_USERS_FILE_MAX, &text, error_r) < 0)
		goto done;
	p = text.s;
	while (p != NULL && (line = strsep(&p, "\n")) != NULL) {
		if (admin_users_fields(line, &n, &h) < 0)
			continue;
		if (strcmp(n, name) == 0) {
			*found_r = 1;
			if (hash != NULL)
				str_printf(&out, "%s %s\n", n, hash);
		} else
			str_printf(&out, "%s %s\n", n, h);
	}
	if (!*found_r && hash != NULL)
		str_printf(&out, "%s %s\n", name, hash);
	r = portal_file_replace(path, &out, error_r);
done:
	str_deinit(&text);
	str_deinit(&out);
	return r;
}

int
admin_users_set(const char *path, const char *name, const char *hash,
    char mode, const char **error_r)
{
	char *old = NULL;
	int found, r;

	if (api_token_name_ok(name) < 0) {
		*error_r = "an admin name is 1 to 32 of a-z, 0-9 and -";
		return -1;
	}
	if ((r = admin_users_get(path, name, &old, error_r)) < 0)
		return -1;
	free(old);
	if (mode == 'a' && r == 0) {
		*error_r = "an admin of that name exists";
		return -1;
	}
	if (mode == 'p' && r == 1) {
		*error_r = "no such admin";
		return -1;
	}
	return admin_users_rewrite(path, name, hash, &found, error_r);
}

int
admin_users_del(const char *path, const char *name, const char **error_r)
{
	char *old = NULL;
	int found, r;

	if ((r = admin_users_get(path, name, &old, error_r)) != 0) {
		if (r == 1)
			*error_r = "no such admin";
		return r;
	}
	free(old);
	return admin_users_rewrite(path, name, NULL, &found, error_r);
}
