/*
 * test_store_backends: one table of store calls with the exact results
 * a caller sees (return code, error text, listing), run against every
 * backend: SQLite always, and PostgreSQL when SEKISHO_TEST_PGSQL holds
 * a store URI of an empty database ("postgresql:host=... dbname=...";
 * tests/e2e/test_store_backends.py sets it with a throwaway cluster).
 * Both drivers must read the same to their callers (each query is written
 * once, over sql.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/str.h"
#include "store/store.h"
#include "unit.h"
#include "store_rows.h"

#define HASH1 "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"

enum op {
	DOM_ADD, DOM_DEL, DOM_EXISTS, DOM_LIST,
	ACC_ADD, ACC_DEL, ACC_PASSWD, ACC_SUSPEND, ACC_RESUME, ACC_GET,
	ACC_LIST,
	ALI_ADD, ALI_DEL, ALI_LIST, RESOLVE,
	APOP_SET, APOP_GET, APOP_CLEAR,
	POL_SET, POL_GET, OVERSEAS,
	COUNT_ADD, COUNT_SUB, COUNT_GET,
	NOTICE, EVENT_ADD, EVENT_LIST,
	SUB_ADD, SUB_FIND, SUB_LIST_ALL,
	THR_FAIL, THR_GET, THR_CLEAR,
	SES_ADD, SES_GET, SES_TOUCH, SES_DEL, SES_DEL_ACC, EXPIRE,
	TOK_ADD, TOK_GET, TOK_DEL, TOK_LIST,
	ADM_ADD, ADM_PW, ADM_GET, ADM_DEL, ADM_LIST,
	LOCK_TAKE, LOCK_REFRESH, LOCK_RELEASE, PBS_SET, PBS_GET,
};

/* session id hashes and a CSRF token: 64 hex digits */
#define HX(c)	c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
		c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define H_A	HX("a")
#define H_B	HX("b")
#define H_C	HX("c")
#define CSRF	HX("f")
#define HASH2	"$y$j9T$abc$def"
/* POP3 leases are taken for this long from the row's time */
#define LEASE	300

struct row {
	enum op		 op;
	const char	*a, *b;
	int64_t		 n;	/* a number argument (limits, times) */
	int		 ret;
	const char	*error;	/* on ret != 0, or NULL not to check */
	const char	*out;	/* what the call printed, or NULL */
};

