/*
 * store_sqlite_shared: the state that several nodes share beyond accounts
 * and the sending policy (schema step 5 in store_sqlite.c): settings page
 * sessions, the API's token hashes, the admin pages' accounts, POP3
 * mailbox leases and POP-before-SMTP windows. With SQLite there is one
 * node, but the semantics are those of store_pgsql.c, so a single node
 * moved to PostgreSQL behaves the same.
 *
 * Each call is one statement (SQLite runs each in its own transaction);
 * the lease is taken by one INSERT ... ON CONFLICT DO UPDATE ... WHERE
 * the old lease has expired, so two sessions never both get it.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../core/str.h"
#include "../core/xmalloc.h"
#include "store.h"
#include "store_impl.h"
#include "store_sqlite.h"

static int
ssh_fail(struct store *st, const char *what, const char **error_r)
{
	store_set_error(st, error_r, "sqlite: %s: %s", what,
	    sqlite3_errmsg(store_sqlite_db(st)));
	return -1;
}

/*
 * Prepare sql and bind its parameters ?1, ?2, ... from the varargs as
 * types says: 't' a string (NULL is SQL NULL), 'i' an int64_t. NULL with
 * the error set on failure.
 */
static sqlite3_stmt *
ssh_prepare(struct store *st, const char *sql, const char *what,
    const char **error_r, const char *types, ...)
{
	sqlite3_stmt *stmt = NULL;
	va_list ap;
	int rc = SQLITE_OK;

	if (sqlite3_prepare_v2(store_sqlite_db(st), sql, -1, &stmt, NULL) !=
	    SQLITE_OK) {
		(void)ssh_fail(st, what, error_r);
		sqlite3_finalize(stmt);
		return NULL;
	}
	va_start(ap, types);
	for (int i = 0; types[i] != '\0' && rc == SQLITE_OK; i++) {
		if (types[i] == 'i')
			rc = sqlite3_bind_int64(stmt, i + 1, va_arg(ap, int64_t));
		else {
			const char *s = va_arg(ap, const char *);

			rc = s == NULL ? sqlite3_bind_null(stmt, i + 1) :
			    sqlite3_bind_text(stmt, i + 1, s, -1,
			    SQLITE_TRANSIENT);
		}
	}
	va_end(ap);
	if (rc != SQLITE_OK) {
		(void)ssh_fail(st, what, error_r);
		sqlite3_finalize(stmt);
		return NULL;
	}
	return stmt;
}

/* Step once: 1 row, 0 done, -1 error (set). */
static int
ssh_step(struct store *st, sqlite3_stmt *stmt, const char *what,
    const char **error_r)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return ssh_fail(st, what, error_r);
}

/* Run a prepared change and finalize it: 0 rows changed, 1 none, -1. */
static int
ssh_change(struct store *st, sqlite3_stmt *stmt, const char *what,
    const char **error_r)
{
	int r;

	if (stmt == NULL)
		return -1;
	r = ssh_step(st, stmt, what, error_r);
	sqlite3_finalize(stmt);
	if (r < 0)
		return -1;
	return sqlite3_changes(store_sqlite_db(st)) > 0 ? 0 : 1;
}

static const char *
ssh_text(sqlite3_stmt *stmt, int col)
{
	const unsigned char *t = sqlite3_column_text(stmt, col);

	return t == NULL ? "" : (const char *)t;
}

/* "col\tcol\t...\n" per row into out; finalizes. */
static int
ssh_rows(struct store *st, sqlite3_stmt *stmt, const char *what,
    struct str *out, const char **error_r)
{
	int r, ncol;

	if (stmt == NULL)
		return -1;
	ncol = sqlite3_column_count(stmt);
	while ((r = ssh_step(st, stmt, what, error_r)) == 1) {
		for (int c = 0; c < ncol; c++) {
			if (c > 0)
				str_append_c(out, '\t');
			str_append(out, ssh_text(stmt, c));
		}
		str_append_c(out, '\n');
	}
	sqlite3_finalize(stmt);
	return r < 0 ? -1 : 0;
}

/* ---- settings page sessions ------------------------------------------ */

int
store_sqlite_portal_session_add(struct store *st, const char *id_hash,
    const char *account, const char *csrf, int64_t created, int64_t expires,
    const char **error_r)
{
	int r = ssh_change(st, ssh_prepare(st, "INSERT INTO portal_sessions"
	    " (id_hash, account, csrf, created, expires)"
	    " VALUES (?1, ?2, ?3, ?4, ?5)", "session add", error_r, "tttii",
	    id_hash, account, csrf, created, expires), "session add", error_r);

	return r < 0 ? -1 : 0;
}

