/*
 * sekisho: one binary, subcommands. "serve" runs the daemon; the others
 * are the operator's tools (check-config, config, user, domain).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "daemon/privsep.h"
#include "daemon/master.h"
#include "core/str.h"
#include "core/version.h"
#include "policy/policy.h"

#define SEKISHO_DEFAULT_CONF	"/etc/sekisho/sekisho.conf"

/* The operator's commands that take the loaded config: one row each. */
struct main_cmd {
	const char	*name;
	int		(*fn)(const struct config *, int, char **);
};

static const struct main_cmd main_cmds[] = {
	{ "user", cli_user },
	{ "domain", cli_domain },
	{ "geo", cli_geo },
	{ "overseas", cli_overseas },
	{ "limits", cli_limits },
	{ "events", cli_events },
	{ "trace", cli_trace },
	{ "queue", cli_queue },
	{ "store", cli_store },
	{ "api-token", cli_api_token },
	{ "admin", cli_admin },
	{ "status", cli_status },
	{ "risk", cli_risk },
	{ "warn", cli_warn },
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: sekisho [-c FILE] COMMAND [ARGS]\n"
	    "\n"
	    "  serve [-f]             run the daemon (-f: foreground, log to stderr)\n"
	    "  check-config [FILE]    check a config file; errors as FILE:LINE: text\n"
	    "  config defaults        print every key with its default\n"
	    "  config print           print the effective configuration\n"
	    "  config markdown        print the reference (docs/config.md)\n"
	    "  config man             print the manual page sekisho.conf(5)\n"
	    "  version\n"
	    "\n"
	    "The config file is -c FILE, else $SEKISHO_CONFIG, else %s.\n\n",
	    SEKISHO_DEFAULT_CONF);
	cli_policy_usage();
	cli_user_usage();
	cli_domain_usage();
	cli_geo_usage();
	cli_queue_usage();
	cli_store_usage();
	cli_api_usage();
	cli_admin_usage();
	cli_status_usage();
	cli_risk_usage();
}

static struct config *
main_load(const char *path)
{
	struct str errors = STR_INIT;
	struct config *conf;

	if (config_load(path, &conf, &errors) < 0) {
		fputs(str_c(&errors), stderr);
		str_deinit(&errors);
		return NULL;
	}
	str_deinit(&errors);
	/* Days of the send limits, dates in replies and headers, and log
	 * times all follow the configured zone (default Asia/Tokyo). Set
	 * before any thread starts: the process has one zone. */
	setenv("TZ", conf->timezone, 1);
	tzset();
	policy_clock_init();
	return conf;
}

/*
 * Close every descriptor the daemon inherited above stderr (a shell's, a
 * service manager's or a parent's left open without FD_CLOEXEC): else
 * every process, the chrooted session processes included, keeps it
 * open. No listener is inherited (no socket activation: the master
 * opens its own). Before anything opens a descriptor of its own.
 */
static void
main_close_inherited(void)
{
	if (close_range(3, ~0U, 0) == 0)
		return;
	/* an older kernel: walk /proc (opendir's own descriptor spared) */
	DIR *d = opendir("/proc/self/fd");

	if (d == NULL) {
		for (int fd = 3; fd < 1024; fd++)
			(void)close(fd);
		return;
	}
	int mine = dirfd(d);
	struct dirent *e;
	int fds[1024];
	size_t n = 0;

	while ((e = readdir(d)) != NULL && n < sizeof(fds) / sizeof(fds[0])) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);

		if (*end == '\0' && end != e->d_name && fd > 2 && fd != mine)
			fds[n++] = (int)fd;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++)
		(void)close(fds[i]);
}

static int
main_serve(const char *path, int argc, char **argv)
{
	struct config *conf;
	const char *error;
	int foreground = 0, r;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0)
			foreground = 1;
		else {
			fprintf(stderr, "sekisho: serve: unknown option %s\n",
			    argv[i]);
			return 2;
		}
	}
	main_close_inherited();
	/* Before the config is read: checking it builds an SSL_CTX, and
	 * OpenSSL's allocator can only be set before its first allocation. */
	mem_init();
	/* SIGHUP reads the file again, after daemon() left the directory */
	char *abs = realpath(path, NULL);

	conf = main_load(abs != NULL ? abs : path);
	free(abs);
	if (conf == NULL)
		return 1;
	log_init("sekisho", foreground, log_level_parse(conf->log_level));
	if (!foreground && daemon(0, 0) < 0) {
		perror("sekisho: daemon");
		return 1;
	}
	if ((r = master_run(conf, &error)) < 0) {
		log_warnx("cannot start: %s", error);
		if (!foreground)
			fprintf(stderr, "sekisho: cannot start: %s\n", error);
		config_free(&conf);
		return 1;
	}
	config_free(&conf);
	return r == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *path = getenv("SEKISHO_CONFIG");
	const char *error;
	struct config *conf;
	int i = 1, r;

	if (path == NULL || *path == '\0')
		path = SEKISHO_DEFAULT_CONF;
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[i++];

	log_init("sekisho", 1, LOG_LEVEL_WARN);
	if (strcmp(cmd, "serve") == 0)
		return main_serve(path, argc - i, argv + i);
	if (strcmp(cmd, "check-config") == 0) {
		if (i < argc)
			path = argv[i];
		if ((conf = main_load(path)) == NULL)
			return 1;
		printf("%s: ok\n", path);
		config_free(&conf);
		return 0;
	}
	if (strcmp(cmd, "config") == 0) {
		const char *what = i < argc ? argv[i] : "";

		if (strcmp(what, "defaults") == 0) {
			config_print_defaults(stdout);
			return 0;
		}
		if (strcmp(what, "markdown") == 0) {
			config_print_markdown(stdout);
			return 0;
		}
		if (strcmp(what, "man") == 0) {
			config_print_man(stdout, SEKISHO_VERSION,
			    SEKISHO_RELEASE_DATE);
			return 0;
		}
		if (strcmp(what, "print") == 0) {
			if ((conf = main_load(path)) == NULL)
				return 1;
			config_print(stdout, conf);
			config_free(&conf);
			return 0;
		}
		fprintf(stderr, "usage: sekisho config "
		    "defaults|print|markdown|man\n");
		return 2;
	}
	if (strcmp(cmd, "version") == 0) {
		printf("sekisho %s\n", SEKISHO_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	const struct main_cmd *mc = NULL;

	for (size_t k = 0; k < sizeof(main_cmds) / sizeof(main_cmds[0]); k++)
		if (strcmp(cmd, main_cmds[k].name) == 0)
			mc = &main_cmds[k];
	if (mc == NULL) {
		fprintf(stderr, "sekisho: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	if ((conf = main_load(path)) == NULL)
		return 1;
	/* Run as root, the tools work as the daemon's user: what they make
	 * (the database, Maildirs, key files) the daemon can write. */
	if (privsep_cli_drop(conf, &error) < 0) {
		fprintf(stderr, "sekisho: %s\n", error);
		config_free(&conf);
		return 1;
	}
	r = mc->fn(conf, argc - i, argv + i);
	config_free(&conf);
	return r;
}
