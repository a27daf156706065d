/*
 * tls: the server TLS context (OpenSSL 3). Built once at start by the
 * side that may read the key; session code gets only the SSL_CTX to make
 * SSL objects from, never the key file.
 */
#ifndef SEKISHO_TLS_H
#define SEKISHO_TLS_H

#include <openssl/ssl.h>

#include "str.h"

struct config;

/*
 * The server context for conf: tls_cert/tls_key and the common settings
 * (tls_min_protocol, tls_ciphers, tls_ciphersuites, tls_groups), with one
 * more context per tls_sni line chosen by the client's server name.
 * SSL_CTX_free of the result frees the SNI contexts too. Reads the key
 * files: call where they may be read (at start, or on reload).
 */
SSL_CTX *tls_server_ctx(const struct config *conf, const char **error_r);

/* Config checks (config.c rows): 0, or -1 with the reason in why. */
int tls_check_sni(const char *value, struct str *why);	/* NAME CERT KEY */
int tls_check_ciphers(const char *value, struct str *why);
int tls_check_ciphersuites(const char *value, struct str *why);
int tls_check_groups(const char *value, struct str *why);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" */
void tls_describe(SSL *ssl, struct str *out);

#endif
