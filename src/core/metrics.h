/*
 * metrics: the daemon's counters, gauges and latency histograms, for the
 * Prometheus text exposition format (GET /metrics on a "metrics"
 * listener, metrics_http.c) and for "sekisho status" (the control socket).
 *
 * Every process of the daemon counts into one region of shared memory
 * made by metrics_init() before any fork (mmap MAP_SHARED|MAP_ANONYMOUS),
 * with relaxed C11 atomics: fixed-size arrays indexed by the enums below,
 * no pointers and no allocation inside, so a session process, the back
 * side and the master see the same numbers and none can corrupt another's
 * view by more than a torn string in the listener list. Label sets are
 * bounded: roles, services, results and reasons are enums; countries are
 * 26 * 26 ISO 3166 slots plus "internal" and "unknown".
 *
 * Before metrics_init() (the CLI, unit tests) every call is a no-op.
 * Names, meanings and the log lines beside them: docs/operations.md.
 */
#ifndef SEKISHO_METRICS_H
#define SEKISHO_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

struct config;

/* Listener roles are enum listen_role (config.h); this many fit. */
#define METRICS_ROLES		16

enum metrics_conn_refusal {
	METRICS_CONN_MAX,	/* max_connections reached */
	METRICS_CONN_PER_IP,	/* max_connections_per_ip reached */
	METRICS_CONN_MEMORY,	/* low on memory (mem.h) */
	METRICS_CONN_NOT_ALLOWED, /* policy listener: not in policy_clients */
	METRICS_CONN_REFUSAL_COUNT
};

enum metrics_service {
	METRICS_SVC_SMTP,
	METRICS_SVC_POP3,
	METRICS_SVC_APOP,
	METRICS_SVC_PORTAL,
	METRICS_SVC_IMAP,	/* Dovecot's logins, through the auth policy */
	METRICS_SVC_COUNT
};

/* The same order as BE_AUTH_* in be_proto.h is not assumed: map. */
enum metrics_auth_result {
	METRICS_AUTH_OK,
	METRICS_AUTH_FAIL,
	METRICS_AUTH_SUSPENDED,
	METRICS_AUTH_LOCKED,
	METRICS_AUTH_TEMPFAIL,
	METRICS_AUTH_RESULT_COUNT
};

/* Why a message (or one of its recipients) was refused. */
enum metrics_refusal {
	METRICS_REFUSE_OVERSEAS,	/* sending from abroad is off */
	METRICS_REFUSE_LIMIT,		/* a send limit is used up */
	METRICS_REFUSE_SUSPENDED,	/* the account is suspended */
	METRICS_REFUSE_ALIGNMENT,	/* sender or From not the account's */
	METRICS_REFUSE_RELAY,		/* remote recipient without AUTH */
	METRICS_REFUSE_UNKNOWN_USER,	/* no such local recipient */
	METRICS_REFUSE_SIZE,		/* message_size_limit */
	METRICS_REFUSE_CONTENT,		/* bare LF/CR, over-long line */
	METRICS_REFUSE_RECIPIENTS,	/* too many recipients */
	METRICS_REFUSE_AUTH_REQUIRED,	/* submission without AUTH */
	METRICS_REFUSE_TEMPFAIL,	/* store, spool or policy failure */
	METRICS_REFUSAL_COUNT
};

enum metrics_delivery_kind {
	METRICS_DELIVERY_LOCAL,		/* Maildir or LMTP */
	METRICS_DELIVERY_REMOTE,	/* SMTP to another domain */
	METRICS_DELIVERY_KIND_COUNT
};

enum metrics_delivery_result {
	METRICS_DELIVERED,
	METRICS_DEFERRED,
	METRICS_BOUNCED,
	METRICS_DELIVERY_RESULT_COUNT
};

/*
 * Make the shared region (once; later calls only refresh the listener
 * list) and record the master's pid, the start time and the listeners.
 * Call in the master before any fork or thread. Exits on mmap failure.
 */
void metrics_init(const struct config *conf);
/* 1 once metrics_init() ran in this process or a parent. */
int metrics_enabled(void);
/* A successful reload (SIGHUP): its time, and the new listener list. */
void metrics_reloaded(const struct config *conf);

/* Microseconds on CLOCK_MONOTONIC, for the latency calls below. */
uint64_t metrics_now_us(void);

/* Connections, by listener role (config.h enum listen_role). */
void metrics_conn_open(int role);
void metrics_conn_close(int role);
void metrics_conn_refused(int role, enum metrics_conn_refusal why);

/* One login answered by the back side; start_us from metrics_now_us()
 * at the start of the check (0: no latency recorded). */
void metrics_auth(enum metrics_service svc, enum metrics_auth_result r,
    uint64_t start_us);
/* The same with the service's protocol name ("smtp", "pop3", "apop",
 * "portal") and result word ("ok", "fail", "suspended", "locked",
 * "tempfail"); unknown names are not counted. */
void metrics_auth_name(const char *svc, const char *result,
    uint64_t start_us);

/* The same with a BE_AUTH_* result of be_proto.h. */
void metrics_auth_be(const char *svc, unsigned be_result, uint64_t start_us);

/* A message was queued (250 after DATA) on a listener of role; the
 * commit round trip (BE_SPOOL_COMMIT) started at start_us. */
void metrics_accepted(int role, uint64_t start_us);
void metrics_refused(enum metrics_refusal why);
/* A submission's policy decision by the client's country: cc is "JP"
 * (two upper-case letters), "internal" or anything else (unknown). */
void metrics_country(const char *cc, int accepted);

/* One recipient's delivery attempt ended; queued_ms: when the message
 * came in (unix milliseconds, from its queue ID; 0 if unknown), for the
 * delivery time of delivered recipients. */
void metrics_delivery(enum metrics_delivery_kind kind,
    enum metrics_delivery_result r, uint64_t queued_ms);
/* The queue's gauges: messages known, and the arrival (unix ms) of the
 * oldest (0 when empty). */
void metrics_queue(int64_t messages, int64_t oldest_ms);

/* Whether the back side could open the store at its last attempt. */
void metrics_store_up(int up);
/* A mail filter's verdict for one message (issue 16): "continue",
 * "accept", "reject", "tempfail", "discard", "quarantine", "default". */
#define METRICS_MILTER_COUNT	7
void metrics_milter(const char *verdict);

/* The Prometheus text format (version 0.0.4) of the region. */
void metrics_render(struct str *out);
/* "sekisho status" lines ("key: value"), from the region. */
void metrics_status(struct str *out);

/* Unix milliseconds in a queue ID (12 hex digits first); 0 if not one. */
uint64_t metrics_queue_id_ms(const char *id);

#ifdef SEKISHO_TEST_HOOKS
/* Test build: write garbage over the shared region (a session process
 * acting as a compromised one; src/daemon/limits.c's SIGUSR2 hook).
 * Signal-safe. */
void metrics_test_scribble(void);
#endif

#endif
