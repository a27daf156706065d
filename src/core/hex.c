/*
 * hex: see hex.h.
 */
#include "hex.h"
#include "str.h"

void
hex_encode(struct str *out, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		str_append_c(out, digits[p[i] >> 4]);
		str_append_c(out, digits[p[i] & 15]);
	}
}

static int
hex_value(char c, int any_case)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (any_case && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
hex_decode(const char *s, size_t len, int any_case, unsigned char *out,
    size_t max, size_t *n_r)
{
	if (len % 2 != 0 || len / 2 > max)
		return -1;
	for (size_t i = 0; i < len; i += 2) {
		int hi = hex_value(s[i], any_case);
		int lo = hex_value(s[i + 1], any_case);

		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	*n_r = len / 2;
	return 0;
}
