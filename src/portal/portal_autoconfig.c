/*
 * portal_autoconfig: Thunderbird autoconfig, Outlook autodiscover and an
 * Apple profile (see portal_autoconfig.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "../core/config.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "portal_autoconfig.h"
#include "portal_util.h"

/* The servers every document names, in this order. */
struct pa_server {
	const char	*kind;		/* "imap" "pop3" "smtp" */
	int		 port;
	int		 starttls;	/* 0: TLS from the start */
};

static const struct pa_server pa_servers[] = {
	{ "imap", 993, 0 }, { "imap", 143, 1 },
	{ "pop3", 995, 0 }, { "pop3", 110, 1 },
	{ "smtp", 587, 1 }, { "smtp", 465, 0 },
};
#define PA_NSERVERS	(sizeof(pa_servers) / sizeof(pa_servers[0]))

static const char *
pa_host(const struct config *conf, const char *kind)
{
	const char *h = strcmp(kind, "imap") == 0 ?
	    conf->client_hostname_imap : strcmp(kind, "pop3") == 0 ?
	    conf->client_hostname_pop3 : conf->client_hostname_submission;

	return h != NULL && *h != '\0' ? h : conf->hostname;
}

/* XML character data and attribute values: the page's escape (its
 * entities are XML's too) after the control characters XML 1.0 does not
 * allow are made '?'. */