static const struct row rows[] = {
	{ DOM_ADD, "Example.JP", NULL, 0, 0, NULL, NULL },
	{ DOM_ADD, "example.jp", NULL, 0, -1,
	    "domain 'example.jp' already exists", NULL },
	{ DOM_ADD, "other.jp", NULL, 0, 0, NULL, NULL },
	{ DOM_LIST, NULL, NULL, 0, 0, NULL, "example.jp\nother.jp\n" },
	{ DOM_EXISTS, "EXAMPLE.jp", NULL, 0, 0, NULL, NULL },
	{ DOM_EXISTS, "nowhere.jp", NULL, 0, 1, NULL, NULL },
	{ ACC_ADD, "Taro@Example.jp", NULL, 0, 0, NULL, NULL },
	{ ACC_ADD, "taro@example.jp", NULL, 0, -1,
	    "account 'taro@example.jp' already exists", NULL },
	{ ACC_ADD, "hanako@nowhere.jp", NULL, 0, -1,
	    "no such domain 'nowhere.jp'", NULL },
	{ ACC_ADD, "hanako@example.jp", NULL, 0, 0, NULL, NULL },
	{ ACC_GET, "TARO@example.jp", NULL, 0, 0, NULL,
	    "taro@example.jp " HASH1 " 0 -" },
	{ ACC_GET, "nobody@example.jp", NULL, 0, 1, NULL, NULL },
	{ ACC_SUSPEND, "hanako@example.jp", "spam report 1", 0, 0, NULL,
	    NULL },
	{ ACC_GET, "hanako@example.jp", NULL, 0, 0, NULL,
	    "hanako@example.jp " HASH1 " 1 spam report 1" },
	{ ACC_SUSPEND, "nobody@example.jp", "x", 0, 1,
	    "no such account 'nobody@example.jp'", NULL },
	{ ACC_LIST, NULL, NULL, 0, 0, NULL,
	    "hanako@example.jp\t1\ntaro@example.jp\t0\n" },
	{ ACC_RESUME, "hanako@example.jp", NULL, 0, 0, NULL, NULL },
	{ ACC_LIST, "example.jp", NULL, 0, 0, NULL,
	    "hanako@example.jp\t0\ntaro@example.jp\t0\n" },
	{ ACC_LIST, "nowhere.jp", NULL, 0, 1, "no such domain 'nowhere.jp'",
	    NULL },
	{ ACC_PASSWD, "nobody@example.jp", NULL, 0, 1,
	    "no such account 'nobody@example.jp'", NULL },
	{ ACC_PASSWD, "taro@example.jp", NULL, 0, 0, NULL, NULL },
	{ ALI_ADD, "info@example.jp", "taro@example.jp", 0, 0, NULL, NULL },
	{ ALI_ADD, "info@example.jp", "taro@example.jp", 0, -1,
	    "alias 'info@example.jp' already exists", NULL },
	{ ALI_ADD, "hanako@example.jp", "taro@example.jp", 0, -1,
	    "'hanako@example.jp' is already an account", NULL },
	{ ALI_ADD, "x@example.jp", "nobody@example.jp", 0, -1,
	    "no such account 'nobody@example.jp'", NULL },
	{ ALI_ADD, "x@nowhere.jp", "taro@example.jp", 0, -1,
	    "no such domain 'nowhere.jp'", NULL },
	{ ACC_ADD, "info@example.jp", NULL, 0, -1,
	    "'info@example.jp' is already an alias", NULL },
	{ ALI_LIST, NULL, NULL, 0, 0, NULL, "info@example.jp\ttaro@example.jp\n" },
	{ ALI_LIST, "hanako@example.jp", NULL, 0, 0, NULL, "" },
	{ RESOLVE, "INFO@example.jp", NULL, 0, 0, NULL, "taro@example.jp" },
	{ RESOLVE, "taro@example.jp", NULL, 0, 0, NULL, "taro@example.jp" },
	{ RESOLVE, "nobody@example.jp", NULL, 0, 1, NULL, "local=1" },
	{ RESOLVE, "nobody@elsewhere.jp", NULL, 0, 1, NULL, "local=0" },
	{ DOM_DEL, "example.jp", NULL, 0, -1, "domain 'example.jp' still has "
	    "2 account(s) and 1 alias(es); delete them first", NULL },
	{ DOM_DEL, "nowhere.jp", NULL, 0, 1, "no such domain 'nowhere.jp'",
	    NULL },
	{ DOM_DEL, "other.jp", NULL, 0, 0, NULL, NULL },
	{ APOP_GET, "taro@example.jp", NULL, 0, 1, NULL, NULL },
	{ APOP_SET, "taro@example.jp", "sealed-1", 0, 0, NULL, NULL },
	{ APOP_SET, "taro@example.jp", "sealed-2", 0, 0, NULL, NULL },
	{ APOP_GET, "taro@example.jp", NULL, 0, 0, NULL, "sealed-2" },
	{ APOP_SET, "nobody@example.jp", "s", 0, 1,
	    "no such account 'nobody@example.jp'", NULL },
	{ APOP_CLEAR, "taro@example.jp", NULL, 0, 0, NULL, NULL },
	{ APOP_CLEAR, "taro@example.jp", NULL, 0, 1, NULL, NULL },
	{ POL_GET, "taro@example.jp", NULL, 0, 0, NULL,
	    "0 -1 -1 -1 -1 -1 0" },
	{ POL_SET, "taro@example.jp", NULL, 5, 0, NULL, NULL },
	{ OVERSEAS, "taro@example.jp", NULL, 1800000000, 0, NULL, NULL },
	{ POL_GET, "taro@example.jp", NULL, 0, 0, NULL,
	    "1800000000 5 -1 0 -1 -1 1" },
	{ POL_GET, "nobody@example.jp", NULL, 0, 1,
	    "no such account 'nobody@example.jp'", NULL },
	{ OVERSEAS, "nobody@example.jp", NULL, 1, 1,
	    "no such account 'nobody@example.jp'", NULL },
	/* counters: day max 3 rcpts, hour max 2 messages */
	{ COUNT_ADD, "taro@example.jp", NULL, 2, 0, NULL, NULL },
	{ COUNT_ADD, "taro@example.jp", NULL, 2, 1, NULL, "over=0" },
	{ COUNT_ADD, "taro@example.jp", NULL, 1, 0, NULL, NULL },
	{ COUNT_GET, "taro@example.jp", "d:2026-11-23", 0, 0, NULL, "2 3" },
	{ COUNT_ADD, "taro@example.jp", NULL, 0, 1, NULL, "over=1" },
	{ COUNT_SUB, "taro@example.jp", NULL, 1, 0, NULL, NULL },
	{ COUNT_GET, "taro@example.jp", "d:2026-11-23", 0, 0, NULL, "1 2" },
	{ COUNT_GET, "taro@example.jp", "d:2000-01-01", 0, 0, NULL, "0 0" },
	{ COUNT_GET, "nobody@example.jp", "d:2026-11-23", 0, 1,
	    "no such account 'nobody@example.jp'", NULL },
	{ COUNT_ADD, "nobody@example.jp", NULL, 1, -1,
	    "no such account 'nobody@example.jp'", NULL },
	{ NOTICE, "overseas:taro:US:2026-11-23", NULL, 100, 0, NULL, NULL },
	{ NOTICE, "overseas:taro:US:2026-11-23", NULL, 200, 1, NULL, NULL },
	{ EVENT_ADD, "taro@example.jp", "overseas_refused", 100, 0, NULL,
	    NULL },
	{ EVENT_ADD, NULL, "auth_locked_ip", 101, 0, NULL, NULL },
	{ EVENT_ADD, "taro@example.jp", "limit_reached", 102, 0, NULL, NULL },
	{ EVENT_LIST, "taro@example.jp", NULL, 0, 0, NULL,
	    "100\ttaro@example.jp\toverseas_refused\t198.51.100.7\tUS\t\n"
	    "102\ttaro@example.jp\tlimit_reached\t198.51.100.7\tUS\t\n" },
	{ EVENT_LIST, NULL, NULL, 101, 0, NULL,
	    "101\t\tauth_locked_ip\t198.51.100.7\tUS\t\n"
	    "102\ttaro@example.jp\tlimit_reached\t198.51.100.7\tUS\t\n" },
	{ SUB_ADD, "0000000000000000000A", "<m1@x>", 100, 0, NULL, NULL },
	{ SUB_ADD, "0000000000000000000B", NULL, 200, 0, NULL, NULL },
	{ SUB_FIND, "0000000000000000000A", NULL, 0, 0, NULL,
	    "0000000000000000000A\t<m1@x>\t100\ttaro@example.jp\t192.0.2.7\t"
	    "JP\tTLSv1.3\t2\t1234\t0\n" },
	{ SUB_FIND, NULL, "<m1@x>", 0, 0, NULL,
	    "0000000000000000000A\t<m1@x>\t100\ttaro@example.jp\t192.0.2.7\t"
	    "JP\tTLSv1.3\t2\t1234\t0\n" },
	{ SUB_FIND, "FFFFFFFFFFFFFFFFFFFF", NULL, 0, 1, NULL, "" },
	{ SUB_LIST_ALL, NULL, NULL, 0, 0, NULL,
	    "0000000000000000000A\t<m1@x>\t100\ttaro@example.jp\t192.0.2.7\t"
	    "JP\tTLSv1.3\t2\t1234\t0\n"
	    "0000000000000000000B\t\t200\ttaro@example.jp\t192.0.2.7\t"
	    "JP\tTLSv1.3\t2\t1234\t0\n" },
	/* throttling: window 60 s, 3 failures lock for 300 s */
	{ THR_GET, "ip:198.51.100.7", NULL, 1000, 0, NULL, "0 0" },
	{ THR_FAIL, "ip:198.51.100.7", NULL, 1000, 0, NULL, "1 0" },
	{ THR_FAIL, "ip:198.51.100.7", NULL, 1010, 0, NULL, "2 0" },
	{ THR_FAIL, "ip:198.51.100.7", NULL, 1020, 0, NULL, "3 1320" },
	{ THR_GET, "ip:198.51.100.7", NULL, 1030, 0, NULL, "3 1320" },
	{ THR_GET, "ip:198.51.100.7", NULL, 2000, 0, NULL, "0 0" },
	{ THR_FAIL, "ip:198.51.100.7", NULL, 2000, 0, NULL, "1 0" },
	{ THR_CLEAR, "ip:198.51.100.7", NULL, 0, 0, NULL, NULL },
	{ THR_GET, "ip:198.51.100.7", NULL, 2001, 0, NULL, "0 0" },
	/* deleting an account takes its aliases along */
	{ ACC_DEL, "taro@example.jp", NULL, 0, 0, NULL, NULL },
	{ ACC_DEL, "taro@example.jp", NULL, 0, 1,
	    "no such account 'taro@example.jp'", NULL },
	{ ALI_LIST, NULL, NULL, 0, 0, NULL, "" },
	{ ALI_DEL, "info@example.jp", NULL, 0, 1,
	    "no such alias 'info@example.jp'", NULL },
	/* portal sessions: created at n, expiring at n + 100 */
	{ SES_ADD, H_A, "taro@example.jp", 1000, 0, NULL, NULL },
	{ SES_ADD, H_B, "taro@example.jp", 1000, 0, NULL, NULL },
	{ SES_ADD, H_C, "admin:desk", 1000, 0, NULL, NULL },
	{ SES_ADD, "not-hex", "taro@example.jp", 1000, -1,
	    "invalid portal session", NULL },
	{ SES_GET, H_A, NULL, 1050, 0, NULL,
	    "taro@example.jp " CSRF " 1000 1100" },
	{ SES_TOUCH, H_A, NULL, 1200, 0, NULL, NULL },
	{ SES_TOUCH, H_A, NULL, 1150, 0, NULL, NULL },	/* never back */
	{ SES_GET, H_A, NULL, 1150, 0, NULL,
	    "taro@example.jp " CSRF " 1000 1200" },
	{ SES_TOUCH, HX("0"), NULL, 1200, 1, NULL, NULL },
	/* expired: refused, and the row is gone (a later time finds
	 * nothing either) */
	{ SES_GET, H_B, NULL, 1100, 1, NULL, "" },
	{ SES_DEL, H_B, NULL, 0, 1, NULL, NULL },
	{ SES_ADD, H_B, "taro@example.jp", 1000, 0, NULL, NULL },
	{ SES_DEL_ACC, "taro@example.jp", H_A, 0, 0, NULL, NULL },
	{ SES_GET, H_B, NULL, 1000, 1, NULL, "" },
	{ SES_GET, H_A, NULL, 1000, 0, NULL,
	    "taro@example.jp " CSRF " 1000 1200" },
	{ SES_GET, "nothex", NULL, 1000, 1, NULL, "" },
	{ SES_DEL, H_A, NULL, 0, 0, NULL, NULL },
	{ SES_GET, H_A, NULL, 1000, 1, NULL, "" },
	{ SES_GET, H_C, NULL, 1000, 0, NULL,
	    "admin:desk " CSRF " 1000 1100" },
	{ SES_ADD, H_A, "taro@example.jp", 1000, 0, NULL, NULL },
	{ SES_DEL_ACC, "taro@example.jp", NULL, 0, 0, NULL, NULL },
	{ SES_GET, H_A, NULL, 1000, 1, NULL, "" },
	/* the sweep deletes what has expired, asked for or not */
	{ EXPIRE, NULL, NULL, 1100, 0, NULL, NULL },
	{ SES_GET, H_C, NULL, 0, 1, NULL, "" },
	/* API tokens */
	{ TOK_ADD, "mypage", H_A, 5, 0, NULL, NULL },
	{ TOK_ADD, "mypage", H_B, 5, -1,
	    "API token 'mypage' already exists", NULL },
	{ TOK_ADD, "other", H_B, 6, 0, NULL, NULL },
	{ TOK_ADD, "bad", "1234", 6, -1, "invalid token hash", NULL },
	{ TOK_GET, "mypage", NULL, 0, 0, NULL, H_A },
	{ TOK_GET, "nobody", NULL, 0, 1, NULL, "" },
	{ TOK_LIST, NULL, NULL, 0, 0, NULL,
	    "mypage\t" H_A "\t5\nother\t" H_B "\t6\n" },
	{ TOK_DEL, "mypage", NULL, 0, 0, NULL, NULL },
	{ TOK_DEL, "mypage", NULL, 0, 1, "no such API token 'mypage'", NULL },
	{ TOK_GET, "mypage", NULL, 0, 1, NULL, "" },
	{ TOK_LIST, NULL, NULL, 0, 0, NULL, "other\t" H_B "\t6\n" },
	/* admin accounts */
	{ ADM_ADD, "desk", NULL, 7, 0, NULL, NULL },
	{ ADM_ADD, "desk", NULL, 7, -1, "admin 'desk' already exists", NULL },
	{ ADM_GET, "desk", NULL, 0, 0, NULL, HASH1 },
	{ ADM_GET, "nobody", NULL, 0, 1, NULL, "" },
	{ ADM_PW, "nobody", NULL, 0, 1, "no such admin 'nobody'", NULL },
	{ ADM_PW, "desk", NULL, 0, 0, NULL, NULL },
	{ ADM_GET, "desk", NULL, 0, 0, NULL, HASH2 },
	{ ADM_LIST, NULL, NULL, 0, 0, NULL, "desk\t" HASH2 "\t7\n" },
	{ ADM_DEL, "desk", NULL, 0, 0, NULL, NULL },
	{ ADM_DEL, "desk", NULL, 0, 1, "no such admin 'desk'", NULL },
	{ ADM_LIST, NULL, NULL, 0, 0, NULL, "" },
	/* POP3 leases ("node#session"), LEASE seconds from n */
	{ LOCK_TAKE, "taro@example.jp", "a:1#1", 1000, 0, NULL, NULL },
	{ LOCK_TAKE, "taro@example.jp", "b:2#1", 1000, 1, NULL, NULL },
	{ LOCK_TAKE, "taro@example.jp", "a:1#2", 1100, 1, NULL, NULL },
	{ LOCK_TAKE, "hanako@example.jp", "b:2#1", 1100, 0, NULL, NULL },
	{ LOCK_REFRESH, "taro@example.jp", "a:1#1", 1200, 0, NULL, NULL },
	{ LOCK_TAKE, "taro@example.jp", "b:2#1", 1400, 1, NULL, NULL },
	{ LOCK_REFRESH, "taro@example.jp", "b:2#1", 1400, 1, NULL, NULL },
	{ LOCK_RELEASE, "taro@example.jp", "b:2#1", 0, 1, NULL, NULL },
	/* a:1 died: its lease ran out at 1500, and b:2 takes it over */
	{ LOCK_TAKE, "taro@example.jp", "b:2#1", 1500, 0, NULL, NULL },
	{ LOCK_REFRESH, "taro@example.jp", "a:1#1", 1500, 1, NULL, NULL },
	{ LOCK_RELEASE, "taro@example.jp", "a:1#1", 0, 1, NULL, NULL },
	{ LOCK_RELEASE, "taro@example.jp", "b:2#1", 0, 0, NULL, NULL },
	{ LOCK_TAKE, "taro@example.jp", "a:1#2", 1500, 0, NULL, NULL },
	{ LOCK_TAKE, "taro@example.jp", "bad node#1", 1500, -1,
	    "invalid POP3 lock", NULL },
	/* the sweep frees leases that ran out (hanako's, at 1400) */
	{ EXPIRE, NULL, NULL, 1400, 0, NULL, NULL },
	{ LOCK_RELEASE, "hanako@example.jp", "b:2#1", 0, 1, NULL, NULL },
	{ LOCK_RELEASE, "taro@example.jp", "a:1#2", 0, 0, NULL, NULL },
	/* POP-before-SMTP windows: open until n */
	{ PBS_SET, "192.0.2.9", "taro@example.jp", 2000, 0, NULL, NULL },
	{ PBS_GET, "192.0.2.9", NULL, 1999, 0, NULL, "taro@example.jp" },
	{ PBS_GET, "192.0.2.9", NULL, 2000, 1, NULL, "" },
	{ PBS_GET, "192.0.2.8", NULL, 1000, 1, NULL, "" },
	{ PBS_SET, "192.0.2.9", "hanako@example.jp", 3000, 0, NULL, NULL },
	{ PBS_GET, "192.0.2.9", NULL, 2500, 0, NULL, "hanako@example.jp" },
	{ EXPIRE, NULL, NULL, 3000, 0, NULL, NULL },
	{ PBS_GET, "192.0.2.9", NULL, 0, 1, NULL, "" },
};

