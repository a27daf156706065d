/*
 * store_sqlite: the account store in one SQLite file ("sqlite:PATH").
 *
 * WAL mode, so readers (the backend threads resolving recipients and
 * checking passwords, each with its own handle) never wait for the CLI
 * writing; synchronous=FULL, so an account change that returned is on
 * disk. Writers that check before they insert (an alias must not be an
 * account, ...) do it inside BEGIN IMMEDIATE, so two writers cannot both
 * pass the check. Every value is bound to a prepared statement, kept on
 * the handle; no SQL is ever built from text.
 *
 * The schema carries its version; migrations[] below is how it grows.
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
#include "store.h"
#include "store_impl.h"
#include "store_sqlite.h"

#define STORE_SQLITE_BUSY_MS	5000

/*
 * migrations[i] takes the schema from version i to i + 1. Append, never
 * edit: a database that ran a step does not run it again.
 */
static const char *const store_sqlite_migrations[] = {
	/* 1: domains, accounts, aliases. Account ids are AUTOINCREMENT so
	 * the id of a deleted account is never given to a new one (later
	 * tables record events by account id). An alias keeps its domain,
	 * so a domain cannot be deleted from under it. */
	"CREATE TABLE domains ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE);"
	"CREATE TABLE accounts ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  address TEXT NOT NULL UNIQUE,"
	"  domain_id INTEGER NOT NULL REFERENCES domains(id),"
	"  password_hash TEXT NOT NULL,"
	"  suspended INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),"
	"  suspend_reason TEXT,"
	"  created INTEGER NOT NULL);"
	"CREATE INDEX accounts_domain_id ON accounts(domain_id);"
	"CREATE TABLE aliases ("
	"  id INTEGER PRIMARY KEY,"
	"  alias TEXT NOT NULL UNIQUE,"
	"  domain_id INTEGER NOT NULL REFERENCES domains(id),"
	"  account_id INTEGER NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE);"
	"CREATE INDEX aliases_domain_id ON aliases(domain_id);"
	"CREATE INDEX aliases_account_id ON aliases(account_id);",
	/* 2: APOP secrets (RFC 1939 7), a row only for accounts that turn
	 * APOP on. The value is sealed by the caller (src/pop3/apop.h) and
	 * is never the login password hash, which stays a crypt(3) hash. */
	"CREATE TABLE apop_secrets ("
	"  account_id INTEGER PRIMARY KEY"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  sealed TEXT NOT NULL);",
	/* 3: the sending policy (store_sqlite_policy.c): overseas
	 * permission, limit overrides, send counters, events, notices sent,
	 * the submission log and authentication throttling. Events and
	 * submissions keep the address, not the id: the abuse desk needs
	 * them after an account is gone. */
	"ALTER TABLE accounts ADD COLUMN overseas_until INTEGER NOT NULL"
	"  DEFAULT 0;"
	"CREATE TABLE account_limits ("
	"  account_id INTEGER PRIMARY KEY"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  msgs_day INTEGER, rcpts_day INTEGER, rcpts_hour INTEGER,"
	"  rcpts_msg INTEGER, overseas_rcpts_day INTEGER,"
	"  any_sender INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE send_counters ("
	"  account_id INTEGER NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  period TEXT NOT NULL,"
	"  msgs INTEGER NOT NULL DEFAULT 0,"
	"  rcpts INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (account_id, period));"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY,"
	"  time INTEGER NOT NULL, account TEXT, type TEXT NOT NULL,"
	"  ip TEXT, country TEXT, detail TEXT);"
	"CREATE INDEX events_account_time ON events(account, time);"
	"CREATE INDEX events_time ON events(time);"
	"CREATE TABLE notices (key TEXT PRIMARY KEY, time INTEGER NOT NULL);"
	"CREATE TABLE submissions ("
	"  queue_id TEXT PRIMARY KEY, message_id TEXT,"
	"  time INTEGER NOT NULL, account TEXT NOT NULL, ip TEXT,"
	"  country TEXT, tls TEXT, rcpts INTEGER NOT NULL,"
	"  size INTEGER NOT NULL, overseas INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX submissions_message_id ON submissions(message_id);"
	"CREATE INDEX submissions_account_time ON submissions(account, time);"
	"CREATE TABLE auth_throttle ("
	"  key TEXT PRIMARY KEY, failures INTEGER NOT NULL,"
	"  window_start INTEGER NOT NULL,"
	"  locked_until INTEGER NOT NULL DEFAULT 0);",
	/* 4: per-account trusted relay name suffixes (docs/policy.md) */
	"ALTER TABLE account_limits ADD COLUMN relay_names TEXT;",
	/* 5: what the nodes share beyond accounts and policy
	 * (store_sqlite_shared.c): settings page sessions (by the SHA-256
	 * of the id), the API's token hashes, the admin pages' accounts,
	 * POP3 mailbox leases and POP-before-SMTP windows. */
	"CREATE TABLE portal_sessions ("
	"  id_hash TEXT PRIMARY KEY, account TEXT NOT NULL,"
	"  csrf TEXT NOT NULL, created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL);"
	"CREATE INDEX portal_sessions_account ON portal_sessions(account);"
	"CREATE INDEX portal_sessions_expires ON portal_sessions(expires);"
	"CREATE TABLE api_tokens ("
	"  name TEXT PRIMARY KEY, hash TEXT NOT NULL,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE admin_users ("
	"  name TEXT PRIMARY KEY, password_hash TEXT NOT NULL,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE pop3_locks ("
	"  mailbox TEXT PRIMARY KEY, node TEXT NOT NULL,"
	"  session TEXT NOT NULL, expires INTEGER NOT NULL);"
	"CREATE TABLE pop_before_smtp ("
	"  client TEXT PRIMARY KEY, account TEXT NOT NULL,"
	"  expires INTEGER NOT NULL);"
	"CREATE INDEX pop_before_smtp_expires ON pop_before_smtp(expires);",
	/* 6: where each login name logged in lately (policy.c, issue 13):
	 * an account's lock does not refuse its owner from there. Keyed by
	 * the name's text like the throttling rows (admins are no account);
	 * bounded per name and by age when a success is recorded. */
	"CREATE TABLE auth_trusted ("
	"  name TEXT NOT NULL, client TEXT NOT NULL,"
	"  last_ok INTEGER NOT NULL,"
	"  PRIMARY KEY (name, client));"
	"CREATE INDEX auth_trusted_last_ok ON auth_trusted(last_ok);",
};
#define STORE_SQLITE_VERSION \
	((int)(sizeof(store_sqlite_migrations) / sizeof(store_sqlite_migrations[0])))

