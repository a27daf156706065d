/*
 * be_portal: the back side of the settings page, the admin pages and the
 * JSON API (src/portal/). The HTTP side sends one request type per
 * operation (BE_PORTAL_*, BE_ADMIN_*, BE_API_* in be_proto.h); the table
 * be_portal_ops says which role each needs, and the dispatcher checks it
 * from the session record in the store (or the API token), never from
 * what the request says. Replies are fixed typed fields; rows are packed
 * by portal_rows.c; lists are paged and every reply is checked against
 * MSG_MAX_LEN before it is sent.
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
#include "../policy/risk.h"
#include "../policy/trace.h"
#include "../queue/queue.h"
#include "admin_users.h"
#include "api_token.h"
#include "../portal/portal_rows.h"
#include "../portal/portal_util.h"
#include "../backend/apop.h"
#include "../store/password.h"
#include "../store/store.h"
#include "be_keeper.h"
#include "trace_token.h"
#include "backend.h"
#include "be_risk.h"

#define PORTAL_SESSION_MAX_AGE	 (12 * 3600)
#define PORTAL_TOKEN_HEX	 64		/* 32 random bytes */
#define PORTAL_HISTORY_DAYS	 7
#define PORTAL_HISTORY_ROWS	 20
#define PORTAL_PASSWORD_MIN	 8
#define PORTAL_PASSWORD_MAX	 200
#define PORTAL_USER_MAX		 320	/* a login name as typed */
#define PORTAL_SECRET_MAX	 1024	/* a password as typed */
#define PORTAL_QUERY_MAX	 254
#define PORTAL_TRACE_KEYS	 32	/* of each kind per request */
#define PORTAL_ADMIN_PREFIX	"admin:"	/* never in an address */
#define PORTAL_OFFSET_MAX	 10000	/* rows skipped by a page */
/* room kept in a reply for its fixed fields (HEAD, STATUS's scalars) */
#define PORTAL_FIXED_MAX	 4096

#define be_portal_nitems(a)	(sizeof(a) / sizeof((a)[0]))

/*
 * The biggest replies, by construction (portal_rows.h): a status carries
 * up to 50 aliases and a page of 20 submissions and 20 events; an admin
 * account page the same and a reason; the audit page 50 events; a
 * search 10 top senders, 20 refusal tallies and 50 accounts.
 * 50 * 275 + 20 * 892 + 20 * 708 + 4096 = 49846 < 65536.
 */
_Static_assert(PORTAL_ALIASES_MAX * PORTAL_STR_COST(PORTAL_ACCOUNT_MAX) +
    8 + PORTAL_STATUS_PAGE * PORTAL_ROW_SUB_MAX + 8 +
    PORTAL_STATUS_PAGE * PORTAL_ROW_EVENT_MAX + PORTAL_FIXED_MAX <
    MSG_MAX_LEN, "a status reply fits one message");
/* issue 17: the admin account page also carries RISK (in
 * PORTAL_FIXED_MAX's room: 5 strings of at most 255) and a page of HELD */
_Static_assert(PORTAL_ALIASES_MAX * PORTAL_STR_COST(PORTAL_ACCOUNT_MAX) +
    8 + PORTAL_STATUS_PAGE * PORTAL_ROW_SUB_MAX + 8 +
    PORTAL_STATUS_PAGE * PORTAL_ROW_EVENT_MAX + 8 +
    PORTAL_HELD_PAGE * PORTAL_ROW_HELD_MAX + PORTAL_FIXED_MAX <
    MSG_MAX_LEN, "an admin account reply fits one message");
_Static_assert(PORTAL_LIST_MAX(PORTAL_ROW_RISK_MAX) + PORTAL_FIXED_MAX <
    MSG_MAX_LEN, "a risk page fits one message");
_Static_assert(PORTAL_LIST_MAX(PORTAL_ROW_EVENT_MAX) + PORTAL_FIXED_MAX <
    MSG_MAX_LEN, "an audit page fits one message");
_Static_assert(PORTAL_LIST_MAX(PORTAL_ROW_SUB_MAX) + PORTAL_FIXED_MAX <
    MSG_MAX_LEN, "a trace page fits one message");
_Static_assert(PORTAL_LIST_MAX(PORTAL_ROW_TOP_MAX) +
    PORTAL_LIST_MAX(PORTAL_ROW_REFUSED_MAX) +
    PORTAL_LIST_MAX(PORTAL_ROW_ACCOUNT_MAX) + PORTAL_FIXED_MAX <
    MSG_MAX_LEN, "a search page fits one message");

/* The reply: HEAD (be_proto.h), then the body when the result is OK. */
struct be_portal_out {
	uint32_t	 result;
	const char	*message;
	int64_t		 delay;
	char		 until[64];	/* "" = none */
	char		*reason;	/* NULL = none */
	const char	*csrf;		/* the session's, for the forms */
	struct msg	 body;		/* fields after the CSRF token */
};

/* One request, once the dispatcher has checked its role. */
struct be_portal_ctx {
	struct be_worker	*w;
	struct store		*st;
	struct msg		*req;
	uint32_t		 type;		/* req's */
	const char		*client;
	const char		*sid;
	const char		*account;	/* from the session record */
	const char		*admin;		/* its name, admin pages */
	char			 token_name[API_TOKEN_NAME_MAX + 1];
	const char		*api_account;	/* the API's target */
	struct be_portal_out	*o;
};

static void
be_portal_fail(struct be_portal_out *o, uint32_t result, const char *message)
{
	o->result = result;
	o->message = message;
}

static void
be_portal_until(struct be_portal_out *o, int64_t t)
{
	policy_format_time(t, o->until, sizeof(o->until));
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
		be_portal_fail(o, BE_PORTAL_REFUSED, "locked");
		be_portal_until(o, locked);
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

		be_risk_auth_fail(w, st, account, client);

		be_portal_fail(o, BE_PORTAL_REFUSED, "fail");
		o->delay = delay;
		return 1;
	}
	if (a->suspended) {
		be_portal_fail(o, BE_PORTAL_REFUSED, "suspended");
		free(o->reason);
		o->reason = a->suspend_reason != NULL ?
		    xstrdup(a->suspend_reason) : NULL;
		return 1;
	}
	return 0;
}

/* ---- rows from the store ------------------------------------------------ */

/*
 * The rows of one store list (store.h hands them to a callback, its
 * pointers valid during the call only), copied as the seam's typed rows
 * (portal_rows.h), newest last. An empty text is "none" (NULL).
 */
struct be_portal_rows {
	struct portal_sub	*subs;
	struct portal_event	*events;
	size_t			 n;
	char			**strs;	/* every copy, freed together */
	size_t			 nstrs;
};

static const char *
be_portal_rows_str(struct be_portal_rows *rs, const char *s, int empty_null)
{
	if (s == NULL || (empty_null && *s == '\0'))
		return NULL;
	rs->strs = xreallocarray(rs->strs, rs->nstrs + 1, sizeof(*rs->strs));
	return rs->strs[rs->nstrs++] = xstrdup(s);
}

static const char *
be_portal_rows_when(struct be_portal_rows *rs, int64_t time)
{
	char when[64];

	policy_format_time(time, when, sizeof(when));
	return be_portal_rows_str(rs, when, 0);
}

static int
be_portal_rows_sub(const struct store_submission *s, void *context)
{
	struct be_portal_rows *rs = context;
	struct portal_sub *r;

	if (*s->queue_id == '\0')
		return 0;
	rs->subs = xreallocarray(rs->subs, rs->n + 1, sizeof(*rs->subs));
	r = &rs->subs[rs->n++];
	memset(r, 0, sizeof(*r));
	r->queue_id = be_portal_rows_str(rs, s->queue_id, 0);
	r->message_id = be_portal_rows_str(rs, s->message_id, 1);
	r->time = s->time;
	r->when = be_portal_rows_when(rs, s->time);
	r->account = be_portal_rows_str(rs, s->account, 0);
	r->ip = be_portal_rows_str(rs, s->ip, 0);
	r->country = be_portal_rows_str(rs, s->country, 0);
	r->tls = be_portal_rows_str(rs, s->tls, 1);
	r->rcpts = s->rcpts < 0 ? 0 : s->rcpts > UINT32_MAX ? UINT32_MAX :
	    (uint32_t)s->rcpts;
	r->overseas = s->overseas != 0;
	return 0;
}

static int
be_portal_rows_event(const struct store_event *e, void *context)
{
	struct be_portal_rows *rs = context;
	struct portal_event *r;

	rs->events = xreallocarray(rs->events, rs->n + 1, sizeof(*rs->events));
	r = &rs->events[rs->n++];
	memset(r, 0, sizeof(*r));
	r->time = e->time;
	r->when = be_portal_rows_when(rs, e->time);
	r->account = be_portal_rows_str(rs, e->account, 1);
	r->type = be_portal_rows_str(rs, e->type, 0);
	r->ip = be_portal_rows_str(rs, e->ip, 1);
	r->country = be_portal_rows_str(rs, e->country, 1);
	r->detail = be_portal_rows_str(rs, e->detail, 1);
	return 0;
}

static void
be_portal_rows_free(struct be_portal_rows *rs)
{
	for (size_t i = 0; i < rs->nstrs; i++)
		free(rs->strs[i]);
	free(rs->strs);
	free(rs->subs);
	free(rs->events);
	memset(rs, 0, sizeof(*rs));
}

/*
 * One page of rows (newest last) as a LIST: the page skips the offset
 * newest rows and shows up to page rows, oldest first; more when older
 * rows are left. keep (or NULL) filters events by type.
 */
