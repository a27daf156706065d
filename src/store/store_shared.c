/*
 * store_shared: the state that several nodes share beyond accounts and
 * the sending policy (store.h): settings page sessions, the API's token
 * hashes, the admin pages' accounts, POP3 mailbox leases,
 * POP-before-SMTP windows, authentication throttling and trusted login
 * addresses; each query written once for both drivers.
 *
 * Most calls are one statement. The POP3 lease is taken by one INSERT
 * ... ON CONFLICT DO UPDATE ... WHERE the old lease has expired, so two
 * sessions never both get it (on PostgreSQL the second INSERT waits on
 * the first's index entry, then finds a live lease and changes nothing).
 */
#include <stdlib.h>
#include <string.h>

#include "../core/xmalloc.h"
#include "sql.h"
#include "store.h"
#include "store_private.h"

static int
store_bad_arg(struct store *st, const char *what, const char **error_r)
{
	return store_set_error(st, error_r, -1, "invalid %s", what);
}

/* ---- settings page sessions ------------------------------------------ */

int
store_portal_session_add(struct store *st, const char *id_hash,
    const char *account, const char *csrf, int64_t created, int64_t expires,
    const char **error_r)
{
	static const char query[] =
	    "INSERT INTO portal_sessions (id_hash, account, csrf, created,"
	    " expires) VALUES (?1, ?2, ?3, ?4, ?5)";

	if (!store_is_hex_token(id_hash) || !store_is_hex_token(csrf) ||
	    !store_is_key(account, STORE_SESSION_ACCOUNT_MAX))
		return store_bad_arg(st, "portal session", error_r);
	return store_change(st, query, error_r, "tttii", id_hash, account,
	    csrf, created, expires) < 0 ? -1 : 0;
}

int
store_portal_session_del(struct store *st, const char *id_hash,
    const char **error_r)
{
	static const char query[] =
	    "DELETE FROM portal_sessions WHERE id_hash = ?1";

	if (!store_is_hex_token(id_hash))
		return 1;
	return store_change(st, query, error_r, "t", id_hash);
}

int
store_portal_session_get(struct store *st, const char *id_hash, int64_t now,
    struct store_portal_session *s_r, const char **error_r)
{
	static const char query[] =
	    "SELECT account, csrf, created, expires FROM portal_sessions"
	    " WHERE id_hash = ?1";
	struct sql_stmt *stmt;
	int r;

	memset(s_r, 0, sizeof(*s_r));
	if (!store_is_hex_token(id_hash))
		return 1;
	if ((stmt = store_stmt(st, query, SQL_LOCK_NONE, error_r, "t",
	    id_hash)) == NULL)
		return -1;
	if ((r = sql_step(stmt, error_r)) == 1) {
		xstrlcpy(s_r->account, sql_col_text(stmt, 0),
		    sizeof(s_r->account));
		xstrlcpy(s_r->csrf, sql_col_text(stmt, 1), sizeof(s_r->csrf));
		s_r->created = sql_col_int64(stmt, 2);
		s_r->expires = sql_col_int64(stmt, 3);
	}
	sql_reset(stmt);
	if (r <= 0)
		return r < 0 ? -1 : 1;
	if (s_r->expires <= now) {
		/* lazily: the periodic sweep gets the ones never asked for */
		if (store_portal_session_del(st, id_hash, error_r) < 0)
			return -1;
		memset(s_r, 0, sizeof(*s_r));
		return 1;
	}
	return 0;
}

int
store_portal_session_touch(struct store *st, const char *id_hash,
    int64_t expires, const char **error_r)
{
	/* never backwards, whichever node touched it last */
	static const char query[] =
	    "UPDATE portal_sessions SET expires ="
	    " CASE WHEN expires > ?2 THEN expires ELSE ?2 END"
	    " WHERE id_hash = ?1";

	if (!store_is_hex_token(id_hash))
		return 1;
	return store_change(st, query, error_r, "ti", id_hash, expires);
}

int
store_portal_session_del_account(struct store *st, const char *account,
    const char *keep_hash, const char **error_r)
{
	static const char query[] =
	    "DELETE FROM portal_sessions WHERE account = ?1"
	    " AND (CAST(?2 AS TEXT) IS NULL OR id_hash <> ?2)";

	if (!store_is_key(account, STORE_SESSION_ACCOUNT_MAX))
		return store_bad_arg(st, "account", error_r);
	if (keep_hash != NULL && !store_is_hex_token(keep_hash))
		keep_hash = NULL;
	return store_change(st, query, error_r, "tt", account, keep_hash) < 0 ?
	    -1 : 0;
}

/* ---- API tokens and admin accounts ------------------------------------ */

/* A change keyed by a name: 1 with the "no such" error when nothing
 * changed (or the name could never have been stored). */
