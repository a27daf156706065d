/*
 * mem: the reserve freed on the first allocation failure, the low-memory
 * state, the allocator hooks of libevent and OpenSSL, and RLIMIT_DATA for
 * session processes (see mem.h and docs/security.md, "Out of memory").
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "log.h"
#include "mem.h"

#if defined(__SANITIZE_ADDRESS__)
#define MEM_ASAN	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_ASAN	1
#endif
#endif

/* The failure path is rare and short: one lock keeps two threads that
 * fail at once from both believing nothing is left. */
static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static void *mem_reserve;		/* NULL while low */
static size_t mem_reserve_len = MEM_RESERVE_MIN;
static atomic_int mem_is_low;
static atomic_uint mem_gen;		/* releases so far */
static atomic_llong mem_recover_tried;	/* monotonic ms: release, tries */
static const char *mem_who = "master";

static long long
mem_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *
mem_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Resident, not only promised: one write per page. */
static void
mem_touch(void *p, size_t len)
{
	volatile unsigned char *b = p;
	long pg = sysconf(_SC_PAGESIZE);

	for (size_t i = 0; i < len; i += pg > 0 ? (size_t)pg : 4096)
		b[i] = 1;
}

size_t
mem_reserve_size(size_t limit)
{
	size_t n = limit / 64;

	if (n < MEM_RESERVE_MIN)
		n = MEM_RESERVE_MIN;
	if (n > MEM_RESERVE_MAX)
		n = MEM_RESERVE_MAX;
	return n;
}

void
mem_process_init(const char *who, size_t size)
{
	pthread_mutex_lock(&mem_lock);
	mem_who = who;
	/* the parent's copy: shared copy-on-write until written */
	if (mem_reserve != NULL)
		munmap(mem_reserve, mem_reserve_len);
	mem_reserve_len = size;
	if ((mem_reserve = mem_map(size)) != NULL) {
		mem_touch(mem_reserve, size);
		atomic_store(&mem_is_low, 0);
	} else {
		atomic_store(&mem_is_low, 1);
		log_warnx("memory low: the %s (pid %ld) cannot take its "
		    "%zu KiB reserve", who, (long)getpid(), size / 1024);
	}
	pthread_mutex_unlock(&mem_lock);
}

unsigned
mem_generation(void)
{
	return atomic_load(&mem_gen);
}

int
mem_failed(size_t size, unsigned *gen)
{
	int again = 0;

	pthread_mutex_lock(&mem_lock);
	if (mem_reserve != NULL) {
		munmap(mem_reserve, mem_reserve_len);
		mem_reserve = NULL;
		atomic_store(&mem_is_low, 1);
		atomic_fetch_add(&mem_gen, 1);
		atomic_store(&mem_recover_tried, mem_now_ms());
		/* after the munmap: syslog may allocate */
		log_warnx("memory low: a %zu-byte allocation failed in the %s "
		    "(pid %ld); its %zu KiB reserve is released%s", size,
		    mem_who, (long)getpid(), mem_reserve_len / 1024,
		    strcmp(mem_who, "session process") == 0 ?
		    ", refusing new sessions until memory is back" : "");
	}
	if (atomic_load(&mem_gen) != *gen) {
		*gen = atomic_load(&mem_gen);
		again = 1;
	}
	pthread_mutex_unlock(&mem_lock);
	return again;
}

int
mem_low(void)
{
	return atomic_load_explicit(&mem_is_low, memory_order_relaxed);
}

int
mem_recover(void)
{
	size_t len = mem_reserve_len;
	void *p;
	int back = 0;

	if (!mem_low())
		return 0;
	/* freed heap at the top goes back to the kernel first */
	malloc_trim(0);
	/* the reserve and as much again beside it, or not yet */
	if ((p = mem_map(2 * len)) == NULL)
		return 0;
	munmap((char *)p + len, len);
	mem_touch(p, len);
	pthread_mutex_lock(&mem_lock);
	if (mem_reserve == NULL) {
		mem_reserve = p;
		p = NULL;
		atomic_store(&mem_is_low, 0);
		back = 1;
		log_info("memory back: the %s (pid %ld) holds its %zu KiB "
		    "reserve again%s", mem_who, (long)getpid(), len / 1024,
		    strcmp(mem_who, "session process") == 0 ?
		    ", accepting new sessions" : "");
	}
	pthread_mutex_unlock(&mem_lock);
	if (p != NULL)
		munmap(p, len);
	return back;
}

