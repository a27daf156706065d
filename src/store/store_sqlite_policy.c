/*
 * store_sqlite_policy: the sending-policy state in the SQLite store
 * (schema step 3 in store_sqlite.c): overseas permission, limit
 * overrides, send counters, events, notices, the submission log and
 * authentication throttling.
 *
 * The check-and-count of a send limit is one BEGIN IMMEDIATE
 * transaction: SQLite lets one writer in at a time, so two submissions
 * racing on one account see each other's counts and never pass a limit
 * together. Statements are prepared per call: these run a few times per
 * submission, not per byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../core/str.h"
#include "../core/xmalloc.h"
#include "store.h"
#include "store_impl.h"
#include "store_sqlite.h"

static const char *sp_col_text(sqlite3_stmt *stmt, int col);

static int
sp_fail(struct store *st, const char *what, const char **error_r)
{
	store_set_error(st, error_r, "sqlite: %s: %s", what,
	    sqlite3_errmsg(store_sqlite_db(st)));
	return -1;
}

static sqlite3_stmt *
sp_prepare(struct store *st, const char *sql, const char **error_r)
{
	sqlite3_stmt *stmt = NULL;

	if (sqlite3_prepare_v2(store_sqlite_db(st), sql, -1, &stmt, NULL) !=
	    SQLITE_OK) {
		(void)sp_fail(st, "prepare", error_r);
		sqlite3_finalize(stmt);
		return NULL;
	}
	return stmt;
}

static void
sp_bind_text(sqlite3_stmt *stmt, int i, const char *s)
{
	if (s == NULL)
		(void)sqlite3_bind_null(stmt, i);
	else
		(void)sqlite3_bind_text(stmt, i, s, -1, SQLITE_TRANSIENT);
}

/* Step once: 1 row, 0 done, -1 error (set). */
static int
sp_step(struct store *st, sqlite3_stmt *stmt, const char *what,
    const char **error_r)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return sp_fail(st, what, error_r);
}

static int
sp_exec(struct store *st, const char *sql, const char **error_r)
{
	if (sqlite3_exec(store_sqlite_db(st), sql, NULL, NULL, NULL) !=
	    SQLITE_OK)
		return sp_fail(st, sql, error_r);
	return 0;
}

static int
sp_rollback(struct store *st, int ret)
{
	if (!sqlite3_get_autocommit(store_sqlite_db(st)))
		(void)sqlite3_exec(store_sqlite_db(st), "ROLLBACK", NULL, NULL,
		    NULL);
	return ret;
}

/* 0 and the id, 1 no such account, -1 error. */
static int
sp_account_id(struct store *st, const char *address, int64_t *id_r,
    const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st,
	    "SELECT id FROM accounts WHERE address = ?1", error_r);
	int r;

	if (stmt == NULL)
		return -1;
	sp_bind_text(stmt, 1, address);
	r = sp_step(st, stmt, "account look-up", error_r);
	if (r == 1)
		*id_r = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	if (r == 0)
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT, address);
	return r < 0 ? -1 : r == 1 ? 0 : 1;
}

static int64_t
sp_col_limit(sqlite3_stmt *stmt, int col)
{
	return sqlite3_column_type(stmt, col) == SQLITE_NULL ? -1 :
	    sqlite3_column_int64(stmt, col);
}

int
store_sqlite_policy_get(struct store *st, const char *address,
    struct account_policy *p, const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st,
	    "SELECT a.overseas_until, l.msgs_day, l.rcpts_day, l.rcpts_hour,"
	    " l.rcpts_msg, l.overseas_rcpts_day, coalesce(l.any_sender, 0),"
	    " coalesce(l.relay_names, '')"
	    " FROM accounts a LEFT JOIN account_limits l"
	    " ON l.account_id = a.id WHERE a.address = ?1", error_r);
	int r;

	if (stmt == NULL)
		return -1;
	sp_bind_text(stmt, 1, address);
	r = sp_step(st, stmt, "policy look-up", error_r);
	if (r == 1) {
		p->overseas_until = sqlite3_column_int64(stmt, 0);
		p->limit_msgs_day = sp_col_limit(stmt, 1);
		p->limit_rcpts_day = sp_col_limit(stmt, 2);
		p->limit_rcpts_hour = sp_col_limit(stmt, 3);
		p->limit_rcpts_msg = sp_col_limit(stmt, 4);
		p->limit_overseas_rcpts_day = sp_col_limit(stmt, 5);
		p->any_sender = sqlite3_column_int(stmt, 6) != 0;
		xstrlcpy(p->relay_names, sp_col_text(stmt, 7),
		    sizeof(p->relay_names));
	}
	sqlite3_finalize(stmt);
	if (r == 0)
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT, address);
	return r < 0 ? -1 : r == 1 ? 0 : 1;
}

