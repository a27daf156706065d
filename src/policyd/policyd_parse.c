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
	r->lines = 0;
}

/* The attributes sekisho reads (be_policy.c); every other is ignored. */
static const char *const policyd_names[] = {
	"request", "protocol_state", "protocol_name", "sasl_username",
	"client_address", "sender", "recipient", "recipient_count",
	"queue_id", "instance",
};
_Static_assert(sizeof(policyd_names) / sizeof(policyd_names[0]) <=
    POLICYD_MAX_ATTRS, "a request holds every name sekisho reads");

int
policyd_parse_line(struct policyd_request *r, const char *line, size_t len,
    const char **error_r)
{
	const char *eq;
	size_t nlen;
	int known = 0;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return 1;
	if (len > POLICYD_MAX_LINE) {
		*error_r = "line too long";
		return -1;
	}
	if (memchr(line, '\0', len) != NULL) {
		*error_r = "NUL in request";
		return -1;
	}
	if ((eq = memchr(line, '=', len)) == NULL || eq == line) {
		*error_r = "expected name=value";
		return -1;
	}
	if (++r->lines > POLICYD_MAX_LINES) {
		*error_r = "too many attributes";
		return -1;
	}
	nlen = (size_t)(eq - line);
	for (size_t i = 0; i < sizeof(policyd_names) /
	    sizeof(policyd_names[0]) && !known; i++)
		known = strlen(policyd_names[i]) == nlen &&
		    memcmp(policyd_names[i], line, nlen) == 0;
	if (!known)
		return 0;	/* SMTPD_POLICY_README: ignore it */
	for (size_t i = 0; i < r->n; i++)
		if (strlen(r->name[i]) == nlen &&
		    memcmp(r->name[i], line, nlen) == 0) {
			/* which one would Postfix mean? */
			*error_r = "attribute given twice";
			return -1;
		}
	if (r->n == POLICYD_MAX_ATTRS) {
		*error_r = "too many attributes";	/* not reached */
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
