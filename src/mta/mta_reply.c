/*
 * mta_reply: reading SMTP replies (RFC 5321 4.2) and EHLO keywords; see
 * mta_reply.h. The input is whatever a remote server sent, so every
 * length is bounded and nothing is trusted to be text.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/xmalloc.h"
#include "mta_reply.h"

void
mta_reply_init(struct mta_reply *r)
{
	r->code = 0;
	r->esc[0] = '\0';
	str_init(&r->text);
	r->lines = 0;
}

void
mta_reply_deinit(struct mta_reply *r)
{
	str_deinit(&r->text);
	mta_reply_init(r);
}

/* 1 to 3 digits; returns the count, 0 if none or more than 3. */
static size_t
mta_reply_digits(const char *p, size_t len)
{
	size_t n = 0;

	while (n < len && n < 4 && p[n] >= '0' && p[n] <= '9')
		n++;
	return n >= 1 && n <= 3 ? n : 0;
}

/*
 * An enhanced status code "C.S.D" (RFC 3463 2: class 2, 4 or 5, subject
 * and detail of 1 to 3 digits) at p, followed by a space or the end.
 * Returns its length, 0 if there is none.
 */
static size_t
mta_reply_esc(const char *p, size_t len)
{
	size_t i = 0, n;

	if (len < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') ||
	    p[1] != '.')
		return 0;
	i = 2;
	if ((n = mta_reply_digits(p + i, len - i)) == 0)
		return 0;
	i += n;
	if (i >= len || p[i] != '.')
		return 0;
	i++;
	if ((n = mta_reply_digits(p + i, len - i)) == 0)
		return 0;
	i += n;
	if (i < len && p[i] != ' ')
		return 0;
	return i;
}

int
mta_reply_parse(const char *buf, size_t len, struct mta_reply *r,
    size_t *consumed_r, const char **error_r)
{
	const char *p = buf, *end = buf + len, *nl;
	size_t linelen, esclen;
	int code;

	str_clear(&r->text);
	r->code = 0;
	r->esc[0] = '\0';
	r->lines = 0;
	for (;;) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			if ((size_t)(end - p) >= MTA_REPLY_LINE_MAX) {
				*error_r = "reply line too long";
				return -1;
			}
			return 0;
		}
		linelen = (size_t)(nl - p);
		if (linelen + 1 > MTA_REPLY_LINE_MAX) {
			*error_r = "reply line too long";
			return -1;
		}
		if (linelen > 0 && p[linelen - 1] == '\r')
			linelen--;
		if (memchr(p, '\0', linelen) != NULL) {
			*error_r = "NUL in reply";
			return -1;
		}
		/* RFC 5321 4.2: three digits, then SP, "-" or the end. */
		if (linelen < 3 || p[0] < '2' || p[0] > '5' ||
		    p[1] < '0' || p[1] > '5' || p[2] < '0' || p[2] > '9' ||
		    (linelen > 3 && p[3] != ' ' && p[3] != '-')) {
			*error_r = "malformed reply code";
			return -1;
		}
		code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		if (r->lines > 0 && code != r->code) {
			*error_r = "reply code changes within a reply";
			return -1;
		}
		if (++r->lines > MTA_REPLY_LINES) {
			*error_r = "reply has too many lines";
			return -1;
		}
		r->code = code;
		if (r->lines > 1)
			str_append_c(&r->text, '\n');
		if (linelen > 4) {
			const char *t = p + 4;
			size_t tlen = linelen - 4;

			/* RFC 2034 3: every line starts with the code; its
			 * class must be the reply's. */
			esclen = mta_reply_esc(t, tlen);
			if (esclen > 0 && t[0] == p[0]) {
				if (r->lines == 1 && esclen < sizeof(r->esc)) {
					memcpy(r->esc, t, esclen);
					r->esc[esclen] = '\0';
				}
				t += esclen;
				tlen -= esclen;
				if (tlen > 0) {
					t++;
					tlen--;
				}
			}
			str_append_n(&r->text, t, tlen);
		}
		if (linelen == 3 || p[3] == ' ') {
			*consumed_r = (size_t)(nl + 1 - buf);
			return 1;
		}
		p = nl + 1;
	}
}

void
mta_reply_oneline(const struct mta_reply *r, struct str *out, size_t max)
{
	const char *t = str_c(&r->text);
	size_t start = out->len, i;

	str_printf(out, "%d", r->code);
	if (r->esc[0] != '\0')
		str_printf(out, " %s", r->esc);
	if (r->text.len > 0)
		str_append_c(out, ' ');
	for (i = 0; i < r->text.len; i++) {
		unsigned char c = (unsigned char)t[i];

		/* room for the widest character and "..." */
		if (out->len - start + 4 + 3 > max) {
			str_append(out, "...");
			return;
		}
		if (c == '\n')
			str_append_c(out, ' ');
		else if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			str_printf(out, "\\x%02X", c);
		else
			str_append_c(out, (char)c);
	}
}

static int
mta_reply_keyword(const char *line, size_t len, const char *kw,
    const char **arg_r)
{
	size_t kl = strlen(kw);

	if (len < kl || strncasecmp(line, kw, kl) != 0)
		return 0;
	if (len == kl) {
		*arg_r = NULL;
		return 1;
	}
	if (line[kl] != ' ' && line[kl] != '=')
		return 0;
	*arg_r = line + kl + 1;
	return 1;
}

void
mta_reply_ehlo(const struct mta_reply *r, struct mta_ehlo *ehlo)
{
	const char *p = str_c(&r->text), *end = p + r->text.len, *nl, *arg;
	size_t len;
	int first = 1;

	ehlo->ext = 0;
	ehlo->size = 0;
	for (; p < end; p = nl + 1, first = 0) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		len = (size_t)(nl - p);
		if (first)
			continue;
		if (mta_reply_keyword(p, len, "PIPELINING", &arg))
			ehlo->ext |= MTA_EXT_PIPELINING;
		else if (mta_reply_keyword(p, len, "8BITMIME", &arg))
			ehlo->ext |= MTA_EXT_8BITMIME;
		else if (mta_reply_keyword(p, len, "STARTTLS", &arg))
			ehlo->ext |= MTA_EXT_STARTTLS;
		else if (mta_reply_keyword(p, len, "SMTPUTF8", &arg))
			ehlo->ext |= MTA_EXT_SMTPUTF8;
		else if (mta_reply_keyword(p, len, "ENHANCEDSTATUSCODES",
		    &arg))
			ehlo->ext |= MTA_EXT_ENHANCED;
		else if (mta_reply_keyword(p, len, "SIZE", &arg)) {
			unsigned long long v = 0;
			const char *q = arg;

			ehlo->ext |= MTA_EXT_SIZE;
			/* RFC 1870: SIZE alone or SIZE 0 means no limit. */
			while (q != NULL && q < nl && *q >= '0' && *q <= '9' &&
			    v < 1000000000000ULL)
				v = v * 10 + (unsigned long long)(*q++ - '0');
			ehlo->size = v;
		} else if (mta_reply_keyword(p, len, "AUTH", &arg) &&
		    arg != NULL) {
			const char *q = arg;

			/* mechanism list, space separated */
			while (q < nl) {
				const char *s = q;

				while (q < nl && *q != ' ')
					q++;
				if (q - s == 5 && strncasecmp(s, "PLAIN", 5) == 0)
					ehlo->ext |= MTA_EXT_AUTH_PLAIN;
				while (q < nl && *q == ' ')
					q++;
			}
		}
	}
}
