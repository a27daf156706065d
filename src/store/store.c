/*
 * store: the handle, its errors and transactions, and the checks of every
 * name before a query sees it (store.h; the queries are in
 * store_account.c, store_policy.c, store_shared.c and store_schema.c, over
 * the SQL layer of sql.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "sql.h"
#include "store.h"
#include "store_private.h"

#define STORE_REASON_MAX	200

void
account_deinit(struct account *a)
{
	free(a->address);
	free(a->password_hash);
	free(a->suspend_reason);
	memset(a, 0, sizeof(*a));
}

int
store_set_error(struct store *st, const char **error_r, int ret,
    const char *fmt, ...)
{
	va_list ap;

	str_clear(&st->error);
	va_start(ap, fmt);
	str_vprintf(&st->error, fmt, ap);
	va_end(ap);
	*error_r = str_c(&st->error);
	return ret;
}

struct store *
store_open(const char *uri, const char **error_r)
{
	struct store *st;
	struct sql_db *db;

	if (uri == NULL || *uri == '\0') {
		*error_r = "no store configured";
		return NULL;
	}
	if ((db = sql_open(uri, error_r)) == NULL)
		return NULL;
	st = xcalloc(1, sizeof(*st));
	st->db = db;
	str_init(&st->error);
	return st;
}

void
store_close(struct store **stp)
{
	struct store *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	sql_close(&st->db);
	str_deinit(&st->error);
	free(st);
}

const char *
store_driver_name(const struct store *st)
{
	return sql_driver_name(st->db);
}

struct sql_db *
store_sql(struct store *st)
{
	return st->db;
}

int
store_tx_begin(struct store *st, enum sql_tx tx, const char **error_r)
{
	if (st->in_write || (st->in_read && tx == SQL_TX_READ))
		return 0;	/* part of the caller's transaction */
	store_read_end(st);	/* a write ends the read snapshot */
	return sql_begin(st->db, tx, error_r);
}

int
store_tx_end(struct store *st, enum sql_tx tx, int ret, const char **error_r)
{
	if (st->in_write) {
		/* the caller's store_write_end commits, or undoes it all */
		if (ret < 0)
			st->write_failed = 1;
		return ret;
	}
	if (st->in_read && tx == SQL_TX_READ)
		return ret;
	if (ret < 0 || tx == SQL_TX_READ)
		return sql_rollback(st->db, ret);
	if (sql_commit(st->db, error_r) < 0)
		return sql_rollback(st->db, -1);
	return ret;
}

int
store_write_begin(struct store *st, const char **error_r)
{
	if (st->in_write)
		return 0;
	store_read_end(st);
	if (sql_begin(st->db, SQL_TX_WRITE, error_r) < 0)
		return -1;
	st->in_write = 1;
	st->write_failed = 0;
	return 0;
}

int
store_write_end(struct store *st, int ok, const char **error_r)
{
	if (!st->in_write)
		return ok < 0 ? -1 : 0;
	st->in_write = 0;
	if (ok < 0 || st->write_failed) {
		(void)sql_rollback(st->db, -1);
		if (ok >= 0)
			*error_r = "a write of the transaction failed; "
			    "nothing was kept";
		return -1;
	}
	if (sql_commit(st->db, error_r) < 0)
		return sql_rollback(st->db, -1);
	return 0;
}

int
store_read_begin(struct store *st, const char **error_r)
{
	if (st->in_read)
		return 0;
	if (sql_begin(st->db, SQL_TX_READ, error_r) < 0)
		return -1;
	st->in_read = 1;
	return 0;
}

void
store_read_end(struct store *st)
{
	if (!st->in_read)
		return;
	st->in_read = 0;
	(void)sql_rollback(st->db, 0);
}

static struct sql_stmt *
store_stmt_v(struct store *st, const char *query, enum sql_row_lock lock,
    const char **error_r, const char *types, va_list ap)
{
	struct sql_stmt *stmt = sql_prepare_lock(st->db, query, lock,
	    error_r);
	int64_t v;

	if (stmt == NULL)
		return NULL;
	/* a caller's types that do not match its query are a bug: refuse
	 * rather than bind the wrong values */
	if ((size_t)sql_param_count(stmt) != strlen(types)) {
		(void)store_set_error(st, error_r, -1, "store: query takes %d "
		    "values, given %zu", sql_param_count(stmt), strlen(types));
		return NULL;
	}
	for (int i = 0; types[i] != '\0'; i++) {
		switch (types[i]) {
		case 'i':
			sql_bind_int64(stmt, i + 1, va_arg(ap, int64_t));
			break;
		case 'l':
			if ((v = va_arg(ap, int64_t)) < 0)
				sql_bind_null(stmt, i + 1);
			else
				sql_bind_int64(stmt, i + 1, v);
			break;
		default:
			sql_bind_text(stmt, i + 1, va_arg(ap, const char *));
			break;
		}
	}
	return stmt;
}