enum store_sqlite_sql {
	SQL_BEGIN,
	SQL_COMMIT,
	SQL_DOMAIN_ID,
	SQL_DOMAIN_INSERT,
	SQL_DOMAIN_USAGE,
	SQL_DOMAIN_DELETE,
	SQL_DOMAIN_LIST,
	SQL_ACCOUNT_ID,
	SQL_ACCOUNT_INSERT,
	SQL_ACCOUNT_DELETE,
	SQL_ACCOUNT_SET_PASSWORD,
	SQL_ACCOUNT_SET_SUSPENDED,
	SQL_ACCOUNT_GET,
	SQL_ACCOUNT_LIST,
	SQL_ACCOUNT_LIST_DOMAIN,
	SQL_ALIAS_TARGET,
	SQL_ALIAS_INSERT,
	SQL_ALIAS_DELETE,
	SQL_ALIAS_LIST,
	SQL_ALIAS_LIST_ACCOUNT,
	SQL_APOP_SET,
	SQL_APOP_GET,
	SQL_APOP_CLEAR,
	SQL_COUNT
};

static const char *const store_sqlite_sql_text[SQL_COUNT] = {
	[SQL_BEGIN] = "BEGIN IMMEDIATE",
	[SQL_COMMIT] = "COMMIT",
	[SQL_DOMAIN_ID] = "SELECT id FROM domains WHERE name = ?1",
	[SQL_DOMAIN_INSERT] = "INSERT INTO domains (name) VALUES (?1)",
	[SQL_DOMAIN_USAGE] =
	    "SELECT (SELECT count(*) FROM accounts WHERE domain_id = ?1),"
	    " (SELECT count(*) FROM aliases WHERE domain_id = ?1)",
	[SQL_DOMAIN_DELETE] = "DELETE FROM domains WHERE id = ?1",
	[SQL_DOMAIN_LIST] = "SELECT name FROM domains ORDER BY name",
	[SQL_ACCOUNT_ID] = "SELECT id FROM accounts WHERE address = ?1",
	[SQL_ACCOUNT_INSERT] =
	    "INSERT INTO accounts (address, domain_id, password_hash,"
	    " suspended, suspend_reason, created)"
	    " VALUES (?1, ?2, ?3, 0, NULL, ?4)",
	[SQL_ACCOUNT_DELETE] = "DELETE FROM accounts WHERE address = ?1",
	[SQL_ACCOUNT_SET_PASSWORD] =
	    "UPDATE accounts SET password_hash = ?2 WHERE address = ?1",
	[SQL_ACCOUNT_SET_SUSPENDED] =
	    "UPDATE accounts SET suspended = ?2, suspend_reason = ?3"
	    " WHERE address = ?1",
	[SQL_ACCOUNT_GET] =
	    "SELECT id, address, password_hash, suspended, suspend_reason,"
	    " created FROM accounts WHERE address = ?1",
	[SQL_ACCOUNT_LIST] =
	    "SELECT address, suspended FROM accounts ORDER BY address",
	[SQL_ACCOUNT_LIST_DOMAIN] =
	    "SELECT address, suspended FROM accounts WHERE domain_id = ?1"
	    " ORDER BY address",
	[SQL_ALIAS_TARGET] =
	    "SELECT a.address FROM aliases l"
	    " JOIN accounts a ON a.id = l.account_id WHERE l.alias = ?1",
	[SQL_ALIAS_INSERT] =
	    "INSERT INTO aliases (alias, domain_id, account_id)"
	    " VALUES (?1, ?2, ?3)",
	[SQL_ALIAS_DELETE] = "DELETE FROM aliases WHERE alias = ?1",
	[SQL_ALIAS_LIST] =
	    "SELECT l.alias, a.address FROM aliases l"
	    " JOIN accounts a ON a.id = l.account_id ORDER BY l.alias",
	[SQL_ALIAS_LIST_ACCOUNT] =
	    "SELECT l.alias, a.address FROM aliases l"
	    " JOIN accounts a ON a.id = l.account_id"
	    " WHERE l.account_id = ?1 ORDER BY l.alias",
	[SQL_APOP_SET] =
	    "INSERT INTO apop_secrets (account_id, sealed)"
	    " SELECT id, ?2 FROM accounts WHERE address = ?1"
	    " ON CONFLICT (account_id) DO UPDATE SET sealed = excluded.sealed",
	[SQL_APOP_GET] =
	    "SELECT s.sealed FROM apop_secrets s"
	    " JOIN accounts a ON a.id = s.account_id WHERE a.address = ?1",
	[SQL_APOP_CLEAR] =
	    "DELETE FROM apop_secrets WHERE account_id ="
	    " (SELECT id FROM accounts WHERE address = ?1)",
};

