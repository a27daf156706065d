/*
 * test_policy: the sending rules against a real SQLite store: day and
 * hour keys around midnight in Asia/Tokyo, the overseas rule with and
 * without permission, limits, atomic counting under racing threads,
 * sender alignment and authentication throttling.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "geo/geo.h"
#include "policy/policy.h"
#include "store/password.h"
#include "store/store.h"
#include "unit.h"
#include "store_rows.h"

static char test_dir[] = "/tmp/sekisho-test-policy-XXXXXX";
static char store_uri[256];
static struct config *conf;

static struct store *
open_store(void)
{
	const char *error;
	struct store *st = store_open(store_uri, &error);

	if (st == NULL || store_init_schema(st, &error) < 0) {
		fprintf(stderr, "store: %s\n", error);
		exit(1);
	}
	return st;
}

static void
test_periods(void)
{
	char buf[32];
	/* 2026-11-22 14:59:59 UTC = 23:59:59 JST; one second later is the
	 * next day in Tokyo while it is still the 22nd in UTC. */
	int64_t before = 1795359599, after = 1795359600;

	policy_period('d', before, buf, sizeof(buf));
	UNIT_CHECK_STR(buf, "d:2026-11-22");
	policy_period('d', after, buf, sizeof(buf));
	UNIT_CHECK_STR(buf, "d:2026-11-23");
	policy_period('h', before, buf, sizeof(buf));
	UNIT_CHECK_STR(buf, "h:2026-11-22T23");
	policy_period('o', after, buf, sizeof(buf));
	UNIT_CHECK_STR(buf, "o:2026-11-23");
	UNIT_CHECK_INT(policy_period_end('d', before), after);
	UNIT_CHECK_INT(policy_period_end('h', after - 1800), after);
	policy_format_time(after, buf, sizeof(buf));
	UNIT_CHECK_STR(buf, "2026-11-23 00:00 JST");
}

static void
geo_country(struct geo_result *g, const char *cc)
{
	memset(g, 0, sizeof(*g));
	g->kind = GEO_COUNTRY;
	xstrlcpy(g->country, cc, sizeof(g->country));
}

static void
test_overseas(struct store *st)
{
	struct policy_mail_result r;
	struct geo_result g;
	struct sockaddr_in sin;
	const char *error;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "198.51.100.7", &sin.sin_addr);

	/* from home: accepted */
	geo_country(&g, "JP");
	policy_mail_result_init(&r);
	UNIT_CHECK_INT(policy_mail(conf, st, "alice@example.jp",
	    "alice@example.jp", "192.0.2.7", NULL, &g, &r), 0);
	UNIT_CHECK_INT(r.verdict, POLICY_OK);
	UNIT_CHECK_INT(r.overseas, 0);
	policy_mail_result_deinit(&r);

	/* from abroad without permission: refused, names country, URL */
	geo_country(&g, "US");
	policy_mail_result_init(&r);
	policy_mail(conf, st, "alice@example.jp", "alice@example.jp",
	    "198.51.100.7", (struct sockaddr *)&sin, &g, &r);
	UNIT_CHECK_INT(r.verdict, POLICY_REJECT);
	UNIT_CHECK(strncmp(str_c(&r.reply), "550 5.7.1 ", 10) == 0);
	UNIT_CHECK(strstr(str_c(&r.reply), "US") != NULL);
	UNIT_CHECK(strstr(str_c(&r.reply), "https://portal.example.jp/") !=
	    NULL);
	UNIT_CHECK_INT(r.notify, 1);
	policy_mail_result_deinit(&r);

	/* permission active: accepted, marked overseas */
	UNIT_CHECK_INT(store_overseas_set(st, "alice@example.jp",
	    policy_now() + 3600, &error), 0);
	policy_mail_result_init(&r);
	policy_mail(conf, st, "alice@example.jp", "alice@example.jp",
	    "198.51.100.7", (struct sockaddr *)&sin, &g, &r);
	UNIT_CHECK_INT(r.verdict, POLICY_OK);
	UNIT_CHECK_INT(r.overseas, 1);
	policy_mail_result_deinit(&r);

	/* expired: refused again */
	UNIT_CHECK_INT(store_overseas_set(st, "alice@example.jp",
	    policy_now() - 1, &error), 0);
	policy_mail_result_init(&r);
	policy_mail(conf, st, "alice@example.jp", "alice@example.jp",
	    "198.51.100.7", (struct sockaddr *)&sin, &g, &r);
	UNIT_CHECK_INT(r.verdict, POLICY_REJECT);
	policy_mail_result_deinit(&r);

	/* a trusted network (webmail) is never refused */
	cidr_parse("198.51.100.0/24", &conf->trusted_networks[0]);
	conf->trusted_networks_count = 1;
	policy_mail_result_init(&r);
	policy_mail(conf, st, "alice@example.jp", "alice@example.jp",
	    "198.51.100.7", (struct sockaddr *)&sin, &g, &r);
	UNIT_CHECK_INT(r.verdict, POLICY_OK);
	policy_mail_result_deinit(&r);
	conf->trusted_networks_count = 0;

	/* unknown public address: refused by default */
	memset(&g, 0, sizeof(g));
	g.kind = GEO_UNKNOWN;
	policy_mail_result_init(&r);
	policy_mail(conf, st, "alice@example.jp", "alice@example.jp",
	    "198.51.100.7", (struct sockaddr *)&sin, &g, &r);
	UNIT_CHECK_INT(r.verdict, POLICY_REJECT);
	policy_mail_result_deinit(&r);
}

