/*
 * store: the account store. Each query is written once (store_account.c,
 * store_policy.c, store_shared.c, store_schema.c) over the SQL layer of
 * sql.h, whose driver (sql_sqlite.c, sql_pgsql.c) is chosen by the URI
 * scheme given to store_open():
 *   "sqlite:/var/lib/sekisho/sekisho.db"
 *   "postgresql:host=db1 dbname=sekisho user=sekisho" (libpq conninfo,
 *   or "postgresql://..." as a libpq URI): several nodes share one.
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
 *
 * Lists hand each row, as a struct of its kind, to a callback; its
 * pointers are valid during the call only. A callback returns 0 to go
 * on, or -1 to stop: the list function then returns -1 and leaves
 * *error_r alone (the callback says why).
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
/* "sqlite" or "postgresql" */
const char *store_driver_name(const struct store *st);

/*
 * Several reads in one read transaction (one snapshot; on SQLite one lock
 * pair, not one per statement): the Postfix policy's hot path. A write
 * called in between ends the read transaction first (the reads after it
 * stand alone). end also after a failure; ending none is fine.
 */
int store_read_begin(struct store *st, const char **error_r);
void store_read_end(struct store *st);

/*
 * Several writes in one write transaction (one commit: one fsync with
 * SQLite): the counted END-OF-MESSAGE, its count and its submission log.
 * Calls in between join it (their own transactions become part of it);
 * end commits when ok >= 0 and none of them failed, else undoes them all
 * (-1). A count over its limit changes nothing and does not undo the
 * others (the event it records stays).
 */
int store_write_begin(struct store *st, const char **error_r);
int store_write_end(struct store *st, int ok, const char **error_r);

/*
 * The one rule for the names of admins and API tokens: 1 to
 * STORE_NAME_MAX of a-z, 0-9 and '-' (they appear in URLs, log lines and
 * the token text "NAME.SECRET"). 1 when name is acceptable.
 */
#define STORE_NAME_MAX	32
int store_name_ok(const char *name);

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
/* The schema version the database is at (after store_init_schema). */
int store_schema_version(struct store *st, int *version_r,
    const char **error_r);

/* Domains. add: -1 with "exists" error if present. del: 1 if missing;
 * refuses (-1) while accounts or aliases of the domain exist. */
int store_domain_add(struct store *st, const char *domain, const char **error_r);
int store_domain_del(struct store *st, const char *domain, const char **error_r);
/* 0 = local domain, 1 = not ours. */
int store_domain_exists(struct store *st, const char *domain, const char **error_r);
/* Every domain, sorted. */
typedef int store_domain_cb(const char *domain, void *context);
int store_domain_list(struct store *st, store_domain_cb *cb, void *context,
    const char **error_r);

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
/* Accounts sorted by address; domain may be NULL for all; 1 if that
 * domain does not exist (error set). */
struct store_account_row {
	const char	*address;
	int		 suspended;
};
typedef int store_account_cb(const struct store_account_row *row,
    void *context);
int store_account_list(struct store *st, const char *domain,
    store_account_cb *cb, void *context, const char **error_r);

/* Aliases: an address that delivers to (and may be sent from by) an
 * account. alias's domain must be local; target must be an account;
 * alias must not be an account. del: 1 if no such alias (error set). */
int store_alias_add(struct store *st, const char *alias, const char *target,
    const char **error_r);
int store_alias_del(struct store *st, const char *alias, const char **error_r);
/* Aliases sorted by alias; target NULL for all; 1 if target is not an
 * account (error set). */
struct store_alias_row {
	const char	*alias;
	const char	*target;
};
typedef int store_alias_cb(const struct store_alias_row *row, void *context);
int store_alias_list(struct store *st, const char *target, store_alias_cb *cb,
    void *context, const char **error_r);

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

/* ---- sending policy state (PRODUCT.md "Rules") ---------------------- */

/* Longest list of countries of an overseas permission ("US,GB,..."). */
#define STORE_COUNTRIES_MAX	119	/* 40 countries */

/* Per-account policy. Limits: -1 = the config default, 0 = none allowed,
 * > 0 the limit. */
