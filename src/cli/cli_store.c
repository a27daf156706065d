/*
 * cli_store: "sekisho store ...", the store itself (see cli.h).
 *
 *   store migrate            create or upgrade the schema, print its version
 *   store copy [--from URI] --to URI
 *                            move one node's data (SQLite) into another
 *                            store (PostgreSQL), for going multi-node:
 *                            accounts and policy, history, admins and
 *                            API tokens; not what is transient (sessions,
 *                            POP3 leases, POP-before-SMTP windows)
 *
 * copy goes through the store interface, so it works between any two
 * backends. It refuses a target that already has domains: a copy is not
 * a merge, and a failed one is redone into a fresh database.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/config.h"
#include "../core/str.h"
#include "../store/store.h"
#include "cli.h"

#define CLI_STORE_FIELDS_MAX	10

struct cli_store_counts {
	long	domains, accounts, suspended, aliases, apop, limits, overseas;
	long	events, submissions, admins, tokens;
};

static int
cli_store_fail(const char *what, const char *error)
{
	fprintf(stderr, "sekisho: store: %s%s%s\n", what,
	    *what != '\0' ? ": " : "", error);
	return 1;
}

/* The same, for copy steps: -1. */
static int
cli_store_err(const char *what, const char *error)
{
	(void)cli_store_fail(what, error);
	return -1;
}

void
cli_store_usage(void)
{
	printf("Store:\n"
	    "  store migrate\n"
	    "        create or upgrade the store's schema; print its version\n"
	    "  store copy [--from URI] --to URI\n"
	    "        copy domains, accounts (password hashes, suspension),\n"
	    "        aliases, APOP secrets, limits, overseas permissions, "
	    "events,\n"
	    "        the submission log, admins and API tokens from one store\n"
	    "        (default: the configured one) into an empty one, e.g.\n"
	    "        --from sqlite:/var/lib/sekisho/sekisho.db\n"
	    "        --to 'postgresql:host=db1 dbname=sekisho user=sekisho'\n"
	    "\n");
}

static struct store *
cli_store_open(const char *uri, const char *which)
{
	struct store *st;
	const char *error;

	if ((st = store_open(uri, &error)) == NULL) {
		(void)cli_store_fail(which, error);
		return NULL;
	}
	if (store_init_schema(st, &error) < 0) {
		(void)cli_store_fail(which, error);
		store_close(&st);
		return NULL;
	}
	return st;
}

static int
cli_store_migrate(const struct config *conf)
{
	struct store *st;
	const char *error;
	int version;

	if ((st = cli_store_open(conf->store, "")) == NULL)
		return 1;
	if (store_schema_version(st, &version, &error) < 0) {
		store_close(&st);
		return cli_store_fail("", error);
	}
	printf("store schema version %d (up to date)\n", version);
	store_close(&st);
	return 0;
}

/*
 * Split a listing line in place at tabs into at most n fields (the last
 * takes the rest). Returns the number of fields.
 */
static int
cli_store_split(char *line, char **f, int n)
{
	int i = 0;

	f[i++] = line;
	while (i < n) {
		char *tab = strchr(f[i - 1], '\t');

		if (tab == NULL)
			break;
		*tab = '\0';
		f[i++] = tab + 1;
	}
	return i;
}

/* A listing's empty field was NULL in the database. */
static const char *
cli_store_null(const char *s)
{
	return *s == '\0' ? NULL : s;
}

/* Call fn on each "\n"-terminated line of out (modified in place). */
static int
cli_store_lines(struct str *out, int (*fn)(void *, char *), void *arg)
{
	char *p = out->s, *nl;

	if (p == NULL)
		return 0;
	for (; *p != '\0'; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		*nl = '\0';
		if (fn(arg, p) < 0)
			return -1;
	}
	return 0;
}

struct cli_store_copy {
	struct store		*from, *to;
	struct cli_store_counts	 n;
};

static int
cli_store_copy_domain(void *arg, char *line)
{
	struct cli_store_copy *c = arg;
	const char *error;

	if (store_domain_add(c->to, line, &error) < 0)
		return cli_store_err("domain", error);
	c->n.domains++;
	return 0;
}

