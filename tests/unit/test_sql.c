/*
 * test_sql: the SQL layer under the store (src/store/sql.h) on both
 * drivers: SQLite always, PostgreSQL when SEKISHO_TEST_PGSQL holds a
 * conninfo (tests/e2e/test_sql.py sets it with a throwaway cluster).
 *
 * What a store query relies on: ?N placeholders (rewritten once for
 * PostgreSQL, a '?' inside a string literal left alone), a unique
 * violation reported as such (and nothing else as one), kept statements
 * prepared once per connection and reused, and on PostgreSQL kept
 * statements that still work after the server dropped the connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/sql.h"
#include "store/sql_private.h"
#include "store/store.h"
#include "store/store_private.h"
#include "unit.h"
#include "store_rows.h"

static void
test_rewrite(void)
{
	static const struct {
		const char		*in;
		enum sql_row_lock	 lock;
		const char		*out;
		int			 n;
	} rows[] = {
		{ "SELECT ?1", SQL_LOCK_NONE, "SELECT $1", 1 },
		{ "SELECT ?1, ?12, ?2", SQL_LOCK_NONE, "SELECT $1, $12, $2",
		    12 },
		{ "SELECT '?1', ?2", SQL_LOCK_NONE, "SELECT '?1', $2", 2 },
		{ "SELECT 'it''s ?3' || ?1", SQL_LOCK_NONE,
		    "SELECT 'it''s ?3' || $1", 1 },
		{ "SELECT \"?1\" FROM t WHERE a = ?1", SQL_LOCK_NONE,
		    "SELECT \"?1\" FROM t WHERE a = $1", 1 },
		{ "SELECT ? FROM t", SQL_LOCK_NONE, "SELECT ? FROM t", 0 },
		{ "SELECT id FROM a WHERE x = ?1", SQL_LOCK_UPDATE,
		    "SELECT id FROM a WHERE x = $1 FOR UPDATE", 1 },
		{ "SELECT id FROM a WHERE x = ?1", SQL_LOCK_NO_KEY_UPDATE,
		    "SELECT id FROM a WHERE x = $1 FOR NO KEY UPDATE", 1 },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int n = -1;
		char *out = sql_pgsql_rewrite(rows[i].in, rows[i].lock, &n);

		UNIT_CHECK_STR(out, rows[i].out);
		UNIT_CHECK_INT(n, rows[i].n);
		free(out);
	}
}

/* The kept statement of a query; the case ends when there is none. */
#define TEST_PREPARE(db, s, q, lock) do {				\
	(s) = sql_prepare_lock((db), (q), (lock), &error);		\
	UNIT_CHECK((s) != NULL);					\
	if ((s) == NULL) {						\
		fprintf(stderr, "prepare: %s\n", error);		\
		return;							\
	}								\
} while (0)

static const char q_insert[] = "INSERT INTO sql_test (k, v) VALUES (?1, ?2)";
static const char q_get[] = "SELECT v, n FROM sql_test WHERE k = ?1";
static const char q_literal[] =
    "SELECT count(*) FROM sql_test WHERE k = '?1' OR k = ?1";