int
store_sqlite_portal_session_get(struct store *st, const char *id_hash,
    int64_t now, struct store_portal_session *s_r, const char **error_r)
{
	sqlite3_stmt *stmt = ssh_prepare(st, "SELECT account, csrf, created,"
	    " expires FROM portal_sessions WHERE id_hash = ?1",
	    "session look-up", error_r, "t", id_hash);
	int r;

	if (stmt == NULL)
		return -1;
	r = ssh_step(st, stmt, "session look-up", error_r);
	if (r == 1) {
		xstrlcpy(s_r->account, ssh_text(stmt, 0),
		    sizeof(s_r->account));
		xstrlcpy(s_r->csrf, ssh_text(stmt, 1), sizeof(s_r->csrf));
		s_r->created = sqlite3_column_int64(stmt, 2);
		s_r->expires = sqlite3_column_int64(stmt, 3);
	}
	sqlite3_finalize(stmt);
	if (r < 0)
		return -1;
	if (r == 0)
		return 1;
	if (s_r->expires <= now) {
		/* lazily: the periodic sweep gets the ones never asked for */
		if (store_sqlite_portal_session_del(st, id_hash, error_r) < 0)
			return -1;
		memset(s_r, 0, sizeof(*s_r));
		return 1;
	}
	return 0;
}

int
store_sqlite_portal_session_touch(struct store *st, const char *id_hash,
    int64_t expires, const char **error_r)
{
	return ssh_change(st, ssh_prepare(st, "UPDATE portal_sessions"
	    " SET expires = max(expires, ?2) WHERE id_hash = ?1", "session touch", error_r,
	    "ti", id_hash, expires), "session touch", error_r);
}

int
store_sqlite_portal_session_del(struct store *st, const char *id_hash,
    const char **error_r)
{
	return ssh_change(st, ssh_prepare(st, "DELETE FROM portal_sessions"
	    " WHERE id_hash = ?1", "session delete", error_r, "t", id_hash),
	    "session delete", error_r);
}

int
store_sqlite_portal_session_del_account(struct store *st, const char *account,
    const char *keep_hash, const char **error_r)
{
	int r = ssh_change(st, ssh_prepare(st, "DELETE FROM portal_sessions"
	    " WHERE account = ?1 AND (?2 IS NULL OR id_hash <> ?2)",
	    "session delete", error_r, "tt", account, keep_hash),
	    "session delete", error_r);

	return r < 0 ? -1 : 0;
}

/* ---- API tokens and admin accounts ------------------------------------ */

/* The result of an insert of a new name: -1 with the "exists" error. */
#define SSH_NEW_NAME(st, r, fmt, name, error_r) do {			\
	if ((r) == 1)							\
		store_set_error((st), (error_r), fmt, (name));		\
	return (r) == 0 ? 0 : -1;					\
} while (0)

int
store_sqlite_api_token_add(struct store *st, const char *name,
    const char *hash, int64_t created, const char **error_r)
{
	int r = ssh_change(st, ssh_prepare(st, "INSERT INTO api_tokens"
	    " (name, hash, created) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (name) DO NOTHING", "token add", error_r, "tti",
	    name, hash, created), "token add", error_r);

	SSH_NEW_NAME(st, r, STORE_ERR_TOKEN_EXISTS, name, error_r);
}

int
store_sqlite_api_token_get(struct store *st, const char *name, char *hash_r,
    const char **error_r)
{
	sqlite3_stmt *stmt = ssh_prepare(st, "SELECT hash FROM api_tokens"
	    " WHERE name = ?1", "token look-up", error_r, "t", name);
	int r;

	if (stmt == NULL)
		return -1;
	r = ssh_step(st, stmt, "token look-up", error_r);
	if (r == 1)
		xstrlcpy(hash_r, ssh_text(stmt, 0), STORE_HEX_TOKEN_LEN + 1);
	sqlite3_finalize(stmt);
	return r < 0 ? -1 : r == 1 ? 0 : 1;
}

int
store_sqlite_api_token_del(struct store *st, const char *name,
    const char **error_r)
{
	int r = ssh_change(st, ssh_prepare(st, "DELETE FROM api_tokens"
	    " WHERE name = ?1", "token delete", error_r, "t", name),
	    "token delete", error_r);

	if (r == 1)
		store_set_error(st, error_r, STORE_ERR_NO_TOKEN, name);
	return r;
}

int
store_sqlite_api_token_list(struct store *st, struct str *out,
    const char **error_r)
{
	return ssh_rows(st, ssh_prepare(st, "SELECT name, hash, created"
	    " FROM api_tokens ORDER BY name", "token list", error_r, ""),
	    "token list", out, error_r);
}

int
store_sqlite_admin_add(struct store *st, const char *name,
    const char *password_hash, int64_t created, const char **error_r)
{
	int r = ssh_change(st, ssh_prepare(st, "INSERT INTO admin_users"
	    " (name, password_hash, created) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (name) DO NOTHING", "admin add", error_r, "tti",
	    name, password_hash, created), "admin add", error_r);

	SSH_NEW_NAME(st, r, STORE_ERR_ADMIN_EXISTS, name, error_r);
}

int
store_sqlite_admin_set_password(struct store *st, const char *name,
    const char *password_hash, const char **error_r)
{
	int r = ssh_change(st, ssh_prepare(st, "UPDATE admin_users"
	    " SET password_hash = ?2 WHERE name = ?1", "admin passwd",
	    error_r, "tt", name, password_hash), "admin passwd", error_r);

	if (r == 1)
		store_set_error(st, error_r, STORE_ERR_NO_ADMIN, name);
	return r;
}

