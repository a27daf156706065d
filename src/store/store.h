/*
 * store: the account store behind one small interface. Implementations
 * are store_<impl>.c (store_sqlite.c now; store_pgsql.c in the multi-node
 * issue) and are chosen by the URI scheme given to store_open():
 *   "sqlite:/var/lib/sekisho/sekisho.db"
 *
 * Every call may block (disk, network, locks): call it only from the
 * back side (backend worker threads) or the CLI, never from a session
 * event loop. A handle is used by one thread at a time.
 *
 * Addresses and domains are stored in their canonical form, the whole
 * address lower-cased (ASCII): local parts are case-insensitive here, as
 * at every provider, and any case finds the account. New addresses must
 * be a dot-atom local part (no '/') of at most 64 octets, '@', and a
 * domain of letters, digits and '-' (IDN in xn-- form), 254 octets in
 * all. Look-ups take any text; what cannot be stored is "not found".
 *
 * Returns: 0 ok, -1 error with *error_r set (a static or handle-owned
 * string valid until the next call on the handle), 1 "not found" where
 * the function says so.
 */
#ifndef SEKISHO_STORE_H
#define SEKISHO_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../core/str.h"

struct store;

#define STORE_ADDRESS_MAX	254	/* octets, RFC 5321 section 4.5.3.1.3 */

struct account {
	int64_t	 id;
	char	*address;	/* local@domain, canonical */
	char	*password_hash;	/* crypt(3) string */
	int	 suspended;
	char	*suspend_reason;	/* NULL when none */
	int64_t	 created;	/* unix time */
};

void account_deinit(struct account *a);

struct store *store_open(const char *uri, const char **error_r);
void store_close(struct store **st);

/*
 * Check a new address (or domain) and write its canonical form into buf
 * (at least STORE_ADDRESS_MAX + 1 bytes). -1 with a static reason in
 * *error_r when it is not acceptable.
 */
int store_address_canonical(const char *address, char *buf, size_t size,
    const char **error_r);
int store_domain_canonical(const char *domain, char *buf, size_t size,
    const char **error_r);

/* Create the schema if missing (idempotent); upgrade an older one.
 * Refuses a database written by a newer sekisho. */
int store_init_schema(struct store *st, const char **error_r);

/* Domains. add: -1 with "exists" error if present. del: 1 if missing;
 * refuses (-1) while accounts or aliases of the domain exist. */
int store_domain_add(struct store *st, const char *domain, const char **error_r);
int store_domain_del(struct store *st, const char *domain, const char **error_r);
/* 0 = local domain, 1 = not ours. */
int store_domain_exists(struct store *st, const char *domain, const char **error_r);
/* Appends one domain per line ("\n"-terminated) to out. */
int store_domain_list(struct store *st, struct str *out, const char **error_r);

/* Accounts. The domain must exist, and the address must not be an
 * alias. del, set_password, set_suspended: 1 if no such account (error
 * set); deleting an account deletes its aliases. A reason is kept only
 * while suspended (NULL or "" for none; one line, <= 200 octets). */
int store_account_add(struct store *st, const char *address,
    const char *password_hash, const char **error_r);
int store_account_del(struct store *st, const char *address, const char **error_r);
int store_account_set_password(struct store *st, const char *address,
    const char *password_hash, const char **error_r);
int store_account_set_suspended(struct store *st, const char *address,
    int suspended, const char *reason, const char **error_r);
/* 1 = no such account. On 0 the caller owns *a (account_deinit). */
int store_account_get(struct store *st, const char *address,
    struct account *a, const char **error_r);
/* Appends "address\tsuspended(0|1)\n" lines, sorted by address; domain
 * may be NULL for all; 1 if that domain does not exist (error set). */
int store_account_list(struct store *st, const char *domain, struct str *out,
    const char **error_r);

/* Aliases: an address that delivers to (and may be sent from by) an
 * account. alias's domain must be local; target must be an account;
 * alias must not be an account. del: 1 if no such alias (error set). */
int store_alias_add(struct store *st, const char *alias, const char *target,
    const char **error_r);
int store_alias_del(struct store *st, const char *alias, const char **error_r);
/* Appends "alias\ttarget\n" lines sorted by alias; target NULL for all;
 * 1 if target is not an account (error set). */
int store_alias_list(struct store *st, const char *target, struct str *out,
    const char **error_r);

/*
 * Resolve a recipient address to the account that receives it: the
 * account itself, or an alias's target. On 0, *account_r is the
 * canonical account address (caller frees). 1 = not a local mailbox
 * (either domain not local or no such user; *domain_local_r tells which).
 */
int store_resolve_recipient(struct store *st, const char *address,
    char **account_r, int *domain_local_r, const char **error_r);

/*
 * APOP secrets (RFC 1939 7): a row only for accounts that turn APOP on,
 * never in place of the password hash. The value is opaque here: the
 * caller seals it (src/pop3/apop.h), so the database alone does not
 * give the secret. set: 1 if no such account. get: 1 if the account has
 * none (or does not exist); on 0 the caller frees *sealed_r. clear: 1 if
 * it had none.
 */
int store_apop_set(struct store *st, const char *address, const char *sealed,
    const char **error_r);
int store_apop_get(struct store *st, const char *address, char **sealed_r,
    const char **error_r);
int store_apop_clear(struct store *st, const char *address,
    const char **error_r);

#endif