struct account_policy {
	int64_t	 overseas_until;	/* unix time; 0 or past = not allowed */
	/* the countries the permission covers, "US,GB"; "" = every one
	 * (schema step 7) */
	char	 overseas_countries[STORE_COUNTRIES_MAX + 1];
	int64_t	 limit_msgs_day;
	int64_t	 limit_rcpts_day;
	int64_t	 limit_rcpts_hour;
	int64_t	 limit_rcpts_msg;
	int64_t	 limit_overseas_rcpts_day;
	int	 any_sender;		/* 1: sender alignment not enforced */
	/* the account's own trusted relay name suffixes, comma-separated
	 * ("" none), on top of the config's trusted_relay_names */
	char	 relay_names[256];
};

/*
 * refuse_own_from (issue 16, docs/filters.md): mail on MX whose header
 * From is the account's address or alias and that does not authenticate
 * is refused. get/set: 1 = no such account. lookup: the account whose
 * address or alias ADDRESS is; 1 = none; on 0 *account_r (caller frees)
 * and *on_r.
 */
int store_own_from_get(struct store *st, const char *address, int *on_r,
    const char **error_r);
int store_own_from_set(struct store *st, const char *address, int on,
    const char **error_r);
int store_own_from_lookup(struct store *st, const char *address,
    char **account_r, int *on_r, const char **error_r);

/* 1 = no such account. */
int store_policy_get(struct store *st, const char *address,
    struct account_policy *p, const char **error_r);
/* Sets the limits and any_sender of p (not overseas_until). */
int store_policy_set_limits(struct store *st, const char *address,
    const struct account_policy *p, const char **error_r);
int store_overseas_set(struct store *st, const char *address, int64_t until,
    const char **error_r);
/* The same with the countries it covers ("US,GB"; "" every one; the
 * caller checks the form, policy_countries_parse). */
int store_overseas_set_countries(struct store *st, const char *address,
    int64_t until, const char *countries, const char **error_r);

/*
 * Retention (i17-country): delete rows older than their retention in
 * batches of at most batch rows per statement, until none is left or
 * max_batches statements ran. The tables are store_policy.c's
 * store_retention_table[] (one line each); days_of(i) gives the
 * retention in days of row i (its config key). deleted_r[i]: rows gone.
 */
#define STORE_RETENTION_MAX	16
size_t store_retention_count(void);
/* Table name and config key name of entry i. */
const char *store_retention_table_name(size_t i);
size_t store_retention_config_offset(size_t i);
int store_retention_sweep(struct store *st, size_t i, int64_t now, int days,
    int batch, int max_batches, int64_t *deleted_r, const char **error_r);

/*
 * Send counters: one row per account and period ("d:2026-11-23",
 * "h:2026-11-23T10", "o:2026-11-23"). store_count_add adds msgs and rcpts
 * to every listed counter in one transaction, all or nothing: if any
 * counter would pass its limit (max < 0 = no limit), nothing changes
 * and it returns 1 with *over_r the index of the first such counter.
 * Two callers racing, on one node or several, never both pass a limit.
 * Negative msgs/rcpts undo an earlier add (limits are not checked).
 */
struct store_counter {
	const char	*period;
	int64_t		 max_msgs;
	int64_t		 max_rcpts;
};
int store_count_add(struct store *st, const char *address,
    const struct store_counter *c, size_t n, int64_t msgs, int64_t rcpts,
    size_t *over_r, const char **error_r);
/* Current values (0, 0 when there is no row). */
int store_count_get(struct store *st, const char *address, const char *period,
    int64_t *msgs_r, int64_t *rcpts_r, const char **error_r);

/* Events: refusals, limits reached, throttling; kept by address so they
 * outlive the account. Text fields are cut when stored to these lengths
 * (bytes, UTF-8-safely; control characters stored as '?'): see
 * docs/policy.md "Stored lengths". */
