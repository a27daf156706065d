/*
 * geo_torfile: the range files of Debian's tor-geoipdb package
 * (/usr/share/tor/geoip and geoip6) as a geo source.
 *
 * Each line is "FROM,TO,CC": FROM and TO are the first and last address
 * of a range, decimal 32-bit integers for IPv4 ("16777216,16777471,AU")
 * or IPv6 addresses ("2001:2::,2001:2:0:ffff:ffff:ffff:ffff:ffff,JP"),
 * and CC a two-letter country code, "??" when the country is not known.
 * '#' starts a comment line. The files are outside input: every line is
 * checked and an error names FILE:LINE. The ranges are kept in two arrays
 * sorted by first address; having checked that no two overlap, a look-up
 * is one binary search, O(log n), with no locks (the arrays never change
 * after geo_torfile_finish).
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/file.h"
#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "geo.h"
#include "geo_impl.h"

/* The Debian files are ~10 and ~16 MB with ~660000 ranges in all. */
#define GEO_TOR_MAX_FILE	(256 * 1024 * 1024)
#define GEO_TOR_MAX_FILES	8
#define GEO_TOR_MAX_RANGES	(16 * 1024 * 1024)

struct geo_tor_range4 {
	uint32_t	 from, to;
	uint32_t	 line;
	uint16_t	 file;
	char		 cc[2];
};

/* An IPv6 address as two host-order halves, compared hi then lo. */
struct geo_tor_u128 {
	uint64_t	 hi, lo;
};

struct geo_tor_range6 {
	struct geo_tor_u128 from, to;
	uint32_t	 line;
	uint16_t	 file;
	char		 cc[2];
};

struct geo_tor {
	struct geo_tor_range4 *v4;
	size_t		 v4_count, v4_alloc;
	struct geo_tor_range6 *v6;
	size_t		 v6_count, v6_alloc;
	char		*files[GEO_TOR_MAX_FILES];
	size_t		 file_count;
	/* "tor:FILE[,FILE]": the files with ranges of the family, for a
	 * miss; built by geo_torfile_finish. */
	char		*source4, *source6;
	char		*sources[GEO_TOR_MAX_FILES];	/* "tor:FILE" */
};

/* The backend handle (geo_impl.h). */
struct geo_torfile {
	struct geo	 base;
	struct geo_tor	*tor;
};

struct geo_tor *
geo_torfile_new(void)
{
	return xcalloc(1, sizeof(struct geo_tor));
}

void
geo_torfile_free(struct geo_tor **tp)
{
	struct geo_tor *t = *tp;
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->file_count; i++) {
		free(t->files[i]);
		free(t->sources[i]);
	}
	free(t->source4);
	free(t->source6);
	free(t->v4);
	free(t->v6);
	free(t);
	*tp = NULL;
}

size_t
geo_torfile_count(const struct geo_tor *t, int family)
{
	return family == AF_INET ? t->v4_count : t->v6_count;
}

/* Decimal 0..4294967295, digits only (no sign, no spaces). */
static int
geo_torfile_parse_u32(const char *s, size_t len, uint32_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 10)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

static int
geo_torfile_parse_v6(const char *s, size_t len, struct geo_tor_u128 *v_r)
{
	char buf[INET6_ADDRSTRLEN];
	uint8_t a[16];
	int i;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET6, buf, a) != 1)
		return -1;
	v_r->hi = v_r->lo = 0;
	for (i = 0; i < 8; i++) {
		v_r->hi = v_r->hi << 8 | a[i];
		v_r->lo = v_r->lo << 8 | a[i + 8];
	}
	return 0;
}

static int
geo_tor_u128_cmp(const struct geo_tor_u128 *a, const struct geo_tor_u128 *b)
{
	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return 0;
}

