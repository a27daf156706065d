/*
 * fuzz_dsn: the DSN generator on what outsiders control: the remote
 * server's reply text, the recipient address and the original message's
 * header section (input: three fields separated by NUL bytes). The
 * result must be a well-formed message: CRLF line ends only, the MIME
 * boundary only where we put it (the closing one once, at the end), and
 * everything before the original headers 7-bit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "queue/dsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *
field(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
	size_t n = nul == NULL ? (size_t)(end - *p) : (size_t)(nul - *p);
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, *p, n);
	s[n] = '\0';
	*p += nul == NULL ? n : n + 1;
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct dsn_rcpt r[2];
	struct dsn_info info;
	struct str out = STR_INIT;
	char *diag, *addr, *closing;
	const char *s, *hdrpart, *b, *last = NULL;
	size_t i, hlen, n;

	diag = field(&p, end);
	addr = field(&p, end);
	hlen = dsn_header_length((const char *)p, (size_t)(end - p));
	if (hlen > (size_t)(end - p) || hlen > DSN_HEADERS_MAX)
		abort();
	memset(r, 0, sizeof(r));
	r[0].address = addr[0] != '\0' ? addr : "x@example.net";
	r[0].status = "5.1.1";
	r[0].diagnostic = diag;
	r[0].diagnostic_smtp = 1;
	r[0].remote_mta = diag;
	r[0].last_attempt = 1763800000;
	r[1].address = "y@example.net";
	r[1].orcpt = addr;
	r[1].status = "4.4.7";
	memset(&info, 0, sizeof(info));
	info.hostname = "mail.example.jp";
	info.id = "0190A3F2C4B7E1D9A3F2";
	info.msgid_id = "0190A3F2C4B7E1D9A3F3";
	info.to = "alice@example.jp";
	info.arrival = 1763800000;
	info.now = 1763900000;
	info.delayed = size > 0 && data[0] == 'D';
	info.rcpts = r;
	info.rcpt_count = 2;
	info.headers = (const char *)p;
	info.headers_len = hlen;
	if (dsn_format(&info, &out) < 0)
		abort();

	s = str_c(&out);
	for (i = 0; i < out.len; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			abort();
		if (s[i] == '\r' && (i + 1 == out.len || s[i + 1] != '\n'))
			abort();
	}
	/* the boundary, from the Content-Type parameter */
	if ((b = strstr(s, "boundary=\"")) == NULL)
		abort();
	b += 10;
	closing = malloc(strlen(b) + 8);
	if (closing == NULL)
		abort();
	closing[0] = '-';
	closing[1] = '-';
	memcpy(closing + 2, b, (size_t)(strchr(b, '"') - b));
	closing[2 + (strchr(b, '"') - b)] = '\0';
	/* the delimiter lines: 3 parts and the closing one, nothing else */
	n = 0;
	for (b = s; (b = strstr(b, closing)) != NULL; b += strlen(closing)) {
		if (b == s || b[-1] != '\n')
			abort();
		n++;
		last = b;
	}
	if (n != 4 || strcmp(last + strlen(closing), "--\r\n") != 0)
		abort();
	hdrpart = strstr(s, "Content-Type: text/rfc822-headers");
	if (hdrpart == NULL)
		abort();
	for (i = 0; s + i < hdrpart; i++)
		if ((unsigned char)s[i] >= 0x80)
			abort();
	free(closing);
	free(diag);
	free(addr);
	str_deinit(&out);
	return 0;
}
