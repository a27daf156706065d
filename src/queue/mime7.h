/*
 * mime7: a message with 8-bit data made 7-bit for a server that does not
 * offer 8BITMIME (RFC 6152 3, RFC 2045, RFC 2046), as Postfix does:
 *
 * - each leaf part (and a message that is not multipart) whose body has
 *   a byte >= 0x80, a NUL, or a line over 998 octets, and is not already
 *   quoted-printable or base64, is encoded: text/... (and a part without
 *   Content-Type) quoted-printable, everything else base64. Its
 *   Content-Transfer-Encoding fields are replaced by one naming the
 *   encoding; the other header fields stay as they are, in order.
 * - multipart/... is walked part by part along its boundary (RFC 2046
 *   5.1.1), message/rfc822 into its message; a Content-Transfer-Encoding
 *   of 8bit or binary on them becomes 7bit. Bytes >= 0x80 in a preamble
 *   or epilogue (not shown to readers, RFC 2046 5.1.1) become '?'.
 * - header fields are left as they are, 8-bit included (the decision in
 *   docs/delivery.md: rewriting them with RFC 2047 would change address
 *   fields' meaning, and a server without 8BITMIME sees such headers from
 *   others too); a message whose only 8-bit bytes are in headers is sent
 *   unchanged.
 *
 * Bounded: nesting deeper than MIME7_DEPTH_MAX fails (-1), output is at
 * most about 3.1 times the input. The input is the message as spooled,
 * CRLF line ends (a bare LF is taken as a line end too); the output has
 * CRLF line ends in every part it wrote.
 */
#ifndef SEKISHO_MIME7_H
#define SEKISHO_MIME7_H

#include <stddef.h>

#include "../core/str.h"

#define MIME7_DEPTH_MAX	32

/* Append the 7-bit form of in[0..len) to out. 0, or -1 with error_r
 * (out then holds a partial result to discard). */
int mime7_convert(const char *in, size_t len, struct str *out,
    const char **error_r);

/* Does in[0..len) hold a byte >= 0x80 or NUL, or a line over 998
 * octets (not counting CRLF)? */
int mime7_needs_encoding(const char *in, size_t len);

#endif
