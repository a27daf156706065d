/*
 * smtp_parse: parsers of SMTP client input (see smtp_parse.h). No I/O
 * and no state: the session calls them on a line it has already read
 * with a length cap, and maps the error kind to a reply.
 *
 * The grammar is RFC 5321 4.1.2, extended by RFC 6531 3.3 for SMTPUTF8.
 * Anything outside it is refused rather than repaired: what we accept
 * here is what the queue and the delivery side will have to handle.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/xmalloc.h"
#include "smtp_parse.h"

/* RFC 5321 4.5.3.1 */
#define SMTP_LOCAL_MAX		64
#define SMTP_DOMAIN_MAX		255
#define SMTP_LABEL_MAX		63
#define SMTP_MAILBOX_MAX	254	/* 256-octet path minus "<>" */
#define SMTP_SIZE_DIGITS_MAX	20	/* UINT64_MAX has 20 digits */

static const char *const smtp_cmd_names[SMTP_CMD_COUNT] = {
	[SMTP_CMD_HELO] = "HELO",
	[SMTP_CMD_EHLO] = "EHLO",
	[SMTP_CMD_MAIL] = "MAIL",
	[SMTP_CMD_RCPT] = "RCPT",
	[SMTP_CMD_DATA] = "DATA",
	[SMTP_CMD_RSET] = "RSET",
	[SMTP_CMD_NOOP] = "NOOP",
	[SMTP_CMD_QUIT] = "QUIT",
	[SMTP_CMD_VRFY] = "VRFY",
	[SMTP_CMD_EXPN] = "EXPN",
	[SMTP_CMD_HELP] = "HELP",
	[SMTP_CMD_STARTTLS] = "STARTTLS",
	[SMTP_CMD_AUTH] = "AUTH",
	[SMTP_CMD_BDAT] = "BDAT",
	[SMTP_CMD_UNKNOWN] = "?",
};

const char *
smtp_cmd_name(enum smtp_cmd cmd)
{
	if ((unsigned int)cmd >= SMTP_CMD_COUNT)
		return "?";
	return smtp_cmd_names[cmd];
}

enum smtp_parse_error
smtp_parse_command(const char *line, size_t len, enum smtp_cmd *cmd_r,
    const char **args_r)
{
	size_t i, verblen;
	int c;

	*cmd_r = SMTP_CMD_UNKNOWN;
	*args_r = "";
	/* A bare CR or LF inside a line is how SMTP smuggling hides a
	 * second "end of data" from one hop but not the next. */
	for (i = 0; i < len; i++) {
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			return SMTP_PARSE_NUL;
	}
	for (verblen = 0; verblen < len && line[verblen] != ' '; verblen++)
		;
	for (c = 0; c < SMTP_CMD_UNKNOWN; c++) {
		if (strlen(smtp_cmd_names[c]) == verblen &&
		    strncasecmp(line, smtp_cmd_names[c], verblen) == 0) {
			*cmd_r = (enum smtp_cmd)c;
			break;
		}
	}
	for (i = verblen; i < len && line[i] == ' '; i++)
		;
	if (i < len)
		*args_r = line + i;
	return SMTP_PARSE_OK;
}

/* --- UTF-8 and the character classes of RFC 5321 4.1.2 ------------- */

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629 4) of a non-ASCII
 * character at s (at most n bytes), or 0: overlongs, surrogates and
 * code points past U+10FFFF are refused.
 */
static size_t
smtp_utf8_char(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t need, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < need || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < need; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	return need;
}

static int
smtp_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* RFC 5322 3.2.3 atext */
static int
smtp_is_atext(unsigned char c)
{
	return smtp_is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~",
	    c) != NULL);
}

