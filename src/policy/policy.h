/*
 * policy: the sending rules of PRODUCT.md, decided on the back side from
 * the store and the client's country. Session code asks through
 * be_proto.h (BE_POLICY_MAIL, BE_SPOOL_COMMIT) and only relays the reply.
 *
 *  - overseas: an authenticated submission from outside home_countries is
 *    refused unless the account's permission (an expiry time) is active
 *    or the client is in trusted_networks;
 *  - send counts: messages and recipients per calendar day in
 *    `timezone`, recipients per hour, per message, and per day from
 *    abroad; the check and the count are one store transaction;
 *  - sender alignment: envelope sender and header From are the account's
 *    address or aliases;
 *  - suspension: a suspended account is refused here too (it may have been
 *    suspended after it logged in);
 *  - authentication throttling: failures per address (an IPv6 client by
 *    its network) and per account, a growing delay, then a lock; an
 *    address's lock refuses even the right password, an account's lock
 *    not from where the account logged in lately (docs/security.md).
 *
 * Times come from policy_now(), the system clock plus a test-only offset
 * (environment SEKISHO_CLOCK_OFFSET, seconds; see docs/policy.md).
 */
#ifndef SEKISHO_POLICY_H
#define SEKISHO_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "../core/str.h"
#include "../geo/geo.h"

struct config;
struct store;

int64_t policy_now(void);
/* Read SEKISHO_CLOCK_OFFSET once (call before threads start). */
void policy_clock_init(void);

/* Period keys of the send counters, in the process time zone (set from
 * `timezone` at start): "d:2026-11-23", "h:2026-11-23T10",
 * "o:2026-11-23". buf: at least 24 bytes. */
void policy_period(char kind, int64_t t, char *buf, size_t len);
/* When the period holding t ends (the next local midnight or hour). */
int64_t policy_period_end(char kind, int64_t t);
/* "2026-11-24 00:00 JST" */
void policy_format_time(int64_t t, char *buf, size_t len);

/* Effective limits of an account (0 = no limit). */
struct policy_limits {
	int64_t	 msgs_day;
	int64_t	 rcpts_day;
	int64_t	 rcpts_hour;
	int64_t	 rcpts_msg;
	int64_t	 overseas_rcpts_day;
};

enum policy_verdict {
	POLICY_OK,
	POLICY_REJECT,		/* 5xx in reply */
	POLICY_TEMPFAIL,	/* 4xx in reply */
};

/* What the MAIL decision tells the session for the rest of the
 * transaction. */
struct policy_mail_result {
	enum policy_verdict verdict;
	struct str	 reply;		/* "550 5.7.1 ..." when not OK */
	char		 country[16];	/* "JP", "internal", "unknown" */
	int		 overseas;	/* sending from abroad, permitted */
	int		 notify;	/* overseas refusal: send a notice */
	int64_t		 rcpts_left;	/* -1: no limit */
	int64_t		 rcpts_msg;	/* -1: no limit */
	struct str	 rcpt_reply;	/* the reply once rcpts_left is used */
	/* Set by the caller before policy_mail (the Postfix listener's
	 * rcpt counting): this message is in the message count already,
	 * so its own recipients may follow; its recipients are too, so
	 * no recipient limit is checked again. */
	int		 msg_counted;
	int		 rcpts_counted;
};

void policy_mail_result_init(struct policy_mail_result *r);
void policy_mail_result_deinit(struct policy_mail_result *r);

/*
 * Decide MAIL FROM of an authenticated (or POP-before-SMTP) submission.
 * client: printable address; geo: its look-up; -1 only on store errors
 * (the result is then TEMPFAIL with a reply).
 */
int policy_mail(const struct config *conf, struct store *st,
    const char *account, const char *sender, const char *client,
    const struct sockaddr *client_sa, const struct geo_result *geo,
    struct policy_mail_result *r);

/*
 * At the end of DATA, before the spool commit: header From alignment,
 * then the atomic check-and-count. On POLICY_OK the counts are taken;
 * policy_uncount() gives them back if the commit then fails.
 */
