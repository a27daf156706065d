/*
 * store_schema: the tables, written once for both drivers, and how they
 * grow. Column types that differ are written as {INT} (a 64-bit integer:
 * INTEGER / BIGINT), {ID} (a row id never handed out twice: INTEGER
 * PRIMARY KEY AUTOINCREMENT / BIGSERIAL PRIMARY KEY) and {ROWID} (INTEGER
 * PRIMARY KEY / BIGSERIAL PRIMARY KEY); the driver names them
 * (sql_type_name). The schema carries its version; both kinds of
 * database take the same steps and have the same version numbers.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/str.h"
#include "sql.h"
#include "store.h"
#include "store_private.h"

/*
 * migrations[i] takes the schema from version i to i + 1. Append, never
 * edit: a database that ran a step does not run it again.
 */
static const char *const store_schema_steps[] = {
	/* 1: domains, accounts, aliases. Account ids are never given
	 * again (later tables record by account id). An alias keeps its
	 * domain, so a domain cannot be deleted from under it. */
	"CREATE TABLE domains ("
	"  id {ROWID},"
	"  name TEXT NOT NULL UNIQUE);"
	"CREATE TABLE accounts ("
	"  id {ID},"
	"  address TEXT NOT NULL UNIQUE,"
	"  domain_id {INT} NOT NULL REFERENCES domains(id),"
	"  password_hash TEXT NOT NULL,"
	"  suspended INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),"
	"  suspend_reason TEXT,"
	"  created {INT} NOT NULL);"
	"CREATE INDEX accounts_domain_id ON accounts(domain_id);"
	"CREATE TABLE aliases ("
	"  id {ROWID},"
	"  alias TEXT NOT NULL UNIQUE,"
	"  domain_id {INT} NOT NULL REFERENCES domains(id),"
	"  account_id {INT} NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE);"
	"CREATE INDEX aliases_domain_id ON aliases(domain_id);"
	"CREATE INDEX aliases_account_id ON aliases(account_id);",
	/* 2: APOP secrets (RFC 1939 7), a row only for accounts that turn
	 * APOP on. The value is sealed by the caller (src/pop3/apop.h) and
	 * is never the login password hash, which stays a crypt(3) hash. */
	"CREATE TABLE apop_secrets ("
	"  account_id {INT} PRIMARY KEY"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  sealed TEXT NOT NULL);",
	/* 3: the sending policy (store_policy.c): overseas permission,
	 * limit overrides, send counters, events, notices sent, the
	 * submission log and authentication throttling. Events and
	 * submissions keep the address, not the id: the abuse desk needs
	 * them after an account is gone. */
	"ALTER TABLE accounts ADD COLUMN overseas_until {INT} NOT NULL"
	"  DEFAULT 0;"
	"CREATE TABLE account_limits ("
	"  account_id {INT} PRIMARY KEY"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  msgs_day {INT}, rcpts_day {INT}, rcpts_hour {INT},"
	"  rcpts_msg {INT}, overseas_rcpts_day {INT},"
	"  any_sender INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE send_counters ("
	"  account_id {INT} NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  period TEXT NOT NULL,"
	"  msgs {INT} NOT NULL DEFAULT 0,"
	"  rcpts {INT} NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (account_id, period));"
	"CREATE TABLE events ("
	"  id {ROWID},"
	"  time {INT} NOT NULL, account TEXT, type TEXT NOT NULL,"
	"  ip TEXT, country TEXT, detail TEXT);"
	"CREATE INDEX events_account_time ON events(account, time);"
	"CREATE INDEX events_time ON events(time);"
	"CREATE TABLE notices (key TEXT PRIMARY KEY, time {INT} NOT NULL);"
	"CREATE TABLE submissions ("
	"  queue_id TEXT PRIMARY KEY, message_id TEXT,"
	"  time {INT} NOT NULL, account TEXT NOT NULL, ip TEXT,"
	"  country TEXT, tls TEXT, rcpts {INT} NOT NULL,"
	"  size {INT} NOT NULL, overseas INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX submissions_message_id ON submissions(message_id);"
	"CREATE INDEX submissions_account_time ON submissions(account, time);"
	"CREATE TABLE auth_throttle ("
	"  key TEXT PRIMARY KEY, failures {INT} NOT NULL,"
	"  window_start {INT} NOT NULL,"
	"  locked_until {INT} NOT NULL DEFAULT 0);",
	/* 4: per-account trusted relay name suffixes (docs/policy.md) */
	"ALTER TABLE account_limits ADD COLUMN relay_names TEXT;",
	/* 5: what the nodes share beyond accounts and policy
	 * (store_shared.c): settings page sessions (by the SHA-256 of the
	 * id), the API's token hashes, the admin pages' accounts, POP3
	 * mailbox leases and POP-before-SMTP windows. */
	"CREATE TABLE portal_sessions ("
	"  id_hash TEXT PRIMARY KEY, account TEXT NOT NULL,"
	"  csrf TEXT NOT NULL, created {INT} NOT NULL,"
	"  expires {INT} NOT NULL);"
	"CREATE INDEX portal_sessions_account ON portal_sessions(account);"
	"CREATE INDEX portal_sessions_expires ON portal_sessions(expires);"
	"CREATE TABLE api_tokens ("
	"  name TEXT PRIMARY KEY, hash TEXT NOT NULL,"
	"  created {INT} NOT NULL);"
	"CREATE TABLE admin_users ("
	"  name TEXT PRIMARY KEY, password_hash TEXT NOT NULL,"
	"  created {INT} NOT NULL);"
	"CREATE TABLE pop3_locks ("
	"  mailbox TEXT PRIMARY KEY, node TEXT NOT NULL,"
	"  session TEXT NOT NULL, expires {INT} NOT NULL);"
	"CREATE TABLE pop_before_smtp ("
	"  client TEXT PRIMARY KEY, account TEXT NOT NULL,"
	"  expires {INT} NOT NULL);"
	"CREATE INDEX pop_before_smtp_expires ON pop_before_smtp(expires);",
	/* 6: where each login name logged in lately (policy.c, issue 13):
	 * an account's lock does not refuse its owner from there. Keyed by
	 * the name's text like the throttling rows (admins are no account);
	 * bounded per name and by age when a success is recorded. */
	"CREATE TABLE auth_trusted ("
	"  name TEXT NOT NULL, client TEXT NOT NULL,"
	"  last_ok {INT} NOT NULL,"
	"  PRIMARY KEY (name, client));"
	"CREATE INDEX auth_trusted_last_ok ON auth_trusted(last_ok);",
	/* 7: after a password is stolen (issue 17, store_policy.c "risk"):
	 * each account's automatic response (level: 0 none, 1 notified,
	 * 2 on hold, 3 suspended), the desk's exemption, when the desk last
	 * cleared it (older signals no longer count) and warned it; the
	 * countries each account logged in from; the recipients each
	 * account has sent to (first-time recipients); and the accounts
	 * each address failed against (password spraying). Keyed by
	 * address like the events, so the desk's record outlives the
	 * account. */
	"CREATE TABLE risk_state ("
	"  account TEXT PRIMARY KEY,"
	"  level INTEGER NOT NULL DEFAULT 0,"
	"  automatic INTEGER NOT NULL DEFAULT 0,"
	"  exempt INTEGER NOT NULL DEFAULT 0,"
	"  since {INT} NOT NULL DEFAULT 0,"
	"  cleared {INT} NOT NULL DEFAULT 0,"
	"  warned {INT} NOT NULL DEFAULT 0,"
	"  reason TEXT, warning TEXT);"
	"CREATE TABLE risk_logins ("
	"  account TEXT NOT NULL, country TEXT NOT NULL,"
	"  last {INT} NOT NULL,"
	"  PRIMARY KEY (account, country));"
	"CREATE TABLE risk_recipients ("
	"  account TEXT NOT NULL, rcpt TEXT NOT NULL,"
	"  first {INT} NOT NULL,"
	"  PRIMARY KEY (account, rcpt));"
	"CREATE INDEX risk_recipients_first ON risk_recipients(first);"
	"CREATE TABLE risk_spray ("
	"  client TEXT NOT NULL, account TEXT NOT NULL,"
	"  time {INT} NOT NULL,"
	"  PRIMARY KEY (client, account));"
	"CREATE INDEX risk_spray_time ON risk_spray(time);",
	/* 8: the countries an overseas permission covers,
	 * "US,GB" (empty: every country), docs/policy.md. Retention
	 * (store_retention_sweep) deletes by time: send counters by their
	 * period, the rest by the indexed time columns; notices need one. */
	"ALTER TABLE accounts ADD COLUMN overseas_countries TEXT NOT NULL"
	"  DEFAULT '';"
	"CREATE INDEX notices_time ON notices(time);"
	"CREATE INDEX submissions_time ON submissions(time);",
	/* 9: the stable view Dovecot's passdb and userdb read (issue 19,
	 * contrib/dovecot/, docs/imap.md): one row per login name, an
	 * account's own address or an alias of it, with the account it
	 * stands for, the crypt(3) hash as stored and the suspension.
	 * Its columns are an interface: a later step may add columns but
	 * never rename or drop these. */
	"CREATE VIEW dovecot_users AS"
	"  SELECT a.address AS name, a.address AS account,"
	"    a.password_hash AS password, a.suspended AS suspended,"
	"    a.suspend_reason AS reason FROM accounts a"
	"  UNION ALL"
	"  SELECT l.alias AS name, a.address AS account,"
	"    a.password_hash AS password, a.suspended AS suspended,"
	"    a.suspend_reason AS reason"
	"  FROM aliases l JOIN accounts a ON a.id = l.account_id;",
	/* 10: refuse mail that claims to be from the account's own address
	 * on MX (issue 16, store_policy.c "own From"); off by default */
	("ALTER TABLE accounts ADD COLUMN refuse_own_from INTEGER NOT NULL"
	"  DEFAULT 0 CHECK (refuse_own_from IN (0, 1));"),
};
#define STORE_SCHEMA_VERSION \
	((int)(sizeof(store_schema_steps) / sizeof(store_schema_steps[0])))

