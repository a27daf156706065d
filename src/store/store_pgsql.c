/*
 * store_pgsql: the account store in PostgreSQL ("postgresql:CONNINFO"),
 * for several nodes that share one state.
 *
 * One connection per handle; a handle belongs to one backend worker
 * thread (store.h), so the workers are the connection pool and libpq's
 * blocking calls never run on an event loop. Every value is a parameter
 * of PQexecParams; no SQL is ever built from text.
 *
 * Failures: a call that finds the connection broken returns -1 with a
 * "postgresql: ..." error (the back side answers 4xx); the next call
 * resets the connection, so a node recovers by itself when the database
 * returns. connect_timeout and statement_timeout bound every call.
 *
 * Check-then-write operations (send counters, throttling, alias and
 * account creation) lock what they read in the same transaction, so
 * they are correct with writers on other nodes: READ COMMITTED takes a
 * new snapshot per statement, and a statement after the lock sees what
 * the lock holder committed.
 *
 * The schema is the SQLite one (store_sqlite.c) step for step, with
 * PostgreSQL types; the version numbers are the same.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "store.h"
#include "store_impl.h"

#define STORE_PGSQL_CONNECT_TIMEOUT	"5"	/* seconds */
#define STORE_PGSQL_OPTIONS		"-c statement_timeout=10000"
#define STORE_PGSQL_PARAMS_MAX		12
/* After a failed reconnect, calls fail at once for this long: a
 * database that drops packets would otherwise hold every worker for
 * connect_timeout on every request. */
#define STORE_PGSQL_RETRY_MS		1000
/* Serializes writers of the address namespace (accounts and aliases
 * must not share a name) and schema upgrades, across nodes. */
#define STORE_PGSQL_LOCK_NAMES		"7001"
#define STORE_PGSQL_LOCK_SCHEMA		"7002"
#define STORE_PGSQL_SQLSTATE_UNIQUE	"23505"

/* migrations[i] takes the schema from version i to i + 1, as in
 * store_sqlite.c. Append, never edit. */
static const char *const store_pgsql_migrations[] = {
	/* 1: domains, accounts, aliases. BIGSERIAL never hands out an
	 * id twice. */
	"CREATE TABLE domains ("
	"  id BIGSERIAL PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE);"
	"CREATE TABLE accounts ("
	"  id BIGSERIAL PRIMARY KEY,"
	"  address TEXT NOT NULL UNIQUE,"
	"  domain_id BIGINT NOT NULL REFERENCES domains(id),"
	"  password_hash TEXT NOT NULL,"
	"  suspended INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),"
	"  suspend_reason TEXT,"
	"  created BIGINT NOT NULL);"
	"CREATE INDEX accounts_domain_id ON accounts(domain_id);"
	"CREATE TABLE aliases ("
	"  id BIGSERIAL PRIMARY KEY,"
	"  alias TEXT NOT NULL UNIQUE,"
	"  domain_id BIGINT NOT NULL REFERENCES domains(id),"
	"  account_id BIGINT NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE);"
	"CREATE INDEX aliases_domain_id ON aliases(domain_id);"
	"CREATE INDEX aliases_account_id ON aliases(account_id);",
	/* 2: APOP secrets (RFC 1939 7), sealed by the caller. */
	"CREATE TABLE apop_secrets ("
	"  account_id BIGINT PRIMARY KEY"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  sealed TEXT NOT NULL);",
	/* 3: the sending policy. */
	"ALTER TABLE accounts ADD COLUMN overseas_until BIGINT NOT NULL"
	"  DEFAULT 0;"
	"CREATE TABLE account_limits ("
	"  account_id BIGINT PRIMARY KEY"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  msgs_day BIGINT, rcpts_day BIGINT, rcpts_hour BIGINT,"
	"  rcpts_msg BIGINT, overseas_rcpts_day BIGINT,"
	"  any_sender INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE send_counters ("
	"  account_id BIGINT NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  period TEXT NOT NULL,"
	"  msgs BIGINT NOT NULL DEFAULT 0,"
	"  rcpts BIGINT NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (account_id, period));"
	"CREATE TABLE events ("
	"  id BIGSERIAL PRIMARY KEY,"
	"  time BIGINT NOT NULL, account TEXT, type TEXT NOT NULL,"
	"  ip TEXT, country TEXT, detail TEXT);"
	"CREATE INDEX events_account_time ON events(account, time);"
	"CREATE INDEX events_time ON events(time);"
	"CREATE TABLE notices (key TEXT PRIMARY KEY, time BIGINT NOT NULL);"
	"CREATE TABLE submissions ("
	"  queue_id TEXT PRIMARY KEY, message_id TEXT,"
	"  time BIGINT NOT NULL, account TEXT NOT NULL, ip TEXT,"
	"  country TEXT, tls TEXT, rcpts BIGINT NOT NULL,"
	"  size BIGINT NOT NULL, overseas INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX submissions_message_id ON submissions(message_id);"
	"CREATE INDEX submissions_account_time ON submissions(account, time);"
	"CREATE TABLE auth_throttle ("
	"  key TEXT PRIMARY KEY, failures BIGINT NOT NULL,"
	"  window_start BIGINT NOT NULL,"
	"  locked_until BIGINT NOT NULL DEFAULT 0);",
	/* 4: per-account trusted relay name suffixes (docs/policy.md) */
	"ALTER TABLE account_limits ADD COLUMN relay_names TEXT;",
	/* 5: settings page sessions, API token hashes, admin accounts,
	 * POP3 mailbox leases, POP-before-SMTP windows. */
	"CREATE TABLE portal_sessions ("
	"  id_hash TEXT PRIMARY KEY, account TEXT NOT NULL,"
	"  csrf TEXT NOT NULL, created BIGINT NOT NULL,"
	"  expires BIGINT NOT NULL);"
	"CREATE INDEX portal_sessions_account ON portal_sessions(account);"
	"CREATE INDEX portal_sessions_expires ON portal_sessions(expires);"
	"CREATE TABLE api_tokens ("
	"  name TEXT PRIMARY KEY, hash TEXT NOT NULL,"
	"  created BIGINT NOT NULL);"
	"CREATE TABLE admin_users ("
	"  name TEXT PRIMARY KEY, password_hash TEXT NOT NULL,"
	"  created BIGINT NOT NULL);"
	"CREATE TABLE pop3_locks ("
	"  mailbox TEXT PRIMARY KEY, node TEXT NOT NULL,"
	"  session TEXT NOT NULL, expires BIGINT NOT NULL);"
	"CREATE TABLE pop_before_smtp ("
	"  client TEXT PRIMARY KEY, account TEXT NOT NULL,"
	"  expires BIGINT NOT NULL);"
	"CREATE INDEX pop_before_smtp_expires ON pop_before_smtp(expires);",
	/* 6: where each login name logged in lately (issue 13) */
	"CREATE TABLE auth_trusted ("
	"  name TEXT NOT NULL, client TEXT NOT NULL,"
	"  last_ok BIGINT NOT NULL,"
	"  PRIMARY KEY (name, client));"
	"CREATE INDEX auth_trusted_last_ok ON auth_trusted(last_ok);",
};
#define STORE_PGSQL_VERSION \
	((int)(sizeof(store_pgsql_migrations) / sizeof(store_pgsql_migrations[0])))

struct store_pgsql {
	struct store	 st;	/* first: store.c sees only this */
	PGconn		*conn;
	char		 sqlstate[6];	/* of the last failed statement */
	int64_t		 retry_after;	/* monotonic ms; 0: reconnect now */
	char		 down_why[256];	/* why the last reconnect failed */
};

/* Text parameters; NULL is SQL NULL. Numbers are formatted in place. */
struct store_pgsql_params {
	const char	*v[STORE_PGSQL_PARAMS_MAX];
	char		 num[STORE_PGSQL_PARAMS_MAX][24];
	int		 n;
};

static struct store_pgsql *
store_pgsql_handle(struct store *st)
{
	return (struct store_pgsql *)st;
}

static void
store_pgsql_text(struct store_pgsql_params *p, const char *s)
{
	if (p->n < STORE_PGSQL_PARAMS_MAX)
		p->v[p->n++] = s;
}

static void
store_pgsql_int(struct store_pgsql_params *p, int64_t i)
{
	if (p->n >= STORE_PGSQL_PARAMS_MAX)
		return;
	(void)snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, i);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

