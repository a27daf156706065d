/*
 * config: the configuration file. config_defs[] below is the one table
 * that is the truth about every key: its name (also the struct config
 * field, so a row cannot name the wrong field), type, default written as
 * it would be in the file and parsed by the same code, bounds and one line
 * of help. Defaults, "config defaults", config_print() and docs/config.md
 * are all produced from it (tmux options-table.c, Postfix postconf -d).
 *
 * Loading never stops at the first error: every bad line is reported as
 * "FILE:LINE: what is wrong" so one edit-check cycle fixes them all.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "file.h"
#include "log.h"
#include "str.h"
#include "tls_check.h"
#include "xmalloc.h"
#include "../milter/milter_proto.h"
#include "../mta/mta_route.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* A config file is short; anything bigger is a mistake (a log file?). */
#define CONFIG_MAX_FILE	(1024 * 1024)
#define CONFIG_MAX_LINE	4096

#define KIB	1024LL
#define MIB	(1024LL * KIB)
#define GIB	(1024LL * MIB)
#define MINUTE	60LL
#define HOUR	(60LL * MINUTE)
#define DAY	(24LL * HOUR)

enum config_type {
	CONFIG_STRING,
	CONFIG_INT,		/* int */
	CONFIG_BOOL,		/* int, 0 or 1 */
	CONFIG_SIZE,		/* size_t, bytes */
	CONFIG_DURATION,	/* int, seconds */
	CONFIG_ENUM,		/* int (a C enum): index into words */
	CONFIG_ENUM_STR,	/* char *: one of words, as written there */
	CONFIG_LISTEN,		/* struct listen_conf[] + size_t count */
	CONFIG_CIDR,		/* struct cidr[] + size_t count */
	CONFIG_STRLIST,		/* char *[] + size_t count; check per item */
};

#define CONFIG_F_EMPTY_OK	0x01	/* a string that may be empty */
#define CONFIG_F_SYSHOST	0x02	/* empty means gethostname() */

struct config_def {
	const char	*name;
	enum config_type type;
	const char	*def;		/* as in a file; '\n' between items */
	long long	 min, max;	/* int, size, duration */
	const char *const *words;	/* enums, NULL-terminated */
	int		 flags;
	/* Extra check of a string value; appends the reason to why. */
	int		(*check)(const char *value, struct str *why);
	size_t		 off;		/* of the field in struct config */
	size_t		 count_off;	/* lists: of the item count */
	const char	*help;
};

static int config_check_hostname(const char *, struct str *);
static int config_check_store(const char *, struct str *);
static int config_check_abs_path(const char *, struct str *);
static int config_check_geo_database(const char *, struct str *);
static int config_check_country(const char *, struct str *);
static int config_check_timezone(const char *, struct str *);
static int config_check_relay_name(const char *, struct str *);
static int config_check_country_cap(const char *, struct str *);
static int config_check_restrict(const char *, struct str *);
static int config_check_client_hostname(const char *, struct str *);