/* Two letters, or "??"; stored as written, upper-cased on look-up. */
static int
geo_torfile_check_cc(const char *s, size_t len)
{
	size_t i;

	if (len != 2)
		return -1;
	if (s[0] == '?' && s[1] == '?')
		return 0;
	for (i = 0; i < 2; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z')))
			return -1;
	return 0;
}

/* A range that ends before it starts, or one too many, is refused. */
static int
geo_torfile_room(const struct geo_tor *t, const char *name, uint32_t lineno,
    int reversed, const char **error_r)
{
	if (reversed) {
		geo_set_error(error_r, "%s:%u: range ends before "
		    "it starts", name, lineno);
		return -1;
	}
	if (t->v4_count + t->v6_count >= GEO_TOR_MAX_RANGES) {
		geo_set_error(error_r, "%s:%u: more than %d ranges",
		    name, lineno, GEO_TOR_MAX_RANGES);
		return -1;
	}
	return 0;
}

/* Room for one more element of size in v, which holds count. */
static void *
geo_torfile_grow(void *v, size_t count, size_t *alloc, size_t size)
{
	if (count == *alloc) {
		*alloc = *alloc == 0 ? 1024 : *alloc * 2;
		v = xreallocarray(v, *alloc, size);
	}
	return v;
}

/* One line without its newline; 0 ok, -1 with *error_r set. */
static int
geo_torfile_line(struct geo_tor *t, uint16_t file, uint32_t lineno,
    const char *line, size_t len, const char **error_r)
{
	const char *name = t->files[file], *f[3], *p, *end = line + len;
	size_t flen[3], n = 0;
	char shown[64];

	if (len > 0 && line[len - 1] == '\r')
		end--;
	/* Leading and trailing blanks are harmless; blank lines too. */
	while (line < end && (*line == ' ' || *line == '\t'))
		line++;
	while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (line == end || *line == '#')
		return 0;
	if (memchr(line, '\0', (size_t)(end - line)) != NULL) {
		geo_set_error(error_r, "%s:%u: NUL byte in line", name,
		    lineno);
		return -1;
	}
	for (p = line; n < 3; n++) {
		const char *comma = memchr(p, ',', (size_t)(end - p));

		f[n] = p;
		flen[n] = (size_t)((comma == NULL ? end : comma) - p);
		if (comma == NULL) {
			n++;
			break;
		}
		p = comma + 1;
	}
	if (n != 3 || f[2] + flen[2] != end) {
		(void)log_printable(shown, sizeof(shown), line,
		    (size_t)(end - line));
		geo_set_error(error_r, "%s:%u: expected FROM,TO,CC, "
		    "got '%s'", name, lineno, shown);
		return -1;
	}
	if (geo_torfile_check_cc(f[2], flen[2]) < 0) {
		(void)log_printable(shown, sizeof(shown), f[2], flen[2]);
		geo_set_error(error_r, "%s:%u: bad country code '%s' "
		    "(expected two letters or ?\?)", name, lineno, shown);
		return -1;
	}
	if (memchr(f[0], ':', flen[0]) != NULL) {
		struct geo_tor_range6 r;

		memset(&r, 0, sizeof(r));
		if (geo_torfile_parse_v6(f[0], flen[0], &r.from) < 0 ||
		    geo_torfile_parse_v6(f[1], flen[1], &r.to) < 0) {
			geo_set_error(error_r, "%s:%u: bad IPv6 range "
			    "(expected FROM_V6,TO_V6,CC)", name, lineno);
			return -1;
		}
		if (geo_torfile_room(t, name, lineno,
		    geo_tor_u128_cmp(&r.from, &r.to) > 0, error_r) < 0)
			return -1;
		r.line = lineno;
		r.file = file;
		memcpy(r.cc, f[2], 2);
		t->v6 = geo_torfile_grow(t->v6, t->v6_count, &t->v6_alloc,
		    sizeof(*t->v6));
		t->v6[t->v6_count++] = r;
	} else {
		struct geo_tor_range4 r;

		memset(&r, 0, sizeof(r));
		if (geo_torfile_parse_u32(f[0], flen[0], &r.from) < 0 ||
		    geo_torfile_parse_u32(f[1], flen[1], &r.to) < 0) {
			geo_set_error(error_r, "%s:%u: bad IPv4 range "
			    "(expected FROM,TO as integers 0 to 4294967295)",
			    name, lineno);
			return -1;
		}
		if (geo_torfile_room(t, name, lineno, r.from > r.to,
		    error_r) < 0)
			return -1;
		r.line = lineno;
		r.file = file;
		memcpy(r.cc, f[2], 2);
		t->v4 = geo_torfile_grow(t->v4, t->v4_count, &t->v4_alloc,
		    sizeof(*t->v4));
		t->v4[t->v4_count++] = r;
	}
	return 0;
}

int
geo_torfile_add_buffer(struct geo_tor *t, const char *name, const char *buf,
    size_t len, const char **error_r)
{
	const char *p = buf, *end = buf + len, *nl;
	uint32_t lineno = 0;
	uint16_t file;

	if (t->file_count == GEO_TOR_MAX_FILES) {
		geo_set_error(error_r, "%s: more than %d tor geoip files",
		    name, GEO_TOR_MAX_FILES);
		return -1;
	}
	file = (uint16_t)t->file_count;
	t->files[file] = xstrdup(name);
	t->sources[file] = xasprintf("tor:%s", name);
	t->file_count++;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (lineno == UINT32_MAX) {
			geo_set_error(error_r, "%s: too many lines", name);
			return -1;
		}
		lineno++;
		if (geo_torfile_line(t, file, lineno, p,
		    (size_t)((nl == NULL ? end : nl) - p), error_r) < 0)
			return -1;
		p = nl == NULL ? end : nl + 1;
	}
	return 0;
}

