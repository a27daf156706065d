/*
 * dsn: the delivery status notification (bounce) the queue sends to the
 * envelope sender when recipients fail for good, or (optionally) when
 * delivery is delayed: RFC 3464 multipart/report with
 * report-type=delivery-status (RFC 6522), from MAILER-DAEMON@hostname:
 *
 *   1. text/plain, UTF-8, base64: what happened, in Japanese and English
 *   2. message/delivery-status: Reporting-MTA, Arrival-Date, then per
 *      recipient Final-Recipient, Original-Recipient (when known),
 *      Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date
 *   3. text/rfc822-headers: the original message's header section
 *
 * A pure formatter: the queue spools the result with the null sender
 * <> (so a bounce never causes another: RFC 5321 6.1, 4.5.5).
 */
#ifndef SEKISHO_DSN_H
#define SEKISHO_DSN_H

#include <stddef.h>
#include <stdint.h>

#include "../core/str.h"

/* The original header section given is cut at this many bytes. */
#define DSN_HEADERS_MAX		(64 * 1024)

struct dsn_rcpt {
	const char	*address;	/* Final-Recipient */
	const char	*orcpt;		/* Original-Recipient or NULL */
	const char	*status;	/* "5.1.1" (RFC 3463) */
	const char	*remote_mta;	/* host name or NULL */
	const char	*diagnostic;	/* the server's reply on one line, or
					 * our own reason; NULL if none */
	int		 diagnostic_smtp; /* diagnostic is an SMTP reply */
	int64_t		 last_attempt;	/* unix time, 0 = never tried */
};

struct dsn_info {
	const char	*hostname;	/* Reporting-MTA, MAILER-DAEMON@ */
	const char	*id;		/* queue ID of the original */
	const char	*msgid_id;	/* queue ID of the DSN itself */
	const char	*to;		/* the original envelope sender */
	int64_t		 arrival;	/* when the original was queued */
	int64_t		 now;
	int		 delayed;	/* 1: a delay warning, not a failure */
	const struct dsn_rcpt *rcpts;
	size_t		 rcpt_count;
	const char	*headers;	/* original header section, CRLF */
	size_t		 headers_len;
};

/*
 * Append the whole DSN message (CRLF lines, no Received header) to out.
 * Returns 0, or -1 when there is no one to send it to (info->to empty:
 * the null sender never gets a DSN) or no recipient.
 */
int dsn_format(const struct dsn_info *info, struct str *out);

/* The header section of a message held in buf (up to its empty line,
 * or all of buf when there is none), at most DSN_HEADERS_MAX. */
size_t dsn_header_length(const char *buf, size_t len);

#endif
