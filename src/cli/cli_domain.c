/*
 * cli_domain: "sekisho domain ...", the local mail domains (see cli.h).
 * An account can only be added in a domain listed here, and mail for
 * these domains is delivered locally.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../core/config.h"
#include "../core/str.h"
#include "../store/store.h"
#include "cli.h"

struct cli_domain_cmd {
	const char	*name;
	const char	*synopsis;	/* after "sekisho domain " */
	const char	*help;
	int		 nargs_min, nargs_max;
	int		(*run)(struct store *, char **);
};

static int cli_domain_add(struct store *, char **);
static int cli_domain_del(struct store *, char **);
static int cli_domain_list(struct store *, char **);

static const struct cli_domain_cmd cli_domain_cmds[] = {
	{ "add", "add DOMAIN", "make DOMAIN local: accept and deliver its mail",
	    1, 1, cli_domain_add },
	{ "del", "del DOMAIN",
	    "stop being local for DOMAIN; refused while it has accounts or "
	    "aliases", 1, 1, cli_domain_del },
	{ "list", "list", "list the local domains, one per line", 0, 0,
	    cli_domain_list },
};

#define CLI_DOMAIN_NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

static void
cli_domain_print_usage(FILE *fp)
{
	fprintf(fp, "Domains:\n");
	for (size_t i = 0; i < CLI_DOMAIN_NITEMS(cli_domain_cmds); i++)
		fprintf(fp, "  domain %s\n        %s\n",
		    cli_domain_cmds[i].synopsis, cli_domain_cmds[i].help);
	fputs("\n", fp);
}

void
cli_domain_usage(void)
{
	cli_domain_print_usage(stdout);
}

/* Say what is wrong, then the synopsis of cmd, or all when NULL. */
static int cli_domain_usage_error(const struct cli_domain_cmd *cmd,
    const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
cli_domain_usage_error(const struct cli_domain_cmd *cmd, const char *fmt,
    ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = cli_usage_verror("domain", cmd != NULL ? cmd->synopsis : NULL,
	    cli_domain_print_usage, fmt, ap);
	va_end(ap);
	return ret;
}

static int
cli_domain_add(struct store *st, char **argv)
{
	const char *error;

	return store_domain_add(st, argv[0], &error) == 0 ? 0 :
	    cli_fail(error);
}

static int
cli_domain_del(struct store *st, char **argv)
{
	const char *error;

	return store_domain_del(st, argv[0], &error) == 0 ? 0 :
	    cli_fail(error);
}

static int
cli_domain_list_row(const char *domain, void *context)
{
	str_printf(context, "%s\n", domain);
	return 0;
}

static int
cli_domain_list(struct store *st, char **argv)
{
	struct str out = STR_INIT;
	const char *error;

	(void)argv;
	return cli_print_list(&out, store_domain_list(st,
	    cli_domain_list_row, &out, &error), &error);
}

struct cli_domain_call {
	const struct cli_domain_cmd	*cmd;
	char				**argv;
};

static int
cli_domain_run(struct store *st, void *context)
{
	const struct cli_domain_call *call = context;

	return call->cmd->run(st, call->argv);
}

int
cli_domain(const struct config *conf, int argc, char **argv)
{
	const struct cli_domain_cmd *cmd = NULL;
	struct cli_domain_call call;

	if (argc < 1)
		return cli_domain_usage_error(NULL,
		    "'domain' needs a subcommand");
	if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "--help") == 0) {
		cli_domain_usage();
		return 0;
	}
	for (size_t i = 0; i < CLI_DOMAIN_NITEMS(cli_domain_cmds); i++) {
		if (strcmp(cli_domain_cmds[i].name, argv[0]) == 0)
			cmd = &cli_domain_cmds[i];
	}
	if (cmd == NULL)
		return cli_domain_usage_error(NULL,
		    "unknown subcommand 'domain %s'", argv[0]);
	if (argc - 1 < cmd->nargs_min || argc - 1 > cmd->nargs_max)
		return cli_domain_usage_error(cmd, "'domain %s' takes %s",
		    cmd->name, cmd->nargs_max == 0 ? "no arguments" :
		    "one argument");
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			return cli_domain_usage_error(cmd,
			    "unknown option '%s'", argv[i]);
	}

	call.cmd = cmd;
	call.argv = argv + 1;
	return cli_with_store(conf, cli_domain_run, &call);
}
