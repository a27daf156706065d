/*
 * be_portal: the back side of the settings page (src/portal/). The HTTP
 * side sends one BE_PORTAL request per operation (be_proto.h); this file
 * checks the session and its CSRF token, asks the store and the policy,
 * and answers with key/value pairs the page is drawn from.
 *
 * Sessions are random 32-byte IDs made here and kept in the store, so a
 * login at one node is good at every node and survives a restart. The
 * store holds only the SHA-256 of the id (a copy of the database logs
 * nobody in), the account, the session's CSRF token and its expiry: idle
 * (portal_session_timeout), moved on with each request, up to a hard
 * PORTAL_SESSION_MAX_AGE from the login. Expired rows are deleted when
 * looked up and by the keeper's sweep (be_keeper.c); logout deletes the
 * row. The API's tokens and the admins are in the store as well.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../policy/policy.h"
#include "../portal/admin_users.h"
#include "../portal/api_token.h"
#include "../pop3/apop.h"
#include "../store/password.h"
#include "../store/store.h"
#include "be_keeper.h"
#include "backend.h"

#define PORTAL_SESSION_MAX_AGE	 (12 * 3600)
#define PORTAL_TOKEN_HEX	 64		/* 32 random bytes */
#define PORTAL_HISTORY_DAYS	 7
#define PORTAL_HISTORY_ROWS	 20
#define PORTAL_PASSWORD_MIN	 8
#define PORTAL_PASSWORD_MAX	 200
#define PORTAL_ARGS_MAX		 16

#define be_portal_nitems(a)	(sizeof(a) / sizeof((a)[0]))

struct be_portal_args {
	const char	*key[PORTAL_ARGS_MAX];
	const char	*val[PORTAL_ARGS_MAX];
	size_t		 n;
};

/* The reply is built in two parts: result and message, then pairs. */
struct be_portal_out {
	uint32_t	 result;
	const char	*message;
	struct str	 pairs;		/* key NUL value NUL ... */
	uint32_t	 npairs;
};

static const char *
be_portal_arg(const struct be_portal_args *a, const char *key)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->key[i], key) == 0)
			return a->val[i];
	return NULL;
}

static void
be_portal_put(struct be_portal_out *o, const char *key, const char *val)
{
	str_append(&o->pairs, key);
	str_append_c(&o->pairs, '\0');
	str_append(&o->pairs, val != NULL ? val : "");
	str_append_c(&o->pairs, '\0');
	o->npairs++;
}

static void
be_portal_put_i64(struct be_portal_out *o, const char *key, int64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	be_portal_put(o, key, buf);
}

static void
be_portal_put_time(struct be_portal_out *o, const char *key, int64_t t)
{
	char buf[64];

	policy_format_time(t, buf, sizeof(buf));
	be_portal_put(o, key, buf);
}

