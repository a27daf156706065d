/*
 * mta_route: parsing next hops and choosing one per recipient (see
 * mta_route.h). The parsers check config values, so they say exactly
 * what is wrong in a form check-config can print after FILE:LINE.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/config.h"
#include "../core/xmalloc.h"
#include "mta_route.h"

struct mta_route_row {
	char			*domain;	/* lower case; ".x" = below x */
	struct mta_nexthop	 nh;
};

struct mta_routes {
	struct mta_route_row	*rows;
	size_t			 count;
	struct mta_nexthop	 relay;
	int			 have_relay;
	struct mta_nexthop	 local;
	int			 local_lmtp;
	char			*auth_user;
	char			*auth_password;
};

/* A DNS name: letters, digits, hyphens, dots (RFC 1123 2.1). */
static int
mta_route_name_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '.' && s[i] != '_')
			return 0;
	}
	return 1;
}

static int
mta_route_addr_ok(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 ||
	    inet_pton(AF_INET6, s, buf) == 1;
}

/* ":PORT" at p, or the end; -1 if bad. */
static int
mta_route_port(const char *p, int def)
{
	long v = 0;

	if (*p == '\0')
		return def;
	if (*p++ != ':' || *p == '\0')
		return -1;
	for (; *p >= '0' && *p <= '9' && v <= 65535; p++)
		v = v * 10 + (*p - '0');
	if (*p != '\0' || v < 1 || v > 65535)
		return -1;
	return (int)v;
}

void
mta_nexthop_deinit(struct mta_nexthop *nh)
{
	xfree(&nh->host);
	xfree(&nh->path);
	memset(nh, 0, sizeof(*nh));
}

static void
mta_nexthop_copy(struct mta_nexthop *dst, const struct mta_nexthop *src)
{
	*dst = *src;
	dst->host = src->host != NULL ? xstrdup(src->host) : NULL;
	dst->path = src->path != NULL ? xstrdup(src->path) : NULL;
}

/* One NEXTHOP word (no options). */
static int
mta_nexthop_parse_word(const char *w, struct mta_nexthop *nh,
    struct str *why)
{
	const char *p = w, *end;
	int def = 25;

	if (strncasecmp(p, "lmtp:", 5) == 0) {
		nh->proto = MTA_PROTO_LMTP;
		def = 24;
		p += 5;
		if (*p == '/') {
			nh->path = xstrdup(p);
			return 0;
		}
	} else if (strncasecmp(p, "smtp:", 5) == 0)
		p += 5;
	if (*p == '[') {
		if ((end = strchr(p, ']')) == NULL)
			goto bad;
		nh->host = xstrndup(p + 1, (size_t)(end - p - 1));
		if (!mta_route_addr_ok(nh->host) &&
		    !mta_route_name_ok(nh->host, strlen(nh->host)))
			goto bad;
		if ((nh->port = mta_route_port(end + 1, def)) < 0)
			goto bad;
		return 0;
	}
	end = strchr(p, ':');
	if (end == NULL)
		end = p + strlen(p);
	if (!mta_route_name_ok(p, (size_t)(end - p)))
		goto bad;
	nh->host = xstrndup(p, (size_t)(end - p));
	if ((nh->port = mta_route_port(end, def)) < 0)
		goto bad;
	/* An unbracketed name is looked up by MX, like Postfix; LMTP
	 * always goes to the host itself. */
	nh->mx = nh->proto == MTA_PROTO_SMTP && !mta_route_addr_ok(nh->host);
	return 0;
bad:
	str_printf(why, "bad next hop '%s' (expected [HOST]:PORT, HOST[:PORT], "
	    "lmtp:[HOST]:PORT or lmtp:/SOCKET)", w);
	mta_nexthop_deinit(nh);
	return -1;
}

/* Words of text split at blanks into a fresh array (caller frees). */
static size_t
mta_route_words(char *text, char **w, size_t max)
{
	size_t n = 0;
	char *save = NULL, *t;

	for (t = strtok_r(text, " \t", &save); t != NULL;
	    t = strtok_r(NULL, " \t", &save)) {
		if (n == max)
			return max + 1;
		w[n++] = t;
	}
	return n;
}

