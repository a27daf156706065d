/*
 * tls: the server contexts. One default context with tls_cert/tls_key,
 * and one more per tls_sni line, chosen by the name the client sends
 * (RFC 6066 3); every context gets the same protocol floor, cipher
 * lists, groups and options, so a name picks a certificate and nothing
 * else. The SNI contexts hang off the default one (ex_data), so
 * SSL_CTX_free of what tls_server_ctx returns frees them all and a
 * reload is one call.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "../keys/keys.h"
#include "config.h"
#include "log.h"
#include "tls.h"
#include "tls_check.h"
#include "xmalloc.h"

/* The names of one tls_sni line and the context of its certificate. */
struct tls_sni_entry {
	char	*name;		/* "mail.example.jp" or "*.example.jp" */
	SSL_CTX	*ctx;
};

struct tls_sni_table {
	struct tls_sni_entry *entries;
	size_t	 count;
};

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_sni_index = -1;

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

static void
tls_sni_table_free(struct tls_sni_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->count; i++) {
		free(t->entries[i].name);
		SSL_CTX_free(t->entries[i].ctx);
	}
	free(t->entries);
	free(t);
}

/* ex_data free callback: the default context takes its SNI table along. */
static void
tls_sni_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	tls_sni_table_free(ptr);
}

static void
tls_init_once(void)
{
	tls_sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL,
	    tls_sni_ex_free);
}

/*
 * One context: the common settings, one certificate chain and the key
 * object of key index (keys.h): its public half, its private operation
 * a request to the key process. No private key is ever in a context.
 */