#define OFF(field)	offsetof(struct config, field)
#define ROW_STR(n, d, fl, chk, h) \
	{ #n, CONFIG_STRING, d, 0, 0, NULL, fl, chk, OFF(n), 0, h }
#define ROW_NUM(n, t, d, lo, hi, h) \
	{ #n, t, d, lo, hi, NULL, 0, NULL, OFF(n), 0, h }
#define ROW_BOOL(n, d, h) \
	{ #n, CONFIG_BOOL, d, 0, 0, NULL, 0, NULL, OFF(n), 0, h }
#define ROW_ENUM(n, t, d, w, h) \
	{ #n, t, d, 0, 0, (const char *const[])w, 0, NULL, OFF(n), 0, h }
#define ROW_LIST(n, t, d, h) \
	{ #n, t, d, 0, 0, NULL, 0, NULL, OFF(n), OFF(n##_count), h }
#define ROW_STRLIST(n, d, chk, h) \
	{ #n, CONFIG_STRLIST, d, 0, 0, NULL, 0, chk, OFF(n), OFF(n##_count), h }
#define WORDS(...)	{ __VA_ARGS__, NULL }

/*
 * The table. Adding a key: a field in struct config (config.h) and a row
 * here; the row's name is the field's name. Rows print in this order.
 */
static const struct config_def config_defs[] = {
	ROW_STR(hostname, "", CONFIG_F_EMPTY_OK | CONFIG_F_SYSHOST,
	    config_check_hostname,
	    "Name this server uses in greetings and Received headers."),
	ROW_LIST(listen, CONFIG_LISTEN,
	    "mx *:25\nsubmission *:587\nsubmissions *:465",
	    "Where to accept SMTP and POP3 connections; one listener per "
	    "line."),
	ROW_STR(store, "sqlite:/var/lib/sekisho/sekisho.db", 0,
	    config_check_store,
	    "Account database, as sqlite:ABSOLUTE-PATH or postgresql:CONNINFO "
	    "(libpq key=value pairs or a postgresql:// URI)."),
	ROW_STR(spool_dir, "/var/spool/sekisho", 0, config_check_abs_path,
	    "Directory of the mail queue (absolute path)."),
	ROW_STR(maildir_root, "/var/lib/sekisho/mail", 0,
	    config_check_abs_path,
	    "Mailboxes live in ROOT/DOMAIN/LOCALPART/Maildir "
	    "(absolute path)."),
	ROW_STR(tls_cert, "/etc/sekisho/tls/cert.pem", 0,
	    config_check_abs_path,
	    "PEM file with the certificate chain, server certificate first."),
	ROW_STR(tls_key, "/etc/sekisho/tls/key.pem", 0, config_check_abs_path,
	    "PEM file with the private key of tls_cert."),
	ROW_ENUM(tls_min_protocol, CONFIG_ENUM_STR, "TLSv1.2",
	    WORDS("TLSv1.2", "TLSv1.3"),
	    "Oldest TLS version accepted."),
	ROW_STR(tls_ciphers,
	    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
	    0, NULL,
	    "OpenSSL cipher list for TLS 1.2 (TLS 1.3: tls_ciphersuites)."),
	ROW_NUM(workers, CONFIG_INT, "0", 0, 64,
	    "Number of session event loops; 0 means one per two CPU cores "
	    "(at least one), the back side's threads using the others."),
	ROW_NUM(backend_threads, CONFIG_INT, "4", 1, 64,
	    "Threads for blocking work (password hashing, database, fsync)."),
	ROW_NUM(max_connections, CONFIG_INT, "1000", 1, 1000000,
	    "Most client connections open at once, over all listeners."),
	ROW_NUM(max_connections_per_ip, CONFIG_INT, "20", 1, 100000,
	    "Most connections open at once from one client address."),
	ROW_LIST(proxy_trusted, CONFIG_CIDR, "",
	    "Networks of load balancers whose PROXY headers are believed."),
	ROW_NUM(proxy_timeout, CONFIG_DURATION, "5s", 1, 300,
	    "Time allowed for the PROXY header to arrive."),
	ROW_NUM(smtp_line_length_limit, CONFIG_SIZE, "2048", 512, 64 * KIB,
	    "Longest SMTP command line, CRLF included (RFC 5321 4.5.3.1.4)."),
	ROW_NUM(smtp_data_line_length_limit, CONFIG_SIZE, "998", 78, MIB,
	    "Longest line of message data, CRLF excluded (RFC 5322 2.1.1)."),
	ROW_NUM(message_size_limit, CONFIG_SIZE, "25M", KIB, 2 * GIB,
	    "Largest message accepted, announced in EHLO SIZE (RFC 1870)."),
	ROW_NUM(smtp_max_recipients, CONFIG_INT, "100", 1, 100000,
	    "Most RCPT TO accepted in one transaction."),
	ROW_NUM(smtp_max_errors, CONFIG_INT, "10", 1, 1000,
	    "Bad commands allowed in a session before it is closed."),
	/* issue 14: recipients over a limit, and the Postfix policy
	 * listener's counting (docs/policy.md) */
	ROW_NUM(smtp_recipient_overshoot_limit, CONFIG_INT, "1000", 0, 1000000,
	    "RCPTs refused over a recipient limit in one transaction before "
	    "each further one counts as an error (smtp_max_errors); 0: "
	    "each one does."),
	/* Word order is enum policy_count_state order. */
	ROW_ENUM(policy_count_state, CONFIG_ENUM, "rcpt",
	    WORDS("rcpt", "end-of-message"),
	    "Where the policy listener counts a submission: rcpt (each "
	    "recipient answered DUNNO) or end-of-message (what was accepted)."),
	ROW_NUM(smtp_timeout, CONFIG_DURATION, "300s", 1, HOUR,
	    "Time allowed for each SMTP command (RFC 5321 4.5.3.2.7)."),
	ROW_NUM(smtp_data_timeout, CONFIG_DURATION, "600s", 1, DAY,
	    "Time allowed for the whole message after DATA."),
	/* Word order is enum auth_without_tls order. */
	ROW_ENUM(submission_auth_without_tls, CONFIG_ENUM, "never",
	    WORDS("never", "loopback"),
	    "Allow AUTH on submission without TLS: never, or from "
	    "loopback only."),
	ROW_BOOL(received_show_account, "no",
	    "Name the authenticated account in the Received header."),
	ROW_ENUM(log_level, CONFIG_ENUM_STR, "info",
	    WORDS("warn", "info", "debug"),
	    "Least important log messages that are still written."),
	ROW_STR(geo_database, "tor:/usr/share/tor/geoip,/usr/share/tor/geoip6",
	    0, config_check_geo_database,
	    "Country database: tor:FILE[,FILE] (tor-geoipdb range files) "
	    "or mmdb:FILE (MaxMind DB)."),
	ROW_STRLIST(home_countries, "JP", config_check_country,
	    "Countries (ISO 3166 codes) whose clients count as domestic."),
	/* Word order is enum geo_unknown_action order. */
	ROW_ENUM(geo_unknown, CONFIG_ENUM, "refuse", WORDS("refuse", "allow"),
	    "Submissions from a public address missing from the country "
	    "database: refuse or allow."),
	/* the sending policy (docs/policy.md) */
	ROW_STR(timezone, "Asia/Tokyo", 0, config_check_timezone,
	    "Time zone of daily limits, dates in replies, headers and logs."),
	ROW_STR(portal_url, "", CONFIG_F_EMPTY_OK, NULL,
	    "Settings page named in refusals; empty: https://HOSTNAME/."),
	ROW_LIST(trusted_networks, CONFIG_CIDR, "",
	    "Networks never refused for sending from abroad (webmail)."),
	ROW_NUM(overseas_permission_days, CONFIG_INT, "7", 1, 365,
	    "Days an overseas-sending permission lasts when turned on."),
	ROW_NUM(limit_messages_per_day, CONFIG_INT, "500", 0, 10000000,
	    "Messages an account may send per day; 0: no limit."),
	ROW_NUM(limit_recipients_per_day, CONFIG_INT, "1000", 0, 10000000,
	    "Recipients an account may send to per day; 0: no limit."),
	ROW_NUM(limit_recipients_per_hour, CONFIG_INT, "0", 0, 10000000,
	    "Recipients per hour (burst limit); 0: no limit."),
	ROW_NUM(limit_recipients_per_message, CONFIG_INT, "100", 0, 100000,
	    "Recipients of one submitted message; 0: only "
	    "smtp_max_recipients."),
	ROW_NUM(limit_overseas_recipients_per_day, CONFIG_INT, "100", 0,
	    10000000,
	    "Recipients per day sent from abroad under a permission; "
	    "0: no limit."),
	ROW_BOOL(sender_alignment, "yes",
	    "Envelope sender and header From must be the account's own "
	    "addresses."),
	ROW_NUM(auth_fail_delay, CONFIG_DURATION, "1s", 0, 60,
	    "Delay before answering a failed login, doubled per failure."),
	ROW_NUM(auth_fail_delay_max, CONFIG_DURATION, "8s", 0, 300,
	    "Longest delay before answering a failed login."),
	ROW_NUM(auth_fail_window, CONFIG_DURATION, "15m", 1, DAY,
	    "Failed logins are counted over this time."),
	ROW_NUM(auth_max_failures_per_ip, CONFIG_INT, "10", 0, 100000,
	    "Failed logins from one address before it is locked; 0: never."),
	ROW_NUM(auth_max_failures_per_account, CONFIG_INT, "20", 0, 100000,
	    "Failed logins to one account before it is locked; 0: never."),
	ROW_NUM(auth_lock_time, CONFIG_DURATION, "15m", 1, DAY,
	    "How long a locked address or account refuses logins."),
	ROW_STR(notice_from, "", CONFIG_F_EMPTY_OK, NULL,
	    "From address of notices to subscribers; empty: "
	    "postmaster@HOSTNAME."),
	ROW_STRLIST(trusted_relay_names, "", config_check_relay_name,
	    "Host name suffixes of foreign services that send in a "
	    "subscriber's name (checked by forward-confirmed reverse DNS); "
	    "clients so named are not refused as abroad. Off when empty."),
	/* POP3 (docs/pop3.md); word order is enum auth_without_tls order */
	ROW_ENUM(pop3_auth_without_tls, CONFIG_ENUM, "never",
	    WORDS("never", "loopback"),
	    "Allow USER/PASS and AUTH on POP3 without TLS: never, or from "
	    "loopback only."),
	ROW_NUM(pop3_timeout, CONFIG_DURATION, "10m", 1, DAY,
	    "Idle time before a POP3 session is closed (RFC 1939 3: at "
	    "least 10m)."),
	ROW_BOOL(pop_before_smtp, "no",
	    "Legacy POP-before-SMTP: a POP3 login lets its address submit "
	    "without AUTH."),
	ROW_NUM(pop_before_smtp_window, CONFIG_DURATION, "20m", 1, DAY,
	    "How long after a POP3 login its address may submit without "
	    "AUTH."),
	ROW_NUM(pop3_lock_lease, CONFIG_DURATION, "5m", 2, HOUR,
	    "Lease of a POP3 session's mailbox lock in the store, renewed "
	    "while it lives; a dead node's locks end after it."),
	ROW_STR(apop_secret_key, "/etc/sekisho/apop.key", 0,
	    config_check_abs_path,
	    "Key file (0600) sealing APOP secrets in the store; made by "
	    "'user apop enable'."),
	/* outbound delivery (docs/delivery.md) */
	ROW_STR(outbound_helo, "", CONFIG_F_EMPTY_OK, config_check_hostname,
	    "Name sent in EHLO/LHLO to other servers; empty: hostname."),
	ROW_STR(relayhost, "", CONFIG_F_EMPTY_OK, mta_route_check_relayhost,
	    "Smarthost for all non-local mail, e.g. [smtp.example.net]:587 "
	    "tls=require; empty: MX look-up."),
	ROW_STR(relayhost_auth_file, "", CONFIG_F_EMPTY_OK,
	    mta_route_check_auth_file,
	    "File (0600) with 'USER PASSWORD' for SMTP AUTH PLAIN to "
	    "relayhost; empty: no AUTH."),
	/* relayhost TLS (docs/delivery.md "Relayhost login"); with
	 * relayhost_auth_file set, TLS is required and verified */
	ROW_ENUM(relayhost_tls, CONFIG_ENUM, "starttls",
	    WORDS("starttls", "implicit"),
	    "TLS to relayhost: starttls (RFC 3207), or implicit (TLS from the "
	    "connect, e.g. port 465, RFC 8314)."),
	ROW_BOOL(relayhost_tls_verify, "yes",
	    "With relayhost_auth_file: verify relayhost's certificate and "
	    "name; 'no' only for a loopback relayhost."),
	ROW_STR(relayhost_tls_ca_file, "", CONFIG_F_EMPTY_OK,
	    mta_route_check_auth_file,
	    "PEM CA certificate(s) trusted for relayhost instead of the "
	    "system store; empty: the system store."),
	ROW_STRLIST(transport, "", mta_route_check_transport,
	    "Per-domain route: DOMAIN NEXTHOP [tls=require], NEXTHOP "
	    "[host]:port, host[:port] (MX) or lmtp:..."),
	ROW_STR(local_delivery, "maildir", 0, mta_route_check_local,
	    "Local mailboxes: maildir, or lmtp:[HOST]:PORT or lmtp:/SOCKET "
	    "(e.g. Dovecot)."),
	ROW_STRLIST(dns_servers, "", mta_route_check_dns_server,
	    "DNS servers IP[:PORT] ([IPv6]:PORT) for MX look-ups; none: "
	    "/etc/resolv.conf."),
	ROW_NUM(outbound_connections, CONFIG_INT, "100", 1, 100000,
	    "Most outbound SMTP/LMTP connections open at once."),
	ROW_NUM(outbound_connections_per_destination, CONFIG_INT, "10", 1,
	    10000,
	    "Most outbound connections open at once to one destination."),
	ROW_NUM(outbound_connect_timeout, CONFIG_DURATION, "30s", 1, HOUR,
	    "Time allowed to connect to and be greeted by a server."),
	ROW_NUM(outbound_timeout, CONFIG_DURATION, "5m", 1, HOUR,
	    "Time allowed for each reply of a server (RFC 5321 4.5.3.2)."),
	ROW_NUM(queue_retry_min, CONFIG_DURATION, "5m", 1, DAY,
	    "First retry delay after a temporary failure; doubles each "
	    "time."),
	ROW_NUM(queue_retry_max, CONFIG_DURATION, "1h", 1, 7 * DAY,
	    "Longest delay between two delivery attempts."),
	ROW_NUM(queue_lifetime, CONFIG_DURATION, "5d", 1, 30 * DAY,
	    "How long a message may stay queued before it bounces."),
	ROW_NUM(delay_warning, CONFIG_DURATION, "0s", 0, 30 * DAY,
	    "Warn the sender when a message is this late; 0s: never."),
	/* settings page (docs/portal.md); word order is enum
	 * auth_without_tls order */
	ROW_ENUM(portal_plain_http, CONFIG_ENUM, "never",
	    WORDS("never", "loopback"),
	    "Serve the settings page without TLS: never, or on a loopback "
	    "listener only (a demo)."),
	ROW_NUM(portal_session_timeout, CONFIG_DURATION, "30m", 60, DAY,
	    "Idle time after which a settings page login ends."),
	/* spool free-space floor (docs/delivery.md) and TLS (docs/tls.md) */
	ROW_NUM(queue_minfree, CONFIG_SIZE, "100M", 0, 1024 * GIB,
	    "Free space kept on spool_dir's file system: below it MAIL is "
	    "answered 452 4.3.1; 0: no floor."),
	ROW_STR(tls_ciphersuites,
	    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"
	    "TLS_AES_128_GCM_SHA256", 0, tls_check_ciphersuites,
	    "OpenSSL cipher suite list for TLS 1.3."),
	ROW_STR(tls_groups, "X25519:P-256:X448:P-384:P-521", 0,
	    tls_check_groups,
	    "Key exchange groups (ECDHE curves), most preferred first."),
	ROW_STRLIST(tls_sni, "", tls_check_sni,
	    "Another certificate for a server name the client asks for "
	    "(SNI): NAME CERT KEY, NAME a host name or *.domain."),
	/* processes and privileges (docs/security.md) */
	ROW_STR(user, "sekisho", 0, NULL,
	    "User the back side runs as (store, spool, Maildirs); not root."),
	ROW_STR(group, "sekisho", 0, NULL,
	    "Group the back side runs as."),
	ROW_STR(session_user, "sekisho-session", 0, NULL,
	    "User the session processes (network input) run as; not root, "
	    "not user."),
	ROW_STR(session_group, "sekisho-session", 0, NULL,
	    "Group the session processes run as."),
	ROW_STR(session_chroot, "/var/lib/sekisho/empty", 0,
	    config_check_abs_path,
	    "Empty root-owned directory the session processes are "
	    "chrooted to."),
	ROW_NUM(shutdown_timeout, CONFIG_DURATION, "30s", 1, HOUR,
	    "Time open sessions get to finish at a stop or reload."),
	/* out of memory (docs/security.md) */
	ROW_NUM(session_memory_limit, CONFIG_SIZE, "1G", 0, 1024 * GIB,
	    "Data size cap (RLIMIT_DATA) of each session process: near it "
	    "new connections are refused (SMTP 421 4.3.2) until memory is "
	    "back; 0: none (under 8M: 8M). The default is over ten times what "
	    "max_connections busy TLS sessions take (tens of KB each), and "
	    "keeps a process fed by hostile clients from taking the host's "
	    "memory; not applied in an ASan (test) build."),
	/* speed (docs/performance.md) */
	ROW_NUM(auth_cache_ttl, CONFIG_DURATION, "5m", 0, DAY,
	    "A password that logged in is recognised again for this long "
	    "without the slow hash (yescrypt) being computed; only successes "
	    "are remembered, by a keyed digest, and a changed password is "
	    "never taken for the old one. 0: hash at every login."),
	/* clients by network, lock-out and the policy listener (issue 13:
	 * docs/security.md, docs/policy.md) */
	ROW_NUM(ipv6_client_prefix, CONFIG_INT, "64", 32, 128,
	    "An IPv6 client counts by its first this many bits (its /64 "
	    "network by default) for max_connections_per_ip and login "
	    "throttling; IPv4 clients count by address."),
	ROW_NUM(auth_trusted_address_days, CONFIG_INT, "30", 0, 365,
	    "An account's lock does not refuse the right password from an "
	    "address (IPv6: its ipv6_client_prefix network) where the account "
	    "logged in within this many days; 0: the lock refuses everyone."),
	ROW_LIST(policy_clients, CONFIG_CIDR, "127.0.0.0/8\n::1",
	    "Networks allowed to query the Postfix policy listener; others "
	    "are closed at once."),
	/* after a password is stolen (issue 17): the risk score's signals,
	 * weights, decay and the automatic response (docs/policy.md "Risk
	 * score") */
	ROW_NUM(risk_weight_login_new_country, CONFIG_INT, "30", 0, 1000,
	    "Risk points for a login (SMTP AUTH, POP3, settings page) from a "
	    "country the account has not logged in from in "
	    "risk_login_country_days."),
	ROW_NUM(risk_login_country_days, CONFIG_INT, "90", 1, 3650,
	    "A country not seen for an account's logins this many days is "
	    "new again."),
	ROW_NUM(risk_weight_overseas_refused, CONFIG_INT, "10", 0, 1000,
	    "Risk points for each submission from abroad refused."),
	ROW_NUM(risk_weight_limit_reached, CONFIG_INT, "10", 0, 1000,
	    "Risk points for a send limit reached late in the day."),
	ROW_NUM(risk_weight_limit_early, CONFIG_INT, "30", 0, 1000,
	    "Risk points for a send limit reached early in the day (before "
	    "risk_limit_early_hour)."),
	ROW_NUM(risk_limit_early_hour, CONFIG_INT, "12", 0, 24,
	    "A limit reached before this local hour counts as early."),
	ROW_NUM(risk_weight_auth_locked, CONFIG_INT, "10", 0, 1000,
	    "Risk points for a login lock (of the account, or of an address "
	    "failing against it)."),
	ROW_NUM(risk_weight_spam_verdict, CONFIG_INT, "20", 0, 1000,
	    "Risk points for a filter's spam verdict on the account's own "
	    "submission."),
	ROW_NUM(risk_weight_bounces, CONFIG_INT, "20", 0, 1000,
	    "Risk points when bounces (DSNs to the account's addresses) "
	    "arriving in one hour reach risk_bounces_per_hour."),
	ROW_NUM(risk_bounces_per_hour, CONFIG_INT, "10", 1, 1000000,
	    "Bounces received per hour that make a signal."),
	ROW_NUM(risk_weight_new_recipients, CONFIG_INT, "20", 0, 1000,
	    "Risk points when the share of first-time recipients of the day "
	    "reaches risk_new_recipients_percent."),
	ROW_NUM(risk_new_recipients_percent, CONFIG_INT, "80", 1, 100,
	    "Share (percent) of first-time recipients in a day that makes a "
	    "signal."),
	ROW_NUM(risk_new_recipients_min, CONFIG_INT, "20", 1, 1000000,
	    "Recipients in a day before their share is looked at."),
	ROW_NUM(risk_weight_password_spraying, CONFIG_INT, "20", 0, 1000,
	    "Risk points for each account an address fails against once it "
	    "has failed against risk_spray_accounts accounts."),
	ROW_NUM(risk_spray_accounts, CONFIG_INT, "5", 2, 100000,
	    "Accounts one address fails against within auth_fail_window "
	    "that make password spraying."),
	ROW_NUM(risk_half_life, CONFIG_DURATION, "1d", 60, 365 * DAY,
	    "The risk points of a signal halve with each this much time."),
	ROW_NUM(risk_notify, CONFIG_INT, "60", 0, 100000,
	    "Score at which the subscriber is sent a notice; 0: never."),
	ROW_NUM(risk_hold, CONFIG_INT, "90", 0, 100000,
	    "Score at which the account's submissions are held in the queue "
	    "(accepted, not delivered); 0: never."),
	ROW_NUM(risk_suspend, CONFIG_INT, "150", 0, 100000,
	    "Score at which the account is suspended; 0: never."),
	/* issue 17 items 6-9 and issue 19 item 5 (i17-country):
	 * docs/policy.md, docs/operations.md "Retention", docs/portal.md */
	ROW_STRLIST(limit_overseas_recipients_per_day_by_country, "",
	    config_check_country_cap,
	    "Caps on recipients per day sent from abroad, by the country "
	    "sent from, one group per line: CC[,CC...]:N (e.g. CN,RU,KP:33); "
	    "over limit_overseas_recipients_per_day for those countries."),
	ROW_STRLIST(overseas_restrict, "submission", config_check_restrict,
	    "What the overseas permission restricts from abroad: submission, "
	    "and optionally pop3 and imap (words on one line)."),
	/* Word order is enum received_client order. */
	ROW_ENUM(received_client, CONFIG_ENUM, "address",
	    WORDS("address", "token"),
	    "What the Received header of a submission shows of the client: "
	    "its address, or a token sealed with trace_token_key that only "
	    "sekisho trace opens."),
	ROW_STR(trace_token_key, "/var/lib/sekisho/trace.key", 0,
	    config_check_abs_path,
	    "Key file (0600) sealing Received tokens; made when missing; "
	    "sekisho trace-key rotate adds a new key (its directory must be "
	    "writable by user)."),
	ROW_NUM(trace_token_key_keep, CONFIG_DURATION, "90d", DAY, 3650 * DAY,
	    "How long a rotated-out trace key still opens old tokens."),
	ROW_NUM(retention_events_days, CONFIG_INT, "90", 7, 3650,
	    "Days events are kept (the settings page shows 7)."),
	ROW_NUM(retention_notices_days, CONFIG_INT, "30", 2, 3650,
	    "Days the record of sent notices (once per day keys) is kept."),
	ROW_NUM(retention_submissions_days, CONFIG_INT, "90", 7, 3650,
	    "Days the submission log (trace, settings page) is kept."),
	ROW_NUM(retention_send_counters_days, CONFIG_INT, "35", 2, 3650,
	    "Days daily and hourly send counters are kept."),
	ROW_NUM(retention_risk_days, CONFIG_INT, "180", 7, 3650,
	    "Days the risk score's memory is kept: countries each account "
	    "logged in from, recipients it sent to, addresses failing "
	    "against it (keep it above risk_login_country_days)."),
	ROW_NUM(retention_batch, CONFIG_INT, "500", 1, 100000,
	    "Rows removed per statement when old rows are swept."),
	ROW_STR(client_hostname_submission, "", CONFIG_F_EMPTY_OK,
	    config_check_client_hostname,
	    "Host name mail clients submit to (autoconfig); empty: hostname."),
	ROW_STR(client_hostname_pop3, "", CONFIG_F_EMPTY_OK,
	    config_check_client_hostname,
	    "Host name mail clients read POP3 from (autoconfig); empty: "
	    "hostname."),
	ROW_STR(client_hostname_imap, "", CONFIG_F_EMPTY_OK,
	    config_check_client_hostname,
	    "Host name mail clients read IMAP from (autoconfig); empty: "
	    "hostname."),
	/* Dovecot's auth policy server (issue 19, docs/imap.md) */
	ROW_STR(authpolicy_secret, "", CONFIG_F_EMPTY_OK, NULL,
	    "The key Dovecot sends as X-API-Key (auth_policy_server_api_header) "
	    "to the authpolicy listener; a request without it is refused (401). "
	    "Empty: every request is refused."),
	ROW_LIST(authpolicy_clients, CONFIG_CIDR, "127.0.0.0/8\n::1",
	    "Networks allowed to ask the authpolicy listener (Dovecot's auth "
	    "processes); others are closed at once."),
	/* mail filters over the milter protocol (issue 16, docs/filters.md);
	 * word order is enum milter_default_action order */
	ROW_STR(milters_mx, "", CONFIG_F_EMPTY_OK, milter_config_check,
	    "Milters (Rspamd, OpenDKIM, clamav-milter...) asked about each "
	    "message received on mx listeners, in order: inet:IPV4:PORT, "
	    "inet6:[IPV6]:PORT or unix:/PATH (addresses, not names), "
	    "separated by spaces or commas; empty: none."),
	ROW_STR(milters_submission, "", CONFIG_F_EMPTY_OK,
	    milter_config_check,
	    "Milters asked about each message received on submission and "
	    "submissions listeners, in order (as milters_mx)."),
	ROW_NUM(milter_connect_timeout, CONFIG_DURATION, "30s", 1, HOUR,
	    "Time allowed to connect to a milter and negotiate options."),
	ROW_NUM(milter_command_timeout, CONFIG_DURATION, "30s", 1, HOUR,
	    "Time allowed for a milter's answer to each event before the end "
	    "of the message."),
	ROW_NUM(milter_eom_timeout, CONFIG_DURATION, "5m", 1, HOUR,
	    "Time allowed for a milter's answer to the end of the message "
	    "(its changes and verdict)."),
	ROW_ENUM(milter_default_action, CONFIG_ENUM, "tempfail",
	    WORDS("tempfail", "accept", "reject"),
	    "What a message gets when a milter is down, too slow or answers "
	    "garbage: tempfail (451 4.7.1), accept (as if the milter was not "
	    "there) or reject (554 5.7.1)."),
	/* refuse_own_from (issue 16, src/backend/be_own_from.c) */
	ROW_STR(milter_authserv_id, "", CONFIG_F_EMPTY_OK,
	    config_check_hostname,
	    "The authserv-id of the Authentication-Results header your own "
	    "filter (Rspamd, OpenDKIM) adds on mx; the refuse_own_from check "
	    "believes only that header, and only when the filter added it. "
	    "Empty: the hostname setting (what sekisho passes to the filters "
	    "in the j macro)."),
};

#define CONFIG_NDEFS	nitems(config_defs)

_Static_assert(sizeof(enum auth_without_tls) == sizeof(int),
    "CONFIG_ENUM fields are stored as int");
_Static_assert(sizeof(enum received_client) == sizeof(int),
    "CONFIG_ENUM fields are stored as int");
_Static_assert(sizeof(enum geo_unknown_action) == sizeof(int),
    "CONFIG_ENUM fields are stored as int");
_Static_assert(sizeof(enum milter_default_action) == sizeof(int),
    "CONFIG_ENUM fields are stored as int");

/* What a loading pass knows beyond struct config. */
struct config_loader {
	const char	*name;		/* file name in messages */
	struct config	*conf;
	struct str	*errors;
	int		 nerrors;
	size_t		 line;		/* current line, 1-based */
	size_t		 set_line[CONFIG_NDEFS];  /* first line, 0 = never */
	int		 bad[CONFIG_NDEFS];	/* a value was rejected */
	size_t		*item_lines[CONFIG_NDEFS]; /* list items' lines */
};

static const char *const config_role_names[] = {
	[LISTEN_MX] = "mx",
	[LISTEN_SUBMISSION] = "submission",
	[LISTEN_SUBMISSIONS] = "submissions",
	[LISTEN_POP3] = "pop3",
	[LISTEN_POP3S] = "pop3s",
	[LISTEN_POLICY] = "policy",
	[LISTEN_PORTAL] = "portal",
	[LISTEN_METRICS] = "metrics",
	[LISTEN_AUTHPOLICY] = "authpolicy",
};

const char *
config_role_name(enum listen_role role)
{
	if ((size_t)role >= nitems(config_role_names))
		return "unknown";
	return config_role_names[role];
}

static void *
config_field(struct config *conf, const struct config_def *def)
{
	return (char *)conf + def->off;
}

static const void *
config_cfield(const struct config *conf, const struct config_def *def)
{
	return (const char *)conf + def->off;
}

static size_t *
config_count(struct config *conf, const struct config_def *def)
{
	return (size_t *)(void *)((char *)conf + def->count_off);
}

static size_t
config_ccount(const struct config *conf, const struct config_def *def)
{
	return *(const size_t *)(const void *)
	    ((const char *)conf + def->count_off);
}

static int
config_is_list(const struct config_def *def)
{
	return def->type == CONFIG_LISTEN || def->type == CONFIG_CIDR ||
	    def->type == CONFIG_STRLIST;
}

static int
config_is_number(const struct config_def *def)
{
	return def->type == CONFIG_INT || def->type == CONFIG_SIZE ||
	    def->type == CONFIG_DURATION;
}

/* --- numbers -------------------------------------------------------- */

/*
 * Decimal digits with an optional suffix among suffixes (mult[i] for
 * suffixes[i]) and, when negative_ok, a leading '-'. Returns -1 on bad
 * syntax, 1 when the value does not fit in a long long (*v_r is then
 * LLONG_MIN or LLONG_MAX), 0 otherwise.
 */
static int
config_parse_number(const char *text, int negative_ok, const char *suffixes,
    const long long *mult, long long *v_r)
{
	const char *p = text;
	long long v = 0, m = 1;
	int neg = 0, overflow = 0;

	if (*p == '-' && negative_ok) {
		neg = 1;
		p++;
	}
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (LLONG_MAX - (*p - '0')) / 10)
			overflow = 1;
		else
			v = v * 10 + (*p - '0');
	}
	if (*p != '\0') {
		const char *s = suffixes == NULL ? NULL : strchr(suffixes, *p);

		if (s == NULL || p[1] != '\0')
			return -1;
		m = mult[s - suffixes];
	}
	if (!overflow && v > LLONG_MAX / m)
		overflow = 1;
	if (overflow) {
		*v_r = neg ? LLONG_MIN : LLONG_MAX;
		return 1;
	}
	*v_r = neg ? -v * m : v * m;
	return 0;
}

static const long long config_size_mult[] = { KIB, KIB, MIB, GIB };
static const char config_size_suffixes[] = "kKMG";
static const long long config_dur_mult[] = { 1, MINUTE, HOUR, DAY };
static const char config_dur_suffixes[] = "smhd";

/* Largest exact suffix: 2048 -> "2K", 300 -> "5m", 998 -> "998". */
static void
config_format_number(struct str *out, enum config_type type, long long v)
{
	static const long long size_m[] = { GIB, MIB, KIB };
	static const char size_s[] = "GMK";
	static const long long dur_m[] = { DAY, HOUR, MINUTE };
	static const char dur_s[] = "dhm";
	size_t i;

	if (type == CONFIG_SIZE && v != 0) {
		for (i = 0; i < nitems(size_m); i++)
			if (v % size_m[i] == 0) {
				str_printf(out, "%lld%c", v / size_m[i],
				    size_s[i]);
				return;
			}
	} else if (type == CONFIG_DURATION && v != 0) {
		for (i = 0; i < nitems(dur_m); i++)
			if (v % dur_m[i] == 0) {
				str_printf(out, "%lld%c", v / dur_m[i],
				    dur_s[i]);
				return;
			}
	}
	str_printf(out, "%lld%s", v, type == CONFIG_DURATION ? "s" : "");
}

static int
config_set_number(const struct config_def *def, struct config *conf,
    const char *text, struct str *why)
{
	long long v;
	int r;

	switch (def->type) {
	case CONFIG_INT:
		r = config_parse_number(text, 1, NULL, NULL, &v);
		if (r < 0) {
			str_printf(why, "bad number '%s' "
			    "(expected a decimal integer)", text);
			return -1;
		}
		break;
	case CONFIG_SIZE:
		r = config_parse_number(text, 0, config_size_suffixes,
		    config_size_mult, &v);
		if (r < 0) {
			str_printf(why, "bad size '%s' "
			    "(expected e.g. 2048, 64K, 25M, 2G)", text);
			return -1;
		}
		break;
	default:
		r = config_parse_number(text, 0, config_dur_suffixes,
		    config_dur_mult, &v);
		if (r < 0) {
			str_printf(why, "bad duration '%s' "
			    "(expected e.g. 300s, 5m, 1h)", text);
			return -1;
		}
		break;
	}
	if (v < def->min || v > def->max) {
		str_printf(why, "%s is %s the %s ", text,
		    v < def->min ? "below" : "above",
		    v < def->min ? "minimum" : "maximum");
		config_format_number(why, def->type,
		    v < def->min ? def->min : def->max);
		return -1;
	}
	if (def->type == CONFIG_SIZE)
		*(size_t *)config_field(conf, def) = (size_t)v;
	else
		*(int *)config_field(conf, def) = (int)v;
	return 0;
}

static long long
config_get_number(const struct config_def *def, const struct config *conf)
{
	if (def->type == CONFIG_SIZE)
		return (long long)*(const size_t *)config_cfield(conf, def);
	return *(const int *)config_cfield(conf, def);
}

/* --- bool and enums ------------------------------------------------- */

static int
config_set_bool(const struct config_def *def, struct config *conf,
    const char *text, struct str *why)
{
	static const char *const yes[] = { "yes", "on", "true", "1" };
	static const char *const no[] = { "no", "off", "false", "0" };
	size_t i;

	for (i = 0; i < nitems(yes); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*(int *)config_field(conf, def) = 1;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*(int *)config_field(conf, def) = 0;
			return 0;
		}
	}
	str_printf(why, "bad boolean '%s' (expected yes or no)", text);
	return -1;
}

static void
config_append_words(struct str *out, const struct config_def *def,
    const char *quote)
{
	size_t i;

	for (i = 0; def->words[i] != NULL; i++)
		str_printf(out, "%s%s%s%s", i > 0 ? ", " : "", quote,
		    def->words[i], quote);
}

static int
config_set_enum(const struct config_def *def, struct config *conf,
    const char *text, struct str *why)
{
	size_t i;

	for (i = 0; def->words[i] != NULL; i++) {
		if (strcasecmp(text, def->words[i]) != 0)
			continue;
		if (def->type == CONFIG_ENUM)
			*(int *)config_field(conf, def) = (int)i;
		else {
			char **p = config_field(conf, def);

			free(*p);
			*p = xstrdup(def->words[i]);
		}
		return 0;
	}
	str_printf(why, "bad value '%s' (expected one of: ", text);
	config_append_words(why, def, "");
	str_append(why, ")");
	return -1;
}

/* --- strings -------------------------------------------------------- */

/* A DNS name (RFC 1035 2.3.1 letters, digits, hyphen; RFC 1123 2.1). */
static int
config_check_hostname(const char *value, struct str *why)
{
	size_t label = 0, len = strlen(value);
	const char *p;

	if (len > 253)
		goto bad;
	for (p = value; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				goto bad;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-') || ++label > 63)
			goto bad;
	}
	if (len > 0 && label == 0)
		goto bad;
	return 0;
bad:
	str_printf(why, "'%s' is not a valid host name", value);
	return -1;
}

static int
config_check_abs_path(const char *value, struct str *why)
{
	if (value[0] == '/')
		return 0;
	str_printf(why, "'%s' is not an absolute path", value);
	return -1;
}

/* libpq checks the connection string itself when the store opens. */
static int
config_check_store(const char *value, struct str *why)
{
	if (strncmp(value, "sqlite:", 7) == 0 && value[7] == '/')
		return 0;
	if (strncmp(value, "postgresql:", 11) == 0 && value[11] != '\0')
		return 0;
	str_printf(why, "unsupported store '%s' (expected "
	    "sqlite:/absolute/path.db or postgresql:CONNINFO)", value);
	return -1;
}

/* "mmdb:/PATH" or "tor:/PATH[,/PATH]"; the files are read by geo_open. */
static int
config_check_geo_database(const char *value, struct str *why)
{
	const char *p;

	if (strncmp(value, "mmdb:", 5) == 0 && value[5] == '/' &&
	    strchr(value, ',') == NULL)
		return 0;
	if (strncmp(value, "tor:", 4) == 0) {
		for (p = value + 4; *p == '/'; p++) {
			p = strchr(p, ',');
			if (p == NULL)
				return 0;
		}
	}
	str_printf(why, "bad geo database '%s' (expected "
	    "tor:/FILE[,/FILE] or mmdb:/FILE)", value);
	return -1;
}

/* An ISO 3166-1 alpha-2 code as the databases write it: "JP". */
/* A host name suffix: letters, digits, '-' and '.', e.g. google.com. */
static int
config_check_relay_name(const char *value, struct str *why)
{
	size_t n = strlen(value);

	if (n == 0 || n > 253 || strspn(value, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != n ||
	    strstr(value, "..") != NULL || strchr(value, '.') == NULL) {
		str_printf(why, "bad host name suffix '%s' (e.g. google.com)",
		    value);
		return -1;
	}
	return 0;
}

/* An IANA zone name: it must exist in the system's zoneinfo. */
static int
config_check_timezone(const char *value, struct str *why)
{
	struct str path = STR_INIT;
	int ok;

	if (*value == '\0' || value[0] == '/' || strstr(value, "..") ||
	    strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789/_+-") != strlen(value)) {
		str_printf(why, "bad time zone name '%s' (e.g. Asia/Tokyo)",
		    value);
		return -1;
	}
	str_printf(&path, "/usr/share/zoneinfo/%s", value);
	ok = access(str_c(&path), R_OK) == 0;
	str_deinit(&path);
	if (!ok) {
		str_printf(why, "unknown time zone '%s' (no "
		    "/usr/share/zoneinfo/%s)", value, value);
		return -1;
	}
	return 0;
}

static int
config_check_country(const char *value, struct str *why)
{
	if (value[0] >= 'A' && value[0] <= 'Z' && value[1] >= 'A' &&
	    value[1] <= 'Z' && value[2] == '\0')
		return 0;
	str_printf(why, "bad country '%s' (expected two upper-case letters, "
	    "e.g. JP)", value);
	return -1;
}

/* "CN,RU,KP:33": countries, a colon, a number (i17-country). */
static int
config_check_country_cap(const char *value, struct str *why)
{
	const char *colon = strchr(value, ':'), *p = value;
	char *end;
	long long n;

	if (colon == NULL || colon == value)
		goto bad;
	for (;;) {
		if (!(p[0] >= 'A' && p[0] <= 'Z' && p[1] >= 'A' &&
		    p[1] <= 'Z'))
			goto bad;
		if (p + 2 == colon)
			break;
		if (p[2] != ',' || p + 3 >= colon)
			goto bad;
		p += 3;
	}
	errno = 0;
	n = strtoll(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || n < 0 ||
	    n > 10000000 || colon[1] == '-' || colon[1] == '+')
		goto bad;
	return 0;
bad:
	str_printf(why, "bad country cap '%s' (expected CC[,CC...]:N, "
	    "e.g. CN,RU,KP:33)", value);
	return -1;
}

/* Words of overseas_restrict: submission (required), pop3, imap. */
static int
config_check_restrict(const char *value, struct str *why)
{
	char buf[256], *save = NULL;
	int submission = 0;

	if (strlen(value) >= sizeof(buf))
		goto bad;
	xstrlcpy(buf, value, sizeof(buf));
	for (char *w = strtok_r(buf, " \t,", &save); w != NULL;
	    w = strtok_r(NULL, " \t,", &save)) {
		if (strcmp(w, "submission") == 0)
			submission = 1;
		else if (strcmp(w, "pop3") != 0 && strcmp(w, "imap") != 0)
			goto bad;
	}
	if (submission)
		return 0;
bad:
	str_printf(why, "bad overseas_restrict '%s' (expected submission, "
	    "then pop3 and/or imap)", value);
	return -1;
}

/* A host name for mail clients, or empty (the hostname). */
static int
config_check_client_hostname(const char *value, struct str *why)
{
	if (*value == '\0')
		return 0;
	return config_check_relay_name(value, why);
}

/* One item of a list of words, each checked by def->check. */
static int
config_add_strlist(const struct config_def *def, struct config *conf,
    const char *text, struct str *why)
{
	char ***list = config_field(conf, def);
	size_t *count = config_count(conf, def);

	if (def->check != NULL && def->check(text, why) < 0)
		return -1;
	*list = xreallocarray(*list, *count + 1, sizeof(**list));
	(*list)[(*count)++] = xstrdup(text);
	return 0;
}

static int
config_set_string(const struct config_def *def, struct config *conf,
    const char *text, struct str *why)
{
	char **p = config_field(conf, def);

	if (def->check != NULL && def->check(text, why) < 0)
		return -1;
	free(*p);
	*p = xstrdup(text);
	return 0;
}

/* --- networks ------------------------------------------------------- */

/* Address with optional /prefix; host bits are not checked. */
static int
cidr_parse_raw(const char *text, struct cidr *out)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t alen = slash == NULL ? strlen(text) : (size_t)(slash - text);
	int max;

	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else
		return -1;
	out->prefix = max;
	if (slash != NULL) {
		const char *p = slash + 1;
		int n = 0;

		if (*p < '0' || *p > '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++) {
			n = n * 10 + (*p - '0');
			if (n > max)
				return -1;
		}
		if (*p != '\0')
			return -1;
		out->prefix = n;
	}
	/*
	 * An IPv4-mapped network (RFC 4291 2.5.5.2) is an IPv4 network:
	 * stored as AF_INET so that it matches IPv4 clients.
	 */
	if (out->family == AF_INET6 && out->prefix >= 96 &&
	    IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(void *)out->addr)) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
		out->prefix -= 96;
	}
	return 0;
}

/* Does addr (of the network's family) fall inside net? */
static int
cidr_contains(const struct cidr *net, const uint8_t *addr)
{
	int full = net->prefix / 8, rest = net->prefix % 8;

	if (memcmp(net->addr, addr, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (net->addr[full] & mask) == (addr[full] & mask);
}

/* Clear the bits of a 16-byte IPv6 address after prefix. */
static void
cidr_mask6(uint8_t a[16], int prefix)
{
	for (int i = 0; i < 16; i++) {
		int bits = prefix - i * 8;

		a[i] &= bits >= 8 ? 0xff : bits <= 0 ? 0 :
		    (uint8_t)(0xff << (8 - bits));
	}
}

void
cidr_client_key(const struct sockaddr *sa, int v6_prefix, uint8_t key_r[17])
{
	memset(key_r, 0, 17);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		key_r[0] = 4;
		memcpy(key_r + 1, &s4->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			key_r[0] = 4;
			memcpy(key_r + 1, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			key_r[0] = 6;
			memcpy(key_r + 1, &s6->sin6_addr, 16);
			cidr_mask6(key_r + 1, v6_prefix);
		}
	}
}

const char *
cidr_client_text(const char *addr, int v6_prefix, char *buf, size_t len)
{
	uint8_t a[16];
	char text[INET6_ADDRSTRLEN];

	if (len == 0)
		return buf;
	if (strchr(addr, ':') == NULL || inet_pton(AF_INET6, addr, a) != 1) {
		snprintf(buf, len, "%s", addr);
		return buf;
	}
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)a)) {
		if (inet_ntop(AF_INET, a + 12, text, sizeof(text)) == NULL)
			snprintf(text, sizeof(text), "%s", addr);
		snprintf(buf, len, "%s", text);
		return buf;
	}
	if (v6_prefix < 128)
		cidr_mask6(a, v6_prefix);
	if (inet_ntop(AF_INET6, a, text, sizeof(text)) == NULL)
		snprintf(text, sizeof(text), "%s", addr);
	if (v6_prefix < 128)
		snprintf(buf, len, "%s/%d", text, v6_prefix);
	else
		snprintf(buf, len, "%s", text);
	return buf;
}

