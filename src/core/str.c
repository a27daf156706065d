/*
 * str: growable NUL-terminated byte string (see str.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "str.h"
#include "xmalloc.h"

void
str_init(struct str *s)
{
	s->s = NULL;
	s->len = 0;
	s->cap = 0;
}

void
str_deinit(struct str *s)
{
	free(s->s);
	str_init(s);
}

void
str_clear(struct str *s)
{
	str_truncate(s, 0);
}

void
str_truncate(struct str *s, size_t len)
{
	if (len < s->len) {
		s->len = len;
		s->s[len] = '\0';
	}
}

static void
str_reserve(struct str *s, size_t more)
{
	size_t need = s->len + more + 1;

	if (need < more)
		fatalx("str: length overflow");
	if (need <= s->cap)
		return;
	size_t cap = s->cap == 0 ? 64 : s->cap;
	while (cap < need)
		cap *= 2;
	s->s = xreallocarray(s->s, 1, cap);
	s->cap = cap;
}

void
str_append_n(struct str *s, const void *data, size_t n)
{
	str_reserve(s, n);
	if (n > 0)
		memcpy(s->s + s->len, data, n);
	s->len += n;
	s->s[s->len] = '\0';
}

void
str_append(struct str *s, const char *cstr)
{
	str_append_n(s, cstr, strlen(cstr));
}

void
str_append_c(struct str *s, char c)
{
	str_append_n(s, &c, 1);
}

void
str_vprintf(struct str *s, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		fatalx("str_vprintf: bad format");
	str_reserve(s, (size_t)n);
	vsnprintf(s->s + s->len, (size_t)n + 1, fmt, ap);
	s->len += (size_t)n;
}

void
str_printf(struct str *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	str_vprintf(s, fmt, ap);
	va_end(ap);
}

const char *
str_c(const struct str *s)
{
	return s->s == NULL ? "" : s->s;
}

char *
str_steal(struct str *s)
{
	char *p = s->s == NULL ? xstrdup("") : s->s;

	str_init(s);
	return p;
}

int
str_login_name_ok(const char *name)
{
	if (name == NULL)
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0';
	    p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}
