/*
 * base64: RFC 4648 section 4 (shared pure code; see base64.c).
 */
#ifndef SEKISHO_BASE64_H
#define SEKISHO_BASE64_H

#include <stddef.h>

struct str;

/* decode: -1 on bad input (whitespace not allowed, padding required,
 * unused bits zero); the output is appended to out (binary-safe). */
int base64_decode(const char *in, size_t len, struct str *out);
void base64_encode(const void *in, size_t len, struct str *out);

/*
 * XXX: the old names, for the files other changes rewrite at the same
 * time (smtp_session.c, pop3_session.c, mta.c, dsn.c: this change edits
 * only their include lines). Rename those calls and drop these once the
 * changes are merged.
 */
#define smtp_base64_decode	base64_decode
#define smtp_base64_encode	base64_encode

#endif
