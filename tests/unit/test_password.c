/*
 * test_password: yescrypt round trip, known vectors of the other accepted
 * methods (made by independent tools: openssl passwd, Openwall's
 * crypt_blowfish test set), and hashes that must be refused.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/password.h"
#include "unit.h"

struct verify_row {
	const char	*password;
	const char	*hash;
	int		 want;
	const char	*error;		/* when want is -1 */
};

static const struct verify_row verify_rows[] = {
	/* openssl passwd -6 -salt saltsalt secret */
	{ "secret", "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDe"
	    "hy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1", 1, NULL },
	{ "Secret", "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDe"
	    "hy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1", 0, NULL },
	/* openssl passwd -5 -salt saltsalt secret */
	{ "secret", "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA",
	    1, NULL },
	{ "secret!", "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA",
	    0, NULL },
	/* Openwall crypt_blowfish test vector for "U*U", in its 2a, 2b and
	 * 2y spellings (the same function for short passwords). */
	{ "U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
	    1, NULL },
	{ "U*U", "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
	    1, NULL },
	{ "U*U", "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
	    1, NULL },
	{ "U*V", "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
	    0, NULL },
	/* yescrypt with a fixed salt (mkpasswd -m yescrypt -S ...) */
	{ "secret", "$y$j9T$abcdefghijklmnopqrstu.$7uryFExhLbAhrpK1WytVzeNObCUV"
	    "aK3VoKccP3fJEIB", 1, NULL },
	{ "secreT", "$y$j9T$abcdefghijklmnopqrstu.$7uryFExhLbAhrpK1WytVzeNObCUV"
	    "aK3VoKccP3fJEIB", 0, NULL },
	/* Junk and refused methods. */
	{ "secret", "", -1, "unsupported password hash method" },
	{ "secret", "junk", -1, "unsupported password hash method" },
	/* DES crypt of "secret" with salt "ab": reads 8 characters only */
	{ "secret", "abZ3Qrw3ZzQ1.", -1, "unsupported password hash method" },
	/* MD5 crypt */
	{ "secret", "$1$saltsalt$Zg8J8iv8sP2T4bIi2sZ2D/", -1,
	    "unsupported password hash method" },
	{ "secret", "*", -1, "unsupported password hash method" },
	{ "secret", "!$6$saltsalt$x", -1, "unsupported password hash method" },
	/* Truncated: crypt computes a full hash that cannot be equal. */
	{ "secret", "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRst", -1,
	    "malformed password hash" },
	{ "secret", "$6$", -1, "malformed password hash" },
	{ "secret", "$y$", -1, "malformed password hash" },
	{ "secret", "$y$j9T$", -1, "malformed password hash" },
	{ "secret", "$2b$05$short", -1, "malformed password hash" },
	{ "secret", "$2b$99$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
	    -1, "malformed password hash" },
	{ "secret", "$6$salt salt$abc", -1, "malformed password hash" },
	{ "secret", "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0a"
	    "Dehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1\n", -1,
	    "malformed password hash" },
};

static void
test_verify_table(void)
{
	for (size_t i = 0; i < sizeof(verify_rows) / sizeof(verify_rows[0]);
	    i++) {
		const struct verify_row *r = &verify_rows[i];
		const char *error = NULL;
		int ret = password_verify(r->password, r->hash, &error);

		if (ret != r->want)
			fprintf(stderr, "row %zu: hash \"%s\"\n", i, r->hash);
		UNIT_CHECK_INT(ret, r->want);
		if (r->want == -1)
			UNIT_CHECK_STR(error, r->error);
	}
}

static void
test_hash_roundtrip(void)
{
	const char *error = NULL;
	char *h1, *h2;

	h1 = password_hash("correct horse", &error);
	UNIT_CHECK(h1 != NULL);
	if (h1 == NULL)
		return;
	UNIT_CHECK(strncmp(h1, "$y$", 3) == 0);
	UNIT_CHECK_INT(password_verify("correct horse", h1, &error), 1);
	UNIT_CHECK_INT(password_verify("correct horsE", h1, &error), 0);
	UNIT_CHECK_INT(password_verify("", h1, &error), 0);
	UNIT_CHECK_INT(password_check_hash(h1, &error), 0);

	/* A fresh salt each time. */
	h2 = password_hash("correct horse", &error);
	UNIT_CHECK(h2 != NULL);
	if (h2 != NULL) {
		UNIT_CHECK(strcmp(h1, h2) != 0);
		UNIT_CHECK_INT(password_verify("correct horse", h2, &error), 1);
	}
	free(h1);
	free(h2);

	/* Non-ASCII passwords are bytes like any other. */
	h1 = password_hash("\xe3\x81\x82\xe3\x81\x84", &error);
	UNIT_CHECK(h1 != NULL);
	if (h1 != NULL) {
		UNIT_CHECK_INT(password_verify("\xe3\x81\x82\xe3\x81\x84", h1,
		    &error), 1);
		UNIT_CHECK_INT(password_verify("\xe3\x81\x82", h1, &error), 0);
	}
	free(h1);

	error = NULL;
	UNIT_CHECK(password_hash("", &error) == NULL);
	UNIT_CHECK_STR(error, "empty password");
	error = NULL;
	UNIT_CHECK_INT(password_verify(NULL, "$y$", &error), -1);
	UNIT_CHECK_STR(error, "no password given");
}

