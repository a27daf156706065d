/*
 * password: hashing and verification with libcrypt's crypt_r.
 * New hashes are yescrypt ("$y$"); "$6$" (SHA-512 crypt), "$5$", and
 * "$2b$"/"$2y$" (bcrypt) verify too, so hashes imported from Dovecot or
 * /etc/shadow keep working. Slow on purpose: call off the event loop.
 */
#ifndef SEKISHO_PASSWORD_H
#define SEKISHO_PASSWORD_H

#include <stdint.h>

/* New hash of password; caller frees. NULL on failure (error_r set). */
char *password_hash(const char *password, const char **error_r);
/* 1 = match, 0 = no match, -1 = hash unusable (error_r set).
 * Constant-time comparison of the computed hash. */
int password_verify(const char *password, const char *hash,
    const char **error_r);
/* password_verify, but a password that matched hash in the last ttl
 * seconds matches again without hashing (why and how: password.c).
 * ttl <= 0: password_verify. Thread-safe. */
int password_verify_cached(const char *password, const char *hash, int ttl,
    const char **error_r);
/* Since start: password_verify_cached answers from the cache, and not. */
void password_cache_stats(uint64_t *hits_r, uint64_t *misses_r);
/* 0 if hash is a crypt(3) string of an accepted method ("$y$", "$6$",
 * "$5$", "$2b$", "$2y$", "$2a$") that libcrypt can parse, else -1 with
 * error_r set. For importing hashes; costs one hash computation. */
int password_check_hash(const char *hash, const char **error_r);

#endif
