/*
 * sql_sqlite: the SQLite driver of sql.h ("sqlite:PATH").
 *
 * WAL mode, so readers (the backend threads resolving recipients and
 * checking passwords, each with its own connection) never wait for the
 * CLI writing; synchronous=FULL, so a change that returned is on disk. A
 * write transaction is BEGIN IMMEDIATE: SQLite lets one writer in at a
 * time, so a check and the write after it cannot be split by another
 * writer (row and named locks are therefore no-ops here).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../core/str.h"
#include "../core/xmalloc.h"
#include "sql.h"
#include "sql_private.h"

#define SQL_SQLITE_BUSY_MS	5000

struct sql_sqlite {
	struct sql_db	 db;	/* first: sql.c sees only this */
	sqlite3		*conn;
	sqlite3_stmt	*begin_read, *begin_write, *commit, *rollback;
	uint64_t	 busy_since;	/* ms: waiting for the write lock */
	uint64_t	 busy_gen;	/* writes seen at the last try */
};

struct sql_sqlite_stmt {
	struct sql_stmt	 s;	/* first */
	sqlite3_stmt	*stmt;
	int64_t		 changes;
};

/*
 * Waiting for the write lock. SQLite's own handler (sqlite3_busy_timeout)
 * sleeps 1, 2, 5, 10, ... ms between tries whatever happens meanwhile:
 * with the back side's threads all counting submissions in one database
 * that was four sleeps per message and a p99 over a second
 * (docs/performance.md). Here the writers of this process announce the
 * end of each write (the WAL hook runs after a commit has released the
 * lock, the rollback hook at a rollback) and waiters retry at once; a
 * writer in another process (the CLI) is noticed within 2 ms. The total
 * wait is SQL_SQLITE_BUSY_MS, then SQLITE_BUSY.
 */
static pthread_mutex_t sql_sqlite_wait_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sql_sqlite_wait_cond = PTHREAD_COND_INITIALIZER;
static uint64_t sql_sqlite_writes;	/* under the mutex */

static void
sql_sqlite_write_done(void)
{
	pthread_mutex_lock(&sql_sqlite_wait_mutex);
	sql_sqlite_writes++;
	pthread_cond_broadcast(&sql_sqlite_wait_cond);
	pthread_mutex_unlock(&sql_sqlite_wait_mutex);
}

