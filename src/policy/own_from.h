/*
 * own_from: the reading behind "refuse mail that claims to be from me"
 * (issue 16, OCN's 自分のメールアドレスからの受信拒否; docs/filters.md):
 * does an Authentication-Results field (RFC 8601) that OUR filter added
 * say that the message passed DKIM or SPF aligned with the header From's
 * domain (or DMARC for it)? Pure: no I/O, bounded, fuzzed
 * (fuzz/fuzz_own_from.c). The caller gives only the fields its filters
 * added (a field that came with the message proves nothing) and our
 * authserv-id; a field of another authserv-id is not read at all.
 */
#ifndef SEKISHO_OWN_FROM_H
#define SEKISHO_OWN_FROM_H

#include <stddef.h>

/* longest field body read; longer is malformed */
#define OWN_FROM_AR_MAX		8192
/* most results (resinfo) read in one field; more is malformed */
#define OWN_FROM_RESULTS_MAX	32

/*
 * 1: the field's authserv-id is authserv_id (case-insensitive) and one of
 * its results is dkim=pass with header.d (or header.i's domain) aligned
 * with from_domain, spf=pass with smtp.mailfrom's domain aligned, or
 * dmarc=pass with header.from = from_domain. 0: not ours, or no such
 * pass. -1: malformed (not RFC 8601, too long, too many results); the
 * caller treats it as no pass. *method_r (may be NULL) = the method that
 * passed ("dkim", "spf", "dmarc"), a static string.
 */
int own_from_ar_passes(const char *value, size_t len,
    const char *authserv_id, const char *from_domain, const char **method_r);

/*
 * Relaxed identifier alignment (RFC 7489 3.1) without the public suffix
 * list: the domains are equal (case-insensitive, one trailing dot
 * ignored), or one is a subdomain of the other and the parent has at
 * least two labels. 1 aligned, 0 not.
 */
int own_from_aligned(const char *domain, size_t len, const char *from_domain);

#endif
