/*
 * risk: the score of an account's signals (risk.h). The weights are
 * config keys (one table, src/core/config.c); this file only says which
 * event type takes which weight, and how the points decay.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "../core/config.h"
#include "../store/store.h"
#include "risk.h"

int
risk_limit_early(const struct config *conf, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	return tm.tm_hour < conf->risk_limit_early_hour;
}

int
risk_weight(const struct config *conf, const char *type, int64_t t)
{
	if (strcmp(type, RISK_EV_LOGIN_NEW_COUNTRY) == 0)
		return conf->risk_weight_login_new_country;
	if (strcmp(type, "overseas_refused") == 0)
		return conf->risk_weight_overseas_refused;
	if (strcmp(type, "limit_reached") == 0)
		return risk_limit_early(conf, t) ?
		    conf->risk_weight_limit_early :
		    conf->risk_weight_limit_reached;
	if (strcmp(type, "auth_locked_ip") == 0 ||
	    strcmp(type, "auth_locked_account") == 0)
		return conf->risk_weight_auth_locked;
	if (strcmp(type, RISK_EV_SPAM_VERDICT) == 0)
		return conf->risk_weight_spam_verdict;
	if (strcmp(type, RISK_EV_BOUNCES) == 0)
		return conf->risk_weight_bounces;
	if (strcmp(type, RISK_EV_NEW_RECIPIENTS) == 0)
		return conf->risk_weight_new_recipients;
	if (strcmp(type, RISK_EV_SPRAYING) == 0)
		return conf->risk_weight_password_spraying;
	return 0;
}

double
risk_points(const struct config *conf, const char *type, int64_t t,
    int64_t now)
{
	int w = risk_weight(conf, type, t);
	double age = (double)(now > t ? now - t : 0);

	if (w == 0)
		return 0;
	return (double)w * exp2(-age / (double)conf->risk_half_life);
}

int64_t
risk_horizon(const struct config *conf)
{
	/* 2^-17 of the largest weight (1000) is under a hundredth */
	return (int64_t)conf->risk_half_life * 17;
}

int
risk_level(const struct config *conf, double score)
{
	/* to a tenth, as shown: two signals a second apart (40 points less
	 * a few millionths of decay) reach a threshold of 40 */
	score = floor(score * 10 + 0.5) / 10;
	if (conf->risk_suspend > 0 && score >= conf->risk_suspend)
		return STORE_RISK_SUSPEND;
	if (conf->risk_hold > 0 && score >= conf->risk_hold)
		return STORE_RISK_HOLD;
	if (conf->risk_notify > 0 && score >= conf->risk_notify)
		return STORE_RISK_NOTIFY;
	return STORE_RISK_NONE;
}

const char *
risk_level_name(int level)
{
	switch (level) {
	case STORE_RISK_NOTIFY:
		return "notify";
	case STORE_RISK_HOLD:
		return "hold";
	case STORE_RISK_SUSPEND:
		return "suspend";
	default:
		return "none";
	}
}

const char *
risk_level_name_ja(int level)
{
	switch (level) {
	case STORE_RISK_NOTIFY:
		return "通知";
	case STORE_RISK_HOLD:
		return "送信保留";
	case STORE_RISK_SUSPEND:
		return "利用停止";
	default:
		return "なし";
	}
}

static const struct {
	const char	*type;
	const char	*en;
	const char	*ja;
} risk_labels[] = {
	{ RISK_EV_LOGIN_NEW_COUNTRY, "a login from a new country",
	    "これまでにない国からのログイン" },
	{ "overseas_refused", "a submission from abroad refused",
	    "海外からの送信の拒否" },
	{ "limit_reached", "a send limit reached",
	    "送信数の上限への到達" },
	{ "auth_locked_ip", "logins locked after failed passwords",
	    "パスワード誤りによるログインのロック" },
	{ "auth_locked_account", "logins locked after failed passwords",
	    "パスワード誤りによるログインのロック" },
	{ RISK_EV_SPAM_VERDICT, "a message you sent was judged spam",
	    "送信メールが迷惑メールと判定" },
	{ RISK_EV_BOUNCES, "many error mails (bounces) came back",
	    "多数のエラーメールの返送" },
	{ RISK_EV_NEW_RECIPIENTS, "mail to many never-before recipients",
	    "初めての宛先への大量の送信" },
	{ RISK_EV_SPRAYING, "password guessing across many accounts",
	    "多数のアカウントへのパスワード試行" },
};

const char *
risk_signal_label(const char *type, int early)
{
	if (early && strcmp(type, "limit_reached") == 0)
		return "a send limit reached early in the day";
	for (size_t i = 0; i < sizeof(risk_labels) / sizeof(risk_labels[0]);
	    i++)
		if (strcmp(type, risk_labels[i].type) == 0)
			return risk_labels[i].en;
	return NULL;
}

const char *
risk_signal_label_ja(const char *type, int early)
{
	if (early && strcmp(type, "limit_reached") == 0)
		return "一日の早い時間での送信数の上限への到達";
	for (size_t i = 0; i < sizeof(risk_labels) / sizeof(risk_labels[0]);
	    i++)
		if (strcmp(type, risk_labels[i].type) == 0)
			return risk_labels[i].ja;
	return NULL;
}
