/*
 * policy: the sending rules (see policy.h and docs/policy.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/xmalloc.h"
#include "../store/store.h"
#include "fcrdns.h"
#include "policy.h"

static int64_t policy_clock_offset;

void
policy_clock_init(void)
{
	const char *s = getenv("SEKISHO_CLOCK_OFFSET");

	if (s != NULL && *s != '\0') {
		policy_clock_offset = strtoll(s, NULL, 10);
		log_warnx("SEKISHO_CLOCK_OFFSET=%lld: the policy clock is "
		    "shifted (for tests only)", (long long)policy_clock_offset);
	}
}

int64_t
policy_now(void)
{
	return (int64_t)time(NULL) + policy_clock_offset;
}

void
policy_period(char kind, int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	localtime_r(&tt, &tm);
	if (kind == 'h')
		snprintf(buf, len, "h:%04d-%02d-%02dT%02d", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
	else
		snprintf(buf, len, "%c:%04d-%02d-%02d", kind,
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

int64_t
policy_period_end(char kind, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	localtime_r(&tt, &tm);
	tm.tm_min = 0;
	tm.tm_sec = 0;
	if (kind == 'h')
		tm.tm_hour += 1;
	else {
		tm.tm_hour = 0;
		tm.tm_mday += 1;
	}
	tm.tm_isdst = -1;
	return (int64_t)mktime(&tm);
}

void
policy_format_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	localtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M %Z", &tm);
}

const char *
policy_portal_url(const struct config *conf, char *buf, size_t len)
{
	if (conf->portal_url != NULL && *conf->portal_url != '\0')
		snprintf(buf, len, "%s", conf->portal_url);
	else
		snprintf(buf, len, "https://%s/", conf->hostname);
	return buf;
}

void
policy_mail_result_init(struct policy_mail_result *r)
{
	memset(r, 0, sizeof(*r));
	str_init(&r->reply);
	str_init(&r->rcpt_reply);
	r->rcpts_left = -1;
	r->rcpts_msg = -1;
}

void
policy_mail_result_deinit(struct policy_mail_result *r)
{
	str_deinit(&r->reply);
	str_deinit(&r->rcpt_reply);
}

/* Outside text as events store it and logs show it: log_escape()d (no
 * control byte or invalid UTF-8 reaches a row, a page or a log line).
 * NULL stays NULL. */
static char *
policy_escape_dup(const char *s)
{
	char *e;

	if (s == NULL)
		return NULL;
	e = xmalloc(LOG_ESCAPE_MAX(strlen(s)));
	return log_escape(e, LOG_ESCAPE_MAX(strlen(s)), s);
}

void
policy_event(struct store *st, const char *account, const char *type,
    const char *client, const char *country, const char *detail)
{
	char *e_account = policy_escape_dup(account);
	char *e_client = policy_escape_dup(client);
	char *e_country = policy_escape_dup(country);
	char *e_detail = policy_escape_dup(detail);
	struct store_event e = {
		.time = policy_now(), .account = e_account, .type = type,
		.ip = e_client, .country = e_country, .detail = e_detail,
	};
	const char *error;

	if (store_event_add(st, &e, &error) < 0)
		log_warnx("policy: cannot record event %s for %s: %s", type,
		    e_account != NULL ? e_account : "-", error);
	log_info("event type=%s account=%s client=%s country=%s detail=\"%s\"",
	    type, e_account != NULL ? e_account : "-", e_client != NULL ?
	    e_client : "-", e_country != NULL ? e_country : "-",
	    e_detail != NULL ? e_detail : "");
	free(e_account);
	free(e_client);
	free(e_country);
	free(e_detail);
}

/* An account override (-1: default) over the config default (0: none). */
static int64_t
policy_pick(int64_t account_value, int conf_value)
{
	return account_value >= 0 ? account_value : conf_value;
}

/* The cap on recipients per day from abroad for a submission from
 * country (limit_overseas_recipients_per_day_by_country, the first group
 * naming it), or the default. Items were checked by config.c. */
