/*
 * risk: how much an account looks like it is in someone else's hands
 * (issue 17). Pure: the score of a list of events, no store, no I/O; the
 * back side's glue (src/backend/be_risk.c) records the signals as events,
 * scores them with this and acts on the result.
 *
 * Each signal event type has a weight in the config (risk_weight_*); a
 * signal's points halve with every risk_half_life of age, and the score
 * is their sum. The score maps to the automatic response: notify at
 * risk_notify, hold at risk_hold, suspend at risk_suspend (0: off).
 * docs/policy.md "Risk score".
 */
#ifndef SEKISHO_RISK_H
#define SEKISHO_RISK_H

#include <stdint.h>

struct config;

/* Signal event types (the events table's type). */
#define RISK_EV_LOGIN_NEW_COUNTRY	"login_new_country"
#define RISK_EV_SPAM_VERDICT		"spam_verdict"
#define RISK_EV_BOUNCES			"bounces_received"
#define RISK_EV_NEW_RECIPIENTS		"new_recipients"
#define RISK_EV_SPRAYING		"password_spraying"
/* The automatic response and the desk's actions (audit log types). */
#define RISK_EV_NOTIFY			"admin_risk_notify"
#define RISK_EV_HOLD			"admin_risk_hold"
#define RISK_EV_SUSPEND			"admin_risk_suspend"
#define RISK_EV_CLEAR			"admin_risk_clear"
#define RISK_EV_EXEMPT			"admin_risk_exempt"
#define RISK_EV_WARN			"admin_warn"
#define RISK_EV_RELEASE			"admin_release"
#define RISK_EV_DELETE			"admin_delete"

/* The weight of an event of type recorded at t (local time decides a
 * limit's "early"); 0 when the type is no signal. */
int risk_weight(const struct config *conf, const char *type, int64_t t);
/* Its points at now, decayed. */
double risk_points(const struct config *conf, const char *type, int64_t t,
    int64_t now);
/* How far back events can still count (a signal is worth less than a
 * hundredth of a point after that). */
int64_t risk_horizon(const struct config *conf);
/* The response level a score calls for (store.h enum store_risk_level),
 * the score taken to a tenth as it is shown. */
int risk_level(const struct config *conf, double score);
/* "none", "notify", "hold", "suspend"; and in Japanese. */
const char *risk_level_name(int level);
const char *risk_level_name_ja(int level);
/* What a signal is, for notices and pages ("ログイン（新しい国）"); NULL
 * when type is no signal. early: a limit reached early in the day. */
const char *risk_signal_label(const char *type, int early);
const char *risk_signal_label_ja(const char *type, int early);
/* 1 when a limit event at t was early in the day. */
int risk_limit_early(const struct config *conf, int64_t t);

#endif