static void
sp_bind_limit(sqlite3_stmt *stmt, int i, int64_t v)
{
	if (v < 0)
		(void)sqlite3_bind_null(stmt, i);
	else
		(void)sqlite3_bind_int64(stmt, i, v);
}

int
store_sqlite_policy_set_limits(struct store *st, const char *address,
    const struct account_policy *p, const char **error_r)
{
	sqlite3_stmt *stmt;
	int64_t id;
	int r;

	if ((r = sp_account_id(st, address, &id, error_r)) != 0)
		return r;
	stmt = sp_prepare(st, "INSERT INTO account_limits (account_id,"
	    " msgs_day, rcpts_day, rcpts_hour, rcpts_msg, overseas_rcpts_day,"
	    " any_sender, relay_names) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
	    " ON CONFLICT (account_id) DO UPDATE SET msgs_day = ?2,"
	    " rcpts_day = ?3, rcpts_hour = ?4, rcpts_msg = ?5,"
	    " overseas_rcpts_day = ?6, any_sender = ?7, relay_names = ?8",
	    error_r);
	if (stmt == NULL)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, id);
	sp_bind_limit(stmt, 2, p->limit_msgs_day);
	sp_bind_limit(stmt, 3, p->limit_rcpts_day);
	sp_bind_limit(stmt, 4, p->limit_rcpts_hour);
	sp_bind_limit(stmt, 5, p->limit_rcpts_msg);
	sp_bind_limit(stmt, 6, p->limit_overseas_rcpts_day);
	(void)sqlite3_bind_int(stmt, 7, p->any_sender ? 1 : 0);
	sp_bind_text(stmt, 8, p->relay_names);
	r = sp_step(st, stmt, "set limits", error_r);
	sqlite3_finalize(stmt);
	return r < 0 ? -1 : 0;
}

int
store_sqlite_overseas_set(struct store *st, const char *address,
    int64_t until, const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st,
	    "UPDATE accounts SET overseas_until = ?2 WHERE address = ?1",
	    error_r);
	int r;

	if (stmt == NULL)
		return -1;
	sp_bind_text(stmt, 1, address);
	(void)sqlite3_bind_int64(stmt, 2, until);
	r = sp_step(st, stmt, "set overseas", error_r);
	sqlite3_finalize(stmt);
	if (r < 0)
		return -1;
	if (sqlite3_changes(store_sqlite_db(st)) == 0) {
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT, address);
		return 1;
	}
	return 0;
}

/* Counter values inside the current transaction. */
static int
sp_counter_read(struct store *st, int64_t id, const char *period,
    int64_t *msgs_r, int64_t *rcpts_r, const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st, "SELECT msgs, rcpts FROM"
	    " send_counters WHERE account_id = ?1 AND period = ?2", error_r);
	int r;

	*msgs_r = *rcpts_r = 0;
	if (stmt == NULL)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, id);
	sp_bind_text(stmt, 2, period);
	r = sp_step(st, stmt, "counter read", error_r);
	if (r == 1) {
		*msgs_r = sqlite3_column_int64(stmt, 0);
		*rcpts_r = sqlite3_column_int64(stmt, 1);
	}
	sqlite3_finalize(stmt);
	return r < 0 ? -1 : 0;
}

