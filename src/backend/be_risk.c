/*
 * be_risk: signals, score and automatic response (be_risk.h, issue 17;
 * docs/policy.md "Risk score"). Signals are events in the events table,
 * so `sekisho events`, the pages and the desk see them where they see the
 * refusals and locks that count too; the score is computed from them
 * when asked (nothing to keep in step), from the time the desk last
 * cleared the account.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../core/base64.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../geo/geo.h"
#include "../policy/policy.h"
#include "../policy/risk.h"
#include "../policy/trace.h"
#include "../queue/envelope.h"
#include "../queue/queue.h"
#include "../queue/spool.h"
#include "../store/store.h"
#include "backend.h"
#include "be_risk.h"

#define BE_RISK_EVENTS_MAX	2000	/* events looked at per score */
#define BE_RISK_NOTICE_SIGNALS	5	/* signals named in a notice */
#define BE_RISK_WARN_TRACES	10	/* submissions named in a warning */

/* --- the score ------------------------------------------------------ */

struct be_risk_score_ctx {
	const struct config	*conf;
	int64_t			 now, cleared;
	struct be_risk_score	*s;
	be_risk_signal_cb	*cb;
	void			*ctx;
};

static int
be_risk_score_event(const struct store_event *e, void *arg)
{
	struct be_risk_score_ctx *c = arg;
	struct be_risk_signal sig;

	/* cleared at T forgives what was seen up to T (times are seconds:
	 * one recorded in that second after the clear is forgiven too) */
	if ((c->cleared > 0 && e->time <= c->cleared) ||
	    risk_weight(c->conf, e->type, e->time) == 0)
		return 0;
	sig.time = e->time;
	sig.type = e->type;
	sig.ip = e->ip;
	sig.country = e->country;
	sig.detail = e->detail;
	sig.early = strcmp(e->type, "limit_reached") == 0 &&
	    risk_limit_early(c->conf, e->time);
	sig.points = risk_points(c->conf, e->type, e->time, c->now);
	c->s->score += sig.points;
	c->s->signals++;
	if (c->cb != NULL)
		c->cb(&sig, c->ctx);
	return 0;
}

int
be_risk_score(const struct config *conf, struct store *st,
    const char *account, int64_t now, struct be_risk_score *s,
    be_risk_signal_cb *cb, void *ctx, const char **error_r)
{
	struct be_risk_score_ctx c;
	int64_t since = now - risk_horizon(conf);

	memset(s, 0, sizeof(*s));
	c.conf = conf;
	c.now = now;
	c.cleared = 0;
	c.s = s;
	c.cb = cb;
	c.ctx = ctx;
	if (store_risk_get(st, account, &s->state, error_r) < 0)
		return -1;
	c.cleared = s->state.cleared;
	if (since < c.cleared)
		since = c.cleared;
	if (store_event_list(st, account, since, BE_RISK_EVENTS_MAX,
	    be_risk_score_event, &c, error_r) < 0)
		return -1;
	s->level = risk_level(conf, s->score);
	return 0;
}

/* --- notices into the mailbox ---------------------------------------- */

static void
be_risk_encoded_word(struct str *out, const char *utf8)
{
	str_append(out, "=?UTF-8?B?");
	base64_encode(utf8, strlen(utf8), out);
	str_append(out, "?=");
}

/*
 * Queue a notice to account: Japanese and English text/plain UTF-8,
 * from notice_from with the null sender (it can never bounce), delivered
 * locally (be_risk.h). kind is for the log line, and log_extra (NULL:
 * none) ends it.
 */
