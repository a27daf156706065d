/*
 * store: the public face of the account store (see store.h). Picks the
 * backend by URI scheme, and checks and canonicalizes every address and
 * domain before a backend sees it, so all backends agree on what an
 * address is and the error texts read the same (store_impl.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "store.h"
#include "store_impl.h"

static const struct store_ops *const store_backends[] = {
	&store_sqlite_ops,
	&store_pgsql_ops,
};

/* Room for a quoted piece of caller text in an error message. */
#define STORE_QUOTE_SIZE	200
#define STORE_REASON_MAX	200

static _Thread_local char store_open_error_buf[512];

void
account_deinit(struct account *a)
{
	free(a->address);
	free(a->password_hash);
	free(a->suspend_reason);
	memset(a, 0, sizeof(*a));
}

void
store_base_init(struct store *st, const struct store_ops *ops)
{
	st->ops = ops;
	str_init(&st->error);
}

void
store_set_error(struct store *st, const char **error_r, const char *fmt, ...)
{
	va_list ap;

	str_clear(&st->error);
	va_start(ap, fmt);
	str_vprintf(&st->error, fmt, ap);
	va_end(ap);
	*error_r = str_c(&st->error);
}

void
store_open_error(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(store_open_error_buf, sizeof(store_open_error_buf),
	    fmt, ap);
	va_end(ap);
	*error_r = store_open_error_buf;
}

/* Caller or client text in an error message: printable, cut short. */
static const char *
store_quote(char *buf, size_t size, const char *text)
{
	return log_printable(buf, size, text, strlen(text));
}

const char *
store_address_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at == NULL ? address + strlen(address) : at + 1;
}

static char
store_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* RFC 5322 section 3.2.3 atext, without '/': a local part names a
 * Maildir directory, and no provider hands out addresses with one. */
static int
store_is_atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-=?^_`{|}~",
	    c) != NULL);
}

/* Letters, digits and hyphens (RFC 1035 section 2.3.1, RFC 5890 for
 * the xn-- form of internationalized names). */
static const char *
store_check_domain(const char *d, size_t len)
{
	size_t label = 0;

	if (len == 0)
		return "empty domain";
	if (len > 253)
		return "domain longer than 253 octets";
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? d[i] : '.';

		if (c == '.') {
			if (label == 0)
				return "empty label in domain";
			if (d[i - label] == '-' || d[i - 1] == '-')
				return "domain label starts or ends with '-'";
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return "domain may contain only letters, digits, '-' "
			    "and '.' (write internationalized names in their "
			    "xn-- form)";
		if (++label > 63)
			return "domain label longer than 63 octets";
	}
	return NULL;
}

/* A dot-atom local part (RFC 5322 section 3.2.3), at most 64 octets
 * (RFC 5321 section 4.5.3.1.1). Quoted local parts are not accepted
 * for accounts. */
static const char *
store_check_local(const char *l, size_t len)
{
	if (len == 0)
		return "empty local part";
	if (len > 64)
		return "local part longer than 64 octets";
	for (size_t i = 0; i < len; i++) {
		if (l[i] == '.') {
			if (i == 0 || i == len - 1 || l[i + 1] == '.')
				return "local part has a '.' at its start or "
				    "end or two in a row";
		} else if (!store_is_atext(l[i])) {
			return "local part may contain only letters, digits, "
			    "'.' and !#$%&'*+-=?^_`{|}~";
		}
	}
	return NULL;
}

int
store_address_canonical(const char *address, char *buf, size_t size,
    const char **error_r)
{
	size_t len = strlen(address), ats = 0;
	const char *at = NULL, *reason;

	if (len > STORE_ADDRESS_MAX) {
		*error_r = "address longer than 254 octets";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)address[i];

		if (c <= 0x20 || c == 0x7f) {
			*error_r = "address contains a space or control "
			    "character";
			return -1;
		}
		if (c >= 0x80) {
			/* XXX: SMTPUTF8 (RFC 6531) addresses are not
			 * supported yet. */
			*error_r = "address contains non-ASCII characters";
			return -1;
		}
		if (c == '@') {
			ats++;
			at = address + i;
		}
	}
	if (ats != 1 || at == NULL) {
		*error_r = "address must contain exactly one '@'";
		return -1;
	}
	if ((reason = store_check_local(address, (size_t)(at - address))) !=
	    NULL || (reason = store_check_domain(at + 1,
	    len - (size_t)(at - address) - 1)) != NULL) {
		*error_r = reason;
		return -1;
	}
	if (size <= len) {
		*error_r = "address buffer too small";
		return -1;
	}
	for (size_t i = 0; i <= len; i++)
		buf[i] = store_lower(address[i]);
	return 0;
}