static int
policy_overseas_cap(const struct config *conf, const char *country)
{
	size_t n = conf->limit_overseas_recipients_per_day_by_country_count;

	if (country == NULL || strlen(country) != 2)
		return conf->limit_overseas_recipients_per_day;
	for (size_t i = 0; i < n; i++) {
		const char *item =
		    conf->limit_overseas_recipients_per_day_by_country[i];
		const char *colon = strchr(item, ':');

		if (colon == NULL)
			continue;
		for (const char *c = item; c + 2 <= colon; c += 3)
			if (c[0] == country[0] && c[1] == country[1])
				return atoi(colon + 1);
	}
	return conf->limit_overseas_recipients_per_day;
}

/* country: where the submission comes from (its cap from abroad), or
 * NULL for the default. */
static int
policy_limits_of(const struct config *conf, const struct account_policy *p,
    const char *country, struct policy_limits *l)
{
	l->msgs_day = policy_pick(p->limit_msgs_day,
	    conf->limit_messages_per_day);
	l->rcpts_day = policy_pick(p->limit_rcpts_day,
	    conf->limit_recipients_per_day);
	l->rcpts_hour = policy_pick(p->limit_rcpts_hour,
	    conf->limit_recipients_per_hour);
	l->rcpts_msg = policy_pick(p->limit_rcpts_msg,
	    conf->limit_recipients_per_message);
	l->overseas_rcpts_day = policy_pick(p->limit_overseas_rcpts_day,
	    policy_overseas_cap(conf, country));
	return 0;
}

int
policy_limits(const struct config *conf, struct store *st,
    const char *account, struct policy_limits *l, const char **error_r)
{
	struct account_policy p;
	int r;

	if ((r = store_policy_get(st, account, &p, error_r)) != 0)
		return r;
	return policy_limits_of(conf, &p, NULL, l);
}

/* 1 if address is the account's own address or one of its aliases. */
static int
policy_owns(struct store *st, const char *account, const char *address,
    const char **error_r)
{
	char *owner = NULL;
	int local = 0, r;

	r = store_resolve_recipient(st, address, &owner, &local, error_r);
	if (r < 0)
		return -1;
	r = r == 0 && strcasecmp(owner, account) == 0;
	free(owner);
	return r;
}

/*
 * The counters a submission touches, with their limits. Limits of 0 in
 * the config mean "no limit" (-1 for the store); a per-account 0 means
 * nothing may be sent, which the store sees as max 0.
 */
struct policy_counters {
	char			 day[24], hour[24], oday[24];
	struct store_counter	 c[3];
	const char		*what[3];	/* for the reply */
	char			 kind[3];
	int64_t			 limit[3];
	size_t			 n;
};

static int64_t
policy_max(int64_t limit, int explicit_zero)
{
	if (limit > 0)
		return limit;
	return explicit_zero ? 0 : -1;
}

static void
policy_counters(const struct config *conf, const struct account_policy *p,
    const struct policy_limits *l, int overseas, int64_t now,
    struct policy_counters *pc)
{
	memset(pc, 0, sizeof(*pc));
	policy_period('d', now, pc->day, sizeof(pc->day));
	policy_period('h', now, pc->hour, sizeof(pc->hour));
	policy_period('o', now, pc->oday, sizeof(pc->oday));
	(void)conf;

	pc->c[pc->n] = (struct store_counter){ pc->day,
	    policy_max(l->msgs_day, p->limit_msgs_day == 0),
	    policy_max(l->rcpts_day, p->limit_rcpts_day == 0) };
	pc->what[pc->n] = "Daily";
	pc->kind[pc->n] = 'd';
	pc->n++;
	pc->c[pc->n] = (struct store_counter){ pc->hour, -1,
	    policy_max(l->rcpts_hour, p->limit_rcpts_hour == 0) };
	pc->what[pc->n] = "Hourly";
	pc->kind[pc->n] = 'h';
	pc->n++;
	if (overseas) {
		pc->c[pc->n] = (struct store_counter){ pc->oday, -1,
		    policy_max(l->overseas_rcpts_day,
		    p->limit_overseas_rcpts_day == 0) };
		pc->what[pc->n] = "Daily overseas";
		pc->kind[pc->n] = 'o';
		pc->n++;
	}
}

/* "451 4.7.1 Daily recipient limit (1000) reached for this account;
 * it resets at 2026-11-24 00:00 JST" */
