/* test_mta_reply: the SMTP client's reply parser and EHLO keywords. */
#include <stdlib.h>
#include <string.h>

#include "mta/mta_reply.h"
#include "unit.h"

static const struct {
	const char	*in;
	int		 ret;		/* 1 complete, 0 more, -1 error */
	int		 code;
	const char	*esc;
	const char	*text;
	size_t		 consumed;
	const char	*oneline;
} rows[] = {
	{ "220 mx.example ESMTP\r\n", 1, 220, "", "mx.example ESMTP", 22,
	  "220 mx.example ESMTP" },
	{ "250 2.1.5 Ok\r\n", 1, 250, "2.1.5", "Ok", 14, "250 2.1.5 Ok" },
	{ "550-5.1.1 No such\r\n550 5.1.1 user here\r\n", 1, 550, "5.1.1",
	  "No such\nuser here", 40, "550 5.1.1 No such user here" },
	{ "451 4.3.0 Try later\r\n250 next", 1, 451, "4.3.0", "Try later",
	  21, "451 4.3.0 Try later" },
	{ "354\r\n", 1, 354, "", "", 5, "354" },
	{ "250 ok\n", 1, 250, "", "ok", 7, "250 ok" },
	/* an enhanced code of another class is text, not a code */
	{ "550 2.0.0 odd\r\n", 1, 550, "", "2.0.0 odd", 15,
	  "550 2.0.0 odd" },
	{ "250 5.1\r\n", 1, 250, "", "5.1", 9, "250 5.1" },
	{ "452 4.5.3\r\n", 1, 452, "4.5.3", "", 11, "452 4.5.3" },
	{ "250 caf\xc3\xa9 \"q\"\r\n", 1, 250, "", "caf\xc3\xa9 \"q\"", 15,
	  "250 caf\\xC3\\xA9 \\x22q\\x22" },
	{ "250-first\r\n", 0, 0, NULL, NULL, 0, NULL },
	{ "250 partial", 0, 0, NULL, NULL, 0, NULL },
	{ "", 0, 0, NULL, NULL, 0, NULL },
	{ "250-a\r\n251 b\r\n", -1, 0, NULL, NULL, 0, NULL },
	{ "25 short\r\n", -1, 0, NULL, NULL, 0, NULL },
	{ "650 bad\r\n", -1, 0, NULL, NULL, 0, NULL },
	{ "260 bad\r\n", -1, 0, NULL, NULL, 0, NULL },
	{ "250x bad\r\n", -1, 0, NULL, NULL, 0, NULL },
	{ "hello\r\n", -1, 0, NULL, NULL, 0, NULL },
};

static void
test_rows(void)
{
	struct mta_reply r;
	struct str one = STR_INIT;
	const char *error = NULL;
	size_t i, consumed;
	int ret;

	mta_reply_init(&r);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		consumed = 0;
		ret = mta_reply_parse(rows[i].in, strlen(rows[i].in), &r,
		    &consumed, &error);
		UNIT_CHECK_INT(ret, rows[i].ret);
		if (ret != 1 || rows[i].ret != 1)
			continue;
		UNIT_CHECK_INT(r.code, rows[i].code);
		UNIT_CHECK_STR(r.esc, rows[i].esc);
		UNIT_CHECK_STR(str_c(&r.text), rows[i].text);
		UNIT_CHECK_INT(consumed, rows[i].consumed);
		str_clear(&one);
		mta_reply_oneline(&r, &one, 200);
		UNIT_CHECK_STR(str_c(&one), rows[i].oneline);
	}
	mta_reply_deinit(&r);
	str_deinit(&one);
}

static void
test_limits(void)
{
	struct mta_reply r;
	struct str in = STR_INIT, one = STR_INIT;
	const char *error = NULL;
	size_t consumed, i;

	mta_reply_init(&r);
	/* an unterminated line past the limit is an error, not "more" */
	str_append(&in, "250 ");
	for (i = 0; i < MTA_REPLY_LINE_MAX; i++)
		str_append_c(&in, 'a');
	UNIT_CHECK_INT(mta_reply_parse(str_c(&in), in.len, &r, &consumed,
	    &error), -1);
	UNIT_CHECK_STR(error, "reply line too long");

	str_clear(&in);
	for (i = 0; i <= MTA_REPLY_LINES; i++)
		str_append(&in, "250-x\r\n");
	str_append(&in, "250 x\r\n");
	UNIT_CHECK_INT(mta_reply_parse(str_c(&in), in.len, &r, &consumed,
	    &error), -1);
	UNIT_CHECK_STR(error, "reply has too many lines");

	UNIT_CHECK_INT(mta_reply_parse("250 a\0b\r\n", 9, &r, &consumed,
	    &error), -1);

	/* oneline is cut */
	str_clear(&in);
	str_append(&in, "550 5.7.1 ");
	for (i = 0; i < 100; i++)
		str_append_c(&in, 'x');
	str_append(&in, "\r\n");
	UNIT_CHECK_INT(mta_reply_parse(str_c(&in), in.len, &r, &consumed,
	    &error), 1);
	mta_reply_oneline(&r, &one, 30);
	UNIT_CHECK(one.len <= 30);
	UNIT_CHECK(strncmp(str_c(&one), "550 5.7.1 xxx", 13) == 0);
	UNIT_CHECK(strcmp(str_c(&one) + one.len - 3, "...") == 0);
	str_deinit(&in);
	str_deinit(&one);
	mta_reply_deinit(&r);
}

static void
test_ehlo(void)
{
	static const char in[] =
	    "250-mx.example.net hello\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE 10240000\r\n"
	    "250-8bitmime\r\n"
	    "250-STARTTLS\r\n"
	    "250-AUTH LOGIN PLAIN\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-XFOO bar\r\n"
	    "250 SMTPUTF8\r\n";
	struct mta_reply r;
	struct mta_ehlo e;
	const char *error = NULL;
	size_t consumed;

	mta_reply_init(&r);
	UNIT_CHECK_INT(mta_reply_parse(in, strlen(in), &r, &consumed,
	    &error), 1);
	mta_reply_ehlo(&r, &e);
	UNIT_CHECK_INT(e.ext, MTA_EXT_PIPELINING | MTA_EXT_SIZE |
	    MTA_EXT_8BITMIME | MTA_EXT_STARTTLS | MTA_EXT_AUTH_PLAIN |
	    MTA_EXT_ENHANCED | MTA_EXT_SMTPUTF8);
	UNIT_CHECK_INT(e.size, 10240000);

	/* the greeting line is not a keyword; AUTH without PLAIN */
	UNIT_CHECK_INT(mta_reply_parse("250-PIPELINING\r\n250 AUTH LOGIN\r\n",
	    32, &r, &consumed, &error), 1);
	mta_reply_ehlo(&r, &e);
	UNIT_CHECK_INT(e.ext, 0);
	UNIT_CHECK_INT(mta_reply_parse("250-x\r\n250 SIZE\r\n", 17, &r,
	    &consumed, &error), 1);
	mta_reply_ehlo(&r, &e);
	UNIT_CHECK_INT(e.ext, MTA_EXT_SIZE);
	UNIT_CHECK_INT(e.size, 0);
	mta_reply_deinit(&r);
}

int
main(void)
{
	test_rows();
	test_limits();
	test_ehlo();
	UNIT_END();
}
