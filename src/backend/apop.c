/*
 * apop: APOP digest and sealed APOP secrets (see apop.h).
 *
 * MD5 is what RFC 1939 section 7 prescribes; it is broken as a hash and
 * an eavesdropper who records a greeting and the digest can guess the
 * secret offline. TLS (STLS or port 995) is the real protection; APOP
 * is here because providers' notices still tell subscribers to use it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../core/hex.h"
#include "../core/xmalloc.h"
#include "apop.h"

#define APOP_NONCE_LEN	12	/* GCM's standard IV */
#define APOP_TAG_LEN	16
#define APOP_SEAL_PREFIX "v1:"

static const char apop_hexdigits[] = "0123456789abcdef";

void
apop_timestamp(struct str *out, const char *hostname)
{
	static unsigned long counter;
	struct timespec ts;
	uint32_t rnd;

	/* Called by the back side's worker threads (BE_APOP_TIMESTAMP):
	 * the counter is atomic; the random part makes the timestamp
	 * unpredictable. */
	clock_gettime(CLOCK_REALTIME, &ts);
	arc4random_buf(&rnd, sizeof(rnd));
	str_clear(out);
	str_printf(out, "<%ld.%lld%06ld%08x%lu@%s>", (long)getpid(),
	    (long long)ts.tv_sec, ts.tv_nsec / 1000, rnd,
	    __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED), hostname);
}

void
apop_digest(const char *timestamp, const char *secret,
    char hex[APOP_DIGEST_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) != 1 ||
	    EVP_DigestUpdate(ctx, secret, strlen(secret)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 16) {
		/* No MD5 (a FIPS-only OpenSSL): nothing can match. */
		EVP_MD_CTX_free(ctx);
		memset(hex, 'x', APOP_DIGEST_LEN);
		hex[APOP_DIGEST_LEN] = '\0';
		return;
	}
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < 16; i++) {
		hex[2 * i] = apop_hexdigits[md[i] >> 4];
		hex[2 * i + 1] = apop_hexdigits[md[i] & 0xf];
	}
	hex[APOP_DIGEST_LEN] = '\0';
}

int
apop_check(const char *timestamp, const char *secret, const char *digest)
{
	char want[APOP_DIGEST_LEN + 1], got[APOP_DIGEST_LEN + 1];
	size_t i;

	if (strlen(digest) != APOP_DIGEST_LEN)
		return 0;
	for (i = 0; i < APOP_DIGEST_LEN; i++) {
		char c = digest[i];

		got[i] = c >= 'A' && c <= 'F' ? (char)(c - 'A' + 'a') : c;
	}
	got[i] = '\0';
	apop_digest(timestamp, secret, want);
	return CRYPTO_memcmp(want, got, APOP_DIGEST_LEN) == 0;
}

/* Hex text of exactly 2 * len digits (either case) into out. */
static int
apop_unhex(const char *text, size_t textlen, unsigned char *out, size_t len)
{
	size_t n;

	if (textlen != 2 * len)
		return -1;
	return hex_decode(text, textlen, 1, out, len, &n);
}

static int
apop_key_create(const char *path, const char **error_r)
{
	static __thread char ebuf[512];
	unsigned char key[APOP_KEY_LEN];
	struct str text = STR_INIT;
	int fd, ret = -1;

	if (RAND_bytes(key, sizeof(key)) != 1) {
		*error_r = "cannot make a random APOP key";
		return -1;
	}
	hex_encode(&text, key, sizeof(key));
	str_append_c(&text, '\n');
	OPENSSL_cleanse(key, sizeof(key));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0) {
		snprintf(ebuf, sizeof(ebuf), "cannot create APOP key file %s: "
		    "%s", path, strerror(errno));
		*error_r = ebuf;
		goto out;
	}
	if (write(fd, text.s, text.len) != (ssize_t)text.len ||
	    fsync(fd) < 0) {
		snprintf(ebuf, sizeof(ebuf), "cannot write APOP key file %s: "
		    "%s", path, strerror(errno));
		*error_r = ebuf;
		close(fd);
		unlink(path);
		goto out;
	}
	close(fd);
	ret = 0;
out:
	OPENSSL_cleanse(text.s, text.cap);
	str_deinit(&text);
	return ret;
}

