/*
 * trace_token: sealed client tokens for the Received header (see
 * trace_token.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../core/config.h"
#include "../core/hex.h"
#include "../core/xmalloc.h"
#include "trace_token.h"

#define TT_KEY_LEN	32	/* AES-256, as apop.h */
#define TT_ID_LEN	4
#define TT_NONCE_LEN	12
#define TT_TAG_LEN	16
#define TT_PT_MAX	(8 + 1 + 63 + 319)
#define TT_AAD		"sekisho-trace-v1"
#define TT_FILE_MAX	(TRACE_TOKEN_KEYS_MAX * 100)

struct tt_key {
	unsigned char	 id[TT_ID_LEN];
	unsigned char	 key[TT_KEY_LEN];
	int64_t		 created;
};

struct tt_keys {
	struct tt_key	 k[TRACE_TOKEN_KEYS_MAX];
	size_t		 n;
};

static const char tt_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void
tt_b64_encode(const unsigned char *p, size_t n, struct str *out)
{
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = n - i;

		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		str_append_c(out, tt_b64[(v >> 18) & 63]);
		str_append_c(out, tt_b64[(v >> 12) & 63]);
		if (left > 1)
			str_append_c(out, tt_b64[(v >> 6) & 63]);
		if (left > 2)
			str_append_c(out, tt_b64[v & 63]);
	}
}

/* Strict: the alphabet only, no padding, unused bits zero. Returns the
 * octets written, or -1. */
static ssize_t
tt_b64_decode(const char *s, size_t len, unsigned char *out, size_t max)
{
	size_t o = 0;
	uint32_t v = 0;
	int bits = 0;

	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		const char *c = strchr(tt_b64, s[i]);

		if (s[i] == '\0' || c == NULL)
			return -1;
		v = (v << 6) | (uint32_t)(c - tt_b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == max)
				return -1;
			out[o++] = (unsigned char)(v >> bits);
		}
	}
	if (bits > 0 && (v & ((1u << bits) - 1)) != 0)
		return -1;
	return (ssize_t)o;
}

/* ---- the key file --------------------------------------------------- */

static int tt_error(const char **, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static int
tt_error(const char **error_r, const char *fmt, ...)
{
	static __thread char ebuf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ebuf, sizeof(ebuf), fmt, ap);
	va_end(ap);
	*error_r = ebuf;
	return -1;
}

static int
tt_new_key(struct tt_key *k, int64_t now)
{
	if (RAND_bytes(k->id, sizeof(k->id)) != 1 ||
	    RAND_bytes(k->key, sizeof(k->key)) != 1)
		return -1;
	k->created = now;
	return 0;
}

