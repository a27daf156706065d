/*
 * test_mem: the release-and-retry of an allocation failure (mem.c,
 * xmalloc.c). Both sources are included with SEKISHO_MEM_TEST, so that
 * mem_test_fail_next() below can make the next allocations fail.
 */
#define SEKISHO_MEM_TEST 1

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.c"
#include "core/xmalloc.c"

#include "unit.h"

static int test_fails;		/* the next this many allocations fail */
static int test_calls;		/* allocation attempts seen */

int
mem_test_fail_next(void)
{
	test_calls++;
	if (test_fails > 0) {
		test_fails--;
		return 1;
	}
	return 0;
}

static void
test_reserve_sizes(void)
{
	static const struct {
		size_t	 limit;
		size_t	 want;
	} rows[] = {
		{ 0, MEM_RESERVE_MIN },
		{ 16 * MEM_RESERVE_MIN, MEM_RESERVE_MIN },
		{ 64 * MEM_RESERVE_MIN, MEM_RESERVE_MIN },
		{ 128 * MEM_RESERVE_MIN, 2 * MEM_RESERVE_MIN },
		{ 1024 * MEM_RESERVE_MIN, MEM_RESERVE_MAX },
		{ (size_t)1 << 40, MEM_RESERVE_MAX },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		UNIT_CHECK_INT(mem_reserve_size(rows[i].limit), rows[i].want);
}

/* One failure: the reserve goes, the allocation is tried again and
 * succeeds; memory is "low" until the reserve is taken back. */
static void
test_release_and_retry(void)
{
	char *p;

	mem_process_init("test process", MEM_RESERVE_MIN);
	UNIT_CHECK_INT(mem_low(), 0);
	UNIT_CHECK(mem_reserve != NULL);
	UNIT_CHECK_INT(mem_recover(), 0);	/* not low: nothing to do */

	test_fails = 1;
	test_calls = 0;
	p = xmalloc(100);
	UNIT_CHECK(p != NULL);
	UNIT_CHECK_INT(test_calls, 2);
	UNIT_CHECK_INT(mem_low(), 1);
	UNIT_CHECK(mem_reserve == NULL);
	memset(p, 'x', 100);
	free(p);

	UNIT_CHECK_INT(mem_recover(), 1);
	UNIT_CHECK_INT(mem_low(), 0);
	UNIT_CHECK(mem_reserve != NULL);
	UNIT_CHECK_INT(mem_reserve_len, MEM_RESERVE_MIN);
}

/* Every member of the family retries, and keeps what it had. */
static void
test_family(void)
{
	char *s, *a;
	int *v;

	mem_process_init("test process", MEM_RESERVE_MIN);
	v = xcalloc(4, sizeof(int));
	v[3] = 7;
	test_fails = 1;
	v = xreallocarray(v, 1000, sizeof(int));
	UNIT_CHECK_INT(v[3], 7);		/* realloc's old block kept */
	UNIT_CHECK_INT(mem_low(), 1);
	free(v);

	mem_process_init("test process", MEM_RESERVE_MIN);
	test_fails = 1;
	s = xstrdup("reserve");
	UNIT_CHECK_STR(s, "reserve");
	free(s);
	mem_process_init("test process", MEM_RESERVE_MIN);
	test_fails = 1;
	s = xstrndup("reserved", 7);
	UNIT_CHECK_STR(s, "reserve");
	free(s);
	/* the arguments are used again: va_copy */
	mem_process_init("test process", MEM_RESERVE_MIN);
	test_fails = 1;
	a = xasprintf("%s=%d", "n", 42);
	UNIT_CHECK_STR(a, "n=42");
	UNIT_CHECK_INT(mem_low(), 1);
	free(a);
	mem_process_init("test process", MEM_RESERVE_MIN);
	test_fails = 1;
	v = xcalloc(3, sizeof(int));
	UNIT_CHECK_INT(v[0] + v[1] + v[2], 0);
	UNIT_CHECK_INT(mem_low(), 1);
	free(v);
}

/* libevent's and OpenSSL's allocators: the same release, and NULL
 * instead of an exit when nothing is left. */
static void
test_library_hooks(void)
{
	void *p, *q;

	mem_process_init("test process", MEM_RESERVE_MIN);
	test_fails = 1;
	p = mem_event_malloc(64);
	UNIT_CHECK(p != NULL);
	UNIT_CHECK_INT(mem_low(), 1);
	test_fails = 1;
	q = mem_event_realloc(p, 128);
	UNIT_CHECK(q == NULL);			/* nothing left: NULL, p kept */
	memset(p, 0, 64);
	free(p);
	test_fails = 1;
	q = mem_ssl_malloc(32, __FILE__, __LINE__);
	UNIT_CHECK(q == NULL);
	q = mem_ssl_malloc(0, __FILE__, __LINE__);
	UNIT_CHECK(q == NULL);
	UNIT_CHECK_INT(mem_recover(), 1);

	/* realloc to 0 frees: not a failure, the reserve stays */
	p = mem_ssl_malloc(16, __FILE__, __LINE__);
	q = mem_ssl_realloc(p, 0, __FILE__, __LINE__);
	UNIT_CHECK(q == NULL);
	UNIT_CHECK_INT(mem_low(), 0);
	p = mem_event_malloc(16);
	q = mem_event_realloc(p, 0);
	UNIT_CHECK(q == NULL);
	UNIT_CHECK_INT(mem_low(), 0);
	p = mem_ssl_realloc(NULL, 8, __FILE__, __LINE__);
	UNIT_CHECK(p != NULL);
	mem_ssl_free(p, __FILE__, __LINE__);
}

/* A second failure after the reserve is gone: the last resort, as
 * before, an exit with the reason logged. */
static void
test_last_resort(void)
{
	int fds[2], status = 0;
	char buf[512] = "";
	ssize_t n;
	pid_t pid;

	if (pipe(fds) < 0) {
		UNIT_CHECK(0);
		return;
	}
	if ((pid = fork()) == 0) {
		dup2(fds[1], 2);
		mem_process_init("test process", MEM_RESERVE_MIN);
		test_fails = 2;
		(void)xmalloc(100);
		_exit(0);	/* not reached */
	}
	close(fds[1]);
	for (size_t len = 0; len < sizeof(buf) - 1; len += (size_t)n) {
		n = read(fds[0], buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		buf[len + (size_t)n] = '\0';
	}
	close(fds[0]);
	waitpid(pid, &status, 0);
	UNIT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	UNIT_CHECK(strstr(buf, "warn: memory low: a 100-byte allocation "
	    "failed in the test process") != NULL);
	UNIT_CHECK(strstr(buf, "fatal: xmalloc: out of memory (100 bytes)") !=
	    NULL);
}

/* A failure seen after another thread released the reserve (the
 * generation moved): tried again, not fatal. */
static void
test_generation(void)
{
	unsigned gen;

	mem_process_init("test process", MEM_RESERVE_MIN);
	gen = mem_generation();
	UNIT_CHECK_INT(mem_failed(10, &gen), 1);	/* released now */
	UNIT_CHECK_INT(mem_failed(10, &gen), 0);	/* nothing left */
	gen--;
	UNIT_CHECK_INT(mem_failed(10, &gen), 1);	/* someone else's */
	UNIT_CHECK_INT(gen, mem_generation());
}

int
main(void)
{
	test_reserve_sizes();
	test_release_and_retry();
	test_family();
	test_library_hooks();
	test_last_resort();
	test_generation();
	UNIT_END();
}
