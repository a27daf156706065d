/*
 * test_smtp_parse: SMTP command line, MAIL/RCPT paths and parameters,
 * address syntax, base64 and SASL PLAIN, one table per parser.
 */
#include <stdint.h>
#include <stdlib.h>

#include "core/base64.h"
#include "core/sasl.h"
#include "core/str.h"
#include "smtp/smtp_parse.h"
#include "unit.h"

#define L(s)	(s), sizeof(s) - 1

enum { OK = SMTP_PARSE_OK, SYNTAX = SMTP_PARSE_SYNTAX,
    BADADDR = SMTP_PARSE_BAD_ADDRESS, BADPARAM = SMTP_PARSE_BAD_PARAM,
    NUL = SMTP_PARSE_NUL };

/* --- command line --------------------------------------------------- */

struct cmd_row {
	const char	*line;
	size_t		 len;
	int		 err;
	enum smtp_cmd	 cmd;
	const char	*args;
};

static const struct cmd_row cmd_rows[] = {
	{ L("HELO client.example"), OK, SMTP_CMD_HELO, "client.example" },
	{ L("eHlO client.example"), OK, SMTP_CMD_EHLO, "client.example" },
	{ L("MaIl FROM:<a@b.example>"), OK, SMTP_CMD_MAIL,
	  "FROM:<a@b.example>" },
	{ L("rcpt TO:<a@b.example>"), OK, SMTP_CMD_RCPT, "TO:<a@b.example>" },
	{ L("Data"), OK, SMTP_CMD_DATA, "" },
	{ L("rSeT"), OK, SMTP_CMD_RSET, "" },
	{ L("nOoP"), OK, SMTP_CMD_NOOP, "" },
	{ L("QuIt"), OK, SMTP_CMD_QUIT, "" },
	{ L("vRfY user"), OK, SMTP_CMD_VRFY, "user" },
	{ L("ExPn list"), OK, SMTP_CMD_EXPN, "list" },
	{ L("hElP"), OK, SMTP_CMD_HELP, "" },
	{ L("StartTls"), OK, SMTP_CMD_STARTTLS, "" },
	{ L("aUtH PLAIN AHUAcA=="), OK, SMTP_CMD_AUTH, "PLAIN AHUAcA==" },
	{ L("bDaT 100 LAST"), OK, SMTP_CMD_BDAT, "100 LAST" },
	{ L("NOOP   x y"), OK, SMTP_CMD_NOOP, "x y" },
	{ L("DATA   "), OK, SMTP_CMD_DATA, "" },
	{ L("MAILFROM:<a@b>"), OK, SMTP_CMD_UNKNOWN, "" },
	{ L("MAIL\tFROM:<a@b>"), OK, SMTP_CMD_UNKNOWN, "" },
	{ L("STARTTLSX"), OK, SMTP_CMD_UNKNOWN, "" },
	{ L("HEL"), OK, SMTP_CMD_UNKNOWN, "" },
	{ L("XYZZY plugh"), OK, SMTP_CMD_UNKNOWN, "plugh" },
	{ L(" HELO x"), OK, SMTP_CMD_UNKNOWN, "HELO x" },
	{ L(""), OK, SMTP_CMD_UNKNOWN, "" },
	/* NUL, CR, LF anywhere: smuggling material */
	{ L("DATA\0"), NUL, SMTP_CMD_UNKNOWN, "" },
	{ L("HELO a\0b"), NUL, SMTP_CMD_UNKNOWN, "" },
	{ L("DATA\n"), NUL, SMTP_CMD_UNKNOWN, "" },
	{ L("DA\rTA"), NUL, SMTP_CMD_UNKNOWN, "" },
	{ L("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>"), NUL, SMTP_CMD_UNKNOWN, "" },
	{ L("\n.\n"), NUL, SMTP_CMD_UNKNOWN, "" },
};

static void
test_commands(void)
{
	enum smtp_cmd cmd;
	const char *args;
	size_t i;
	int err;

	for (i = 0; i < sizeof(cmd_rows) / sizeof(cmd_rows[0]); i++) {
		const struct cmd_row *row = &cmd_rows[i];

		err = smtp_parse_command(row->line, row->len, &cmd, &args);
		UNIT_CHECK_INT(err, row->err);
		if (err == OK) {
			UNIT_CHECK_INT(cmd, row->cmd);
			UNIT_CHECK_STR(args, row->args);
		}
	}
	UNIT_CHECK_STR(smtp_cmd_name(SMTP_CMD_STARTTLS), "STARTTLS");
	UNIT_CHECK_STR(smtp_cmd_name(SMTP_CMD_BDAT), "BDAT");
	UNIT_CHECK_STR(smtp_cmd_name(SMTP_CMD_UNKNOWN), "?");
}

