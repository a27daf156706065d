/*
 * sql_pgsql: the PostgreSQL driver of sql.h ("postgresql:CONNINFO"), for
 * several nodes that share one state.
 *
 * One connection per handle; a handle belongs to one backend worker
 * thread (store.h), so the workers are the connection pool and libpq's
 * blocking calls never run on an event loop. Statements are prepared on
 * the server once per connection (PQprepare, ?N rewritten to $N) and run
 * with PQexecPrepared; after a reconnect they are prepared again when
 * next used.
 *
 * Failures: a call that finds the connection broken returns -1 with a
 * "postgresql: ..." error (the back side answers 4xx); the next call
 * resets the connection, so a node recovers by itself when the database
 * returns. connect_timeout and statement_timeout bound every call.
 *
 * Write transactions are READ COMMITTED: a statement after a lock sees
 * what the lock holder committed, so the callers lock what they read
 * (sql.h: row locks, named advisory locks).
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "sql.h"
#include "sql_private.h"

#define SQL_PGSQL_CONNECT_TIMEOUT	"5"	/* seconds */
#define SQL_PGSQL_OPTIONS		"-c statement_timeout=10000"
#define SQL_PGSQL_PARAMS_MAX		16
/* After a failed reconnect, calls fail at once for this long: a
 * database that drops packets would otherwise hold every worker for
 * connect_timeout on every request. */
#define SQL_PGSQL_RETRY_MS		1000
#define SQL_PGSQL_SLOW_MS		100	/* a reconnect that failed slowly */
#define SQL_PGSQL_SQLSTATE_UNIQUE	"23505"

struct sql_pgsql {
	struct sql_db	 db;	/* first: sql.c sees only this */
	PGconn		*conn;
	unsigned int	 gen;	/* connections made: 1 the first */
	unsigned int	 next_name;
	int64_t		 retry_after;	/* monotonic ms; 0: reconnect now */
	char		 down_why[256];	/* why the last reconnect failed */
};

struct sql_pgsql_stmt {
	struct sql_stmt	 s;	/* first */
	char		 name[16];
	char		*text;		/* with $N and the lock clause */
	unsigned int	 gen;		/* prepared on this connection */
	int		 nparams;
	int		 repeatable;
	const char	*v[SQL_PGSQL_PARAMS_MAX];
	char		 num[SQL_PGSQL_PARAMS_MAX][24];
	PGresult	*res;
	int		 row;		/* the current row, -1 before */
};

static struct sql_pgsql *
sql_pgsql_db(struct sql_db *db)
{
	return (struct sql_pgsql *)db;
}

static struct sql_pgsql_stmt *
sql_pgsql_stmt(struct sql_stmt *s)
{
	return (struct sql_pgsql_stmt *)s;
}

/* libpq's message on one line. */
static const char *
sql_pgsql_message(const char *msg, char *buf, size_t size)
{
	size_t len;

	xstrlcpy(buf, msg == NULL || *msg == '\0' ? "unknown error" : msg,
	    size);
	len = strlen(buf);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	for (char *c = buf; *c != '\0'; c++)
		if (*c == '\n' || *c == '\r' || *c == '\t')
			*c = ' ';
	return buf;
}

static int
sql_pgsql_fail(struct sql_pgsql *sp, const char *what, const char *msg,
    const char **error_r)
{
	char buf[512];

	if (PQstatus(sp->conn) != CONNECTION_OK)
		return sql_set_error(&sp->db, error_r, "postgresql: database "
		    "unreachable (%s): %s", what,
		    sql_pgsql_message(msg, buf, sizeof(buf)));
	return sql_set_error(&sp->db, error_r, "postgresql: %s: %s", what,
	    sql_pgsql_message(msg, buf, sizeof(buf)));
}

static int64_t
sql_pgsql_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Before each call: a connection found broken by the previous call is
 * reset here (a blocking reconnect, bounded by connect_timeout), at
 * most once per SQL_PGSQL_RETRY_MS. The kept statements are prepared
 * again on the new connection as they are used (gen).
 */
/*
 * An idle connection the server has ended (a restart, a failover,
 * pg_terminate_backend) has its end of file waiting on the socket: read
 * it now, so the connection is made again before a statement is sent on
 * it rather than after (a write sent on a dead connection cannot be sent
 * again: it may have been done).
 */
