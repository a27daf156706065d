/*
 * authpolicy_parse: HTTP head and JSON body of Dovecot's auth policy
 * requests (see authpolicy_parse.h). Every length is bounded before it
 * is used; nothing here allocates.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "authpolicy_parse.h"

long
authpolicy_head_len(const char *buf, size_t len)
{
	size_t i, n = len < AUTHPOLICY_MAX_HEAD ? len : AUTHPOLICY_MAX_HEAD;

	for (i = 0; i < n; i++) {
		if (buf[i] == '\0')
			return -1;
		if (buf[i] != '\n')
			continue;
		/* an empty line: "\n\n" or "\n\r\n" */
		if (i + 1 < n && buf[i + 1] == '\n')
			return (long)(i + 2);
		if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return (long)(i + 3);
	}
	return len >= AUTHPOLICY_MAX_HEAD ? -1 : 0;
}

/* One line of head: [*p, eol) without CR LF; advances *p. 0 at the end. */
static int
authpolicy_line(const char **p, const char *end, const char **s_r,
    size_t *n_r)
{
	const char *lf;

	if (*p >= end)
		return 0;
	lf = memchr(*p, '\n', (size_t)(end - *p));
	if (lf == NULL)
		lf = end;
	*s_r = *p;
	*n_r = (size_t)(lf - *p);
	if (*n_r > 0 && (*s_r)[*n_r - 1] == '\r')
		(*n_r)--;
	*p = lf < end ? lf + 1 : end;
	return 1;
}

static int
authpolicy_is_token(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The query's command= parameter: 0 with *h set, or -1. */
static int
authpolicy_target(const char *t, size_t n, struct authpolicy_head *h)
{
	const char *q = memchr(t, '?', n), *end = t + n;
	int found = 0;

	if (n == 0 || t[0] != '/' || q == NULL)
		return -1;
	for (const char *p = q + 1; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		size_t pn = (size_t)((amp != NULL ? amp : end) - p);

		if (pn > 8 && memcmp(p, "command=", 8) == 0) {
			if (found)
				return -1;
			found = 1;
			if (pn == 13 && memcmp(p + 8, "allow", 5) == 0)
				h->command = AUTHPOLICY_ALLOW;
			else if (pn == 14 && memcmp(p + 8, "report", 6) == 0)
				h->command = AUTHPOLICY_REPORT;
			else
				return -1;
		}
		p = amp != NULL ? amp + 1 : end;
	}
	return found ? 0 : -1;
}

int
authpolicy_parse_head(const char *head, size_t len, struct authpolicy_head *h,
    const char **error_r)
{
	const char *p = head, *end = head + len, *s, *sp1, *sp2;
	size_t n, headers = 0;
	int has_length = 0;

	memset(h, 0, sizeof(*h));
	if (len > AUTHPOLICY_MAX_HEAD || memchr(head, '\0', len) != NULL) {
		*error_r = "head too long";
		return -1;
	}
	if (!authpolicy_line(&p, end, &s, &n) || n < 5 ||
	    memcmp(s, "POST ", 5) != 0 ||
	    (sp1 = memchr(s + 5, ' ', n - 5)) == NULL) {
		*error_r = "not a POST request";
		return -1;
	}
	sp2 = s + n;
	if ((size_t)(sp2 - sp1) != 9 || (memcmp(sp1, " HTTP/1.1", 9) != 0 &&
	    memcmp(sp1, " HTTP/1.0", 9) != 0)) {
		*error_r = "not HTTP/1.0 or 1.1";
		return -1;
	}
	h->close = memcmp(sp1, " HTTP/1.0", 9) == 0;
	if (authpolicy_target(s + 5, (size_t)(sp1 - (s + 5)), h) < 0) {
		*error_r = "no command=allow or command=report";
		return -1;
	}
	while (authpolicy_line(&p, end, &s, &n)) {
		const char *colon, *v, *ve;

		if (n == 0)
			break;		/* the empty line */
		if (++headers > AUTHPOLICY_MAX_HEADERS) {
			*error_r = "too many headers";
			return -1;
		}
		colon = memchr(s, ':', n);
		if (colon == NULL || colon == s) {
			*error_r = "malformed header";
			return -1;
		}
		for (const char *c = s; c < colon; c++)
			if (!authpolicy_is_token(*c)) {
				*error_r = "malformed header name";
				return -1;
			}
		v = colon + 1;
		ve = s + n;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *c = v; c < ve; c++)
			if ((unsigned char)*c < 0x20 && *c != '\t') {
				*error_r = "control character in a header";
				return -1;
			}
#define NAME_IS(x) ((size_t)(colon - s) == sizeof(x) - 1 && \
		    strncasecmp(s, x, sizeof(x) - 1) == 0)
		if (NAME_IS("Content-Length")) {
			size_t cl = 0;

			if (has_length || v == ve) {
				*error_r = "bad Content-Length";
				return -1;
			}
			for (const char *c = v; c < ve; c++) {
				if (*c < '0' || *c > '9') {
					*error_r = "bad Content-Length";
					return -1;
				}
				/* capped: a long number cannot wrap */
				if (cl <= AUTHPOLICY_MAX_BODY)
					cl = cl * 10 + (size_t)(*c - '0');
			}
			if (cl > AUTHPOLICY_MAX_BODY) {
				*error_r = "body too large";
				return -1;
			}
			has_length = 1;
			h->content_length = cl;
		} else if (NAME_IS("Transfer-Encoding")) {
			*error_r = "Transfer-Encoding not supported";
			return -1;
		} else if (NAME_IS("Connection")) {
			if ((size_t)(ve - v) == 5 &&
			    strncasecmp(v, "close", 5) == 0)
				h->close = 1;
		} else if (NAME_IS("X-API-Key")) {
			if (h->has_key || (size_t)(ve - v) > AUTHPOLICY_MAX_KEY) {
				*error_r = "bad X-API-Key";
				return -1;
			}
			h->has_key = 1;
			memcpy(h->key, v, (size_t)(ve - v));
			h->key[ve - v] = '\0';
		}
#undef NAME_IS
	}
	if (!has_length) {
		*error_r = "no Content-Length";
		return -1;
	}
	return 0;
}

