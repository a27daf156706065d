/*
 * policyd_parse: the request side of Postfix's policy delegation
 * protocol (Postfix SMTPD_POLICY_README): "name=value" lines, ended by
 * an empty line. Free of I/O: unit-tested and fuzzed.
 */
#ifndef SEKISHO_POLICYD_PARSE_H
#define SEKISHO_POLICYD_PARSE_H

#include <stddef.h>

#define POLICYD_MAX_ATTRS	16	/* the names sekisho reads */
#define POLICYD_MAX_LINE	2048
#define POLICYD_MAX_LINES	1024	/* attributes of one request */

struct policyd_request {
	char	*name[POLICYD_MAX_ATTRS];
	char	*value[POLICYD_MAX_ATTRS];
	size_t	 n;
	size_t	 lines;		/* attribute lines, ignored ones too */
};

void policyd_request_init(struct policyd_request *r);
void policyd_request_clear(struct policyd_request *r);

/*
 * One line without its LF (a CR before it is tolerated). As Postfix
 * defines the protocol (SMTPD_POLICY_README), a name is any text without
 * '=', NUL or newline and a value any text without NUL or newline; a
 * name sekisho does not read (x-custom, X_Vendor, vendor.flag, a newer
 * Postfix's) is ignored. Returns 0 when an attribute was taken or
 * ignored, 1 at the empty line that ends the request, -1 with *error_r
 * on a malformed line (over-long, a NUL, no '=' or an empty name, more
 * than POLICYD_MAX_LINES attributes, or a name sekisho reads given
 * twice).
 */
int policyd_parse_line(struct policyd_request *r, const char *line,
    size_t len, const char **error_r);

/* The value of name (one sekisho reads), or "" when absent. */
const char *policyd_get(const struct policyd_request *r, const char *name);

#endif