static int
be_portal_token(char *hex, size_t len)
{
	unsigned char raw[PORTAL_TOKEN_HEX / 2];
	static const char digits[] = "0123456789abcdef";

	if (len < PORTAL_TOKEN_HEX + 1 ||
	    getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -1;
	for (size_t i = 0; i < sizeof(raw); i++) {
		hex[2 * i] = digits[raw[i] >> 4];
		hex[2 * i + 1] = digits[raw[i] & 15];
	}
	hex[PORTAL_TOKEN_HEX] = '\0';
	return 0;
}

/* Constant-time comparison of two tokens (a CSRF token is a secret). */
static int
be_portal_token_eq(const char *a, const char *b)
{
	unsigned char d = 0;

	if (a == NULL || b == NULL || strlen(a) != PORTAL_TOKEN_HEX ||
	    strlen(b) != PORTAL_TOKEN_HEX)
		return 0;
	for (size_t i = 0; i < PORTAL_TOKEN_HEX; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* What the store keeps of a session id: its SHA-256 in hex. */
static int
be_portal_id_hash(const char *id, char hash[PORTAL_TOKEN_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(id, strlen(id), md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != PORTAL_TOKEN_HEX / 2)
		return -1;
	for (size_t i = 0; i < mdlen; i++) {
		hash[2 * i] = digits[md[i] >> 4];
		hash[2 * i + 1] = digits[md[i] & 15];
	}
	hash[PORTAL_TOKEN_HEX] = '\0';
	return 0;
}

/* When a session used at now ends: idle timeout, within the hard age. */
static int64_t
be_portal_expires(const struct config *conf, int64_t created, int64_t now)
{
	int64_t idle = now + conf->portal_session_timeout;
	int64_t hard = created + PORTAL_SESSION_MAX_AGE;

	return idle < hard ? idle : hard;
}

static int
be_portal_session_new(struct be_worker *w, struct store *st,
    const char *account, char *id, char *csrf)
{
	char hash[PORTAL_TOKEN_HEX + 1];
	const char *error;
	int64_t now = policy_now();

	if (be_portal_token(id, PORTAL_TOKEN_HEX + 1) < 0 ||
	    be_portal_token(csrf, PORTAL_TOKEN_HEX + 1) < 0 ||
	    be_portal_id_hash(id, hash) < 0)
		return -1;
	if (store_portal_session_add(st, hash, account, csrf, now,
	    be_portal_expires(w->conf, now, now), &error) < 0) {
		log_warnx("portal: session of %s: %s", account, error);
		return -1;
	}
	return 0;
}

/*
 * Find a live session and move its expiry on; copies its account and
 * CSRF token out. 1 = none (or expired), -1 = the store cannot say.
 */
static int
be_portal_session_get(struct be_worker *w, struct store *st, const char *id,
    char **account_r, char *csrf)
{
	struct store_portal_session s;
	char hash[PORTAL_TOKEN_HEX + 1];
	const char *error;
	int64_t now = policy_now(), expires;
	int r;

	if (id == NULL || strlen(id) != PORTAL_TOKEN_HEX ||
	    be_portal_id_hash(id, hash) < 0)
		return 1;
	if ((r = store_portal_session_get(st, hash, now, &s, &error)) != 0) {
		if (r < 0)
			log_warnx("portal: session look-up: %s", error);
		return r;
	}
	expires = be_portal_expires(w->conf, s.created, now);
	if (expires > s.expires &&
	    store_portal_session_touch(st, hash, expires, &error) < 0)
		log_warnx("portal: session of %s not extended: %s", s.account,
		    error);
	*account_r = xstrdup(s.account);
	xstrlcpy(csrf, s.csrf, PORTAL_TOKEN_HEX + 1);
	return 0;
}

/* End session id, or with account set every session of the account
 * but id (NULL: all of them), at every node. */
static void
be_portal_session_end(struct store *st, const char *id, const char *account)
{
	char hash[PORTAL_TOKEN_HEX + 1];
	const char *error;
	int have = id != NULL && strlen(id) == PORTAL_TOKEN_HEX &&
	    be_portal_id_hash(id, hash) == 0;
	int r;

	if (account != NULL)
		r = store_portal_session_del_account(st, account, have ? hash :
		    NULL, &error);
	else if (have)
		r = store_portal_session_del(st, hash, &error);
	else
		return;
	if (r < 0)
		log_warnx("portal: ending sessions: %s", error);
}

/* Client text made safe for a log line, in place. */
static const char *
be_portal_printable(char *s)
{
	for (char *c = s; *c != '\0'; c++)
		if (!isgraph((unsigned char)*c))
			*c = '?';
	return s;
}

static char *
be_portal_lower(const char *s)
{
	char *p = xstrdup(s);

	for (char *c = p; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	return p;
}

/*
 * A password check with the throttling of SMTP AUTH (policy.h): a lock
 * refuses even the right password; a failure is counted and answered
 * after the delay (the HTTP side waits). 0 ok, 1 refused (o filled).
 */
static int
be_portal_check_password(struct be_worker *w, struct store *st,
    const char *account, const char *password, const char *client,
    struct be_portal_out *o, struct account *a, int *have_a)
{
	const char *error;
	int64_t locked = 0;
	int r, ok = 0;

	*have_a = 0;
	if (policy_auth_check(w->conf, st, account, client, &locked) == 1) {
		o->result = BE_PORTAL_REFUSED;
		o->message = "locked";
		be_portal_put_time(o, "until", locked);
		return 1;
	}
	r = store_account_get(st, account, a, &error);
	if (r < 0) {
		log_warnx("portal: account lookup: %s", error);
		o->result = BE_PORTAL_TEMPFAIL;
		o->message = "tempfail";
		return 1;
	}
	if (r == 0) {
		*have_a = 1;
		ok = password_verify(password, a->password_hash, &error) == 1;
	} else {
		/* Spend the time a real check takes, so the answer's delay
		 * does not tell which accounts exist. */
		(void)password_verify(password,
		    "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9"
		    "SqC.5i5rd.RhAtQ7", &error);
	}
	if (!ok) {
		int64_t delay = policy_auth_fail(w->conf, st, account, client,
		    "portal");

		o->result = BE_PORTAL_REFUSED;
		o->message = "fail";
		be_portal_put_i64(o, "delay", delay);
		return 1;
	}
	if (a->suspended) {
		o->result = BE_PORTAL_REFUSED;
		o->message = "suspended";
		be_portal_put(o, "reason", a->suspend_reason);
		return 1;
	}
	return 0;
}

static void
be_portal_login(struct be_worker *w, struct store *st, const char *client,
    const struct be_portal_args *args, struct be_portal_out *o)
{
	const char *user = be_portal_arg(args, "user");
	const char *pass = be_portal_arg(args, "password");
	char id[PORTAL_TOKEN_HEX + 1], csrf[PORTAL_TOKEN_HEX + 1];
	struct account a;
	char *canon;
	int have_a;
	uint64_t start = metrics_now_us();

	if (user == NULL || pass == NULL || *user == '\0') {
		o->result = BE_PORTAL_REFUSED;
		o->message = "fail";
		be_portal_put_i64(o, "delay", 0);
		return;
	}
	canon = be_portal_lower(user);
	if (be_portal_check_password(w, st, canon, pass, client, o, &a,
	    &have_a) == 0) {
		metrics_auth(METRICS_SVC_PORTAL, METRICS_AUTH_OK, start);
		policy_auth_ok(w->conf, st, a.address, client);
		if (be_portal_session_new(w, st, a.address, id, csrf) < 0) {
			o->result = BE_PORTAL_TEMPFAIL;
			o->message = "tempfail";
		} else {
			be_portal_put(o, "session", id);
			be_portal_put(o, "csrf", csrf);
			be_portal_put(o, "account", a.address);
			log_info("portal login account=%s client=%s",
			    a.address, client);
		}
	} else {
		metrics_auth_name("portal", o->message, start);
		log_info("portal login failed user=%.64s client=%s result=%s",
		    be_portal_printable(canon), client, o->message);
	}
	if (have_a)
		account_deinit(&a);
	free(canon);
}

/* Tab-separated store lines as repeated pairs; fields picks and orders
 * the columns; column time_col (unix time) is formatted. */
static void
be_portal_put_lines(struct be_portal_out *o, const char *key,
    const char *text, const int *fields, size_t nfields, int time_col)
{
	struct str row = STR_INIT;
	const char *line = text;

	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		const char *col[12];
		size_t ncol = 0, len;

		if (end == NULL)
			end = line + strlen(line);
		if (end == line) {	/* an empty line */
			line = *end == '\0' ? end : end + 1;
			continue;
		}
		char *copy = xstrndup(line, (size_t)(end - line));

		for (char *p = copy, *f; ncol < 12 &&
		    (f = strsep(&p, "\t")) != NULL;)
			col[ncol++] = f;
		str_truncate(&row, 0);
		for (size_t i = 0; i < nfields; i++) {
			int c = fields[i];

			if (i > 0)
				str_append(&row, "\t");
			if ((size_t)c >= ncol)
				continue;
			if (c == time_col) {
				char when[64];

				policy_format_time(strtoll(col[c], NULL, 10),
				    when, sizeof(when));
				str_append(&row, when);
			} else
				str_append(&row, col[c]);
		}
		len = row.len;
		if (len > 0 && ncol > 0)
			be_portal_put(o, key, str_c(&row));
		free(copy);
		line = *end == '\0' ? end : end + 1;
	}
	str_deinit(&row);
}

static void
be_portal_limit_pair(struct be_portal_out *o, struct store *st,
    const char *account, char kind, int64_t now, const char *mkey,
    const char *rkey)
{
	char period[32];
	int64_t msgs = 0, rcpts = 0;
	const char *error;

	policy_period(kind, now, period, sizeof(period));
	if (store_count_get(st, account, period, &msgs, &rcpts, &error) < 0)
		log_warnx("portal: counts of %s: %s", account, error);
	if (mkey != NULL)
		be_portal_put_i64(o, mkey, msgs);
	be_portal_put_i64(o, rkey, rcpts);
}

static void
be_portal_status(struct be_worker *w, struct store *st, const char *account,
    struct be_portal_out *o)
{
	/* submission line: QUEUE_ID MESSAGE_ID TIME ACCOUNT IP COUNTRY TLS
	 * RCPTS SIZE OVERSEAS; event: TIME ACCOUNT TYPE IP COUNTRY DETAIL */
	static const int sub_fields[] = { 2, 4, 5, 7, 9, 0 };
	static const int ev_fields[] = { 0, 2, 3, 4, 5 };
	struct account_policy pol;
	struct policy_limits lim;
	struct str text = STR_INIT;
	const char *error;
	int64_t now = policy_now();

	if (store_policy_get(st, account, &pol, &error) != 0 ||
	    policy_limits(w->conf, st, account, &lim, &error) < 0) {
		o->result = BE_PORTAL_TEMPFAIL;
		o->message = "tempfail";
		return;
	}
	be_portal_put(o, "account", account);
	be_portal_put(o, "overseas", pol.overseas_until > now ? "1" : "0");
	if (pol.overseas_until > now)
		be_portal_put_time(o, "overseas_until", pol.overseas_until);
	be_portal_put_i64(o, "overseas_days",
	    w->conf->overseas_permission_days);
	be_portal_limit_pair(o, st, account, 'd', now, "msgs", "rcpts");
	be_portal_limit_pair(o, st, account, 'h', now, NULL, "rcpts_hour");
	be_portal_limit_pair(o, st, account, 'o', now, NULL, "rcpts_abroad");
	be_portal_put_i64(o, "msgs_limit", lim.msgs_day);
	be_portal_put_i64(o, "rcpts_limit", lim.rcpts_day);
	be_portal_put_i64(o, "rcpts_hour_limit", lim.rcpts_hour);
	be_portal_put_i64(o, "rcpts_abroad_limit", lim.overseas_rcpts_day);
	be_portal_put_time(o, "reset", policy_period_end('d', now));
	be_portal_put_time(o, "reset_hour", policy_period_end('h', now));
	char *sealed = NULL;

	be_portal_put(o, "apop", store_apop_get(st, account, &sealed,
	    &error) == 0 ? "1" : "0");
	free(sealed);
	/* the addresses the account may send as (sender alignment) */
	if (store_alias_list(st, account, &text, &error) == 0) {
		char *p = text.s, *line;
		int n = 0;

		while (p != NULL && (line = strsep(&p, "\n")) != NULL &&
		    n < 50) {
			line[strcspn(line, "\t")] = '\0';
			if (*line != '\0') {
				be_portal_put(o, "alias", line);
				n++;
			}
		}
	}
	str_truncate(&text, 0);

	if (store_submission_list(st, account,
	    now - PORTAL_HISTORY_DAYS * 86400, PORTAL_HISTORY_ROWS, &text,
	    &error) < 0)
		log_warnx("portal: submissions of %s: %s", account, error);
	else
		be_portal_put_lines(o, "sub", str_c(&text), sub_fields,
		    be_portal_nitems(sub_fields), 2);
	str_truncate(&text, 0);
	if (store_event_list(st, account, now - PORTAL_HISTORY_DAYS * 86400,
	    PORTAL_HISTORY_ROWS, &text, &error) < 0)
		log_warnx("portal: events of %s: %s", account, error);
	else
		be_portal_put_lines(o, "ev", str_c(&text), ev_fields,
		    be_portal_nitems(ev_fields), 0);
	str_deinit(&text);
}

static void
be_portal_overseas(struct be_worker *w, struct store *st, const char *account,
    int on, struct be_portal_out *o)
{
	int64_t now = policy_now();
	int64_t until = on ? now +
	    (int64_t)w->conf->overseas_permission_days * 86400 : 0;
	const char *error;

	if (store_overseas_set(st, account, until, &error) != 0) {
		log_warnx("portal: overseas %s: %s", account, error);
		o->result = BE_PORTAL_TEMPFAIL;
		o->message = "tempfail";
		return;
	}
	log_info("portal overseas account=%s %s", account,
	    on ? "on" : "off");
	if (on)
		be_portal_put_time(o, "overseas_until", until);
}

static void
be_portal_password(struct be_worker *w, struct store *st, const char *account,
    const char *id, const char *client, const struct be_portal_args *args,
    struct be_portal_out *o)
{
	const char *cur = be_portal_arg(args, "current");
	const char *new = be_portal_arg(args, "new");
	const char *error;
	struct account a;
	char *hash;
	int have_a;

	if (cur == NULL || new == NULL) {
		o->result = BE_PORTAL_REFUSED;
		o->message = "fail";
		be_portal_put_i64(o, "delay", 0);
		return;
	}
	/* Re-authentication: the current password, throttled as a login. */
	if (be_portal_check_password(w, st, account, cur, client, o, &a,
	    &have_a) != 0)
		goto out;
	if (strlen(new) < PORTAL_PASSWORD_MIN ||
	    strlen(new) > PORTAL_PASSWORD_MAX) {
		o->result = BE_PORTAL_REFUSED;
		o->message = "badnew";
		goto out;
	}
	if ((hash = password_hash(new, &error)) == NULL ||
	    store_account_set_password(st, account, hash, &error) != 0) {
		log_warnx("portal: password of %s: %s", account, error);
		o->result = BE_PORTAL_TEMPFAIL;
		o->message = "tempfail";
		free(hash);
		goto out;
	}
	free(hash);
	/* Whoever else holds a session (a thief, say) is logged out. */
	be_portal_session_end(st, id, account);
	log_info("portal password changed account=%s client=%s", account,
	    client);
out:
	if (have_a)
		account_deinit(&a);
}

/* ---- the JSON API (docs/portal.md) ------------------------------------ */

static json_t *
be_portal_json_limit(int64_t v)
{
	return json_integer(v);
}

/* The API's account document; 1 = no such account. */
static int
be_portal_api_doc(struct be_worker *w, struct store *st, const char *address,
    json_t **doc_r)
{
	struct account a;
	struct account_policy pol;
	struct policy_limits lim;
	const char *error;
	char period[32], when[64];
	int64_t now = policy_now(), msgs = 0, rcpts = 0, hour = 0, abroad = 0;
	int64_t dummy = 0;
	int r;

	if ((r = store_account_get(st, address, &a, &error)) != 0)
		return r;
	if (store_policy_get(st, a.address, &pol, &error) != 0 ||
	    policy_limits(w->conf, st, a.address, &lim, &error) < 0) {
		account_deinit(&a);
		return -1;
	}
	policy_period('d', now, period, sizeof(period));
	(void)store_count_get(st, a.address, period, &msgs, &rcpts, &error);
	policy_period('h', now, period, sizeof(period));
	(void)store_count_get(st, a.address, period, &dummy, &hour, &error);
	policy_period('o', now, period, sizeof(period));
	(void)store_count_get(st, a.address, period, &dummy, &abroad, &error);

	json_t *doc = json_object(), *o = json_object(), *l = json_object(),
	    *t = json_object();

	json_object_set_new(doc, "account", json_string(a.address));
	json_object_set_new(doc, "suspended", json_boolean(a.suspended));
	json_object_set_new(doc, "suspend_reason", a.suspend_reason != NULL ?
	    json_string(a.suspend_reason) : json_null());
	json_object_set_new(o, "allowed", json_boolean(pol.overseas_until >
	    now));
	if (pol.overseas_until > now) {
		policy_format_time(pol.overseas_until, when, sizeof(when));
		json_object_set_new(o, "until", json_integer(
		    pol.overseas_until));
		json_object_set_new(o, "until_text", json_string(when));
	} else {
		json_object_set_new(o, "until", json_null());
		json_object_set_new(o, "until_text", json_null());
	}
	json_object_set_new(o, "days", json_integer(
	    w->conf->overseas_permission_days));
	json_object_set_new(doc, "overseas", o);
	json_object_set_new(l, "messages_per_day",
	    be_portal_json_limit(lim.msgs_day));
	json_object_set_new(l, "recipients_per_day",
	    be_portal_json_limit(lim.rcpts_day));
	json_object_set_new(l, "recipients_per_hour",
	    be_portal_json_limit(lim.rcpts_hour));
	json_object_set_new(l, "recipients_per_message",
	    be_portal_json_limit(lim.rcpts_msg));
	json_object_set_new(l, "overseas_recipients_per_day",
	    be_portal_json_limit(lim.overseas_rcpts_day));
	json_object_set_new(doc, "limits", l);
	json_object_set_new(t, "messages", json_integer(msgs));
	json_object_set_new(t, "recipients", json_integer(rcpts));
	json_object_set_new(t, "recipients_this_hour", json_integer(hour));
	json_object_set_new(t, "overseas_recipients", json_integer(abroad));
	json_object_set_new(t, "resets_at", json_integer(
	    policy_period_end('d', now)));
	policy_format_time(policy_period_end('d', now), when, sizeof(when));
	json_object_set_new(t, "resets_at_text", json_string(when));
	json_object_set_new(doc, "today", t);
	account_deinit(&a);
	*doc_r = doc;
	return 0;
}

/* Store lines ("A\tB\t...") as an array of objects with these keys;
 * the key "time" is a number. */
static json_t *
be_portal_api_rows(const char *text, const char *const *keys, size_t nkeys)
{
	json_t *arr = json_array();
	char *copy = xstrdup(text), *p = copy, *line;

	while ((line = strsep(&p, "\n")) != NULL) {
		json_t *row;
		char *f;
		size_t i = 0;

		if (*line == '\0')
			continue;
		row = json_object();
		while ((f = strsep(&line, "\t")) != NULL && i < nkeys) {
			if (keys[i] == NULL)
				;	/* a column the API does not show */
			else if (strcmp(keys[i], "time") == 0 ||
			    strcmp(keys[i], "recipients") == 0)
				json_object_set_new(row, keys[i],
				    json_integer(strtoll(f, NULL, 10)));
			else if (strcmp(keys[i], "overseas") == 0)
				json_object_set_new(row, keys[i],
				    json_boolean(strcmp(f, "1") == 0));
			else
				json_object_set_new(row, keys[i],
				    *f != '\0' ? json_string(f) : json_null());
			i++;
		}
		json_array_append_new(arr, row);
	}
	free(copy);
	return arr;
}

static json_t *
be_portal_api_history(struct store *st, const char *account, int64_t since,
    int limit)
{
	static const char *const ev_keys[] = { "time", NULL, "type", "ip",
	    "country", "detail" };
	static const char *const sub_keys[] = { "queue_id", "message_id",
	    "time", NULL, "ip", "country", "tls", "recipients", NULL,
	    "overseas" };
	struct str text = STR_INIT;
	const char *error;
	json_t *doc = json_object();

	json_object_set_new(doc, "account", json_string(account));
	if (store_event_list(st, account, since, limit, &text, &error) == 0)
		json_object_set_new(doc, "events", be_portal_api_rows(
		    str_c(&text), ev_keys, be_portal_nitems(ev_keys)));
	str_truncate(&text, 0);
	if (store_submission_list(st, account, since, limit, &text,
	    &error) == 0)
		json_object_set_new(doc, "submissions", be_portal_api_rows(
		    str_c(&text), sub_keys, be_portal_nitems(sub_keys)));
	str_deinit(&text);
	return doc;
}

/* Limits from the request: a number, or "default" for the config's. */
static int
be_portal_api_limits(struct store *st, const char *account,
    const struct be_portal_args *args, const char **error_r)
{
	static const char *const names[] = { "messages_per_day",
	    "recipients_per_day", "recipients_per_hour",
	    "recipients_per_message", "overseas_recipients_per_day" };
	struct account_policy pol;
	int64_t *fields[5];
	int r;

	if ((r = store_policy_get(st, account, &pol, error_r)) != 0)
		return r;
	fields[0] = &pol.limit_msgs_day;
	fields[1] = &pol.limit_rcpts_day;
	fields[2] = &pol.limit_rcpts_hour;
	fields[3] = &pol.limit_rcpts_msg;
	fields[4] = &pol.limit_overseas_rcpts_day;
	for (size_t i = 0; i < be_portal_nitems(names); i++) {
		const char *v = be_portal_arg(args, names[i]);

		if (v != NULL)
			*fields[i] = strcmp(v, "default") == 0 ? -1 :
			    strtoll(v, NULL, 10);
	}
	return store_policy_set_limits(st, account, &pol, error_r);
}

static void
be_portal_api(struct be_worker *w, struct store *st, const char *client,
    const struct be_portal_args *args, struct be_portal_out *o)
{
	const char *token = be_portal_arg(args, "token");
	const char *action = be_portal_arg(args, "action");
	const char *address = be_portal_arg(args, "account");
	const char *error = NULL, *since_s = be_portal_arg(args, "since");
	char name[API_TOKEN_NAME_MAX + 1], *canon = NULL, *text;
	json_t *doc = NULL;
	int64_t now = policy_now();
	int r = 0;

	if (token == NULL || action == NULL || address == NULL ||
	    (r = api_token_check(st, token, name, &error)) != 1) {
		if (r < 0) {
			/* the store down: try again, not "revoked" */
			log_warnx("portal api: %s", error);
			o->result = BE_PORTAL_TEMPFAIL;
			o->message = "tempfail";
			return;
		}
		log_info("portal api refused client=%s (no valid token)",
		    client);
		o->result = BE_PORTAL_NOSESSION;
		return;
	}
	canon = be_portal_lower(address);
	r = 0;
	if (strcmp(action, "overseas_on") == 0 ||
	    strcmp(action, "overseas_off") == 0) {
		int on = strcmp(action, "overseas_on") == 0;

		r = store_overseas_set(st, canon, on ? now +
		    (int64_t)w->conf->overseas_permission_days * 86400 : 0,
		    &error);
	} else if (strcmp(action, "limits") == 0)
		r = be_portal_api_limits(st, canon, args, &error);
	if (r == 0 && strcmp(action, "history") == 0) {
		struct account a;

		if ((r = store_account_get(st, canon, &a, &error)) == 0) {
			account_deinit(&a);
			doc = be_portal_api_history(st, canon, since_s != NULL ?
			    now - strtoll(since_s, NULL, 10) :
			    now - PORTAL_HISTORY_DAYS * 86400, 200);
		}
	} else if (r == 0)
		r = be_portal_api_doc(w, st, canon, &doc);
	if (r == 1) {
		o->result = BE_PORTAL_REFUSED;
		o->message = "noaccount";
	} else if (r < 0) {
		log_warnx("portal api: %s: %s", canon, error);
		o->result = BE_PORTAL_TEMPFAIL;
		o->message = "tempfail";
	} else {
		text = json_dumps(doc, JSON_COMPACT);
		be_portal_put(o, "json", text);
		free(text);
		if (strcmp(action, "get") != 0 &&
		    strcmp(action, "history") != 0)
			log_info("portal api token=%s client=%s account=%s "
			    "action=%s", name, client, canon, action);
	}
	json_decref(doc);
	free(canon);
}

/* ---- the admin pages (docs/portal.md) ---------------------------------- */

#define PORTAL_ADMIN_PREFIX	"admin:"	/* never in an address */

static int
be_portal_is_admin(const char *account)
{
	return strncmp(account, PORTAL_ADMIN_PREFIX,
	    sizeof(PORTAL_ADMIN_PREFIX) - 1) == 0;
}

/* An admin's login: the admin file, with the throttling of every login
 * keyed "admin:NAME". */
static void
be_portal_admin_login(struct be_worker *w, struct store *st,
    const char *client, const struct be_portal_args *args,
    struct be_portal_out *o)
{
	const char *name = be_portal_arg(args, "user");
	const char *pass = be_portal_arg(args, "password");
	char id[PORTAL_TOKEN_HEX + 1], csrf[PORTAL_TOKEN_HEX + 1], *key;
	char *hash = NULL;
	const char *error;
	int64_t locked = 0;
	int r = 1, ok = 0;

	if (name == NULL || pass == NULL || api_token_name_ok(name) < 0) {
		o->result = BE_PORTAL_REFUSED;
		o->message = "fail";
		be_portal_put_i64(o, "delay", 0);
		return;
	}
	key = xasprintf(PORTAL_ADMIN_PREFIX "%s", name);
	if (policy_auth_check(w->conf, st, key, client, &locked) == 1) {
		o->result = BE_PORTAL_REFUSED;
		o->message = "locked";
		be_portal_put_time(o, "until", locked);
		free(key);
		return;
	}
	r = admin_users_get(st, name, &hash, &error);
	if (r < 0) {
		/* the store down is not a wrong password */
		log_warnx("portal: admin users: %s", error);
		o->result = BE_PORTAL_TEMPFAIL;
		o->message = "tempfail";
		free(key);
		return;
	}
	if (r == 0)
		ok = password_verify(pass, hash, &error) == 1;
	free(hash);
	if (!ok) {
		o->result = BE_PORTAL_REFUSED;
		o->message = "fail";
		be_portal_put_i64(o, "delay", policy_auth_fail(w->conf, st, key,
		    client, "admin"));
		log_info("portal admin login failed client=%s", client);
	} else if (be_portal_session_new(w, st, key, id, csrf) < 0) {
		o->result = BE_PORTAL_TEMPFAIL;
		o->message = "tempfail";
	} else {
		policy_auth_ok(w->conf, st, key, client);
		be_portal_put(o, "session", id);
		be_portal_put(o, "csrf", csrf);
		log_info("portal admin login admin=%s client=%s", name, client);
	}
	free(key);
}

/* The audit log is the events table: type "admin_...", the account
 * acted on, the admin's address, "by NAME: what" as detail. */
static void
be_portal_audit(struct store *st, const char *admin, const char *type,
    const char *account, const char *client, const char *what)
{
	struct str detail = STR_INIT;

	str_printf(&detail, "by %s", admin + sizeof(PORTAL_ADMIN_PREFIX) - 1);
	if (what != NULL && *what != '\0')
		str_printf(&detail, ": %.200s", what);
	policy_event(st, account, type, client, NULL, str_c(&detail));
	log_info("portal admin=%s action=%s account=%s client=%s",
	    admin + sizeof(PORTAL_ADMIN_PREFIX) - 1, type, account, client);
	str_deinit(&detail);
}

struct be_portal_tally {
	char	*key;
	int64_t	 a, b;
};

static int
be_portal_tally_cmp(const void *x, const void *y)
{
	const struct be_portal_tally *p = x, *q = y;

	if (p->b != q->b)
		return p->b < q->b ? 1 : -1;
	return strcmp(p->key, q->key);
}

/*
 * The dashboard: today's top senders (by recipients), today's refusals
 * and locks by type and country, and the queue's size. XXX: the top
 * senders read every account's counter: fine for thousands of accounts,
 * a store query when there are millions.
 */
static void
be_portal_admin_dashboard(struct be_worker *w, struct store *st,
    const char *list, struct be_portal_out *o)
{
	struct be_portal_tally *t = NULL;
	struct str text = STR_INIT, row = STR_INIT;
	size_t n = 0, cap = 0;
	char period[32], *copy, *p, *line, *qdir;
	int64_t now = policy_now(), day_start;
	const char *error;
	DIR *d;

	policy_period('d', now, period, sizeof(period));
	copy = p = xstrdup(list);
	while ((line = strsep(&p, "\n")) != NULL) {
		int64_t msgs = 0, rcpts = 0;
		size_t alen = strcspn(line, "\t");

		if (alen == 0)
			continue;
		line[alen] = '\0';
		if (store_count_get(st, line, period, &msgs, &rcpts,
		    &error) < 0 || (msgs == 0 && rcpts == 0))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			t = xreallocarray(t, cap, sizeof(*t));
		}
		t[n].key = xstrdup(line);
		t[n].a = msgs;
		t[n++].b = rcpts;
	}
	free(copy);
	if (n > 0)
		qsort(t, n, sizeof(*t), be_portal_tally_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i < 10) {
			str_truncate(&row, 0);
			str_printf(&row, "%s\t%lld\t%lld", t[i].key,
			    (long long)t[i].a, (long long)t[i].b);
			be_portal_put(o, "top", str_c(&row));
		}
		free(t[i].key);
	}
	n = 0;

	/* refusals since local midnight, by type and country */
	day_start = policy_period_end('d', now) - 86400;
	if (store_event_list(st, NULL, day_start, 100000, &text, &error) == 0) {
		p = text.s;
		while (p != NULL && (line = strsep(&p, "\n")) != NULL) {
			char *f[6];
			size_t nf = 0, i;

			for (char *q = line, *x; nf < 6 &&
			    (x = strsep(&q, "\t")) != NULL;)
				f[nf++] = x;
			if (nf < 5 || strncmp(f[2], "admin_", 6) == 0)
				continue;
			str_truncate(&row, 0);
			str_printf(&row, "%s\t%s", f[2], *f[4] != '\0' ?
			    f[4] : "-");
			for (i = 0; i < n; i++)
				if (strcmp(t[i].key, str_c(&row)) == 0)
					break;
			if (i == n) {
				if (n == cap) {
					cap = cap ? cap * 2 : 64;
					t = xreallocarray(t, cap, sizeof(*t));
				}
				t[n].key = xstrdup(str_c(&row));
				t[n].a = 0;
				t[n++].b = 0;
			}
			t[i].b++;
		}
	}
	if (n > 0)
		qsort(t, n, sizeof(*t), be_portal_tally_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i < 20) {
			str_truncate(&row, 0);
			str_printf(&row, "%s\t%lld", t[i].key,
			    (long long)t[i].b);
			be_portal_put(o, "refused", str_c(&row));
		}
		free(t[i].key);
	}
	free(t);

	/* messages waiting in the queue */
	qdir = xasprintf("%s/queue", w->conf->spool_dir);
	n = 0;
	if ((d = opendir(qdir)) != NULL) {
		struct dirent *de;

		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.' &&
			    strchr(de->d_name, '.') == NULL)
				n++;
		closedir(d);
	}
	free(qdir);
	be_portal_put_i64(o, "queue", (int64_t)n);
	str_deinit(&text);
	str_deinit(&row);
}