/* The layer on one driver. */
static void
test_driver(const char *uri)
{
	const char *error = NULL;
	struct sql_db *db = sql_open(uri, &error);
	struct sql_stmt *s;
	unsigned int before;
	int64_t changed = -1;

	UNIT_CHECK(db != NULL);
	if (db == NULL) {
		fprintf(stderr, "%s: %s\n", uri, error);
		return;
	}
	printf("driver %s\n", sql_driver_name(db));
	UNIT_CHECK_INT(sql_exec_script(db, "DROP TABLE IF EXISTS sql_test;"
	    "CREATE TABLE sql_test (k TEXT PRIMARY KEY, v TEXT NOT NULL,"
	    " n INTEGER)", &error), 0);

	/* bind, step, changes; a NULL column */
	TEST_PREPARE(db, s, q_insert, SQL_LOCK_NONE);
	sql_bind_text(s, 1, "a");
	sql_bind_text(s, 2, "one");
	UNIT_CHECK_INT(sql_run(s, &changed, &error), 0);
	UNIT_CHECK_INT(changed, 1);
	TEST_PREPARE(db, s, q_get, SQL_LOCK_NONE);
	sql_bind_text(s, 1, "a");
	UNIT_CHECK_INT(sql_step(s, &error), 1);
	UNIT_CHECK_STR(sql_col_text(s, 0), "one");
	UNIT_CHECK(sql_col_is_null(s, 1));
	UNIT_CHECK_STR(sql_col_text(s, 1), "");
	UNIT_CHECK_INT(sql_step(s, &error), 0);
	sql_reset(s);

	/* a '?1' inside a literal is text, not a parameter */
	TEST_PREPARE(db, s, q_literal, SQL_LOCK_NONE);
	sql_bind_text(s, 1, "a");
	UNIT_CHECK_INT(sql_step(s, &error), 1);
	UNIT_CHECK_INT(sql_col_int64(s, 0), 1);
	sql_reset(s);

	/* a unique violation says so; a NOT NULL one does not */
	TEST_PREPARE(db, s, q_insert, SQL_LOCK_NONE);
	sql_bind_text(s, 1, "a");
	sql_bind_text(s, 2, "again");
	UNIT_CHECK_INT(sql_run(s, NULL, &error), -1);
	UNIT_CHECK(sql_unique_violation(db));
	TEST_PREPARE(db, s, q_insert, SQL_LOCK_NONE);
	sql_bind_text(s, 1, "b");
	sql_bind_null(s, 2);
	UNIT_CHECK_INT(sql_run(s, NULL, &error), -1);
	UNIT_CHECK(!sql_unique_violation(db));
	UNIT_CHECK(error != NULL && strncmp(error, sql_driver_name(db),
	    strlen(sql_driver_name(db))) == 0);

	/* kept: the same query again and again is prepared no more */
	before = sql_prepare_count(db);
	for (int i = 0; i < 5; i++) {
		TEST_PREPARE(db, s, q_get, SQL_LOCK_NONE);
		sql_bind_text(s, 1, "a");
		UNIT_CHECK_INT(sql_step(s, &error), 1);
		sql_reset(s);
	}
	UNIT_CHECK_INT(sql_prepare_count(db), before);

	/* a write transaction rolled back leaves nothing */
	UNIT_CHECK_INT(sql_begin(db, SQL_TX_WRITE, &error), 0);
	UNIT_CHECK_INT(sql_lock_name(db, 7001, &error), 0);
	TEST_PREPARE(db, s, q_insert, SQL_LOCK_NONE);
	sql_bind_text(s, 1, "c");
	sql_bind_text(s, 2, "three");
	UNIT_CHECK_INT(sql_run(s, NULL, &error), 0);
	UNIT_CHECK_INT(sql_rollback(db, 0), 0);
	TEST_PREPARE(db, s, q_get, SQL_LOCK_NONE);
	sql_bind_text(s, 1, "c");
	UNIT_CHECK_INT(sql_step(s, &error), 0);
	sql_reset(s);
	/* a row lock reads like the plain query */
	UNIT_CHECK_INT(sql_begin(db, SQL_TX_WRITE, &error), 0);
	TEST_PREPARE(db, s, q_get, SQL_LOCK_UPDATE);
	sql_bind_text(s, 1, "a");
	UNIT_CHECK_INT(sql_step(s, &error), 1);
	UNIT_CHECK_STR(sql_col_text(s, 0), "one");
	sql_reset(s);
	UNIT_CHECK_INT(sql_commit(db, &error), 0);
	sql_close(&db);
	UNIT_CHECK(db == NULL);
}

/*
 * PostgreSQL: the server ends our connection (pg_terminate_backend from
 * another one, as a restart or a failover would); the next call of a
 * kept statement works, prepared again on the new connection.
 */