/* Dot-string: Atom *("." Atom). */
static int
smtp_dot_string_valid(const unsigned char *s, size_t n, int utf8)
{
	size_t i = 0, k;
	int prev_dot = 1;

	while (i < n) {
		if (s[i] == '.') {
			if (prev_dot)
				return 0;
			prev_dot = 1;
			i++;
		} else if (s[i] < 0x80) {
			if (!smtp_is_atext(s[i]))
				return 0;
			prev_dot = 0;
			i++;
		} else {
			if (!utf8 || (k = smtp_utf8_char(s + i, n - i)) == 0)
				return 0;
			prev_dot = 0;
			i += k;
		}
	}
	return n > 0 && !prev_dot;
}

/* Quoted-string: DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE. */
static int
smtp_quoted_string_valid(const unsigned char *s, size_t n, int utf8)
{
	size_t i, k;

	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return 0;
	for (i = 1; i < n - 1;) {
		if (s[i] == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 */
			if (i + 1 >= n - 1 || s[i + 1] < 32 || s[i + 1] > 126)
				return 0;
			i += 2;
		} else if (s[i] == '"') {
			return 0;
		} else if (s[i] < 0x80) {
			if (s[i] < 32 || s[i] > 126)
				return 0;
			i++;
		} else {
			if (!utf8 || (k = smtp_utf8_char(s + i, n - 1 - i)) == 0)
				return 0;
			i += k;
		}
	}
	return 1;
}

/*
 * sub-domain = Let-dig [Ldh-str], or a U-label under SMTPUTF8.
 * XXX: a U-label's real limit is its A-label's 63 octets, which needs
 * Punycode; limiting it to 63 characters is necessary, not sufficient.
 */
static int
smtp_label_valid(const unsigned char *s, size_t n, int utf8)
{
	size_t i, k, chars = 0;

	if (n == 0 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; chars++) {
		if (s[i] < 0x80) {
			if (!smtp_is_alnum(s[i]) && s[i] != '-')
				return 0;
			i++;
		} else {
			if (!utf8 || (k = smtp_utf8_char(s + i, n - i)) == 0)
				return 0;
			i += k;
		}
	}
	if (chars > SMTP_LABEL_MAX)
		return 0;
	return 1;
}

static int
smtp_domain_valid(const unsigned char *s, size_t n, int utf8)
{
	size_t start = 0, i;

	if (n == 0 || n > SMTP_DOMAIN_MAX)
		return 0;
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!smtp_label_valid(s + start, i - start, utf8))
				return 0;
			start = i + 1;
		}
	}
	return 1;
}

/* address-literal: "[" IPv4 / "IPv6:" IPv6 "]". General-address-literal
 * has no registered tag besides IPv6 and is refused. */
static int
smtp_address_literal_valid(const unsigned char *s, size_t n)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	struct in6_addr a6;
	struct in_addr a4;
	size_t inner;

	if (n < 2 || s[0] != '[' || s[n - 1] != ']')
		return 0;
	s++;
	inner = n - 2;
	if (inner > 5 && strncasecmp((const char *)s, "IPv6:", 5) == 0) {
		if (inner - 5 >= sizeof(tmp))
			return 0;
		memcpy(tmp, s + 5, inner - 5);
		tmp[inner - 5] = '\0';
		return inet_pton(AF_INET6, tmp, &a6) == 1;
	}
	if (inner >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, inner);
	tmp[inner] = '\0';
	return inet_pton(AF_INET, tmp, &a4) == 1;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ), n octets. */
static int
smtp_mailbox_valid(const unsigned char *s, size_t n, int utf8)
{
	size_t at;

	if (n == 0 || n > SMTP_MAILBOX_MAX)
		return 0;
	/* The local part cannot contain an unquoted '@' and the domain
	 * never contains one, so the last '@' separates them. */
	for (at = n; at > 0 && s[at - 1] != '@'; at--)
		;
	if (at == 0)
		return 0;
	at--;
	if (at == 0 || at > SMTP_LOCAL_MAX)
		return 0;
	if (s[0] == '"') {
		if (!smtp_quoted_string_valid(s, at, utf8))
			return 0;
	} else if (!smtp_dot_string_valid(s, at, utf8))
		return 0;
	s += at + 1;
	n -= at + 1;
	if (n > 0 && s[0] == '[')
		return smtp_address_literal_valid(s, n);
	return smtp_domain_valid(s, n, utf8);
}

