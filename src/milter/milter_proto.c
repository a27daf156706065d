/*
 * milter_proto: the milter protocol's packets (see milter_proto.h).
 * Written from Sendmail's libmilter documentation and Postfix's
 * MILTER_README; nothing is linked.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../core/xmalloc.h"
#include "milter_proto.h"

int
milter_frame_len(const uint8_t hdr[4], uint32_t *len_r)
{
	uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];

	if (len == 0 || len > MILTER_PACKET_MAX)
		return -1;
	*len_r = len;
	return 0;
}

/* ---- parsing ------------------------------------------------------ */

struct milter_cur {
	const uint8_t	*p;
	size_t		 left;
};

static int
milter_get_u32(struct milter_cur *c, uint32_t *v_r)
{
	if (c->left < 4)
		return -1;
	*v_r = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 |
	    (uint32_t)c->p[2] << 8 | c->p[3];
	c->p += 4;
	c->left -= 4;
	return 0;
}

/* A NUL-terminated string of at most max octets (NUL excluded). */
static int
milter_get_str(struct milter_cur *c, size_t max, const char **s_r)
{
	const uint8_t *nul = memchr(c->p, '\0', c->left);
	size_t len;

	if (nul == NULL)
		return -1;
	len = (size_t)(nul - c->p);
	if (len > max)
		return -1;
	*s_r = (const char *)c->p;
	c->p += len + 1;
	c->left -= len + 1;
	return 0;
}

static int
milter_name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s > '~' || *s == ':')
			return 0;
	return 1;
}

/* Line breaks only as folding: LF or CRLF followed by SP or HT, and
 * not as the last octets. No other control octet but HT. */
static int
milter_value_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0';
	    p++) {
		if (*p == '\r') {
			if (p[1] != '\n')
				return 0;
			continue;
		}
		if (*p == '\n') {
			if (p[1] != ' ' && p[1] != '\t')
				return 0;
			continue;
		}
		if ((*p < ' ' && *p != '\t') || *p == 0x7f)
			return 0;
	}
	return 1;
}

/* An address as a filter gives it: optional <>, printable, no space,
 * no bracket inside. Points *a_r into a stripped copy kept in r->line
 * (only one address per reply). */
static int
milter_addr(struct milter_reply *r, const char *s, const char **a_r)
{
	size_t len = strlen(s);

	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	if (len >= 2 && s[0] == '<' && s[len - 1] == '>')
		s++, len -= 2;
	if (len > MILTER_ADDR_MAX || len >= sizeof(r->line))
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch <= ' ' || ch == 0x7f || ch == '<' || ch == '>')
			return -1;
	}
	memcpy(r->line, s, len);
	r->line[len] = '\0';
	*a_r = r->line;
	return 0;
}

static int
milter_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * SMFIR_REPLYCODE: "CODE[ -]text" lines separated by CRLF, the same
 * 4xx/5xx code on each. One line out: the code, then the text of every
 * line joined by a space (bounded), printable ASCII only.
 */
static int
milter_replycode(struct milter_reply *r, const char *s)
{
	size_t out = 0;
	const char *p = s;

	if (!(s[0] == '4' || s[0] == '5') || !milter_digit(s[1]) ||
	    !milter_digit(s[2]))
		return -1;
	memcpy(r->code, s, 3);
	r->code[3] = '\0';
	memcpy(r->line, s, 3);
	out = 3;
	for (;;) {
		const char *eol = strstr(p, "\r\n");
		size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);

		if (len < 3 || memcmp(p, r->code, 3) != 0)
			return -1;
		if (len > 3 && p[3] != ' ' && p[3] != '-')
			return -1;
		/* the last line has ' ' (or nothing), the others '-' */
		if (len > 3 && (p[3] == '-') != (eol != NULL))
			return -1;
		if (len == 3 && eol != NULL)
			return -1;
		for (size_t i = 4; i < len; i++)
			if (p[i] < ' ' || p[i] > '~')
				return -1;
		if (len > 4) {
			if (out + 1 + (len - 4) >= sizeof(r->line))
				return -1;
			r->line[out++] = ' ';
			memcpy(r->line + out, p + 4, len - 4);
			out += len - 4;
		}
		if (eol == NULL)
			break;
		p = eol + 2;
	}
	r->line[out] = '\0';
	r->text = r->line;
	return 0;
}

