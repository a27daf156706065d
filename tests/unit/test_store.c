/*
 * test_store: the account store against a temporary SQLite database:
 * address rules, every function's success and error paths, alias
 * resolution, the schema version, and two handles on one file.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/str.h"
#include "store/sql.h"
#include "store/store.h"
#include "unit.h"
#include "store_rows.h"

#define HASH1 "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"
#define HASH2 "$y$j9T$abcdefghijklmnopqrstu.$7uryFExhLbAhrpK1WytVzeNObCUVaK3VoKccP3fJEIB"

static char test_dir[] = "/tmp/test_store.XXXXXX";
static char test_db[256];
static char test_uri[300];

struct canon_row {
	const char	*input;
	const char	*want;		/* canonical, or NULL */
	const char	*error;		/* when want is NULL */
};

static const struct canon_row canon_rows[] = {
	{ "Taro@Example.JP", "taro@example.jp", NULL },
	{ "taro.yamada+tag@mail.example.co.jp",
	    "taro.yamada+tag@mail.example.co.jp", NULL },
	{ "a!#$%&'*+-=?^_`{|}~@x-1.jp", "a!#$%&'*+-=?^_`{|}~@x-1.jp", NULL },
	{ "u@xn--eckwd4c7c.xn--zckzah", "u@xn--eckwd4c7c.xn--zckzah", NULL },
	{ "", NULL, "address must contain exactly one '@'" },
	{ "taro", NULL, "address must contain exactly one '@'" },
	{ "a@b@example.jp", NULL, "address must contain exactly one '@'" },
	{ "@example.jp", NULL, "empty local part" },
	{ "taro@", NULL, "empty domain" },
	{ "ta ro@example.jp", NULL,
	    "address contains a space or control character" },
	{ "taro@example.jp\n", NULL,
	    "address contains a space or control character" },
	{ "ta\tro@example.jp", NULL,
	    "address contains a space or control character" },
	{ "taro\x7f@example.jp", NULL,
	    "address contains a space or control character" },
	{ "\xe5\xa4\xaa\xe9\x83\x8e@example.jp", NULL,
	    "address contains non-ASCII characters" },
	{ "taro@example..jp", NULL, "empty label in domain" },
	{ "taro@.example.jp", NULL, "empty label in domain" },
	{ "taro@example.jp.", NULL, "empty label in domain" },
	{ "taro@-example.jp", NULL, "domain label starts or ends with '-'" },
	{ "taro@example-.jp", NULL, "domain label starts or ends with '-'" },
	{ "taro@exa_mple.jp", NULL, "domain may contain only letters, digits, "
	    "'-' and '.' (write internationalized names in their xn-- form)" },
	{ "taro@[192.0.2.1]", NULL, "domain may contain only letters, digits, "
	    "'-' and '.' (write internationalized names in their xn-- form)" },
	{ ".taro@example.jp", NULL,
	    "local part has a '.' at its start or end or two in a row" },
	{ "taro.@example.jp", NULL,
	    "local part has a '.' at its start or end or two in a row" },
	{ "ta..ro@example.jp", NULL,
	    "local part has a '.' at its start or end or two in a row" },
	{ "..@example.jp", NULL,
	    "local part has a '.' at its start or end or two in a row" },
	{ "ta/ro@example.jp", NULL, "local part may contain only letters, "
	    "digits, '.' and !#$%&'*+-=?^_`{|}~" },
	{ "\"ta ro\"@example.jp", NULL,
	    "address contains a space or control character" },
	{ "ta(ro)@example.jp", NULL, "local part may contain only letters, "
	    "digits, '.' and !#$%&'*+-=?^_`{|}~" },
};