int
smtp_address_valid(const char *addr, int smtputf8)
{
	return smtp_mailbox_valid((const unsigned char *)addr, strlen(addr),
	    smtputf8);
}

int
smtp_address_split(const char *addr, char **local_r, char **domain_r)
{
	const char *at = strrchr(addr, '@');
	char *p;

	if (at == NULL)
		return -1;
	*local_r = xstrndup(addr, at - addr);
	*domain_r = xstrdup(at + 1);
	for (p = *domain_r; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p += 'a' - 'A';
	}
	return 0;
}

/* --- paths and parameters of MAIL and RCPT ------------------------- */

/*
 * Find the end of "<...>" starting at p: the first '>' outside a
 * quoted string. Returns the position after '>' or NULL.
 */
static const char *
smtp_path_end(const char *p)
{
	int quoted = 0;

	if (*p != '<')
		return NULL;
	for (p++; *p != '\0'; p++) {
		if (quoted && *p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '>')
			return p + 1;
	}
	return NULL;
}

/*
 * Drop a source route (A-d-l ":", RFC 5321 4.1.2 and C.) from path
 * content s[0..*n), after checking its domains.
 */
static int
smtp_path_strip_route(const char **s, size_t *n, int utf8)
{
	const char *p = *s, *end = *s + *n, *d;

	if (*n == 0 || *p != '@')
		return 1;
	for (;;) {
		/* At-domain = "@" Domain */
		if (p == end || *p != '@')
			return 0;
		for (d = ++p; p < end && *p != ',' && *p != ':'; p++)
			;
		if (p == end || !smtp_domain_valid((const unsigned char *)d,
		    p - d, utf8))
			return 0;
		if (*p++ == ':')
			break;
	}
	*n = end - p;
	*s = p;
	return 1;
}

/*
 * After "FROM:" / "TO:": one optional space, the path in angle brackets,
 * then end or a space. Sets the content without brackets and where the
 * parameters start.
 */
static enum smtp_parse_error
smtp_parse_path(const char *args, const char *prefix, const char **path_r,
    size_t *pathlen_r, const char **params_r)
{
	size_t plen = strlen(prefix);
	const char *p, *end;

	if (strncasecmp(args, prefix, plen) != 0)
		return SMTP_PARSE_SYNTAX;
	p = args + plen;
	if (*p == ' ')
		p++;
	if ((end = smtp_path_end(p)) == NULL)
		return SMTP_PARSE_SYNTAX;
	if (*end != '\0' && *end != ' ')
		return SMTP_PARSE_SYNTAX;
	*path_r = p + 1;
	*pathlen_r = end - p - 2;
	*params_r = end;
	return SMTP_PARSE_OK;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int
smtp_keyword_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || !smtp_is_alnum((unsigned char)s[0]))
		return 0;
	for (i = 1; i < n; i++) {
		if (!smtp_is_alnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	}
	return 1;
}

/*
 * xtext (RFC 3461 4): "!".."~" except "+" and "=", or "+" and two
 * upper-case hex digits. Appends the decoded text to out if not NULL.
 * Under SMTPUTF8, UTF-8 characters are allowed as they are
 * (RFC 6533 3, utf-8-addr-xtext). Control characters, decoded or not,
 * are refused: the value ends up in headers and logs.
 */