static const struct store_counter counters[] = {
	{ "d:2026-11-23", -1, 3 },
	{ "h:2026-11-23T10", 2, -1 },
};

/* Rows of schema step 5 (portal sessions, tokens, admins, leases). */
static int
run_shared_row(struct store *st, const struct row *r, struct str *out,
    const char **error)
{
	struct store_portal_session ses;
	char node[64] = "", hash[STORE_HEX_TOKEN_LEN + 1], *text = NULL;
	const char *session = "";
	int ret;

	if (r->b != NULL && strchr(r->b, '#') != NULL) {
		(void)snprintf(node, sizeof(node), "%.*s",
		    (int)strcspn(r->b, "#"), r->b);
		session = strchr(r->b, '#') + 1;
	}
	switch (r->op) {
	case SES_ADD:
		return store_portal_session_add(st, r->a, r->b, CSRF, r->n,
		    r->n + 100, error);
	case SES_GET:
		if ((ret = store_portal_session_get(st, r->a, r->n, &ses,
		    error)) == 0)
			str_printf(out, "%s %s %lld %lld", ses.account,
			    ses.csrf, (long long)ses.created,
			    (long long)ses.expires);
		return ret;
	case SES_TOUCH:
		return store_portal_session_touch(st, r->a, r->n, error);
	case SES_DEL:
		return store_portal_session_del(st, r->a, error);
	case SES_DEL_ACC:
		return store_portal_session_del_account(st, r->a, r->b,
		    error);
	case EXPIRE:
		return store_expire(st, r->n, error);
	case TOK_ADD:
		return store_api_token_add(st, r->a, r->b, r->n, error);
	case TOK_GET:
		if ((ret = store_api_token_get(st, r->a, hash, error)) == 0)
			str_append(out, hash);
		return ret;
	case TOK_DEL:
		return store_api_token_del(st, r->a, error);
	case TOK_LIST:
		return store_api_token_list(st, rows_name, out, error);
	case ADM_ADD:
		return store_admin_add(st, r->a, HASH1, r->n, error);
	case ADM_PW:
		return store_admin_set_password(st, r->a, HASH2, error);
	case ADM_GET:
		if ((ret = store_admin_get(st, r->a, &text, error)) == 0)
			str_append(out, text);
		free(text);
		return ret;
	case ADM_DEL:
		return store_admin_del(st, r->a, error);
	case ADM_LIST:
		return store_admin_list(st, rows_name, out, error);
	case LOCK_TAKE:
		return store_pop3_lock_take(st, r->a, node, session, r->n,
		    r->n + LEASE, error);
	case LOCK_REFRESH:
		return store_pop3_lock_refresh(st, r->a, node, session,
		    r->n + LEASE, error);
	case LOCK_RELEASE:
		return store_pop3_lock_release(st, r->a, node, session, error);
	case PBS_SET:
		return store_popbsmtp_set(st, r->a, r->b, r->n, error);
	case PBS_GET:
		if ((ret = store_popbsmtp_get(st, r->a, r->n, &text,
		    error)) == 0)
			str_append(out, text);
		free(text);
		return ret;
	default:
		return -2;
	}
}

