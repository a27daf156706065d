/*
 * test_log: log_escape() (issue 13: outside text never forges a log
 * line) and the login-name check every login path asks.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "policy/policy.h"
#include "unit.h"

static const struct {
	const char	*in;
	size_t		 len;	/* buffer size; 0: a large one */
	const char	*want;
} rows[] = {
	{ "alice@example.jp", 0, "alice@example.jp" },
	{ "", 0, "" },
	/* line breaks, tab, NUL-less controls, DEL */
	{ "a\nb", 0, "a\\x0ab" },
	{ "a\r\n2026-12-06 fake: admin_suspend", 0,
	    "a\\x0d\\x0a2026-12-06 fake: admin_suspend" },
	{ "x\ty", 0, "x\\x09y" },
	{ "\x1b[31mred", 0, "\\x1b[31mred" },
	{ "del\x7f", 0, "del\\x7f" },
	/* a backslash is escaped so an escape cannot be faked */
	{ "a\\x0ab", 0, "a\\x5cx0ab" },
	/* valid UTF-8 is kept: a Japanese name, a 4-byte character */
	{ "\xe5\xb1\xb1\xe7\x94\xb0", 0, "\xe5\xb1\xb1\xe7\x94\xb0" },
	{ "\xf0\x9f\x93\xa7", 0, "\xf0\x9f\x93\xa7" },
	/* invalid UTF-8: a lone continuation byte, a cut sequence, an
	 * overlong NUL or slash, a surrogate, a C1 control (NEL), U+2028 */
	{ "\x80", 0, "\\x80" },
	{ "\xe5\xb1", 0, "\\xe5\\xb1" },
	{ "\xc0\x80", 0, "\\xc0\\x80" },
	{ "\xe0\x80\xaf", 0, "\\xe0\\x80\\xaf" },
	{ "\xed\xa0\x80", 0, "\\xed\\xa0\\x80" },
	{ "\xc2\x85", 0, "\\xc2\\x85" },
	{ "\xe2\x80\xa8", 0, "\\xe2\\x80\\xa8" },
	{ "\xff\xfe", 0, "\\xff\\xfe" },
	/* bounded: cut with "...", never in the middle of an escape or a
	 * character */
	{ "abcdefghi", 10, "abcdefghi" },
	{ "abcdefghij", 10, "abcdef..." },
	{ "ab\ncdefgh", 10, "ab\\x0a..." },
	{ "\xe5\xb1\xb1\xe7\x94\xb0\xe5\xa4\xaa", 9, "\xe5\xb1\xb1..." },
	{ "abc", 1, "" },
};

static void
test_escape(void)
{
	char buf[256];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t len = rows[i].len > 0 ? rows[i].len : sizeof(buf);

		memset(buf, 'Z', sizeof(buf));
		log_escape(buf, len, rows[i].in);
		UNIT_CHECK_STR(buf, rows[i].want);
		UNIT_CHECK(strlen(buf) < len);
	}
	UNIT_CHECK_STR(log_escape(buf, sizeof(buf), NULL), "-");
	/* LOG_ESCAPE_MAX is enough for the worst input */
	char worst[64], out[LOG_ESCAPE_MAX(63)];

	memset(worst, '\n', 63);
	worst[63] = '\0';
	log_escape(out, sizeof(out), worst);
	UNIT_CHECK_INT(strlen(out), 63 * 4);
}

static void
test_login_name(void)
{
	UNIT_CHECK_INT(str_login_name_ok("alice@example.jp"), 1);
	UNIT_CHECK_INT(str_login_name_ok("\xe5\xb1\xb1@example.jp"), 1);
	UNIT_CHECK_INT(str_login_name_ok("a\nb@example.jp"), 0);
	UNIT_CHECK_INT(str_login_name_ok("a\tb@example.jp"), 0);
	UNIT_CHECK_INT(str_login_name_ok("a\rb"), 0);
	UNIT_CHECK_INT(str_login_name_ok("a\x7f"), 0);
	UNIT_CHECK_INT(str_login_name_ok("a\x01"), 0);
	UNIT_CHECK_INT(str_login_name_ok(NULL), 0);
}

static void
test_client_key(void)
{
	char buf[64];

	UNIT_CHECK_STR(cidr_client_text("192.0.2.7", 64, buf, sizeof(buf)),
	    "192.0.2.7");
	UNIT_CHECK_STR(cidr_client_text("2001:db8:1:2:aaaa::7", 64, buf,
	    sizeof(buf)), "2001:db8:1:2::/64");
	UNIT_CHECK_STR(cidr_client_text("2001:db8:1:2:ffff:ffff:ffff:ffff",
	    64, buf, sizeof(buf)), "2001:db8:1:2::/64");
	UNIT_CHECK_STR(cidr_client_text("2001:db8:1:2:aaaa::7", 48, buf,
	    sizeof(buf)), "2001:db8:1::/48");
	UNIT_CHECK_STR(cidr_client_text("2001:db8:1:2:aaaa::7", 128, buf,
	    sizeof(buf)), "2001:db8:1:2:aaaa::7");
	UNIT_CHECK_STR(cidr_client_text("::ffff:192.0.2.9", 64, buf,
	    sizeof(buf)), "192.0.2.9");
	UNIT_CHECK_STR(cidr_client_text("unknown", 64, buf, sizeof(buf)),
	    "unknown");
}

static void
test_client_key_sockaddr(void)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 }, b6 = a6;
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	uint8_t ka[17], kb[17];

	/* two addresses of one /64: one key; of two /64s: two */
	inet_pton(AF_INET6, "2001:db8:1:2::1", &a6.sin6_addr);
	inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &b6.sin6_addr);
	cidr_client_key((struct sockaddr *)&a6, 64, ka);
	cidr_client_key((struct sockaddr *)&b6, 64, kb);
	UNIT_CHECK_INT(ka[0], 6);
	UNIT_CHECK(memcmp(ka, kb, 17) == 0);
	cidr_client_key((struct sockaddr *)&b6, 128, kb);
	UNIT_CHECK(memcmp(ka, kb, 17) != 0);
	inet_pton(AF_INET6, "2001:db8:1:3::1", &b6.sin6_addr);
	cidr_client_key((struct sockaddr *)&b6, 64, kb);
	UNIT_CHECK(memcmp(ka, kb, 17) != 0);
	/* an IPv4-mapped address is the IPv4 client */
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &a6.sin6_addr);
	inet_pton(AF_INET, "192.0.2.7", &a4.sin_addr);
	cidr_client_key((struct sockaddr *)&a6, 64, ka);
	cidr_client_key((struct sockaddr *)&a4, 64, kb);
	UNIT_CHECK_INT(ka[0], 4);
	UNIT_CHECK(memcmp(ka, kb, 17) == 0);
}

int
main(void)
{
	test_escape();
	test_login_name();
	test_client_key();
	test_client_key_sockaddr();
	UNIT_END();
}
