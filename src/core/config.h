/*
 * config: the one configuration file, and the one table that is the truth
 * about every key (name, type, default, bounds, one line of help).
 * check-config, "config defaults" and docs/config.md are all produced from
 * that table (config.c), so they cannot drift apart.
 *
 * File format: one "key = value" per line, '#' starts a comment line,
 * blank lines ignored. List keys (type list) may be repeated; each line
 * adds one item, and the first occurrence in the file replaces the
 * default list. Every error is reported as "FILE:LINE: what is wrong".
 */
#ifndef SEKISHO_CONFIG_H
#define SEKISHO_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "str.h"

enum listen_role {
	LISTEN_MX,		/* port 25: local recipients, no AUTH */
	LISTEN_SUBMISSION,	/* 587: STARTTLS, AUTH required */
	LISTEN_SUBMISSIONS,	/* 465: implicit TLS, AUTH required */
	LISTEN_POP3,		/* 110: POP3, STLS (RFC 1939, 2595) */
	LISTEN_POP3S,		/* 995: POP3 in implicit TLS (RFC 8314) */
	LISTEN_POLICY,		/* Postfix policy delegation (docs/policy.md) */
	LISTEN_PORTAL,		/* settings page, HTTPS (docs/portal.md) */
	LISTEN_METRICS,		/* Prometheus GET /metrics (docs/operations.md) */
	LISTEN_AUTHPOLICY,	/* Dovecot's auth policy server (docs/imap.md) */
};

struct listen_conf {
	enum listen_role role;
	char	*host;		/* "127.0.0.1", "::1", "*" (any, v4+v6) */
	char	*port;		/* numeric */
	int	 proxy;		/* expect a PROXY v1/v2 header first */
};

/* A network: address and prefix length. v4 stored as AF_INET. */
struct cidr {
	int	 family;	/* AF_INET or AF_INET6 */
	uint8_t	 addr[16];
	int	 prefix;
};

enum auth_without_tls { AUTH_WITHOUT_TLS_NEVER, AUTH_WITHOUT_TLS_LOOPBACK };
/* word order of the relayhost_tls row */
enum relayhost_tls { RELAYHOST_TLS_STARTTLS, RELAYHOST_TLS_IMPLICIT };

/* What the policy does with a public address the geo database lacks. */
enum geo_unknown_action { GEO_UNKNOWN_REFUSE, GEO_UNKNOWN_ALLOW };
/* What a filter that is down or slow gets (milter_default_action). */
enum milter_default_action { MILTER_DEFAULT_TEMPFAIL, MILTER_DEFAULT_ACCEPT,
	MILTER_DEFAULT_REJECT };
/* Where the Postfix policy listener counts a submission (docs/policy.md). */
enum policy_count_state { POLICY_COUNT_RCPT, POLICY_COUNT_EOM };
/* What a submission's Received header shows of the client (issue 17). */
enum received_client { RECEIVED_CLIENT_ADDRESS, RECEIVED_CLIENT_TOKEN };

struct config {
	char	*path;			/* file it was read from */

	char	*hostname;		/* default: gethostname() */
	struct listen_conf *listen;	/* list "ROLE HOST:PORT [proxy]" */
	size_t	 listen_count;

	char	*store;			/* "sqlite:/path/to.db" */
	char	*spool_dir;
	char	*maildir_root;		/* ROOT/DOMAIN/LOCALPART/Maildir */

	char	*tls_cert;		/* PEM chain */
	char	*tls_key;
	char	*tls_min_protocol;	/* "TLSv1.2" or "TLSv1.3" */
	char	*tls_ciphers;		/* TLS 1.2 cipher list */

	int	 workers;		/* session loops; 0 = one per 2 cores */
	int	 backend_threads;	/* blocking work pool */

	int	 max_connections;
	int	 max_connections_per_ip;

	struct cidr *proxy_trusted;	/* who may send a PROXY header */
	size_t	 proxy_trusted_count;
	int	 proxy_timeout;		/* seconds */

	size_t	 smtp_line_length_limit;	/* command line, incl. CRLF */
	size_t	 smtp_data_line_length_limit;	/* DATA line, excl. CRLF */
	size_t	 message_size_limit;		/* bytes */
	int	 smtp_max_recipients;
	int	 smtp_max_errors;
	int	 smtp_recipient_overshoot_limit;
	enum policy_count_state policy_count_state;
	int	 smtp_timeout;			/* seconds, per command */
	int	 smtp_data_timeout;		/* seconds, for all of DATA */
	enum auth_without_tls submission_auth_without_tls;
	int	 received_show_account;		/* bool */