static int
sql_sqlite_wal_hook(void *arg, sqlite3 *conn, const char *name, int pages)
{
	(void)arg;
	sql_sqlite_write_done();
	/* This hook replaces sqlite3_wal_autocheckpoint's: do its work
	 * (a passive checkpoint past 1000 pages, SQLite's default). */
	if (pages >= 1000)
		(void)sqlite3_wal_checkpoint_v2(conn, name,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

static void
sql_sqlite_rollback_hook(void *arg)
{
	(void)arg;
	sql_sqlite_write_done();
}

static uint64_t
sql_sqlite_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int
sql_sqlite_busy(void *arg, int count)
{
	struct sql_sqlite *ss = arg;
	uint64_t now = sql_sqlite_now_ms();
	struct timespec until;

	if (count == 0)
		ss->busy_since = now;
	else if (now - ss->busy_since >= SQL_SQLITE_BUSY_MS)
		return 0;
	pthread_mutex_lock(&sql_sqlite_wait_mutex);
	/* a write ended since our last try: try again at once */
	if (count > 0 && sql_sqlite_writes != ss->busy_gen) {
		ss->busy_gen = sql_sqlite_writes;
		pthread_mutex_unlock(&sql_sqlite_wait_mutex);
		return 1;
	}
	ss->busy_gen = sql_sqlite_writes;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += 2 * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (sql_sqlite_writes == ss->busy_gen)
		if (pthread_cond_timedwait(&sql_sqlite_wait_cond,
		    &sql_sqlite_wait_mutex, &until) != 0)
			break;
	ss->busy_gen = sql_sqlite_writes;
	pthread_mutex_unlock(&sql_sqlite_wait_mutex);
	return 1;
}

static struct sql_sqlite *
sql_sqlite_db(struct sql_db *db)
{
	return (struct sql_sqlite *)db;
}

static struct sql_sqlite_stmt *
sql_sqlite_stmt(struct sql_stmt *s)
{
	return (struct sql_sqlite_stmt *)s;
}

/* The database's own words, after what we were doing. -1. */
static int
sql_sqlite_fail(struct sql_sqlite *ss, const char *what, const char **error_r)
{
	return sql_set_error(&ss->db, error_r, "sqlite: %s: %s", what,
	    sqlite3_errmsg(ss->conn));
}

static const char *
sql_sqlite_type_name(enum sql_type type)
{
	switch (type) {
	case SQL_TYPE_ID:
		return "INTEGER PRIMARY KEY AUTOINCREMENT";
	case SQL_TYPE_ROWID:
		return "INTEGER PRIMARY KEY";
	case SQL_TYPE_INT64:
		break;
	}
	return "INTEGER";
}

static struct sql_stmt *
sql_sqlite_prepare(struct sql_db *db, const char *query,
    enum sql_row_lock lock, const char **error_r)
{
	struct sql_sqlite *ss = sql_sqlite_db(db);
	struct sql_sqlite_stmt *st;
	sqlite3_stmt *stmt = NULL;

	(void)lock;	/* BEGIN IMMEDIATE holds the database already */
	if (sqlite3_prepare_v3(ss->conn, query, -1, SQLITE_PREPARE_PERSISTENT,
	    &stmt, NULL) != SQLITE_OK) {
		(void)sql_sqlite_fail(ss, "prepare", error_r);
		sqlite3_finalize(stmt);
		return NULL;
	}
	st = xcalloc(1, sizeof(*st));
	st->stmt = stmt;
	ss->db.prepares++;
	return &st->s;
}

static void
sql_sqlite_finalize(struct sql_stmt *s)
{
	sqlite3_finalize(sql_sqlite_stmt(s)->stmt);
	free(s);
}

static int
sql_sqlite_param_count(struct sql_stmt *s)
{
	return sqlite3_bind_parameter_count(sql_sqlite_stmt(s)->stmt);
}

static void
sql_sqlite_bind_int64(struct sql_stmt *s, int n, int64_t value)
{
	/* SQLITE_RANGE for a number the query lacks: nothing happens */
	(void)sqlite3_bind_int64(sql_sqlite_stmt(s)->stmt, n, value);
}

static void
sql_sqlite_bind_text(struct sql_stmt *s, int n, const char *value)
{
	sqlite3_stmt *stmt = sql_sqlite_stmt(s)->stmt;

	if (value == NULL)
		(void)sqlite3_bind_null(stmt, n);
	else
		(void)sqlite3_bind_text(stmt, n, value, -1, SQLITE_TRANSIENT);
}

static int
sql_sqlite_step(struct sql_stmt *s, const char **error_r)
{
	struct sql_sqlite_stmt *st = sql_sqlite_stmt(s);
	struct sql_sqlite *ss = sql_sqlite_db(s->db);
	int rc = sqlite3_step(st->stmt);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE) {
		st->changes = sqlite3_changes(ss->conn);
		return 0;
	}
	if (sqlite3_extended_errcode(ss->conn) == SQLITE_CONSTRAINT_UNIQUE ||
	    sqlite3_extended_errcode(ss->conn) ==
	    SQLITE_CONSTRAINT_PRIMARYKEY)
		ss->db.unique_violation = 1;
	(void)sql_sqlite_fail(ss, "query", error_r);
	(void)sqlite3_reset(st->stmt);
	return -1;
}

static int64_t
sql_sqlite_col_int64(struct sql_stmt *s, int col)
{
	return sqlite3_column_int64(sql_sqlite_stmt(s)->stmt, col);
}

static const char *
sql_sqlite_col_text(struct sql_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(sql_sqlite_stmt(s)->stmt,
	    col);

	return t == NULL ? "" : (const char *)t;
}

static int
sql_sqlite_col_is_null(struct sql_stmt *s, int col)
{
	return sqlite3_column_type(sql_sqlite_stmt(s)->stmt, col) ==
	    SQLITE_NULL;
}

static int64_t
sql_sqlite_changes(struct sql_stmt *s)
{
	return sql_sqlite_stmt(s)->changes;
}

static void
sql_sqlite_reset(struct sql_stmt *s)
{
	struct sql_sqlite_stmt *st = sql_sqlite_stmt(s);

	/* clears bindings that point at the caller's old strings too */
	(void)sqlite3_reset(st->stmt);
	(void)sqlite3_clear_bindings(st->stmt);
	st->changes = 0;
}

/* One of the transaction statements, kept on the connection. */
static int
sql_sqlite_tx(struct sql_sqlite *ss, sqlite3_stmt **stmtp, const char *sql,
    const char *what, const char **error_r)
{
	int rc;

	if (*stmtp == NULL && sqlite3_prepare_v3(ss->conn, sql, -1,
	    SQLITE_PREPARE_PERSISTENT, stmtp, NULL) != SQLITE_OK)
		return sql_sqlite_fail(ss, what, error_r);
	rc = sqlite3_step(*stmtp);
	(void)sqlite3_reset(*stmtp);
	if (rc != SQLITE_DONE)
		return sql_sqlite_fail(ss, what, error_r);
	return 0;
}

static int
sql_sqlite_begin(struct sql_db *db, enum sql_tx tx, const char **error_r)
{
	struct sql_sqlite *ss = sql_sqlite_db(db);

	if (tx == SQL_TX_WRITE)
		return sql_sqlite_tx(ss, &ss->begin_write, "BEGIN IMMEDIATE",
		    "begin", error_r);
	return sql_sqlite_tx(ss, &ss->begin_read, "BEGIN", "begin", error_r);
}

static int
sql_sqlite_commit(struct sql_db *db, const char **error_r)
{
	struct sql_sqlite *ss = sql_sqlite_db(db);

	return sql_sqlite_tx(ss, &ss->commit, "COMMIT", "commit", error_r);
}

static void
sql_sqlite_rollback(struct sql_db *db)
{
	struct sql_sqlite *ss = sql_sqlite_db(db);

	/* Some errors (SQLITE_FULL, ...) roll back by themselves. Every
	 * read transaction ends here, so the statement is kept; a failure
	 * leaves the caller's error as it is. */
	if (sqlite3_get_autocommit(ss->conn))
		return;
	if (ss->rollback == NULL && sqlite3_prepare_v3(ss->conn, "ROLLBACK",
	    -1, SQLITE_PREPARE_PERSISTENT, &ss->rollback, NULL) != SQLITE_OK) {
		(void)sqlite3_exec(ss->conn, "ROLLBACK", NULL, NULL, NULL);
		return;
	}
	(void)sqlite3_step(ss->rollback);
	(void)sqlite3_reset(ss->rollback);
}

static int
sql_sqlite_lock_name(struct sql_db *db, int64_t key, const char **error_r)
{
	(void)db;
	(void)key;
	(void)error_r;
	return 0;	/* BEGIN IMMEDIATE holds the whole database */
}

static int
sql_sqlite_exec_script(struct sql_db *db, const char *script,
    const char **error_r)
{
	struct sql_sqlite *ss = sql_sqlite_db(db);

	if (sqlite3_exec(ss->conn, script, NULL, NULL, NULL) != SQLITE_OK)
		return sql_set_error(db, error_r, "sqlite: %s",
		    sqlite3_errmsg(ss->conn));
	return 0;
}

static int
sql_sqlite_pragmas(struct sql_sqlite *ss, const char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	const char *mode;
	int ok;

	(void)sqlite3_wal_hook(ss->conn, sql_sqlite_wal_hook, NULL);
	(void)sqlite3_rollback_hook(ss->conn, sql_sqlite_rollback_hook, NULL);
	if (sqlite3_busy_handler(ss->conn, sql_sqlite_busy, ss) != SQLITE_OK ||
	    sqlite3_exec(ss->conn, "PRAGMA foreign_keys = ON", NULL, NULL,
	    NULL) != SQLITE_OK ||
	    sqlite3_exec(ss->conn, "PRAGMA synchronous = FULL", NULL, NULL,
	    NULL) != SQLITE_OK)
		return sql_sqlite_fail(ss, "open", error_r);
	/* journal_mode answers with the mode now in force, which stays
	 * "delete" when WAL is impossible (e.g. no shared memory). */
	if (sqlite3_prepare_v2(ss->conn, "PRAGMA journal_mode = WAL", -1,
	    &stmt, NULL) != SQLITE_OK)
		return sql_sqlite_fail(ss, "open", error_r);
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		(void)sql_sqlite_fail(ss, "open", error_r);
		sqlite3_finalize(stmt);
		return -1;
	}
	mode = (const char *)sqlite3_column_text(stmt, 0);
	ok = mode != NULL && strcmp(mode, "wal") == 0;
	if (!ok)
		(void)sql_set_error(&ss->db, error_r, "sqlite: cannot use WAL "
		    "mode (journal_mode is '%s')", mode == NULL ? "" : mode);
	sqlite3_finalize(stmt);
	return ok ? 0 : -1;
}

