/*
 * password: crypt(3) hashes for account passwords (see password.h).
 * libxcrypt does the work; this file only decides which methods are
 * acceptable, keeps the large crypt_data off the stack, and compares the
 * result in constant time.
 */
#include <crypt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "password.h"
#include "../core/xmalloc.h"

/*
 * Methods we accept. Traditional DES and MD5 crypt are left out on
 * purpose: DES looks at 8 characters only and both are cheap to attack;
 * an account carrying one must be given a new password. "$2a$" is the
 * same bcrypt as "$2b$" for passwords under 256 bytes and is what older
 * PHP and Dovecot installations wrote.
 */
static const char *const password_prefixes[] = {
	"$y$", "$6$", "$5$", "$2b$", "$2y$", "$2a$",
};

static int
password_prefix_ok(const char *hash)
{
	for (size_t i = 0; i < sizeof(password_prefixes) /
	    sizeof(password_prefixes[0]); i++) {
		if (strncmp(hash, password_prefixes[i],
		    strlen(password_prefixes[i])) == 0)
			return 1;
	}
	return 0;
}

/* crypt(3) strings use "./0-9A-Za-z", '$' as separator, and
 * "rounds=N" in SHA-crypt settings. */
static int
password_chars_ok(const char *hash)
{
	for (const char *p = hash; *p != '\0'; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '/' ||
		    c == '$' || c == '='))
			return 0;
	}
	return 1;
}

static struct crypt_data *
password_data_new(void)
{
	/* About 32 KiB: too large for a worker thread's stack. Zeroed,
	 * as crypt_r requires before first use. */
	return xcalloc(1, sizeof(struct crypt_data));
}

static void
password_data_free(struct crypt_data **data)
{
	/* The output and internal state hold the hash of a password. */
	explicit_bzero(*data, sizeof(**data));
	xfree(data);
}

char *
password_hash(const char *password, const char **error_r)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *data;
	const char *out;
	char *hash = NULL;

	if (password == NULL || *password == '\0') {
		*error_r = "empty password";
		return NULL;
	}
	/* count 0: libxcrypt's default cost; rbytes NULL: it reads the
	 * salt from the kernel's random source. */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting,
	    sizeof(setting)) == NULL || setting[0] == '*') {
		*error_r = "cannot make a yescrypt salt";
		return NULL;
	}
	data = password_data_new();
	out = crypt_r(password, setting, data);
	if (out == NULL || out[0] == '*')
		*error_r = "yescrypt hashing failed";
	else
		hash = xstrdup(out);
	password_data_free(&data);
	return hash;
}

int
password_verify(const char *password, const char *hash,
    const char **error_r)
{
	struct crypt_data *data;
	const char *out;
	size_t len;
	int ret;

	if (password == NULL) {
		*error_r = "no password given";
		return -1;
	}
	if (hash == NULL || !password_prefix_ok(hash)) {
		*error_r = "unsupported password hash method";
		return -1;
	}
	len = strlen(hash);
	if (len >= CRYPT_OUTPUT_SIZE || !password_chars_ok(hash)) {
		*error_r = "malformed password hash";
		return -1;
	}
	data = password_data_new();
	out = crypt_r(password, hash, data);
	if (out == NULL || out[0] == '*') {
		*error_r = "malformed password hash";
		ret = -1;
	} else if (strlen(out) != len) {
		/* A well-formed hash always comes back at its own length;
		 * anything else is truncated or carries bad parameters and
		 * could never match. */
		*error_r = "malformed password hash";
		ret = -1;
	} else {
		ret = CRYPTO_memcmp(out, hash, len) == 0 ? 1 : 0;
	}
	password_data_free(&data);
	return ret;
}

int
password_check_hash(const char *hash, const char **error_r)
{
	/* Hashing a dummy makes libxcrypt parse every parameter, so a hash
	 * accepted here is one that verify will accept. */
	return password_verify("", hash, error_r) < 0 ? -1 : 0;
}

/*
 * Logins that succeeded, remembered for a while (auth_cache_ttl). A
 * provider's subscribers poll POP3 every few minutes and submit several
 * messages a session, and yescrypt is slow on purpose: hashing at every
 * login made the key derivation the largest cost of a submission
 * (docs/performance.md). Dovecot's auth cache does the same.
 *
 * An entry is HMAC-SHA256(process key, stored hash NUL password): the
 * password is not kept, a changed password (a new stored hash) never
 * matches the old entry, and a wrong password is always hashed the slow
 * way, so guessing gains nothing. The key is random per process.
 */
#define PASSWORD_CACHE_SLOTS	4096

struct password_cache_entry {
	unsigned char	 mac[32];
	int64_t		 expires;	/* monotonic seconds; 0: empty */
};

static struct password_cache_entry password_cache[PASSWORD_CACHE_SLOTS];
static pthread_mutex_t password_cache_mutex = PTHREAD_MUTEX_INITIALIZER;
static unsigned char password_cache_key[32];
static int password_cache_ok;
static pthread_once_t password_cache_once = PTHREAD_ONCE_INIT;
static uint64_t password_cache_hits, password_cache_misses;

static void
password_cache_init(void)
{
	password_cache_ok = RAND_bytes(password_cache_key,
	    sizeof(password_cache_key)) == 1;
}

static int64_t
password_cache_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

static int
password_cache_mac(const char *password, const char *hash,
    unsigned char mac[32])
{
	size_t hl = strlen(hash), pl = strlen(password);
	unsigned char *buf = xmalloc(hl + 1 + pl);
	unsigned int len = 0;
	int ok;

	memcpy(buf, hash, hl + 1);
	memcpy(buf + hl + 1, password, pl);
	ok = HMAC(EVP_sha256(), password_cache_key,
	    (int)sizeof(password_cache_key), buf, hl + 1 + pl, mac, &len) !=
	    NULL && len == 32;
	OPENSSL_cleanse(buf, hl + 1 + pl);
	free(buf);
	return ok ? 0 : -1;
}

int
password_verify_cached(const char *password, const char *hash, int ttl,
    const char **error_r)
{
	struct password_cache_entry *e;
	unsigned char mac[32];
	int64_t now;
	int hit, ret;

	if (ttl <= 0 || password == NULL || hash == NULL)
		return password_verify(password, hash, error_r);
	pthread_once(&password_cache_once, password_cache_init);
	if (!password_cache_ok || password_cache_mac(password, hash, mac) < 0)
		return password_verify(password, hash, error_r);
	e = &password_cache[(((unsigned)mac[0] << 8) | mac[1]) %
	    PASSWORD_CACHE_SLOTS];
	now = password_cache_now();
	pthread_mutex_lock(&password_cache_mutex);
	hit = e->expires > now && CRYPTO_memcmp(e->mac, mac, 32) == 0;
	if (hit)
		password_cache_hits++;
	else
		password_cache_misses++;
	pthread_mutex_unlock(&password_cache_mutex);
	if (hit) {
		OPENSSL_cleanse(mac, sizeof(mac));
		return 1;
	}
	ret = password_verify(password, hash, error_r);
	if (ret == 1) {
		pthread_mutex_lock(&password_cache_mutex);
		memcpy(e->mac, mac, sizeof(mac));
		e->expires = password_cache_now() + ttl;
		pthread_mutex_unlock(&password_cache_mutex);
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return ret;
}

void
password_cache_stats(uint64_t *hits_r, uint64_t *misses_r)
{
	pthread_mutex_lock(&password_cache_mutex);
	*hits_r = password_cache_hits;
	*misses_r = password_cache_misses;
	pthread_mutex_unlock(&password_cache_mutex);
}