static int
smtp_xtext_decode(const char *s, size_t n, int utf8, struct str *out)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *u = (const unsigned char *)s;
	const char *h1, *h2;
	size_t i, k;
	unsigned char c;

	for (i = 0; i < n;) {
		if (u[i] == '+') {
			if (n - i < 3 || u[i + 1] == '\0' || u[i + 2] == '\0' ||
			    (h1 = strchr(hex, u[i + 1])) == NULL ||
			    (h2 = strchr(hex, u[i + 2])) == NULL)
				return -1;
			c = (unsigned char)(((h1 - hex) << 4) | (h2 - hex));
			if (c < 0x20 || c == 0x7f)
				return -1;
			i += 3;
			k = 1;
		} else if (u[i] >= '!' && u[i] <= '~' && u[i] != '=') {
			c = u[i];
			i++;
			k = 1;
		} else if (u[i] >= 0x80 && utf8 &&
		    (k = smtp_utf8_char(u + i, n - i)) != 0) {
			if (out != NULL)
				str_append_n(out, u + i, k);
			i += k;
			continue;
		} else
			return -1;
		if (out != NULL)
			str_append_n(out, &c, k);
	}
	return 0;
}

enum smtp_mail_param {
	SMTP_MAIL_SIZE = 1 << 0,
	SMTP_MAIL_BODY = 1 << 1,
	SMTP_MAIL_SMTPUTF8 = 1 << 2,
	SMTP_MAIL_AUTH = 1 << 3,
	SMTP_RCPT_NOTIFY = 1 << 4,
	SMTP_RCPT_ORCPT = 1 << 5,
};

/* Calls one parameter at a time: keyword, value (NULL if no "="). */
struct smtp_param {
	const char	*key;
	size_t		 keylen;
	const char	*value;
	size_t		 valuelen;
};

/*
 * Next parameter from *p: SP-separated esmtp-param (RFC 5321 4.1.2).
 * Returns 1 with the parameter, 0 at the end, -1 on bad syntax. Runs of
 * spaces and trailing spaces are tolerated.
 */
static int
smtp_param_next(const char **p, struct smtp_param *param)
{
	const char *s = *p, *eq;
	size_t n;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	for (n = 0; s[n] != '\0' && s[n] != ' '; n++)
		;
	*p = s + n;
	eq = memchr(s, '=', n);
	param->key = s;
	param->keylen = eq != NULL ? (size_t)(eq - s) : n;
	param->value = eq != NULL ? eq + 1 : NULL;
	param->valuelen = eq != NULL ? n - param->keylen - 1 : 0;
	if (!smtp_keyword_valid(param->key, param->keylen))
		return -1;
	return 1;
}

static int
smtp_param_is(const struct smtp_param *param, const char *key)
{
	return strlen(key) == param->keylen &&
	    strncasecmp(param->key, key, param->keylen) == 0;
}

static int
smtp_value_is(const struct smtp_param *param, const char *value)
{
	return param->value != NULL && strlen(value) == param->valuelen &&
	    strncasecmp(param->value, value, param->valuelen) == 0;
}