/* Clear the host bits; returns 1 if any was set. */
static int
cidr_clear_host_bits(struct cidr *net)
{
	int len = net->family == AF_INET ? 4 : 16, i, changed = 0;

	for (i = 0; i < len; i++) {
		int bits = net->prefix - i * 8;
		uint8_t mask = bits >= 8 ? 0xff :
		    bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));

		if ((net->addr[i] & ~mask) != 0)
			changed = 1;
		net->addr[i] &= mask;
	}
	return changed;
}

int
cidr_parse(const char *text, struct cidr *out)
{
	struct cidr c;

	if (cidr_parse_raw(text, &c) < 0 || cidr_clear_host_bits(&c))
		return -1;
	*out = c;
	return 0;
}

int
cidr_match(const struct cidr *list, size_t count, const struct sockaddr *sa)
{
	const uint8_t *addr;
	int family;
	size_t i;

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		family = AF_INET;
		addr = (const uint8_t *)&sin->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		family = AF_INET6;
		addr = (const uint8_t *)&sin6->sin6_addr;
		/* A v4 client on a dual-stack socket (RFC 4291 2.5.5.2). */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			family = AF_INET;
			addr += 12;
		}
	} else
		return 0;
	for (i = 0; i < count; i++)
		if (list[i].family == family && cidr_contains(&list[i], addr))
			return 1;
	return 0;
}

