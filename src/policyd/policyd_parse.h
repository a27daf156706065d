/*
 * policyd_parse: the request side of Postfix's policy delegation
 * protocol (Postfix SMTPD_POLICY_README): "name=value" lines, ended by
 * an empty line. Free of I/O: unit-tested and fuzzed.
 */
#ifndef SEKISHO_POLICYD_PARSE_H
#define SEKISHO_POLICYD_PARSE_H

#include <stddef.h>

#define POLICYD_MAX_ATTRS	64
#define POLICYD_MAX_LINE	2048

struct policyd_request {
	char	*name[POLICYD_MAX_ATTRS];
	char	*value[POLICYD_MAX_ATTRS];
	size_t	 n;
};

void policyd_request_init(struct policyd_request *r);
void policyd_request_clear(struct policyd_request *r);

/*
 * One line without its LF (a CR before it is tolerated). Returns 0 when
 * an attribute was taken, 1 at the empty line that ends the request, -1
 * with *error_r on a malformed line (no '=', a bad name, a control
 * character, too many attributes or a duplicate name).
 */
int policyd_parse_line(struct policyd_request *r, const char *line,
    size_t len, const char **error_r);

/* The value of name, or "" when absent. */
const char *policyd_get(const struct policyd_request *r, const char *name);

#endif