static void
be_portal_page(struct msg *m, const struct be_portal_rows *rs,
    uint32_t offset, uint32_t page, int (*keep)(const struct portal_event *))
{
	size_t *shown = NULL, ns = 0, skipped = 0;
	int more = 0;

	for (size_t i = rs->n; i-- > 0;) {	/* newest first */
		if (keep != NULL && rs->events != NULL &&
		    !keep(&rs->events[i]))
			continue;
		if (skipped < offset) {
			skipped++;
			continue;
		}
		if (ns == page) {
			more = 1;
			break;
		}
		shown = xreallocarray(shown, ns + 1, sizeof(*shown));
		shown[ns++] = i;
	}
	msg_add_u32(m, (uint32_t)ns);
	msg_add_u32(m, (uint32_t)more);
	for (size_t i = ns; i-- > 0;) {	/* oldest first */
		if (rs->subs != NULL)
			portal_rows_sub_pack(m, &rs->subs[shown[i]]);
		else
			portal_rows_event_pack(m, &rs->events[shown[i]]);
	}
	free(shown);
}
/* The abuse desk's actions show on the admin pages only. */
static int
be_portal_not_admin_event(const struct portal_event *e)
{
	return strncmp(e->type, "admin_", 6) != 0;
}

static int
be_portal_admin_event(const struct portal_event *e)
{
	return strncmp(e->type, "admin_", 6) == 0;
}

/* ---- subscriber requests ---------------------------------------------- */

static int
be_portal_login(struct be_portal_ctx *c)
{
	struct be_portal_out *o = c->o;
	const char *user, *pass;
	char id[PORTAL_TOKEN_HEX + 1], csrf[PORTAL_TOKEN_HEX + 1];
	struct account a;
	char *canon;
	int have_a;
	uint64_t start = metrics_now_us();

	if (portal_rows_get_str(c->req, PORTAL_USER_MAX, &user) < 0 ||
	    portal_rows_get_str(c->req, PORTAL_SECRET_MAX, &pass) < 0 ||
	    msg_end(c->req) < 0)
		return -1;
	/* no control character in a name (issue 13 item 9) */
	if (user == NULL || pass == NULL || *user == '\0' ||
	    !str_login_name_ok(user)) {
		be_portal_fail(o, BE_PORTAL_REFUSED, "fail");
		return 0;
	}
	canon = be_portal_lower(user);
	if (be_portal_check_password(c->w, c->st, canon, pass, c->client, o,
	    &a, &have_a) == 0) {
		metrics_auth(METRICS_SVC_PORTAL, METRICS_AUTH_OK, start);
		policy_auth_ok(c->w->conf, c->st, a.address, c->client);
		be_risk_login(c->w, c->st, a.address, c->client, "portal");
		if (be_portal_session_new(c->w, c->st, a.address, id,
		    csrf) < 0)
			be_portal_fail(o, BE_PORTAL_TEMPFAIL, "tempfail");
		else {
			msg_add_str(&o->body, id);
			portal_rows_add_str(&o->body, a.address,
			    PORTAL_ACCOUNT_MAX);
			log_info("portal login account=%s client=%s",
			    a.address, c->client);
		}
	} else {
		metrics_auth_name("portal", o->message, start);
		log_info("portal login failed user=%.64s client=%s result=%s",
		    be_portal_printable(canon), c->client, o->message);
	}
	if (have_a)
		account_deinit(&a);
	free(canon);
	return 0;
}

static void
be_portal_count(struct store *st, const char *account, char kind,
    int64_t now, int64_t *msgs_r, int64_t *rcpts_r)
{
	char period[32];
	const char *error;

	*msgs_r = *rcpts_r = 0;
	policy_period(kind, now, period, sizeof(period));
	if (store_count_get(st, account, period, msgs_r, rcpts_r, &error) < 0)
		log_warnx("portal: counts of %s: %s", account, error);
}

/* The first aliases of an account (the status page shows a few). */
struct be_portal_aliases {
	char	*names[PORTAL_ALIASES_MAX];
	size_t	 n;
};

static int
be_portal_alias_row(const struct store_alias_row *row, void *context)
{
	struct be_portal_aliases *al = context;

	if (*row->alias == '\0')
		return 0;
	if (al->n == PORTAL_ALIASES_MAX)
		return -1;
	al->names[al->n++] = xstrdup(row->alias);
	return 0;
}

static void be_portal_risk_body(struct be_portal_ctx *c,
    const char *account);

/* STATUS (be_proto.h) of account into o's body; -1 the store failed. */
static int
be_portal_status_body(struct be_portal_ctx *c, const char *account,
    uint32_t offset)
{
	struct msg *m = &c->o->body;
	struct account_policy pol;
	struct policy_limits lim;
	struct be_portal_rows rows = { .n = 0 };
	const char *error;
	char when[64], *sealed = NULL;
	int64_t now = policy_now(), msgs, rcpts, hour, abroad, dummy;

	if (store_policy_get(c->st, account, &pol, &error) != 0 ||
	    policy_limits(c->w->conf, c->st, account, &lim, &error) < 0)
		return -1;
	portal_rows_add_str(m, account, PORTAL_ACCOUNT_MAX);
	msg_add_u32(m, pol.overseas_until > now);
	if (pol.overseas_until > now) {
		policy_format_time(pol.overseas_until, when, sizeof(when));
		portal_rows_add_str(m, when, PORTAL_WHEN_MAX);
	} else
		msg_add_str(m, NULL);
	msg_add_u32(m, (uint32_t)c->w->conf->overseas_permission_days);
	portal_rows_add_str(m, pol.overseas_countries, PORTAL_COUNTRIES_MAX);
	be_portal_count(c->st, account, 'd', now, &msgs, &rcpts);
	be_portal_count(c->st, account, 'h', now, &dummy, &hour);
	be_portal_count(c->st, account, 'o', now, &dummy, &abroad);
	msg_add_i64(m, msgs);
	msg_add_i64(m, rcpts);
	msg_add_i64(m, hour);
	msg_add_i64(m, abroad);
	msg_add_i64(m, lim.msgs_day);
	msg_add_i64(m, lim.rcpts_day);
	msg_add_i64(m, lim.rcpts_hour);
	msg_add_i64(m, lim.overseas_rcpts_day);
	policy_format_time(policy_period_end('d', now), when, sizeof(when));
	portal_rows_add_str(m, when, PORTAL_WHEN_MAX);
	msg_add_u32(m, store_apop_get(c->st, account, &sealed, &error) == 0);
	free(sealed);
	/* issue 16: refuse MX mail claiming the account's own address */
	{
		int own = 0;

		(void)store_own_from_get(c->st, account, &own, &error);
		msg_add_u32(m, (uint32_t)own);
	}
	/* the addresses the account may send as (sender alignment) */
	struct be_portal_aliases al = { .n = 0 };

	(void)store_alias_list(c->st, account, be_portal_alias_row, &al,
	    &error);
	msg_add_u32(m, (uint32_t)al.n);
	for (size_t i = 0; i < al.n; i++) {
		portal_rows_add_str(m, al.names[i], PORTAL_ACCOUNT_MAX);
		free(al.names[i]);
	}

	if (store_submission_list(c->st, account,
	    now - PORTAL_HISTORY_DAYS * 86400, (int)(offset +
	    PORTAL_STATUS_PAGE + 1), be_portal_rows_sub, &rows, &error) < 0) {
		log_warnx("portal: submissions of %s: %s", account, error);
		be_portal_rows_free(&rows);
	}
	be_portal_page(m, &rows, offset, PORTAL_STATUS_PAGE, NULL);
	be_portal_rows_free(&rows);
	/* The abuse desk's actions show on the admin pages only. XXX: they
	 * are filtered after the limit: a subscriber's page may show fewer
	 * rows than it could; they are rare for one account. */
	if (store_event_list(c->st, account, now - PORTAL_HISTORY_DAYS * 86400,
	    (int)(offset + PORTAL_STATUS_PAGE + 1) * 2, be_portal_rows_event,
	    &rows, &error) < 0) {
		log_warnx("portal: events of %s: %s", account, error);
		be_portal_rows_free(&rows);
	}
	be_portal_page(m, &rows, offset, PORTAL_STATUS_PAGE,
	    c->admin != NULL ? NULL : be_portal_not_admin_event);
	be_portal_rows_free(&rows);
	be_portal_risk_body(c, account);
	return 0;
}

static int
be_portal_get_offset(struct msg *req, uint32_t *offset_r)
{
	if (msg_get_u32(req, offset_r) < 0 || *offset_r > PORTAL_OFFSET_MAX)
		return -1;
	return 0;
}

static int
be_portal_status(struct be_portal_ctx *c)
{
	uint32_t offset;

	if (be_portal_get_offset(c->req, &offset) < 0 || msg_end(c->req) < 0)
		return -1;
	if (be_portal_status_body(c, c->account, offset) < 0)
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
	return 0;
}

/* When overseas sending turned on now ends (0: off). */
static int64_t
be_portal_overseas_until(const struct be_portal_ctx *c, int on)
{
	return on ? policy_now() +
	    (int64_t)c->w->conf->overseas_permission_days * 86400 : 0;
}

/* BE_PORTAL_OVERSEAS_ON and _OFF. */
static int
be_portal_overseas(struct be_portal_ctx *c)
{
	int on = c->type == BE_PORTAL_OVERSEAS_ON;
	int64_t until = be_portal_overseas_until(c, on);
	const char *error, *typed = NULL;
	char when[64], countries[STORE_COUNTRIES_MAX + 1] = "";
	int r;

	/* the countries are optional on the seam (an older HTTP side) */
	if ((on && c->req->rpos < c->req->buf.len &&
	    msg_get_str(c->req, &typed) < 0) || msg_end(c->req) < 0 ||
	    (typed != NULL && strlen(typed) > PORTAL_COUNTRIES_MAX))
		return -1;
	/* the countries the subscriber named (issue 17 item 5) */
	if (typed != NULL && policy_countries_parse(typed, countries,
	    sizeof(countries)) < 0) {
		be_portal_fail(c->o, BE_PORTAL_REFUSED, "badcountries");
		return 0;
	}
	r = on ? store_overseas_set_countries(c->st, c->account, until,
	    countries, &error) : store_overseas_set(c->st, c->account, until,
	    &error);
	if (r != 0) {
		log_warnx("portal: overseas %s: %s", c->account, error);
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
		return 0;
	}
	log_info("portal overseas account=%s %s countries=%s", c->account,
	    on ? "on" : "off", *countries != '\0' ? countries : "all");
	if (on) {
		policy_format_time(until, when, sizeof(when));
		portal_rows_add_str(&c->o->body, when, PORTAL_WHEN_MAX);
	} else
		msg_add_str(&c->o->body, NULL);
	return 0;
}

