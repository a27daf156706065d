/*
 * apop: RFC 1939 section 7 APOP. The greeting's timestamp (issued by
 * the back side, BE_APOP_TIMESTAMP, and kept in its record of the
 * session), the digest check, and the sealing of APOP secrets at rest.
 * Back side, CLI and the master (which makes the key file) only: the
 * session side has nothing of APOP but the command and the seam's bound
 * on the timestamp (APOP_TIMESTAMP_MAX, be_proto.h).
 *
 * APOP needs the server to know the shared secret itself, not a hash of
 * it. So the secret is kept only for accounts that turn APOP on, apart
 * from the login password hash, and sealed with AES-256-GCM under a key
 * in a separate file (apop_secret_key): a copy of the database alone
 * does not give the secrets. The address is the sealing's associated
 * data, so a sealed secret moved to another account's row does not open.
 */
#ifndef SEKISHO_APOP_H
#define SEKISHO_APOP_H

#include <stddef.h>

#include "../core/be_proto.h"	/* APOP_TIMESTAMP_MAX */
#include "../core/str.h"

#define APOP_DIGEST_LEN		32	/* hex digits of MD5 */
#define APOP_KEY_LEN		32	/* AES-256 */
#define APOP_SECRET_MAX		256	/* octets of a secret */

/* A new greeting timestamp "<pid.clock@hostname>" (RFC 1939 7), unique
 * per greeting; replaces out's content. */
void apop_timestamp(struct str *out, const char *hostname);

/* MD5(timestamp secret) as 32 lower-case hex digits and a NUL. */
void apop_digest(const char *timestamp, const char *secret,
    char hex[APOP_DIGEST_LEN + 1]);

/* 1 if digest (hex, either case) is MD5(timestamp secret), else 0.
 * Compared in constant time. */
int apop_check(const char *timestamp, const char *secret, const char *digest);

/*
 * Read the key file (64 hex digits, a newline allowed). When create is
 * set and the file does not exist, a new random key is written (0600,
 * O_EXCL). A key file readable by group or others is refused.
 */
int apop_key_load(const char *path, int create,
    unsigned char key[APOP_KEY_LEN], const char **error_r);

/* Seal secret for address: "v1:" and hex of nonce, ciphertext and tag.
 * Replaces out's content. -1 with error_r on a crypto failure. */
int apop_seal(const unsigned char key[APOP_KEY_LEN], const char *address,
    const char *secret, struct str *out, const char **error_r);
/* The reverse; -1 if sealed is damaged, for another address, or sealed
 * under another key. secret's content is replaced; wipe it after use. */
int apop_unseal(const unsigned char key[APOP_KEY_LEN], const char *address,
    const char *sealed, struct str *secret, const char **error_r);

#endif