static int
cli_store_copy_account(void *arg, char *line)
{
	struct cli_store_copy *c = arg;
	struct account a;
	struct account_policy p;
	char *f[2], *sealed = NULL;
	const char *error;
	int r, suspended;

	(void)cli_store_split(line, f, 2);
	if ((r = store_account_get(c->from, f[0], &a, &error)) != 0)
		return cli_store_err(f[0], r < 0 ? error :
		    "vanished during the copy");
	r = store_account_add(c->to, a.address, a.password_hash, &error);
	if (r == 0 && a.suspended)
		r = store_account_set_suspended(c->to, a.address, 1,
		    a.suspend_reason, &error);
	suspended = a.suspended;
	account_deinit(&a);
	if (r != 0)
		return cli_store_err(f[0], error);
	c->n.accounts++;
	c->n.suspended += suspended;

	/* APOP secrets stay sealed: the key file moves with the config. */
	if ((r = store_apop_get(c->from, f[0], &sealed, &error)) < 0)
		return cli_store_err(f[0], error);
	if (r == 0) {
		r = store_apop_set(c->to, f[0], sealed, &error);
		free(sealed);
		if (r != 0)
			return cli_store_err(f[0], error);
		c->n.apop++;
	}

	if (store_policy_get(c->from, f[0], &p, &error) != 0 ||
	    store_policy_set_limits(c->to, f[0], &p, &error) != 0)
		return cli_store_err(f[0], error);
	if (p.limit_msgs_day >= 0 || p.limit_rcpts_day >= 0 ||
	    p.limit_rcpts_hour >= 0 || p.limit_rcpts_msg >= 0 ||
	    p.limit_overseas_rcpts_day >= 0 || p.any_sender)
		c->n.limits++;
	if (p.overseas_until > 0) {
		if (store_overseas_set(c->to, f[0], p.overseas_until,
		    &error) != 0)
			return cli_store_err(f[0], error);
		c->n.overseas++;
	}
	return 0;
}

static int
cli_store_copy_alias(void *arg, char *line)
{
	struct cli_store_copy *c = arg;
	char *f[2];
	const char *error;

	if (cli_store_split(line, f, 2) != 2)
		return cli_store_err("alias", "bad listing line");
	if (store_alias_add(c->to, f[0], f[1], &error) != 0)
		return cli_store_err(f[0], error);
	c->n.aliases++;
	return 0;
}

static int
cli_store_copy_event(void *arg, char *line)
{
	struct cli_store_copy *c = arg;
	struct store_event e;
	char *f[6];
	const char *error;

	if (cli_store_split(line, f, 6) != 6)
		return cli_store_err("event", "bad listing line");
	e.time = strtoll(f[0], NULL, 10);
	e.account = cli_store_null(f[1]);
	e.type = f[2];
	e.ip = cli_store_null(f[3]);
	e.country = cli_store_null(f[4]);
	e.detail = cli_store_null(f[5]);
	if (store_event_add(c->to, &e, &error) < 0)
		return cli_store_err("event", error);
	c->n.events++;
	return 0;
}

/* "NAME\tHASH\tCREATED" of an admin or an API token. */
static int
cli_store_copy_named(struct cli_store_copy *c, char *line, int admin)
{
	char *f[3];
	const char *error;
	int r;

	if (cli_store_split(line, f, 3) != 3)
		return cli_store_err(admin ? "admin" : "API token",
		    "bad listing line");
	r = admin ? store_admin_add(c->to, f[0], f[1],
	    strtoll(f[2], NULL, 10), &error) : store_api_token_add(c->to,
	    f[0], f[1], strtoll(f[2], NULL, 10), &error);
	if (r != 0)
		return cli_store_err(f[0], error);
	if (admin)
		c->n.admins++;
	else
		c->n.tokens++;
	return 0;
}

static int
cli_store_copy_admin(void *arg, char *line)
{
	return cli_store_copy_named(arg, line, 1);
}

static int
cli_store_copy_token(void *arg, char *line)
{
	return cli_store_copy_named(arg, line, 0);
}

static int
cli_store_copy_submission(void *arg, char *line)
{
	struct cli_store_copy *c = arg;
	struct store_submission s;
	char *f[CLI_STORE_FIELDS_MAX];
	const char *error;

	if (cli_store_split(line, f, CLI_STORE_FIELDS_MAX) !=
	    CLI_STORE_FIELDS_MAX)
		return cli_store_err("submission", "bad listing line");
	s.queue_id = f[0];
	s.message_id = cli_store_null(f[1]);
	s.time = strtoll(f[2], NULL, 10);
	s.account = f[3];
	s.ip = cli_store_null(f[4]);
	s.country = cli_store_null(f[5]);
	s.tls = cli_store_null(f[6]);
	s.rcpts = strtoll(f[7], NULL, 10);
	s.size = strtoll(f[8], NULL, 10);
	s.overseas = strtol(f[9], NULL, 10) != 0;
	if (store_submission_add(c->to, &s, &error) < 0)
		return cli_store_err(s.queue_id, error);
	c->n.submissions++;
	return 0;
}

/* One listing from the source, each line copied by fn. */
static int
cli_store_copy_list(struct cli_store_copy *c, const char *what,
    int (*list)(struct cli_store_copy *, struct str *, const char **),
    int (*fn)(void *, char *))
{
	struct str out = STR_INIT;
	const char *error;
	int r;

	if (list(c, &out, &error) != 0) {
		str_deinit(&out);
		return cli_store_err(what, error);
	}
	r = cli_store_lines(&out, fn, c);
	str_deinit(&out);
	return r;
}

