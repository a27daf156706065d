/*
 * store_account: domains, accounts, aliases and APOP secrets (store.h),
 * each query written once for both drivers.
 *
 * Writers that check before they insert (an alias must not be an
 * account, a domain in use must not go) do it in one write transaction
 * that locks what it checked (sql.h): SQLite's BEGIN IMMEDIATE, or on
 * PostgreSQL the names lock (accounts and aliases share one namespace)
 * and row locks; so two writers, on one node or several, cannot both
 * pass the check.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/xmalloc.h"
#include "sql.h"
#include "store.h"
#include "store_private.h"

static const char store_sql_domain_id[] =
    "SELECT id FROM domains WHERE name = ?1";
static const char store_sql_account_id[] =
    "SELECT id FROM accounts WHERE address = ?1";

/* ---- domains -------------------------------------------------------- */

int
store_domain_add(struct store *st, const char *domain, const char **error_r)
{
	static const char query[] = "INSERT INTO domains (name) VALUES (?1)";
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];
	const char *reason;

	if (store_domain_canonical(domain, key, sizeof(key), &reason) < 0)
		return store_set_error(st, error_r, -1, "invalid domain '%s': "
		    "%s", store_quote(quoted, sizeof(quoted), domain), reason);
	return store_added(st, store_change(st, query, error_r, "t", key),
	    "domain", key, error_r);
}

/* In the write transaction: refuses while the domain is used. */
static int
store_domain_del_tx(struct store *st, const char *domain,
    const char **error_r)
{
	static const char usage[] =
	    "SELECT (SELECT count(*) FROM accounts WHERE domain_id = ?1),"
	    " (SELECT count(*) FROM aliases WHERE domain_id = ?1)";
	static const char del[] = "DELETE FROM domains WHERE id = ?1";
	struct sql_stmt *stmt;
	long long accounts = 0, aliases = 0;
	int64_t id;
	int r;

	/* row lock: an account or alias being added meanwhile holds a
	 * key-share lock on the row through its foreign key */
	r = store_query_id(st, store_sql_domain_id, SQL_LOCK_UPDATE, domain,
	    &id, error_r);
	if (r != 0)
		return r < 0 ? -1 : store_set_error(st, error_r, 1,
		    STORE_ERR_NO_DOMAIN, domain);
	if ((stmt = store_stmt(st, usage, SQL_LOCK_NONE, error_r, "i",
	    id)) == NULL || (r = sql_step(stmt, error_r)) < 0)
		return -1;
	if (r == 1) {
		accounts = sql_col_int64(stmt, 0);
		aliases = sql_col_int64(stmt, 1);
	}
	sql_reset(stmt);
	if (accounts > 0 || aliases > 0)
		return store_set_error(st, error_r, -1, STORE_ERR_DOMAIN_USED,
		    domain, accounts, aliases);
	return store_change(st, del, error_r, "i", id) < 0 ? -1 : 0;
}

int
store_domain_del(struct store *st, const char *domain, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];

	if (store_lookup_key(domain, key) != 0)
		return store_set_error(st, error_r, 1, STORE_ERR_NO_DOMAIN,
		    store_quote(quoted, sizeof(quoted), domain));
	if (store_tx_begin(st, SQL_TX_WRITE, error_r) < 0)
		return -1;
	return store_tx_end(st, SQL_TX_WRITE,
	    store_domain_del_tx(st, key, error_r), error_r);
}

int
store_domain_exists(struct store *st, const char *domain, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];
	int64_t id;

	if (store_lookup_key(domain, key) != 0)
		return 1;
	return store_query_id(st, store_sql_domain_id, SQL_LOCK_NONE, key, &id,
	    error_r);
}

static int
store_domain_row(struct sql_stmt *stmt, void *cb, void *context)
{
	return ((store_domain_cb *)cb)(sql_col_text(stmt, 0), context);
}

int
store_domain_list(struct store *st, store_domain_cb *cb, void *context,
    const char **error_r)
{
	static const char query[] = "SELECT name FROM domains ORDER BY name";

	return store_each_row(sql_prepare(st->db, query, error_r),
	    store_domain_row, (void *)cb, context, NULL, error_r);
}

/* ---- accounts ------------------------------------------------------- */

/* In a write transaction: the id of the domain of a new name, which must
 * not be taken by an alias (for an account) or an account (for an
 * alias). -1 with the error set when it cannot be added. */
