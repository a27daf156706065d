/*
 * str: the one string type. Knows its length, grows, always NUL-terminated
 * (Postfix VSTRING, Dovecot string_t). Binary-safe: may hold NUL bytes.
 */
#ifndef SEKISHO_STR_H
#define SEKISHO_STR_H

#include <stdarg.h>
#include <stddef.h>

struct str {
	char	*s;	/* NULL until the first append; use str_c() */
	size_t	 len;
	size_t	 cap;
};

#define STR_INIT { NULL, 0, 0 }

void str_init(struct str *s);
void str_deinit(struct str *s);
void str_clear(struct str *s);
void str_truncate(struct str *s, size_t len);
void str_append(struct str *s, const char *cstr);
void str_append_n(struct str *s, const void *data, size_t n);
void str_append_c(struct str *s, char c);
void str_printf(struct str *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void str_vprintf(struct str *s, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Always a valid C string ("" when empty). */
const char *str_c(const struct str *s);
/* Hand the buffer to the caller (xfree it); s is left empty. */
char *str_steal(struct str *s);

/* 1 when name may be a login name: not NULL and no control character
 * (bytes under 0x20, 0x7f). One rule for every login path, session side
 * and back side alike (docs/policy.md "Login names"). */
int str_login_name_ok(const char *name);

#endif