static void
test_alignment(struct store *st)
{
	struct policy_mail_result r;
	struct geo_result g;
	struct str reply = STR_INIT;
	const char *from_ok[] = { "alias@example.jp" };
	const char *from_bad[] = { "alice@example.jp", "mallory@evil.example" };

	geo_country(&g, "JP");
	policy_mail_result_init(&r);
	policy_mail(conf, st, "alice@example.jp", "bob@example.jp",
	    "192.0.2.7", NULL, &g, &r);
	UNIT_CHECK_INT(r.verdict, POLICY_REJECT);
	UNIT_CHECK(strncmp(str_c(&r.reply), "553 5.7.1 ", 10) == 0);
	policy_mail_result_deinit(&r);

	policy_mail_result_init(&r);
	policy_mail(conf, st, "alice@example.jp", "ALIAS@example.jp",
	    "192.0.2.7", NULL, &g, &r);
	UNIT_CHECK_INT(r.verdict, POLICY_OK);
	policy_mail_result_deinit(&r);

	UNIT_CHECK_INT(policy_commit(conf, st, "alice@example.jp", "192.0.2.7",
	    "JP", 0, 1, 1, from_bad, 2, &reply), POLICY_REJECT);
	UNIT_CHECK(strstr(str_c(&reply), "mallory@evil.example") != NULL);
	UNIT_CHECK_INT(policy_commit(conf, st, "alice@example.jp", "192.0.2.7",
	    "JP", 0, 1, 1, NULL, 0, &reply), POLICY_REJECT);
	UNIT_CHECK_INT(policy_commit(conf, st, "alice@example.jp", "192.0.2.7",
	    "JP", 0, 1, 1, from_ok, 1, &reply), POLICY_OK);
	str_deinit(&reply);
}

struct racer {
	int	 accepted;
};

static void *
race(void *arg)
{
	struct racer *rc = arg;
	struct store *st = open_store();
	const char *from[] = { "carol@example.jp" };
	struct str reply = STR_INIT;

	for (int i = 0; i < 5; i++)
		if (policy_commit(conf, st, "carol@example.jp", "192.0.2.9",
		    "JP", 0, 2, 1, from, 1, &reply) == POLICY_OK)
			rc->accepted++;
	str_deinit(&reply);
	store_close(&st);
	return NULL;
}

