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
static int be_keeper_started;
static pthread_once_t be_keeper_node_once = PTHREAD_ONCE_INIT;
static char be_keeper_node_name[300];
/* Copied from the config: the thread outlives nothing it does not own. */
static char *be_keeper_store_uri;
static int be_keeper_lease;
static struct store *be_keeper_store;

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

static void *
be_keeper_main(void *arg)
{
	const char *error;
	int64_t next_sweep = 0, now;
	int warned = 0;

	(void)arg;
	for (;;) {
		(void)sleep((unsigned)be_keeper_tick());
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
	}
	return NULL;
}

/* The lock held. */
static void
be_keeper_init(const struct config *conf)
{
	pthread_attr_t attr;
	pthread_t thread;

	be_keeper_store_uri = xstrdup(conf->store);
	be_keeper_lease = conf->pop3_lock_lease;
	if (pthread_attr_init(&attr) != 0 ||
	    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
	    pthread_create(&thread, &attr, be_keeper_main, NULL) != 0)
		fatalx("keeper: cannot start its thread");
	(void)pthread_attr_destroy(&attr);
	log_debug("keeper: node %s, POP3 lease %ds renewed every %ds",
	    be_keeper_node(), be_keeper_lease, be_keeper_tick());
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