struct sql_stmt *
store_stmt(struct store *st, const char *query, enum sql_row_lock lock,
    const char **error_r, const char *types, ...)
{
	struct sql_stmt *stmt;
	va_list ap;

	va_start(ap, types);
	stmt = store_stmt_v(st, query, lock, error_r, types, ap);
	va_end(ap);
	return stmt;
}

int
store_change(struct store *st, const char *query, const char **error_r,
    const char *types, ...)
{
	struct sql_stmt *stmt;
	int64_t changed = 0;
	va_list ap;

	store_read_end(st);	/* a write ends the read snapshot */
	va_start(ap, types);
	stmt = store_stmt_v(st, query, SQL_LOCK_NONE, error_r, types, ap);
	va_end(ap);
	if (stmt == NULL || sql_run(stmt, &changed, error_r) < 0) {
		if (st->in_write)
			st->write_failed = 1;
		return -1;
	}
	return changed > 0 ? 0 : 1;
}

/* The first column of stmt's first row, as a number or a copy: 0, 1
 * no row, -1 error. */
static int
store_first(struct sql_stmt *stmt, int64_t *id_r, char **text_r,
    const char **error_r)
{
	int r;

	if (stmt == NULL)
		return -1;
	if ((r = sql_step(stmt, error_r)) == 1) {
		if (id_r != NULL)
			*id_r = sql_col_int64(stmt, 0);
		if (text_r != NULL)
			*text_r = xstrdup(sql_col_text(stmt, 0));
	}
	sql_reset(stmt);
	return r < 0 ? -1 : r == 1 ? 0 : 1;
}

int
store_query_id(struct store *st, const char *query, enum sql_row_lock lock,
    const char *key, int64_t *id_r, const char **error_r)
{
	return store_first(store_stmt(st, query, lock, error_r, "t", key), id_r,
	    NULL, error_r);
}

int
store_query_text(struct store *st, const char *query, char **text_r,
    const char **error_r, const char *types, ...)
{
	struct sql_stmt *stmt;
	va_list ap;

	va_start(ap, types);
	stmt = store_stmt_v(st, query, SQL_LOCK_NONE, error_r, types, ap);
	va_end(ap);
	return store_first(stmt, NULL, text_r, error_r);
}

int
store_added(struct store *st, int r, const char *what, const char *name,
    const char **error_r)
{
	if (r == 1 || (r < 0 && sql_unique_violation(st->db)))
		return store_set_error(st, error_r, -1,
		    "%s '%s' already exists", what, name);
	return r < 0 ? -1 : 0;
}

int
store_each_row(struct sql_stmt *stmt, store_row_fn *row, void *cb,
    void *context, size_t *n_r, const char **error_r)
{
	size_t n = 0;
	int r;

	if (stmt == NULL)
		return -1;
	while ((r = sql_step(stmt, error_r)) == 1) {
		n++;
		if (row(stmt, cb, context) < 0)
			break;
	}
	sql_reset(stmt);
	if (n_r != NULL)
		*n_r = n;
	return r == 0 ? 0 : -1;
}

int
store_name_ok(const char *name)
{
	size_t n;

	if (name == NULL || (n = strlen(name)) == 0 || n > STORE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
			return 0;
	return 1;
}

/* Caller or client text in an error message: printable, cut short. */
const char *
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
int
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
const char *
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

const char *
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

/*
 * Free text from outside is cut when it is stored (docs/policy.md
 * "Stored lengths"): at most max bytes, at a UTF-8 character boundary,
 * control characters (< 0x20, 0x7f) made '?', so a row read back has no
 * TAB or line end inside a field and a page or reply built from rows has
 * a known size. NULL stays NULL. The result is in buf (max + 1 bytes).
 */
const char *
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

/* A SHA-256 or a random token: 64 lower-case hex digits. */
int
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
int
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
