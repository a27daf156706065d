/*
 * mime7: 8-bit to 7-bit MIME (see mime7.h). The input is outside data
 * (any client's message): every scan is bounded by len, every header
 * value copied into a fixed buffer is cut at its size, and nesting is
 * bounded by MIME7_DEPTH_MAX.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "../core/xmalloc.h"
#include "mime7.h"

#define MIME7_LINE_MAX		998	/* RFC 5322 2.1.1 */
#define MIME7_QP_LINE		76	/* RFC 2045 6.7 (5) */
#define MIME7_B64_IN		57	/* 76 characters a line */
#define MIME7_BOUNDARY_MAX	200	/* RFC 2046 says 70; be lenient */

enum mime7_cte {
	MIME7_CTE_NONE, MIME7_CTE_7BIT, MIME7_CTE_8BIT, MIME7_CTE_BINARY,
	MIME7_CTE_QP, MIME7_CTE_BASE64, MIME7_CTE_OTHER,
};

struct mime7_head {
	int		 has_type;
	char		 type[32];		/* lower case */
	char		 subtype[64];
	char		 boundary[MIME7_BOUNDARY_MAX + 1];
	size_t		 boundary_len;
	enum mime7_cte	 cte;
	int		 mime_version;
};

static const char mime7_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char mime7_hex[] = "0123456789ABCDEF";

/* The line at pos: its content ends at the return value (before CRLF or
 * LF), the next line starts at *next_r. */
static size_t
mime7_line(const char *in, size_t len, size_t pos, size_t *next_r)
{
	const char *lf = memchr(in + pos, '\n', len - pos);
	size_t end;

	if (lf == NULL) {
		*next_r = len;
		return len;
	}
	end = (size_t)(lf - in);
	*next_r = end + 1;
	if (end > pos && in[end - 1] == '\r')
		end--;
	return end;
}

int
mime7_needs_encoding(const char *in, size_t len)
{
	size_t i, col = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 0x80 || c == '\0')
			return 1;
		if (c == '\n')
			col = 0;
		else if (c != '\r' && ++col > MIME7_LINE_MAX)
			return 1;
	}
	return 0;
}

/* The end of the header section (where the empty line starts, or len)
 * and where the body starts (len when there is no empty line). */
static void
mime7_split(const char *in, size_t len, size_t *hend_r, size_t *body_r)
{
	size_t pos = 0, end, next;

	while (pos < len) {
		end = mime7_line(in, len, pos, &next);
		if (end == pos) {
			*hend_r = pos;
			*body_r = next;
			return;
		}
		pos = next;
	}
	*hend_r = len;
	*body_r = len;
}

/* The header field starting at pos (with its continuation lines) ends
 * at the return value. */
static size_t
mime7_field_end(const char *in, size_t hend, size_t pos)
{
	size_t next;

	(void)mime7_line(in, hend, pos, &next);
	while (next < hend && (in[next] == ' ' || in[next] == '\t'))
		(void)mime7_line(in, hend, next, &next);
	return next;
}

/* Is the field at [pos, end) named name? Its unfolded value (cut at
 * size - 1) into val. */
static int
mime7_field_is(const char *in, size_t pos, size_t end, const char *name,
    char *val, size_t size)
{
	size_t n = strlen(name), i, o = 0;

	if (end - pos < n + 1 || strncasecmp(in + pos, name, n) != 0)
		return 0;
	for (i = pos + n; i < end && (in[i] == ' ' || in[i] == '\t'); i++)
		;
	if (i >= end || in[i] != ':')
		return 0;
	for (i++; i < end && o + 1 < size; i++)
		if (in[i] != '\r' && in[i] != '\n')
			val[o++] = in[i];
	val[o] = '\0';
	return 1;
}

static const char *
mime7_skip_ws(const char *p)
{
	int depth;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '(')
			return p;
		/* RFC 5322 3.2.2 comment, nested, with quoted pairs */
		for (depth = 0; *p != '\0'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
}

