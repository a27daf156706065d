/*
 * cli_user: "sekisho user ...", the operator's commands for accounts and
 * their aliases (see cli.h). One row per subcommand in a table; each run
 * function gets an open store and the parsed arguments. Output is one
 * item per line, stable, for people and scripts alike.
 *
 * New passwords come from stdin when it is not a terminal (one line), or
 * are asked twice without echo; they are hashed here (yescrypt) and only
 * the hash reaches the store. --hash imports an existing crypt(3) hash.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../core/config.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../backend/apop.h"
#include "../store/password.h"
#include "../store/store.h"
#include "cli.h"

#define CLI_USER_PASSWORD_MAX	1024

enum {
	CLI_USER_OPT_HASH = 1 << 0,	/* --hash CRYPT_HASH */
	CLI_USER_OPT_REASON = 1 << 1,	/* --reason TEXT */
};

struct cli_user_args {
	const char	*pos[2];	/* positional arguments */
	int		 npos;
	const char	*hash;
	const char	*reason;
};

struct cli_user_cmd {
	const char	*name;
	const char	*synopsis;	/* after "sekisho user " */
	const char	*help;
	int		 min_pos, max_pos;
	int		 opts;
	int		(*run)(struct store *, const struct cli_user_args *);
};

static int cli_user_add(struct store *, const struct cli_user_args *);
static int cli_user_passwd(struct store *, const struct cli_user_args *);
static int cli_user_del(struct store *, const struct cli_user_args *);
static int cli_user_list(struct store *, const struct cli_user_args *);
static int cli_user_show(struct store *, const struct cli_user_args *);
static int cli_user_suspend(struct store *, const struct cli_user_args *);
static int cli_user_resume(struct store *, const struct cli_user_args *);
static int cli_user_alias_add(struct store *, const struct cli_user_args *);
static int cli_user_alias_del(struct store *, const struct cli_user_args *);
static int cli_user_alias_list(struct store *, const struct cli_user_args *);
static int cli_user_apop_enable(struct store *, const struct cli_user_args *);
static int cli_user_apop_disable(struct store *,
    const struct cli_user_args *);

/* For subcommands that need more than the store (apop_secret_key). */
static const struct config *cli_user_conf;

static const struct cli_user_cmd cli_user_cmds[] = {
	{ "add", "add ADDRESS [--hash CRYPT_HASH]",
	    "add an account; its domain must exist", 1, 1,
	    CLI_USER_OPT_HASH, cli_user_add },
	{ "passwd", "passwd ADDRESS [--hash CRYPT_HASH]",
	    "set an account's password", 1, 1, CLI_USER_OPT_HASH,
	    cli_user_passwd },
	{ "del", "del ADDRESS", "delete an account and its aliases", 1, 1, 0,
	    cli_user_del },
	{ "list", "list [DOMAIN]",
	    "list accounts, one per line, \"(suspended)\" when so", 0, 1, 0,
	    cli_user_list },
	{ "show", "show ADDRESS", "show an account", 1, 1, 0, cli_user_show },
	{ "suspend", "suspend ADDRESS [--reason TEXT]",
	    "refuse the account's logins (SMTP, POP3, portal)", 1, 1,
	    CLI_USER_OPT_REASON, cli_user_suspend },
	{ "resume", "resume ADDRESS", "lift a suspension", 1, 1, 0,
	    cli_user_resume },
};

static const struct cli_user_cmd cli_user_alias_cmds[] = {
	{ "add", "alias add ALIAS ADDRESS",
	    "deliver ALIAS to the account ADDRESS (and let it send as ALIAS)",
	    2, 2, 0, cli_user_alias_add },
	{ "del", "alias del ALIAS", "delete an alias", 1, 1, 0,
	    cli_user_alias_del },
	{ "list", "alias list [ADDRESS]",
	    "list aliases as \"ALIAS ADDRESS\", of one account or all", 0, 1,
	    0, cli_user_alias_list },
};

static const struct cli_user_cmd cli_user_apop_cmds[] = {
	{ "enable", "apop enable ADDRESS",
	    "turn APOP on with an APOP password (stdin), stored sealed "
	    "under apop_secret_key", 1, 1, 0, cli_user_apop_enable },
	{ "disable", "apop disable ADDRESS",
	    "turn APOP off and forget the APOP password", 1, 1, 0,
	    cli_user_apop_disable },
};

#define CLI_USER_NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