int
store_domain_canonical(const char *domain, char *buf, size_t size,
    const char **error_r)
{
	size_t len = strlen(domain);
	const char *reason;

	if ((reason = store_check_domain(domain, len)) != NULL) {
		*error_r = reason;
		return -1;
	}
	if (size <= len) {
		*error_r = "domain buffer too small";
		return -1;
	}
	for (size_t i = 0; i <= len; i++)
		buf[i] = store_lower(domain[i]);
	return 0;
}

/*
 * For look-ups: lower-case text into buf. 1 when it cannot be a stored
 * name (too long, spaces, control or non-ASCII bytes), which the caller
 * answers as "not found" without asking the backend.
 */
static int
store_lookup_key(const char *text, char buf[STORE_ADDRESS_MAX + 1])
{
	size_t len = strlen(text);

	if (len > STORE_ADDRESS_MAX)
		return 1;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (i < len && (c <= 0x20 || c >= 0x7f))
			return 1;
		buf[i] = store_lower((char)c);
	}
	return 0;
}

/* Free text stored beside an account (the suspension reason), shown
 * on one line to operators and the subscriber. */
static const char *
store_check_reason(const char *reason)
{
	if (strlen(reason) > STORE_REASON_MAX)
		return "reason longer than 200 octets";
	for (const unsigned char *p = (const unsigned char *)reason;
	    *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return "reason contains a control character";
	}
	return NULL;
}

static const char *
store_check_hash(const char *hash)
{
	if (hash == NULL || *hash == '\0')
		return "empty password hash";
	if (strlen(hash) > 512)
		return "password hash too long";
	for (const unsigned char *p = (const unsigned char *)hash;
	    *p != '\0'; p++) {
		if (*p <= 0x20 || *p >= 0x7f)
			return "password hash contains a space, control or "
			    "non-ASCII character";
	}
	return NULL;
}

struct store *
store_open(const char *uri, const char **error_r)
{
	char quoted[STORE_QUOTE_SIZE];
	const char *colon;
	size_t n;

	if (uri == NULL || *uri == '\0') {
		store_open_error(error_r, "no store configured");
		return NULL;
	}
	colon = strchr(uri, ':');
	if (colon != NULL) {
		n = (size_t)(colon - uri);
		for (size_t i = 0; i < sizeof(store_backends) /
		    sizeof(store_backends[0]); i++) {
			const struct store_ops *ops = store_backends[i];

			if (strlen(ops->scheme) == n &&
			    strncmp(ops->scheme, uri, n) == 0)
				return ops->open(colon + 1, error_r);
		}
	}
	store_open_error(error_r, "unknown store '%s' (expected sqlite:PATH or "
	    "postgresql:CONNINFO)",
	    store_quote(quoted, sizeof(quoted), uri));
	return NULL;
}

void
store_close(struct store **st)
{
	struct store *s = *st;

	if (s == NULL)
		return;
	*st = NULL;
	str_deinit(&s->error);
	s->ops->close(s);
}

int
store_init_schema(struct store *st, const char **error_r)
{
	return st->ops->init_schema(st, error_r);
}

int
store_schema_version(struct store *st, int *version_r, const char **error_r)
{
	*version_r = 0;
	return st->ops->schema_version(st, version_r, error_r);
}

int
store_domain_add(struct store *st, const char *domain, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];
	const char *reason;

	if (store_domain_canonical(domain, key, sizeof(key), &reason) < 0) {
		store_set_error(st, error_r, "invalid domain '%s': %s",
		    store_quote(quoted, sizeof(quoted), domain), reason);
		return -1;
	}
	return st->ops->domain_add(st, key, error_r);
}

