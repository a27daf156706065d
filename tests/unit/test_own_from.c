/*
 * test_own_from: Authentication-Results as Rspamd and OpenDKIM write them,
 * read for the refuse_own_from check: only our authserv-id, only an
 * aligned pass, malformed fields never pass.
 */
#include <stdlib.h>
#include <string.h>

#include "policy/own_from.h"
#include "unit.h"

#define ID "mail.example.jp"
#define DOM "example.jp"

static int
passes(const char *v, const char **method_r)
{
	return own_from_ar_passes(v, strlen(v), ID, DOM, method_r);
}

static void
test_rspamd(void)
{
	const char *m;

	/* what Rspamd's milter_headers writes (folded) */
	UNIT_CHECK_INT(passes("mail.example.jp;\r\n\tdkim=pass header.d=example.jp "
	    "header.s=sekisho header.b=abcdEFGH;\r\n\tspf=fail (mail.example.jp: "
	    "domain of x@example.jp does not designate 127.0.0.1 as permitted "
	    "sender) smtp.mailfrom=x@example.jp;\r\n\tdmarc=pass (policy=reject) "
	    "header.from=example.jp", &m), 1);
	UNIT_CHECK_STR(m, "dkim");
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=none; spf=pass "
	    "smtp.mailfrom=alice@example.jp", &m), 1);
	UNIT_CHECK_STR(m, "spf");
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=none; spf=fail "
	    "smtp.mailfrom=x@example.jp; dmarc=pass header.from=example.jp",
	    &m), 1);
	UNIT_CHECK_STR(m, "dmarc");
	/* the forgery: everything fails */
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=none; spf=fail "
	    "(mail.example.jp: domain of x@example.jp does not designate "
	    "127.0.0.1 as permitted sender) smtp.mailfrom=x@example.jp; "
	    "dmarc=fail reason=\"No valid SPF, No valid DKIM\" "
	    "header.from=example.jp (policy=reject)", &m), 0);
	UNIT_CHECK(m == NULL);
	UNIT_CHECK_INT(passes("mail.example.jp; none", NULL), 0);
	UNIT_CHECK_INT(passes("mail.example.jp 1; spf=pass "
	    "smtp.mailfrom=example.jp", NULL), 1);
	UNIT_CHECK_INT(passes("\"mail.example.jp\"; dkim/1=pass "
	    "header.i=@example.jp", NULL), 1);
	/* OpenDKIM's form */
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=pass (2048-bit key; "
	    "unprotected) header.d=example.jp header.i=@example.jp "
	    "header.a=rsa-sha256 header.s=sekisho header.b=Ab1+/Cd", NULL), 1);
	/* a subdomain's signature aligns (relaxed) */
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=pass "
	    "header.d=mail.example.jp", NULL), 1);
	UNIT_CHECK_INT(passes("MAIL.Example.JP; DKIM=PASS "
	    "header.d=EXAMPLE.jp.", NULL), 1);
}

static void
test_not_trusted(void)
{
	/* another authserv-id: an attacker's header, or another host's */
	UNIT_CHECK_INT(passes("evil.example; dkim=pass header.d=example.jp",
	    NULL), 0);
	UNIT_CHECK_INT(passes("mail.example.jp.evil; dkim=pass "
	    "header.d=example.jp", NULL), 0);
	UNIT_CHECK_INT(passes("mail.example; dkim=pass header.d=example.jp",
	    NULL), 0);
	/* a pass, but not aligned with the From domain */
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=pass "
	    "header.d=attacker.example", NULL), 0);
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=pass header.d=jp", NULL),
	    0);
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=pass "
	    "header.d=notexample.jp", NULL), 0);
	UNIT_CHECK_INT(passes("mail.example.jp; spf=pass "
	    "smtp.mailfrom=x@attacker.example", NULL), 0);
	UNIT_CHECK_INT(passes("mail.example.jp; dmarc=pass "
	    "header.from=attacker.example", NULL), 0);
	/* a pass with no identifier */
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=pass", NULL), 0);
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=neutral "
	    "header.d=example.jp", NULL), 0);
	/* the pass hidden in a comment or a quoted reason */
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=fail (dkim=pass "
	    "header.d=example.jp) header.d=example.jp", NULL), 0);
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=fail "
	    "reason=\"; dkim=pass header.d=example.jp\" header.d=example.jp",
	    NULL), 0);
}

static void
test_malformed(void)
{
	char *big;

	UNIT_CHECK_INT(passes("", NULL), -1);
	UNIT_CHECK_INT(passes(";", NULL), -1);
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=pass header.d=example.jp"
	    " (unterminated", NULL), -1);
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=pass header.d=\"example.jp",
	    NULL), -1);
	UNIT_CHECK_INT(passes("mail.example.jp; dkim pass header.d=example.jp",
	    NULL), -1);
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=pass header.d",
	    NULL), -1);
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=pass header.d=example.jp"
	    " \x01", NULL), -1);
	UNIT_CHECK_INT(passes("mail.example.jp; dkim=pass header.d=example.jp"
	    " ((((((((((((((((((deep))))))))))))))))))", NULL), -1);
	/* too many results */
	big = malloc(OWN_FROM_AR_MAX + 2);
	if (big == NULL)
		abort();
	strcpy(big, ID);
	for (int i = 0; i <= OWN_FROM_RESULTS_MAX; i++)
		strcat(big, "; spf=fail");
	strcat(big, "; dkim=pass header.d=example.jp");
	UNIT_CHECK_INT(passes(big, NULL), -1);
	/* too long */
	memset(big, ' ', OWN_FROM_AR_MAX + 1);
	memcpy(big, ID "; dkim=pass header.d=example.jp",
	    strlen(ID "; dkim=pass header.d=example.jp"));
	big[OWN_FROM_AR_MAX + 1] = '\0';
	UNIT_CHECK_INT(passes(big, NULL), -1);
	free(big);
	/* not NUL-terminated where the length ends */
	UNIT_CHECK_INT(own_from_ar_passes("mail.example.jp; spf=pass "
	    "smtp.mailfrom=example.jpXYZ", strlen("mail.example.jp; spf=pass "
	    "smtp.mailfrom=example.jp"), ID, DOM, NULL), 1);
	UNIT_CHECK_INT(own_from_ar_passes("mail.example.jp 123", 17, ID, DOM,
	    NULL), 0);
}

static void
test_aligned(void)
{
	UNIT_CHECK_INT(own_from_aligned("example.jp", 10, "example.jp"), 1);
	UNIT_CHECK_INT(own_from_aligned("a.example.jp", 12, "example.jp"), 1);
	UNIT_CHECK_INT(own_from_aligned("example.jp", 10, "a.example.jp"), 1);
	UNIT_CHECK_INT(own_from_aligned("jp", 2, "example.jp"), 0);
	UNIT_CHECK_INT(own_from_aligned("xexample.jp", 11, "example.jp"), 0);
	UNIT_CHECK_INT(own_from_aligned("", 0, "example.jp"), 0);
	UNIT_CHECK_INT(own_from_aligned("example.jp", 10, ""), 0);
}

int
main(void)
{
	test_rspamd();
	test_not_trusted();
	test_malformed();
	test_aligned();
	UNIT_END();
}