/* A limit override: < 0 (the config default) is NULL. */
static void
store_pgsql_limit(struct store_pgsql_params *p, int64_t i)
{
	if (i < 0)
		store_pgsql_text(p, NULL);
	else
		store_pgsql_int(p, i);
}

/* libpq's message without its trailing newline. */
static const char *
store_pgsql_message(const char *msg, char *buf, size_t size)
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
store_pgsql_fail(struct store_pgsql *sp, const char *what, const char *msg,
    const char **error_r)
{
	char buf[512];

	if (PQstatus(sp->conn) != CONNECTION_OK)
		store_set_error(&sp->st, error_r, "postgresql: database "
		    "unreachable (%s): %s", what,
		    store_pgsql_message(msg, buf, sizeof(buf)));
	else
		store_set_error(&sp->st, error_r, "postgresql: %s: %s", what,
		    store_pgsql_message(msg, buf, sizeof(buf)));
	return -1;
}

static int64_t
store_pgsql_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Before each call: a connection found broken by the previous call is
 * reset here (a blocking reconnect, bounded by connect_timeout), at
 * most once per STORE_PGSQL_RETRY_MS.
 */
static int
store_pgsql_ready(struct store_pgsql *sp, const char **error_r)
{
	int64_t now;

	if (PQstatus(sp->conn) == CONNECTION_OK)
		return 0;
	now = store_pgsql_now_ms();
	if (sp->retry_after != 0 && now < sp->retry_after)
		return store_pgsql_fail(sp, "reconnect", sp->down_why,
		    error_r);
	PQreset(sp->conn);
	if (PQstatus(sp->conn) != CONNECTION_OK) {
		(void)store_pgsql_message(PQerrorMessage(sp->conn),
		    sp->down_why, sizeof(sp->down_why));
		sp->retry_after = store_pgsql_now_ms() + STORE_PGSQL_RETRY_MS;
		return store_pgsql_fail(sp, "reconnect", sp->down_why,
		    error_r);
	}
	sp->retry_after = 0;
	log_info("store: postgresql connection re-established");
	return 0;
}

/*
 * A statement that may be sent again when the connection was found
 * dead outside a transaction: it reads, starts a transaction, or sets
 * absolute values, so running it twice does what running it once does.
 * (An INSERT is never repeated: the first may have been committed.)
 */
static int
store_pgsql_repeatable(const char *sql)
{
	return strncmp(sql, "SELECT ", 7) == 0 || strcmp(sql, "BEGIN") == 0 ||
	    strncmp(sql, "UPDATE ", 7) == 0 || strncmp(sql, "DELETE ", 7) == 0;
}

/*
 * Run one statement. NULL on failure with the error set and sqlstate
 * kept; otherwise the result, which the caller PQclear()s.
 *
 * A connection that died while idle (the server restarted since the
 * last call) is only found out by using it: a repeatable statement is
 * then sent once more on a fresh connection, so the first request after
 * the database returns does not fail.
 */
static PGresult *
store_pgsql_exec(struct store_pgsql *sp, const char *sql,
    const struct store_pgsql_params *p, const char *what,
    const char **error_r)
{
	PGresult *res;
	ExecStatusType status;
	const char *state;
	int idle = PQtransactionStatus(sp->conn) == PQTRANS_IDLE;

	sp->sqlstate[0] = '\0';
	res = PQexecParams(sp->conn, sql, p == NULL ? 0 : p->n, NULL,
	    p == NULL ? NULL : p->v, NULL, NULL, 0);
	if (idle && PQstatus(sp->conn) == CONNECTION_BAD &&
	    store_pgsql_repeatable(sql)) {
		PQclear(res);
		if (store_pgsql_ready(sp, error_r) < 0)
			return NULL;
		res = PQexecParams(sp->conn, sql, p == NULL ? 0 : p->n, NULL,
		    p == NULL ? NULL : p->v, NULL, NULL, 0);
	}
	if (res == NULL) {
		(void)store_pgsql_fail(sp, what, PQerrorMessage(sp->conn),
		    error_r);
		return NULL;
	}
	status = PQresultStatus(res);
	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
		return res;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state != NULL)
		xstrlcpy(sp->sqlstate, state, sizeof(sp->sqlstate));
	(void)store_pgsql_fail(sp, what, PQresultErrorMessage(res), error_r);
	PQclear(res);
	return NULL;
}

/* A statement whose result is not needed: 0 or -1. With changed_r, the
 * number of rows it changed. */
static int
store_pgsql_run(struct store_pgsql *sp, const char *sql,
    const struct store_pgsql_params *p, const char *what, long *changed_r,
    const char **error_r)
{
	PGresult *res = store_pgsql_exec(sp, sql, p, what, error_r);

	if (res == NULL)
		return -1;
	if (changed_r != NULL)
		*changed_r = strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}

static int
store_pgsql_begin(struct store_pgsql *sp, const char **error_r)
{
	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	return store_pgsql_run(sp, "BEGIN", NULL, "begin", NULL, error_r);
}

static int
store_pgsql_commit(struct store_pgsql *sp, const char **error_r)
{
	return store_pgsql_run(sp, "COMMIT", NULL, "commit", NULL, error_r);
}

/* Undo after an error, keeping the error already set. Returns ret. */
static int
store_pgsql_rollback(struct store_pgsql *sp, int ret)
{
	PGresult *res;

	if (PQstatus(sp->conn) == CONNECTION_OK &&
	    PQtransactionStatus(sp->conn) != PQTRANS_IDLE) {
		res = PQexec(sp->conn, "ROLLBACK");
		PQclear(res);
	}
	return ret;
}

/* The first column of the first row as an integer: 0 found, 1 no row,
 * -1 error. */
static int
store_pgsql_find_id(struct store_pgsql *sp, const char *sql, const char *key,
    int64_t *id_r, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };
	PGresult *res;
	int ret = 1;

	store_pgsql_text(&p, key);
	if ((res = store_pgsql_exec(sp, sql, &p, "look-up", error_r)) == NULL)
		return -1;
	if (PQntuples(res) > 0) {
		*id_r = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		ret = 0;
	}
	PQclear(res);
	return ret;
}

static char *
store_pgsql_strdup(PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return xstrdup(PQgetvalue(res, row, col));
}