static void
policy_limit_reply(struct str *reply, const char *what, const char *unit,
    int64_t limit, char kind, int64_t now)
{
	char when[64];

	policy_format_time(policy_period_end(kind == 'h' ? 'h' : 'd', now),
	    when, sizeof(when));
	str_clear(reply);
	str_printf(reply, "451 4.7.1 %s %s limit (%lld) reached for this "
	    "account; it resets at %s", what, unit, (long long)limit, when);
}

static void
policy_limit_event(struct store *st, const char *account, const char *client,
    const char *country, const char *what, const char *unit,
    const char *period, int64_t limit)
{
	struct str key = STR_INIT, detail = STR_INIT;
	const char *error;

	/* One event per account, limit and period: the first refusal is
	 * the signal (early in the day, a sign of a hijacked account). */
	str_printf(&key, "limit:%s:%s:%s", account, period, unit);
	if (store_notice_once(st, str_c(&key), policy_now(), &error) == 0) {
		str_printf(&detail, "%s %s limit %lld reached", what, unit,
		    (long long)limit);
		policy_event(st, account, "limit_reached", client, country,
		    str_c(&detail));
	}
	str_deinit(&key);
	str_deinit(&detail);
}

/* Counter i of pc is used up (unit "message" or "recipient", max of
 * them): refuse for now, with its reply, event and metrics. */
static void
policy_limit_refuse(struct store *st, const char *account,
    const char *client, const struct policy_counters *pc, size_t i,
    const char *unit, int64_t max, int64_t now,
    struct policy_mail_result *r)
{
	r->verdict = POLICY_TEMPFAIL;
	policy_limit_reply(&r->reply, pc->what[i], unit, max, pc->kind[i],
	    now);
	policy_limit_event(st, account, client, r->country, pc->what[i],
	    unit, pc->c[i].period, max);
	metrics_refused(METRICS_REFUSE_LIMIT);
	metrics_country(r->country, 0);
}

/* ---- overseas permission by country (i17-country) ------------------ */

int
policy_countries_parse(const char *text, char *out, size_t len)
{
	size_t n = 0, count = 0;

	if (len == 0)
		return -1;
	out[0] = '\0';
	for (const char *c = text; *c != '\0';) {
		char a, b;

		if (*c == ',' || *c == ' ' || *c == '\t') {
			c++;
			continue;
		}
		a = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
		b = (char)(c[1] >= 'a' && c[1] <= 'z' ? c[1] - 'a' + 'A' :
		    c[1]);
		if (a < 'A' || a > 'Z' || b < 'A' || b > 'Z' ||
		    (c[2] != '\0' && c[2] != ',' && c[2] != ' ' &&
		    c[2] != '\t'))
			return -1;
		c += 2;
		/* each once */
		int dup = 0;

		for (size_t i = 0; i + 1 < n && !dup; i += 3)
			dup = out[i] == a && out[i + 1] == b;
		if (dup)
			continue;
		if (n + (n > 0) + 2 + 1 > len || ++count > 40)
			return -1;
		if (n > 0)
			out[n++] = ',';
		out[n++] = a;
		out[n++] = b;
		out[n] = '\0';
	}
	return 0;
}

int
policy_country_listed(const char *list, const char *country)
{
	if (country == NULL || strlen(country) != 2)
		return 0;
	for (const char *c = list; c[0] != '\0' && c[1] != '\0';
	    c += c[2] == ',' ? 3 : 2) {
		if (c[0] == country[0] && c[1] == country[1])
			return 1;
		if (c[2] != ',')
			break;
	}
	return 0;
}

int
policy_permission_covers(const struct account_policy *p,
    const struct geo_result *geo, int64_t now)
{
	if (p->overseas_until <= now)
		return 0;
	if (p->overseas_countries[0] == '\0')
		return 1;
	return geo->kind == GEO_COUNTRY &&
	    policy_country_listed(p->overseas_countries, geo->country) ? 1 : 2;
}

int
policy_overseas_restricts(const struct config *conf, const char *proto)
{
	size_t plen = strlen(proto);

	for (size_t i = 0; i < conf->overseas_restrict_count; i++) {
		const char *w = conf->overseas_restrict[i];

		while (*w != '\0') {
			size_t n = strcspn(w, " \t,");

			if (n == plen && strncmp(w, proto, n) == 0)
				return 1;
			w += n;
			w += strspn(w, " \t,");
		}
	}
	return 0;
}