int
store_domain_del(struct store *st, const char *domain, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];

	if (store_lookup_key(domain, key) != 0) {
		store_set_error(st, error_r, STORE_ERR_NO_DOMAIN,
		    store_quote(quoted, sizeof(quoted), domain));
		return 1;
	}
	return st->ops->domain_del(st, key, error_r);
}

int
store_domain_exists(struct store *st, const char *domain, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];

	if (store_lookup_key(domain, key) != 0)
		return 1;
	return st->ops->domain_exists(st, key, error_r);
}

int
store_domain_list(struct store *st, struct str *out, const char **error_r)
{
	return st->ops->domain_list(st, out, error_r);
}

int
store_account_add(struct store *st, const char *address,
    const char *password_hash, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];
	const char *reason;

	if (store_address_canonical(address, key, sizeof(key), &reason) < 0) {
		store_set_error(st, error_r, "invalid address '%s': %s",
		    store_quote(quoted, sizeof(quoted), address), reason);
		return -1;
	}
	if ((reason = store_check_hash(password_hash)) != NULL) {
		store_set_error(st, error_r, "%s", reason);
		return -1;
	}
	return st->ops->account_add(st, key, password_hash, error_r);
}

int
store_account_del(struct store *st, const char *address, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];

	if (store_lookup_key(address, key) != 0) {
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT,
		    store_quote(quoted, sizeof(quoted), address));
		return 1;
	}
	return st->ops->account_del(st, key, error_r);
}

int
store_account_set_password(struct store *st, const char *address,
    const char *password_hash, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];
	const char *reason;

	if ((reason = store_check_hash(password_hash)) != NULL) {
		store_set_error(st, error_r, "%s", reason);
		return -1;
	}
	if (store_lookup_key(address, key) != 0) {
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT,
		    store_quote(quoted, sizeof(quoted), address));
		return 1;
	}
	return st->ops->account_set_password(st, key, password_hash, error_r);
}

int
store_account_set_suspended(struct store *st, const char *address,
    int suspended, const char *reason, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];
	const char *why;

	/* No reason outlives its suspension; an empty one is none. */
	if (!suspended || (reason != NULL && *reason == '\0'))
		reason = NULL;
	if (reason != NULL && (why = store_check_reason(reason)) != NULL) {
		store_set_error(st, error_r, "%s", why);
		return -1;
	}
	if (store_lookup_key(address, key) != 0) {
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT,
		    store_quote(quoted, sizeof(quoted), address));
		return 1;
	}
	return st->ops->account_set_suspended(st, key, suspended ? 1 : 0,
	    reason, error_r);
}

int
store_account_get(struct store *st, const char *address, struct account *a,
    const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];

	if (store_lookup_key(address, key) != 0)
		return 1;
	return st->ops->account_get(st, key, a, error_r);
}

int
store_account_list(struct store *st, const char *domain, struct str *out,
    const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];

	if (domain == NULL)
		return st->ops->account_list(st, NULL, out, error_r);
	if (store_lookup_key(domain, key) != 0) {
		store_set_error(st, error_r, STORE_ERR_NO_DOMAIN,
		    store_quote(quoted, sizeof(quoted), domain));
		return 1;
	}
	return st->ops->account_list(st, key, out, error_r);
}

int
store_alias_add(struct store *st, const char *alias, const char *target,
    const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], tkey[STORE_ADDRESS_MAX + 1];
	char quoted[STORE_QUOTE_SIZE];
	const char *reason;

	if (store_address_canonical(alias, key, sizeof(key), &reason) < 0) {
		store_set_error(st, error_r, "invalid alias '%s': %s",
		    store_quote(quoted, sizeof(quoted), alias), reason);
		return -1;
	}
	if (store_lookup_key(target, tkey) != 0) {
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT,
		    store_quote(quoted, sizeof(quoted), target));
		return -1;
	}
	return st->ops->alias_add(st, key, tkey, error_r);
}

int
store_alias_del(struct store *st, const char *alias, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];

	if (store_lookup_key(alias, key) != 0) {
		store_set_error(st, error_r, STORE_ERR_NO_ALIAS,
		    store_quote(quoted, sizeof(quoted), alias));
		return 1;
	}
	return st->ops->alias_del(st, key, error_r);
}