static int
store_new_name(struct store *st, const char *address, int is_alias,
    int64_t *domain_id_r, const char **error_r)
{
	static const char alias_id[] =
	    "SELECT account_id FROM aliases WHERE alias = ?1";
	const char *domain = store_address_domain(address);
	int64_t id;
	int r;

	if (sql_lock_name(st->db, STORE_LOCK_NAMES, error_r) < 0)
		return -1;
	r = store_query_id(st, store_sql_domain_id, SQL_LOCK_NONE, domain,
	    domain_id_r, error_r);
	if (r != 0)
		return r < 0 ? -1 : store_set_error(st, error_r, -1,
		    STORE_ERR_NO_DOMAIN, domain);
	r = store_query_id(st, is_alias ? store_sql_account_id : alias_id,
	    SQL_LOCK_NONE, address, &id, error_r);
	if (r == 0)
		return store_set_error(st, error_r, -1, is_alias ?
		    STORE_ERR_IS_ACCOUNT : STORE_ERR_IS_ALIAS, address);
	return r == 1 ? 0 : -1;
}

static int
store_account_add_tx(struct store *st, const char *address,
    const char *password_hash, const char **error_r)
{
	static const char query[] =
	    "INSERT INTO accounts (address, domain_id, password_hash,"
	    " suspended, suspend_reason, created)"
	    " VALUES (?1, ?2, ?3, 0, NULL, ?4)";
	int64_t domain_id;

	if (store_new_name(st, address, 0, &domain_id, error_r) < 0)
		return -1;
	return store_added(st, store_change(st, query, error_r, "titi",
	    address, domain_id, password_hash, (int64_t)time(NULL)),
	    "account", address, error_r);
}

int
store_account_add(struct store *st, const char *address,
    const char *password_hash, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];
	const char *reason;

	if (store_address_canonical(address, key, sizeof(key), &reason) < 0)
		return store_set_error(st, error_r, -1, "invalid address '%s': "
		    "%s", store_quote(quoted, sizeof(quoted), address), reason);
	if ((reason = store_check_hash(password_hash)) != NULL)
		return store_set_error(st, error_r, -1, "%s", reason);
	if (store_tx_begin(st, SQL_TX_WRITE, error_r) < 0)
		return -1;
	return store_tx_end(st, SQL_TX_WRITE,
	    store_account_add_tx(st, key, password_hash, error_r), error_r);
}

/* A one-statement change of the account address names ("t" ?1, then
 * more): 1 with "no such account" when it changed nothing. */
static int
store_account_change(struct store *st, const char *query,
    const char *address, const char *types, const char *text2,
    int64_t int2, const char *text3, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];
	int r;

	if (store_lookup_key(address, key) != 0)
		return store_set_error(st, error_r, 1, STORE_ERR_NO_ACCOUNT,
		    store_quote(quoted, sizeof(quoted), address));
	if (strcmp(types, "tt") == 0)
		r = store_change(st, query, error_r, types, key, text2);
	else if (strcmp(types, "tit") == 0)
		r = store_change(st, query, error_r, types, key, int2, text3);
	else if (strcmp(types, "ti") == 0)
		r = store_change(st, query, error_r, types, key, int2);
	else
		r = store_change(st, query, error_r, "t", key);
	if (r == 1)
		(void)store_set_error(st, error_r, 1, STORE_ERR_NO_ACCOUNT,
		    key);
	return r;
}

int
store_account_del(struct store *st, const char *address, const char **error_r)
{
	/* The account's aliases go with it: ON DELETE CASCADE. */
	static const char query[] = "DELETE FROM accounts WHERE address = ?1";

	return store_account_change(st, query, address, "t", NULL, 0, NULL,
	    error_r);
}

int
store_account_set_password(struct store *st, const char *address,
    const char *password_hash, const char **error_r)
{
	static const char query[] =
	    "UPDATE accounts SET password_hash = ?2 WHERE address = ?1";
	const char *reason;

	if ((reason = store_check_hash(password_hash)) != NULL)
		return store_set_error(st, error_r, -1, "%s", reason);
	return store_account_change(st, query, address, "tt", password_hash,
	    0, NULL, error_r);
}

int
store_account_set_suspended(struct store *st, const char *address,
    int suspended, const char *reason, const char **error_r)
{
	static const char query[] =
	    "UPDATE accounts SET suspended = ?2, suspend_reason = ?3"
	    " WHERE address = ?1";
	const char *why;

	/* No reason outlives its suspension; an empty one is none. */
	if (!suspended || (reason != NULL && *reason == '\0'))
		reason = NULL;
	if (reason != NULL && (why = store_check_reason(reason)) != NULL)
		return store_set_error(st, error_r, -1, "%s", why);
	return store_account_change(st, query, address, "tit", NULL,
	    suspended ? 1 : 0, reason, error_r);
}