static void
be_portal_admin_search(struct be_worker *w, struct store *st,
    const struct be_portal_args *args, struct be_portal_out *o)
{
	const char *q = be_portal_arg(args, "q"), *error;
	struct str text = STR_INIT;
	char *p, *line;
	int n = 0;

	if (store_account_list(st, NULL, &text, &error) < 0) {
		o->result = BE_PORTAL_TEMPFAIL;
		o->message = "tempfail";
		str_deinit(&text);
		return;
	}
	if (q == NULL || *q == '\0')
		be_portal_admin_dashboard(w, st, str_c(&text), o);
	p = text.s;
	while (p != NULL && (line = strsep(&p, "\n")) != NULL && n < 100) {
		if (*line == '\0' || (q != NULL && *q != '\0' &&
		    strcasestr(line, q) == NULL))
			continue;
		be_portal_put(o, "row", line);
		n++;
	}
	str_deinit(&text);
}

static void
be_portal_admin_audit(struct store *st, struct be_portal_out *o)
{
	static const int fields[] = { 0, 1, 2, 3, 5 };
	struct str text = STR_INIT, mine = STR_INIT;
	const char *error;
	char *p, *line;

	if (store_event_list(st, NULL, policy_now() - 30 * 86400, 5000, &text,
	    &error) < 0) {
		o->result = BE_PORTAL_TEMPFAIL;
		o->message = "tempfail";
		str_deinit(&text);
		return;
	}
	p = text.s;
	while (p != NULL && (line = strsep(&p, "\n")) != NULL) {
		char *t = strchr(line, '\t');

		t = t != NULL ? strchr(t + 1, '\t') : NULL;
		if (t != NULL && strncmp(t + 1, "admin_", 6) == 0) {
			str_append(&mine, line);
			str_append_c(&mine, '\n');
		}
	}
	be_portal_put_lines(o, "row", str_c(&mine), fields,
	    be_portal_nitems(fields), 0);
	str_deinit(&text);
	str_deinit(&mine);
}

