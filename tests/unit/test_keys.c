/*
 * test_keys: the key objects of a session process (keys_client.c) sign
 * through a key process's answer (keyproc_answer) and the signatures
 * verify with the real public key: RSA PKCS#1 v1.5, RSA-PSS, ECDSA. A
 * thread plays the key process on a socket pair. Also the hex helpers
 * and the refusals of keyproc_answer.
 */
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "core/channel.h"
#include "core/hex.h"
#include "core/msg.h"
#include "keys/keys.h"
#include "unit.h"

static EVP_PKEY *keys[2];	/* the key process's: RSA, EC */

static void *
test_server(void *arg)
{
	int fd = *(int *)arg;

	for (;;) {
		struct msg m, r;
		int rr;

		while ((rr = channel_recv(fd, &m)) == 0)
			usleep(1000);
		if (rr < 0)
			return NULL;
		keyproc_answer(keys, 2, &m, &r);
		msg_deinit(&m);
		if (channel_send_blocking(fd, &r) < 0)
			return NULL;
	}
}

static EVP_PKEY *
test_remote(uint32_t index)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(keys[index], &der);
	const char *error = NULL;
	EVP_PKEY *pk;

	pk = keys_client_pkey(der, (size_t)len, index, &error);
	OPENSSL_free(der);
	UNIT_CHECK(pk != NULL);
	return pk;
}

/* sign with remote, verify with the real key; pss: RSA-PSS padding */
static int
test_sign_verify(EVP_PKEY *remote, EVP_PKEY *real, int pss)
{
	static const unsigned char data[] = "EHLO mail.example.jp";
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok;

	ok = EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, remote) == 1 &&
	    (!pss || EVP_PKEY_CTX_set_rsa_padding(pctx,
	    RSA_PKCS1_PSS_PADDING) == 1) &&
	    EVP_DigestSign(md, sig, &siglen, data, sizeof(data)) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return 0;
	md = EVP_MD_CTX_new();
	pctx = NULL;
	ok = EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, real) == 1 &&
	    (!pss || EVP_PKEY_CTX_set_rsa_padding(pctx,
	    RSA_PKCS1_PSS_PADDING) == 1) &&
	    EVP_DigestVerify(md, sig, siglen, data, sizeof(data)) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

static void
test_roundtrip(void)
{
	int pair[2];
	pthread_t t;
	EVP_PKEY *rsa, *ec;

	UNIT_CHECK_INT(channel_pair(pair), 0);
	UNIT_CHECK_INT(pthread_create(&t, NULL, test_server, &pair[1]), 0);
	rsa = test_remote(0);
	ec = test_remote(1);
	/* before a channel: no signature (and no crash) */
	UNIT_CHECK_INT(test_sign_verify(rsa, keys[0], 0), 0);
	keys_client_attach(pair[0]);
	UNIT_CHECK_INT(test_sign_verify(rsa, keys[0], 0), 1);
	UNIT_CHECK_INT(test_sign_verify(rsa, keys[0], 1), 1);
	UNIT_CHECK_INT(test_sign_verify(ec, keys[1], 0), 1);
	/* a signature by the wrong key does not verify */
	UNIT_CHECK_INT(test_sign_verify(ec, keys[0], 0), 0);
	keys_client_attach(-1);
	close(pair[0]);
	pthread_join(t, NULL);
	close(pair[1]);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
}

static const char *
test_refusal(uint32_t type, uint32_t key, uint32_t alg, const char *hex,
    int extra)
{
	static char why[64];
	struct msg m, w, r;
	uint32_t ok = 9;
	const char *s = NULL;

	msg_init(&m, type, 5);
	msg_add_u32(&m, key);
	msg_add_u32(&m, alg);
	msg_add_str(&m, hex);
	if (extra)
		msg_add_u32(&m, 0);
	UNIT_CHECK_INT(msg_seal(&m), 0);
	UNIT_CHECK_INT(msg_from_wire(&w, m.buf.s, m.buf.len, -1), 0);
	UNIT_CHECK_INT(keyproc_answer(keys, 2, &w, &r), 0);
	UNIT_CHECK_INT(msg_seal(&r), 0);
	msg_deinit(&w);
	UNIT_CHECK_INT(msg_from_wire(&w, r.buf.s, r.buf.len, -1), 0);
	UNIT_CHECK_INT((int)w.id, 5);
	UNIT_CHECK_INT(msg_get_u32(&w, &ok), 0);
	UNIT_CHECK_INT((int)ok, 0);
	UNIT_CHECK_INT(msg_get_str(&w, &s), 0);
	snprintf(why, sizeof(why), "%s", s != NULL ? s : "(null)");
	msg_deinit(&w);
	msg_deinit(&r);
	msg_deinit(&m);
	return why;
}

