/*
 * limits: the connection counts every session process shares, in memory
 * the master maps before it forks (see limits.h, docs/security.md
 * "Connection limits across processes").
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/xmalloc.h"
#include "limits.h"

/* CLOCK_MONOTONIC, in ms */
static uint64_t
limits_now_ms(void)
{
	return metrics_now_us() / 1000;
}

/*
 * One entry per (client address, session process): the per-address
 * count is the sum over processes, and a dead process's entries can be
 * dropped whole. Open addressing with linear probing on the address
 * only, so every process's entry of an address is on one probe run.
 */
struct limits_ip_ent {
	uint8_t		 key[17];	/* key[0]: 4 or 6; 0 = free */
	uint8_t		 pad;
	uint16_t	 slot;
	int32_t		 count;
};

/*
 * The mapping is written by every session process, so nothing in it is
 * trusted by the master (root) or by another process (issue 13): the
 * bounds used to walk it (the table's capacity, the mapping's size) live
 * in each process's own memory, set by the master before it forks; every
 * index read from it is checked against them; every loop over it is
 * bounded by them; and the lock is a plain word, not a pthread mutex
 * (glibc's robust mutex keeps list pointers and a kind, with priority
 * inheritance or ceilings, in the mutex itself, which the master would
 * act on). A session process that writes garbage over the mapping can at
 * worst spoil the counts until the master repairs them when a session
 * process dies (limits_reset_slot).
 */
struct limits_shm {
	_Atomic int	 lock;		/* 0 free, else the holder's pid */
	int		 total;
	int		 slot_conns[LIMITS_SLOTS];
	size_t		 used;
	struct limits_ip_ent ent[];
};

static struct limits_shm *limits_shm;
static size_t limits_shm_cap;		/* entries, a power of two */
static size_t limits_shm_size;		/* bytes mapped */
static int limits_shm_max;		/* max_connections at the start */
static int limits_slot;		/* this process's */
/* the master's: which slots have a live session process */
static uint8_t limits_slot_live[LIMITS_SLOTS];

/* A lock held longer than this is taken over (its holder died, or is
 * stopped, or is a session process that keeps it to hurt the others). */
#define LIMITS_SHM_LOCK_MS	500

void
limits_init(int max_connections)
{
	size_t cap = 1024, size;
	void *p;

	while (cap < 2 * (size_t)max_connections)
		cap <<= 1;
	size = sizeof(struct limits_shm) + cap * sizeof(struct limits_ip_ent);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fatal("mmap connection counts (%zu bytes)", size);
	limits_shm = p;
	limits_shm_cap = cap;
	limits_shm_size = size;
	limits_shm_max = max_connections;
}

static struct limits_shm *
limits_shm_lock(const struct config *conf)
{
	static uint64_t stolen_logged;
	struct limits_shm *sh;
	int me = (int)getpid();
	uint64_t start = 0;

	/* A tool or test without the daemon's master: a private table. */
	if (limits_shm == NULL)
		limits_init(conf != NULL ? conf->max_connections : 1);
	sh = limits_shm;
	for (unsigned spins = 0;; spins++) {
		int holder = 0;

		if (atomic_compare_exchange_strong(&sh->lock, &holder, me))
			return sh;
		if (holder == me)
			return sh;	/* garbage that happens to be us */
		if (spins < 100)
			continue;
		if (start == 0)
			start = limits_now_ms();
		/* a holder that is no process, or gone: free */
		if (holder <= 0 || (kill(holder, 0) < 0 && errno == ESRCH) ||
		    limits_now_ms() - start > LIMITS_SHM_LOCK_MS) {
			if (atomic_compare_exchange_strong(&sh->lock, &holder,
			    me)) {
				if (limits_now_ms() - stolen_logged > 10000) {
					stolen_logged = limits_now_ms();
					log_warnx("connection counts: lock of "
					    "process %d taken over", holder);
				}
				return sh;
			}
			continue;
		}
		nanosleep(&(struct timespec){ 0, 100000 }, NULL);
	}
}

static void
limits_shm_unlock(void)
{
	int me = (int)getpid();

	/* not ours any more if it was taken over: leave it */
	atomic_compare_exchange_strong(&limits_shm->lock, &me, 0);
}

/* A session process: the slot its counts go to. */
void
limits_set_slot(int slot)
{
	limits_slot = slot;
}