static int
store_named(struct store *st, int r, const char *what, const char *name,
    const char **error_r)
{
	char quoted[STORE_QUOTE_SIZE];

	if (r == 1)
		return store_set_error(st, error_r, 1, "no such %s '%s'",
		    what, store_quote(quoted, sizeof(quoted), name));
	return r;
}

int
store_api_token_add(struct store *st, const char *name, const char *hash,
    int64_t created, const char **error_r)
{
	static const char query[] =
	    "INSERT INTO api_tokens (name, hash, created) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (name) DO NOTHING";

	if (!store_name_ok(name))
		return store_bad_arg(st, "token name", error_r);
	if (!store_is_hex_token(hash))
		return store_bad_arg(st, "token hash", error_r);
	return store_added(st, store_change(st, query, error_r, "tti", name,
	    hash, created), "API token", name, error_r);
}

int
store_api_token_get(struct store *st, const char *name, char *hash_r,
    const char **error_r)
{
	static const char query[] = "SELECT hash FROM api_tokens WHERE name = ?1";
	char *hash = NULL;
	int r;

	*hash_r = '\0';
	if (!store_name_ok(name))
		return 1;
	if ((r = store_query_text(st, query, &hash, error_r, "t", name)) == 0)
		xstrlcpy(hash_r, hash, STORE_HEX_TOKEN_LEN + 1);
	free(hash);
	return r;
}

int
store_api_token_del(struct store *st, const char *name, const char **error_r)
{
	static const char query[] = "DELETE FROM api_tokens WHERE name = ?1";

	return store_named(st, store_name_ok(name) ? store_change(st, query,
	    error_r, "t", name) : 1, "API token", name, error_r);
}

static int
store_name_row(struct sql_stmt *stmt, void *cb, void *context)
{
	struct store_name_row row = {
		.name = sql_col_text(stmt, 0),
		.hash = sql_col_text(stmt, 1),
		.created = sql_col_int64(stmt, 2),
	};

	return ((store_name_cb *)cb)(&row, context);
}

/* The rows of "SELECT name, hash, created ... ORDER BY name". */
static int
store_name_list(struct store *st, const char *query, store_name_cb *cb,
    void *context, const char **error_r)
{
	return store_each_row(sql_prepare(st->db, query, error_r),
	    store_name_row, (void *)cb, context, NULL, error_r);
}

int
store_api_token_list(struct store *st, store_name_cb *cb, void *context,
    const char **error_r)
{
	static const char query[] =
	    "SELECT name, hash, created FROM api_tokens ORDER BY name";

	return store_name_list(st, query, cb, context, error_r);
}

int
store_admin_add(struct store *st, const char *name, const char *password_hash,
    int64_t created, const char **error_r)
{
	static const char query[] =
	    "INSERT INTO admin_users (name, password_hash, created)"
	    " VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING";
	const char *reason;

	if (!store_name_ok(name))
		return store_bad_arg(st, "admin name", error_r);
	if ((reason = store_check_hash(password_hash)) != NULL)
		return store_set_error(st, error_r, -1, "%s", reason);
	return store_added(st, store_change(st, query, error_r, "tti", name,
	    password_hash, created), "admin", name, error_r);
}

int
store_admin_set_password(struct store *st, const char *name,
    const char *password_hash, const char **error_r)
{
	static const char query[] =
	    "UPDATE admin_users SET password_hash = ?2 WHERE name = ?1";
	const char *reason;

	if ((reason = store_check_hash(password_hash)) != NULL)
		return store_set_error(st, error_r, -1, "%s", reason);
	return store_named(st, store_name_ok(name) ? store_change(st, query,
	    error_r, "tt", name, password_hash) : 1, "admin", name,
	    error_r);
}

int
store_admin_get(struct store *st, const char *name, char **hash_r,
    const char **error_r)
{
	static const char query[] =
	    "SELECT password_hash FROM admin_users WHERE name = ?1";

	*hash_r = NULL;
	if (!store_name_ok(name))
		return 1;
	return store_query_text(st, query, hash_r, error_r, "t", name);
}

int
store_admin_del(struct store *st, const char *name, const char **error_r)
{
	static const char query[] = "DELETE FROM admin_users WHERE name = ?1";

	return store_named(st, store_name_ok(name) ? store_change(st, query,
	    error_r, "t", name) : 1, "admin", name, error_r);
}

int
store_admin_list(struct store *st, store_name_cb *cb, void *context,
    const char **error_r)
{
	static const char query[] =
	    "SELECT name, password_hash, created FROM admin_users ORDER BY name";

	return store_name_list(st, query, cb, context, error_r);
}

/* ---- POP3 leases and POP-before-SMTP ------------------------------------ */