static SSL_CTX *
tls_ctx_new(const struct config *conf, const char *cert,
    const struct keys_pubs *pubs, uint32_t index, const char **error_r)
{
	static __thread char ebuf[600];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *pkey;
	int ok;

	if (ctx == NULL) {
		*error_r = tls_error("SSL_CTX_new");
		return NULL;
	}
	/* Nothing below TLS 1.2 (RFC 8996 retired 1.0 and 1.1). */
	if (SSL_CTX_set_min_proto_version(ctx,
	    strcmp(conf->tls_min_protocol, "TLSv1.3") == 0 ?
	    TLS1_3_VERSION : TLS1_2_VERSION) != 1) {
		*error_r = tls_error("tls_min_protocol");
		goto fail;
	}
	/* No compression (CRIME), no renegotiation (a client could make
	 * us do the expensive half again and again), our order. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ctx, conf->tls_ciphers) != 1) {
		*error_r = tls_error("tls_ciphers");
		goto fail;
	}
	if (SSL_CTX_set_ciphersuites(ctx, conf->tls_ciphersuites) != 1) {
		*error_r = tls_error("tls_ciphersuites");
		goto fail;
	}
	if (SSL_CTX_set1_groups_list(ctx, conf->tls_groups) != 1) {
		*error_r = tls_error("tls_groups");
		goto fail;
	}
	/* The chain file: server certificate first, then intermediates,
	 * all sent to the client (RFC 8446 4.4.2). */
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		*error_r = tls_error(cert);
		goto fail;
	}
	if ((pkey = keys_client_pkey((const unsigned char *)pubs->der[index].s,
	    pubs->der[index].len, index, error_r)) == NULL)
		goto fail;
	/* libssl compares it with the certificate's public key */
	ok = SSL_CTX_use_PrivateKey(ctx, pkey) == 1 &&
	    SSL_CTX_check_private_key(ctx) == 1;
	EVP_PKEY_free(pkey);
	if (!ok) {
		ERR_clear_error();
		snprintf(ebuf, sizeof(ebuf), "%s: the key (%s) does not match "
		    "the certificate", cert, index == 0 ? "tls_key" :
		    "its tls_sni line's");
		*error_r = ebuf;
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* RFC 6125 6.4.3: a "*." name stands for exactly one more label. */
static int
tls_sni_match(const char *pattern, const char *name)
{
	const char *dot;

	if (strncmp(pattern, "*.", 2) != 0)
		return strcasecmp(pattern, name) == 0;
	if ((dot = strchr(name, '.')) == NULL || dot == name)
		return 0;
	return strcasecmp(pattern + 1, dot) == 0;
}

/* RFC 6066 3: an unknown name gets the default certificate, not an
 * alert; a client that checks names then decides for itself. */
static int
tls_servername(SSL *ssl, int *alert, void *arg)
{
	const struct tls_sni_table *t = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	size_t i;

	(void)alert;
	if (name == NULL || t == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	for (i = 0; i < t->count; i++)
		if (tls_sni_match(t->entries[i].name, name)) {
			if (SSL_set_SSL_CTX(ssl, t->entries[i].ctx) == NULL)
				return SSL_TLSEXT_ERR_ALERT_FATAL;
			return SSL_TLSEXT_ERR_OK;
		}
	return SSL_TLSEXT_ERR_OK;
}

int
tls_key_files(const struct config *conf, char ***paths_r, size_t *n_r,
    const char **error_r)
{
	static __thread char ebuf[512];
	struct str why = STR_INIT;
	size_t n = 0;
	char **paths = xcalloc(conf->tls_sni_count + 1, sizeof(*paths));

	paths[n++] = xstrdup(conf->tls_key);
	for (size_t i = 0; i < conf->tls_sni_count; i++) {
		char *name, *cert, *key;

		str_clear(&why);
		if (tls_check_sni_split(conf->tls_sni[i], &name, &cert, &key,
		    &why) < 0) {
			snprintf(ebuf, sizeof(ebuf), "tls_sni: %s",
			    str_c(&why));
			*error_r = ebuf;
			str_deinit(&why);
			tls_key_files_free(paths, n);
			return -1;
		}
		free(name);
		free(cert);
		paths[n++] = key;
	}
	str_deinit(&why);
	*paths_r = paths;
	*n_r = n;
	return 0;
}

void
tls_key_files_free(char **paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

SSL_CTX *
tls_server_ctx(const struct config *conf, const struct keys_pubs *pubs,
    const char **error_r)
{
	struct tls_sni_table *t;
	struct str why = STR_INIT;
	static __thread char ebuf[512];
	SSL_CTX *ctx;
	char *cert, *key;
	size_t i;

	pthread_once(&tls_once, tls_init_once);
	if (tls_sni_index < 0) {
		*error_r = "tls: no ex_data index";
		return NULL;
	}
	if (pubs->n != conf->tls_sni_count + 1) {
		*error_r = "tls: the key process holds another set of keys";
		return NULL;
	}
	if ((ctx = tls_ctx_new(conf, conf->tls_cert, pubs, 0,
	    error_r)) == NULL)
		return NULL;
	if (conf->tls_sni_count == 0)
		return ctx;

	t = xcalloc(1, sizeof(*t));
	t->entries = xcalloc(conf->tls_sni_count, sizeof(*t->entries));
	/* Owned by ctx from here: freed with it on every path. */
	if (SSL_CTX_set_ex_data(ctx, tls_sni_index, t) != 1) {
		tls_sni_table_free(t);
		*error_r = tls_error("SSL_CTX_set_ex_data");
		SSL_CTX_free(ctx);
		return NULL;
	}
	for (i = 0; i < conf->tls_sni_count; i++) {
		struct tls_sni_entry *e = &t->entries[t->count];

		str_clear(&why);
		if (tls_check_sni_split(conf->tls_sni[i], &e->name, &cert, &key,
		    &why) < 0) {
			snprintf(ebuf, sizeof(ebuf), "tls_sni: %s",
			    str_c(&why));
			*error_r = ebuf;
			goto fail;
		}
		e->ctx = tls_ctx_new(conf, cert, pubs, (uint32_t)(i + 1),
		    error_r);
		free(cert);
		free(key);
		if (e->ctx == NULL) {
			free(e->name);
			goto fail;
		}
		t->count++;
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, tls_servername);
	SSL_CTX_set_tlsext_servername_arg(ctx, t);
	str_deinit(&why);
	return ctx;
fail:
	str_deinit(&why);
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
