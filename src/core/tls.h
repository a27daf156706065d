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

SSL_CTX *tls_server_ctx(const struct config *conf, const char **error_r);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" */
void tls_describe(SSL *ssl, struct str *out);

#endif
