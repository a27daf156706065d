/*
 * cli_policy: the operator's and abuse desk's side of the sending
 * policy: overseas permission, per-account limits, events, and trace
 * (from a spam report to the account). Output is one item per line,
 * stable for scripts.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/config.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../policy/policy.h"
#include "../policy/trace.h"
#include "../backend/trace_token.h"
#include "../store/store.h"
#include "cli.h"

void
cli_policy_usage(void)
{
	printf("  overseas allow ADDRESS [--days N | --duration D] "
	    "[--countries CC,..]\n"
	    "                         let ADDRESS send from abroad until now + N "
	    "days\n"
	    "                         (from those countries only; none: every "
	    "one)\n"
	    "  overseas deny ADDRESS  end the permission now\n"
	    "  overseas status ADDRESS\n"
	    "  limits show ADDRESS    effective limits and today's counts\n"
	    "  limits set ADDRESS KEY=VALUE...\n"
	    "                         keys: messages_per_day recipients_per_day\n"
	    "                         recipients_per_hour recipients_per_message\n"
	    "                         overseas_recipients_per_day (a number, or\n"
	    "                         'default'), any_sender (yes|no),\n"
	    "                         relay_names (suffixes, comma-separated),\n"
	    "                         refuse_own_from (yes|no)\n"
	    "  events [ADDRESS] [--since D|YYYY-MM-DD] [--limit N]\n"
	    "                         refusals, limits reached, logins locked\n"
	    "  trace FILE|-           find the account behind a spam report\n"
	    "                         (and open Received tokens, "
	    "received_client = token)\n"
	    "  trace-key rotate|list  a new key for Received tokens; the old "
	    "ones\n"
	    "                         open tokens for trace_token_key_keep\n");
}

static struct store *
cli_policy_store(const struct config *conf)
{
	const char *error;
	struct store *st = store_open(conf->store, &error);

	if (st == NULL) {
		fprintf(stderr, "sekisho: %s\n", error);
		return NULL;
	}
	if (store_init_schema(st, &error) < 0) {
		fprintf(stderr, "sekisho: %s\n", error);
		store_close(&st);
	}
	return st;
}

/* "90", "90s", "15m", "2h", "7d": seconds, or -1. */
static int64_t
cli_policy_duration(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v < 0 || v > 3650LL * 86400)
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		v *= 60;
		break;
	case 'h':
		v *= 3600;
		break;
	case 'd':
		v *= 86400;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	return v;
}

static void
cli_policy_print_overseas(const char *address, int64_t until,
    const char *countries)
{
	char when[64];

	if (until > policy_now()) {
		policy_format_time(until, when, sizeof(when));
		printf("%s: sending from abroad allowed until %s from %s\n",
		    address, when, *countries != '\0' ? countries :
		    "every country");
	} else
		printf("%s: sending from abroad not allowed\n", address);
}

