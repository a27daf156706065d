/*
 * cli_api: `sekisho api-token add|del|list`, the bearer tokens of the
 * settings page's JSON API (src/portal/api_token.h), and `sekisho admin
 * add|del|passwd`, the abuse desk's accounts of the admin pages
 * (src/portal/admin_users.h); docs/portal.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/config.h"
#include "../portal/admin_users.h"
#include "../portal/api_token.h"
#include "../store/password.h"
#include "cli.h"

#define CLI_ADMIN_PASSWORD_MAX	200

void
cli_api_usage(void)
{
	printf("  api-token add NAME       make a JSON API token (printed once)\n"
	    "  api-token del NAME       revoke it\n"
	    "  api-token list           names and creation times\n\n");
}

int
cli_api_token(const struct config *conf, int argc, char **argv)
{
	const char *error = NULL;
	char token[128];
	int r;

	if (argc == 2 && strcmp(argv[0], "add") == 0) {
		if (api_token_add(conf->api_tokens_file, argv[1], token,
		    sizeof(token), &error) < 0) {
			fprintf(stderr, "sekisho: api-token add: %s\n", error);
			return 1;
		}
		printf("%s\n", token);
		return 0;
	}
	if (argc == 2 && strcmp(argv[0], "del") == 0) {
		r = api_token_del(conf->api_tokens_file, argv[1], &error);
		if (r != 0) {
			fprintf(stderr, "sekisho: api-token del %s: %s\n",
			    argv[1], error);
			return 1;
		}
		return 0;
	}
	if (argc == 1 && strcmp(argv[0], "list") == 0) {
		if (api_token_list(conf->api_tokens_file, &error) < 0) {
			fprintf(stderr, "sekisho: api-token list: %s\n", error);
			return 1;
		}
		return 0;
	}
	fprintf(stderr, "usage:\n");
	cli_api_usage();
	return 2;
}

void
cli_admin_usage(void)
{
	printf("  admin add NAME           an admin of the admin pages; password "
	    "on stdin\n"
	    "  admin passwd NAME        new password on stdin\n"
	    "  admin del NAME\n\n");
}

int
cli_admin(const struct config *conf, int argc, char **argv)
{
	char pw[CLI_ADMIN_PASSWORD_MAX + 2], *hash;
	const char *error = NULL;
	size_t len;
	int r;

	if (argc == 2 && strcmp(argv[0], "del") == 0) {
		if (admin_users_del(conf->admin_users_file, argv[1],
		    &error) != 0) {
			fprintf(stderr, "sekisho: admin del %s: %s\n", argv[1],
			    error);
			return 1;
		}
		return 0;
	}
	if (argc != 2 || (strcmp(argv[0], "add") != 0 &&
	    strcmp(argv[0], "passwd") != 0)) {
		fprintf(stderr, "usage:\n");
		cli_admin_usage();
		return 2;
	}
	if (fgets(pw, sizeof(pw), stdin) == NULL) {
		fprintf(stderr, "sekisho: admin %s: no password on stdin\n",
		    argv[0]);
		return 1;
	}
	len = strcspn(pw, "\r\n");
	pw[len] = '\0';
	if (len < 8 || len > CLI_ADMIN_PASSWORD_MAX) {
		fprintf(stderr, "sekisho: admin %s: a password of 8 to %d "
		    "characters, please\n", argv[0], CLI_ADMIN_PASSWORD_MAX);
		return 1;
	}
	if ((hash = password_hash(pw, &error)) == NULL) {
		fprintf(stderr, "sekisho: admin %s: %s\n", argv[0], error);
		return 1;
	}
	explicit_bzero(pw, sizeof(pw));
	r = admin_users_set(conf->admin_users_file, argv[1], hash,
	    argv[0][0] == 'a' ? 'a' : 'p', &error);
	free(hash);
	if (r < 0) {
		fprintf(stderr, "sekisho: admin %s %s: %s\n", argv[0], argv[1],
		    error);
		return 1;
	}
	return 0;
}