int
store_sqlite_count_add(struct store *st, const char *address,
    const struct store_counter *c, size_t n, int64_t msgs, int64_t rcpts,
    size_t *over_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int64_t id;
	int r;

	if ((r = sp_account_id(st, address, &id, error_r)) != 0)
		return -1;
	if (sp_exec(st, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	if (msgs > 0 || rcpts > 0) {
		for (size_t i = 0; i < n; i++) {
			int64_t m, rc;

			if (sp_counter_read(st, id, c[i].period, &m, &rc,
			    error_r) < 0)
				return sp_rollback(st, -1);
			if ((c[i].max_msgs >= 0 && m + msgs > c[i].max_msgs) ||
			    (c[i].max_rcpts >= 0 &&
			    rc + rcpts > c[i].max_rcpts)) {
				*over_r = i;
				return sp_rollback(st, 1);
			}
		}
	}
	stmt = sp_prepare(st, "INSERT INTO send_counters (account_id, period,"
	    " msgs, rcpts) VALUES (?1, ?2, max(?3, 0), max(?4, 0))"
	    " ON CONFLICT (account_id, period) DO UPDATE SET"
	    " msgs = max(msgs + ?3, 0), rcpts = max(rcpts + ?4, 0)", error_r);
	if (stmt == NULL)
		return sp_rollback(st, -1);
	for (size_t i = 0; i < n; i++) {
		(void)sqlite3_reset(stmt);
		(void)sqlite3_bind_int64(stmt, 1, id);
		sp_bind_text(stmt, 2, c[i].period);
		(void)sqlite3_bind_int64(stmt, 3, msgs);
		(void)sqlite3_bind_int64(stmt, 4, rcpts);
		if (sp_step(st, stmt, "count", error_r) < 0) {
			sqlite3_finalize(stmt);
			return sp_rollback(st, -1);
		}
	}
	sqlite3_finalize(stmt);
	if (sp_exec(st, "COMMIT", error_r) < 0)
		return sp_rollback(st, -1);
	return 0;
}

int
store_sqlite_count_get(struct store *st, const char *address,
    const char *period, int64_t *msgs_r, int64_t *rcpts_r,
    const char **error_r)
{
	int64_t id;
	int r;

	*msgs_r = *rcpts_r = 0;
	if ((r = sp_account_id(st, address, &id, error_r)) != 0)
		return r;
	return sp_counter_read(st, id, period, msgs_r, rcpts_r, error_r);
}

int
store_sqlite_event_add(struct store *st, const struct store_event *e,
    const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st, "INSERT INTO events (time,"
	    " account, type, ip, country, detail)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", error_r);
	int r;

	if (stmt == NULL)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, e->time);
	sp_bind_text(stmt, 2, e->account);
	sp_bind_text(stmt, 3, e->type);
	sp_bind_text(stmt, 4, e->ip);
	sp_bind_text(stmt, 5, e->country);
	sp_bind_text(stmt, 6, e->detail);
	r = sp_step(st, stmt, "event", error_r);
	sqlite3_finalize(stmt);
	return r < 0 ? -1 : 0;
}

static const char *
sp_col_text(sqlite3_stmt *stmt, int col)
{
	const unsigned char *t = sqlite3_column_text(stmt, col);

	return t == NULL ? "" : (const char *)t;
}

/* Rows as tab-separated lines; the query is ordered newest first and the
 * lines are emitted oldest first. */
static int
sp_rows(struct store *st, sqlite3_stmt *stmt, int ncol, struct str *out,
    const char **error_r)
{
	struct str *rows = NULL;
	size_t nrows = 0;
	int r;

	while ((r = sp_step(st, stmt, "list", error_r)) == 1) {
		rows = xreallocarray(rows, nrows + 1, sizeof(*rows));
		str_init(&rows[nrows]);
		for (int c = 0; c < ncol; c++) {
			if (c > 0)
				str_append_c(&rows[nrows], '\t');
			/* a TAB or line end inside a value would cut the
			 * row differently (a forged row) */
			for (const char *v = sp_col_text(stmt, c); *v != '\0';
			    v++)
				str_append_c(&rows[nrows], *v == '\t' ||
				    *v == '\n' || *v == '\r' ? ' ' : *v);
		}
		str_append_c(&rows[nrows], '\n');
		nrows++;
	}
	for (size_t i = nrows; i-- > 0;) {
		str_append_n(out, str_c(&rows[i]), rows[i].len);
		str_deinit(&rows[i]);
	}
	free(rows);
	return r < 0 ? -1 : 0;
}

int
store_sqlite_event_list(struct store *st, const char *account, int64_t since,
    int limit, struct str *out, const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st, account != NULL ?
	    "SELECT time, account, type, ip, country, detail FROM events"
	    " WHERE account = ?1 AND time >= ?2 ORDER BY time DESC, id DESC"
	    " LIMIT ?3" :
	    "SELECT time, account, type, ip, country, detail FROM events"
	    " WHERE time >= ?2 ORDER BY time DESC, id DESC LIMIT ?3", error_r);
	int r;

	if (stmt == NULL)
		return -1;
	if (account != NULL)
		sp_bind_text(stmt, 1, account);
	(void)sqlite3_bind_int64(stmt, 2, since);
	(void)sqlite3_bind_int(stmt, 3, limit > 0 ? limit : 1000);
	r = sp_rows(st, stmt, 6, out, error_r);
	sqlite3_finalize(stmt);
	return r;
}

