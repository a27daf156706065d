/*
 * test_trace: queue IDs and Message-IDs found in spam reports of the
 * shapes the abuse desk receives.
 */
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/str.h"
#include "policy/trace.h"
#include "smtp/smtp_parse.h"
#include "unit.h"

#define OURS "Received: from pc ([198.51.100.7])\r\n" \
	"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n" \
	"\tby mail.example.jp (sekisho) with ESMTPSA id 01A2055FD0D744E67641\r\n" \
	"\tfor <x@victim.example>; Sun, 22 Nov 2026 22:28:15 +0900\r\n"
#define THEIRS "Received: from mail.example.jp (mail.example.jp [192.0.2.1])\r\n" \
	"\tby mx.victim.example (Postfix) with ESMTPS id 4ABCDEF0123\r\n" \
	"\tfor <x@victim.example>; Sun, 22 Nov 2026 22:28:16 +0900\r\n"
#define MSGID "Message-ID: <spam.1@pc.example>\r\n"

static const struct {
	const char	*name;
	const char	*text;
	const char	*qid;		/* first queue id, or NULL */
	const char	*msgid;		/* first Message-ID, or NULL */
	size_t		 nqid;
} rows[] = {
	{ "pasted headers", THEIRS OURS MSGID "Subject: buy\r\n", 
	    "01A2055FD0D744E67641", "spam.1@pc.example", 1 },
	{ "LF line ends", "Received: from pc ([198.51.100.7])\n\tby h "
	    "(sekisho) with ESMTPA id 0123456789ABCDEF0123\n\tfor <a@b>; "
	    "date\nMessage-Id: <m@x>\n", "0123456789ABCDEF0123", "m@x", 1 },
	{ "not ours", THEIRS MSGID, NULL, "spam.1@pc.example", 0 },
	{ "lower-case hex is not an id", "Received: by h (sekisho) with "
	    "ESMTP id 0123456789abcdef0123; d\r\n", NULL, NULL, 0 },
	{ "id too long", "Received: by h (sekisho) with ESMTP id "
	    "0123456789ABCDEF01234; d\r\n", NULL, NULL, 0 },
	{ "attached message/rfc822", "From: reporter@victim.example\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
	    "Content-Type: text/plain\r\n\r\nspam!\r\n--b\r\n"
	    "Content-Type: message/rfc822\r\n\r\n" THEIRS OURS MSGID
	    "\r\nbody\r\n--b--\r\n", "01A2055FD0D744E67641",
	    "spam.1@pc.example", 1 },
	{ "duplicates once", OURS OURS, "01A2055FD0D744E67641", NULL, 1 },
	{ "empty", "", NULL, NULL, 0 },
};

static void
test_base64_attachment(void)
{
	struct str report = STR_INIT, b64 = STR_INIT;
	struct trace_keys k;
	static const char inner[] = THEIRS OURS MSGID "\r\nbody\r\n";

	base64_encode(inner, sizeof(inner) - 1, &b64);
	str_append(&report, "Content-Type: multipart/report; boundary=zz\r\n"
	    "\r\n--zz\r\nContent-Type: text/plain\r\n\r\nreport\r\n--zz\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n");
	for (size_t i = 0; i < b64.len; i += 76) {
		str_append_n(&report, b64.s + i, b64.len - i < 76 ?
		    b64.len - i : 76);
		str_append(&report, "\r\n");
	}
	str_append(&report, "--zz--\r\n");
	trace_extract(report.s, report.len, &k);
	UNIT_CHECK_INT(k.nqueue_ids, 1);
	if (k.nqueue_ids == 1)
		UNIT_CHECK_STR(k.queue_ids[0], "01A2055FD0D744E67641");
	UNIT_CHECK_INT(k.nmsgids, 1);
	trace_keys_free(&k);
	str_deinit(&report);
	str_deinit(&b64);
}

/* received_client = token: the token of our Received header only,
 * bounded, of its alphabet (issue 17 item 8). */
static void
test_tokens(void)
{
	struct trace_keys k;
	struct str long_tok = STR_INIT;
	static const char ours[] =
	    "Received: from submission (token t1.AbC-_9xyz)\r\n"
	    "\tby mail.example.jp (sekisho) with ESMTPSA id "
	    "01A2055FD0D744E67641\r\n\t; Sun, 6 Dec 2026 10:00:00 +0900\r\n"
	    "Received: from other (token t1.NOTOURS)\r\n\tby mx.example.net "
	    "with ESMTP id X\r\n"
	    "Received: from submission (token t1.bad<x>)\r\n\tby "
	    "mail.example.jp (sekisho) with ESMTPSA id 01A2055FD0D744E67642\r\n"
	    "\r\nbody (token t1.inbody)\r\n";

	trace_extract(ours, sizeof(ours) - 1, &k);
	UNIT_CHECK_INT(k.ntokens, 1);
	if (k.ntokens == 1)
		UNIT_CHECK_STR(k.tokens[0], "t1.AbC-_9xyz");
	UNIT_CHECK_INT(k.nqueue_ids, 2);
	trace_keys_free(&k);

	str_append(&long_tok, "Received: from submission (token t1.");
	for (int i = 0; i < TRACE_TOKEN_TEXT_MAX; i++)
		str_append_c(&long_tok, 'A');
	str_append(&long_tok, ")\r\n\tby h (sekisho) with ESMTPSA id "
	    "01A2055FD0D744E67641\r\n");
	trace_extract(long_tok.s, long_tok.len, &k);
	UNIT_CHECK_INT(k.ntokens, 0);
	UNIT_CHECK_INT(k.nqueue_ids, 1);
	trace_keys_free(&k);
	str_deinit(&long_tok);
}

int
main(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct trace_keys k;

		trace_extract(rows[i].text, strlen(rows[i].text), &k);
		if (k.nqueue_ids != rows[i].nqid)
			fprintf(stderr, "row: %s\n", rows[i].name);
		UNIT_CHECK_INT(k.nqueue_ids, rows[i].nqid);
		UNIT_CHECK_STR(k.nqueue_ids > 0 ? k.queue_ids[0] : NULL,
		    rows[i].qid);
		UNIT_CHECK_STR(k.nmsgids > 0 ? k.msgids[0] : NULL,
		    rows[i].msgid);
		trace_keys_free(&k);
	}
	test_base64_attachment();
	test_tokens();
	UNIT_END();
}
