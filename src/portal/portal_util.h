/*
 * portal_util: the pure helpers of the settings page, kept apart so they
 * can be unit-tested and fuzzed: HTML escaping, the Cookie header, the
 * choice of language from Accept-Language (RFC 9110 12.5.4).
 */
#ifndef SEKISHO_PORTAL_UTIL_H
#define SEKISHO_PORTAL_UTIL_H

#include <stddef.h>

#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

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

/*
 * The framing of a request as evhttp parsed its head (every header line is
 * kept there, in order): 0 when all readers agree where its body ends
 * (RFC 9112 6.1, 6.3): no Transfer-Encoding, at most one Content-Length
 * value, plain decimal digits (equal duplicates count as one), every
 * header name a token and every value free of control characters.
 * Otherwise -1, with the status to answer (400; 411 for a chunked body,
 * 501 for another transfer coding) in
 * *code_r and a short reason in *error_r; the caller answers it and
 * closes the connection.
 */
int portal_http_framing(const struct evkeyvalq *headers, int *code_r,
    const char **error_r);

/*
 * An event type (the events table: policy, the CLI, the admin pages) as
 * people read it in lang; NULL for a type not in the table (the caller
 * shows it escaped as it is). The API keeps the raw type names.
 */
const char *portal_event_text(const char *type, enum portal_lang lang);


#endif