/*
 * Our submissions named by a spam report: the HTTP side extracted the
 * queue IDs and Message-IDs (trace.h: parsing the report is parsing
 * outside input, so it is done there); each found row is one "row":
 * TIME ACCOUNT IP COUNTRY RECIPIENTS OVERSEAS QUEUE_ID MESSAGE_ID.
 */
static void
be_portal_admin_trace(struct store *st, const struct be_portal_args *args,
    struct be_portal_out *o)
{
	static const int fields[] = { 2, 3, 4, 5, 7, 9, 0, 1 };
	const char *lists[2] = { be_portal_arg(args, "qids"),
	    be_portal_arg(args, "mids") };
	struct str found = STR_INIT, text = STR_INIT;
	const char *error;

	for (int k = 0; k < 2; k++) {
		char *copy, *p, *key;

		if (lists[k] == NULL)
			continue;
		copy = p = xstrdup(lists[k]);
		while ((key = strsep(&p, "\n")) != NULL) {
			if (*key == '\0')
				continue;
			str_truncate(&text, 0);
			if (store_submission_find(st, k == 0 ? key : NULL,
			    k == 1 ? key : NULL, &text, &error) != 0)
				continue;
			/* one row per submission, whichever key found it */
			char *t = text.s, *line;

			while ((line = strsep(&t, "\n")) != NULL) {
				size_t idlen = strcspn(line, "\t");

				if (*line == '\0' || idlen == 0)
					continue;
				char *id = xstrndup(line, idlen);
				struct str mark = STR_INIT;

				str_printf(&mark, "\n%s\t", id);
				if (strstr(str_c(&found), str_c(&mark)) == NULL) {
					str_append_c(&found, '\n');
					str_append(&found, line);
				}
				str_deinit(&mark);
				free(id);
			}
		}
		free(copy);
	}
	be_portal_put_lines(o, "row", str_c(&found), fields,
	    be_portal_nitems(fields), 2);
	str_deinit(&found);
	str_deinit(&text);
}