static int
run_row(struct store *st, const struct row *r, struct str *out,
    const char **error)
{
	struct account a;
	struct account_policy p;
	struct store_event e = { r->n, r->a, r->b, "198.51.100.7", "US",
	    NULL };
	struct store_submission s = { r->a, r->b, r->n, "taro@example.jp",
	    "192.0.2.7", "JP", "TLSv1.3", 2, 1234, 0 };
	char *text = NULL;
	int64_t x, y;
	size_t over = 99;
	int local = -1, ret;

	*error = NULL;
	switch (r->op) {
	case DOM_ADD:
		return store_domain_add(st, r->a, error);
	case DOM_DEL:
		return store_domain_del(st, r->a, error);
	case DOM_EXISTS:
		return store_domain_exists(st, r->a, error);
	case DOM_LIST:
		return store_domain_list(st, rows_domain, out, error);
	case ACC_ADD:
		return store_account_add(st, r->a, HASH1, error);
	case ACC_DEL:
		return store_account_del(st, r->a, error);
	case ACC_PASSWD:
		return store_account_set_password(st, r->a, HASH1, error);
	case ACC_SUSPEND:
		return store_account_set_suspended(st, r->a, 1, r->b, error);
	case ACC_RESUME:
		return store_account_set_suspended(st, r->a, 0, NULL, error);
	case ACC_GET:
		if ((ret = store_account_get(st, r->a, &a, error)) == 0) {
			str_printf(out, "%s %s %d %s", a.address,
			    a.password_hash, a.suspended,
			    a.suspend_reason == NULL ? "-" : a.suspend_reason);
			account_deinit(&a);
		}
		return ret;
	case ACC_LIST:
		return store_account_list(st, r->a, rows_account, out, error);
	case ALI_ADD:
		return store_alias_add(st, r->a, r->b, error);
	case ALI_DEL:
		return store_alias_del(st, r->a, error);
	case ALI_LIST:
		return store_alias_list(st, r->a, rows_alias, out, error);
	case RESOLVE:
		ret = store_resolve_recipient(st, r->a, &text, &local, error);
		if (ret == 0)
			str_append(out, text);
		else if (ret == 1)
			str_printf(out, "local=%d", local);
		free(text);
		return ret;
	case APOP_SET:
		return store_apop_set(st, r->a, r->b, error);
	case APOP_GET:
		if ((ret = store_apop_get(st, r->a, &text, error)) == 0)
			str_append(out, text);
		free(text);
		return ret;
	case APOP_CLEAR:
		return store_apop_clear(st, r->a, error);
	case POL_SET:
		p.limit_msgs_day = r->n;
		p.limit_rcpts_day = -1;
		p.limit_rcpts_hour = 0;
		p.limit_rcpts_msg = -1;
		p.limit_overseas_rcpts_day = -1;
		p.any_sender = 1;
		return store_policy_set_limits(st, r->a, &p, error);
	case POL_GET:
		if ((ret = store_policy_get(st, r->a, &p, error)) == 0)
			str_printf(out, "%lld %lld %lld %lld %lld %lld %d",
			    (long long)p.overseas_until,
			    (long long)p.limit_msgs_day,
			    (long long)p.limit_rcpts_day,
			    (long long)p.limit_rcpts_hour,
			    (long long)p.limit_rcpts_msg,
			    (long long)p.limit_overseas_rcpts_day,
			    p.any_sender);
		return ret;
	case OVERSEAS:
		return store_overseas_set(st, r->a, r->n, error);
	case COUNT_ADD:
		ret = store_count_add(st, r->a, counters, 2, 1, r->n, &over,
		    error);
		if (ret == 1)
			str_printf(out, "over=%zu", over);
		return ret;
	case COUNT_SUB:
		return store_count_add(st, r->a, counters, 2, -1, -r->n, &over,
		    error);
	case COUNT_GET:
		if ((ret = store_count_get(st, r->a, r->b, &x, &y, error)) == 0)
			str_printf(out, "%lld %lld", (long long)x,
			    (long long)y);
		return ret;
	case NOTICE:
		return store_notice_once(st, r->a, r->n, error);
	case EVENT_ADD:
		return store_event_add(st, &e, error);
	case EVENT_LIST:
		return store_event_list(st, r->a, r->n, 100, rows_event, out, error);
	case SUB_ADD:
		return store_submission_add(st, &s, error);
	case SUB_FIND:
		return store_submission_find(st, r->a, r->b, rows_submission, out, error);
	case SUB_LIST_ALL:
		return store_submission_list(st, NULL, 0, 100, rows_submission, out, error);
	case THR_FAIL:
		if ((ret = store_throttle_fail(st, r->a, r->n, 60, 3, 300, &x,
		    &y, error)) == 0)
			str_printf(out, "%lld %lld", (long long)x,
			    (long long)y);
		return ret;
	case THR_GET:
		if ((ret = store_throttle_get(st, r->a, r->n, 60, &x, &y,
		    error)) == 0)
			str_printf(out, "%lld %lld", (long long)x,
			    (long long)y);
		return ret;
	case THR_CLEAR:
		return store_throttle_clear(st, r->a, error);
	default:
		return run_shared_row(st, r, out, error);
	}
	return -2;
}