struct store_sqlite {
	struct store	 st;	/* first: store.c sees only this */
	sqlite3		*db;
	sqlite3_stmt	*stmt[SQL_COUNT];	/* prepared on first use */
	int		 step_errcode;	/* extended code of the last failure */
	uint64_t	 busy_since;	/* ms: waiting for the write lock */
	uint64_t	 busy_gen;	/* writes seen at the last try */
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
 * wait is the same as before, STORE_SQLITE_BUSY_MS, then SQLITE_BUSY.
 */
static pthread_mutex_t store_sqlite_wait_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t store_sqlite_wait_cond = PTHREAD_COND_INITIALIZER;
static uint64_t store_sqlite_writes;	/* under the mutex */

static void
store_sqlite_write_done(void)
{
	pthread_mutex_lock(&store_sqlite_wait_mutex);
	store_sqlite_writes++;
	pthread_cond_broadcast(&store_sqlite_wait_cond);
	pthread_mutex_unlock(&store_sqlite_wait_mutex);
}

static int
store_sqlite_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	(void)arg;
	store_sqlite_write_done();
	/* This hook replaces sqlite3_wal_autocheckpoint's: do its work
	 * (a passive checkpoint past 1000 pages, SQLite's default). */
	if (pages >= 1000)
		(void)sqlite3_wal_checkpoint_v2(db, name,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

static void
store_sqlite_rollback_hook(void *arg)
{
	(void)arg;
	store_sqlite_write_done();
}

static uint64_t
store_sqlite_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int
store_sqlite_busy(void *arg, int count)
{
	struct store_sqlite *ss = arg;
	uint64_t now = store_sqlite_now_ms();
	struct timespec until;

	if (count == 0)
		ss->busy_since = now;
	else if (now - ss->busy_since >= STORE_SQLITE_BUSY_MS)
		return 0;
	pthread_mutex_lock(&store_sqlite_wait_mutex);
	/* a write ended since our last try: try again at once */
	if (count > 0 && store_sqlite_writes != ss->busy_gen) {
		ss->busy_gen = store_sqlite_writes;
		pthread_mutex_unlock(&store_sqlite_wait_mutex);
		return 1;
	}
	ss->busy_gen = store_sqlite_writes;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += 2 * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (store_sqlite_writes == ss->busy_gen)
		if (pthread_cond_timedwait(&store_sqlite_wait_cond,
		    &store_sqlite_wait_mutex, &until) != 0)
			break;
	ss->busy_gen = store_sqlite_writes;
	pthread_mutex_unlock(&store_sqlite_wait_mutex);
	return 1;
}

static struct store_sqlite *
store_sqlite_handle(struct store *st)
{
	return (struct store_sqlite *)st;
}

sqlite3 *
store_sqlite_db(struct store *st)
{
	return store_sqlite_handle(st)->db;
}

/* The database's own words, after what we were doing. -1. */
static int
store_sqlite_fail(struct store_sqlite *ss, const char *what,
    const char **error_r)
{
	store_set_error(&ss->st, error_r, "sqlite: %s: %s", what,
	    sqlite3_errmsg(ss->db));
	return -1;
}

/* The statement, reset and without bindings. NULL with error set. */
static sqlite3_stmt *
store_sqlite_stmt(struct store_sqlite *ss, enum store_sqlite_sql id,
    const char **error_r)
{
	sqlite3_stmt *stmt = ss->stmt[id];

	if (stmt == NULL) {
		if (sqlite3_prepare_v2(ss->db, store_sqlite_sql_text[id], -1,
		    &stmt, NULL) != SQLITE_OK) {
			(void)store_sqlite_fail(ss, "prepare", error_r);
			return NULL;
		}
		ss->stmt[id] = stmt;
		return stmt;
	}
	/* Reset after every use already; this only clears bindings that
	 * point at the caller's old strings. */
	(void)sqlite3_reset(stmt);
	(void)sqlite3_clear_bindings(stmt);
	return stmt;
}

/*
 * Step once: 1 row, 0 done, -1 error (error set, statement reset). The
 * caller resets after its last step, which also ends the implicit read
 * transaction so WAL checkpoints are not held back.
 */
static int
store_sqlite_step(struct store_sqlite *ss, sqlite3_stmt *stmt,
    const char *what, const char **error_r)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	ss->step_errcode = sqlite3_extended_errcode(ss->db);
	(void)store_sqlite_fail(ss, what, error_r);
	(void)sqlite3_reset(stmt);
	return -1;
}

/* Run a statement without result rows, with text ?1. */
static int
store_sqlite_exec_text(struct store_sqlite *ss, enum store_sqlite_sql id,
    const char *text, const char *what, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if ((stmt = store_sqlite_stmt(ss, id, error_r)) == NULL)
		return -1;
	if (text != NULL &&
	    sqlite3_bind_text(stmt, 1, text, -1, SQLITE_TRANSIENT) != SQLITE_OK)
		return store_sqlite_fail(ss, what, error_r);
	ret = store_sqlite_step(ss, stmt, what, error_r);
	(void)sqlite3_reset(stmt);
	return ret < 0 ? -1 : 0;
}

static int
store_sqlite_begin(struct store_sqlite *ss, const char **error_r)
{
	return store_sqlite_exec_text(ss, SQL_BEGIN, NULL, "begin", error_r);
}

static int
store_sqlite_commit(struct store_sqlite *ss, const char **error_r)
{
	return store_sqlite_exec_text(ss, SQL_COMMIT, NULL, "commit", error_r);
}

/* Undo after an error, keeping the error already set: it is the one
 * that says what went wrong. Returns ret, for tail calls. */
static int
store_sqlite_rollback(struct store_sqlite *ss, int ret)
{
	/* Some errors (SQLITE_FULL, ...) roll back by themselves. */
	if (!sqlite3_get_autocommit(ss->db))
		(void)sqlite3_exec(ss->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

/* The id found by an "SELECT id ... WHERE x = ?1" statement: 0 found,
 * 1 none, -1 error. */
static int
store_sqlite_find_id(struct store_sqlite *ss, enum store_sqlite_sql id,
    const char *key, int64_t *id_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if ((stmt = store_sqlite_stmt(ss, id, error_r)) == NULL)
		return -1;
	if (sqlite3_bind_text(stmt, 1, key, -1, SQLITE_TRANSIENT) != SQLITE_OK)
		return store_sqlite_fail(ss, "bind", error_r);
	ret = store_sqlite_step(ss, stmt, "look-up", error_r);
	if (ret == 1)
		*id_r = sqlite3_column_int64(stmt, 0);
	(void)sqlite3_reset(stmt);
	return ret < 0 ? -1 : ret == 1 ? 0 : 1;
}

/* The account an alias points to (xstrdup'd): 0, 1 none, -1 error. */
static int
store_sqlite_alias_target(struct store_sqlite *ss, const char *alias,
    char **target_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if ((stmt = store_sqlite_stmt(ss, SQL_ALIAS_TARGET, error_r)) == NULL)
		return -1;
	if (sqlite3_bind_text(stmt, 1, alias, -1, SQLITE_TRANSIENT) !=
	    SQLITE_OK)
		return store_sqlite_fail(ss, "bind", error_r);
	ret = store_sqlite_step(ss, stmt, "alias look-up", error_r);
	if (ret == 1)
		*target_r = xstrdup((const char *)sqlite3_column_text(stmt, 0));
	(void)sqlite3_reset(stmt);
	return ret < 0 ? -1 : ret == 1 ? 0 : 1;
}

/* 1 when the last failed step broke a UNIQUE constraint. */
static int
store_sqlite_is_unique_violation(struct store_sqlite *ss)
{
	return ss->step_errcode == SQLITE_CONSTRAINT_UNIQUE;
}

/* Rows changed by a one-statement UPDATE or DELETE keyed by ?1 = text:
 * 0 some, 1 none, -1 error. Binds ?2 and ?3 when given. */
static int
store_sqlite_change(struct store_sqlite *ss, enum store_sqlite_sql id,
    const char *key, const char *text2, int64_t int2, const char *text3,
    const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret, rc = SQLITE_OK;

	if ((stmt = store_sqlite_stmt(ss, id, error_r)) == NULL)
		return -1;
	rc = sqlite3_bind_text(stmt, 1, key, -1, SQLITE_TRANSIENT);
	if (rc == SQLITE_OK && text2 != NULL)
		rc = sqlite3_bind_text(stmt, 2, text2, -1, SQLITE_TRANSIENT);
	else if (rc == SQLITE_OK && int2 >= 0)
		rc = sqlite3_bind_int64(stmt, 2, int2);
	if (rc == SQLITE_OK && text3 != NULL)
		rc = sqlite3_bind_text(stmt, 3, text3, -1, SQLITE_TRANSIENT);
	if (rc != SQLITE_OK)
		return store_sqlite_fail(ss, "bind", error_r);
	ret = store_sqlite_step(ss, stmt, "update", error_r);
	(void)sqlite3_reset(stmt);
	if (ret < 0)
		return -1;
	return sqlite3_changes(ss->db) > 0 ? 0 : 1;
}

/* ---- open, close, schema -------------------------------------------- */

static int
store_sqlite_pragmas(struct store_sqlite *ss, const char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	const char *mode;
	int ok;

	(void)sqlite3_wal_hook(ss->db, store_sqlite_wal_hook, NULL);
	(void)sqlite3_rollback_hook(ss->db, store_sqlite_rollback_hook, NULL);
	if (sqlite3_busy_handler(ss->db, store_sqlite_busy, ss) != SQLITE_OK ||
	    sqlite3_exec(ss->db, "PRAGMA foreign_keys = ON", NULL, NULL,
	    NULL) != SQLITE_OK ||
	    sqlite3_exec(ss->db, "PRAGMA synchronous = FULL", NULL, NULL,
	    NULL) != SQLITE_OK)
		return store_sqlite_fail(ss, "open", error_r);
	/* journal_mode answers with the mode now in force, which stays
	 * "delete" when WAL is impossible (e.g. no shared memory). */
	if (sqlite3_prepare_v2(ss->db, "PRAGMA journal_mode = WAL", -1, &stmt,
	    NULL) != SQLITE_OK)
		return store_sqlite_fail(ss, "open", error_r);
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		(void)store_sqlite_fail(ss, "open", error_r);
		sqlite3_finalize(stmt);
		return -1;
	}
	mode = (const char *)sqlite3_column_text(stmt, 0);
	ok = mode != NULL && strcmp(mode, "wal") == 0;
	if (!ok)
		store_set_error(&ss->st, error_r, "sqlite: cannot use WAL "
		    "mode (journal_mode is '%s')", mode == NULL ? "" : mode);
	sqlite3_finalize(stmt);
	return ok ? 0 : -1;
}

static void
store_sqlite_close(struct store *st)
{
	struct store_sqlite *ss = store_sqlite_handle(st);

	for (size_t i = 0; i < SQL_COUNT; i++)
		sqlite3_finalize(ss->stmt[i]);
	/* Last handle out checkpoints and removes the -wal file. */
	(void)sqlite3_close(ss->db);
	free(ss);
}

static struct store *
store_sqlite_open(const char *path, const char **error_r)
{
	struct store_sqlite *ss;
	int fd;

	if (*path == '\0') {
		store_open_error(error_r, "sqlite: no database path given "
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
			store_open_error(error_r, "sqlite: cannot open '%s': %s",
			    path, strerror(errno));
			return NULL;
		}
		if (fd >= 0)
			(void)close(fd);
	}

	ss = xcalloc(1, sizeof(*ss));
	store_base_init(&ss->st, &store_sqlite_ops);
	/* NOMUTEX: a handle belongs to one thread (store.h). */
	if (sqlite3_open_v2(path, &ss->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		store_open_error(error_r, "sqlite: cannot open '%s': %s", path,
		    ss->db != NULL ? sqlite3_errmsg(ss->db) : "out of memory");
		(void)sqlite3_close(ss->db);
		str_deinit(&ss->st.error);
		free(ss);
		return NULL;
	}
	if (store_sqlite_pragmas(ss, error_r) < 0) {
		store_open_error(error_r, "%s (%s)", *error_r, path);
		str_deinit(&ss->st.error);
		store_sqlite_close(&ss->st);
		return NULL;
	}
	return &ss->st;
}

static int
store_sqlite_schema_version(struct store_sqlite *ss, int *version_r,
    const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (sqlite3_prepare_v2(ss->db, "SELECT max(version) FROM "
	    "schema_version", -1, &stmt, NULL) != SQLITE_OK)
		return store_sqlite_fail(ss, "schema", error_r);
	ret = store_sqlite_step(ss, stmt, "schema", error_r);
	if (ret == 1)
		*version_r = sqlite3_column_int(stmt, 0);	/* NULL: 0 */
	sqlite3_finalize(stmt);
	return ret < 0 ? -1 : 0;
}

static int
store_sqlite_set_version(struct store_sqlite *ss, int version,
    const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (sqlite3_exec(ss->db, "DELETE FROM schema_version", NULL, NULL,
	    NULL) != SQLITE_OK)
		return store_sqlite_fail(ss, "schema", error_r);
	if (sqlite3_prepare_v2(ss->db, "INSERT INTO schema_version (version)"
	    " VALUES (?1)", -1, &stmt, NULL) != SQLITE_OK)
		return store_sqlite_fail(ss, "schema", error_r);
	if (sqlite3_bind_int(stmt, 1, version) != SQLITE_OK)
		ret = store_sqlite_fail(ss, "schema", error_r);
	else
		ret = store_sqlite_step(ss, stmt, "schema", error_r);
	sqlite3_finalize(stmt);
	return ret < 0 ? -1 : 0;
}

static int
store_sqlite_init_schema(struct store *st, const char **error_r)
{
	struct store_sqlite *ss = store_sqlite_handle(st);
	int version = 0;

	/* IMMEDIATE: two processes starting at once migrate once. */
	if (store_sqlite_begin(ss, error_r) < 0)
		return -1;
	if (sqlite3_exec(ss->db, "CREATE TABLE IF NOT EXISTS schema_version "
	    "(version INTEGER NOT NULL)", NULL, NULL, NULL) != SQLITE_OK) {
		(void)store_sqlite_fail(ss, "schema", error_r);
		return store_sqlite_rollback(ss, -1);
	}
	if (store_sqlite_schema_version(ss, &version, error_r) < 0)
		return store_sqlite_rollback(ss, -1);
	if (version > STORE_SQLITE_VERSION) {
		store_set_error(st, error_r, "sqlite: database schema version "
		    "%d is newer than this sekisho knows (%d)", version,
		    STORE_SQLITE_VERSION);
		return store_sqlite_rollback(ss, -1);
	}
	if (version == STORE_SQLITE_VERSION)
		return store_sqlite_commit(ss, error_r);
	for (int v = version; v < STORE_SQLITE_VERSION; v++) {
		if (sqlite3_exec(ss->db, store_sqlite_migrations[v], NULL,
		    NULL, NULL) != SQLITE_OK) {
			store_set_error(st, error_r, "sqlite: schema upgrade "
			    "to version %d: %s", v + 1, sqlite3_errmsg(ss->db));
			return store_sqlite_rollback(ss, -1);
		}
	}
	if (store_sqlite_set_version(ss, STORE_SQLITE_VERSION, error_r) < 0)
		return store_sqlite_rollback(ss, -1);
	if (store_sqlite_commit(ss, error_r) < 0)
		return store_sqlite_rollback(ss, -1);
	return 0;
}

static int
store_sqlite_version(struct store *st, int *version_r, const char **error_r)
{
	return store_sqlite_schema_version(store_sqlite_handle(st), version_r,
	    error_r);
}

/* ---- domains -------------------------------------------------------- */

static int
store_sqlite_domain_add(struct store *st, const char *domain,
    const char **error_r)
{
	struct store_sqlite *ss = store_sqlite_handle(st);

	if (store_sqlite_exec_text(ss, SQL_DOMAIN_INSERT, domain,
	    "domain add", error_r) < 0) {
		if (store_sqlite_is_unique_violation(ss))
			store_set_error(st, error_r, STORE_ERR_DOMAIN_EXISTS,
			    domain);
		return -1;
	}
	return 0;
}

static int
store_sqlite_domain_del(struct store *st, const char *domain,
    const char **error_r)
{
	struct store_sqlite *ss = store_sqlite_handle(st);
	sqlite3_stmt *stmt;
	long long accounts = 0, aliases = 0;
	int64_t id;
	int ret;

	if (store_sqlite_begin(ss, error_r) < 0)
		return -1;
	ret = store_sqlite_find_id(ss, SQL_DOMAIN_ID, domain, &id, error_r);
	if (ret != 0) {
		if (ret == 1)
			store_set_error(st, error_r, STORE_ERR_NO_DOMAIN,
			    domain);
		return store_sqlite_rollback(ss, ret);
	}
	if ((stmt = store_sqlite_stmt(ss, SQL_DOMAIN_USAGE, error_r)) == NULL)
		return store_sqlite_rollback(ss, -1);
	if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK) {
		(void)store_sqlite_fail(ss, "bind", error_r);
		return store_sqlite_rollback(ss, -1);
	}
	if ((ret = store_sqlite_step(ss, stmt, "domain del", error_r)) < 0)
		return store_sqlite_rollback(ss, -1);
	if (ret == 1) {
		accounts = sqlite3_column_int64(stmt, 0);
		aliases = sqlite3_column_int64(stmt, 1);
	}
	(void)sqlite3_reset(stmt);
	if (accounts > 0 || aliases > 0) {
		store_set_error(st, error_r, STORE_ERR_DOMAIN_USED, domain,
		    accounts, aliases);
		return store_sqlite_rollback(ss, -1);
	}
	if ((stmt = store_sqlite_stmt(ss, SQL_DOMAIN_DELETE, error_r)) == NULL)
		return store_sqlite_rollback(ss, -1);
	if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK) {
		(void)store_sqlite_fail(ss, "bind", error_r);
		return store_sqlite_rollback(ss, -1);
	}
	ret = store_sqlite_step(ss, stmt, "domain del", error_r);
	(void)sqlite3_reset(stmt);
	if (ret < 0 || store_sqlite_commit(ss, error_r) < 0)
		return store_sqlite_rollback(ss, -1);
	return 0;
}

static int
store_sqlite_domain_exists(struct store *st, const char *domain,
    const char **error_r)
{
	int64_t id;

	return store_sqlite_find_id(store_sqlite_handle(st), SQL_DOMAIN_ID,
	    domain, &id, error_r);
}

static int
store_sqlite_domain_list(struct store *st, struct str *out,
    const char **error_r)
{
	struct store_sqlite *ss = store_sqlite_handle(st);
	sqlite3_stmt *stmt;
	int ret;

	if ((stmt = store_sqlite_stmt(ss, SQL_DOMAIN_LIST, error_r)) == NULL)
		return -1;
	while ((ret = store_sqlite_step(ss, stmt, "domain list",
	    error_r)) == 1) {
		str_append(out, (const char *)sqlite3_column_text(stmt, 0));
		str_append_c(out, '\n');
	}
	(void)sqlite3_reset(stmt);
	return ret < 0 ? -1 : 0;
}

/* ---- accounts ------------------------------------------------------- */

static int
store_sqlite_account_add(struct store *st, const char *address,
    const char *password_hash, const char **error_r)
{
	struct store_sqlite *ss = store_sqlite_handle(st);
	const char *domain = store_address_domain(address);
	sqlite3_stmt *stmt;
	char *target = NULL;
	int64_t domain_id;
	int ret;

	if (store_sqlite_begin(ss, error_r) < 0)
		return -1;
	ret = store_sqlite_find_id(ss, SQL_DOMAIN_ID, domain, &domain_id,
	    error_r);
	if (ret != 0) {
		if (ret == 1)
			store_set_error(st, error_r, STORE_ERR_NO_DOMAIN,
			    domain);
		return store_sqlite_rollback(ss, -1);
	}
	ret = store_sqlite_alias_target(ss, address, &target, error_r);
	free(target);
	if (ret != 1) {
		if (ret == 0)
			store_set_error(st, error_r, STORE_ERR_IS_ALIAS,
			    address);
		return store_sqlite_rollback(ss, -1);
	}
	if ((stmt = store_sqlite_stmt(ss, SQL_ACCOUNT_INSERT, error_r)) ==
	    NULL)
		return store_sqlite_rollback(ss, -1);
	if (sqlite3_bind_text(stmt, 1, address, -1, SQLITE_TRANSIENT) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 2, domain_id) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 3, password_hash, -1, SQLITE_TRANSIENT) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 4, (sqlite3_int64)time(NULL)) !=
	    SQLITE_OK) {
		(void)store_sqlite_fail(ss, "bind", error_r);
		return store_sqlite_rollback(ss, -1);
	}
	ret = store_sqlite_step(ss, stmt, "account add", error_r);
	if (ret < 0 && store_sqlite_is_unique_violation(ss))
		store_set_error(st, error_r, STORE_ERR_ACCOUNT_EXISTS, address);
	(void)sqlite3_reset(stmt);
	if (ret < 0 || store_sqlite_commit(ss, error_r) < 0)
		return store_sqlite_rollback(ss, -1);
	return 0;
}