static void
be_portal_admin(struct be_worker *w, struct store *st, const char *op,
    const char *admin, const char *sid, const char *client,
    const struct be_portal_args *args, struct be_portal_out *o)
{
	const char *target = be_portal_arg(args, "account");
	const char *reason = be_portal_arg(args, "reason");
	const char *error = NULL;
	char *canon = target != NULL ? be_portal_lower(target) : NULL;
	struct account a;
	int r = 0;

	be_portal_put(o, "admin", admin + sizeof(PORTAL_ADMIN_PREFIX) - 1);
	if (strcmp(op, "admin_search") == 0) {
		be_portal_admin_search(w, st, args, o);
		goto out;
	}
	if (strcmp(op, "admin_audit") == 0) {
		be_portal_admin_audit(st, o);
		goto out;
	}
	if (strcmp(op, "admin_trace") == 0) {
		be_portal_admin_trace(st, args, o);
		log_info("portal admin=%s action=trace client=%s",
		    admin + sizeof(PORTAL_ADMIN_PREFIX) - 1, client);
		goto out;
	}
	if (strcmp(op, "admin_logout") == 0) {
		be_portal_session_end(st, sid, NULL);
		goto out;
	}
	if (canon == NULL || (r = store_account_get(st, canon, &a,
	    &error)) != 0) {
		o->result = r < 0 ? BE_PORTAL_TEMPFAIL : BE_PORTAL_REFUSED;
		o->message = r < 0 ? "tempfail" : "noaccount";
		goto out;
	}
	account_deinit(&a);
	if (strcmp(op, "admin_suspend") == 0 ||
	    strcmp(op, "admin_resume") == 0) {
		int on = strcmp(op, "admin_suspend") == 0;

		if (on && (reason == NULL || *reason == '\0' ||
		    strlen(reason) > 200 || strpbrk(reason, "\r\n\t") != NULL)) {
			o->result = BE_PORTAL_REFUSED;
			o->message = "badreason";
			goto out;
		}
		r = store_account_set_suspended(st, canon, on, on ? reason :
		    NULL, &error);
		if (r == 0)
			be_portal_audit(st, admin, on ? "admin_suspend" :
			    "admin_resume", canon, client, on ? reason : NULL);
	} else if (strcmp(op, "admin_overseas_on") == 0 ||
	    strcmp(op, "admin_overseas_off") == 0) {
		int on = strcmp(op, "admin_overseas_on") == 0;
		int64_t until = on ? policy_now() +
		    (int64_t)w->conf->overseas_permission_days * 86400 : 0;

		r = store_overseas_set(st, canon, until, &error);
		if (r == 0)
			be_portal_audit(st, admin, on ? "admin_overseas_on" :
			    "admin_overseas_off", canon, client, NULL);
	} else if (strcmp(op, "admin_limits") == 0) {
		static const char *const names[] = { "messages_per_day",
		    "recipients_per_day", "recipients_per_hour",
		    "recipients_per_message", "overseas_recipients_per_day" };
		struct str what = STR_INIT;

		for (size_t i = 0; i < be_portal_nitems(names); i++) {
			const char *v = be_portal_arg(args, names[i]);
			char *end;

			if (v == NULL || *v == '\0')
				continue;
			if (strcmp(v, "default") != 0 &&
			    (strtoll(v, &end, 10) < 0 || *end != '\0' ||
			    strlen(v) > 8)) {
				o->result = BE_PORTAL_REFUSED;
				o->message = "badlimit";
				str_deinit(&what);
				goto out;
			}
			str_printf(&what, "%s%s=%s", what.len > 0 ? " " : "",
			    names[i], v);
		}
		r = be_portal_api_limits(st, canon, args, &error);
		if (r == 0)
			be_portal_audit(st, admin, "admin_limits", canon,
			    client, str_c(&what));
		str_deinit(&what);
	} else if (strcmp(op, "admin_account") != 0)
		r = -1;
	if (r != 0) {
		log_warnx("portal: admin %s %s: %s", op, canon,
		    error != NULL ? error : "failed");
		o->result = BE_PORTAL_TEMPFAIL;
		o->message = "tempfail";
		goto out;
	}
	if (strcmp(op, "admin_account") == 0) {
		if (store_account_get(st, canon, &a, &error) == 0) {
			be_portal_put(o, "suspended", a.suspended ? "1" : "0");
			if (a.suspend_reason != NULL)
				be_portal_put(o, "reason", a.suspend_reason);
			account_deinit(&a);
		}
		be_portal_status(w, st, canon, o);
	}
out:
	free(canon);
}

