/*
 * cli_risk: the abuse desk's commands of issue 17 (docs/policy.md "Risk
 * score"): "risk ADDRESS" (the score, its signals, the response in force,
 * and the desk's undo: --clear, --exempt on|off, --hold), "risk --top N"
 * (the accounts most at risk now) and "warn ADDRESS [--evidence FILE]"
 * (the warning into the subscriber's mailbox). The work is the back
 * side's (src/backend/be_risk.c), done here on the store directly; a
 * mail queued is announced to the daemon over the control socket.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend/be_risk.h"
#include "../core/config.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../policy/policy.h"
#include "../policy/risk.h"
#include "../policy/trace.h"
#include "../queue/queue.h"
#include "../store/store.h"
#include "cli.h"

#define CLI_RISK_EVIDENCE_MAX	(16 * 1024 * 1024)

void
cli_risk_usage(void)
{
	fprintf(stderr,
	    "  risk ADDRESS           the account's risk score, signals and "
	    "response\n"
	    "  risk ADDRESS --clear|--hold|--exempt on|off\n"
	    "                         undo the response (signals so far "
	    "forgiven), hold,\n"
	    "                         or exempt from the automatic response\n"
	    "  risk --top [N]         the N (20) accounts most at risk now\n"
	    "  warn ADDRESS [--evidence FILE|-]\n"
	    "                         send the subscriber a warning with the "
	    "report's trace\n");
}

static void
cli_risk_signal(const struct be_risk_signal *s, void *ctx)
{
	char when[64];

	(void)ctx;
	policy_format_time(s->time, when, sizeof(when));
	printf("  %s %-20s points=%.1f%s client=%s country=%s detail=\"%s\"\n",
	    when, s->type, s->points, s->early ? " early" : "",
	    s->ip[0] != '\0' ? s->ip : "-",
	    s->country[0] != '\0' ? s->country : "-", s->detail);
}

static int
cli_risk_count_held(const struct queue_held *m, void *ctx)
{
	(void)m;
	(*(size_t *)ctx)++;
	return 0;
}

struct cli_risk_args {
	const struct config	*conf;
	const char		*account;
	const char		*action;	/* NULL: show */
	int			 exempt;
	size_t			 top;
	const char		*evidence;
};

static int
cli_risk_show(struct store *st, struct cli_risk_args *a)
{
	const struct config *conf = a->conf;
	struct be_risk_score s;
	struct account acct;
	const char *error;
	char when[64];
	size_t held = 0;
	int r;

	if ((r = store_account_get(st, a->account, &acct, &error)) != 0)
		return cli_fail(r == 1 ? "no such account" : error);
	printf("account: %s\n", acct.address);
	if (be_risk_score(conf, st, acct.address, policy_now(), &s, NULL, NULL,
	    &error) < 0) {
		account_deinit(&acct);
		return cli_fail(error);
	}
	printf("score: %.1f\n", s.score);
	printf("thresholds: notify=%d hold=%d suspend=%d half-life=%ds\n",
	    conf->risk_notify, conf->risk_hold, conf->risk_suspend,
	    conf->risk_half_life);
	policy_format_time(s.state.since, when, sizeof(when));
	printf("response: %s%s", risk_level_name(s.state.level),
	    s.state.level > 0 ? (s.state.automatic ? " (automatic)" :
	    " (by the desk)") : "");
	if (s.state.level > 0)
		printf(" since %s", when);
	printf("\n");
	if (s.state.reason[0] != '\0')
		printf("reason: %s\n", s.state.reason);
	printf("suspended: %s\n", acct.suspended ? "yes" : "no");
	printf("exempt: %s\n", s.state.exempt ? "yes" : "no");
	if (s.state.warned > 0) {
		policy_format_time(s.state.warned, when, sizeof(when));
		printf("warned: %s %s\n", when, s.state.warning);
	}
	if (s.state.cleared > 0) {
		policy_format_time(s.state.cleared, when, sizeof(when));
		printf("cleared: %s\n", when);
	}
	(void)queue_hold_each(conf->spool_dir, acct.address, 1,
	    cli_risk_count_held, &held);
	printf("held messages: %zu\n", held);
	printf("signals: %zu\n", s.signals);
	(void)be_risk_score(conf, st, acct.address, policy_now(), &s,
	    cli_risk_signal, NULL, &error);
	account_deinit(&acct);
	return 0;
}

struct cli_risk_top_row {
	char	*account;
	double	 score;
	int	 level, response;
};

struct cli_risk_top {
	const struct config	*conf;
	struct store		*st;
	struct cli_risk_top_row	*rows;
	size_t			 n;
	const char		*error;
};

static int
cli_risk_top_account(const char *account, void *ctx)
{
	struct cli_risk_top *t = ctx;
	struct be_risk_score s;

	if (be_risk_score(t->conf, t->st, account, policy_now(), &s, NULL,
	    NULL, &t->error) < 0)
		return -1;
	if (s.score <= 0 && s.state.level == 0)
		return 0;
	t->rows = xreallocarray(t->rows, t->n + 1, sizeof(*t->rows));
	t->rows[t->n].account = xstrdup(account);
	t->rows[t->n].score = s.score;
	t->rows[t->n].level = s.level;
	t->rows[t->n].response = s.state.level;
	t->n++;
	return 0;
}

static int
cli_risk_top_cmp(const void *x, const void *y)
{
	const struct cli_risk_top_row *a = x, *b = y;

	if (a->score != b->score)
		return a->score < b->score ? 1 : -1;
	return strcmp(a->account, b->account);
}