/* Ties (only in bad files) are broken by file and line, for stable
 * error messages. */
static int
geo_torfile_cmp4(const void *va, const void *vb)
{
	const struct geo_tor_range4 *a = va, *b = vb;

	if (a->from != b->from)
		return a->from < b->from ? -1 : 1;
	if (a->file != b->file)
		return a->file < b->file ? -1 : 1;
	return a->line < b->line ? -1 : a->line > b->line;
}

static int
geo_torfile_cmp6(const void *va, const void *vb)
{
	const struct geo_tor_range6 *a = va, *b = vb;
	int c = geo_tor_u128_cmp(&a->from, &b->from);

	if (c != 0)
		return c;
	if (a->file != b->file)
		return a->file < b->file ? -1 : 1;
	return a->line < b->line ? -1 : a->line > b->line;
}

/* "tor:" and the files holding ranges of a family (all if none do). */
static char *
geo_torfile_family_source(const struct geo_tor *t, int family)
{
	struct str s = STR_INIT;
	int used[GEO_TOR_MAX_FILES] = { 0 }, any = 0;
	size_t i, n = 0;

	if (family == AF_INET)
		for (i = 0; i < t->v4_count; i++)
			used[t->v4[i].file] = 1;
	else
		for (i = 0; i < t->v6_count; i++)
			used[t->v6[i].file] = 1;
	for (i = 0; i < t->file_count; i++)
		any |= used[i];
	str_append(&s, "tor:");
	for (i = 0; i < t->file_count; i++) {
		if (any && !used[i])
			continue;
		if (n++ > 0)
			str_append_c(&s, ',');
		str_append(&s, t->files[i]);
	}
	return str_steal(&s);
}

int
geo_torfile_finish(struct geo_tor *t, const char **error_r)
{
	size_t i;
	int sorted = 1;

	/* Give back what the doubling over-allocated. */
	if (t->v4_count > 0 && t->v4_count < t->v4_alloc) {
		t->v4 = xreallocarray(t->v4, t->v4_count, sizeof(*t->v4));
		t->v4_alloc = t->v4_count;
	}
	if (t->v6_count > 0 && t->v6_count < t->v6_alloc) {
		t->v6 = xreallocarray(t->v6, t->v6_count, sizeof(*t->v6));
		t->v6_alloc = t->v6_count;
	}
	/* The Debian files are already in order: skip the sort then. */
	for (i = 1; i < t->v4_count && sorted; i++)
		sorted = geo_torfile_cmp4(&t->v4[i - 1], &t->v4[i]) < 0;
	if (!sorted)
		qsort(t->v4, t->v4_count, sizeof(*t->v4), geo_torfile_cmp4);
	for (i = 1, sorted = 1; i < t->v6_count && sorted; i++)
		sorted = geo_torfile_cmp6(&t->v6[i - 1], &t->v6[i]) < 0;
	if (!sorted)
		qsort(t->v6, t->v6_count, sizeof(*t->v6), geo_torfile_cmp6);

	/* Sorted by start, they are disjoint iff each starts after the
	 * previous one ends. */
	for (i = 1; i < t->v4_count; i++)
		if (t->v4[i].from <= t->v4[i - 1].to) {
			geo_set_error(error_r, "%s:%u: range overlaps the "
			    "one at %s:%u", t->files[t->v4[i].file],
			    t->v4[i].line, t->files[t->v4[i - 1].file],
			    t->v4[i - 1].line);
			return -1;
		}
	for (i = 1; i < t->v6_count; i++)
		if (geo_tor_u128_cmp(&t->v6[i].from, &t->v6[i - 1].to) <= 0) {
			geo_set_error(error_r, "%s:%u: range overlaps the "
			    "one at %s:%u", t->files[t->v6[i].file],
			    t->v6[i].line, t->files[t->v6[i - 1].file],
			    t->v6[i - 1].line);
			return -1;
		}
	free(t->source4);
	free(t->source6);
	t->source4 = geo_torfile_family_source(t, AF_INET);
	t->source6 = geo_torfile_family_source(t, AF_INET6);
	return 0;
}

void
geo_torfile_find(const struct geo_tor *t, int family, const uint8_t *addr,
    struct geo_result *r)
{
	size_t lo = 0, hi, mid;
	char cc[3];