int
be_notice_mail(const struct config *conf, struct queue *q,
    const char *account, const char *kind, const char *subject_ja,
    const char *subject_en, const char *body, const char *log_extra,
    const char **error_r)
{
	struct envelope env;
	struct str msg = STR_INIT, from = STR_INIT;
	char date[64];
	int64_t now = policy_now();
	time_t tt = (time_t)now;
	struct tm tm;
	int fd = -1, ret = -1;

	localtime_r(&tt, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (conf->notice_from != NULL && *conf->notice_from != '\0')
		str_append(&from, conf->notice_from);
	else
		str_printf(&from, "postmaster@%s", conf->hostname);

	envelope_init(&env);
	queue_id_new(env.id);
	env.time = now;
	env.sender = xstrdup("");
	env.client = xstrdup("127.0.0.1");
	env.helo = xstrdup(conf->hostname);
	env.protocol = xstrdup("LOCAL");
	envelope_add_rcpt(&env, account, account);

	str_printf(&msg, "Received: by %s (sekisho) with LOCAL id %s;\r\n"
	    "\t%s\r\n", conf->hostname, env.id, date);
	str_printf(&msg, "From: %s\r\nTo: <%s>\r\nDate: %s\r\n",
	    str_c(&from), account, date);
	str_append(&msg, "Subject: ");
	be_risk_encoded_word(&msg, subject_ja);
	str_append(&msg, "\r\n ");
	be_risk_encoded_word(&msg, subject_en);
	str_printf(&msg, "\r\nMessage-ID: <%s.%s@%s>\r\n"
	    "Auto-Submitted: auto-generated\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n", env.id, kind,
	    conf->hostname);
	str_append(&msg, body);

	if (spool_create(conf->spool_dir, &env, NULL, &fd, error_r) < 0)
		goto out;
	if (spool_write_full(fd, msg.s, msg.len) < 0 ||
	    spool_commit(conf->spool_dir, env.id, error_r) < 0) {
		if (fd != -1)
			*error_r = "cannot write or commit the notice";
		spool_abort(conf->spool_dir, env.id);
		goto out;
	}
	log_info("id=%s notice type=%s to=%s%s%s", env.id, kind, account,
	    log_extra != NULL ? " " : "", log_extra != NULL ? log_extra : "");
	if (q != NULL)
		queue_notify(q, env.id);
	else {
		char *ctl = xasprintf("flush %s", env.id);
		const char *why;

		/* the CLI: the daemon delivers it now, or when it starts */
		if (queue_control_send(conf->spool_dir, ctl, &why) < 0)
			log_warnx("id=%s notice: %s", env.id, why);
		free(ctl);
	}
	ret = 0;
out:
	if (fd != -1)
		close(fd);
	envelope_deinit(&env);
	str_deinit(&msg);
	str_deinit(&from);
	return ret;
}

struct be_risk_notice_ctx {
	const struct config	*conf;
	struct be_risk_signal	 sig[BE_RISK_NOTICE_SIGNALS];
	char			*strs[BE_RISK_NOTICE_SIGNALS][3];
	size_t			 n;
};

/* Keep the newest few signals (they come oldest first). */
static void
be_risk_notice_signal(const struct be_risk_signal *s, void *arg)
{
	struct be_risk_notice_ctx *c = arg;
	size_t i;

	if (c->n == BE_RISK_NOTICE_SIGNALS) {
		for (i = 0; i < 3; i++)
			free(c->strs[0][i]);
		memmove(&c->sig[0], &c->sig[1], sizeof(c->sig[0]) * (c->n - 1));
		memmove(&c->strs[0], &c->strs[1],
		    sizeof(c->strs[0]) * (c->n - 1));
		c->n--;
	}
	c->sig[c->n] = *s;
	c->strs[c->n][0] = xstrdup(s->type);
	c->strs[c->n][1] = xstrdup(s->ip != NULL && *s->ip != '\0' ?
	    s->ip : "-");
	c->strs[c->n][2] = xstrdup(s->country != NULL && *s->country != '\0' ?
	    s->country : "-");
	c->sig[c->n].type = c->strs[c->n][0];
	c->sig[c->n].ip = c->strs[c->n][1];
	c->sig[c->n].country = c->strs[c->n][2];
	c->sig[c->n].detail = NULL;
	c->n++;
}

static void
be_risk_notice_free(struct be_risk_notice_ctx *c)
{
	for (size_t i = 0; i < c->n; i++)
		for (size_t j = 0; j < 3; j++)
			free(c->strs[i][j]);
	c->n = 0;
}

/* The notice of an automatic step: what was seen, when, from where,
 * what is done now and what to do. */
static void
be_risk_notice(const struct config *conf, struct store *st, struct queue *q,
    const char *account, int level)
{
	struct be_risk_notice_ctx c = { .conf = conf, .n = 0 };
	struct be_risk_score s;
	struct str body = STR_INIT, seen_ja = STR_INIT, seen_en = STR_INIT;
	const char *error, *done_ja, *done_en;
	char url[512], when[64];
	size_t i;

	if (be_risk_score(conf, st, account, policy_now(), &s,
	    be_risk_notice_signal, &c, &error) < 0)
		log_warnx("risk: %s: %s", account, error);
	policy_portal_url(conf, url, sizeof(url));
	for (i = c.n; i-- > 0;) {
		const struct be_risk_signal *g = &c.sig[i];

		policy_format_time(g->time, when, sizeof(when));
		str_printf(&seen_ja, "  - %s\r\n    日時: %s  IPアドレス: %s  "
		    "国: %s\r\n", risk_signal_label_ja(g->type, g->early), when,
		    g->ip, g->country);
		str_printf(&seen_en, "  - %s\r\n    When: %s  IP address: %s  "
		    "Country: %s\r\n", risk_signal_label(g->type, g->early),
		    when, g->ip, g->country);
	}
	switch (level) {
	case STORE_RISK_HOLD:
		done_ja = "安全のため、お客様のアカウントから送信されたメールは"
		    "受け付けた後、配送せずに保留しています。確認が取れるまで"
		    "相手には届きません。";
		done_en = "To be safe, mail sent from your account is accepted "
		    "but held, not delivered, until this is cleared up.";
		break;
	case STORE_RISK_SUSPEND:
		done_ja = "安全のため、お客様のアカウントの利用を自動的に停止"
		    "しました。";
		done_en = "To be safe, your account was suspended "
		    "automatically.";
		break;
	default:
		done_ja = "現時点で送信の制限はありません。";
		done_en = "Nothing is restricted for now.";
		break;
	}
	str_printf(&body,
	    "%s 様\r\n\r\n"
	    "お客様のアカウントで、第三者による不正利用のおそれがある動きを"
	    "検知しました（自動判定）。\r\n\r\n"
	    "%s\r\n"
	    "%s\r\n\r\n"
	    "お心当たりがない場合は、パスワードが第三者に知られているおそれが"
	    "あります。ウイルス対策ソフトでパソコン等を検査し、OSとソフトウェア"
	    "を最新の状態にしたうえで、メールオプション設定ページですぐに"
	    "パスワードを変更してください。\r\n"
	    "  %s\r\n\r\n"
	    "----\r\n\r\n"
	    "We have seen activity on your account (%s) that suggests someone "
	    "else may be using it (detected automatically).\r\n\r\n"
	    "%s\r\n"
	    "%s\r\n\r\n"
	    "If this was not you, someone else may know your password: scan "
	    "your computer for viruses, bring its system and software up to "
	    "date, then change your password on the settings page at once:\r\n"
	    "  %s\r\n",
	    account, str_c(&seen_ja), done_ja, url, account, str_c(&seen_en),
	    done_en, url);
	{
		const char *sj = level == STORE_RISK_HOLD ?
		    "【重要】不正利用のおそれ: 送信メールを保留しています" :
		    level == STORE_RISK_SUSPEND ?
		    "【重要】不正利用のおそれ: アカウントを停止しました" :
		    "【重要】アカウントの不正利用のおそれがあります";
		const char *se = level == STORE_RISK_HOLD ?
		    " / Your account may be misused: outgoing mail is held" :
		    level == STORE_RISK_SUSPEND ?
		    " / Your account may be misused: it was suspended" :
		    " / Your account may be misused";

		if (be_notice_mail(conf, q, account, level == STORE_RISK_HOLD ?
		    "risk_hold" : level == STORE_RISK_SUSPEND ? "risk_suspend" :
		    "risk_notify", sj, se, str_c(&body), NULL, &error) < 0)
			log_warnx("risk: notice to %s not queued: %s", account,
			    error);
	}
	be_risk_notice_free(&c);
	str_deinit(&body);
	str_deinit(&seen_ja);
	str_deinit(&seen_en);
}

/* --- the automatic response ------------------------------------------ */

static const char *
be_risk_level_event(int level)
{
	return level == STORE_RISK_SUSPEND ? RISK_EV_SUSPEND :
	    level == STORE_RISK_HOLD ? RISK_EV_HOLD : RISK_EV_NOTIFY;
}

int
be_risk_update(const struct config *conf, struct store *st, struct queue *q,
    const char *account)
{
	struct be_risk_score s;
	struct account a;
	const char *error;
	char reason[STORE_EVENT_DETAIL_MAX + 1];
	int r, level;

	if (account == NULL)
		return STORE_RISK_NONE;
	memset(&a, 0, sizeof(a));
	if ((r = store_account_get(st, account, &a, &error)) != 0) {
		if (r < 0)
			log_warnx("risk: %s: %s", account, error);
		return STORE_RISK_NONE;	/* a name that is no account */
	}
	if (be_risk_score(conf, st, a.address, policy_now(), &s, NULL, NULL,
	    &error) < 0) {
		log_warnx("risk: %s: %s", a.address, error);
		account_deinit(&a);
		return STORE_RISK_NONE;
	}
	level = s.state.level;
	if (s.state.exempt || s.level <= s.state.level) {
		account_deinit(&a);
		return level;
	}
	snprintf(reason, sizeof(reason), "automatic: risk score %.0f "
	    "(%s at %d) from %zu signal(s)", s.score,
	    risk_level_name(s.level), s.level == STORE_RISK_SUSPEND ?
	    conf->risk_suspend : s.level == STORE_RISK_HOLD ? conf->risk_hold :
	    conf->risk_notify, s.signals);
	r = store_risk_raise(st, a.address, s.level, 1, policy_now(), reason,
	    &error);
	if (r < 0) {
		log_warnx("risk: %s: %s", a.address, error);
		account_deinit(&a);
		return level;
	}
	if (r == 1) {		/* another node (or process) was first */
		struct store_risk now;

		if (store_risk_get(st, a.address, &now, &error) == 0)
			level = now.level;
		account_deinit(&a);
		return level;
	}
	log_info("risk account=%s score=%.1f level=%s->%s automatic=1",
	    a.address, s.score, risk_level_name(s.state.level),
	    risk_level_name(s.level));
	{
		char detail[STORE_EVENT_DETAIL_MAX + 16];

		/* stored cut to STORE_EVENT_DETAIL_MAX */
		snprintf(detail, sizeof(detail), "by auto: %s", reason);
		policy_event(st, a.address, be_risk_level_event(s.level), NULL,
		    NULL, detail);
	}
	if (s.level == STORE_RISK_SUSPEND && !a.suspended &&
	    store_account_set_suspended(st, a.address, 1, reason,
	    &error) != 0)
		log_warnx("risk: %s: cannot suspend: %s", a.address, error);
	be_risk_notice(conf, st, q, a.address, s.level);
	account_deinit(&a);
	return s.level;
}

/* --- signals --------------------------------------------------------- */

static void
be_risk_country(struct be_worker *w, const char *client, char *buf,
    size_t len)
{
	struct geo_result geo;

	(void)be_geo_lookup(w, client, NULL, &geo);
	if (geo.kind == GEO_COUNTRY)
		snprintf(buf, len, "%s", geo.country);
	else
		snprintf(buf, len, "%s", geo_kind_name(geo.kind));
}

void
be_risk_login(struct be_worker *w, struct store *st, const char *account,
    const char *client, const char *service)
{
	const struct config *conf = w->conf;
	const char *error;
	char country[16], detail[128];
	int64_t now = policy_now(), last, known;

	if (st == NULL || account == NULL || client == NULL)
		return;
	be_risk_country(w, client, country, sizeof(country));
	if (store_risk_login(st, account, country, now, &last, &known,
	    &error) < 0) {
		log_warnx("risk: %s: login country: %s", account, error);
		return;
	}
	/* the first login of all is no news; loopback and private
	 * networks are the provider's own */
	if (known == 0 || strcmp(country, "internal") == 0 ||
	    (last != 0 && last >= now -
	    (int64_t)conf->risk_login_country_days * 86400))
		return;
	snprintf(detail, sizeof(detail), "%s login from %s, not seen in %d "
	    "days", service != NULL ? service : "-", country,
	    conf->risk_login_country_days);
	policy_event(st, account, RISK_EV_LOGIN_NEW_COUNTRY, client, country,
	    detail);
	(void)be_risk_update(conf, st, be_worker_queue(w), account);
}

void
be_risk_auth_fail(struct be_worker *w, struct store *st, const char *name,
    const char *client)
{
	const struct config *conf = w->conf;
	const char *error;
	char ckey[128], day[24], country[16];
	int64_t now = policy_now(), accounts;

	if (st == NULL || name == NULL || client == NULL)
		return;
	policy_client_key(conf, client, ckey, sizeof(ckey));
	if (store_risk_spray(st, ckey, name, now,
	    now - conf->auth_fail_window, &accounts, &error) < 0) {
		log_warnx("risk: spraying count: %s", error);
		return;
	}
	if (accounts >= conf->risk_spray_accounts) {
		struct str key = STR_INIT, detail = STR_INIT;

		policy_period('d', now, day, sizeof(day));
		str_printf(&key, "spray:%s:%.200s:%s", ckey, name, day + 2);
		if (store_notice_once(st, str_c(&key), now, &error) == 0) {
			be_risk_country(w, client, country, sizeof(country));
			str_printf(&detail, "address failed against %lld "
			    "accounts", (long long)accounts);
			policy_event(st, name, RISK_EV_SPRAYING, client,
			    country, str_c(&detail));
		}
		str_deinit(&key);
		str_deinit(&detail);
	}
	/* a lock the failure led to counts too */
	(void)be_risk_update(conf, st, be_worker_queue(w), name);
}

void
be_risk_spam(const struct config *conf, struct store *st, struct queue *q,
    const char *account, const char *client, const char *country,
    const char *verdict)
{
	if (st == NULL || account == NULL)
		return;
	policy_event(st, account, RISK_EV_SPAM_VERDICT, client, country,
	    verdict);
	(void)be_risk_update(conf, st, q, account);
}

/* A submission's recipients: the day's share of first-time ones. */
static void
be_risk_recipients(const struct config *conf, struct store *st,
    const char *account, const char *client, const char *country,
    const struct envelope *env)
{
	struct store_counter c;
	const char *error;
	char period[24], key[320], detail[160];
	int64_t now = policy_now(), fresh = 0, total, first;
	size_t i, over;

	for (i = 0; i < env->rcpt_count; i++) {
		int r = store_risk_recipient(st, account,
		    env->rcpts[i].address, now, &error);

		if (r < 0) {
			log_warnx("risk: %s: recipients: %s", account, error);
			return;
		}
		if (r == 0)
			fresh++;
	}
	/* the day's counter "n:DAY": messages = first-time recipients,
	 * recipients = all */
	policy_period('d', now, period, sizeof(period));
	period[0] = 'n';
	c.period = period;
	c.max_msgs = -1;
	c.max_rcpts = -1;
	if (store_count_add(st, account, &c, 1, fresh,
	    (int64_t)env->rcpt_count, &over, &error) != 0 ||
	    store_count_get(st, account, period, &first, &total, &error) < 0) {
		log_warnx("risk: %s: recipient counts: %s", account, error);
		return;
	}
	if (total < conf->risk_new_recipients_min ||
	    first * 100 < (int64_t)conf->risk_new_recipients_percent * total)
		return;
	snprintf(key, sizeof(key), "newrcpt:%s:%s", account, period + 2);
	if (store_notice_once(st, key, now, &error) != 0)
		return;
	snprintf(detail, sizeof(detail), "%lld of %lld recipients today "
	    "were first-time", (long long)first, (long long)total);
	policy_event(st, account, RISK_EV_NEW_RECIPIENTS, client, country,
	    detail);
}

/* On MX: a bounce (null sender) to a local account counts per hour. */
static void
be_risk_bounces(const struct config *conf, struct store *st, struct queue *q,
    const char *client, const char *country, const struct envelope *env)
{
	struct store_counter c;
	const char *error;
	char period[24], key[320], detail[96];
	int64_t now = policy_now(), n, dummy;
	size_t i, j, over;

	policy_period('h', now, period, sizeof(period));
	period[0] = 'b';
	c.period = period;
	c.max_msgs = -1;
	c.max_rcpts = -1;
	for (i = 0; i < env->rcpt_count; i++) {
		const char *acct = env->rcpts[i].mailbox;

		if (acct == NULL)
			continue;
		for (j = 0; j < i; j++)	/* one count per account */
			if (env->rcpts[j].mailbox != NULL &&
			    strcmp(env->rcpts[j].mailbox, acct) == 0)
				break;
		if (j < i)
			continue;
		if (store_count_add(st, acct, &c, 1, 1, 0, &over,
		    &error) != 0 ||
		    store_count_get(st, acct, period, &n, &dummy,
		    &error) < 0) {
			log_warnx("risk: %s: bounce count: %s", acct, error);
			continue;
		}
		if (n < conf->risk_bounces_per_hour)
			continue;
		snprintf(key, sizeof(key), "bounces:%s:%s", acct, period + 2);
		if (store_notice_once(st, key, now, &error) != 0)
			continue;
		snprintf(detail, sizeof(detail), "%lld bounces received this "
		    "hour", (long long)n);
		policy_event(st, acct, RISK_EV_BOUNCES, client, country,
		    detail);
		(void)be_risk_update(conf, st, q, acct);
	}
}

int
be_risk_commit(struct be_worker *w, const char *account, const char *client,
    const char *country, const char *id, char *reason, size_t reason_len)
{
	const struct config *conf = w->conf;
	struct store *st = be_worker_store(w);
	struct envelope env;
	struct store_risk rs;
	const char *error;
	char *path;
	size_t offset;
	int fd, corrupt, level, held = 0;

	if (st == NULL || !queue_id_valid(id))
		return 0;
	path = xasprintf("%s/incoming/%s", conf->spool_dir, id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return 0;
	if (spool_read_envelope(fd, &env, &offset, &corrupt, &error) < 0) {
		close(fd);
		return 0;
	}
	close(fd);
	if (account == NULL) {
		if (env.sender[0] == '\0')
			be_risk_bounces(conf, st, be_worker_queue(w), client,
			    country, &env);
		envelope_deinit(&env);
		return 0;
	}
	be_risk_recipients(conf, st, account, client, country, &env);
	envelope_deinit(&env);
	level = be_risk_update(conf, st, be_worker_queue(w), account);
	if (level >= STORE_RISK_HOLD &&
	    store_risk_get(st, account, &rs, &error) >= 0 &&
	    rs.level >= STORE_RISK_HOLD) {
		snprintf(reason, reason_len, "%s", rs.reason[0] != '\0' ?
		    rs.reason : "account on hold");
		held = 1;
	}
	return held;
}

/* --- the desk -------------------------------------------------------- */

static void
be_risk_audit(struct store *st, const char *account, const char *type,
    const char *by, const char *client, const char *what)
{
	struct str detail = STR_INIT;

	str_printf(&detail, "by %s%s%s", by,
	    what != NULL && *what != '\0' ? ": " : "", what != NULL ? what : "");
	policy_event(st, account, type, client, NULL, str_c(&detail));
	log_info("risk desk=%s action=%s account=%s", by, type, account);
	str_deinit(&detail);
}

static int
be_risk_account(struct store *st, const char *account, char **canon_r,
    int *suspended_r, const char **error_r)
{
	struct account a;
	int r;

	if ((r = store_account_get(st, account, &a, error_r)) != 0) {
		if (r == 1)
			*error_r = "no such account";
		return r;
	}
	*canon_r = xstrdup(a.address);
	if (suspended_r != NULL)
		*suspended_r = a.suspended;
	account_deinit(&a);
	return 0;
}

int
be_risk_clear(const struct config *conf, struct store *st,
    const char *account, const char *by, const char *client,
    const char **error_r)
{
	struct store_risk rs;
	char *canon, what[STORE_EVENT_DETAIL_MAX + 1];
	int r, suspended = 0;

	(void)conf;
	if ((r = be_risk_account(st, account, &canon, &suspended,
	    error_r)) != 0)
		return r;
	if ((r = store_risk_get(st, canon, &rs, error_r)) < 0 ||
	    store_risk_clear(st, canon, policy_now(), error_r) < 0) {
		free(canon);
		return -1;
	}
	/* an automatic suspension is undone with it; the desk's own is
	 * undone by resume */
	if (rs.level == STORE_RISK_SUSPEND && rs.automatic && suspended &&
	    store_account_set_suspended(st, canon, 0, NULL, error_r) != 0) {
		free(canon);
		return -1;
	}
	snprintf(what, sizeof(what), "%s%s back to none, signals so far "
	    "forgiven", rs.automatic ? "automatic " : "",
	    risk_level_name(rs.level));
	be_risk_audit(st, canon, RISK_EV_CLEAR, by, client, what);
	free(canon);
	return 0;
}

int
be_risk_set_exempt(const struct config *conf, struct store *st,
    const char *account, int exempt, const char *by, const char *client,
    const char **error_r)
{
	char *canon;
	int r;

	(void)conf;
	if ((r = be_risk_account(st, account, &canon, NULL, error_r)) != 0)
		return r;
	if (store_risk_exempt(st, canon, exempt, error_r) < 0) {
		free(canon);
		return -1;
	}
	be_risk_audit(st, canon, RISK_EV_EXEMPT, by, client, exempt ?
	    "exempt from the automatic response" :
	    "no longer exempt from the automatic response");
	free(canon);
	return 0;
}

int
be_risk_desk_hold(const struct config *conf, struct store *st,
    const char *account, const char *by, const char *client,
    const char **error_r)
{
	char *canon, reason[STORE_EVENT_DETAIL_MAX + 1];
	int r;

	(void)conf;
	if ((r = be_risk_account(st, account, &canon, NULL, error_r)) != 0)
		return r;
	snprintf(reason, sizeof(reason), "held by %s", by);
	/* the desk's hold is not stopped by an exemption */
	if (store_risk_exempt(st, canon, 0, error_r) < 0 ||
	    (r = store_risk_raise(st, canon, STORE_RISK_HOLD, 0, policy_now(),
	    reason, error_r)) < 0) {
		free(canon);
		return -1;
	}
	be_risk_audit(st, canon, RISK_EV_HOLD, by, client, r == 0 ?
	    "submissions held" : "already held or suspended");
	free(canon);
	return 0;
}

void
be_risk_held_audit(struct store *st, const char *account, const char *id,
    int release, const char *by, const char *client)
{
	char what[64];

	snprintf(what, sizeof(what), "held message %s %s", id,
	    release ? "released" : "deleted");
	be_risk_audit(st, account, release ? RISK_EV_RELEASE : RISK_EV_DELETE,
	    by, client, what);
}

/* --- the desk's warning ---------------------------------------------- */

struct be_risk_warn_ctx {
	const char	*account;
	struct str	*ja, *en;
	char		 first[STORE_EVENT_DETAIL_MAX + 1];
	char		 seen[BE_RISK_WARN_TRACES][QUEUE_ID_LEN + 1];
	size_t		 n;
};

/* Only the trace, and only of the account's own submissions: never
 * another account's, never the report's content. */
static int
be_risk_warn_row(const struct store_submission *s, void *arg)
{
	struct be_risk_warn_ctx *c = arg;
	char when[64];
	const char *ip = s->ip != NULL && *s->ip != '\0' ? s->ip : "-";
	const char *cc = s->country != NULL && *s->country != '\0' ?
	    s->country : "-";

	if (strcasecmp(s->account, c->account) != 0 ||
	    c->n >= BE_RISK_WARN_TRACES)
		return 0;
	/* found by its queue id and by its Message-ID: once */
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->seen[i], s->queue_id) == 0)
			return 0;
	xstrlcpy(c->seen[c->n], s->queue_id, sizeof(c->seen[c->n]));
	policy_format_time(s->time, when, sizeof(when));
	str_printf(c->ja, "  - 日時: %s  IPアドレス: %s  国: %s  宛先数: %"
	    PRId64 "\r\n", when, ip, cc, s->rcpts);
	str_printf(c->en, "  - When: %s  IP address: %s  Country: %s  "
	    "Recipients: %" PRId64 "\r\n", when, ip, cc, s->rcpts);
	if (c->n == 0)
		snprintf(c->first, sizeof(c->first), "%s from %s (%s), %"
		    PRId64 " recipients", when, ip, cc, s->rcpts);
	c->n++;
	return 0;
}