static void
test_limits(struct store *st)
{
	struct account_policy p;
	struct policy_mail_result r;
	struct geo_result g;
	const char *error;
	pthread_t t[8];
	struct racer rc[8];
	int total = 0;

	/* carol: 15 recipients a day; 8 threads x 5 messages x 2
	 * recipients race for them: exactly 7 messages (14) pass. */
	UNIT_CHECK_INT(store_policy_get(st, "carol@example.jp", &p, &error), 0);
	p.limit_rcpts_day = 15;
	UNIT_CHECK_INT(store_policy_set_limits(st, "carol@example.jp", &p,
	    &error), 0);
	memset(rc, 0, sizeof(rc));
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, race, &rc[i]);
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		total += rc[i].accepted;
	}
	UNIT_CHECK_INT(total, 7);

	/* one recipient is left: MAIL says so, with the reply for RCPT */
	geo_country(&g, "JP");
	policy_mail_result_init(&r);
	policy_mail(conf, st, "carol@example.jp", "carol@example.jp",
	    "192.0.2.9", NULL, &g, &r);
	UNIT_CHECK_INT(r.verdict, POLICY_OK);
	UNIT_CHECK_INT(r.rcpts_left, 1);
	UNIT_CHECK(strncmp(str_c(&r.rcpt_reply), "451 4.7.1 Daily recipient "
	    "limit (15)", 35) == 0);
	policy_mail_result_deinit(&r);

	/* after the last one, MAIL itself is refused with a 4xx */
	struct str reply = STR_INIT;
	const char *from[] = { "carol@example.jp" };

	UNIT_CHECK_INT(policy_commit(conf, st, "carol@example.jp",
	    "192.0.2.9", "JP", 0, 1, 1, from, 1, &reply), POLICY_OK);
	policy_mail_result_init(&r);
	policy_mail(conf, st, "carol@example.jp", "carol@example.jp",
	    "192.0.2.9", NULL, &g, &r);
	UNIT_CHECK_INT(r.verdict, POLICY_TEMPFAIL);
	UNIT_CHECK(strstr(str_c(&r.reply), "resets at") != NULL);
	policy_mail_result_deinit(&r);

	/* an undo gives the count back */
	policy_uncount(conf, st, "carol@example.jp", 0, 1);
	policy_mail_result_init(&r);
	policy_mail(conf, st, "carol@example.jp", "carol@example.jp",
	    "192.0.2.9", NULL, &g, &r);
	UNIT_CHECK_INT(r.verdict, POLICY_OK);
	policy_mail_result_deinit(&r);
	str_deinit(&reply);

	/* the event was recorded once */
	struct str ev = STR_INIT;

	store_event_list(st, "carol@example.jp", 0, 100, rows_event, &ev, &error);
	UNIT_CHECK(strstr(str_c(&ev), "limit_reached") != NULL);
	str_deinit(&ev);
}

static void
test_throttle(struct store *st)
{
	int64_t until, delay = 0;

	/* per-IP limit 3: after 3 failures the address is locked, even
	 * for the right password; another address is not */
	for (int i = 0; i < 3; i++) {
		UNIT_CHECK_INT(policy_auth_check(conf, st, "dave@example.jp",
		    "203.0.113.5", &until), 0);
		delay = policy_auth_fail(conf, st, "dave@example.jp",
		    "203.0.113.5", "smtp");
	}
	UNIT_CHECK_INT(delay, 4000);	/* 1s, 2s, 4s */
	UNIT_CHECK_INT(policy_auth_check(conf, st, "dave@example.jp",
	    "203.0.113.5", &until), 1);
	UNIT_CHECK(until > policy_now());
	UNIT_CHECK_INT(policy_auth_check(conf, st, "dave@example.jp",
	    "203.0.113.6", &until), 0);
}


