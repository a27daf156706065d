/*
 * Unit tests of the settings page helpers: HTML escaping, Cookie header
 * parsing, language choice from Accept-Language, login names, the
 * rows that cross the seam (portal_rows.h), the HTTP framing check and
 * the event texts.
 */
#include <stdarg.h>
#include <stdlib.h>

#include <event2/http.h>

#include "portal/portal_rows.h"
#include "portal/portal_util.h"
#include "unit.h"

static void
test_escape(void)
{
	static const struct {
		const char *in, *want;
	} rows[] = {
		{ "", "" },
		{ "plain", "plain" },
		{ "<script>alert(1)</script>",
		  "&lt;script&gt;alert(1)&lt;/script&gt;" },
		{ "a&b", "a&amp;b" },
		{ "\"x\" 'y'", "&quot;x&quot; &#39;y&#39;" },
		{ "日本語", "日本語" },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct str s = STR_INIT;

		portal_html_escape(&s, rows[i].in);
		UNIT_CHECK_STR(str_c(&s), rows[i].want);
		str_deinit(&s);
	}
}

static void
test_cookie(void)
{
	static const struct {
		const char *header, *name;
		size_t len;
		int ret;
		const char *want;
	} rows[] = {
		{ "sid=abc", "sid", 64, 0, "abc" },
		{ "lang=en; sid=abc", "sid", 64, 0, "abc" },
		{ "lang=en;sid=abc ", "sid", 64, 0, "abc" },
		{ "xsid=abc; sid=def", "sid", 64, 0, "def" },
		{ "sidx=abc", "sid", 64, 1, NULL },
		{ "lang=en", "sid", 64, 1, NULL },
		{ "sid=", "sid", 64, 0, "" },
		{ "sid=abcdef", "sid", 4, 1, NULL },	/* too long */
		{ "", "sid", 64, 1, NULL },
		{ NULL, "sid", 64, 1, NULL },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char buf[64];
		int r = portal_cookie_get(rows[i].header, rows[i].name, buf,
		    rows[i].len);

		UNIT_CHECK_INT(r, rows[i].ret);
		if (r == 0)
			UNIT_CHECK_STR(buf, rows[i].want);
	}
}

static void
test_lang(void)
{
	static const struct {
		const char *accept;
		enum portal_lang want;
	} rows[] = {
		{ NULL, PORTAL_JA },
		{ "", PORTAL_JA },
		{ "en", PORTAL_EN },
		{ "en-US,en;q=0.9", PORTAL_EN },
		{ "ja,en-US;q=0.9,en;q=0.8", PORTAL_JA },
		{ "en-GB;q=0.8, ja;q=0.9", PORTAL_JA },
		{ "fr, en;q=0.5", PORTAL_EN },
		{ "fr", PORTAL_JA },
		{ "en;q=0", PORTAL_JA },
		{ "english", PORTAL_JA },
		{ "JA-jp", PORTAL_JA },
		{ "EN", PORTAL_EN },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum portal_lang got = portal_lang_from_accept(rows[i].accept);

		if (got != rows[i].want)
			fprintf(stderr, "row %zu: %s\n", i,
			    rows[i].accept ? rows[i].accept : "(null)");
		UNIT_CHECK_INT(got, rows[i].want);
	}
}

static void
test_name(void)
{
	UNIT_CHECK_INT(str_login_name_ok("alice@example.jp"), 1);
	UNIT_CHECK_INT(str_login_name_ok("日本@example.jp"), 1);
	UNIT_CHECK_INT(str_login_name_ok("a\nb"), 0);
	UNIT_CHECK_INT(str_login_name_ok("a\tb"), 0);
	UNIT_CHECK_INT(str_login_name_ok("a\rb"), 0);
	UNIT_CHECK_INT(str_login_name_ok("a\x7f"), 0);
	UNIT_CHECK_INT(str_login_name_ok("\x01"), 0);
}

/* A row packed and read back is the same row; strings over their bound
 * are cut at a character boundary; a reader refuses an over-long one. */