int
cli_overseas(const struct config *conf, int argc, char **argv)
{
	struct account_policy p;
	struct store *st;
	const char *error;
	int64_t secs = (int64_t)conf->overseas_permission_days * 86400;
	char countries[STORE_COUNTRIES_MAX + 1] = "";
	int r;

	if (argc < 2 || (strcmp(argv[0], "allow") != 0 &&
	    strcmp(argv[0], "deny") != 0 && strcmp(argv[0], "status") != 0)) {
		fprintf(stderr, "usage: sekisho overseas allow|deny|status "
		    "ADDRESS [--days N | --duration D] [--countries CC,..]\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[0], "allow") == 0 && i + 1 < argc &&
		    (strcmp(argv[i], "--days") == 0 ||
		    strcmp(argv[i], "--duration") == 0)) {
			int64_t v = cli_policy_duration(argv[i + 1]);

			if (strcmp(argv[i], "--days") == 0 && v >= 0) {
				if (strspn(argv[i + 1], "0123456789") !=
				    strlen(argv[i + 1]))
					v = -1;
				else
					v *= 86400;
			}
			if (v <= 0) {
				fprintf(stderr, "sekisho: bad %s '%s'\n",
				    argv[i], argv[i + 1]);
				return 2;
			}
			secs = v;
			i++;
			continue;
		}
		if (strcmp(argv[0], "allow") == 0 && i + 1 < argc &&
		    strcmp(argv[i], "--countries") == 0) {
			if (policy_countries_parse(argv[i + 1], countries,
			    sizeof(countries)) < 0) {
				fprintf(stderr, "sekisho: bad --countries '%s' "
				    "(e.g. US,GB)\n", argv[i + 1]);
				return 2;
			}
			i++;
			continue;
		}
		fprintf(stderr, "sekisho: overseas %s: unknown argument '%s'\n",
		    argv[0], argv[i]);
		return 2;
	}
	if ((st = cli_policy_store(conf)) == NULL)
		return 1;
	if (strcmp(argv[0], "status") == 0) {
		r = store_policy_get(st, argv[1], &p, &error);
		if (r == 0)
			cli_policy_print_overseas(argv[1], p.overseas_until,
			    p.overseas_countries);
	} else if (strcmp(argv[0], "allow") == 0) {
		/* Turning it on again moves the end to now + N (the notices:
		 * "extended by doing it again") and sets the countries. */
		int64_t until = policy_now() + secs;
		char detail[STORE_COUNTRIES_MAX + 40];

		r = store_overseas_set_countries(st, argv[1], until, countries,
		    &error);
		if (r == 0) {
			snprintf(detail, sizeof(detail), "by the operator (CLI)"
			    "%s%s", *countries != '\0' ? ", from " : "",
			    countries);
			policy_event(st, argv[1], "overseas_allowed", NULL,
			    NULL, detail);
			cli_policy_print_overseas(argv[1], until, countries);
		}
	} else {
		/* Turning it on again moves the end to now + N (the notices:
		 * "extended by doing it again"). */
		int64_t until = strcmp(argv[0], "allow") == 0 ?
		    policy_now() + secs : 0;

		r = store_overseas_set(st, argv[1], until, &error);
		if (r == 0) {
			policy_event(st, argv[1], strcmp(argv[0], "allow") ==
			    0 ? "overseas_allowed" : "overseas_denied", NULL,
			    NULL, "by the operator (CLI)");
			cli_policy_print_overseas(argv[1], until, "");
		}
	}
	if (r != 0)
		fprintf(stderr, "sekisho: %s\n", error);
	store_close(&st);
	return r == 0 ? 0 : 1;
}

static const struct {
	const char	*key;
	size_t		 off;
} cli_limit_keys[] = {
	{ "messages_per_day", offsetof(struct account_policy, limit_msgs_day) },
	{ "recipients_per_day",
	    offsetof(struct account_policy, limit_rcpts_day) },
	{ "recipients_per_hour",
	    offsetof(struct account_policy, limit_rcpts_hour) },
	{ "recipients_per_message",
	    offsetof(struct account_policy, limit_rcpts_msg) },
	{ "overseas_recipients_per_day",
	    offsetof(struct account_policy, limit_overseas_rcpts_day) },
};

static void
cli_limits_show(const struct config *conf, struct store *st,
    const char *address, const struct account_policy *p)
{
	struct policy_limits l;
	const char *error;
	char period[24], when[64];
	int64_t now = policy_now(), m, r, hm, hr, om, orc;

	(void)policy_limits(conf, st, address, &l, &error);
	policy_period('d', now, period, sizeof(period));
	(void)store_count_get(st, address, period, &m, &r, &error);
	policy_period('h', now, period, sizeof(period));
	(void)store_count_get(st, address, period, &hm, &hr, &error);
	policy_period('o', now, period, sizeof(period));
	(void)store_count_get(st, address, period, &om, &orc, &error);
	policy_format_time(policy_period_end('d', now), when, sizeof(when));
	printf("address: %s\n", address);
	printf("messages_per_day: %lld%s (sent today: %lld)\n",
	    (long long)l.msgs_day, p->limit_msgs_day >= 0 ? "" : " (default)",
	    (long long)m);
	printf("recipients_per_day: %lld%s (sent today: %lld)\n",
	    (long long)l.rcpts_day, p->limit_rcpts_day >= 0 ? "" :
	    " (default)", (long long)r);
	printf("recipients_per_hour: %lld%s (this hour: %lld)\n",
	    (long long)l.rcpts_hour, p->limit_rcpts_hour >= 0 ? "" :
	    " (default)", (long long)hr);
	printf("recipients_per_message: %lld%s\n", (long long)l.rcpts_msg,
	    p->limit_rcpts_msg >= 0 ? "" : " (default)");
	printf("overseas_recipients_per_day: %lld%s (sent today from abroad: "
	    "%lld)\n", (long long)l.overseas_rcpts_day,
	    p->limit_overseas_rcpts_day >= 0 ? "" : " (default)",
	    (long long)orc);
	printf("any_sender: %s\n", p->any_sender ? "yes" : "no");
	printf("relay_names: %s\n", p->relay_names[0] != '\0' ?
	    p->relay_names : "(none)");
	/* issue 16: refuse MX mail claiming to be from this account */
	{
		int own = 0;

		(void)store_own_from_get(st, address, &own, &error);
		printf("refuse_own_from: %s\n", own ? "yes" : "no");
	}
	printf("resets: %s\n", when);
	(void)hm;
	(void)om;
}