/* 1: the client counts as at home for the overseas rule (home country,
 * unknown allowed, trusted network). No reverse DNS (trusted relays
 * send mail, they do not log in). */
static int
policy_login_home(const struct config *conf, const struct sockaddr *sa,
    const struct geo_result *geo)
{
	if (geo_is_home(conf, geo))
		return 1;
	if (geo->kind == GEO_UNKNOWN && conf->geo_unknown == GEO_UNKNOWN_ALLOW)
		return 1;
	return sa != NULL && cidr_match(conf->trusted_networks,
	    conf->trusted_networks_count, sa);
}

int
policy_login_overseas(const struct config *conf, struct store *st,
    const char *account, const char *client, const struct sockaddr *sa,
    const struct geo_result *geo, const char *proto, char country_r[16],
    struct str *reply)
{
	struct account_policy p;
	const char *error;
	char url[512], detail[64];
	int covers;

	if (geo->kind == GEO_COUNTRY)
		snprintf(country_r, 16, "%s", geo->country);
	else
		snprintf(country_r, 16, "%s", geo_kind_name(geo->kind));
	if (!policy_overseas_restricts(conf, proto) ||
	    policy_login_home(conf, sa, geo))
		return 0;
	if (store_policy_get(st, account, &p, &error) != 0) {
		log_warnx("policy: %s: %s", account, error);
		return -1;
	}
	if ((covers = policy_permission_covers(&p, geo, policy_now())) == 1)
		return 0;
	policy_portal_url(conf, url, sizeof(url));
	str_clear(reply);
	str_printf(reply, "Login over %s from abroad (%s) is %s for this "
	    "account; if this is you, turn on overseas use%s%s at %s",
	    proto, country_r, covers == 0 ? "turned off" :
	    "not in the countries allowed", covers == 0 ? "" : " for ",
	    covers == 0 ? "" : country_r, url);
	snprintf(detail, sizeof(detail), "%s login", proto);
	policy_event(st, account, "overseas_refused", client, country_r,
	    detail);
	metrics_refused(METRICS_REFUSE_OVERSEAS);
	return 1;
}

