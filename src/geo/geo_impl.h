/*
 * geo_impl: what a geo source implements (private to src/geo/, and to
 * the unit test and fuzzer of the tor-file parser).
 *
 * geo.c owns the public functions: it answers internal addresses itself
 * and turns IPv4-mapped IPv6 addresses into IPv4, so a backend only sees
 * AF_INET, or AF_INET6 that is not v4-mapped. A backend handle embeds
 * struct geo as its first member and is read-only after open.
 */
#ifndef SEKISHO_GEO_IMPL_H
#define SEKISHO_GEO_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "geo.h"

struct geo_ops {
	const char *scheme;	/* "tor" for "tor:FILES" */

	/* location: the text after "scheme:". NULL with *error_r set
	 * (through geo_set_error) on failure. */
	struct geo *(*open)(const char *location, const char **error_r);
	/* Fill r->kind, r->country and r->source (GEO_COUNTRY or
	 * GEO_UNKNOWN). */
	void (*lookup)(const struct geo *g, const struct sockaddr *sa,
	    struct geo_result *r);
	void (*close)(struct geo *g);
};

struct geo {
	const struct geo_ops *ops;
};

extern const struct geo_ops geo_torfile_ops;
extern const struct geo_ops geo_mmdb_ops;

/* Set *error_r to a formatted text in a per-thread buffer. */
void geo_set_error(const char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Fill r as a country answer: code upper-cased; "??" and "ZZ" (the
 * "unknown" codes of the databases) give GEO_UNKNOWN. */
void geo_set_country(struct geo_result *r, const char *cc,
    const char *source);

/*
 * The tor-geoipdb range files, one parser for both: a line is
 * "FROM,TO,CC" where FROM and TO are decimal IPv4 integers (geoip) or
 * IPv6 addresses (geoip6), inclusive; '#' starts a comment line. Each
 * file may hold lines of either family. Ranges must not overlap, within
 * a file or across files.
 *
 * geo_torfile_new, then geo_torfile_add_buffer per file (name is used in
 * "NAME:LINE: text" errors and in the source "tor:NAME"), then
 * geo_torfile_finish (sorts and checks overlaps); then lookups.
 */
struct geo_tor;

struct geo_tor *geo_torfile_new(void);
int geo_torfile_add_buffer(struct geo_tor *t, const char *name,
    const char *buf, size_t len, const char **error_r);
int geo_torfile_finish(struct geo_tor *t, const char **error_r);
/* addr: 4 bytes (AF_INET) or 16 (AF_INET6), network order. */
void geo_torfile_find(const struct geo_tor *t, int family,
    const uint8_t *addr, struct geo_result *r);
/* Ranges loaded, per family (tests). */
size_t geo_torfile_count(const struct geo_tor *t, int family);
void geo_torfile_free(struct geo_tor **t);

#endif