/* --- addresses ------------------------------------------------------ */

#define S64	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define S63	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define S61	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

struct addr_row {
	const char	*addr;
	int		 smtputf8;
	int		 valid;
};

static const struct addr_row addr_rows[] = {
	{ "user@example.com", 0, 1 },
	{ "a@b", 0, 1 },
	{ "first.last@sub.example.co.jp", 0, 1 },
	{ "!#$%&'*+-/=?^_`{|}~@example.com", 0, 1 },
	{ "user+tag@example.com", 0, 1 },
	{ "a@1.2.3.4.example", 0, 1 },
	{ "a@x-y.example", 0, 1 },
	{ "a@-x.example", 0, 0 },
	{ "a@x-.example", 0, 0 },
	{ "a@x_y.example", 0, 0 },
	{ "a@example..com", 0, 0 },
	{ "a@example.com.", 0, 0 },
	{ "a@.example.com", 0, 0 },
	{ "a@", 0, 0 },
	{ "@example.com", 0, 0 },
	{ "example.com", 0, 0 },
	{ "", 0, 0 },
	{ ".a@example.com", 0, 0 },
	{ "a.@example.com", 0, 0 },
	{ "a..b@example.com", 0, 0 },
	{ "a b@example.com", 0, 0 },
	{ "a(b)@example.com", 0, 0 },
	{ "a@b@example.com", 0, 0 },
	{ "a@ex ample.com", 0, 0 },
	/* quoted local parts (RFC 5321 4.1.2 Quoted-string) */
	{ "\"john doe\"@example.com", 0, 1 },
	{ "\"a@b\"@example.com", 0, 1 },
	{ "\"a\\\"b\"@example.com", 0, 1 },
	{ "\"a\\\\\"@example.com", 0, 1 },
	{ "\"\"@example.com", 0, 1 },
	{ "\"a\"b@example.com", 0, 0 },
	{ "\"a\"\"b\"@example.com", 0, 0 },
	{ "\"a\\\"@example.com", 0, 0 },
	{ "\"a@example.com", 0, 0 },
	{ "\"a\tb\"@example.com", 0, 0 },
	/* address literals */
	{ "a@[192.0.2.1]", 0, 1 },
	{ "a@[IPv6:2001:db8::1]", 0, 1 },
	{ "a@[ipv6:::1]", 0, 1 },
	{ "a@[IPv6:::ffff:192.0.2.1]", 0, 1 },
	{ "a@[192.0.2.256]", 0, 0 },
	{ "a@[192.0.2]", 0, 0 },
	{ "a@[2001:db8::1]", 0, 0 },
	{ "a@[IPv6:2001:db8:::1]", 0, 0 },
	{ "a@[IPv6:192.0.2.1]", 0, 0 },
	{ "a@[x-tag:foo]", 0, 0 },
	{ "a@[192.0.2.1", 0, 0 },
	{ "a@[]", 0, 0 },
	/* lengths: label 63, local part 64 */
	{ "a@" S63 ".example", 0, 1 },
	{ "a@" S64 ".example", 0, 0 },
	{ S64 "@example.com", 0, 1 },
	{ S64 "a@example.com", 0, 0 },
	/* 254-octet mailbox, then 255 */
	{ S64 "@" S63 "." S63 "." S61, 0, 1 },
	{ S64 "@" S63 "." S63 "." S61 "a", 0, 0 },
	{ S64 "@" S63 "." S63 "." S63 ".com", 0, 0 },
	/* UTF-8 (RFC 6531) only with SMTPUTF8 */
	{ "\xe7\x94\xb0\xe4\xb8\xad@example.jp", 0, 0 },
	{ "\xe7\x94\xb0\xe4\xb8\xad@example.jp", 1, 1 },
	{ "user@\xe4\xbe\x8b\xe3\x81\x88.jp", 0, 0 },
	{ "user@\xe4\xbe\x8b\xe3\x81\x88.jp", 1, 1 },
	{ "\"\xe7\x94\xb0 \xe4\xb8\xad\"@example.jp", 1, 1 },
	{ "\"\xe7\x94\xb0 \xe4\xb8\xad\"@example.jp", 0, 0 },
	{ "caf\xc3\xa9@example.com", 1, 1 },
	{ "\xf0\x9f\x93\xa7@example.com", 1, 1 },
	/* invalid UTF-8 even with SMTPUTF8 */
	{ "caf\xc3@example.com", 1, 0 },		/* truncated */
	{ "caf\xa9@example.com", 1, 0 },		/* lone continuation */
	{ "\xc0\xaf@example.com", 1, 0 },		/* overlong '/' */
	{ "\xe0\x80\xaf@example.com", 1, 0 },		/* overlong */
	{ "\xed\xa0\x80@example.com", 1, 0 },		/* surrogate */
	{ "\xf4\x90\x80\x80@example.com", 1, 0 },	/* > U+10FFFF */
	{ "\xff@example.com", 1, 0 },
	{ "user@ex\xc3.jp", 1, 0 },
	{ "a@[IPv6:\xc3\xa9]", 1, 0 },
};

