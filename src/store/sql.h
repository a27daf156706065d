/*
 * sql: the one SQL layer under the store (Dovecot's lib-sql idea: the
 * drivers only run SQL, and each query is written once, by its user, in
 * store_account.c, store_policy.c, store_shared.c and store_schema.c).
 * Drivers: sql_sqlite.c ("sqlite:PATH") and sql_pgsql.c
 * ("postgresql:CONNINFO").
 *
 * Queries are written with ?N placeholders (?1, ?2, ...): SQLite takes
 * them as they are, the PostgreSQL driver rewrites them to $N once, when
 * it prepares (a '?' inside a string literal is left alone). A statement
 * is prepared once per connection and kept: sql_prepare() finds it again
 * by the query text's address (a string literal in the caller), so the
 * same query text must always be the same literal. On PostgreSQL the
 * kept statements outlive a reconnect: they are prepared again on the
 * new connection when next used.
 *
 * The one dialect difference left to the callers is how a write
 * transaction keeps other writers out of what it read:
 *   - SQLite: sql_begin(SQL_TX_WRITE) is BEGIN IMMEDIATE, the whole
 *     database's write lock; row locks and named locks are then no-ops.
 *   - PostgreSQL: BEGIN (READ COMMITTED), and the transaction locks what
 *     it reads: a statement prepared with a row lock gets FOR UPDATE or
 *     FOR NO KEY UPDATE appended, and sql_lock_name() takes a
 *     transaction advisory lock.
 * A caller writes both (the lock and the plain query are the same text);
 * each driver does what its database needs.
 *
 * Every value is bound; no SQL is ever built from text. A connection is
 * used by one thread at a time (store.h). Errors: -1 with *error_r set to
 * a connection-owned text valid until the next call on the connection.
 */
#ifndef SEKISHO_SQL_H
#define SEKISHO_SQL_H

#include <stddef.h>
#include <stdint.h>

struct sql_db;
struct sql_stmt;

enum sql_tx {
	SQL_TX_READ,	/* one snapshot for several reads */
	SQL_TX_WRITE,	/* SQLite: BEGIN IMMEDIATE; PostgreSQL: BEGIN */
};

enum sql_row_lock {
	SQL_LOCK_NONE,
	SQL_LOCK_UPDATE,	/* PostgreSQL: FOR UPDATE */
	SQL_LOCK_NO_KEY_UPDATE,	/* PostgreSQL: FOR NO KEY UPDATE */
};

/* Column type names for the schema (the hook of store_schema.c). */
enum sql_type {
	SQL_TYPE_INT64,		/* INTEGER / BIGINT */
	SQL_TYPE_ID,		/* a never-reused row id: INTEGER PRIMARY KEY
				 * AUTOINCREMENT / BIGSERIAL PRIMARY KEY */
	SQL_TYPE_ROWID,		/* a row id: INTEGER PRIMARY KEY /
				 * BIGSERIAL PRIMARY KEY */
};

/* uri: "sqlite:PATH" or "postgresql:CONNINFO". NULL with *error_r set
 * (a per-thread buffer) on failure. */
struct sql_db *sql_open(const char *uri, const char **error_r);
void sql_close(struct sql_db **db);
/* "sqlite" or "postgresql" */
const char *sql_driver_name(const struct sql_db *db);
const char *sql_type_name(const struct sql_db *db, enum sql_type type);

/* The kept statement for query, reset and without bindings. */
struct sql_stmt *sql_prepare(struct sql_db *db, const char *query,
    const char **error_r);
struct sql_stmt *sql_prepare_lock(struct sql_db *db, const char *query,
    enum sql_row_lock lock, const char **error_r);
/* How many times the database prepared a statement for this handle
 * (tests: a kept statement is prepared once per connection). */
unsigned int sql_prepare_count(const struct sql_db *db);

/* The highest ?N of the statement's query. */
int sql_param_count(struct sql_stmt *stmt);
/* Parameters are numbered from 1. Text must stay valid until the next
 * sql_step; NULL binds SQL NULL. */
void sql_bind_int64(struct sql_stmt *stmt, int n, int64_t value);
void sql_bind_text(struct sql_stmt *stmt, int n, const char *value);
void sql_bind_null(struct sql_stmt *stmt, int n);

/* 1 a row, 0 done, -1 error (the statement is reset then). */
int sql_step(struct sql_stmt *stmt, const char **error_r);
/* Columns of the current row, numbered from 0. Text of NULL is "". */
int64_t sql_col_int64(struct sql_stmt *stmt, int col);
const char *sql_col_text(struct sql_stmt *stmt, int col);
int sql_col_is_null(struct sql_stmt *stmt, int col);
/* Rows changed by the statement's last step. */
int64_t sql_changes(struct sql_stmt *stmt);
/* Done with the statement (ends SQLite's implicit read; frees the
 * PostgreSQL result). Every user calls it after its last step. */
void sql_reset(struct sql_stmt *stmt);

/* Run a statement without result rows: 0 and the rows it changed in
 * *changed_r (may be NULL), -1 error. Resets it. */
int sql_run(struct sql_stmt *stmt, int64_t *changed_r, const char **error_r);

int sql_begin(struct sql_db *db, enum sql_tx tx, const char **error_r);
int sql_commit(struct sql_db *db, const char **error_r);
/* Undo the open transaction (if any), keeping the error already set.
 * Returns ret, for tail calls. */
int sql_rollback(struct sql_db *db, int ret);
/* Inside a write transaction: a lock named by key, held to its end
 * (PostgreSQL: pg_advisory_xact_lock; SQLite: held already). */
int sql_lock_name(struct sql_db *db, int64_t key, const char **error_r);
/* 1 when the last failed step broke a UNIQUE constraint. */
int sql_unique_violation(const struct sql_db *db);

/* Several statements without parameters (schema steps). */
int sql_exec_script(struct sql_db *db, const char *script,
    const char **error_r);

/* Set the connection's error text (and *error_r to it). -1. */
int sql_set_error(struct sql_db *db, const char **error_r, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

#endif