int
limits_conn_acquire(const struct config *conf)
{
	struct limits_shm *sh = limits_shm_lock(conf);
	int r = 0;

	/* saturating: the numbers may be garbage a session process wrote */
	if (sh->total >= conf->max_connections || sh->total < 0)
		r = -1;
	else {
		sh->total++;
		if (sh->slot_conns[limits_slot] < INT_MAX)
			sh->slot_conns[limits_slot]++;
	}
	limits_shm_unlock();
	return r;
}

void
limits_conn_release(void)
{
	struct limits_shm *sh = limits_shm_lock(NULL);

	if (sh->total > 0)
		sh->total--;
	if (sh->slot_conns[limits_slot] > 0)
		sh->slot_conns[limits_slot]--;
	limits_shm_unlock();
}

/* Sessions open in this process. */
int
limits_conn_mine(void)
{
	struct limits_shm *sh = limits_shm_lock(NULL);
	int n = sh->slot_conns[limits_slot];

	limits_shm_unlock();
	return n;
}

/* ipv6_client_prefix of this process (set by limits_ip_acquire, which
 * always comes before the release of the same client). */
static int limits_ip_prefix = 64;

/* An IPv6 client counts by its network (issue 13), IPv4 by address. */
static void
limits_ip_key(const struct sockaddr *sa, uint8_t key[17])
{
	cidr_client_key(sa, limits_ip_prefix, key);
}

static size_t
limits_ip_home(const uint8_t key[17])
{
	unsigned h = 2166136261u;

	for (int i = 0; i < 17; i++)
		h = (h ^ key[i]) * 16777619u;
	return h & (limits_shm_cap - 1);
}

/* Remove entry i, moving later entries of its probe run back into the
 * hole (no tombstones). The lock held. Bounded by the capacity: a table
 * written full by a session process cannot make it loop. */
static void
limits_ip_delete(struct limits_shm *sh, size_t i)
{
	size_t mask = limits_shm_cap - 1, j = i, steps = 0;

	for (;;) {
		memset(&sh->ent[i], 0, sizeof(sh->ent[i]));
		for (;;) {
			j = (j + 1) & mask;
			if (sh->ent[j].key[0] == 0 || ++steps > mask) {
				if (sh->used > 0)
					sh->used--;
				return;
			}
			size_t k = limits_ip_home(sh->ent[j].key);

			/* stays if its home is cyclically in (i, j] */
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			sh->ent[i] = sh->ent[j];
			i = j;
			break;
		}
	}
}

int
limits_ip_acquire(const struct config *conf, const struct sockaddr *sa)
{
	static uint64_t full_logged;
	struct limits_ip_ent *mine = NULL, *hole = NULL;
	uint8_t key[17];
	long long sum = 0;
	int r = 0;

	limits_ip_prefix = conf->ipv6_client_prefix;
	limits_ip_key(sa, key);
	if (key[0] == 0)
		return 0;	/* not an IP client: not counted */

	struct limits_shm *sh = limits_shm_lock(conf);
	size_t i = limits_ip_home(key);

	/* at least one entry is free, unless a session process wrote over
	 * the table: then at most one pass */
	for (size_t n = 0; n < limits_shm_cap;
	    n++, i = (i + 1) & (limits_shm_cap - 1)) {
		struct limits_ip_ent *e = &sh->ent[i];

		if (e->key[0] == 0) {
			hole = e;
			break;
		}
		if (memcmp(e->key, key, 17) != 0)
			continue;
		sum += e->count > 0 ? e->count : 0;
		if (e->slot == limits_slot)
			mine = e;
	}
	if (sum >= conf->max_connections_per_ip)
		r = -1;
	else if (mine != NULL)
		mine->count += mine->count < INT32_MAX;
	else if (hole == NULL || sh->used + 2 > limits_shm_cap) {
		r = -1;
		if (limits_now_ms() - full_logged > 10000) {
			full_logged = limits_now_ms();
			log_warnx("connection table full (%zu addresses): raise "
			    "max_connections and restart", sh->used);
		}
	} else {
		memcpy(hole->key, key, 17);
		hole->slot = (uint16_t)limits_slot;
		hole->count = 1;
		sh->used++;
	}
	limits_shm_unlock();
	return r;
}