/* The new password, the current one checked. */
static void
be_portal_password_set(struct be_portal_ctx *c, const char *new)
{
	const char *error;
	char *hash;

	if (strlen(new) < PORTAL_PASSWORD_MIN ||
	    strlen(new) > PORTAL_PASSWORD_MAX) {
		be_portal_fail(c->o, BE_PORTAL_REFUSED, "badnew");
		return;
	}
	if ((hash = password_hash(new, &error)) == NULL ||
	    store_account_set_password(c->st, c->account, hash, &error) != 0) {
		log_warnx("portal: password of %s: %s", c->account, error);
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
		free(hash);
		return;
	}
	free(hash);
	/* Whoever else holds a session (a thief, say) is logged out. */
	be_portal_session_end(c->st, c->sid, c->account);
	log_info("portal password changed account=%s client=%s", c->account,
	    c->client);
}

/*
 * APOP (RFC 1939 7) on or off. On needs the current password (as a
 * password change) and a separate APOP password, sealed under
 * apop_secret_key before it reaches the store (src/pop3/apop.h).
 */
static void
be_portal_apop_set(struct be_portal_ctx *c, const struct account *a,
    const char *secret)
{
	unsigned char key[APOP_KEY_LEN];
	struct str sealed = STR_INIT;
	const char *error = NULL;

	/* The login password as APOP secret would put it, MD5-guessable,
	 * on the wire: refused here (the CLI only warns). */
	if (strlen(secret) < PORTAL_PASSWORD_MIN ||
	    strlen(secret) > APOP_SECRET_MAX ||
	    password_verify(secret, a->password_hash, &error) == 1) {
		be_portal_fail(c->o, BE_PORTAL_REFUSED, "badapop");
		return;
	}
	if (apop_key_load(c->w->conf->apop_secret_key, 1, key, &error) < 0 ||
	    apop_seal(key, a->address, secret, &sealed, &error) < 0 ||
	    store_apop_set(c->st, a->address, str_c(&sealed), &error) != 0) {
		log_warnx("portal: apop on %s: %s", c->account, error);
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
	} else
		log_info("portal apop on account=%s", c->account);
	explicit_bzero(key, sizeof(key));
	str_deinit(&sealed);
}

/*
 * BE_PORTAL_PASSWORD and BE_PORTAL_APOP_ON: the current password
 * (re-authentication, throttled as a login), then the new secret.
 */
static int
be_portal_reauth(struct be_portal_ctx *c)
{
	const char *cur, *new;
	struct account a;
	int have_a;

	if (portal_rows_get_str(c->req, PORTAL_SECRET_MAX, &cur) < 0 ||
	    portal_rows_get_str(c->req, PORTAL_SECRET_MAX, &new) < 0 ||
	    msg_end(c->req) < 0 || cur == NULL || new == NULL)
		return -1;
	if (be_portal_check_password(c->w, c->st, c->account, cur, c->client,
	    c->o, &a, &have_a) == 0) {
		if (c->type == BE_PORTAL_PASSWORD)
			be_portal_password_set(c, new);
		else
			be_portal_apop_set(c, &a, new);
	}
	if (have_a)
		account_deinit(&a);
	return 0;
}

static int
be_portal_apop_off(struct be_portal_ctx *c)
{
	const char *error;

	if (msg_end(c->req) < 0)
		return -1;
	if (store_apop_clear(c->st, c->account, &error) < 0) {
		log_warnx("portal: apop off %s: %s", c->account, error);
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
	} else
		log_info("portal apop off account=%s", c->account);
	return 0;
}

/* BE_PORTAL_OWN_FROM_ON/OFF (issue 16, docs/filters.md) */
static int
be_portal_own_from(struct be_portal_ctx *c)
{
	const char *error;
	int on = c->type == BE_PORTAL_OWN_FROM_ON;

	if (msg_end(c->req) < 0)
		return -1;
	if (store_own_from_set(c->st, c->account, on, &error) != 0) {
		log_warnx("portal: refuse_own_from %s: %s", c->account,
		    error);
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
	} else
		log_info("portal refuse_own_from account=%s on=%s",
		    c->account, on ? "yes" : "no");
	return 0;
}

static int
be_portal_logout(struct be_portal_ctx *c)
{
	if (msg_end(c->req) < 0)
		return -1;
	be_portal_session_end(c->st, c->sid, NULL);
	return 0;
}

/* ---- the JSON API (docs/portal.md) ------------------------------------ */

