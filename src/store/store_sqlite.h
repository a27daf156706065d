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
int store_sqlite_trusted_seen(struct store *, const char *, const char *,
    int64_t, int64_t, int, const char **);
int store_sqlite_trusted_get(struct store *, const char *, const char *,
    int64_t, const char **);

/* store_sqlite_shared.c: schema step 5 */
int store_sqlite_portal_session_add(struct store *, const char *,
    const char *, const char *, int64_t, int64_t, const char **);
int store_sqlite_portal_session_get(struct store *, const char *, int64_t,
    struct store_portal_session *, const char **);
int store_sqlite_portal_session_touch(struct store *, const char *, int64_t,
    const char **);
int store_sqlite_portal_session_del(struct store *, const char *,
    const char **);
int store_sqlite_portal_session_del_account(struct store *, const char *,
    const char *, const char **);
int store_sqlite_api_token_add(struct store *, const char *, const char *,
    int64_t, const char **);
int store_sqlite_api_token_get(struct store *, const char *, char *,
    const char **);
int store_sqlite_api_token_del(struct store *, const char *, const char **);
int store_sqlite_api_token_list(struct store *, struct str *, const char **);
int store_sqlite_admin_add(struct store *, const char *, const char *,
    int64_t, const char **);
int store_sqlite_admin_set_password(struct store *, const char *,
    const char *, const char **);
int store_sqlite_admin_get(struct store *, const char *, char **,
    const char **);
int store_sqlite_admin_del(struct store *, const char *, const char **);
int store_sqlite_admin_list(struct store *, struct str *, const char **);
int store_sqlite_pop3_lock_take(struct store *, const char *, const char *,
    const char *, int64_t, int64_t, const char **);
int store_sqlite_pop3_lock_refresh(struct store *, const char *,
    const char *, const char *, int64_t, const char **);
int store_sqlite_pop3_lock_release(struct store *, const char *,
    const char *, const char *, const char **);
int store_sqlite_popbsmtp_set(struct store *, const char *, const char *,
    int64_t, const char **);
int store_sqlite_popbsmtp_get(struct store *, const char *, int64_t, char **,
    const char **);
int store_sqlite_expire(struct store *, int64_t, const char **);

#endif