void
limits_ip_release(const struct sockaddr *sa)
{
	uint8_t key[17];

	limits_ip_key(sa, key);
	if (key[0] == 0)
		return;

	struct limits_shm *sh = limits_shm_lock(NULL);
	size_t i = limits_ip_home(key);

	for (size_t n = 0; n < limits_shm_cap && sh->ent[i].key[0] != 0;
	    n++, i = (i + 1) & (limits_shm_cap - 1)) {
		struct limits_ip_ent *e = &sh->ent[i];

		if (e->slot != limits_slot || memcmp(e->key, key, 17) != 0)
			continue;
		if (--e->count <= 0)
			limits_ip_delete(sh, i);
		break;
	}
	limits_shm_unlock();
}

/* An entry a session process could have made: a real address key, a
 * slot with a live process, a count within the limits. */
static int
limits_ip_ent_valid(const struct limits_ip_ent *e)
{
	static const uint8_t zero[12];

	if (e->key[0] == 4) {
		if (memcmp(e->key + 5, zero, 12) != 0)
			return 0;
	} else if (e->key[0] != 6)
		return 0;
	return e->slot < LIMITS_SLOTS && limits_slot_live[e->slot] &&
	    e->count > 0 && e->count <= limits_shm_max;
}

/*
 * The master, once the process of slot is dead (or before one starts on
 * it): its counts go. The mapping may hold anything a session process
 * wrote, so the master reads it only within its own bounds and rebuilds
 * it: the counts of slots without a live process are zeroed, the others
 * kept within [0, max_connections], the total is their sum, and the
 * table keeps only the entries a live process could have made, placed
 * again by their hash. Garbage can spoil counts, never the master.
 */
void
limits_reset_slot(int slot)
{
	/* the master's own copy of the entries kept, made once */
	static struct limits_ip_ent *keep;
	struct limits_shm *sh;
	size_t nkeep = 0, bad = 0;
	long long total = 0;

	if (keep == NULL)
		keep = xcalloc(limits_shm_cap, sizeof(*keep));
	sh = limits_shm_lock(NULL);

	if (slot >= 0 && slot < LIMITS_SLOTS)
		limits_slot_live[slot] = 0;
	for (int s = 0; s < LIMITS_SLOTS; s++) {
		int v = sh->slot_conns[s];

		if (!limits_slot_live[s] || v < 0)
			v = 0;
		else if (v > limits_shm_max)
			v = limits_shm_max;
		sh->slot_conns[s] = v;
		total += v;
	}
	sh->total = (int)(total > limits_shm_max ? limits_shm_max : total);
	for (size_t i = 0; i < limits_shm_cap; i++) {
		struct limits_ip_ent e = sh->ent[i];

		if (e.key[0] == 0)
			continue;
		if (limits_ip_ent_valid(&e) && nkeep + 1 < limits_shm_cap)
			keep[nkeep++] = e;
		else if (e.slot != slot)
			bad++;
	}
	memset(sh->ent, 0, limits_shm_cap * sizeof(sh->ent[0]));
	for (size_t k = 0; k < nkeep; k++) {
		size_t i = limits_ip_home(keep[k].key), n = 0;

		/* bounded: a session process may write meanwhile */
		while (sh->ent[i].key[0] != 0 && n++ < limits_shm_cap)
			i = (i + 1) & (limits_shm_cap - 1);
		if (sh->ent[i].key[0] != 0)
			continue;
		sh->ent[i] = keep[k];
		sh->ent[i].pad = 0;
	}
	sh->used = nkeep;
	limits_shm_unlock();
	if (bad > 0)
		log_warnx("connection counts: %zu entries no session process "
		    "could have made dropped (a session process wrote over "
		    "the shared table)", bad);
}

/* The master: a session process now runs on slot. */
void
limits_live(int slot)
{
	limits_slot_live[slot] = 1;
}

#ifdef SEKISHO_TEST_HOOKS
/*
 * Test build only: a session process that gets SIGUSR2 writes garbage
 * over everything it shares with the master and the back side (as a
 * compromised one could), then aborts. The master must live on
 * (tests/e2e/test_seam_channel.py).
 */
void
limits_test_scribble(int sig)
{
	(void)sig;
	if (limits_shm != NULL) {
		memset(limits_shm, 0xff, limits_shm_size);
		limits_shm->used = (size_t)1 << 40;
		limits_shm->total = INT32_MAX;
		for (size_t i = 0; i < limits_shm_cap; i++)
			limits_shm->ent[i].count = INT32_MAX;
	}
	metrics_test_scribble();
	abort();
}
#endif