/* The API's account document; 1 = no such account. */
static int
be_portal_api_doc(struct be_worker *w, struct store *st, const char *address,
    json_t **doc_r)
{
	struct account a;
	struct account_policy pol;
	struct policy_limits lim;
	const char *error;
	char when[64];
	int64_t now = policy_now(), msgs, rcpts, hour, abroad, dummy;
	int r;

	if ((r = store_account_get(st, address, &a, &error)) != 0)
		return r;
	if (store_policy_get(st, a.address, &pol, &error) != 0 ||
	    policy_limits(w->conf, st, a.address, &lim, &error) < 0) {
		account_deinit(&a);
		return -1;
	}
	be_portal_count(st, a.address, 'd', now, &msgs, &rcpts);
	be_portal_count(st, a.address, 'h', now, &dummy, &hour);
	be_portal_count(st, a.address, 'o', now, &dummy, &abroad);

	json_t *doc = json_object(), *o = json_object(), *l = json_object(),
	    *t = json_object();
	char reason[PORTAL_REASON_MAX + 1];

	json_object_set_new(doc, "account", json_string(a.address));
	json_object_set_new(doc, "suspended", json_boolean(a.suspended));
	if (a.suspend_reason != NULL)
		xstrlcpy(reason, a.suspend_reason, portal_rows_cut_len(
		    a.suspend_reason, PORTAL_REASON_MAX) + 1);
	json_object_set_new(doc, "suspend_reason", a.suspend_reason != NULL ?
	    json_string(reason) : json_null());
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
	/* the countries it covers, "" every one (issue 17) */
	json_object_set_new(o, "countries", json_string(
	    pol.overseas_countries));
	json_object_set_new(doc, "overseas", o);
	json_object_set_new(l, "messages_per_day", json_integer(lim.msgs_day));
	json_object_set_new(l, "recipients_per_day",
	    json_integer(lim.rcpts_day));
	json_object_set_new(l, "recipients_per_hour",
	    json_integer(lim.rcpts_hour));
	json_object_set_new(l, "recipients_per_message",
	    json_integer(lim.rcpts_msg));
	json_object_set_new(l, "overseas_recipients_per_day",
	    json_integer(lim.overseas_rcpts_day));
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

/* A string field of the API, cut as a reply row would be. */
static json_t *
be_portal_json_str(const char *s, size_t max)
{
	char *copy;
	json_t *j;

	if (s == NULL || *s == '\0')
		return json_null();
	copy = xstrndup(s, portal_rows_cut_len(s, max));
	j = json_stringn(copy, strlen(copy));
	free(copy);
	return j != NULL ? j : json_null();	/* not UTF-8 */
}

/*
 * A page of history: the newest rows after offset, up to page of each
 * list. A Message-ID or a detail is at most 255 bytes and JSON escapes
 * a byte to at most 6, so a row is at most about 4 KiB: the caller still
 * checks the text's size and asks for a smaller page when it is over.
 */
static json_t *
be_portal_api_history(struct store *st, const char *account, int64_t since,
    uint32_t offset, uint32_t page)
{
	struct be_portal_rows rows = { .n = 0 };
	const char *error;
	json_t *doc = json_object(), *evs = json_array(), *subs = json_array();
	int more = 0;

	json_object_set_new(doc, "account", json_string(account));
	if (store_event_list(st, account, since, (int)(offset + page + 1),
	    be_portal_rows_event, &rows, &error) == 0) {
		size_t skipped = 0, shown = 0;

		for (size_t i = rows.n; i-- > 0;) {
			const struct portal_event *e = &rows.events[i];
			json_t *row;

			if (skipped++ < offset)
				continue;
			if (shown == page) {
				more = 1;
				break;
			}
			row = json_object();
			json_object_set_new(row, "time", json_integer(e->time));
			json_object_set_new(row, "type", be_portal_json_str(
			    e->type, PORTAL_TYPE_MAX));
			json_object_set_new(row, "ip", be_portal_json_str(e->ip,
			    PORTAL_IP_MAX));
			json_object_set_new(row, "country", be_portal_json_str(
			    e->country, PORTAL_COUNTRY_MAX));
			json_object_set_new(row, "detail", be_portal_json_str(
			    e->detail, PORTAL_DETAIL_MAX));
			json_array_insert_new(evs, 0, row);
			shown++;
		}
	}
	be_portal_rows_free(&rows);
	if (store_submission_list(st, account, since, (int)(offset + page + 1),
	    be_portal_rows_sub, &rows, &error) == 0) {
		size_t shown = 0;

		for (size_t i = rows.n, k = 0; i-- > 0; k++) {
			const struct portal_sub *sb = &rows.subs[i];
			json_t *row;

			if (k < offset)
				continue;
			if (shown == page) {
				more = 1;
				break;
			}
			row = json_object();
			json_object_set_new(row, "queue_id", be_portal_json_str(
			    sb->queue_id, PORTAL_QUEUE_ID_MAX));
			json_object_set_new(row, "message_id",
			    be_portal_json_str(sb->message_id,
			    PORTAL_MSGID_MAX));
			json_object_set_new(row, "time",
			    json_integer(sb->time));
			json_object_set_new(row, "ip", be_portal_json_str(
			    sb->ip, PORTAL_IP_MAX));
			json_object_set_new(row, "country", be_portal_json_str(
			    sb->country, PORTAL_COUNTRY_MAX));
			json_object_set_new(row, "tls", be_portal_json_str(
			    sb->tls, PORTAL_TLS_MAX));
			json_object_set_new(row, "recipients",
			    json_integer(sb->rcpts));
			json_object_set_new(row, "overseas",
			    json_boolean(sb->overseas));
			json_array_insert_new(subs, 0, row);
			shown++;
		}
	}
	be_portal_rows_free(&rows);
	json_object_set_new(doc, "events", evs);
	json_object_set_new(doc, "submissions", subs);
	json_object_set_new(doc, "offset", json_integer(offset));
	json_object_set_new(doc, "more", json_boolean(more));
	json_object_set_new(doc, "next_offset", more ?
	    json_integer(offset + page) : json_null());
	return doc;
}

static const char *const be_portal_limit_names[5] = { "messages_per_day",
    "recipients_per_day", "recipients_per_hour", "recipients_per_message",
    "overseas_recipients_per_day" };

/* Five limits from a request: -2 unchanged, -1 the default, or 0 ..
 * 10000000. */
static int
be_portal_get_limits(struct msg *req, int64_t v[5])
{
	for (size_t i = 0; i < 5; i++)
		if (msg_get_i64(req, &v[i]) < 0 || v[i] < -2 ||
		    v[i] > 10000000)
			return -1;
	return 0;
}

static int
be_portal_set_limits(struct store *st, const char *account,
    const int64_t v[5], const char **error_r)
{
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
	for (size_t i = 0; i < 5; i++)
		if (v[i] != -2)
			*fields[i] = v[i];
	return store_policy_set_limits(st, account, &pol, error_r);
}

/* The answer of an API call: r 0 with doc, 1 no account, -1 failed. */
static void
be_portal_api_answer(struct be_portal_ctx *c, int r, json_t *doc,
    const char *action, const char *error)
{
	char *text;

	if (r == 1)
		be_portal_fail(c->o, BE_PORTAL_REFUSED, "noaccount");
	else if (r < 0 || doc == NULL) {
		log_warnx("portal api: %s: %s", c->api_account,
		    error != NULL ? error : "failed");
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
	} else if ((text = json_dumps(doc, JSON_COMPACT)) == NULL ||
	    strlen(text) > MSG_MAX_LEN - PORTAL_FIXED_MAX) {
		free(text);
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
	} else {
		msg_add_str(&c->o->body, text);
		free(text);
		if (action != NULL)
			log_info("portal api token=%s client=%s account=%s "
			    "action=%s", c->token_name, c->client,
			    c->api_account, action);
	}
	json_decref(doc);
}

static int
be_portal_api_get(struct be_portal_ctx *c)
{
	json_t *doc = NULL;
	int r;

	if (msg_end(c->req) < 0)
		return -1;
	r = be_portal_api_doc(c->w, c->st, c->api_account, &doc);
	be_portal_api_answer(c, r, doc, NULL, NULL);
	return 0;
}

static int
be_portal_api_overseas(struct be_portal_ctx *c)
{
	const char *error = NULL, *typed = NULL;
	char countries[STORE_COUNTRIES_MAX + 1] = "";
	json_t *doc = NULL;
	uint32_t on;
	int64_t until;
	int r;

	/* the countries are optional (kept as set when absent) */
	if (msg_get_u32(c->req, &on) < 0 || on > 1 ||
	    (c->req->rpos < c->req->buf.len &&
	    (msg_get_str(c->req, &typed) < 0 || typed == NULL || !on ||
	    strlen(typed) > PORTAL_COUNTRIES_MAX)) || msg_end(c->req) < 0)
		return -1;
	if (typed != NULL && policy_countries_parse(typed, countries,
	    sizeof(countries)) < 0) {
		be_portal_fail(c->o, BE_PORTAL_REFUSED, "badcountries");
		return 0;
	}
	until = be_portal_overseas_until(c, on != 0);
	r = typed != NULL ? store_overseas_set_countries(c->st,
	    c->api_account, until, countries, &error) :
	    store_overseas_set(c->st, c->api_account, until, &error);
	if (r == 0)
		r = be_portal_api_doc(c->w, c->st, c->api_account, &doc);
	be_portal_api_answer(c, r, doc, on ? "overseas_on" : "overseas_off",
	    error);
	return 0;
}

static int
be_portal_api_limits(struct be_portal_ctx *c)
{
	const char *error = NULL;
	json_t *doc = NULL;
	int64_t v[5];
	int r;

	if (be_portal_get_limits(c->req, v) < 0 || msg_end(c->req) < 0)
		return -1;
	r = be_portal_set_limits(c->st, c->api_account, v, &error);
	if (r == 0)
		r = be_portal_api_doc(c->w, c->st, c->api_account, &doc);
	be_portal_api_answer(c, r, doc, "limits", error);
	return 0;
}

static int
be_portal_api_history_req(struct be_portal_ctx *c)
{
	struct account a;
	const char *error = NULL;
	json_t *doc = NULL;
	int64_t since;
	uint32_t offset, page;
	int r;

	if (msg_get_i64(c->req, &since) < 0 ||
	    be_portal_get_offset(c->req, &offset) < 0 ||
	    msg_get_u32(c->req, &page) < 0 || msg_end(c->req) < 0 ||
	    since <= 0 || since > 400LL * 86400 || page == 0 ||
	    page > PORTAL_API_PAGE)
		return -1;
	if ((r = store_account_get(c->st, c->api_account, &a, &error)) == 0) {
		account_deinit(&a);
		/* the page is made smaller until its text fits a reply */
		for (;;) {
			char *text;
			size_t len;

			doc = be_portal_api_history(c->st, c->api_account,
			    policy_now() - since, offset, page);
			text = json_dumps(doc, JSON_COMPACT);
			len = text != NULL ? strlen(text) : 0;
			free(text);
			if (len <= MSG_MAX_LEN - PORTAL_FIXED_MAX || page == 1)
				break;
			json_decref(doc);
			page /= 2;
		}
	}
	be_portal_api_answer(c, r, doc, NULL, error);
	return 0;
}

/* ---- the admin pages (docs/portal.md) ---------------------------------- */

static int
be_portal_is_admin(const char *account)
{
	return strncmp(account, PORTAL_ADMIN_PREFIX,
	    sizeof(PORTAL_ADMIN_PREFIX) - 1) == 0;
}

/* An admin's login: the admin file, with the throttling of every login
 * keyed "admin:NAME". */
static int
be_portal_admin_login(struct be_portal_ctx *c)
{
	struct be_portal_out *o = c->o;
	const char *name, *pass;
	char id[PORTAL_TOKEN_HEX + 1], csrf[PORTAL_TOKEN_HEX + 1], *key;
	char *hash = NULL;
	const char *error;
	int64_t locked = 0;
	int r = 1, ok = 0;

	if (portal_rows_get_str(c->req, PORTAL_USER_MAX, &name) < 0 ||
	    portal_rows_get_str(c->req, PORTAL_SECRET_MAX, &pass) < 0 ||
	    msg_end(c->req) < 0)
		return -1;
	if (name == NULL || pass == NULL || !store_name_ok(name)) {
		be_portal_fail(o, BE_PORTAL_REFUSED, "fail");
		return 0;
	}
	key = xasprintf(PORTAL_ADMIN_PREFIX "%s", name);
	if (policy_auth_check(c->w->conf, c->st, key, c->client,
	    &locked) == 1) {
		be_portal_fail(o, BE_PORTAL_REFUSED, "locked");
		be_portal_until(o, locked);
		free(key);
		return 0;
	}
	r = admin_users_get(c->st, name, &hash, &error);
	if (r < 0) {
		/* the store down is not a wrong password */
		log_warnx("portal: admin users: %s", error);
		be_portal_fail(o, BE_PORTAL_TEMPFAIL, "tempfail");
		free(key);
		return 0;
	}
	if (r == 0)
		ok = password_verify(pass, hash, &error) == 1;
	free(hash);
	if (!ok) {
		be_portal_fail(o, BE_PORTAL_REFUSED, "fail");
		o->delay = policy_auth_fail(c->w->conf, c->st, key, c->client,
		    "admin");
		log_info("portal admin login failed client=%s", c->client);
	} else if (be_portal_session_new(c->w, c->st, key, id, csrf) < 0)
		be_portal_fail(o, BE_PORTAL_TEMPFAIL, "tempfail");
	else {
		policy_auth_ok(c->w->conf, c->st, key, c->client);
		msg_add_str(&o->body, id);
		msg_add_str(&o->body, name);
		log_info("portal admin login admin=%s client=%s", name,
		    c->client);
	}
	free(key);
	return 0;
}

/* The audit log is the events table: type "admin_...", the account
 * acted on, the admin's address, "by NAME: what" as detail. */
static void
be_portal_audit(struct be_portal_ctx *c, const char *type,
    const char *account, const char *what)
{
	struct str detail = STR_INIT;

	str_printf(&detail, "by %s", c->admin);
	if (what != NULL && *what != '\0')
		str_printf(&detail, ": %.200s", what);
	policy_event(c->st, account, type, c->client, NULL, str_c(&detail));
	log_info("portal admin=%s action=%s account=%s client=%s", c->admin,
	    type, account, c->client);
	str_deinit(&detail);
}

/* Every account, for the admin search and the dashboard. */
struct be_portal_accounts {
	struct portal_account_row	*rows;
	size_t				 n;
};

struct be_portal_tally {
	char	*key;
	char	*key2;
	int64_t	 a, b;
};

static int
be_portal_tally_cmp(const void *x, const void *y)
{
	const struct be_portal_tally *p = x, *q = y;
	int d;

	if (p->b != q->b)
		return p->b < q->b ? 1 : -1;
	if ((d = strcmp(p->key, q->key)) != 0)
		return d;
	return strcmp(p->key2, q->key2);
}

/* A new entry at the end of the tally t (n used of cap); it owns key and
 * key2. */
static struct be_portal_tally *
be_portal_tally_add(struct be_portal_tally **t, size_t *n, size_t *cap,
    char *key, char *key2)
{
	struct be_portal_tally *e;

	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*t = xreallocarray(*t, *cap, sizeof(**t));
	}
	e = &(*t)[(*n)++];
	e->key = key;
	e->key2 = key2;
	e->a = 0;
	e->b = 0;
	return e;
}