	char	*log_level;			/* "warn" "info" "debug" */

	char	*geo_database;		/* "tor:V4FILE,V6FILE" or "mmdb:PATH" */
	char	**home_countries;	/* "JP": 2 upper-case letters each */
	size_t	 home_countries_count;
	enum geo_unknown_action geo_unknown;

	/* the sending policy */
	char	*timezone;
	char	*portal_url;
	struct cidr *trusted_networks;
	size_t	 trusted_networks_count;
	int	 overseas_permission_days;
	int	 limit_messages_per_day;
	int	 limit_recipients_per_day;
	int	 limit_recipients_per_hour;
	int	 limit_recipients_per_message;
	int	 limit_overseas_recipients_per_day;
	int	 sender_alignment;
	int	 auth_fail_delay;
	int	 auth_fail_delay_max;
	int	 auth_fail_window;
	int	 auth_max_failures_per_ip;
	int	 auth_max_failures_per_account;
	int	 auth_lock_time;
	char	*notice_from;
	char	**trusted_relay_names;		/* host name suffixes */
	size_t	 trusted_relay_names_count;

	/* POP3 (docs/pop3.md) */
	enum auth_without_tls pop3_auth_without_tls;
	int	 pop3_timeout;			/* seconds */
	int	 pop_before_smtp;		/* bool */
	int	 pop_before_smtp_window;	/* seconds */
	int	 pop3_lock_lease;		/* seconds, multi-node lock */
	char	*apop_secret_key;		/* key file sealing APOP secrets */

	/* outbound delivery (docs/delivery.md) */
	char	*outbound_helo;			/* "" = hostname */
	char	*relayhost;			/* "" = MX look-up */
	char	*relayhost_auth_file;		/* "" = no SMTP AUTH */
	enum relayhost_tls relayhost_tls;	/* how TLS starts */
	int	 relayhost_tls_verify;		/* bool; "no": loopback only */
	char	*relayhost_tls_ca_file;		/* "" = system CA store */
	char	**transport;			/* "DOMAIN NEXTHOP [tls=..]" */
	size_t	 transport_count;
	char	*local_delivery;		/* maildir | lmtp:... */
	char	**dns_servers;			/* "IP[:PORT]"; none = resolv.conf */
	size_t	 dns_servers_count;
	int	 outbound_connections;		/* total */
	int	 outbound_connections_per_destination;
	int	 outbound_connect_timeout;	/* seconds */
	int	 outbound_timeout;		/* seconds, per command */
	int	 queue_retry_min;		/* seconds */
	int	 queue_retry_max;
	int	 queue_lifetime;
	int	 delay_warning;			/* seconds, 0 = off */

	/* settings page (docs/portal.md) */
	enum auth_without_tls portal_plain_http;
	int	 portal_session_timeout;	/* seconds idle */

	/* spool free-space floor and TLS details (docs/tls.md) */
	size_t	 queue_minfree;			/* bytes, 0 = off */
	char	*tls_ciphersuites;		/* TLS 1.3 suites */
	char	*tls_groups;			/* key exchange groups */
	char	**tls_sni;			/* "NAME CERT KEY" */
	size_t	 tls_sni_count;

	/* processes and privileges (docs/security.md) */
	char	*user;				/* back side */
	char	*group;
	char	*session_user;			/* session processes */
	char	*session_group;
	char	*session_chroot;		/* empty, root-owned */
	int	 shutdown_timeout;		/* seconds */

	/* out of memory (docs/security.md) */
	size_t	 session_memory_limit;		/* bytes, 0 = none */

	/* speed (docs/performance.md) */
	int	 auth_cache_ttl;		/* seconds, 0 = off */

	/* clients by network, lock-out, policy listener (issue 13) */
	int	 ipv6_client_prefix;		/* bits, 32..128 */
	int	 auth_trusted_address_days;	/* 0 = off */
	struct cidr *policy_clients;		/* who may ask policyd */
	size_t	 policy_clients_count;