static int
mta_nexthop_parse_words(char **w, size_t n, struct mta_nexthop *nh,
    struct str *why)
{
	size_t i;

	memset(nh, 0, sizeof(*nh));
	if (n == 0) {
		str_append(why, "missing next hop");
		return -1;
	}
	if (mta_nexthop_parse_word(w[0], nh, why) < 0)
		return -1;
	for (i = 1; i < n; i++) {
		if (strcasecmp(w[i], "tls=require") == 0)
			nh->tls = MTA_TLS_REQUIRE;
		else if (strcasecmp(w[i], "tls=may") == 0)
			nh->tls = MTA_TLS_MAY;
		else {
			str_printf(why, "unknown option '%s' (expected "
			    "tls=require or tls=may)", w[i]);
			mta_nexthop_deinit(nh);
			return -1;
		}
	}
	return 0;
}

int
mta_nexthop_parse(const char *text, struct mta_nexthop *nh, struct str *why)
{
	char *copy = xstrdup(text), *w[4];
	size_t n = mta_route_words(copy, w, 3);
	int r;

	if (n > 3) {
		str_printf(why, "too many words in '%s'", text);
		free(copy);
		memset(nh, 0, sizeof(*nh));
		return -1;
	}
	r = mta_nexthop_parse_words(w, n, nh, why);
	free(copy);
	return r;
}

char *
mta_nexthop_key(const struct mta_nexthop *nh)
{
	const char *proto = nh->proto == MTA_PROTO_LMTP ? "lmtp" : "smtp";

	if (nh->path != NULL)
		return xasprintf("%s:%s", proto, nh->path);
	/* The relayhost login is in the key: a transport row to the same
	 * host never shares (or sets up) an authenticated connection. */
	return xasprintf("%s:%s%s%s:%d%s%s%s", proto, nh->mx ? "mx:" : "[",
	    nh->host, nh->mx ? "" : "]", nh->port,
	    nh->tls == MTA_TLS_REQUIRE ? ":tls" : "",
	    nh->tls_implicit ? ":implicit" : "", nh->auth ? ":auth" : "");
}

/* "DOMAIN NEXTHOP [opts]" */
static int
mta_route_parse_row(const char *value, struct mta_route_row *row,
    struct str *why)
{
	char *copy = xstrdup(value), *w[5];
	size_t n = mta_route_words(copy, w, 4), i;
	const char *d;
	int r = -1;

	memset(row, 0, sizeof(*row));
	if (n < 2 || n > 4) {
		str_printf(why, "bad transport '%s' (expected DOMAIN NEXTHOP "
		    "[tls=require])", value);
		goto out;
	}
	d = w[0][0] == '.' ? w[0] + 1 : w[0];
	if (!mta_route_name_ok(d, strlen(d)) || mta_route_addr_ok(d)) {
		str_printf(why, "bad domain '%s' in transport", w[0]);
		goto out;
	}
	if (mta_nexthop_parse_words(w + 1, n - 1, &row->nh, why) < 0)
		goto out;
	row->domain = xstrdup(w[0]);
	for (i = 0; row->domain[i] != '\0'; i++)
		row->domain[i] = (char)tolower((unsigned char)row->domain[i]);
	r = 0;
out:
	free(copy);
	return r;
}

int
mta_route_check_transport(const char *value, struct str *why)
{
	struct mta_route_row row;

	if (mta_route_parse_row(value, &row, why) < 0)
		return -1;
	free(row.domain);
	mta_nexthop_deinit(&row.nh);
	return 0;
}

int
mta_route_check_relayhost(const char *value, struct str *why)
{
	struct mta_nexthop nh;

	if (value[0] == '\0')
		return 0;
	if (mta_nexthop_parse(value, &nh, why) < 0)
		return -1;
	if (nh.proto == MTA_PROTO_LMTP) {
		str_append(why, "relayhost must be SMTP, not LMTP");
		mta_nexthop_deinit(&nh);
		return -1;
	}
	mta_nexthop_deinit(&nh);
	return 0;
}

int
mta_route_check_auth_file(const char *value, struct str *why)
{
	if (value[0] == '\0' || value[0] == '/')
		return 0;
	str_printf(why, "'%s' is not an absolute path", value);
	return -1;
}

