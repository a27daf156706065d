/*
 * sasl: the SASL PLAIN message (RFC 4616), after base64 decoding. Shared
 * pure code: SMTP and POP3 AUTH PLAIN.
 */
#include <string.h>

#include "sasl.h"
#include "str.h"

/* RFC 4616 2: [authzid] NUL authcid NUL passwd. */
int
sasl_plain_split(const struct str *decoded, const char **authzid_r,
    const char **authcid_r, const char **passwd_r)
{
	const char *s = decoded->s, *nul1, *nul2;
	size_t n = decoded->len;

	if (s == NULL || n == 0)
		return -1;
	if ((nul1 = memchr(s, '\0', n)) == NULL)
		return -1;
	nul2 = memchr(nul1 + 1, '\0', n - (nul1 + 1 - s));
	if (nul2 == NULL || memchr(nul2 + 1, '\0', n - (nul2 + 1 - s)) != NULL)
		return -1;
	/* authcid and passwd are 1*SAFE */
	if (nul2 == nul1 + 1 || nul2 + 1 == s + n)
		return -1;
	*authzid_r = s;
	*authcid_r = nul1 + 1;
	*passwd_r = nul2 + 1;
	return 0;
}