/* RFC 1870: 1*20DIGIT, which must fit in 64 bits. */
static int
smtp_param_size(const struct smtp_param *param, uint64_t *size_r)
{
	uint64_t v = 0;
	size_t i;

	if (param->value == NULL || param->valuelen == 0 ||
	    param->valuelen > SMTP_SIZE_DIGITS_MAX)
		return -1;
	for (i = 0; i < param->valuelen; i++) {
		unsigned int d = (unsigned char)param->value[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*size_r = v;
	return 0;
}

/* The path after prefix ("FROM:", "TO:"), then each parameter through
 * one(param, &seen, context): OK, or the first error. */
static enum smtp_parse_error
smtp_parse_path_params(const char *args, const char *prefix,
    const char **path_r, size_t *pathlen_r,
    enum smtp_parse_error (*one)(const struct smtp_param *, unsigned int *,
    void *), void *context)
{
	struct smtp_param param;
	enum smtp_parse_error err;
	const char *params;
	unsigned int seen = 0;
	int ret;

	err = smtp_parse_path(args, prefix, path_r, pathlen_r, &params);
	if (err != SMTP_PARSE_OK)
		return err;
	while ((ret = smtp_param_next(&params, &param)) > 0) {
		if ((err = one(&param, &seen, context)) != SMTP_PARSE_OK)
			return err;
	}
	return ret < 0 ? SMTP_PARSE_BAD_PARAM : SMTP_PARSE_OK;
}

static enum smtp_parse_error
smtp_mail_param(const struct smtp_param *param, unsigned int *seen,
    void *context)
{
	struct smtp_mail_args *r = context;
	unsigned int bit;

	if (smtp_param_is(param, "SIZE"))
		bit = SMTP_MAIL_SIZE;
	else if (smtp_param_is(param, "BODY"))
		bit = SMTP_MAIL_BODY;
	else if (smtp_param_is(param, "SMTPUTF8"))
		bit = SMTP_MAIL_SMTPUTF8;
	else if (smtp_param_is(param, "AUTH"))
		bit = SMTP_MAIL_AUTH;
	else
		return SMTP_PARSE_BAD_PARAM;
	if ((*seen & bit) != 0)
		return SMTP_PARSE_BAD_PARAM;
	*seen |= bit;

	switch (bit) {
	case SMTP_MAIL_SIZE:
		if (smtp_param_size(param, &r->size) < 0)
			return SMTP_PARSE_BAD_PARAM;
		r->has_size = 1;
		break;
	case SMTP_MAIL_BODY:
		/* RFC 6152 */
		if (smtp_value_is(param, "7BIT"))
			r->body_8bitmime = 0;
		else if (smtp_value_is(param, "8BITMIME"))
			r->body_8bitmime = 1;
		else
			return SMTP_PARSE_BAD_PARAM;
		break;
	case SMTP_MAIL_SMTPUTF8:
		/* RFC 6531 3.4: no value */
		if (param->value != NULL)
			return SMTP_PARSE_BAD_PARAM;
		r->smtputf8 = 1;
		break;
	case SMTP_MAIL_AUTH: {
		/* RFC 4954 5: AUTH=<> or AUTH=xtext of a mailbox. */
		struct str s = STR_INIT;

		if (param->value == NULL || param->valuelen == 0)
			return SMTP_PARSE_BAD_PARAM;
		if (smtp_xtext_decode(param->value, param->valuelen, 0,
		    &s) < 0) {
			str_deinit(&s);
			return SMTP_PARSE_BAD_PARAM;
		}
		r->auth = str_steal(&s);
		break;
	}
	}
	return SMTP_PARSE_OK;
}

void
smtp_mail_args_deinit(struct smtp_mail_args *r)
{
	free(r->address);
	free(r->auth);
	memset(r, 0, sizeof(*r));
}

enum smtp_parse_error
smtp_parse_mail(const char *args, struct smtp_mail_args *r)
{
	enum smtp_parse_error err;
	const char *path;
	size_t pathlen;

	memset(r, 0, sizeof(*r));
	/* Parameters first: SMTPUTF8 decides what the address may hold. */
	if ((err = smtp_parse_path_params(args, "FROM:", &path, &pathlen,
	    smtp_mail_param, r)) != SMTP_PARSE_OK)
		goto fail;
	err = SMTP_PARSE_BAD_ADDRESS;
	if (!smtp_path_strip_route(&path, &pathlen, r->smtputf8))
		goto fail;
	if (pathlen > 0 && !smtp_mailbox_valid((const unsigned char *)path,
	    pathlen, r->smtputf8))
		goto fail;
	/* The null reverse-path (RFC 5321 4.5.5) is allowed only bare. */
	if (pathlen == 0 && path[-1] != '<')
		goto fail;
	r->address = xstrndup(path, pathlen);
	return SMTP_PARSE_OK;
fail:
	smtp_mail_args_deinit(r);
	return err;
}

/* RFC 3461 4.1: "NEVER" or a list of SUCCESS, FAILURE, DELAY. */
static int
smtp_notify_valid(const char *s, size_t n)
{
	static const char *const words[] = { "SUCCESS", "FAILURE", "DELAY" };
	unsigned int seen = 0, w;
	size_t start = 0, i;

	if (n == 5 && strncasecmp(s, "NEVER", 5) == 0)
		return 1;
	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != ',')
			continue;
		for (w = 0; w < 3; w++) {
			if (strlen(words[w]) == i - start &&
			    strncasecmp(s + start, words[w], i - start) == 0)
				break;
		}
		if (w == 3 || (seen & (1U << w)) != 0)
			return 0;
		seen |= 1U << w;
		start = i + 1;
	}
	return 1;
}