int
mta_route_check_local(const char *value, struct str *why)
{
	struct mta_nexthop nh;

	if (strcmp(value, "maildir") == 0)
		return 0;
	if (strncasecmp(value, "lmtp:", 5) != 0) {
		str_printf(why, "bad local delivery '%s' (expected maildir, "
		    "lmtp:[HOST]:PORT or lmtp:/SOCKET)", value);
		return -1;
	}
	if (mta_nexthop_parse(value, &nh, why) < 0)
		return -1;
	mta_nexthop_deinit(&nh);
	return 0;
}

int
mta_route_check_dns_server(const char *value, struct str *why)
{
	char buf[64];
	const char *end;
	size_t len;

	if (value[0] == '[') {
		if ((end = strchr(value, ']')) == NULL)
			goto bad;
		len = (size_t)(end - value - 1);
		if (len >= sizeof(buf))
			goto bad;
		memcpy(buf, value + 1, len);
		buf[len] = '\0';
		if (!mta_route_addr_ok(buf) || strchr(buf, ':') == NULL ||
		    mta_route_port(end + 1, 53) < 0)
			goto bad;
		return 0;
	}
	if (mta_route_addr_ok(value) && strchr(value, ':') != NULL)
		return 0;	/* a bare IPv6 address */
	end = strchr(value, ':');
	len = end == NULL ? strlen(value) : (size_t)(end - value);
	if (len >= sizeof(buf))
		goto bad;
	memcpy(buf, value, len);
	buf[len] = '\0';
	if (!mta_route_addr_ok(buf) ||
	    mta_route_port(end == NULL ? "" : end, 53) < 0)
		goto bad;
	return 0;
bad:
	str_printf(why, "bad DNS server '%s' (expected IPv4[:PORT] or "
	    "[IPv6]:PORT)", value);
	return -1;
}

int
mta_route_host_is_loopback(const char *host)
{
	unsigned char a[16];

	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, host, a) == 1) {
		static const unsigned char one[16] = { [15] = 1 };

		return memcmp(a, one, sizeof(one)) == 0;
	}
	return 0;
}

int
mta_route_check_verify_off(const char *relayhost, struct str *why)
{
	struct mta_nexthop nh;
	struct str ignored = STR_INIT;
	int ok;

	if (relayhost == NULL || relayhost[0] == '\0') {
		str_append(why, "'no' is only allowed with a loopback "
		    "relayhost, and relayhost is not set");
		return 0;
	}
	if (mta_nexthop_parse(relayhost, &nh, &ignored) < 0) {
		/* relayhost's own line says what is wrong with it */
		str_deinit(&ignored);
		return 1;
	}
	str_deinit(&ignored);
	ok = nh.host != NULL && mta_route_host_is_loopback(nh.host);
	if (!ok)
		str_printf(why, "'no' is only allowed with a loopback "
		    "relayhost (127.0.0.0/8, ::1, localhost), not %s",
		    nh.host != NULL ? nh.host : relayhost);
	mta_nexthop_deinit(&nh);
	return ok;
}

