/*
 * dsn: RFC 3464 delivery status notifications (see dsn.h).
 *
 * Everything outside the third part is 7-bit: header fields with UTF-8
 * text are RFC 2047 encoded words, the human-readable part is base64,
 * and the delivery-status fields carry only printable ASCII (an address
 * with UTF-8 in it is written as RFC 6533 utf-8-addr-xtext). The
 * original headers are copied with their line ends made CRLF, and the
 * MIME boundary is chosen so that it appears nowhere in them (RFC 2046
 * 5.1.1), whatever a sender put there.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/xmalloc.h"
#include "../core/base64.h"
#include "dsn.h"

/* RFC 2047 2: an encoded word is at most 75 characters; 45 bytes of
 * text make 60 of base64, 72 with "=?UTF-8?B?" and "?=". */
#define DSN_WORD_BYTES	45
#define DSN_FIELD_MAX	400	/* one delivery-status value, cut */

static void
dsn_date(struct str *out, int64_t t)
{
	char buf[64];
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		xstrlcpy(buf, "Thu, 01 Jan 1970 00:00:00 +0000", sizeof(buf));
	str_append(out, buf);
}

/* Length of the UTF-8 sequence starting at p (1 for a stray byte). */
static size_t
dsn_utf8_len(const unsigned char *p, size_t left)
{
	size_t n, i;

	if (p[0] < 0x80)
		return 1;
	n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 1;
	if (n > left)
		return 1;
	for (i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 1;
	return n;
}

/* "Name: " then text as encoded words, folded (RFC 2047 2, 5(1)),
 * never splitting a UTF-8 character. */
static void
dsn_header_encoded(struct str *out, const char *name, const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t left = strlen(text), take, n;

	str_printf(out, "%s:", name);
	while (left > 0) {
		take = 0;
		while (take < left) {
			n = dsn_utf8_len(p + take, left - take);
			if (take + n > DSN_WORD_BYTES)
				break;
			take += n;
		}
		str_append(out, " =?UTF-8?B?");
		base64_encode(p, take, out);
		str_append(out, "?=");
		p += take;
		left -= take;
		if (left > 0)
			str_append(out, "\r\n");
	}
	str_append(out, "\r\n");
}

/* base64 body lines of 76 characters (RFC 2045 6.8). */
static void
dsn_base64_body(struct str *out, const struct str *text)
{
	const char *p = str_c(text);
	size_t left = text->len, take;

	while (left > 0) {
		take = left > 57 ? 57 : left;
		base64_encode(p, take, out);
		str_append(out, "\r\n");
		p += take;
		left -= take;
	}
}

/* Printable ASCII only, cut at max; for values from outside. */
static void
dsn_printable(struct str *out, const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= max) {
			str_append(out, "...");
			return;
		}
		str_append_c(out, c >= 0x20 && c < 0x7f ? (char)c : '?');
	}
}

/*
 * "rfc822; addr" for an ASCII address, else "utf-8; " with each non-ASCII
 * character as \x{HEX} (RFC 6533 3: utf-8-addr-xtext), and control
 * characters, '\\' and '+' and '=' escaped the same way.
 */
static void
dsn_address_field(struct str *out, const char *addr)
{
	const unsigned char *p = (const unsigned char *)addr;
	size_t left = strlen(addr), n, i;
	int ascii = 1;

	for (i = 0; i < left; i++)
		if (p[i] >= 0x7f || p[i] < 0x20)
			ascii = 0;
	if (ascii) {
		str_append(out, "rfc822; ");
		dsn_printable(out, addr, DSN_FIELD_MAX);
		return;
	}
	str_append(out, "utf-8; ");
	for (i = 0; i < left && out->len < DSN_FIELD_MAX * 8; i += n) {
		uint32_t cp;

		n = dsn_utf8_len(p + i, left - i);
		if (n == 1 && p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' &&
		    p[i] != '+' && p[i] != '=') {
			str_append_c(out, (char)p[i]);
			continue;
		}
		if (n == 1)
			cp = p[i] < 0x80 ? p[i] : 0xfffd;
		else {
			cp = p[i] & (0xff >> (n + 1));
			for (size_t k = 1; k < n; k++)
				cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		str_printf(out, "\\x{%" PRIX32 "}", cp);
	}
}

/* The original headers with every line end made CRLF, NULs dropped. */
static void
dsn_copy_headers(struct str *out, const char *h, size_t len)
{
	size_t i;

	if (len > DSN_HEADERS_MAX)
		len = DSN_HEADERS_MAX;
	for (i = 0; i < len; i++) {
		if (h[i] == '\r') {
			str_append(out, "\r\n");
			if (i + 1 < len && h[i + 1] == '\n')
				i++;
		} else if (h[i] == '\n')
			str_append(out, "\r\n");
		else if (h[i] != '\0')
			str_append_c(out, h[i]);
	}
	if (out->len < 2 || memcmp(str_c(out) + out->len - 2, "\r\n", 2) != 0)
		str_append(out, "\r\n");
}

size_t
dsn_header_length(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len && i < DSN_HEADERS_MAX; i++) {
		if (buf[i] != '\n')
			continue;
		/* an empty line: LF then CRLF or LF */
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 1;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 1;
	}
	return i;
}

