/*
 * test_milter_proto: packing the MTA's milter commands and parsing a
 * filter's replies (src/milter/milter_proto.c), the hostile ones beside
 * the good ones.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/str.h"
#include "milter/milter_proto.h"
#include "unit.h"

#define P(lit)	(lit), sizeof(lit) - 1

/* A reply packet: command octet and data, as milter_reply_parse gets it. */
static int
parse(const char *pkt, size_t len, struct milter_reply *r,
    const char **error)
{
	*error = NULL;
	return milter_reply_parse((const uint8_t *)pkt, len, r, error);
}

static void
test_pack(void)
{
	struct str s = STR_INIT;
	const char *names[] = { "j", "{auth_authen}", "i" };
	const char *values[] = { "mx.example", NULL, "ABC" };
	const char *hdr[] = { "Subject", " hi" };

	milter_pack_optneg(&s, 6, MILTER_A_OFFER, MILTER_P_OFFER);
	UNIT_CHECK_INT(s.len, 4 + 13);
	UNIT_CHECK(memcmp(s.s, "\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff", 13) == 0);
	str_clear(&s);
	milter_pack_macros(&s, 'C', names, values, 3);
	/* the NULL value is left out */
	UNIT_CHECK_INT(s.len, 4 + 2 + sizeof("j\0mx.example\0i\0ABC"));
	UNIT_CHECK(memcmp(s.s + 4, "DCj\0mx.example\0i\0ABC\0", 22) == 0);
	str_clear(&s);
	milter_pack_connect(&s, "unknown", '4', 2525, "192.0.2.1");
	UNIT_CHECK(memcmp(s.s, "\0\0\0\x16" "Cunknown\0" "4\x09\xdd"
	    "192.0.2.1\0", 26) == 0);
	str_clear(&s);
	milter_pack_connect(&s, "localhost", 'U', 0, NULL);
	UNIT_CHECK_INT(s.len, 4 + 1 + 10 + 1);
	str_clear(&s);
	milter_pack_strings(&s, MILTER_C_HEADER, hdr, 2);
	UNIT_CHECK(memcmp(s.s, "\0\0\0\x0dLSubject\0 hi\0", 17) == 0);
	str_clear(&s);
	milter_pack(&s, MILTER_C_EOH, NULL, 0);
	UNIT_CHECK(memcmp(s.s, "\0\0\0\x01N", 5) == 0);
	str_deinit(&s);
}

static void
test_frame(void)
{
	uint32_t len = 0;

	UNIT_CHECK(milter_frame_len((const uint8_t *)"\0\0\0\x01", &len) == 0);
	UNIT_CHECK_INT(len, 1);
	/* zero and oversize lengths are refused */
	UNIT_CHECK(milter_frame_len((const uint8_t *)"\0\0\0\0", &len) < 0);
	UNIT_CHECK(milter_frame_len((const uint8_t *)"\0\x10\0\x02", &len)
	    < 0);
	UNIT_CHECK(milter_frame_len((const uint8_t *)"\xff\xff\xff\xff",
	    &len) < 0);
	UNIT_CHECK(milter_frame_len((const uint8_t *)"\0\x10\0\x01", &len)
	    == 0);
}

