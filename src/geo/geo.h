/*
 * geo: the country of a client address, for the overseas rule (issue 5).
 *
 * One interface, two sources chosen by the geo_database key:
 *   tor:FILE[,FILE]   the range files of Debian's tor-geoipdb package
 *                     (geo_torfile.c; the default)
 *   mmdb:FILE         a MaxMind DB file: GeoLite2/GeoIP2 Country or City,
 *                     DB-IP or IPinfo country files (geo_mmdb.c)
 * Before either is asked, loopback, private (RFC 1918), shared CGNAT
 * (100.64.0.0/10, RFC 6598), link-local and unique local (fc00::/7)
 * addresses are answered as GEO_INTERNAL: they are our own networks, so
 * they count as home. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, a v4
 * client on a dual-stack socket) is looked up as the IPv4 address.
 *
 * A struct geo is read-only once geo_open() returns: any number of
 * threads may call geo_lookup() on it at once. Reloading (SIGHUP) is
 * geo_open() of the new configuration, then geo_close() of the old handle
 * once no thread uses it; geo_open() keeps no global state, so two handles
 * may live side by side.
 */
#ifndef SEKISHO_GEO_H
#define SEKISHO_GEO_H

#include <sys/socket.h>

struct config;
struct geo;

enum geo_kind {
	GEO_UNKNOWN,	/* public, but not in the database */
	GEO_INTERNAL,	/* loopback, private, CGNAT, link-local, ULA */
	GEO_COUNTRY,	/* country holds the code */
};

/* "mmdb:" or "tor:" and a path, cut to fit (xstrlcpy). */
#define GEO_SOURCE_MAX	256

struct geo_result {
	enum geo_kind	 kind;
	char		 country[3];	/* "JP": GEO_COUNTRY only, else "" */
	/* What answered: "mmdb:PATH", "tor:PATH" (the file holding the
	 * range; on a miss, the files of that address family) or
	 * "internal". A copy: it outlives the handle. */
	char		 source[GEO_SOURCE_MAX];
};

/*
 * Open conf->geo_database and read it whole (tor files) or map it
 * (mmdb). NULL with *error_r set on failure; the text is valid until
 * the next geo_open() in the same thread. Tor-file errors read
 * "FILE:LINE: what is wrong".
 */
struct geo *geo_open(const struct config *conf, const char **error_r);
/* The same with the geo_database value itself ("tor:..." "mmdb:..."). */
struct geo *geo_open_spec(const char *spec, const char **error_r);

/*
 * Fill r for the address in sa (AF_INET or AF_INET6, port ignored).
 * Returns 0; -1 when sa is NULL or of another family (r is then
 * GEO_UNKNOWN with source "none"). Never blocks: no I/O after open.
 */
int geo_lookup(struct geo *g, const struct sockaddr *sa,
    struct geo_result *r);

/* Release the handle and set *g to NULL; NULL or *g NULL is fine. */
void geo_close(struct geo **g);

/*
 * 1 when the result counts as home: GEO_INTERNAL, or a GEO_COUNTRY whose
 * code is in conf->home_countries; 0 otherwise (GEO_UNKNOWN included:
 * the policy decides that one with conf->geo_unknown).
 */
int geo_is_home(const struct config *conf, const struct geo_result *r);

/* "unknown", "internal", "country" (the CLI's KIND column). */
const char *geo_kind_name(enum geo_kind kind);

/* 1 when sa is one of the internal ranges above (no database needed). */
int geo_is_internal(const struct sockaddr *sa);

#endif
