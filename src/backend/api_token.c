/*
 * api_token: bearer tokens of the JSON API, hashed in the store (see
 * api_token.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../store/store.h"
#include "api_token.h"

#define API_TOKEN_SECRET_HEX	64

static void
api_token_hex(const unsigned char *raw, size_t n, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digits[raw[i] >> 4];
		hex[2 * i + 1] = digits[raw[i] & 15];
	}
	hex[2 * n] = '\0';
}

/* SHA-256 of s as 64 hex digits. */
static int
api_token_sha256(const char *s, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32)
		return -1;
	api_token_hex(md, 32, hex);
	return 0;
}

int
api_token_check(struct store *st, const char *token, char *name_r,
    const char **error_r)
{
	char want[65], have[STORE_HEX_TOKEN_LEN + 1];
	char name[API_TOKEN_NAME_MAX + 1];
	const char *dot = strchr(token, '.');
	size_t nlen;
	int r;

	if (dot == NULL || (nlen = (size_t)(dot - token)) == 0 ||
	    nlen > API_TOKEN_NAME_MAX ||
	    strlen(dot + 1) != API_TOKEN_SECRET_HEX)
		return 0;
	memcpy(name, token, nlen);
	name[nlen] = '\0';
	if (!store_name_ok(name) || api_token_sha256(token, want) < 0)
		return 0;
	if ((r = store_api_token_get(st, name, have, error_r)) != 0)
		return r < 0 ? -1 : 0;
	/* constant time over the hash */
	if (strlen(have) != 64 || CRYPTO_memcmp(have, want, 64) != 0)
		return 0;
	xstrlcpy(name_r, name, API_TOKEN_NAME_MAX + 1);
	return 1;
}

int
api_token_add(struct store *st, const char *name, char *token_r, size_t len,
    const char **error_r)
{
	unsigned char raw[API_TOKEN_SECRET_HEX / 2];
	char secret[API_TOKEN_SECRET_HEX + 1], hash[65];

	if (!store_name_ok(name)) {
		*error_r = "a token name is 1 to 32 of a-z, 0-9 and -";
		return -1;
	}
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		*error_r = "getrandom failed";
		return -1;
	}
	api_token_hex(raw, sizeof(raw), secret);
	OPENSSL_cleanse(raw, sizeof(raw));
	if ((size_t)snprintf(token_r, len, "%s.%s", name, secret) >= len ||
	    api_token_sha256(token_r, hash) < 0) {
		*error_r = "token too long";
		return -1;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	return store_api_token_add(st, name, hash, (int64_t)time(NULL),
	    error_r) < 0 ? -1 : 0;
}

int
api_token_del(struct store *st, const char *name, const char **error_r)
{
	return store_api_token_del(st, name, error_r);
}

/* NAME CREATED: the hash is nobody's business here */
static int
api_token_list_row(const struct store_name_row *row, void *context)
{
	str_printf(context, "%s\t%lld\n", row->name, (long long)row->created);
	return 0;
}

int
api_token_list(struct store *st, struct str *out, const char **error_r)
{
	return store_api_token_list(st, api_token_list_row, out, error_r);
}