/* mailbox: the canonical account; node and session: the holder's. */
static int
store_lock_args(const char *mailbox, const char *node, const char *session)
{
	return store_is_key(mailbox, STORE_ADDRESS_MAX) &&
	    store_is_key(node, 255) && store_is_key(session, 64);
}

int
store_pop3_lock_take(struct store *st, const char *mailbox, const char *node,
    const char *session, int64_t now, int64_t expires, const char **error_r)
{
	/* A new row, or the row of a lease that has run out: one
	 * statement, so the check and the take cannot be split. */
	static const char query[] =
	    "INSERT INTO pop3_locks (mailbox, node, session, expires)"
	    " VALUES (?1, ?2, ?3, ?5)"
	    " ON CONFLICT (mailbox) DO UPDATE SET node = excluded.node,"
	    " session = excluded.session, expires = excluded.expires"
	    " WHERE pop3_locks.expires <= ?4";

	if (!store_lock_args(mailbox, node, session))
		return store_bad_arg(st, "POP3 lock", error_r);
	return store_change(st, query, error_r, "tttii", mailbox, node,
	    session, now, expires);
}

int
store_pop3_lock_refresh(struct store *st, const char *mailbox,
    const char *node, const char *session, int64_t expires,
    const char **error_r)
{
	static const char query[] =
	    "UPDATE pop3_locks SET expires = ?4 WHERE mailbox = ?1"
	    " AND node = ?2 AND session = ?3";

	if (!store_lock_args(mailbox, node, session))
		return store_bad_arg(st, "POP3 lock", error_r);
	return store_change(st, query, error_r, "ttti", mailbox, node,
	    session, expires);
}

int
store_pop3_lock_release(struct store *st, const char *mailbox,
    const char *node, const char *session, const char **error_r)
{
	static const char query[] =
	    "DELETE FROM pop3_locks WHERE mailbox = ?1 AND node = ?2"
	    " AND session = ?3";

	if (!store_lock_args(mailbox, node, session))
		return store_bad_arg(st, "POP3 lock", error_r);
	return store_change(st, query, error_r, "ttt", mailbox, node,
	    session);
}

int
store_popbsmtp_set(struct store *st, const char *client, const char *account,
    int64_t until, const char **error_r)
{
	static const char query[] =
	    "INSERT INTO pop_before_smtp (client, account, expires)"
	    " VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (client) DO UPDATE SET account = excluded.account,"
	    " expires = excluded.expires";

	if (!store_is_key(client, 64) ||
	    !store_is_key(account, STORE_ADDRESS_MAX))
		return store_bad_arg(st, "POP-before-SMTP window", error_r);
	return store_change(st, query, error_r, "tti", client, account,
	    until) < 0 ? -1 : 0;
}

int
store_popbsmtp_get(struct store *st, const char *client, int64_t now,
    char **account_r, const char **error_r)
{
	static const char query[] =
	    "SELECT account FROM pop_before_smtp"
	    " WHERE client = ?1 AND expires > ?2";

	*account_r = NULL;
	if (!store_is_key(client, 64))
		return 1;
	return store_query_text(st, query, account_r, error_r, "ti", client,
	    now);
}

int
store_expire(struct store *st, int64_t now, const char **error_r)
{
	static const char *const query[] = {
		"DELETE FROM portal_sessions WHERE expires <= ?1",
		"DELETE FROM pop3_locks WHERE expires <= ?1",
		"DELETE FROM pop_before_smtp WHERE expires <= ?1",
	};

	for (size_t i = 0; i < sizeof(query) / sizeof(query[0]); i++)
		if (store_change(st, query[i], error_r, "i", now) < 0)
			return -1;
	return 0;
}

/* ---- authentication throttling ---------------------------------------- */

static const char store_sql_throttle_read[] =
    "SELECT failures, window_start, locked_until FROM auth_throttle"
    " WHERE key = ?1";

/* The throttling row of key: 1 found, 0 none, -1 error. */
static int
store_throttle_read(struct store *st, enum sql_row_lock lock, const char *key,
    int64_t *failures_r, int64_t *start_r, int64_t *locked_r,
    const char **error_r)
{
	struct sql_stmt *stmt = store_stmt(st, store_sql_throttle_read, lock,
	    error_r, "t", key);
	int r;

	*failures_r = *start_r = *locked_r = 0;
	if (stmt == NULL)
		return -1;
	if ((r = sql_step(stmt, error_r)) == 1) {
		*failures_r = sql_col_int64(stmt, 0);
		*start_r = sql_col_int64(stmt, 1);
		*locked_r = sql_col_int64(stmt, 2);
	}
	sql_reset(stmt);
	return r;
}

