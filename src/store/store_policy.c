/*
 * store_policy: the sending-policy state (store.h, PRODUCT.md "Rules"):
 * overseas permission, limit overrides, send counters, events, notices
 * and the submission log, each query written once for both drivers.
 *
 * The check-and-count of a send limit is one write transaction that
 * locks the account's row first (sql.h: SQLite's BEGIN IMMEDIATE holds
 * the database; PostgreSQL FOR NO KEY UPDATE, so the counters' foreign
 * keys still only need a key-share lock): every submission of one
 * account, on any node, counts in turn and reads the counters as the one
 * before it left them.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/config.h"
#include "../core/xmalloc.h"
#include "sql.h"
#include "store.h"
#include "store_private.h"

static const char store_sql_account_id[] =
    "SELECT id FROM accounts WHERE address = ?1";

/* The canonical key of an account address, or 1 with the "no such
 * account" error (a name we could never have stored is not an account). */
static int
store_policy_key(struct store *st, const char *address,
    char key[STORE_ADDRESS_MAX + 1], const char **error_r)
{
	char quoted[STORE_QUOTE_SIZE];

	if (store_lookup_key(address, key) == 0)
		return 0;
	return store_set_error(st, error_r, 1, STORE_ERR_NO_ACCOUNT,
	    store_quote(quoted, sizeof(quoted), address));
}

static int64_t
store_policy_limit(struct sql_stmt *stmt, int col)
{
	return sql_col_is_null(stmt, col) ? -1 : sql_col_int64(stmt, col);
}

/*
 * A one-row read of the account address names (?1 its key, and ?2 text2
 * when given), the row given to fill. 1 with "no such account".
 */
static int
store_policy_read(struct store *st, const char *address, const char *query,
    const char *text2, void (*fill)(struct sql_stmt *, void *), void *out,
    const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];
	struct sql_stmt *stmt;
	int r;

	if (store_policy_key(st, address, key, error_r) != 0)
		return 1;
	if (text2 == NULL)
		stmt = store_stmt(st, query, SQL_LOCK_NONE, error_r, "t", key);
	else
		stmt = store_stmt(st, query, SQL_LOCK_NONE, error_r, "tt", key,
		    text2);
	if (stmt == NULL)
		return -1;
	if ((r = sql_step(stmt, error_r)) == 1)
		fill(stmt, out);
	sql_reset(stmt);
	if (r == 0)
		return store_set_error(st, error_r, 1, STORE_ERR_NO_ACCOUNT,
		    key);
	return r < 0 ? -1 : 0;
}

static void
store_policy_fill(struct sql_stmt *stmt, void *out)
{
	struct account_policy *p = out;

	p->overseas_until = sql_col_int64(stmt, 0);
	p->limit_msgs_day = store_policy_limit(stmt, 1);
	p->limit_rcpts_day = store_policy_limit(stmt, 2);
	p->limit_rcpts_hour = store_policy_limit(stmt, 3);
	p->limit_rcpts_msg = store_policy_limit(stmt, 4);
	p->limit_overseas_rcpts_day = store_policy_limit(stmt, 5);
	p->any_sender = sql_col_int64(stmt, 6) != 0;
	xstrlcpy(p->relay_names, sql_col_text(stmt, 7),
	    sizeof(p->relay_names));
	xstrlcpy(p->overseas_countries, sql_col_text(stmt, 8),
	    sizeof(p->overseas_countries));
}

int
store_policy_get(struct store *st, const char *address,
    struct account_policy *p, const char **error_r)
{
	static const char query[] =
	    "SELECT a.overseas_until, l.msgs_day, l.rcpts_day, l.rcpts_hour,"
	    " l.rcpts_msg, l.overseas_rcpts_day, coalesce(l.any_sender, 0),"
	    " coalesce(l.relay_names, ''), a.overseas_countries"
	    " FROM accounts a LEFT JOIN account_limits l"
	    " ON l.account_id = a.id WHERE a.address = ?1";

	return store_policy_read(st, address, query, NULL, store_policy_fill,
	    p, error_r);
}

int
store_policy_set_limits(struct store *st, const char *address,
    const struct account_policy *p, const char **error_r)
{
	static const char query[] =
	    "INSERT INTO account_limits (account_id, msgs_day, rcpts_day,"
	    " rcpts_hour, rcpts_msg, overseas_rcpts_day, any_sender,"
	    " relay_names)"
	    " SELECT id, CAST(?2 AS BIGINT), CAST(?3 AS BIGINT),"
	    " CAST(?4 AS BIGINT), CAST(?5 AS BIGINT), CAST(?6 AS BIGINT),"
	    " CAST(?7 AS INTEGER), CAST(?8 AS TEXT)"
	    " FROM accounts WHERE address = ?1"
	    " ON CONFLICT (account_id) DO UPDATE SET"
	    " msgs_day = excluded.msgs_day, rcpts_day = excluded.rcpts_day,"
	    " rcpts_hour = excluded.rcpts_hour,"
	    " rcpts_msg = excluded.rcpts_msg,"
	    " overseas_rcpts_day = excluded.overseas_rcpts_day,"
	    " any_sender = excluded.any_sender,"
	    " relay_names = excluded.relay_names";
	char key[STORE_ADDRESS_MAX + 1];
	int r;

	if (store_policy_key(st, address, key, error_r) != 0)
		return 1;
	r = store_change(st, query, error_r, "tlllllit", key,
	    p->limit_msgs_day, p->limit_rcpts_day, p->limit_rcpts_hour,
	    p->limit_rcpts_msg, p->limit_overseas_rcpts_day,
	    (int64_t)(p->any_sender ? 1 : 0), p->relay_names);
	if (r == 1)
		(void)store_set_error(st, error_r, 1, STORE_ERR_NO_ACCOUNT,
		    key);
	return r;
}