static void
cli_user_print_usage(FILE *fp)
{
	fprintf(fp, "Accounts:\n");
	for (size_t i = 0; i < CLI_USER_NITEMS(cli_user_cmds); i++)
		fprintf(fp, "  user %s\n        %s\n",
		    cli_user_cmds[i].synopsis, cli_user_cmds[i].help);
	for (size_t i = 0; i < CLI_USER_NITEMS(cli_user_alias_cmds); i++)
		fprintf(fp, "  user %s\n        %s\n",
		    cli_user_alias_cmds[i].synopsis,
		    cli_user_alias_cmds[i].help);
	for (size_t i = 0; i < CLI_USER_NITEMS(cli_user_apop_cmds); i++)
		fprintf(fp, "  user %s\n        %s\n",
		    cli_user_apop_cmds[i].synopsis,
		    cli_user_apop_cmds[i].help);
	fprintf(fp, "The password of add and passwd is read from stdin (one "
	    "line) when it is not a\nterminal, else asked twice. --hash "
	    "imports a crypt(3) hash instead:\n$y$, $6$, $5$, $2b$ or "
	    "$2y$.\n\n");
}

void
cli_user_usage(void)
{
	cli_user_print_usage(stdout);
}

/* Say what is wrong, then the synopsis of cmd, or all when NULL. */
static int cli_user_usage_error(const struct cli_user_cmd *cmd,
    const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
cli_user_usage_error(const struct cli_user_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = cli_usage_verror("user", cmd != NULL ? cmd->synopsis : NULL,
	    cli_user_print_usage, fmt, ap);
	va_end(ap);
	return ret;
}

/* ---- password input ------------------------------------------------- */

static struct termios cli_user_saved_tio;
static volatile sig_atomic_t cli_user_echo_off;

/* An operator's ^C at the prompt must not leave the terminal mute. */
static void
cli_user_signal(int sig)
{
	if (cli_user_echo_off)
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &cli_user_saved_tio);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One line into buf, without its "\n" (or "\r\n"). -1 with error_r. */
static int
cli_user_read_line(char *buf, size_t size, const char **error_r)
{
	size_t len;

	if (fgets(buf, (int)size, stdin) == NULL) {
		*error_r = ferror(stdin) ? "cannot read the password" :
		    "no password given on stdin";
		return -1;
	}
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	else if (!feof(stdin)) {
		*error_r = "password too long";
		return -1;
	}
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len == 0) {
		*error_r = "empty password refused";
		return -1;
	}
	return 0;
}

static int
cli_user_prompt(const char *prompt, char *buf, size_t size,
    const char **error_r)
{
	struct termios tio;
	struct sigaction sa, old_int, old_term;
	int ret;

	if (tcgetattr(STDIN_FILENO, &cli_user_saved_tio) < 0) {
		*error_r = "cannot read the terminal settings";
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cli_user_signal;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, &old_int);
	(void)sigaction(SIGTERM, &sa, &old_term);

	tio = cli_user_saved_tio;
	tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	tio.c_lflag |= ICANON;
	fputs(prompt, stderr);
	fflush(stderr);
	cli_user_echo_off = 1;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) < 0) {
		*error_r = "cannot turn off echo";
		ret = -1;
	} else {
		ret = cli_user_read_line(buf, size, error_r);
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &cli_user_saved_tio);
	}
	cli_user_echo_off = 0;
	fputs("\n", stderr);
	(void)sigaction(SIGINT, &old_int, NULL);
	(void)sigaction(SIGTERM, &old_term, NULL);
	return ret;
}

/* The crypt(3) hash to store: --hash checked, or a new password read
 * and hashed. Caller frees. NULL with error_r set. */
static char *
cli_user_new_hash(const struct cli_user_args *args, const char **error_r)
{
	char pw[CLI_USER_PASSWORD_MAX + 2], again[CLI_USER_PASSWORD_MAX + 2];
	char *hash = NULL;
	int ret;

	if (args->hash != NULL) {
		if (password_check_hash(args->hash, error_r) < 0)
			return NULL;
		return xstrdup(args->hash);
	}
	if (!isatty(STDIN_FILENO)) {
		ret = cli_user_read_line(pw, sizeof(pw), error_r);
	} else {
		ret = cli_user_prompt("New password: ", pw, sizeof(pw),
		    error_r);
		if (ret == 0) {
			ret = cli_user_prompt("Retype new password: ", again,
			    sizeof(again), error_r);
			if (ret == 0 && strcmp(pw, again) != 0) {
				*error_r = "passwords do not match";
				ret = -1;
			}
			explicit_bzero(again, sizeof(again));
		}
	}
	if (ret == 0)
		hash = password_hash(pw, error_r);
	explicit_bzero(pw, sizeof(pw));
	return hash;
}