/* A boundary that appears in nothing we copy into the message (RFC 2046
 * 5.1.1): the original headers and every per-recipient value. Values are
 * copied byte for byte or with bytes replaced by '?', which the boundary
 * does not contain, so looking in the inputs is enough. */
static int
dsn_boundary_in(const struct dsn_info *info, const struct str *headers,
    const char *b)
{
	size_t i;

	if (memmem(str_c(headers), headers->len, b, strlen(b)) != NULL)
		return 1;
	for (i = 0; i < info->rcpt_count; i++) {
		const struct dsn_rcpt *r = &info->rcpts[i];
		const char *v[] = { r->address, r->orcpt, r->status,
		    r->remote_mta, r->diagnostic };
		size_t k;

		for (k = 0; k < sizeof(v) / sizeof(v[0]); k++)
			if (v[k] != NULL && strstr(v[k], b) != NULL)
				return 1;
	}
	return 0;
}

static char *
dsn_boundary(const struct dsn_info *info, const struct str *headers)
{
	char *b = NULL;
	unsigned n;

	for (n = 0;; n++) {
		free(b);
		b = xasprintf("=_sekisho_%s_%u", info->msgid_id, n);
		if (!dsn_boundary_in(info, headers, b))
			return b;
	}
}

static void
dsn_human(struct str *t, const struct dsn_info *info)
{
	size_t i;

	str_printf(t, "これは %s のメール配送システムからの自動送信メッセージ"
	    "です。\n\n", info->hostname);
	if (info->delayed)
		str_append(t, "お送りいただいたメールは、次の宛先へまだ配送"
		    "できていません。\n配送は引き続き自動で試みますので、"
		    "このメッセージへの対応は不要です。\n");
	else
		str_append(t, "申し訳ありませんが、お送りいただいたメールを"
		    "次の宛先へ配送できませんでした。\n宛先のアドレスと"
		    "理由をご確認ください。元のメールのヘッダーを添付して"
		    "います。\n");
	str_append(t, "\n");
	for (i = 0; i < info->rcpt_count; i++) {
		const struct dsn_rcpt *r = &info->rcpts[i];

		str_append(t, "  <");
		dsn_printable(t, r->address, DSN_FIELD_MAX);
		str_append(t, ">\n");
		if (r->diagnostic != NULL) {
			str_append(t, "    ");
			if (r->remote_mta != NULL) {
				dsn_printable(t, r->remote_mta, 255);
				str_append(t, ": ");
			}
			dsn_printable(t, r->diagnostic, DSN_FIELD_MAX);
			str_append(t, "\n");
		}
	}
	str_printf(t, "\n---\n\nThis is the mail delivery system at %s.\n\n",
	    info->hostname);
	if (info->delayed)
		str_append(t, "Your message has not yet been delivered to the "
		    "recipients below.\nDelivery will be retried; you do not "
		    "need to do anything.\n");
	else
		str_append(t, "Your message could not be delivered to the "
		    "recipients below.\nPlease check the addresses and the "
		    "reasons. The headers of your message are attached.\n");
	str_append(t, "\n");
	for (i = 0; i < info->rcpt_count; i++) {
		const struct dsn_rcpt *r = &info->rcpts[i];

		str_append(t, "  <");
		dsn_printable(t, r->address, DSN_FIELD_MAX);
		str_append(t, ">: ");
		str_append(t, info->delayed ? "delayed" : "failed");
		str_printf(t, " (status %s)\n", r->status);
	}
}