static void
test_parse_simple(void)
{
	struct milter_reply r;
	const char *e;

	UNIT_CHECK(parse(P("c"), &r, &e) == 0 && r.cmd == 'c');
	UNIT_CHECK(parse(P("a"), &r, &e) == 0 && r.cmd == 'a');
	UNIT_CHECK(parse(P("r"), &r, &e) == 0 && r.cmd == 'r');
	UNIT_CHECK(parse(P("t"), &r, &e) == 0 && r.cmd == 't');
	UNIT_CHECK(parse(P("d"), &r, &e) == 0 && r.cmd == 'd');
	/* data after a verdict that has none */
	UNIT_CHECK(parse(P("cx"), &r, &e) < 0);
	UNIT_CHECK(parse(P(""), &r, &e) < 0);
	UNIT_CHECK(parse(P("Z"), &r, &e) < 0);
	UNIT_CHECK(parse(P("O\0\0\0\x06\0\0\0\x3f\0\0\0\x10"), &r, &e) == 0);
	UNIT_CHECK_INT(r.version, 6);
	UNIT_CHECK_INT(r.actions, 0x3f);
	UNIT_CHECK_INT(r.protocol, 0x10);
	/* version 7 is not ours; a short OPTNEG is malformed */
	UNIT_CHECK(parse(P("O\0\0\0\x07\0\0\0\x3f\0\0\0\x10"), &r, &e) < 0);
	UNIT_CHECK(parse(P("O\0\0\0\x06\0\0"), &r, &e) < 0);
}