static int
store_sqlite_account_del(struct store *st, const char *address,
    const char **error_r)
{
	/* The account's aliases go with it: ON DELETE CASCADE. */
	int ret = store_sqlite_change(store_sqlite_handle(st),
	    SQL_ACCOUNT_DELETE, address, NULL, -1, NULL, error_r);

	if (ret == 1)
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT, address);
	return ret;
}

static int
store_sqlite_account_set_password(struct store *st, const char *address,
    const char *password_hash, const char **error_r)
{
	int ret = store_sqlite_change(store_sqlite_handle(st),
	    SQL_ACCOUNT_SET_PASSWORD, address, password_hash, -1, NULL,
	    error_r);

	if (ret == 1)
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT, address);
	return ret;
}

static int
store_sqlite_account_set_suspended(struct store *st, const char *address,
    int suspended, const char *reason, const char **error_r)
{
	int ret = store_sqlite_change(store_sqlite_handle(st),
	    SQL_ACCOUNT_SET_SUSPENDED, address, NULL, suspended, reason,
	    error_r);

	if (ret == 1)
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT, address);
	return ret;
}

static char *
store_sqlite_column_strdup(sqlite3_stmt *stmt, int col)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);

	return text == NULL ? NULL : xstrdup((const char *)text);
}

static int
store_sqlite_account_get(struct store *st, const char *address,
    struct account *a, const char **error_r)
{
	struct store_sqlite *ss = store_sqlite_handle(st);
	sqlite3_stmt *stmt;
	int ret;