/*
 * APOP (RFC 1939 7) on or off. On needs the current password (as a
 * password change) and a separate APOP password, sealed under
 * apop_secret_key before it reaches the store (src/pop3/apop.h).
 */
static void
be_portal_apop(struct be_worker *w, struct store *st, const char *account,
    const char *client, int on, const struct be_portal_args *args,
    struct be_portal_out *o)
{
	const char *cur = be_portal_arg(args, "current");
	const char *secret = be_portal_arg(args, "apop");
	unsigned char key[APOP_KEY_LEN];
	struct str sealed = STR_INIT;
	const char *error = NULL;
	struct account a;
	int have_a, r;

	if (!on) {
		r = store_apop_clear(st, account, &error);
		if (r < 0) {
			log_warnx("portal: apop off %s: %s", account, error);
			o->result = BE_PORTAL_TEMPFAIL;
			o->message = "tempfail";
		} else
			log_info("portal apop off account=%s", account);
		return;
	}
	if (cur == NULL || secret == NULL) {
		o->result = BE_PORTAL_REFUSED;
		o->message = "fail";
		be_portal_put_i64(o, "delay", 0);
		return;
	}
	if (be_portal_check_password(w, st, account, cur, client, o, &a,
	    &have_a) != 0)
		goto out;
	/* The login password as APOP secret would put it, MD5-guessable,
	 * on the wire: refused here (the CLI only warns). */
	if (strlen(secret) < PORTAL_PASSWORD_MIN ||
	    strlen(secret) > APOP_SECRET_MAX ||
	    password_verify(secret, a.password_hash, &error) == 1) {
		o->result = BE_PORTAL_REFUSED;
		o->message = "badapop";
		goto out;
	}
	if (apop_key_load(w->conf->apop_secret_key, 1, key, &error) < 0 ||
	    apop_seal(key, a.address, secret, &sealed, &error) < 0 ||
	    store_apop_set(st, a.address, str_c(&sealed), &error) != 0) {
		log_warnx("portal: apop on %s: %s", account, error);
		o->result = BE_PORTAL_TEMPFAIL;
		o->message = "tempfail";
	} else
		log_info("portal apop on account=%s", account);
	explicit_bzero(key, sizeof(key));
out:
	str_deinit(&sealed);
	if (have_a)
		account_deinit(&a);
}