int
store_account_get(struct store *st, const char *address, struct account *a,
    const char **error_r)
{
	static const char query[] =
	    "SELECT id, address, password_hash, suspended, suspend_reason,"
	    " created FROM accounts WHERE address = ?1";
	char key[STORE_ADDRESS_MAX + 1];
	struct sql_stmt *stmt;
	int r;

	if (store_lookup_key(address, key) != 0)
		return 1;
	if ((stmt = store_stmt(st, query, SQL_LOCK_NONE, error_r, "t",
	    key)) == NULL)
		return -1;
	if ((r = sql_step(stmt, error_r)) == 1) {
		memset(a, 0, sizeof(*a));
		a->id = sql_col_int64(stmt, 0);
		a->address = xstrdup(sql_col_text(stmt, 1));
		a->password_hash = xstrdup(sql_col_text(stmt, 2));
		a->suspended = sql_col_int64(stmt, 3) != 0;
		a->suspend_reason = sql_col_is_null(stmt, 4) ? NULL :
		    xstrdup(sql_col_text(stmt, 4));
		a->created = sql_col_int64(stmt, 5);
	}
	sql_reset(stmt);
	return r < 0 ? -1 : r == 1 ? 0 : 1;
}

/*
 * A listing of all rows, or of those of the id that key names (found by
 * lookup): the id is bound as ?1 of by_id. 1 when key names nothing.
 */
static int
store_pair_list(struct store *st, const char *all, const char *by_id,
    const char *lookup, const char *key, store_row_fn *row, void *cb,
    void *context, const char **error_r)
{
	struct sql_stmt *stmt;
	int64_t id = 0;
	int r;

	if (key != NULL && (r = store_query_id(st, lookup, SQL_LOCK_NONE, key,
	    &id, error_r)) != 0)
		return r;
	if (key == NULL)
		stmt = sql_prepare(st->db, all, error_r);
	else
		stmt = store_stmt(st, by_id, SQL_LOCK_NONE, error_r, "i", id);
	return store_each_row(stmt, row, cb, context, NULL, error_r);
}

static int
store_account_row(struct sql_stmt *stmt, void *cb, void *context)
{
	struct store_account_row row = {
		.address = sql_col_text(stmt, 0),
		.suspended = sql_col_int64(stmt, 1) != 0,
	};

	return ((store_account_cb *)cb)(&row, context);
}

int
store_account_list(struct store *st, const char *domain,
    store_account_cb *cb, void *context, const char **error_r)
{
	static const char all[] =
	    "SELECT address, suspended FROM accounts ORDER BY address";
	static const char by_id[] =
	    "SELECT address, suspended FROM accounts WHERE domain_id = ?1"
	    " ORDER BY address";
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];
	int r;

	if (domain != NULL && store_lookup_key(domain, key) != 0)
		return store_set_error(st, error_r, 1, STORE_ERR_NO_DOMAIN,
		    store_quote(quoted, sizeof(quoted), domain));
	r = store_pair_list(st, all, by_id, store_sql_domain_id,
	    domain != NULL ? key : NULL, store_account_row, (void *)cb,
	    context, error_r);
	if (r == 1)
		(void)store_set_error(st, error_r, 1, STORE_ERR_NO_DOMAIN,
		    key);
	return r;
}

/* ---- aliases -------------------------------------------------------- */

static int
store_alias_add_tx(struct store *st, const char *alias, const char *target,
    const char **error_r)
{
	static const char query[] =
	    "INSERT INTO aliases (alias, domain_id, account_id)"
	    " VALUES (?1, ?2, ?3)";
	int64_t domain_id, account_id;
	int r;

	if (store_new_name(st, alias, 1, &domain_id, error_r) < 0)
		return -1;
	r = store_query_id(st, store_sql_account_id, SQL_LOCK_NONE, target,
	    &account_id, error_r);
	if (r != 0)
		return r < 0 ? -1 : store_set_error(st, error_r, -1,
		    STORE_ERR_NO_ACCOUNT, target);
	return store_added(st, store_change(st, query, error_r, "tii", alias,
	    domain_id, account_id), "alias", alias, error_r);
}

int
store_alias_add(struct store *st, const char *alias, const char *target,
    const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], tkey[STORE_ADDRESS_MAX + 1];
	char quoted[STORE_QUOTE_SIZE];
	const char *reason;

	if (store_address_canonical(alias, key, sizeof(key), &reason) < 0)
		return store_set_error(st, error_r, -1, "invalid alias '%s': "
		    "%s", store_quote(quoted, sizeof(quoted), alias), reason);
	if (store_lookup_key(target, tkey) != 0)
		return store_set_error(st, error_r, -1, STORE_ERR_NO_ACCOUNT,
		    store_quote(quoted, sizeof(quoted), target));
	if (store_tx_begin(st, SQL_TX_WRITE, error_r) < 0)
		return -1;
	return store_tx_end(st, SQL_TX_WRITE,
	    store_alias_add_tx(st, key, tkey, error_r), error_r);
}

