/*
 * xmalloc: the one allocation family. A failure releases the process's
 * reserve and is tried again (mem.c); only a failure with nothing left
 * to release is fatal (see xmalloc.h, docs/security.md "Out of memory").
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "xmalloc.h"

void *
xmalloc(size_t size)
{
	unsigned gen = mem_generation();
	void *p;

	if (size == 0)
		size = 1;
	while ((p = MEM_FAILS() ? NULL : malloc(size)) == NULL)
		if (!mem_failed(size, &gen))
			fatalx("xmalloc: out of memory (%zu bytes)", size);
	mem_after_alloc();
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	unsigned gen = mem_generation();
	void *p;

	if (nmemb == 0)
		nmemb = 1;
	if (size == 0)
		size = 1;
	if (nmemb > SIZE_MAX / size)
		fatalx("xcalloc: overflow (%zu x %zu)", nmemb, size);
	while ((p = MEM_FAILS() ? NULL : calloc(nmemb, size)) == NULL)
		if (!mem_failed(nmemb * size, &gen))
			fatalx("xcalloc: out of memory (%zu x %zu)", nmemb,
			    size);
	mem_after_alloc();
	return p;
}

void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	unsigned gen = mem_generation();
	size_t n;
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / size)
		fatalx("xreallocarray: overflow (%zu x %zu)", nmemb, size);
	n = nmemb * size == 0 ? 1 : nmemb * size;
	/* a failed realloc leaves ptr as it was: it can be tried again */
	while ((p = MEM_FAILS() ? NULL : realloc(ptr, n)) == NULL)
		if (!mem_failed(n, &gen))
			fatalx("xreallocarray: out of memory (%zu x %zu)",
			    nmemb, size);
	mem_after_alloc();
	return p;
}

char *
xstrdup(const char *s)
{
	unsigned gen = mem_generation();
	char *p;

	while ((p = MEM_FAILS() ? NULL : strdup(s)) == NULL)
		if (!mem_failed(strlen(s) + 1, &gen))
			fatalx("xstrdup: out of memory");
	mem_after_alloc();
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	unsigned gen = mem_generation();
	char *p;

	while ((p = MEM_FAILS() ? NULL : strndup(s, n)) == NULL)
		if (!mem_failed(strnlen(s, n) + 1, &gen))
			fatalx("xstrndup: out of memory");
	mem_after_alloc();
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	unsigned gen = mem_generation();
	va_list ap, aq;
	char *p = NULL;
	int n;

	va_start(ap, fmt);
	for (;;) {
		va_copy(aq, ap);
		n = MEM_FAILS() ? -1 : vasprintf(&p, fmt, aq);
		va_end(aq);
		if (n >= 0)
			break;
		va_copy(aq, ap);
		n = vsnprintf(NULL, 0, fmt, aq);
		va_end(aq);
		if (n < 0 || !mem_failed((size_t)n + 1, &gen))
			fatalx("xasprintf: out of memory");
	}
	va_end(ap);
	mem_after_alloc();
	return p;
}

size_t
xstrlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len >= size ? size - 1 : len;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}