static void
sql_pgsql_check_idle(struct sql_pgsql *sp)
{
	struct pollfd pfd = { .fd = PQsocket(sp->conn), .events = POLLIN };

	if (pfd.fd < 0 || PQtransactionStatus(sp->conn) != PQTRANS_IDLE)
		return;
	if (poll(&pfd, 1, 0) > 0 && (!PQconsumeInput(sp->conn) ||
	    PQstatus(sp->conn) != CONNECTION_OK))
		log_debug("store: postgresql connection found closed");
}

static int
sql_pgsql_ready(struct sql_pgsql *sp, const char **error_r)
{
	int64_t now;

	if (PQstatus(sp->conn) == CONNECTION_OK)
		sql_pgsql_check_idle(sp);
	if (PQstatus(sp->conn) == CONNECTION_OK)
		return 0;
	now = sql_pgsql_now_ms();
	if (sp->retry_after != 0 && now < sp->retry_after)
		return sql_pgsql_fail(sp, "reconnect", sp->down_why, error_r);
	PQreset(sp->conn);
	sp->gen++;
	if (PQstatus(sp->conn) != CONNECTION_OK) {
		(void)sql_pgsql_message(PQerrorMessage(sp->conn),
		    sp->down_why, sizeof(sp->down_why));
		/* only a slow failure (a timeout) is worth not repeating: a
		 * refused connection is tried again at the next call */
		if (sql_pgsql_now_ms() - now >= SQL_PGSQL_SLOW_MS)
			sp->retry_after = sql_pgsql_now_ms() +
			    SQL_PGSQL_RETRY_MS;
		return sql_pgsql_fail(sp, "reconnect", sp->down_why, error_r);
	}
	sp->retry_after = 0;
	log_info("store: postgresql connection re-established");
	return 0;
}

static const char *
sql_pgsql_type_name(enum sql_type type)
{
	switch (type) {
	case SQL_TYPE_ID:
	case SQL_TYPE_ROWID:
		return "BIGSERIAL PRIMARY KEY";
	case SQL_TYPE_INT64:
		break;
	}
	return "BIGINT";
}

/*
 * ?N to $N, outside string literals and quoted names; a lone '?' stays
 * (PostgreSQL then refuses the query). The number of parameters is the
 * highest N.
 */
char *
sql_pgsql_rewrite(const char *query, enum sql_row_lock lock, int *nparams_r)
{
	struct str out;
	char quote = '\0', *text;

	str_init(&out);
	*nparams_r = 0;
	for (const char *p = query; *p != '\0'; p++) {
		if (quote != '\0') {
			if (*p == quote)
				quote = '\0';
			str_append_c(&out, *p);
			continue;
		}
		if (*p == '\'' || *p == '"') {
			quote = *p;
			str_append_c(&out, *p);
			continue;
		}
		if (*p == '?' && p[1] >= '0' && p[1] <= '9') {
			int n = 0;

			str_append_c(&out, '$');
			while (p[1] >= '0' && p[1] <= '9') {
				p++;
				if (n < 10000)
					n = n * 10 + (*p - '0');
				str_append_c(&out, *p);
			}
			if (n > *nparams_r)
				*nparams_r = n;
			continue;
		}
		str_append_c(&out, *p);
	}
	if (lock == SQL_LOCK_UPDATE)
		str_append(&out, " FOR UPDATE");
	else if (lock == SQL_LOCK_NO_KEY_UPDATE)
		str_append(&out, " FOR NO KEY UPDATE");
	text = xstrdup(str_c(&out));
	str_deinit(&out);
	return text;
}

static struct sql_stmt *
sql_pgsql_prepare(struct sql_db *db, const char *query,
    enum sql_row_lock lock, const char **error_r)
{
	struct sql_pgsql *sp = sql_pgsql_db(db);
	struct sql_pgsql_stmt *st;
	int n;
	char *text = sql_pgsql_rewrite(query, lock, &n);