int
policy_mail(const struct config *conf, struct store *st, const char *account,
    const char *sender, const char *client, const struct sockaddr *client_sa,
    const struct geo_result *geo, struct policy_mail_result *r)
{
	struct account_policy p;
	struct policy_limits l;
	struct account a;
	const char *error;
	char url[512];
	int64_t now = policy_now();
	int ret;

	r->verdict = POLICY_TEMPFAIL;
	str_clear(&r->reply);
	str_append(&r->reply, "451 4.3.0 Temporary failure checking the "
	    "sending policy, try again later");
	if (geo->kind == GEO_COUNTRY)
		snprintf(r->country, sizeof(r->country), "%s", geo->country);
	else
		snprintf(r->country, sizeof(r->country), "%s",
		    geo_kind_name(geo->kind));

	memset(&a, 0, sizeof(a));
	if ((ret = store_account_get(st, account, &a, &error)) != 0 ||
	    (ret = store_policy_get(st, account, &p, &error)) != 0) {
		if (ret == 0)
			account_deinit(&a);
		log_warnx("policy: %s: %s", account, error);
		return -1;
	}
	int suspended = a.suspended;

	account_deinit(&a);
	if (suspended) {
		metrics_refused(METRICS_REFUSE_SUSPENDED);
		metrics_country(r->country, 0);
		r->verdict = POLICY_REJECT;
		str_clear(&r->reply);
		str_append(&r->reply, "550 5.7.1 This account is suspended; "
		    "please contact your provider's support");
		return 0;
	}

	/* The overseas rule (PRODUCT.md): home, trusted network, or an
	 * active permission. */
	int home = geo_is_home(conf, geo);

	if (!home && geo->kind == GEO_UNKNOWN &&
	    conf->geo_unknown == GEO_UNKNOWN_ALLOW)
		home = 1;
	if (!home && client_sa != NULL && cidr_match(conf->trusted_networks,
	    conf->trusted_networks_count, client_sa))
		home = 1;
	const char *suffixes[64];
	size_t nsuffixes = 0;
	char mine[sizeof(p.relay_names)], *save = NULL;

	for (size_t i = 0; i < conf->trusted_relay_names_count && nsuffixes <
	    64; i++)
		suffixes[nsuffixes++] = conf->trusted_relay_names[i];
	xstrlcpy(mine, p.relay_names, sizeof(mine));
	for (char *t = strtok_r(mine, ", ", &save); t != NULL && nsuffixes <
	    64; t = strtok_r(NULL, ", ", &save))
		suffixes[nsuffixes++] = t;
	if (!home && client_sa != NULL && nsuffixes > 0) {
		char name[256];
		int m = fcrdns_match(conf, client_sa, suffixes, nsuffixes, name,
		    sizeof(name));

		if (m == 1) {
			/* A foreign service sending in the subscriber's
			 * name, by its confirmed name (docs/policy.md). */
			log_info("policy account=%s client=%s country=%s "
			    "trusted relay=%s", account, client, r->country,
			    name);
			home = 1;
		} else if (m < 0)
			log_warnx("policy account=%s client=%s: reverse DNS "
			    "failed; not a trusted relay", account, client);
	}
	if (!home) {
		int covers = policy_permission_covers(&p, geo, now);

		if (covers == 1)
			r->overseas = 1;
		else {
			policy_portal_url(conf, url, sizeof(url));
			r->verdict = POLICY_REJECT;
			r->notify = 1;
			str_clear(&r->reply);
			if (covers == 0)
				str_printf(&r->reply, "550 5.7.1 Sending from "
				    "abroad is turned off for this account "
				    "(seen from %s, %s). If this is you, turn "
				    "on overseas sending at %s (it lasts %d "
				    "days)", geo->kind == GEO_COUNTRY ?
				    geo->country : "an unknown country",
				    client, url,
				    conf->overseas_permission_days);
			else
				str_printf(&r->reply, "550 5.7.1 Sending from "
				    "abroad is turned on for this account only "
				    "from %s, not from %s (%s). If this is you, "
				    "add %s at %s", p.overseas_countries,
				    geo->kind == GEO_COUNTRY ? geo->country :
				    "an unknown country", client,
				    geo->kind == GEO_COUNTRY ? geo->country :
				    "the country", url);
			policy_event(st, account, "overseas_refused", client,
			    r->country, covers == 0 ? NULL :
			    "country not in the permission");
			metrics_refused(METRICS_REFUSE_OVERSEAS);
			metrics_country(r->country, 0);
			return 0;
		}
	}

	/* Sender alignment (the envelope part; header From at commit). */
	if (conf->sender_alignment && !p.any_sender) {
		int own = *sender == '\0' ? 0 :
		    policy_owns(st, account, sender, &error);

		if (own < 0) {
			log_warnx("policy: %s: %s", account, error);
			return -1;
		}
		if (!own) {
			r->verdict = POLICY_REJECT;
			str_clear(&r->reply);
			str_printf(&r->reply, "553 5.7.1 Sender address <%s> "
			    "is not yours: send as %s or one of its aliases",
			    sender, account);
			policy_event(st, account, "sender_refused", client,
			    r->country, sender);
			metrics_refused(METRICS_REFUSE_ALIGNMENT);
			metrics_country(r->country, 0);
			return 0;
		}
	}

	/* Limits: refuse MAIL when one is used up already; otherwise tell
	 * the session how many recipients are left, so RCPT can refuse
	 * early. The count itself is taken at commit. */
	struct policy_counters pc;

	policy_limits_of(conf, &p, r->country, &l);
	policy_counters(conf, &p, &l, r->overseas, now, &pc);
	r->rcpts_msg = l.rcpts_msg > 0 ? l.rcpts_msg :
	    p.limit_rcpts_msg == 0 ? 0 : -1;
	for (size_t i = 0; i < pc.n; i++) {
		int64_t msgs, rcpts, left;

		if (store_count_get(st, account, pc.c[i].period, &msgs,
		    &rcpts, &error) < 0) {
			log_warnx("policy: %s: %s", account, error);
			return -1;
		}
		if (pc.c[i].max_msgs >= 0 &&
		    msgs - (r->msg_counted ? 1 : 0) >= pc.c[i].max_msgs) {
			policy_limit_refuse(st, account, client, &pc, i,
			    "message", pc.c[i].max_msgs, now, r);
			return 0;
		}
		if (pc.c[i].max_rcpts < 0 || r->rcpts_counted)
			continue;
		left = pc.c[i].max_rcpts - rcpts;
		if (left <= 0) {
			policy_limit_refuse(st, account, client, &pc, i,
			    "recipient", pc.c[i].max_rcpts, now, r);
			return 0;
		}
		if (r->rcpts_left < 0 || left < r->rcpts_left) {
			r->rcpts_left = left;
			policy_limit_reply(&r->rcpt_reply, pc.what[i],
			    "recipient", pc.c[i].max_rcpts, pc.kind[i], now);
		}
	}
	r->verdict = POLICY_OK;
	str_clear(&r->reply);
	metrics_country(r->country, 1);
	return 0;
}