static void
test_addresses(void)
{
	size_t i;

	for (i = 0; i < sizeof(addr_rows) / sizeof(addr_rows[0]); i++) {
		const struct addr_row *row = &addr_rows[i];
		int got = smtp_address_valid(row->addr, row->smtputf8);

		if (got != row->valid)
			fprintf(stderr, "address row %zu: %s\n", i, row->addr);
		UNIT_CHECK_INT(got, row->valid);
	}
}

struct split_row {
	const char	*addr;
	int		 ret;
	const char	*local;
	const char	*domain;
};

static const struct split_row split_rows[] = {
	{ "User@Example.COM", 0, "User", "example.com" },
	{ "\"a@b\"@Example.jp", 0, "\"a@b\"", "example.jp" },
	{ "a@", 0, "a", "" },
	{ "a@[IPv6:2001:DB8::1]", 0, "a", "[ipv6:2001:db8::1]" },
	{ "postmaster", -1, NULL, NULL },
};

static void
test_split(void)
{
	char *local, *domain;
	size_t i;

	for (i = 0; i < sizeof(split_rows) / sizeof(split_rows[0]); i++) {
		const struct split_row *row = &split_rows[i];

		UNIT_CHECK_INT(smtp_address_split(row->addr, &local, &domain),
		    row->ret);
		if (row->ret == 0) {
			UNIT_CHECK_STR(local, row->local);
			UNIT_CHECK_STR(domain, row->domain);
			free(local);
			free(domain);
		}
	}
}

/* --- MAIL ----------------------------------------------------------- */

struct mail_row {
	const char	*args;
	int		 err;
	const char	*address;
	int		 has_size;
	uint64_t	 size;
	int		 body_8bitmime;
	int		 smtputf8;
	const char	*auth;
};

