/*
 * store_impl: what a store backend implements (private to src/store/).
 *
 * store.c owns the public functions: it checks and canonicalizes every
 * address and domain, then calls the backend through its ops table. A
 * backend therefore only ever sees canonical text: lower-case ASCII,
 * addresses with exactly one '@', at most STORE_ADDRESS_MAX octets. For
 * look-ups the text was only lower-cased, so it may be any string a
 * client sent; bind it, never build SQL with it.
 *
 * A backend handle embeds struct store as its first member. The ops
 * return the codes of store.h and set errors with store_set_error(), so
 * the texts below read the same whatever the backend.
 */
#ifndef SEKISHO_STORE_IMPL_H
#define SEKISHO_STORE_IMPL_H

#include "../core/str.h"
#include "store.h"

struct store_ops {
	const char *scheme;	/* "sqlite" for "sqlite:PATH" */

	/* location: the URI after "scheme:". NULL with *error_r set (a
	 * string from store_open_error()) on failure. */
	struct store *(*open)(const char *location, const char **error_r);
	void (*close)(struct store *st);

	int (*init_schema)(struct store *st, const char **error_r);

	int (*domain_add)(struct store *st, const char *domain,
	    const char **error_r);
	int (*domain_del)(struct store *st, const char *domain,
	    const char **error_r);
	int (*domain_exists)(struct store *st, const char *domain,
	    const char **error_r);
	int (*domain_list)(struct store *st, struct str *out,
	    const char **error_r);

	int (*account_add)(struct store *st, const char *address,
	    const char *password_hash, const char **error_r);
	int (*account_del)(struct store *st, const char *address,
	    const char **error_r);
	int (*account_set_password)(struct store *st, const char *address,
	    const char *password_hash, const char **error_r);
	int (*account_set_suspended)(struct store *st, const char *address,
	    int suspended, const char *reason, const char **error_r);
	int (*account_get)(struct store *st, const char *address,
	    struct account *a, const char **error_r);
	int (*account_list)(struct store *st, const char *domain,
	    struct str *out, const char **error_r);

	int (*alias_add)(struct store *st, const char *alias,
	    const char *target, const char **error_r);
	int (*alias_del)(struct store *st, const char *alias,
	    const char **error_r);
	int (*alias_list)(struct store *st, const char *target,
	    struct str *out, const char **error_r);

	/* Account first, then alias; 1 when neither. *domain_local_r
	 * is set only on 1 (store.c sets it on 0). */
	int (*resolve_recipient)(struct store *st, const char *address,
	    char **account_r, int *domain_local_r, const char **error_r);

	/* APOP secrets, sealed by the caller; canonical address. */
	int (*apop_set)(struct store *st, const char *address,
	    const char *sealed, const char **error_r);
	int (*apop_get)(struct store *st, const char *address,
	    char **sealed_r, const char **error_r);
	int (*apop_clear)(struct store *st, const char *address,
	    const char **error_r);

	/* sending policy (store.h); addresses are canonical */
	int (*policy_get)(struct store *, const char *, struct account_policy *,
	    const char **);
	int (*policy_set_limits)(struct store *, const char *,
	    const struct account_policy *, const char **);
	int (*overseas_set)(struct store *, const char *, int64_t,
	    const char **);
	int (*count_add)(struct store *, const char *,
	    const struct store_counter *, size_t, int64_t, int64_t, size_t *,
	    const char **);
	int (*count_get)(struct store *, const char *, const char *, int64_t *,
	    int64_t *, const char **);
	int (*event_add)(struct store *, const struct store_event *,
	    const char **);
	int (*event_list)(struct store *, const char *, int64_t, int,
	    struct str *, const char **);
	int (*notice_once)(struct store *, const char *, int64_t,
	    const char **);
	int (*submission_add)(struct store *, const struct store_submission *,
	    const char **);
	int (*submission_find)(struct store *, const char *, const char *,
	    struct str *, const char **);
	int (*submission_list)(struct store *, const char *, int64_t, int,
	    struct str *, const char **);
	int (*throttle_get)(struct store *, const char *, int64_t, int64_t,
	    int64_t *, int64_t *, const char **);
	int (*throttle_fail)(struct store *, const char *, int64_t, int64_t,
	    int64_t, int64_t, int64_t *, int64_t *, const char **);
	int (*throttle_clear)(struct store *, const char *, const char **);
	/* trusted login addresses (schema step 6) */
	int (*trusted_seen)(struct store *, const char *, const char *,
	    int64_t, int64_t, int, const char **);
	int (*trusted_get)(struct store *, const char *, const char *,
	    int64_t, const char **);