int
store_alias_list(struct store *st, const char *target, struct str *out,
    const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];

	if (target == NULL)
		return st->ops->alias_list(st, NULL, out, error_r);
	if (store_lookup_key(target, key) != 0) {
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT,
		    store_quote(quoted, sizeof(quoted), target));
		return 1;
	}
	return st->ops->alias_list(st, key, out, error_r);
}

int
store_resolve_recipient(struct store *st, const char *address,
    char **account_r, int *domain_local_r, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];
	const char *at;
	int ret;

	*account_r = NULL;
	*domain_local_r = 0;
	if (store_lookup_key(address, key) == 0 && strchr(key, '@') != NULL) {
		ret = st->ops->resolve_recipient(st, key, account_r,
		    domain_local_r, error_r);
		if (ret == 0)
			*domain_local_r = 1;
		return ret;
	}
	/* Not a name we could have stored; still say whether the domain is
	 * ours, so the caller can tell "user unknown" from "relay denied". */
	if ((at = strrchr(address, '@')) == NULL)
		return 1;
	ret = store_domain_exists(st, at + 1, error_r);
	if (ret < 0)
		return -1;
	*domain_local_r = ret == 0;
	return 1;
}

int
store_apop_set(struct store *st, const char *address, const char *sealed,
    const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1], quoted[STORE_QUOTE_SIZE];

	if (sealed == NULL || *sealed == '\0') {
		store_set_error(st, error_r, "empty APOP secret refused");
		return -1;
	}
	if (store_lookup_key(address, key) != 0) {
		store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT,
		    store_quote(quoted, sizeof(quoted), address));
		return 1;
	}
	return st->ops->apop_set(st, key, sealed, error_r);
}

int
store_apop_get(struct store *st, const char *address, char **sealed_r,
    const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];

	*sealed_r = NULL;
	if (store_lookup_key(address, key) != 0)
		return 1;
	return st->ops->apop_get(st, key, sealed_r, error_r);
}

int
store_apop_clear(struct store *st, const char *address, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];

	if (store_lookup_key(address, key) != 0)
		return 1;
	return st->ops->apop_clear(st, key, error_r);
}

/* ---- sending policy ------------------------------------------------ */

/* The canonical key of an account address, or 1 with the "no such
 * account" error (a name we could never have stored is not an account). */
static int
store_policy_key(struct store *st, const char *address,
    char key[STORE_ADDRESS_MAX + 1], const char **error_r)
{
	char quoted[STORE_QUOTE_SIZE];

	if (store_lookup_key(address, key) == 0)
		return 0;
	store_set_error(st, error_r, STORE_ERR_NO_ACCOUNT,
	    store_quote(quoted, sizeof(quoted), address));
	return 1;
}

int
store_policy_get(struct store *st, const char *address,
    struct account_policy *p, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];

	if (store_policy_key(st, address, key, error_r) != 0)
		return 1;
	return st->ops->policy_get(st, key, p, error_r);
}

int
store_policy_set_limits(struct store *st, const char *address,
    const struct account_policy *p, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];

	if (store_policy_key(st, address, key, error_r) != 0)
		return 1;
	return st->ops->policy_set_limits(st, key, p, error_r);
}

int
store_overseas_set(struct store *st, const char *address, int64_t until,
    const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];

	if (store_policy_key(st, address, key, error_r) != 0)
		return 1;
	return st->ops->overseas_set(st, key, until, error_r);
}

int
store_count_add(struct store *st, const char *address,
    const struct store_counter *c, size_t n, int64_t msgs, int64_t rcpts,
    size_t *over_r, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];

	if (store_policy_key(st, address, key, error_r) != 0)
		return -1;
	return st->ops->count_add(st, key, c, n, msgs, rcpts, over_r, error_r);
}

int
store_count_get(struct store *st, const char *address, const char *period,
    int64_t *msgs_r, int64_t *rcpts_r, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];

	*msgs_r = *rcpts_r = 0;
	if (store_policy_key(st, address, key, error_r) != 0)
		return 1;
	return st->ops->count_get(st, key, period, msgs_r, rcpts_r, error_r);
}

/*
 * Free text from outside is cut when it is stored (docs/policy.md
 * "Stored lengths"): at most max bytes, at a UTF-8 character boundary,
 * control characters (< 0x20, 0x7f) made '?', so a row read back has no
 * TAB or line end inside a field and a page or reply built from rows has
 * a known size. NULL stays NULL. The result is in buf (max + 1 bytes).
 */