/* Write keys to path atomically (a 0600 temporary file, fsync, rename). */
static int
tt_write(const char *path, const struct tt_keys *ks, const char **error_r)
{
	struct str text = STR_INIT, tmp = STR_INIT;
	int fd, ret = -1;

	for (size_t i = 0; i < ks->n; i++) {
		hex_encode(&text, ks->k[i].id, TT_ID_LEN);
		str_append_c(&text, ' ');
		hex_encode(&text, ks->k[i].key, TT_KEY_LEN);
		str_printf(&text, " %lld\n", (long long)ks->k[i].created);
	}
	str_printf(&tmp, "%s.new", path);
	(void)unlink(str_c(&tmp));
	fd = open(str_c(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd < 0) {
		tt_error(error_r, "cannot create trace key file %s: %s",
		    str_c(&tmp), strerror(errno));
		goto out;
	}
	if (write(fd, text.s, text.len) != (ssize_t)text.len || fsync(fd) < 0) {
		tt_error(error_r, "cannot write trace key file %s: %s",
		    str_c(&tmp), strerror(errno));
		close(fd);
		(void)unlink(str_c(&tmp));
		goto out;
	}
	close(fd);
	if (rename(str_c(&tmp), path) < 0) {
		tt_error(error_r, "cannot replace trace key file %s: %s", path,
		    strerror(errno));
		(void)unlink(str_c(&tmp));
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(text.s, text.cap);
	str_deinit(&text);
	str_deinit(&tmp);
	return ret;
}

/* Parse the file's text; -1 when a line is not "ID HEX64 CREATED". */
static int
tt_parse(const char *text, size_t len, struct tt_keys *ks)
{
	const char *p = text, *end = text + len;

	ks->n = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		struct tt_key *k;
		char *e;
		size_t got;

		if (n == 0) {
			p += 1;
			continue;
		}
		if (ks->n == TRACE_TOKEN_KEYS_MAX || n < 8 + 1 + 64 + 2 ||
		    p[8] != ' ' || p[8 + 1 + 64] != ' ')
			return -1;
		k = &ks->k[ks->n];
		if (hex_decode(p, 8, 1, k->id, TT_ID_LEN, &got) < 0 ||
		    got != TT_ID_LEN || hex_decode(p + 9, 64, 1, k->key,
		    TT_KEY_LEN, &got) < 0 || got != TT_KEY_LEN)
			return -1;
		errno = 0;
		k->created = strtoll(p + 8 + 1 + 64 + 1, &e, 10);
		if (errno != 0 || e != p + n || k->created < 0)
			return -1;
		ks->n++;
		p += n + (nl != NULL);
	}
	return ks->n > 0 ? 0 : -1;
}

/* Read conf's key file into ks; when missing and create is set, make
 * one with a first key. st_r: the file's stat (cache check). */
static int
tt_load(const char *path, int create, int64_t now, struct tt_keys *ks,
    struct stat *st_r, const char **error_r)
{
	char *buf;
	ssize_t n;
	int fd;

	if (path == NULL || *path == '\0')
		return tt_error(error_r, "no trace_token_key configured");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT && create) {
		struct tt_keys first = { .n = 1 };

		if (tt_new_key(&first.k[0], now) < 0)
			return tt_error(error_r, "cannot make a random trace "
			    "key");
		if (tt_write(path, &first, error_r) < 0) {
			OPENSSL_cleanse(&first, sizeof(first));
			return -1;
		}
		OPENSSL_cleanse(&first, sizeof(first));
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0)
		return tt_error(error_r, "cannot open trace key file %s: %s",
		    path, strerror(errno));
	if (fstat(fd, st_r) < 0 || !S_ISREG(st_r->st_mode) ||
	    (st_r->st_mode & 077) != 0 || st_r->st_size > TT_FILE_MAX) {
		close(fd);
		return tt_error(error_r, "trace key file %s must be a regular "
		    "file readable by its owner only (chmod 600)", path);
	}
	buf = xmalloc(TT_FILE_MAX + 1);
	n = read(fd, buf, TT_FILE_MAX + 1);
	close(fd);
	if (n < 0 || n > TT_FILE_MAX || tt_parse(buf, (size_t)n, ks) < 0) {
		OPENSSL_cleanse(buf, TT_FILE_MAX + 1);
		free(buf);
		return tt_error(error_r, "trace key file %s: expected lines "
		    "\"ID HEX64 CREATED\"", path);
	}
	OPENSSL_cleanse(buf, TT_FILE_MAX + 1);
	free(buf);
	return 0;
}

/* The back side's copy, re-read when the file changes (a rotation by
 * the CLI while the daemon runs). */
static pthread_mutex_t tt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tt_keys tt_cache;
static struct stat tt_cache_st;
static int tt_cached;

static int
tt_current(const struct config *conf, int64_t now, struct tt_keys *ks,
    const char **error_r)
{
	struct stat st;
	int r = 0;

	pthread_mutex_lock(&tt_lock);
	if (!tt_cached || stat(conf->trace_token_key, &st) < 0 ||
	    st.st_mtim.tv_sec != tt_cache_st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != tt_cache_st.st_mtim.tv_nsec ||
	    st.st_ino != tt_cache_st.st_ino ||
	    st.st_size != tt_cache_st.st_size) {
		r = tt_load(conf->trace_token_key, 1, now, &tt_cache,
		    &tt_cache_st, error_r);
		tt_cached = r == 0;
	}
	if (r == 0)
		*ks = tt_cache;
	pthread_mutex_unlock(&tt_lock);
	return r;
}

/* ---- sealing -------------------------------------------------------- */

static void
tt_aad(const unsigned char id[TT_ID_LEN], unsigned char *aad)
{
	memcpy(aad, TT_AAD, sizeof(TT_AAD) - 1);
	memcpy(aad + sizeof(TT_AAD) - 1, id, TT_ID_LEN);
}