	int (*schema_version)(struct store *, int *, const char **);

	/* shared state (schema step 5, store.h); arguments checked */
	int (*portal_session_add)(struct store *, const char *, const char *,
	    const char *, int64_t, int64_t, const char **);
	int (*portal_session_get)(struct store *, const char *, int64_t,
	    struct store_portal_session *, const char **);
	int (*portal_session_touch)(struct store *, const char *, int64_t,
	    const char **);
	int (*portal_session_del)(struct store *, const char *, const char **);
	int (*portal_session_del_account)(struct store *, const char *,
	    const char *, const char **);
	int (*api_token_add)(struct store *, const char *, const char *,
	    int64_t, const char **);
	int (*api_token_get)(struct store *, const char *, char *,
	    const char **);
	int (*api_token_del)(struct store *, const char *, const char **);
	int (*api_token_list)(struct store *, struct str *, const char **);
	int (*admin_add)(struct store *, const char *, const char *, int64_t,
	    const char **);
	int (*admin_set_password)(struct store *, const char *, const char *,
	    const char **);
	int (*admin_get)(struct store *, const char *, char **, const char **);
	int (*admin_del)(struct store *, const char *, const char **);
	int (*admin_list)(struct store *, struct str *, const char **);
	int (*pop3_lock_take)(struct store *, const char *, const char *,
	    const char *, int64_t, int64_t, const char **);
	int (*pop3_lock_refresh)(struct store *, const char *, const char *,
	    const char *, int64_t, const char **);
	int (*pop3_lock_release)(struct store *, const char *, const char *,
	    const char *, const char **);
	int (*popbsmtp_set)(struct store *, const char *, const char *,
	    int64_t, const char **);
	int (*popbsmtp_get)(struct store *, const char *, int64_t, char **,
	    const char **);
	int (*expire)(struct store *, int64_t, const char **);
};

struct store {
	const struct store_ops	*ops;
	struct str		 error;	/* the handle-owned error text */
};

/* Error texts shared by the backends, so they read the same. */
#define STORE_ERR_NO_DOMAIN	"no such domain '%s'"
#define STORE_ERR_DOMAIN_EXISTS	"domain '%s' already exists"
#define STORE_ERR_DOMAIN_USED	"domain '%s' still has %lld account(s) " \
				"and %lld alias(es); delete them first"
#define STORE_ERR_NO_ACCOUNT	"no such account '%s'"
#define STORE_ERR_ACCOUNT_EXISTS "account '%s' already exists"
#define STORE_ERR_IS_ALIAS	"'%s' is already an alias"
#define STORE_ERR_NO_ALIAS	"no such alias '%s'"
#define STORE_ERR_ALIAS_EXISTS	"alias '%s' already exists"
#define STORE_ERR_IS_ACCOUNT	"'%s' is already an account"
#define STORE_ERR_TOKEN_EXISTS	"API token '%s' already exists"
#define STORE_ERR_NO_TOKEN	"no such API token '%s'"
#define STORE_ERR_ADMIN_EXISTS	"admin '%s' already exists"
#define STORE_ERR_NO_ADMIN	"no such admin '%s'"

/* Set the handle's error text and *error_r to it. */
void store_set_error(struct store *st, const char **error_r,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same for store_open failures, where there is no handle yet: a
 * per-thread buffer, valid until the next store_open in that thread. */
void store_open_error(const char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The domain part of a canonical address. */
const char *store_address_domain(const char *address);

/* A backend's open calls this on its new handle; store_close releases
 * what it set up before calling the backend's close. */
void store_base_init(struct store *st, const struct store_ops *ops);

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pgsql_ops;

#endif