int
store_overseas_set(struct store *st, const char *address, int64_t until,
    const char **error_r)
{
	static const char query[] =
	    "UPDATE accounts SET overseas_until = ?2 WHERE address = ?1";
	char key[STORE_ADDRESS_MAX + 1];
	int r;

	if (store_policy_key(st, address, key, error_r) != 0)
		return 1;
	if ((r = store_change(st, query, error_r, "ti", key, until)) == 1)
		(void)store_set_error(st, error_r, 1, STORE_ERR_NO_ACCOUNT,
		    key);
	return r;
}

int
store_overseas_set_countries(struct store *st, const char *address,
    int64_t until, const char *countries, const char **error_r)
{
	static const char query[] =
	    "UPDATE accounts SET overseas_until = ?2, overseas_countries = ?3"
	    " WHERE address = ?1";
	char key[STORE_ADDRESS_MAX + 1];
	int r;

	if (strlen(countries) > STORE_COUNTRIES_MAX)
		return store_set_error(st, error_r, -1, "too many countries");
	if (store_policy_key(st, address, key, error_r) != 0)
		return 1;
	if ((r = store_change(st, query, error_r, "tit", key, until,
	    countries)) == 1)
		(void)store_set_error(st, error_r, 1, STORE_ERR_NO_ACCOUNT,
		    key);
	return r;
}

/* ---- retention (i17-country) ---------------------------------------- */

/*
 * The tables swept, one line each: the table, its config key (days, a
 * field of struct config), and the query deleting at most ?2 rows older
 * than ?1. By time: ?1 a unix time, the column an integer time. By day:
 * ?1 a date "YYYY-MM-DD", the column a period key whose characters 3..12
 * are its date ("d:2026-11-23", "h:2026-11-23T10"). KEY names the rows
 * (a primary key, or a list of columns that is one), so the batch is a
 * sub-select both SQLite and PostgreSQL run (neither has DELETE ...
 * LIMIT in common). Adding a table (the risk data, say) is one line
 * here and its key in config.c.
 */
#define STORE_RETENTION_BY_TIME(table, key, col)			\
	"DELETE FROM " table " WHERE (" key ") IN (SELECT " key		\
	" FROM " table " WHERE " col " < ?1 LIMIT ?2)"
#define STORE_RETENTION_BY_DAY(table, key, col)			\
	"DELETE FROM " table " WHERE (" key ") IN (SELECT " key		\
	" FROM " table " WHERE substr(" col ", 3, 10) < ?1 LIMIT ?2)"

static const struct store_retention {
	const char	*table;
	size_t		 days_off;	/* int field of struct config */
	int		 by_day;	/* ?1 a date, not a time */
	const char	*query;
} store_retention_table[] = {
	{ "events", offsetof(struct config, retention_events_days), 0,
	    STORE_RETENTION_BY_TIME("events", "id", "time") },
	{ "notices", offsetof(struct config, retention_notices_days), 0,
	    STORE_RETENTION_BY_TIME("notices", "key", "time") },
	{ "submissions", offsetof(struct config, retention_submissions_days),
	    0, STORE_RETENTION_BY_TIME("submissions", "queue_id", "time") },
	{ "send_counters",
	    offsetof(struct config, retention_send_counters_days), 1,
	    STORE_RETENTION_BY_DAY("send_counters", "account_id, period",
	    "period") },
	/* the risk score's memory (issue 17): countries logged in from,
	 * recipients sent to, addresses failing against accounts */
	{ "risk_logins", offsetof(struct config, retention_risk_days), 0,
	    STORE_RETENTION_BY_TIME("risk_logins", "account, country",
	    "last") },
	{ "risk_recipients", offsetof(struct config, retention_risk_days), 0,
	    STORE_RETENTION_BY_TIME("risk_recipients", "account, rcpt",
	    "first") },
	{ "risk_spray", offsetof(struct config, retention_risk_days), 0,
	    STORE_RETENTION_BY_TIME("risk_spray", "client, account",
	    "time") },
};
#define STORE_RETENTION_N \
	(sizeof(store_retention_table) / sizeof(store_retention_table[0]))
