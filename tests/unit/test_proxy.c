/*
 * test_proxy: PROXY protocol v1/v2 header parser, table-driven. Each
 * valid header is also fed in every shorter prefix, which must ask for
 * more (0) and never fail or succeed early.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/proxy.h"
#include "unit.h"

#define B(s)	(const unsigned char *)(s), sizeof(s) - 1

#define V2SIG	"\r\n\r\n\0\r\nQUIT\n"
/* 192.0.2.1:12345 -> 198.51.100.2:25 */
#define V2_IN4	"\xc0\x00\x02\x01" "\xc6\x33\x64\x02" "\x30\x39" "\x00\x19"
/* [2001:db8::1]:1024 -> [2001:db8::25]:587 */
#define V2_IN6	"\x20\x01\x0d\xb8" "\0\0\0\0" "\0\0\0\0" "\0\0\0\x01"	\
		"\x20\x01\x0d\xb8" "\0\0\0\0" "\0\0\0\0" "\0\0\0\x25"	\
		"\x04\x00" "\x02\x4b"

struct proxy_row {
	const unsigned char	*in;
	size_t			 len;
	int			 want;		/* return value */
	int			 local;
	int			 family;	/* AF_INET/AF_INET6 or 0 */
	const char		*src;		/* expected addresses */
	int			 sport;
	const char		*dst;
	int			 dport;
};