static void
test_parse_replycode(void)
{
	struct milter_reply r;
	const char *e;
	static const char ml[] = "y550-5.7.1 first\r\n550 5.7.1 second";

	UNIT_CHECK(parse(P("y554 5.7.1 Go away\0"), &r, &e) == 0);
	UNIT_CHECK_STR(r.code, "554");
	UNIT_CHECK_STR(r.text, "554 5.7.1 Go away");
	UNIT_CHECK(parse(ml, sizeof(ml), &r, &e) == 0);
	UNIT_CHECK_STR(r.text, "550 5.7.1 first 5.7.1 second");
	/* a line break smuggled into the SMTP reply */
	UNIT_CHECK(parse(P("y550 bad\r\nMAIL FROM:<x>\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("y550 a\nb\0"), &r, &e) < 0);
	/* not 4xx/5xx, or codes that differ between lines */
	UNIT_CHECK(parse(P("y250 ok\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("y550-a\r\n450 b\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("y55\0"), &r, &e) < 0);
	/* no NUL, or bytes after it */
	UNIT_CHECK(parse(P("y550 x"), &r, &e) < 0);
	UNIT_CHECK(parse(P("y550 x\0y"), &r, &e) < 0);
	/* too long for one line */
	{
		char *big = malloc(3000);

		big[0] = 'y';
		memcpy(big + 1, "550 ", 4);
		memset(big + 5, 'a', 2000);
		big[2005] = '\0';
		UNIT_CHECK(parse(big, 2006, &r, &e) < 0);
		free(big);
	}
}

static void
test_parse_headers(void)
{
	struct milter_reply r;
	const char *e;

	UNIT_CHECK(parse(P("hX-Spam\0yes\0"), &r, &e) == 0);
	UNIT_CHECK_STR(r.name, "X-Spam");
	UNIT_CHECK_STR(r.value, "yes");
	UNIT_CHECK(parse(P("i\0\0\0\x01X-A\0v\n\tw\0"), &r, &e) == 0);
	UNIT_CHECK_INT(r.index, 1);
	UNIT_CHECK_STR(r.value, "v\n\tw");
	UNIT_CHECK(parse(P("m\0\0\0\x02Subject\0\0"), &r, &e) == 0);
	UNIT_CHECK_INT(r.index, 2);
	UNIT_CHECK_STR(r.value, "");
	/* a header that would start a new field or end the header section */
	UNIT_CHECK(parse(P("hX-A\0v\r\nBcc: x\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("hX-A\0v\n\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("hX-A\0v\rw\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("hX A\0v\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("hX:A\0v\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("h\0v\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("hX-A\0v"), &r, &e) < 0);
	UNIT_CHECK(parse(P("m\0\0\0"), &r, &e) < 0);
}

static void
test_parse_addresses(void)
{
	struct milter_reply r;
	const char *e;

	UNIT_CHECK(parse(P("+<a@example.org>\0"), &r, &e) == 0);
	UNIT_CHECK(r.cmd == '+');
	UNIT_CHECK_STR(r.name, "a@example.org");
	UNIT_CHECK(parse(P("-b@example.org\0"), &r, &e) == 0);
	UNIT_CHECK_STR(r.name, "b@example.org");
	UNIT_CHECK(parse(P("2<c@x>\0NOTIFY=NEVER\0"), &r, &e) == 0);
	UNIT_CHECK(r.cmd == '+');
	UNIT_CHECK_STR(r.value, "NOTIFY=NEVER");
	UNIT_CHECK(parse(P("e<>\0"), &r, &e) == 0);
	UNIT_CHECK_STR(r.name, "");
	UNIT_CHECK(parse(P("e<s@x>\0SIZE=10\0"), &r, &e) == 0);
	UNIT_CHECK_STR(r.name, "s@x");
	/* spaces, brackets and line breaks inside an address */
	UNIT_CHECK(parse(P("+a b@x\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("+<a>b@x>\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("+a@x\r\nRCPT\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("+<>\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("+a@x\0junk"), &r, &e) < 0);
	UNIT_CHECK(parse(P("qspam score 20\0"), &r, &e) == 0);
	UNIT_CHECK_STR(r.text, "spam score 20");
	UNIT_CHECK(parse(P("qa\nb\0"), &r, &e) < 0);
	UNIT_CHECK(parse(P("bhello"), &r, &e) == 0 && r.len == 5);
}

static void
test_specs(void)
{
	char *host, **specs;
	const char *e;
	uint16_t port;
	int fam, n;
	struct str why = STR_INIT;

	UNIT_CHECK(milter_spec_parse("inet:127.0.0.1:11332", &fam, &host,
	    &port, &e) == 0);
	UNIT_CHECK(fam == AF_INET && port == 11332);
	UNIT_CHECK_STR(host, "127.0.0.1");
	free(host);
	UNIT_CHECK(milter_spec_parse("inet6:[::1]:8891", &fam, &host, &port,
	    &e) == 0);
	UNIT_CHECK(fam == AF_INET6 && port == 8891);
	UNIT_CHECK_STR(host, "::1");
	free(host);
	UNIT_CHECK(milter_spec_parse("unix:/run/milter.sock", &fam, &host,
	    &port, &e) == 0);
	UNIT_CHECK(fam == AF_UNIX);
	UNIT_CHECK_STR(host, "/run/milter.sock");
	free(host);
	UNIT_CHECK(milter_spec_parse("inet:localhost:1", &fam, &host, &port,
	    &e) < 0);
	UNIT_CHECK(milter_spec_parse("inet:127.0.0.1:0", &fam, &host, &port,
	    &e) < 0);
	UNIT_CHECK(milter_spec_parse("inet:127.0.0.1:99999", &fam, &host,
	    &port, &e) < 0);
	UNIT_CHECK(milter_spec_parse("unix:rel", &fam, &host, &port, &e) < 0);
	UNIT_CHECK(milter_spec_parse("tcp:1.2.3.4:5", &fam, &host, &port, &e)
	    < 0);
	n = milter_specs_split(" inet:127.0.0.1:1, unix:/a,,inet6:[::1]:2 ",
	    &specs, &e);
	UNIT_CHECK_INT(n, 3);
	if (n == 3) {
		UNIT_CHECK_STR(specs[1], "unix:/a");
		milter_specs_free(specs, n);
	}
	UNIT_CHECK_INT(milter_specs_split("", &specs, &e), 0);
	UNIT_CHECK(milter_config_check("inet:127.0.0.1:1 unix:/x", &why) == 0);
	UNIT_CHECK(milter_config_check("inet:127.0.0.1:1 bogus", &why) < 0);
	str_deinit(&why);
}

int
main(void)
{
	test_pack();
	test_frame();
	test_parse_simple();
	test_parse_replycode();
	test_parse_headers();
	test_parse_addresses();
	test_specs();
	UNIT_END();
}