/* The tally sorted, as a LIST of its first max entries (tops, or
 * refusals); then emptied. */
static void
be_portal_tally_send(struct msg *m, struct be_portal_tally *t, size_t *n,
    size_t max, int refused)
{
	if (*n > 0)
		qsort(t, *n, sizeof(*t), be_portal_tally_cmp);
	msg_add_u32(m, (uint32_t)(*n < max ? *n : max));
	msg_add_u32(m, *n > max);
	for (size_t i = 0; i < *n; i++) {
		if (i < max && refused) {
			struct portal_refused r = { t[i].key, t[i].key2,
			    t[i].b };

			portal_rows_refused_pack(m, &r);
		} else if (i < max) {
			struct portal_top r = { t[i].key, t[i].a, t[i].b };

			portal_rows_top_pack(m, &r);
		}
		free(t[i].key);
		free(t[i].key2);
	}
	*n = 0;
}

/*
 * The dashboard: today's top senders (by recipients), today's refusals
 * and locks by type and country, and the queue's size. XXX: the top
 * senders read every account's counter: fine for thousands of accounts,
 * a store query when there are millions.
 */
static void
be_portal_admin_dashboard(struct be_portal_ctx *c,
    const struct be_portal_accounts *accts)
{
	struct msg *m = &c->o->body;
	struct be_portal_tally *t = NULL;
	struct be_portal_rows rows = { .n = 0 };
	size_t n = 0, cap = 0;
	char period[32], *qdir;
	int64_t now = policy_now(), day_start;
	const char *error;
	DIR *d;

	/* messages waiting in the queue */
	qdir = xasprintf("%s/queue", c->w->conf->spool_dir);
	if ((d = opendir(qdir)) != NULL) {
		struct dirent *de;

		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.' &&
			    strchr(de->d_name, '.') == NULL)
				n++;
		closedir(d);
	}
	free(qdir);
	msg_add_i64(m, (int64_t)n);
	n = 0;

	policy_period('d', now, period, sizeof(period));
	for (size_t i = 0; i < accts->n; i++) {
		int64_t msgs = 0, rcpts = 0;
		char *acct = xstrdup(accts->rows[i].address);
		struct be_portal_tally *e;

		if (*acct == '\0' || store_count_get(c->st, acct, period,
		    &msgs, &rcpts, &error) < 0 || (msgs == 0 && rcpts == 0)) {
			free(acct);
			continue;
		}
		e = be_portal_tally_add(&t, &n, &cap, acct, xstrdup(""));
		e->a = msgs;
		e->b = rcpts;
	}
	be_portal_tally_send(m, t, &n, 10, 0);

	/* refusals since local midnight, by type and country */
	day_start = policy_period_end('d', now) - 86400;
	if (store_event_list(c->st, NULL, day_start, 100000,
	    be_portal_rows_event, &rows, &error) == 0) {
		for (size_t k = 0; k < rows.n; k++) {
			const struct portal_event *e = &rows.events[k];
			const char *country;
			size_t i;

			if (strncmp(e->type, "admin_", 6) == 0)
				continue;
			country = e->country != NULL ? e->country : "-";
			for (i = 0; i < n; i++)
				if (strcmp(t[i].key, e->type) == 0 &&
				    strcmp(t[i].key2, country) == 0)
					break;
			if (i == n)
				(void)be_portal_tally_add(&t, &n, &cap,
				    xstrdup(e->type), xstrdup(country));
			t[i].b++;
		}
	}
	be_portal_rows_free(&rows);
	be_portal_tally_send(m, t, &n, 20, 1);
	free(t);
}

static int
be_portal_account_row(const struct store_account_row *row, void *context)
{
	struct be_portal_accounts *accts = context;
	struct portal_account_row *r;

	accts->rows = xreallocarray(accts->rows, accts->n + 1,
	    sizeof(*accts->rows));
	r = &accts->rows[accts->n++];
	r->address = xstrdup(row->address);
	r->suspended = row->suspended != 0;
	return 0;
}

static void
be_portal_accounts_free(struct be_portal_accounts *accts)
{
	for (size_t i = 0; i < accts->n; i++)
		free((char *)accts->rows[i].address);
	free(accts->rows);
	memset(accts, 0, sizeof(*accts));
}

static int
be_portal_admin_search(struct be_portal_ctx *c)
{
	struct msg *m = &c->o->body;
	struct be_portal_accounts accts = { .n = 0 };
	const char *q, *error;
	uint32_t offset;
	size_t n = 0, skipped = 0, k, first = 0, last = 0;
	int more = 0, all;

	if (portal_rows_get_str(c->req, PORTAL_QUERY_MAX, &q) < 0 ||
	    be_portal_get_offset(c->req, &offset) < 0 || msg_end(c->req) < 0)
		return -1;
	if (store_account_list(c->st, NULL, be_portal_account_row, &accts,
	    &error) < 0) {
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
		be_portal_accounts_free(&accts);
		return 0;
	}
	all = q == NULL || *q == '\0';
	msg_add_u32(m, all);
	if (all)
		be_portal_admin_dashboard(c, &accts);
	/* the matching accounts: count the page first */
	for (k = 0; k < accts.n; k++) {
		if (!all && strcasestr(accts.rows[k].address, q) == NULL)
			continue;
		if (skipped < offset) {
			skipped++;
			first = k + 1;
			continue;
		}
		if (n == PORTAL_PAGE_MAX) {
			more = 1;
			break;
		}
		n++;
		last = k + 1;
	}
	msg_add_u32(m, (uint32_t)n);
	msg_add_u32(m, (uint32_t)more);
	for (k = first; k < last; k++)
		if (all || strcasestr(accts.rows[k].address, q) != NULL)
			portal_rows_account_pack(m, &accts.rows[k]);
	be_portal_accounts_free(&accts);
	return 0;
}

static int
be_portal_admin_audit(struct be_portal_ctx *c)
{
	struct be_portal_rows rows = { .n = 0 };
	const char *error;
	uint32_t offset;

	if (be_portal_get_offset(c->req, &offset) < 0 || msg_end(c->req) < 0)
		return -1;
	if (store_event_list(c->st, NULL, policy_now() - 30 * 86400, 5000,
	    be_portal_rows_event, &rows, &error) < 0) {
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
		be_portal_rows_free(&rows);
		return 0;
	}
	be_portal_page(&c->o->body, &rows, offset, PORTAL_AUDIT_PAGE,
	    be_portal_admin_event);
	be_portal_rows_free(&rows);
	return 0;
}

/*
 * Our submissions named by a spam report: the HTTP side extracted the
 * queue IDs and Message-IDs (trace.h: parsing the report is parsing
 * outside input, so it is done there); one row per submission found,
 * up to a page.
 */
/* A submission found by a trace, once whichever key found it. */
static int
be_portal_trace_row(const struct store_submission *s, void *context)
{
	struct be_portal_rows *rs = context;

	for (size_t i = 0; i < rs->n; i++)
		if (strcmp(rs->subs[i].queue_id, s->queue_id) == 0)
			return 0;
	return be_portal_rows_sub(s, context);
}

static int
be_portal_admin_trace(struct be_portal_ctx *c)
{
	const char *keys[2][PORTAL_TRACE_KEYS];
	struct be_portal_rows rows = { .n = 0 };
	uint32_t nk[2];
	const char *error;
	size_t from;

	for (int k = 0; k < 2; k++) {
		if (msg_get_u32(c->req, &nk[k]) < 0 ||
		    nk[k] > PORTAL_TRACE_KEYS)
			return -1;
		for (uint32_t i = 0; i < nk[k]; i++)
			if (portal_rows_get_str(c->req, k == 0 ?
			    PORTAL_QUEUE_ID_MAX : PORTAL_MSGID_MAX,
			    &keys[k][i]) < 0 || keys[k][i] == NULL)
				return -1;
	}
	/* Received tokens (received_client = token, issue 17 item 8) */
	const char *tokens[PORTAL_TRACE_TOKENS];
	uint32_t nt;

	if (msg_get_u32(c->req, &nt) < 0 || nt > PORTAL_TRACE_TOKENS)
		return -1;
	for (uint32_t i = 0; i < nt; i++)
		if (portal_rows_get_str(c->req, PORTAL_TOKEN_TEXT_MAX,
		    &tokens[i]) < 0 || tokens[i] == NULL)
			return -1;
	if (msg_end(c->req) < 0)
		return -1;
	for (uint32_t i = 0; i < nt; i++) {
		struct trace_token_info info;
		struct store_submission s;

		if (trace_token_open(c->w->conf, tokens[i], policy_now(),
		    &info, &error) < 0) {
			log_info("portal admin=%s trace token not opened: %s",
			    c->admin, error);
			continue;
		}
		memset(&s, 0, sizeof(s));
		s.queue_id = "token";
		s.time = info.time;
		s.account = info.account;
		s.ip = info.client;
		s.country = "";
		(void)be_portal_rows_sub(&s, &rows);
	}
	for (int k = 0; k < 2; k++)
		for (uint32_t i = 0; i < nk[k]; i++) {
			if (*keys[k][i] == '\0')
				continue;
			(void)store_submission_find(c->st, k == 0 ?
			    keys[k][i] : NULL, k == 1 ? keys[k][i] : NULL,
			    be_portal_trace_row, &rows, &error);
		}
	/* shown newest last, as found; a page at most */
	from = rows.n > PORTAL_PAGE_MAX ? rows.n - PORTAL_PAGE_MAX : 0;
	msg_add_u32(&c->o->body, (uint32_t)(rows.n - from));
	msg_add_u32(&c->o->body, from > 0);
	for (size_t i = from; i < rows.n; i++)
		portal_rows_sub_pack(&c->o->body, &rows.subs[i]);
	be_portal_rows_free(&rows);
	log_info("portal admin=%s action=trace client=%s", c->admin,
	    c->client);
	return 0;
}

