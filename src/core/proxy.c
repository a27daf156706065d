/*
 * proxy: PROXY protocol header parser, v1 (text) and v2 (binary)
 * (https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt).
 *
 * A listener with "proxy protocol" on feeds what it has read so far; a
 * complete header gives the real client and server addresses, and the
 * bytes after it belong to SMTP/POP3. The parser is strict: a peer that
 * is not our load balancer must not be able to pass for one with a
 * sloppy header, and a prefix is accepted (0) only while it can still
 * become a valid header, so junk is refused on the first bad byte.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "proxy.h"

/* Spec 2.2: "\r\n\r\n\0\r\nQUIT\n" */
static const unsigned char proxy_v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

#define PROXY_V2_FIXED		16
#define PROXY_V2_CMD_LOCAL	0x0
#define PROXY_V2_CMD_PROXY	0x1
#define PROXY_V2_UNSPEC		0x00
#define PROXY_V2_TCP4		0x11
#define PROXY_V2_UDP4		0x12
#define PROXY_V2_TCP6		0x21
#define PROXY_V2_UDP6		0x22
#define PROXY_V2_UNIX_STREAM	0x31
#define PROXY_V2_ADDR_INET	12	/* 2 x 4 address bytes + 2 x 2 port */
#define PROXY_V2_ADDR_INET6	36	/* 2 x 16 + 2 x 2 */
#define PROXY_V2_ADDR_UNIX	216	/* 2 x 108 */

#define PROXY_V1_IPV4_MAX	15	/* "255.255.255.255" */
#define PROXY_V1_IPV6_MAX	45	/* INET6_ADDRSTRLEN - 1 */

/* A cursor over the v1 line: helpers return 1 (consumed), 0 (ran out
 * of input while still valid), -1 (cannot be valid). */
struct proxy_v1 {
	const unsigned char	*buf;
	size_t			 len;
	size_t			 pos;
};

static int
proxy_v1_literal(struct proxy_v1 *p, const char *lit)
{
	size_t n = strlen(lit), avail = p->len - p->pos;
	size_t cmp = avail < n ? avail : n;

	if (memcmp(p->buf + p->pos, lit, cmp) != 0)
		return -1;
	if (avail < n)
		return 0;
	p->pos += n;
	return 1;
}

/* Could s[0..n) still grow into a dotted quad inet_pton accepts (no
 * leading zeros, each part <= 255, four parts)? */
static int
proxy_v1_ipv4_prefix(const unsigned char *s, size_t n)
{
	size_t i, digits = 0, dots = 0;
	unsigned int val = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (digits == 0 || ++dots > 3)
				return 0;
			digits = 0;
			val = 0;
		} else if (s[i] >= '0' && s[i] <= '9') {
			if (digits == 1 && val == 0)
				return 0;	/* leading zero */
			val = val * 10 + (s[i] - '0');
			if (++digits > 3 || val > 255)
				return 0;
		} else
			return 0;
	}
	return 1;
}

/* XXX: for IPv6 only the character set and length are checked before
 * the address is complete; inet_pton decides once the space arrives. */
static int
proxy_v1_ipv6_prefix(const unsigned char *s, size_t n)
{
	size_t i;

	if (n > PROXY_V1_IPV6_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') ||
		    (s[i] >= 'A' && s[i] <= 'F') ||
		    s[i] == ':' || s[i] == '.'))
			return 0;
	}
	return 1;
}

/* An address followed by one space. */
static int
proxy_v1_addr(struct proxy_v1 *p, int family, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	const unsigned char *s = p->buf + p->pos;
	size_t avail = p->len - p->pos, n;
	char tmp[PROXY_V1_IPV6_MAX + 1];
	int ok;

	for (n = 0; n < avail && s[n] != ' '; n++)
		;
	ok = family == AF_INET ? proxy_v1_ipv4_prefix(s, n) :
	    proxy_v1_ipv6_prefix(s, n);
	if (!ok)
		return -1;
	if (n == avail)
		return 0;
	if (n == 0 || n > PROXY_V1_IPV6_MAX)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, tmp, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		*sslen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, tmp, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		*sslen = sizeof(*sin6);
	}
	p->pos += n + 1;
	return 1;
}

/* A port in [0..65535], plain decimal without sign or leading zeros,
 * followed by the byte term. */