static void
test_canonical(void)
{
	char buf[STORE_ADDRESS_MAX + 1], big[400];
	const char *error;

	for (size_t i = 0; i < sizeof(canon_rows) / sizeof(canon_rows[0]);
	    i++) {
		const struct canon_row *r = &canon_rows[i];
		int ret;

		error = NULL;
		ret = store_address_canonical(r->input, buf, sizeof(buf),
		    &error);
		if (r->want != NULL) {
			UNIT_CHECK_INT(ret, 0);
			if (ret == 0)
				UNIT_CHECK_STR(buf, r->want);
		} else {
			if (ret != -1)
				fprintf(stderr, "row %zu accepted\n", i);
			UNIT_CHECK_INT(ret, -1);
			UNIT_CHECK_STR(error, r->error);
		}
	}

	/* Lengths: local part 64, label 63, address 254. */
	memset(big, 'a', 64);
	memcpy(big + 64, "@example.jp", 12);
	UNIT_CHECK_INT(store_address_canonical(big, buf, sizeof(buf), &error),
	    0);
	memset(big, 'a', 65);
	memcpy(big + 65, "@example.jp", 12);
	UNIT_CHECK_INT(store_address_canonical(big, buf, sizeof(buf), &error),
	    -1);
	UNIT_CHECK_STR(error, "local part longer than 64 octets");
	memcpy(big, "a@", 2);
	memset(big + 2, 'b', 64);
	memcpy(big + 66, ".jp", 4);
	UNIT_CHECK_INT(store_address_canonical(big, buf, sizeof(buf), &error),
	    -1);
	UNIT_CHECK_STR(error, "domain label longer than 63 octets");
	/* a@ + 4 labels of 62 + dots: 2 + 4 * 63 - 1 = 253, then 255. */
	memcpy(big, "a@", 2);
	for (int l = 0; l < 4; l++) {
		memset(big + 2 + l * 63, 'c', 62);
		big[2 + l * 63 + 62] = '.';
	}
	big[2 + 4 * 63 - 1] = '\0';
	UNIT_CHECK_INT(strlen(big), 253);
	UNIT_CHECK_INT(store_address_canonical(big, buf, sizeof(buf), &error),
	    0);
	big[252] = '.';
	memcpy(big + 253, "dd", 3);
	UNIT_CHECK_INT(store_address_canonical(big, buf, sizeof(buf), &error),
	    -1);
	UNIT_CHECK_STR(error, "address longer than 254 octets");

	UNIT_CHECK_INT(store_domain_canonical("Example.JP", buf, sizeof(buf),
	    &error), 0);
	UNIT_CHECK_STR(buf, "example.jp");
	UNIT_CHECK_INT(store_domain_canonical("", buf, sizeof(buf), &error),
	    -1);
	UNIT_CHECK_STR(error, "empty domain");
	UNIT_CHECK_INT(store_domain_canonical("ex ample.jp", buf, sizeof(buf),
	    &error), -1);
}

static void
test_open_errors(void)
{
	struct store *st;
	const char *error = NULL;
	char uri[400];

	st = store_open("mysql:/x", &error);
	UNIT_CHECK(st == NULL);
	UNIT_CHECK_STR(error, "unknown store 'mysql:/x' (expected sqlite:PATH "
	    "or postgresql:CONNINFO)");
	st = store_open("/var/lib/sekisho.db", &error);
	UNIT_CHECK(st == NULL);
	UNIT_CHECK_STR(error, "unknown store '/var/lib/sekisho.db' "
	    "(expected sqlite:PATH or postgresql:CONNINFO)");
	st = store_open("", &error);
	UNIT_CHECK(st == NULL);
	UNIT_CHECK_STR(error, "no store configured");
	st = store_open("sqlite:", &error);
	UNIT_CHECK(st == NULL);
	UNIT_CHECK_STR(error, "sqlite: no database path given "
	    "(store = sqlite:PATH)");

	snprintf(uri, sizeof(uri), "sqlite:%s/missing/db", test_dir);
	st = store_open(uri, &error);
	UNIT_CHECK(st == NULL);
	UNIT_CHECK(error != NULL && strstr(error, "cannot open") != NULL &&
	    strstr(error, "No such file or directory") != NULL);

	/* Not a database. */
	snprintf(uri, sizeof(uri), "%s/junk.db", test_dir);
	{
		FILE *fp = fopen(uri, "w");

		UNIT_CHECK(fp != NULL);
		if (fp != NULL) {
			fputs("this is not an SQLite database, not at all, "
			    "no no no no no no no no no no no no\n", fp);
			fclose(fp);
		}
	}
	snprintf(uri, sizeof(uri), "sqlite:%s/junk.db", test_dir);
	st = store_open(uri, &error);
	UNIT_CHECK(st == NULL);
	UNIT_CHECK(error != NULL &&
	    strstr(error, "file is not a database") != NULL);
}

/* One number from the database, read behind the store's back (a
 * connection of its own, either driver). */
