/*
 * own_from: Authentication-Results (RFC 8601 2.2) read for the
 * refuse_own_from check (own_from.h). A small tokenizer (words, quoted
 * strings, ";" and "=", comments and folding white space skipped) and a
 * parser of authserv-id [version] *( ";" method=result *(ptype.prop=value)
 * ), every loop bounded by the field's length.
 */
#include <string.h>
#include <strings.h>

#include "own_from.h"

#define OWN_FROM_COMMENT_DEPTH	16

enum own_from_tok {
	OWN_FROM_TOK_END,
	OWN_FROM_TOK_WORD,
	OWN_FROM_TOK_QUOTED,	/* the text between the quotes, raw */
	OWN_FROM_TOK_SEMI,
	OWN_FROM_TOK_EQ,
	OWN_FROM_TOK_ERR,
};

struct own_from_lex {
	const char	*p;
	const char	*end;
	const char	*tok;	/* the token's text (words, quoted) */
	size_t		 toklen;
};

static int
own_from_word_char(unsigned char c)
{
	/* UTF-8 is allowed in values (RFC 8616); controls are not */
	return c > 0x20 && c != 0x7f && c != ';' && c != '=' && c != '(' &&
	    c != ')' && c != '"' && c != '\\';
}

/* Skips white space, line ends of folding and comments; -1 when a comment
 * is unterminated or nested too deep. */
static int
own_from_skip_cfws(struct own_from_lex *l)
{
	while (l->p < l->end) {
		unsigned char c = (unsigned char)*l->p;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			l->p++;
			continue;
		}
		if (c != '(')
			return 0;
		int depth = 0;

		while (l->p < l->end) {
			c = (unsigned char)*l->p++;
			if (c == '\\') {
				if (l->p == l->end)
					return -1;
				l->p++;
			} else if (c == '(') {
				if (++depth > OWN_FROM_COMMENT_DEPTH)
					return -1;
			} else if (c == ')') {
				if (--depth == 0)
					break;
			}
		}
		if (depth != 0)
			return -1;
	}
	return 0;
}

static enum own_from_tok
own_from_next(struct own_from_lex *l)
{
	l->tok = NULL;
	l->toklen = 0;
	if (own_from_skip_cfws(l) < 0)
		return OWN_FROM_TOK_ERR;
	if (l->p == l->end)
		return OWN_FROM_TOK_END;
	switch (*l->p) {
	case ';':
		l->p++;
		return OWN_FROM_TOK_SEMI;
	case '=':
		l->p++;
		return OWN_FROM_TOK_EQ;
	case '"':
		l->tok = ++l->p;
		while (l->p < l->end && *l->p != '"') {
			if (*l->p == '\\' && ++l->p == l->end)
				return OWN_FROM_TOK_ERR;
			l->p++;
		}
		if (l->p == l->end)
			return OWN_FROM_TOK_ERR;
		l->toklen = (size_t)(l->p - l->tok);
		l->p++;
		return OWN_FROM_TOK_QUOTED;
	default:
		break;
	}
	if (!own_from_word_char((unsigned char)*l->p))
		return OWN_FROM_TOK_ERR;
	l->tok = l->p;
	while (l->p < l->end && own_from_word_char((unsigned char)*l->p))
		l->p++;
	l->toklen = (size_t)(l->p - l->tok);
	return OWN_FROM_TOK_WORD;
}

static int
own_from_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

int
own_from_aligned(const char *domain, size_t len, const char *from_domain)
{
	size_t flen = strlen(from_domain);
	const char *longer, *shorter;
	size_t llen, slen;

	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (flen > 0 && from_domain[flen - 1] == '.')
		flen--;
	if (len == 0 || flen == 0)
		return 0;
	if (len == flen)
		return strncasecmp(domain, from_domain, len) == 0;
	if (len > flen)
		longer = domain, llen = len, shorter = from_domain, slen = flen;
	else
		longer = from_domain, llen = flen, shorter = domain, slen = len;
	/* the parent must be a registered-looking name, not "jp" */
	if (memchr(shorter, '.', slen) == NULL)
		return 0;
	return longer[llen - slen - 1] == '.' &&
	    strncasecmp(longer + llen - slen, shorter, slen) == 0;
}

static int
own_from_digits(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return len > 0;
}

/* The domain of "local@domain" or of a bare domain. */
static void
own_from_domain_of(const char *v, size_t len, const char **d_r,
    size_t *dlen_r)
{
	const char *at = NULL;

	for (size_t i = 0; i < len; i++)
		if (v[i] == '@')
			at = v + i;
	if (at != NULL) {
		*d_r = at + 1;
		*dlen_r = len - (size_t)(at + 1 - v);
	} else {
		*d_r = v;
		*dlen_r = len;
	}
}