static void
test_pgsql_reconnect(const char *uri)
{
	static const char q_pid[] = "SELECT pg_backend_pid()";
	static const char q_kill[] = "SELECT pg_terminate_backend(?1)";
	const char *error = NULL;
	struct sql_db *db = sql_open(uri, &error);
	struct sql_db *killer = sql_open(uri, &error);
	struct sql_stmt *s;
	int64_t pid, pid2;
	unsigned int before;

	UNIT_CHECK(db != NULL && killer != NULL);
	if (db == NULL || killer == NULL)
		return;
	TEST_PREPARE(db, s, q_pid, SQL_LOCK_NONE);
	UNIT_CHECK_INT(sql_step(s, &error), 1);
	pid = sql_col_int64(s, 0);
	sql_reset(s);
	TEST_PREPARE(db, s, q_get, SQL_LOCK_NONE);
	sql_bind_text(s, 1, "a");
	UNIT_CHECK_INT(sql_step(s, &error), 1);
	sql_reset(s);
	before = sql_prepare_count(db);

	TEST_PREPARE(killer, s, q_kill, SQL_LOCK_NONE);
	sql_bind_int64(s, 1, pid);
	UNIT_CHECK_INT(sql_step(s, &error), 1);
	sql_reset(s);
	usleep(200 * 1000);	/* the backend exits */

	TEST_PREPARE(db, s, q_get, SQL_LOCK_NONE);
	sql_bind_text(s, 1, "a");
	UNIT_CHECK_INT(sql_step(s, &error), 1);
	UNIT_CHECK_STR(sql_col_text(s, 0), "one");
	sql_reset(s);
	/* prepared again, once, on the new connection */
	UNIT_CHECK_INT(sql_prepare_count(db), before + 1);
	TEST_PREPARE(db, s, q_pid, SQL_LOCK_NONE);
	UNIT_CHECK_INT(sql_step(s, &error), 1);
	pid2 = sql_col_int64(s, 0);
	sql_reset(s);
	UNIT_CHECK(pid2 != pid);
	/* and a transaction after it */
	UNIT_CHECK_INT(sql_begin(db, SQL_TX_READ, &error), 0);
	TEST_PREPARE(db, s, q_get, SQL_LOCK_NONE);
	sql_bind_text(s, 1, "a");
	UNIT_CHECK_INT(sql_step(s, &error), 1);
	sql_reset(s);
	UNIT_CHECK_INT(sql_rollback(db, 0), 0);
	sql_close(&killer);
	sql_close(&db);
}

/* The store keeps its statements: a policy request's reads, many times,
 * prepare nothing after the first. */
static void
test_store_kept(const char *uri)
{
	const char *error = NULL;
	struct store *st = store_open(uri, &error);
	struct account_policy p;
	char *owner = NULL;
	int local;
	unsigned int before = 0;

	UNIT_CHECK(st != NULL);
	if (st == NULL)
		return;
	UNIT_CHECK_INT(store_init_schema(st, &error), 0);
	(void)store_domain_add(st, "kept.example", &error);
	(void)store_account_add(st, "a@kept.example", "$2y$x", &error);
	for (int i = 0; i < 10; i++) {
		if (i == 1)
			before = sql_prepare_count(store_sql(st));
		UNIT_CHECK_INT(store_read_begin(st, &error), 0);
		UNIT_CHECK_INT(store_policy_get(st, "a@kept.example", &p,
		    &error), 0);
		UNIT_CHECK_INT(store_resolve_recipient(st, "A@kept.example",
		    &owner, &local, &error), 0);
		UNIT_CHECK_STR(owner, "a@kept.example");
		free(owner);
		store_read_end(st);
	}
	UNIT_CHECK_INT(sql_prepare_count(store_sql(st)), before);
	store_close(&st);
}

/*
 * The counted END-OF-MESSAGE: the count and the submission log in one
 * write transaction. Both kept on success; a count over its limit keeps
 * the rest; a failed write undoes all of it.
 */