enum policy_verdict policy_commit(const struct config *conf, struct store *st,
    const char *account, const char *client, const char *country,
    int overseas, int64_t rcpts, int check_from, const char *const *from,
    size_t nfrom, struct str *reply);
/*
 * The atomic check-and-count alone: msgs messages (0 or 1) and rcpts
 * recipients against every limit of the account. POLICY_OK: counted;
 * POLICY_TEMPFAIL with the reply naming the limit (or a store error).
 */
enum policy_verdict policy_count(const struct config *conf, struct store *st,
    const char *account, const char *client, const char *country,
    int overseas, int64_t msgs, int64_t rcpts, struct str *reply);
void policy_uncount(const struct config *conf, struct store *st,
    const char *account, int overseas, int64_t rcpts);

/* Effective limits (account overrides over config defaults). */
int policy_limits(const struct config *conf, struct store *st,
    const char *account, struct policy_limits *l, const char **error_r);


/*
 * The key a client counts under for throttling and trusted addresses:
 * an IPv4 address as is, an IPv6 one as its ipv6_client_prefix network
 * ("2001:db8:1:2::/64"). client: a printable address.
 */
const char *policy_client_key(const struct config *conf, const char *client,
    char *buf, size_t len);

/* Most trusted login addresses remembered per name (newest kept). */
#define POLICY_TRUSTED_MAX	16

/*
 * Authentication throttling, by client key (above) and by name. check:
 * before verifying a password; returns 1 to refuse without looking at
 * the password: the address is locked, or the account is and the
 * client key is not one the name logged in from within
 * auth_trusted_address_days (*until_r: when the lock ends), or the name
 * fails str_login_name_ok (*until_r 0); 0 to go on, -1 on store
 * errors (go on: an unreachable store must not lock everyone out).
 * fail: after a failure; returns the delay in milliseconds to wait
 * before answering, and records a lock event. ok: after a success
 * (clears the name's count, remembers the client key as trusted).
 */
int policy_auth_check(const struct config *conf, struct store *st,
    const char *account, const char *client, int64_t *until_r);
int64_t policy_auth_fail(const struct config *conf, struct store *st,
    const char *account, const char *client, const char *service);
void policy_auth_ok(const struct config *conf, struct store *st,
    const char *account, const char *client);

/* Record an event (errors are logged, not returned). */
void policy_event(struct store *st, const char *account, const char *type,
    const char *client, const char *country, const char *detail);

/*
 * Overseas permission by country (issue 17 items 5 and 7). An
 * account's permission covers the countries of its overseas_countries,
 * "US,GB", or every country when that is empty.
 *
 * policy_countries_parse: "us, GB" into "US,GB" (upper case, each once,
 * at most 40); -1 when text is not such a list or out (len) is short.
 * policy_country_listed: 1 when country ("US") is in list ("US,GB").
 * policy_permission_covers: 1 the permission is active and covers geo's
 * country, 0 no active permission, 2 active but not for this country.
 */
struct account_policy;
int policy_countries_parse(const char *text, char *out, size_t len);
int policy_country_listed(const char *list, const char *country);
int policy_permission_covers(const struct account_policy *p,
    const struct geo_result *geo, int64_t now);

/* 1 if logins or submissions over proto ("submission", "pop3", "imap")
 * are restricted from abroad by overseas_restrict, 0 if not. */
int policy_overseas_restricts(const struct config *conf, const char *proto);

/*
 * A login over proto ("pop3", "imap"; never the settings page) from
 * client: 1 to refuse it (proto restricted, the client abroad and not in
 * trusted_networks, no active permission covering its country), with
 * country_r the country ("CN", "unknown") and reply a one-line text
 * naming it and the settings page (no status prefix: "-ERR [AUTH] " or
 * the caller's own goes before it); an overseas_refused event is
 * recorded. 0 to allow; -1 the store failed (allow, logged).
 */
int policy_login_overseas(const struct config *conf, struct store *st,
    const char *account, const char *client, const struct sockaddr *sa,
    const struct geo_result *geo, const char *proto, char country_r[16],
    struct str *reply);

/* The settings page URL (portal_url, or https://HOSTNAME/). */
const char *policy_portal_url(const struct config *conf, char *buf,
    size_t len);

#endif