/* ---- subcommands ---------------------------------------------------- */

static int
cli_user_add(struct store *st, const struct cli_user_args *args)
{
	char canon[STORE_ADDRESS_MAX + 1];
	const char *address = args->pos[0], *error, *domain;
	struct account a;
	char *hash;
	int ret;

	if (store_address_canonical(address, canon, sizeof(canon), &error) < 0) {
		fprintf(stderr, "sekisho: invalid address '%s': %s\n", address,
		    error);
		return 1;
	}
	/* Say what is wrong before asking for a password. */
	domain = strchr(canon, '@') + 1;
	if ((ret = store_domain_exists(st, domain, &error)) != 0) {
		if (ret < 0)
			return cli_fail(error);
		fprintf(stderr, "sekisho: no such domain '%s' (add it with: "
		    "sekisho domain add %s)\n", domain, domain);
		return 1;
	}
	if ((ret = store_account_get(st, canon, &a, &error)) <= 0) {
		if (ret < 0)
			return cli_fail(error);
		account_deinit(&a);
		fprintf(stderr, "sekisho: account '%s' already exists\n",
		    canon);
		return 1;
	}
	if ((hash = cli_user_new_hash(args, &error)) == NULL)
		return cli_fail(error);
	ret = store_account_add(st, canon, hash, &error);
	free(hash);
	return ret == 0 ? 0 : cli_fail(error);
}

/* The account named address into a: 0, or the exit code when there is
 * none (said) or the store failed. */
static int
cli_user_get(struct store *st, const char *address, struct account *a)
{
	const char *error;
	int ret;

	if ((ret = store_account_get(st, address, a, &error)) == 0)
		return 0;
	if (ret < 0)
		return cli_fail(error);
	fprintf(stderr, "sekisho: no such account '%s'\n", address);
	return 1;
}

static int
cli_user_passwd(struct store *st, const struct cli_user_args *args)
{
	struct account a;
	const char *error;
	char *hash;
	int ret;

	if ((ret = cli_user_get(st, args->pos[0], &a)) != 0)
		return ret;
	if ((hash = cli_user_new_hash(args, &error)) == NULL) {
		account_deinit(&a);
		return cli_fail(error);
	}
	ret = store_account_set_password(st, a.address, hash, &error);
	free(hash);
	account_deinit(&a);
	return ret == 0 ? 0 : cli_fail(error);
}

static int
cli_user_del(struct store *st, const struct cli_user_args *args)
{
	const char *error;

	return store_account_del(st, args->pos[0], &error) == 0 ? 0 :
	    cli_fail(error);
}

static int
cli_user_list_row(const struct store_account_row *row, void *context)
{
	str_printf(context, "%s%s\n", row->address,
	    row->suspended ? " (suspended)" : "");
	return 0;
}

static int
cli_user_list(struct store *st, const struct cli_user_args *args)
{
	struct str out = STR_INIT;
	const char *error;

	return cli_print_list(&out, store_account_list(st,
	    args->npos > 0 ? args->pos[0] : NULL, cli_user_list_row, &out,
	    &error), &error);
}

/* ISO 8601 in local time with the offset as "+09:00". */
static void
cli_user_iso_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	size_t n;

	if (localtime_r(&tt, &tm) == NULL ||
	    (n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S%z", &tm)) < 5 ||
	    n + 2 > size) {
		snprintf(buf, size, "@%lld", (long long)t);
		return;
	}
	/* +0900 -> +09:00 */
	memmove(buf + n - 1, buf + n - 2, 3);
	buf[n - 2] = ':';
}

/* ", alias" per alias; the first without its comma */
static int
cli_user_show_alias(const struct store_alias_row *row, void *context)
{
	struct str *out = context;

	str_printf(out, "%s%s", out->len == 0 ? " " : ", ", row->alias);
	return 0;
}