int
milter_reply_parse(const uint8_t *buf, size_t len, struct milter_reply *r,
    const char **error_r)
{
	struct milter_cur c;
	const char *s = NULL, *a = NULL;

	memset(r, 0, sizeof(*r));
	if (len == 0) {
		*error_r = "empty packet";
		return -1;
	}
	r->cmd = (char)buf[0];
	c.p = buf + 1;
	c.left = len - 1;
	switch (r->cmd) {
	case MILTER_R_ACCEPT:
	case MILTER_R_CONTINUE:
	case MILTER_R_DISCARD:
	case MILTER_R_REJECT:
	case MILTER_R_TEMPFAIL:
	case MILTER_R_PROGRESS:
	case MILTER_R_SKIP:
	case MILTER_R_SHUTDOWN:
	case MILTER_R_CONN_FAIL:
		if (c.left != 0)
			goto bad_len;
		return 0;
	case MILTER_R_OPTNEG:
		if (milter_get_u32(&c, &r->version) < 0 ||
		    milter_get_u32(&c, &r->actions) < 0 ||
		    milter_get_u32(&c, &r->protocol) < 0)
			goto bad_len;
		/* What follows (the filter's macro lists) is not used: all
		 * the macros are sent at every stage they belong to. */
		if (r->version < 2 || r->version > MILTER_VERSION) {
			*error_r = "unsupported protocol version";
			return -1;
		}
		return 0;
	case MILTER_R_REPLYCODE:
		if (milter_get_str(&c, 8 * MILTER_TEXT_MAX, &s) < 0 ||
		    c.left != 0)
			goto bad_len;
		if (milter_replycode(r, s) < 0) {
			*error_r = "reply code is not a 4xx or 5xx SMTP reply";
			return -1;
		}
		return 0;
	case MILTER_R_QUARANTINE:
		if (milter_get_str(&c, MILTER_TEXT_MAX, &s) < 0 || c.left != 0)
			goto bad_len;
		for (const char *p = s; *p != '\0'; p++)
			if ((unsigned char)*p < ' ' || *p == 0x7f) {
				*error_r = "control character in quarantine "
				    "reason";
				return -1;
			}
		r->text = s;
		return 0;
	case MILTER_R_INSHEADER:
	case MILTER_R_CHGHEADER:
		if (milter_get_u32(&c, &r->index) < 0)
			goto bad_len;
		/* FALLTHROUGH */
	case MILTER_R_ADDHEADER:
		if (milter_get_str(&c, MILTER_NAME_MAX, &r->name) < 0 ||
		    milter_get_str(&c, MILTER_VALUE_MAX, &r->value) < 0 ||
		    c.left != 0)
			goto bad_len;
		if (!milter_name_ok(r->name)) {
			*error_r = "bad header name";
			return -1;
		}
		if (!milter_value_ok(r->value)) {
			*error_r = "bad header value";
			return -1;
		}
		return 0;
	case MILTER_R_ADDRCPT:
	case MILTER_R_DELRCPT:
	case MILTER_R_ADDRCPT_PAR:
	case MILTER_R_CHGFROM:
		if (milter_get_str(&c, MILTER_ADDR_MAX + 8, &s) < 0)
			goto bad_len;
		if ((r->cmd == MILTER_R_ADDRCPT_PAR ||
		    r->cmd == MILTER_R_CHGFROM) && c.left > 0) {
			if (milter_get_str(&c, MILTER_TEXT_MAX, &r->value) < 0)
				goto bad_len;
			for (const char *p = r->value; *p != '\0'; p++)
				if (*p < ' ' || *p > '~') {
					*error_r = "bad ESMTP arguments";
					return -1;
				}
		}
		if (c.left != 0)
			goto bad_len;
		if (milter_addr(r, s, &a) < 0 || (a[0] == '\0' &&
		    r->cmd != MILTER_R_CHGFROM)) {
			*error_r = "bad address";
			return -1;
		}
		r->name = a;
		if (r->cmd == MILTER_R_ADDRCPT_PAR)
			r->cmd = MILTER_R_ADDRCPT;
		return 0;
	case MILTER_R_REPLBODY:
		r->data = c.p;
		r->len = c.left;
		return 0;
	default:
		*error_r = "unknown reply";
		return -1;
	}
bad_len:
	*error_r = "malformed packet";
	return -1;
}

/* ---- packing ------------------------------------------------------ */

static void
milter_put_u32(struct str *out, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v };

	str_append_n(out, b, 4);
}

void
milter_pack(struct str *out, char cmd, const void *data, size_t len)
{
	milter_put_u32(out, (uint32_t)len + 1);
	str_append_c(out, cmd);
	if (len > 0)
		str_append_n(out, data, len);
}

/* Start a packet; its length is set by milter_end. */
static size_t
milter_begin(struct str *out, char cmd)
{
	size_t at = out->len;

	milter_put_u32(out, 0);
	str_append_c(out, cmd);
	return at;
}

static void
milter_end(struct str *out, size_t at)
{
	uint32_t len = (uint32_t)(out->len - at - 4);

	out->s[at] = (char)(len >> 24);
	out->s[at + 1] = (char)(len >> 16);
	out->s[at + 2] = (char)(len >> 8);
	out->s[at + 3] = (char)len;
}

static void
milter_put_str(struct str *out, const char *s)
{
	str_append_n(out, s, strlen(s) + 1);
}

