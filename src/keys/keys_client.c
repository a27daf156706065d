/*
 * keys_client: a session process's private key objects. They hold the
 * public half only; the private operation is a request to the key
 * process on this process's channel (keys.h), answered before the
 * handshake goes on: the session loop waits for one round trip per full
 * handshake, as OpenSMTPD's smtp process does for its ca
 * (docs/performance.md "TLS handshakes" has the cost).
 *
 * XXX: RSA_METHOD and EC_KEY_METHOD are deprecated in OpenSSL 3.0 but
 * supported through 3.x; they are what libssl's legacy signing path
 * calls for a key with a method of its own ("foreign" key), which is
 * what OpenSMTPD and libtls use. A provider with its own key manager
 * and signature (the future-proof way) is several hundred lines and
 * has to reimplement PSS encoding and parameter export; this file is
 * the only one compiled with the deprecated API, hence
 * OPENSSL_SUPPRESS_DEPRECATED here and nowhere else.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "../core/channel.h"
#include "../core/hex.h"
#include "../core/log.h"
#include "../core/msg.h"
#include "keys.h"

static int keys_fd = -1;
static uint64_t keys_serial;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;
static RSA_METHOD *keys_rsa_meth;
static EC_KEY_METHOD *keys_ec_meth;
static int keys_rsa_index = -1;
static int keys_ec_index = -1;

void
keys_client_attach(int fd)
{
	keys_fd = fd;
}

static uint64_t
keys_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * One round trip: the signature's length in out, or -1 (logged). A
 * reply to an earlier request that timed out is skipped by its id.
 */
static int
keys_call(uintptr_t tag, uint32_t alg, const unsigned char *data, size_t len,
    unsigned char *out, size_t max)
{
	uint64_t start = keys_now_us(), id;
	struct str hex = STR_INIT;
	struct msg m;

	if (keys_fd < 0 || tag == 0) {
		log_warnx("tls: no key process to sign with");
		return -1;
	}
	if (len > KEYS_DATA_MAX) {
		log_warnx("tls: %zu bytes to sign: more than %d", len,
		    KEYS_DATA_MAX);
		return -1;
	}
	id = ++keys_serial;
	msg_init(&m, KEYS_REQ_SIGN, id);
	msg_add_u32(&m, (uint32_t)(tag - 1));
	msg_add_u32(&m, alg);
	hex_encode(&hex, data, len);
	msg_add_str(&m, str_c(&hex));
	str_deinit(&hex);
	if (channel_send_blocking(keys_fd, &m) < 0) {
		log_warnx("tls: key process channel: send failed");
		return -1;
	}
	for (;;) {
		uint64_t now = keys_now_us();
		struct pollfd pfd = { .fd = keys_fd, .events = POLLIN };
		const char *s = NULL;
		uint32_t ok = 0;
		size_t n = 0;
		struct msg r;
		int rr;

		if (now - start > (uint64_t)KEYS_TIMEOUT_MS * 1000) {
			log_warnx("tls: no answer from the key process in "
			    "%d ms", KEYS_TIMEOUT_MS);
			return -1;
		}
		if (poll(&pfd, 1, (int)((uint64_t)KEYS_TIMEOUT_MS -
		    (now - start) / 1000)) < 0 && errno != EINTR)
			return -1;
		if ((rr = channel_recv(keys_fd, &r)) == 0)
			continue;
		if (rr < 0) {
			log_warnx("tls: the key process is gone");
			return -1;
		}
		if (r.type != KEYS_REP_SIGN || r.id != id) {
			msg_deinit(&r);
			continue;
		}
		if (msg_get_u32(&r, &ok) < 0 || msg_get_str(&r, &s) < 0 ||
		    msg_end(&r) < 0 || s == NULL) {
			log_warnx("tls: malformed reply from the key process");
			msg_deinit(&r);
			return -1;
		}
		if (!ok) {
			log_warnx("tls: key process refused to sign: %s", s);
			msg_deinit(&r);
			return -1;
		}
		if (hex_decode(s, strlen(s), 0, out, max, &n) < 0) {
			log_warnx("tls: bad signature from the key process");
			msg_deinit(&r);
			return -1;
		}
		msg_deinit(&r);
		log_debug("tls: key process signed key=%u alg=%u usec=%llu",
		    (unsigned)(tag - 1), alg,
		    (unsigned long long)(keys_now_us() - start));
		return (int)n;
	}
}

/* libssl's legacy RSA path: PKCS#1 v1.5 (DigestInfo, type 1) and, with
 * no padding, the PSS-encoded message it built itself. */
