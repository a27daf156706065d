/*
 * portal_util: the pure helpers of the settings page, kept apart so they
 * can be unit-tested and fuzzed: HTML escaping, the Cookie header, the
 * choice of language from Accept-Language (RFC 9110 12.5.4).
 */
#ifndef SEKISHO_PORTAL_UTIL_H
#define SEKISHO_PORTAL_UTIL_H

#include <stddef.h>

#include "../core/str.h"

enum portal_lang { PORTAL_JA, PORTAL_EN };

/* Append s with & < > " ' as character references (HTML 5 13.1.2.6). */
void portal_html_escape(struct str *out, const char *s);

/*
 * The value of cookie name in a Cookie header (RFC 6265 5.4: "a=b; c=d").
 * 0 and the value in buf, 1 when absent or longer than len - 1.
 */
int portal_cookie_get(const char *header, const char *name, char *buf,
    size_t len);

/* English when the client prefers it (by q) to Japanese, else Japanese
 * (also for NULL or an unparsable header). */
enum portal_lang portal_lang_from_accept(const char *accept);


#endif