/* A step with the driver's type names in place of {INT}, {ID}, {ROWID}. */
static void
store_schema_expand(struct sql_db *db, const char *step, struct str *out)
{
	static const struct {
		const char	*token;
		enum sql_type	 type;
	} types[] = {
		{ "{INT}", SQL_TYPE_INT64 },
		{ "{ID}", SQL_TYPE_ID },
		{ "{ROWID}", SQL_TYPE_ROWID },
	};

	while (*step != '\0') {
		size_t i, n = sizeof(types) / sizeof(types[0]);

		for (i = 0; i < n; i++)
			if (strncmp(step, types[i].token,
			    strlen(types[i].token)) == 0)
				break;
		if (i < n) {
			str_append(out, sql_type_name(db, types[i].type));
			step += strlen(types[i].token);
		} else
			str_append_c(out, *step++);
	}
}

static int
store_schema_read_version(struct store *st, int *version_r,
    const char **error_r)
{
	static const char query[] =
	    "SELECT coalesce(max(version), 0) FROM schema_version";
	struct sql_stmt *stmt = sql_prepare(st->db, query, error_r);
	int r;

	if (stmt == NULL)
		return -1;
	if ((r = sql_step(stmt, error_r)) == 1)
		*version_r = (int)sql_col_int64(stmt, 0);
	sql_reset(stmt);
	return r < 0 ? -1 : 0;
}