static const struct mail_row mail_rows[] = {
	{ "FROM:<a@b.example>", OK, "a@b.example", 0, 0, 0, 0, NULL },
	{ "from:<a@b.example>", OK, "a@b.example", 0, 0, 0, 0, NULL },
	{ "FROM: <a@b.example>", OK, "a@b.example", 0, 0, 0, 0, NULL },
	{ "FROM:<>", OK, "", 0, 0, 0, 0, NULL },
	{ "FROM:<> SIZE=0", OK, "", 1, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> ", OK, "a@b.example", 0, 0, 0, 0, NULL },
	{ "FROM:<\"x y\"@b.example>", OK, "\"x y\"@b.example", 0, 0, 0, 0,
	  NULL },
	{ "FROM:<\"x>y\"@b.example>", OK, "\"x>y\"@b.example", 0, 0, 0, 0,
	  NULL },
	{ "FROM:<a@[192.0.2.1]>", OK, "a@[192.0.2.1]", 0, 0, 0, 0, NULL },
	/* source route accepted and dropped */
	{ "FROM:<@r1.example,@r2.example:a@b.example>", OK, "a@b.example", 0,
	  0, 0, 0, NULL },
	{ "FROM:<@r1.example:a@b.example>", OK, "a@b.example", 0, 0, 0, 0,
	  NULL },
	{ "FROM:<@r1..example:a@b.example>", BADADDR, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<@r1.example,a@b.example>", BADADDR, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<@r1.example:>", BADADDR, NULL, 0, 0, 0, 0, NULL },
	/* syntax */
	{ "FROM:a@b.example", SYNTAX, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example", SYNTAX, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:  <a@b.example>", SYNTAX, NULL, 0, 0, 0, 0, NULL },
	{ "FROM :<a@b.example>", SYNTAX, NULL, 0, 0, 0, 0, NULL },
	{ "FROM<a@b.example>", SYNTAX, NULL, 0, 0, 0, 0, NULL },
	{ "TO:<a@b.example>", SYNTAX, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example>SIZE=10", SYNTAX, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<\"a@b.example>", SYNTAX, NULL, 0, 0, 0, 0, NULL },
	{ "", SYNTAX, NULL, 0, 0, 0, 0, NULL },
	/* bad addresses */
	{ "FROM:<a>", BADADDR, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<postmaster>", BADADDR, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b..example>", BADADDR, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<" S64 "a@b.example>", BADADDR, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@" S64 ".example>", BADADDR, NULL, 0, 0, 0, 0, NULL },
	/* SIZE (RFC 1870) */
	{ "FROM:<a@b.example> SIZE=12345", OK, "a@b.example", 1, 12345, 0, 0,
	  NULL },
	{ "FROM:<a@b.example> size=18446744073709551615", OK, "a@b.example",
	  1, UINT64_MAX, 0, 0, NULL },
	{ "FROM:<a@b.example> SIZE=18446744073709551616", BADPARAM, NULL, 0,
	  0, 0, 0, NULL },
	{ "FROM:<a@b.example> SIZE=99999999999999999999", BADPARAM, NULL, 0,
	  0, 0, 0, NULL },
	{ "FROM:<a@b.example> SIZE=000000000000000000001", BADPARAM, NULL, 0,
	  0, 0, 0, NULL },
	{ "FROM:<a@b.example> SIZE=", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> SIZE", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> SIZE=12k", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> SIZE=-1", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> SIZE=+1", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> SIZE=1 SIZE=1", BADPARAM, NULL, 0, 0, 0, 0,
	  NULL },
	/* BODY (RFC 6152) */
	{ "FROM:<a@b.example> BODY=8BITMIME", OK, "a@b.example", 0, 0, 1, 0,
	  NULL },
	{ "FROM:<a@b.example> body=8bitmime", OK, "a@b.example", 0, 0, 1, 0,
	  NULL },
	{ "FROM:<a@b.example> BODY=7BIT", OK, "a@b.example", 0, 0, 0, 0,
	  NULL },
	{ "FROM:<a@b.example> BODY=BINARYMIME", BADPARAM, NULL, 0, 0, 0, 0,
	  NULL },
	{ "FROM:<a@b.example> BODY", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> BODY=7BIT BODY=8BITMIME", BADPARAM, NULL, 0, 0,
	  0, 0, NULL },
	/* SMTPUTF8 (RFC 6531) */
	{ "FROM:<a@b.example> SMTPUTF8", OK, "a@b.example", 0, 0, 0, 1, NULL },
	{ "FROM:<\xe7\x94\xb0\xe4\xb8\xad@\xe4\xbe\x8b.jp> SMTPUTF8", OK,
	  "\xe7\x94\xb0\xe4\xb8\xad@\xe4\xbe\x8b.jp", 0, 0, 0, 1, NULL },
	{ "FROM:<\xe7\x94\xb0\xe4\xb8\xad@\xe4\xbe\x8b.jp>", BADADDR, NULL, 0,
	  0, 0, 0, NULL },
	{ "FROM:<\xe7\x94\xb0\xc3@example.jp> SMTPUTF8", BADADDR, NULL, 0, 0,
	  0, 0, NULL },
	{ "FROM:<a@b.example> SMTPUTF8=yes", BADPARAM, NULL, 0, 0, 0, 0,
	  NULL },
	{ "FROM:<a@b.example> SMTPUTF8 smtputf8", BADPARAM, NULL, 0, 0, 0, 0,
	  NULL },
	/* AUTH= (RFC 4954 5), xtext (RFC 3461 4) */
	{ "FROM:<a@b.example> AUTH=<>", OK, "a@b.example", 0, 0, 0, 0, "<>" },
	{ "FROM:<a@b.example> AUTH=e+3Dmc2@example.com", OK, "a@b.example", 0,
	  0, 0, 0, "e=mc2@example.com" },
	{ "FROM:<a@b.example> AUTH=a+2Bb@example.com", OK, "a@b.example", 0,
	  0, 0, 0, "a+b@example.com" },
	{ "FROM:<a@b.example> AUTH=", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> AUTH", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> AUTH=a+2", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> AUTH=a+2b", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> AUTH=a+GG", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> AUTH=a+00b", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> AUTH=a+0D+0Ab", BADPARAM, NULL, 0, 0, 0, 0,
	  NULL },
	{ "FROM:<a@b.example> AUTH=a=b", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> AUTH=<> AUTH=<>", BADPARAM, NULL, 0, 0, 0, 0,
	  NULL },
	/* all together, in any order and case, with extra spaces */
	{ "FROM:<a@b.example> smtputf8  Size=42 AUTH=<>  body=7bit ", OK,
	  "a@b.example", 1, 42, 0, 1, "<>" },
	/* unknown and malformed parameters */
	{ "FROM:<a@b.example> RET=FULL", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> NOTIFY=NEVER", BADPARAM, NULL, 0, 0, 0, 0,
	  NULL },
	{ "FROM:<a@b.example> =1", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> -X=1", BADPARAM, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b.example> SIZE=1\t", BADPARAM, NULL, 0, 0, 0, 0, NULL },
};

static void
test_mail(void)
{
	struct smtp_mail_args m;
	size_t i;
	int err;

	for (i = 0; i < sizeof(mail_rows) / sizeof(mail_rows[0]); i++) {
		const struct mail_row *row = &mail_rows[i];

		err = smtp_parse_mail(row->args, &m);
		if (err != row->err)
			fprintf(stderr, "mail row %zu: %s\n", i, row->args);
		UNIT_CHECK_INT(err, row->err);
		if (err != OK) {
			UNIT_CHECK(m.address == NULL && m.auth == NULL);
			continue;
		}
		UNIT_CHECK_STR(m.address, row->address);
		UNIT_CHECK_INT(m.has_size, row->has_size);
		UNIT_CHECK(m.size == row->size);
		UNIT_CHECK_INT(m.body_8bitmime, row->body_8bitmime);
		UNIT_CHECK_INT(m.smtputf8, row->smtputf8);
		UNIT_CHECK_STR(m.auth, row->auth);
		smtp_mail_args_deinit(&m);
		UNIT_CHECK(m.address == NULL);
	}
}

/* --- RCPT ----------------------------------------------------------- */

struct rcpt_row {
	const char	*args;
	int		 smtputf8;
	int		 err;
	const char	*address;
	const char	*notify;
	const char	*orcpt;
};

static const struct rcpt_row rcpt_rows[] = {
	{ "TO:<a@b.example>", 0, OK, "a@b.example", NULL, NULL },
	{ "to: <a@b.example>", 0, OK, "a@b.example", NULL, NULL },
	{ "TO:<@r.example:a@b.example>", 0, OK, "a@b.example", NULL, NULL },
	/* RFC 5321 4.5.1 */
	{ "TO:<postmaster>", 0, OK, "postmaster", NULL, NULL },
	{ "TO:<PostMaster>", 0, OK, "postmaster", NULL, NULL },
	{ "TO:<postmaster@b.example>", 0, OK, "postmaster@b.example", NULL,
	  NULL },
	{ "TO:<postmistress>", 0, BADADDR, NULL, NULL, NULL },
	{ "TO:<>", 0, BADADDR, NULL, NULL, NULL },
	{ "TO:<a@b.example", 0, SYNTAX, NULL, NULL, NULL },
	{ "TO:a@b.example", 0, SYNTAX, NULL, NULL, NULL },
	{ "FROM:<a@b.example>", 0, SYNTAX, NULL, NULL, NULL },
	{ "TO:<\xe7\x94\xb0@example.jp>", 0, BADADDR, NULL, NULL, NULL },
	{ "TO:<\xe7\x94\xb0@example.jp>", 1, OK, "\xe7\x94\xb0@example.jp",
	  NULL, NULL },
	{ "TO:<\xe7\x94@example.jp>", 1, BADADDR, NULL, NULL, NULL },
	/* NOTIFY (RFC 3461 4.1) */
	{ "TO:<a@b.example> NOTIFY=NEVER", 0, OK, "a@b.example", "NEVER",
	  NULL },
	{ "TO:<a@b.example> notify=success,Failure,DELAY", 0, OK,
	  "a@b.example", "SUCCESS,FAILURE,DELAY", NULL },
	{ "TO:<a@b.example> NOTIFY=DELAY", 0, OK, "a@b.example", "DELAY",
	  NULL },
	{ "TO:<a@b.example> NOTIFY=NEVER,DELAY", 0, BADPARAM, NULL, NULL,
	  NULL },
	{ "TO:<a@b.example> NOTIFY=SUCCESS,SUCCESS", 0, BADPARAM, NULL, NULL,
	  NULL },
	{ "TO:<a@b.example> NOTIFY=SUCCESS,", 0, BADPARAM, NULL, NULL, NULL },
	{ "TO:<a@b.example> NOTIFY=", 0, BADPARAM, NULL, NULL, NULL },
	{ "TO:<a@b.example> NOTIFY", 0, BADPARAM, NULL, NULL, NULL },
	{ "TO:<a@b.example> NOTIFY=SOMETIMES", 0, BADPARAM, NULL, NULL,
	  NULL },
	{ "TO:<a@b.example> NOTIFY=NEVER NOTIFY=NEVER", 0, BADPARAM, NULL,
	  NULL, NULL },
	/* ORCPT (RFC 3461 4.2), kept as given */
	{ "TO:<a@b.example> ORCPT=rfc822;a+2Bx@b.example", 0, OK,
	  "a@b.example", NULL, "rfc822;a+2Bx@b.example" },
	{ "TO:<a@b.example> ORCPT=rfc822;a@b.example NOTIFY=FAILURE", 0, OK,
	  "a@b.example", "FAILURE", "rfc822;a@b.example" },
	{ "TO:<a@b.example> ORCPT=rfc822;\xe7\x94\xb0@b.example", 1, OK,
	  "a@b.example", NULL, "rfc822;\xe7\x94\xb0@b.example" },
	{ "TO:<a@b.example> ORCPT=rfc822;\xe7\x94\xb0@b.example", 0, BADPARAM,
	  NULL, NULL, NULL },
	{ "TO:<a@b.example> ORCPT=rfc822", 0, BADPARAM, NULL, NULL, NULL },
	{ "TO:<a@b.example> ORCPT=rfc822;", 0, BADPARAM, NULL, NULL, NULL },
	{ "TO:<a@b.example> ORCPT=;a@b.example", 0, BADPARAM, NULL, NULL,
	  NULL },
	{ "TO:<a@b.example> ORCPT=rfc822;a+2@b", 0, BADPARAM, NULL, NULL,
	  NULL },
	{ "TO:<a@b.example> ORCPT=rfc822;a@b ORCPT=rfc822;a@b", 0, BADPARAM,
	  NULL, NULL, NULL },
	/* MAIL's parameters are not RCPT's */
	{ "TO:<a@b.example> SIZE=10", 0, BADPARAM, NULL, NULL, NULL },
	{ "TO:<a@b.example> FOO", 0, BADPARAM, NULL, NULL, NULL },
};

static void
test_rcpt(void)
{
	struct smtp_rcpt_args r;
	size_t i;
	int err;

	for (i = 0; i < sizeof(rcpt_rows) / sizeof(rcpt_rows[0]); i++) {
		const struct rcpt_row *row = &rcpt_rows[i];

		err = smtp_parse_rcpt(row->args, row->smtputf8, &r);
		if (err != row->err)
			fprintf(stderr, "rcpt row %zu: %s\n", i, row->args);
		UNIT_CHECK_INT(err, row->err);
		if (err != OK) {
			UNIT_CHECK(r.address == NULL && r.notify == NULL &&
			    r.orcpt == NULL);
			continue;
		}
		UNIT_CHECK_STR(r.address, row->address);
		UNIT_CHECK_STR(r.notify, row->notify);
		UNIT_CHECK_STR(r.orcpt, row->orcpt);
		smtp_rcpt_args_deinit(&r);
	}
}

/* --- base64 and SASL PLAIN ----------------------------------------- */

struct b64_row {
	const char	*plain;
	size_t		 plainlen;
	const char	*encoded;
};

/* RFC 4648 10, plus binary */
static const struct b64_row b64_rows[] = {
	{ L(""), "" },
	{ L("f"), "Zg==" },
	{ L("fo"), "Zm8=" },
	{ L("foo"), "Zm9v" },
	{ L("foob"), "Zm9vYg==" },
	{ L("fooba"), "Zm9vYmE=" },
	{ L("foobar"), "Zm9vYmFy" },
	{ L("\0user\0pass"), "AHVzZXIAcGFzcw==" },
	{ L("\xfb\xff\xbf"), "+/+/" },
};

static const char *const b64_bad[] = {
	"Zg=", "Zg", "Z", "Zg===", "Z===", "====", "=Zg=", "Zm=v", "Zg==Zg==",
	"Zm9v\n", "Zm9v\r\n", "Zm 9v", " Zm9v", "Zm9v!", "Zm9-", "Zm9_",
	"Zh==", "Zm9=",		/* non-zero bits before the padding */
	"=",
};

static void
test_base64(void)
{
	struct str s = STR_INIT;
	size_t i;

	for (i = 0; i < sizeof(b64_rows) / sizeof(b64_rows[0]); i++) {
		const struct b64_row *row = &b64_rows[i];

		str_clear(&s);
		base64_encode(row->plain, row->plainlen, &s);
		UNIT_CHECK_STR(str_c(&s), row->encoded);

		str_clear(&s);
		UNIT_CHECK_INT(base64_decode(row->encoded,
		    strlen(row->encoded), &s), 0);
		UNIT_CHECK_INT(s.len, row->plainlen);
		UNIT_CHECK(row->plainlen == 0 ||
		    memcmp(s.s, row->plain, row->plainlen) == 0);
	}
	for (i = 0; i < sizeof(b64_bad) / sizeof(b64_bad[0]); i++) {
		/* on error, what was there is left untouched */
		str_clear(&s);
		str_append(&s, "keep");
		if (base64_decode(b64_bad[i], strlen(b64_bad[i]), &s) != -1)
			fprintf(stderr, "base64 accepted: %s\n", b64_bad[i]);
		UNIT_CHECK_STR(str_c(&s), "keep");
	}
	/* decode appends */
	str_clear(&s);
	str_append(&s, ">");
	UNIT_CHECK_INT(base64_decode(L("Zm9v"), &s), 0);
	UNIT_CHECK_STR(str_c(&s), ">foo");
	str_deinit(&s);
}

struct plain_row {
	const char	*msg;
	size_t		 len;
	int		 ret;
	const char	*authzid;
	const char	*authcid;
	const char	*passwd;
};

static const struct plain_row plain_rows[] = {
	{ L("\0user\0pass"), 0, "", "user", "pass" },
	{ L("admin\0user\0p\xc3\xa4ss word"), 0, "admin", "user",
	  "p\xc3\xa4ss word" },
	{ L("user\0pass"), -1, NULL, NULL, NULL },
	{ L("\0\0pass"), -1, NULL, NULL, NULL },
	{ L("\0user\0"), -1, NULL, NULL, NULL },
	{ L("a\0user\0pass\0"), -1, NULL, NULL, NULL },
	{ L("a\0b\0c\0d"), -1, NULL, NULL, NULL },
	{ L("\0\0"), -1, NULL, NULL, NULL },
	{ L("userpass"), -1, NULL, NULL, NULL },
	{ L(""), -1, NULL, NULL, NULL },
};

static void
test_sasl_plain(void)
{
	const char *authzid, *authcid, *passwd;
	struct str s = STR_INIT;
	size_t i;

	for (i = 0; i < sizeof(plain_rows) / sizeof(plain_rows[0]); i++) {
		const struct plain_row *row = &plain_rows[i];

		str_init(&s);
		str_append_n(&s, row->msg, row->len);
		UNIT_CHECK_INT(sasl_plain_split(&s, &authzid, &authcid,
		    &passwd), row->ret);
		if (row->ret == 0) {
			UNIT_CHECK_STR(authzid, row->authzid);
			UNIT_CHECK_STR(authcid, row->authcid);
			UNIT_CHECK_STR(passwd, row->passwd);
		}
		str_deinit(&s);
	}
	/* through base64, as AUTH PLAIN sends it */
	UNIT_CHECK_INT(base64_decode(L("AHVzZXIAcGFzcw=="), &s), 0);
	UNIT_CHECK_INT(sasl_plain_split(&s, &authzid, &authcid, &passwd),
	    0);
	UNIT_CHECK_STR(authcid, "user");
	UNIT_CHECK_STR(passwd, "pass");
	str_deinit(&s);
}

int
main(void)
{
	test_commands();
	test_addresses();
	test_split();
	test_mail();
	test_rcpt();
	test_base64();
	test_sasl_plain();
	UNIT_END();
}