#define STORE_EVENT_ACCOUNT_MAX	(STORE_ADDRESS_MAX + 16)
#define STORE_EVENT_TYPE_MAX	40
#define STORE_EVENT_IP_MAX	64
#define STORE_EVENT_COUNTRY_MAX	8
#define STORE_EVENT_DETAIL_MAX	200
#define STORE_MSGID_MAX		255	/* a submission's Message-ID */
#define STORE_TLS_MAX		128	/* its TLS description */
struct store_event {
	int64_t		 time;
	const char	*account;	/* may be NULL (an IP lock) */
	const char	*type;		/* "overseas_refused", ... */
	const char	*ip;
	const char	*country;
	const char	*detail;
};
int store_event_add(struct store *st, const struct store_event *e,
    const char **error_r);
/* Events since a time, newest last; account NULL = all; at most limit
 * rows (the newest). A row's NULL texts are "". */
typedef int store_event_cb(const struct store_event *row, void *context);
int store_event_list(struct store *st, const char *account, int64_t since,
    int limit, store_event_cb *cb, void *context, const char **error_r);
/* 0 the first time key is seen (the caller acts), 1 after that. */
int store_notice_once(struct store *st, const char *key, int64_t time,
    const char **error_r);

/* The submission log: one row per accepted submission. */
struct store_submission {
	const char	*queue_id;
	const char	*message_id;	/* may be NULL */
	int64_t		 time;
	const char	*account;
	const char	*ip;
	const char	*country;
	const char	*tls;		/* "TLSv1.3 ..." or NULL */
	int64_t		 rcpts;
	int64_t		 size;
	int		 overseas;
};
/* A queue id logged already keeps its first row (0: Postfix may ask
 * twice; inside store_write_begin a failed insert would undo the count). */
int store_submission_add(struct store *st, const struct store_submission *s,
    const char **error_r);
/* Rows matching the queue id or the Message-ID (either may be NULL),
 * newest last. 1 = none. A row's NULL texts are "". */
typedef int store_submission_cb(const struct store_submission *row,
    void *context);
int store_submission_find(struct store *st, const char *queue_id,
    const char *message_id, store_submission_cb *cb, void *context,
    const char **error_r);
/* The account's submissions since a time, newest last; account NULL = all
 * accounts; at most limit rows (the newest). */
int store_submission_list(struct store *st, const char *account, int64_t since,
    int limit, store_submission_cb *cb, void *context, const char **error_r);

/*
 * Authentication throttling, by key ("ip:192.0.2.7", "acct:a@b").
 * Failures count within a window that starts at the first failure; at
 * max failures the key is locked until now + lock. get: the state now.
 */
int store_throttle_get(struct store *st, const char *key, int64_t now,
    int64_t window, int64_t *failures_r, int64_t *locked_until_r,
    const char **error_r);
int store_throttle_fail(struct store *st, const char *key, int64_t now,
    int64_t window, int64_t max, int64_t lock, int64_t *failures_r,
    int64_t *locked_until_r, const char **error_r);
int store_throttle_clear(struct store *st, const char *key,
    const char **error_r);

/*
 * Trusted login addresses (schema step 6, docs/security.md): where a
 * login name last logged in, by client key (policy.c: an address, an
 * IPv6 network). seen: record a success at now, keep the newest `keep`
 * rows of the name, and drop every row (any name) older than since.
 * get: 0 when the name logged in from client at or after since, 1 when
 * not, -1 on errors. name: an account or "admin:NAME"; bound, never
 * looked at.
 */
int store_trusted_seen(struct store *st, const char *name, const char *client,
    int64_t now, int64_t since, int keep, const char **error_r);
int store_trusted_get(struct store *st, const char *name, const char *client,
    int64_t since, const char **error_r);

/* ---- state shared by the nodes (schema step 5) ----------------------- */

/*
 * Settings page sessions. The store never sees a session id: the caller
 * passes its SHA-256 (64 hex digits), so a copy of the database does not
 * log anybody in. account is a canonical address or "admin:NAME". A row
 * ends at expires (the caller moves it on with each use, up to a hard
 * limit from created). get: 1 when there is none or it has expired (an
 * expired row is deleted then). del: 1 if there was none.
 * del_account: every session of account but keep_hash's (NULL: all).
 */
