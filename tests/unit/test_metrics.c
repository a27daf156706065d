/*
 * test_metrics: the shared counters and their Prometheus rendering.
 * Counts made in a child process must show in the parent (the region is
 * shared across fork), histograms are cumulative with _count equal to
 * the +Inf bucket, and every line is a HELP, TYPE or sample line.
 */
#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/metrics.h"
#include "core/str.h"
#include "unit.h"

/* 1 if text has this exact line. */
static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
		p += n;
	}
	return 0;
}

static void
test_disabled(void)
{
	struct str out = STR_INIT;

	/* Before metrics_init: no-ops, nothing rendered. */
	UNIT_CHECK_INT(metrics_enabled(), 0);
	metrics_refused(METRICS_REFUSE_RELAY);
	metrics_conn_open(0);
	metrics_render(&out);
	UNIT_CHECK_INT(out.len, 0);
	str_deinit(&out);
}

static void
test_queue_id(void)
{
	static const struct {
		const char	*id;
		uint64_t	 ms;
	} rows[] = {
		{ "00000000000100000000", 1 },
		{ "019A2B3C4D5E00000001", UINT64_C(0x019A2B3C4D5E) },
		{ "019a2b3c4d5e00000001", 0 },	/* lower case: not an ID */
		{ "12345", 0 },
		{ "", 0 },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		UNIT_CHECK_INT(metrics_queue_id_ms(rows[i].id), rows[i].ms);
	UNIT_CHECK_INT(metrics_queue_id_ms(NULL), 0);
}

static void
test_counts(void)
{
	struct config *conf = config_defaults();
	struct str out = STR_INIT;
	pid_t pid;
	int status;

	metrics_init(conf);
	UNIT_CHECK_INT(metrics_enabled(), 1);

	/* A child (a session process) counts; the parent sees it. */
	pid = fork();
	if (pid == 0) {
		metrics_conn_open(LISTEN_SUBMISSION);
		metrics_conn_open(LISTEN_SUBMISSION);
		metrics_conn_close(LISTEN_SUBMISSION);
		metrics_conn_refused(LISTEN_MX, METRICS_CONN_PER_IP);
		metrics_auth(METRICS_SVC_SMTP, METRICS_AUTH_FAIL, 0);
		metrics_auth_name("pop3", "ok", metrics_now_us());
		metrics_auth_name("imap", "ok", 0);	/* not a service */
		metrics_auth_name("smtp", "maybe", 0);	/* not a result */
		metrics_accepted(LISTEN_SUBMISSION, metrics_now_us());
		metrics_accepted(LISTEN_MX, 0);
		metrics_refused(METRICS_REFUSE_OVERSEAS);
		metrics_country("US", 0);
		metrics_country("JP", 1);
		metrics_country("JP", 1);
		metrics_country("internal", 1);
		metrics_country("unknown", 0);
		metrics_country("jp", 0);		/* not a code: unknown */
		metrics_delivery(METRICS_DELIVERY_LOCAL, METRICS_DELIVERED, 1);
		metrics_delivery(METRICS_DELIVERY_REMOTE, METRICS_DEFERRED, 0);
		metrics_queue(3, 0);
		metrics_store_up(1);
		_exit(0);
	}
	UNIT_CHECK(pid > 0);
	waitpid(pid, &status, 0);
	UNIT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	metrics_render(&out);
	const char *t = str_c(&out);

	UNIT_CHECK(has_line(t, "# TYPE sekisho_connections_total counter"));
	UNIT_CHECK(has_line(t,
	    "sekisho_connections_total{role=\"submission\"} 2"));
	UNIT_CHECK(has_line(t, "sekisho_connections_open{role=\"submission\"} 1"));
	UNIT_CHECK(has_line(t, "sekisho_connections_open{role=\"mx\"} 0"));
	UNIT_CHECK(has_line(t, "sekisho_connections_refused_total{role=\"mx\","
	    "reason=\"per_ip\"} 1"));
	UNIT_CHECK(has_line(t, "sekisho_auth_total{service=\"smtp\","
	    "result=\"fail\"} 1"));
	UNIT_CHECK(has_line(t, "sekisho_auth_total{service=\"pop3\","
	    "result=\"ok\"} 1"));
	UNIT_CHECK(has_line(t, "sekisho_auth_total{service=\"smtp\","
	    "result=\"ok\"} 0"));
	UNIT_CHECK(has_line(t,
	    "sekisho_messages_accepted_total{role=\"submission\"} 1"));
	UNIT_CHECK(has_line(t,
	    "sekisho_messages_accepted_total{role=\"mx\"} 1"));
	UNIT_CHECK(has_line(t,
	    "sekisho_messages_refused_total{reason=\"overseas\"} 1"));
	UNIT_CHECK(has_line(t,
	    "sekisho_messages_refused_total{reason=\"relay\"} 0"));
	UNIT_CHECK(has_line(t, "sekisho_policy_decisions_total{country=\"US\","
	    "result=\"refused\"} 1"));
	UNIT_CHECK(has_line(t, "sekisho_policy_decisions_total{country=\"JP\","
	    "result=\"accepted\"} 2"));
	UNIT_CHECK(has_line(t, "sekisho_policy_decisions_total{country="
	    "\"internal\",result=\"accepted\"} 1"));
	UNIT_CHECK(has_line(t, "sekisho_policy_decisions_total{country="
	    "\"unknown\",result=\"refused\"} 2"));
	/* series never counted are left out (bounded, but 678 slots) */
	UNIT_CHECK(strstr(t, "country=\"CN\"") == NULL);
	UNIT_CHECK(has_line(t, "sekisho_deliveries_total{kind=\"local\","
	    "result=\"delivered\"} 1"));
	UNIT_CHECK(has_line(t, "sekisho_deliveries_total{kind=\"remote\","
	    "result=\"deferred\"} 1"));
	UNIT_CHECK(has_line(t, "sekisho_queue_messages 3"));
	UNIT_CHECK(has_line(t, "sekisho_queue_oldest_age_seconds 0"));
	UNIT_CHECK(has_line(t, "sekisho_store_up 1"));
	UNIT_CHECK(has_line(t, "# TYPE sekisho_smtp_commit_seconds histogram"));
	UNIT_CHECK(has_line(t,
	    "sekisho_smtp_commit_seconds_bucket{le=\"+Inf\"} 1"));
	UNIT_CHECK(has_line(t, "sekisho_smtp_commit_seconds_count 1"));
	/* the accept on mx had no start time: no observation */
	UNIT_CHECK(has_line(t, "sekisho_auth_seconds_count{service=\"pop3\"} 1"));
	UNIT_CHECK(has_line(t, "sekisho_auth_seconds_count{service=\"smtp\"} 0"));
	/* a message queued at 1 ms after the epoch: the last finite
	 * bucket (5 days) is too small, only +Inf has it */
	UNIT_CHECK(has_line(t, "sekisho_delivery_seconds_bucket{kind=\"local\","
	    "le=\"432000\"} 0"));
	UNIT_CHECK(has_line(t, "sekisho_delivery_seconds_bucket{kind=\"local\","
	    "le=\"+Inf\"} 1"));
	UNIT_CHECK(has_line(t, "sekisho_build_info{version=\"0.1.0\"} 1"));

	/* Every line: a comment or "name{labels} value" with no blank. */
	for (const char *p = t; *p != '\0';) {
		const char *nl = strchr(p, '\n');

		UNIT_CHECK(nl != NULL);
		if (nl == NULL)
			break;
		UNIT_CHECK(nl > p);
		UNIT_CHECK(*p == '#' || strncmp(p, "sekisho_", 8) == 0);
		p = nl + 1;
	}

	str_clear(&out);
	metrics_status(&out);
	t = str_c(&out);
	char want[64];

	snprintf(want, sizeof(want), "pid: %ld", (long)getpid());
	UNIT_CHECK(has_line(t, want));
	UNIT_CHECK(has_line(t, "version: 0.1.0"));
	UNIT_CHECK(has_line(t, "connections: 1"));
	UNIT_CHECK(has_line(t, "queue: 3"));
	UNIT_CHECK(has_line(t, "store reachable: yes"));
	UNIT_CHECK(has_line(t, "last reload: never"));
	UNIT_CHECK(has_line(t, "listener: mx *:25"));

	metrics_reloaded(conf);
	str_clear(&out);
	metrics_status(&out);
	UNIT_CHECK(strstr(str_c(&out), "last reload: never") == NULL);
	str_deinit(&out);
	config_free(&conf);
}

int
main(void)
{
	test_disabled();
	test_queue_id();
	test_counts();
	UNIT_END();
}
