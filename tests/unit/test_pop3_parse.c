/*
 * test_pop3_parse: the POP3 command parser, one row per input with the
 * expected result, and APOP's digest with RFC 1939 section 7's example
 * plus sealing of APOP secrets.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/str.h"
#include "backend/apop.h"
#include "pop3/pop3_parse.h"
#include "unit.h"

struct row {
	const char		*line;
	enum pop3_parse_result	 result;
	enum pop3_cmd		 cmd;
	const char		*arg;		/* NULL: not checked */
	const char		*arg1;		/* first word, or NULL */
	const char		*arg2;		/* APOP digest, AUTH response */
	int			 nnum;
	unsigned long		 num0, num1;
};

#define OK	POP3_PARSE_OK
#define SYN	POP3_PARSE_SYNTAX
#define UNK	POP3_PARSE_UNKNOWN
#define BAD	POP3_PARSE_BAD_CHAR
#define X	POP3_CMD_COUNT
#define DIGEST	"c4c9334bac560ecc979e58001b3e22fb"

static const struct row rows[] = {
	{ "USER alice@example.jp", OK, POP3_CMD_USER, NULL, "alice@example.jp",
	    NULL, 0, 0, 0 },
	{ "user alice", OK, POP3_CMD_USER, NULL, "alice", NULL, 0, 0, 0 },
	{ "USER  alice ", OK, POP3_CMD_USER, NULL, "alice", NULL, 0, 0, 0 },
	{ "USER", SYN, POP3_CMD_USER, NULL, NULL, NULL, 0, 0, 0 },
	{ "USER a b", SYN, POP3_CMD_USER, NULL, NULL, NULL, 0, 0, 0 },
	{ "PASS secret with spaces", OK, POP3_CMD_PASS,
	    "secret with spaces", NULL, NULL, 0, 0, 0 },
	{ "PASS  leading", OK, POP3_CMD_PASS, " leading", NULL, NULL, 0, 0,
	    0 },
	{ "PASS", SYN, POP3_CMD_PASS, NULL, NULL, NULL, 0, 0, 0 },
	{ "PASS ", SYN, POP3_CMD_PASS, NULL, NULL, NULL, 0, 0, 0 },
	{ "APOP mrose " DIGEST, OK, POP3_CMD_APOP, NULL, "mrose", DIGEST, 0,
	    0, 0 },
	{ "apop mrose C4C9334BAC560ECC979E58001B3E22FB", OK, POP3_CMD_APOP,
	    NULL, "mrose", "C4C9334BAC560ECC979E58001B3E22FB", 0, 0, 0 },
	{ "APOP mrose c4c9334bac560ecc979e58001b3e22f", SYN, POP3_CMD_APOP,
	    NULL, NULL, NULL, 0, 0, 0 },
	{ "APOP mrose g4c9334bac560ecc979e58001b3e22fb", SYN, POP3_CMD_APOP,
	    NULL, NULL, NULL, 0, 0, 0 },
	{ "APOP mrose", SYN, POP3_CMD_APOP, NULL, NULL, NULL, 0, 0, 0 },
	{ "APOP mrose " DIGEST " x", SYN, POP3_CMD_APOP, NULL, NULL, NULL, 0,
	    0, 0 },
	{ "AUTH", OK, POP3_CMD_AUTH, "", NULL, NULL, 0, 0, 0 },
	{ "AUTH PLAIN", OK, POP3_CMD_AUTH, "PLAIN", "PLAIN", NULL, 0, 0, 0 },
	{ "AUTH PLAIN AGFsaWNlAHB3", OK, POP3_CMD_AUTH, NULL, "PLAIN",
	    "AGFsaWNlAHB3", 0, 0, 0 },
	{ "AUTH PLAIN =", OK, POP3_CMD_AUTH, NULL, "PLAIN", "=", 0, 0, 0 },
	{ "AUTH PLAIN a b", SYN, POP3_CMD_AUTH, NULL, NULL, NULL, 0, 0, 0 },
	{ "AUTH ABCDEFGHIJKLMNOPQRSTU", SYN, POP3_CMD_AUTH, NULL, NULL, NULL,
	    0, 0, 0 },
	{ "STLS", OK, POP3_CMD_STLS, "", NULL, NULL, 0, 0, 0 },
	{ "stls x", SYN, POP3_CMD_STLS, NULL, NULL, NULL, 0, 0, 0 },
	{ "CAPA", OK, POP3_CMD_CAPA, "", NULL, NULL, 0, 0, 0 },
	{ "QUIT ", OK, POP3_CMD_QUIT, "", NULL, NULL, 0, 0, 0 },
	{ "STAT", OK, POP3_CMD_STAT, "", NULL, NULL, 0, 0, 0 },
	{ "NOOP", OK, POP3_CMD_NOOP, "", NULL, NULL, 0, 0, 0 },
	{ "RSET", OK, POP3_CMD_RSET, "", NULL, NULL, 0, 0, 0 },
	{ "LIST", OK, POP3_CMD_LIST, NULL, NULL, NULL, 0, 0, 0 },
	{ "LIST 2", OK, POP3_CMD_LIST, NULL, NULL, NULL, 1, 2, 0 },
	{ "LIST 0", OK, POP3_CMD_LIST, NULL, NULL, NULL, 1, 0, 0 },
	{ "LIST 4294967295", OK, POP3_CMD_LIST, NULL, NULL, NULL, 1,
	    4294967295UL, 0 },
	{ "LIST 4294967296", SYN, POP3_CMD_LIST, NULL, NULL, NULL, 0, 0, 0 },
	{ "LIST 00000000001", SYN, POP3_CMD_LIST, NULL, NULL, NULL, 0, 0, 0 },
	{ "LIST -1", SYN, POP3_CMD_LIST, NULL, NULL, NULL, 0, 0, 0 },
	{ "LIST +1", SYN, POP3_CMD_LIST, NULL, NULL, NULL, 0, 0, 0 },
	{ "LIST 1 2", SYN, POP3_CMD_LIST, NULL, NULL, NULL, 0, 0, 0 },
	{ "UIDL 3", OK, POP3_CMD_UIDL, NULL, NULL, NULL, 1, 3, 0 },
	{ "UIDL", OK, POP3_CMD_UIDL, NULL, NULL, NULL, 0, 0, 0 },
	{ "RETR 1", OK, POP3_CMD_RETR, NULL, NULL, NULL, 1, 1, 0 },
	{ "RETR", SYN, POP3_CMD_RETR, NULL, NULL, NULL, 0, 0, 0 },
	{ "RETR 1x", SYN, POP3_CMD_RETR, NULL, NULL, NULL, 0, 0, 0 },
	{ "DELE 12", OK, POP3_CMD_DELE, NULL, NULL, NULL, 1, 12, 0 },
	{ "DELE 1 2", SYN, POP3_CMD_DELE, NULL, NULL, NULL, 0, 0, 0 },
	{ "TOP 1 10", OK, POP3_CMD_TOP, NULL, NULL, NULL, 2, 1, 10 },
	{ "top 1 0", OK, POP3_CMD_TOP, NULL, NULL, NULL, 2, 1, 0 },
	{ "TOP 1", SYN, POP3_CMD_TOP, NULL, NULL, NULL, 0, 0, 0 },
	{ "TOP 1 2 3", SYN, POP3_CMD_TOP, NULL, NULL, NULL, 0, 0, 0 },
	{ "", UNK, X, NULL, NULL, NULL, 0, 0, 0 },
	{ "RETRIEVE 1", UNK, X, NULL, NULL, NULL, 0, 0, 0 },
	{ "XTND XMIT", UNK, X, NULL, NULL, NULL, 0, 0, 0 },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2", UNK, X, NULL, NULL, NULL, 0, 0,
	    0 },
	{ "RE", UNK, X, NULL, NULL, NULL, 0, 0, 0 },
	{ "PASS a\tb", BAD, X, NULL, NULL, NULL, 0, 0, 0 },
	{ "NOOP\r", BAD, X, NULL, NULL, NULL, 0, 0, 0 },
	{ "NO\x7fOP", BAD, X, NULL, NULL, NULL, 0, 0, 0 },
	{ "PASS \xe9\x96\xa2\xe6\x89\x80", OK, POP3_CMD_PASS,
	    "\xe9\x96\xa2\xe6\x89\x80", NULL, NULL, 0, 0, 0 },
};

