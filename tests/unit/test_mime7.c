/* test_mime7: the 8-bit to 7-bit MIME converter (src/queue/mime7.c). */
#include <stdlib.h>
#include <string.h>

#include "queue/mime7.h"
#include "unit.h"

static const struct {
	const char	*name;
	const char	*in;
	int		 ret;
	const char	*out;		/* NULL: the same as in */
} rows[] = {
	{ "7-bit stays", "Subject: a\r\n\r\nhello\r\n", 0, NULL },
	{ "8-bit only in a header stays",
	  "Subject: \xe9\x96\xa2\r\n\r\nhello\r\n", 0, NULL },
	{ "8-bit text body: quoted-printable, MIME-Version added",
	  "Subject: a\r\n\r\ncaf\xc3\xa9 = ok \r\n", 0,
	  "Subject: a\r\nMIME-Version: 1.0\r\n"
	  "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	  "caf=C3=A9 =3D ok=20\r\n" },
	{ "the old encoding field is replaced, MIME-Version kept",
	  "MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\n"
	  "Content-Type: text/plain; charset=utf-8\r\n\r\n\xe3\x81\x82\r\n", 0,
	  "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	  "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E3=81=82\r\n" },
	{ "a non-text leaf: base64",
	  "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
	  "\r\n\xff\x01\x02", 0,
	  "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
	  "Content-Transfer-Encoding: base64\r\n\r\n/wEC" },
	{ "already quoted-printable: as it is (even if 8-bit)",
	  "Content-Transfer-Encoding: quoted-printable\r\n\r\n\xe9\r\n", 0,
	  NULL },
	{ "multipart: each part on its own",
	  "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
	  "boundary=\"b1\"\r\n\r\npre\xe9\r\n--b1\r\n"
	  "Content-Type: text/plain; charset=utf-8\r\n"
	  "Content-Transfer-Encoding: 8bit\r\n\r\n\xc3\xa9\r\n--b1\r\n"
	  "Content-Type: image/png\r\n\r\n\x89PNG\r\n--b1\r\n"
	  "Content-Type: text/plain\r\n\r\nascii\r\n--b1--  \r\nepi\xff\r\n", 0,
	  "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
	  "boundary=\"b1\"\r\n\r\npre#\r\n--b1\r\n"
	  "Content-Type: text/plain; charset=utf-8\r\n"
	  "Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9\r\n--b1\r\n"
	  "Content-Type: image/png\r\n"
	  "Content-Transfer-Encoding: base64\r\n\r\niVBORw==\r\n--b1\r\n"
	  "Content-Type: text/plain\r\n\r\nascii\r\n--b1--  \r\nepi#\r\n" },
	{ "multipart 8bit becomes 7bit; folded type; nested message/rfc822",
	  "Content-Type: multipart/mixed;\r\n\tboundary=xy\r\n"
	  "Content-Transfer-Encoding: 8bit\r\n\r\n--xy\r\n"
	  "Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\n\xe9\r\n"
	  "--xy--\r\n", 0,
	  "Content-Type: multipart/mixed;\r\n\tboundary=xy\r\n"
	  "Content-Transfer-Encoding: 7bit\r\n\r\n--xy\r\n"
	  "Content-Type: message/rfc822\r\n\r\nSubject: in\r\n"
	  "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n"
	  "--xy--\r\n" },
	{ "multipart/digest parts default to message/rfc822",
	  "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
	  "Subject: x\r\n\r\n\xe9\r\n--d--\r\n", 0,
	  "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
	  "Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	  "=E9\r\n--d--\r\n" },
	{ "a multipart without a boundary cannot be converted",
	  "Content-Type: multipart/mixed\r\n\r\n\xe9\r\n", -1, NULL },
	{ "no close delimiter: the last part to the end",
	  "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\n\xe9",
	  0, "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
	  "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9" },
	{ "a boundary that is only a prefix is no delimiter",
	  "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\n"
	  "--qq\r\n\xe9\r\n--q--\r\n", 0,
	  "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
	  "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	  "=2D-qq\r\n=E9\r\n--q--\r\n" },
	{ "no body at all", "Subject: \xe9", 0, NULL },
	{ "a boundary with a byte RFC 2046 does not allow",
	  "Content-Type: multipart/mixed; boundary=\"a#b\"\r\n\r\n\xe9\r\n",
	  -1, NULL },
};

static void
test_rows(void)
{
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct str out = STR_INIT;
		const char *error = NULL;
		int r = mime7_convert(rows[i].in, strlen(rows[i].in), &out,
		    &error);

		if (r != rows[i].ret)
			fprintf(stderr, "row: %s\n", rows[i].name);
		UNIT_CHECK_INT(r, rows[i].ret);
		if (r == 0)
			UNIT_CHECK_STR(str_c(&out), rows[i].out != NULL ?
			    rows[i].out : rows[i].in);
		else
			UNIT_CHECK(error != NULL);
		str_deinit(&out);
	}
}

/* A line over 998 octets is encoded, soft breaks keep lines <= 76. */
static void
test_long_line(void)
{
	struct str in = STR_INIT, out = STR_INIT;
	const char *error, *p, *body;
	size_t i, col = 0, max = 0;

	str_append(&in, "Subject: long\r\n\r\n");
	for (i = 0; i < 3000; i++)
		str_append_c(&in, (char)('a' + i % 26));
	str_append(&in, "\r\n");
	UNIT_CHECK(mime7_needs_encoding(in.s, in.len));
	UNIT_CHECK_INT(mime7_convert(in.s, in.len, &out, &error), 0);
	body = strstr(str_c(&out), "\r\n\r\n");
	UNIT_CHECK(body != NULL);
	UNIT_CHECK(strstr(str_c(&out), "quoted-printable") != NULL);
	for (p = body + 4; *p != '\0'; p++) {
		if (*p == '\n')
			col = 0;
		else if (*p != '\r')
			col++;
		if (col > max)
			max = col;
	}
	UNIT_CHECK(max <= 76 && max >= 70);
	str_deinit(&in);
	str_deinit(&out);
}

/* Nesting is bounded. */
static void
test_depth(void)
{
	struct str in = STR_INIT, out = STR_INIT;
	const char *error = NULL;
	int i;

	for (i = 0; i < MIME7_DEPTH_MAX + 5; i++)
		str_printf(&in, "Content-Type: multipart/mixed; boundary=b%d"
		    "\r\n\r\n--b%d\r\n", i, i);
	str_append(&in, "\r\n\xe9\r\n");
	UNIT_CHECK_INT(mime7_convert(in.s, in.len, &out, &error), -1);
	UNIT_CHECK_STR(error, "MIME parts nested too deep");
	str_deinit(&in);
	str_deinit(&out);
}

int
main(void)
{
	test_rows();
	test_long_line();
	test_depth();
	UNIT_END();
}