static void
pa_esc(struct str *out, const char *s)
{
	char *t = xstrdup(s);

	for (char *p = t; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	portal_html_escape(out, t);
	free(t);
}

static void
pa_elem(struct str *out, const char *indent, const char *name,
    const char *value)
{
	str_printf(out, "%s<%s>", indent, name);
	pa_esc(out, value);
	str_printf(out, "</%s>\n", name);
}

int
portal_autoconfig_address_ok(const char *s)
{
	const char *at = strchr(s, '@');
	size_t n = strlen(s);

	if (at == NULL || at == s || n > 254 || strchr(at + 1, '@') != NULL)
		return 0;
	for (const char *c = s; c < at; c++)
		if (*c <= ' ' || *c > '~' || strchr("\"<>&'()[]\\,;:", *c))
			return 0;
	at++;
	if (*at == '\0' || *at == '.' || *at == '-' || strstr(at, "..") ||
	    strspn(at, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.-") != strlen(at))
		return 0;
	return 1;
}

/* The domain the documents are for: the address's, else the hostname. */
static const char *
pa_domain(const struct config *conf, const char *email)
{
	if (email != NULL && portal_autoconfig_address_ok(email))
		return strchr(email, '@') + 1;
	return conf->hostname;
}

void
portal_autoconfig_thunderbird(const struct config *conf, const char *email,
    struct str *out)
{
	const char *domain = pa_domain(conf, email);

	str_clear(out);
	str_append(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<clientConfig version=\"1.1\">\n  <emailProvider id=\"");
	pa_esc(out, domain);
	str_append(out, "\">\n");
	pa_elem(out, "    ", "domain", domain);
	pa_elem(out, "    ", "displayName", conf->hostname);
	pa_elem(out, "    ", "displayShortName", domain);
	for (size_t i = 0; i < PA_NSERVERS; i++) {
		const struct pa_server *s = &pa_servers[i];
		int out_srv = strcmp(s->kind, "smtp") == 0;
		char port[16];

		str_printf(out, "    <%s type=\"%s\">\n", out_srv ?
		    "outgoingServer" : "incomingServer", s->kind);
		pa_elem(out, "      ", "hostname", pa_host(conf, s->kind));
		snprintf(port, sizeof(port), "%d", s->port);
		pa_elem(out, "      ", "port", port);
		pa_elem(out, "      ", "socketType", s->starttls ? "STARTTLS" :
		    "SSL");
		pa_elem(out, "      ", "authentication", "password-cleartext");
		/* the login name is the whole address (Thunderbird fills
		 * the placeholder in) */
		pa_elem(out, "      ", "username", "%EMAILADDRESS%");
		str_printf(out, "    </%s>\n", out_srv ? "outgoingServer" :
		    "incomingServer");
	}
	str_append(out, "  </emailProvider>\n</clientConfig>\n");
}

/*
 * The address of an autodiscover request: the text between the first
 * <EMailAddress> and the next </EMailAddress>, bounded; anything else
 * in the body is not looked at (a DOCTYPE, entities, other elements).
 */
static int
pa_request_address(const char *body, size_t len, char *out, size_t outlen)
{
	static const char open[] = "<EMailAddress>";
	static const char close[] = "</EMailAddress>";
	const char *p, *e;
	size_t n;

	if (body == NULL || len == 0 ||
	    (p = memmem(body, len, open, sizeof(open) - 1)) == NULL)
		return -1;
	p += sizeof(open) - 1;
	e = memmem(p, len - (size_t)(p - body), close, sizeof(close) - 1);
	if (e == NULL || (n = (size_t)(e - p)) == 0 || n >= outlen)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	if (memchr(out, '\0', n) != NULL || !portal_autoconfig_address_ok(out))
		return -1;
	return 0;
}

int
portal_autoconfig_autodiscover(const struct config *conf, const char *body,
    size_t len, struct str *out)
{
	char email[256];

	str_clear(out);
	str_append(out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
	    "autodiscover/responseschema/2006\">\n");
	if (len > PORTAL_AUTODISCOVER_MAX ||
	    pa_request_address(body, len, email, sizeof(email)) < 0) {
		str_append(out, "  <Response>\n    <Error Time=\"00:00:00\" "
		    "Id=\"1\">\n      <ErrorCode>600</ErrorCode>\n"
		    "      <Message>Invalid Request</Message>\n"
		    "      <DebugData />\n    </Error>\n  </Response>\n"
		    "</Autodiscover>\n");
		return -1;
	}
	str_append(out, "  <Response xmlns=\"http://schemas.microsoft.com/"
	    "exchange/autodiscover/outlook/responseschema/2006a\">\n"
	    "    <Account>\n      <AccountType>email</AccountType>\n"
	    "      <Action>settings</Action>\n");
	for (size_t i = 0; i < PA_NSERVERS; i++) {
		const struct pa_server *s = &pa_servers[i];
		char port[16];

		str_append(out, "      <Protocol>\n");
		pa_elem(out, "        ", "Type", strcmp(s->kind, "imap") == 0 ?
		    "IMAP" : strcmp(s->kind, "pop3") == 0 ? "POP3" : "SMTP");
		pa_elem(out, "        ", "Server", pa_host(conf, s->kind));
		snprintf(port, sizeof(port), "%d", s->port);
		pa_elem(out, "        ", "Port", port);
		pa_elem(out, "        ", "LoginName", email);
		pa_elem(out, "        ", "DomainRequired", "off");
		pa_elem(out, "        ", "SPA", "off");
		/* Encryption: TLS is STARTTLS, SSL TLS from the start */
		pa_elem(out, "        ", "Encryption", s->starttls ? "TLS" :
		    "SSL");
		pa_elem(out, "        ", "AuthRequired", "on");
		if (strcmp(s->kind, "smtp") == 0)
			pa_elem(out, "        ", "UsePOPAuth", "off");
		str_append(out, "      </Protocol>\n");
	}
	str_append(out, "    </Account>\n  </Response>\n</Autodiscover>\n");
	return 0;
}

/* An RFC 4122 version 4 UUID from 16 random octets. */
static void
pa_uuid(struct str *out, const unsigned char r[16])
{
	unsigned char u[16];

	memcpy(u, r, 16);
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			str_append_c(out, '-');
		str_printf(out, "%02X", u[i]);
	}
}

static void
pa_key_str(struct str *out, const char *key, const char *value)
{
	str_printf(out, "\t\t\t<key>%s</key>\n\t\t\t<string>", key);
	pa_esc(out, value);
	str_append(out, "</string>\n");
}

static void
pa_key_int(struct str *out, const char *key, int value)
{
	str_printf(out, "\t\t\t<key>%s</key>\n\t\t\t<integer>%d</integer>\n",
	    key, value);
}

static void
pa_key_bool(struct str *out, const char *key, int value)
{
	str_printf(out, "\t\t\t<key>%s</key>\n\t\t\t<%s/>\n", key,
	    value ? "true" : "false");
}

/*
 * XXX: an Apple mail payload holds one incoming and one outgoing
 * server: the profile names IMAP 993 (or POP3 995) and submission 587
 * with STARTTLS; 465, 110 and 143 are in the Thunderbird and Outlook
 * documents and docs/portal.md. The profile is not signed (the device
 * says "unverified"); signing needs a certificate for S/MIME signing.
 */
void
portal_autoconfig_mobileconfig(const struct config *conf, const char *account,
    int pop3, const unsigned char uuid_seed[32], struct str *out)
{
	const char *in = pop3 ? "pop3" : "imap";
	struct str ident = STR_INIT;

	/* reverse-DNS identifier from the host name, letters kept */
	for (const char *h = conf->hostname + strlen(conf->hostname);
	    h > conf->hostname;) {
		const char *dot = h - 1;

		while (dot > conf->hostname && *dot != '.')
			dot--;
		const char *label = *dot == '.' ? dot + 1 : dot;

		if (ident.len > 0)
			str_append_c(&ident, '.');
		str_append_n(&ident, label, (size_t)(h - label));
		h = dot;
	}
	str_clear(out);
	str_append(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
	    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
	    "<plist version=\"1.0\">\n<dict>\n"
	    "\t<key>PayloadContent</key>\n\t<array>\n\t\t<dict>\n");
	pa_key_str(out, "EmailAccountDescription", account);
	pa_key_str(out, "EmailAccountName", account);
	pa_key_str(out, "EmailAccountType", pop3 ? "EmailTypePOP" :
	    "EmailTypeIMAP");
	pa_key_str(out, "EmailAddress", account);
	pa_key_str(out, "IncomingMailServerAuthentication",
	    "EmailAuthPassword");
	pa_key_str(out, "IncomingMailServerHostName", pa_host(conf, in));
	pa_key_int(out, "IncomingMailServerPortNumber", pop3 ? 995 : 993);
	pa_key_bool(out, "IncomingMailServerUseSSL", 1);
	pa_key_str(out, "IncomingMailServerUsername", account);
	pa_key_str(out, "OutgoingMailServerAuthentication",
	    "EmailAuthPassword");
	pa_key_str(out, "OutgoingMailServerHostName", pa_host(conf, "smtp"));
	pa_key_int(out, "OutgoingMailServerPortNumber", 587);
	pa_key_bool(out, "OutgoingMailServerUseSSL", 1);
	pa_key_str(out, "OutgoingMailServerUsername", account);
	pa_key_bool(out, "OutgoingPasswordSameAsIncomingPassword", 1);
	pa_key_str(out, "PayloadDisplayName", pop3 ? "Mail (POP3)" :
	    "Mail (IMAP)");
	str_append(out, "\t\t\t<key>PayloadIdentifier</key>\n\t\t\t<string>");
	pa_esc(out, str_c(&ident));
	str_printf(out, ".mail.%s</string>\n", in);
	pa_key_str(out, "PayloadType", "com.apple.mail.managed");
	str_append(out, "\t\t\t<key>PayloadUUID</key>\n\t\t\t<string>");
	pa_uuid(out, uuid_seed);
	str_append(out, "</string>\n");
	pa_key_int(out, "PayloadVersion", 1);
	pa_key_bool(out, "PreventMove", 0);
	str_append(out, "\t\t</dict>\n\t</array>\n");
	str_append(out, "\t<key>PayloadDisplayName</key>\n\t<string>");
	pa_esc(out, conf->hostname);
	str_append(out, "</string>\n\t<key>PayloadIdentifier</key>\n"
	    "\t<string>");
	pa_esc(out, str_c(&ident));
	str_printf(out, ".profile.%s</string>\n", in);
	str_append(out, "\t<key>PayloadRemovalDisallowed</key>\n\t<false/>\n"
	    "\t<key>PayloadType</key>\n\t<string>Configuration</string>\n"
	    "\t<key>PayloadUUID</key>\n\t<string>");
	pa_uuid(out, uuid_seed + 16);
	str_append(out, "</string>\n\t<key>PayloadVersion</key>\n"
	    "\t<integer>1</integer>\n</dict>\n</plist>\n");
	str_deinit(&ident);
}
