/*
 * metrics: counters in shared memory, rendered in the Prometheus text
 * exposition format 0.0.4 and as "sekisho status" (see metrics.h and
 * docs/operations.md).
 */
#include <sys/mman.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "be_proto.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "version.h"
#include "xmalloc.h"

/* Several processes share the region: the atomics must not be emulated
 * with a lock that lives in one process's memory. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
    "64-bit atomics must be lock-free to live in shared memory");

#define METRICS_MAGIC		0x53454b49u	/* "SEKI" */
#define METRICS_LISTENERS	32
#define METRICS_LISTENER_LEN	96
/* 26 * 26 ISO 3166 alpha-2 slots, then "internal" and "unknown". */
#define METRICS_CC_INTERNAL	(26 * 26)
#define METRICS_CC_UNKNOWN	(26 * 26 + 1)
#define METRICS_CC_COUNT	(26 * 26 + 2)
#define METRICS_BUCKETS		14	/* the last one is +Inf */

typedef _Atomic uint64_t metrics_counter;
typedef _Atomic int64_t metrics_gauge;

struct metrics_hist {
	metrics_counter	 bucket[METRICS_BUCKETS];	/* not cumulative */
	metrics_counter	 sum_us;
};

struct metrics_region {
	uint32_t	 magic;
	int64_t		 pid;
	int64_t		 start_time;		/* unix */
	metrics_gauge	 reload_time;		/* unix, 0 = never */
	metrics_gauge	 store_up;		/* -1 not tried yet */
	metrics_gauge	 nlisteners;
	char		 listeners[METRICS_LISTENERS][METRICS_LISTENER_LEN];

	metrics_counter	 conn_total[METRICS_ROLES];
	metrics_gauge	 conn_now[METRICS_ROLES];
	metrics_counter	 conn_refused[METRICS_ROLES][METRICS_CONN_REFUSAL_COUNT];
	metrics_counter	 auth[METRICS_SVC_COUNT][METRICS_AUTH_RESULT_COUNT];
	metrics_counter	 accepted[METRICS_ROLES];
	metrics_counter	 refused[METRICS_REFUSAL_COUNT];
	metrics_counter	 country[METRICS_CC_COUNT][2];	/* refused, accepted */
	metrics_counter	 delivery[METRICS_DELIVERY_KIND_COUNT]
			    [METRICS_DELIVERY_RESULT_COUNT];
	metrics_gauge	 queue_messages;
	metrics_gauge	 queue_oldest_ms;

	struct metrics_hist commit;
	struct metrics_hist auth_time[METRICS_SVC_COUNT];
	struct metrics_hist delivery_time[METRICS_DELIVERY_KIND_COUNT];
	/* mail filters (issue 16): verdicts by name, metrics_milter_names */
	metrics_counter	 milter[METRICS_MILTER_COUNT];
};

/*
 * Every process that counts writes the region, session processes too, so
 * its readers (the back side renders it) trust no bound in it (issue
 * 13): array sizes are the compile-time ones, a listener line is copied
 * and ended, and the daemon's pid and start time, which the master sets
 * before it forks, are read from this process's own copies.
 */
static struct metrics_region *metrics_r;
static int64_t metrics_pid, metrics_start;	/* not in the region */

/* Bucket bounds in microseconds and as the "le" label; the last is +Inf.
 * Short: a back-side round trip or a password hash. Long: a message's
 * way from the 250 to the mailbox or the next hop, retries included. */
static const uint64_t metrics_short_us[METRICS_BUCKETS - 1] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000,
};
static const char *const metrics_short_le[METRICS_BUCKETS] = {
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
	"0.5", "1", "2.5", "5", "10", "+Inf",
};
static const uint64_t metrics_long_us[METRICS_BUCKETS - 1] = {
	10000, 100000, 500000, 1000000, 5000000, 15000000, 60000000,
	300000000, 900000000, 3600000000u, UINT64_C(14400000000),
	UINT64_C(86400000000), UINT64_C(432000000000),
};
static const char *const metrics_long_le[METRICS_BUCKETS] = {
	"0.01", "0.1", "0.5", "1", "5", "15", "60", "300", "900", "3600",
	"14400", "86400", "432000", "+Inf",
};