static long long
test_count(const char *sql)
{
	const char *error;
	struct sql_db *db = sql_open(test_uri, &error);
	struct sql_stmt *stmt;
	long long n = -1;

	if (db == NULL)
		return -1;
	if ((stmt = sql_prepare(db, sql, &error)) != NULL) {
		if (sql_step(stmt, &error) == 1)
			n = sql_col_int64(stmt, 0);
		sql_reset(stmt);
	}
	sql_close(&db);
	return n;
}

/* The schema version the store wrote: one per migration step, so it
 * grows as parts add steps (2: APOP secrets). */
static int test_schema_version;

/* What SQLite itself says about the file: journal mode and version. */
static void
test_file_facts(void)
{
	sqlite3 *db;
	sqlite3_stmt *stmt;
	struct stat sb;

	UNIT_CHECK_INT(stat(test_db, &sb), 0);
	UNIT_CHECK_INT(sb.st_mode & 0777, 0600);

	UNIT_CHECK_INT(sqlite3_open_v2(test_db, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	UNIT_CHECK_INT(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt,
	    NULL), SQLITE_OK);
	UNIT_CHECK_INT(sqlite3_step(stmt), SQLITE_ROW);
	UNIT_CHECK_STR((const char *)sqlite3_column_text(stmt, 0), "wal");
	sqlite3_finalize(stmt);
	UNIT_CHECK_INT(sqlite3_prepare_v2(db, "SELECT version FROM "
	    "schema_version", -1, &stmt, NULL), SQLITE_OK);
	UNIT_CHECK_INT(sqlite3_step(stmt), SQLITE_ROW);
	test_schema_version = sqlite3_column_int(stmt, 0);
	UNIT_CHECK(test_schema_version >= 2);
	UNIT_CHECK_INT(sqlite3_step(stmt), SQLITE_DONE);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
}

static void
test_schema(struct store *st)
{
	const char *error = NULL;
	struct store *st2;
	sqlite3 *db;
	char want[128];

	/* Idempotent, and keeps data. */
	UNIT_CHECK_INT(store_domain_add(st, "schema.test", &error), 0);
	UNIT_CHECK_INT(store_init_schema(st, &error), 0);
	UNIT_CHECK_INT(store_init_schema(st, &error), 0);
	UNIT_CHECK_INT(store_domain_exists(st, "schema.test", &error), 0);
	UNIT_CHECK_INT(store_domain_del(st, "schema.test", &error), 0);

	/* A newer database is refused, not damaged. */
	UNIT_CHECK_INT(sqlite3_open(test_db, &db), SQLITE_OK);
	UNIT_CHECK_INT(sqlite3_exec(db, "UPDATE schema_version SET version = 99",
	    NULL, NULL, NULL), SQLITE_OK);
	st2 = store_open(test_uri, &error);
	UNIT_CHECK(st2 != NULL);
	if (st2 != NULL) {
		UNIT_CHECK_INT(store_init_schema(st2, &error), -1);
		snprintf(want, sizeof(want), "sqlite: database schema version "
		    "99 is newer than this sekisho knows (%d)",
		    test_schema_version);
		UNIT_CHECK_STR(error, want);
		store_close(&st2);
		UNIT_CHECK(st2 == NULL);
	}
	snprintf(want, sizeof(want), "UPDATE schema_version SET version = %d",
	    test_schema_version);
	UNIT_CHECK_INT(sqlite3_exec(db, want, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void
test_domains(struct store *st)
{
	struct str out = STR_INIT;
	const char *error = NULL;

	UNIT_CHECK_INT(store_domain_add(st, "example.jp", &error), 0);
	UNIT_CHECK_INT(store_domain_add(st, "Example.NET", &error), 0);
	UNIT_CHECK_INT(store_domain_add(st, "a.example.jp", &error), 0);
	UNIT_CHECK_INT(store_domain_add(st, "EXAMPLE.jp", &error), -1);
	UNIT_CHECK_STR(error, "domain 'example.jp' already exists");
	UNIT_CHECK_INT(store_domain_add(st, "bad domain", &error), -1);
	UNIT_CHECK_STR(error, "invalid domain 'bad domain': domain may contain "
	    "only letters, digits, '-' and '.' (write internationalized "
	    "names in their xn-- form)");
	UNIT_CHECK_INT(store_domain_add(st, "bad\x01", &error), -1);
	UNIT_CHECK_STR(error, "invalid domain 'bad\\x01': domain may contain "
	    "only letters, digits, '-' and '.' (write internationalized "
	    "names in their xn-- form)");
	UNIT_CHECK_INT(store_domain_add(st, "", &error), -1);
	UNIT_CHECK_STR(error, "invalid domain '': empty domain");

	UNIT_CHECK_INT(store_domain_exists(st, "example.jp", &error), 0);
	UNIT_CHECK_INT(store_domain_exists(st, "EXAMPLE.JP", &error), 0);
	UNIT_CHECK_INT(store_domain_exists(st, "example.net", &error), 0);
	UNIT_CHECK_INT(store_domain_exists(st, "example.com", &error), 1);
	UNIT_CHECK_INT(store_domain_exists(st, "exa mple.jp", &error), 1);
	UNIT_CHECK_INT(store_domain_exists(st, "", &error), 1);

	UNIT_CHECK_INT(store_domain_list(st, rows_domain, &out, &error), 0);
	UNIT_CHECK_STR(str_c(&out), "a.example.jp\nexample.jp\nexample.net\n");

	UNIT_CHECK_INT(store_domain_del(st, "A.Example.JP", &error), 0);
	UNIT_CHECK_INT(store_domain_exists(st, "a.example.jp", &error), 1);
	UNIT_CHECK_INT(store_domain_del(st, "a.example.jp", &error), 1);
	UNIT_CHECK_STR(error, "no such domain 'a.example.jp'");
	UNIT_CHECK_INT(store_domain_del(st, "no\nsuch", &error), 1);
	UNIT_CHECK_STR(error, "no such domain 'no\\x0asuch'");
	str_deinit(&out);
}

static void
test_accounts(struct store *st)
{
	struct account a;
	struct str out = STR_INIT;
	const char *error = NULL;
	time_t before = time(NULL);

	UNIT_CHECK_INT(store_account_add(st, "Taro.Yamada@Example.JP", HASH1,
	    &error), 0);
	UNIT_CHECK_INT(store_account_add(st, "hanako@example.jp", HASH2,
	    &error), 0);
	UNIT_CHECK_INT(store_account_add(st, "bob@example.net", HASH1,
	    &error), 0);

	/* Errors. */
	UNIT_CHECK_INT(store_account_add(st, "taro.yamada@example.jp", HASH2,
	    &error), -1);
	UNIT_CHECK_STR(error, "account 'taro.yamada@example.jp' already "
	    "exists");
	UNIT_CHECK_INT(store_account_add(st, "taro@example.com", HASH1,
	    &error), -1);
	UNIT_CHECK_STR(error, "no such domain 'example.com'");
	UNIT_CHECK_INT(store_account_add(st, "taro@@example.jp", HASH1,
	    &error), -1);
	UNIT_CHECK_STR(error, "invalid address 'taro@@example.jp': address "
	    "must contain exactly one '@'");
	UNIT_CHECK_INT(store_account_add(st, "jiro@example.jp", "", &error),
	    -1);
	UNIT_CHECK_STR(error, "empty password hash");
	UNIT_CHECK_INT(store_account_add(st, "jiro@example.jp", NULL, &error),
	    -1);
	UNIT_CHECK_STR(error, "empty password hash");
	UNIT_CHECK_INT(store_account_add(st, "jiro@example.jp", "$6$a b",
	    &error), -1);
	UNIT_CHECK_STR(error, "password hash contains a space, control or "
	    "non-ASCII character");

	/* Get, in any case. */
	memset(&a, 0, sizeof(a));
	UNIT_CHECK_INT(store_account_get(st, "TARO.yamada@example.jp", &a,
	    &error), 0);
	UNIT_CHECK_STR(a.address, "taro.yamada@example.jp");
	UNIT_CHECK_STR(a.password_hash, HASH1);
	UNIT_CHECK_INT(a.suspended, 0);
	UNIT_CHECK(a.suspend_reason == NULL);
	UNIT_CHECK(a.id > 0);
	UNIT_CHECK(a.created >= before && a.created <= time(NULL));
	account_deinit(&a);
	UNIT_CHECK(a.address == NULL && a.password_hash == NULL);
	UNIT_CHECK_INT(store_account_get(st, "nobody@example.jp", &a, &error),
	    1);
	UNIT_CHECK_INT(store_account_get(st, "taro yamada@example.jp", &a,
	    &error), 1);
	UNIT_CHECK_INT(store_account_get(st, "", &a, &error), 1);

	/* Password. */
	UNIT_CHECK_INT(store_account_set_password(st, "Hanako@example.jp",
	    HASH1, &error), 0);
	UNIT_CHECK_INT(store_account_get(st, "hanako@example.jp", &a, &error),
	    0);
	UNIT_CHECK_STR(a.password_hash, HASH1);
	account_deinit(&a);
	UNIT_CHECK_INT(store_account_set_password(st, "nobody@example.jp",
	    HASH1, &error), 1);
	UNIT_CHECK_STR(error, "no such account 'nobody@example.jp'");
	UNIT_CHECK_INT(store_account_set_password(st, "hanako@example.jp",
	    "", &error), -1);
	UNIT_CHECK_STR(error, "empty password hash");

	/* Suspension, with and without a reason. */
	UNIT_CHECK_INT(store_account_set_suspended(st, "hanako@example.jp", 1,
	    "spam complaint #123", &error), 0);
	UNIT_CHECK_INT(store_account_get(st, "hanako@example.jp", &a, &error),
	    0);
	UNIT_CHECK_INT(a.suspended, 1);
	UNIT_CHECK_STR(a.suspend_reason, "spam complaint #123");
	account_deinit(&a);
	UNIT_CHECK_INT(store_account_set_suspended(st, "hanako@example.jp", 0,
	    "ignored", &error), 0);
	UNIT_CHECK_INT(store_account_get(st, "hanako@example.jp", &a, &error),
	    0);
	UNIT_CHECK_INT(a.suspended, 0);
	UNIT_CHECK(a.suspend_reason == NULL);
	account_deinit(&a);
	UNIT_CHECK_INT(store_account_set_suspended(st, "bob@example.net", 1,
	    "", &error), 0);
	UNIT_CHECK_INT(store_account_get(st, "bob@example.net", &a, &error),
	    0);
	UNIT_CHECK_INT(a.suspended, 1);
	UNIT_CHECK(a.suspend_reason == NULL);
	account_deinit(&a);
	UNIT_CHECK_INT(store_account_set_suspended(st, "bob@example.net", 1,
	    "line\nbreak", &error), -1);
	UNIT_CHECK_STR(error, "reason contains a control character");
	UNIT_CHECK_INT(store_account_set_suspended(st, "nobody@example.net", 1,
	    NULL, &error), 1);
	UNIT_CHECK_STR(error, "no such account 'nobody@example.net'");

	/* Lists. */
	UNIT_CHECK_INT(store_account_list(st, NULL, rows_account, &out, &error), 0);
	UNIT_CHECK_STR(str_c(&out), "bob@example.net\t1\nhanako@example.jp\t0\n"
	    "taro.yamada@example.jp\t0\n");
	str_clear(&out);
	UNIT_CHECK_INT(store_account_list(st, "EXAMPLE.jp", rows_account, &out, &error), 0);
	UNIT_CHECK_STR(str_c(&out), "hanako@example.jp\t0\n"
	    "taro.yamada@example.jp\t0\n");
	str_clear(&out);
	UNIT_CHECK_INT(store_account_list(st, "example.com", rows_account, &out, &error), 1);
	UNIT_CHECK_STR(error, "no such domain 'example.com'");
	UNIT_CHECK_STR(str_c(&out), "");

	/* A domain with accounts stays. */
	UNIT_CHECK_INT(store_domain_del(st, "example.net", &error), -1);
	UNIT_CHECK_STR(error, "domain 'example.net' still has 1 account(s) "
	    "and 0 alias(es); delete them first");
	UNIT_CHECK_INT(store_domain_exists(st, "example.net", &error), 0);

	/* Delete. */
	UNIT_CHECK_INT(store_account_del(st, "BOB@example.net", &error), 0);
	UNIT_CHECK_INT(store_account_get(st, "bob@example.net", &a, &error),
	    1);
	UNIT_CHECK_INT(store_account_del(st, "bob@example.net", &error), 1);
	UNIT_CHECK_STR(error, "no such account 'bob@example.net'");
	/* The address can be used again, with a new id. */
	UNIT_CHECK_INT(store_account_add(st, "bob@example.net", HASH2,
	    &error), 0);
	str_deinit(&out);
}

static void
test_aliases(struct store *st)
{
	struct str out = STR_INIT;
	struct account a;
	const char *error = NULL;
	char *acct = NULL;
	int local = -1;

	UNIT_CHECK_INT(store_alias_add(st, "Info@Example.JP",
	    "hanako@example.jp", &error), 0);
	UNIT_CHECK_INT(store_alias_add(st, "yamada@example.jp",
	    "TARO.YAMADA@example.jp", &error), 0);
	UNIT_CHECK_INT(store_alias_add(st, "taro@example.net",
	    "taro.yamada@example.jp", &error), 0);

	UNIT_CHECK_INT(store_alias_add(st, "info@example.jp",
	    "taro.yamada@example.jp", &error), -1);
	UNIT_CHECK_STR(error, "alias 'info@example.jp' already exists");
	UNIT_CHECK_INT(store_alias_add(st, "Hanako@example.jp",
	    "taro.yamada@example.jp", &error), -1);
	UNIT_CHECK_STR(error, "'hanako@example.jp' is already an account");
	UNIT_CHECK_INT(store_alias_add(st, "x@example.com",
	    "taro.yamada@example.jp", &error), -1);
	UNIT_CHECK_STR(error, "no such domain 'example.com'");
	UNIT_CHECK_INT(store_alias_add(st, "x@example.jp",
	    "nobody@example.jp", &error), -1);
	UNIT_CHECK_STR(error, "no such account 'nobody@example.jp'");
	/* An alias is not an account: no chains. */
	UNIT_CHECK_INT(store_alias_add(st, "x@example.jp", "info@example.jp",
	    &error), -1);
	UNIT_CHECK_STR(error, "no such account 'info@example.jp'");
	UNIT_CHECK_INT(store_alias_add(st, "x y@example.jp",
	    "hanako@example.jp", &error), -1);
	UNIT_CHECK_STR(error, "invalid alias 'x y@example.jp': address "
	    "contains a space or control character");
	/* And an account may not take an alias's address. */
	UNIT_CHECK_INT(store_account_add(st, "INFO@example.jp", HASH1,
	    &error), -1);
	UNIT_CHECK_STR(error, "'info@example.jp' is already an alias");

	UNIT_CHECK_INT(store_alias_list(st, NULL, rows_alias, &out, &error), 0);
	UNIT_CHECK_STR(str_c(&out), "info@example.jp\thanako@example.jp\n"
	    "taro@example.net\ttaro.yamada@example.jp\n"
	    "yamada@example.jp\ttaro.yamada@example.jp\n");
	str_clear(&out);
	UNIT_CHECK_INT(store_alias_list(st, "Taro.Yamada@example.jp", rows_alias, &out,
	    &error), 0);
	UNIT_CHECK_STR(str_c(&out), "taro@example.net\ttaro.yamada@example.jp\n"
	    "yamada@example.jp\ttaro.yamada@example.jp\n");
	str_clear(&out);
	UNIT_CHECK_INT(store_alias_list(st, "bob@example.net", rows_alias, &out, &error),
	    0);
	UNIT_CHECK_STR(str_c(&out), "");
	UNIT_CHECK_INT(store_alias_list(st, "nobody@example.net", rows_alias, &out,
	    &error), 1);
	UNIT_CHECK_STR(error, "no such account 'nobody@example.net'");

	/* Resolution: account, alias, unknown user, foreign domain. */
	UNIT_CHECK_INT(store_resolve_recipient(st, "Taro.Yamada@EXAMPLE.jp",
	    &acct, &local, &error), 0);
	UNIT_CHECK_STR(acct, "taro.yamada@example.jp");
	UNIT_CHECK_INT(local, 1);
	free(acct);
	UNIT_CHECK_INT(store_resolve_recipient(st, "INFO@example.jp", &acct,
	    &local, &error), 0);
	UNIT_CHECK_STR(acct, "hanako@example.jp");
	UNIT_CHECK_INT(local, 1);
	free(acct);
	UNIT_CHECK_INT(store_resolve_recipient(st, "taro@example.net", &acct,
	    &local, &error), 0);
	UNIT_CHECK_STR(acct, "taro.yamada@example.jp");
	free(acct);
	UNIT_CHECK_INT(store_resolve_recipient(st, "nobody@example.jp", &acct,
	    &local, &error), 1);
	UNIT_CHECK(acct == NULL);
	UNIT_CHECK_INT(local, 1);
	UNIT_CHECK_INT(store_resolve_recipient(st, "taro.yamada@example.com",
	    &acct, &local, &error), 1);
	UNIT_CHECK(acct == NULL);
	UNIT_CHECK_INT(local, 0);
	/* A local part nobody could have, at our domain: user unknown. */
	UNIT_CHECK_INT(store_resolve_recipient(st, "\"x y\"@Example.JP", &acct,
	    &local, &error), 1);
	UNIT_CHECK_INT(local, 1);
	UNIT_CHECK_INT(store_resolve_recipient(st, "x@[192.0.2.1]", &acct,
	    &local, &error), 1);
	UNIT_CHECK_INT(local, 0);
	UNIT_CHECK_INT(store_resolve_recipient(st, "postmaster", &acct,
	    &local, &error), 1);
	UNIT_CHECK_INT(local, 0);
	UNIT_CHECK_INT(store_resolve_recipient(st, "", &acct, &local, &error),
	    1);
	UNIT_CHECK_INT(local, 0);

	/* The alias domain holds its domain. */
	UNIT_CHECK_INT(store_account_del(st, "bob@example.net", &error), 0);
	UNIT_CHECK_INT(store_domain_del(st, "example.net", &error), -1);
	UNIT_CHECK_STR(error, "domain 'example.net' still has 0 account(s) "
	    "and 1 alias(es); delete them first");

	/* Delete an alias. */
	UNIT_CHECK_INT(store_alias_del(st, "Taro@Example.NET", &error), 0);
	UNIT_CHECK_INT(store_alias_del(st, "taro@example.net", &error), 1);
	UNIT_CHECK_STR(error, "no such alias 'taro@example.net'");
	UNIT_CHECK_INT(store_resolve_recipient(st, "taro@example.net", &acct,
	    &local, &error), 1);
	UNIT_CHECK_INT(local, 1);
	UNIT_CHECK_INT(store_domain_del(st, "example.net", &error), 0);

	/* Deleting an account deletes its aliases. */
	UNIT_CHECK_INT(store_account_del(st, "taro.yamada@example.jp", &error),
	    0);
	UNIT_CHECK_INT(store_resolve_recipient(st, "yamada@example.jp", &acct,
	    &local, &error), 1);
	UNIT_CHECK_INT(local, 1);
	str_clear(&out);
	UNIT_CHECK_INT(store_alias_list(st, NULL, rows_alias, &out, &error), 0);
	UNIT_CHECK_STR(str_c(&out), "info@example.jp\thanako@example.jp\n");
	/* Gone from the table, not only hidden by a join. */
	UNIT_CHECK_INT(test_count("SELECT count(*) FROM aliases"), 1);
	/* ... and the alias address is free for a new account. */
	UNIT_CHECK_INT(store_account_add(st, "yamada@example.jp", HASH1,
	    &error), 0);
	UNIT_CHECK_INT(store_account_get(st, "yamada@example.jp", &a, &error),
	    0);
	account_deinit(&a);
	str_deinit(&out);
}

/* Two handles on one file, as two backend threads have: each sees the
 * other's committed writes, also while one holds a read open. */
static void
test_two_handles(struct store *st)
{
	struct store *st2;
	struct str out = STR_INIT;
	struct account a;
	const char *error = NULL;

	st2 = store_open(test_uri, &error);
	UNIT_CHECK(st2 != NULL);
	if (st2 == NULL)
		return;
	UNIT_CHECK_INT(store_init_schema(st2, &error), 0);
	UNIT_CHECK_INT(store_domain_add(st2, "two.example", &error), 0);
	UNIT_CHECK_INT(store_domain_exists(st, "two.example", &error), 0);
	UNIT_CHECK_INT(store_account_add(st, "u@two.example", HASH1, &error),
	    0);
	UNIT_CHECK_INT(store_account_get(st2, "u@two.example", &a, &error), 0);
	account_deinit(&a);
	UNIT_CHECK_INT(store_account_set_suspended(st2, "u@two.example", 1,
	    "test", &error), 0);
	UNIT_CHECK_INT(store_account_get(st, "u@two.example", &a, &error), 0);
	UNIT_CHECK_INT(a.suspended, 1);
	UNIT_CHECK_STR(a.suspend_reason, "test");
	account_deinit(&a);
	UNIT_CHECK_INT(store_account_list(st2, "two.example", rows_account, &out, &error), 0);
	UNIT_CHECK_STR(str_c(&out), "u@two.example\t1\n");
	UNIT_CHECK_INT(store_account_del(st2, "u@two.example", &error), 0);
	UNIT_CHECK_INT(store_domain_del(st, "two.example", &error), 0);
	UNIT_CHECK_INT(store_domain_exists(st2, "two.example", &error), 1);
	store_close(&st2);
	str_deinit(&out);
}

/* Free text is cut when stored (docs/portal.md "Stored lengths"): a
 * huge detail or Message-ID, control characters made '?', so a row read
 * back is one line with its fields in place. */
static void
test_stored_cut(struct store *st)
{
	char *huge = malloc(30001), *id = malloc(2001);
	struct store_event e = { .time = 100, .account = "a@example.jp",
	    .type = "sender_refused", .ip = "192.0.2.1", .country = "US" };
	struct store_submission sub = { .queue_id = "0123456789ABCDEF0123",
	    .time = 100, .account = "a@example.jp", .ip = "192.0.2.1",
	    .country = "US", .rcpts = 1, .size = 10 };
	struct str out = STR_INIT;
	const char *error;
	char *tab;

	memset(huge, 'f', 30000);
	huge[30000] = '\0';
	memcpy(huge, "x\n1\tforged\tadmin_suspend\t", 25);
	memset(id, 'i', 2000);
	id[2000] = '\0';
	e.detail = huge;
	sub.message_id = id;
	UNIT_CHECK_INT(store_event_add(st, &e, &error), 0);
	UNIT_CHECK_INT(store_submission_add(st, &sub, &error), 0);
	UNIT_CHECK_INT(store_event_list(st, "a@example.jp", 0, 10, rows_event, &out,
	    &error), 0);
	/* one line: TIME ACCOUNT TYPE IP COUNTRY DETAIL(200) */
	UNIT_CHECK(strchr(out.s, '\n') == out.s + out.len - 1);
	tab = strrchr(out.s, '\t');
	UNIT_CHECK(tab != NULL && out.s + out.len - 1 - (tab + 1) ==
	    STORE_EVENT_DETAIL_MAX);
	UNIT_CHECK(tab != NULL && strncmp(tab + 1, "x?1?forged?", 11) == 0);
	str_truncate(&out, 0);
	UNIT_CHECK_INT(store_submission_list(st, "a@example.jp", 0, 10, rows_submission, &out,
	    &error), 0);
	UNIT_CHECK(strstr(out.s, "\t") != NULL &&
	    strcspn(strchr(out.s, '\t') + 1, "\t") == STORE_MSGID_MAX);
	/* found by the Message-ID as sent (cut the same way) */
	str_truncate(&out, 0);
	UNIT_CHECK_INT(store_submission_find(st, NULL, id, rows_submission, &out, &error), 0);
	str_deinit(&out);
	free(huge);
	free(id);
}

int
main(void)
{
	struct store *st;
	const char *error = NULL;
	char cmd[400];

	umask(022);
	if (mkdtemp(test_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(test_db, sizeof(test_db), "%s/sekisho.db", test_dir);
	snprintf(test_uri, sizeof(test_uri), "sqlite:%s", test_db);

	test_canonical();
	test_open_errors();

	st = store_open(test_uri, &error);
	UNIT_CHECK(st != NULL);
	if (st == NULL) {
		fprintf(stderr, "store_open: %s\n", error);
		UNIT_END();
	}
	UNIT_CHECK_INT(store_init_schema(st, &error), 0);
	test_file_facts();
	test_schema(st);
	test_domains(st);
	test_accounts(st);
	test_aliases(st);
	test_two_handles(st);
	test_stored_cut(st);
	store_close(&st);
	UNIT_CHECK(st == NULL);
	store_close(&st);
	printf("backend sqlite\n");

	/* the same calls on PostgreSQL (an empty database): all but the
	 * file's own facts */
	if (getenv("SEKISHO_TEST_PGSQL") != NULL &&
	    *getenv("SEKISHO_TEST_PGSQL") != '\0') {
		snprintf(test_uri, sizeof(test_uri), "%s",
		    getenv("SEKISHO_TEST_PGSQL"));
		st = store_open(test_uri, &error);
		UNIT_CHECK(st != NULL);
		if (st != NULL) {
			UNIT_CHECK_INT(store_init_schema(st, &error), 0);
			test_domains(st);
			test_accounts(st);
			test_aliases(st);
			test_two_handles(st);
			test_stored_cut(st);
			store_close(&st);
			printf("backend postgresql\n");
		}
	} else
		printf("postgresql: not tested (SEKISHO_TEST_PGSQL unset)\n");

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", test_dir);
	UNIT_END();
}