static void
config_format_cidr(struct str *out, const struct cidr *c)
{
	char buf[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family, c->addr, buf, sizeof(buf)) == NULL)
		xstrlcpy(buf, "?", sizeof(buf));
	str_printf(out, "%s/%d", buf, c->prefix);
}

static int
config_add_cidr(const struct config_def *def, struct config *conf,
    const char *text, struct str *why)
{
	struct cidr **list = config_field(conf, def);
	size_t *count = config_count(conf, def);
	struct cidr c;

	if (cidr_parse_raw(text, &c) < 0) {
		str_printf(why, "bad network '%s' (expected e.g. "
		    "192.0.2.0/24, 2001:db8::/32 or one address)", text);
		return -1;
	}
	if (cidr_clear_host_bits(&c)) {
		str_printf(why, "'%s' has host bits set (did you mean ", text);
		config_format_cidr(why, &c);
		str_append(why, "?)");
		return -1;
	}
	*list = xreallocarray(*list, *count + 1, sizeof(**list));
	(*list)[(*count)++] = c;
	return 0;
}

/* --- listeners ------------------------------------------------------ */

static void
config_format_hostport(struct str *out, const struct listen_conf *l)
{
	if (strchr(l->host, ':') != NULL)
		str_printf(out, "[%s]:%s", l->host, l->port);
	else
		str_printf(out, "%s:%s", l->host, l->port);
}