static int
cli_store_list_domains(struct cli_store_copy *c, struct str *out,
    const char **error_r)
{
	return store_domain_list(c->from, out, error_r);
}

static int
cli_store_list_accounts(struct cli_store_copy *c, struct str *out,
    const char **error_r)
{
	return store_account_list(c->from, NULL, out, error_r);
}

static int
cli_store_list_aliases(struct cli_store_copy *c, struct str *out,
    const char **error_r)
{
	return store_alias_list(c->from, NULL, out, error_r);
}

static int
cli_store_list_events(struct cli_store_copy *c, struct str *out,
    const char **error_r)
{
	return store_event_list(c->from, NULL, 0, INT_MAX, out, error_r);
}

static int
cli_store_list_submissions(struct cli_store_copy *c, struct str *out,
    const char **error_r)
{
	return store_submission_list(c->from, NULL, 0, INT_MAX, out, error_r);
}

static int
cli_store_list_admins(struct cli_store_copy *c, struct str *out,
    const char **error_r)
{
	return store_admin_list(c->from, out, error_r);
}

static int
cli_store_list_tokens(struct cli_store_copy *c, struct str *out,
    const char **error_r)
{
	return store_api_token_list(c->from, out, error_r);
}

static int
cli_store_copy(const struct config *conf, int argc, char **argv)
{
	struct cli_store_copy c;
	struct str existing = STR_INIT;
	const char *from = conf->store, *to = NULL, *error;
	int r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
			from = argv[++i];
		else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
			to = argv[++i];
		else {
			fprintf(stderr, "sekisho: store copy: unexpected "
			    "'%s'\n", argv[i]);
			cli_store_usage();
			return 2;
		}
	}
	if (to == NULL || from == NULL) {
		fprintf(stderr, "sekisho: store copy: --to URI is required\n");
		return 2;
	}
	if (strcmp(from, to) == 0)
		return cli_store_fail("copy", "--from and --to are the same "
		    "store");
	memset(&c, 0, sizeof(c));
	if ((c.from = cli_store_open(from, "source")) == NULL)
		return 1;
	if ((c.to = cli_store_open(to, "target")) == NULL) {
		store_close(&c.from);
		return 1;
	}
	if (store_domain_list(c.to, &existing, &error) < 0)
		r = cli_store_fail("target", error);
	else if (existing.len > 0)
		r = cli_store_fail("target", "not empty (it has domains); "
		    "copy into a new database");
	else
		r = cli_store_copy_list(&c, "domains", cli_store_list_domains,
		    cli_store_copy_domain) < 0 ||
		    cli_store_copy_list(&c, "accounts",
		    cli_store_list_accounts, cli_store_copy_account) < 0 ||
		    cli_store_copy_list(&c, "aliases", cli_store_list_aliases,
		    cli_store_copy_alias) < 0 ||
		    cli_store_copy_list(&c, "events", cli_store_list_events,
		    cli_store_copy_event) < 0 ||
		    cli_store_copy_list(&c, "submissions",
		    cli_store_list_submissions, cli_store_copy_submission) < 0 ||
		    cli_store_copy_list(&c, "admins", cli_store_list_admins,
		    cli_store_copy_admin) < 0 ||
		    cli_store_copy_list(&c, "API tokens", cli_store_list_tokens,
		    cli_store_copy_token) < 0;
	str_deinit(&existing);
	store_close(&c.from);
	store_close(&c.to);
	if (r != 0)
		return 1;
	printf("copied %ld domains, %ld accounts (%ld suspended), %ld "
	    "aliases, %ld APOP secrets, %ld limit overrides, %ld overseas "
	    "permissions, %ld events, %ld submissions, %ld admins, %ld API "
	    "tokens\n", c.n.domains, c.n.accounts, c.n.suspended, c.n.aliases,
	    c.n.apop, c.n.limits, c.n.overseas, c.n.events, c.n.submissions,
	    c.n.admins, c.n.tokens);
	printf("not copied: today's send counters, authentication "
	    "throttling and notices sent (they start afresh); settings page "
	    "sessions, POP3 locks and POP-before-SMTP windows (users log in "
	    "again)\n");
	return 0;
}

int
cli_store(const struct config *conf, int argc, char **argv)
{
	int r;

	if (argc >= 1 && strcmp(argv[0], "migrate") == 0 && argc == 1)
		r = cli_store_migrate(conf);
	else if (argc >= 1 && strcmp(argv[0], "copy") == 0)
		r = cli_store_copy(conf, argc, argv);
	else {
		fprintf(stderr, "sekisho: store: expected 'migrate' or "
		    "'copy'\n");
		cli_store_usage();
		return 2;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "sekisho: cannot write output: %s\n",
		    strerror(errno));
		r = 1;
	}
	return r;
}