#define STORE_SESSION_ACCOUNT_MAX	(STORE_ADDRESS_MAX + 16)
#define STORE_HEX_TOKEN_LEN		64

struct store_portal_session {
	char	 account[STORE_SESSION_ACCOUNT_MAX + 1];
	char	 csrf[STORE_HEX_TOKEN_LEN + 1];
	int64_t	 created;
	int64_t	 expires;
};
int store_portal_session_add(struct store *st, const char *id_hash,
    const char *account, const char *csrf, int64_t created, int64_t expires,
    const char **error_r);
int store_portal_session_get(struct store *st, const char *id_hash,
    int64_t now, struct store_portal_session *s_r, const char **error_r);
int store_portal_session_touch(struct store *st, const char *id_hash,
    int64_t expires, const char **error_r);
int store_portal_session_del(struct store *st, const char *id_hash,
    const char **error_r);
int store_portal_session_del_account(struct store *st, const char *account,
    const char *keep_hash, const char **error_r);

/*
 * The JSON API's bearer tokens (src/portal/api_token.h): the name and
 * the SHA-256 (64 hex) of the whole token. add: -1 "already exists".
 * get: 1 none; hash_r has room for 65 bytes. del: 1 none (error set).
 * list: sorted by name. Names: store_name_ok().
 */
/* A row of either list: the name, its hash (of the token; the admin's
 * crypt(3) password hash) and when it was made. */
struct store_name_row {
	const char	*name;
	const char	*hash;
	int64_t		 created;
};
typedef int store_name_cb(const struct store_name_row *row, void *context);
int store_api_token_add(struct store *st, const char *name, const char *hash,
    int64_t created, const char **error_r);
int store_api_token_get(struct store *st, const char *name, char *hash_r,
    const char **error_r);
int store_api_token_del(struct store *st, const char *name,
    const char **error_r);
int store_api_token_list(struct store *st, store_name_cb *cb, void *context,
    const char **error_r);

/*
 * The admin pages' accounts (src/portal/admin_users.h), crypt(3) hashes.
 * add: -1 "already exists". set_password, del: 1 none (error set).
 * get: 1 none; on 0 the caller frees *hash_r. list: sorted by name.
 * Names: store_name_ok(). list: rows as store_name_row.
 */
int store_admin_add(struct store *st, const char *name,
    const char *password_hash, int64_t created, const char **error_r);
int store_admin_set_password(struct store *st, const char *name,
    const char *password_hash, const char **error_r);
int store_admin_get(struct store *st, const char *name, char **hash_r,
    const char **error_r);
int store_admin_del(struct store *st, const char *name, const char **error_r);
int store_admin_list(struct store *st, store_name_cb *cb, void *context,
    const char **error_r);

/*
 * POP3's one session per mailbox (RFC 1939 section 4) across nodes: a
 * lease row (mailbox, node, session, expires). take: 0 taken (also when
 * the holder's lease has expired: a node that died does not lock a
 * mailbox for ever), 1 held by a live lease, in one atomic statement.
 * refresh: move expires on; 1 if the lease is no longer ours. release: 1
 * if it was not ours.
 */
int store_pop3_lock_take(struct store *st, const char *mailbox,
    const char *node, const char *session, int64_t now, int64_t expires,
    const char **error_r);
int store_pop3_lock_refresh(struct store *st, const char *mailbox,
    const char *node, const char *session, int64_t expires,
    const char **error_r);
int store_pop3_lock_release(struct store *st, const char *mailbox,
    const char *node, const char *session, const char **error_r);

/*
 * POP-before-SMTP windows: a POP3 login from client opens one for
 * account until a time (the last login from an address owns it). get:
 * 1 when no window is open at now; on 0 the caller frees *account_r.
 */
int store_popbsmtp_set(struct store *st, const char *client,
    const char *account, int64_t until, const char **error_r);
int store_popbsmtp_get(struct store *st, const char *client, int64_t now,
    char **account_r, const char **error_r);

/* Delete what has expired at now: portal sessions, POP3 leases,
 * POP-before-SMTP windows (the periodic sweep). */