/* ---- JSON ---------------------------------------------------------- */

struct authpolicy_json {
	const char	*p, *end;
	const char	*error;
};

static void
authpolicy_ws(struct authpolicy_json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	    *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int
authpolicy_hex4(const char *p, unsigned *v_r)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*v_r = v;
	return 0;
}

/*
 * A string at j->p (the opening quote). out NULL: skipped; else decoded
 * into out (at most max octets, NUL-terminated). 0 or -1.
 */
static int
authpolicy_string(struct authpolicy_json *j, char *out, size_t max)
{
	size_t n = 0;

	if (j->p >= j->end || *j->p != '"') {
		j->error = "string expected";
		return -1;
	}
	j->p++;
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = (unsigned char)*j->p++;
		unsigned cp;
		char buf[4];
		size_t bn = 0;

		if (c < 0x20) {
			j->error = "control character in a string";
			return -1;
		}
		if (c != '\\') {
			buf[bn++] = (char)c;
		} else {
			if (j->p >= j->end) {
				j->error = "unterminated string";
				return -1;
			}
			c = (unsigned char)*j->p++;
			switch (c) {
			case '"': case '\\': case '/':
				buf[bn++] = (char)c;
				break;
			case 'b': buf[bn++] = '\b'; break;
			case 'f': buf[bn++] = '\f'; break;
			case 'n': buf[bn++] = '\n'; break;
			case 'r': buf[bn++] = '\r'; break;
			case 't': buf[bn++] = '\t'; break;
			case 'u':
				if (j->end - j->p < 4 ||
				    authpolicy_hex4(j->p, &cp) < 0) {
					j->error = "bad \\u escape";
					return -1;
				}
				j->p += 4;
				if (cp >= 0xd800 && cp <= 0xdbff) {
					unsigned lo;

					if (j->end - j->p < 6 || j->p[0] != '\\' ||
					    j->p[1] != 'u' ||
					    authpolicy_hex4(j->p + 2, &lo) < 0 ||
					    lo < 0xdc00 || lo > 0xdfff) {
						j->error = "lone surrogate";
						return -1;
					}
					j->p += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					    (lo - 0xdc00);
				} else if (cp >= 0xdc00 && cp <= 0xdfff) {
					j->error = "lone surrogate";
					return -1;
				}
				if (cp == 0) {
					j->error = "NUL in a string";
					return -1;
				}
				if (cp < 0x80)
					buf[bn++] = (char)cp;
				else if (cp < 0x800) {
					buf[bn++] = (char)(0xc0 | (cp >> 6));
					buf[bn++] = (char)(0x80 | (cp & 0x3f));
				} else if (cp < 0x10000) {
					buf[bn++] = (char)(0xe0 | (cp >> 12));
					buf[bn++] = (char)(0x80 |
					    ((cp >> 6) & 0x3f));
					buf[bn++] = (char)(0x80 | (cp & 0x3f));
				} else {
					buf[bn++] = (char)(0xf0 | (cp >> 18));
					buf[bn++] = (char)(0x80 |
					    ((cp >> 12) & 0x3f));
					buf[bn++] = (char)(0x80 |
					    ((cp >> 6) & 0x3f));
					buf[bn++] = (char)(0x80 | (cp & 0x3f));
				}
				break;
			default:
				j->error = "bad escape";
				return -1;
			}
		}
		if (out != NULL) {
			if (n + bn > max) {
				j->error = "value too long";
				return -1;
			}
			memcpy(out + n, buf, bn);
		}
		n += bn;
	}
	if (j->p >= j->end) {
		j->error = "unterminated string";
		return -1;
	}
	j->p++;
	if (out != NULL)
		out[n] = '\0';
	return 0;
}