static int
cli_risk_top(struct store *st, struct cli_risk_args *a)
{
	struct cli_risk_top t = { a->conf, st, NULL, 0, NULL };
	const char *error;
	int64_t now = policy_now();
	size_t i;

	/* XXX: every account with a recent event is scored here; fine for
	 * the thousands a day an ISP sees, a kept score when millions. */
	if (store_risk_accounts(st, now - risk_horizon(a->conf), 0,
	    cli_risk_top_account, &t, &error) < 0) {
		for (i = 0; i < t.n; i++)
			free(t.rows[i].account);
		free(t.rows);
		return cli_fail(t.error != NULL ? t.error : error);
	}
	if (t.n > 0)
		qsort(t.rows, t.n, sizeof(*t.rows), cli_risk_top_cmp);
	printf("%-8s %-8s %-8s %s\n", "SCORE", "CALLS", "RESPONSE",
	    "ACCOUNT");
	for (i = 0; i < t.n; i++) {
		if (i < a->top)
			printf("%-8.1f %-8s %-8s %s\n", t.rows[i].score,
			    risk_level_name(t.rows[i].level),
			    risk_level_name(t.rows[i].response),
			    t.rows[i].account);
		free(t.rows[i].account);
	}
	free(t.rows);
	return 0;
}

static int
cli_risk_run(struct store *st, void *ctx)
{
	struct cli_risk_args *a = ctx;
	const char *error;
	int r;

	if (a->top > 0)
		return cli_risk_top(st, a);
	if (a->action == NULL)
		return cli_risk_show(st, a);
	if (strcmp(a->action, "clear") == 0)
		r = be_risk_clear(a->conf, st, a->account, "cli", NULL, &error);
	else if (strcmp(a->action, "hold") == 0)
		r = be_risk_desk_hold(a->conf, st, a->account, "cli", NULL,
		    &error);
	else
		r = be_risk_set_exempt(a->conf, st, a->account, a->exempt,
		    "cli", NULL, &error);
	if (r != 0)
		return cli_fail(error);
	printf("%s: %s\n", a->account, strcmp(a->action, "clear") == 0 ?
	    "response cleared" : strcmp(a->action, "hold") == 0 ?
	    "submissions held" : a->exempt ? "exempt" : "not exempt");
	return 0;
}

int
cli_risk(const struct config *conf, int argc, char **argv)
{
	struct cli_risk_args a = { conf, NULL, NULL, 0, 0, NULL };

	if (argc >= 1 && strcmp(argv[0], "--top") == 0 && argc <= 2) {
		char *end;
		long n = argc == 2 ? strtol(argv[1], &end, 10) : 20;

		if (argc == 2 && (*end != '\0' || n < 1 || n > 100000))
			goto usage;
		a.top = (size_t)n;
		return cli_with_store(conf, cli_risk_run, &a);
	}
	if (argc < 1 || argv[0][0] == '-')
		goto usage;
	a.account = argv[0];
	if (argc == 2 && strcmp(argv[1], "--clear") == 0)
		a.action = "clear";
	else if (argc == 2 && strcmp(argv[1], "--hold") == 0)
		a.action = "hold";
	else if (argc == 3 && strcmp(argv[1], "--exempt") == 0 &&
	    (strcmp(argv[2], "on") == 0 || strcmp(argv[2], "off") == 0)) {
		a.action = "exempt";
		a.exempt = strcmp(argv[2], "on") == 0;
	} else if (argc != 1)
		goto usage;
	return cli_with_store(conf, cli_risk_run, &a);
usage:
	fprintf(stderr, "usage:\n");
	cli_risk_usage();
	return 2;
}

static int
cli_warn_run(struct store *st, void *ctx)
{
	struct cli_risk_args *a = ctx;
	struct str text = STR_INIT;
	struct trace_keys k;
	const char *error;
	char buf[65536];
	size_t n, traced;
	FILE *fp = NULL;
	int r;

	if (a->evidence != NULL) {
		fp = strcmp(a->evidence, "-") == 0 ? stdin :
		    fopen(a->evidence, "r");
		if (fp == NULL) {
			fprintf(stderr, "sekisho: %s: %s\n", a->evidence,
			    strerror(errno));
			return 1;
		}
		while ((n = fread(buf, 1, sizeof(buf), fp)) > 0 &&
		    text.len < CLI_RISK_EVIDENCE_MAX)
			str_append_n(&text, buf, n);
		if (fp != stdin)
			fclose(fp);
	}
	if (a->evidence != NULL)
		trace_extract(str_c(&text), text.len, &k);
	str_deinit(&text);
	r = be_risk_warn(a->conf, st, NULL, a->account, "cli", NULL,
	    a->evidence != NULL ? &k : NULL, &traced, &error);
	if (a->evidence != NULL)
		trace_keys_free(&k);
	if (r != 0)
		return cli_fail(error);
	printf("%s: warning queued, %zu submission(s) traced\n", a->account,
	    traced);
	return 0;
}

int
cli_warn(const struct config *conf, int argc, char **argv)
{
	struct cli_risk_args a = { conf, NULL, NULL, 0, 0, NULL };

	if (argc == 1 && argv[0][0] != '-')
		a.account = argv[0];
	else if (argc == 3 && argv[0][0] != '-' &&
	    strcmp(argv[1], "--evidence") == 0) {
		a.account = argv[0];
		a.evidence = argv[2];
	} else {
		fprintf(stderr, "usage:\n");
		cli_risk_usage();
		return 2;
	}
	return cli_with_store(conf, cli_warn_run, &a);
}