static int
proxy_v1_port(struct proxy_v1 *p, unsigned char term, uint16_t *port_r)
{
	const unsigned char *s = p->buf + p->pos;
	size_t avail = p->len - p->pos, n;
	unsigned long val = 0;

	for (n = 0; n < avail && s[n] >= '0' && s[n] <= '9'; n++) {
		if (n == 1 && s[0] == '0')
			return -1;
		val = val * 10 + (s[n] - '0');
		if (val > 65535)
			return -1;
	}
	if (n == avail)
		return 0;
	if (n == 0 || s[n] != term)
		return -1;
	*port_r = htons((uint16_t)val);
	p->pos += n + 1;
	return 1;
}

static void
proxy_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = port;
	else
		((struct sockaddr_in6 *)ss)->sin6_port = port;
}

/* Spec 2.1: "PROXY" SP proto SP src SP dst SP sport SP dport CRLF, or
 * "PROXY UNKNOWN" followed by anything up to CRLF. */
static int
proxy_parse_v1_line(struct proxy_v1 *p, struct proxy_result *r,
    const char **error_r)
{
	uint16_t sport, dport;
	int family, ret;

	*error_r = "not a PROXY header";
	if ((ret = proxy_v1_literal(p, "PROXY ")) <= 0)
		return ret;
	*error_r = "bad v1 protocol";
	if ((ret = proxy_v1_literal(p, "UNKNOWN")) < 0) {
		if ((ret = proxy_v1_literal(p, "TCP")) <= 0)
			return ret;
		if ((ret = proxy_v1_literal(p, "4 ")) == 1)
			family = AF_INET;
		else if (ret == 0)
			return 0;
		else if ((ret = proxy_v1_literal(p, "6 ")) == 1)
			family = AF_INET6;
		else
			return ret;
	} else if (ret == 0)
		return 0;
	else {
		/* Anything may follow a space, up to CRLF; a CR must be
		 * the CRLF's. */
		for (; p->pos < p->len; p->pos++) {
			unsigned char c = p->buf[p->pos];

			if (c == '\n')
				return -1;
			if (c == '\r')
				break;
			if (p->pos == 13 && c != ' ')
				return -1;
		}
		if ((ret = proxy_v1_literal(p, "\r\n")) <= 0)
			return ret;
		r->local = 1;
		return 1;
	}

	*error_r = "bad v1 address";
	if ((ret = proxy_v1_addr(p, family, &r->src, &r->srclen)) <= 0 ||
	    (ret = proxy_v1_addr(p, family, &r->dst, &r->dstlen)) <= 0)
		return ret;
	*error_r = "bad v1 port";
	if ((ret = proxy_v1_port(p, ' ', &sport)) <= 0 ||
	    (ret = proxy_v1_port(p, '\r', &dport)) <= 0)
		return ret;
	/* proxy_v1_port consumed the CR */
	p->pos--;
	*error_r = "bad v1 line end";
	if ((ret = proxy_v1_literal(p, "\r\n")) <= 0)
		return ret;
	proxy_set_port(&r->src, sport);
	proxy_set_port(&r->dst, dport);
	r->local = 0;
	return 1;
}

static int
proxy_parse_v1(const unsigned char *buf, size_t len, struct proxy_result *r,
    const char **error_r)
{
	struct proxy_v1 p = { buf, len, 0 };
	int ret;

	/* Never look past the longest legal line. */
	if (p.len > PROXY_V1_MAX)
		p.len = PROXY_V1_MAX;
	ret = proxy_parse_v1_line(&p, r, error_r);
	if (ret < 0)
		return -1;
	if (ret == 0) {
		if (len >= PROXY_V1_MAX) {
			*error_r = "v1 header too long";
			return -1;
		}
		return 0;
	}
	r->version = 1;
	return (int)p.pos;
}

/* TLVs (spec 2.2.7): type, 16-bit length, value; they must fill the
 * rest of the block exactly. Their content is not used. */
static int
proxy_v2_tlvs_valid(const unsigned char *p, size_t n)
{
	size_t l;

	while (n > 0) {
		if (n < 3)
			return 0;
		l = ((size_t)p[1] << 8) | p[2];
		if (n - 3 < l)
			return 0;
		p += 3 + l;
		n -= 3 + l;
	}
	return 1;
}

