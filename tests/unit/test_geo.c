/*
 * test_geo: the tor-geoipdb range parser (table-driven: each row a file
 * and the error it must give, or the ranges it must load), look-ups on
 * both families at the edges of ranges, the internal ranges, IPv4-mapped
 * addresses, geo_is_home with the config keys, and concurrent look-ups
 * on one handle. Files are written to a mkdtemp() directory. The MMDB
 * source is tested end to end in tests/e2e/test_geo.py, where Perl
 * writes the database.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "geo/geo.h"
#include "geo/geo_impl.h"
#include "unit.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static char dir[] = "/tmp/test_geo.XXXXXX";

static char *
write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *fp = fopen(path, "w");

	if (fp == NULL) {
		perror(path);
		exit(2);
	}
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* --- the parser ----------------------------------------------------- */

struct parse_row {
	const char	*input;
	const char	*error;		/* NULL: loads */
	size_t		 v4, v6;	/* ranges loaded, when it loads */
};

static const struct parse_row parse_rows[] = {
	{ "", NULL, 0, 0 },
	{ "# only a comment\n\n   \n#1,2,JP\n", NULL, 0, 0 },
	{ "1,2,JP", NULL, 1, 0 },
	{ "1,2,JP\n", NULL, 1, 0 },
	{ "  1,2,JP \r\n3,3,us\r\n", NULL, 2, 0 },
	{ "0,0,JP\n4294967295,4294967295,US\n", NULL, 2, 0 },
	{ "16777216,16777471,AU\n15726992,15726999,??\n", NULL, 2, 0 },
	{ "2001::,2001:0:ffff:ffff:ffff:ffff:ffff:ffff,??\n"
	  "2001:2::,2001:2:0:ffff:ffff:ffff:ffff:ffff,JP\n", NULL, 0, 2 },
	{ "1,2,JP\n::,::,US\n", NULL, 1, 1 },
	{ "1,2,JP\n3,4,JP\n5,6,US\n", NULL, 3, 0 },
	/* touching is fine, sharing an address is not */
	{ "1,9,JP\n10,20,US\n", NULL, 2, 0 },
	{ "1,10,JP\n10,20,US\n", "t:2: range overlaps the one at t:1", 0, 0 },
	{ "10,20,US\n1,10,JP\n", "t:1: range overlaps the one at t:2", 0, 0 },
	{ "1,100,US\n\n50,60,JP\n", "t:3: range overlaps the one at t:1",
	  0, 0 },
	{ "5,5,US\n5,5,JP\n", "t:2: range overlaps the one at t:1", 0, 0 },
	{ "2001:db8::,2001:db8::ff,JP\n2001:db8::ff,2001:db8::1ff,US\n",
	  "t:2: range overlaps the one at t:1", 0, 0 },
	{ "1,2", "t:1: expected FROM,TO,CC, got '1,2'", 0, 0 },
	{ "1,2,JP,x", "t:1: expected FROM,TO,CC, got '1,2,JP,x'", 0, 0 },
	{ "#c\n1 2 JP\n", "t:2: expected FROM,TO,CC, got '1 2 JP'", 0, 0 },
	{ "1,2,J", "t:1: bad country code 'J' (expected two letters or ?\?)",
	  0, 0 },
	{ "1,2,J1", "t:1: bad country code 'J1' (expected two letters or "
	  "?\?)", 0, 0 },
	{ "1,2,JPN", "t:1: bad country code 'JPN' (expected two letters or "
	  "?\?)", 0, 0 },
	{ "1,2,", "t:1: bad country code '' (expected two letters or ?\?)",
	  0, 0 },
	{ "a,2,JP", "t:1: bad IPv4 range (expected FROM,TO as integers 0 to "
	  "4294967295)", 0, 0 },
	{ ",2,JP", "t:1: bad IPv4 range (expected FROM,TO as integers 0 to "
	  "4294967295)", 0, 0 },
	{ "-1,2,JP", "t:1: bad IPv4 range (expected FROM,TO as integers 0 to "
	  "4294967295)", 0, 0 },
	{ "1,4294967296,JP", "t:1: bad IPv4 range (expected FROM,TO as "
	  "integers 0 to 4294967295)", 0, 0 },
	{ "1, 2,JP", "t:1: bad IPv4 range (expected FROM,TO as integers 0 to "
	  "4294967295)", 0, 0 },
	{ "1.2.3.4,1.2.3.5,JP", "t:1: bad IPv4 range (expected FROM,TO as "
	  "integers 0 to 4294967295)", 0, 0 },
	{ "5,4,JP", "t:1: range ends before it starts", 0, 0 },
	{ "2001:db8::,2,JP", "t:1: bad IPv6 range (expected FROM_V6,TO_V6,CC)",
	  0, 0 },
	{ "1,2001:db8::,JP", "t:1: bad IPv4 range (expected FROM,TO as "
	  "integers 0 to 4294967295)", 0, 0 },
	{ "2001:db8::g,2001:db8::1,JP", "t:1: bad IPv6 range (expected "
	  "FROM_V6,TO_V6,CC)", 0, 0 },
	{ "2001:db8::1,2001:db8::,JP", "t:1: range ends before it starts",
	  0, 0 },
	{ "1,2,JP\n\x01,2,JP", "t:2: bad IPv4 range (expected FROM,TO as "
	  "integers 0 to 4294967295)", 0, 0 },
	{ "1,2,J\xff", "t:1: bad country code 'J\\xff' (expected two letters "
	  "or ?\?)", 0, 0 },
};

