/*
 * xmalloc: allocation that cannot fail. The first failure in a process
 * releases its reserve and is tried again (mem.h); out of memory with no
 * reserve left is an environment failure: log and exit, so the parent
 * restarts the worker (tmux, OpenSMTPD). docs/security.md, "Out of memory".
 */
#ifndef SEKISHO_XMALLOC_H
#define SEKISHO_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* free(*p) and set *p to NULL. */
#define xfree(p) do { free(*(p)); *(p) = NULL; } while (0)

/* strlcpy semantics: copy at most size-1 bytes, always NUL-terminate,
 * return strlen(src) so truncation is detected by the caller. */
size_t xstrlcpy(char *dst, const char *src, size_t size);

#endif