int
dsn_format(const struct dsn_info *info, struct str *out)
{
	struct str headers = STR_INIT, text = STR_INIT;
	char *boundary;
	size_t i;
	int eight = 0;

	if (info->to == NULL || info->to[0] == '\0' || info->rcpt_count == 0)
		return -1;
	dsn_copy_headers(&headers, info->headers != NULL ? info->headers : "",
	    info->headers != NULL ? info->headers_len : 0);
	for (i = 0; i < headers.len; i++)
		if ((unsigned char)str_c(&headers)[i] >= 0x80)
			eight = 1;
	boundary = dsn_boundary(info, &headers);

	str_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    info->hostname);
	str_append(out, "To: <");
	dsn_printable(out, info->to, DSN_FIELD_MAX);
	str_append(out, ">\r\n");
	dsn_header_encoded(out, "Subject", info->delayed ?
	    "配信遅延のお知らせ (Delayed Mail: still being retried)" :
	    "配信不能のお知らせ (Undelivered Mail Returned to Sender)");
	str_append(out, "Date: ");
	dsn_date(out, info->now);
	str_printf(out, "\r\nMessage-ID: <%s.dsn@%s>\r\n", info->msgid_id,
	    info->hostname);
	/* RFC 3834 5: never answered automatically. */
	str_append(out, "Auto-Submitted: auto-replied\r\n");
	str_append(out, "MIME-Version: 1.0\r\n");
	str_printf(out, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary);
	str_append(out, "\r\nThis is a MIME-encapsulated delivery status "
	    "notification (RFC 3464).\r\n\r\n");

	/* 1: the human-readable part */
	str_printf(out, "--%s\r\n", boundary);
	str_append(out, "Content-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Description: Notification\r\n\r\n");
	dsn_human(&text, info);
	dsn_base64_body(out, &text);
	str_append(out, "\r\n");

	/* 2: RFC 3464 2.2 per-message, 2.3 per-recipient fields */
	str_printf(out, "--%s\r\n", boundary);
	str_append(out, "Content-Type: message/delivery-status\r\n"
	    "Content-Description: Delivery report\r\n\r\n");
	str_printf(out, "Reporting-MTA: dns; %s\r\n", info->hostname);
	if (info->id != NULL)
		str_printf(out, "X-Sekisho-Queue-ID: %s\r\n", info->id);
	str_append(out, "Arrival-Date: ");
	dsn_date(out, info->arrival);
	str_append(out, "\r\n");
	for (i = 0; i < info->rcpt_count; i++) {
		const struct dsn_rcpt *r = &info->rcpts[i];

		str_append(out, "\r\n");
		if (r->orcpt != NULL && r->orcpt[0] != '\0') {
			/* ORCPT already is "addr-type;xtext" (RFC 3461
			 * 4.2): kept as given. */
			str_append(out, "Original-Recipient: ");
			dsn_printable(out, r->orcpt, DSN_FIELD_MAX);
			str_append(out, "\r\n");
		}
		str_append(out, "Final-Recipient: ");
		dsn_address_field(out, r->address);
		str_printf(out, "\r\nAction: %s\r\n",
		    info->delayed ? "delayed" : "failed");
		str_append(out, "Status: ");
		dsn_printable(out, r->status, 16);
		str_append(out, "\r\n");
		if (r->remote_mta != NULL && r->remote_mta[0] != '\0') {
			str_append(out, "Remote-MTA: dns; ");
			dsn_printable(out, r->remote_mta, 255);
			str_append(out, "\r\n");
		}
		if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
			str_append(out, r->diagnostic_smtp ?
			    "Diagnostic-Code: smtp; " :
			    "Diagnostic-Code: X-Sekisho; ");
			dsn_printable(out, r->diagnostic, DSN_FIELD_MAX);
			str_append(out, "\r\n");
		}
		if (r->last_attempt > 0) {
			str_append(out, "Last-Attempt-Date: ");
			dsn_date(out, r->last_attempt);
			str_append(out, "\r\n");
		}
	}
	str_append(out, "\r\n");

	/* 3: the original header section (RFC 6522 + RFC 3462 text/
	 * rfc822-headers); 8bit only when a sender put raw bytes there. */
	str_printf(out, "--%s\r\n", boundary);
	str_append(out, "Content-Type: text/rfc822-headers\r\n");
	if (eight)
		str_append(out, "Content-Transfer-Encoding: 8bit\r\n");
	str_append(out, "Content-Description: Undelivered message headers"
	    "\r\n\r\n");
	str_append_n(out, str_c(&headers), headers.len);
	str_printf(out, "\r\n--%s--\r\n", boundary);

	free(boundary);
	str_deinit(&headers);
	str_deinit(&text);
	return 0;
}