static void
test_parse_table(void)
{
	size_t i;

	for (i = 0; i < nitems(parse_rows); i++) {
		const struct parse_row *row = &parse_rows[i];
		struct geo_tor *t = geo_torfile_new();
		const char *error = NULL;
		int ret;

		ret = geo_torfile_add_buffer(t, "t", row->input,
		    strlen(row->input), &error);
		if (ret == 0)
			ret = geo_torfile_finish(t, &error);
		if (row->error == NULL) {
			if (ret != 0)
				fprintf(stderr, "row %zu: %s\n", i, error);
			UNIT_CHECK_INT(ret, 0);
			UNIT_CHECK_INT(geo_torfile_count(t, AF_INET), row->v4);
			UNIT_CHECK_INT(geo_torfile_count(t, AF_INET6),
			    row->v6);
		} else {
			if (ret != -1)
				fprintf(stderr, "row %zu loaded\n", i);
			UNIT_CHECK_INT(ret, -1);
			UNIT_CHECK_STR(ret == -1 ? error : NULL, row->error);
		}
		geo_torfile_free(&t);
		UNIT_CHECK(t == NULL);
	}
}

/* A NUL inside a line (the table's strings cannot hold one). */
static void
test_parse_nul(void)
{
	static const char input[] = "1,2,JP\n3,4,J\0\n";
	struct geo_tor *t = geo_torfile_new();
	const char *error = NULL;

	UNIT_CHECK_INT(geo_torfile_add_buffer(t, "t", input,
	    sizeof(input) - 1, &error), -1);
	UNIT_CHECK_STR(error, "t:2: NUL byte in line");
	geo_torfile_free(&t);
}

