/*
 * be_own_from: refuse_own_from (issue 16 item 5, docs/filters.md): mail
 * that arrives on mx without authentication, whose header From is the
 * address or an alias of an account that turned the option on, is
 * refused unless an Authentication-Results field that OUR filters added
 * (m->added_*, never one that came with the message) under our
 * authserv-id (milter_authserv_id, default hostname) shows DKIM or SPF
 * passing aligned with that address's domain (src/policy/own_from.c).
 * Runs on a worker thread after the filters, before the spool commit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../policy/own_from.h"
#include "../smtp/smtp_header.h"
#include "../store/store.h"
#include "backend.h"
#include "be_own_from.h"

/* bounds on what is read of the message: the header section, and one
 * From field (longer is cut: its first addresses are checked) */
#define BE_OWN_FROM_HEADER_MAX	(1024 * 1024)
#define BE_OWN_FROM_FIELD_MAX	8192
#define BE_OWN_FROM_CHUNK	16384

static const char *
be_own_from_authserv_id(const struct config *conf)
{
	return conf->milter_authserv_id != NULL &&
	    conf->milter_authserv_id[0] != '\0' ? conf->milter_authserv_id :
	    conf->hostname;
}

/* Does one of the fields our filters added pass for domain? */
static const char *
be_own_from_passes(const struct config *conf, const struct be_filtered *m,
    const char *domain)
{
	const char *method;

	for (size_t i = 0; i < m->nadded; i++) {
		if (m->added_names[i] == NULL || m->added_values[i] == NULL ||
		    strcasecmp(m->added_names[i],
		    "Authentication-Results") != 0)
			continue;
		if (own_from_ar_passes(m->added_values[i],
		    strlen(m->added_values[i]), be_own_from_authserv_id(conf),
		    domain, &method) == 1)
			return method;
	}
	return NULL;
}

/* One From field's addresses against the store: 0 pass, 1 refused, -1
 * the store failed (reply set). */
static int
be_own_from_field(struct be_worker *w, const struct be_filtered *m,
    const char *value, size_t len, struct str *reply_r)
{
	struct store *st = be_worker_store(w);
	char **addrs = NULL, *account, buf[256];
	const char *error, *at;
	int n, r = 0;

	if ((n = smtp_header_addresses(value, len, &addrs)) <= 0)
		return 0;	/* nothing that could be an account */
	for (int i = 0; i < n && r == 0; i++) {
		int on, q;

		q = store_own_from_lookup(st, addrs[i], &account, &on,
		    &error);
		if (q < 0) {
			log_warnx("id=%s own_from lookup failed: %s", m->id,
			    error);
			str_append(reply_r, "451 4.3.0 Temporary failure, "
			    "please try again later");
			r = -1;
			break;
		}
		if (q > 0 || !on) {
			free(account);
			continue;
		}
		at = strrchr(addrs[i], '@');
		if (at != NULL && be_own_from_passes(w->conf, m, at + 1) !=
		    NULL) {
			free(account);
			continue;
		}
		log_info("id=%s own_from refused from=%s account=%s "
		    "client=%s reason=\"no aligned DKIM or SPF pass\"", m->id,
		    log_printable(buf, sizeof(buf), addrs[i],
		    strlen(addrs[i])), account, m->client);
		str_printf(reply_r, "550 5.7.1 The owner of <%s> refuses mail "
		    "that claims to be from that address but passes neither "
		    "DKIM nor SPF", account);
		free(account);
		r = 1;
	}
	smtp_header_addresses_free(addrs, n);
	return r;
}

int
be_own_from_check(struct be_worker *w, const struct be_filtered *m,
    struct str *reply_r)
{
	char chunk[BE_OWN_FROM_CHUNK];
	struct str field;
	size_t pos = 0;
	int in_from = 0, at_line_start = 1, r = 0;

	/* authenticated mail, or mail on submission, came from the owner */
	if (m->submission || m->account != NULL || m->fd < 0)
		return 0;
	str_init(&field);
	/* The header section, line by line: From fields (with their
	 * continuation lines) are collected and checked at their end. */
	while (pos < BE_OWN_FROM_HEADER_MAX && r == 0) {
		ssize_t got = pread(m->fd, chunk, sizeof(chunk),
		    (off_t)(m->offset + pos));

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			log_warnx("id=%s own_from read failed: %s", m->id,
			    strerror(errno));
			str_append(reply_r, "451 4.3.0 Temporary failure, "
			    "please try again later");
			r = -1;
			break;
		}
		if (got == 0)
			break;
		for (ssize_t i = 0; i < got && r == 0; i++) {
			char c = chunk[i];

			if (at_line_start) {
				int cont = c == ' ' || c == '\t';

				if (c == '\r')
					continue;	/* CRLF: wait for LF */
				if (in_from == 1 && !cont) {
					r = be_own_from_field(w, m,
					    str_c(&field), field.len, reply_r);
					str_clear(&field);
					in_from = 0;
					if (r != 0)
						break;
				}
				if (c == '\n')
					goto done;	/* end of the header */
				if (!cont && (c == 'F' || c == 'f'))
					in_from = 2;	/* maybe "From" */
				at_line_start = 0;
			}
			if (c == '\n') {
				at_line_start = 1;
				if (in_from == 2)
					in_from = 0;	/* no colon */
				if (in_from)
					str_append_c(&field, ' ');
				continue;
			}
			if (in_from == 2) {
				/* the field name, up to the colon */
				str_append_c(&field, c);
				if (c == ':') {
					const char *f = str_c(&field);

					if (smtp_header_field(f, field.len,
					    "From") != 0)
						in_from = 1;
					else
						in_from = 0;
					str_clear(&field);
				} else if (field.len > 64) {
					in_from = 0;
					str_clear(&field);
				}
				continue;
			}
			/* a longer field is cut: its first addresses count */
			if (in_from == 1 && c != '\r' &&
			    field.len < BE_OWN_FROM_FIELD_MAX)
				str_append_c(&field, c);
		}
		pos += (size_t)got;
	}
	if (r == 0 && in_from == 1)
		r = be_own_from_field(w, m, str_c(&field), field.len, reply_r);
done:
	str_deinit(&field);
	return r;
}