static int
cli_user_show(struct store *st, const struct cli_user_args *args)
{
	struct str out = STR_INIT;
	struct account a;
	const char *error;
	char created[64];
	int ret;

	if ((ret = cli_user_get(st, args->pos[0], &a)) != 0)
		return ret;
	if (store_alias_list(st, a.address, cli_user_show_alias, &out,
	    &error) != 0) {
		account_deinit(&a);
		str_deinit(&out);
		return cli_fail(error);
	}
	cli_user_iso_time(a.created, created, sizeof(created));
	printf("address: %s\n", a.address);
	printf("created: %s\n", created);
	if (!a.suspended)
		printf("suspended: no\n");
	else if (a.suspend_reason != NULL)
		printf("suspended: yes (%s)\n", a.suspend_reason);
	else
		printf("suspended: yes\n");
	printf("aliases:%s\n", str_c(&out));
	account_deinit(&a);
	str_deinit(&out);
	return 0;
}

static int
cli_user_suspend(struct store *st, const struct cli_user_args *args)
{
	const char *error;

	return store_account_set_suspended(st, args->pos[0], 1, args->reason,
	    &error) == 0 ? 0 : cli_fail(error);
}

static int
cli_user_resume(struct store *st, const struct cli_user_args *args)
{
	const char *error;

	return store_account_set_suspended(st, args->pos[0], 0, NULL,
	    &error) == 0 ? 0 : cli_fail(error);
}

static int
cli_user_alias_add(struct store *st, const struct cli_user_args *args)
{
	const char *error;

	return store_alias_add(st, args->pos[0], args->pos[1], &error) == 0 ?
	    0 : cli_fail(error);
}

static int
cli_user_alias_del(struct store *st, const struct cli_user_args *args)
{
	const char *error;

	return store_alias_del(st, args->pos[0], &error) == 0 ? 0 :
	    cli_fail(error);
}

/* "alias target\n": addresses have no spaces */
static int
cli_user_alias_row(const struct store_alias_row *row, void *context)
{
	str_printf(context, "%s %s\n", row->alias, row->target);
	return 0;
}

static int
cli_user_alias_list(struct store *st, const struct cli_user_args *args)
{
	struct str out = STR_INIT;
	const char *error;

	return cli_print_list(&out, store_alias_list(st,
	    args->npos > 0 ? args->pos[0] : NULL, cli_user_alias_row, &out,
	    &error), &error);
}

/*
 * APOP (RFC 1939 7) needs a secret the server can read, so it is not the
 * login password hash: a separate APOP password, sealed with the key in
 * apop_secret_key (made on first use, 0600) before it reaches the store.
 */
static int
cli_user_apop_enable(struct store *st, const struct cli_user_args *args)
{
	char pw[CLI_USER_PASSWORD_MAX + 2], again[CLI_USER_PASSWORD_MAX + 2];
	unsigned char key[APOP_KEY_LEN];
	struct str sealed = STR_INIT;
	struct account a;
	const char *error;
	int ret;

	if ((ret = cli_user_get(st, args->pos[0], &a)) != 0)
		return ret;
	if (!isatty(STDIN_FILENO))
		ret = cli_user_read_line(pw, sizeof(pw), &error);
	else {
		ret = cli_user_prompt("New APOP password: ", pw, sizeof(pw),
		    &error);
		if (ret == 0) {
			ret = cli_user_prompt("Retype new APOP password: ",
			    again, sizeof(again), &error);
			if (ret == 0 && strcmp(pw, again) != 0) {
				error = "passwords do not match";
				ret = -1;
			}
			explicit_bzero(again, sizeof(again));
		}
	}
	if (ret == 0 && strlen(pw) > APOP_SECRET_MAX) {
		error = "APOP password too long";
		ret = -1;
	}
	if (ret == 0 && password_verify(pw, a.password_hash, &error) == 1)
		fprintf(stderr, "sekisho: warning: the APOP password is the "
		    "login password; an APOP digest seen on the wire can be "
		    "guessed offline (MD5), so a different one is safer\n");
	if (ret == 0)
		ret = apop_key_load(cli_user_conf->apop_secret_key, 1, key,
		    &error);
	if (ret == 0) {
		ret = apop_seal(key, a.address, pw, &sealed, &error);
		explicit_bzero(key, sizeof(key));
	}
	explicit_bzero(pw, sizeof(pw));
	if (ret == 0)
		ret = store_apop_set(st, a.address, str_c(&sealed), &error);
	str_deinit(&sealed);
	account_deinit(&a);
	return ret == 0 ? 0 : cli_fail(error);
}