/* Extremes of the address spaces, and "??"/"ZZ" as unknown. */
static void
test_find_extremes(void)
{
	static const char input[] =
	    "0,0,jp\n"
	    "1,16777215,??\n"
	    "16777216,16777216,ZZ\n"
	    "4294967295,4294967295,US\n"
	    "::,::,CN\n"
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe,"
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,KR\n";
	static const struct {
		int		 family;
		const char	*addr;
		enum geo_kind	 kind;
		const char	*cc;
	} rows[] = {
		{ AF_INET, "0.0.0.0", GEO_COUNTRY, "JP" },
		{ AF_INET, "0.0.0.1", GEO_UNKNOWN, "" },
		{ AF_INET, "0.255.255.255", GEO_UNKNOWN, "" },
		{ AF_INET, "1.0.0.0", GEO_UNKNOWN, "" },
		{ AF_INET, "1.0.0.1", GEO_UNKNOWN, "" },
		{ AF_INET, "255.255.255.254", GEO_UNKNOWN, "" },
		{ AF_INET, "255.255.255.255", GEO_COUNTRY, "US" },
		{ AF_INET6, "::", GEO_COUNTRY, "CN" },
		{ AF_INET6, "::1", GEO_UNKNOWN, "" },
		{ AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd",
		  GEO_UNKNOWN, "" },
		{ AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
		  GEO_COUNTRY, "KR" },
		{ AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		  GEO_COUNTRY, "KR" },
	};
	struct geo_tor *t = geo_torfile_new();
	struct geo_result r;
	const char *error = NULL;
	uint8_t addr[16];
	size_t i;

	UNIT_CHECK_INT(geo_torfile_add_buffer(t, "x", input,
	    sizeof(input) - 1, &error), 0);
	UNIT_CHECK_INT(geo_torfile_finish(t, &error), 0);
	for (i = 0; i < nitems(rows); i++) {
		UNIT_CHECK_INT(inet_pton(rows[i].family, rows[i].addr, addr),
		    1);
		memset(&r, 0x55, sizeof(r));
		geo_torfile_find(t, rows[i].family, addr, &r);
		if (r.kind != rows[i].kind)
			fprintf(stderr, "row %zu (%s)\n", i, rows[i].addr);
		UNIT_CHECK_INT(r.kind, rows[i].kind);
		UNIT_CHECK_STR(r.country, rows[i].cc);
		UNIT_CHECK_STR(r.source, "tor:x");
	}
	geo_torfile_free(&t);
}

/* --- through geo_open, with the test database ----------------------- */

/* The documentation ranges, as tests/e2e/geodata.py writes them. */
static const char test_geoip[] =
    "# sekisho test database\n"
    "3221225984,3221226239,JP\n"	/* 192.0.2.0/24 */
    "3325256704,3325256959,US\n"	/* 198.51.100.0/24 */
    "3405803776,3405804031,CN\n";	/* 203.0.113.0/24 */
static const char test_geoip6[] =
    "# sekisho test database\n"
    "2001:db8::,2001:db8:7fff:ffff:ffff:ffff:ffff:ffff,JP\n"
    "2001:db8:8000::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,US\n";

struct lookup_row {
	const char	*addr;
	enum geo_kind	 kind;
	const char	*cc;
	int		 source;	/* 4, 6: that file; 0: "internal" */
};

