/*
 * trace_token: the Received header's client token (issue 17 item 8,
 * received_client = token). Instead of the subscriber's address, the
 * Received header of a submission carries a token sealed with a server
 * key: AES-256-GCM as the APOP secrets (apop.h), the key in a file of its
 * own (trace_token_key, 0600, made when missing). It holds the client
 * address, the account and the time; only sekisho (sekisho trace, the
 * admin trace page) opens it, a recipient learns nothing from it, and a
 * token altered by one bit does not open.
 *
 * Token text (TRACE_TOKEN_PREFIX then base64url without padding):
 *   key id (4 octets) | nonce (12) | ciphertext | tag (16)
 * plaintext: time (8 octets, big-endian), client length (1), client,
 * account. The associated data is "sekisho-trace-v1" and the key id.
 *
 * Key file: one key a line, "ID HEX64 CREATED" (ID 8 hex digits, the key
 * 64, CREATED unix time), oldest first; the last line seals. A key stops
 * opening tokens trace_token_key_keep after the next one was made:
 * `sekisho trace-key rotate` adds a key and drops those (docs/trace.md).
 *
 * Back side and CLI only (check-sides): the session side gets the token
 * text in BE_POLICY_MAIL's reply.
 */
#ifndef SEKISHO_TRACE_TOKEN_H
#define SEKISHO_TRACE_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "../core/str.h"

struct config;

#define TRACE_TOKEN_PREFIX	"t1."
#define TRACE_TOKEN_MAX		600	/* octets of a token's text */
#define TRACE_TOKEN_KEYS_MAX	64	/* keys in a key file */

/* What a token holds. */
struct trace_token_info {
	int64_t	 time;
	char	 client[64];
	char	 account[320];
	char	 key_id[9];
};

/*
 * Seal client, account and time under the newest key of conf's key file
 * (made when missing; re-read when it changes). Replaces out's content.
 * -1 with error_r when there is no usable key.
 */
int trace_token_seal(const struct config *conf, const char *client,
    const char *account, int64_t time, struct str *out,
    const char **error_r);

/*
 * Open a token with conf's keys as of now: 0 and *info; -1 with error_r
 * when it is damaged, forged, altered, or its key is gone (retired
 * longer than trace_token_key_keep ago).
 */
int trace_token_open(const struct config *conf, const char *token,
    int64_t now, struct trace_token_info *info, const char **error_r);

/*
 * Add a new key to conf's key file (made when missing) and drop the keys
 * retired longer than trace_token_key_keep ago; the file is replaced
 * atomically (0600). id_r: the new key's id. -1 with error_r.
 */
int trace_token_rotate(const struct config *conf, int64_t now,
    char id_r[9], const char **error_r);

/* Check conf's key file, made with a first key when missing (the
 * master at start, as root: the directory may be /etc/sekisho). */
int trace_token_key_make(const struct config *conf, int64_t now,
    const char **error_r);

/* Each key of the file: id, created, retired (0: the current one), and
 * whether it still opens tokens. Returns the count or -1. */
struct trace_token_key_row {
	char	 id[9];
	int64_t	 created;
	int64_t	 retired;
	int	 opens;
};
int trace_token_keys(const struct config *conf, int64_t now,
    struct trace_token_key_row *rows, size_t max, const char **error_r);

#endif
