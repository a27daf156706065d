/*
 * smtp_header: From and Message-ID of submitted messages (see
 * smtp_header.h). Tolerant of what mail clients write, strict in what
 * it returns: only the address texts, never a display name.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/str.h"
#include "../core/xmalloc.h"
#include "smtp_header.h"

/* Skip a comment starting at p[i] == '(' (nested, quoted-pairs);
 * returns the index after it, or len if unterminated. */
static size_t
smtp_header_skip_comment(const char *p, size_t len, size_t i)
{
	int depth = 0;

	for (; i < len; i++) {
		if (p[i] == '\\' && i + 1 < len)
			i++;
		else if (p[i] == '(')
			depth++;
		else if (p[i] == ')' && --depth == 0)
			return i + 1;
	}
	return len;
}

/* The text of p[0..len) without comments and unquoted white space. */
static char *
smtp_header_clean(const char *p, size_t len)
{
	struct str out = STR_INIT;
	int quoted = 0;

	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (quoted) {
			str_append_c(&out, c);
			if (c == '\\' && i + 1 < len)
				str_append_c(&out, p[++i]);
			else if (c == '"')
				quoted = 0;
			continue;
		}
		if (c == '"') {
			quoted = 1;
			str_append_c(&out, c);
		} else if (c == '(') {
			i = smtp_header_skip_comment(p, len, i) - 1;
		} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			str_append_c(&out, c);
	}
	return str_steal(&out);
}

/* One element of the list: the part in <...>, else the cleaned text. */
static char *
smtp_header_element(const char *p, size_t len)
{
	int quoted = 0;

	for (size_t i = 0; i < len; i++) {
		if (quoted) {
			if (p[i] == '\\' && i + 1 < len)
				i++;
			else if (p[i] == '"')
				quoted = 0;
		} else if (p[i] == '"')
			quoted = 1;
		else if (p[i] == '(')
			i = smtp_header_skip_comment(p, len, i) - 1;
		else if (p[i] == '<') {
			size_t j = i + 1;
			int q = 0;

			for (; j < len; j++) {
				if (q) {
					if (p[j] == '\\' && j + 1 < len)
						j++;
					else if (p[j] == '"')
						q = 0;
				} else if (p[j] == '"')
					q = 1;
				else if (p[j] == '>')
					break;
			}
			return smtp_header_clean(p + i + 1, j - i - 1);
		}
	}
	return smtp_header_clean(p, len);
}

int
smtp_header_addresses(const char *value, size_t len, char ***addrs_r)
{
	char **addrs = NULL;
	int n = 0, quoted = 0, angle = 0;
	size_t start = 0;

	*addrs_r = NULL;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? value[i] : ',';

		if (i < len && quoted) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '"')
				quoted = 0;
			continue;
		}
		if (i < len && c == '"') {
			quoted = 1;
			continue;
		}
		if (i < len && c == '(') {
			i = smtp_header_skip_comment(value, len, i) - 1;
			continue;
		}
		if (c == '<')
			angle = 1;
		else if (c == '>')
			angle = 0;
		if (angle && i < len)
			continue;
		if (c == ':') {
			/* a group's display name: not an address */
			start = i + 1;
			continue;
		}
		if (c != ',' && c != ';')
			continue;
		char *a = smtp_header_element(value + start, i - start);

		start = i + 1;
		if (*a == '\0') {
			free(a);
			continue;
		}
		if (n == SMTP_HEADER_MAX_ADDRS) {
			free(a);
			smtp_header_addresses_free(addrs, n);
			return -1;
		}
		addrs = xreallocarray(addrs, (size_t)n + 1, sizeof(*addrs));
		addrs[n++] = a;
	}
	*addrs_r = addrs;
	return n;
}

void
smtp_header_addresses_free(char **addrs, int n)
{
	for (int i = 0; i < n; i++)
		free(addrs[i]);
	free(addrs);
}

char *
smtp_header_msgid(const char *value, size_t len)
{
	const char *lt = memchr(value, '<', len);
	const char *gt;

	if (lt == NULL)
		return NULL;
	gt = memchr(lt, '>', len - (size_t)(lt - value));
	if (gt == NULL || gt == lt + 1)
		return NULL;
	for (const char *p = lt + 1; p < gt; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return NULL;
	return xstrndup(lt + 1, (size_t)(gt - lt - 1));
}

size_t
smtp_header_field(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name), i;

	if (len <= n || strncasecmp(line, name, n) != 0)
		return 0;
	for (i = n; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	return i < len && line[i] == ':' ? i + 1 : 0;
}