static int
authpolicy_literal(struct authpolicy_json *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) {
		j->error = "bad literal";
		return -1;
	}
	j->p += n;
	return 0;
}

static int
authpolicy_number(struct authpolicy_json *j)
{
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
		j->error = "bad number";
		return -1;
	}
	if (*j->p == '0')
		j->p++;
	else
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
			j->error = "bad number";
			return -1;
		}
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
			j->error = "bad number";
			return -1;
		}
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	return 0;
}

/* Skip any value (nested at most AUTHPOLICY_MAX_DEPTH). */
static int
authpolicy_skip(struct authpolicy_json *j, int depth)
{
	char close;

	authpolicy_ws(j);
	if (j->p >= j->end) {
		j->error = "value expected";
		return -1;
	}
	switch (*j->p) {
	case '"':
		return authpolicy_string(j, NULL, 0);
	case 't':
		return authpolicy_literal(j, "true");
	case 'f':
		return authpolicy_literal(j, "false");
	case 'n':
		return authpolicy_literal(j, "null");
	case '{':
	case '[':
		break;
	default:
		return authpolicy_number(j);
	}
	if (depth >= AUTHPOLICY_MAX_DEPTH) {
		j->error = "nested too deep";
		return -1;
	}
	close = *j->p == '{' ? '}' : ']';
	j->p++;
	authpolicy_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			authpolicy_ws(j);
			if (authpolicy_string(j, NULL, 0) < 0)
				return -1;
			authpolicy_ws(j);
			if (j->p >= j->end || *j->p != ':') {
				j->error = "':' expected";
				return -1;
			}
			j->p++;
		}
		if (authpolicy_skip(j, depth + 1) < 0)
			return -1;
		authpolicy_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		j->error = "',' or end expected";
		return -1;
	}
}

static int
authpolicy_bool(struct authpolicy_json *j, int *v_r)
{
	if (*v_r != -1) {
		j->error = "name given twice";
		return -1;
	}
	if (j->p < j->end && *j->p == 't') {
		*v_r = 1;
		return authpolicy_literal(j, "true");
	}
	if (j->p < j->end && *j->p == 'f') {
		*v_r = 0;
		return authpolicy_literal(j, "false");
	}
	j->error = "boolean expected";
	return -1;
}

int
authpolicy_parse_body(const char *body, size_t len,
    struct authpolicy_request *r, const char **error_r)
{
	struct authpolicy_json j = { body, body + len, NULL };
	static const char *const names[] = {
		"login", "remote", "protocol", "session_id", "account",
	};
	char *fields[] = { r->login, r->remote, r->protocol, r->session_id,
	    r->account };
	int seen[5] = { 0 };
	char name[64];

	memset(r, 0, sizeof(*r));
	r->success = r->policy_reject = -1;
	if (len > AUTHPOLICY_MAX_BODY) {
		*error_r = "body too large";
		return -1;
	}
	authpolicy_ws(&j);
	if (j.p >= j.end || *j.p != '{') {
		*error_r = "not a JSON object";
		return -1;
	}
	j.p++;
	authpolicy_ws(&j);
	if (j.p < j.end && *j.p == '}')
		j.p++;
	else
		for (;;) {
			size_t i;
			int known = 0;

			authpolicy_ws(&j);
			/* a long name is none sekisho reads: skipped */
			const char *start = j.p;

			if (authpolicy_string(&j, name, sizeof(name) - 1) < 0) {
				j.p = start;
				j.error = NULL;
				if (authpolicy_string(&j, NULL, 0) < 0)
					goto bad;
				name[0] = '\0';
			}
			authpolicy_ws(&j);
			if (j.p >= j.end || *j.p != ':') {
				j.error = "':' expected";
				goto bad;
			}
			j.p++;
			authpolicy_ws(&j);
			for (i = 0; i < 5; i++)
				if (strcmp(name, names[i]) == 0) {
					if (seen[i]++) {
						j.error = "name given twice";
						goto bad;
					}
					if (authpolicy_string(&j, fields[i],
					    AUTHPOLICY_MAX_VALUE) < 0)
						goto bad;
					known = 1;
				}
			if (!known && strcmp(name, "success") == 0) {
				if (authpolicy_bool(&j, &r->success) < 0)
					goto bad;
			} else if (!known &&
			    strcmp(name, "policy_reject") == 0) {
				if (authpolicy_bool(&j, &r->policy_reject) < 0)
					goto bad;
			} else if (!known && authpolicy_skip(&j, 1) < 0)
				goto bad;
			authpolicy_ws(&j);
			if (j.p < j.end && *j.p == ',') {
				j.p++;
				continue;
			}
			if (j.p < j.end && *j.p == '}') {
				j.p++;
				break;
			}
			j.error = "',' or '}' expected";
			goto bad;
		}
	authpolicy_ws(&j);
	if (j.p != j.end) {
		*error_r = "data after the object";
		return -1;
	}
	return 0;
bad:
	*error_r = j.error != NULL ? j.error : "malformed JSON";
	return -1;
}
