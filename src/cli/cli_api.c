/*
 * cli_api: `sekisho api-token add|del|list`, the bearer tokens of the
 * settings page's JSON API (src/backend/api_token.h), and `sekisho admin
 * add|del|passwd|list`, the abuse desk's accounts of the admin pages
 * (src/backend/admin_users.h); docs/portal.md. Both live in the store, so
 * a token or an admin made on one node is good at every node.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/config.h"
#include "../core/str.h"
#include "../backend/admin_users.h"
#include "../backend/api_token.h"
#include "../store/password.h"
#include "../store/store.h"
#include "cli.h"

#define CLI_ADMIN_PASSWORD_MAX	200

/* The configured store, schema up to date; NULL after the message. */
static struct store *
cli_api_store(const struct config *conf, const char *what)
{
	struct store *st;
	const char *error;

	if (conf->store == NULL || *conf->store == '\0') {
		fprintf(stderr, "sekisho: %s: no store configured (set "
		    "'store' in the config file)\n", what);
		return NULL;
	}
	if ((st = store_open(conf->store, &error)) == NULL) {
		fprintf(stderr, "sekisho: %s: %s\n", what, error);
		return NULL;
	}
	if (store_init_schema(st, &error) < 0) {
		fprintf(stderr, "sekisho: %s: %s\n", what, error);
		store_close(&st);
		return NULL;
	}
	return st;
}

static int
cli_api_flush(int r)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "sekisho: cannot write output: %s\n",
		    strerror(errno));
		return 1;
	}
	return r;
}

void
cli_api_usage(void)
{
	printf("  api-token add NAME       make a JSON API token (printed once)\n"
	    "  api-token del NAME       revoke it (at every node)\n"
	    "  api-token list           names and creation times\n\n");
}

static int
cli_api_token_run(struct store *st, int argc, char **argv)
{
	struct str out = STR_INIT;
	const char *error = NULL;
	char token[128];
	int r;

	if (argc == 2 && strcmp(argv[0], "add") == 0) {
		r = api_token_add(st, argv[1], token, sizeof(token), &error);
		if (r < 0) {
			fprintf(stderr, "sekisho: api-token add: %s\n", error);
			return 1;
		}
		printf("%s\n", token);
		explicit_bzero(token, sizeof(token));
		return 0;
	}
	if (argc == 2 && strcmp(argv[0], "del") == 0) {
		if (api_token_del(st, argv[1], &error) != 0) {
			fprintf(stderr, "sekisho: api-token del %s: %s\n",
			    argv[1], error);
			return 1;
		}
		return 0;
	}
	/* argc == 1 && "list": checked by the caller */
	r = api_token_list(st, &out, &error);
	if (r < 0)
		fprintf(stderr, "sekisho: api-token list: %s\n", error);
	else
		fputs(str_c(&out), stdout);
	str_deinit(&out);
	return r < 0 ? 1 : 0;
}

int
cli_api_token(const struct config *conf, int argc, char **argv)
{
	struct store *st;
	int r;

	if (!((argc == 2 && (strcmp(argv[0], "add") == 0 ||
	    strcmp(argv[0], "del") == 0)) ||
	    (argc == 1 && strcmp(argv[0], "list") == 0))) {
		fprintf(stderr, "usage:\n");
		cli_api_usage();
		return 2;
	}
	if ((st = cli_api_store(conf, "api-token")) == NULL)
		return 1;
	r = cli_api_token_run(st, argc, argv);
	store_close(&st);
	return cli_api_flush(r);
}

void
cli_admin_usage(void)
{
	printf("  admin add NAME           an admin of the admin pages; password "
	    "on stdin\n"
	    "  admin passwd NAME        new password on stdin\n"
	    "  admin del NAME\n"
	    "  admin list               names and creation times\n\n");
}

/* add or passwd: the password from stdin, hashed. */
static int
cli_admin_set(struct store *st, const char *cmd, const char *name)
{
	char pw[CLI_ADMIN_PASSWORD_MAX + 2], *hash;
	const char *error = NULL;
	size_t len;
	int r;

	if (fgets(pw, sizeof(pw), stdin) == NULL) {
		fprintf(stderr, "sekisho: admin %s: no password on stdin\n",
		    cmd);
		return 1;
	}
	len = strcspn(pw, "\r\n");
	pw[len] = '\0';
	if (len < 8 || len > CLI_ADMIN_PASSWORD_MAX) {
		explicit_bzero(pw, sizeof(pw));
		fprintf(stderr, "sekisho: admin %s: a password of 8 to %d "
		    "characters, please\n", cmd, CLI_ADMIN_PASSWORD_MAX);
		return 1;
	}
	hash = password_hash(pw, &error);
	explicit_bzero(pw, sizeof(pw));
	if (hash == NULL) {
		fprintf(stderr, "sekisho: admin %s: %s\n", cmd, error);
		return 1;
	}
	r = admin_users_set(st, name, hash, cmd[0] == 'a' ? 'a' : 'p',
	    &error);
	free(hash);
	if (r < 0) {
		fprintf(stderr, "sekisho: admin %s %s: %s\n", cmd, name, error);
		return 1;
	}
	return 0;
}

/* NAME CREATED: never show the hash */
static int
cli_admin_list_row(const struct store_name_row *row, void *context)
{
	(void)context;
	printf("%s\t%lld\n", row->name, (long long)row->created);
	return 0;
}

static int
cli_admin_list(struct store *st)
{
	const char *error;

	if (store_admin_list(st, cli_admin_list_row, NULL, &error) < 0) {
		fprintf(stderr, "sekisho: admin list: %s\n", error);
		return 1;
	}
	return 0;
}

int
cli_admin(const struct config *conf, int argc, char **argv)
{
	struct store *st;
	const char *error = NULL;
	int r;

	if (!((argc == 2 && (strcmp(argv[0], "add") == 0 ||
	    strcmp(argv[0], "passwd") == 0 || strcmp(argv[0], "del") == 0)) ||
	    (argc == 1 && strcmp(argv[0], "list") == 0))) {
		fprintf(stderr, "usage:\n");
		cli_admin_usage();
		return 2;
	}
	if ((st = cli_api_store(conf, "admin")) == NULL)
		return 1;
	if (strcmp(argv[0], "list") == 0)
		r = cli_admin_list(st);
	else if (strcmp(argv[0], "del") == 0) {
		r = admin_users_del(st, argv[1], &error) != 0;
		if (r != 0)
			fprintf(stderr, "sekisho: admin del %s: %s\n", argv[1],
			    error);
	} else
		r = cli_admin_set(st, argv[0], argv[1]);
	store_close(&st);
	return cli_api_flush(r);
}
