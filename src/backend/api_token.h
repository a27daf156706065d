/*
 * api_token: the bearer tokens of the settings page's JSON API
 * (docs/portal.md), kept hashed in the store (store_api_token_*), so
 * every node knows the same tokens. A token is "NAME.SECRET" (SECRET: 32
 * random bytes in hex); only its SHA-256 is stored, so the database
 * alone does not give a token. A plain hash suffices: the secret is
 * random, not a password. Checked by the back side at each API request,
 * made and revoked by `sekisho api-token`.
 */
#ifndef SEKISHO_API_TOKEN_H
#define SEKISHO_API_TOKEN_H

#include <stddef.h>

#include "../core/str.h"

#include "../store/store.h"

/* A token's name: store_name_ok(), the one rule for admin and token
 * names. */
#define API_TOKEN_NAME_MAX	STORE_NAME_MAX

/*
 * 1 if token is in the store (its name into name_r, at least
 * API_TOKEN_NAME_MAX + 1 bytes), 0 if not (or malformed), -1 if the
 * store cannot answer (error_r).
 */
int api_token_check(struct store *st, const char *token, char *name_r,
    const char **error_r);

/* Add a new token named name: writes the whole token (a NUL-terminated
 * string) into token_r (at least 128 bytes). -1 with error_r if name is
 * bad or taken, or the store fails. */
int api_token_add(struct store *st, const char *name, char *token_r,
    size_t len, const char **error_r);
/* 1 if there is no such token. */
int api_token_del(struct store *st, const char *name, const char **error_r);
/* Append "NAME\tCREATED\n" lines. */
int api_token_list(struct store *st, struct str *out, const char **error_r);

#endif