static const struct lookup_row lookup_rows[] = {
	{ "192.0.1.255", GEO_UNKNOWN, "", 4 },
	{ "192.0.2.0", GEO_COUNTRY, "JP", 4 },
	{ "192.0.2.77", GEO_COUNTRY, "JP", 4 },
	{ "192.0.2.255", GEO_COUNTRY, "JP", 4 },
	{ "192.0.3.0", GEO_UNKNOWN, "", 4 },
	{ "198.51.99.255", GEO_UNKNOWN, "", 4 },
	{ "198.51.100.0", GEO_COUNTRY, "US", 4 },
	{ "198.51.100.255", GEO_COUNTRY, "US", 4 },
	{ "198.51.101.0", GEO_UNKNOWN, "", 4 },
	{ "203.0.113.0", GEO_COUNTRY, "CN", 4 },
	{ "203.0.113.255", GEO_COUNTRY, "CN", 4 },
	{ "203.0.114.0", GEO_UNKNOWN, "", 4 },
	{ "8.8.8.8", GEO_UNKNOWN, "", 4 },
	{ "0.0.0.0", GEO_UNKNOWN, "", 4 },
	{ "255.255.255.255", GEO_UNKNOWN, "", 4 },
	{ "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", GEO_UNKNOWN, "", 6 },
	{ "2001:db8::", GEO_COUNTRY, "JP", 6 },
	{ "2001:db8::25", GEO_COUNTRY, "JP", 6 },
	{ "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff", GEO_COUNTRY, "JP", 6 },
	{ "2001:db8:8000::", GEO_COUNTRY, "US", 6 },
	{ "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", GEO_COUNTRY, "US", 6 },
	{ "2001:db9::", GEO_UNKNOWN, "", 6 },
	{ "::", GEO_UNKNOWN, "", 6 },
	/* v4-mapped: the IPv4 answer, from the IPv4 file */
	{ "::ffff:192.0.2.1", GEO_COUNTRY, "JP", 4 },
	{ "::ffff:198.51.100.1", GEO_COUNTRY, "US", 4 },
	{ "::ffff:203.0.114.0", GEO_UNKNOWN, "", 4 },
	{ "::ffff:127.0.0.1", GEO_INTERNAL, "", 0 },
	/* internal ranges and their edges */
	{ "127.0.0.1", GEO_INTERNAL, "", 0 },
	{ "127.255.255.255", GEO_INTERNAL, "", 0 },
	{ "128.0.0.0", GEO_UNKNOWN, "", 4 },
	{ "10.0.0.0", GEO_INTERNAL, "", 0 },
	{ "10.255.255.255", GEO_INTERNAL, "", 0 },
	{ "11.0.0.0", GEO_UNKNOWN, "", 4 },
	{ "9.255.255.255", GEO_UNKNOWN, "", 4 },
	{ "172.15.255.255", GEO_UNKNOWN, "", 4 },
	{ "172.16.0.0", GEO_INTERNAL, "", 0 },
	{ "172.31.255.255", GEO_INTERNAL, "", 0 },
	{ "172.32.0.0", GEO_UNKNOWN, "", 4 },
	{ "192.167.255.255", GEO_UNKNOWN, "", 4 },
	{ "192.168.0.0", GEO_INTERNAL, "", 0 },
	{ "192.168.255.255", GEO_INTERNAL, "", 0 },
	{ "192.169.0.0", GEO_UNKNOWN, "", 4 },
	{ "169.254.0.1", GEO_INTERNAL, "", 0 },
	{ "169.255.0.1", GEO_UNKNOWN, "", 4 },
	{ "100.63.255.255", GEO_UNKNOWN, "", 4 },
	{ "100.64.0.0", GEO_INTERNAL, "", 0 },
	{ "100.127.255.255", GEO_INTERNAL, "", 0 },
	{ "100.128.0.0", GEO_UNKNOWN, "", 4 },
	{ "::1", GEO_INTERNAL, "", 0 },
	{ "::2", GEO_UNKNOWN, "", 6 },
	{ "fe80::1", GEO_INTERNAL, "", 0 },
	{ "febf:ffff::1", GEO_INTERNAL, "", 0 },
	{ "fec0::1", GEO_UNKNOWN, "", 6 },
	{ "fc00::", GEO_INTERNAL, "", 0 },
	{ "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", GEO_INTERNAL, "", 0 },
	{ "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", GEO_UNKNOWN, "", 6 },
	{ "fe00::", GEO_UNKNOWN, "", 6 },
};

static void
make_addr(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(587);
	} else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(587);
	} else {
		fprintf(stderr, "bad test address %s\n", text);
		exit(2);
	}
}

static struct config *
load_conf(const char *text)
{
	struct str errors = STR_INIT;
	struct config *conf;

	if (config_load_buffer("geo.conf", text, strlen(text), &conf,
	    &errors) < 0) {
		fprintf(stderr, "%s", str_c(&errors));
		exit(2);
	}
	str_deinit(&errors);
	return conf;
}