static void test_trusted(struct store *st);

static void
test_backend(const char *uri)
{
	struct store *st;
	const char *error = NULL;
	int version = -1;

	printf("backend %.*s\n", (int)strcspn(uri, ":"), uri);
	st = store_open(uri, &error);
	UNIT_CHECK(st != NULL);
	if (st == NULL) {
		fprintf(stderr, "%s: %s\n", uri, error);
		return;
	}
	UNIT_CHECK_INT(store_init_schema(st, &error), 0);
	UNIT_CHECK_INT(store_schema_version(st, &version, &error), 0);
	UNIT_CHECK_INT(version, 10);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct str out;
		int ret;

		str_init(&out);
		ret = run_row(st, r, &out, &error);
		if (ret != r->ret)
			fprintf(stderr, "row %zu: %s\n", i,
			    error != NULL ? error : "");
		UNIT_CHECK_INT(ret, r->ret);
		if (r->ret != 0 && r->error != NULL)
			UNIT_CHECK_STR(error, r->error);
		if (r->out != NULL) {
			if (strcmp(str_c(&out), r->out) != 0)
				fprintf(stderr, "row %zu:\n", i);
			UNIT_CHECK_STR(str_c(&out), r->out);
		}
		str_deinit(&out);
	}
	test_trusted(st);
	store_close(&st);
}