int
apop_key_load(const char *path, int create, unsigned char key[APOP_KEY_LEN],
    const char **error_r)
{
	static __thread char ebuf[512];
	char buf[2 * APOP_KEY_LEN + 4];
	struct stat st;
	ssize_t n;
	size_t len;
	int fd;

	if (path == NULL || *path == '\0') {
		*error_r = "no apop_secret_key configured";
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT && create) {
		if (apop_key_create(path, error_r) < 0)
			return -1;
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0) {
		snprintf(ebuf, sizeof(ebuf), "cannot open APOP key file %s: %s",
		    path, strerror(errno));
		*error_r = ebuf;
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_mode & 077) != 0) {
		close(fd);
		snprintf(ebuf, sizeof(ebuf), "APOP key file %s must be a "
		    "regular file readable by its owner only (chmod 600)",
		    path);
		*error_r = ebuf;
		return -1;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	len = n > 0 ? (size_t)n : 0;
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (n < 0 || apop_unhex(buf, len, key, APOP_KEY_LEN) < 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		snprintf(ebuf, sizeof(ebuf), "APOP key file %s: expected 64 "
		    "hex digits", path);
		*error_r = ebuf;
		return -1;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

int
apop_seal(const unsigned char key[APOP_KEY_LEN], const char *address,
    const char *secret, struct str *out, const char **error_r)
{
	unsigned char nonce[APOP_NONCE_LEN], tag[APOP_TAG_LEN];
	size_t slen = strlen(secret);
	unsigned char *ct = xmalloc(slen + 16);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0, ret = -1;

	*error_r = "cannot seal the APOP secret";
	if (ctx == NULL || RAND_bytes(nonce, sizeof(nonce)) != 1)
		goto out;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)address,
	    (int)strlen(address)) != 1 ||
	    EVP_EncryptUpdate(ctx, ct, &n, (const unsigned char *)secret,
	    (int)slen) != 1 ||
	    EVP_EncryptFinal_ex(ctx, ct + n, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, APOP_TAG_LEN,
	    tag) != 1)
		goto out;
	str_clear(out);
	str_append(out, APOP_SEAL_PREFIX);
	hex_encode(out, nonce, sizeof(nonce));
	hex_encode(out, ct, (size_t)(n + fin));
	hex_encode(out, tag, sizeof(tag));
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	free(ct);
	return ret;
}

int
apop_unseal(const unsigned char key[APOP_KEY_LEN], const char *address,
    const char *sealed, struct str *secret, const char **error_r)
{
	const size_t plen = strlen(APOP_SEAL_PREFIX);
	unsigned char nonce[APOP_NONCE_LEN], tag[APOP_TAG_LEN];
	size_t hexlen, ctlen;
	unsigned char *ct = NULL, *pt = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	int n = 0, fin = 0, ret = -1;

	*error_r = "sealed APOP secret is damaged";
	if (strncmp(sealed, APOP_SEAL_PREFIX, plen) != 0)
		return -1;
	sealed += plen;
	hexlen = strlen(sealed);
	if (hexlen % 2 != 0 ||
	    hexlen < 2 * (APOP_NONCE_LEN + APOP_TAG_LEN) ||
	    hexlen > 2 * (APOP_NONCE_LEN + APOP_TAG_LEN + APOP_SECRET_MAX))
		return -1;
	ctlen = hexlen / 2 - APOP_NONCE_LEN - APOP_TAG_LEN;
	ct = xmalloc(ctlen + 1);
	pt = xmalloc(ctlen + 16);
	if (apop_unhex(sealed, 2 * APOP_NONCE_LEN, nonce, sizeof(nonce)) < 0 ||
	    apop_unhex(sealed + 2 * APOP_NONCE_LEN, 2 * ctlen, ct, ctlen) < 0 ||
	    apop_unhex(sealed + 2 * (APOP_NONCE_LEN + ctlen), 2 * APOP_TAG_LEN,
	    tag, sizeof(tag)) < 0)
		goto out;
	*error_r = "cannot open the sealed APOP secret (wrong key, or not "
	    "this account's)";
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)address,
	    (int)strlen(address)) != 1 ||
	    EVP_DecryptUpdate(ctx, pt, &n, ct, (int)ctlen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, APOP_TAG_LEN,
	    tag) != 1 ||
	    EVP_DecryptFinal_ex(ctx, pt + n, &fin) != 1)
		goto out;
	if (memchr(pt, '\0', (size_t)(n + fin)) != NULL)
		goto out;
	str_clear(secret);
	str_append_n(secret, pt, (size_t)(n + fin));
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_cleanse(pt, ctlen + 16);
	free(ct);
	free(pt);
	return ret;
}