/* RFC 3461 4.2: addr-type ";" xtext; addr-type is an atom. */
static int
smtp_orcpt_valid(const char *s, size_t n, int utf8)
{
	const char *semi = memchr(s, ';', n);
	size_t i, typelen;

	if (semi == NULL || semi == s || (size_t)(semi - s) == n - 1)
		return 0;
	typelen = semi - s;
	for (i = 0; i < typelen; i++) {
		if (!smtp_is_atext((unsigned char)s[i]))
			return 0;
	}
	return smtp_xtext_decode(semi + 1, n - typelen - 1, utf8, NULL) == 0;
}

static char *
smtp_upper_dup(const char *s, size_t n)
{
	char *d = xstrndup(s, n), *p;

	for (p = d; *p != '\0'; p++) {
		if (*p >= 'a' && *p <= 'z')
			*p -= 'a' - 'A';
	}
	return d;
}

struct smtp_rcpt_context {
	int			 smtputf8;
	struct smtp_rcpt_args	*r;
};

static enum smtp_parse_error
smtp_rcpt_param(const struct smtp_param *param, unsigned int *seen,
    void *context)
{
	const struct smtp_rcpt_context *ctx = context;
	int smtputf8 = ctx->smtputf8;
	struct smtp_rcpt_args *r = ctx->r;
	if (smtp_param_is(param, "NOTIFY")) {
		if ((*seen & SMTP_RCPT_NOTIFY) != 0 || param->value == NULL ||
		    !smtp_notify_valid(param->value, param->valuelen))
			return SMTP_PARSE_BAD_PARAM;
		*seen |= SMTP_RCPT_NOTIFY;
		r->notify = smtp_upper_dup(param->value, param->valuelen);
	} else if (smtp_param_is(param, "ORCPT")) {
		if ((*seen & SMTP_RCPT_ORCPT) != 0 || param->value == NULL ||
		    !smtp_orcpt_valid(param->value, param->valuelen, smtputf8))
			return SMTP_PARSE_BAD_PARAM;
		*seen |= SMTP_RCPT_ORCPT;
		r->orcpt = xstrndup(param->value, param->valuelen);
	} else
		return SMTP_PARSE_BAD_PARAM;
	return SMTP_PARSE_OK;
}

void
smtp_rcpt_args_deinit(struct smtp_rcpt_args *r)
{
	free(r->address);
	free(r->notify);
	free(r->orcpt);
	memset(r, 0, sizeof(*r));
}

enum smtp_parse_error
smtp_parse_rcpt(const char *args, int smtputf8, struct smtp_rcpt_args *r)
{
	struct smtp_rcpt_context ctx;
	enum smtp_parse_error err;
	const char *path;
	size_t pathlen;

	memset(r, 0, sizeof(*r));
	ctx.smtputf8 = smtputf8;
	ctx.r = r;
	if ((err = smtp_parse_path_params(args, "TO:", &path, &pathlen,
	    smtp_rcpt_param, &ctx)) != SMTP_PARSE_OK)
		goto fail;
	err = SMTP_PARSE_BAD_ADDRESS;
	if (!smtp_path_strip_route(&path, &pathlen, smtputf8))
		goto fail;
	/* RFC 5321 4.5.1: "postmaster" without a domain, any case. */
	if (pathlen == 10 && strncasecmp(path, "postmaster", 10) == 0) {
		r->address = xstrdup("postmaster");
		return SMTP_PARSE_OK;
	}
	if (!smtp_mailbox_valid((const unsigned char *)path, pathlen,
	    smtputf8))
		goto fail;
	r->address = xstrndup(path, pathlen);
	return SMTP_PARSE_OK;
fail:
	smtp_rcpt_args_deinit(r);
	return err;
}