static void
test_check_hash(void)
{
	const char *error = NULL;

	UNIT_CHECK_INT(password_check_hash("$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gR"
	    "stiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
	    &error), 0);
	UNIT_CHECK_INT(password_check_hash("$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9k"
	    "myuRGyh0XouQYb4YMJKvyOeW", &error), 0);
	UNIT_CHECK_INT(password_check_hash("$y$j9T$abcdefghijklmnopqrstu.$7uryF"
	    "ExhLbAhrpK1WytVzeNObCUVaK3VoKccP3fJEIB", &error), 0);
	UNIT_CHECK_INT(password_check_hash("$1$saltsalt$Zg8J8iv8sP2T4bIi2sZ2D/",
	    &error), -1);
	UNIT_CHECK_STR(error, "unsupported password hash method");
	UNIT_CHECK_INT(password_check_hash("$6$saltsalt$", &error), -1);
	UNIT_CHECK_STR(error, "malformed password hash");
	UNIT_CHECK_INT(password_check_hash("secret", &error), -1);
}

/* auth_cache_ttl: successes remembered, failures and new hashes not */
static void
test_cache(void)
{
	const char *error = NULL;
	uint64_t h0, m0, h, m;
	char *hash = password_hash("correct horse", &error);
	char *other = password_hash("correct horse", &error);

	UNIT_CHECK(hash != NULL && other != NULL);
	if (hash == NULL || other == NULL)
		return;
	password_cache_stats(&h0, &m0);
	UNIT_CHECK_INT(password_verify_cached("correct horse", hash, 300,
	    &error), 1);
	password_cache_stats(&h, &m);
	UNIT_CHECK(h == h0 && m == m0 + 1);
	UNIT_CHECK_INT(password_verify_cached("correct horse", hash, 300,
	    &error), 1);
	password_cache_stats(&h, &m);
	UNIT_CHECK(h == h0 + 1);
	/* a wrong password is hashed every time and never remembered */
	UNIT_CHECK_INT(password_verify_cached("wrong horse", hash, 300,
	    &error), 0);
	UNIT_CHECK_INT(password_verify_cached("wrong horse", hash, 300,
	    &error), 0);
	password_cache_stats(&h, &m);
	UNIT_CHECK(h == h0 + 1 && m == m0 + 3);
	/* the same password under a new hash (a password change) is a
	 * miss, and the old entry does not vouch for it */
	UNIT_CHECK_INT(password_verify_cached("correct horse", other, 300,
	    &error), 1);
	password_cache_stats(&h, &m);
	UNIT_CHECK(h == h0 + 1 && m == m0 + 4);
	/* ttl 0: plain password_verify, the cache is not looked at */
	UNIT_CHECK_INT(password_verify_cached("correct horse", hash, 0,
	    &error), 1);
	password_cache_stats(&h, &m);
	UNIT_CHECK(h == h0 + 1 && m == m0 + 4);
	/* an entry expires */
	UNIT_CHECK_INT(password_verify_cached("correct horse", other, 1,
	    &error), 1);	/* a hit: remembered above for 300 s */
	free(hash);
	hash = password_hash("battery staple", &error);
	UNIT_CHECK_INT(password_verify_cached("battery staple", hash, 1,
	    &error), 1);
	sleep(2);
	password_cache_stats(&h0, &m0);
	UNIT_CHECK_INT(password_verify_cached("battery staple", hash, 1,
	    &error), 1);
	password_cache_stats(&h, &m);
	UNIT_CHECK(h == h0 && m == m0 + 1);
	free(hash);
	free(other);
}

int
main(void)
{
	test_verify_table();
	test_hash_roundtrip();
	test_check_hash();
	test_cache();
	UNIT_END();
}