static void
test_rows(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct pop3_command c;
		enum pop3_parse_result got;

		got = pop3_parse_command(r->line, strlen(r->line), &c);
		if (got != r->result)
			fprintf(stderr, "row %zu: \"%s\"\n", i, r->line);
		UNIT_CHECK_INT(got, r->result);
		if (got != POP3_PARSE_OK && got != POP3_PARSE_SYNTAX)
			continue;
		UNIT_CHECK_INT(c.cmd, r->cmd);
		if (got != POP3_PARSE_OK)
			continue;
		if (r->arg != NULL)
			UNIT_CHECK_STR(c.arg, r->arg);
		if (r->arg1 != NULL) {
			char word[300];

			snprintf(word, sizeof(word), "%.*s", (int)c.arg1_len,
			    c.arg);
			UNIT_CHECK_STR(word, r->arg1);
		}
		if (r->arg2 != NULL)
			UNIT_CHECK_STR(c.arg2, r->arg2);
		UNIT_CHECK_INT(c.nnum, r->nnum);
		if (r->nnum > 0)
			UNIT_CHECK_INT(c.num[0], r->num0);
		if (r->nnum > 1)
			UNIT_CHECK_INT(c.num[1], r->num1);
	}
	/* A NUL inside the given length. */
	struct pop3_command c;

	UNIT_CHECK_INT(pop3_parse_command("PASS a\0b", 8, &c),
	    POP3_PARSE_BAD_CHAR);
	UNIT_CHECK_STR(pop3_cmd_name(POP3_CMD_UIDL), "UIDL");
}