/* The account an admin acts on: parsed, canonical, existing. 0 ok (in
 * canon_r), 1 answered (no such account / tempfail), -1 malformed. */
static int
be_portal_admin_target(struct be_portal_ctx *c, char **canon_r)
{
	const char *target, *error;
	struct account a;
	int r;

	*canon_r = NULL;
	if (portal_rows_get_str(c->req, STORE_ADDRESS_MAX, &target) < 0 ||
	    target == NULL)
		return -1;
	*canon_r = be_portal_lower(target);
	if ((r = store_account_get(c->st, *canon_r, &a, &error)) != 0) {
		be_portal_fail(c->o, r < 0 ? BE_PORTAL_TEMPFAIL :
		    BE_PORTAL_REFUSED, r < 0 ? "tempfail" : "noaccount");
		return 1;
	}
	account_deinit(&a);
	return 0;
}

static int
be_portal_admin_account(struct be_portal_ctx *c)
{
	struct account a;
	const char *error;
	char *canon;
	uint32_t offset;
	int r;

	if ((r = be_portal_admin_target(c, &canon)) < 0 ||
	    be_portal_get_offset(c->req, &offset) < 0 ||
	    msg_end(c->req) < 0) {
		free(canon);
		return -1;
	}
	if (r == 0 && (r = store_account_get(c->st, canon, &a,
	    &error)) == 0) {
		msg_add_u32(&c->o->body, a.suspended ? 1 : 0);
		if (a.suspend_reason != NULL)
			c->o->reason = xstrdup(a.suspend_reason);
		account_deinit(&a);
		if (be_portal_status_body(c, canon, offset) < 0)
			be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
	} else if (r < 0)
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
	free(canon);
	return 0;
}

/* After an admin's change: 0 done, else a tempfail. */
static void
be_portal_admin_result(struct be_portal_ctx *c, const char *what,
    const char *canon, int r, const char *error)
{
	if (r != 0) {
		log_warnx("portal: admin %s %s: %s", what, canon,
		    error != NULL ? error : "failed");
		be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
	}
}

static int
be_portal_admin_suspend(struct be_portal_ctx *c)
{
	const char *reason, *error = NULL;
	char *canon;
	int r;

	if ((r = be_portal_admin_target(c, &canon)) < 0 ||
	    portal_rows_get_str(c->req, PORTAL_REASON_MAX, &reason) < 0 ||
	    msg_end(c->req) < 0) {
		free(canon);
		return -1;
	}
	if (r == 0) {
		if (reason == NULL || *reason == '\0' || strlen(reason) > 200 ||
		    strpbrk(reason, "\r\n\t") != NULL)
			be_portal_fail(c->o, BE_PORTAL_REFUSED, "badreason");
		else {
			r = store_account_set_suspended(c->st, canon, 1, reason,
			    &error);
			if (r == 0)
				be_portal_audit(c, "admin_suspend", canon,
				    reason);
			be_portal_admin_result(c, "suspend", canon, r, error);
		}
	}
	free(canon);
	return 0;
}

/* BE_ADMIN_RESUME, BE_ADMIN_OVERSEAS_ON and _OFF: the account, nothing
 * else. */
static int
be_portal_admin_simple(struct be_portal_ctx *c)
{
	const char *type = c->type == BE_ADMIN_RESUME ? "admin_resume" :
	    c->type == BE_ADMIN_OVERSEAS_ON ? "admin_overseas_on" :
	    "admin_overseas_off";
	const char *error = NULL;
	char *canon;
	int r;

	if ((r = be_portal_admin_target(c, &canon)) < 0 ||
	    msg_end(c->req) < 0) {
		free(canon);
		return -1;
	}
	if (r == 0) {
		if (strcmp(type, "admin_resume") == 0)
			r = store_account_set_suspended(c->st, canon, 0, NULL,
			    &error);
		else
			r = store_overseas_set(c->st, canon,
			    be_portal_overseas_until(c,
			    c->type == BE_ADMIN_OVERSEAS_ON), &error);
		if (r == 0)
			be_portal_audit(c, type, canon, NULL);
		be_portal_admin_result(c, type, canon, r, error);
	}
	free(canon);
	return 0;
}

static int
be_portal_admin_limits(struct be_portal_ctx *c)
{
	const char *error = NULL;
	struct str what = STR_INIT;
	char *canon;
	int64_t v[5];
	int r;

	if ((r = be_portal_admin_target(c, &canon)) < 0 ||
	    be_portal_get_limits(c->req, v) < 0 || msg_end(c->req) < 0) {
		free(canon);
		return -1;
	}
	if (r == 0) {
		for (size_t i = 0; i < 5; i++) {
			if (v[i] == -2)
				continue;
			str_printf(&what, "%s%s=", what.len > 0 ? " " : "",
			    be_portal_limit_names[i]);
			if (v[i] == -1)
				str_append(&what, "default");
			else
				str_printf(&what, "%lld", (long long)v[i]);
		}
		r = be_portal_set_limits(c->st, canon, v, &error);
		if (r == 0)
			be_portal_audit(c, "admin_limits", canon, str_c(&what));
		be_portal_admin_result(c, "limits", canon, r, error);
	}
	str_deinit(&what);
	free(canon);
	return 0;
}

/* ---- after a password is stolen (issue 17) ---------------------------- */

/* The first PORTAL_HELD_PAGE held messages of an account, copied in one
 * pass over the queue (a second pass could find others). */
struct be_portal_held {
	const char	*spool_dir;
	char		*f[PORTAL_HELD_PAGE][8];
	uint32_t	 nrcpts[PORTAL_HELD_PAGE];
	int64_t		 size[PORTAL_HELD_PAGE];
	uint32_t	 n, total;
};

static int
be_portal_held_row(const struct queue_held *q, void *arg)
{
	struct be_portal_held *h = arg;
	struct str rcpts = STR_INIT, headers = STR_INIT;
	char when[64];

	if (h->total++ >= PORTAL_HELD_PAGE)
		return 0;
	for (size_t i = 0; i < q->env.rcpt_count && rcpts.len <
	    PORTAL_RCPTS_MAX; i++)
		str_printf(&rcpts, "%s%s", i > 0 ? ", " : "",
		    q->env.rcpts[i].address);
	(void)queue_hold_headers(h->spool_dir, q->id, PORTAL_HEADERS_MAX,
	    &headers);
	policy_format_time(q->env.time, when, sizeof(when));
	h->f[h->n][0] = xstrdup(q->id);
	h->f[h->n][1] = xstrdup(when);
	h->f[h->n][2] = xstrdup(q->env.sender);
	h->f[h->n][3] = xstrdup(str_c(&rcpts));
	h->f[h->n][4] = xstrdup(str_c(&headers));
	h->f[h->n][5] = xstrdup(q->hold.by);
	h->f[h->n][6] = xstrdup(q->hold.reason);
	h->nrcpts[h->n] = (uint32_t)q->env.rcpt_count;
	h->size[h->n] = (int64_t)q->size;
	h->n++;
	str_deinit(&rcpts);
	str_deinit(&headers);
	return 0;
}

/* RISK (be_proto.h), and on the admin's account page a LIST of HELD.
 * The score is the desk's: a subscriber's page gets 0. */
static void
be_portal_risk_body(struct be_portal_ctx *c, const char *account)
{
	const struct config *conf = c->w->conf;
	struct msg *m = &c->o->body;
	struct be_risk_score s;
	struct be_portal_held h;
	const char *error;
	char when[64];

	memset(&h, 0, sizeof(h));
	h.spool_dir = conf->spool_dir;
	if (be_risk_score(conf, c->st, account, policy_now(), &s, NULL, NULL,
	    &error) < 0) {
		log_warnx("portal: risk of %s: %s", account, error);
		memset(&s, 0, sizeof(s));
	}
	/* XXX: reads every envelope in this node's queue; only for the
	 * desk (a subscriber's page does not show the count), and only
	 * this node's spool: held mail on another node is listed there. */
	if (c->admin != NULL)
		(void)queue_hold_each(conf->spool_dir, account, 1,
		    be_portal_held_row, &h);
	portal_rows_add_str(m, risk_level_name(s.state.level),
	    PORTAL_TYPE_MAX);
	msg_add_u32(m, s.state.automatic ? 1 : 0);
	if (s.state.level > 0) {
		policy_format_time(s.state.since, when, sizeof(when));
		portal_rows_add_str(m, when, PORTAL_WHEN_MAX);
	} else
		msg_add_str(m, NULL);
	portal_rows_add_str(m, s.state.reason[0] != '\0' ? s.state.reason :
	    NULL, PORTAL_REASON_MAX);
	if (s.state.warned > 0) {
		policy_format_time(s.state.warned, when, sizeof(when));
		portal_rows_add_str(m, when, PORTAL_WHEN_MAX);
	} else
		msg_add_str(m, NULL);
	portal_rows_add_str(m, s.state.warning[0] != '\0' ?
	    s.state.warning : NULL, PORTAL_REASON_MAX);
	msg_add_u32(m, h.total);
	msg_add_i64(m, c->admin != NULL ? (int64_t)(s.score * 10 + 0.5) : 0);
	msg_add_u32(m, s.state.exempt ? 1 : 0);
	if (c->type == BE_ADMIN_ACCOUNT) {
		msg_add_u32(m, h.n);
		msg_add_u32(m, h.total > h.n);
	}
	for (uint32_t i = 0; i < h.n; i++) {
		struct portal_held r = {
			.queue_id = h.f[i][0], .when = h.f[i][1],
			.sender = h.f[i][2], .nrcpts = h.nrcpts[i],
			.rcpts = h.f[i][3], .size = h.size[i],
			.headers = h.f[i][4], .by = h.f[i][5],
			.reason = h.f[i][6],
		};

		if (c->type == BE_ADMIN_ACCOUNT)
			portal_rows_held_pack(m, &r);
		for (int j = 0; j < 7; j++)
			free(h.f[i][j]);
	}
}

