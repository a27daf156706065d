/*
 * cli_api: `sekisho api-token add|del|list`, the bearer tokens of the
 * settings page's JSON API (src/portal/api_token.h, docs/portal.md).
 */
#include <stdio.h>
#include <string.h>

#include "../core/config.h"
#include "../portal/api_token.h"
#include "cli.h"

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