int
store_sqlite_notice_once(struct store *st, const char *key, int64_t time,
    const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st, "INSERT INTO notices (key, time)"
	    " VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING", error_r);
	int r;

	if (stmt == NULL)
		return -1;
	sp_bind_text(stmt, 1, key);
	(void)sqlite3_bind_int64(stmt, 2, time);
	r = sp_step(st, stmt, "notice", error_r);
	sqlite3_finalize(stmt);
	if (r < 0)
		return -1;
	return sqlite3_changes(store_sqlite_db(st)) == 1 ? 0 : 1;
}

int
store_sqlite_submission_add(struct store *st, const struct store_submission *s,
    const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st, "INSERT INTO submissions"
	    " (queue_id, message_id, time, account, ip, country, tls, rcpts,"
	    " size, overseas) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	    error_r);
	int r;

	if (stmt == NULL)
		return -1;
	sp_bind_text(stmt, 1, s->queue_id);
	sp_bind_text(stmt, 2, s->message_id);
	(void)sqlite3_bind_int64(stmt, 3, s->time);
	sp_bind_text(stmt, 4, s->account);
	sp_bind_text(stmt, 5, s->ip);
	sp_bind_text(stmt, 6, s->country);
	sp_bind_text(stmt, 7, s->tls);
	(void)sqlite3_bind_int64(stmt, 8, s->rcpts);
	(void)sqlite3_bind_int64(stmt, 9, s->size);
	(void)sqlite3_bind_int(stmt, 10, s->overseas ? 1 : 0);
	r = sp_step(st, stmt, "submission", error_r);
	sqlite3_finalize(stmt);
	return r < 0 ? -1 : 0;
}

#define SP_SUBMISSION_COLS \
	"queue_id, message_id, time, account, ip, country, tls, rcpts, size," \
	" overseas"

int
store_sqlite_submission_find(struct store *st, const char *queue_id,
    const char *message_id, struct str *out, const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st, "SELECT " SP_SUBMISSION_COLS
	    " FROM submissions WHERE queue_id = ?1 OR message_id = ?2"
	    " ORDER BY time DESC LIMIT 100", error_r);
	size_t before = out->len;
	int r;

	if (stmt == NULL)
		return -1;
	sp_bind_text(stmt, 1, queue_id);
	sp_bind_text(stmt, 2, message_id);
	r = sp_rows(st, stmt, 10, out, error_r);
	sqlite3_finalize(stmt);
	if (r < 0)
		return -1;
	return out->len == before ? 1 : 0;
}

int
store_sqlite_submission_list(struct store *st, const char *account,
    int64_t since, int limit, struct str *out, const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st, account != NULL ?
	    "SELECT " SP_SUBMISSION_COLS
	    " FROM submissions WHERE account = ?1 AND time >= ?2"
	    " ORDER BY time DESC LIMIT ?3" :
	    "SELECT " SP_SUBMISSION_COLS
	    " FROM submissions WHERE time >= ?2"
	    " ORDER BY time DESC LIMIT ?3", error_r);
	int r;

	if (stmt == NULL)
		return -1;
	if (account != NULL)
		sp_bind_text(stmt, 1, account);
	(void)sqlite3_bind_int64(stmt, 2, since);
	(void)sqlite3_bind_int(stmt, 3, limit > 0 ? limit : 1000);
	r = sp_rows(st, stmt, 10, out, error_r);
	sqlite3_finalize(stmt);
	return r;
}

static int
sp_throttle_read(struct store *st, const char *key, int64_t *failures_r,
    int64_t *start_r, int64_t *locked_r, const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st, "SELECT failures, window_start,"
	    " locked_until FROM auth_throttle WHERE key = ?1", error_r);
	int r;

	*failures_r = *start_r = *locked_r = 0;
	if (stmt == NULL)
		return -1;
	sp_bind_text(stmt, 1, key);
	r = sp_step(st, stmt, "throttle read", error_r);
	if (r == 1) {
		*failures_r = sqlite3_column_int64(stmt, 0);
		*start_r = sqlite3_column_int64(stmt, 1);
		*locked_r = sqlite3_column_int64(stmt, 2);
	}
	sqlite3_finalize(stmt);
	return r < 0 ? -1 : r;
}

int
store_sqlite_throttle_get(struct store *st, const char *key, int64_t now,
    int64_t window, int64_t *failures_r, int64_t *locked_until_r,
    const char **error_r)
{
	int64_t start;

	if (sp_throttle_read(st, key, failures_r, &start, locked_until_r,
	    error_r) < 0)
		return -1;
	if (start + window <= now)
		*failures_r = 0;	/* the window has passed */
	if (*locked_until_r <= now)
		*locked_until_r = 0;
	return 0;
}