	if (n > SQL_PGSQL_PARAMS_MAX) {
		free(text);
		(void)sql_set_error(db, error_r, "postgresql: prepare: more "
		    "than %d parameters", SQL_PGSQL_PARAMS_MAX);
		return NULL;
	}
	st = xcalloc(1, sizeof(*st));
	st->text = text;
	st->nparams = n;
	st->row = -1;
	/* A statement that may be sent again when the connection was found
	 * dead outside a transaction: it reads or sets absolute values, so
	 * running it twice does what running it once does. (An INSERT is
	 * never repeated: the first may have been committed.) */
	st->repeatable = strncmp(text, "SELECT ", 7) == 0 ||
	    strncmp(text, "UPDATE ", 7) == 0 ||
	    strncmp(text, "DELETE ", 7) == 0;
	(void)snprintf(st->name, sizeof(st->name), "sk%u", ++sp->next_name);
	/* prepared on the server at the first step (lazily, as after a
	 * reconnect) */
	return &st->s;
}

static void
sql_pgsql_finalize(struct sql_stmt *s)
{
	struct sql_pgsql_stmt *st = sql_pgsql_stmt(s);

	PQclear(st->res);
	free(st->text);
	free(st);
}

static int
sql_pgsql_param_count(struct sql_stmt *s)
{
	return sql_pgsql_stmt(s)->nparams;
}

static void
sql_pgsql_bind_int64(struct sql_stmt *s, int n, int64_t value)
{
	struct sql_pgsql_stmt *st = sql_pgsql_stmt(s);

	if (n < 1 || n > st->nparams)
		return;
	(void)snprintf(st->num[n - 1], sizeof(st->num[n - 1]), "%" PRId64,
	    value);
	st->v[n - 1] = st->num[n - 1];
}

static void
sql_pgsql_bind_text(struct sql_stmt *s, int n, const char *value)
{
	struct sql_pgsql_stmt *st = sql_pgsql_stmt(s);

	if (n < 1 || n > st->nparams)
		return;
	st->v[n - 1] = value;
}

/* Prepare on this connection if not yet. */
static int
sql_pgsql_server_prepare(struct sql_pgsql *sp, struct sql_pgsql_stmt *st,
    const char **error_r)
{
	PGresult *res;

	if (st->gen == sp->gen)
		return 0;
	res = PQprepare(sp->conn, st->name, st->text, st->nparams, NULL);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		(void)sql_pgsql_fail(sp, "prepare", res == NULL ?
		    PQerrorMessage(sp->conn) : PQresultErrorMessage(res),
		    error_r);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	st->gen = sp->gen;
	sp->db.prepares++;
	return 0;
}

static PGresult *
sql_pgsql_exec(struct sql_pgsql *sp, struct sql_pgsql_stmt *st,
    const char **error_r)
{
	if (sql_pgsql_server_prepare(sp, st, error_r) < 0)
		return NULL;
	return PQexecPrepared(sp->conn, st->name, st->nparams, st->v, NULL,
	    NULL, 0);
}

/*
 * Run the statement at its first step. A connection that died while
 * idle (the server restarted, or the backend was terminated, since the
 * last call) is only found out by using it: a repeatable statement is
 * then sent once more on a fresh connection, so the first request after
 * the database returns does not fail.
 */
static int
sql_pgsql_run(struct sql_pgsql *sp, struct sql_pgsql_stmt *st,
    const char **error_r)
{
	PGresult *res;
	ExecStatusType status;
	const char *state;
	int idle;

	if (sql_pgsql_ready(sp, error_r) < 0)
		return -1;
	idle = PQtransactionStatus(sp->conn) == PQTRANS_IDLE;
	res = sql_pgsql_exec(sp, st, error_r);
	if (idle && PQstatus(sp->conn) == CONNECTION_BAD && st->repeatable) {
		PQclear(res);
		if (sql_pgsql_ready(sp, error_r) < 0)
			return -1;
		res = sql_pgsql_exec(sp, st, error_r);
	}
	if (res == NULL) {
		if (PQstatus(sp->conn) != CONNECTION_OK ||
		    st->gen == sp->gen)
			(void)sql_pgsql_fail(sp, "query",
			    PQerrorMessage(sp->conn), error_r);
		return -1;
	}
	status = PQresultStatus(res);
	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
		st->res = res;
		st->row = -1;
		return 0;
	}
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state != NULL && strcmp(state, SQL_PGSQL_SQLSTATE_UNIQUE) == 0)
		sp->db.unique_violation = 1;
	(void)sql_pgsql_fail(sp, "query", PQresultErrorMessage(res), error_r);
	PQclear(res);
	return -1;
}