static void
config_format_listen(struct str *out, const struct listen_conf *l)
{
	str_printf(out, "%s ", config_role_name(l->role));
	config_format_hostport(out, l);
	if (l->proxy)
		str_append(out, " proxy");
}

/* "HOST:PORT": host "*", IPv4 or [IPv6], stored canonical, no brackets. */
static int
config_parse_hostport(const char *text, char **host_r, char **port_r,
    struct str *why, const char *item)
{
	char host[INET6_ADDRSTRLEN + 1], canon[INET6_ADDRSTRLEN];
	uint8_t addr[16];
	const char *colon, *h = text, *p;
	size_t hlen;
	long port = 0;
	int family = AF_INET;

	if (text[0] == '[') {
		const char *end = strchr(text, ']');

		if (end == NULL || end[1] != ':')
			goto badhost;
		h = text + 1;
		hlen = (size_t)(end - h);
		colon = end + 1;
		family = AF_INET6;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL) {
			str_printf(why, "missing port in '%s' "
			    "(expected HOST:PORT)", item);
			return -1;
		}
		hlen = (size_t)(colon - text);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto badhost;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (family == AF_INET && strcmp(host, "*") == 0)
		xstrlcpy(canon, "*", sizeof(canon));
	else if (inet_pton(family, host, addr) != 1 ||
	    inet_ntop(family, addr, canon, sizeof(canon)) == NULL)
		goto badhost;