int
be_risk_warn(const struct config *conf, struct store *st, struct queue *q,
    const char *account, const char *by, const char *client,
    const struct trace_keys *k, size_t *traced_r, const char **error_r)
{
	struct str ja = STR_INIT, en = STR_INIT, body = STR_INIT;
	struct be_risk_warn_ctx c = { .ja = &ja, .en = &en, .n = 0 };
	char *canon, url[512], what[STORE_EVENT_DETAIL_MAX + 1];
	int r, ret = -1;

	*traced_r = 0;
	if ((r = be_risk_account(st, account, &canon, NULL, error_r)) != 0)
		return r;
	c.account = canon;
	for (size_t i = 0; k != NULL && i < k->nqueue_ids + k->nmsgids;
	    i++) {
		const char *qid = i < k->nqueue_ids ? k->queue_ids[i] : NULL;
		const char *mid = i < k->nqueue_ids ? NULL :
		    k->msgids[i - k->nqueue_ids];

		if (store_submission_find(st, qid, mid, be_risk_warn_row, &c,
		    error_r) < 0)
			goto out;
	}
	*traced_r = c.n;
	policy_portal_url(conf, url, sizeof(url));
	str_printf(&body,
	    "%s 様\r\n\r\n"
	    "お客様のアカウントから送信されたメールについて、迷惑メールとして"
	    "報告を受けました。\r\n\r\n"
	    "%s%s\r\n"
	    "ウイルス等に感染したパソコンやスマートフォンから、パスワードが"
	    "第三者に知られているおそれがあります。次の対策をお願いします。\r\n"
	    "  - ウイルス対策ソフトを最新にして検査する\r\n"
	    "  - OSとソフトウェアを最新の状態にする\r\n"
	    "  - メールオプション設定ページでパスワードを変更する\r\n"
	    "    %s\r\n\r\n"
	    "迷惑メールの送信が続く場合は、ご利用を停止することがあります。"
	    "\r\n\r\n"
	    "----\r\n\r\n"
	    "Mail sent from your account (%s) was reported to us as spam."
	    "\r\n\r\n"
	    "%s%s\r\n"
	    "A computer or phone infected with a virus may have given your "
	    "password away. Please:\r\n"
	    "  - scan your devices with up-to-date security software\r\n"
	    "  - bring the system and software up to date\r\n"
	    "  - change your password on the settings page\r\n"
	    "    %s\r\n\r\n"
	    "If the spam goes on, the account may be suspended.\r\n",
	    canon, c.n > 0 ? "報告されたメールの記録:\r\n" : "",
	    str_c(&ja), url, canon,
	    c.n > 0 ? "What we found of the reported mail:\r\n" : "",
	    str_c(&en), url);
	if (be_notice_mail(conf, q, canon, "warning",
	    "【重要】迷惑メール送信の報告について",
	    " / Spam from your account was reported", str_c(&body), NULL,
	    error_r) < 0)
		goto out;
	snprintf(what, sizeof(what), "%s", c.n > 0 ? c.first :
	    "no submission traced");
	if (store_risk_warned(st, canon, policy_now(), what, error_r) < 0)
		goto out;
	snprintf(what, sizeof(what), "warning sent, %zu submission(s) "
	    "traced", c.n);
	be_risk_audit(st, canon, RISK_EV_WARN, by, client, what);
	ret = 0;
out:
	free(canon);
	str_deinit(&ja);
	str_deinit(&en);
	str_deinit(&body);
	return ret;
}
