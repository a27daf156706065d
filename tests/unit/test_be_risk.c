/*
 * test_be_risk: the back side's risk glue against a real SQLite store and
 * spool (issue 17): the spam verdict hook the milter code calls records
 * its signal and raises the response once, with its notice queued; the
 * desk's clear forgives; an exempt account is never raised; the warning
 * names only the account's own submissions.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/be_risk.h"
#include "core/config.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "policy/policy.h"
#include "policy/trace.h"
#include "queue/spool.h"
#include "store/password.h"
#include "store/store.h"
#include "unit.h"

static char test_dir[] = "/tmp/sekisho-test-be-risk-XXXXXX";
static struct config *conf;

static size_t
queued(void)
{
	char *path = xasprintf("%s/spool/queue", test_dir);
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	free(path);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strlen(de->d_name) == 20)
			n++;
	closedir(d);
	return n;
}

static int
count_type(const struct store_event *e, void *ctx)
{
	struct { const char *type; int n; } *c = ctx;

	if (strcmp(e->type, c->type) == 0)
		c->n++;
	return 0;
}

static int
events_of(struct store *st, const char *account, const char *type)
{
	struct { const char *type; int n; } c = { type, 0 };
	const char *error;

	(void)store_event_list(st, account, 0, 1000, count_type, &c, &error);
	return c.n;
}

static void
test_spam_hook(struct store *st)
{
	struct be_risk_score s;
	struct store_risk rs;
	const char *error;

	be_risk_spam(conf, st, NULL, "alice@example.jp", "192.0.2.7", "JP",
	    "rspamd score=15.2 action=reject");
	UNIT_CHECK_INT(events_of(st, "alice@example.jp", "spam_verdict"), 1);
	UNIT_CHECK(be_risk_score(conf, st, "alice@example.jp", policy_now(),
	    &s, NULL, NULL, &error) == 0);
	UNIT_CHECK(s.score > 19.9 && s.score <= 20.0);
	UNIT_CHECK_INT(s.state.level, STORE_RISK_NONE);
	UNIT_CHECK_INT(queued(), 0);
	/* the second verdict reaches notify (40): raised once, one notice */
	be_risk_spam(conf, st, NULL, "alice@example.jp", "192.0.2.7", "JP",
	    "rspamd score=15.2 action=reject");
	UNIT_CHECK(store_risk_get(st, "alice@example.jp", &rs, &error) == 0);
	UNIT_CHECK_INT(rs.level, STORE_RISK_NOTIFY);
	UNIT_CHECK(rs.automatic);
	UNIT_CHECK(strstr(rs.reason, "automatic: risk score 40") != NULL);
	UNIT_CHECK_INT(events_of(st, "alice@example.jp", "admin_risk_notify"),
	    1);
	UNIT_CHECK_INT(queued(), 1);
	UNIT_CHECK_INT(be_risk_update(conf, st, NULL, "alice@example.jp"),
	    STORE_RISK_NOTIFY);
	UNIT_CHECK_INT(queued(), 1);
	/* the desk clears: signals so far forgiven */
	UNIT_CHECK(be_risk_clear(conf, st, "alice@example.jp", "cli", NULL,
	    &error) == 0);
	UNIT_CHECK(be_risk_score(conf, st, "alice@example.jp", policy_now(),
	    &s, NULL, NULL, &error) == 0);
	UNIT_CHECK(s.score == 0 && s.state.level == STORE_RISK_NONE);
	/* a name that is no account: recorded, never raised */
	UNIT_CHECK_INT(be_risk_update(conf, st, NULL, "ghost@example.jp"),
	    STORE_RISK_NONE);
}