	for (p = colon + 1; *p >= '0' && *p <= '9' && port <= 65535; p++)
		port = port * 10 + (*p - '0');
	if (p == colon + 1 || *p != '\0' || port < 1 || port > 65535) {
		str_printf(why, "bad port '%s' in '%s' (expected 1 to 65535)",
		    colon + 1, item);
		return -1;
	}
	*host_r = xstrdup(canon);
	*port_r = xasprintf("%ld", port);
	return 0;
badhost:
	str_printf(why, "bad address '%s' in '%s' (expected IPv4:PORT, "
	    "[IPv6]:PORT or *:PORT)", text, item);
	return -1;
}

static int
config_add_listen(const struct config_def *def, struct config *conf,
    const char *text, struct str *why)
{
	struct listen_conf **list = config_field(conf, def);
	size_t *count = config_count(conf, def);
	struct listen_conf l;
	char *copy = xstrdup(text), *tok[4], *save = NULL, *t;
	size_t i, n = 0;
	int ret = -1;

	for (t = strtok_r(copy, " \t", &save); t != NULL;
	    t = strtok_r(NULL, " \t", &save)) {
		if (n == nitems(tok))
			break;
		tok[n++] = t;
	}
	if (n < 2 || n > 3) {
		str_printf(why, "bad listener '%s' "
		    "(expected ROLE HOST:PORT [proxy])", text);
		goto done;
	}
	memset(&l, 0, sizeof(l));
	for (i = 0; i < nitems(config_role_names); i++)
		if (strcmp(tok[0], config_role_names[i]) == 0)
			break;
	if (i == nitems(config_role_names)) {
		str_printf(why, "bad role '%s' in '%s' "
		    "(expected mx, submission, submissions, pop3 or pop3s)",
		    tok[0], text);
		goto done;
	}
	l.role = (enum listen_role)i;
	if (n == 3) {
		if (strcmp(tok[2], "proxy") != 0) {
			str_printf(why, "unexpected '%s' in '%s' "
			    "(expected ROLE HOST:PORT [proxy])", tok[2], text);
			goto done;
		}
		l.proxy = 1;
	}
	if (config_parse_hostport(tok[1], &l.host, &l.port, why, text) < 0)
		goto done;
	*list = xreallocarray(*list, *count + 1, sizeof(**list));
	(*list)[(*count)++] = l;
	ret = 0;
done:
	free(copy);
	return ret;
}

/* --- one value ------------------------------------------------------ */

static void
config_free_value(const struct config_def *def, struct config *conf)
{
	size_t i, *count;

	switch (def->type) {
	case CONFIG_STRING:
	case CONFIG_ENUM_STR:
		xfree((char **)config_field(conf, def));
		break;
	case CONFIG_LISTEN: {
		struct listen_conf **list = config_field(conf, def);

		count = config_count(conf, def);
		for (i = 0; i < *count; i++) {
			free((*list)[i].host);
			free((*list)[i].port);
		}
		xfree(list);
		*count = 0;
		break;
	}
	case CONFIG_CIDR:
		xfree((struct cidr **)config_field(conf, def));
		*config_count(conf, def) = 0;
		break;
	case CONFIG_STRLIST: {
		char ***list = config_field(conf, def);

		count = config_count(conf, def);
		for (i = 0; i < *count; i++)
			free((*list)[i]);
		xfree(list);
		*count = 0;
		break;
	}
	default:
		break;
	}
}

/* Set a scalar, or add one item to a list; the reason goes to why. */
static int
config_set_value(const struct config_def *def, struct config *conf,
    const char *text, struct str *why)
{
	if (text[0] == '\0' && !(def->type == CONFIG_STRING &&
	    (def->flags & CONFIG_F_EMPTY_OK))) {
		str_append(why, "a value is required");
		return -1;
	}
	switch (def->type) {
	case CONFIG_STRING:
		return config_set_string(def, conf, text, why);
	case CONFIG_INT:
	case CONFIG_SIZE:
	case CONFIG_DURATION:
		return config_set_number(def, conf, text, why);
	case CONFIG_BOOL:
		return config_set_bool(def, conf, text, why);
	case CONFIG_ENUM:
	case CONFIG_ENUM_STR:
		return config_set_enum(def, conf, text, why);
	case CONFIG_LISTEN:
		return config_add_listen(def, conf, text, why);
	case CONFIG_CIDR:
		return config_add_cidr(def, conf, text, why);
	case CONFIG_STRLIST:
		return config_add_strlist(def, conf, text, why);
	}
	fatalx("config: bad type %d", (int)def->type);
}

/* The value as it would be written in a file; list item i only. */
static void
config_format_value(struct str *out, const struct config_def *def,
    const struct config *conf, size_t i)
{
	switch (def->type) {
	case CONFIG_STRING:
	case CONFIG_ENUM_STR: {
		const char *s = *(char *const *)config_cfield(conf, def);

		str_append(out, s == NULL ? "" : s);
		break;
	}
	case CONFIG_INT:
	case CONFIG_SIZE:
	case CONFIG_DURATION:
		config_format_number(out, def->type,
		    config_get_number(def, conf));
		break;
	case CONFIG_BOOL:
		str_append(out, *(const int *)config_cfield(conf, def) ?
		    "yes" : "no");
		break;
	case CONFIG_ENUM:
		str_append(out,
		    def->words[*(const int *)config_cfield(conf, def)]);
		break;
	case CONFIG_LISTEN:
		config_format_listen(out, &(*(struct listen_conf *const *)
		    config_cfield(conf, def))[i]);
		break;
	case CONFIG_CIDR:
		config_format_cidr(out, &(*(struct cidr *const *)
		    config_cfield(conf, def))[i]);
		break;
	case CONFIG_STRLIST:
		str_append(out, (*(char *const *const *)
		    config_cfield(conf, def))[i]);
		break;
	}
}

/* --- defaults ------------------------------------------------------- */

static void
config_fill_hostname(struct config *conf)
{
	char buf[256];

	if (conf->hostname != NULL && conf->hostname[0] != '\0')
		return;
	if (gethostname(buf, sizeof(buf)) < 0 || buf[0] == '\0')
		xstrlcpy(buf, "localhost", sizeof(buf));
	buf[sizeof(buf) - 1] = '\0';
	free(conf->hostname);
	conf->hostname = xstrdup(buf);
}

/* Each row's default, parsed as if read from a file. */
static struct config *
config_new(void)
{
	struct config *conf = xcalloc(1, sizeof(*conf));
	struct str why = STR_INIT;
	size_t i;

	for (i = 0; i < CONFIG_NDEFS; i++) {
		const struct config_def *def = &config_defs[i];
		const char *p = def->def, *nl;

		if ((def->type == CONFIG_INT || def->type == CONFIG_DURATION) &&
		    (def->min < INT_MIN || def->max > INT_MAX))
			fatalx("config: bounds of %s do not fit", def->name);
		if (!config_is_list(def)) {
			if (config_set_value(def, conf, p, &why) < 0)
				fatalx("config: bad default of %s: %s",
				    def->name, str_c(&why));
			continue;
		}
		while (*p != '\0') {
			char *item;

			nl = strchr(p, '\n');
			item = nl == NULL ? xstrdup(p) :
			    xstrndup(p, (size_t)(nl - p));
			if (config_set_value(def, conf, item, &why) < 0)
				fatalx("config: bad default of %s: %s",
				    def->name, str_c(&why));
			free(item);
			p = nl == NULL ? p + strlen(p) : nl + 1;
		}
	}
	str_deinit(&why);
	return conf;
}

struct config *
config_defaults(void)
{
	struct config *conf = config_new();

	config_fill_hostname(conf);
	return conf;
}

void
config_free(struct config **confp)
{
	struct config *conf = *confp;
	size_t i;

	if (conf == NULL)
		return;
	for (i = 0; i < CONFIG_NDEFS; i++)
		config_free_value(&config_defs[i], conf);
	free(conf->path);
	free(conf);
	*confp = NULL;
}

/* --- loading -------------------------------------------------------- */