static const struct proxy_row rows[] = {
	/* v1 */
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 12345 25\r\n"), 44, 0,
	  AF_INET, "192.0.2.1", 12345, "198.51.100.2", 25 },
	{ B("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), 44, 0,
	  AF_INET, "0.0.0.0", 0, "255.255.255.255", 65535 },
	{ B("PROXY TCP6 2001:db8::1 2001:db8::25 1024 587\r\n"), 46, 0,
	  AF_INET6, "2001:db8::1", 1024, "2001:db8::25", 587 },
	{ B("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n"), 37, 0,
	  AF_INET6, "::ffff:192.0.2.1", 1, "::1", 2 },
	{ B("PROXY UNKNOWN\r\n"), 15, 1, 0, NULL, 0, NULL, 0 },
	{ B("PROXY UNKNOWN ffff:f::ffff ffff:f::ffff 65535 65535\r\n"), 53,
	  1, 0, NULL, 0, NULL, 0 },
	/* what follows the header is not ours */
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 12345 25\r\nEHLO x\r\n"), 44,
	  0, AF_INET, "192.0.2.1", 12345, "198.51.100.2", 25 },
	{ B("PROXY UNKNOWN\r\nEHLO x\r\n"), 15, 1, 0, NULL, 0, NULL, 0 },
	/* v1 prefixes */
	{ B("P"), 0, 0, 0, NULL, 0, NULL, 0 },
	{ B("PRO"), 0, 0, 0, NULL, 0, NULL, 0 },
	{ B("PROXY TCP4 1.2."), 0, 0, 0, NULL, 0, NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 12345 25\r"), 0, 0, 0, NULL,
	  0, NULL, 0 },
	/* v1 refused */
	{ B("EHLO x\r\n"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B("proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY  TCP4 192.0.2.1 198.51.100.2 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 1  2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n"), -1, 0, 0, NULL,
	  0, NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 1 2x\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 256.0.2.1 198.51.100.2 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.2 198.51.100.2 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 192.0.02.1 198.51.100.2 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP6 192.0.2.1 2001:db8::1 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP6 2001:db8:::1 2001:db8::1 1 2\r\n"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B("PROXY TCP4 1.2.3.4 x"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nX"), 32, 0, AF_INET,
	  "1.2.3.4", 1, "5.6.7.8", 2 },
	{ B("PROXY UNKNOWNX\r\n"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B("PROXY UNKNOWN x\ry\r\n"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B("PROXY UNKNOWN x\ny\r\n"), -1, 0, 0, NULL, 0, NULL, 0 },
	/* 107 bytes exactly, then one more */
	{ B("PROXY UNKNOWN "
	    "0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789"
	    "01234567890\r\n"), 107, 1, 0, NULL, 0, NULL, 0 },
	{ B("PROXY UNKNOWN "
	    "0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789"
	    "012345678901\r\n"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B("PROXY UNKNOWN "
	    "0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	/* an IPv6 v1 line may be valid grammar and still too long */
	{ B("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n"),
	  -1, 0, 0, NULL, 0, NULL, 0 },

	/* v2 */
	{ B(V2SIG "\x21\x11\x00\x0c" V2_IN4), 28, 0, AF_INET, "192.0.2.1",
	  12345, "198.51.100.2", 25 },
	{ B(V2SIG "\x21\x21\x00\x24" V2_IN6), 52, 0, AF_INET6, "2001:db8::1",
	  1024, "2001:db8::25", 587 },
	{ B(V2SIG "\x21\x11\x00\x0c" V2_IN4 "EHLO x\r\n"), 28, 0, AF_INET,
	  "192.0.2.1", 12345, "198.51.100.2", 25 },
	/* TLVs: NOOP "abc", ALPN "h2" */
	{ B(V2SIG "\x21\x11\x00\x17" V2_IN4 "\x04\x00\x03" "abc"
	    "\x01\x00\x02" "h2"), 39, 0, AF_INET, "192.0.2.1", 12345,
	  "198.51.100.2", 25 },
	{ B(V2SIG "\x21\x11\x00\x0e" V2_IN4 "\x04\x00"), -1, 0, 0, NULL, 0,
	  NULL, 0 },
	{ B(V2SIG "\x21\x11\x00\x10" V2_IN4 "\x04\x00\x02" "a"), -1, 0, 0,
	  NULL, 0, NULL, 0 },
	/* LOCAL: addresses, family and TLVs are ignored */
	{ B(V2SIG "\x20\x00\x00\x00"), 16, 1, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x20\x11\x00\x0c" V2_IN4), 28, 1, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x20\x12\x00\x02" "\x99\x99"), 18, 1, 0, NULL, 0, NULL,
	  0 },
	{ B(V2SIG "\x20\x00\x00\x00" "EHLO x\r\n"), 16, 1, 0, NULL, 0, NULL,
	  0 },
	/* PROXY with AF_UNSPEC */
	{ B(V2SIG "\x21\x00\x00\x00"), 16, 1, 0, NULL, 0, NULL, 0 },
	/* v2 prefixes */
	{ B("\r\n\r\n\0"), 0, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x21\x11\x00\x0c" "\xc0\x00"), 0, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x21\x11\x08\x00"), 0, 0, 0, NULL, 0, NULL, 0 },
	/* v2 refused */
	{ B("\r\n\r\n\0\r\nQUIT\r"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B("\r\nQUIT"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x11\x11\x00\x0c" V2_IN4), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x31\x11\x00\x0c" V2_IN4), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x22\x11\x00\x0c" V2_IN4), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x2f"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x21\x12\x00\x0c" V2_IN4), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x21\x22\x00\x24" V2_IN6), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x21\x32"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x21\x41"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x21\x10"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x21\x11\x00\x0b" V2_IN4), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x21\x21\x00\x0c" V2_IN4), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x21\x31\x00\xd7"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x21\x11\x08\x01"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B(V2SIG "\x20\x00\xff\xff"), -1, 0, 0, NULL, 0, NULL, 0 },
	/* garbage */
	{ B("\x16\x03\x01\x02\x00\x01"), -1, 0, 0, NULL, 0, NULL, 0 },
	{ B("GET / HTTP/1.0\r\n"), -1, 0, 0, NULL, 0, NULL, 0 },
};

static void
test_check_addr(const struct sockaddr_storage *ss, socklen_t sslen,
    int family, const char *want, int port)
{
	char buf[INET6_ADDRSTRLEN];

	UNIT_CHECK_INT(ss->ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		UNIT_CHECK_INT(sslen, sizeof(struct sockaddr_in));
		UNIT_CHECK(inet_ntop(AF_INET, &sin->sin_addr, buf,
		    sizeof(buf)) != NULL);
		UNIT_CHECK_STR(buf, want);
		UNIT_CHECK_INT(ntohs(sin->sin_port), port);
	} else {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)ss;

		UNIT_CHECK_INT(sslen, sizeof(struct sockaddr_in6));
		UNIT_CHECK(inet_ntop(AF_INET6, &sin6->sin6_addr, buf,
		    sizeof(buf)) != NULL);
		UNIT_CHECK_STR(buf, want);
		UNIT_CHECK_INT(ntohs(sin6->sin6_port), port);
	}
}

/* Every proper prefix of a valid header is "need more". */
static void
test_prefixes(const unsigned char *in, size_t hdrlen)
{
	struct proxy_result r;
	const char *error;
	size_t k;
	int bad = 0;

	for (k = 0; k < hdrlen; k++) {
		/* a copy of exactly k bytes so ASan sees over-reads */
		unsigned char *copy = malloc(k + 1);

		memcpy(copy, in, k);
		if (proxy_parse(copy, k, &r, &error) != 0) {
			fprintf(stderr, "prefix %zu of %zu not 0\n", k, hdrlen);
			bad++;
		}
		free(copy);
	}
	UNIT_CHECK_INT(bad, 0);
}

static void
test_rows(void)
{
	struct proxy_result r;
	const char *error;
	size_t i;
	int ret;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct proxy_row *row = &rows[i];
		unsigned char *copy = malloc(row->len);

		memcpy(copy, row->in, row->len);
		ret = proxy_parse(copy, row->len, &r, &error);
		if (ret != row->want)
			fprintf(stderr, "row %zu\n", i);
		UNIT_CHECK_INT(ret, row->want);
		if (ret < 0) {
			UNIT_CHECK(error != NULL);
		} else if (ret > 0) {
			UNIT_CHECK_INT(r.local, row->local);
			UNIT_CHECK_INT(r.version, row->in[0] == 'P' ? 1 : 2);
			if (row->family != 0) {
				test_check_addr(&r.src, r.srclen, row->family,
				    row->src, row->sport);
				test_check_addr(&r.dst, r.dstlen, row->family,
				    row->dst, row->dport);
			}
			test_prefixes(row->in, (size_t)ret);
		}
		free(copy);
	}
}