void
milter_pack_optneg(struct str *out, uint32_t version, uint32_t actions,
    uint32_t protocol)
{
	size_t at = milter_begin(out, MILTER_C_OPTNEG);

	milter_put_u32(out, version);
	milter_put_u32(out, actions);
	milter_put_u32(out, protocol);
	milter_end(out, at);
}

void
milter_pack_macros(struct str *out, char stage, const char *const *names,
    const char *const *values, size_t n)
{
	size_t at = milter_begin(out, MILTER_C_MACRO);

	str_append_c(out, stage);
	for (size_t i = 0; i < n; i++) {
		if (values[i] == NULL)
			continue;
		milter_put_str(out, names[i]);
		milter_put_str(out, values[i]);
	}
	milter_end(out, at);
}

void
milter_pack_connect(struct str *out, const char *hostname, char family,
    uint16_t port, const char *address)
{
	size_t at = milter_begin(out, MILTER_C_CONNECT);

	milter_put_str(out, hostname);
	str_append_c(out, family);
	if (family != 'U') {
		uint8_t b[2] = { (uint8_t)(port >> 8), (uint8_t)port };

		str_append_n(out, b, 2);
		milter_put_str(out, address);
	}
	milter_end(out, at);
}

void
milter_pack_strings(struct str *out, char cmd, const char *const *s,
    size_t n)
{
	size_t at = milter_begin(out, cmd);

	for (size_t i = 0; i < n; i++)
		milter_put_str(out, s[i]);
	milter_end(out, at);
}

/* ---- the socket specs --------------------------------------------- */

int
milter_spec_parse(const char *spec, int *family_r, char **host_r,
    uint16_t *port_r, const char **error_r)
{
	const char *rest, *colon, *host_end;
	char *end;
	unsigned long port;

	*host_r = NULL;
	*port_r = 0;
	if (strncmp(spec, "unix:", 5) == 0) {
		rest = spec + 5;
		if (rest[0] != '/' || strlen(rest) >= 108) {
			*error_r = "unix: needs an absolute path of at most "
			    "107 octets";
			return -1;
		}
		*family_r = AF_UNIX;
		*host_r = xstrdup(rest);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) == 0) {
		*family_r = AF_INET;
		rest = spec + 5;
	} else if (strncmp(spec, "inet6:", 6) == 0) {
		*family_r = AF_INET6;
		rest = spec + 6;
	} else {
		*error_r = "expected inet:HOST:PORT, inet6:[ADDR]:PORT or "
		    "unix:/PATH";
		return -1;
	}
	if (rest[0] == '[') {
		host_end = strchr(rest, ']');
		if (host_end == NULL || host_end[1] != ':') {
			*error_r = "bad [ADDR]:PORT";
			return -1;
		}
		colon = host_end + 1;
		rest++;
	} else {
		colon = strrchr(rest, ':');
		host_end = colon;
	}
	if (colon == NULL || host_end == rest) {
		*error_r = "missing HOST or PORT";
		return -1;
	}
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || port == 0 ||
	    port > 65535) {
		*error_r = "bad port";
		return -1;
	}
	*host_r = xstrndup(rest, (size_t)(host_end - rest));
	{
		unsigned char buf[16];

		if (inet_pton(*family_r, *host_r, buf) != 1) {
			free(*host_r);
			*host_r = NULL;
			*error_r = *family_r == AF_INET ? "inet: needs an IPv4 "
			    "address (no host names)" : "inet6: needs an IPv6 "
			    "address";
			return -1;
		}
	}
	*port_r = (uint16_t)port;
	return 0;
}

int
milter_specs_split(const char *list, char ***specs_r, const char **error_r)
{
	char **specs = NULL;
	int n = 0;

	*specs_r = NULL;
	for (const char *p = list; *p != '\0';) {
		size_t len = strcspn(p, " \t,");

		if (len == 0) {
			p++;
			continue;
		}
		if (n == MILTER_LIST_MAX) {
			milter_specs_free(specs, n);
			*error_r = "more than 16 milters";
			return -1;
		}
		specs = xreallocarray(specs, (size_t)n + 1, sizeof(*specs));
		specs[n++] = xstrndup(p, len);
		p += len;
	}
	*specs_r = specs;
	return n;
}

void
milter_specs_free(char **specs, int n)
{
	for (int i = 0; i < n; i++)
		free(specs[i]);
	free(specs);
}

int
milter_config_check(const char *text, struct str *why)
{
	char **specs, *host;
	const char *error;
	uint16_t port;
	int n, family, ret = 0;

	if ((n = milter_specs_split(text, &specs, &error)) < 0) {
		str_append(why, error);
		return -1;
	}
	for (int i = 0; i < n && ret == 0; i++) {
		if (milter_spec_parse(specs[i], &family, &host, &port,
		    &error) < 0) {
			str_printf(why, "%s: %s", specs[i], error);
			ret = -1;
		}
		free(host);
	}
	milter_specs_free(specs, n);
	return ret;
}