int
cli_limits(const struct config *conf, int argc, char **argv)
{
	struct account_policy p;
	struct store *st;
	const char *error;
	int r, own_from = -1;

	if (argc < 2 || (strcmp(argv[0], "show") != 0 &&
	    strcmp(argv[0], "set") != 0) ||
	    (strcmp(argv[0], "set") == 0 && argc < 3)) {
		fprintf(stderr, "usage: sekisho limits show ADDRESS | "
		    "limits set ADDRESS KEY=VALUE...\n");
		return 2;
	}
	if ((st = cli_policy_store(conf)) == NULL)
		return 1;
	if ((r = store_policy_get(st, argv[1], &p, &error)) != 0) {
		fprintf(stderr, "sekisho: %s\n", error);
		store_close(&st);
		return 1;
	}
	if (strcmp(argv[0], "set") == 0) {
		for (int i = 2; i < argc; i++) {
			const char *eq = strchr(argv[i], '=');
			size_t klen = eq != NULL ? (size_t)(eq - argv[i]) : 0;
			int done = 0;

			if (eq != NULL && klen == strlen("relay_names") &&
			    strncmp(argv[i], "relay_names", klen) == 0) {
				const char *v = strcmp(eq + 1, "default") == 0 ?
				    "" : eq + 1;
				size_t n = strlen(v);

				/* host name suffixes, comma-separated */
				if (n < sizeof(p.relay_names) &&
				    strspn(v, "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.,") ==
				    n) {
					xstrlcpy(p.relay_names, v,
					    sizeof(p.relay_names));
					done = 1;
				}
			}
			/* issue 16: a column of its own (store_own_from_set) */
			if (eq != NULL && klen == strlen("refuse_own_from") &&
			    strncmp(argv[i], "refuse_own_from", klen) == 0) {
				if (strcmp(eq + 1, "yes") == 0)
					own_from = 1, done = 1;
				else if (strcmp(eq + 1, "no") == 0)
					own_from = 0, done = 1;
			}
			if (eq != NULL && klen == strlen("any_sender") &&
			    strncmp(argv[i], "any_sender", klen) == 0) {
				if (strcmp(eq + 1, "yes") == 0)
					p.any_sender = 1, done = 1;
				else if (strcmp(eq + 1, "no") == 0)
					p.any_sender = 0, done = 1;
			}
			for (size_t k = 0; eq != NULL && !done && k <
			    sizeof(cli_limit_keys) / sizeof(cli_limit_keys[0]);
			    k++) {
				char *end;
				long long v;

				if (strlen(cli_limit_keys[k].key) != klen ||
				    strncmp(argv[i], cli_limit_keys[k].key,
				    klen) != 0)
					continue;
				if (strcmp(eq + 1, "default") == 0)
					v = -1;
				else {
					errno = 0;
					v = strtoll(eq + 1, &end, 10);
					if (errno != 0 || end == eq + 1 ||
					    *end != '\0' || v < 0)
						break;
				}
				*(int64_t *)(void *)((char *)&p +
				    cli_limit_keys[k].off) = v;
				done = 1;
			}
			if (!done) {
				fprintf(stderr, "sekisho: limits set: bad "
				    "setting '%s'\n", argv[i]);
				store_close(&st);
				return 2;
			}
		}
		if (store_policy_set_limits(st, argv[1], &p, &error) != 0 ||
		    (own_from >= 0 && store_own_from_set(st, argv[1],
		    own_from, &error) != 0)) {
			fprintf(stderr, "sekisho: %s\n", error);
			store_close(&st);
			return 1;
		}
		policy_event(st, argv[1], "limits_changed", NULL, NULL,
		    "by the operator (CLI)");
	}
	cli_limits_show(conf, st, argv[1], &p);
	store_close(&st);
	return 0;
}