struct own_from_result {
	const char	*method;
	size_t		 methodlen;
	int		 pass;
	const char	*d, *i, *mailfrom, *hfrom;
	size_t		 dlen, ilen, mailfromlen, hfromlen;
};

/* The method name before any "/version". */
static int
own_from_method(const struct own_from_result *r, const char *name)
{
	size_t n = 0;

	while (n < r->methodlen && r->method[n] != '/')
		n++;
	return own_from_is(r->method, n, name);
}

static const char *
own_from_judge(const struct own_from_result *r, const char *from_domain)
{
	const char *d;
	size_t dlen;

	if (!r->pass)
		return NULL;
	if (own_from_method(r, "dkim")) {
		if (r->d != NULL && own_from_aligned(r->d, r->dlen, from_domain))
			return "dkim";
		if (r->d == NULL && r->i != NULL) {
			own_from_domain_of(r->i, r->ilen, &d, &dlen);
			if (own_from_aligned(d, dlen, from_domain))
				return "dkim";
		}
	} else if (own_from_method(r, "spf")) {
		if (r->mailfrom != NULL) {
			own_from_domain_of(r->mailfrom, r->mailfromlen, &d,
			    &dlen);
			if (own_from_aligned(d, dlen, from_domain))
				return "spf";
		}
	} else if (own_from_method(r, "dmarc")) {
		/* DMARC pass is an aligned DKIM or SPF pass (RFC 7489) */
		if (r->hfrom != NULL && own_from_aligned(r->hfrom,
		    r->hfromlen, from_domain))
			return "dmarc";
	}
	return NULL;
}

int
own_from_ar_passes(const char *value, size_t len, const char *authserv_id,
    const char *from_domain, const char **method_r)
{
	struct own_from_lex l = { value, value + len, NULL, 0 };
	enum own_from_tok t;
	const char *passed = NULL;
	int nresults = 0;

	if (method_r != NULL)
		*method_r = NULL;
	if (len > OWN_FROM_AR_MAX)
		return -1;
	t = own_from_next(&l);
	if (t != OWN_FROM_TOK_WORD && t != OWN_FROM_TOK_QUOTED)
		return -1;
	if (!own_from_is(l.tok, l.toklen, authserv_id))
		return 0;	/* another server's: not read */
	t = own_from_next(&l);
	if (t == OWN_FROM_TOK_WORD && own_from_digits(l.tok, l.toklen))
		t = own_from_next(&l);		/* authres-version */
	while (t == OWN_FROM_TOK_SEMI) {
		struct own_from_result r;

		memset(&r, 0, sizeof(r));
		if (own_from_next(&l) != OWN_FROM_TOK_WORD)
			return -1;
		r.method = l.tok;
		r.methodlen = l.toklen;
		t = own_from_next(&l);
		if ((t == OWN_FROM_TOK_END || t == OWN_FROM_TOK_SEMI) &&
		    own_from_is(r.method, r.methodlen, "none"))
			continue;		/* no-result */
		if (t != OWN_FROM_TOK_EQ ||
		    own_from_next(&l) != OWN_FROM_TOK_WORD)
			return -1;
		if (++nresults > OWN_FROM_RESULTS_MAX)
			return -1;
		r.pass = own_from_is(l.tok, l.toklen, "pass");
		/* reasonspec and propspecs: NAME = VALUE */
		while ((t = own_from_next(&l)) == OWN_FROM_TOK_WORD) {
			const char *name = l.tok;
			size_t namelen = l.toklen;

			if (own_from_next(&l) != OWN_FROM_TOK_EQ)
				return -1;
			t = own_from_next(&l);
			if (t != OWN_FROM_TOK_WORD && t != OWN_FROM_TOK_QUOTED)
				return -1;
			if (own_from_is(name, namelen, "header.d"))
				r.d = l.tok, r.dlen = l.toklen;
			else if (own_from_is(name, namelen, "header.i"))
				r.i = l.tok, r.ilen = l.toklen;
			else if (own_from_is(name, namelen, "smtp.mailfrom"))
				r.mailfrom = l.tok, r.mailfromlen = l.toklen;
			else if (own_from_is(name, namelen, "header.from"))
				r.hfrom = l.tok, r.hfromlen = l.toklen;
		}
		if (passed == NULL)
			passed = own_from_judge(&r, from_domain);
	}
	if (t != OWN_FROM_TOK_END)
		return -1;
	if (passed == NULL)
		return 0;
	if (method_r != NULL)
		*method_r = passed;
	return 1;
}