static int
proxy_parse_v2(const unsigned char *buf, size_t len, struct proxy_result *r,
    const char **error_r)
{
	size_t cmp = len < sizeof(proxy_v2_sig) ? len : sizeof(proxy_v2_sig);
	size_t addrlen = 0, blocklen, total;
	unsigned int cmd = 0, fam = 0;

	if (memcmp(buf, proxy_v2_sig, cmp) != 0) {
		*error_r = "not a PROXY header";
		return -1;
	}
	if (len > 12) {
		if ((buf[12] >> 4) != 2) {
			*error_r = "bad v2 version";
			return -1;
		}
		cmd = buf[12] & 0x0f;
		if (cmd != PROXY_V2_CMD_LOCAL && cmd != PROXY_V2_CMD_PROXY) {
			*error_r = "bad v2 command";
			return -1;
		}
	}
	if (len > 13) {
		fam = buf[13];
		/* LOCAL: the family is ignored (spec 2.2). */
		if (cmd == PROXY_V2_CMD_PROXY) {
			switch (fam) {
			case PROXY_V2_UNSPEC:
				addrlen = 0;
				break;
			case PROXY_V2_TCP4:
				addrlen = PROXY_V2_ADDR_INET;
				break;
			case PROXY_V2_TCP6:
				addrlen = PROXY_V2_ADDR_INET6;
				break;
			case PROXY_V2_UNIX_STREAM:
				addrlen = PROXY_V2_ADDR_UNIX;
				break;
			case PROXY_V2_UDP4:
			case PROXY_V2_UDP6:
				*error_r = "v2 UDP not supported";
				return -1;
			default:
				*error_r = "bad v2 family";
				return -1;
			}
		}
	}
	if (len < PROXY_V2_FIXED)
		return 0;

	blocklen = ((size_t)buf[14] << 8) | buf[15];
	total = PROXY_V2_FIXED + blocklen;
	if (total > PROXY_MAX_HEADER) {
		*error_r = "v2 header too long";
		return -1;
	}
	if (blocklen < addrlen) {
		*error_r = "v2 length too short for addresses";
		return -1;
	}
	if (len < total)
		return 0;

	r->version = 2;
	if (cmd == PROXY_V2_CMD_LOCAL || fam == PROXY_V2_UNSPEC) {
		/* Spec 2.2: the block is skipped, TLVs included. */
		r->local = 1;
		return (int)total;
	}
	if (!proxy_v2_tlvs_valid(buf + PROXY_V2_FIXED + addrlen,
	    blocklen - addrlen)) {
		*error_r = "bad v2 TLV";
		return -1;
	}
	if (fam == PROXY_V2_UNIX_STREAM) {
		r->local = 1;
		return (int)total;
	}

	const unsigned char *a = buf + PROXY_V2_FIXED;

	if (fam == PROXY_V2_TCP4) {
		struct sockaddr_in *src = (struct sockaddr_in *)&r->src;
		struct sockaddr_in *dst = (struct sockaddr_in *)&r->dst;

		src->sin_family = dst->sin_family = AF_INET;
		memcpy(&src->sin_addr, a, 4);
		memcpy(&dst->sin_addr, a + 4, 4);
		memcpy(&src->sin_port, a + 8, 2);
		memcpy(&dst->sin_port, a + 10, 2);
		r->srclen = r->dstlen = sizeof(struct sockaddr_in);
	} else {
		struct sockaddr_in6 *src = (struct sockaddr_in6 *)&r->src;
		struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&r->dst;

		src->sin6_family = dst->sin6_family = AF_INET6;
		memcpy(&src->sin6_addr, a, 16);
		memcpy(&dst->sin6_addr, a + 16, 16);
		memcpy(&src->sin6_port, a + 32, 2);
		memcpy(&dst->sin6_port, a + 34, 2);
		r->srclen = r->dstlen = sizeof(struct sockaddr_in6);
	}
	r->local = 0;
	return (int)total;
}

int
proxy_parse(const unsigned char *buf, size_t len, struct proxy_result *r,
    const char **error_r)
{
	int ret;

	memset(r, 0, sizeof(*r));
	*error_r = NULL;
	if (len == 0)
		return 0;
	if (buf[0] == 'P')
		ret = proxy_parse_v1(buf, len, r, error_r);
	else if (buf[0] == proxy_v2_sig[0])
		ret = proxy_parse_v2(buf, len, r, error_r);
	else {
		*error_r = "not a PROXY header";
		ret = -1;
	}
	if (ret <= 0) {
		const char *e = *error_r;

		memset(r, 0, sizeof(*r));
		*error_r = ret < 0 ? e : NULL;
	}
	return ret;
}
