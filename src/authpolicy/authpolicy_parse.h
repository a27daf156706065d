/*
 * authpolicy_parse: the request side of Dovecot 2.3's auth policy
 * protocol (Dovecot's auth-policy.c; docs/imap.md): an HTTP/1.x POST to
 * auth_policy_server_url with "?command=allow" (before authentication)
 * or "?command=report" (after it), a Content-Length body holding one JSON
 * object made from auth_policy_request_attributes (all strings), plus
 * "success" and "policy_reject" (booleans) in a report. Free of I/O:
 * unit-tested and fuzzed (fuzz/fuzz_authpolicy.c).
 */
#ifndef SEKISHO_AUTHPOLICY_PARSE_H
#define SEKISHO_AUTHPOLICY_PARSE_H

#include <stddef.h>

#define AUTHPOLICY_MAX_HEAD	8192	/* request line and headers */
#define AUTHPOLICY_MAX_HEADERS	64
#define AUTHPOLICY_MAX_BODY	16384
#define AUTHPOLICY_MAX_VALUE	512	/* a string value sekisho reads */
#define AUTHPOLICY_MAX_KEY	256	/* the X-API-Key value */
#define AUTHPOLICY_MAX_DEPTH	8	/* nested objects/arrays skipped */

enum authpolicy_command {
	AUTHPOLICY_ALLOW,	/* before authentication: allow/deny/delay */
	AUTHPOLICY_REPORT,	/* after it: success, policy_reject */
};

struct authpolicy_head {
	enum authpolicy_command	 command;
	size_t			 content_length;
	int			 close;		/* Connection: close, HTTP/1.0 */
	int			 has_key;
	char			 key[AUTHPOLICY_MAX_KEY + 1];	/* X-API-Key */
};

/* The attributes sekisho reads; "" (or -1 for booleans) when absent. */
struct authpolicy_request {
	char	login[AUTHPOLICY_MAX_VALUE + 1];
	char	remote[AUTHPOLICY_MAX_VALUE + 1];
	char	protocol[AUTHPOLICY_MAX_VALUE + 1];
	char	session_id[AUTHPOLICY_MAX_VALUE + 1];
	/* the passdb's account (contrib/dovecot: %{passdb:sekisho_account}):
	 * "" before authentication, the verified account after it */
	char	account[AUTHPOLICY_MAX_VALUE + 1];
	int	success;
	int	policy_reject;
};

/*
 * The length of the head in buf (through the empty line, CRLF or LF
 * ended), 0 when it is not complete yet, -1 when it cannot be one (over
 * AUTHPOLICY_MAX_HEAD octets, or a NUL).
 */
long authpolicy_head_len(const char *buf, size_t len);

/*
 * Parse a complete head (authpolicy_head_len octets). 0, or -1 with
 * *error_r: not "POST TARGET HTTP/1.0|1.1", no command=allow|report in
 * the query, no Content-Length or a bad or repeated one, a body over
 * AUTHPOLICY_MAX_BODY, Transfer-Encoding, a malformed header line, more
 * than AUTHPOLICY_MAX_HEADERS, or an X-API-Key over AUTHPOLICY_MAX_KEY.
 */
int authpolicy_parse_head(const char *head, size_t len,
    struct authpolicy_head *h, const char **error_r);

/*
 * Parse the body: one JSON object (RFC 8259, read by jansson). Names
 * sekisho does not read are skipped whatever their value (nested at most
 * AUTHPOLICY_MAX_DEPTH). 0, or -1 with *error_r: not JSON, not an
 * object, a string sekisho reads over AUTHPOLICY_MAX_VALUE octets or
 * with a NUL, any name given twice, a read name with a value of the
 * wrong type, or anything after the object.
 */
int authpolicy_parse_body(const char *body, size_t len,
    struct authpolicy_request *r, const char **error_r);

#endif