static int
store_schema_upgrade(struct store *st, const char **error_r)
{
	static const char set_version[] =
	    "INSERT INTO schema_version (version) VALUES (?1)";
	const char *drv = sql_driver_name(st->db);
	struct sql_stmt *stmt;
	int version = 0;

	/* Nodes or processes starting at once migrate once. */
	if (sql_lock_name(st->db, STORE_LOCK_SCHEMA, error_r) < 0 ||
	    sql_exec_script(st->db, "CREATE TABLE IF NOT EXISTS "
	    "schema_version (version INTEGER NOT NULL)", error_r) < 0 ||
	    store_schema_read_version(st, &version, error_r) < 0)
		return -1;
	if (version > STORE_SCHEMA_VERSION)
		return store_set_error(st, error_r, -1, "%s: database schema "
		    "version %d is newer than this sekisho knows (%d)", drv,
		    version, STORE_SCHEMA_VERSION);
	if (version == STORE_SCHEMA_VERSION)
		return 0;
	for (int v = version; v < STORE_SCHEMA_VERSION; v++) {
		struct str step;
		const char *why;
		int r;

		str_init(&step);
		store_schema_expand(st->db, store_schema_steps[v], &step);
		r = sql_exec_script(st->db, str_c(&step), &why);
		str_deinit(&step);
		if (r < 0)
			return store_set_error(st, error_r, -1, "schema upgrade "
			    "to version %d: %s", v + 1, why);
	}
	if (sql_exec_script(st->db, "DELETE FROM schema_version",
	    error_r) < 0 ||
	    (stmt = sql_prepare(st->db, set_version, error_r)) == NULL)
		return -1;
	sql_bind_int64(stmt, 1, STORE_SCHEMA_VERSION);
	return sql_run(stmt, NULL, error_r);
}

int
store_init_schema(struct store *st, const char **error_r)
{
	/* SQLite: IMMEDIATE, so two processes starting at once migrate
	 * once; PostgreSQL: the schema lock. */
	if (sql_begin(st->db, SQL_TX_WRITE, error_r) < 0)
		return -1;
	return store_tx_end(st, SQL_TX_WRITE,
	    store_schema_upgrade(st, error_r), error_r);
}

int
store_schema_version(struct store *st, int *version_r, const char **error_r)
{
	*version_r = 0;
	return store_schema_read_version(st, version_r, error_r);
}
