/*
 * hex: bytes as hex digits and back (shared pure code: the key process
 * and its clients on the channel, APOP's sealed secrets and key file).
 */
#ifndef SEKISHO_HEX_H
#define SEKISHO_HEX_H

#include <stddef.h>

struct str;

/* Append 2 * n lower-case hex digits of p to out. */
void hex_encode(struct str *out, const unsigned char *p, size_t n);

/*
 * len hex digits of s into out; *n_r = len / 2. -1 on an odd length, a
 * non-hex digit (upper case accepted only with any_case) or more than
 * max bytes.
 */
int hex_decode(const char *s, size_t len, int any_case, unsigned char *out,
    size_t max, size_t *n_r);

#endif