static int
sql_pgsql_step(struct sql_stmt *s, const char **error_r)
{
	struct sql_pgsql_stmt *st = sql_pgsql_stmt(s);
	struct sql_pgsql *sp = sql_pgsql_db(s->db);

	if (st->res == NULL && sql_pgsql_run(sp, st, error_r) < 0)
		return -1;
	if (st->row + 1 < PQntuples(st->res)) {
		st->row++;
		return 1;
	}
	st->row = PQntuples(st->res);
	return 0;
}

static int
sql_pgsql_row_ok(struct sql_pgsql_stmt *st, int col)
{
	return st->res != NULL && st->row >= 0 &&
	    st->row < PQntuples(st->res) && col >= 0 &&
	    col < PQnfields(st->res);
}

static int
sql_pgsql_col_is_null(struct sql_stmt *s, int col)
{
	struct sql_pgsql_stmt *st = sql_pgsql_stmt(s);

	return !sql_pgsql_row_ok(st, col) ||
	    PQgetisnull(st->res, st->row, col);
}

static const char *
sql_pgsql_col_text(struct sql_stmt *s, int col)
{
	struct sql_pgsql_stmt *st = sql_pgsql_stmt(s);

	if (sql_pgsql_col_is_null(s, col))
		return "";
	return PQgetvalue(st->res, st->row, col);
}

static int64_t
sql_pgsql_col_int64(struct sql_stmt *s, int col)
{
	return strtoll(sql_pgsql_col_text(s, col), NULL, 10);
}

static int64_t
sql_pgsql_changes(struct sql_stmt *s)
{
	struct sql_pgsql_stmt *st = sql_pgsql_stmt(s);

	return st->res == NULL ? 0 : strtoll(PQcmdTuples(st->res), NULL, 10);
}

static void
sql_pgsql_reset(struct sql_stmt *s)
{
	struct sql_pgsql_stmt *st = sql_pgsql_stmt(s);

	PQclear(st->res);
	st->res = NULL;
	st->row = -1;
	memset(st->v, 0, sizeof(st->v));
}

/* A statement without parameters or rows (BEGIN, COMMIT, ...). */
static int
sql_pgsql_command(struct sql_pgsql *sp, const char *sql, const char *what,
    const char **error_r)
{
	PGresult *res = PQexec(sp->conn, sql);
	int ok = res != NULL && (PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK);

	if (!ok)
		(void)sql_pgsql_fail(sp, what, res == NULL ?
		    PQerrorMessage(sp->conn) : PQresultErrorMessage(res),
		    error_r);
	PQclear(res);
	return ok ? 0 : -1;
}

static int
sql_pgsql_begin(struct sql_db *db, enum sql_tx tx, const char **error_r)
{
	struct sql_pgsql *sp = sql_pgsql_db(db);
	/* a read sees one snapshot; a write is READ COMMITTED and locks
	 * what it reads */
	const char *sql = tx == SQL_TX_READ ?
	    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN";
	int r;

	if (sql_pgsql_ready(sp, error_r) < 0)
		return -1;
	r = sql_pgsql_command(sp, sql, "begin", error_r);
	if (r < 0 && PQstatus(sp->conn) == CONNECTION_BAD) {
		/* found dead while idle: BEGIN may be sent again */
		if (sql_pgsql_ready(sp, error_r) < 0)
			return -1;
		r = sql_pgsql_command(sp, sql, "begin", error_r);
	}
	return r;
}

static void sql_pgsql_rollback(struct sql_db *db);

static int
sql_pgsql_commit(struct sql_db *db, const char **error_r)
{
	struct sql_pgsql *sp = sql_pgsql_db(db);

	/* COMMIT of a failed transaction "succeeds" as a ROLLBACK */
	if (PQtransactionStatus(sp->conn) == PQTRANS_INERROR) {
		sql_pgsql_rollback(db);
		return sql_set_error(db, error_r, "postgresql: commit: the "
		    "transaction failed; nothing was kept");
	}
	return sql_pgsql_command(sp, "COMMIT", "commit", error_r);
}

static void
sql_pgsql_rollback(struct sql_db *db)
{
	struct sql_pgsql *sp = sql_pgsql_db(db);
	PGresult *res;

	if (PQstatus(sp->conn) == CONNECTION_OK &&
	    PQtransactionStatus(sp->conn) != PQTRANS_IDLE) {
		res = PQexec(sp->conn, "ROLLBACK");
		PQclear(res);
	}
}

