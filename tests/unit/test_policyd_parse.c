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
	{ "ccert_subject=CN=a=b", 0 },			/* '=' in value */
	{ "\r", 1 },
	{ "", 1 },
	{ "novalue", -1 },
	{ "=x", -1 },
	{ "Bad=x", -1 },
	{ "a b=x", -1 },
	{ "x=a\tb", -1 },
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
	UNIT_CHECK_STR(policyd_get(&r, "ccert_subject"), "CN=a=b");
	UNIT_CHECK_STR(policyd_get(&r, "missing"), "");
	/* a duplicate is refused */
	UNIT_CHECK_INT(policyd_parse_line(&r, "sender=x", 8, &error), -1);
	policyd_request_clear(&r);
	/* at most POLICYD_MAX_ATTRS */
	for (int i = 0; i < POLICYD_MAX_ATTRS; i++) {
		char line[32];

		snprintf(line, sizeof(line), "a%d=v", i);
		UNIT_CHECK_INT(policyd_parse_line(&r, line, strlen(line),
		    &error), 0);
	}
	UNIT_CHECK_INT(policyd_parse_line(&r, "z=v", 3, &error), -1);
	policyd_request_clear(&r);
	UNIT_END();
}