	if ((stmt = store_sqlite_stmt(ss, SQL_ACCOUNT_GET, error_r)) == NULL)
		return -1;
	if (sqlite3_bind_text(stmt, 1, address, -1, SQLITE_TRANSIENT) !=
	    SQLITE_OK)
		return store_sqlite_fail(ss, "bind", error_r);
	ret = store_sqlite_step(ss, stmt, "account get", error_r);
	if (ret == 1) {
		memset(a, 0, sizeof(*a));
		a->id = sqlite3_column_int64(stmt, 0);
		a->address = store_sqlite_column_strdup(stmt, 1);
		a->password_hash = store_sqlite_column_strdup(stmt, 2);
		a->suspended = sqlite3_column_int(stmt, 3) != 0;
		a->suspend_reason = store_sqlite_column_strdup(stmt, 4);
		a->created = sqlite3_column_int64(stmt, 5);
		if (a->password_hash == NULL)	/* NOT NULL in the schema */
			a->password_hash = xstrdup("");
	}
	(void)sqlite3_reset(stmt);
	return ret < 0 ? -1 : ret == 1 ? 0 : 1;
}

/* Run a list statement, appending "col0\tcol1\n" per row. */
static int
store_sqlite_list_pairs(struct store_sqlite *ss, sqlite3_stmt *stmt,
    const char *what, struct str *out, const char **error_r)
{
	int ret;

	while ((ret = store_sqlite_step(ss, stmt, what, error_r)) == 1) {
		str_append(out, (const char *)sqlite3_column_text(stmt, 0));
		str_append_c(out, '\t');
		str_append(out, (const char *)sqlite3_column_text(stmt, 1));
		str_append_c(out, '\n');
	}
	(void)sqlite3_reset(stmt);
	return ret < 0 ? -1 : 0;
}

