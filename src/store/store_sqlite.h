/*
 * store_sqlite: what the SQLite backend's files share (private to
 * src/store/). store_sqlite.c owns the handle, schema and account
 * tables; store_sqlite_policy.c the sending-policy state.
 */
#ifndef SEKISHO_STORE_SQLITE_H
#define SEKISHO_STORE_SQLITE_H

#include <sqlite3.h>

#include "store_impl.h"

sqlite3 *store_sqlite_db(struct store *st);

int store_sqlite_policy_get(struct store *, const char *,
    struct account_policy *, const char **);
int store_sqlite_policy_set_limits(struct store *, const char *,
    const struct account_policy *, const char **);
int store_sqlite_overseas_set(struct store *, const char *, int64_t,
    const char **);
int store_sqlite_count_add(struct store *, const char *,
    const struct store_counter *, size_t, int64_t, int64_t, size_t *,
    const char **);
int store_sqlite_count_get(struct store *, const char *, const char *,
    int64_t *, int64_t *, const char **);
int store_sqlite_event_add(struct store *, const struct store_event *,
    const char **);
int store_sqlite_event_list(struct store *, const char *, int64_t, int,
    struct str *, const char **);
int store_sqlite_notice_once(struct store *, const char *, int64_t,
    const char **);
int store_sqlite_submission_add(struct store *,
    const struct store_submission *, const char **);
int store_sqlite_submission_find(struct store *, const char *, const char *,
    struct str *, const char **);
int store_sqlite_submission_list(struct store *, const char *, int64_t, int,
    struct str *, const char **);
int store_sqlite_throttle_get(struct store *, const char *, int64_t, int64_t,
    int64_t *, int64_t *, const char **);
int store_sqlite_throttle_fail(struct store *, const char *, int64_t,
    int64_t, int64_t, int64_t, int64_t *, int64_t *, const char **);
int store_sqlite_throttle_clear(struct store *, const char *, const char **);

#endif