/* Countries of a permission and overseas_restrict (issue 17 items 5, 7). */
static void
test_countries(void)
{
	static const struct {
		const char	*in;
		const char	*out;	/* NULL: refused */
	} cases[] = {
		{ "", "" }, { "us", "US" }, { "us, gb", "US,GB" },
		{ "US,US,gb", "US,GB" }, { " CN\tkr ", "CN,KR" },
		{ "USA", NULL }, { "U", NULL }, { "U1", NULL }, { "US;GB", NULL },
		{ "US,G", NULL }, { "\xe6\x97\xa5\xe6\x9c\xac", NULL },
		{ "<script>", NULL },
	};
	char out[STORE_COUNTRIES_MAX + 1], many[200] = "";
	struct config *c = config_defaults();
	char *words[2] = { "submission", "pop3, imap" };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = policy_countries_parse(cases[i].in, out, sizeof(out));

		UNIT_CHECK_INT(r, cases[i].out != NULL ? 0 : -1);
		if (cases[i].out != NULL)
			UNIT_CHECK_STR(out, cases[i].out);
	}
	/* 40 fit, 41 do not; a short buffer is refused, not cut */
	for (int i = 0; i < 41; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
		    "%s%c%c", i > 0 ? "," : "", 'A' + i / 26, 'A' + i % 26);
	UNIT_CHECK_INT(policy_countries_parse(many, out, sizeof(out)), -1);
	many[40 * 3 - 1] = '\0';
	UNIT_CHECK_INT(policy_countries_parse(many, out, sizeof(out)), 0);
	UNIT_CHECK_INT(policy_countries_parse("US,GB", out, 5), -1);

	UNIT_CHECK_INT(policy_country_listed("US,GB", "GB"), 1);
	UNIT_CHECK_INT(policy_country_listed("US,GB", "G"), 0);
	UNIT_CHECK_INT(policy_country_listed("US,GB", "CN"), 0);
	UNIT_CHECK_INT(policy_country_listed("", "US"), 0);

	UNIT_CHECK_INT(policy_overseas_restricts(c, "submission"), 1);
	UNIT_CHECK_INT(policy_overseas_restricts(c, "pop3"), 0);
	UNIT_CHECK_INT(policy_overseas_restricts(c, "imap"), 0);
	char **saved = c->overseas_restrict;
	size_t nsaved = c->overseas_restrict_count;

	c->overseas_restrict = words;
	c->overseas_restrict_count = 2;
	UNIT_CHECK_INT(policy_overseas_restricts(c, "pop3"), 1);
	UNIT_CHECK_INT(policy_overseas_restricts(c, "imap"), 1);
	UNIT_CHECK_INT(policy_overseas_restricts(c, "pop"), 0);
	c->overseas_restrict = saved;	/* the words are not the config's */
	c->overseas_restrict_count = nsaved;
	config_free(&c);
}

int
main(void)
{
	const char *error;
	struct store *st;
	char *hash;

	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	log_init("test", 1, LOG_LEVEL_WARN);
	if (mkdtemp(test_dir) == NULL)
		return 1;
	snprintf(store_uri, sizeof(store_uri), "sqlite:%s/db", test_dir);
	conf = config_defaults();
	free(conf->portal_url);
	conf->portal_url = xstrdup("https://portal.example.jp/");
	conf->trusted_networks = xcalloc(1, sizeof(struct cidr));
	conf->trusted_networks_count = 0;
	conf->auth_max_failures_per_ip = 3;
	conf->auth_max_failures_per_account = 100;

	st = open_store();
	hash = password_hash("pw", &error);
	store_domain_add(st, "example.jp", &error);
	store_account_add(st, "alice@example.jp", hash, &error);
	store_account_add(st, "bob@example.jp", hash, &error);
	store_account_add(st, "carol@example.jp", hash, &error);
	store_account_add(st, "dave@example.jp", hash, &error);
	store_alias_add(st, "alias@example.jp", "alice@example.jp", &error);
	free(hash);

	test_periods();
	test_overseas(st);
	test_alignment(st);
	test_limits(st);
	test_throttle(st);
	test_countries();

	store_close(&st);
	config_free(&conf);
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", test_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	UNIT_END();
}
