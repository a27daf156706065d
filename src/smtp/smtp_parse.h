/*
 * smtp_parse: the SMTP server's parsers of client input, free of I/O so
 * they can be unit-tested table-driven and fuzzed: the command line
 * (RFC 5321 4.1.1), the MAIL/RCPT path and ESMTP parameters (RFC 5321
 * 4.1.2, RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 4954 AUTH=),
 * (base64 and SASL PLAIN are src/core/base64.c and sasl.c).
 */
#ifndef SEKISHO_SMTP_PARSE_H
#define SEKISHO_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/str.h"

enum smtp_cmd {
	SMTP_CMD_HELO, SMTP_CMD_EHLO, SMTP_CMD_MAIL, SMTP_CMD_RCPT,
	SMTP_CMD_DATA, SMTP_CMD_RSET, SMTP_CMD_NOOP, SMTP_CMD_QUIT,
	SMTP_CMD_VRFY, SMTP_CMD_EXPN, SMTP_CMD_HELP, SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH, SMTP_CMD_BDAT,
	SMTP_CMD_UNKNOWN,	/* verb not recognised */
	SMTP_CMD_COUNT
};

/* Upper-case verb of a command, "?" for UNKNOWN. */
const char *smtp_cmd_name(enum smtp_cmd cmd);

/*
 * What a parser found wrong, so the session can pick the reply
 * (RFC 5321 4.2, RFC 3463 enhanced codes) without parsing text.
 */
enum smtp_parse_error {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_SYNTAX,	/* 501 5.5.4 / 500 5.5.2 for the command */
	SMTP_PARSE_BAD_ADDRESS,	/* 501 5.1.3 (RCPT) / 5.1.7 (MAIL) */
	SMTP_PARSE_BAD_PARAM,	/* 555 5.5.4 unknown or bad parameter */
	SMTP_PARSE_NUL,		/* 500 5.5.2 NUL or bare CR/LF in the line */
};

/*
 * One command line, without its CRLF (the caller strips exactly the
 * final "\r\n"; a line containing a NUL, a CR or an LF anywhere is
 * SMTP_PARSE_NUL). The verb is matched case-insensitively and must be
 * followed by end of line or one or more spaces; *args_r points into
 * line at the first non-space after the verb (or at "").
 * "MAIL FROM:" and "RCPT TO:" are verbs MAIL and RCPT with args
 * "FROM:..." and "TO:...".
 */
enum smtp_parse_error smtp_parse_command(const char *line, size_t len,
    enum smtp_cmd *cmd_r, const char **args_r);

struct smtp_mail_args {
	char	*address;	/* "" for the null reverse-path <> */
	int	 has_size;
	uint64_t size;		/* SIZE= */
	int	 body_8bitmime;	/* BODY=8BITMIME (1), BODY=7BIT (0) */
	int	 smtputf8;	/* SMTPUTF8 */
	char	*auth;		/* AUTH=<mailbox> as given (xtext decoded), or NULL */
};

struct smtp_rcpt_args {
	char	*address;
	/* NOTIFY= and ORCPT= (RFC 3461) are accepted and kept for DSN. */
	char	*notify;	/* or NULL */
	char	*orcpt;		/* or NULL */
};

/*
 * args is what follows "MAIL " / "RCPT ": "FROM:<a@b> SIZE=10" etc.
 * "FROM:" / "TO:" are case-insensitive; one optional space after the
 * colon is tolerated (common clients send it). The path must be in angle
 * brackets; a source route (<@a,@b:x@y>, RFC 5321 4.1.2) is accepted and
 * dropped. Address syntax is RFC 5321 Mailbox: Local-part "@" Domain or
 * address-literal; quoted local parts allowed; UTF-8 in local part and
 * domain only when smtputf8 is true (for MAIL: when the SMTPUTF8
 * parameter is present; for RCPT: as the caller says). Addresses longer
 * than 254 octets, local parts over 64 are SMTP_PARSE_BAD_ADDRESS.
 * Unknown parameters are SMTP_PARSE_BAD_PARAM. On error nothing needs
 * freeing; on success free with smtp_mail_args_deinit etc.
 * RCPT TO:<postmaster> (no domain) is accepted, as RFC 5321 4.5.1 requires,
 * with address "postmaster".
 */
enum smtp_parse_error smtp_parse_mail(const char *args,
    struct smtp_mail_args *r);
enum smtp_parse_error smtp_parse_rcpt(const char *args, int smtputf8,
    struct smtp_rcpt_args *r);
void smtp_mail_args_deinit(struct smtp_mail_args *r);
void smtp_rcpt_args_deinit(struct smtp_rcpt_args *r);

/* 1 if addr is a valid RFC 5321 Mailbox (as above), else 0. */
int smtp_address_valid(const char *addr, int smtputf8);

/* Split "local@domain" at the last '@'; domain lower-cased (ASCII).
 * Returns 0, or -1 if there is no '@'. Caller frees both. */
int smtp_address_split(const char *addr, char **local_r, char **domain_r);

#endif