int
store_throttle_get(struct store *st, const char *key, int64_t now,
    int64_t window, int64_t *failures_r, int64_t *locked_until_r,
    const char **error_r)
{
	int64_t start;

	if (store_throttle_read(st, SQL_LOCK_NONE, key, failures_r, &start,
	    locked_until_r, error_r) < 0)
		return -1;
	if (start + window <= now)
		*failures_r = 0;	/* the window has passed */
	if (*locked_until_r <= now)
		*locked_until_r = 0;
	return 0;
}

/* The row is made first and then locked, so failures counted at the
 * same moment on several nodes all count. */
static int
store_throttle_fail_tx(struct store *st, const char *key, int64_t now,
    int64_t window, int64_t max, int64_t lock, int64_t *failures_r,
    int64_t *locked_until_r, const char **error_r)
{
	static const char make[] =
	    "INSERT INTO auth_throttle (key, failures, window_start,"
	    " locked_until) VALUES (?1, 0, ?2, 0) ON CONFLICT (key) DO NOTHING";
	static const char update[] =
	    "UPDATE auth_throttle SET failures = ?2, window_start = ?3,"
	    " locked_until = ?4 WHERE key = ?1";
	int64_t failures, start, locked;

	if (store_change(st, make, error_r, "ti", key, now) < 0 ||
	    store_throttle_read(st, SQL_LOCK_UPDATE, key, &failures, &start,
	    &locked, error_r) < 0)
		return -1;
	if (start + window <= now) {
		failures = 0;
		start = now;
	}
	failures++;
	if (locked <= now)
		locked = 0;
	if (max > 0 && failures >= max && locked == 0)
		locked = now + lock;
	if (store_change(st, update, error_r, "tiii", key, failures, start,
	    locked) < 0)
		return -1;
	*failures_r = failures;
	*locked_until_r = locked;
	return 0;
}

int
store_throttle_fail(struct store *st, const char *key, int64_t now,
    int64_t window, int64_t max, int64_t lock, int64_t *failures_r,
    int64_t *locked_until_r, const char **error_r)
{
	if (store_tx_begin(st, SQL_TX_WRITE, error_r) < 0)
		return -1;
	return store_tx_end(st, SQL_TX_WRITE, store_throttle_fail_tx(st, key,
	    now, window, max, lock, failures_r, locked_until_r, error_r),
	    error_r);
}

int
store_throttle_clear(struct store *st, const char *key, const char **error_r)
{
	static const char query[] = "DELETE FROM auth_throttle WHERE key = ?1";

	return store_change(st, query, error_r, "t", key) < 0 ? -1 : 0;
}

/* ---- trusted login addresses (schema step 6) ------------------------- */

static int
store_trusted_seen_tx(struct store *st, const char *name, const char *client,
    int64_t now, int64_t since, int64_t keep, const char **error_r)
{
	static const char seen[] =
	    "INSERT INTO auth_trusted (name, client, last_ok)"
	    " VALUES (?1, ?2, ?3) ON CONFLICT (name, client) DO UPDATE SET"
	    " last_ok = CASE WHEN auth_trusted.last_ok > excluded.last_ok"
	    " THEN auth_trusted.last_ok ELSE excluded.last_ok END";
	/* the newest `keep` of the name stay */
	static const char trim[] =
	    "DELETE FROM auth_trusted WHERE name = ?1 AND client NOT IN"
	    " (SELECT client FROM auth_trusted WHERE name = ?1"
	    " ORDER BY last_ok DESC, client LIMIT ?2)";
	static const char old[] = "DELETE FROM auth_trusted WHERE last_ok < ?1";

	if (store_change(st, seen, error_r, "tti", name, client, now) < 0 ||
	    store_change(st, trim, error_r, "ti", name, keep) < 0 ||
	    store_change(st, old, error_r, "i", since) < 0)
		return -1;
	return 0;
}

int
store_trusted_seen(struct store *st, const char *name, const char *client,
    int64_t now, int64_t since, int keep, const char **error_r)
{
	if (store_tx_begin(st, SQL_TX_WRITE, error_r) < 0)
		return -1;
	return store_tx_end(st, SQL_TX_WRITE, store_trusted_seen_tx(st, name,
	    client, now, since, keep > 0 ? keep : 1, error_r), error_r);
}

int
store_trusted_get(struct store *st, const char *name, const char *client,
    int64_t since, const char **error_r)
{
	static const char query[] =
	    "SELECT 1 FROM auth_trusted WHERE name = ?1 AND client = ?2"
	    " AND last_ok >= ?3";
	struct sql_stmt *stmt = store_stmt(st, query, SQL_LOCK_NONE, error_r,
	    "tti", name, client, since);
	int r;

	if (stmt == NULL)
		return -1;
	r = sql_step(stmt, error_r);
	sql_reset(stmt);
	return r < 0 ? -1 : r == 1 ? 0 : 1;
}