static void
sql_sqlite_close(struct sql_db *db)
{
	struct sql_sqlite *ss = sql_sqlite_db(db);

	sqlite3_finalize(ss->begin_read);
	sqlite3_finalize(ss->begin_write);
	sqlite3_finalize(ss->commit);
	sqlite3_finalize(ss->rollback);
	/* Last connection out checkpoints and removes the -wal file. */
	(void)sqlite3_close(ss->conn);
	free(ss);
}

static struct sql_db *
sql_sqlite_open(const char *path, const char **error_r)
{
	struct sql_sqlite *ss;
	int fd;

	if (*path == '\0') {
		sql_open_error(error_r, "sqlite: no database path given "
		    "(store = sqlite:PATH)");
		return NULL;
	}
	/*
	 * Create the file ourselves, 0600 whatever the umask: it holds
	 * password hashes. SQLite gives its -wal and -shm files the mode
	 * of the database. The directory is not created: a missing one is
	 * a mistake in the config, better reported than papered over.
	 *
	 * Only when it does not exist yet: SQLite's locks are POSIX
	 * advisory locks, which belong to the process, and closing any
	 * descriptor of the file drops them all, those of the other threads'
	 * connections included (SQLite's "How To Corrupt" 2.2). The daemon
	 * creates the file in its main thread before any worker opens it.
	 */
	if (access(path, F_OK) != 0) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOCTTY, 0600);
		if (fd < 0 && errno != EEXIST) {
			sql_open_error(error_r, "sqlite: cannot open '%s': %s",
			    path, strerror(errno));
			return NULL;
		}
		if (fd >= 0)
			(void)close(fd);
	}

	ss = xcalloc(1, sizeof(*ss));
	sql_db_init(&ss->db, &sql_driver_sqlite);
	/* NOMUTEX: a connection belongs to one thread (store.h). */
	if (sqlite3_open_v2(path, &ss->conn, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		sql_open_error(error_r, "sqlite: cannot open '%s': %s", path,
		    ss->conn != NULL ? sqlite3_errmsg(ss->conn) :
		    "out of memory");
		(void)sqlite3_close(ss->conn);
		str_deinit(&ss->db.error);
		free(ss);
		return NULL;
	}
	if (sql_sqlite_pragmas(ss, error_r) < 0) {
		sql_open_error(error_r, "%s (%s)", *error_r, path);
		str_deinit(&ss->db.error);
		sql_sqlite_close(&ss->db);
		return NULL;
	}
	return &ss->db;
}

const struct sql_driver sql_driver_sqlite = {
	.scheme = "sqlite",
	.open = sql_sqlite_open,
	.close = sql_sqlite_close,
	.type_name = sql_sqlite_type_name,
	.prepare = sql_sqlite_prepare,
	.finalize = sql_sqlite_finalize,
	.param_count = sql_sqlite_param_count,
	.bind_int64 = sql_sqlite_bind_int64,
	.bind_text = sql_sqlite_bind_text,
	.step = sql_sqlite_step,
	.col_int64 = sql_sqlite_col_int64,
	.col_text = sql_sqlite_col_text,
	.col_is_null = sql_sqlite_col_is_null,
	.changes = sql_sqlite_changes,
	.reset = sql_sqlite_reset,
	.begin = sql_sqlite_begin,
	.commit = sql_sqlite_commit,
	.rollback = sql_sqlite_rollback,
	.lock_name = sql_sqlite_lock_name,
	.exec_script = sql_sqlite_exec_script,
};