static void
test_lookup(const struct config *conf, const char *path4,
    const char *path6)
{
	char *src4 = xasprintf("tor:%s", path4);
	char *src6 = xasprintf("tor:%s", path6);
	struct sockaddr_storage ss;
	struct geo_result r;
	struct geo *g;
	const char *error = NULL;
	size_t i;

	g = geo_open(conf, &error);
	UNIT_CHECK(g != NULL);
	if (g == NULL) {
		fprintf(stderr, "geo_open: %s\n", error);
		goto done;
	}
	for (i = 0; i < nitems(lookup_rows); i++) {
		const struct lookup_row *row = &lookup_rows[i];

		make_addr(row->addr, &ss);
		memset(&r, 0x55, sizeof(r));
		UNIT_CHECK_INT(geo_lookup(g, (struct sockaddr *)&ss, &r), 0);
		if (r.kind != row->kind || strcmp(r.country, row->cc) != 0)
			fprintf(stderr, "lookup row %zu: %s\n", i, row->addr);
		UNIT_CHECK_INT(r.kind, row->kind);
		UNIT_CHECK_STR(r.country, row->cc);
		UNIT_CHECK_STR(r.source, row->source == 4 ? src4 :
		    row->source == 6 ? src6 : "internal");
		UNIT_CHECK_INT(geo_is_internal((struct sockaddr *)&ss),
		    row->kind == GEO_INTERNAL);
	}

	/* Not an IP address family: -1, unknown. */
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	UNIT_CHECK_INT(geo_lookup(g, (struct sockaddr *)&ss, &r), -1);
	UNIT_CHECK_INT(r.kind, GEO_UNKNOWN);
	UNIT_CHECK_STR(r.source, "none");
	UNIT_CHECK_INT(geo_lookup(g, NULL, &r), -1);
	UNIT_CHECK_INT(geo_is_internal(NULL), 0);
done:
	geo_close(&g);
	UNIT_CHECK(g == NULL);
	geo_close(&g);		/* twice is harmless */
	geo_close(NULL);
	free(src4);
	free(src6);
}

static void
test_is_home(void)
{
	struct config *conf = load_conf("# defaults\n");
	struct config *two = load_conf("home_countries = KR\n"
	    "home_countries = JP\n");
	struct config *none = load_conf("home_countries =\n");
	struct geo_result r;

	UNIT_CHECK_INT(conf->home_countries_count, 1);
	UNIT_CHECK_STR(conf->home_countries[0], "JP");
	UNIT_CHECK_INT(conf->geo_unknown, GEO_UNKNOWN_REFUSE);
	UNIT_CHECK_STR(conf->geo_database,
	    "tor:/usr/share/tor/geoip,/usr/share/tor/geoip6");

	memset(&r, 0, sizeof(r));
	r.kind = GEO_COUNTRY;
	xstrlcpy(r.country, "JP", sizeof(r.country));
	UNIT_CHECK_INT(geo_is_home(conf, &r), 1);
	UNIT_CHECK_INT(geo_is_home(two, &r), 1);
	UNIT_CHECK_INT(geo_is_home(none, &r), 0);
	xstrlcpy(r.country, "KR", sizeof(r.country));
	UNIT_CHECK_INT(geo_is_home(conf, &r), 0);
	UNIT_CHECK_INT(geo_is_home(two, &r), 1);
	xstrlcpy(r.country, "US", sizeof(r.country));
	UNIT_CHECK_INT(geo_is_home(two, &r), 0);
	r.kind = GEO_INTERNAL;
	r.country[0] = '\0';
	UNIT_CHECK_INT(geo_is_home(conf, &r), 1);
	UNIT_CHECK_INT(geo_is_home(none, &r), 1);
	r.kind = GEO_UNKNOWN;
	UNIT_CHECK_INT(geo_is_home(conf, &r), 0);

	UNIT_CHECK_STR(geo_kind_name(GEO_UNKNOWN), "unknown");
	UNIT_CHECK_STR(geo_kind_name(GEO_INTERNAL), "internal");
	UNIT_CHECK_STR(geo_kind_name(GEO_COUNTRY), "country");
	config_free(&conf);
	config_free(&two);
	config_free(&none);
}