/* RFC 2045 5.1 token characters */
static int
mime7_tchar(char c)
{
	return (unsigned char)c > 0x20 && (unsigned char)c < 0x7f &&
	    strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* A token (lower-cased, cut at size - 1) at *pp. */
static void
mime7_token(const char **pp, char *out, size_t size)
{
	const char *p = *pp;
	size_t o = 0;

	for (; mime7_tchar(*p); p++)
		if (o + 1 < size)
			out[o++] = (char)tolower((unsigned char)*p);
	out[o] = '\0';
	*pp = p;
}

/* Content-Type: type "/" subtype *(";" attribute "=" value); the
 * boundary parameter only. */
static void
mime7_parse_type(const char *v, struct mime7_head *h)
{
	const char *p = mime7_skip_ws(v);
	char name[32];
	size_t o;

	mime7_token(&p, h->type, sizeof(h->type));
	p = mime7_skip_ws(p);
	if (*p != '/' || h->type[0] == '\0') {
		h->type[0] = '\0';
		return;
	}
	p = mime7_skip_ws(p + 1);
	mime7_token(&p, h->subtype, sizeof(h->subtype));
	h->has_type = h->subtype[0] != '\0';
	for (;;) {
		while (*p != '\0' && *p != ';')
			p++;
		if (*p == '\0')
			return;
		p = mime7_skip_ws(p + 1);
		mime7_token(&p, name, sizeof(name));
		p = mime7_skip_ws(p);
		if (*p != '=')
			continue;
		p = mime7_skip_ws(p + 1);
		if (strcmp(name, "boundary") != 0)
			continue;
		o = 0;
		h->boundary_len = 0;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (o >= MIME7_BOUNDARY_MAX) {
					o = 0;	/* unusable */
					break;
				}
				h->boundary[o++] = *p;
			}
		} else {
			for (; mime7_tchar(*p); p++) {
				if (o >= MIME7_BOUNDARY_MAX) {
					o = 0;
					break;
				}
				h->boundary[o++] = *p;
			}
		}
		h->boundary[o] = '\0';
		h->boundary_len = o;
	}
}

static enum mime7_cte
mime7_parse_cte(const char *v)
{
	static const struct {
		const char	*name;
		enum mime7_cte	 cte;
	} names[] = {
		{ "7bit", MIME7_CTE_7BIT }, { "8bit", MIME7_CTE_8BIT },
		{ "binary", MIME7_CTE_BINARY },
		{ "quoted-printable", MIME7_CTE_QP },
		{ "base64", MIME7_CTE_BASE64 },
	};
	const char *p = mime7_skip_ws(v);
	char tok[32];
	size_t i;

	mime7_token(&p, tok, sizeof(tok));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(tok, names[i].name) == 0)
			return names[i].cte;
	return MIME7_CTE_OTHER;
}

static void
mime7_parse_head(const char *in, size_t hend, struct mime7_head *h)
{
	char val[1024];
	size_t pos, end;

	memset(h, 0, sizeof(*h));
	for (pos = 0; pos < hend; pos = end) {
		end = mime7_field_end(in, hend, pos);
		if (mime7_field_is(in, pos, end, "Content-Type", val,
		    sizeof(val))) {
			/* the first one counts */
			if (!h->has_type && h->type[0] == '\0')
				mime7_parse_type(val, h);
		} else if (mime7_field_is(in, pos, end,
		    "Content-Transfer-Encoding", val, sizeof(val))) {
			if (h->cte == MIME7_CTE_NONE)
				h->cte = mime7_parse_cte(val);
		} else if (mime7_field_is(in, pos, end, "MIME-Version", val,
		    sizeof(val)))
			h->mime_version = 1;
	}
}

/* The header section without its Content-Transfer-Encoding fields,
 * then cte (if not NULL) as the last field, then the empty line. */
static void
mime7_put_head(const char *in, size_t hend, const char *cte, int mimever,
    struct str *out)
{
	char val[8];
	size_t pos, end;

	for (pos = 0; pos < hend; pos = end) {
		end = mime7_field_end(in, hend, pos);
		if (cte == NULL || !mime7_field_is(in, pos, end,
		    "Content-Transfer-Encoding", val, sizeof(val)))
			str_append_n(out, in + pos, end - pos);
	}
	/* a header section that ended without a line end */
	if (hend > 0 && in[hend - 1] != '\n')
		str_append(out, "\r\n");
	if (mimever)
		str_append(out, "MIME-Version: 1.0\r\n");
	if (cte != NULL) {
		str_append(out, "Content-Transfer-Encoding: ");
		str_append(out, cte);
		str_append(out, "\r\n");
	}
	str_append(out, "\r\n");
}

