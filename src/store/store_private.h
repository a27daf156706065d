/*
 * store_private: what the store's files share (private to src/store/).
 *
 * store.c owns the handle, the errors and the checks of names; the
 * queries are written once, by subject, over the SQL layer (sql.h):
 * store_schema.c (tables and migrations), store_account.c (domains,
 * accounts, aliases, APOP secrets), store_policy.c (sending policy:
 * permissions, limits, counters, events, notices, submissions) and
 * store_shared.c (state the nodes share: portal sessions, API tokens,
 * admins, POP3 leases, POP-before-SMTP windows, throttling, trusted
 * login addresses).
 *
 * A public function checks and canonicalizes its arguments first, so a
 * query only ever sees canonical text: lower-case ASCII, addresses with
 * exactly one '@', at most STORE_ADDRESS_MAX octets. For look-ups the
 * text was only lower-cased, so it may be any string a client sent; it
 * is bound, never built into SQL.
 */
#ifndef SEKISHO_STORE_PRIVATE_H
#define SEKISHO_STORE_PRIVATE_H

#include "../core/str.h"
#include "sql.h"
#include "store.h"

struct store {
	struct sql_db	*db;
	struct str	 error;		/* the handle-owned error text */
	int		 in_read;	/* inside store_read_begin() */
	int		 in_write;	/* inside store_write_begin() */
	int		 write_failed;	/* a write in it failed */
};

/* The handle's SQL connection (tests of the SQL layer). */
struct sql_db *store_sql(struct store *st);

/* Error texts, so they read the same whatever the driver. */
#define STORE_ERR_NO_DOMAIN	"no such domain '%s'"
#define STORE_ERR_DOMAIN_USED	"domain '%s' still has %lld account(s) " \
				"and %lld alias(es); delete them first"
#define STORE_ERR_NO_ACCOUNT	"no such account '%s'"
#define STORE_ERR_IS_ALIAS	"'%s' is already an alias"
#define STORE_ERR_NO_ALIAS	"no such alias '%s'"
#define STORE_ERR_IS_ACCOUNT	"'%s' is already an account"

/* Named write locks (PostgreSQL advisory locks; SQLite's BEGIN
 * IMMEDIATE holds the whole database). */
#define STORE_LOCK_NAMES	7001	/* accounts and aliases share names */
#define STORE_LOCK_SCHEMA	7002	/* schema upgrades, once */

/* The result r of an insert of a new name (store_change): a unique
 * violation, or no row from INSERT ... ON CONFLICT DO NOTHING, is -1 with
 * "WHAT 'NAME' already exists". */
int store_added(struct store *st, int r, const char *what, const char *name,
    const char **error_r);

/* Room for a quoted piece of caller text in an error message. */
#define STORE_QUOTE_SIZE	200

/* Set the handle's error text and *error_r to it. Returns ret. */
int store_set_error(struct store *st, const char **error_r, int ret,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Caller or client text in an error message: printable, cut short. */
const char *store_quote(char *buf, size_t size, const char *text);
/* The domain part of a canonical address. */
const char *store_address_domain(const char *address);
/* For look-ups: lower-case text into buf; 1 when it cannot be a stored
 * name (answered "not found" without a query). */
int store_lookup_key(const char *text, char buf[STORE_ADDRESS_MAX + 1]);
/* NULL or why a crypt(3) hash cannot be stored. */
const char *store_check_hash(const char *hash);
/* Free text from outside cut as stored (docs/policy.md "Stored
 * lengths"); buf has max + 1 bytes; NULL stays NULL. */
const char *store_text_cut(const char *s, char *buf, size_t max);

/* A transaction unless inside store_read_begin() (a read there is part
 * of the caller's snapshot). end: commit, or rollback when ret < 0 or
 * the transaction is a read. Returns ret (or -1 if commit failed). */
int store_tx_begin(struct store *st, enum sql_tx tx, const char **error_r);
int store_tx_end(struct store *st, enum sql_tx tx, int ret,
    const char **error_r);

/*
 * The kept statement for query with ?1, ?2, ... bound from the varargs
 * as types says: 't' a string (NULL is SQL NULL), 'i' an int64_t, 'l' a
 * limit override (int64_t; < 0, the config default, is NULL). NULL with
 * the error set on failure.
 */
struct sql_stmt *store_stmt(struct store *st, const char *query,
    enum sql_row_lock lock, const char **error_r, const char *types, ...);
/* Run a change: 0 rows changed, 1 none, -1 error. */
int store_change(struct store *st, const char *query, const char **error_r,
    const char *types, ...);
/* The first column of the first row as an integer: 0 found, 1 no row,
 * -1 error. */
int store_query_id(struct store *st, const char *query,
    enum sql_row_lock lock, const char *key, int64_t *id_r,
    const char **error_r);
/* The first column of the first row as a copy: 0, 1 no row, -1. */
int store_query_text(struct store *st, const char *query, char **text_r,
    const char **error_r, const char *types, ...);

/*
 * A list: step stmt to its end, each row to row (which makes the caller's
 * row struct from the columns and calls cb with it); a row returning < 0
 * stops. 0 done, -1 error or stopped; with n_r, the rows seen. Resets.
 */
typedef int store_row_fn(struct sql_stmt *stmt, void *cb, void *context);
int store_each_row(struct sql_stmt *stmt, store_row_fn *row, void *cb,
    void *context, size_t *n_r, const char **error_r);

int store_is_hex_token(const char *s);
int store_is_key(const char *s, size_t max);
const char *store_check_reason(const char *reason);

#endif