/* policy_commit()'s and policy_count()'s counting, p read already. */
static enum policy_verdict
policy_count_with(const struct config *conf, struct store *st,
    const struct account_policy *p, const char *account, const char *client,
    const char *country, int overseas, int64_t msgs, int64_t rcpts,
    struct str *reply)
{
	struct policy_limits l;
	struct policy_counters pc;
	const char *error;
	size_t over = 0;
	int r;

	policy_limits_of(conf, p, country, &l);
	int64_t now = policy_now();

	policy_counters(conf, p, &l, overseas, now, &pc);
	r = store_count_add(st, account, pc.c, pc.n, msgs, rcpts, &over,
	    &error);
	if (r < 0) {
		log_warnx("policy: count %s: %s", account, error);
		str_append(reply, "451 4.3.0 Temporary failure counting the "
		    "message, try again later");
		return POLICY_TEMPFAIL;
	}
	if (r == 1) {
		int is_msgs = pc.c[over].max_msgs >= 0;
		struct store_counter *c = &pc.c[over];
		int64_t got_m = 0, got_r = 0;

		/* Which of the two limits of the counter was passed. */
		(void)store_count_get(st, account, c->period, &got_m, &got_r,
		    &error);
		if (is_msgs && got_m + msgs <= c->max_msgs)
			is_msgs = 0;
		policy_limit_reply(reply, pc.what[over], is_msgs ? "message"
		    : "recipient", is_msgs ? c->max_msgs : c->max_rcpts,
		    pc.kind[over], now);
		policy_limit_event(st, account, client, country, pc.what[over],
		    is_msgs ? "message" : "recipient", c->period, is_msgs ?
		    c->max_msgs : c->max_rcpts);
		metrics_refused(METRICS_REFUSE_LIMIT);
		return POLICY_TEMPFAIL;
	}
	return POLICY_OK;
}

/* reply cleared and account's policy into p; -1 with the temporary
 * failure in reply when the store cannot say. */
static int
policy_get_or_reply(struct store *st, const char *account,
    struct account_policy *p, struct str *reply)
{
	const char *error;

	str_clear(reply);
	if (store_policy_get(st, account, p, &error) != 0) {
		log_warnx("policy: %s: %s", account, error);
		str_append(reply, "451 4.3.0 Temporary failure checking the "
		    "sending policy, try again later");
		return -1;
	}
	return 0;
}