static const char *
store_text_cut(const char *s, char *buf, size_t max)
{
	size_t len;

	if (s == NULL)
		return NULL;
	len = strnlen(s, max + 1);
	if (len > max) {
		len = max;
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	buf[len] = '\0';
	return buf;
}

int
store_event_add(struct store *st, const struct store_event *e,
    const char **error_r)
{
	char account[STORE_EVENT_ACCOUNT_MAX + 1], type[STORE_EVENT_TYPE_MAX + 1];
	char ip[STORE_EVENT_IP_MAX + 1], country[STORE_EVENT_COUNTRY_MAX + 1];
	char detail[STORE_EVENT_DETAIL_MAX + 1];
	struct store_event cut = {
		.time = e->time,
		.account = store_text_cut(e->account, account,
		    STORE_EVENT_ACCOUNT_MAX),
		.type = store_text_cut(e->type, type, STORE_EVENT_TYPE_MAX),
		.ip = store_text_cut(e->ip, ip, STORE_EVENT_IP_MAX),
		.country = store_text_cut(e->country, country,
		    STORE_EVENT_COUNTRY_MAX),
		.detail = store_text_cut(e->detail, detail,
		    STORE_EVENT_DETAIL_MAX),
	};

	return st->ops->event_add(st, &cut, error_r);
}

int
store_event_list(struct store *st, const char *account, int64_t since,
    int limit, struct str *out, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];

	if (account != NULL) {
		if (store_lookup_key(account, key) != 0)
			return 0;	/* nothing recorded for such a name */
		account = key;
	}
	return st->ops->event_list(st, account, since, limit, out, error_r);
}

int
store_notice_once(struct store *st, const char *key, int64_t time,
    const char **error_r)
{
	return st->ops->notice_once(st, key, time, error_r);
}

int
store_submission_add(struct store *st, const struct store_submission *s,
    const char **error_r)
{
	char msgid[STORE_MSGID_MAX + 1], ip[STORE_EVENT_IP_MAX + 1];
	char country[STORE_EVENT_COUNTRY_MAX + 1], tls[STORE_TLS_MAX + 1];
	struct store_submission cut = *s;

	cut.message_id = store_text_cut(s->message_id, msgid, STORE_MSGID_MAX);
	cut.ip = store_text_cut(s->ip, ip, STORE_EVENT_IP_MAX);
	cut.country = store_text_cut(s->country, country,
	    STORE_EVENT_COUNTRY_MAX);
	cut.tls = store_text_cut(s->tls, tls, STORE_TLS_MAX);
	return st->ops->submission_add(st, &cut, error_r);
}

int
store_submission_find(struct store *st, const char *queue_id,
    const char *message_id, struct str *out, const char **error_r)
{
	char msgid[STORE_MSGID_MAX + 1];

	/* found as it was stored: cut the same way */
	return st->ops->submission_find(st, queue_id, store_text_cut(
	    message_id, msgid, STORE_MSGID_MAX), out, error_r);
}

int
store_submission_list(struct store *st, const char *account, int64_t since,
    int limit, struct str *out, const char **error_r)
{
	char key[STORE_ADDRESS_MAX + 1];

	if (account == NULL)	/* all accounts: store copy */
		return st->ops->submission_list(st, NULL, since, limit, out,
		    error_r);
	if (store_lookup_key(account, key) != 0)
		return 0;
	return st->ops->submission_list(st, key, since, limit, out, error_r);
}

int
store_throttle_get(struct store *st, const char *key, int64_t now,
    int64_t window, int64_t *failures_r, int64_t *locked_until_r,
    const char **error_r)
{
	return st->ops->throttle_get(st, key, now, window, failures_r,
	    locked_until_r, error_r);
}

int
store_throttle_fail(struct store *st, const char *key, int64_t now,
    int64_t window, int64_t max, int64_t lock, int64_t *failures_r,
    int64_t *locked_until_r, const char **error_r)
{
	return st->ops->throttle_fail(st, key, now, window, max, lock,
	    failures_r, locked_until_r, error_r);
}

int
store_throttle_clear(struct store *st, const char *key, const char **error_r)
{
	return st->ops->throttle_clear(st, key, error_r);
}