int
store_alias_del(struct store *st, const char *alias, const char **error_r)
{
	static const char query[] = "DELETE FROM aliases WHERE alias = ?1";
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];
	int r;

	if (store_lookup_key(alias, key) != 0)
		return store_set_error(st, error_r, 1, STORE_ERR_NO_ALIAS,
		    store_quote(quoted, sizeof(quoted), alias));
	if ((r = store_change(st, query, error_r, "t", key)) == 1)
		(void)store_set_error(st, error_r, 1, STORE_ERR_NO_ALIAS, key);
	return r;
}

static int
store_alias_row(struct sql_stmt *stmt, void *cb, void *context)
{
	struct store_alias_row row = {
		.alias = sql_col_text(stmt, 0),
		.target = sql_col_text(stmt, 1),
	};

	return ((store_alias_cb *)cb)(&row, context);
}

int
store_alias_list(struct store *st, const char *target, store_alias_cb *cb,
    void *context, const char **error_r)
{
	static const char all[] =
	    "SELECT l.alias, a.address FROM aliases l"
	    " JOIN accounts a ON a.id = l.account_id ORDER BY l.alias";
	static const char by_id[] =
	    "SELECT l.alias, a.address FROM aliases l"
	    " JOIN accounts a ON a.id = l.account_id"
	    " WHERE l.account_id = ?1 ORDER BY l.alias";
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];
	int r;

	if (target != NULL && store_lookup_key(target, key) != 0)
		return store_set_error(st, error_r, 1, STORE_ERR_NO_ACCOUNT,
		    store_quote(quoted, sizeof(quoted), target));
	r = store_pair_list(st, all, by_id, store_sql_account_id,
	    target != NULL ? key : NULL, store_alias_row, (void *)cb, context,
	    error_r);
	if (r == 1)
		(void)store_set_error(st, error_r, 1, STORE_ERR_NO_ACCOUNT,
		    key);
	return r;
}

int
store_resolve_recipient(struct store *st, const char *address,
    char **account_r, int *domain_local_r, const char **error_r)
{
	/* One statement: the account, else the alias's target. */
	static const char query[] =
	    "SELECT address FROM accounts WHERE address = ?1"
	    " UNION ALL SELECT a.address FROM aliases l"
	    " JOIN accounts a ON a.id = l.account_id WHERE l.alias = ?1"
	    " LIMIT 1";
	char key[STORE_ADDRESS_MAX + 1];
	const char *at;
	int r;

	*account_r = NULL;
	*domain_local_r = 0;
	if (store_lookup_key(address, key) == 0 && strchr(key, '@') != NULL) {
		r = store_query_text(st, query, account_r, error_r, "t", key);
		if (r != 1) {
			*domain_local_r = r == 0;
			return r;
		}
	}
	/* Not an account or alias; still say whether the domain is ours,
	 * so the caller can tell "user unknown" from "relay denied". */
	if ((at = strrchr(address, '@')) == NULL)
		return 1;
	r = store_domain_exists(st, at + 1, error_r);
	if (r < 0)
		return -1;
	*domain_local_r = r == 0;
	return 1;
}

/* ---- APOP secrets --------------------------------------------------- */

int
store_apop_set(struct store *st, const char *address, const char *sealed,
    const char **error_r)
{
	static const char query[] =
	    "INSERT INTO apop_secrets (account_id, sealed)"
	    " SELECT id, ?2 FROM accounts WHERE address = ?1"
	    " ON CONFLICT (account_id) DO UPDATE SET sealed = excluded.sealed";

	if (sealed == NULL || *sealed == '\0')
		return store_set_error(st, error_r, -1,
		    "empty APOP secret refused");
	return store_account_change(st, query, address, "tt", sealed, 0, NULL,
	    error_r);
}

int
store_apop_get(struct store *st, const char *address, char **sealed_r,
    const char **error_r)
{
	static const char query[] =
	    "SELECT s.sealed FROM apop_secrets s"
	    " JOIN accounts a ON a.id = s.account_id WHERE a.address = ?1";
	char key[STORE_ADDRESS_MAX + 1];

	*sealed_r = NULL;
	if (store_lookup_key(address, key) != 0)
		return 1;
	return store_query_text(st, query, sealed_r, error_r, "t", key);
}

int
store_apop_clear(struct store *st, const char *address, const char **error_r)
{
	static const char query[] =
	    "DELETE FROM apop_secrets WHERE account_id ="
	    " (SELECT id FROM accounts WHERE address = ?1)";
	char key[STORE_ADDRESS_MAX + 1];

	if (store_lookup_key(address, key) != 0)
		return 1;
	return store_change(st, query, error_r, "t", key);
}
