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

#endif