/* The config keys' own errors, as FILE:LINE. */
static void
test_config_errors(void)
{
	static const struct {
		const char	*input;
		const char	*errors;
	} rows[] = {
		{ "home_countries = jp\n", "geo.conf:1: home_countries: bad "
		  "country 'jp' (expected two upper-case letters, e.g. JP)\n" },
		{ "home_countries = JP\nhome_countries = JPN\n",
		  "geo.conf:2: home_countries: bad country 'JPN' (expected "
		  "two upper-case letters, e.g. JP)\n" },
		{ "geo_unknown = maybe\n", "geo.conf:1: geo_unknown: "
		  "bad value 'maybe' (expected one of: refuse, allow)\n" },
		{ "geo_database = /x.mmdb\n", "geo.conf:1: geo_database: "
		  "bad geo database '/x.mmdb' (expected tor:/FILE[,/FILE] "
		  "or mmdb:/FILE)\n" },
		{ "geo_database = tor:geoip\n", "geo.conf:1: geo_database: "
		  "bad geo database 'tor:geoip' (expected tor:/FILE[,/FILE] "
		  "or mmdb:/FILE)\n" },
		{ "geo_database = tor:/a,\n", "geo.conf:1: geo_database: "
		  "bad geo database 'tor:/a,' (expected tor:/FILE[,/FILE] "
		  "or mmdb:/FILE)\n" },
		{ "geo_database = mmdb:/a,/b\n", "geo.conf:1: geo_database: "
		  "bad geo database 'mmdb:/a,/b' (expected tor:/FILE[,/FILE] "
		  "or mmdb:/FILE)\n" },
		{ "geo_database = tor:/a,/b,/c\ngeo_unknown = allow\n", "" },
		{ "geo_database = mmdb:/var/lib/GeoLite2-Country.mmdb\n", "" },
	};
	struct str errors = STR_INIT;
	struct config *conf;
	size_t i;

	for (i = 0; i < nitems(rows); i++) {
		str_clear(&errors);
		(void)config_load_buffer("geo.conf", rows[i].input,
		    strlen(rows[i].input), &conf, &errors);
		UNIT_CHECK_STR(str_c(&errors), rows[i].errors);
		UNIT_CHECK(rows[i].errors[0] == '\0' ? conf != NULL :
		    conf == NULL);
		if (conf != NULL && strstr(rows[i].input, "allow") != NULL)
			UNIT_CHECK_INT(conf->geo_unknown, GEO_UNKNOWN_ALLOW);
		config_free(&conf);
	}
	str_deinit(&errors);
}

/* geo_open's errors name the file, and the line for bad content. */
static void
test_open_errors(void)
{
	char *good = write_file("good4", "1,10,JP\n");
	char *bad = write_file("bad6", "# x\n2001:db8::,2001:db8::1,JP,\n");
	char *over = write_file("over", "5,6,US\n");
	char *spec, *want;
	const char *error = NULL;
	struct geo *g;

	spec = xasprintf("tor:%s,%s", good, bad);
	want = xasprintf("%s:2: expected FROM,TO,CC, got "
	    "'2001:db8::,2001:db8::1,JP,'", bad);
	UNIT_CHECK((g = geo_open_spec(spec, &error)) == NULL);
	UNIT_CHECK_STR(error, want);
	free(spec);
	free(want);

	/* Overlap across two files. */
	spec = xasprintf("tor:%s,%s", good, over);
	want = xasprintf("%s:1: range overlaps the one at %s:1", over, good);
	UNIT_CHECK((g = geo_open_spec(spec, &error)) == NULL);
	UNIT_CHECK_STR(error, want);
	free(spec);
	free(want);

	spec = xasprintf("tor:%s/missing", dir);
	want = xasprintf("%s/missing: cannot open: No such file or directory",
	    dir);
	UNIT_CHECK((g = geo_open_spec(spec, &error)) == NULL);
	UNIT_CHECK_STR(error, want);
	free(spec);
	free(want);

	spec = xasprintf("mmdb:%s/missing.mmdb", dir);
	UNIT_CHECK((g = geo_open_spec(spec, &error)) == NULL);
	UNIT_CHECK(error != NULL && strncmp(error, spec + 5,
	    strlen(spec + 5)) == 0);
	free(spec);

	/* A tor file is not an MMDB. */
	spec = xasprintf("mmdb:%s", good);
	UNIT_CHECK((g = geo_open_spec(spec, &error)) == NULL);
	UNIT_CHECK(error != NULL && strncmp(error, good, strlen(good)) == 0);
	free(spec);

	UNIT_CHECK((g = geo_open_spec("csv:/x", &error)) == NULL);
	UNIT_CHECK_STR(error, "unsupported geo database 'csv:/x' "
	    "(expected tor:FILE[,FILE] or mmdb:FILE)");

	/* One file with both families; a miss names the files of that
	 * family, or all files when none has that family. */
	spec = xasprintf("tor:%s", good);
	g = geo_open_spec(spec, &error);
	UNIT_CHECK(g != NULL);
	if (g != NULL) {
		struct sockaddr_storage ss;
		struct geo_result r;

		make_addr("0.0.0.5", &ss);
		(void)geo_lookup(g, (struct sockaddr *)&ss, &r);
		UNIT_CHECK_STR(r.country, "JP");
		UNIT_CHECK_STR(r.source, spec);
		make_addr("2001:db8::1", &ss);
		(void)geo_lookup(g, (struct sockaddr *)&ss, &r);
		UNIT_CHECK_INT(r.kind, GEO_UNKNOWN);
		UNIT_CHECK_STR(r.source, spec);
		geo_close(&g);
	}
	free(spec);
	free(good);
	free(bad);
	free(over);
}