static int64_t
store_pgsql_value(PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Rows as "col\tcol...\n" lines (NULL as ""), in result order or, with
 * reverse, last row first (queries ordered newest first, shown newest
 * last). */
static void
store_pgsql_rows(PGresult *res, int reverse, struct str *out)
{
	int rows = PQntuples(res), cols = PQnfields(res);

	for (int i = 0; i < rows; i++) {
		int r = reverse ? rows - 1 - i : i;

		for (int c = 0; c < cols; c++) {
			if (c > 0)
				str_append_c(out, '\t');
			if (!PQgetisnull(res, r, c)) {
				const char *v = PQgetvalue(res, r, c);

				/* a TAB or line end inside a value would cut
				 * the row differently (a forged row) */
				for (; *v != '\0'; v++)
					str_append_c(out, *v == '\t' ||
					    *v == '\n' || *v == '\r' ? ' ' : *v);
			}
		}
		str_append_c(out, '\n');
	}
}

/* A listing query: rows appended to out. */
static int
store_pgsql_list_query(struct store_pgsql *sp, const char *sql,
    const struct store_pgsql_params *p, int reverse, const char *what,
    struct str *out, const char **error_r)
{
	PGresult *res;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	if ((res = store_pgsql_exec(sp, sql, p, what, error_r)) == NULL)
		return -1;
	store_pgsql_rows(res, reverse, out);
	PQclear(res);
	return 0;
}

/* A one-statement change keyed by text: 0 some rows, 1 none, -1. */
static int
store_pgsql_change(struct store_pgsql *sp, const char *sql,
    const struct store_pgsql_params *p, const char *what,
    const char **error_r)
{
	long changed = 0;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	if (store_pgsql_run(sp, sql, p, what, &changed, error_r) < 0)
		return -1;
	return changed > 0 ? 0 : 1;
}

/* ---- open, close, schema -------------------------------------------- */

/* Server notices (e.g. "relation ... already exists, skipping") go to
 * the debug log, not to stderr where libpq would print them. */
static void
store_pgsql_notice(void *arg, const char *message)
{
	char buf[512];

	(void)arg;
	log_debug("store: postgresql: %s",
	    store_pgsql_message(message, buf, sizeof(buf)));
}

static void
store_pgsql_close(struct store *st)
{
	struct store_pgsql *sp = store_pgsql_handle(st);

	PQfinish(sp->conn);
	free(sp);
}

static struct store *
store_pgsql_open(const char *conninfo, const char **error_r)
{
	/* Our defaults first: the operator's conninfo, expanded in place
	 * of dbname, overrides them. */
	const char *const keys[] = { "connect_timeout", "options",
	    "application_name", "dbname", NULL };
	const char *values[] = { STORE_PGSQL_CONNECT_TIMEOUT,
	    STORE_PGSQL_OPTIONS, "sekisho", conninfo, NULL };
	struct store_pgsql *sp;
	struct str uri;
	char buf[512];

	if (*conninfo == '\0') {
		store_open_error(error_r, "postgresql: no connection string "
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
	store_base_init(&sp->st, &store_pgsql_ops);
	sp->conn = PQconnectdbParams(keys, values, 1);
	str_deinit(&uri);
	if (sp->conn == NULL || PQstatus(sp->conn) != CONNECTION_OK) {
		/* The message may name the host, never the password. */
		store_open_error(error_r, "postgresql: cannot connect: %s",
		    store_pgsql_message(sp->conn == NULL ? "out of memory" :
		    PQerrorMessage(sp->conn), buf, sizeof(buf)));
		PQfinish(sp->conn);
		str_deinit(&sp->st.error);
		free(sp);
		return NULL;
	}
	(void)PQsetNoticeProcessor(sp->conn, store_pgsql_notice, NULL);
	return &sp->st;
}

static int
store_pgsql_init_schema(struct store *st, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	PGresult *res;
	int version = 0;

	if (store_pgsql_begin(sp, error_r) < 0)
		return -1;
	/* Nodes starting at once migrate once. */
	if (store_pgsql_run(sp, "SELECT pg_advisory_xact_lock("
	    STORE_PGSQL_LOCK_SCHEMA ")", NULL, "schema lock", NULL,
	    error_r) < 0 ||
	    store_pgsql_run(sp, "SET LOCAL client_min_messages = warning",
	    NULL, "schema", NULL, error_r) < 0 ||
	    store_pgsql_run(sp, "CREATE TABLE IF NOT EXISTS schema_version "
	    "(version INTEGER NOT NULL)", NULL, "schema", NULL, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	res = store_pgsql_exec(sp, "SELECT coalesce(max(version), 0) FROM "
	    "schema_version", NULL, "schema", error_r);
	if (res == NULL)
		return store_pgsql_rollback(sp, -1);
	version = (int)store_pgsql_value(res, 0, 0);
	PQclear(res);
	if (version > STORE_PGSQL_VERSION) {
		store_set_error(st, error_r, "postgresql: database schema "
		    "version %d is newer than this sekisho knows (%d)", version,
		    STORE_PGSQL_VERSION);
		return store_pgsql_rollback(sp, -1);
	}
	if (version == STORE_PGSQL_VERSION)
		return store_pgsql_commit(sp, error_r) < 0 ?
		    store_pgsql_rollback(sp, -1) : 0;
	for (int v = version; v < STORE_PGSQL_VERSION; v++) {
		/* PQexec: a step is several statements, without
		 * parameters. */
		res = PQexec(sp->conn, store_pgsql_migrations[v]);
		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
			char buf[512];

			store_set_error(st, error_r, "postgresql: schema "
			    "upgrade to version %d: %s", v + 1,
			    store_pgsql_message(res == NULL ?
			    PQerrorMessage(sp->conn) :
			    PQresultErrorMessage(res), buf, sizeof(buf)));
			PQclear(res);
			return store_pgsql_rollback(sp, -1);
		}
		PQclear(res);
	}
	store_pgsql_int(&p, STORE_PGSQL_VERSION);
	if (store_pgsql_run(sp, "DELETE FROM schema_version", NULL, "schema",
	    NULL, error_r) < 0 ||
	    store_pgsql_run(sp, "INSERT INTO schema_version (version) "
	    "VALUES ($1)", &p, "schema", NULL, error_r) < 0 ||
	    store_pgsql_commit(sp, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	return 0;
}

static int
store_pgsql_schema_version(struct store *st, int *version_r,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	PGresult *res;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	res = store_pgsql_exec(sp, "SELECT coalesce(max(version), 0) FROM "
	    "schema_version", NULL, "schema", error_r);
	if (res == NULL)
		return -1;
	*version_r = (int)store_pgsql_value(res, 0, 0);
	PQclear(res);
	return 0;
}

/* ---- domains -------------------------------------------------------- */

#define SQL_DOMAIN_ID	"SELECT id FROM domains WHERE name = $1"
#define SQL_ACCOUNT_ID	"SELECT id FROM accounts WHERE address = $1"
#define SQL_ALIAS_TARGET \
	"SELECT a.address FROM aliases l" \
	" JOIN accounts a ON a.id = l.account_id WHERE l.alias = $1"

static int
store_pgsql_domain_add(struct store *st, const char *domain,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	store_pgsql_text(&p, domain);
	if (store_pgsql_run(sp, "INSERT INTO domains (name) VALUES ($1)", &p,
	    "domain add", NULL, error_r) < 0) {
		if (strcmp(sp->sqlstate, STORE_PGSQL_SQLSTATE_UNIQUE) == 0)
			store_set_error(st, error_r, STORE_ERR_DOMAIN_EXISTS,
			    domain);
		return -1;
	}
	return 0;
}

static int
store_pgsql_domain_del(struct store *st, const char *domain,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	PGresult *res;
	long long accounts, aliases;
	int64_t id;
	int ret;

	if (store_pgsql_begin(sp, error_r) < 0)
		return -1;
	/* FOR UPDATE: an account or alias being added meanwhile holds a
	 * key-share lock on the row through its foreign key. */
	ret = store_pgsql_find_id(sp, SQL_DOMAIN_ID " FOR UPDATE", domain, &id,
	    error_r);
	if (ret != 0) {
		if (ret == 1)
			store_set_error(st, error_r, STORE_ERR_NO_DOMAIN,
			    domain);
		return store_pgsql_rollback(sp, ret);
	}
	store_pgsql_int(&p, id);
	res = store_pgsql_exec(sp,
	    "SELECT (SELECT count(*) FROM accounts WHERE domain_id = $1),"
	    " (SELECT count(*) FROM aliases WHERE domain_id = $1)", &p,
	    "domain del", error_r);
	if (res == NULL)
		return store_pgsql_rollback(sp, -1);
	accounts = store_pgsql_value(res, 0, 0);
	aliases = store_pgsql_value(res, 0, 1);
	PQclear(res);
	if (accounts > 0 || aliases > 0) {
		store_set_error(st, error_r, STORE_ERR_DOMAIN_USED, domain,
		    accounts, aliases);
		return store_pgsql_rollback(sp, -1);
	}
	if (store_pgsql_run(sp, "DELETE FROM domains WHERE id = $1", &p,
	    "domain del", NULL, error_r) < 0 ||
	    store_pgsql_commit(sp, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	return 0;
}

static int
store_pgsql_domain_exists(struct store *st, const char *domain,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	int64_t id;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	return store_pgsql_find_id(sp, SQL_DOMAIN_ID, domain, &id, error_r);
}

static int
store_pgsql_domain_list(struct store *st, struct str *out,
    const char **error_r)
{
	return store_pgsql_list_query(store_pgsql_handle(st),
	    "SELECT name FROM domains ORDER BY name", NULL, 0, "domain list",
	    out, error_r);
}

/* ---- accounts ------------------------------------------------------- */

/* In a transaction: the id of the domain of a new name, which must not
 * be taken by an alias (for an account) or an account (for an alias).
 * -1 with the error set when it cannot be added. */
static int
store_pgsql_new_name(struct store_pgsql *sp, const char *address,
    int is_alias, int64_t *domain_id_r, const char **error_r)
{
	const char *domain = store_address_domain(address);
	int64_t id;
	int ret;

	if (store_pgsql_run(sp, "SELECT pg_advisory_xact_lock("
	    STORE_PGSQL_LOCK_NAMES ")", NULL, "lock", NULL, error_r) < 0)
		return -1;
	ret = store_pgsql_find_id(sp, SQL_DOMAIN_ID, domain, domain_id_r,
	    error_r);
	if (ret != 0) {
		if (ret == 1)
			store_set_error(&sp->st, error_r, STORE_ERR_NO_DOMAIN,
			    domain);
		return -1;
	}
	ret = store_pgsql_find_id(sp, is_alias ? SQL_ACCOUNT_ID :
	    "SELECT account_id FROM aliases WHERE alias = $1", address, &id,
	    error_r);
	if (ret == 0)
		store_set_error(&sp->st, error_r, is_alias ?
		    STORE_ERR_IS_ACCOUNT : STORE_ERR_IS_ALIAS, address);
	return ret == 1 ? 0 : -1;
}

static int
store_pgsql_account_add(struct store *st, const char *address,
    const char *password_hash, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	int64_t domain_id;

	if (store_pgsql_begin(sp, error_r) < 0)
		return -1;
	if (store_pgsql_new_name(sp, address, 0, &domain_id, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	store_pgsql_text(&p, address);
	store_pgsql_int(&p, domain_id);
	store_pgsql_text(&p, password_hash);
	store_pgsql_int(&p, (int64_t)time(NULL));
	if (store_pgsql_run(sp, "INSERT INTO accounts (address, domain_id,"
	    " password_hash, suspended, suspend_reason, created)"
	    " VALUES ($1, $2, $3, 0, NULL, $4)", &p, "account add", NULL,
	    error_r) < 0) {
		if (strcmp(sp->sqlstate, STORE_PGSQL_SQLSTATE_UNIQUE) == 0)
			store_set_error(st, error_r, STORE_ERR_ACCOUNT_EXISTS,
			    address);
		return store_pgsql_rollback(sp, -1);
	}
	if (store_pgsql_commit(sp, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	return 0;
}

/* A one-statement change of an account: 1 with "no such account". */
static int
store_pgsql_account_change(struct store_pgsql *sp, const char *sql,
    const struct store_pgsql_params *p, const char *address,
    const char *what, const char **error_r)
{
	int ret = store_pgsql_change(sp, sql, p, what, error_r);

	if (ret == 1)
		store_set_error(&sp->st, error_r, STORE_ERR_NO_ACCOUNT,
		    address);
	return ret;
}

static int
store_pgsql_account_del(struct store *st, const char *address,
    const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	/* The account's aliases go with it: ON DELETE CASCADE. */
	store_pgsql_text(&p, address);
	return store_pgsql_account_change(store_pgsql_handle(st),
	    "DELETE FROM accounts WHERE address = $1", &p, address,
	    "account del", error_r);
}

static int
store_pgsql_account_set_password(struct store *st, const char *address,
    const char *password_hash, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, address);
	store_pgsql_text(&p, password_hash);
	return store_pgsql_account_change(store_pgsql_handle(st),
	    "UPDATE accounts SET password_hash = $2 WHERE address = $1", &p,
	    address, "set password", error_r);
}

static int
store_pgsql_account_set_suspended(struct store *st, const char *address,
    int suspended, const char *reason, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, address);
	store_pgsql_int(&p, suspended);
	store_pgsql_text(&p, reason);
	return store_pgsql_account_change(store_pgsql_handle(st),
	    "UPDATE accounts SET suspended = $2, suspend_reason = $3"
	    " WHERE address = $1", &p, address, "suspend", error_r);
}

static int
store_pgsql_account_get(struct store *st, const char *address,
    struct account *a, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	PGresult *res;
	int ret = 1;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	store_pgsql_text(&p, address);
	res = store_pgsql_exec(sp, "SELECT id, address, password_hash,"
	    " suspended, suspend_reason, created FROM accounts"
	    " WHERE address = $1", &p, "account get", error_r);
	if (res == NULL)
		return -1;
	if (PQntuples(res) > 0) {
		memset(a, 0, sizeof(*a));
		a->id = store_pgsql_value(res, 0, 0);
		a->address = store_pgsql_strdup(res, 0, 1);
		a->password_hash = store_pgsql_strdup(res, 0, 2);
		a->suspended = store_pgsql_value(res, 0, 3) != 0;
		a->suspend_reason = store_pgsql_strdup(res, 0, 4);
		a->created = store_pgsql_value(res, 0, 5);
		if (a->password_hash == NULL)	/* NOT NULL in the schema */
			a->password_hash = xstrdup("");
		ret = 0;
	}
	PQclear(res);
	return ret;
}

/* A listing of all rows, or of those of the id that key names (found
 * by lookup). 1 when key names nothing. */
static int
store_pgsql_list(struct store_pgsql *sp, const char *all, const char *by_id,
    const char *lookup, const char *key, const char *what, struct str *out,
    const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };
	int64_t id;
	int ret;

	if (key == NULL)
		return store_pgsql_list_query(sp, all, NULL, 0, what, out,
		    error_r);
	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	if ((ret = store_pgsql_find_id(sp, lookup, key, &id, error_r)) != 0)
		return ret;
	store_pgsql_int(&p, id);
	return store_pgsql_list_query(sp, by_id, &p, 0, what, out, error_r);
}

static int
store_pgsql_account_list(struct store *st, const char *domain,
    struct str *out, const char **error_r)
{
	int ret = store_pgsql_list(store_pgsql_handle(st),
	    "SELECT address, suspended FROM accounts ORDER BY address",
	    "SELECT address, suspended FROM accounts WHERE domain_id = $1"
	    " ORDER BY address", SQL_DOMAIN_ID, domain, "account list", out,
	    error_r);

	if (ret == 1)
		store_set_error(st, error_r, STORE_ERR_NO_DOMAIN, domain);
	return ret;
}

/* ---- aliases -------------------------------------------------------- */

static int
store_pgsql_alias_add(struct store *st, const char *alias,
    const char *target, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	int64_t domain_id, account_id;
	int ret;

	if (store_pgsql_begin(sp, error_r) < 0)
		return -1;
	if (store_pgsql_new_name(sp, alias, 1, &domain_id, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	ret = store_pgsql_find_id(sp, SQL_ACCOUNT_ID, target, &account_id,
	    error_r);
	if (ret != 0) {
		if (ret == 1)
			store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT,
			    target);
		return store_pgsql_rollback(sp, -1);
	}
	store_pgsql_text(&p, alias);
	store_pgsql_int(&p, domain_id);
	store_pgsql_int(&p, account_id);
	if (store_pgsql_run(sp, "INSERT INTO aliases (alias, domain_id,"
	    " account_id) VALUES ($1, $2, $3)", &p, "alias add", NULL,
	    error_r) < 0) {
		if (strcmp(sp->sqlstate, STORE_PGSQL_SQLSTATE_UNIQUE) == 0)
			store_set_error(st, error_r, STORE_ERR_ALIAS_EXISTS,
			    alias);
		return store_pgsql_rollback(sp, -1);
	}
	if (store_pgsql_commit(sp, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	return 0;
}

static int
store_pgsql_alias_del(struct store *st, const char *alias,
    const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };
	int ret;

	store_pgsql_text(&p, alias);
	ret = store_pgsql_change(store_pgsql_handle(st),
	    "DELETE FROM aliases WHERE alias = $1", &p, "alias del", error_r);
	if (ret == 1)
		store_set_error(st, error_r, STORE_ERR_NO_ALIAS, alias);
	return ret;
}

static int
store_pgsql_alias_list(struct store *st, const char *target,
    struct str *out, const char **error_r)
{
	int ret = store_pgsql_list(store_pgsql_handle(st),
	    "SELECT l.alias, a.address FROM aliases l"
	    " JOIN accounts a ON a.id = l.account_id ORDER BY l.alias",
	    "SELECT l.alias, a.address FROM aliases l"
	    " JOIN accounts a ON a.id = l.account_id"
	    " WHERE l.account_id = $1 ORDER BY l.alias", SQL_ACCOUNT_ID,
	    target, "alias list", out, error_r);

	if (ret == 1)
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT, target);
	return ret;
}

static int
store_pgsql_resolve_recipient(struct store *st, const char *address,
    char **account_r, int *domain_local_r, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	PGresult *res;
	int64_t id;
	int ret;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	/* One round trip: the account, else the alias's target. */
	store_pgsql_text(&p, address);
	res = store_pgsql_exec(sp, "SELECT address FROM accounts"
	    " WHERE address = $1 UNION ALL " SQL_ALIAS_TARGET " LIMIT 1", &p,
	    "recipient look-up", error_r);
	if (res == NULL)
		return -1;
	if (PQntuples(res) > 0) {
		*account_r = xstrdup(PQgetvalue(res, 0, 0));
		PQclear(res);
		return 0;
	}
	PQclear(res);
	ret = store_pgsql_find_id(sp, SQL_DOMAIN_ID,
	    store_address_domain(address), &id, error_r);
	if (ret < 0)
		return -1;
	*domain_local_r = ret == 0;
	return 1;
}

/* ---- APOP secrets --------------------------------------------------- */

static int
store_pgsql_apop_set(struct store *st, const char *address,
    const char *sealed, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, address);
	store_pgsql_text(&p, sealed);
	return store_pgsql_account_change(store_pgsql_handle(st),
	    "INSERT INTO apop_secrets (account_id, sealed)"
	    " SELECT id, $2 FROM accounts WHERE address = $1"
	    " ON CONFLICT (account_id) DO UPDATE SET sealed = EXCLUDED.sealed",
	    &p, address, "apop set", error_r);
}

static int
store_pgsql_apop_get(struct store *st, const char *address,
    char **sealed_r, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	PGresult *res;
	int ret = 1;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	store_pgsql_text(&p, address);
	res = store_pgsql_exec(sp, "SELECT s.sealed FROM apop_secrets s"
	    " JOIN accounts a ON a.id = s.account_id WHERE a.address = $1",
	    &p, "apop get", error_r);
	if (res == NULL)
		return -1;
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
		*sealed_r = xstrdup(PQgetvalue(res, 0, 0));
		ret = 0;
	}
	PQclear(res);
	return ret;
}

static int
store_pgsql_apop_clear(struct store *st, const char *address,
    const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, address);
	return store_pgsql_change(store_pgsql_handle(st),
	    "DELETE FROM apop_secrets WHERE account_id ="
	    " (SELECT id FROM accounts WHERE address = $1)", &p, "apop clear",
	    error_r);
}

/* ---- sending policy ------------------------------------------------- */

static int
store_pgsql_policy_get(struct store *st, const char *address,
    struct account_policy *pol, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	PGresult *res;
	int64_t *limits[] = { &pol->limit_msgs_day, &pol->limit_rcpts_day,
	    &pol->limit_rcpts_hour, &pol->limit_rcpts_msg,
	    &pol->limit_overseas_rcpts_day };
	int ret = 1;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	store_pgsql_text(&p, address);
	res = store_pgsql_exec(sp, "SELECT a.overseas_until, l.msgs_day,"
	    " l.rcpts_day, l.rcpts_hour, l.rcpts_msg, l.overseas_rcpts_day,"
	    " coalesce(l.any_sender, 0), coalesce(l.relay_names, '')"
	    " FROM accounts a"
	    " LEFT JOIN account_limits l ON l.account_id = a.id"
	    " WHERE a.address = $1", &p, "policy look-up", error_r);
	if (res == NULL)
		return -1;
	if (PQntuples(res) > 0) {
		pol->overseas_until = store_pgsql_value(res, 0, 0);
		for (int i = 0; i < 5; i++)
			*limits[i] = PQgetisnull(res, 0, i + 1) ? -1 :
			    store_pgsql_value(res, 0, i + 1);
		pol->any_sender = store_pgsql_value(res, 0, 6) != 0;
		xstrlcpy(pol->relay_names, PQgetvalue(res, 0, 7),
		    sizeof(pol->relay_names));
		ret = 0;
	} else
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT, address);
	PQclear(res);
	return ret;
}

static int
store_pgsql_policy_set_limits(struct store *st, const char *address,
    const struct account_policy *pol, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, address);
	store_pgsql_limit(&p, pol->limit_msgs_day);
	store_pgsql_limit(&p, pol->limit_rcpts_day);
	store_pgsql_limit(&p, pol->limit_rcpts_hour);
	store_pgsql_limit(&p, pol->limit_rcpts_msg);
	store_pgsql_limit(&p, pol->limit_overseas_rcpts_day);
	store_pgsql_int(&p, pol->any_sender ? 1 : 0);
	store_pgsql_text(&p, pol->relay_names);
	return store_pgsql_account_change(store_pgsql_handle(st),
	    "INSERT INTO account_limits (account_id, msgs_day, rcpts_day,"
	    " rcpts_hour, rcpts_msg, overseas_rcpts_day, any_sender,"
	    " relay_names)"
	    " SELECT id, $2::bigint, $3::bigint, $4::bigint, $5::bigint,"
	    " $6::bigint, $7::integer, $8 FROM accounts WHERE address = $1"
	    " ON CONFLICT (account_id) DO UPDATE SET"
	    " msgs_day = EXCLUDED.msgs_day, rcpts_day = EXCLUDED.rcpts_day,"
	    " rcpts_hour = EXCLUDED.rcpts_hour,"
	    " rcpts_msg = EXCLUDED.rcpts_msg,"
	    " overseas_rcpts_day = EXCLUDED.overseas_rcpts_day,"
	    " any_sender = EXCLUDED.any_sender,"
	    " relay_names = EXCLUDED.relay_names", &p, address, "set limits",
	    error_r);
}

static int
store_pgsql_overseas_set(struct store *st, const char *address,
    int64_t until, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, address);
	store_pgsql_int(&p, until);
	return store_pgsql_account_change(store_pgsql_handle(st),
	    "UPDATE accounts SET overseas_until = $2 WHERE address = $1", &p,
	    address, "set overseas", error_r);
}

/*
 * The check-and-count. The account row is locked first (FOR NO KEY
 * UPDATE: the counters' foreign keys still only need a key-share lock),
 * so every submission of one account, on any node, counts in turn and
 * reads the counters as the one before it left them.
 */
static int
store_pgsql_count_add(struct store *st, const char *address,
    const struct store_counter *c, size_t n, int64_t msgs, int64_t rcpts,
    size_t *over_r, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	int64_t id;
	int ret;

	if (store_pgsql_begin(sp, error_r) < 0)
		return -1;
	ret = store_pgsql_find_id(sp, SQL_ACCOUNT_ID " FOR NO KEY UPDATE",
	    address, &id, error_r);
	if (ret != 0) {
		if (ret == 1)
			store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT,
			    address);
		return store_pgsql_rollback(sp, -1);
	}
	for (size_t i = 0; (msgs > 0 || rcpts > 0) && i < n; i++) {
		struct store_pgsql_params p = { .n = 0 };
		PGresult *res;
		int64_t m = 0, r = 0;

		store_pgsql_int(&p, id);
		store_pgsql_text(&p, c[i].period);
		res = store_pgsql_exec(sp, "SELECT msgs, rcpts FROM"
		    " send_counters WHERE account_id = $1 AND period = $2", &p,
		    "counter read", error_r);
		if (res == NULL)
			return store_pgsql_rollback(sp, -1);
		if (PQntuples(res) > 0) {
			m = store_pgsql_value(res, 0, 0);
			r = store_pgsql_value(res, 0, 1);
		}
		PQclear(res);
		if ((c[i].max_msgs >= 0 && m + msgs > c[i].max_msgs) ||
		    (c[i].max_rcpts >= 0 && r + rcpts > c[i].max_rcpts)) {
			*over_r = i;
			return store_pgsql_rollback(sp, 1);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct store_pgsql_params p = { .n = 0 };

		store_pgsql_int(&p, id);
		store_pgsql_text(&p, c[i].period);
		store_pgsql_int(&p, msgs);
		store_pgsql_int(&p, rcpts);
		if (store_pgsql_run(sp, "INSERT INTO send_counters (account_id,"
		    " period, msgs, rcpts) VALUES ($1, $2,"
		    " greatest($3::bigint, 0), greatest($4::bigint, 0))"
		    " ON CONFLICT (account_id, period) DO UPDATE SET"
		    " msgs = greatest(send_counters.msgs + $3::bigint, 0),"
		    " rcpts = greatest(send_counters.rcpts + $4::bigint, 0)",
		    &p, "count", NULL, error_r) < 0)
			return store_pgsql_rollback(sp, -1);
	}
	if (store_pgsql_commit(sp, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	return 0;
}

static int
store_pgsql_count_get(struct store *st, const char *address,
    const char *period, int64_t *msgs_r, int64_t *rcpts_r,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	PGresult *res;
	int ret = 1;

	*msgs_r = *rcpts_r = 0;
	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	store_pgsql_text(&p, address);
	store_pgsql_text(&p, period);
	res = store_pgsql_exec(sp, "SELECT c.msgs, c.rcpts FROM accounts a"
	    " LEFT JOIN send_counters c ON c.account_id = a.id"
	    " AND c.period = $2 WHERE a.address = $1", &p, "counter read",
	    error_r);
	if (res == NULL)
		return -1;
	if (PQntuples(res) > 0) {
		*msgs_r = store_pgsql_value(res, 0, 0);
		*rcpts_r = store_pgsql_value(res, 0, 1);
		ret = 0;
	} else
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT, address);
	PQclear(res);
	return ret;
}

static int
store_pgsql_event_add(struct store *st, const struct store_event *e,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	store_pgsql_int(&p, e->time);
	store_pgsql_text(&p, e->account);
	store_pgsql_text(&p, e->type);
	store_pgsql_text(&p, e->ip);
	store_pgsql_text(&p, e->country);
	store_pgsql_text(&p, e->detail);
	return store_pgsql_run(sp, "INSERT INTO events (time, account, type,"
	    " ip, country, detail) VALUES ($1, $2, $3, $4, $5, $6)", &p,
	    "event", NULL, error_r);
}

static int
store_pgsql_event_list(struct store *st, const char *account, int64_t since,
    int limit, struct str *out, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	if (account != NULL)
		store_pgsql_text(&p, account);
	store_pgsql_int(&p, since);
	store_pgsql_int(&p, limit > 0 ? limit : 1000);
	return store_pgsql_list_query(store_pgsql_handle(st), account != NULL ?
	    "SELECT time, account, type, ip, country, detail FROM events"
	    " WHERE account = $1 AND time >= $2 ORDER BY time DESC, id DESC"
	    " LIMIT $3" :
	    "SELECT time, account, type, ip, country, detail FROM events"
	    " WHERE time >= $1 ORDER BY time DESC, id DESC LIMIT $2", &p, 1,
	    "event list", out, error_r);
}

static int
store_pgsql_notice_once(struct store *st, const char *key, int64_t time,
    const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, key);
	store_pgsql_int(&p, time);
	/* One row inserted: first seen, on whichever node. */
	return store_pgsql_change(store_pgsql_handle(st),
	    "INSERT INTO notices (key, time) VALUES ($1, $2)"
	    " ON CONFLICT (key) DO NOTHING", &p, "notice", error_r);
}

static int
store_pgsql_submission_add(struct store *st, const struct store_submission *s,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	store_pgsql_text(&p, s->queue_id);
	store_pgsql_text(&p, s->message_id);
	store_pgsql_int(&p, s->time);
	store_pgsql_text(&p, s->account);
	store_pgsql_text(&p, s->ip);
	store_pgsql_text(&p, s->country);
	store_pgsql_text(&p, s->tls);
	store_pgsql_int(&p, s->rcpts);
	store_pgsql_int(&p, s->size);
	store_pgsql_int(&p, s->overseas ? 1 : 0);
	return store_pgsql_run(sp, "INSERT INTO submissions (queue_id,"
	    " message_id, time, account, ip, country, tls, rcpts, size,"
	    " overseas) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", &p,
	    "submission", NULL, error_r);
}

#define STORE_PGSQL_SUBMISSION_COLS \
	"queue_id, message_id, time, account, ip, country, tls, rcpts, size," \
	" overseas"

static int
store_pgsql_submission_find(struct store *st, const char *queue_id,
    const char *message_id, struct str *out, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };
	size_t before = out->len;

	store_pgsql_text(&p, queue_id);
	store_pgsql_text(&p, message_id);
	if (store_pgsql_list_query(store_pgsql_handle(st), "SELECT "
	    STORE_PGSQL_SUBMISSION_COLS " FROM submissions"
	    " WHERE queue_id = $1::text OR message_id = $2::text"
	    " ORDER BY time DESC LIMIT 100", &p, 1, "submission find", out,
	    error_r) < 0)
		return -1;
	return out->len == before ? 1 : 0;
}

static int
store_pgsql_submission_list(struct store *st, const char *account,
    int64_t since, int limit, struct str *out, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	if (account != NULL)
		store_pgsql_text(&p, account);
	store_pgsql_int(&p, since);
	store_pgsql_int(&p, limit > 0 ? limit : 1000);
	return store_pgsql_list_query(store_pgsql_handle(st), account != NULL ?
	    "SELECT " STORE_PGSQL_SUBMISSION_COLS " FROM submissions"
	    " WHERE account = $1 AND time >= $2 ORDER BY time DESC LIMIT $3" :
	    "SELECT " STORE_PGSQL_SUBMISSION_COLS " FROM submissions"
	    " WHERE time >= $1 ORDER BY time DESC LIMIT $2", &p, 1,
	    "submission list", out, error_r);
}

/* The throttling row of key: 1 found, 0 none, -1 error. */
static int
store_pgsql_throttle_read(struct store_pgsql *sp, const char *sql,
    const char *key, int64_t *failures_r, int64_t *start_r,
    int64_t *locked_r, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };
	PGresult *res;
	int ret = 0;

	*failures_r = *start_r = *locked_r = 0;
	store_pgsql_text(&p, key);
	if ((res = store_pgsql_exec(sp, sql, &p, "throttle read",
	    error_r)) == NULL)
		return -1;
	if (PQntuples(res) > 0) {
		*failures_r = store_pgsql_value(res, 0, 0);
		*start_r = store_pgsql_value(res, 0, 1);
		*locked_r = store_pgsql_value(res, 0, 2);
		ret = 1;
	}
	PQclear(res);
	return ret;
}

#define SQL_THROTTLE_READ \
	"SELECT failures, window_start, locked_until FROM auth_throttle" \
	" WHERE key = $1"

static int
store_pgsql_throttle_get(struct store *st, const char *key, int64_t now,
    int64_t window, int64_t *failures_r, int64_t *locked_until_r,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	int64_t start;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	if (store_pgsql_throttle_read(sp, SQL_THROTTLE_READ, key, failures_r,
	    &start, locked_until_r, error_r) < 0)
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
store_pgsql_throttle_fail(struct store *st, const char *key, int64_t now,
    int64_t window, int64_t max, int64_t lock, int64_t *failures_r,
    int64_t *locked_until_r, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	int64_t failures, start, locked;

	if (store_pgsql_begin(sp, error_r) < 0)
		return -1;
	store_pgsql_text(&p, key);
	store_pgsql_int(&p, now);
	if (store_pgsql_run(sp, "INSERT INTO auth_throttle (key, failures,"
	    " window_start, locked_until) VALUES ($1, 0, $2, 0)"
	    " ON CONFLICT (key) DO NOTHING", &p, "throttle", NULL,
	    error_r) < 0 ||
	    store_pgsql_throttle_read(sp, SQL_THROTTLE_READ " FOR UPDATE", key,
	    &failures, &start, &locked, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	if (start + window <= now) {
		failures = 0;
		start = now;
	}
	failures++;
	if (locked <= now)
		locked = 0;
	if (max > 0 && failures >= max && locked == 0)
		locked = now + lock;
	p.n = 0;
	store_pgsql_text(&p, key);
	store_pgsql_int(&p, failures);
	store_pgsql_int(&p, start);
	store_pgsql_int(&p, locked);
	if (store_pgsql_run(sp, "UPDATE auth_throttle SET failures = $2,"
	    " window_start = $3, locked_until = $4 WHERE key = $1", &p,
	    "throttle", NULL, error_r) < 0 ||
	    store_pgsql_commit(sp, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	*failures_r = failures;
	*locked_until_r = locked;
	return 0;
}

static int
store_pgsql_throttle_clear(struct store *st, const char *key,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	store_pgsql_text(&p, key);
	return store_pgsql_run(sp, "DELETE FROM auth_throttle WHERE key = $1",
	    &p, "throttle clear", NULL, error_r);
}

/* ---- trusted login addresses (schema step 6) ------------------------- */

static int
store_pgsql_trusted_seen(struct store *st, const char *name,
    const char *client, int64_t now, int64_t since, int keep,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };

	if (store_pgsql_begin(sp, error_r) < 0)
		return -1;
	store_pgsql_text(&p, name);
	store_pgsql_text(&p, client);
	store_pgsql_int(&p, now);
	if (store_pgsql_run(sp, "INSERT INTO auth_trusted (name, client,"
	    " last_ok) VALUES ($1, $2, $3::bigint) ON CONFLICT (name, client)"
	    " DO UPDATE SET last_ok = greatest(auth_trusted.last_ok,"
	    " EXCLUDED.last_ok)", &p, "trusted address", NULL, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	p.n = 0;
	store_pgsql_text(&p, name);
	store_pgsql_int(&p, keep);
	if (store_pgsql_run(sp, "DELETE FROM auth_trusted WHERE name = $1"
	    " AND client NOT IN (SELECT client FROM auth_trusted"
	    " WHERE name = $1 ORDER BY last_ok DESC, client"
	    " LIMIT $2::bigint)", &p, "trusted address", NULL, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	p.n = 0;
	store_pgsql_int(&p, since);
	if (store_pgsql_run(sp, "DELETE FROM auth_trusted"
	    " WHERE last_ok < $1::bigint", &p, "trusted address", NULL,
	    error_r) < 0 || store_pgsql_commit(sp, error_r) < 0)
		return store_pgsql_rollback(sp, -1);
	return 0;
}

static int
store_pgsql_trusted_get(struct store *st, const char *name,
    const char *client, int64_t since, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	PGresult *res;
	int ret;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	store_pgsql_text(&p, name);
	store_pgsql_text(&p, client);
	store_pgsql_int(&p, since);
	if ((res = store_pgsql_exec(sp, "SELECT 1 FROM auth_trusted"
	    " WHERE name = $1 AND client = $2 AND last_ok >= $3::bigint", &p,
	    "trusted address", error_r)) == NULL)
		return -1;
	ret = PQntuples(res) > 0 ? 0 : 1;
	PQclear(res);
	return ret;
}

/* ---- state shared by the nodes (schema step 5) ----------------------- */

/* The first column of the first row into buf (or a copy): 0, 1 no row. */
static int
store_pgsql_get_text(struct store_pgsql *sp, const char *sql,
    const struct store_pgsql_params *p, const char *what, char *buf,
    size_t size, char **copy_r, const char **error_r)
{
	PGresult *res;
	int ret = 1;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	if ((res = store_pgsql_exec(sp, sql, p, what, error_r)) == NULL)
		return -1;
	if (PQntuples(res) > 0) {
		if (buf != NULL)
			xstrlcpy(buf, PQgetvalue(res, 0, 0), size);
		if (copy_r != NULL)
			*copy_r = xstrdup(PQgetvalue(res, 0, 0));
		ret = 0;
	}
	PQclear(res);
	return ret;
}

static int
store_pgsql_portal_session_add(struct store *st, const char *id_hash,
    const char *account, const char *csrf, int64_t created, int64_t expires,
    const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, id_hash);
	store_pgsql_text(&p, account);
	store_pgsql_text(&p, csrf);
	store_pgsql_int(&p, created);
	store_pgsql_int(&p, expires);
	return store_pgsql_change(store_pgsql_handle(st), "INSERT INTO"
	    " portal_sessions (id_hash, account, csrf, created, expires)"
	    " VALUES ($1, $2, $3, $4, $5)", &p, "session add", error_r) < 0 ?
	    -1 : 0;
}

static int
store_pgsql_portal_session_del(struct store *st, const char *id_hash,
    const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, id_hash);
	return store_pgsql_change(store_pgsql_handle(st), "DELETE FROM"
	    " portal_sessions WHERE id_hash = $1", &p, "session delete",
	    error_r);
}

static int
store_pgsql_portal_session_get(struct store *st, const char *id_hash,
    int64_t now, struct store_portal_session *s_r, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	PGresult *res;
	int ret = 1;

	if (store_pgsql_ready(sp, error_r) < 0)
		return -1;
	store_pgsql_text(&p, id_hash);
	res = store_pgsql_exec(sp, "SELECT account, csrf, created, expires"
	    " FROM portal_sessions WHERE id_hash = $1", &p, "session look-up",
	    error_r);
	if (res == NULL)
		return -1;
	if (PQntuples(res) > 0) {
		xstrlcpy(s_r->account, PQgetvalue(res, 0, 0),
		    sizeof(s_r->account));
		xstrlcpy(s_r->csrf, PQgetvalue(res, 0, 1), sizeof(s_r->csrf));
		s_r->created = store_pgsql_value(res, 0, 2);
		s_r->expires = store_pgsql_value(res, 0, 3);
		ret = 0;
	}
	PQclear(res);
	if (ret == 0 && s_r->expires <= now) {
		/* lazily: the periodic sweep gets the ones never asked for */
		if (store_pgsql_portal_session_del(st, id_hash, error_r) < 0)
			return -1;
		memset(s_r, 0, sizeof(*s_r));
		ret = 1;
	}
	return ret;
}

static int
store_pgsql_portal_session_touch(struct store *st, const char *id_hash,
    int64_t expires, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, id_hash);
	store_pgsql_int(&p, expires);
	/* never backwards, whichever node touched it last */
	return store_pgsql_change(store_pgsql_handle(st), "UPDATE"
	    " portal_sessions SET expires = greatest(expires, $2::bigint)"
	    " WHERE id_hash = $1", &p, "session touch", error_r);
}

static int
store_pgsql_portal_session_del_account(struct store *st, const char *account,
    const char *keep_hash, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, account);
	store_pgsql_text(&p, keep_hash);
	return store_pgsql_change(store_pgsql_handle(st), "DELETE FROM"
	    " portal_sessions WHERE account = $1"
	    " AND ($2::text IS NULL OR id_hash <> $2::text)", &p,
	    "session delete", error_r) < 0 ? -1 : 0;
}

/* A change keyed by a name: 1 (nothing changed) with the error of
 * fmt, a literal; for an insert of a new name, -1 then. */
#define STORE_PGSQL_NAMED(sp, r, fmt, name, error_r) do {		\
	if ((r) == 1)							\
		store_set_error(&(sp)->st, (error_r), fmt, (name));	\
} while (0)

static int
store_pgsql_api_token_add(struct store *st, const char *name,
    const char *hash, int64_t created, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	int r;

	store_pgsql_text(&p, name);
	store_pgsql_text(&p, hash);
	store_pgsql_int(&p, created);
	r = store_pgsql_change(sp, "INSERT INTO api_tokens (name, hash,"
	    " created) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING", &p,
	    "token add", error_r);
	STORE_PGSQL_NAMED(sp, r, STORE_ERR_TOKEN_EXISTS, name, error_r);
	return r == 0 ? 0 : -1;
}

static int
store_pgsql_api_token_get(struct store *st, const char *name, char *hash_r,
    const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, name);
	return store_pgsql_get_text(store_pgsql_handle(st), "SELECT hash FROM"
	    " api_tokens WHERE name = $1", &p, "token look-up", hash_r,
	    STORE_HEX_TOKEN_LEN + 1, NULL, error_r);
}

static int
store_pgsql_api_token_del(struct store *st, const char *name,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	int r;

	store_pgsql_text(&p, name);
	r = store_pgsql_change(sp, "DELETE FROM api_tokens WHERE name = $1",
	    &p, "token delete", error_r);
	STORE_PGSQL_NAMED(sp, r, STORE_ERR_NO_TOKEN, name, error_r);
	return r;
}

static int
store_pgsql_api_token_list(struct store *st, struct str *out,
    const char **error_r)
{
	return store_pgsql_list_query(store_pgsql_handle(st), "SELECT name,"
	    " hash, created FROM api_tokens ORDER BY name", NULL, 0,
	    "token list", out, error_r);
}

static int
store_pgsql_admin_add(struct store *st, const char *name,
    const char *password_hash, int64_t created, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	int r;

	store_pgsql_text(&p, name);
	store_pgsql_text(&p, password_hash);
	store_pgsql_int(&p, created);
	r = store_pgsql_change(sp, "INSERT INTO admin_users (name,"
	    " password_hash, created) VALUES ($1, $2, $3)"
	    " ON CONFLICT (name) DO NOTHING", &p, "admin add", error_r);
	STORE_PGSQL_NAMED(sp, r, STORE_ERR_ADMIN_EXISTS, name, error_r);
	return r == 0 ? 0 : -1;
}

static int
store_pgsql_admin_set_password(struct store *st, const char *name,
    const char *password_hash, const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	int r;

	store_pgsql_text(&p, name);
	store_pgsql_text(&p, password_hash);
	r = store_pgsql_change(sp, "UPDATE admin_users SET password_hash = $2"
	    " WHERE name = $1", &p, "admin passwd", error_r);
	STORE_PGSQL_NAMED(sp, r, STORE_ERR_NO_ADMIN, name, error_r);
	return r;
}

static int
store_pgsql_admin_get(struct store *st, const char *name, char **hash_r,
    const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, name);
	return store_pgsql_get_text(store_pgsql_handle(st), "SELECT"
	    " password_hash FROM admin_users WHERE name = $1", &p,
	    "admin look-up", NULL, 0, hash_r, error_r);
}

static int
store_pgsql_admin_del(struct store *st, const char *name,
    const char **error_r)
{
	struct store_pgsql *sp = store_pgsql_handle(st);
	struct store_pgsql_params p = { .n = 0 };
	int r;

	store_pgsql_text(&p, name);
	r = store_pgsql_change(sp, "DELETE FROM admin_users WHERE name = $1",
	    &p, "admin delete", error_r);
	STORE_PGSQL_NAMED(sp, r, STORE_ERR_NO_ADMIN, name, error_r);
	return r;
}

static int
store_pgsql_admin_list(struct store *st, struct str *out,
    const char **error_r)
{
	return store_pgsql_list_query(store_pgsql_handle(st), "SELECT name,"
	    " password_hash, created FROM admin_users ORDER BY name", NULL, 0,
	    "admin list", out, error_r);
}

/*
 * One statement: a new row, or the row of a lease that has run out. Two
 * nodes racing for a free mailbox: the second INSERT waits on the first's
 * index entry, then finds a live lease and changes nothing.
 */
static int
store_pgsql_pop3_lock_take(struct store *st, const char *mailbox,
    const char *node, const char *session, int64_t now, int64_t expires,
    const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, mailbox);
	store_pgsql_text(&p, node);
	store_pgsql_text(&p, session);
	store_pgsql_int(&p, now);
	store_pgsql_int(&p, expires);
	return store_pgsql_change(store_pgsql_handle(st), "INSERT INTO"
	    " pop3_locks (mailbox, node, session, expires)"
	    " VALUES ($1, $2, $3, $5)"
	    " ON CONFLICT (mailbox) DO UPDATE SET node = EXCLUDED.node,"
	    " session = EXCLUDED.session, expires = EXCLUDED.expires"
	    " WHERE pop3_locks.expires <= $4::bigint", &p, "pop3 lock",
	    error_r);
}

static int
store_pgsql_pop3_lock_refresh(struct store *st, const char *mailbox,
    const char *node, const char *session, int64_t expires,
    const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, mailbox);
	store_pgsql_text(&p, node);
	store_pgsql_text(&p, session);
	store_pgsql_int(&p, expires);
	return store_pgsql_change(store_pgsql_handle(st), "UPDATE pop3_locks"
	    " SET expires = $4 WHERE mailbox = $1 AND node = $2"
	    " AND session = $3", &p, "pop3 lock refresh", error_r);
}

static int
store_pgsql_pop3_lock_release(struct store *st, const char *mailbox,
    const char *node, const char *session, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, mailbox);
	store_pgsql_text(&p, node);
	store_pgsql_text(&p, session);
	return store_pgsql_change(store_pgsql_handle(st), "DELETE FROM"
	    " pop3_locks WHERE mailbox = $1 AND node = $2 AND session = $3",
	    &p, "pop3 unlock", error_r);
}