/* A listing filtered by the id that key names (lookup finds it), or
 * all rows when key is NULL. 1 when key names nothing. */
static int
store_sqlite_list(struct store_sqlite *ss, enum store_sqlite_sql all,
    enum store_sqlite_sql by_id, enum store_sqlite_sql lookup,
    const char *key, const char *what, struct str *out, const char **error_r)
{
	sqlite3_stmt *stmt;
	int64_t id = 0;
	int ret;

	if (key != NULL) {
		ret = store_sqlite_find_id(ss, lookup, key, &id, error_r);
		if (ret != 0)
			return ret;
	}
	if ((stmt = store_sqlite_stmt(ss, key != NULL ? by_id : all,
	    error_r)) == NULL)
		return -1;
	if (key != NULL && sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK)
		return store_sqlite_fail(ss, "bind", error_r);
	return store_sqlite_list_pairs(ss, stmt, what, out, error_r);
}

static int
store_sqlite_account_list(struct store *st, const char *domain,
    struct str *out, const char **error_r)
{
	int ret = store_sqlite_list(store_sqlite_handle(st), SQL_ACCOUNT_LIST,
	    SQL_ACCOUNT_LIST_DOMAIN, SQL_DOMAIN_ID, domain, "account list",
	    out, error_r);

	if (ret == 1)
		store_set_error(st, error_r, STORE_ERR_NO_DOMAIN, domain);
	return ret;
}

