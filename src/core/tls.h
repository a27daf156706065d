/*
 * tls: the server TLS context (OpenSSL 3). Built by the master at start
 * and on reload from the certificates and the public halves of the keys
 * the key process holds (src/keys/keys.h): session code gets the SSL_CTX
 * to make SSL objects from, and it holds no private key, only key
 * objects whose private operation is a request to the key process.
 */
#ifndef SEKISHO_TLS_H
#define SEKISHO_TLS_H

#include <openssl/ssl.h>

#include "str.h"

struct config;
struct keys_pubs;

/*
 * The key files of conf in key-index order (keys.h): tls_key, then the
 * key of each tls_sni line. Free with tls_key_files_free.
 */
int tls_key_files(const struct config *conf, char ***paths_r, size_t *n_r,
    const char **error_r);
void tls_key_files_free(char **paths, size_t n);

/*
 * The server context for conf: tls_cert and the common settings
 * (tls_min_protocol, tls_ciphers, tls_ciphersuites, tls_groups), with one
 * more context per tls_sni line chosen by the client's server name; the
 * key of each is made from pubs (the key process's answer for
 * tls_key_files), and must match its certificate. SSL_CTX_free of the
 * result frees the SNI contexts too. Reads the certificate files.
 */
SSL_CTX *tls_server_ctx(const struct config *conf,
    const struct keys_pubs *pubs, const char **error_r);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" */
void tls_describe(SSL *ssl, struct str *out);

#endif