int
trace_token_seal(const struct config *conf, const char *client,
    const char *account, int64_t time, struct str *out,
    const char **error_r)
{
	struct tt_keys ks;
	const struct tt_key *k;
	unsigned char pt[TT_PT_MAX], ct[TT_PT_MAX + 16], nonce[TT_NONCE_LEN];
	unsigned char tag[TT_TAG_LEN], aad[sizeof(TT_AAD) - 1 + TT_ID_LEN];
	unsigned char raw[TT_ID_LEN + TT_NONCE_LEN + TT_PT_MAX + TT_TAG_LEN];
	size_t clen = strlen(client), alen = strlen(account), n = 0;
	EVP_CIPHER_CTX *ctx;
	int len = 0, fin = 0, ret = -1;

	if (clen > 63 || alen > 319)
		return tt_error(error_r, "trace token: client or account too "
		    "long");
	if (tt_current(conf, time, &ks, error_r) < 0)
		return -1;
	k = &ks.k[ks.n - 1];
	for (int i = 7; i >= 0; i--)
		pt[n++] = (unsigned char)((uint64_t)time >> (8 * i));
	pt[n++] = (unsigned char)clen;
	memcpy(pt + n, client, clen);
	n += clen;
	memcpy(pt + n, account, alen);
	n += alen;
	tt_aad(k->id, aad);
	*error_r = "cannot seal the trace token";
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    RAND_bytes(nonce, sizeof(nonce)) != 1 ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->key,
	    nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)sizeof(aad)) != 1 ||
	    EVP_EncryptUpdate(ctx, ct, &len, pt, (int)n) != 1 ||
	    EVP_EncryptFinal_ex(ctx, ct + len, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TT_TAG_LEN,
	    tag) != 1)
		goto out;
	memcpy(raw, k->id, TT_ID_LEN);
	memcpy(raw + TT_ID_LEN, nonce, TT_NONCE_LEN);
	memcpy(raw + TT_ID_LEN + TT_NONCE_LEN, ct, (size_t)(len + fin));
	memcpy(raw + TT_ID_LEN + TT_NONCE_LEN + len + fin, tag, TT_TAG_LEN);
	str_clear(out);
	str_append(out, TRACE_TOKEN_PREFIX);
	tt_b64_encode(raw, TT_ID_LEN + TT_NONCE_LEN + (size_t)(len + fin) +
	    TT_TAG_LEN, out);
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_cleanse(&ks, sizeof(ks));
	OPENSSL_cleanse(pt, sizeof(pt));
	return ret;
}

/* When key i stopped sealing (the next key's creation), 0: current. */
static int64_t
tt_retired(const struct tt_keys *ks, size_t i)
{
	return i + 1 < ks->n ? ks->k[i + 1].created : 0;
}

static int
tt_opens(const struct config *conf, const struct tt_keys *ks, size_t i,
    int64_t now)
{
	int64_t r = tt_retired(ks, i);

	return r == 0 || r + conf->trace_token_key_keep > now;
}

int
trace_token_open(const struct config *conf, const char *token, int64_t now,
    struct trace_token_info *info, const char **error_r)
{
	const size_t plen = strlen(TRACE_TOKEN_PREFIX);
	unsigned char raw[TT_ID_LEN + TT_NONCE_LEN + TT_PT_MAX + TT_TAG_LEN];
	unsigned char pt[TT_PT_MAX + 16];
	unsigned char aad[sizeof(TT_AAD) - 1 + TT_ID_LEN];
	struct tt_keys ks;
	struct stat st;
	const struct tt_key *k = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	ssize_t n;
	size_t ctlen, i;
	int len = 0, fin = 0, ret = -1;

