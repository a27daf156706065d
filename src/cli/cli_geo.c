/*
 * cli_geo: "sekisho geo lookup IP...", the country the overseas rule
 * would see for each address (see cli.h). It opens the configured
 * geo_database (or the one given with --database) the same way the
 * daemon does, so an operator can check a new database file before
 * pointing the server at it. Output, one line per address:
 *   IP COUNTRY KIND SOURCE
 * with COUNTRY "-" when there is none (KIND internal or unknown).
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../geo/geo.h"
#include "cli.h"

void
cli_geo_usage(void)
{
	printf("Country look-up:\n"
	    "  geo lookup [--database SPEC] IP...\n"
	    "        print IP COUNTRY KIND SOURCE for each address; KIND is\n"
	    "        country, internal or unknown; SPEC as geo_database\n\n");
}

/* An IPv4 or IPv6 address in text; 0 ok, -1 not an address. */
static int
cli_geo_parse(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

static int
cli_geo_lookup(const struct config *conf, int argc, char **argv)
{
	struct sockaddr_storage ss;
	struct geo_result r;
	struct geo *g;
	const char *spec = conf->geo_database, *error;
	char shown[128];
	int i = 0, ret = 0;

	if (argc >= 2 && strcmp(argv[0], "--database") == 0) {
		spec = argv[1];
		i = 2;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: sekisho geo lookup "
		    "[--database SPEC] IP...\n");
		return 2;
	}
	if ((g = geo_open_spec(spec, &error)) == NULL) {
		fprintf(stderr, "sekisho: geo: %s\n", error);
		return 1;
	}
	for (; i < argc; i++) {
		if (cli_geo_parse(argv[i], &ss) < 0) {
			(void)log_printable(shown, sizeof(shown), argv[i],
			    strlen(argv[i]));
			fprintf(stderr, "sekisho: geo lookup: '%s' is not an "
			    "IPv4 or IPv6 address\n", shown);
			ret = 1;
			continue;
		}
		(void)geo_lookup(g, (struct sockaddr *)&ss, &r);
		printf("%s %s %s %s\n", argv[i],
		    r.country[0] != '\0' ? r.country : "-",
		    geo_kind_name(r.kind), r.source);
	}
	geo_close(&g);
	return ret;
}

int
cli_geo(const struct config *conf, int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "lookup") == 0)
		return cli_geo_lookup(conf, argc - 1, argv + 1);
	fprintf(stderr, "usage: sekisho geo lookup [--database SPEC] IP...\n");
	return 2;
}