static void
test_rows(void)
{
	char big[1000];
	struct portal_event e = { 42, "2026-12-06 10:00 JST", "a@b.jp",
	    "sender_refused", "192.0.2.1", "US", big }, got;
	struct msg m, in;

	/* "あ" is 3 bytes: 255 is not a boundary after 85 of them + "x" */
	memset(big, 0, sizeof(big));
	big[0] = 'x';
	for (size_t i = 0; i < 300; i++)
		memcpy(big + 1 + 3 * i, "あ", 3);
	UNIT_CHECK_INT(portal_rows_cut_len(big, PORTAL_DETAIL_MAX), 253);
	UNIT_CHECK_INT(portal_rows_cut_len("short", 255), 5);

	msg_init(&m, 7, 1);
	portal_rows_event_pack(&m, &e);
	UNIT_CHECK_INT(msg_seal(&m), 0);
	UNIT_CHECK_INT(msg_from_wire(&in, m.buf.s, m.buf.len, -1), 0);
	UNIT_CHECK_INT(portal_rows_event_unpack(&in, &got), 0);
	UNIT_CHECK_INT(msg_end(&in), 0);
	UNIT_CHECK_INT(got.time, 42);
	UNIT_CHECK_STR(got.type, "sender_refused");
	UNIT_CHECK_STR(got.country, "US");
	UNIT_CHECK_INT(strlen(got.detail), 253);
	UNIT_CHECK(strncmp(got.detail, big, 253) == 0);
	msg_deinit(&in);
	msg_deinit(&m);

	/* a reader refuses a string over the bound (a forged reply) */
	msg_init(&m, 7, 1);
	msg_add_i64(&m, 1);
	msg_add_str(&m, big);		/* "when" of 901 bytes */
	UNIT_CHECK_INT(msg_seal(&m), 0);
	UNIT_CHECK_INT(msg_from_wire(&in, m.buf.s, m.buf.len, -1), 0);
	UNIT_CHECK_INT(portal_rows_event_unpack(&in, &got), -1);
	msg_deinit(&in);
	msg_deinit(&m);
}

/* Header lines as evhttp keeps them: "Name: value" pairs. */
static int
framing(int *code_r, const char **why_r, ...)
{
	struct evkeyvalq h;
	va_list ap;
	const char *k;
	int r;

	TAILQ_INIT(&h);
	va_start(ap, why_r);
	while ((k = va_arg(ap, const char *)) != NULL)
		evhttp_add_header(&h, k, va_arg(ap, const char *));
	va_end(ap);
	r = portal_http_framing(&h, code_r, why_r);
	evhttp_clear_headers(&h);
	return r;
}

static void
test_framing(void)
{
	int code;
	const char *why;

	UNIT_CHECK_INT(framing(&code, &why, "Host", "x", (char *)NULL), 0);
	UNIT_CHECK_INT(framing(&code, &why, "Content-Length", "5",
	    (char *)NULL), 0);
	/* equal duplicates count as one */
	UNIT_CHECK_INT(framing(&code, &why, "Content-Length", "5",
	    "content-length", "05", (char *)NULL), 0);
	UNIT_CHECK_INT(framing(&code, &why, "Content-Length", "5",
	    "Content-Length", "6", (char *)NULL), -1);
	UNIT_CHECK_INT(code, 400);
	UNIT_CHECK_STR(why, "Content-Lengths differ");
	for (size_t i = 0; i < 9; i++) {
		static const char *const bad[] = { "+5", "-5", "0x5", "5,5",
		    "5, 6", "5 5", "", "1234567890123456789", "5\t" };

		UNIT_CHECK_INT(framing(&code, &why, "Content-Length", bad[i],
		    (char *)NULL), -1);
		UNIT_CHECK_INT(code, 400);
	}
	UNIT_CHECK_INT(framing(&code, &why, "Transfer-Encoding", "chunked",
	    "Content-Length", "5", (char *)NULL), -1);
	UNIT_CHECK_INT(code, 400);
	UNIT_CHECK_INT(framing(&code, &why, "Transfer-Encoding", "Chunked",
	    (char *)NULL), -1);
	UNIT_CHECK_INT(code, 411);
	UNIT_CHECK_INT(framing(&code, &why, "Transfer-Encoding",
	    "gzip, chunked", (char *)NULL), -1);
	UNIT_CHECK_INT(code, 501);
	UNIT_CHECK_INT(framing(&code, &why, "Transfer-Encoding", "chunked",
	    "Transfer-Encoding", "chunked", (char *)NULL), -1);
	UNIT_CHECK_INT(code, 501);
	UNIT_CHECK_INT(framing(&code, &why, "Content-Length ", "5",
	    (char *)NULL), -1);
	UNIT_CHECK_INT(code, 400);
	UNIT_CHECK_INT(framing(&code, &why, "X-A", "a\x01b", (char *)NULL), -1);
	UNIT_CHECK_INT(framing(&code, &why, "X-A", "caf\xc3\xa9\tok",
	    (char *)NULL), 0);
}

static void
test_event_text(void)
{
	UNIT_CHECK_STR(portal_event_text("overseas_refused", PORTAL_EN),
	    "Refused: sent from abroad");
	UNIT_CHECK_STR(portal_event_text("limits_changed", PORTAL_JA),
	    "送信数の上限を変更（運用者）");
	UNIT_CHECK(portal_event_text("overseas_refusedx", PORTAL_JA) == NULL);
	UNIT_CHECK(portal_event_text("", PORTAL_EN) == NULL);
}

int
main(void)
{
	test_escape();
	test_cookie();
	test_lang();
	test_name();
	test_rows();
	test_framing();
	test_event_text();
	UNIT_END();
}