/* Trusted login addresses (schema step 6): the same in both. */
static void
test_trusted(struct store *st)
{
	const char *error = NULL;
	char client[32];

	UNIT_CHECK_INT(store_trusted_get(st, "t@example.jp", "192.0.2.7", 0,
	    &error), 1);
	UNIT_CHECK_INT(store_trusted_seen(st, "t@example.jp", "192.0.2.7",
	    1000, 0, 3, &error), 0);
	UNIT_CHECK_INT(store_trusted_get(st, "t@example.jp", "192.0.2.7",
	    1000, &error), 0);
	/* too old for the window, another name, another client */
	UNIT_CHECK_INT(store_trusted_get(st, "t@example.jp", "192.0.2.7",
	    1001, &error), 1);
	UNIT_CHECK_INT(store_trusted_get(st, "u@example.jp", "192.0.2.7", 0,
	    &error), 1);
	UNIT_CHECK_INT(store_trusted_get(st, "t@example.jp",
	    "2001:db8::/64", 0, &error), 1);
	/* again: the time moves on, no second row */
	UNIT_CHECK_INT(store_trusted_seen(st, "t@example.jp", "192.0.2.7",
	    2000, 0, 3, &error), 0);
	UNIT_CHECK_INT(store_trusted_get(st, "t@example.jp", "192.0.2.7",
	    2000, &error), 0);
	/* the newest 3 of a name stay */
	for (int i = 1; i <= 4; i++) {
		snprintf(client, sizeof(client), "198.51.100.%d", i);
		UNIT_CHECK_INT(store_trusted_seen(st, "t@example.jp", client,
		    2000 + i, 0, 3, &error), 0);
	}
	UNIT_CHECK_INT(store_trusted_get(st, "t@example.jp", "192.0.2.7", 0,
	    &error), 1);
	UNIT_CHECK_INT(store_trusted_get(st, "t@example.jp", "198.51.100.1",
	    0, &error), 1);
	UNIT_CHECK_INT(store_trusted_get(st, "t@example.jp", "198.51.100.4",
	    0, &error), 0);
	/* rows older than the window go, whoever's */
	UNIT_CHECK_INT(store_trusted_seen(st, "v@example.jp", "192.0.2.8",
	    9000, 5000, 3, &error), 0);
	UNIT_CHECK_INT(store_trusted_get(st, "t@example.jp", "198.51.100.4",
	    0, &error), 1);
	UNIT_CHECK_INT(store_trusted_get(st, "v@example.jp", "192.0.2.8",
	    5000, &error), 0);
}

int
main(void)
{
	char dir[] = "/tmp/test_store_backends.XXXXXX";
	char uri[300];
	const char *pg = getenv("SEKISHO_TEST_PGSQL");

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	(void)snprintf(uri, sizeof(uri), "sqlite:%s/store.db", dir);
	test_backend(uri);
	if (pg != NULL && *pg != '\0')
		test_backend(pg);
	else
		printf("postgresql: not tested (SEKISHO_TEST_PGSQL unset)\n");
	(void)snprintf(uri, sizeof(uri), "%s/store.db", dir);
	(void)unlink(uri);
	(void)rmdir(dir);
	UNIT_END();
}
