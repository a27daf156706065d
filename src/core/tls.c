/*
 * tls: server context with the configured chain, key, protocol floor
 * and TLS 1.2 cipher list.
 */
#include <string.h>

#include <openssl/err.h>

#include "config.h"
#include "log.h"
#include "tls.h"

static const char *
tls_error(const char *what)
{
	static __thread char buf[512];
	unsigned long e = ERR_get_error();
	char ebuf[256];

	ERR_error_string_n(e, ebuf, sizeof(ebuf));
	snprintf(buf, sizeof(buf), "%s: %s", what, e != 0 ? ebuf : "?");
	ERR_clear_error();
	return buf;
}

SSL_CTX *
tls_server_ctx(const struct config *conf, const char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		*error_r = tls_error("SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx,
	    strcmp(conf->tls_min_protocol, "TLSv1.3") == 0 ?
	    TLS1_3_VERSION : TLS1_2_VERSION);
	/* No compression (CRIME), no client renegotiation, our order. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ctx, conf->tls_ciphers) != 1) {
		*error_r = tls_error("tls_ciphers");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, conf->tls_cert) != 1) {
		*error_r = tls_error(conf->tls_cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, conf->tls_key,
	    SSL_FILETYPE_PEM) != 1) {
		*error_r = tls_error(conf->tls_key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = tls_error("key does not match certificate");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_describe(SSL *ssl, struct str *out)
{
	int alg = 0;
	int bits = SSL_get_cipher_bits(ssl, &alg);

	str_printf(out, "%s with cipher %s (%d/%d bits)",
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl), bits, alg);
}