_Static_assert(STORE_RETENTION_N <= STORE_RETENTION_MAX,
    "STORE_RETENTION_MAX too small");

size_t
store_retention_count(void)
{
	return STORE_RETENTION_N;
}

const char *
store_retention_table_name(size_t i)
{
	return i < STORE_RETENTION_N ? store_retention_table[i].table : "";
}

size_t
store_retention_config_offset(size_t i)
{
	return store_retention_table[i < STORE_RETENTION_N ? i : 0].days_off;
}

int
store_retention_sweep(struct store *st, size_t i, int64_t now, int days,
    int batch, int max_batches, int64_t *deleted_r, const char **error_r)
{
	const struct store_retention *t;
	int64_t before = now - (int64_t)days * 86400;
	char date[16];

	*deleted_r = 0;
	if (i >= STORE_RETENTION_N || days <= 0 || batch <= 0)
		return 0;
	t = &store_retention_table[i];
	if (t->by_day) {
		time_t tt = (time_t)before;
		struct tm tm;

		/* the period keys' own time zone (the process's) */
		localtime_r(&tt, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	}
	for (int n = 0; n < max_batches; n++) {
		struct sql_stmt *stmt;
		int64_t changed = 0;

		/* each batch its own statement and transaction: a sweep
		 * never holds the database for long */
		store_read_end(st);
		if (t->by_day)
			stmt = store_stmt(st, t->query, SQL_LOCK_NONE, error_r,
			    "ti", date, (int64_t)batch);
		else
			stmt = store_stmt(st, t->query, SQL_LOCK_NONE, error_r,
			    "ii", before, (int64_t)batch);
		if (stmt == NULL || sql_run(stmt, &changed, error_r) < 0)
			return -1;
		*deleted_r += changed;
		if (changed < batch)
			break;
	}
	return 0;
}

static int
store_count_add_tx(struct store *st, const char *address,
    const struct store_counter *c, size_t n, int64_t msgs, int64_t rcpts,
    size_t *over_r, const char **error_r)
{
	static const char read[] =
	    "SELECT msgs, rcpts FROM send_counters"
	    " WHERE account_id = ?1 AND period = ?2";
	static const char add[] =
	    "INSERT INTO send_counters (account_id, period, msgs, rcpts)"
	    " VALUES (?1, ?2,"
	    " CASE WHEN CAST(?3 AS BIGINT) > 0 THEN CAST(?3 AS BIGINT) ELSE 0 END,"
	    " CASE WHEN CAST(?4 AS BIGINT) > 0 THEN CAST(?4 AS BIGINT) ELSE 0 END)"
	    " ON CONFLICT (account_id, period) DO UPDATE SET"
	    " msgs = CASE WHEN send_counters.msgs + CAST(?3 AS BIGINT) > 0"
	    " THEN send_counters.msgs + CAST(?3 AS BIGINT) ELSE 0 END,"
	    " rcpts = CASE WHEN send_counters.rcpts + CAST(?4 AS BIGINT) > 0"
	    " THEN send_counters.rcpts + CAST(?4 AS BIGINT) ELSE 0 END";
	struct sql_stmt *stmt;
	int64_t id;
	int r;

	r = store_query_id(st, store_sql_account_id, SQL_LOCK_NO_KEY_UPDATE,
	    address, &id, error_r);
	if (r != 0)
		return r < 0 ? -1 : store_set_error(st, error_r, -1,
		    STORE_ERR_NO_ACCOUNT, address);
	for (size_t i = 0; (msgs > 0 || rcpts > 0) && i < n; i++) {
		int64_t m = 0, rc = 0;

		if ((stmt = store_stmt(st, read, SQL_LOCK_NONE, error_r, "it",
		    id, c[i].period)) == NULL ||
		    (r = sql_step(stmt, error_r)) < 0)
			return -1;
		if (r == 1) {
			m = sql_col_int64(stmt, 0);
			rc = sql_col_int64(stmt, 1);
		}
		sql_reset(stmt);
		if ((c[i].max_msgs >= 0 && m + msgs > c[i].max_msgs) ||
		    (c[i].max_rcpts >= 0 && rc + rcpts > c[i].max_rcpts)) {
			*over_r = i;
			return 1;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (store_change(st, add, error_r, "itii", id, c[i].period,
		    msgs, rcpts) < 0)
			return -1;
	return 0;
}

int
store_count_add(struct store *st, const char *address,
    const struct store_counter *c, size_t n, int64_t msgs, int64_t rcpts,
    size_t *over_r, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];
	int r;

	if (store_policy_key(st, address, key, error_r) != 0)
		return -1;
	if (store_tx_begin(st, SQL_TX_WRITE, error_r) < 0)
		return -1;
	r = store_count_add_tx(st, key, c, n, msgs, rcpts, over_r, error_r);
	/* over a limit: nothing changed, roll back (inside the caller's
	 * transaction there is nothing of ours to undo) */
	if (r == 1)
		return st->in_write ? 1 : sql_rollback(st->db, 1);
	return store_tx_end(st, SQL_TX_WRITE, r, error_r);
}

static void
store_count_fill(struct sql_stmt *stmt, void *out)
{
	int64_t *v = out;

	v[0] = sql_col_int64(stmt, 0);
	v[1] = sql_col_int64(stmt, 1);
}

int
store_count_get(struct store *st, const char *address, const char *period,
    int64_t *msgs_r, int64_t *rcpts_r, const char **error_r)
{
	static const char query[] =
	    "SELECT c.msgs, c.rcpts FROM accounts a"
	    " LEFT JOIN send_counters c ON c.account_id = a.id"
	    " AND c.period = ?2 WHERE a.address = ?1";
	int64_t v[2] = { 0, 0 };
	int r = store_policy_read(st, address, query, period, store_count_fill,
	    v, error_r);

	*msgs_r = v[0];
	*rcpts_r = v[1];
	return r;
}

int
store_event_add(struct store *st, const struct store_event *e,
    const char **error_r)
{
	static const char query[] =
	    "INSERT INTO events (time, account, type, ip, country, detail)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
	char account[STORE_EVENT_ACCOUNT_MAX + 1], type[STORE_EVENT_TYPE_MAX + 1];
	char ip[STORE_EVENT_IP_MAX + 1], country[STORE_EVENT_COUNTRY_MAX + 1];
	char detail[STORE_EVENT_DETAIL_MAX + 1];

	return store_change(st, query, error_r, "ittttt", e->time,
	    store_text_cut(e->account, account, STORE_EVENT_ACCOUNT_MAX),
	    store_text_cut(e->type, type, STORE_EVENT_TYPE_MAX),
	    store_text_cut(e->ip, ip, STORE_EVENT_IP_MAX),
	    store_text_cut(e->country, country, STORE_EVENT_COUNTRY_MAX),
	    store_text_cut(e->detail, detail, STORE_EVENT_DETAIL_MAX)) < 0 ?
	    -1 : 0;
}

static int
store_event_row(struct sql_stmt *stmt, void *cb, void *context)
{
	struct store_event row = {
		.time = sql_col_int64(stmt, 0),
		.account = sql_col_text(stmt, 1),
		.type = sql_col_text(stmt, 2),
		.ip = sql_col_text(stmt, 3),
		.country = sql_col_text(stmt, 4),
		.detail = sql_col_text(stmt, 5),
	};

	return ((store_event_cb *)cb)(&row, context);
}

int
store_event_list(struct store *st, const char *account, int64_t since,
    int limit, store_event_cb *cb, void *context, const char **error_r)
{
	/* the newest `limit`, shown oldest first */
	static const char by_account[] =
	    "SELECT time, account, type, ip, country, detail FROM"
	    " (SELECT id, time, account, type, ip, country, detail"
	    " FROM events WHERE account = ?1 AND time >= ?2"
	    " ORDER BY time DESC, id DESC LIMIT ?3) e ORDER BY time, id";
	static const char all[] =
	    "SELECT time, account, type, ip, country, detail FROM"
	    " (SELECT id, time, account, type, ip, country, detail"
	    " FROM events WHERE time >= ?1"
	    " ORDER BY time DESC, id DESC LIMIT ?2) e ORDER BY time, id";
	char key[STORE_ADDRESS_MAX + 1];
	int64_t max = limit > 0 ? limit : 1000;
	struct sql_stmt *stmt;

	if (account != NULL) {
		if (store_lookup_key(account, key) != 0)
			return 0;	/* nothing recorded for such a name */
		stmt = store_stmt(st, by_account, SQL_LOCK_NONE, error_r,
		    "tii", key, since, max);
	} else
		stmt = store_stmt(st, all, SQL_LOCK_NONE, error_r, "ii", since,
		    max);
	return store_each_row(stmt, store_event_row, (void *)cb, context,
	    NULL, error_r);
}

int
store_notice_once(struct store *st, const char *key, int64_t time,
    const char **error_r)
{
	/* One row inserted: first seen, on whichever node. */
	static const char query[] =
	    "INSERT INTO notices (key, time) VALUES (?1, ?2)"
	    " ON CONFLICT (key) DO NOTHING";

	return store_change(st, query, error_r, "ti", key, time);
}

int
store_submission_add(struct store *st, const struct store_submission *s,
    const char **error_r)
{
	static const char query[] =
	    "INSERT INTO submissions (queue_id, message_id, time, account,"
	    " ip, country, tls, rcpts, size, overseas)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
	    " ON CONFLICT (queue_id) DO NOTHING";
	char msgid[STORE_MSGID_MAX + 1], ip[STORE_EVENT_IP_MAX + 1];
	char country[STORE_EVENT_COUNTRY_MAX + 1], tls[STORE_TLS_MAX + 1];

	return store_change(st, query, error_r, "ttittttiii", s->queue_id,
	    store_text_cut(s->message_id, msgid, STORE_MSGID_MAX), s->time,
	    s->account, store_text_cut(s->ip, ip, STORE_EVENT_IP_MAX),
	    store_text_cut(s->country, country, STORE_EVENT_COUNTRY_MAX),
	    store_text_cut(s->tls, tls, STORE_TLS_MAX), s->rcpts, s->size,
	    (int64_t)(s->overseas ? 1 : 0)) < 0 ? -1 : 0;
}

static int
store_submission_row(struct sql_stmt *stmt, void *cb, void *context)
{
	struct store_submission row = {
		.queue_id = sql_col_text(stmt, 0),
		.message_id = sql_col_text(stmt, 1),
		.time = sql_col_int64(stmt, 2),
		.account = sql_col_text(stmt, 3),
		.ip = sql_col_text(stmt, 4),
		.country = sql_col_text(stmt, 5),
		.tls = sql_col_text(stmt, 6),
		.rcpts = sql_col_int64(stmt, 7),
		.size = sql_col_int64(stmt, 8),
		.overseas = sql_col_int64(stmt, 9) != 0,
	};

	return ((store_submission_cb *)cb)(&row, context);
}

#define STORE_SUBMISSION_COLS \
	"queue_id, message_id, time, account, ip, country, tls, rcpts," \
	" size, overseas"

int
store_submission_find(struct store *st, const char *queue_id,
    const char *message_id, store_submission_cb *cb, void *context,
    const char **error_r)
{
	static const char query[] =
	    "SELECT " STORE_SUBMISSION_COLS " FROM"
	    " (SELECT " STORE_SUBMISSION_COLS " FROM submissions"
	    " WHERE queue_id = ?1 OR message_id = ?2"
	    " ORDER BY time DESC, queue_id DESC LIMIT 100) s"
	    " ORDER BY time, queue_id";
	char msgid[STORE_MSGID_MAX + 1];
	size_t n = 0;

	/* found as it was stored: cut the same way */
	if (store_each_row(store_stmt(st, query, SQL_LOCK_NONE, error_r, "tt",
	    queue_id, store_text_cut(message_id, msgid, STORE_MSGID_MAX)),
	    store_submission_row, (void *)cb, context, &n, error_r) < 0)
		return -1;
	return n == 0 ? 1 : 0;
}

int
store_submission_list(struct store *st, const char *account, int64_t since,
    int limit, store_submission_cb *cb, void *context, const char **error_r)
{
	static const char by_account[] =
	    "SELECT " STORE_SUBMISSION_COLS " FROM"
	    " (SELECT " STORE_SUBMISSION_COLS " FROM submissions"
	    " WHERE account = ?1 AND time >= ?2"
	    " ORDER BY time DESC, queue_id DESC LIMIT ?3) s"
	    " ORDER BY time, queue_id";
	static const char all[] =
	    "SELECT " STORE_SUBMISSION_COLS " FROM"
	    " (SELECT " STORE_SUBMISSION_COLS " FROM submissions"
	    " WHERE time >= ?1"
	    " ORDER BY time DESC, queue_id DESC LIMIT ?2) s"
	    " ORDER BY time, queue_id";
	char key[STORE_ADDRESS_MAX + 1];
	int64_t max = limit > 0 ? limit : 1000;
	struct sql_stmt *stmt;

	if (account != NULL) {
		if (store_lookup_key(account, key) != 0)
			return 0;
		stmt = store_stmt(st, by_account, SQL_LOCK_NONE, error_r,
		    "tii", key, since, max);
	} else	/* all accounts: store copy */
		stmt = store_stmt(st, all, SQL_LOCK_NONE, error_r, "ii", since,
		    max);
	return store_each_row(stmt, store_submission_row, (void *)cb, context,
	    NULL, error_r);
}

/* --- after a password is stolen (issue 17, schema step 7) ------------- */

/* The columns level .. warning of risk_state, from column first on. */
static void
store_risk_fill(struct sql_stmt *stmt, int first, struct store_risk *r)
{
	memset(r, 0, sizeof(*r));
	r->level = (int)sql_col_int64(stmt, first);
	r->automatic = sql_col_int64(stmt, first + 1) != 0;
	r->exempt = sql_col_int64(stmt, first + 2) != 0;
	r->since = sql_col_int64(stmt, first + 3);
	r->cleared = sql_col_int64(stmt, first + 4);
	r->warned = sql_col_int64(stmt, first + 5);
	if (!sql_col_is_null(stmt, first + 6))
		xstrlcpy(r->reason, sql_col_text(stmt, first + 6),
		    sizeof(r->reason));
	if (!sql_col_is_null(stmt, first + 7))
		xstrlcpy(r->warning, sql_col_text(stmt, first + 7),
		    sizeof(r->warning));
}

int
store_risk_get(struct store *st, const char *account, struct store_risk *r,
    const char **error_r)
{
	static const char query[] =
	    "SELECT level, automatic, exempt, since, cleared, warned, reason,"
	    " warning FROM risk_state WHERE account = ?1";
	char key[STORE_ADDRESS_MAX + 1];
	struct sql_stmt *stmt;
	int ret;

	memset(r, 0, sizeof(*r));
	if (store_lookup_key(account, key) != 0)
		return 1;
	if ((stmt = store_stmt(st, query, SQL_LOCK_NONE, error_r, "t",
	    key)) == NULL)
		return -1;
	if ((ret = sql_step(stmt, error_r)) == 1)
		store_risk_fill(stmt, 0, r);
	sql_reset(stmt);
	return ret < 0 ? -1 : ret == 1 ? 0 : 1;
}

/* The row, made if missing (all zero). */
static int
store_risk_row(struct store *st, const char *key, const char **error_r)
{
	static const char make[] =
	    "INSERT INTO risk_state (account) VALUES (?1)"
	    " ON CONFLICT (account) DO NOTHING";

	return store_change(st, make, error_r, "t", key) < 0 ? -1 : 0;
}

int
store_risk_raise(struct store *st, const char *account, int level,
    int automatic, int64_t now, const char *reason, const char **error_r)
{
	/* one statement: of two nodes raising at once, one changes it */
	static const char query[] =
	    "UPDATE risk_state SET level = ?2, automatic = ?3, since = ?4,"
	    " reason = ?5 WHERE account = ?1 AND level < ?2 AND exempt = 0";
	char key[STORE_ADDRESS_MAX + 1], why[STORE_EVENT_DETAIL_MAX + 1];

	if (store_lookup_key(account, key) != 0)
		return 1;
	if (store_risk_row(st, key, error_r) < 0)
		return -1;
	return store_change(st, query, error_r, "tiiit", key, (int64_t)level,
	    (int64_t)(automatic ? 1 : 0), now,
	    store_text_cut(reason, why, STORE_EVENT_DETAIL_MAX));
}

int
store_risk_clear(struct store *st, const char *account, int64_t now,
    const char **error_r)
{
	static const char query[] =
	    "UPDATE risk_state SET level = 0, automatic = 0, since = ?2,"
	    " cleared = ?2, reason = NULL WHERE account = ?1";
	char key[STORE_ADDRESS_MAX + 1];

	if (store_lookup_key(account, key) != 0)
		return 1;
	if (store_risk_row(st, key, error_r) < 0)
		return -1;
	return store_change(st, query, error_r, "ti", key, now) < 0 ? -1 : 0;
}

int
store_risk_exempt(struct store *st, const char *account, int exempt,
    const char **error_r)
{
	static const char query[] =
	    "UPDATE risk_state SET exempt = ?2 WHERE account = ?1";
	char key[STORE_ADDRESS_MAX + 1];

	if (store_lookup_key(account, key) != 0)
		return 1;
	if (store_risk_row(st, key, error_r) < 0)
		return -1;
	return store_change(st, query, error_r, "ti", key,
	    (int64_t)(exempt ? 1 : 0)) < 0 ? -1 : 0;
}

int
store_risk_warned(struct store *st, const char *account, int64_t now,
    const char *warning, const char **error_r)
{
	static const char query[] =
	    "UPDATE risk_state SET warned = ?2, warning = ?3"
	    " WHERE account = ?1";
	char key[STORE_ADDRESS_MAX + 1], w[STORE_EVENT_DETAIL_MAX + 1];

	if (store_lookup_key(account, key) != 0)
		return 1;
	if (store_risk_row(st, key, error_r) < 0)
		return -1;
	return store_change(st, query, error_r, "tit", key, now,
	    store_text_cut(warning, w, STORE_EVENT_DETAIL_MAX)) < 0 ? -1 : 0;
}

static int
store_risk_account_row(struct sql_stmt *stmt, void *cb, void *context)
{
	return ((store_risk_account_cb *)cb)(sql_col_text(stmt, 0), context);
}

int
store_risk_accounts(struct store *st, int64_t since, int limit,
    store_risk_account_cb *cb, void *context, const char **error_r)
{
	static const char query[] =
	    "SELECT account FROM (SELECT account FROM risk_state"
	    " WHERE level > 0 UNION SELECT account FROM events"
	    " WHERE time >= ?1 AND account IS NOT NULL"
	    " AND type NOT LIKE 'admin\\_%' ESCAPE '\\') a"
	    " ORDER BY account LIMIT ?2";

	return store_each_row(store_stmt(st, query, SQL_LOCK_NONE, error_r,
	    "ii", since, (int64_t)(limit > 0 ? limit : 10000)),
	    store_risk_account_row, (void *)cb, context, NULL, error_r);
}

int
store_risk_login(struct store *st, const char *account, const char *country,
    int64_t now, int64_t *last_r, int64_t *known_r, const char **error_r)
{
	static const char last[] =
	    "SELECT last FROM risk_logins WHERE account = ?1 AND country = ?2";
	static const char known[] =
	    "SELECT count(*) FROM risk_logins WHERE account = ?1";
	static const char set[] =
	    "INSERT INTO risk_logins (account, country, last)"
	    " VALUES (?1, ?2, ?3) ON CONFLICT (account, country)"
	    " DO UPDATE SET last = ?3";
	char key[STORE_ADDRESS_MAX + 1], cc[STORE_EVENT_COUNTRY_MAX + 1];
	struct sql_stmt *stmt;
	int r;

	*last_r = 0;
	*known_r = 0;
	if (store_lookup_key(account, key) != 0)
		return 1;
	store_text_cut(country, cc, STORE_EVENT_COUNTRY_MAX);
	if ((stmt = store_stmt(st, last, SQL_LOCK_NONE, error_r, "tt", key,
	    cc)) == NULL)
		return -1;
	if ((r = sql_step(stmt, error_r)) == 1)
		*last_r = sql_col_int64(stmt, 0);
	sql_reset(stmt);
	if (r < 0 || (stmt = store_stmt(st, known, SQL_LOCK_NONE, error_r, "t",
	    key)) == NULL)
		return -1;
	if ((r = sql_step(stmt, error_r)) == 1)
		*known_r = sql_col_int64(stmt, 0);
	sql_reset(stmt);
	if (r < 0)
		return -1;
	/* kept to the hour: most logins write nothing */
	if (*last_r != 0 && *last_r > now - 3600 && *last_r <= now)
		return 0;
	return store_change(st, set, error_r, "tti", key, cc, now) < 0 ? -1 :
	    0;
}

int
store_risk_recipient(struct store *st, const char *account, const char *rcpt,
    int64_t now, const char **error_r)
{
	static const char query[] =
	    "INSERT INTO risk_recipients (account, rcpt, first)"
	    " VALUES (?1, ?2, ?3) ON CONFLICT (account, rcpt) DO NOTHING";
	char key[STORE_ADDRESS_MAX + 1], to[STORE_ADDRESS_MAX + 1];

	if (store_lookup_key(account, key) != 0 ||
	    store_lookup_key(rcpt, to) != 0)
		return 1;
	return store_change(st, query, error_r, "tti", key, to, now);
}

int
store_risk_spray(struct store *st, const char *client, const char *account,
    int64_t now, int64_t since, int64_t *accounts_r, const char **error_r)
{
	static const char old[] =
	    "DELETE FROM risk_spray WHERE time < ?1";
	static const char set[] =
	    "INSERT INTO risk_spray (client, account, time) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (client, account) DO UPDATE SET time = ?3";
	static const char count[] =
	    "SELECT count(*) FROM risk_spray WHERE client = ?1";
	char key[STORE_ADDRESS_MAX + 1], ip[STORE_EVENT_IP_MAX + 1];
	struct sql_stmt *stmt;
	int r;

	*accounts_r = 0;
	/* a name that cannot be an account still counts: sprayers guess */
	if (store_lookup_key(account, key) != 0)
		xstrlcpy(key, "?", sizeof(key));
	store_text_cut(client, ip, STORE_EVENT_IP_MAX);
	if (store_change(st, old, error_r, "i", since) < 0 ||
	    store_change(st, set, error_r, "tti", ip, key, now) < 0 ||
	    (stmt = store_stmt(st, count, SQL_LOCK_NONE, error_r, "t",
	    ip)) == NULL)
		return -1;
	if ((r = sql_step(stmt, error_r)) == 1)
		*accounts_r = sql_col_int64(stmt, 0);
	sql_reset(stmt);
	return r < 0 ? -1 : 0;
}

/* --- the risk tables in a store copy (cli_store.c) ------------------- */

static int
store_risk_each_row(struct sql_stmt *stmt, void *cb, void *context)
{
	struct store_risk r;

	store_risk_fill(stmt, 1, &r);
	return ((store_risk_cb *)cb)(sql_col_text(stmt, 0), &r, context);
}

int
store_risk_each(struct store *st, store_risk_cb *cb, void *context,
    const char **error_r)
{
	static const char query[] =
	    "SELECT account, level, automatic, exempt, since, cleared, warned,"
	    " reason, warning FROM risk_state ORDER BY account";

	return store_each_row(store_stmt(st, query, SQL_LOCK_NONE, error_r,
	    ""), store_risk_each_row, (void *)cb, context, NULL, error_r);
}

int
store_risk_put(struct store *st, const char *account,
    const struct store_risk *r, const char **error_r)
{
	static const char query[] =
	    "INSERT INTO risk_state (account, level, automatic, exempt, since,"
	    " cleared, warned, reason, warning)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
	    " ON CONFLICT (account) DO UPDATE SET level = ?2, automatic = ?3,"
	    " exempt = ?4, since = ?5, cleared = ?6, warned = ?7,"
	    " reason = ?8, warning = ?9";
	char key[STORE_ADDRESS_MAX + 1];

	if (store_lookup_key(account, key) != 0)
		return 1;
	return store_change(st, query, error_r, "tiiiiiitt", key,
	    (int64_t)r->level, (int64_t)(r->automatic ? 1 : 0),
	    (int64_t)(r->exempt ? 1 : 0), r->since, r->cleared, r->warned,
	    r->reason[0] != '\0' ? r->reason : NULL,
	    r->warning[0] != '\0' ? r->warning : NULL) < 0 ? -1 : 0;
}

static int
store_risk_seen_row(struct sql_stmt *stmt, void *cb, void *context)
{
	return ((store_risk_seen_cb *)cb)(sql_col_text(stmt, 0),
	    sql_col_text(stmt, 1), sql_col_int64(stmt, 2), context);
}

int
store_risk_seen_each(struct store *st, enum store_risk_seen what,
    store_risk_seen_cb *cb, void *context, const char **error_r)
{
	static const char logins[] =
	    "SELECT account, country, last FROM risk_logins"
	    " ORDER BY account, country";
	static const char rcpts[] =
	    "SELECT account, rcpt, first FROM risk_recipients"
	    " ORDER BY account, rcpt";

	return store_each_row(store_stmt(st, what == STORE_RISK_SEEN_COUNTRY ?
	    logins : rcpts, SQL_LOCK_NONE, error_r, ""), store_risk_seen_row,
	    (void *)cb, context, NULL, error_r);
}

int
store_risk_seen_put(struct store *st, enum store_risk_seen what,
    const char *account, const char *seen, int64_t time,
    const char **error_r)
{
	static const char login[] =
	    "INSERT INTO risk_logins (account, country, last)"
	    " VALUES (?1, ?2, ?3) ON CONFLICT (account, country)"
	    " DO UPDATE SET last = ?3";
	static const char rcpt[] =
	    "INSERT INTO risk_recipients (account, rcpt, first)"
	    " VALUES (?1, ?2, ?3) ON CONFLICT (account, rcpt)"
	    " DO UPDATE SET first = ?3";
	char key[STORE_ADDRESS_MAX + 1], to[STORE_ADDRESS_MAX + 1];

	if (store_lookup_key(account, key) != 0)
		return 1;
	if (what == STORE_RISK_SEEN_COUNTRY)
		store_text_cut(seen, to, STORE_EVENT_COUNTRY_MAX);
	else if (store_lookup_key(seen, to) != 0)
		return 1;
	return store_change(st, what == STORE_RISK_SEEN_COUNTRY ? login : rcpt,
	    error_r, "tti", key, to, time) < 0 ? -1 : 0;
}

/* ---- own From (issue 16) -------------------------------------------- */

static void
store_own_from_fill(struct sql_stmt *stmt, void *out)
{
	*(int *)out = sql_col_int64(stmt, 0) != 0;
}

int
store_own_from_get(struct store *st, const char *address, int *on_r,
    const char **error_r)
{
	static const char query[] =
	    "SELECT refuse_own_from FROM accounts WHERE address = ?1";

	*on_r = 0;
	return store_policy_read(st, address, query, NULL,
	    store_own_from_fill, on_r, error_r);
}

int
store_own_from_set(struct store *st, const char *address, int on,
    const char **error_r)
{
	static const char query[] =
	    "UPDATE accounts SET refuse_own_from = ?2 WHERE address = ?1";
	char key[STORE_ADDRESS_MAX + 1];
	int r;

	if (store_policy_key(st, address, key, error_r) != 0)
		return 1;
	r = store_change(st, query, error_r, "ti", key, (int64_t)(on ? 1 : 0));
	if (r == 1)
		(void)store_set_error(st, error_r, 1, STORE_ERR_NO_ACCOUNT,
		    key);
	return r;
}

int
store_own_from_lookup(struct store *st, const char *address,
    char **account_r, int *on_r, const char **error_r)
{
	/* the account itself, else the alias's target (one statement) */
	static const char query[] =
	    "SELECT address, refuse_own_from FROM accounts WHERE address = ?1"
	    " UNION ALL SELECT a.address, a.refuse_own_from FROM aliases l"
	    " JOIN accounts a ON a.id = l.account_id WHERE l.alias = ?1"
	    " LIMIT 1";
	char key[STORE_ADDRESS_MAX + 1];
	struct sql_stmt *stmt;
	int r;

	*account_r = NULL;
	*on_r = 0;
	if (store_lookup_key(address, key) != 0 || strchr(key, '@') == NULL)
		return 1;
	stmt = store_stmt(st, query, SQL_LOCK_NONE, error_r, "t", key);
	if (stmt == NULL)
		return -1;
	if ((r = sql_step(stmt, error_r)) == 1) {
		*account_r = xstrdup(sql_col_text(stmt, 0));
		*on_r = sql_col_int64(stmt, 1) != 0;
	}
	sql_reset(stmt);
	return r == 1 ? 0 : r < 0 ? -1 : 1;
}
