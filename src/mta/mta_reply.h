/*
 * mta_reply: the SMTP/LMTP client's reader of server replies (RFC 5321
 * 4.2, enhanced codes RFC 2034/3463) and of the EHLO keyword list
 * (4.1.1.1). Pure functions over a byte buffer: no I/O, fuzzed
 * (fuzz/fuzz_smtp_reply.c) and unit-tested (tests/unit/test_mta_reply.c).
 */
#ifndef SEKISHO_MTA_REPLY_H
#define SEKISHO_MTA_REPLY_H

#include <stddef.h>

#include "../core/str.h"

/* A line longer than this (CRLF included) is refused, as is a reply of
 * more than MTA_REPLY_LINES lines: a server that sends them is broken. */
#define MTA_REPLY_LINE_MAX	2048
#define MTA_REPLY_LINES		100

struct mta_reply {
	int		 code;		/* 200..599 */
	char		 esc[16];	/* "5.1.1" or "" when not given */
	struct str	 text;		/* each line's text after the code
					 * (and the enhanced code of that line),
					 * lines separated by '\n' */
	size_t		 lines;
};

void mta_reply_init(struct mta_reply *r);
void mta_reply_deinit(struct mta_reply *r);

/*
 * Read one complete reply at the head of buf. Returns 1 when it is
 * complete (*r filled, *consumed_r bytes used), 0 when more input is
 * needed, -1 when the input cannot be a reply (error_r): wrong code
 * syntax, codes differing between lines, a line too long, too many
 * lines, a NUL byte. Lines may end in CRLF or a bare LF (tolerated from
 * servers, RFC 5321 4.1.1.4 is about what we send). r is cleared first.
 */
int mta_reply_parse(const char *buf, size_t len, struct mta_reply *r,
    size_t *consumed_r, const char **error_r);

/*
 * The reply on one printable line for logs and DSNs: "550 5.1.1 text
 * text", lines joined by a space, bytes outside printable ASCII as
 * \xHH, at most max bytes (then "..."). Appends to out.
 */
void mta_reply_oneline(const struct mta_reply *r, struct str *out,
    size_t max);

/* What an EHLO (or LHLO) reply offers (RFC 5321 4.1.1.1). */
#define MTA_EXT_PIPELINING	0x01	/* RFC 2920 */
#define MTA_EXT_SIZE		0x02	/* RFC 1870 */
#define MTA_EXT_8BITMIME	0x04	/* RFC 6152 */
#define MTA_EXT_STARTTLS	0x08	/* RFC 3207 */
#define MTA_EXT_AUTH_PLAIN	0x10	/* RFC 4954 + RFC 4616 */
#define MTA_EXT_SMTPUTF8	0x20	/* RFC 6531 */
#define MTA_EXT_ENHANCED	0x40	/* RFC 2034 */

struct mta_ehlo {
	int		 ext;		/* MTA_EXT_* */
	unsigned long long size;	/* SIZE limit; 0 = none given */
};

/* Keywords of a 250 EHLO reply (first line is the greeting, skipped).
 * Unknown keywords are ignored; keywords are case-insensitive. */
void mta_reply_ehlo(const struct mta_reply *r, struct mta_ehlo *ehlo);

#endif