/* BE_ADMIN_RISK_TOP: the accounts most at risk now, a page. */
struct be_portal_risk_top {
	const struct config	*conf;
	struct store		*st;
	struct portal_risk	*rows;
	size_t			 n;
};

static int
be_portal_risk_top_row(const char *account, void *arg)
{
	struct be_portal_risk_top *t = arg;
	struct be_risk_score s;
	const char *error;

	if (be_risk_score(t->conf, t->st, account, policy_now(), &s, NULL,
	    NULL, &error) < 0)
		return 0;
	if (s.score <= 0 && s.state.level == 0)
		return 0;
	t->rows = xreallocarray(t->rows, t->n + 1, sizeof(*t->rows));
	t->rows[t->n].account = xstrdup(account);
	t->rows[t->n].score10 = (int64_t)(s.score * 10 + 0.5);
	t->rows[t->n].level = (uint32_t)s.level;
	t->rows[t->n].response = (uint32_t)s.state.level;
	t->n++;
	return 0;
}

static int
be_portal_risk_cmp(const void *x, const void *y)
{
	const struct portal_risk *a = x, *b = y;

	if (a->score10 != b->score10)
		return a->score10 < b->score10 ? 1 : -1;
	return strcmp(a->account, b->account);
}

static int
be_portal_admin_risk_top(struct be_portal_ctx *c)
{
	struct be_portal_risk_top t = { c->w->conf, c->st, NULL, 0 };
	struct msg *m = &c->o->body;
	const char *error;
	uint32_t offset, n = 0;
	size_t i;

	if (be_portal_get_offset(c->req, &offset) < 0 || msg_end(c->req) < 0)
		return -1;
	/* XXX: scores every account with a recent event, as risk --top */
	if (store_risk_accounts(c->st, policy_now() -
	    risk_horizon(c->w->conf), 0, be_portal_risk_top_row, &t,
	    &error) < 0)
		log_warnx("portal: risk page: %s", error);
	if (t.n > 0)
		qsort(t.rows, t.n, sizeof(*t.rows), be_portal_risk_cmp);
	if (offset < t.n)
		n = (uint32_t)(t.n - offset < PORTAL_RISK_PAGE ?
		    t.n - offset : PORTAL_RISK_PAGE);
	msg_add_u32(m, n);
	msg_add_u32(m, offset + n < t.n);
	for (i = 0; i < t.n; i++) {
		if (i >= offset && i < offset + n)
			portal_rows_risk_pack(m, &t.rows[i]);
		free((char *)t.rows[i].account);
	}
	free(t.rows);
	return 0;
}

/* BE_ADMIN_RISK_CLEAR, _HOLD, _EXEMPT_ON, _EXEMPT_OFF: the account. */
static int
be_portal_admin_risk(struct be_portal_ctx *c)
{
	const struct config *conf = c->w->conf;
	const char *error = NULL;
	char *canon, by[STORE_NAME_MAX + 8];
	int r;

	if ((r = be_portal_admin_target(c, &canon)) < 0 ||
	    msg_end(c->req) < 0) {
		free(canon);
		return -1;
	}
	snprintf(by, sizeof(by), "%s", c->admin);
	if (r == 0) {
		if (c->type == BE_ADMIN_RISK_CLEAR)
			r = be_risk_clear(conf, c->st, canon, by, c->client,
			    &error);
		else if (c->type == BE_ADMIN_RISK_HOLD)
			r = be_risk_desk_hold(conf, c->st, canon, by,
			    c->client, &error);
		else
			r = be_risk_set_exempt(conf, c->st, canon,
			    c->type == BE_ADMIN_RISK_EXEMPT_ON, by, c->client,
			    &error);
		be_portal_admin_result(c, "risk", canon, r, error);
	}
	free(canon);
	return 0;
}

static int
be_portal_admin_warn(struct be_portal_ctx *c)
{
	struct trace_keys k;
	const char *key, *error = NULL;
	char *canon;
	uint32_t n;
	size_t traced = 0;
	int r;

	memset(&k, 0, sizeof(k));
	if ((r = be_portal_admin_target(c, &canon)) < 0)
		return -1;
	for (int kind = 0; kind < 2; kind++) {
		if (msg_get_u32(c->req, &n) < 0 || n > PORTAL_TRACE_KEYS)
			goto bad;
		for (uint32_t i = 0; i < n; i++) {
			if (portal_rows_get_str(c->req, kind == 0 ?
			    PORTAL_QUEUE_ID_MAX : PORTAL_MSGID_MAX, &key) < 0 ||
			    key == NULL)
				goto bad;
			if (kind == 0)
				k.queue_ids[k.nqueue_ids++] = xstrdup(key);
			else
				k.msgids[k.nmsgids++] = xstrdup(key);
		}
	}
	if (msg_end(c->req) < 0)
		goto bad;
	if (r == 0) {
		r = be_risk_warn(c->w->conf, c->st, be_worker_queue(c->w),
		    canon, c->admin, c->client, &k, &traced, &error);
		be_portal_admin_result(c, "warn", canon, r, error);
		if (r == 0)
			msg_add_u32(&c->o->body, (uint32_t)traced);
	}
	trace_keys_free(&k);
	free(canon);
	return 0;
bad:
	trace_keys_free(&k);
	free(canon);
	return -1;
}

/* BE_ADMIN_HELD_RELEASE, _DELETE: one held message of the account, or
 * all of them. Another account's message is not found. */
struct be_portal_held_act {
	struct be_portal_ctx	*c;
	const char		*account;
	const char		*id;
	uint32_t		 n;
};

static int
be_portal_held_act(const struct queue_held *q, void *arg)
{
	struct be_portal_held_act *a = arg;
	struct be_portal_ctx *c = a->c;
	const char *error;
	int r;

	if (a->id != NULL && strcmp(a->id, q->id) != 0)
		return 0;
	if (c->type == BE_ADMIN_HELD_RELEASE) {
		r = queue_hold_release(c->w->conf->spool_dir, q->id, &error);
		if (r > 0 && be_worker_queue(c->w) != NULL)
			queue_flush(be_worker_queue(c->w), q->id);
	} else
		r = queue_hold_delete(c->w->conf->spool_dir, q->id, 1, &error);
	if (r < 0)
		log_warnx("id=%s portal admin=%s held: %s", q->id, c->admin,
		    error);
	if (r > 0) {
		log_info("id=%s queue %s by=desk:%s account=%s", q->id,
		    c->type == BE_ADMIN_HELD_RELEASE ? "released" : "deleted",
		    c->admin, a->account);
		be_risk_held_audit(c->st, a->account, q->id,
		    c->type == BE_ADMIN_HELD_RELEASE, c->admin, c->client);
		a->n++;
	}
	return 0;
}

static int
be_portal_admin_held(struct be_portal_ctx *c)
{
	struct be_portal_held_act a;
	const char *id;
	char *canon;
	int r;

	if ((r = be_portal_admin_target(c, &canon)) < 0 ||
	    portal_rows_get_str(c->req, PORTAL_QUEUE_ID_MAX, &id) < 0 ||
	    msg_end(c->req) < 0 || (id != NULL && !queue_id_valid(id))) {
		free(canon);
		return -1;
	}
	if (r == 0) {
		a.c = c;
		a.account = canon;
		a.id = id;
		a.n = 0;
		if (queue_hold_each(c->w->conf->spool_dir, canon, 1,
		    be_portal_held_act, &a) < 0)
			be_portal_fail(c->o, BE_PORTAL_TEMPFAIL, "tempfail");
		else
			msg_add_u32(&c->o->body, a.n);
	}
	free(canon);
	return 0;
}

/* ---- the dispatcher ------------------------------------------------------ */

enum be_portal_role {
	BE_ROLE_NONE,		/* a login: no session yet */
	BE_ROLE_SUBSCRIBER,	/* a subscriber's session */
	BE_ROLE_ADMIN,		/* an admin's session */
	BE_ROLE_API,		/* a bearer token */
};

/* Which role each request needs, and whether it changes something (and
 * so needs the session's CSRF token). */