static int
keys_rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to,
    RSA *rsa, int padding)
{
	uint32_t alg;

	if (padding == RSA_PKCS1_PADDING)
		alg = KEYS_ALG_RSA_PKCS1;
	else if (padding == RSA_NO_PADDING)
		alg = KEYS_ALG_RSA_RAW;
	else
		return -1;
	if (flen < 0)
		return -1;
	return keys_call((uintptr_t)RSA_get_ex_data(rsa, keys_rsa_index), alg,
	    from, (size_t)flen, to, (size_t)RSA_size(rsa));
}

/* RSA key transport (no forward secrecy) is not served: tls_ciphers
 * offers ECDHE only (docs/tls.md). */
static int
keys_rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to,
    RSA *rsa, int padding)
{
	(void)flen;
	(void)from;
	(void)to;
	(void)rsa;
	(void)padding;
	log_warnx("tls: RSA key transport asked: not served by the key "
	    "process");
	return -1;
}

static int
keys_ec_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
    unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *ec)
{
	int n;

	(void)type;
	(void)kinv;
	(void)r;
	if (dlen < 0)
		return 0;
	n = keys_call((uintptr_t)EC_KEY_get_ex_data(ec, keys_ec_index),
	    KEYS_ALG_ECDSA, dgst, (size_t)dlen, sig, (size_t)ECDSA_size(ec));
	if (n < 0)
		return 0;
	*siglen = (unsigned int)n;
	return 1;
}

static ECDSA_SIG *
keys_ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
    const BIGNUM *r, EC_KEY *ec)
{
	unsigned char sig[256];
	const unsigned char *p = sig;
	unsigned int len = 0;

	if (ECDSA_size(ec) > (int)sizeof(sig) ||
	    keys_ec_sign(0, dgst, dlen, sig, &len, kinv, r, ec) != 1)
		return NULL;
	return d2i_ECDSA_SIG(NULL, &p, (long)len);
}

static void
keys_init_once(void)
{
	keys_rsa_meth = RSA_meth_dup(RSA_PKCS1_OpenSSL());
	if (keys_rsa_meth != NULL) {
		RSA_meth_set1_name(keys_rsa_meth, "sekisho key process");
		RSA_meth_set_priv_enc(keys_rsa_meth, keys_rsa_priv_enc);
		RSA_meth_set_priv_dec(keys_rsa_meth, keys_rsa_priv_dec);
	}
	keys_ec_meth = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
	if (keys_ec_meth != NULL)
		EC_KEY_METHOD_set_sign(keys_ec_meth, keys_ec_sign, NULL,
		    keys_ec_sign_sig);
	keys_rsa_index = RSA_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	keys_ec_index = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

EVP_PKEY *
keys_client_pkey(const unsigned char *der, size_t len, uint32_t key,
    const char **error_r)
{
	const unsigned char *p = der;
	EVP_PKEY *pub, *pk = NULL;
	void *tag = (void *)((uintptr_t)key + 1);

	pthread_once(&keys_once, keys_init_once);
	if (keys_rsa_meth == NULL || keys_ec_meth == NULL ||
	    keys_rsa_index < 0 || keys_ec_index < 0) {
		*error_r = "keys: cannot make the key methods";
		return NULL;
	}
	if ((pub = d2i_PUBKEY(NULL, &p, (long)len)) == NULL) {
		ERR_clear_error();
		*error_r = "keys: bad public key from the key process";
		return NULL;
	}
	p = der;
	if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
		RSA *rsa = d2i_RSA_PUBKEY(NULL, &p, (long)len);

		if (rsa != NULL && RSA_set_method(rsa, keys_rsa_meth) == 1 &&
		    RSA_set_ex_data(rsa, keys_rsa_index, tag) == 1 &&
		    (pk = EVP_PKEY_new()) != NULL &&
		    EVP_PKEY_assign_RSA(pk, rsa) == 1)
			rsa = NULL;
		else {
			EVP_PKEY_free(pk);
			pk = NULL;
		}
		RSA_free(rsa);
	} else if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC) {
		EC_KEY *ec = d2i_EC_PUBKEY(NULL, &p, (long)len);

		if (ec != NULL && EC_KEY_set_method(ec, keys_ec_meth) == 1 &&
		    EC_KEY_set_ex_data(ec, keys_ec_index, tag) == 1 &&
		    (pk = EVP_PKEY_new()) != NULL &&
		    EVP_PKEY_assign_EC_KEY(pk, ec) == 1)
			ec = NULL;
		else {
			EVP_PKEY_free(pk);
			pk = NULL;
		}
		EC_KEY_free(ec);
	} else {
		EVP_PKEY_free(pub);
		*error_r = "keys: only RSA and EC keys are supported";
		return NULL;
	}
	EVP_PKEY_free(pub);
	if (pk == NULL) {
		ERR_clear_error();
		*error_r = "keys: cannot make the key object";
	}
	return pk;
}
