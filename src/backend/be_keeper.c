/*
 * be_keeper: renew this node's POP3 leases and sweep expired shared
 * state, on a thread of its own (see be_keeper.h).
 *
 * The lease is pop3_lock_lease long and renewed five times in that span
 * (at least every second, at most every minute): a late renewal or two
 * (the database busy, a slow statement) does not lose it, and a dead
 * node's mailboxes are free again within one lease.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/xmalloc.h"
#include "../policy/policy.h"
#include "../store/store.h"
#include "be_keeper.h"

#define BE_KEEPER_SWEEP_EVERY	60	/* seconds between sweeps */

static pthread_mutex_t be_keeper_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t be_keeper_wake;
static int be_keeper_started;
static int be_keeper_stopping;
static int be_keeper_poked;		/* work now: leases to give back */
static pid_t be_keeper_pid;
static pthread_t be_keeper_thread;
static pthread_once_t be_keeper_node_once = PTHREAD_ONCE_INIT;
static char be_keeper_node_name[300];
/* Copied from the config: the thread outlives nothing it does not own. */
static char *be_keeper_store_uri;
static int be_keeper_lease;
static struct store *be_keeper_store;
/* retention (i17-country): days per store_retention table, from the
 * config at the start; rows per statement */
static int be_keeper_retention[STORE_RETENTION_MAX];
static int be_keeper_retention_batch;
static int64_t be_keeper_next_retention;
/* a SIGHUP's values, taken by the thread at its next wake (the lock) */
static int be_keeper_reload_days[STORE_RETENTION_MAX];
static int be_keeper_reload_batch;
static int be_keeper_reloaded;

static void
be_keeper_node_init(void)
{
	char host[256];

	if (gethostname(host, sizeof(host)) != 0)
		xstrlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	(void)snprintf(be_keeper_node_name, sizeof(be_keeper_node_name),
	    "%s:%ld", host, (long)getpid());
}

const char *
be_keeper_node(void)
{
	(void)pthread_once(&be_keeper_node_once, be_keeper_node_init);
	return be_keeper_node_name;
}

/* The renewal interval: a fifth of the lease, 1 to 60 s. */
static int
be_keeper_tick(void)
{
	int t = be_keeper_lease / 5;

	return t < 1 ? 1 : t > 60 ? 60 : t;
}

/* Sleep one tick; 1 when the process is exiting. */
static int
be_keeper_wait(void)
{
	struct timespec until;
	int stop;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += be_keeper_tick();
	pthread_mutex_lock(&be_keeper_lock);
	while (!be_keeper_stopping && !be_keeper_poked &&
	    pthread_cond_timedwait(&be_keeper_wake, &be_keeper_lock,
	    &until) == 0)
		;
	be_keeper_poked = 0;
	stop = be_keeper_stopping;
	if (be_keeper_reloaded) {
		memcpy(be_keeper_retention, be_keeper_reload_days,
		    sizeof(be_keeper_retention));
		be_keeper_retention_batch = be_keeper_reload_batch;
		be_keeper_next_retention = 0;	/* the new periods at once */
		be_keeper_reloaded = 0;
	}
	pthread_mutex_unlock(&be_keeper_lock);
	return stop;
}

/* The retention periods and batch the config gives. */
static void
be_keeper_retention_conf(const struct config *conf, int *days, int *batch_r)
{
	for (size_t i = 0; i < store_retention_count(); i++)
		memcpy(&days[i], (const char *)conf +
		    store_retention_config_offset(i), sizeof(int));
	*batch_r = conf->retention_batch;
}

/*
 * Retention (issue 17 item 9): rows older than their retention go, a
 * table at a time in batches (store_retention_sweep), at most
 * BE_KEEPER_RETENTION_BATCHES statements per table and sweep so one
 * sweep never holds the thread (the leases) long; what is left goes at
 * the next sweep, sooner while there is a backlog. Every node sweeps;
 * on a shared store the second finds nothing to delete.
 */
#define BE_KEEPER_RETENTION_EVERY	300	/* seconds, with no backlog */
#define BE_KEEPER_RETENTION_BATCHES	20

static void
be_keeper_retention_sweep(struct store *st, int64_t now)
{
	const char *error;
	int backlog = 0;

	if (now < be_keeper_next_retention)
		return;
	for (size_t i = 0; i < store_retention_count(); i++) {
		int64_t deleted = 0;

		if (store_retention_sweep(st, i, now, be_keeper_retention[i],
		    be_keeper_retention_batch, BE_KEEPER_RETENTION_BATCHES,
		    &deleted, &error) < 0) {
			log_warnx("keeper: retention table=%s: %s",
			    store_retention_table_name(i), error);
			continue;
		}
		if (deleted > 0)
			log_info("retention table=%s deleted=%lld days=%d",
			    store_retention_table_name(i), (long long)deleted,
			    be_keeper_retention[i]);
		if (deleted >= (int64_t)be_keeper_retention_batch *
		    BE_KEEPER_RETENTION_BATCHES)
			backlog = 1;
	}
	be_keeper_next_retention = now + (backlog ? BE_KEEPER_SWEEP_EVERY :
	    BE_KEEPER_RETENTION_EVERY);
}