/* RFC 2045 6.7, line by line; a line end in the input is a hard one. */
static void
mime7_qp(const char *in, size_t len, struct str *out)
{
	size_t pos = 0, end, next, i, col;

	while (pos < len) {
		end = mime7_line(in, len, pos, &next);
		col = 0;
		for (i = pos; i < end; i++) {
			unsigned char c = (unsigned char)in[i];
			int lit = (c >= 33 && c <= 126 && c != '=') ||
			    ((c == ' ' || c == '\t') && i + 1 < end);
			size_t need = lit ? 1 : 3;

			/* room for the soft break's '=' */
			if (col + need > MIME7_QP_LINE - 1) {
				str_append(out, "=\r\n");
				col = 0;
			}
			/* no line of ours starts with "--": neither a
			 * soft break nor an encoded 8-bit byte can make
			 * a boundary line (RFC 2045 6.7 note) */
			if (col == 0 && c == '-') {
				lit = 0;
				need = 3;
			}
			if (lit)
				str_append_c(out, (char)c);
			else {
				str_append_c(out, '=');
				str_append_c(out, mime7_hex[c >> 4]);
				str_append_c(out, mime7_hex[c & 15]);
			}
			col += need;
		}
		if (next > end)		/* the line had a line end */
			str_append(out, "\r\n");
		pos = next;
	}
}

/* RFC 2045 6.8, 76 characters a line, CRLF between lines. */
static void
mime7_base64(const char *in, size_t len, struct str *out)
{
	const unsigned char *u = (const unsigned char *)in;
	size_t i, line = 0;
	unsigned int v;
	char q[4];

	for (i = 0; i < len; i += 3) {
		if (line == MIME7_B64_IN) {
			str_append(out, "\r\n");
			line = 0;
		}
		v = (unsigned int)u[i] << 16;
		if (i + 1 < len)
			v |= (unsigned int)u[i + 1] << 8;
		if (i + 2 < len)
			v |= u[i + 2];
		q[0] = mime7_b64[(v >> 18) & 0x3f];
		q[1] = mime7_b64[(v >> 12) & 0x3f];
		q[2] = i + 1 < len ? mime7_b64[(v >> 6) & 0x3f] : '=';
		q[3] = i + 2 < len ? mime7_b64[v & 0x3f] : '=';
		str_append_n(out, q, 4);
		line += 3;
	}
}

/* A preamble or epilogue: not for readers; 8-bit bytes become '#',
 * which no usable boundary has (mime7_bchars), so no delimiter line
 * appears that was not one. */
static void
mime7_put_sanitized(const char *in, size_t len, struct str *out)
{
	size_t i;

	for (i = 0; i < len; i++)
		str_append_c(out, (unsigned char)in[i] >= 0x80 ||
		    in[i] == '\0' ? '#' : in[i]);
}

/* RFC 2046 5.1.1 bchars, not ending in a space */
static int
mime7_bchars(const struct mime7_head *h)
{
	size_t i;

	if (h->boundary_len == 0 || h->boundary[h->boundary_len - 1] == ' ')
		return 0;
	for (i = 0; i < h->boundary_len; i++)
		if (!isalnum((unsigned char)h->boundary[i]) &&
		    strchr("'()+_,-./:=? ", h->boundary[i]) == NULL)
			return 0;
	return 1;
}

static int mime7_entity(const char *in, size_t len, int depth, int top,
    int digest, struct str *out, const char **error_r);

/* Is the line [p, p + n) a delimiter of boundary b? 1, 2 for the close
 * delimiter, 0 not (RFC 2046 5.1.1: trailing white space allowed). */