/* ---- trusted login addresses (schema step 6) ------------------------- */

int
store_trusted_seen(struct store *st, const char *name, const char *client,
    int64_t now, int64_t since, int keep, const char **error_r)
{
	return st->ops->trusted_seen(st, name, client, now, since,
	    keep > 0 ? keep : 1, error_r);
}

int
store_trusted_get(struct store *st, const char *name, const char *client,
    int64_t since, const char **error_r)
{
	return st->ops->trusted_get(st, name, client, since, error_r);
}

/* ---- state shared by the nodes (schema step 5) ----------------------- */

/* A SHA-256 or a random token: 64 lower-case hex digits. */
static int
store_is_hex_token(const char *s)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i <= STORE_HEX_TOKEN_LEN && s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == STORE_HEX_TOKEN_LEN;
}

/* A short key the caller made (an admin or token name, a node id, a
 * client address, an account): 1 to max printable ASCII octets. */
static int
store_is_key(const char *s, size_t max)
{
	size_t i;

	if (s == NULL || *s == '\0')
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (i >= max || (unsigned char)s[i] <= 0x20 ||
		    (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

static int
store_bad_arg(struct store *st, const char *what, const char **error_r)
{
	store_set_error(st, error_r, "invalid %s", what);
	return -1;
}

int
store_portal_session_add(struct store *st, const char *id_hash,
    const char *account, const char *csrf, int64_t created, int64_t expires,
    const char **error_r)
{
	if (!store_is_hex_token(id_hash) || !store_is_hex_token(csrf) ||
	    !store_is_key(account, STORE_SESSION_ACCOUNT_MAX))
		return store_bad_arg(st, "portal session", error_r);
	return st->ops->portal_session_add(st, id_hash, account, csrf,
	    created, expires, error_r);
}

int
store_portal_session_get(struct store *st, const char *id_hash, int64_t now,
    struct store_portal_session *s_r, const char **error_r)
{
	memset(s_r, 0, sizeof(*s_r));
	if (!store_is_hex_token(id_hash))
		return 1;
	return st->ops->portal_session_get(st, id_hash, now, s_r, error_r);
}

int
store_portal_session_touch(struct store *st, const char *id_hash,
    int64_t expires, const char **error_r)
{
	if (!store_is_hex_token(id_hash))
		return 1;
	return st->ops->portal_session_touch(st, id_hash, expires, error_r);
}

int
store_portal_session_del(struct store *st, const char *id_hash,
    const char **error_r)
{
	if (!store_is_hex_token(id_hash))
		return 1;
	return st->ops->portal_session_del(st, id_hash, error_r);
}

int
store_portal_session_del_account(struct store *st, const char *account,
    const char *keep_hash, const char **error_r)
{
	if (!store_is_key(account, STORE_SESSION_ACCOUNT_MAX))
		return store_bad_arg(st, "account", error_r);
	if (keep_hash != NULL && !store_is_hex_token(keep_hash))
		keep_hash = NULL;
	return st->ops->portal_session_del_account(st, account, keep_hash,
	    error_r);
}

#define STORE_NAME_MAX	64	/* admin and token names */

int
store_api_token_add(struct store *st, const char *name, const char *hash,
    int64_t created, const char **error_r)
{
	if (!store_is_key(name, STORE_NAME_MAX))
		return store_bad_arg(st, "token name", error_r);
	if (!store_is_hex_token(hash))
		return store_bad_arg(st, "token hash", error_r);
	return st->ops->api_token_add(st, name, hash, created, error_r);
}

int
store_api_token_get(struct store *st, const char *name, char *hash_r,
    const char **error_r)
{
	*hash_r = '\0';
	if (!store_is_key(name, STORE_NAME_MAX))
		return 1;
	return st->ops->api_token_get(st, name, hash_r, error_r);
}

int
store_api_token_del(struct store *st, const char *name, const char **error_r)
{
	char quoted[STORE_QUOTE_SIZE];

	if (!store_is_key(name, STORE_NAME_MAX)) {
		store_set_error(st, error_r, STORE_ERR_NO_TOKEN,
		    store_quote(quoted, sizeof(quoted), name));
		return 1;
	}
	return st->ops->api_token_del(st, name, error_r);
}

int
store_api_token_list(struct store *st, struct str *out, const char **error_r)
{
	return st->ops->api_token_list(st, out, error_r);
}

int
store_admin_add(struct store *st, const char *name, const char *password_hash,
    int64_t created, const char **error_r)
{
	const char *reason;

	if (!store_is_key(name, STORE_NAME_MAX))
		return store_bad_arg(st, "admin name", error_r);
	if ((reason = store_check_hash(password_hash)) != NULL) {
		store_set_error(st, error_r, "%s", reason);
		return -1;
	}
	return st->ops->admin_add(st, name, password_hash, created, error_r);
}

int
store_admin_set_password(struct store *st, const char *name,
    const char *password_hash, const char **error_r)
{
	char quoted[STORE_QUOTE_SIZE];
	const char *reason;

	if ((reason = store_check_hash(password_hash)) != NULL) {
		store_set_error(st, error_r, "%s", reason);
		return -1;
	}
	if (!store_is_key(name, STORE_NAME_MAX)) {
		store_set_error(st, error_r, STORE_ERR_NO_ADMIN,
		    store_quote(quoted, sizeof(quoted), name));
		return 1;
	}
	return st->ops->admin_set_password(st, name, password_hash, error_r);
}

int
store_admin_get(struct store *st, const char *name, char **hash_r,
    const char **error_r)
{
	*hash_r = NULL;
	if (!store_is_key(name, STORE_NAME_MAX))
		return 1;
	return st->ops->admin_get(st, name, hash_r, error_r);
}

int
store_admin_del(struct store *st, const char *name, const char **error_r)
{
	char quoted[STORE_QUOTE_SIZE];

	if (!store_is_key(name, STORE_NAME_MAX)) {
		store_set_error(st, error_r, STORE_ERR_NO_ADMIN,
		    store_quote(quoted, sizeof(quoted), name));
		return 1;
	}
	return st->ops->admin_del(st, name, error_r);
}

int
store_admin_list(struct store *st, struct str *out, const char **error_r)
{
	return st->ops->admin_list(st, out, error_r);
}

/* mailbox: the canonical account; node and session: the holder's. */
static int
store_lock_args(const char *mailbox, const char *node, const char *session)
{
	return store_is_key(mailbox, STORE_ADDRESS_MAX) &&
	    store_is_key(node, 255) && store_is_key(session, 64);
}

int
store_pop3_lock_take(struct store *st, const char *mailbox, const char *node,
    const char *session, int64_t now, int64_t expires, const char **error_r)
{
	if (!store_lock_args(mailbox, node, session))
		return store_bad_arg(st, "POP3 lock", error_r);
	return st->ops->pop3_lock_take(st, mailbox, node, session, now,
	    expires, error_r);
}

int
store_pop3_lock_refresh(struct store *st, const char *mailbox,
    const char *node, const char *session, int64_t expires,
    const char **error_r)
{
	if (!store_lock_args(mailbox, node, session))
		return store_bad_arg(st, "POP3 lock", error_r);
	return st->ops->pop3_lock_refresh(st, mailbox, node, session, expires,
	    error_r);
}

int
store_pop3_lock_release(struct store *st, const char *mailbox,
    const char *node, const char *session, const char **error_r)
{
	if (!store_lock_args(mailbox, node, session))
		return store_bad_arg(st, "POP3 lock", error_r);
	return st->ops->pop3_lock_release(st, mailbox, node, session, error_r);
}

int
store_popbsmtp_set(struct store *st, const char *client, const char *account,
    int64_t until, const char **error_r)
{
	if (!store_is_key(client, 64) ||
	    !store_is_key(account, STORE_ADDRESS_MAX))
		return store_bad_arg(st, "POP-before-SMTP window", error_r);
	return st->ops->popbsmtp_set(st, client, account, until, error_r);
}

int
store_popbsmtp_get(struct store *st, const char *client, int64_t now,
    char **account_r, const char **error_r)
{
	*account_r = NULL;
	if (!store_is_key(client, 64))
		return 1;
	return st->ops->popbsmtp_get(st, client, now, account_r, error_r);
}

int
store_expire(struct store *st, int64_t now, const char **error_r)
{
	return st->ops->expire(st, now, error_r);
}
