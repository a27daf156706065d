/*
 * mem: what a process does when memory runs out (docs/security.md, "Out
 * of memory").
 *
 * Each process holds a reserve: a private anonymous mapping, touched so
 * that it is resident, made with mmap so that giving it back returns it
 * to the kernel (and to RLIMIT_DATA). The first allocation that fails,
 * through xmalloc or through libevent's or OpenSSL's allocator, releases
 * the reserve, marks the process "low" (logged once) and is tried again;
 * only a failure with no reserve left is the end (xmalloc: fatalx;
 * libevent, OpenSSL: NULL, which they handle). While low, a session
 * process refuses new connections (src/daemon/server.c) and takes the
 * reserve back once it can (mem_recover), which ends the low state
 * (logged).
 *
 * Session processes run under RLIMIT_DATA (session_memory_limit): on
 * Linux >= 4.7 it counts brk and private anonymous mappings, so malloc
 * really returns NULL instead of the OOM killer choosing a process.
 */
#ifndef SEKISHO_MEM_H
#define SEKISHO_MEM_H

#include <stddef.h>

#define MEM_RESERVE_MIN		((size_t)1024 * 1024)
#define MEM_RESERVE_MAX		((size_t)4 * 1024 * 1024)
/* Below this a session process could not even start its loop. */
#define MEM_LIMIT_MIN		((size_t)8 * 1024 * 1024)

/*
 * Once, first thing in the master, before any libevent or OpenSSL object
 * exists: routes their allocations through the release-and-retry hooks
 * and takes the master's reserve. Returns how many of the two libraries'
 * hooks are in (2; less if one of them had allocated already, logged);
 * 0 on a second call, which does nothing.
 */
int mem_init(void);

/*
 * In a new process after fork: the reserve of size bytes becomes its
 * own (mapped again and touched), the low state is cleared, and who
 * ("session process", "back side") names it in the log lines.
 */
void mem_process_init(const char *who, size_t size);

/* The reserve a process capped at limit bytes (0: none) keeps: 1/64 of
 * the cap, at least MEM_RESERVE_MIN, at most MEM_RESERVE_MAX. */
size_t mem_reserve_size(size_t limit);

/*
 * An allocation of size bytes failed. Releases the reserve if it is still
 * held. *gen is mem_generation() taken before the attempt: returns 1
 * (try again) if the reserve was released now or since *gen (by another
 * thread), updating *gen; 0 when nothing is left to free.
 */
unsigned mem_generation(void);
int mem_failed(size_t size, unsigned *gen);

/* 1 while the reserve is released. */
int mem_low(void);

/* After each allocation that succeeded: while low, mem_recover at most
 * once a second, so that a process without a timer leaves the state. */
void mem_after_alloc(void);

/*
 * While low: tries to take the reserve back, with as much again free
 * beside it so that the process is not at once at the edge again (after
 * malloc_trim, so that freed heap is given back first). Returns 1 when
 * memory is back now (logged), 0 if still low or never was.
 */
int mem_recover(void);

/* 0 when RLIMIT_DATA can work in this build; -1 under AddressSanitizer
 * (its shadow memory is counted: every allocation would fail). */
int mem_limit_supported(void);

/*
 * Caps this process's data (RLIMIT_DATA, soft and hard) at limit bytes,
 * at least MEM_LIMIT_MIN; 0 leaves it as it is. -1 with error_r when
 * setrlimit fails.
 */
int mem_limit(size_t limit, const char **error_r);

/*
 * Unit tests only: tests/unit/test_mem.c defines SEKISHO_MEM_TEST and
 * includes mem.c and xmalloc.c, whose allocations then fail whenever its
 * mem_test_fail_next() says so. The daemon has no such hook.
 */
#ifdef SEKISHO_MEM_TEST
int mem_test_fail_next(void);
#define MEM_FAILS()	mem_test_fail_next()
#else
#define MEM_FAILS()	0
#endif

#endif
