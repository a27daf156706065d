/*
 * portal_util: HTML escaping, cookies and language choice (see
 * portal_util.h).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/xmalloc.h"
#include "portal_util.h"

void
portal_html_escape(struct str *out, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			str_append(out, "&amp;");
			break;
		case '<':
			str_append(out, "&lt;");
			break;
		case '>':
			str_append(out, "&gt;");
			break;
		case '"':
			str_append(out, "&quot;");
			break;
		case '\'':
			str_append(out, "&#39;");
			break;
		default:
			str_append_c(out, *s);
		}
	}
}

int
portal_cookie_get(const char *header, const char *name, char *buf, size_t len)
{
	size_t nlen = strlen(name);
	const char *p = header;

	if (header == NULL || nlen == 0)
		return 1;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		const char *end = strchr(p, ';');
		size_t plen = end != NULL ? (size_t)(end - p) : strlen(p);

		if (plen > nlen && strncmp(p, name, nlen) == 0 &&
		    p[nlen] == '=') {
			const char *v = p + nlen + 1;
			size_t vlen = plen - nlen - 1;

			while (vlen > 0 && (v[vlen - 1] == ' ' ||
			    v[vlen - 1] == '\t'))
				vlen--;
			if (vlen >= len)
				return 1;
			memcpy(buf, v, vlen);
			buf[vlen] = '\0';
			return 0;
		}
		p += plen;
	}
	return 1;
}

/* q of one Accept-Language item ("en-US;q=0.8"): 0..1000. */
static int
portal_lang_q(const char *item)
{
	const char *q = strstr(item, ";q=");

	if (q == NULL)
		q = strstr(item, "; q=");
	if (q == NULL)
		return 1000;
	q = strchr(q, '=') + 1;
	double v = strtod(q, NULL);

	if (!(v >= 0.0) || v > 1.0)
		return 0;
	return (int)(v * 1000.0 + 0.5);
}

enum portal_lang
portal_lang_from_accept(const char *accept)
{
	int best_ja = -1, best_en = -1;
	const char *p = accept;

	if (accept == NULL)
		return PORTAL_JA;
	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char *item = xstrndup(p, len);
		int q = portal_lang_q(item);

		if (strncasecmp(item, "ja", 2) == 0 &&
		    (item[2] == '\0' || item[2] == '-' || item[2] == ';' ||
		    item[2] == ' ')) {
			if (q > best_ja)
				best_ja = q;
		} else if (strncasecmp(item, "en", 2) == 0 &&
		    (item[2] == '\0' || item[2] == '-' || item[2] == ';' ||
		    item[2] == ' ')) {
			if (q > best_en)
				best_en = q;
		}
		free(item);
		p += len;
	}
	return best_en > 0 && best_en > best_ja ? PORTAL_EN : PORTAL_JA;
}