static int
store_pgsql_popbsmtp_set(struct store *st, const char *client,
    const char *account, int64_t until, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, client);
	store_pgsql_text(&p, account);
	store_pgsql_int(&p, until);
	return store_pgsql_change(store_pgsql_handle(st), "INSERT INTO"
	    " pop_before_smtp (client, account, expires) VALUES ($1, $2, $3)"
	    " ON CONFLICT (client) DO UPDATE SET account = EXCLUDED.account,"
	    " expires = EXCLUDED.expires", &p, "pop-before-smtp", error_r) < 0 ?
	    -1 : 0;
}

static int
store_pgsql_popbsmtp_get(struct store *st, const char *client, int64_t now,
    char **account_r, const char **error_r)
{
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_text(&p, client);
	store_pgsql_int(&p, now);
	return store_pgsql_get_text(store_pgsql_handle(st), "SELECT account"
	    " FROM pop_before_smtp WHERE client = $1 AND expires > $2", &p,
	    "pop-before-smtp look-up", NULL, 0, account_r, error_r);
}

static int
store_pgsql_expire(struct store *st, int64_t now, const char **error_r)
{
	static const char *const sql[] = {
		"DELETE FROM portal_sessions WHERE expires <= $1",
		"DELETE FROM pop3_locks WHERE expires <= $1",
		"DELETE FROM pop_before_smtp WHERE expires <= $1",
	};
	struct store_pgsql_params p = { .n = 0 };

	store_pgsql_int(&p, now);
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
		if (store_pgsql_change(store_pgsql_handle(st), sql[i], &p,
		    "expire", error_r) < 0)
			return -1;
	return 0;
}

