/*
 * Unit tests of the settings page helpers: HTML escaping, Cookie header
 * parsing, language choice from Accept-Language.
 */
#include <stdlib.h>

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

int
main(void)
{
	test_escape();
	test_cookie();
	test_lang();
	UNIT_END();
}
