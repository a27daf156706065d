/*
 * portal_autoconfig: mail clients that set themselves up (issue 19 item
 * 5, docs/portal.md "Mail client setup"). The documents the settings
 * page serves:
 *
 *   Thunderbird   GET /.well-known/autoconfig/mail/config-v1.1.xml and
 *                 GET /mail/config-v1.1.xml (?emailaddress=ADDRESS):
 *                 the clientConfig 1.1 format
 *   Outlook       POST /autodiscover/autodiscover.xml: the "POX"
 *                 autodiscover response (outlook responseschema 2006a);
 *                 the request body is at most PORTAL_AUTODISCOVER_MAX
 *                 octets and only its EMailAddress element is read, by
 *                 plain bounded text search (no XML parser, no entities)
 *   Apple         GET /mobileconfig (a logged-in subscriber; ?type=pop3
 *                 for POP3): a configuration profile, com.apple.mail.managed
 *
 * Each names submission (587 STARTTLS, 465 TLS), POP3 (995 TLS, 110
 * STLS) and IMAP (993 TLS, 143 STARTTLS) on client_hostname_submission,
 * _pop3 and _imap (empty: hostname). Every value written is XML-escaped.
 * Pure: no I/O.
 */
#ifndef SEKISHO_PORTAL_AUTOCONFIG_H
#define SEKISHO_PORTAL_AUTOCONFIG_H

#include <stddef.h>

#include "../core/str.h"

struct config;

#define PORTAL_AUTODISCOVER_MAX	(16 * 1024)	/* request body, octets */

/* 1 if s is a mail address these documents may name (printable ASCII,
 * one '@', a host name after it, at most 254 octets). */
int portal_autoconfig_address_ok(const char *s);

/* Thunderbird's config-v1.1.xml; email may be NULL or not an address
 * (then the domain is the hostname's). */
void portal_autoconfig_thunderbird(const struct config *conf,
    const char *email, struct str *out);

/* Outlook's POX response to body (len octets); 0, or -1 when the body
 * is not a request naming an address (out: the POX error response). */
int portal_autoconfig_autodiscover(const struct config *conf,
    const char *body, size_t len, struct str *out);

/* Apple's .mobileconfig for account; pop3: a POP3 account rather than
 * IMAP. uuid_seed: 32 random octets for the payload UUIDs. */
void portal_autoconfig_mobileconfig(const struct config *conf,
    const char *account, int pop3, const unsigned char uuid_seed[32],
    struct str *out);

#endif