static void
config_error(struct config_loader *ld, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
config_error(struct config_loader *ld, size_t line, const char *fmt, ...)
{
	va_list ap;

	str_printf(ld->errors, "%s:%zu: ", ld->name, line);
	va_start(ap, fmt);
	str_vprintf(ld->errors, fmt, ap);
	va_end(ap);
	str_append_c(ld->errors, '\n');
	ld->nerrors++;
}

/* Optimal string alignment distance, for "did you mean". */
static size_t
config_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t d[3][65], *prev2 = d[0], *prev = d[1], *cur = d[2], *t;

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		prev[j] = j;
	for (i = 1; i <= la; i++) {
		cur[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = prev[j] + 1;

			if (cur[j - 1] + 1 < v)
				v = cur[j - 1] + 1;
			if (prev[j - 1] + cost < v)
				v = prev[j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < v)
				v = prev2[j - 2] + 1;
			cur[j] = v;
		}
		t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	return prev[lb];
}

static const struct config_def *
config_find(const char *key, size_t *index_r)
{
	size_t i;

	for (i = 0; i < CONFIG_NDEFS; i++)
		if (strcmp(config_defs[i].name, key) == 0) {
			*index_r = i;
			return &config_defs[i];
		}
	return NULL;
}

/* Keys that are gone, and what replaced them: an upgrade says so
 * instead of "unknown key". */
static const struct {
	const char	*name;
	const char	*instead;
} config_removed[] = {
	{ "api_tokens_file", "API tokens are in the store now, shared by "
	    "every node: 'sekisho api-token add NAME' (docs/portal.md)" },
	{ "admin_users_file", "admins are in the store now, shared by every "
	    "node: 'sekisho admin add NAME' (docs/portal.md)" },
};

static void
config_unknown_key(struct config_loader *ld, const char *key)
{
	const char *best = NULL;
	size_t i, d, bestd = 3;

	for (i = 0; i < nitems(config_removed); i++)
		if (strcmp(key, config_removed[i].name) == 0) {
			config_error(ld, ld->line, "'%s' was removed: %s", key,
			    config_removed[i].instead);
			return;
		}
	for (i = 0; i < CONFIG_NDEFS; i++) {
		d = config_distance(key, config_defs[i].name);
		if (d < bestd) {
			bestd = d;
			best = config_defs[i].name;
		}
	}
	if (best != NULL)
		config_error(ld, ld->line,
		    "unknown key '%s' (did you mean '%s'?)", key, best);
	else
		config_error(ld, ld->line, "unknown key '%s'", key);
}

static int
config_is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Trim spaces and tabs; returns the start, writes the end. */
static char *
config_trim(char *s)
{
	size_t len;

	while (config_is_space(*s))
		s++;
	len = strlen(s);
	while (len > 0 && config_is_space(s[len - 1]))
		s[--len] = '\0';
	return s;
}

static void
config_line(struct config_loader *ld, char *line)
{
	const struct config_def *def;
	struct str why = STR_INIT;
	char *eq, *key, *value;
	size_t i, idx;

	line = config_trim(line);
	if (line[0] == '\0' || line[0] == '#')
		return;
	for (i = 0; line[i] != '\0'; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t') {
			config_error(ld, ld->line, "control character "
			    "0x%02x in line", (unsigned char)line[i]);
			return;
		} else if (line[i] == 0x7f) {
			config_error(ld, ld->line, "control character "
			    "0x7f in line");
			return;
		}
	if ((eq = strchr(line, '=')) == NULL) {
		config_error(ld, ld->line, "missing '=' in '%s' "
		    "(expected key = value)", line);
		return;
	}
	*eq = '\0';
	key = config_trim(line);
	value = config_trim(eq + 1);
	if (key[0] == '\0') {
		config_error(ld, ld->line, "missing key before '='");
		return;
	}
	if ((def = config_find(key, &idx)) == NULL) {
		config_unknown_key(ld, key);
		return;
	}
	if (ld->set_line[idx] == 0) {
		ld->set_line[idx] = ld->line;
		/* The first occurrence of a list replaces the default. */
		if (config_is_list(def))
			config_free_value(def, ld->conf);
	} else if (!config_is_list(def)) {
		config_error(ld, ld->line, "'%s' already set at line %zu",
		    key, ld->set_line[idx]);
		return;
	}
	/* "key =" on a list adds nothing: an empty list. */
	if (config_is_list(def) && value[0] == '\0')
		return;
	if (config_set_value(def, ld->conf, value, &why) < 0) {
		config_error(ld, ld->line, "%s: %s", key, str_c(&why));
		ld->bad[idx] = 1;
	} else if (config_is_list(def)) {
		size_t n = *config_count(ld->conf, def);

		ld->item_lines[idx] = xreallocarray(ld->item_lines[idx], n,
		    sizeof(size_t));
		ld->item_lines[idx][n - 1] = ld->line;
	}
	str_deinit(&why);
}

/* Checks across values, after the whole file is read. */
static void
config_check_listen(struct config_loader *ld)
{
	const struct config *conf = ld->conf;
	size_t idx, i, j;
	const size_t *lines;
	struct str a = STR_INIT, b = STR_INIT;

	if (config_find("listen", &idx) == NULL)
		fatalx("config: no listen row");
	lines = ld->item_lines[idx];
	if (conf->listen_count == 0) {
		if (!ld->bad[idx])
			config_error(ld, ld->set_line[idx],
			    "listen: at least one listener is needed");
		return;
	}
	for (i = 1; i < conf->listen_count; i++) {
		const struct listen_conf *l = &conf->listen[i];

		for (j = 0; j < i; j++) {
			const struct listen_conf *o = &conf->listen[j];
			int same = strcmp(l->host, o->host) == 0;

			if (strcmp(l->port, o->port) != 0 || !(same ||
			    strcmp(l->host, "*") == 0 ||
			    strcmp(o->host, "*") == 0))
				continue;
			str_clear(&a);
			str_clear(&b);
			config_format_hostport(&a, l);
			config_format_hostport(&b, o);
			/* '*' takes the port on every address. */
			if (same)
				config_error(ld, lines == NULL ? 0 : lines[i],
				    "listen: %s is already used at line %zu",
				    str_c(&a), lines == NULL ? 0 : lines[j]);
			else
				config_error(ld, lines == NULL ? 0 : lines[i],
				    "listen: %s overlaps %s at line %zu",
				    str_c(&a), str_c(&b),
				    lines == NULL ? 0 : lines[j]);
			break;
		}
	}
	str_deinit(&a);
	str_deinit(&b);
}

/* relayhost_tls_verify = no: only for a relayhost on loopback, where no
 * one else can sit between (docs/delivery.md "Relayhost login"). */
static void
config_check_relayhost(struct config_loader *ld)
{
	struct str why = STR_INIT;
	size_t idx, ridx;

	if (config_find("relayhost_tls_verify", &idx) == NULL ||
	    config_find("relayhost", &ridx) == NULL)
		fatalx("config: no relayhost rows");
	if (ld->conf->relayhost_tls_verify || ld->bad[idx] || ld->bad[ridx])
		return;
	if (!mta_route_check_verify_off(ld->conf->relayhost, &why))
		config_error(ld, ld->set_line[idx], "relayhost_tls_verify: %s",
		    str_c(&why));
	str_deinit(&why);
}

int
config_load_buffer(const char *name, const char *buf, size_t len,
    struct config **conf_r, struct str *errors)
{
	struct config_loader ld;
	char *copy, *line, *next;
	size_t i;

	*conf_r = NULL;
	memset(&ld, 0, sizeof(ld));
	ld.name = name;
	ld.errors = errors;
	ld.conf = config_new();
	copy = xmalloc(len + 1);
	if (len > 0)
		memcpy(copy, buf, len);
	copy[len] = '\0';

	for (line = copy; line < copy + len; line = next) {
		char *nl = memchr(line, '\n', (size_t)(copy + len - line));
		size_t n;

		if (nl != NULL) {
			*nl = '\0';
			next = nl + 1;
		} else
			next = copy + len;
		ld.line++;
		n = (size_t)(next - line) - (nl != NULL);
		/* A NUL would end the line early: say so. */
		if (strlen(line) != n) {
			config_error(&ld, ld.line, "NUL byte in line");
			continue;
		}
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (n > CONFIG_MAX_LINE) {
			config_error(&ld, ld.line, "line longer than %d bytes",
			    CONFIG_MAX_LINE);
			continue;
		}
		config_line(&ld, line);
	}
	free(copy);

	config_check_listen(&ld);
	config_check_relayhost(&ld);
	for (i = 0; i < CONFIG_NDEFS; i++)
		free(ld.item_lines[i]);
	if (ld.nerrors > 0) {
		config_free(&ld.conf);
		return -1;
	}
	config_fill_hostname(ld.conf);
	ld.conf->path = xstrdup(name);
	*conf_r = ld.conf;
	return 0;
}

int
config_load(const char *path, struct config **conf_r, struct str *errors)
{
	struct str buf = STR_INIT;
	int ret;

	*conf_r = NULL;
	switch (file_read(path, CONFIG_MAX_FILE, &buf, NULL, NULL)) {
	case FILE_READ_OK:
		break;
	case FILE_READ_OPEN:
		str_printf(errors, "%s: cannot open: %s\n", path,
		    strerror(errno));
		return -1;
	case FILE_READ_ERROR:
		str_printf(errors, "%s: cannot read: %s\n", path,
		    strerror(errno));
		str_deinit(&buf);
		return -1;
	case FILE_READ_LARGE:
		str_printf(errors, "%s: larger than %d bytes\n", path,
		    CONFIG_MAX_FILE);
		str_deinit(&buf);
		return -1;
	}
	ret = config_load_buffer(path, str_c(&buf), buf.len, conf_r, errors);
	str_deinit(&buf);
	return ret;
}

/* --- printing ------------------------------------------------------- */

static const char *
config_type_name(const struct config_def *def)
{
	switch (def->type) {
	case CONFIG_STRING:
		return "string";
	case CONFIG_INT:
		return "integer";
	case CONFIG_BOOL:
		return "boolean (yes/no, on/off, true/false, 1/0)";
	case CONFIG_SIZE:
		return "size in bytes (suffix K, M, G: 1024-based)";
	case CONFIG_DURATION:
		return "duration (seconds; suffix s, m, h, d)";
	case CONFIG_ENUM:
	case CONFIG_ENUM_STR:
		return "one of the allowed values";
	case CONFIG_LISTEN:
		return "list of listeners (repeat the key, one per line)";
	case CONFIG_CIDR:
		return "list of networks (repeat the key, one per line)";
	case CONFIG_STRLIST:
		return "list of words (repeat the key, one per line)";
	}
	return "?";
}

/* "min to max" for numbers, the words for enums; empty otherwise. */
static void
config_format_range(struct str *out, const struct config_def *def,
    const char *quote)
{
	if (config_is_number(def)) {
		str_append(out, quote);
		config_format_number(out, def->type, def->min);
		str_printf(out, "%s to %s", quote, quote);
		config_format_number(out, def->type, def->max);
		str_append(out, quote);
	} else if (def->words != NULL)
		config_append_words(out, def, quote);
}

/* Write "key = item" lines for a list (or "key =" when empty). */
static void
config_print_key(FILE *fp, const struct config_def *def,
    const struct config *conf)
{
	struct str v = STR_INIT;
	size_t i, n = config_is_list(def) ? config_ccount(conf, def) : 1;

	if (n == 0)
		fprintf(fp, "%s =\n", def->name);
	for (i = 0; i < n; i++) {
		str_clear(&v);
		config_format_value(&v, def, conf, i);
		if (v.len == 0)
			fprintf(fp, "%s =\n", def->name);
		else
			fprintf(fp, "%s = %s\n", def->name, str_c(&v));
	}
	str_deinit(&v);
}

void
config_print(FILE *fp, const struct config *conf)
{
	size_t i;

	fprintf(fp, "# sekisho effective configuration\n");
	for (i = 0; i < CONFIG_NDEFS; i++)
		config_print_key(fp, &config_defs[i], conf);
}

void
config_print_defaults(FILE *fp)
{
	struct str range = STR_INIT;
	size_t i;
	const char *p, *nl;

	fprintf(fp, "# sekisho configuration: every key with its "
	    "default.\n");
	for (i = 0; i < CONFIG_NDEFS; i++) {
		const struct config_def *def = &config_defs[i];

		str_clear(&range);
		config_format_range(&range, def, "");
		fprintf(fp, "\n# %s\n# %s%s%s\n", def->help,
		    config_type_name(def), range.len > 0 ? ": " : "",
		    str_c(&range));
		if (def->flags & CONFIG_F_SYSHOST)
			fprintf(fp, "# empty: the system host name\n");
		if (def->def[0] == '\0') {
			fprintf(fp, "%s =\n", def->name);
			continue;
		}
		for (p = def->def; *p != '\0'; p = nl == NULL ? "" : nl + 1) {
			nl = strchr(p, '\n');
			fprintf(fp, "%s = %.*s\n", def->name,
			    nl == NULL ? (int)strlen(p) : (int)(nl - p), p);
		}
	}
	str_deinit(&range);
}

void
config_print_markdown(FILE *fp)
{
	struct str range = STR_INIT;
	size_t i;
	const char *p, *nl;

	fprintf(fp,
	    "# sekisho configuration reference\n"
	    "\n"
	    "This file is generated by `sekisho config markdown` from the "
	    "table of keys in\n"
	    "`src/core/config.c`; do not edit it by hand.\n"
	    "\n"
	    "## File format\n"
	    "\n"
	    "One setting per line, written `key = value`. Spaces around "
	    "the key and the value\n"
	    "are ignored. A line whose first non-blank character is `#` is "
	    "a comment; blank\n"
	    "lines are ignored. A key that is not set keeps its default. "
	    "Setting a key twice\n"
	    "is an error, except for keys whose type is a list: each "
	    "line adds one item,\n"
	    "the first line replaces the default list, and `key =` with "
	    "nothing after it\n"
	    "means an empty list.\n"
	    "\n"
	    "Sizes are bytes, with an optional suffix `K`, `M` or `G` "
	    "(1024-based): `64K`,\n"
	    "`25M`. Durations are seconds, with an optional suffix `s`, "
	    "`m`, `h` or `d`:\n"
	    "`300s`, `5m`, `1h`. Booleans are `yes`/`no`, `on`/`off`, "
	    "`true`/`false`, `1`/`0`.\n"
	    "\n"
	    "Reading the file (to check it, or to start the server) "
	    "reports every error,\n"
	    "not only the first, each as `FILE:LINE: what is wrong`, "
	    "and then gives up:\n"
	    "\n"
	    "    sekisho.conf:12: unknown key 'smtp_timout' "
	    "(did you mean 'smtp_timeout'?)\n"
	    "    sekisho.conf:3: smtp_timeout: bad duration 'abc' "
	    "(expected e.g. 300s, 5m, 1h)\n"
	    "\n"
	    "## Keys\n");
	for (i = 0; i < CONFIG_NDEFS; i++) {
		const struct config_def *def = &config_defs[i];

		fprintf(fp, "\n### %s\n\n%s\n\n- Type: %s\n", def->name,
		    def->help, config_type_name(def));
		if (def->flags & CONFIG_F_SYSHOST)
			fprintf(fp, "- Default: (system host name)\n");
		else if (def->def[0] == '\0')
			fprintf(fp, "- Default: (empty)\n");
		else if (config_is_list(def)) {
			fprintf(fp, "- Default:\n");
			for (p = def->def; *p != '\0';
			    p = nl == NULL ? "" : nl + 1) {
				nl = strchr(p, '\n');
				fprintf(fp, "  - `%.*s`\n", nl == NULL ?
				    (int)strlen(p) : (int)(nl - p), p);
			}
		} else
			fprintf(fp, "- Default: `%s`\n", def->def);
		str_clear(&range);
		config_format_range(&range, def, "`");
		if (config_is_number(def))
			fprintf(fp, "- Range: %s\n", str_c(&range));
		else if (def->words != NULL)
			fprintf(fp, "- Allowed values: %s\n", str_c(&range));
		if (def->type == CONFIG_LISTEN)
			fprintf(fp, "\n"
			    "Each item is `ROLE HOST:PORT [proxy]`. ROLE is "
			    "`mx` (port 25: mail for local\n"
			    "recipients, no AUTH), `submission` (587: "
			    "STARTTLS, AUTH required) or\n"
			    "`submissions` (465: implicit TLS, AUTH "
			    "required). HOST is an IPv4 address, an\n"
			    "IPv6 address in brackets (`[::1]`), or `*` for "
			    "all addresses, IPv4 and IPv6.\n"
			    "PORT is 1 to 65535. `proxy` means every "
			    "connection on that listener starts\n"
			    "with a PROXY protocol v1 or v2 header, accepted "
			    "only from `proxy_trusted`.\n"
			    "Two listeners may not use the same port on the "
			    "same address (`*` covers all).\n"
			    "\n"
			    "    listen = mx *:25\n"
			    "    listen = submission [::1]:587\n"
			    "    listen = submissions 192.0.2.1:465 proxy\n");
		else if (def->type == CONFIG_CIDR)
			fprintf(fp, "\n"
			    "Each item is a network, `192.0.2.0/24` or "
			    "`2001:db8::/32`, or one address\n"
			    "(`/32` or `/128`). Bits after the prefix must "
			    "be zero. IPv4 clients on IPv6\n"
			    "sockets (`::ffff:192.0.2.1`) match IPv4 "
			    "networks.\n"
			    "\n"
			    "    proxy_trusted = 192.0.2.0/24\n"
			    "    proxy_trusted = 2001:db8::/32\n");
	}
	str_deinit(&range);
}

/* Text for roff: a backslash is \e, a line must not start with a
 * control character (groff(7)), source lines stay short (a space after
 * column 60 becomes a newline) and a long list may break after ':'
 * (\: marks a break point; \c joins the next source line without a
 * space). col: where on the source line text starts. */
static void
config_man_text(FILE *fp, const char *text, size_t col)
{
	for (const char *p = text; *p != '\0'; p++) {
		if (col == 0 && (*p == '.' || *p == '\''))
			fputs("\\&", fp);
		if (*p == ' ' && col > 60) {
			fputc('\n', fp);
			col = 0;
			continue;
		}
		if (*p == '\\' || *p == '-') {
			fputs(*p == '\\' ? "\\e" : "\\-", fp);
			col += 2;
		} else if (*p == ':' && col > 40) {
			fputs(":\\:\\c\n", fp);
			col = 0;
		} else if (*p == ':') {
			fputs(":\\:", fp);
			col += 3;
		} else if (*p == '\n') {
			fputc('\n', fp);
			col = 0;
		} else {
			fputc(*p, fp);
			col++;
		}
	}
}

void
config_print_man(FILE *fp, const char *version, const char *date)
{
	struct str range = STR_INIT;
	const char *p, *nl;
	size_t i;

	fprintf(fp,
	    ".\\\" Generated by \"sekisho config man\" from the table of keys "
	    "in\n"
	    ".\\\" src/core/config.c; do not edit it by hand.\n"
	    ".TH SEKISHO.CONF 5 \"%s\" \"sekisho %s\" \"File Formats Manual\"\n"
	    ".SH NAME\n"
	    "sekisho.conf \\- configuration file of the sekisho mail server\n"
	    ".SH SYNOPSIS\n"
	    ".I /etc/sekisho/sekisho.conf\n"
	    ".SH DESCRIPTION\n"
	    "One setting per line, written\n"
	    ".IR key \" = \" value .\n"
	    "Spaces around the key and the value are ignored.\n"
	    "A line whose first non\\-blank character is\n"
	    ".B #\n"
	    "is a comment; blank lines are ignored.\n"
	    "A key that is not set keeps its default.\n"
	    "Setting a key twice is an error, except for keys whose type is\n"
	    "a list: each line adds one item, the first line replaces the\n"
	    "default list, and\n"
	    ".I key\n"
	    ".B =\n"
	    "with nothing after it means an empty list.\n"
	    ".PP\n"
	    "Sizes are bytes, with an optional suffix K, M or G (1024\\-based).\n"
	    "Durations are seconds, with an optional suffix s, m, h or d.\n"
	    "Booleans are yes/no, on/off, true/false, 1/0.\n"
	    ".PP\n"
	    "Every error in the file is reported, not only the first, each as\n"
	    ".IR FILE : LINE :\n"
	    "what is wrong; then the file is refused.\n"
	    "Check a file with\n"
	    ".BR \"sekisho check\\-config\" ;\n"
	    "print every key with its default with\n"
	    ".BR \"sekisho config defaults\" .\n"
	    ".PP\n"
	    "Each listener is\n"
	    ".I ROLE HOST\\fR:\\fIPORT\n"
	    "with an optional\n"
	    ".BR proxy ;\n"
	    "ROLE is one of mx, submission, submissions, pop3, pop3s,\n"
	    "policy, portal or metrics (plain HTTP; for loopback or a\n"
	    "management network only).\n"
	    ".SH KEYS\n"
	    ".ad l\n", date, version);
	for (i = 0; i < CONFIG_NDEFS; i++) {
		const struct config_def *def = &config_defs[i];

		fprintf(fp, ".TP\n.B %s\n", def->name);
		config_man_text(fp, def->help, 0);
		fprintf(fp, "\n.br\nType: ");
		config_man_text(fp, config_type_name(def), 6);
		fprintf(fp, ".\n.br\nDefault: ");
		if (def->flags & CONFIG_F_SYSHOST)
			fprintf(fp, "the system host name");
		else if (def->def[0] == '\0')
			fprintf(fp, "empty");
		else if (config_is_list(def)) {
			for (p = def->def; *p != '\0';
			    p = nl == NULL ? "" : nl + 1) {
				struct str item = STR_INIT;

				nl = strchr(p, '\n');
				str_append_n(&item, p, nl == NULL ? strlen(p) :
				    (size_t)(nl - p));
				fprintf(fp, "%s\\fB", p == def->def ? "" : ", ");
				config_man_text(fp, str_c(&item), 40);
				fprintf(fp, "\\fR");
				str_deinit(&item);
			}
		} else {
			fprintf(fp, "\\fB");
			config_man_text(fp, def->def, 12);
			fprintf(fp, "\\fR");
		}
		fprintf(fp, ".\n");
		str_clear(&range);
		config_format_range(&range, def, "");
		if (config_is_number(def) || def->words != NULL) {
			fprintf(fp, ".br\n%s: ", config_is_number(def) ?
			    "Range" : "Allowed values");
			config_man_text(fp, str_c(&range), 16);
			fprintf(fp, ".\n");
		}
	}
	fprintf(fp,
	    ".SH FILES\n"
	    ".TP\n"
	    ".I /etc/sekisho/sekisho.conf\n"
	    "The default configuration file; another is given with\n"
	    ".B \\-c\n"
	    "or the environment variable\n"
	    ".BR SEKISHO_CONFIG .\n"
	    ".SH SEE ALSO\n"
	    ".BR sekisho (8)\n");
	str_deinit(&range);
}