int store_expire(struct store *st, int64_t now, const char **error_r);

/* ---- after a password is stolen (issue 17, schema step 7) ------------ */

/*
 * An account's automatic response and the desk's record of it, by
 * address. level: STORE_RISK_NONE..SUSPEND. get: 1 when there is no row
 * (*r zeroed). raise: to level if higher than the row's and the account
 * is not exempt, in one statement (two nodes raising at once: one wins);
 * 0 raised, 1 not. clear: level 0, cleared = now (older signals no longer
 * count). exempt: set or unset. warned: the desk's last warning and its
 * trace. Texts are cut to STORE_EVENT_DETAIL_MAX.
 */
enum store_risk_level {
	STORE_RISK_NONE,
	STORE_RISK_NOTIFY,
	STORE_RISK_HOLD,
	STORE_RISK_SUSPEND,
};
struct store_risk {
	int	 level;
	int	 automatic;
	int	 exempt;
	int64_t	 since;
	int64_t	 cleared;
	int64_t	 warned;
	char	 reason[STORE_EVENT_DETAIL_MAX + 1];
	char	 warning[STORE_EVENT_DETAIL_MAX + 1];
};
int store_risk_get(struct store *st, const char *account,
    struct store_risk *r, const char **error_r);
int store_risk_raise(struct store *st, const char *account, int level,
    int automatic, int64_t now, const char *reason, const char **error_r);
int store_risk_clear(struct store *st, const char *account, int64_t now,
    const char **error_r);
int store_risk_exempt(struct store *st, const char *account, int exempt,
    const char **error_r);
int store_risk_warned(struct store *st, const char *account, int64_t now,
    const char *warning, const char **error_r);
/* Accounts with a level or an event since since (candidates for the
 * list of accounts most at risk), at most limit, sorted. */
typedef int store_risk_account_cb(const char *account, void *context);
int store_risk_accounts(struct store *st, int64_t since, int limit,
    store_risk_account_cb *cb, void *context, const char **error_r);
/* A login of account from country at now: *last_r is when it last
 * logged in from there (0 never) and *known_r how many countries it has
 * logged in from before; then the row is set to now (unless it was set
 * within the hour: kept to the hour, so most logins write nothing). */
int store_risk_login(struct store *st, const char *account,
    const char *country, int64_t now, int64_t *last_r, int64_t *known_r,
    const char **error_r);
/* Remember that account sent to rcpt (lower-cased here): 0 the first
 * time (a first-time recipient), 1 known. */
int store_risk_recipient(struct store *st, const char *account,
    const char *rcpt, int64_t now, const char **error_r);
/* A failed login of account from client (a client key) at now: rows
 * older than since go; *accounts_r is how many accounts client failed
 * against since then, this one included. */
int store_risk_spray(struct store *st, const char *client,
    const char *account, int64_t now, int64_t since, int64_t *accounts_r,
    const char **error_r);
/* store copy: every risk record as it is (put: 1 for a name that cannot
 * be an account); the countries each account logged in from (when last)
 * and the recipients it sent to (when first), listed and put as they
 * are. Password spraying rows are not copied: they last minutes. */
typedef int store_risk_cb(const char *account, const struct store_risk *r,
    void *context);
int store_risk_each(struct store *st, store_risk_cb *cb, void *context,
    const char **error_r);
int store_risk_put(struct store *st, const char *account,
    const struct store_risk *r, const char **error_r);
enum store_risk_seen {
	STORE_RISK_SEEN_COUNTRY,	/* risk_logins: country, last */
	STORE_RISK_SEEN_RECIPIENT,	/* risk_recipients: rcpt, first */
};
typedef int store_risk_seen_cb(const char *account, const char *seen,
    int64_t time, void *context);
int store_risk_seen_each(struct store *st, enum store_risk_seen what,
    store_risk_seen_cb *cb, void *context, const char **error_r);
int store_risk_seen_put(struct store *st, enum store_risk_seen what,
    const char *account, const char *seen, int64_t time,
    const char **error_r);

#endif
