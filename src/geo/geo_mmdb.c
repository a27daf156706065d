/*
 * geo_mmdb: a MaxMind DB file as a geo source, through libmaxminddb.
 *
 * The file is mapped (MMDB_MODE_MMAP) and never written, so look-ups
 * from any number of threads share it without locks. The country is read
 * from the first of these that holds a two-letter string:
 *   country.iso_code             GeoLite2/GeoIP2 Country and City, DB-IP
 *   registered_country.iso_code  where the network is registered, for
 *                                ranges with no located country
 *   country_code                 IPinfo's country and "lite" files
 * so one backend reads all the common country databases.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <maxminddb.h>

#include "../core/xmalloc.h"
#include "geo.h"
#include "geo_impl.h"

struct geo_mmdb {
	struct geo	 base;
	MMDB_s		 db;
	char		*source;	/* "mmdb:PATH" */
};

static struct geo *
geo_mmdb_open(const char *location, const char **error_r)
{
	struct geo_mmdb *g;
	int status;

	if (location[0] != '/') {
		geo_set_error(error_r, "mmdb:%s: not an absolute path",
		    location);
		return NULL;
	}
	g = xcalloc(1, sizeof(*g));
	if ((status = MMDB_open(location, MMDB_MODE_MMAP, &g->db)) !=
	    MMDB_SUCCESS) {
		if (status == MMDB_IO_ERROR)
			geo_set_error(error_r, "%s: %s: %s", location,
			    MMDB_strerror(status), strerror(errno));
		else
			geo_set_error(error_r, "%s: %s", location,
			    MMDB_strerror(status));
		free(g);
		return NULL;
	}
	g->base.ops = &geo_mmdb_ops;
	g->source = xasprintf("mmdb:%s", location);
	return &g->base;
}

/* 1 and the code in cc when the path leads to a 2-byte string. */
static int
geo_mmdb_get_code(MMDB_entry_s *entry, char cc[3], const char *const *path)
{
	MMDB_entry_data_s data;

	memset(&data, 0, sizeof(data));
	if (MMDB_aget_value(entry, &data, path) != MMDB_SUCCESS ||
	    !data.has_data || data.type != MMDB_DATA_TYPE_UTF8_STRING ||
	    data.data_size != 2)
		return 0;
	memcpy(cc, data.utf8_string, 2);
	cc[2] = '\0';
	return 1;
}

static void
geo_mmdb_lookup(const struct geo *base, const struct sockaddr *sa,
    struct geo_result *r)
{
	static const char *const paths[][3] = {
		{ "country", "iso_code", NULL },
		{ "registered_country", "iso_code", NULL },
		{ "country_code", NULL, NULL },
	};
	const struct geo_mmdb *g = (const struct geo_mmdb *)base;
	MMDB_lookup_result_s res;
	char cc[3];
	size_t i;
	int error = MMDB_SUCCESS;

	r->kind = GEO_UNKNOWN;
	r->country[0] = '\0';
	xstrlcpy(r->source, g->source, sizeof(r->source));
	/* An IPv6 address in an IPv4-only file is an error: unknown. */
	res = MMDB_lookup_sockaddr(&g->db, sa, &error);
	if (error != MMDB_SUCCESS || !res.found_entry)
		return;
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (geo_mmdb_get_code(&res.entry, cc, paths[i])) {
			geo_set_country(r, cc, g->source);
			if (r->kind == GEO_COUNTRY)
				return;
		}
}

static void
geo_mmdb_close(struct geo *base)
{
	struct geo_mmdb *g = (struct geo_mmdb *)base;

	MMDB_close(&g->db);
	free(g->source);
	free(g);
}

const struct geo_ops geo_mmdb_ops = {
	.scheme = "mmdb",
	.open = geo_mmdb_open,
	.lookup = geo_mmdb_lookup,
	.close = geo_mmdb_close,
};
