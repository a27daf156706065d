/*
 * authpolicy_parse: HTTP head and JSON body of Dovecot's auth policy
 * requests (see authpolicy_parse.h). Every length is bounded before it
 * is used; the body (at most AUTHPOLICY_MAX_BODY octets) is read by
 * jansson, the head by hand (a few header lines).
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

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

/* ---- JSON (jansson) ------------------------------------------------ */

/* Nested deeper than AUTHPOLICY_MAX_DEPTH (the object itself is 1)? */
static int
authpolicy_too_deep(json_t *v, int depth)
{
	const char *name;
	json_t *item;
	size_t i;

	if (!json_is_object(v) && !json_is_array(v))
		return 0;
	if (depth > AUTHPOLICY_MAX_DEPTH)
		return 1;
	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			if (authpolicy_too_deep(item, depth + 1))
				return 1;
		return 0;
	}
	json_object_foreach(v, name, item)
		if (authpolicy_too_deep(item, depth + 1))
			return 1;
	return 0;
}

/* The string value of name into out (at most max octets), if given. */
static int
authpolicy_string(json_t *o, const char *name, char *out, size_t max,
    const char **error_r)
{
	json_t *v = json_object_get(o, name);

	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		*error_r = "string expected";
		return -1;
	}
	if (json_string_length(v) > max) {
		*error_r = "string too long";
		return -1;
	}
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

/* The boolean value of name into *v_r (1, 0, or -1 when absent). */
static int
authpolicy_bool(json_t *o, const char *name, int *v_r, const char **error_r)
{
	json_t *v = json_object_get(o, name);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v)) {
		*error_r = "boolean expected";
		return -1;
	}
	*v_r = json_is_true(v);
	return 0;
}

int
authpolicy_parse_body(const char *body, size_t len,
    struct authpolicy_request *r, const char **error_r)
{
	static const char *const names[] = {
		"login", "remote", "protocol", "session_id", "account",
	};
	char *fields[] = { r->login, r->remote, r->protocol, r->session_id,
	    r->account };
	json_error_t err;
	json_t *o;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	r->success = r->policy_reject = -1;
	if (len > AUTHPOLICY_MAX_BODY) {
		*error_r = "body too large";
		return -1;
	}
	/* RFC 8259 with no name twice; \u0000 refused (no JSON_ALLOW_NUL),
	 * nothing after the object */
	if ((o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err)) ==
	    NULL) {
		*error_r = "malformed JSON";
		return -1;
	}
	if (!json_is_object(o))
		*error_r = "not a JSON object";
	else if (authpolicy_too_deep(o, 1))
		*error_r = "nested too deep";
	else {
		ret = 0;
		for (size_t i = 0; i < 5 && ret == 0; i++)
			ret = authpolicy_string(o, names[i], fields[i],
			    AUTHPOLICY_MAX_VALUE, error_r);
		if (ret == 0)
			ret = authpolicy_bool(o, "success", &r->success,
			    error_r);
		if (ret == 0)
			ret = authpolicy_bool(o, "policy_reject",
			    &r->policy_reject, error_r);
	}
	json_decref(o);
	return ret;
}
