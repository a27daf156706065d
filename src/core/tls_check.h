/*
 * tls_check: the TLS settings checked where the configuration is read
 * (config.c rows), in every process; shared pure code, no context kept.
 */
#ifndef SEKISHO_TLS_CHECK_H
#define SEKISHO_TLS_CHECK_H

#include "str.h"

/* Config checks: 0, or -1 with the reason in why. */
int tls_check_sni(const char *value, struct str *why);	/* NAME CERT KEY */
int tls_check_ciphers(const char *value, struct str *why);
int tls_check_ciphersuites(const char *value, struct str *why);
int tls_check_groups(const char *value, struct str *why);

/*
 * A tls_sni line "NAME CERT KEY" into three allocated strings; -1 with
 * why filled when the line is not that.
 */
int tls_check_sni_split(const char *value, char **name_r, char **cert_r,
    char **key_r, struct str *why);

#endif
