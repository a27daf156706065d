/*
 * maildir: delivery into a Maildir (https://cr.yp.to/proto/maildir.html).
 * The mailbox of account local@domain is ROOT/domain/local/Maildir/, with
 * tmp/, new/, cur/ created on first delivery (0700).
 *
 * A delivery writes a file in tmp/, converting CRLF line ends to LF
 * (Maildir files use Unix line ends, as Postfix and Dovecot write them),
 * fsyncs it, links it into new/ as UNIQUE and fsyncs new/. The file has
 * no name in tmp/ (O_TMPFILE) where the kernel and the file system allow
 * it, else tmp/UNIQUE, removed after the link. UNIQUE is
 * "SECONDS.M<usec>P<pid>Q<counter>.<host>,W=<wsize>,S=<size>" where size
 * is the file's size in bytes and wsize its size with CRLF line ends,
 * as POP3 sends it (Dovecot's S= and W=, read for quota and POP3 LIST).
 */
#ifndef SEKISHO_MAILDIR_H
#define SEKISHO_MAILDIR_H

#include <stddef.h>
#include <sys/types.h>

#include "../core/str.h"

/* Path of the Maildir of mailbox (caller frees); NULL if the address
 * cannot be a safe path (no '@', '/', leading '.', empty parts). */
char *maildir_path(const char *root, const char *mailbox);

/* "Return-Path: <sender>" CRLF into out (RFC 5321 4.4; "<>" for the
 * null sender). Bytes that cannot be in a header line (controls) become
 * '?', so an envelope can never add a header of its own. */
void maildir_return_path(const char *sender, struct str *out);

/*
 * Deliver the message read from fd starting at offset (CRLF text) to
 * the mailbox. If prepend is not NULL it is written first (CRLF text,
 * converted the same way). Return-Path fields in the message's header
 * section are left out (prepend has the one that counts). On success returns 0 and, when name_r is not
 * NULL, the file's base name in new/ (caller frees). -1 on error; a
 * failed delivery leaves nothing in new/ nor in tmp/.
 */
int maildir_deliver(const char *root, const char *mailbox, const char *host,
    const char *prepend, int fd, off_t offset, char **name_r,
    const char **error_r);

#endif