static const char *const metrics_svc_names[METRICS_SVC_COUNT] = {
	"smtp", "pop3", "apop", "portal", "imap",
};
static const char *const metrics_auth_names[METRICS_AUTH_RESULT_COUNT] = {
	"ok", "fail", "suspended", "locked", "tempfail",
};
static const char *const metrics_refusal_names[METRICS_REFUSAL_COUNT] = {
	"overseas", "limit", "suspended", "alignment", "relay",
	"unknown_user", "size", "content", "recipients", "auth_required",
	"tempfail",
};
static const char *const metrics_conn_refusal_names[
    METRICS_CONN_REFUSAL_COUNT] = { "max_connections", "per_ip",
    "memory", "not_allowed" };
static const char *const metrics_kind_names[METRICS_DELIVERY_KIND_COUNT] = {
	"local", "remote",
};
static const char *const metrics_result_names[
    METRICS_DELIVERY_RESULT_COUNT] = { "delivered", "deferred", "bounced" };

#define metrics_add(p, n) \
	atomic_fetch_add_explicit((p), (n), memory_order_relaxed)
#define metrics_get(p) atomic_load_explicit((p), memory_order_relaxed)
#define metrics_set(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)

static void
metrics_set_listeners(const struct config *conf)
{
	size_t i, n = conf->listen_count;

	if (n > METRICS_LISTENERS)
		n = METRICS_LISTENERS;
	/* XXX: a reader in another process may see a line half rewritten
	 * during a reload; it is only shown by "sekisho status". */
	for (i = 0; i < n; i++) {
		const struct listen_conf *lc = &conf->listen[i];

		snprintf(metrics_r->listeners[i], METRICS_LISTENER_LEN,
		    "%s %s%s%s:%s%s", config_role_name(lc->role),
		    strchr(lc->host, ':') != NULL ? "[" : "", lc->host,
		    strchr(lc->host, ':') != NULL ? "]" : "", lc->port,
		    lc->proxy ? " proxy" : "");
	}
	metrics_set(&metrics_r->nlisteners, (int64_t)n);
}