static int
cli_user_apop_disable(struct store *st, const struct cli_user_args *args)
{
	const char *error;
	int ret = store_apop_clear(st, args->pos[0], &error);

	if (ret == 1) {
		fprintf(stderr, "sekisho: APOP is not enabled for '%s'\n",
		    args->pos[0]);
		return 1;
	}
	return ret == 0 ? 0 : cli_fail(error);
}

/* ---- dispatch ------------------------------------------------------- */

/* Positional arguments and the options cmd allows, in any order; "--"
 * ends options. 0, or the usage exit code after saying why. */
static int
cli_user_parse(const struct cli_user_cmd *cmd, int argc, char **argv,
    struct cli_user_args *args)
{
	int only_pos = 0;

	memset(args, 0, sizeof(*args));
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		const char **slot = NULL;

		if (!only_pos && strcmp(arg, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (!only_pos && arg[0] == '-' && arg[1] != '\0') {
			if ((cmd->opts & CLI_USER_OPT_HASH) &&
			    strcmp(arg, "--hash") == 0)
				slot = &args->hash;
			else if ((cmd->opts & CLI_USER_OPT_REASON) &&
			    strcmp(arg, "--reason") == 0)
				slot = &args->reason;
			else
				return cli_user_usage_error(cmd, "unknown "
				    "option '%s'", arg);
			if (i + 1 >= argc)
				return cli_user_usage_error(cmd, "%s needs a "
				    "value", arg);
			*slot = argv[++i];
			continue;
		}
		if (args->npos >= cmd->max_pos)
			return cli_user_usage_error(cmd, "too many "
			    "arguments");
		args->pos[args->npos++] = arg;
	}
	if (args->npos < cmd->min_pos)
		return cli_user_usage_error(cmd, "missing arguments");
	return 0;
}

struct cli_user_call {
	const struct cli_user_cmd	*cmd;
	const struct cli_user_args	*args;
};

static int
cli_user_run_store(struct store *st, void *context)
{
	const struct cli_user_call *call = context;

	return call->cmd->run(st, call->args);
}

static int
cli_user_run(const struct config *conf, const struct cli_user_cmd *cmd,
    int argc, char **argv)
{
	struct cli_user_args args;
	struct cli_user_call call;
	int ret;

	if ((ret = cli_user_parse(cmd, argc, argv, &args)) != 0)
		return ret;
	call.cmd = cmd;
	call.args = &args;
	return cli_with_store(conf, cli_user_run_store, &call);
}

static const struct cli_user_cmd *
cli_user_find(const struct cli_user_cmd *cmds, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	}
	return NULL;
}

int
cli_user(const struct config *conf, int argc, char **argv)
{
	const struct cli_user_cmd *cmd;

	cli_user_conf = conf;
	if (argc < 1)
		return cli_user_usage_error(NULL, "'user' needs a subcommand");
	if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "--help") == 0) {
		cli_user_usage();
		return 0;
	}
	if (strcmp(argv[0], "alias") == 0) {
		if (argc < 2)
			return cli_user_usage_error(NULL, "'user alias' needs a "
			    "subcommand");
		cmd = cli_user_find(cli_user_alias_cmds,
		    CLI_USER_NITEMS(cli_user_alias_cmds), argv[1]);
		if (cmd == NULL)
			return cli_user_usage_error(NULL, "unknown "
			    "subcommand 'user alias %s'", argv[1]);
		return cli_user_run(conf, cmd, argc - 2, argv + 2);
	}
	if (strcmp(argv[0], "apop") == 0) {
		if (argc < 2)
			return cli_user_usage_error(NULL, "'user apop' needs "
			    "enable or disable");
		cmd = cli_user_find(cli_user_apop_cmds,
		    CLI_USER_NITEMS(cli_user_apop_cmds), argv[1]);
		if (cmd == NULL)
			return cli_user_usage_error(NULL, "unknown "
			    "subcommand 'user apop %s'", argv[1]);
		return cli_user_run(conf, cmd, argc - 2, argv + 2);
	}
	cmd = cli_user_find(cli_user_cmds, CLI_USER_NITEMS(cli_user_cmds),
	    argv[0]);
	if (cmd == NULL)
		return cli_user_usage_error(NULL, "unknown subcommand "
		    "'user %s'", argv[0]);
	return cli_user_run(conf, cmd, argc - 1, argv + 1);
}