static void *
be_keeper_main(void *arg)
{
	const char *error;
	int64_t next_sweep = 0, now;
	int warned = 0;

	(void)arg;
	while (!be_keeper_wait()) {
		if (be_keeper_store == NULL &&
		    (be_keeper_store = store_open(be_keeper_store_uri,
		    &error)) == NULL) {
			if (!warned)
				log_warnx("keeper: store: %s", error);
			warned = 1;
			continue;
		}
		warned = 0;
		now = policy_now();
		be_mailbox_renew(be_keeper_store, now + be_keeper_lease);
		if (now >= next_sweep) {
			if (store_expire(be_keeper_store, now, &error) < 0)
				log_warnx("keeper: sweep: %s", error);
			next_sweep = now + BE_KEEPER_SWEEP_EVERY;
		}
		/* on its own clock: at once after a SIGHUP */
		be_keeper_retention_sweep(be_keeper_store, now);
	}
	return NULL;
}

/*
 * At exit: stop the thread and close its store before the libraries'
 * destructors run (libpq's GSSAPI and OpenSSL tear down state a query
 * in flight would use). Registered with atexit() after the libraries
 * were loaded, so it runs first. A child forked after the start has no
 * such thread: only the process that started it stops it.
 */
static void
be_keeper_stop(void)
{
	if (getpid() != be_keeper_pid)
		return;
	pthread_mutex_lock(&be_keeper_lock);
	be_keeper_stopping = 1;
	pthread_cond_signal(&be_keeper_wake);
	pthread_mutex_unlock(&be_keeper_lock);
	(void)pthread_join(be_keeper_thread, NULL);
	store_close(&be_keeper_store);
	free(be_keeper_store_uri);
	be_keeper_store_uri = NULL;
}

/* The lock held. */
static void
be_keeper_init(const struct config *conf)
{
	pthread_condattr_t ca;

	be_keeper_store_uri = xstrdup(conf->store);
	be_keeper_lease = conf->pop3_lock_lease;
	be_keeper_retention_conf(conf, be_keeper_retention,
	    &be_keeper_retention_batch);
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&be_keeper_wake, &ca) != 0)
		fatalx("keeper: cannot make its condition variable");
	(void)pthread_condattr_destroy(&ca);
	be_keeper_pid = getpid();
	if (pthread_create(&be_keeper_thread, NULL, be_keeper_main, NULL) != 0)
		fatalx("keeper: cannot start its thread");
	if (atexit(be_keeper_stop) != 0)
		fatalx("keeper: cannot register its stop");
	log_debug("keeper: node %s, POP3 lease %ds renewed every %ds",
	    be_keeper_node(), be_keeper_lease, be_keeper_tick());
}

void
be_keeper_poke(void)
{
	pthread_mutex_lock(&be_keeper_lock);
	be_keeper_poked = 1;
	if (be_keeper_started)
		pthread_cond_signal(&be_keeper_wake);
	pthread_mutex_unlock(&be_keeper_lock);
}

void
be_keeper_reload(const struct config *conf)
{
	int days[STORE_RETENTION_MAX], batch;
	char text[STORE_RETENTION_MAX * 40] = "";
	size_t len = 0;

	be_keeper_retention_conf(conf, days, &batch);
	pthread_mutex_lock(&be_keeper_lock);
	/* not started yet: be_keeper_start reads the new config */
	if (be_keeper_started) {
		memcpy(be_keeper_reload_days, days, sizeof(days));
		be_keeper_reload_batch = batch;
		be_keeper_reloaded = 1;
		be_keeper_poked = 1;
		pthread_cond_signal(&be_keeper_wake);
	}
	pthread_mutex_unlock(&be_keeper_lock);
	for (size_t i = 0; i < store_retention_count(); i++) {
		int n = snprintf(text + len, sizeof(text) - len, " %s=%d",
		    store_retention_table_name(i), days[i]);

		if (n < 0 || (size_t)n >= sizeof(text) - len)
			break;
		len += (size_t)n;
	}
	log_info("SIGHUP: retention days reloaded%s batch=%d", text, batch);
}

void
be_keeper_start(const struct config *conf)
{
	pthread_mutex_lock(&be_keeper_lock);
	if (!be_keeper_started) {
		be_keeper_init(conf);
		be_keeper_started = 1;
	}
	pthread_mutex_unlock(&be_keeper_lock);
}