static const struct be_portal_op {
	uint32_t		 type;
	enum be_portal_role	 role;
	int			 csrf;
	int			(*fn)(struct be_portal_ctx *);
} be_portal_ops[] = {
	{ BE_PORTAL_LOGIN, BE_ROLE_NONE, 0, be_portal_login },
	{ BE_PORTAL_STATUS, BE_ROLE_SUBSCRIBER, 0, be_portal_status },
	{ BE_PORTAL_OVERSEAS_ON, BE_ROLE_SUBSCRIBER, 1, be_portal_overseas },
	{ BE_PORTAL_OVERSEAS_OFF, BE_ROLE_SUBSCRIBER, 1, be_portal_overseas },
	{ BE_PORTAL_PASSWORD, BE_ROLE_SUBSCRIBER, 1, be_portal_reauth },
	{ BE_PORTAL_APOP_ON, BE_ROLE_SUBSCRIBER, 1, be_portal_reauth },
	{ BE_PORTAL_APOP_OFF, BE_ROLE_SUBSCRIBER, 1, be_portal_apop_off },
	{ BE_PORTAL_LOGOUT, BE_ROLE_SUBSCRIBER, 1, be_portal_logout },
	{ BE_PORTAL_OWN_FROM_ON, BE_ROLE_SUBSCRIBER, 1, be_portal_own_from },
	{ BE_PORTAL_OWN_FROM_OFF, BE_ROLE_SUBSCRIBER, 1, be_portal_own_from },
	{ BE_ADMIN_LOGIN, BE_ROLE_NONE, 0, be_portal_admin_login },
	{ BE_ADMIN_SEARCH, BE_ROLE_ADMIN, 0, be_portal_admin_search },
	{ BE_ADMIN_ACCOUNT, BE_ROLE_ADMIN, 0, be_portal_admin_account },
	{ BE_ADMIN_AUDIT, BE_ROLE_ADMIN, 0, be_portal_admin_audit },
	{ BE_ADMIN_TRACE, BE_ROLE_ADMIN, 1, be_portal_admin_trace },
	{ BE_ADMIN_SUSPEND, BE_ROLE_ADMIN, 1, be_portal_admin_suspend },
	{ BE_ADMIN_RESUME, BE_ROLE_ADMIN, 1, be_portal_admin_simple },
	{ BE_ADMIN_OVERSEAS_ON, BE_ROLE_ADMIN, 1, be_portal_admin_simple },
	{ BE_ADMIN_OVERSEAS_OFF, BE_ROLE_ADMIN, 1, be_portal_admin_simple },
	{ BE_ADMIN_LIMITS, BE_ROLE_ADMIN, 1, be_portal_admin_limits },
	{ BE_ADMIN_LOGOUT, BE_ROLE_ADMIN, 1, be_portal_logout },
	{ BE_API_GET, BE_ROLE_API, 0, be_portal_api_get },
	{ BE_API_OVERSEAS, BE_ROLE_API, 0, be_portal_api_overseas },
	{ BE_API_LIMITS, BE_ROLE_API, 0, be_portal_api_limits },
	{ BE_API_HISTORY, BE_ROLE_API, 0, be_portal_api_history_req },
	{ BE_ADMIN_RISK_TOP, BE_ROLE_ADMIN, 0, be_portal_admin_risk_top },
	{ BE_ADMIN_RISK_CLEAR, BE_ROLE_ADMIN, 1, be_portal_admin_risk },
	{ BE_ADMIN_RISK_HOLD, BE_ROLE_ADMIN, 1, be_portal_admin_risk },
	{ BE_ADMIN_RISK_EXEMPT_ON, BE_ROLE_ADMIN, 1, be_portal_admin_risk },
	{ BE_ADMIN_RISK_EXEMPT_OFF, BE_ROLE_ADMIN, 1, be_portal_admin_risk },
	{ BE_ADMIN_WARN, BE_ROLE_ADMIN, 1, be_portal_admin_warn },
	{ BE_ADMIN_HELD_RELEASE, BE_ROLE_ADMIN, 1, be_portal_admin_held },
	{ BE_ADMIN_HELD_DELETE, BE_ROLE_ADMIN, 1, be_portal_admin_held },
};

/*
 * The role of a page request, from the session record in the store. 0
 * the handler may run; 1 answered (no session, wrong role, no CSRF
 * token, suspended, tempfail). account_r is the record's account.
 */
static int
be_portal_session_role(struct be_portal_ctx *c, const struct be_portal_op *op,
    const char *csrf_in, char **account_r, char *csrf)
{
	struct be_portal_out *o = c->o;
	const char *error;
	struct account a;
	int r;

	r = be_portal_session_get(c->w, c->st, c->sid, account_r, csrf);
	if (r < 0) {
		be_portal_fail(o, BE_PORTAL_TEMPFAIL, "tempfail");
		return 1;
	}
	/* An admin's session is good for admin requests only, and the
	 * other way round. */
	if (r != 0 || be_portal_is_admin(*account_r) !=
	    (op->role == BE_ROLE_ADMIN)) {
		if (r == 0)
			log_warnx("portal: request type %u refused for the "
			    "session of %s client=%s (wrong role)", op->type,
			    *account_r, c->client);
		be_portal_fail(o, BE_PORTAL_NOSESSION, NULL);
		return 1;
	}
	if (op->csrf && !be_portal_token_eq(csrf, csrf_in)) {
		log_warnx("portal: request type %u without a valid CSRF token "
		    "account=%s client=%s", op->type, *account_r, c->client);
		be_portal_fail(o, BE_PORTAL_CSRF, NULL);
		return 1;
	}
	if (op->role == BE_ROLE_ADMIN) {
		char *hash = NULL;

		/* A deleted admin's sessions end at their next request. */
		r = admin_users_get(c->st, *account_r +
		    sizeof(PORTAL_ADMIN_PREFIX) - 1, &hash, &error);
		free(hash);
		if (r < 0) {
			log_warnx("portal: admin users: %s", error);
			be_portal_fail(o, BE_PORTAL_TEMPFAIL, "tempfail");
			return 1;
		}
		if (r != 0) {
			be_portal_session_end(c->st, NULL, *account_r);
			be_portal_fail(o, BE_PORTAL_NOSESSION, NULL);
			return 1;
		}
		c->admin = *account_r + sizeof(PORTAL_ADMIN_PREFIX) - 1;
		return 0;
	}
	/* A suspension ends every session at its next request. */
	r = store_account_get(c->st, *account_r, &a, &error);
	if (r != 0 || a.suspended) {
		if (r == 0) {
			o->reason = a.suspend_reason != NULL ?
			    xstrdup(a.suspend_reason) : NULL;
			account_deinit(&a);
		}
		if (r < 0)
			be_portal_fail(o, BE_PORTAL_TEMPFAIL, "tempfail");
		else {
			be_portal_session_end(c->st, NULL, *account_r);
			be_portal_fail(o, BE_PORTAL_NOSESSION, r == 0 ?
			    "suspended" : NULL);
		}
		return 1;
	}
	account_deinit(&a);
	return 0;
}

/* HEAD, then (when OK) the CSRF token and the body; an oversize reply
 * becomes a TEMPFAIL (it cannot happen by construction: see the
 * _Static_asserts above; this keeps the back side up if it did). */
static void
be_portal_reply(struct msg *reply, const struct be_portal_out *o, int ok)
{
	size_t start = reply->buf.len;

	msg_add_u32(reply, o->result);
	msg_add_str(reply, o->message);
	msg_add_i64(reply, o->delay);
	msg_add_str(reply, o->until[0] != '\0' ? o->until : NULL);
	portal_rows_add_str(reply, o->reason, PORTAL_REASON_MAX);
	if (!ok)
		return;
	msg_add_str(reply, o->csrf);
	str_append_n(&reply->buf, o->body.buf.s + MSG_HDR_LEN,
	    o->body.buf.len - MSG_HDR_LEN);
	if (reply->buf.len > MSG_MAX_LEN) {
		log_warnx("portal: reply to request type %u too large (%zu "
		    "bytes): answered tempfail", reply->type, reply->buf.len);
		str_truncate(&reply->buf, start);
		msg_add_u32(reply, BE_PORTAL_TEMPFAIL);
		msg_add_str(reply, "tempfail");
		msg_add_i64(reply, 0);
		msg_add_str(reply, NULL);
		msg_add_str(reply, NULL);
	}
}

int
be_portal(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const struct be_portal_op *op = NULL;
	struct be_portal_ctx c;
	struct be_portal_out o;
	const char *csrf_in = NULL, *token = NULL, *error;
	char csrf[PORTAL_TOKEN_HEX + 1], *account = NULL;
	int r, ret = 0;

	for (size_t k = 0; k < be_portal_nitems(be_portal_ops); k++)
		if (be_portal_ops[k].type == req->type)
			op = &be_portal_ops[k];
	if (op == NULL)
		return -1;
	memset(&c, 0, sizeof(c));
	memset(&o, 0, sizeof(o));
	c.w = w;
	c.req = req;
	c.type = req->type;
	c.o = &o;
	if (portal_rows_get_str(req, PORTAL_IP_MAX, &c.client) < 0 ||
	    c.client == NULL)
		return -1;
	if (op->role == BE_ROLE_SUBSCRIBER || op->role == BE_ROLE_ADMIN) {
		if (portal_rows_get_str(req, PORTAL_TOKEN_HEX, &c.sid) < 0 ||
		    portal_rows_get_str(req, PORTAL_TOKEN_HEX, &csrf_in) < 0)
			return -1;
	} else if (op->role == BE_ROLE_API) {
		if (portal_rows_get_str(req, 256, &token) < 0 ||
		    portal_rows_get_str(req, STORE_ADDRESS_MAX,
		    &c.api_account) < 0 || token == NULL ||
		    c.api_account == NULL)
			return -1;
	}
	msg_init(&o.body, 0, 0);
	o.result = BE_PORTAL_OK;
	/* the periodic sweep of expired sessions, also after a restart */
	be_keeper_start(w->conf);
	if ((c.st = be_worker_store(w)) == NULL) {
		be_portal_fail(&o, BE_PORTAL_TEMPFAIL, "tempfail");
		goto reply;
	}
	if (op->role == BE_ROLE_API) {
		char *canon;

		r = api_token_check(c.st, token, c.token_name, &error);
		if (r < 0) {
			/* the store down: try again, not "revoked" */
			log_warnx("portal api: %s", error);
			be_portal_fail(&o, BE_PORTAL_TEMPFAIL, "tempfail");
			goto reply;
		}
		if (r != 1) {
			log_info("portal api refused client=%s (no valid "
			    "token)", c.client);
			be_portal_fail(&o, BE_PORTAL_NOSESSION, NULL);
			goto reply;
		}
		canon = be_portal_lower(c.api_account);
		c.api_account = canon;
		ret = op->fn(&c);
		free(canon);
		goto reply;
	}
	if (op->role != BE_ROLE_NONE) {
		if (be_portal_session_role(&c, op, csrf_in, &account,
		    csrf) != 0)
			goto reply;
		c.account = account;
		o.csrf = csrf;
		if (op->role == BE_ROLE_ADMIN)
			msg_add_str(&o.body, c.admin);
	}
	ret = op->fn(&c);
reply:
	if (ret == 0)
		be_portal_reply(reply, &o, o.result == BE_PORTAL_OK);
	msg_deinit(&o.body);
	free(o.reason);
	free(account);
	return ret;
}
