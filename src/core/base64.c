/*
 * base64: RFC 4648 section 4, strict. Shared pure code: SMTP and POP3
 * AUTH (session side), the MTA's AUTH, DSNs and the policy's notices
 * (back side), the trace parser (both).
 */
#include <stddef.h>

#include "base64.h"
#include "str.h"

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Padding is required and only at the end; the unused bits before the
 * padding must be zero (RFC 4648 3.5), so each text has one decoding.
 */
int
base64_decode(const char *in, size_t len, struct str *out)
{
	const unsigned char *u = (const unsigned char *)in;
	size_t start = out->len, i;
	unsigned char bytes[3];
	int v[4], k, pad;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		pad = 0;
		if (i + 4 == len) {
			if (u[i + 3] == '=')
				pad = u[i + 2] == '=' ? 2 : 1;
		}
		for (k = 0; k < 4 - pad; k++) {
			if ((v[k] = base64_value(u[i + k])) < 0)
				goto fail;
		}
		for (; k < 4; k++)
			v[k] = 0;
		if ((pad == 2 && (v[1] & 0x0f) != 0) ||
		    (pad == 1 && (v[2] & 0x03) != 0))
			goto fail;
		bytes[0] = (unsigned char)((v[0] << 2) | (v[1] >> 4));
		bytes[1] = (unsigned char)(((v[1] & 0x0f) << 4) | (v[2] >> 2));
		bytes[2] = (unsigned char)(((v[2] & 0x03) << 6) | v[3]);
		str_append_n(out, bytes, 3 - pad);
	}
	return 0;
fail:
	str_truncate(out, start);
	return -1;
}

void
base64_encode(const void *in, size_t len, struct str *out)
{
	const unsigned char *u = in;
	char q[4];
	size_t i;
	unsigned int v;

	for (i = 0; i < len; i += 3) {
		v = (unsigned int)u[i] << 16;
		if (i + 1 < len)
			v |= (unsigned int)u[i + 1] << 8;
		if (i + 2 < len)
			v |= u[i + 2];
		q[0] = base64_alphabet[(v >> 18) & 0x3f];
		q[1] = base64_alphabet[(v >> 12) & 0x3f];
		q[2] = i + 1 < len ? base64_alphabet[(v >> 6) & 0x3f] : '=';
		q[3] = i + 2 < len ? base64_alphabet[v & 0x3f] : '=';
		str_append_n(out, q, 4);
	}
}
