/*
 * test_policyd_parse: Postfix policy protocol request lines.
 */
#include <string.h>

#include "policyd/policyd_parse.h"
#include "unit.h"

static const struct {
	const char	*line;
	int		 want;		/* 0 attr, 1 end, -1 error */
} rows[] = {
	{ "request=smtpd_access_policy", 0 },
	{ "protocol_state=RCPT", 0 },
	{ "sasl_username=alice@example.jp", 0 },
	{ "client_address=2001:db8::7", 0 },
	{ "sender=", 0 },				/* null sender */
	{ "ccert_subject=CN=a=b", 0 },			/* ignored */
	/* SMTPD_POLICY_README: a name is any text without '=', NUL or
	 * newline; one sekisho does not read is ignored (issue 14) */
	{ "x-custom=1", 0 },
	{ "X_Vendor=a", 0 },
	{ "vendor.flag=yes", 0 },
	{ "Bad=x", 0 },
	{ "a b=x", 0 },
	{ "x=a\tb", 0 },				/* ignored value */
	{ "instance=1a2b.5f0e.7c2d.0", 0 },
	{ "recipient=bob@example.jp", 0 },
	{ "\r", 1 },
	{ "", 1 },
	{ "novalue", -1 },
	{ "=x", -1 },
};

int
main(void)
{
	struct policyd_request r;
	const char *error;

	policyd_request_init(&r);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int got = policyd_parse_line(&r, rows[i].line,
		    strlen(rows[i].line), &error);

		if (got != rows[i].want)
			fprintf(stderr, "row %zu: %s\n", i, rows[i].line);
		UNIT_CHECK_INT(got, rows[i].want);
	}
	UNIT_CHECK_STR(policyd_get(&r, "protocol_state"), "RCPT");
	UNIT_CHECK_STR(policyd_get(&r, "sender"), "");
	UNIT_CHECK_STR(policyd_get(&r, "instance"), "1a2b.5f0e.7c2d.0");
	UNIT_CHECK_STR(policyd_get(&r, "recipient"), "bob@example.jp");
	UNIT_CHECK_STR(policyd_get(&r, "ccert_subject"), "");
	UNIT_CHECK_STR(policyd_get(&r, "x-custom"), "");
	UNIT_CHECK_STR(policyd_get(&r, "missing"), "");
	/* a duplicate of a name sekisho reads is refused; of another, not */
	UNIT_CHECK_INT(policyd_parse_line(&r, "sender=x", 8, &error), -1);
	UNIT_CHECK_INT(policyd_parse_line(&r, "x-custom=2", 10, &error), 0);
	/* a NUL anywhere, an over-long line */
	UNIT_CHECK_INT(policyd_parse_line(&r, "x-a=b\0c", 7, &error), -1);
	UNIT_CHECK_STR(error, "NUL in request");
	UNIT_CHECK_INT(policyd_parse_line(&r, "\0=b", 3, &error), -1);
	{
		char big[POLICYD_MAX_LINE + 2];

		memset(big, 'a', sizeof(big));
		big[1] = '=';
		UNIT_CHECK_INT(policyd_parse_line(&r, big, sizeof(big),
		    &error), -1);
		UNIT_CHECK_STR(error, "line too long");
	}
	policyd_request_clear(&r);
	/* at most POLICYD_MAX_LINES attributes, known or not */
	for (int i = 0; i < POLICYD_MAX_LINES; i++) {
		char line[32];

		snprintf(line, sizeof(line), "a%d=v", i);
		UNIT_CHECK_INT(policyd_parse_line(&r, line, strlen(line),
		    &error), 0);
	}
	UNIT_CHECK_INT(policyd_parse_line(&r, "z=v", 3, &error), -1);
	policyd_request_clear(&r);
	/* cleared: a new request may have them again */
	UNIT_CHECK_INT(policyd_parse_line(&r, "sender=x", 8, &error), 0);
	UNIT_CHECK_STR(policyd_get(&r, "sender"), "x");
	policyd_request_clear(&r);
	UNIT_END();
}