int
store_sqlite_throttle_fail(struct store *st, const char *key, int64_t now,
    int64_t window, int64_t max, int64_t lock, int64_t *failures_r,
    int64_t *locked_until_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int64_t failures, start, locked;
	int r;

	if (sp_exec(st, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	if ((r = sp_throttle_read(st, key, &failures, &start, &locked,
	    error_r)) < 0)
		return sp_rollback(st, -1);
	if (r == 0 || start + window <= now) {
		failures = 0;
		start = now;
	}
	failures++;
	if (locked <= now)
		locked = 0;
	if (max > 0 && failures >= max && locked == 0)
		locked = now + lock;
	stmt = sp_prepare(st, "INSERT INTO auth_throttle (key, failures,"
	    " window_start, locked_until) VALUES (?1, ?2, ?3, ?4)"
	    " ON CONFLICT (key) DO UPDATE SET failures = ?2,"
	    " window_start = ?3, locked_until = ?4", error_r);
	if (stmt == NULL)
		return sp_rollback(st, -1);
	sp_bind_text(stmt, 1, key);
	(void)sqlite3_bind_int64(stmt, 2, failures);
	(void)sqlite3_bind_int64(stmt, 3, start);
	(void)sqlite3_bind_int64(stmt, 4, locked);
	r = sp_step(st, stmt, "throttle", error_r);
	sqlite3_finalize(stmt);
	if (r < 0 || sp_exec(st, "COMMIT", error_r) < 0)
		return sp_rollback(st, -1);
	*failures_r = failures;
	*locked_until_r = locked;
	return 0;
}

int
store_sqlite_throttle_clear(struct store *st, const char *key,
    const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st,
	    "DELETE FROM auth_throttle WHERE key = ?1", error_r);
	int r;

	if (stmt == NULL)
		return -1;
	sp_bind_text(stmt, 1, key);
	r = sp_step(st, stmt, "throttle clear", error_r);
	sqlite3_finalize(stmt);
	return r < 0 ? -1 : 0;
}

/* ---- trusted login addresses (schema step 6) ------------------------- */

int
store_sqlite_trusted_seen(struct store *st, const char *name,
    const char *client, int64_t now, int64_t since, int keep,
    const char **error_r)
{
	static const char *const sql[] = {
		"INSERT INTO auth_trusted (name, client, last_ok)"
		" VALUES (?1, ?2, ?3) ON CONFLICT (name, client)"
		" DO UPDATE SET last_ok = max(last_ok, excluded.last_ok)",
		/* the newest `keep` of the name stay */
		"DELETE FROM auth_trusted WHERE name = ?1 AND client NOT IN"
		" (SELECT client FROM auth_trusted WHERE name = ?1"
		" ORDER BY last_ok DESC, client LIMIT ?5)",
		"DELETE FROM auth_trusted WHERE last_ok < ?4",
	};

	if (sp_exec(st, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		sqlite3_stmt *stmt = sp_prepare(st, sql[i], error_r);
		int r;

		if (stmt == NULL)
			return sp_rollback(st, -1);
		/* ?N numbers each value; one a statement lacks is refused
		 * (SQLITE_RANGE) and nothing else happens */
		sp_bind_text(stmt, 1, name);
		sp_bind_text(stmt, 2, client);
		(void)sqlite3_bind_int64(stmt, 3, now);
		(void)sqlite3_bind_int64(stmt, 4, since);
		(void)sqlite3_bind_int(stmt, 5, keep);
		r = sp_step(st, stmt, "trusted address", error_r);
		sqlite3_finalize(stmt);
		if (r < 0)
			return sp_rollback(st, -1);
	}
	if (sp_exec(st, "COMMIT", error_r) < 0)
		return sp_rollback(st, -1);
	return 0;
}

int
store_sqlite_trusted_get(struct store *st, const char *name,
    const char *client, int64_t since, const char **error_r)
{
	sqlite3_stmt *stmt = sp_prepare(st, "SELECT 1 FROM auth_trusted"
	    " WHERE name = ?1 AND client = ?2 AND last_ok >= ?3", error_r);
	int r;

	if (stmt == NULL)
		return -1;
	sp_bind_text(stmt, 1, name);
	sp_bind_text(stmt, 2, client);
	(void)sqlite3_bind_int64(stmt, 3, since);
	r = sp_step(st, stmt, "trusted address", error_r);
	sqlite3_finalize(stmt);
	return r < 0 ? -1 : r == 1 ? 0 : 1;
}