int
store_sqlite_admin_get(struct store *st, const char *name, char **hash_r,
    const char **error_r)
{
	sqlite3_stmt *stmt = ssh_prepare(st, "SELECT password_hash"
	    " FROM admin_users WHERE name = ?1", "admin look-up", error_r, "t",
	    name);
	int r;

	if (stmt == NULL)
		return -1;
	r = ssh_step(st, stmt, "admin look-up", error_r);
	if (r == 1)
		*hash_r = xstrdup(ssh_text(stmt, 0));
	sqlite3_finalize(stmt);
	return r < 0 ? -1 : r == 1 ? 0 : 1;
}

int
store_sqlite_admin_del(struct store *st, const char *name,
    const char **error_r)
{
	int r = ssh_change(st, ssh_prepare(st, "DELETE FROM admin_users"
	    " WHERE name = ?1", "admin delete", error_r, "t", name),
	    "admin delete", error_r);

	if (r == 1)
		store_set_error(st, error_r, STORE_ERR_NO_ADMIN, name);
	return r;
}

int
store_sqlite_admin_list(struct store *st, struct str *out,
    const char **error_r)
{
	return ssh_rows(st, ssh_prepare(st, "SELECT name, password_hash,"
	    " created FROM admin_users ORDER BY name", "admin list", error_r,
	    ""), "admin list", out, error_r);
}

/* ---- POP3 leases and POP-before-SMTP ------------------------------------ */

int
store_sqlite_pop3_lock_take(struct store *st, const char *mailbox,
    const char *node, const char *session, int64_t now, int64_t expires,
    const char **error_r)
{
	/* A new row, or the row of a lease that has run out: one statement,
	 * so the check and the take cannot be split by another writer. */
	return ssh_change(st, ssh_prepare(st, "INSERT INTO pop3_locks"
	    " (mailbox, node, session, expires) VALUES (?1, ?2, ?3, ?5)"
	    " ON CONFLICT (mailbox) DO UPDATE SET node = excluded.node,"
	    " session = excluded.session, expires = excluded.expires"
	    " WHERE pop3_locks.expires <= ?4", "pop3 lock", error_r, "tttii",
	    mailbox, node, session, now, expires), "pop3 lock", error_r);
}

int
store_sqlite_pop3_lock_refresh(struct store *st, const char *mailbox,
    const char *node, const char *session, int64_t expires,
    const char **error_r)
{
	return ssh_change(st, ssh_prepare(st, "UPDATE pop3_locks"
	    " SET expires = ?4 WHERE mailbox = ?1 AND node = ?2"
	    " AND session = ?3", "pop3 lock refresh", error_r, "ttti", mailbox,
	    node, session, expires), "pop3 lock refresh", error_r);
}

int
store_sqlite_pop3_lock_release(struct store *st, const char *mailbox,
    const char *node, const char *session, const char **error_r)
{
	return ssh_change(st, ssh_prepare(st, "DELETE FROM pop3_locks"
	    " WHERE mailbox = ?1 AND node = ?2 AND session = ?3",
	    "pop3 unlock", error_r, "ttt", mailbox, node, session),
	    "pop3 unlock", error_r);
}

int
store_sqlite_popbsmtp_set(struct store *st, const char *client,
    const char *account, int64_t until, const char **error_r)
{
	int r = ssh_change(st, ssh_prepare(st, "INSERT INTO pop_before_smtp"
	    " (client, account, expires) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (client) DO UPDATE SET account = excluded.account,"
	    " expires = excluded.expires", "pop-before-smtp", error_r, "tti",
	    client, account, until), "pop-before-smtp", error_r);

	return r < 0 ? -1 : 0;
}

int
store_sqlite_popbsmtp_get(struct store *st, const char *client, int64_t now,
    char **account_r, const char **error_r)
{
	sqlite3_stmt *stmt = ssh_prepare(st, "SELECT account"
	    " FROM pop_before_smtp WHERE client = ?1 AND expires > ?2",
	    "pop-before-smtp look-up", error_r, "ti", client, now);
	int r;

	if (stmt == NULL)
		return -1;
	r = ssh_step(st, stmt, "pop-before-smtp look-up", error_r);
	if (r == 1)
		*account_r = xstrdup(ssh_text(stmt, 0));
	sqlite3_finalize(stmt);
	return r < 0 ? -1 : r == 1 ? 0 : 1;
}

int
store_sqlite_expire(struct store *st, int64_t now, const char **error_r)
{
	static const char *const sql[] = {
		"DELETE FROM portal_sessions WHERE expires <= ?1",
		"DELETE FROM pop3_locks WHERE expires <= ?1",
		"DELETE FROM pop_before_smtp WHERE expires <= ?1",
	};

	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
		if (ssh_change(st, ssh_prepare(st, sql[i], "expire", error_r,
		    "i", now), "expire", error_r) < 0)
			return -1;
	return 0;
}
