/*
 * sasl: SASL PLAIN (RFC 4616), shared by SMTP and POP3 AUTH.
 */
#ifndef SEKISHO_SASL_H
#define SEKISHO_SASL_H

struct str;

/*
 * AUTH PLAIN message: authzid NUL authcid NUL passwd, after base64
 * decoding. Returns 0 and pointers into decoded (authzid may be ""), -1
 * if malformed.
 */
int sasl_plain_split(const struct str *decoded, const char **authzid_r,
    const char **authcid_r, const char **passwd_r);

#endif
