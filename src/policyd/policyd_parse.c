/*
 * policyd_parse: Postfix policy protocol requests (see policyd_parse.h).
 */
#include <stdlib.h>
#include <string.h>

#include "../core/xmalloc.h"
#include "policyd_parse.h"

void
policyd_request_init(struct policyd_request *r)
{
	memset(r, 0, sizeof(*r));
}

void
policyd_request_clear(struct policyd_request *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->name[i]);
		free(r->value[i]);
	}
	r->n = 0;
}

int
policyd_parse_line(struct policyd_request *r, const char *line, size_t len,
    const char **error_r)
{
	const char *eq;
	size_t nlen;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return 1;
	if (len > POLICYD_MAX_LINE) {
		*error_r = "line too long";
		return -1;
	}
	if ((eq = memchr(line, '=', len)) == NULL || eq == line) {
		*error_r = "expected name=value";
		return -1;
	}
	nlen = (size_t)(eq - line);
	for (size_t i = 0; i < nlen; i++)
		if (!((line[i] >= 'a' && line[i] <= 'z') || line[i] == '_' ||
		    (line[i] >= '0' && line[i] <= '9'))) {
			*error_r = "bad attribute name";
			return -1;
		}
	for (size_t i = nlen + 1; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
			*error_r = "control character in a value";
			return -1;
		}
	for (size_t i = 0; i < r->n; i++)
		if (strlen(r->name[i]) == nlen &&
		    memcmp(r->name[i], line, nlen) == 0) {
			*error_r = "attribute given twice";
			return -1;
		}
	if (r->n == POLICYD_MAX_ATTRS) {
		*error_r = "too many attributes";
		return -1;
	}
	r->name[r->n] = xstrndup(line, nlen);
	r->value[r->n] = xstrndup(eq + 1, len - nlen - 1);
	r->n++;
	return 0;
}

const char *
policyd_get(const struct policyd_request *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->name[i], name) == 0)
			return r->value[i];
	return "";
}