/* Many threads on one handle: no locks, same answers. */
struct thread_arg {
	struct geo	*g;
	int		 failures;
};

static void *
lookup_thread(void *varg)
{
	struct thread_arg *arg = varg;
	struct sockaddr_storage ss;
	struct geo_result r;
	int i;
	size_t j;

	for (i = 0; i < 200; i++)
		for (j = 0; j < nitems(lookup_rows); j++) {
			make_addr(lookup_rows[j].addr, &ss);
			if (geo_lookup(arg->g, (struct sockaddr *)&ss,
			    &r) != 0 || r.kind != lookup_rows[j].kind ||
			    strcmp(r.country, lookup_rows[j].cc) != 0)
				arg->failures++;
		}
	return NULL;
}

static void
test_threads(const struct config *conf)
{
	pthread_t th[8];
	struct thread_arg args[8];
	const char *error = NULL;
	struct geo *g = geo_open(conf, &error);
	size_t i;

	UNIT_CHECK(g != NULL);
	if (g == NULL)
		return;
	for (i = 0; i < nitems(th); i++) {
		args[i].g = g;
		args[i].failures = 0;
		UNIT_CHECK_INT(pthread_create(&th[i], NULL, lookup_thread,
		    &args[i]), 0);
	}
	for (i = 0; i < nitems(th); i++) {
		pthread_join(th[i], NULL);
		UNIT_CHECK_INT(args[i].failures, 0);
	}
	geo_close(&g);
}

int
main(void)
{
	struct config *conf;
	char *path4, *path6, *text;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	test_parse_table();
	test_parse_nul();
	test_find_extremes();

	path4 = write_file("geoip", test_geoip);
	path6 = write_file("geoip6", test_geoip6);
	text = xasprintf("geo_database = tor:%s,%s\n", path4, path6);
	conf = load_conf(text);
	test_lookup(conf, path4, path6);
	test_threads(conf);
	/* Reload: a second handle beside the first. */
	{
		const char *error = NULL;
		struct geo *a = geo_open(conf, &error);
		struct geo *b = geo_open(conf, &error);

		UNIT_CHECK(a != NULL && b != NULL && a != b);
		geo_close(&a);
		geo_close(&b);
	}
	config_free(&conf);
	free(text);

	test_is_home();
	test_config_errors();
	test_open_errors();

	/* leave nothing behind */
	unlink(path4);
	unlink(path6);
	free(path4);
	free(path6);
	{
		char *p;

		p = xasprintf("%s/good4", dir);
		unlink(p);
		free(p);
		p = xasprintf("%s/bad6", dir);
		unlink(p);
		free(p);
		p = xasprintf("%s/over", dir);
		unlink(p);
		free(p);
	}
	rmdir(dir);
	UNIT_END();
}
