/*
 * tls_check: the checks of the TLS settings (config.c rows), shared by
 * every process that reads a configuration; no context is kept. The
 * contexts themselves are tls.c's.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls_check.h"
#include "xmalloc.h"

/* Host name syntax (letters, digits, '-', '.'), optionally "*." first. */
static int
tls_check_sni_name(const char *name)
{
	size_t n;

	if (strncmp(name, "*.", 2) == 0)
		name += 2;
	n = strlen(name);
	return n > 0 && n <= 253 && name[0] != '.' && name[n - 1] != '.' &&
	    strstr(name, "..") == NULL &&
	    strspn(name, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == n;
}

/*
 * "NAME CERT KEY" into three allocated strings; -1 with why filled when
 * the line is not that.
 */
int
tls_check_sni_split(const char *value, char **name_r, char **cert_r, char **key_r,
    struct str *why)
{
	const char *ws = " \t";
	char *copy = xstrdup(value), *save = NULL, *f[4];
	int n = 0;

	for (char *p = strtok_r(copy, ws, &save); p != NULL && n < 4;
	    p = strtok_r(NULL, ws, &save))
		f[n++] = p;
	if (n != 3) {
		str_printf(why, "expected 'NAME CERT KEY', got %d field%s", n,
		    n == 1 ? "" : "s");
		goto fail;
	}
	if (!tls_check_sni_name(f[0])) {
		str_append(why, "bad server name (a host name or *.domain)");
		goto fail;
	}
	if (f[1][0] != '/' || f[2][0] != '/') {
		str_append(why, "CERT and KEY must be absolute paths");
		goto fail;
	}
	*name_r = xstrdup(f[0]);
	*cert_r = xstrdup(f[1]);
	*key_r = xstrdup(f[2]);
	free(copy);
	return 0;
fail:
	free(copy);
	return -1;
}

int
tls_check_sni(const char *value, struct str *why)
{
	char *name, *cert, *key;

	if (tls_check_sni_split(value, &name, &cert, &key, why) < 0)
		return -1;
	free(name);
	free(cert);
	free(key);
	return 0;
}

/*
 * The cipher lists and groups are checked by the library that uses
 * them, on a throwaway context, so check-config catches a typo instead
 * of the daemon's start.
 */
static int
tls_check_with(const char *value, struct str *why, const char *what,
    int (*set)(SSL_CTX *, const char *))
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int ok;

	if (ctx == NULL) {
		char ebuf[256];

		ERR_error_string_n(ERR_get_error(), ebuf, sizeof(ebuf));
		ERR_clear_error();
		str_printf(why, "SSL_CTX_new: %s", ebuf);
		return -1;
	}
	ok = set(ctx, value) == 1;
	SSL_CTX_free(ctx);
	if (!ok) {
		ERR_clear_error();
		str_printf(why, "OpenSSL does not accept '%s' as %s", value,
		    what);
		return -1;
	}
	return 0;
}

static int
tls_check_set_groups(SSL_CTX *ctx, const char *value)
{
	return (int)SSL_CTX_set1_groups_list(ctx, value);
}

int
tls_check_ciphers(const char *value, struct str *why)
{
	return tls_check_with(value, why, "a TLS 1.2 cipher list",
	    SSL_CTX_set_cipher_list);
}

int
tls_check_ciphersuites(const char *value, struct str *why)
{
	return tls_check_with(value, why, "a TLS 1.3 cipher suite list",
	    SSL_CTX_set_ciphersuites);
}

int
tls_check_groups(const char *value, struct str *why)
{
	return tls_check_with(value, why, "a list of groups",
	    tls_check_set_groups);
}