static int
sql_pgsql_lock_name(struct sql_db *db, int64_t key, const char **error_r)
{
	static const char query[] = "SELECT pg_advisory_xact_lock(?1)";
	struct sql_stmt *stmt = sql_prepare(db, query, error_r);

	if (stmt == NULL)
		return -1;
	sql_bind_int64(stmt, 1, key);
	return sql_run(stmt, NULL, error_r);
}

static int
sql_pgsql_exec_script(struct sql_db *db, const char *script,
    const char **error_r)
{
	struct sql_pgsql *sp = sql_pgsql_db(db);
	PGresult *res = PQexec(sp->conn, script);
	int ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
	char buf[512];

	if (!ok)
		(void)sql_set_error(db, error_r, "postgresql: %s",
		    sql_pgsql_message(res == NULL ? PQerrorMessage(sp->conn) :
		    PQresultErrorMessage(res), buf, sizeof(buf)));
	PQclear(res);
	return ok ? 0 : -1;
}

/* Server notices (e.g. "relation ... already exists, skipping") go to
 * the debug log, not to stderr where libpq would print them. */
static void
sql_pgsql_notice(void *arg, const char *message)
{
	char buf[512];

	(void)arg;
	log_debug("store: postgresql: %s",
	    sql_pgsql_message(message, buf, sizeof(buf)));
}

static void
sql_pgsql_close(struct sql_db *db)
{
	struct sql_pgsql *sp = sql_pgsql_db(db);

	PQfinish(sp->conn);
	free(sp);
}

static struct sql_db *
sql_pgsql_open(const char *conninfo, const char **error_r)
{
	/* Our defaults first: the operator's conninfo, expanded in place
	 * of dbname, overrides them. */
	const char *const keys[] = { "connect_timeout", "options",
	    "application_name", "dbname", NULL };
	const char *values[] = { SQL_PGSQL_CONNECT_TIMEOUT,
	    SQL_PGSQL_OPTIONS, "sekisho", conninfo, NULL };
	struct sql_pgsql *sp;
	struct str uri;
	char buf[512];

	if (*conninfo == '\0') {
		sql_open_error(error_r, "postgresql: no connection string "
		    "given (store = postgresql:CONNINFO)");
		return NULL;
	}
	/* "postgresql://..." is a libpq URI as a whole. */
	str_init(&uri);
	if (strncmp(conninfo, "//", 2) == 0) {
		str_printf(&uri, "postgresql:%s", conninfo);
		values[3] = str_c(&uri);
	}
	sp = xcalloc(1, sizeof(*sp));
	sql_db_init(&sp->db, &sql_driver_pgsql);
	sp->conn = PQconnectdbParams(keys, values, 1);
	sp->gen = 1;
	str_deinit(&uri);
	if (sp->conn == NULL || PQstatus(sp->conn) != CONNECTION_OK) {
		/* The message may name the host, never the password. */
		sql_open_error(error_r, "postgresql: cannot connect: %s",
		    sql_pgsql_message(sp->conn == NULL ? "out of memory" :
		    PQerrorMessage(sp->conn), buf, sizeof(buf)));
		PQfinish(sp->conn);
		str_deinit(&sp->db.error);
		free(sp);
		return NULL;
	}
	(void)PQsetNoticeProcessor(sp->conn, sql_pgsql_notice, NULL);
	return &sp->db;
}

const struct sql_driver sql_driver_pgsql = {
	.scheme = "postgresql",
	.open = sql_pgsql_open,
	.close = sql_pgsql_close,
	.type_name = sql_pgsql_type_name,
	.prepare = sql_pgsql_prepare,
	.finalize = sql_pgsql_finalize,
	.param_count = sql_pgsql_param_count,
	.bind_int64 = sql_pgsql_bind_int64,
	.bind_text = sql_pgsql_bind_text,
	.step = sql_pgsql_step,
	.col_int64 = sql_pgsql_col_int64,
	.col_text = sql_pgsql_col_text,
	.col_is_null = sql_pgsql_col_is_null,
	.changes = sql_pgsql_changes,
	.reset = sql_pgsql_reset,
	.begin = sql_pgsql_begin,
	.commit = sql_pgsql_commit,
	.rollback = sql_pgsql_rollback,
	.lock_name = sql_pgsql_lock_name,
	.exec_script = sql_pgsql_exec_script,
};