/* ---- aliases -------------------------------------------------------- */

static int
store_sqlite_alias_add(struct store *st, const char *alias,
    const char *target, const char **error_r)
{
	struct store_sqlite *ss = store_sqlite_handle(st);
	const char *domain = store_address_domain(alias);
	sqlite3_stmt *stmt;
	int64_t domain_id, account_id;
	int ret;

	if (store_sqlite_begin(ss, error_r) < 0)
		return -1;
	ret = store_sqlite_find_id(ss, SQL_DOMAIN_ID, domain, &domain_id,
	    error_r);
	if (ret != 0) {
		if (ret == 1)
			store_set_error(st, error_r, STORE_ERR_NO_DOMAIN,
			    domain);
		return store_sqlite_rollback(ss, -1);
	}
	ret = store_sqlite_find_id(ss, SQL_ACCOUNT_ID, alias, &account_id,
	    error_r);
	if (ret != 1) {
		if (ret == 0)
			store_set_error(st, error_r, STORE_ERR_IS_ACCOUNT,
			    alias);
		return store_sqlite_rollback(ss, -1);
	}
	ret = store_sqlite_find_id(ss, SQL_ACCOUNT_ID, target, &account_id,
	    error_r);
	if (ret != 0) {
		if (ret == 1)
			store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT,
			    target);
		return store_sqlite_rollback(ss, -1);
	}
	if ((stmt = store_sqlite_stmt(ss, SQL_ALIAS_INSERT, error_r)) == NULL)
		return store_sqlite_rollback(ss, -1);
	if (sqlite3_bind_text(stmt, 1, alias, -1, SQLITE_TRANSIENT) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 2, domain_id) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 3, account_id) != SQLITE_OK) {
		(void)store_sqlite_fail(ss, "bind", error_r);
		return store_sqlite_rollback(ss, -1);
	}
	ret = store_sqlite_step(ss, stmt, "alias add", error_r);
	if (ret < 0 && store_sqlite_is_unique_violation(ss))
		store_set_error(st, error_r, STORE_ERR_ALIAS_EXISTS, alias);
	(void)sqlite3_reset(stmt);
	if (ret < 0 || store_sqlite_commit(ss, error_r) < 0)
		return store_sqlite_rollback(ss, -1);
	return 0;
}

static int
store_sqlite_alias_del(struct store *st, const char *alias,
    const char **error_r)
{
	int ret = store_sqlite_change(store_sqlite_handle(st),
	    SQL_ALIAS_DELETE, alias, NULL, -1, NULL, error_r);

	if (ret == 1)
		store_set_error(st, error_r, STORE_ERR_NO_ALIAS, alias);
	return ret;
}

static int
store_sqlite_alias_list(struct store *st, const char *target,
    struct str *out, const char **error_r)
{
	int ret = store_sqlite_list(store_sqlite_handle(st), SQL_ALIAS_LIST,
	    SQL_ALIAS_LIST_ACCOUNT, SQL_ACCOUNT_ID, target, "alias list",
	    out, error_r);