const struct store_ops store_pgsql_ops = {
	.scheme = "postgresql",
	.open = store_pgsql_open,
	.close = store_pgsql_close,
	.init_schema = store_pgsql_init_schema,
	.domain_add = store_pgsql_domain_add,
	.domain_del = store_pgsql_domain_del,
	.domain_exists = store_pgsql_domain_exists,
	.domain_list = store_pgsql_domain_list,
	.account_add = store_pgsql_account_add,
	.account_del = store_pgsql_account_del,
	.account_set_password = store_pgsql_account_set_password,
	.account_set_suspended = store_pgsql_account_set_suspended,
	.account_get = store_pgsql_account_get,
	.account_list = store_pgsql_account_list,
	.alias_add = store_pgsql_alias_add,
	.alias_del = store_pgsql_alias_del,
	.alias_list = store_pgsql_alias_list,
	.resolve_recipient = store_pgsql_resolve_recipient,
	.apop_set = store_pgsql_apop_set,
	.apop_get = store_pgsql_apop_get,
	.apop_clear = store_pgsql_apop_clear,
	.policy_get = store_pgsql_policy_get,
	.policy_set_limits = store_pgsql_policy_set_limits,
	.overseas_set = store_pgsql_overseas_set,
	.count_add = store_pgsql_count_add,
	.count_get = store_pgsql_count_get,
	.event_add = store_pgsql_event_add,
	.event_list = store_pgsql_event_list,
	.notice_once = store_pgsql_notice_once,
	.submission_add = store_pgsql_submission_add,
	.submission_find = store_pgsql_submission_find,
	.submission_list = store_pgsql_submission_list,
	.throttle_get = store_pgsql_throttle_get,
	.throttle_fail = store_pgsql_throttle_fail,
	.throttle_clear = store_pgsql_throttle_clear,
	.trusted_seen = store_pgsql_trusted_seen,
	.trusted_get = store_pgsql_trusted_get,
	.schema_version = store_pgsql_schema_version,
	.portal_session_add = store_pgsql_portal_session_add,
	.portal_session_get = store_pgsql_portal_session_get,
	.portal_session_touch = store_pgsql_portal_session_touch,
	.portal_session_del = store_pgsql_portal_session_del,
	.portal_session_del_account = store_pgsql_portal_session_del_account,
	.api_token_add = store_pgsql_api_token_add,
	.api_token_get = store_pgsql_api_token_get,
	.api_token_del = store_pgsql_api_token_del,
	.api_token_list = store_pgsql_api_token_list,
	.admin_add = store_pgsql_admin_add,
	.admin_set_password = store_pgsql_admin_set_password,
	.admin_get = store_pgsql_admin_get,
	.admin_del = store_pgsql_admin_del,
	.admin_list = store_pgsql_admin_list,
	.pop3_lock_take = store_pgsql_pop3_lock_take,
	.pop3_lock_refresh = store_pgsql_pop3_lock_refresh,
	.pop3_lock_release = store_pgsql_pop3_lock_release,
	.popbsmtp_set = store_pgsql_popbsmtp_set,
	.popbsmtp_get = store_pgsql_popbsmtp_get,
	.expire = store_pgsql_expire,
};