static void
test_exempt(struct store *st)
{
	const char *error;
	struct store_risk rs;

	UNIT_CHECK(be_risk_set_exempt(conf, st, "bob@example.jp", 1, "cli",
	    NULL, &error) == 0);
	for (int i = 0; i < 5; i++)
		be_risk_spam(conf, st, NULL, "bob@example.jp", NULL, NULL, "x");
	UNIT_CHECK(store_risk_get(st, "bob@example.jp", &rs, &error) == 0);
	UNIT_CHECK_INT(rs.level, STORE_RISK_NONE);
	/* the desk's own hold still works, and ends the exemption */
	UNIT_CHECK(be_risk_desk_hold(conf, st, "bob@example.jp", "cli", NULL,
	    &error) == 0);
	UNIT_CHECK(store_risk_get(st, "bob@example.jp", &rs, &error) == 0);
	UNIT_CHECK_INT(rs.level, STORE_RISK_HOLD);
	UNIT_CHECK(!rs.automatic && !rs.exempt);
	UNIT_CHECK(be_risk_set_exempt(conf, st, "nobody@example.jp", 1, "cli",
	    NULL, &error) == 1);
}

static void
test_warn_traces_own_only(struct store *st)
{
	struct store_submission a = { "0123456789ABCDEF0001", "<a@x>", 0,
	    "carol@example.jp", "198.51.100.7", "US", NULL, 5, 100, 0 };
	struct store_submission b = { "0123456789ABCDEF0002", "<b@x>", 0,
	    "dave@example.jp", "203.0.113.9", "CN", NULL, 9, 100, 0 };
	struct trace_keys k;
	const char *error;
	size_t traced = 9, before = queued();
	struct store_risk rs;

	a.time = b.time = policy_now();
	UNIT_CHECK(store_submission_add(st, &a, &error) == 0);
	UNIT_CHECK(store_submission_add(st, &b, &error) == 0);
	memset(&k, 0, sizeof(k));
	k.queue_ids[k.nqueue_ids++] = xstrdup("0123456789ABCDEF0001");
	k.queue_ids[k.nqueue_ids++] = xstrdup("0123456789ABCDEF0002");
	k.msgids[k.nmsgids++] = xstrdup("<a@x>");
	UNIT_CHECK(be_risk_warn(conf, st, NULL, "carol@example.jp", "cli",
	    NULL, &k, &traced, &error) == 0);
	UNIT_CHECK_INT(traced, 1);		/* once, and not dave's */
	UNIT_CHECK_INT(queued(), before + 1);
	UNIT_CHECK(store_risk_get(st, "carol@example.jp", &rs, &error) == 0);
	UNIT_CHECK(rs.warned > 0);
	UNIT_CHECK(strstr(rs.warning, "198.51.100.7 (US), 5 recipients") !=
	    NULL);
	UNIT_CHECK(strstr(rs.warning, "203.0.113.9") == NULL);
	trace_keys_free(&k);
}

int
main(void)
{
	const char *error;
	struct store *st;
	char *hash, *uri, cmd[128];

	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	log_init("test", 1, LOG_LEVEL_WARN);
	if (mkdtemp(test_dir) == NULL)
		return 1;
	conf = config_defaults();
	free(conf->spool_dir);
	conf->spool_dir = xasprintf("%s/spool", test_dir);
	conf->risk_notify = 40;
	if (spool_init(conf->spool_dir, &error) < 0)
		return 1;
	uri = xasprintf("sqlite:%s/db", test_dir);
	st = store_open(uri, &error);
	free(uri);
	if (st == NULL || store_init_schema(st, &error) < 0) {
		fprintf(stderr, "store: %s\n", error);
		return 1;
	}
	hash = password_hash("pw", &error);
	store_domain_add(st, "example.jp", &error);
	store_account_add(st, "alice@example.jp", hash, &error);
	store_account_add(st, "bob@example.jp", hash, &error);
	store_account_add(st, "carol@example.jp", hash, &error);
	store_account_add(st, "dave@example.jp", hash, &error);
	free(hash);

	test_spam_hook(st);
	test_exempt(st);
	test_warn_traces_own_only(st);

	store_close(&st);
	config_free(&conf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", test_dir);
	if (system(cmd) != 0)
		return 1;
	UNIT_END();
}