/* Which operations change something and so need the CSRF token, and
 * which need an admin's session. */
static const struct {
	const char	*name;
	int		 csrf;
	int		 admin;
} be_portal_ops[] = {
	{ "login", 0, 0 },
	{ "status", 0, 0 },
	{ "overseas_on", 1, 0 },
	{ "overseas_off", 1, 0 },
	{ "password", 1, 0 },
	{ "logout", 1, 0 },
	{ "api", 0, 0 },	/* a bearer token instead of a session */
	{ "admin_login", 0, 1 },
	{ "admin_search", 0, 1 },
	{ "admin_account", 0, 1 },
	{ "admin_audit", 0, 1 },
	{ "admin_suspend", 1, 1 },
	{ "admin_resume", 1, 1 },
	{ "admin_overseas_on", 1, 1 },
	{ "admin_overseas_off", 1, 1 },
	{ "admin_limits", 1, 1 },
	{ "admin_logout", 1, 1 },
	{ "admin_trace", 1, 1 },
	{ "apop_on", 1, 0 },
	{ "apop_off", 1, 0 },
};

int
be_portal(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *op, *client, *sid, *csrf_in;
	char csrf[PORTAL_TOKEN_HEX + 1], *account = NULL;
	struct be_portal_args args;
	struct be_portal_out o;
	struct store *st;
	const char *error0;
	uint32_t n;
	size_t k;
	int r;

	if (msg_get_str(req, &op) < 0 || msg_get_str(req, &client) < 0 ||
	    msg_get_str(req, &sid) < 0 || msg_get_str(req, &csrf_in) < 0 ||
	    msg_get_u32(req, &n) < 0 || op == NULL || client == NULL ||
	    n > PORTAL_ARGS_MAX)
		return -1;
	args.n = n;
	for (uint32_t i = 0; i < n; i++)
		if (msg_get_str(req, &args.key[i]) < 0 ||
		    msg_get_str(req, &args.val[i]) < 0 ||
		    args.key[i] == NULL || args.val[i] == NULL)
			return -1;
	if (msg_end(req) < 0)
		return -1;
	for (k = 0; k < be_portal_nitems(be_portal_ops); k++)
		if (strcmp(be_portal_ops[k].name, op) == 0)
			break;
	if (k == be_portal_nitems(be_portal_ops))
		return -1;

	memset(&o, 0, sizeof(o));
	str_init(&o.pairs);
	o.result = BE_PORTAL_OK;
	/* the periodic sweep of expired sessions, also after a restart */
	be_keeper_start(w->conf);
	if ((st = be_worker_store(w)) == NULL) {
		o.result = BE_PORTAL_TEMPFAIL;
		o.message = "tempfail";
		goto reply;
	}
	if (strcmp(op, "login") == 0) {
		be_portal_login(w, st, client, &args, &o);
		goto reply;
	}
	if (strcmp(op, "api") == 0) {
		be_portal_api(w, st, client, &args, &o);
		goto reply;
	}
	if (strcmp(op, "admin_login") == 0) {
		be_portal_admin_login(w, st, client, &args, &o);
		goto reply;
	}
	/* An admin's session is good for admin pages only, and the other
	 * way round. */
	r = be_portal_session_get(w, st, sid, &account, csrf);
	if (r < 0) {
		o.result = BE_PORTAL_TEMPFAIL;	/* not "log in again" */
		o.message = "tempfail";
		goto reply;
	}
	if (r != 0 || be_portal_is_admin(account) != be_portal_ops[k].admin) {
		o.result = BE_PORTAL_NOSESSION;
		goto reply;
	}
	if (be_portal_ops[k].csrf && !be_portal_token_eq(csrf, csrf_in)) {
		log_warnx("portal: %s without a valid CSRF token account=%s "
		    "client=%s", op, account, client);
		o.result = BE_PORTAL_CSRF;
		goto reply;
	}
	if (be_portal_ops[k].admin) {
		char *hash = NULL;

		/* A deleted admin's sessions end at their next request. */
		r = admin_users_get(st, account + sizeof(PORTAL_ADMIN_PREFIX) -
		    1, &hash, &error0);
		if (r < 0) {
			log_warnx("portal: admin users: %s", error0);
			o.result = BE_PORTAL_TEMPFAIL;
			o.message = "tempfail";
			goto reply;
		}
		if (r != 0) {
			be_portal_session_end(st, NULL, account);
			o.result = BE_PORTAL_NOSESSION;
			goto reply;
		}
		free(hash);
		be_portal_put(&o, "csrf", csrf);
		be_portal_admin(w, st, op, account, sid, client, &args, &o);
		goto reply;
	}
	/* A suspension ends every session at its next request. */
	struct account a;
	const char *error;

	r = store_account_get(st, account, &a, &error);

	if (r != 0 || a.suspended) {
		if (r == 0) {
			be_portal_put(&o, "reason", a.suspend_reason);
			account_deinit(&a);
		}
		if (r < 0) {
			o.result = BE_PORTAL_TEMPFAIL;
			o.message = "tempfail";
		} else {
			be_portal_session_end(st, NULL, account);
			o.result = BE_PORTAL_NOSESSION;
			o.message = r == 0 ? "suspended" : NULL;
		}
		goto reply;
	}
	account_deinit(&a);
	be_portal_put(&o, "csrf", csrf);
	if (strcmp(op, "status") == 0)
		be_portal_status(w, st, account, &o);
	else if (strcmp(op, "overseas_on") == 0)
		be_portal_overseas(w, st, account, 1, &o);
	else if (strcmp(op, "overseas_off") == 0)
		be_portal_overseas(w, st, account, 0, &o);
	else if (strcmp(op, "password") == 0)
		be_portal_password(w, st, account, sid, client, &args, &o);
	else if (strcmp(op, "logout") == 0)
		be_portal_session_end(st, sid, NULL);
	else if (strcmp(op, "apop_on") == 0 || strcmp(op, "apop_off") == 0)
		be_portal_apop(w, st, account, client,
		    strcmp(op, "apop_on") == 0, &args, &o);
reply:
	msg_add_u32(reply, o.result);
	msg_add_str(reply, o.message);
	msg_add_u32(reply, o.npairs);
	for (size_t off = 0; off < o.pairs.len;) {
		const char *key = o.pairs.s + off;
		const char *val = key + strlen(key) + 1;

		msg_add_str(reply, key);
		msg_add_str(reply, val);
		off = (size_t)(val + strlen(val) + 1 - o.pairs.s);
	}
	str_deinit(&o.pairs);
	free(account);
	return 0;
}
