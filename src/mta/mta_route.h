/*
 * mta_route: where a recipient's mail goes (docs/delivery.md "Routing").
 *
 *   transport = DOMAIN NEXTHOP [tls=require|may]   per-domain override;
 *                                     ".example.net" matches subdomains
 *   relayhost = NEXTHOP [tls=...]     all other non-local mail; with
 *                                     relayhost_auth_file: TLS required
 *                                     and verified (auth, verify)
 *   local_delivery = maildir | lmtp:[HOST]:PORT | lmtp:/SOCKET
 *   otherwise the recipient's domain by MX (RFC 5321 5.1) on port 25
 *
 * NEXTHOP: "[host]:port" or "[host]" (that host, no MX look-up, as in
 * Postfix), "host:port" or "host" (MX look-up of host), optionally with
 * "smtp:" in front, or "lmtp:[host]:port", "lmtp:host:port",
 * "lmtp:/path" (LMTP, RFC 2033; never an MX look-up).
 *
 * The check functions are the config table's (src/core/config.c); the
 * rest is used by the queue and the SMTP client.
 */
#ifndef SEKISHO_MTA_ROUTE_H
#define SEKISHO_MTA_ROUTE_H

#include <stddef.h>

#include "../core/str.h"

struct config;

enum mta_proto { MTA_PROTO_SMTP, MTA_PROTO_LMTP };
enum mta_tls { MTA_TLS_MAY, MTA_TLS_REQUIRE };

struct mta_nexthop {
	enum mta_proto	 proto;
	char		*host;		/* name or address; NULL for a path */
	char		*path;		/* LMTP unix socket, else NULL */
	int		 port;
	int		 mx;		/* look up MX records of host */
	enum mta_tls	 tls;
	int		 auth;		/* SMTP AUTH with the relayhost login:
					 * TLS required, never in clear */
	int		 tls_implicit;	/* TLS from the connect (RFC 8314) */
	int		 verify;	/* verify the certificate against host */
};

/* "NEXTHOP [tls=...]" into nh (zeroed first); -1 with the reason in
 * why. default_port is used when none is given (25, or 24 for LMTP). */
int mta_nexthop_parse(const char *text, struct mta_nexthop *nh,
    struct str *why);
void mta_nexthop_deinit(struct mta_nexthop *nh);
/* A key naming the destination for connection reuse and limits:
 * "smtp:mx:example.net:25", "smtp:[192.0.2.1]:2525", "lmtp:/run/s". */
char *mta_nexthop_key(const struct mta_nexthop *nh);

/* Config checks (struct str *why gets the reason). */
int mta_route_check_transport(const char *value, struct str *why);
int mta_route_check_relayhost(const char *value, struct str *why);
int mta_route_check_auth_file(const char *value, struct str *why);
int mta_route_check_local(const char *value, struct str *why);
int mta_route_check_dns_server(const char *value, struct str *why);
/* relayhost_tls_verify = no is allowed for this relayhost value: 1 when
 * its host is loopback (127.0.0.0/8, ::1, localhost), else 0 and why. */
int mta_route_check_verify_off(const char *relayhost, struct str *why);
/* host is 127.0.0.0/8, ::1 or "localhost" */
int mta_route_host_is_loopback(const char *host);

struct mta_routes;

/* Compiled from the config at queue start; reads relayhost_auth_file.
 * NULL on error (error_r, valid until the next call). */
struct mta_routes *mta_routes_new(const struct config *conf,
    const char **error_r);
void mta_routes_free(struct mta_routes **r);

/*
 * The next hop of a remote recipient's domain into *nh (a copy owned
 * by the caller: mta_nexthop_deinit it). For a domain without a
 * transport row and no relayhost: MX look-up of the domain on port 25.
 */
void mta_routes_remote(const struct mta_routes *r, const char *domain,
    struct mta_nexthop *nh);
/* 1 and *nh (a copy, unless nh is NULL) when local mailboxes are delivered over LMTP,
 * 0 for Maildir. */
int mta_routes_local_lmtp(const struct mta_routes *r,
    struct mta_nexthop *nh);
/* The relayhost login, or NULL user when none is configured. */
void mta_routes_auth(const struct mta_routes *r, const char **user_r,
    const char **password_r);

#endif