	if (ret == 1)
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT, target);
	return ret;
}

static int
store_sqlite_resolve_recipient(struct store *st, const char *address,
    char **account_r, int *domain_local_r, const char **error_r)
{
	struct store_sqlite *ss = store_sqlite_handle(st);
	int64_t id;
	int ret;

	ret = store_sqlite_find_id(ss, SQL_ACCOUNT_ID, address, &id, error_r);
	if (ret == 0) {
		*account_r = xstrdup(address);
		return 0;
	}
	if (ret < 0)
		return -1;
	ret = store_sqlite_alias_target(ss, address, account_r, error_r);
	if (ret != 1)
		return ret;
	ret = store_sqlite_find_id(ss, SQL_DOMAIN_ID,
	    store_address_domain(address), &id, error_r);
	if (ret < 0)
		return -1;
	*domain_local_r = ret == 0;
	return 1;
}

/* ---- APOP secrets --------------------------------------------------- */

static int
store_sqlite_apop_set(struct store *st, const char *address,
    const char *sealed, const char **error_r)
{
	int ret = store_sqlite_change(store_sqlite_handle(st), SQL_APOP_SET,
	    address, sealed, -1, NULL, error_r);

	if (ret == 1)
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT, address);
	return ret;
}

static int
store_sqlite_apop_get(struct store *st, const char *address,
    char **sealed_r, const char **error_r)
{
	struct store_sqlite *ss = store_sqlite_handle(st);
	sqlite3_stmt *stmt;
	int ret;

	if ((stmt = store_sqlite_stmt(ss, SQL_APOP_GET, error_r)) == NULL)
		return -1;
	if (sqlite3_bind_text(stmt, 1, address, -1, SQLITE_TRANSIENT) !=
	    SQLITE_OK)
		return store_sqlite_fail(ss, "bind", error_r);
	ret = store_sqlite_step(ss, stmt, "apop get", error_r);
	if (ret == 1)
		*sealed_r = store_sqlite_column_strdup(stmt, 0);
	(void)sqlite3_reset(stmt);
	if (ret == 1 && *sealed_r == NULL)	/* NOT NULL in the schema */
		ret = 0;
	return ret < 0 ? -1 : ret == 1 ? 0 : 1;
}

static int
store_sqlite_apop_clear(struct store *st, const char *address,
    const char **error_r)
{
	return store_sqlite_change(store_sqlite_handle(st), SQL_APOP_CLEAR,
	    address, NULL, -1, NULL, error_r);
}

const struct store_ops store_sqlite_ops = {
	.scheme = "sqlite",
	.open = store_sqlite_open,
	.close = store_sqlite_close,
	.init_schema = store_sqlite_init_schema,
	.domain_add = store_sqlite_domain_add,
	.domain_del = store_sqlite_domain_del,
	.domain_exists = store_sqlite_domain_exists,
	.domain_list = store_sqlite_domain_list,
	.account_add = store_sqlite_account_add,
	.account_del = store_sqlite_account_del,
	.account_set_password = store_sqlite_account_set_password,
	.account_set_suspended = store_sqlite_account_set_suspended,
	.account_get = store_sqlite_account_get,
	.account_list = store_sqlite_account_list,
	.alias_add = store_sqlite_alias_add,
	.alias_del = store_sqlite_alias_del,
	.alias_list = store_sqlite_alias_list,
	.resolve_recipient = store_sqlite_resolve_recipient,
	.apop_set = store_sqlite_apop_set,
	.apop_get = store_sqlite_apop_get,
	.apop_clear = store_sqlite_apop_clear,
	.policy_get = store_sqlite_policy_get,
	.policy_set_limits = store_sqlite_policy_set_limits,
	.overseas_set = store_sqlite_overseas_set,
	.count_add = store_sqlite_count_add,
	.count_get = store_sqlite_count_get,
	.event_add = store_sqlite_event_add,
	.event_list = store_sqlite_event_list,
	.notice_once = store_sqlite_notice_once,
	.submission_add = store_sqlite_submission_add,
	.submission_find = store_sqlite_submission_find,
	.submission_list = store_sqlite_submission_list,
	.throttle_get = store_sqlite_throttle_get,
	.throttle_fail = store_sqlite_throttle_fail,
	.throttle_clear = store_sqlite_throttle_clear,
	.trusted_seen = store_sqlite_trusted_seen,
	.trusted_get = store_sqlite_trusted_get,
	.schema_version = store_sqlite_version,
	.portal_session_add = store_sqlite_portal_session_add,
	.portal_session_get = store_sqlite_portal_session_get,
	.portal_session_touch = store_sqlite_portal_session_touch,
	.portal_session_del = store_sqlite_portal_session_del,
	.portal_session_del_account = store_sqlite_portal_session_del_account,
	.api_token_add = store_sqlite_api_token_add,
	.api_token_get = store_sqlite_api_token_get,
	.api_token_del = store_sqlite_api_token_del,
	.api_token_list = store_sqlite_api_token_list,
	.admin_add = store_sqlite_admin_add,
	.admin_set_password = store_sqlite_admin_set_password,
	.admin_get = store_sqlite_admin_get,
	.admin_del = store_sqlite_admin_del,
	.admin_list = store_sqlite_admin_list,
	.pop3_lock_take = store_sqlite_pop3_lock_take,
	.pop3_lock_refresh = store_sqlite_pop3_lock_refresh,
	.pop3_lock_release = store_sqlite_pop3_lock_release,
	.popbsmtp_set = store_sqlite_popbsmtp_set,
	.popbsmtp_get = store_sqlite_popbsmtp_get,
	.expire = store_sqlite_expire,
};