enum policy_verdict
policy_commit(const struct config *conf, struct store *st,
    const char *account, const char *client, const char *country,
    int overseas, int64_t rcpts, int check_from, const char *const *from,
    size_t nfrom, struct str *reply)
{
	struct account_policy p;
	const char *error;

	if (policy_get_or_reply(st, account, &p, reply) < 0)
		return POLICY_TEMPFAIL;
	if (check_from && conf->sender_alignment && !p.any_sender) {
		if (nfrom == 0) {
			metrics_refused(METRICS_REFUSE_ALIGNMENT);
			str_printf(reply, "550 5.7.1 The message has no From "
			    "header; it must show your address (%s)", account);
			return POLICY_REJECT;
		}
		for (size_t i = 0; i < nfrom; i++) {
			int own = policy_owns(st, account, from[i], &error);

			if (own < 0) {
				str_append(reply, "451 4.3.0 Temporary failure "
				    "checking the sending policy");
				return POLICY_TEMPFAIL;
			}
			if (!own) {
				str_printf(reply, "550 5.7.1 Header From <%s> "
				    "is not yours: send as %s or one of its "
				    "aliases", from[i], account);
				policy_event(st, account, "sender_refused",
				    client, country, from[i]);
				metrics_refused(METRICS_REFUSE_ALIGNMENT);
				return POLICY_REJECT;
			}
		}
	}
	return policy_count_with(conf, st, &p, account, client, country,
	    overseas, 1, rcpts, reply);
}

enum policy_verdict
policy_count(const struct config *conf, struct store *st,
    const char *account, const char *client, const char *country,
    int overseas, int64_t msgs, int64_t rcpts, struct str *reply)
{
	struct account_policy p;

	if (policy_get_or_reply(st, account, &p, reply) < 0)
		return POLICY_TEMPFAIL;
	return policy_count_with(conf, st, &p, account, client, country,
	    overseas, msgs, rcpts, reply);
}

void
policy_uncount(const struct config *conf, struct store *st,
    const char *account, int overseas, int64_t rcpts)
{
	struct account_policy p;
	struct policy_limits l;
	struct policy_counters pc;
	const char *error;
	size_t over;

	if (store_policy_get(st, account, &p, &error) != 0)
		return;
	policy_limits_of(conf, &p, NULL, &l);
	policy_counters(conf, &p, &l, overseas, policy_now(), &pc);
	if (store_count_add(st, account, pc.c, pc.n, -1, -rcpts, &over,
	    &error) < 0)
		log_warnx("policy: uncount %s: %s", account, error);
}

/* ---- authentication throttling ------------------------------------- */


const char *
policy_client_key(const struct config *conf, const char *client, char *buf,
    size_t len)
{
	return cidr_client_text(client != NULL ? client : "-",
	    conf->ipv6_client_prefix, buf, len);
}

static void
policy_key(struct str *key, const char *kind, const char *value)
{
	str_clear(key);
	str_printf(key, "%s:%s", kind, value);
}

/* Since when a success makes an address trusted; 0: the feature is off. */
static int64_t
policy_trusted_since(const struct config *conf, int64_t now)
{
	if (conf->auth_trusted_address_days <= 0)
		return 0;
	return now - (int64_t)conf->auth_trusted_address_days * 86400;
}

/* 1 when the name logged in from this client key lately (its lock does
 * not refuse it there), 0 when not or unknown (the lock holds). */
static int
policy_auth_trusted(const struct config *conf, struct store *st,
    const char *name, const char *ckey, int64_t now)
{
	int64_t since = policy_trusted_since(conf, now);
	const char *error;
	int r;

	if (since == 0)
		return 0;
	r = store_trusted_get(st, name, ckey, since, &error);
	if (r < 0)
		log_warnx("policy: trusted address look-up: %s", error);
	return r == 0;
}

int
policy_auth_check(const struct config *conf, struct store *st,
    const char *account, const char *client, int64_t *until_r)
{
	struct str key = STR_INIT;
	int64_t now = policy_now(), failures, locked;
	const char *error = NULL;
	char ckey[INET6_ADDRSTRLEN + 8];
	int ret = 0;

	*until_r = 0;
	if (account != NULL && !str_login_name_ok(account)) {
		/* Only a session process that skipped its own check sends
		 * this (issue 13): refused, the password never looked at,
		 * nothing counted under the name. */
		char e_name[128], e_client[128];

		log_warnx("policy auth refused client=%s name=%s: control "
		    "character in a login name", log_escape(e_client,
		    sizeof(e_client), client), log_escape(e_name,
		    sizeof(e_name), account));
		return 1;
	}
	policy_client_key(conf, client, ckey, sizeof(ckey));
	policy_key(&key, "ip", ckey);
	if (store_throttle_get(st, str_c(&key), now, conf->auth_fail_window,
	    &failures, &locked, &error) < 0)
		ret = -1;
	else if (locked > now)
		*until_r = locked;
	if (account != NULL && *account != '\0') {
		policy_key(&key, "acct", account);
		if (store_throttle_get(st, str_c(&key), now,
		    conf->auth_fail_window, &failures, &locked, &error) < 0)
			ret = -1;
		else if (locked > now && locked > *until_r) {
			/* A stranger's failures lock the account, but not
			 * against its owner where the owner logs in. */
			char e_name[128], e_key[128];

			if (policy_auth_trusted(conf, st, account, ckey, now))
				log_info("policy auth account=%s client=%s: "
				    "account locked, not here: it logged in "
				    "from this client lately", log_escape(e_name,
				    sizeof(e_name), account), log_escape(e_key,
				    sizeof(e_key), ckey));
			else
				*until_r = locked;
		}
	}
	str_deinit(&key);
	if (ret < 0)
		log_warnx("policy: throttle look-up: %s", error);
	return *until_r > 0 ? 1 : ret;
}