/* "--since 2d" or "--since 2026-11-20" (local midnight). */
static int64_t
cli_policy_since(const char *s)
{
	struct tm tm;
	int64_t d = cli_policy_duration(s);

	if (d >= 0)
		return policy_now() - d;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(s, "%Y-%m-%d", &tm);

	if (end == NULL || *end != '\0')
		return -1;
	tm.tm_isdst = -1;
	return (int64_t)mktime(&tm);
}

static void
cli_policy_print_time(int64_t unix_time)
{
	time_t t = (time_t)unix_time;
	struct tm tm;
	char buf[64];

	localtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S%z", &tm);
	fputs(buf, stdout);
}

/* An event: TIME ACCOUNT TYPE IP COUNTRY DETAIL, tab-separated (the
 * store cut control characters when it stored them). */
static int
cli_policy_event_row(const struct store_event *e, void *context)
{
	(void)context;
	cli_policy_print_time(e->time);
	printf("\t%s\t%s\t%s\t%s\t%s\n", e->account, e->type, e->ip,
	    e->country, e->detail);
	return 0;
}

/* The key a trace looks up, printed once before its first row. */
struct cli_policy_trace {
	const char	*what;
	const char	*key;
	int		 printed;
};

/* A submission found by a trace, as "key: value" lines. */
static int
cli_policy_trace_row(const struct store_submission *s, void *context)
{
	(void)context;
	printf("queue_id: %s\naccount: %s\ntime: ", s->queue_id, s->account);
	cli_policy_print_time(s->time);
	printf("\nclient: %s\ncountry: %s%s\ntls: %s\nrecipients: %lld\n"
	    "size: %lld\nmessage_id: %s\n\n", s->ip, s->country,
	    s->overseas ? " (sent from abroad under a permission)" : "",
	    s->tls, (long long)s->rcpts, (long long)s->size, s->message_id);
	return 0;
}

