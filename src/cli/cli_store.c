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

struct cli_store_counts {
	long	domains, accounts, suspended, aliases, apop, limits, overseas;
	long	events, submissions, admins, tokens;
	long	risk, countries, recipients;
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
	    "        the submission log, the risk records (with the countries\n"
	    "        logged in from and the recipients sent to), admins and\n"
	    "        API tokens from one store\n"
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

/* A row's empty text was NULL in the database. */
static const char *
cli_store_null(const char *s)
{
	return *s == '\0' ? NULL : s;
}

struct cli_store_copy {
	struct store		*from, *to;
	struct cli_store_counts	 n;
};

static int
cli_store_copy_domain(const char *domain, void *context)
{
	struct cli_store_copy *c = context;
	const char *error;

	if (store_domain_add(c->to, domain, &error) < 0)
		return cli_store_err("domain", error);
	c->n.domains++;
	return 0;
}

static int
cli_store_copy_account(const struct store_account_row *row, void *context)
{
	struct cli_store_copy *c = context;
	const char *address = row->address, *error;
	struct account a;
	struct account_policy p;
	char *sealed = NULL;
	int r, suspended;

	if ((r = store_account_get(c->from, address, &a, &error)) != 0)
		return cli_store_err(address, r < 0 ? error :
		    "vanished during the copy");
	r = store_account_add(c->to, a.address, a.password_hash, &error);
	if (r == 0 && a.suspended)
		r = store_account_set_suspended(c->to, a.address, 1,
		    a.suspend_reason, &error);
	suspended = a.suspended;
	account_deinit(&a);
	if (r != 0)
		return cli_store_err(address, error);
	c->n.accounts++;
	c->n.suspended += suspended;

	/* APOP secrets stay sealed: the key file moves with the config. */
	if ((r = store_apop_get(c->from, address, &sealed, &error)) < 0)
		return cli_store_err(address, error);
	if (r == 0) {
		r = store_apop_set(c->to, address, sealed, &error);
		free(sealed);
		if (r != 0)
			return cli_store_err(address, error);
		c->n.apop++;
	}

	if (store_policy_get(c->from, address, &p, &error) != 0 ||
	    store_policy_set_limits(c->to, address, &p, &error) != 0)
		return cli_store_err(address, error);
	if (p.limit_msgs_day >= 0 || p.limit_rcpts_day >= 0 ||
	    p.limit_rcpts_hour >= 0 || p.limit_rcpts_msg >= 0 ||
	    p.limit_overseas_rcpts_day >= 0 || p.any_sender)
		c->n.limits++;
	if (p.overseas_until > 0) {
		/* with the countries it covers (schema step 7) */
		if (store_overseas_set_countries(c->to, address,
		    p.overseas_until, p.overseas_countries, &error) != 0)
			return cli_store_err(address, error);
		c->n.overseas++;
	}
	/* issue 16: refuse_own_from (counted with the limit overrides) */
	{
		int own = 0;

		if (store_own_from_get(c->from, address, &own, &error) != 0 ||
		    (own && store_own_from_set(c->to, address, 1,
		    &error) != 0))
			return cli_store_err(address, error);
		if (own && !(p.limit_msgs_day >= 0 || p.limit_rcpts_day >= 0 ||
		    p.limit_rcpts_hour >= 0 || p.limit_rcpts_msg >= 0 ||
		    p.limit_overseas_rcpts_day >= 0 || p.any_sender))
			c->n.limits++;
	}
	return 0;
}

static int
cli_store_copy_alias(const struct store_alias_row *row, void *context)
{
	struct cli_store_copy *c = context;
	const char *error;

	if (store_alias_add(c->to, row->alias, row->target, &error) != 0)
		return cli_store_err(row->alias, error);
	c->n.aliases++;
	return 0;
}

static int
cli_store_copy_event(const struct store_event *row, void *context)
{
	struct cli_store_copy *c = context;
	struct store_event e = {
		.time = row->time,
		.account = cli_store_null(row->account),
		.type = row->type,
		.ip = cli_store_null(row->ip),
		.country = cli_store_null(row->country),
		.detail = cli_store_null(row->detail),
	};
	const char *error;

	if (store_event_add(c->to, &e, &error) < 0)
		return cli_store_err("event", error);
	c->n.events++;
	return 0;
}

static int
cli_store_copy_risk(const char *account, const struct store_risk *r,
    void *context)
{
	struct cli_store_copy *c = context;
	const char *error = "not an address";

	if (store_risk_put(c->to, account, r, &error) != 0)
		return cli_store_err(account, error);
	c->n.risk++;
	return 0;
}

/* A login country or a known recipient: what->seen says which. */
struct cli_store_seen {
	struct cli_store_copy	*c;
	enum store_risk_seen	 seen;
	long			*n;
};

static int
cli_store_copy_seen(const char *account, const char *seen, int64_t time,
    void *context)
{
	struct cli_store_seen *what = context;
	const char *error = "not an address";

	if (store_risk_seen_put(what->c->to, what->seen, account, seen, time,
	    &error) != 0)
		return cli_store_err(account, error);
	(*what->n)++;
	return 0;
}

static int
cli_store_copy_admin(const struct store_name_row *row, void *context)
{
	struct cli_store_copy *c = context;
	const char *error;

	if (store_admin_add(c->to, row->name, row->hash,
	    row->created, &error) != 0)
		return cli_store_err(row->name, error);
	c->n.admins++;
	return 0;
}

static int
cli_store_copy_token(const struct store_name_row *row, void *context)
{
	struct cli_store_copy *c = context;
	const char *error;

	if (store_api_token_add(c->to, row->name, row->hash, row->created,
	    &error) != 0)
		return cli_store_err(row->name, error);
	c->n.tokens++;
	return 0;
}

static int
cli_store_copy_submission(const struct store_submission *row, void *context)
{
	struct cli_store_copy *c = context;
	struct store_submission s = *row;
	const char *error;

	s.message_id = cli_store_null(row->message_id);
	s.ip = cli_store_null(row->ip);
	s.country = cli_store_null(row->country);
	s.tls = cli_store_null(row->tls);
	if (store_submission_add(c->to, &s, &error) < 0)
		return cli_store_err(s.queue_id, error);
	c->n.submissions++;
	return 0;
}

/* A listing of the source failed: its own error (-1 from a callback
 * has been reported already, and left error alone). */
static int
cli_store_listed(const char *what, int r, const char *error)
{
	if (r == 0)
		return 0;
	if (error != NULL)
		(void)cli_store_err(what, error);
	return -1;
}

/* Every table that moves, in the order the foreign keys need. */
static int
cli_store_copy_all(struct cli_store_copy *c)
{
	const char *error = NULL;

	if (cli_store_listed("domains", store_domain_list(c->from,
	    cli_store_copy_domain, c, &error), error) < 0)
		return -1;
	error = NULL;
	if (cli_store_listed("accounts", store_account_list(c->from, NULL,
	    cli_store_copy_account, c, &error), error) < 0)
		return -1;
	error = NULL;
	if (cli_store_listed("aliases", store_alias_list(c->from, NULL,
	    cli_store_copy_alias, c, &error), error) < 0)
		return -1;
	error = NULL;
	if (cli_store_listed("events", store_event_list(c->from, NULL, 0,
	    INT_MAX, cli_store_copy_event, c, &error), error) < 0)
		return -1;
	error = NULL;
	if (cli_store_listed("submissions", store_submission_list(c->from,
	    NULL, 0, INT_MAX, cli_store_copy_submission, c, &error),
	    error) < 0)
		return -1;
	/* issue 17: without them every account would look new after the
	 * move (a login from a new country, first-time recipients) */
	error = NULL;
	if (cli_store_listed("risk records", store_risk_each(c->from,
	    cli_store_copy_risk, c, &error), error) < 0)
		return -1;
	for (size_t i = 0; i < 2; i++) {
		struct cli_store_seen what = i == 0 ?
		    (struct cli_store_seen){ c, STORE_RISK_SEEN_COUNTRY,
		    &c->n.countries } :
		    (struct cli_store_seen){ c, STORE_RISK_SEEN_RECIPIENT,
		    &c->n.recipients };

		error = NULL;
		if (cli_store_listed(i == 0 ? "login countries" :
		    "known recipients", store_risk_seen_each(c->from,
		    what.seen, cli_store_copy_seen, &what, &error), error) < 0)
			return -1;
	}
	error = NULL;
	if (cli_store_listed("admins", store_admin_list(c->from,
	    cli_store_copy_admin, c, &error), error) < 0)
		return -1;
	error = NULL;
	return cli_store_listed("API tokens", store_api_token_list(c->from,
	    cli_store_copy_token, c, &error), error);
}

/* The target has a domain already. */
static int
cli_store_any_domain(const char *domain, void *context)
{
	(void)domain;
	*(int *)context = 1;
	return -1;
}

static int
cli_store_copy(const struct config *conf, int argc, char **argv)
{
	struct cli_store_copy c;
	const char *from = conf->store, *to = NULL, *error = NULL;
	int r, existing = 0;

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
	if (store_domain_list(c.to, cli_store_any_domain, &existing,
	    &error) < 0 && !existing)
		r = cli_store_fail("target", error);
	else if (existing)
		r = cli_store_fail("target", "not empty (it has domains); "
		    "copy into a new database");
	else
		r = cli_store_copy_all(&c) < 0;
	store_close(&c.from);
	store_close(&c.to);
	if (r != 0)
		return 1;
	printf("copied %ld domains, %ld accounts (%ld suspended), %ld "
	    "aliases, %ld APOP secrets, %ld limit overrides, %ld overseas "
	    "permissions, %ld events, %ld submissions, %ld risk records, %ld "
	    "login countries, %ld known recipients, %ld admins, %ld API "
	    "tokens\n", c.n.domains, c.n.accounts, c.n.suspended, c.n.aliases,
	    c.n.apop, c.n.limits, c.n.overseas, c.n.events, c.n.submissions,
	    c.n.risk, c.n.countries, c.n.recipients, c.n.admins, c.n.tokens);
	printf("not copied: today's send counters, authentication "
	    "throttling, password spraying windows and notices sent (they "
	    "start afresh); settings page "
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
