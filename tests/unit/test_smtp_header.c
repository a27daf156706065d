/*
 * test_smtp_header: From addresses and Message-ID, table-driven.
 */
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_header.h"
#include "unit.h"

static const struct {
	const char	*in;
	int		 n;
	const char	*want[3];
} from_rows[] = {
	{ "alice@example.jp", 1, { "alice@example.jp" } },
	{ " <alice@example.jp>", 1, { "alice@example.jp" } },
	{ "Alice <alice@example.jp>", 1, { "alice@example.jp" } },
	{ "\"Doe, John\" <j@example.jp>", 1, { "j@example.jp" } },
	{ "=?UTF-8?B?5bGx55Sw?= <yamada@example.jp>", 1,
	    { "yamada@example.jp" } },
	{ "alice@example.jp (Alice Smith)", 1, { "alice@example.jp" } },
	{ "(c (nested) x) bob@example.jp", 1, { "bob@example.jp" } },
	{ "a@example.jp, B <b@example.jp>", 2,
	    { "a@example.jp", "b@example.jp" } },
	{ "Alice <alice@example.jp>,\r\n\tBob <bob@example.jp>", 2,
	    { "alice@example.jp", "bob@example.jp" } },
	{ "friends: a@example.jp, b@example.jp;", 2,
	    { "a@example.jp", "b@example.jp" } },
	{ "undisclosed-recipients:;", 0, { NULL } },
	{ "\"quoted\\\" <fake@evil.example>\" <real@example.jp>", 1,
	    { "real@example.jp" } },
	{ "<\"odd local\"@example.jp>", 1, { "\"odd local\"@example.jp" } },
	{ "Just A Name", 1, { "JustAName" } },
	{ "", 0, { NULL } },
	{ "evil@attacker.example <alice@example.jp>", 1,
	    { "alice@example.jp" } },
	{ "<alice@example.jp", 1, { "alice@example.jp" } },
};

/* Which line is which field (smtp_header_field): the body's offset. */
static const struct {
	const char	*line;
	const char	*name;
	size_t		 body;
} field_rows[] = {
	{ "From: a@example.jp", "From", 5 },
	{ "from:a@example.jp", "From", 5 },
	{ "FROM: a@example.jp", "From", 5 },
	/* RFC 5322 4.5.3 obs-optional: white space before the colon */
	{ "From : b@evil.example", "From", 6 },
	{ "From\t: b@evil.example", "From", 6 },
	{ "From \t  : b@evil.example", "From", 9 },
	{ "Message-ID : <x@y>", "Message-ID", 12 },
	/* not From */
	{ "Fromage: brie", "From", 0 },
	{ "From", "From", 0 },
	{ "From ", "From", 0 },
	{ "From x: a@b", "From", 0 },
	{ "Reply-To: a@b", "From", 0 },
	{ " From: a@b", "From", 0 },
	{ "", "From", 0 },
};

int
main(void)
{
	for (size_t i = 0; i < sizeof(field_rows) / sizeof(field_rows[0]);
	    i++)
		UNIT_CHECK_INT(smtp_header_field(field_rows[i].line,
		    strlen(field_rows[i].line), field_rows[i].name),
		    field_rows[i].body);
	for (size_t i = 0; i < sizeof(from_rows) / sizeof(from_rows[0]); i++) {
		char **a;
		int n = smtp_header_addresses(from_rows[i].in,
		    strlen(from_rows[i].in), &a);

		UNIT_CHECK_INT(n, from_rows[i].n);
		for (int j = 0; j < n && j < from_rows[i].n; j++)
			UNIT_CHECK_STR(a[j], from_rows[i].want[j]);
		smtp_header_addresses_free(a, n > 0 ? n : 0);
	}
	/* more than the maximum is an error, not a silent cut */
	{
		static const char one[] = "a@b.jp, ";
		char big[40 * (sizeof(one) - 1) + 1];
		char **a;

		for (int i = 0; i < 40; i++)
			memcpy(big + i * (sizeof(one) - 1), one, sizeof(one) - 1);
		big[sizeof(big) - 1] = '\0';
		UNIT_CHECK_INT(smtp_header_addresses(big, strlen(big), &a), -1);
	}
	{
		char *m = smtp_header_msgid(" <abc.123@example.jp>\r\n", 23);

		UNIT_CHECK_STR(m, "abc.123@example.jp");
		free(m);
		UNIT_CHECK(smtp_header_msgid("none", 4) == NULL);
		UNIT_CHECK(smtp_header_msgid("<>", 2) == NULL);
		UNIT_CHECK(smtp_header_msgid("<a b@c>", 7) == NULL);
	}
	UNIT_END();
}