static void
test_refusals(void)
{
	char digest[65];

	memset(digest, 'a', 64);
	digest[64] = '\0';
	UNIT_CHECK_STR(test_refusal(KEYS_REQ_SIGN, 2, KEYS_ALG_ECDSA, digest,
	    0), "no such key");
	UNIT_CHECK_STR(test_refusal(KEYS_REQ_SIGN, 1, KEYS_ALG_RSA_PKCS1,
	    digest, 0), "not an RSA key");
	UNIT_CHECK_STR(test_refusal(KEYS_REQ_SIGN, 0, KEYS_ALG_ECDSA, digest,
	    0), "not an EC key");
	UNIT_CHECK_STR(test_refusal(KEYS_REQ_SIGN, 0, KEYS_ALG_RSA_RAW, digest,
	    0), "bad data length");
	UNIT_CHECK_STR(test_refusal(KEYS_REQ_SIGN, 0, 0, digest, 0),
	    "unknown algorithm");
	UNIT_CHECK_STR(test_refusal(KEYS_REQ_SIGN, 1, KEYS_ALG_ECDSA, "abc",
	    0), "bad data");
	UNIT_CHECK_STR(test_refusal(KEYS_REQ_SIGN, 1, KEYS_ALG_ECDSA, "ZZ",
	    0), "bad data");
	UNIT_CHECK_STR(test_refusal(KEYS_REQ_SIGN, 1, KEYS_ALG_ECDSA, NULL,
	    0), "malformed request");
	UNIT_CHECK_STR(test_refusal(KEYS_REQ_SIGN, 1, KEYS_ALG_ECDSA, digest,
	    1), "malformed request");
	UNIT_CHECK_STR(test_refusal(KEYS_REP_SIGN, 1, KEYS_ALG_ECDSA, digest,
	    0), "unknown request");
}

static void
test_hex(void)
{
	unsigned char in[4] = { 0x00, 0x7f, 0xa5, 0xff }, out[4];
	struct str s = STR_INIT;
	size_t n = 0;

	hex_encode(&s, in, sizeof(in));
	UNIT_CHECK_STR(str_c(&s), "007fa5ff");
	UNIT_CHECK_INT(hex_decode(str_c(&s), s.len, 0, out, sizeof(out), &n), 0);
	UNIT_CHECK_INT((int)n, 4);
	UNIT_CHECK(memcmp(in, out, 4) == 0);
	UNIT_CHECK_INT(hex_decode(str_c(&s), s.len, 0, out, 3, &n), -1);
	UNIT_CHECK_INT(hex_decode("0", 1, 0, out, sizeof(out), &n), -1);
	UNIT_CHECK_INT(hex_decode("0G", 2, 0, out, sizeof(out), &n), -1);
	UNIT_CHECK_INT(hex_decode("", 0, 0, out, sizeof(out), &n), 0);
	UNIT_CHECK_INT((int)n, 0);
	/* upper case only where asked for (APOP's files), not on the channel */
	UNIT_CHECK_INT(hex_decode("7FA5", 4, 0, out, sizeof(out), &n), -1);
	UNIT_CHECK_INT(hex_decode("7FA5", 4, 1, out, sizeof(out), &n), 0);
	UNIT_CHECK(n == 2 && out[0] == 0x7f && out[1] == 0xa5);
	str_deinit(&s);
}

int
main(void)
{
	keys[0] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	keys[1] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	UNIT_CHECK(keys[0] != NULL && keys[1] != NULL);
	test_hex();
	test_refusals();
	test_roundtrip();
	EVP_PKEY_free(keys[0]);
	EVP_PKEY_free(keys[1]);
	UNIT_END();
}