	/* after a password is stolen (issue 17, src/policy/risk.h) */
	int	 risk_weight_login_new_country;
	int	 risk_login_country_days;
	int	 risk_weight_overseas_refused;
	int	 risk_weight_limit_reached;
	int	 risk_weight_limit_early;
	int	 risk_limit_early_hour;
	int	 risk_weight_auth_locked;
	int	 risk_weight_spam_verdict;
	int	 risk_weight_bounces;
	int	 risk_bounces_per_hour;
	int	 risk_weight_new_recipients;
	int	 risk_new_recipients_percent;
	int	 risk_new_recipients_min;
	int	 risk_weight_password_spraying;
	int	 risk_spray_accounts;
	int	 risk_half_life;		/* seconds */
	int	 risk_notify;			/* scores; 0 = off */
	int	 risk_hold;
	int	 risk_suspend;
	/* issue 17 items 6-9, issue 19 item 5 (i17-country) */
	char	**limit_overseas_recipients_per_day_by_country; /* "CN,RU:33" */
	size_t	 limit_overseas_recipients_per_day_by_country_count;
	char	**overseas_restrict;		/* "submission pop3 imap" */
	size_t	 overseas_restrict_count;
	enum received_client received_client;
	char	*trace_token_key;		/* key file, Received tokens */
	int	 trace_token_key_keep;		/* seconds */
	int	 retention_events_days;
	int	 retention_notices_days;
	int	 retention_submissions_days;
	int	 retention_send_counters_days;
	int	 retention_batch;		/* rows per statement */
	int	 retention_risk_days;
	char	*client_hostname_submission;	/* "" = hostname */
	char	*client_hostname_pop3;
	char	*client_hostname_imap;
	/* Dovecot's auth policy server (issue 19, docs/imap.md) */
	char	*authpolicy_secret;		/* X-API-Key; "" = refuse all */
	struct cidr *authpolicy_clients;	/* who may ask */
	size_t	 authpolicy_clients_count;
	/* mail filters over the milter protocol (issue 16,
	 * src/milter/milter.h) */
	char	*milters_mx;			/* "inet:H:P unix:/p", "" */
	char	*milters_submission;
	int	 milter_connect_timeout;	/* seconds */
	int	 milter_command_timeout;	/* seconds */
	int	 milter_eom_timeout;		/* seconds */
	enum milter_default_action milter_default_action;
	/* refuse_own_from (issue 16): whose Authentication-Results count */
	char	*milter_authserv_id;
};

/*
 * Read and check a config file. Returns 0 and *conf_r on success; -1 when
 * the file has errors, each appended to errors as "FILE:LINE: text\n"
 * (all errors are reported, not only the first); *conf_r is then NULL.
 * A missing file is "FILE: cannot open: strerror".
 */
int config_load(const char *path, struct config **conf_r, struct str *errors);
/* The longest configuration text read (a file, a reload's memfd). */
#define CONFIG_TEXT_MAX	(1024 * 1024)

/*
 * The same, from memory: name is used in messages and as conf->path.
 * buf need not be NUL-terminated (config_load and the fuzzer use it).
 */
int config_load_buffer(const char *name, const char *buf, size_t len,
    struct config **conf_r, struct str *errors);

/* The built-in defaults only (no file). */
struct config *config_defaults(void);
void config_free(struct config **conf);

/* "key = value" for every key with its default, with help as comments. */
void config_print_defaults(FILE *fp);
/* The reference in Markdown (docs/config.md is this output). */
void config_print_markdown(FILE *fp);
/* The same as the manual page sekisho.conf(5) (man/sekisho.conf.5). */
void config_print_man(FILE *fp, const char *version, const char *date);
/* The effective values of conf, as a valid config file. */
void config_print(FILE *fp, const struct config *conf);

const char *config_role_name(enum listen_role role);

/*
 * CIDR helpers (also used for trusted networks by later parts).
 * cidr_parse takes "192.0.2.0/24", "2001:db8::/32" or one address (/32,
 * /128); returns 0, or -1 if text is not that or has bits set after the
 * prefix. An IPv4-mapped network (::ffff:192.0.2.0/120) is stored as IPv4.
 */
int cidr_parse(const char *text, struct cidr *out);
/* 1 if the socket address is inside one of the networks. */
int cidr_match(const struct cidr *list, size_t count,
    const struct sockaddr *sa);

/*
 * The key a client counts under (connection limits, login throttling,
 * trusted login addresses): IPv4 and IPv4-mapped IPv6 by address, IPv6
 * by its first v6_prefix bits (ipv6_client_prefix). cidr_client_key:
 * key_r[0] is 4 or 6, 0 when sa is no IP address; the address bits
 * follow, host bits cleared. cidr_client_text: the same for a printable
 * address, as "192.0.2.7" or "2001:db8:1:2::/64" (a /128 without the
 * suffix); text that is no address is copied as is. Returns buf.
 */
void cidr_client_key(const struct sockaddr *sa, int v6_prefix,
    uint8_t key_r[17]);
const char *cidr_client_text(const char *addr, int v6_prefix, char *buf,
    size_t len);

#endif