	r->kind = GEO_UNKNOWN;
	r->country[0] = '\0';
	if (family == AF_INET) {
		uint32_t a = (uint32_t)addr[0] << 24 |
		    (uint32_t)addr[1] << 16 | (uint32_t)addr[2] << 8 | addr[3];

		/* lo: the first range starting after a. */
		for (hi = t->v4_count; lo < hi;) {
			mid = lo + (hi - lo) / 2;
			if (t->v4[mid].from <= a)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo > 0 && t->v4[lo - 1].to >= a) {
			memcpy(cc, t->v4[lo - 1].cc, 2);
			cc[2] = '\0';
			geo_set_country(r, cc,
			    t->sources[t->v4[lo - 1].file]);
			return;
		}
		xstrlcpy(r->source, t->source4 != NULL ? t->source4 : "tor:",
		    sizeof(r->source));
	} else {
		struct geo_tor_u128 a = { 0, 0 };
		int i;

		for (i = 0; i < 8; i++) {
			a.hi = a.hi << 8 | addr[i];
			a.lo = a.lo << 8 | addr[i + 8];
		}
		for (hi = t->v6_count; lo < hi;) {
			mid = lo + (hi - lo) / 2;
			if (geo_tor_u128_cmp(&t->v6[mid].from, &a) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo > 0 && geo_tor_u128_cmp(&t->v6[lo - 1].to, &a) >= 0) {
			memcpy(cc, t->v6[lo - 1].cc, 2);
			cc[2] = '\0';
			geo_set_country(r, cc,
			    t->sources[t->v6[lo - 1].file]);
			return;
		}
		xstrlcpy(r->source, t->source6 != NULL ? t->source6 : "tor:",
		    sizeof(r->source));
	}
}

/* --- the backend ---------------------------------------------------- */

static int
geo_torfile_read(const char *path, struct str *out, const char **error_r)
{
	switch (file_read(path, GEO_TOR_MAX_FILE, out, NULL, NULL)) {
	case FILE_READ_OK:
		return 0;
	case FILE_READ_OPEN:
		geo_set_error(error_r, "%s: cannot open: %s", path,
		    strerror(errno));
		break;
	case FILE_READ_ERROR:
		geo_set_error(error_r, "%s: cannot read: %s", path,
		    strerror(errno));
		break;
	case FILE_READ_LARGE:
		geo_set_error(error_r, "%s: larger than %d bytes", path,
		    GEO_TOR_MAX_FILE);
		break;
	}
	return -1;
}

/* location: "FILE[,FILE]..." */
static struct geo *
geo_torfile_open(const char *location, const char **error_r)
{
	struct geo_torfile *g;
	struct geo_tor *t = geo_torfile_new();
	struct str buf = STR_INIT;
	char *copy = xstrdup(location), *path, *save = NULL;

	for (path = strtok_r(copy, ",", &save); path != NULL;
	    path = strtok_r(NULL, ",", &save)) {
		str_clear(&buf);
		if (geo_torfile_read(path, &buf, error_r) < 0 ||
		    geo_torfile_add_buffer(t, path, str_c(&buf), buf.len,
		    error_r) < 0)
			goto fail;
	}
	if (t->file_count == 0) {
		geo_set_error(error_r, "tor:%s: no files named", location);
		goto fail;
	}
	if (geo_torfile_finish(t, error_r) < 0)
		goto fail;
	str_deinit(&buf);
	free(copy);
	g = xcalloc(1, sizeof(*g));
	g->base.ops = &geo_torfile_ops;
	g->tor = t;
	return &g->base;
fail:
	str_deinit(&buf);
	free(copy);
	geo_torfile_free(&t);
	return NULL;
}

static void
geo_torfile_lookup(const struct geo *base, const struct sockaddr *sa,
    struct geo_result *r)
{
	const struct geo_torfile *g = (const struct geo_torfile *)base;

	if (sa->sa_family == AF_INET)
		geo_torfile_find(g->tor, AF_INET, (const uint8_t *)
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    r);
	else
		geo_torfile_find(g->tor, AF_INET6, (const uint8_t *)
		    &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr, r);
}

static void
geo_torfile_close(struct geo *base)
{
	struct geo_torfile *g = (struct geo_torfile *)base;

	geo_torfile_free(&g->tor);
	free(g);
}

const struct geo_ops geo_torfile_ops = {
	.scheme = "tor",
	.open = geo_torfile_open,
	.lookup = geo_torfile_lookup,
	.close = geo_torfile_close,
};