static void
test_store_write(const char *uri)
{
	const char *error = NULL;
	struct store *st = store_open(uri, &error);
	struct store_counter c = { "d:2026-12-06", 2, -1 };
	struct store_submission sub = {
		.queue_id = "00000000000000000W01", .time = 100,
		.account = "w@kept.example", .ip = "192.0.2.1", .rcpts = 1,
	};
	struct str out = STR_INIT;
	int64_t msgs = -1, rcpts = -1;
	size_t over = 99;

	UNIT_CHECK(st != NULL);
	if (st == NULL)
		return;
	UNIT_CHECK_INT(store_init_schema(st, &error), 0);
	(void)store_domain_add(st, "kept.example", &error);
	(void)store_account_add(st, "w@kept.example", "$2y$x", &error);

	/* counted and logged, one commit */
	UNIT_CHECK_INT(store_write_begin(st, &error), 0);
	UNIT_CHECK_INT(store_count_add(st, "w@kept.example", &c, 1, 1, 1,
	    &over, &error), 0);
	UNIT_CHECK_INT(store_submission_add(st, &sub, &error), 0);
	UNIT_CHECK_INT(store_write_end(st, 0, &error), 0);
	UNIT_CHECK_INT(store_count_get(st, "w@kept.example", c.period, &msgs,
	    &rcpts, &error), 0);
	UNIT_CHECK_INT(msgs, 1);
	UNIT_CHECK_INT(store_submission_find(st, sub.queue_id, NULL,
	    rows_submission, &out, &error), 0);
	/* the same queue id again keeps its first row */
	UNIT_CHECK_INT(store_submission_add(st, &sub, &error), 0);

	/* the caller gives up: nothing of it stays */
	UNIT_CHECK_INT(store_write_begin(st, &error), 0);
	UNIT_CHECK_INT(store_count_add(st, "w@kept.example", &c, 1, 1, 1,
	    &over, &error), 0);
	UNIT_CHECK_INT(store_write_end(st, -1, &error), -1);
	UNIT_CHECK_INT(store_count_get(st, "w@kept.example", c.period, &msgs,
	    &rcpts, &error), 0);
	UNIT_CHECK_INT(msgs, 1);

	/* a failed write inside undoes the count too */
	UNIT_CHECK_INT(store_write_begin(st, &error), 0);
	UNIT_CHECK_INT(store_count_add(st, "w@kept.example", &c, 1, 1, 1,
	    &over, &error), 0);
	UNIT_CHECK_INT(store_count_add(st, "nobody@kept.example", &c, 1, 1,
	    1, &over, &error), -1);
	UNIT_CHECK_INT(store_write_end(st, 0, &error), -1);
	UNIT_CHECK_INT(store_count_get(st, "w@kept.example", c.period, &msgs,
	    &rcpts, &error), 0);
	UNIT_CHECK_INT(msgs, 1);

	/* over the limit: not counted, the notice beside it stays */
	UNIT_CHECK_INT(store_count_add(st, "w@kept.example", &c, 1, 1, 1,
	    &over, &error), 0);
	UNIT_CHECK_INT(store_write_begin(st, &error), 0);
	UNIT_CHECK_INT(store_count_add(st, "w@kept.example", &c, 1, 1, 1,
	    &over, &error), 1);
	UNIT_CHECK_INT(over, 0);
	UNIT_CHECK_INT(store_notice_once(st, "limit:w", 100, &error), 0);
	UNIT_CHECK_INT(store_write_end(st, 0, &error), 0);
	UNIT_CHECK_INT(store_notice_once(st, "limit:w", 100, &error), 1);
	UNIT_CHECK_INT(store_count_get(st, "w@kept.example", c.period, &msgs,
	    &rcpts, &error), 0);
	UNIT_CHECK_INT(msgs, 2);
	str_deinit(&out);
	store_close(&st);
}

int
main(void)
{
	char dir[] = "/tmp/test_sql.XXXXXX", uri[300];
	const char *pg = getenv("SEKISHO_TEST_PGSQL");

	test_rewrite();
	UNIT_CHECK(mkdtemp(dir) != NULL);
	snprintf(uri, sizeof(uri), "sqlite:%s/sql.db", dir);
	test_driver(uri);
	test_store_kept(uri);
	test_store_write(uri);
	snprintf(uri, sizeof(uri), "%s/sql.db", dir);
	(void)unlink(uri);
	snprintf(uri, sizeof(uri), "%s/sql.db-wal", dir);
	(void)unlink(uri);
	snprintf(uri, sizeof(uri), "%s/sql.db-shm", dir);
	(void)unlink(uri);
	(void)rmdir(dir);
	if (pg != NULL && *pg != '\0') {
		test_driver(pg);
		test_pgsql_reconnect(pg);
		test_store_kept(pg);
		test_store_write(pg);
	} else
		printf("postgresql: not tested (SEKISHO_TEST_PGSQL unset)\n");
	UNIT_END();
}