	memset(info, 0, sizeof(*info));
	*error_r = "not a trace token (damaged)";
	if (strncmp(token, TRACE_TOKEN_PREFIX, plen) != 0 ||
	    strlen(token) > TRACE_TOKEN_MAX)
		return -1;
	n = tt_b64_decode(token + plen, strlen(token + plen), raw,
	    sizeof(raw));
	if (n < (ssize_t)(TT_ID_LEN + TT_NONCE_LEN + 9 + TT_TAG_LEN))
		return -1;
	if (tt_load(conf->trace_token_key, 0, now, &ks, &st, error_r) < 0)
		return -1;
	for (i = 0; i < ks.n; i++)
		if (memcmp(ks.k[i].id, raw, TT_ID_LEN) == 0) {
			k = &ks.k[i];
			break;
		}
	*error_r = "the key of this trace token is unknown or was retired "
	    "longer than trace_token_key_keep ago";
	if (k == NULL || !tt_opens(conf, &ks, i, now))
		goto out;
	ctlen = (size_t)n - TT_ID_LEN - TT_NONCE_LEN - TT_TAG_LEN;
	tt_aad(k->id, aad);
	*error_r = "the trace token does not open (forged or altered)";
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->key,
	    raw + TT_ID_LEN) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)sizeof(aad)) != 1 ||
	    EVP_DecryptUpdate(ctx, pt, &len, raw + TT_ID_LEN + TT_NONCE_LEN,
	    (int)ctlen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TT_TAG_LEN,
	    raw + (size_t)n - TT_TAG_LEN) != 1 ||
	    EVP_DecryptFinal_ex(ctx, pt + len, &fin) != 1)
		goto out;
	size_t ptlen = (size_t)(len + fin), clen;

	if (ptlen < 9 || (clen = pt[8]) > 63 || 9 + clen > ptlen ||
	    ptlen - 9 - clen > sizeof(info->account) - 1 ||
	    memchr(pt + 9, '\0', ptlen - 9) != NULL)
		goto out;
	for (int b = 0; b < 8; b++)
		info->time = (int64_t)(((uint64_t)info->time << 8) | pt[b]);
	memcpy(info->client, pt + 9, clen);
	info->client[clen] = '\0';
	memcpy(info->account, pt + 9 + clen, ptlen - 9 - clen);
	info->account[ptlen - 9 - clen] = '\0';
	for (int b = 0; b < TT_ID_LEN; b++)
		snprintf(info->key_id + 2 * b, 3, "%02x", k->id[b]);
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_cleanse(&ks, sizeof(ks));
	OPENSSL_cleanse(pt, sizeof(pt));
	return ret;
}

int
trace_token_rotate(const struct config *conf, int64_t now, char id_r[9],
    const char **error_r)
{
	struct tt_keys ks, keep = { .n = 0 };
	struct stat st;
	int r;

	if (tt_load(conf->trace_token_key, 1, now, &ks, &st, error_r) < 0)
		return -1;
	/* the current key becomes retired now: it opens for keep more */
	for (size_t i = 0; i < ks.n; i++)
		if (i + 1 == ks.n || tt_opens(conf, &ks, i, now))
			keep.k[keep.n++] = ks.k[i];
	if (keep.n == TRACE_TOKEN_KEYS_MAX) {
		memmove(&keep.k[0], &keep.k[1], (keep.n - 1) *
		    sizeof(keep.k[0]));
		keep.n--;
	}
	if (tt_new_key(&keep.k[keep.n], now) < 0) {
		OPENSSL_cleanse(&ks, sizeof(ks));
		return tt_error(error_r, "cannot make a random trace key");
	}
	keep.n++;
	for (int b = 0; b < TT_ID_LEN; b++)
		snprintf(id_r + 2 * b, 3, "%02x", keep.k[keep.n - 1].id[b]);
	r = tt_write(conf->trace_token_key, &keep, error_r);
	OPENSSL_cleanse(&ks, sizeof(ks));
	OPENSSL_cleanse(&keep, sizeof(keep));
	return r;
}

int
trace_token_keys(const struct config *conf, int64_t now,
    struct trace_token_key_row *rows, size_t max, const char **error_r)
{
	struct tt_keys ks;
	struct stat st;
	size_t i;

	if (tt_load(conf->trace_token_key, 0, now, &ks, &st, error_r) < 0)
		return -1;
	for (i = 0; i < ks.n && i < max; i++) {
		for (int b = 0; b < TT_ID_LEN; b++)
			snprintf(rows[i].id + 2 * b, 3, "%02x", ks.k[i].id[b]);
		rows[i].created = ks.k[i].created;
		rows[i].retired = tt_retired(&ks, i);
		rows[i].opens = tt_opens(conf, &ks, i, now);
	}
	OPENSSL_cleanse(&ks, sizeof(ks));
	return (int)i;
}

int
trace_token_key_make(const struct config *conf, int64_t now,
    const char **error_r)
{
	struct tt_keys ks;
	struct stat st;
	int r = tt_load(conf->trace_token_key, 1, now, &ks, &st, error_r);

	OPENSSL_cleanse(&ks, sizeof(ks));
	return r;
}
