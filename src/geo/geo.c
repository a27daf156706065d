/*
 * geo: the public side of the country look-up (see geo.h). Chooses the
 * backend by the scheme of geo_database, answers internal addresses
 * without asking it, and looks up IPv4-mapped IPv6 addresses as IPv4.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/config.h"
#include "../core/xmalloc.h"
#include "geo.h"
#include "geo_impl.h"

static const struct geo_ops *const geo_backends[] = {
	&geo_torfile_ops,
	&geo_mmdb_ops,
};

#define GEO_NBACKENDS	(sizeof(geo_backends) / sizeof(geo_backends[0]))

static _Thread_local char geo_error_buf[512];

void
geo_set_error(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(geo_error_buf, sizeof(geo_error_buf), fmt, ap);
	va_end(ap);
	*error_r = geo_error_buf;
}

void
geo_set_country(struct geo_result *r, const char *cc, const char *source)
{
	char c0 = cc[0], c1 = c0 == '\0' ? '\0' : cc[1];

	xstrlcpy(r->source, source, sizeof(r->source));
	if (c0 >= 'a' && c0 <= 'z')
		c0 = (char)(c0 - 'a' + 'A');
	if (c1 >= 'a' && c1 <= 'z')
		c1 = (char)(c1 - 'a' + 'A');
	/*
	 * "??" (tor-geoipdb) and "ZZ" (the CLDR "unknown region") say the
	 * database knows the range but not its country: a miss.
	 */
	if (c0 < 'A' || c0 > 'Z' || c1 < 'A' || c1 > 'Z' ||
	    (c1 != '\0' && cc[2] != '\0') || (c0 == 'Z' && c1 == 'Z')) {
		r->kind = GEO_UNKNOWN;
		r->country[0] = '\0';
		return;
	}
	r->kind = GEO_COUNTRY;
	r->country[0] = c0;
	r->country[1] = c1;
	r->country[2] = '\0';
}

struct geo *
geo_open_spec(const char *spec, const char **error_r)
{
	const char *colon = strchr(spec, ':');
	size_t i, n;

	if (colon != NULL) {
		n = (size_t)(colon - spec);
		for (i = 0; i < GEO_NBACKENDS; i++)
			if (strlen(geo_backends[i]->scheme) == n &&
			    strncmp(geo_backends[i]->scheme, spec, n) == 0)
				return geo_backends[i]->open(colon + 1,
				    error_r);
	}
	geo_set_error(error_r, "unsupported geo database '%s' "
	    "(expected tor:FILE[,FILE] or mmdb:FILE)", spec);
	return NULL;
}

struct geo *
geo_open(const struct config *conf, const char **error_r)
{
	return geo_open_spec(conf->geo_database, error_r);
}

void
geo_close(struct geo **gp)
{
	struct geo *g;

	if (gp == NULL || (g = *gp) == NULL)
		return;
	*gp = NULL;
	g->ops->close(g);
}

/* Our own networks: prefix over the address in network order. */
struct geo_net {
	uint8_t	 addr[16];
	int	 prefix;
};

static const struct geo_net geo_internal4[] = {
	{ { 10 }, 8 },			/* RFC 1918 */
	{ { 100, 64 }, 10 },		/* RFC 6598 shared (CGNAT) */
	{ { 127 }, 8 },			/* RFC 1122 loopback */
	{ { 169, 254 }, 16 },		/* RFC 3927 link-local */
	{ { 172, 16 }, 12 },		/* RFC 1918 */
	{ { 192, 168 }, 16 },		/* RFC 1918 */
};

static const struct geo_net geo_internal6[] = {
	{ { [15] = 1 }, 128 },		/* RFC 4291 loopback */
	{ { 0xfc }, 7 },		/* RFC 4193 unique local */
	{ { 0xfe, 0x80 }, 10 },		/* RFC 4291 link-local */
};

static int
geo_net_contains(const struct geo_net *net, const uint8_t *addr)
{
	int full = net->prefix / 8, rest = net->prefix % 8;
	uint8_t mask;

	if (memcmp(net->addr, addr, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (net->addr[full] & mask) == (addr[full] & mask);
}

/*
 * The address as AF_INET or plain AF_INET6 in *ss (v4-mapped turned into
 * IPv4, RFC 4291 2.5.5.2), with its bytes; -1 for other families.
 */
static int
geo_normalize(const struct sockaddr *sa, struct sockaddr_storage *ss,
    const uint8_t **addr_r)
{
	memset(ss, 0, sizeof(*ss));
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;

		memcpy(sin, sa, sizeof(*sin));
		*addr_r = (const uint8_t *)&sin->sin_addr;
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			struct sockaddr_in *sin =
			    (struct sockaddr_in *)(void *)ss;

			sin->sin_family = AF_INET;
			sin->sin_port = in6->sin6_port;
			memcpy(&sin->sin_addr,
			    (const uint8_t *)&in6->sin6_addr + 12, 4);
			*addr_r = (const uint8_t *)&sin->sin_addr;
			return AF_INET;
		}
		memcpy(ss, in6, sizeof(*in6));
		*addr_r = (const uint8_t *)
		    &((struct sockaddr_in6 *)(void *)ss)->sin6_addr;
		return AF_INET6;
	}
	return -1;
}

static int
geo_addr_is_internal(int family, const uint8_t *addr)
{
	const struct geo_net *nets = family == AF_INET ? geo_internal4 :
	    geo_internal6;
	size_t i, n = family == AF_INET ?
	    sizeof(geo_internal4) / sizeof(geo_internal4[0]) :
	    sizeof(geo_internal6) / sizeof(geo_internal6[0]);

	for (i = 0; i < n; i++)
		if (geo_net_contains(&nets[i], addr))
			return 1;
	return 0;
}

int
geo_is_internal(const struct sockaddr *sa)
{
	struct sockaddr_storage ss;
	const uint8_t *addr = NULL;
	int family = geo_normalize(sa, &ss, &addr);

	return family >= 0 && geo_addr_is_internal(family, addr);
}

int
geo_lookup(struct geo *g, const struct sockaddr *sa, struct geo_result *r)
{
	struct sockaddr_storage ss;
	const uint8_t *addr = NULL;
	int family;

	memset(r, 0, sizeof(*r));
	r->kind = GEO_UNKNOWN;
	if ((family = geo_normalize(sa, &ss, &addr)) < 0) {
		xstrlcpy(r->source, "none", sizeof(r->source));
		return -1;
	}
	if (geo_addr_is_internal(family, addr)) {
		r->kind = GEO_INTERNAL;
		xstrlcpy(r->source, "internal", sizeof(r->source));
		return 0;
	}
	g->ops->lookup(g, (const struct sockaddr *)&ss, r);
	return 0;
}

int
geo_is_home(const struct config *conf, const struct geo_result *r)
{
	size_t i;

	if (r->kind == GEO_INTERNAL)
		return 1;
	if (r->kind != GEO_COUNTRY)
		return 0;
	for (i = 0; i < conf->home_countries_count; i++)
		if (strcmp(conf->home_countries[i], r->country) == 0)
			return 1;
	return 0;
}

const char *
geo_kind_name(enum geo_kind kind)
{
	switch (kind) {
	case GEO_UNKNOWN:
		return "unknown";
	case GEO_INTERNAL:
		return "internal";
	case GEO_COUNTRY:
		return "country";
	}
	return "?";
}