int64_t
policy_auth_fail(const struct config *conf, struct store *st,
    const char *account, const char *client, const char *service)
{
	struct str key = STR_INIT, detail = STR_INIT;
	int64_t now = policy_now(), f_ip = 0, f_acct = 0, locked = 0, delay;
	const char *error;
	char ckey[INET6_ADDRSTRLEN + 8];

	if (account != NULL && !str_login_name_ok(account))
		account = NULL;	/* counted against the address only */
	policy_client_key(conf, client, ckey, sizeof(ckey));
	policy_key(&key, "ip", ckey);
	if (store_throttle_fail(st, str_c(&key), now, conf->auth_fail_window,
	    conf->auth_max_failures_per_ip, conf->auth_lock_time, &f_ip,
	    &locked, &error) < 0)
		log_warnx("policy: throttle: %s", error);
	else if (locked == now + conf->auth_lock_time &&
	    f_ip == conf->auth_max_failures_per_ip) {
		str_printf(&detail, "%s: %lld failed logins from this address",
		    service, (long long)f_ip);
		policy_event(st, account, "auth_locked_ip", ckey, NULL,
		    str_c(&detail));
	}
	if (account != NULL && *account != '\0') {
		policy_key(&key, "acct", account);
		if (store_throttle_fail(st, str_c(&key), now,
		    conf->auth_fail_window, conf->auth_max_failures_per_account,
		    conf->auth_lock_time, &f_acct, &locked, &error) < 0)
			log_warnx("policy: throttle: %s", error);
		else if (locked == now + conf->auth_lock_time &&
		    f_acct == conf->auth_max_failures_per_account) {
			str_clear(&detail);
			str_printf(&detail, "%s: %lld failed logins to this "
			    "account", service, (long long)f_acct);
			policy_event(st, account, "auth_locked_account",
			    client, NULL, str_c(&detail));
		}
	}
	str_deinit(&key);
	str_deinit(&detail);

	/* Growing delay: base, 2 x base, 4 x base ... up to the maximum. */
	int64_t n = f_ip > f_acct ? f_ip : f_acct;

	delay = (int64_t)conf->auth_fail_delay * 1000;
	for (int64_t i = 1; i < n && delay < (int64_t)conf->auth_fail_delay_max
	    * 1000; i++)
		delay *= 2;
	if (delay > (int64_t)conf->auth_fail_delay_max * 1000)
		delay = (int64_t)conf->auth_fail_delay_max * 1000;
	return delay;
}

void
policy_auth_ok(const struct config *conf, struct store *st,
    const char *account, const char *client)
{
	struct str key = STR_INIT;
	const char *error;
	int64_t now = policy_now(), since = policy_trusted_since(conf, now);
	char ckey[INET6_ADDRSTRLEN + 8];

	policy_key(&key, "acct", account);
	if (store_throttle_clear(st, str_c(&key), &error) < 0)
		log_warnx("policy: throttle clear: %s", error);
	str_deinit(&key);
	if (since == 0 || client == NULL)
		return;
	policy_client_key(conf, client, ckey, sizeof(ckey));
	if (store_trusted_seen(st, account, ckey, now, since,
	    POLICY_TRUSTED_MAX, &error) < 0)
		log_warnx("policy: trusted address: %s", error);
}