/* Built by hand: v2 AF_UNIX (216 address bytes) and the largest TLV
 * block allowed. */
static void
test_v2_large(void)
{
	unsigned char buf[PROXY_MAX_HEADER + 8];
	struct proxy_result r;
	const char *error;
	size_t blk;

	memcpy(buf, V2SIG, 12);
	buf[12] = 0x21;
	buf[13] = 0x31;
	buf[14] = 0;
	buf[15] = 216;
	memset(buf + 16, 'u', 216);
	UNIT_CHECK_INT(proxy_parse(buf, 16 + 216, &r, &error), 16 + 216);
	UNIT_CHECK_INT(r.local, 1);
	test_prefixes(buf, 16 + 216);

	/* TCP4 + one NOOP TLV filling the block to exactly 2048 bytes */
	blk = PROXY_MAX_HEADER - 16;
	buf[13] = 0x11;
	buf[14] = (unsigned char)(blk >> 8);
	buf[15] = (unsigned char)(blk & 0xff);
	memcpy(buf + 16, V2_IN4, 12);
	buf[28] = 0x04;
	buf[29] = (unsigned char)((blk - 15) >> 8);
	buf[30] = (unsigned char)((blk - 15) & 0xff);
	memset(buf + 31, 0, blk - 15);
	UNIT_CHECK_INT(proxy_parse(buf, PROXY_MAX_HEADER, &r, &error),
	    PROXY_MAX_HEADER);
	UNIT_CHECK_INT(r.local, 0);
	test_check_addr(&r.src, r.srclen, AF_INET, "192.0.2.1", 12345);
	test_prefixes(buf, PROXY_MAX_HEADER);
	UNIT_CHECK_INT(proxy_parse(buf, PROXY_MAX_HEADER - 1, &r, &error), 0);

	/* one byte more is refused as soon as the length is seen */
	blk++;
	buf[14] = (unsigned char)(blk >> 8);
	buf[15] = (unsigned char)(blk & 0xff);
	UNIT_CHECK_INT(proxy_parse(buf, 16, &r, &error), -1);
	UNIT_CHECK_STR(error, "v2 header too long");
}

static void
test_errors(void)
{
	struct proxy_result r;
	const char *error;

	UNIT_CHECK_INT(proxy_parse(B("EHLO x\r\n"), &r, &error), -1);
	UNIT_CHECK_STR(error, "not a PROXY header");
	UNIT_CHECK_INT(proxy_parse(B("PROXY TCP4 1.2.3.4 x"), &r, &error),
	    -1);
	UNIT_CHECK_STR(error, "bad v1 address");
	UNIT_CHECK_INT(proxy_parse(B(V2SIG "\x21\x12"), &r, &error), -1);
	UNIT_CHECK_STR(error, "v2 UDP not supported");
	UNIT_CHECK_INT(proxy_parse(B("PRO"), &r, &error), 0);
	UNIT_CHECK(error == NULL);
	UNIT_CHECK_INT(proxy_parse((const unsigned char *)"", 0, &r, &error),
	    0);
}

int
main(void)
{
	test_rows();
	test_v2_large();
	test_errors();
	UNIT_END();
}