/* "USER PASSWORD" on the first line; the password may hold blanks. */
static int
mta_routes_read_auth(struct mta_routes *r, const char *path,
    const char **error_r)
{
	static __thread char errbuf[256];
	char buf[1024], *nl, *sp;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(errbuf, sizeof(errbuf), "relayhost_auth_file %s: %s",
		    path, strerror(errno));
		*error_r = errbuf;
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(errbuf, sizeof(errbuf), "relayhost_auth_file %s: %s",
		    path, strerror(errno));
		*error_r = errbuf;
		return -1;
	}
	buf[n] = '\0';
	if ((nl = strpbrk(buf, "\r\n")) != NULL)
		*nl = '\0';
	if ((sp = strchr(buf, ' ')) == NULL || sp == buf || sp[1] == '\0') {
		*error_r = "relayhost_auth_file: expected 'USER PASSWORD'";
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	*sp = '\0';
	r->auth_user = xstrdup(buf);
	r->auth_password = xstrdup(sp + 1);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

struct mta_routes *
mta_routes_new(const struct config *conf, const char **error_r)
{
	struct mta_routes *r = xcalloc(1, sizeof(*r));
	struct str why = STR_INIT;
	static __thread char errbuf[512];
	size_t i;

	for (i = 0; i < conf->transport_count; i++) {
		r->rows = xreallocarray(r->rows, r->count + 1,
		    sizeof(*r->rows));
		if (mta_route_parse_row(conf->transport[i],
		    &r->rows[r->count], &why) < 0)
			goto bad;
		r->count++;
	}
	if (conf->relayhost != NULL && conf->relayhost[0] != '\0') {
		if (mta_nexthop_parse(conf->relayhost, &r->relay, &why) < 0)
			goto bad;
		r->have_relay = 1;
		r->relay.tls_implicit =
		    conf->relayhost_tls == RELAYHOST_TLS_IMPLICIT;
	}
	if (conf->local_delivery != NULL &&
	    strcmp(conf->local_delivery, "maildir") != 0) {
		if (mta_nexthop_parse(conf->local_delivery, &r->local,
		    &why) < 0)
			goto bad;
		r->local_lmtp = 1;
	}
	if (conf->relayhost_auth_file != NULL &&
	    conf->relayhost_auth_file[0] != '\0') {
		if (mta_routes_read_auth(r, conf->relayhost_auth_file,
		    error_r) < 0) {
			str_deinit(&why);
			mta_routes_free(&r);
			return NULL;
		}
		/* The login goes only over TLS, verified unless the
		 * relayhost is on loopback and the check is turned off
		 * (check-config refuses it elsewhere). */
		r->relay.auth = 1;
		r->relay.tls = MTA_TLS_REQUIRE;
		r->relay.verify = conf->relayhost_tls_verify ||
		    r->relay.host == NULL ||
		    !mta_route_host_is_loopback(r->relay.host);
	}
	str_deinit(&why);
	return r;
bad:
	snprintf(errbuf, sizeof(errbuf), "%s", str_c(&why));
	*error_r = errbuf;
	str_deinit(&why);
	mta_routes_free(&r);
	return NULL;
}

void
mta_routes_free(struct mta_routes **rp)
{
	struct mta_routes *r = *rp;
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->count; i++) {
		free(r->rows[i].domain);
		mta_nexthop_deinit(&r->rows[i].nh);
	}
	free(r->rows);
	mta_nexthop_deinit(&r->relay);
	mta_nexthop_deinit(&r->local);
	if (r->auth_password != NULL)
		explicit_bzero(r->auth_password, strlen(r->auth_password));
	free(r->auth_user);
	free(r->auth_password);
	free(r);
	*rp = NULL;
}

/* domain matches row: exactly, or below it for ".example.net". */
static int
mta_routes_match(const char *row, const char *domain)
{
	size_t rl = strlen(row), dl = strlen(domain);

	if (row[0] != '.')
		return strcasecmp(row, domain) == 0;
	return dl > rl && strcasecmp(domain + dl - rl, row) == 0;
}

void
mta_routes_remote(const struct mta_routes *r, const char *domain,
    struct mta_nexthop *nh)
{
	size_t i;

	for (i = 0; i < r->count; i++) {
		if (mta_routes_match(r->rows[i].domain, domain)) {
			mta_nexthop_copy(nh, &r->rows[i].nh);
			return;
		}
	}
	if (r->have_relay) {
		mta_nexthop_copy(nh, &r->relay);
		nh->auth = r->auth_user != NULL;
		return;
	}
	memset(nh, 0, sizeof(*nh));
	nh->proto = MTA_PROTO_SMTP;
	nh->host = xstrdup(domain);
	nh->port = 25;
	nh->mx = 1;
}

int
mta_routes_local_lmtp(const struct mta_routes *r, struct mta_nexthop *nh)
{
	if (!r->local_lmtp)
		return 0;
	if (nh != NULL)
		mta_nexthop_copy(nh, &r->local);
	return 1;
}

void
mta_routes_auth(const struct mta_routes *r, const char **user_r,
    const char **password_r)
{
	*user_r = r->auth_user;
	*password_r = r->auth_password;
}
