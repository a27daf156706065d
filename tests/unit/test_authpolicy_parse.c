/*
 * test_authpolicy_parse: Dovecot auth policy requests: the HTTP head and
 * the JSON body (table-driven).
 */
#include <stdio.h>
#include <string.h>

#include "authpolicy/authpolicy_parse.h"
#include "unit.h"

static const struct {
	const char	*head;
	int		 want;		/* 0 ok, -1 error */
	int		 command;
	size_t		 length;
	const char	*key;		/* NULL: none */
} heads[] = {
	{ "POST /?command=allow HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\n"
	  "Content-Length: 12\r\n\r\n", 0, AUTHPOLICY_ALLOW, 12, "k" },
	{ "POST /policy?x=1&command=report HTTP/1.0\nContent-Length: 0\n"
	  "x-api-key:   spaced  \n\n", 0, AUTHPOLICY_REPORT, 0, "spaced" },
	{ "POST /?command=allow HTTP/1.1\r\nContent-Length: 16384\r\n\r\n",
	  0, AUTHPOLICY_ALLOW, 16384, NULL },
	{ "POST /?command=allow HTTP/1.1\r\nContent-Length: 16385\r\n\r\n",
	  -1, 0, 0, NULL },
	{ "POST /?command=allow HTTP/1.1\r\nContent-Length: "
	  "99999999999999999999999999\r\n\r\n", -1, 0, 0, NULL },
	{ "POST /?command=allow HTTP/1.1\r\nContent-Length: 1\r\n"
	  "Content-Length: 1\r\n\r\n", -1, 0, 0, NULL },
	{ "POST /?command=allow HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
	  -1, 0, 0, NULL },
	{ "POST /?command=allow HTTP/1.1\r\n\r\n", -1, 0, 0, NULL },
	{ "GET /?command=allow HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
	  -1, 0, 0, NULL },
	{ "POST /?command=allowed HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
	  -1, 0, 0, NULL },
	{ "POST /?command=allow&command=report HTTP/1.1\r\n"
	  "Content-Length: 0\r\n\r\n", -1, 0, 0, NULL },
	{ "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", -1, 0, 0, NULL },
	{ "POST /?command=allow HTTP/2\r\nContent-Length: 0\r\n\r\n",
	  -1, 0, 0, NULL },
	{ "POST /?command=allow HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	  "Content-Length: 0\r\n\r\n", -1, 0, 0, NULL },
	{ "POST /?command=allow HTTP/1.1\r\nNo colon\r\n"
	  "Content-Length: 0\r\n\r\n", -1, 0, 0, NULL },
	{ "POST /?command=allow HTTP/1.1\r\nBad Name: x\r\n"
	  "Content-Length: 0\r\n\r\n", -1, 0, 0, NULL },
};

static const struct {
	const char	*body;
	int		 want;
	const char	*login, *remote, *account;
	int		 success;
} bodies[] = {
	{ "{\"login\":\"alice@example.jp\",\"pwhash\":\"0a\",\"remote\":"
	  "\"192.0.2.1\",\"protocol\":\"imap\",\"session_id\":\"S\","
	  "\"account\":\"\"}", 0, "alice@example.jp", "192.0.2.1", "", -1 },
	{ " { \"login\" : \"a\\u00e9\\ud83d\\ude00\\n\" , \"success\":true,"
	  "\"policy_reject\":false,\"x\":{\"y\":[1,-2.5e+3,null,{}]}} ",
	  0, "a\xc3\xa9\xf0\x9f\x98\x80\n", "", "", 1 },
	{ "{}", 0, "", "", "", -1 },
	{ "", -1, NULL, NULL, NULL, 0 },
	{ "[]", -1, NULL, NULL, NULL, 0 },
	{ "{\"login\":\"a\"}x", -1, NULL, NULL, NULL, 0 },
	{ "{\"login\":1}", -1, NULL, NULL, NULL, 0 },
	{ "{\"login\":\"a\",\"login\":\"a\"}", -1, NULL, NULL, NULL, 0 },
	{ "{\"success\":1}", -1, NULL, NULL, NULL, 0 },
	{ "{\"login\":\"a\\u0000\"}", -1, NULL, NULL, NULL, 0 },
	{ "{\"login\":\"\\ud83d\"}", -1, NULL, NULL, NULL, 0 },
	{ "{\"login\":\"a\x01\"}", -1, NULL, NULL, NULL, 0 },
	{ "{\"login\":\"a\\q\"}", -1, NULL, NULL, NULL, 0 },
	{ "{\"login\":\"a\"", -1, NULL, NULL, NULL, 0 },
	{ "{\"login\" \"a\"}", -1, NULL, NULL, NULL, 0 },
	{ "{\"x\":01}", -1, NULL, NULL, NULL, 0 },
	{ "{\"x\":[1,]}", -1, NULL, NULL, NULL, 0 },
	{ "{\"x\":[[[[[[[[[[1]]]]]]]]]]}", -1, NULL, NULL, NULL, 0 },
	{ "{\"x\":[[[[[[1]]]]]]}", 0, "", "", "", -1 },
	{ "{\"x\":tru}", -1, NULL, NULL, NULL, 0 },
	{ "{\"x\":1,\"x\":2}", -1, NULL, NULL, NULL, 0 },
	{ "{\"login\":\"\xff\"}", -1, NULL, NULL, NULL, 0 },
	{ "{\"success\":\"true\"}", -1, NULL, NULL, NULL, 0 },
};

int
main(void)
{
	struct authpolicy_head h;
	struct authpolicy_request r;
	const char *error;
	char big[AUTHPOLICY_MAX_VALUE + 32];

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		const char *t = heads[i].head;
		long hl = authpolicy_head_len(t, strlen(t));
		int got;

		UNIT_CHECK_INT(hl, (long)strlen(t));
		got = authpolicy_parse_head(t, strlen(t), &h, &error);
		if (got != heads[i].want)
			fprintf(stderr, "head %zu: %s\n", i, t);
		UNIT_CHECK_INT(got, heads[i].want);
		if (got != 0)
			continue;
		UNIT_CHECK_INT((int)h.command, heads[i].command);
		UNIT_CHECK_INT((long)h.content_length, (long)heads[i].length);
		UNIT_CHECK_INT(h.has_key, heads[i].key != NULL);
		if (heads[i].key != NULL)
			UNIT_CHECK_STR(h.key, heads[i].key);
	}
	/* incomplete, and too long without an end */
	UNIT_CHECK_INT(authpolicy_head_len("POST / HTTP/1.1\r\n", 17), 0);
	{
		static char longhead[AUTHPOLICY_MAX_HEAD + 10];

		memset(longhead, 'a', sizeof(longhead));
		UNIT_CHECK_INT(authpolicy_head_len(longhead,
		    sizeof(longhead)), -1);
		UNIT_CHECK_INT(authpolicy_head_len("a\0b\n\n", 5), -1);
	}
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		const char *b = bodies[i].body;
		int got = authpolicy_parse_body(b, strlen(b), &r, &error);

		if (got != bodies[i].want)
			fprintf(stderr, "body %zu: %s\n", i, b);
		UNIT_CHECK_INT(got, bodies[i].want);
		if (got != 0)
			continue;
		UNIT_CHECK_STR(r.login, bodies[i].login);
		UNIT_CHECK_STR(r.remote, bodies[i].remote);
		UNIT_CHECK_STR(r.account, bodies[i].account);
		UNIT_CHECK_INT(r.success, bodies[i].success);
	}
	/* a value at the bound, and one over it */
	snprintf(big, sizeof(big), "{\"login\":\"%0*d\"}",
	    AUTHPOLICY_MAX_VALUE, 0);
	UNIT_CHECK_INT(authpolicy_parse_body(big, strlen(big), &r, &error), 0);
	snprintf(big, sizeof(big), "{\"login\":\"%0*d\"}",
	    AUTHPOLICY_MAX_VALUE + 1, 0);
	UNIT_CHECK_INT(authpolicy_parse_body(big, strlen(big), &r, &error),
	    -1);
	UNIT_END();
}