void
metrics_init(const struct config *conf)
{
	void *p;

	if (metrics_r == NULL) {
		p = mmap(NULL, sizeof(*metrics_r), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			fatal("metrics: mmap");
		/* Fresh anonymous memory is zero: every counter starts at 0. */
		metrics_r = p;
		metrics_r->magic = METRICS_MAGIC;
		metrics_pid = (int64_t)getpid();
		metrics_start = (int64_t)time(NULL);
		metrics_r->pid = metrics_pid;
		metrics_r->start_time = metrics_start;
		metrics_set(&metrics_r->store_up, -1);
	}
	metrics_set_listeners(conf);
}

int
metrics_enabled(void)
{
	return metrics_r != NULL;
}

void
metrics_reloaded(const struct config *conf)
{
	if (metrics_r == NULL)
		return;
	metrics_set_listeners(conf);
	metrics_set(&metrics_r->reload_time, (int64_t)time(NULL));
}

uint64_t
metrics_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
metrics_observe(struct metrics_hist *h, const uint64_t *bounds,
    uint64_t us)
{
	size_t i;

	for (i = 0; i < METRICS_BUCKETS - 1; i++)
		if (us <= bounds[i])
			break;
	metrics_add(&h->bucket[i], 1);
	metrics_add(&h->sum_us, us);
}

static void
metrics_observe_since(struct metrics_hist *h, uint64_t start_us)
{
	uint64_t now = metrics_now_us();

	if (start_us == 0)
		return;
	metrics_observe(h, metrics_short_us, now > start_us ?
	    now - start_us : 0);
}

static int
metrics_role_ok(int role)
{
	return metrics_r != NULL && role >= 0 && role < METRICS_ROLES;
}

void
metrics_conn_open(int role)
{
	if (!metrics_role_ok(role))
		return;
	metrics_add(&metrics_r->conn_total[role], 1);
	metrics_add(&metrics_r->conn_now[role], 1);
}

void
metrics_conn_close(int role)
{
	if (!metrics_role_ok(role))
		return;
	metrics_add(&metrics_r->conn_now[role], -1);
}

void
metrics_conn_refused(int role, enum metrics_conn_refusal why)
{
	if (!metrics_role_ok(role) || (unsigned)why >=
	    METRICS_CONN_REFUSAL_COUNT)
		return;
	metrics_add(&metrics_r->conn_refused[role][why], 1);
}

void
metrics_auth(enum metrics_service svc, enum metrics_auth_result r,
    uint64_t start_us)
{
	if (metrics_r == NULL || (unsigned)svc >= METRICS_SVC_COUNT ||
	    (unsigned)r >= METRICS_AUTH_RESULT_COUNT)
		return;
	metrics_add(&metrics_r->auth[svc][r], 1);
	metrics_observe_since(&metrics_r->auth_time[svc], start_us);
}

static int
metrics_index(const char *const *names, size_t n, const char *name)
{
	size_t i;

	if (name == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

void
metrics_auth_name(const char *svc, const char *result, uint64_t start_us)
{
	int s = metrics_index(metrics_svc_names, METRICS_SVC_COUNT, svc);
	int r = metrics_index(metrics_auth_names, METRICS_AUTH_RESULT_COUNT,
	    result);

	if (s >= 0 && r >= 0)
		metrics_auth((enum metrics_service)s,
		    (enum metrics_auth_result)r, start_us);
}

void
metrics_auth_be(const char *svc, unsigned be_result, uint64_t start_us)
{
	static const char *const words[] = {
		[BE_AUTH_OK] = "ok", [BE_AUTH_FAIL] = "fail",
		[BE_AUTH_SUSPENDED] = "suspended",
		[BE_AUTH_TEMPFAIL] = "tempfail", [BE_AUTH_LOCKED] = "locked",
	};

	if (be_result < sizeof(words) / sizeof(words[0]))
		metrics_auth_name(svc, words[be_result], start_us);
}

void
metrics_accepted(int role, uint64_t start_us)
{
	if (!metrics_role_ok(role))
		return;
	metrics_add(&metrics_r->accepted[role], 1);
	metrics_observe_since(&metrics_r->commit, start_us);
}

void
metrics_refused(enum metrics_refusal why)
{
	if (metrics_r == NULL || (unsigned)why >= METRICS_REFUSAL_COUNT)
		return;
	metrics_add(&metrics_r->refused[why], 1);
}

static size_t
metrics_cc_index(const char *cc)
{
	if (cc == NULL)
		return METRICS_CC_UNKNOWN;
	if (cc[0] >= 'A' && cc[0] <= 'Z' && cc[1] >= 'A' && cc[1] <= 'Z' &&
	    cc[2] == '\0')
		return (size_t)(cc[0] - 'A') * 26 + (size_t)(cc[1] - 'A');
	if (strcmp(cc, "internal") == 0)
		return METRICS_CC_INTERNAL;
	return METRICS_CC_UNKNOWN;
}

void
metrics_country(const char *cc, int accepted)
{
	if (metrics_r == NULL)
		return;
	metrics_add(&metrics_r->country[metrics_cc_index(cc)][accepted ? 1 :
	    0], 1);
}

void
metrics_delivery(enum metrics_delivery_kind kind,
    enum metrics_delivery_result r, uint64_t queued_ms)
{
	struct timespec ts;
	uint64_t now_ms;

	if (metrics_r == NULL || (unsigned)kind >= METRICS_DELIVERY_KIND_COUNT ||
	    (unsigned)r >= METRICS_DELIVERY_RESULT_COUNT)
		return;
	metrics_add(&metrics_r->delivery[kind][r], 1);
	if (r != METRICS_DELIVERED || queued_ms == 0)
		return;
	/* The queue ID's clock is the wall clock (envelope.c). */
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	metrics_observe(&metrics_r->delivery_time[kind], metrics_long_us,
	    now_ms > queued_ms ? (now_ms - queued_ms) * 1000 : 0);
}

void
metrics_queue(int64_t messages, int64_t oldest_ms)
{
	if (metrics_r == NULL)
		return;
	metrics_set(&metrics_r->queue_messages, messages);
	metrics_set(&metrics_r->queue_oldest_ms, oldest_ms);
}

void
metrics_store_up(int up)
{
	if (metrics_r == NULL)
		return;
	metrics_set(&metrics_r->store_up, up ? 1 : 0);
}

static const char *const metrics_milter_names[METRICS_MILTER_COUNT] = {
	"continue", "accept", "reject", "tempfail", "discard", "quarantine",
	"default",
};

void
metrics_milter(const char *verdict)
{
	if (metrics_r == NULL)
		return;
	for (int i = 0; i < METRICS_MILTER_COUNT; i++)
		if (strcmp(verdict, metrics_milter_names[i]) == 0) {
			metrics_add(&metrics_r->milter[i], 1);
			return;
		}
}

uint64_t
metrics_queue_id_ms(const char *id)
{
	uint64_t v = 0;
	int i;

	if (id == NULL)
		return 0;
	for (i = 0; i < 12; i++) {
		char c = id[i];

		if (c >= '0' && c <= '9')
			v = v * 16 + (uint64_t)(c - '0');
		else if (c >= 'A' && c <= 'F')
			v = v * 16 + (uint64_t)(c - 'A' + 10);
		else
			return 0;
	}
	return v;
}

/* ---- rendering ----------------------------------------------------- */

static void
metrics_head(struct str *out, const char *name, const char *type,
    const char *help)
{
	str_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

static int
metrics_role_named(int role)
{
	/* Roles the config knows; the rest of the slots stay silent. */
	return strcmp(config_role_name((enum listen_role)role), "unknown") !=
	    0;
}

static void
metrics_render_hist(struct str *out, const char *name, const char *labels,
    const struct metrics_hist *h, const char *const *le)
{
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i < METRICS_BUCKETS; i++) {
		cum += metrics_get(&h->bucket[i]);
		str_printf(out, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name,
		    labels, *labels != '\0' ? "," : "", le[i], cum);
	}
	uint64_t sum = metrics_get(&h->sum_us);

	/* _count is the +Inf bucket, so the two agree even while other
	 * processes are counting. */
	str_printf(out, "%s_sum%s%s%s %" PRIu64 ".%06" PRIu64 "\n", name,
	    *labels != '\0' ? "{" : "", labels, *labels != '\0' ? "}" : "",
	    sum / 1000000, sum % 1000000);
	str_printf(out, "%s_count%s%s%s %" PRIu64 "\n", name,
	    *labels != '\0' ? "{" : "", labels, *labels != '\0' ? "}" : "",
	    cum);
}

static int64_t
metrics_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
metrics_queue_age(void)
{
	int64_t oldest = metrics_get(&metrics_r->queue_oldest_ms);
	int64_t now = metrics_wall_ms();

	if (oldest <= 0 || now < oldest)
		return 0;
	return (now - oldest) / 1000;
}

void
metrics_render(struct str *out)
{
	const struct metrics_region *m = metrics_r;
	char labels[64];
	int role;
	size_t i, j;

	if (m == NULL)
		return;
	metrics_head(out, "sekisho_build_info", "gauge",
	    "Always 1; the version of the running daemon as a label.");
	str_printf(out, "sekisho_build_info{version=\"%s\"} 1\n",
	    SEKISHO_VERSION);
	metrics_head(out, "sekisho_start_time_seconds", "gauge",
	    "When the daemon started, in seconds since the epoch.");
	str_printf(out, "sekisho_start_time_seconds %" PRId64 "\n",
	    metrics_start);
	metrics_head(out, "sekisho_last_reload_time_seconds", "gauge",
	    "When the last successful reload (SIGHUP) happened; 0 if none.");
	str_printf(out, "sekisho_last_reload_time_seconds %" PRId64 "\n",
	    metrics_get(&m->reload_time));

	metrics_head(out, "sekisho_connections_total", "counter",
	    "Connections accepted, by listener role.");
	for (role = 0; role < METRICS_ROLES; role++)
		if (metrics_role_named(role))
			str_printf(out, "sekisho_connections_total{role=\"%s\"} "
			    "%" PRIu64 "\n", config_role_name(role),
			    metrics_get(&m->conn_total[role]));
	/* Not "sekisho_connections": the counter's family is that name. */
	metrics_head(out, "sekisho_connections_open", "gauge",
	    "Connections open now, by listener role.");
	for (role = 0; role < METRICS_ROLES; role++)
		if (metrics_role_named(role))
			str_printf(out, "sekisho_connections_open{role=\"%s\"} "
			    "%" PRId64 "\n", config_role_name(role),
			    metrics_get(&m->conn_now[role]));
	metrics_head(out, "sekisho_connections_refused_total", "counter",
	    "Connections refused by a connection limit, for want of "
	    "memory or (policy) from outside policy_clients, by role and "
	    "reason.");
	for (role = 0; role < METRICS_ROLES; role++)
		if (metrics_role_named(role))
			for (j = 0; j < METRICS_CONN_REFUSAL_COUNT; j++)
				str_printf(out, "sekisho_connections_refused_"
				    "total{role=\"%s\",reason=\"%s\"} %" PRIu64
				    "\n", config_role_name(role),
				    metrics_conn_refusal_names[j],
				    metrics_get(&m->conn_refused[role][j]));

	metrics_head(out, "sekisho_auth_total", "counter",
	    "Logins answered, by service and result.");
	for (i = 0; i < METRICS_SVC_COUNT; i++)
		for (j = 0; j < METRICS_AUTH_RESULT_COUNT; j++)
			str_printf(out, "sekisho_auth_total{service=\"%s\","
			    "result=\"%s\"} %" PRIu64 "\n",
			    metrics_svc_names[i], metrics_auth_names[j],
			    metrics_get(&m->auth[i][j]));

	metrics_head(out, "sekisho_messages_accepted_total", "counter",
	    "Messages queued (250 after DATA), by listener role.");
	for (role = 0; role < METRICS_ROLES; role++)
		if (metrics_role_named(role))
			str_printf(out, "sekisho_messages_accepted_total{role="
			    "\"%s\"} %" PRIu64 "\n", config_role_name(role),
			    metrics_get(&m->accepted[role]));
	metrics_head(out, "sekisho_messages_refused_total", "counter",
	    "Refusals of a message or one of its recipients, by reason.");
	for (i = 0; i < METRICS_REFUSAL_COUNT; i++)
		str_printf(out, "sekisho_messages_refused_total{reason=\"%s\"} "
		    "%" PRIu64 "\n", metrics_refusal_names[i],
		    metrics_get(&m->refused[i]));
	metrics_head(out, "sekisho_policy_decisions_total", "counter",
	    "Sending-policy decisions on submissions, by the client's "
	    "country and result.");
	for (i = 0; i < METRICS_CC_COUNT; i++) {
		char cc[16];

		if (i == METRICS_CC_INTERNAL)
			xstrlcpy(cc, "internal", sizeof(cc));
		else if (i == METRICS_CC_UNKNOWN)
			xstrlcpy(cc, "unknown", sizeof(cc));
		else
			snprintf(cc, sizeof(cc), "%c%c", (char)('A' + i / 26),
			    (char)('A' + i % 26));
		for (j = 0; j < 2; j++) {
			uint64_t v = metrics_get(&m->country[i][j]);

			if (v > 0)
				str_printf(out, "sekisho_policy_decisions_total"
				    "{country=\"%s\",result=\"%s\"} %" PRIu64
				    "\n", cc, j ? "accepted" : "refused", v);
		}
	}

	metrics_head(out, "sekisho_queue_messages", "gauge",
	    "Messages in the queue (spool_dir/queue).");
	str_printf(out, "sekisho_queue_messages %" PRId64 "\n",
	    metrics_get(&m->queue_messages));
	metrics_head(out, "sekisho_queue_oldest_age_seconds", "gauge",
	    "Age of the oldest message in the queue; 0 when it is empty.");
	str_printf(out, "sekisho_queue_oldest_age_seconds %" PRId64 "\n",
	    metrics_queue_age());
	metrics_head(out, "sekisho_deliveries_total", "counter",
	    "Recipients' delivery attempts, by kind and result.");
	for (i = 0; i < METRICS_DELIVERY_KIND_COUNT; i++)
		for (j = 0; j < METRICS_DELIVERY_RESULT_COUNT; j++)
			str_printf(out, "sekisho_deliveries_total{kind=\"%s\","
			    "result=\"%s\"} %" PRIu64 "\n",
			    metrics_kind_names[i], metrics_result_names[j],
			    metrics_get(&m->delivery[i][j]));
	metrics_head(out, "sekisho_store_up", "gauge",
	    "1 if the back side could open the store at its last attempt, "
	    "0 if not, -1 before the first.");
	str_printf(out, "sekisho_store_up %" PRId64 "\n",
	    metrics_get(&m->store_up));
	metrics_head(out, "sekisho_milter_verdicts_total", "counter",
	    "Mail filters' verdicts, one per filter per message (default: "
	    "the filter failed and milter_default_action was taken).");
	for (i = 0; i < METRICS_MILTER_COUNT; i++)
		str_printf(out, "sekisho_milter_verdicts_total{verdict=\"%s\"} "
		    "%" PRIu64 "\n", metrics_milter_names[i],
		    metrics_get(&m->milter[i]));

	metrics_head(out, "sekisho_smtp_commit_seconds", "histogram",
	    "Time from the final dot to the spool's answer (BE_SPOOL_COMMIT: "
	    "policy count, fsync, rename).");
	metrics_render_hist(out, "sekisho_smtp_commit_seconds", "",
	    &m->commit, metrics_short_le);
	metrics_head(out, "sekisho_auth_seconds", "histogram",
	    "Time the back side spends on a login (throttling look-up, "
	    "password hash), by service.");
	for (i = 0; i < METRICS_SVC_COUNT; i++) {
		snprintf(labels, sizeof(labels), "service=\"%s\"",
		    metrics_svc_names[i]);
		metrics_render_hist(out, "sekisho_auth_seconds", labels,
		    &m->auth_time[i], metrics_short_le);
	}
	metrics_head(out, "sekisho_delivery_seconds", "histogram",
	    "Time from a message's arrival to its delivery, per recipient, "
	    "retries included, by kind.");
	for (i = 0; i < METRICS_DELIVERY_KIND_COUNT; i++) {
		snprintf(labels, sizeof(labels), "kind=\"%s\"",
		    metrics_kind_names[i]);
		metrics_render_hist(out, "sekisho_delivery_seconds", labels,
		    &m->delivery_time[i], metrics_long_le);
	}
}

static void
metrics_time(char *buf, size_t len, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
		xstrlcpy(buf, "never", len);
}

void
metrics_status(struct str *out)
{
	const struct metrics_region *m = metrics_r;
	char when[64];
	int64_t up, now = (int64_t)time(NULL), conns = 0, store, n;
	int role;

	if (m == NULL)
		return;
	up = now > metrics_start ? now - metrics_start : 0;
	for (role = 0; role < METRICS_ROLES; role++)
		conns += metrics_get(&m->conn_now[role]);
	str_printf(out, "pid: %" PRId64 "\n", metrics_pid);
	str_printf(out, "version: %s\n", SEKISHO_VERSION);
	metrics_time(when, sizeof(when), metrics_start);
	str_printf(out, "started: %s\n", when);
	str_printf(out, "uptime: %" PRId64 "d %02" PRId64 ":%02" PRId64
	    ":%02" PRId64 "\n", up / 86400, up / 3600 % 24, up / 60 % 60,
	    up % 60);
	n = metrics_get(&m->nlisteners);
	for (int64_t i = 0; i < n && i < METRICS_LISTENERS; i++) {
		char line[METRICS_LISTENER_LEN];

		/* copied: another process may rewrite it meanwhile */
		memcpy(line, m->listeners[i], sizeof(line));
		line[sizeof(line) - 1] = '\0';
		str_printf(out, "listener: %s\n", line);
	}
	str_printf(out, "connections: %" PRId64 "\n", conns);
	str_printf(out, "queue: %" PRId64 "\n",
	    metrics_get(&m->queue_messages));
	str_printf(out, "queue oldest: %" PRId64 " s\n", metrics_queue_age());
	store = metrics_get(&m->store_up);
	str_printf(out, "store reachable: %s\n", store < 0 ? "not used yet" :
	    store ? "yes" : "no");
	metrics_time(when, sizeof(when), metrics_get(&m->reload_time));
	str_printf(out, "last reload: %s\n", when);
}

#ifdef SEKISHO_TEST_HOOKS
void
metrics_test_scribble(void)
{
	if (metrics_r != NULL)
		memset(metrics_r, 0xff, sizeof(*metrics_r));
}
#endif