int
cli_events(const struct config *conf, int argc, char **argv)
{
	const char *address = NULL, *error;
	struct store *st;
	int64_t since = 0;
	int limit = 100;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
			if ((since = cli_policy_since(argv[++i])) < 0) {
				fprintf(stderr, "sekisho: bad --since '%s' "
				    "(e.g. 2d, 12h, 2026-11-20)\n", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
			limit = atoi(argv[++i]);
		else if (argv[i][0] != '-' && address == NULL)
			address = argv[i];
		else {
			fprintf(stderr, "usage: sekisho events [ADDRESS] "
			    "[--since D|YYYY-MM-DD] [--limit N]\n");
			return 2;
		}
	}
	if ((st = cli_policy_store(conf)) == NULL)
		return 1;
	if (store_event_list(st, address, since, limit, cli_policy_event_row,
	    NULL, &error) < 0) {
		fprintf(stderr, "sekisho: %s\n", error);
		store_close(&st);
		return 1;
	}
	store_close(&st);
	return 0;
}

static int
cli_policy_trace_head(const struct store_submission *s, void *context)
{
	struct cli_policy_trace *head = context;

	if (!head->printed)
		printf("# %s %s: found\n", head->what, head->key);
	head->printed = 1;
	return cli_policy_trace_row(s, NULL);
}

int
cli_trace(const struct config *conf, int argc, char **argv)
{
	struct str text = STR_INIT;
	struct cli_policy_trace head;
	struct trace_keys k;
	struct store *st;
	const char *error;
	char buf[65536];
	size_t n;
	FILE *fp;
	int found = 0;

	if (argc != 1) {
		fprintf(stderr, "usage: sekisho trace FILE|-\n");
		return 2;
	}
	fp = strcmp(argv[0], "-") == 0 ? stdin : fopen(argv[0], "r");
	if (fp == NULL) {
		fprintf(stderr, "sekisho: %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0 &&
	    text.len < 64 * 1024 * 1024)
		str_append_n(&text, buf, n);
	if (fp != stdin)
		fclose(fp);
	trace_extract(str_c(&text), text.len, &k);
	str_deinit(&text);
	/* Received tokens (received_client = token): opened with the key
	 * file alone, before the store (issue 17 item 8) */
	for (size_t i = 0; i < k.ntokens; i++) {
		struct trace_token_info info;
		const char *why;

		if (trace_token_open(conf, k.tokens[i], policy_now(), &info,
		    &why) < 0) {
			printf("# token %.24s...: not opened: %s\n",
			    k.tokens[i], why);
			continue;
		}
		printf("# token %.24s...: opened (key %s)\n", k.tokens[i],
		    info.key_id);
		cli_policy_print_time(info.time);
		printf("\t%s\t%s\n", info.account, info.client);
		found = 1;
	}
	if (k.nqueue_ids == 0 && k.nmsgids == 0 && k.ntokens > 0) {
		trace_keys_free(&k);
		return found ? 0 : 1;
	}
	if (k.nqueue_ids == 0 && k.nmsgids == 0) {
		fprintf(stderr, "sekisho: no Received header of ours and no "
		    "Message-ID in %s\n", argv[0]);
		trace_keys_free(&k);
		return 1;
	}
	if ((st = cli_policy_store(conf)) == NULL) {
		trace_keys_free(&k);
		return 1;
	}
	for (size_t i = 0; i < k.nqueue_ids + k.nmsgids; i++) {
		const char *qid = i < k.nqueue_ids ? k.queue_ids[i] : NULL;
		const char *mid = i < k.nqueue_ids ? NULL :
		    k.msgids[i - k.nqueue_ids];
		int r;

		head.what = qid != NULL ? "queue id" : "message-id";
		head.key = qid != NULL ? qid : mid;
		head.printed = 0;
		/* the header line first, then the rows */
		r = store_submission_find(st, qid, mid, cli_policy_trace_head,
		    &head, &error);
		if (r < 0) {
			fprintf(stderr, "sekisho: %s\n", error);
			continue;
		}
		if (r != 0)
			printf("# %s %s: no submission recorded\n",
			    qid != NULL ? "queue id" : "message-id",
			    qid != NULL ? qid : mid);
		else
			found = 1;
	}
	trace_keys_free(&k);
	store_close(&st);
	return found ? 0 : 1;
}

/* sekisho trace-key rotate|list (issue 17 item 8, docs/trace.md) */
int
cli_trace_key(const struct config *conf, int argc, char **argv)
{
	struct trace_token_key_row rows[TRACE_TOKEN_KEYS_MAX];
	const char *error;
	char id[9];
	int n;

	if (argc == 1 && strcmp(argv[0], "rotate") == 0) {
		if (trace_token_rotate(conf, policy_now(), id, &error) < 0) {
			fprintf(stderr, "sekisho: %s\n", error);
			return 1;
		}
		printf("trace key %s made; tokens sealed before open for %d "
		    "days\n", id, conf->trace_token_key_keep / 86400);
		return 0;
	}
	if (argc != 1 || strcmp(argv[0], "list") != 0) {
		fprintf(stderr, "usage: sekisho trace-key rotate|list\n");
		return 2;
	}
	if ((n = trace_token_keys(conf, policy_now(), rows, TRACE_TOKEN_KEYS_MAX,
	    &error)) < 0) {
		fprintf(stderr, "sekisho: %s\n", error);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		printf("%s\t", rows[i].id);
		cli_policy_print_time(rows[i].created);
		printf("\t%s\n", rows[i].retired == 0 ? "current" :
		    rows[i].opens ? "retired, opens old tokens" :
		    "retired, no longer opens");
	}
	return 0;
}