static int
mime7_delimiter(const char *p, size_t n, const struct mime7_head *h)
{
	size_t i, bl = h->boundary_len;
	int ret = 1;

	if (n < 2 + bl || p[0] != '-' || p[1] != '-' ||
	    memcmp(p + 2, h->boundary, bl) != 0)
		return 0;
	i = 2 + bl;
	if (n - i >= 2 && p[i] == '-' && p[i + 1] == '-') {
		ret = 2;
		i += 2;
	}
	for (; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t')
			return 0;
	return ret;
}

/* A multipart body: the parts converted, the delimiters as they are. */
static int
mime7_multipart(const char *in, size_t len, const struct mime7_head *h,
    int depth, struct str *out, const char **error_r)
{
	int digest = strcmp(h->subtype, "digest") == 0;
	size_t pos = 0, end, next, cut, start = 0;
	int in_part = 0, d;

	while (pos < len) {
		end = mime7_line(in, len, pos, &next);
		if ((d = mime7_delimiter(in + pos, end - pos, h)) == 0) {
			pos = next;
			continue;
		}
		/* the line end before a delimiter is part of it */
		cut = pos;
		if (cut > 0 && in[cut - 1] == '\n') {
			cut--;
			if (cut > 0 && in[cut - 1] == '\r')
				cut--;
		}
		if (in_part) {
			if (cut < start)
				cut = start;
			if (mime7_entity(in + start, cut - start, depth + 1, 0,
			    digest, out, error_r) < 0)
				return -1;
		} else
			mime7_put_sanitized(in, cut, out);
		str_append_n(out, in + cut, next - cut);
		if (d == 2) {
			mime7_put_sanitized(in + next, len - next, out);
			return 0;
		}
		in_part = 1;
		start = pos = next;
	}
	/* no close delimiter: the last part runs to the end */
	if (in_part)
		return mime7_entity(in + start, len - start, depth + 1, 0,
		    digest, out, error_r);
	mime7_put_sanitized(in, len, out);
	return 0;
}

static int
mime7_entity(const char *in, size_t len, int depth, int top, int digest,
    struct str *out, const char **error_r)
{
	struct mime7_head h;
	size_t hend, body;
	int text, walk;

	if (depth > MIME7_DEPTH_MAX) {
		*error_r = "MIME parts nested too deep";
		return -1;
	}
	mime7_split(in, len, &hend, &body);
	if (hend == len) {
		/* no body: nothing to encode */
		str_append_n(out, in, len);
		return 0;
	}
	mime7_parse_head(in, hend, &h);
	if (!h.has_type) {
		/* RFC 2045 5.2, RFC 2046 5.1.5 */
		xstrlcpy(h.type, digest ? "message" : "text", sizeof(h.type));
		xstrlcpy(h.subtype, digest ? "rfc822" : "plain",
		    sizeof(h.subtype));
	}
	walk = h.cte != MIME7_CTE_QP && h.cte != MIME7_CTE_BASE64 &&
	    h.cte != MIME7_CTE_OTHER;
	if (walk && strcmp(h.type, "multipart") == 0) {
		if (!mime7_bchars(&h)) {
			*error_r = "a multipart without a usable boundary";
			return -1;
		}
	} else if (!(walk && strcmp(h.type, "message") == 0 &&
	    strcmp(h.subtype, "rfc822") == 0)) {
		/* a leaf */
		if (h.cte == MIME7_CTE_QP || h.cte == MIME7_CTE_BASE64 ||
		    !mime7_needs_encoding(in + body, len - body)) {
			str_append_n(out, in, len);
			return 0;
		}
		text = strcmp(h.type, "text") == 0;
		mime7_put_head(in, hend, text ? "quoted-printable" : "base64",
		    top && !h.mime_version, out);
		if (text)
			mime7_qp(in + body, len - body, out);
		else
			mime7_base64(in + body, len - body, out);
		return 0;
	}
	/* multipart or message/rfc822: its own encoding is 7bit now */
	if (h.cte == MIME7_CTE_8BIT || h.cte == MIME7_CTE_BINARY)
		mime7_put_head(in, hend, "7bit", 0, out);
	else {
		str_append_n(out, in, hend);
		if (hend > 0 && in[hend - 1] != '\n')
			str_append(out, "\r\n");
		str_append(out, "\r\n");
	}
	if (body >= len)
		return 0;
	if (strcmp(h.type, "multipart") == 0)
		return mime7_multipart(in + body, len - body, &h, depth, out,
		    error_r);
	return mime7_entity(in + body, len - body, depth + 1, 0, 0, out,
	    error_r);
}

int
mime7_convert(const char *in, size_t len, struct str *out,
    const char **error_r)
{
	return mime7_entity(in, len, 0, 1, 0, out, error_r);
}
