/*
 * smtp_header: the header fields the SMTP side reads in a submitted
 * message (RFC 5322), free of I/O so they are unit-tested and fuzzed:
 * the addresses of From (a mailbox-list, with display names, comments,
 * quoted strings and groups, RFC 5322 3.4 and RFC 6854), and Message-ID.
 */
#ifndef SEKISHO_SMTP_HEADER_H
#define SEKISHO_SMTP_HEADER_H

#include <stddef.h>

#define SMTP_HEADER_MAX_ADDRS	32

/*
 * The addr-specs of a mailbox-list field body (unfolded or folded).
 * Each element becomes one string (caller frees each and the array):
 * the part inside <...> when there is one, else the element with
 * comments and white space removed. A display name alone or an element
 * that is not an address is returned as it stands, so that a check of
 * ownership refuses it visibly rather than skipping it. Group names
 * ("undisclosed-recipients:;") are not addresses and are skipped.
 * Returns the number of strings (at most SMTP_HEADER_MAX_ADDRS; more
 * elements are a parse error: -1).
 */
int smtp_header_addresses(const char *value, size_t len, char ***addrs_r);
void smtp_header_addresses_free(char **addrs, int n);

/*
 * If line (a header field's first line) is the field called name, the
 * offset of its body (just after the colon), else 0. Case-insensitive,
 * and white space between the name and the colon is allowed (RFC 5322
 * 4.5.3 obs-optional: "From :" is a From field), so a second From cannot
 * hide from a check by a space.
 */
size_t smtp_header_field(const char *line, size_t len, const char *name);

/* The msg-id of a Message-ID field body without the angle brackets
 * (caller frees), or NULL when there is none. */
char *smtp_header_msgid(const char *value, size_t len);

#endif