static void
test_apop_digest(void)
{
	char hex[APOP_DIGEST_LEN + 1];

	/* RFC 1939 section 7, the example of APOP. */
	apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf", hex);
	UNIT_CHECK_STR(hex, DIGEST);
	UNIT_CHECK_INT(apop_check("<1896.697170952@dbc.mtview.ca.us>",
	    "tanstaaf", DIGEST), 1);
	UNIT_CHECK_INT(apop_check("<1896.697170952@dbc.mtview.ca.us>",
	    "tanstaaf", "C4C9334BAC560ECC979E58001B3E22FB"), 1);
	UNIT_CHECK_INT(apop_check("<1896.697170952@dbc.mtview.ca.us>",
	    "tanstaaF", DIGEST), 0);
	UNIT_CHECK_INT(apop_check("<1896.697170953@dbc.mtview.ca.us>",
	    "tanstaaf", DIGEST), 0);
	UNIT_CHECK_INT(apop_check("<1896.697170952@dbc.mtview.ca.us>",
	    "tanstaaf", "c4c9334bac560ecc979e58001b3e22f"), 0);
}

static void
test_apop_timestamp(void)
{
	struct str a = STR_INIT, b = STR_INIT;

	apop_timestamp(&a, "mail.example.jp");
	apop_timestamp(&b, "mail.example.jp");
	UNIT_CHECK(a.len > 20 && a.s[0] == '<' && a.s[a.len - 1] == '>');
	UNIT_CHECK(strstr(str_c(&a), "@mail.example.jp>") != NULL);
	UNIT_CHECK(strchr(str_c(&a), '.') < strchr(str_c(&a), '@'));
	UNIT_CHECK(strcmp(str_c(&a), str_c(&b)) != 0);
	str_deinit(&a);
	str_deinit(&b);
}

static void
test_apop_seal(void)
{
	unsigned char key[APOP_KEY_LEN], other[APOP_KEY_LEN];
	struct str sealed = STR_INIT, secret = STR_INIT;
	const char *error;
	char path[] = "/tmp/test_pop3_parse_keyXXXXXX";

	memset(key, 0x42, sizeof(key));
	memset(other, 0x43, sizeof(other));
	UNIT_CHECK_INT(apop_seal(key, "alice@example.jp", "tanstaaf", &sealed,
	    &error), 0);
	UNIT_CHECK(strncmp(str_c(&sealed), "v1:", 3) == 0);
	UNIT_CHECK(strstr(str_c(&sealed), "tanstaaf") == NULL);
	UNIT_CHECK_INT(apop_unseal(key, "alice@example.jp", str_c(&sealed),
	    &secret, &error), 0);
	UNIT_CHECK_STR(str_c(&secret), "tanstaaf");
	/* Another account's row, another key, a flipped digit: refused. */
	UNIT_CHECK_INT(apop_unseal(key, "bob@example.jp", str_c(&sealed),
	    &secret, &error), -1);
	UNIT_CHECK_INT(apop_unseal(other, "alice@example.jp", str_c(&sealed),
	    &secret, &error), -1);
	sealed.s[5] = sealed.s[5] == '0' ? '1' : '0';
	UNIT_CHECK_INT(apop_unseal(key, "alice@example.jp", str_c(&sealed),
	    &secret, &error), -1);
	UNIT_CHECK_INT(apop_unseal(key, "alice@example.jp", "v1:zz", &secret,
	    &error), -1);
	UNIT_CHECK_INT(apop_unseal(key, "alice@example.jp", "tanstaaf",
	    &secret, &error), -1);

	/* A key file made on first use is read back the same. */
	int fd = mkstemp(path);

	UNIT_CHECK(fd >= 0);
	close(fd);
	unlink(path);
	UNIT_CHECK_INT(apop_key_load(path, 0, key, &error), -1);
	UNIT_CHECK_INT(apop_key_load(path, 1, key, &error), 0);
	UNIT_CHECK_INT(apop_key_load(path, 0, other, &error), 0);
	UNIT_CHECK(memcmp(key, other, sizeof(key)) == 0);
	chmod(path, 0644);
	UNIT_CHECK_INT(apop_key_load(path, 0, other, &error), -1);
	unlink(path);
	str_deinit(&sealed);
	str_deinit(&secret);
}

int
main(void)
{
	test_rows();
	test_apop_digest();
	test_apop_timestamp();
	test_apop_seal();
	UNIT_END();
}
