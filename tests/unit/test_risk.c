/*
 * test_risk: the pure score of issue 17 (src/policy/risk.h): which event
 * types weigh what, the decay, "early" limits and the thresholds.
 */
#include <stdlib.h>
#include <time.h>

#include "core/config.h"
#include "policy/risk.h"
#include "store/store.h"
#include "unit.h"

static void
test_weights(const struct config *c)
{
	UNIT_CHECK_INT(risk_weight(c, "login_new_country", 0),
	    c->risk_weight_login_new_country);
	UNIT_CHECK_INT(risk_weight(c, "overseas_refused", 0),
	    c->risk_weight_overseas_refused);
	UNIT_CHECK_INT(risk_weight(c, "auth_locked_ip", 0),
	    c->risk_weight_auth_locked);
	UNIT_CHECK_INT(risk_weight(c, "spam_verdict", 0),
	    c->risk_weight_spam_verdict);
	UNIT_CHECK_INT(risk_weight(c, "password_spraying", 0),
	    c->risk_weight_password_spraying);
	/* the response and the desk's actions are no signals */
	UNIT_CHECK_INT(risk_weight(c, "admin_risk_hold", 0), 0);
	UNIT_CHECK_INT(risk_weight(c, "admin_warn", 0), 0);
	UNIT_CHECK_INT(risk_weight(c, "sender_refused", 0), 0);
	UNIT_CHECK_INT(risk_weight(c, "", 0), 0);
	UNIT_CHECK(risk_signal_label("admin_warn", 0) == NULL);
	UNIT_CHECK(risk_signal_label_ja("login_new_country", 0) != NULL);
}

static void
test_early(struct config *c)
{
	/* 2026-12-06 03:00 and 15:00 in Asia/Tokyo (TZ set in main) */
	int64_t morning = 1796493600, afternoon = morning + 12 * 3600;

	UNIT_CHECK(risk_limit_early(c, morning));
	UNIT_CHECK(!risk_limit_early(c, afternoon));
	UNIT_CHECK_INT(risk_weight(c, "limit_reached", morning),
	    c->risk_weight_limit_early);
	UNIT_CHECK_INT(risk_weight(c, "limit_reached", afternoon),
	    c->risk_weight_limit_reached);
	c->risk_limit_early_hour = 0;
	UNIT_CHECK(!risk_limit_early(c, morning));
	c->risk_limit_early_hour = 12;
}

static void
test_decay_and_levels(struct config *c)
{
	int64_t t = 1796493600;
	double p0 = risk_points(c, "overseas_refused", t, t);
	double p1 = risk_points(c, "overseas_refused", t,
	    t + c->risk_half_life);
	double p2 = risk_points(c, "overseas_refused", t,
	    t + 2 * (int64_t)c->risk_half_life);

	UNIT_CHECK(p0 == c->risk_weight_overseas_refused);
	UNIT_CHECK(p1 > p0 / 2 - 0.001 && p1 < p0 / 2 + 0.001);
	UNIT_CHECK(p2 > p0 / 4 - 0.001 && p2 < p0 / 4 + 0.001);
	/* a clock that went back counts as now, never more */
	UNIT_CHECK(risk_points(c, "overseas_refused", t, t - 100) == p0);
	UNIT_CHECK(risk_points(c, "admin_warn", t, t) == 0);
	UNIT_CHECK(1000.0 / (1 << 17) < 0.01);
	UNIT_CHECK_INT(risk_horizon(c), 17LL * c->risk_half_life);

	UNIT_CHECK_INT(risk_level(c, 0), STORE_RISK_NONE);
	UNIT_CHECK_INT(risk_level(c, c->risk_notify - 0.1), STORE_RISK_NONE);
	UNIT_CHECK_INT(risk_level(c, c->risk_notify - 0.0004),
	    STORE_RISK_NOTIFY);
	UNIT_CHECK_INT(risk_level(c, c->risk_notify), STORE_RISK_NOTIFY);
	UNIT_CHECK_INT(risk_level(c, c->risk_hold), STORE_RISK_HOLD);
	UNIT_CHECK_INT(risk_level(c, c->risk_suspend + 500),
	    STORE_RISK_SUSPEND);
	/* a step turned off is skipped, the others stay */
	c->risk_hold = 0;
	UNIT_CHECK_INT(risk_level(c, 100), STORE_RISK_NOTIFY);
	c->risk_suspend = 0;
	c->risk_notify = 0;
	UNIT_CHECK_INT(risk_level(c, 1e9), STORE_RISK_NONE);
	UNIT_CHECK_STR(risk_level_name(STORE_RISK_HOLD), "hold");
	UNIT_CHECK_STR(risk_level_name(42), "none");
}

int
main(void)
{
	struct config *c = config_defaults();

	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	UNIT_CHECK_INT(c->risk_notify, 60);
	UNIT_CHECK_INT(c->risk_hold, 90);
	UNIT_CHECK_INT(c->risk_suspend, 150);
	UNIT_CHECK_INT(c->risk_half_life, 86400);
	test_weights(c);
	test_early(c);
	test_decay_and_levels(c);
	config_free(&c);
	UNIT_END();
}
