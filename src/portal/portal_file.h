/*
 * portal_file: the small text files the portal keeps beside the store
 * (admin_users_file, api_tokens_file): read whole with a size cap, and
 * replaced atomically (temporary file, fsync, rename; mode 0600).
 */
#ifndef SEKISHO_PORTAL_FILE_H
#define SEKISHO_PORTAL_FILE_H

#include <stddef.h>

#include "../core/str.h"

/* Append the file to out; a missing file is empty. key names the config
 * key in the error when path is unset. -1 with *error_r on errors, or
 * when the file is larger than max. */
int portal_file_read(const char *path, const char *key, size_t max,
    struct str *out, const char **error_r);
int portal_file_replace(const char *path, const struct str *text,
    const char **error_r);

#endif