/* From an allocation that succeeded while low: a try at most once a
 * second (the first a second after the release), so that a process
 * without a timer (the back side) ends its low state too. */
static void
mem_recover_lazy(void)
{
	long long now = mem_now_ms(), last;

	last = atomic_load(&mem_recover_tried);
	if (now - last < 1000 || !atomic_compare_exchange_strong(
	    &mem_recover_tried, &last, now))
		return;
	mem_recover();
}

void
mem_after_alloc(void)
{
	if (mem_low())
		mem_recover_lazy();
}

/* ---- libevent and OpenSSL: the same, but NULL instead of exit ----- */

static void *
mem_event_malloc(size_t size)
{
	unsigned gen = mem_generation();
	void *p;

	while ((p = MEM_FAILS() ? NULL : malloc(size)) == NULL)
		if (!mem_failed(size, &gen))
			return NULL;
	return p;
}

static void *
mem_event_realloc(void *ptr, size_t size)
{
	unsigned gen = mem_generation();
	void *p;

	/* realloc(p, 0) frees: its NULL is no failure, and not retried */
	if (size == 0)
		return realloc(ptr, 0);
	while ((p = MEM_FAILS() ? NULL : realloc(ptr, size)) == NULL)
		if (!mem_failed(size, &gen))
			return NULL;
	return p;
}

static void
mem_event_free(void *ptr)
{
	free(ptr);
}

static void *
mem_ssl_malloc(size_t num, const char *file, int line)
{
	(void)file;
	(void)line;
	/* CRYPTO_malloc's own rule: nothing for 0 */
	if (num == 0)
		return NULL;
	return mem_event_malloc(num);
}

static void *
mem_ssl_realloc(void *ptr, size_t num, const char *file, int line)
{
	(void)file;
	(void)line;
	if (ptr == NULL)
		return mem_ssl_malloc(num, file, line);
	if (num == 0) {
		free(ptr);
		return NULL;
	}
	return mem_event_realloc(ptr, num);
}

static void
mem_ssl_free(void *ptr, const char *file, int line)
{
	(void)file;
	(void)line;
	free(ptr);
}

int
mem_init(void)
{
	static int done;
	int n = 1;

	if (done++)
		return 0;

	/* libevent has no way to say it is too late; its own frees go to
	 * free() as ours do, so an object made before is still fine. */
	event_set_mem_functions(mem_event_malloc, mem_event_realloc,
	    mem_event_free);
	if (CRYPTO_set_mem_functions(mem_ssl_malloc, mem_ssl_realloc,
	    mem_ssl_free))
		n++;
	else
		log_warnx("memory: OpenSSL allocated before the start: its "
		    "allocations do not use the reserve");
	mem_process_init("master", MEM_RESERVE_MIN);
	return n;
}

int
mem_limit_supported(void)
{
#ifdef MEM_ASAN
	return -1;
#else
	return 0;
#endif
}

int
mem_limit(size_t limit, const char **error_r)
{
	struct rlimit rl;

	if (limit == 0 || mem_limit_supported() < 0)
		return 0;
	if (limit < MEM_LIMIT_MIN)
		limit = MEM_LIMIT_MIN;
	if (getrlimit(RLIMIT_DATA, &rl) < 0) {
		*error_r = "getrlimit(RLIMIT_DATA) failed";
		return -1;
	}
	/* lower only: the hard limit too, so the process cannot raise it */
	if (rl.rlim_max == RLIM_INFINITY || (rlim_t)limit < rl.rlim_max)
		rl.rlim_max = (rlim_t)limit;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_DATA, &rl) < 0) {
		*error_r = "setrlimit(RLIMIT_DATA) failed";
		return -1;
	}
	return 0;
}
