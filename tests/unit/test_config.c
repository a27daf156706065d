/*
 * test_config: the config file parser, its error messages, the printers
 * built from the key table, and the CIDR helpers. Files are written to a
 * mkdtemp() directory which is the working directory during the tests, so
 * messages read "sekisho.conf:LINE: ...".
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "unit.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static const char *conf_name = "sekisho.conf";

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL) {
		perror(path);
		exit(2);
	}
	fputs(text, fp);
	fclose(fp);
}

/* Load text through a real file; errors (or "") into errors. */
static int
load_text(const char *text, struct config **conf_r, struct str *errors)
{
	write_file(conf_name, text);
	str_clear(errors);
	return config_load(conf_name, conf_r, errors);
}

/* --- good files ----------------------------------------------------- */

enum field_kind { F_INT, F_SIZE, F_STR };

struct good_row {
	const char	*input;
	size_t		 off;
	enum field_kind	 kind;
	long long	 num;
	const char	*str;
};

#define INT_ROW(in, f, v)  { in, offsetof(struct config, f), F_INT, v, NULL }
#define SIZE_ROW(in, f, v) { in, offsetof(struct config, f), F_SIZE, v, NULL }
#define STR_ROW(in, f, v)  { in, offsetof(struct config, f), F_STR, 0, v }

static const struct good_row good_rows[] = {
	INT_ROW("workers = 8\n", workers, 8),
	INT_ROW("workers=0", workers, 0),
	INT_ROW("  workers\t=\t64  \n", workers, 64),
	INT_ROW("# comment\n\n   # indented comment\nworkers = 3\n",
	    workers, 3),
	INT_ROW("workers = 2\r\n", workers, 2),
	INT_ROW("max_connections = 1000000", max_connections, 1000000),
	INT_ROW("max_connections = 1", max_connections, 1),
	INT_ROW("received_show_account = yes", received_show_account, 1),
	INT_ROW("received_show_account = ON", received_show_account, 1),
	INT_ROW("received_show_account = true", received_show_account, 1),
	INT_ROW("received_show_account = 1", received_show_account, 1),
	INT_ROW("received_show_account = off", received_show_account, 0),
	INT_ROW("received_show_account = False", received_show_account, 0),
	INT_ROW("received_show_account = 0", received_show_account, 0),
	SIZE_ROW("message_size_limit = 10M", message_size_limit,
	    10 * 1024 * 1024),
	SIZE_ROW("message_size_limit = 2G", message_size_limit,
	    2LL * 1024 * 1024 * 1024),
	SIZE_ROW("message_size_limit = 1K", message_size_limit, 1024),
	SIZE_ROW("message_size_limit = 1024", message_size_limit, 1024),
	SIZE_ROW("smtp_line_length_limit = 4k", smtp_line_length_limit, 4096),
	SIZE_ROW("smtp_line_length_limit = 512", smtp_line_length_limit, 512),
	SIZE_ROW("smtp_data_line_length_limit = 1M",
	    smtp_data_line_length_limit, 1048576),
	SIZE_ROW("smtp_data_line_length_limit = 78",
	    smtp_data_line_length_limit, 78),
	INT_ROW("smtp_timeout = 1h", smtp_timeout, 3600),
	INT_ROW("smtp_timeout = 5m", smtp_timeout, 300),
	INT_ROW("smtp_timeout = 45s", smtp_timeout, 45),
	INT_ROW("smtp_timeout = 120", smtp_timeout, 120),
	INT_ROW("smtp_data_timeout = 1d", smtp_data_timeout, 86400),
	INT_ROW("proxy_timeout = 1s", proxy_timeout, 1),
	INT_ROW("submission_auth_without_tls = loopback",
	    submission_auth_without_tls, AUTH_WITHOUT_TLS_LOOPBACK),
	INT_ROW("submission_auth_without_tls = never",
	    submission_auth_without_tls, AUTH_WITHOUT_TLS_NEVER),
	STR_ROW("tls_min_protocol = TLSv1.3", tls_min_protocol, "TLSv1.3"),
	STR_ROW("tls_min_protocol = tlsv1.3", tls_min_protocol, "TLSv1.3"),
	STR_ROW("log_level = debug", log_level, "debug"),
	STR_ROW("hostname = mx1.example.jp", hostname, "mx1.example.jp"),
	STR_ROW("store = sqlite:/tmp/x.db", store, "sqlite:/tmp/x.db"),
	STR_ROW("spool_dir = /srv/spool # not a comment", spool_dir,
	    "/srv/spool # not a comment"),
	STR_ROW("tls_ciphers = A=B:C", tls_ciphers, "A=B:C"),
	STR_ROW("tls_cert = /etc/ssl/a.pem", tls_cert, "/etc/ssl/a.pem"),
	STR_ROW("tls_key = /etc/ssl/a.key", tls_key, "/etc/ssl/a.key"),
	STR_ROW("maildir_root = /home/mail", maildir_root, "/home/mail"),
};

static void
test_good(void)
{
	struct str errors = STR_INIT;
	struct config *conf;
	size_t i;

	for (i = 0; i < nitems(good_rows); i++) {
		const struct good_row *row = &good_rows[i];
		const char *field;

		conf = NULL;
		if (load_text(row->input, &conf, &errors) != 0 ||
		    conf == NULL) {
			fprintf(stderr, "row %zu: %s", i, str_c(&errors));
			UNIT_CHECK(0);
			continue;
		}
		UNIT_CHECK_STR(str_c(&errors), "");
		field = (const char *)conf + row->off;
		switch (row->kind) {
		case F_INT:
			UNIT_CHECK_INT(*(const int *)(const void *)field,
			    row->num);
			break;
		case F_SIZE:
			UNIT_CHECK_INT(*(const size_t *)(const void *)field,
			    row->num);
			break;
		case F_STR:
			UNIT_CHECK_STR(*(char *const *)(const void *)field,
			    row->str);
			break;
		}
		UNIT_CHECK_STR(conf->path, conf_name);
		config_free(&conf);
		UNIT_CHECK(conf == NULL);
	}
	str_deinit(&errors);
}

/* --- bad files ------------------------------------------------------ */

struct bad_row {
	const char	*input;
	const char	*errors;	/* all of them, in order */
};

#define E "sekisho.conf:"

static const struct bad_row bad_rows[] = {
	{ "smtp_timout = 5m\n",
	    E "1: unknown key 'smtp_timout' (did you mean 'smtp_timeout'?)\n" },
	{ "\nsmtp_tiemout = 5m\n",
	    E "2: unknown key 'smtp_tiemout' "
	    "(did you mean 'smtp_timeout'?)\n" },
	{ "log level = info\n",
	    E "1: unknown key 'log level' (did you mean 'log_level'?)\n" },
	{ "frobnicate = 1\n", E "1: unknown key 'frobnicate'\n" },
	{ "workers = four\n",
	    E "1: workers: bad number 'four' (expected a decimal integer)\n" },
	{ "workers = 1.5\n",
	    E "1: workers: bad number '1.5' (expected a decimal integer)\n" },
	{ "workers = +1\n",
	    E "1: workers: bad number '+1' (expected a decimal integer)\n" },
	{ "max_connections = 0\n",
	    E "1: max_connections: 0 is below the minimum 1\n" },
	{ "workers = -1\n", E "1: workers: -1 is below the minimum 0\n" },
	{ "workers = 65\n", E "1: workers: 65 is above the maximum 64\n" },
	{ "workers = 99999999999999999999999\n",
	    E "1: workers: 99999999999999999999999 is above the maximum 64\n" },
	{ "max_connections = 1000001\n",
	    E "1: max_connections: 1000001 is above the maximum 1000000\n" },
	{ "received_show_account = maybe\n",
	    E "1: received_show_account: bad boolean 'maybe' "
	    "(expected yes or no)\n" },
	{ "message_size_limit = 25X\n",
	    E "1: message_size_limit: bad size '25X' "
	    "(expected e.g. 2048, 64K, 25M, 2G)\n" },
	{ "message_size_limit = 25MB\n",
	    E "1: message_size_limit: bad size '25MB' "
	    "(expected e.g. 2048, 64K, 25M, 2G)\n" },
	{ "message_size_limit = M\n",
	    E "1: message_size_limit: bad size 'M' "
	    "(expected e.g. 2048, 64K, 25M, 2G)\n" },
	{ "message_size_limit = 3G\n",
	    E "1: message_size_limit: 3G is above the maximum 2G\n" },
	{ "message_size_limit = 99999999999G\n",
	    E "1: message_size_limit: 99999999999G is above the maximum 2G\n" },
	{ "message_size_limit = 1023\n",
	    E "1: message_size_limit: 1023 is below the minimum 1K\n" },
	{ "smtp_line_length_limit = 100\n",
	    E "1: smtp_line_length_limit: 100 is below the minimum 512\n" },
	{ "smtp_timeout = abc\n",
	    E "1: smtp_timeout: bad duration 'abc' "
	    "(expected e.g. 300s, 5m, 1h)\n" },
	{ "smtp_timeout = 5 m\n",
	    E "1: smtp_timeout: bad duration '5 m' "
	    "(expected e.g. 300s, 5m, 1h)\n" },
	{ "smtp_timeout = 2h\n",
	    E "1: smtp_timeout: 2h is above the maximum 1h\n" },
	{ "smtp_timeout = 0s\n",
	    E "1: smtp_timeout: 0s is below the minimum 1s\n" },
	{ "proxy_timeout = 301\n",
	    E "1: proxy_timeout: 301 is above the maximum 5m\n" },
	{ "log_level = verbose\n",
	    E "1: log_level: bad value 'verbose' "
	    "(expected one of: warn, info, debug)\n" },
	{ "tls_min_protocol = TLSv1.1\n",
	    E "1: tls_min_protocol: bad value 'TLSv1.1' "
	    "(expected one of: TLSv1.2, TLSv1.3)\n" },
	{ "submission_auth_without_tls = always\n",
	    E "1: submission_auth_without_tls: bad value 'always' "
	    "(expected one of: never, loopback)\n" },
	{ "listen = smtp *:25\n",
	    E "1: listen: bad role 'smtp' in 'smtp *:25' "
	    "(expected mx, submission, submissions, pop3 or pop3s)\n" },
	{ "listen = mx *:0\n",
	    E "1: listen: bad port '0' in 'mx *:0' (expected 1 to 65535)\n" },
	{ "listen = mx *:65536\n",
	    E "1: listen: bad port '65536' in 'mx *:65536' "
	    "(expected 1 to 65535)\n" },
	{ "listen = mx *:smtp\n",
	    E "1: listen: bad port 'smtp' in 'mx *:smtp' "
	    "(expected 1 to 65535)\n" },
	{ "listen = mx 127.0.0.1\n",
	    E "1: listen: missing port in 'mx 127.0.0.1' "
	    "(expected HOST:PORT)\n" },
	{ "listen = mx localhost:25\n",
	    E "1: listen: bad address 'localhost:25' in 'mx localhost:25' "
	    "(expected IPv4:PORT, [IPv6]:PORT or *:PORT)\n" },
	{ "listen = mx ::1:25\n",
	    E "1: listen: bad address '::1:25' in 'mx ::1:25' "
	    "(expected IPv4:PORT, [IPv6]:PORT or *:PORT)\n" },
	{ "listen = mx [::1]25\n",
	    E "1: listen: bad address '[::1]25' in 'mx [::1]25' "
	    "(expected IPv4:PORT, [IPv6]:PORT or *:PORT)\n" },
	{ "listen = mx *:25 proxi\n",
	    E "1: listen: unexpected 'proxi' in 'mx *:25 proxi' "
	    "(expected ROLE HOST:PORT [proxy])\n" },
	{ "listen = mx\n",
	    E "1: listen: bad listener 'mx' "
	    "(expected ROLE HOST:PORT [proxy])\n" },
	{ "proxy_trusted = 192.0.2.0/33\n",
	    E "1: proxy_trusted: bad network '192.0.2.0/33' (expected e.g. "
	    "192.0.2.0/24, 2001:db8::/32 or one address)\n" },
	{ "proxy_trusted = lb.example.jp\n",
	    E "1: proxy_trusted: bad network 'lb.example.jp' (expected e.g. "
	    "192.0.2.0/24, 2001:db8::/32 or one address)\n" },
	{ "proxy_trusted = 192.0.2.0/\n",
	    E "1: proxy_trusted: bad network '192.0.2.0/' (expected e.g. "
	    "192.0.2.0/24, 2001:db8::/32 or one address)\n" },
	{ "proxy_trusted = 192.0.2.1/24\n",
	    E "1: proxy_trusted: '192.0.2.1/24' has host bits set "
	    "(did you mean 192.0.2.0/24?)\n" },
	{ "proxy_trusted = 2001:db8::1/32\n",
	    E "1: proxy_trusted: '2001:db8::1/32' has host bits set "
	    "(did you mean 2001:db8::/32?)\n" },
	{ "smtp_timeout = 5m\n# x\nsmtp_timeout = 6m\n",
	    E "3: 'smtp_timeout' already set at line 1\n" },
	{ "smtp_timeout 5m\n",
	    E "1: missing '=' in 'smtp_timeout 5m' (expected key = value)\n" },
	{ " = 5\n", E "1: missing key before '='\n" },
	{ "workers =\n", E "1: workers: a value is required\n" },
	{ "spool_dir =\n", E "1: spool_dir: a value is required\n" },
	{ "spool_dir = var/spool\n",
	    E "1: spool_dir: 'var/spool' is not an absolute path\n" },
	{ "store = mysql://db/sekisho\n",
	    E "1: store: unsupported store 'mysql://db/sekisho' "
	    "(expected sqlite:/absolute/path.db or postgresql:CONNINFO)\n" },
	{ "hostname = mail_1.example.jp\n",
	    E "1: hostname: 'mail_1.example.jp' is not a valid host name\n" },
	{ "hostname = mail..example.jp\n",
	    E "1: hostname: 'mail..example.jp' is not a valid host name\n" },
	{ "listen = mx 127.0.0.1:25\nlisten = submission 127.0.0.1:25\n",
	    E "2: listen: 127.0.0.1:25 is already used at line 1\n" },
	{ "listen = mx [::1]:25\nlisten = mx [0::1]:25\n",
	    E "2: listen: [::1]:25 is already used at line 1\n" },
	{ "listen = mx *:25\nlisten = submission [::1]:25\n",
	    E "2: listen: [::1]:25 overlaps *:25 at line 1\n" },
	{ "# no listeners\nlisten =\n",
	    E "2: listen: at least one listener is needed\n" },
	{ "workers = 1\x01\n", E "1: control character 0x01 in line\n" },
	/* Several errors in one file: all reported, lines before checks. */
	{ "workers = 100\n"
	  "smtp_timout = 5m\n"
	  "listen = mx *:25\n"
	  "log_level = loud\n"
	  "listen = submission *:25\n"
	  "proxy_trusted = 10.0.0.1/8\n"
	  "workers = 2\n"
	  "no equals here\n",
	    E "1: workers: 100 is above the maximum 64\n"
	    E "2: unknown key 'smtp_timout' (did you mean 'smtp_timeout'?)\n"
	    E "4: log_level: bad value 'loud' "
	    "(expected one of: warn, info, debug)\n"
	    E "6: proxy_trusted: '10.0.0.1/8' has host bits set "
	    "(did you mean 10.0.0.0/8?)\n"
	    E "7: 'workers' already set at line 1\n"
	    E "8: missing '=' in 'no equals here' (expected key = value)\n"
	    E "5: listen: *:25 is already used at line 3\n" },
};

static void
test_bad(void)
{
	struct str errors = STR_INIT;
	struct config *conf;
	size_t i;

	for (i = 0; i < nitems(bad_rows); i++) {
		conf = (struct config *)&errors;	/* must become NULL */
		UNIT_CHECK_INT(load_text(bad_rows[i].input, &conf, &errors),
		    -1);
		UNIT_CHECK(conf == NULL);
		UNIT_CHECK_STR(str_c(&errors), bad_rows[i].errors);
	}
	str_deinit(&errors);
}

static void
test_missing_and_buffer(void)
{
	struct str errors = STR_INIT;
	struct config *conf;
	static const char nul[] = "workers = 1\nlog_level = in\0fo\n";

	UNIT_CHECK_INT(config_load("no-such.conf", &conf, &errors), -1);
	UNIT_CHECK(conf == NULL);
	UNIT_CHECK_STR(str_c(&errors),
	    "no-such.conf: cannot open: No such file or directory\n");

	str_clear(&errors);
	UNIT_CHECK_INT(config_load_buffer("buf", nul, sizeof(nul) - 1, &conf,
	    &errors), -1);
	UNIT_CHECK_STR(str_c(&errors), "buf:2: NUL byte in line\n");

	/* Not NUL-terminated: only len bytes are read. */
	str_clear(&errors);
	UNIT_CHECK_INT(config_load_buffer("buf", "workers = 12345", 11, &conf,
	    &errors), 0);
	UNIT_CHECK_STR(str_c(&errors), "");
	if (conf != NULL) {
		UNIT_CHECK_INT(conf->workers, 1);
		UNIT_CHECK_STR(conf->path, "buf");
	}
	config_free(&conf);
	config_free(&conf);	/* NULL is fine */

	/* An empty file is all defaults. */
	UNIT_CHECK_INT(config_load_buffer("empty", "", 0, &conf, &errors), 0);
	UNIT_CHECK(conf != NULL && conf->listen_count == 3);
	config_free(&conf);
	str_deinit(&errors);
}

/* --- defaults and lists --------------------------------------------- */

static void
check_defaults(const struct config *c)
{
	char host[256];

	UNIT_CHECK(gethostname(host, sizeof(host)) == 0);
	host[sizeof(host) - 1] = '\0';
	UNIT_CHECK_STR(c->hostname, host);
	UNIT_CHECK_INT(c->listen_count, 3);
	if (c->listen_count == 3) {
		UNIT_CHECK_INT(c->listen[0].role, LISTEN_MX);
		UNIT_CHECK_STR(c->listen[0].host, "*");
		UNIT_CHECK_STR(c->listen[0].port, "25");
		UNIT_CHECK_INT(c->listen[0].proxy, 0);
		UNIT_CHECK_INT(c->listen[1].role, LISTEN_SUBMISSION);
		UNIT_CHECK_STR(c->listen[1].port, "587");
		UNIT_CHECK_INT(c->listen[2].role, LISTEN_SUBMISSIONS);
		UNIT_CHECK_STR(c->listen[2].port, "465");
	}
	UNIT_CHECK_STR(c->store, "sqlite:/var/lib/sekisho/sekisho.db");
	UNIT_CHECK_STR(c->spool_dir, "/var/spool/sekisho");
	UNIT_CHECK_STR(c->maildir_root, "/var/lib/sekisho/mail");
	UNIT_CHECK_STR(c->tls_cert, "/etc/sekisho/tls/cert.pem");
	UNIT_CHECK_STR(c->tls_key, "/etc/sekisho/tls/key.pem");
	UNIT_CHECK_STR(c->tls_min_protocol, "TLSv1.2");
	UNIT_CHECK_STR(c->tls_ciphers,
	    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
	UNIT_CHECK_INT(c->workers, 0);
	UNIT_CHECK_INT(c->backend_threads, 4);
	UNIT_CHECK_INT(c->max_connections, 1000);
	UNIT_CHECK_INT(c->max_connections_per_ip, 20);
	UNIT_CHECK_INT(c->proxy_trusted_count, 0);
	UNIT_CHECK_INT(c->proxy_timeout, 5);
	UNIT_CHECK_INT(c->smtp_line_length_limit, 2048);
	UNIT_CHECK_INT(c->smtp_data_line_length_limit, 998);
	UNIT_CHECK_INT(c->message_size_limit, 25 * 1024 * 1024);
	UNIT_CHECK_INT(c->smtp_max_recipients, 100);
	UNIT_CHECK_INT(c->smtp_max_errors, 10);
	UNIT_CHECK_INT(c->smtp_timeout, 300);
	UNIT_CHECK_INT(c->smtp_data_timeout, 600);
	UNIT_CHECK_INT(c->submission_auth_without_tls, AUTH_WITHOUT_TLS_NEVER);
	UNIT_CHECK_INT(c->received_show_account, 0);
	UNIT_CHECK_STR(c->log_level, "info");
}

static void
test_defaults(void)
{
	struct str errors = STR_INIT;
	struct config *conf = config_defaults();

	check_defaults(conf);
	UNIT_CHECK(conf->path == NULL);
	config_free(&conf);
	UNIT_CHECK(conf == NULL);

	/* hostname = (empty) also means the system host name. */
	UNIT_CHECK_INT(load_text("hostname =\n", &conf, &errors), 0);
	if (conf != NULL)
		check_defaults(conf);
	config_free(&conf);
	str_deinit(&errors);

	UNIT_CHECK_STR(config_role_name(LISTEN_MX), "mx");
	UNIT_CHECK_STR(config_role_name(LISTEN_SUBMISSION), "submission");
	UNIT_CHECK_STR(config_role_name(LISTEN_SUBMISSIONS), "submissions");
}

static void
test_lists(void)
{
	struct str errors = STR_INIT;
	struct config *conf = NULL;

	/* The first listen line replaces all three defaults. */
	UNIT_CHECK_INT(load_text(
	    "listen = mx 127.0.0.1:2525\n"
	    "proxy_trusted = 192.0.2.0/24\n"
	    "listen = submissions [2001:DB8:0::1]:4465 proxy\n"
	    "listen   =   submission\t *:587\n"
	    "proxy_trusted = 2001:db8::1\n"
	    "proxy_trusted = ::ffff:198.51.100.0/120\n",
	    &conf, &errors), 0);
	UNIT_CHECK_STR(str_c(&errors), "");
	if (conf == NULL)
		return;
	UNIT_CHECK_INT(conf->listen_count, 3);
	if (conf->listen_count == 3) {
		UNIT_CHECK_INT(conf->listen[0].role, LISTEN_MX);
		UNIT_CHECK_STR(conf->listen[0].host, "127.0.0.1");
		UNIT_CHECK_STR(conf->listen[0].port, "2525");
		UNIT_CHECK_INT(conf->listen[0].proxy, 0);
		UNIT_CHECK_INT(conf->listen[1].role, LISTEN_SUBMISSIONS);
		UNIT_CHECK_STR(conf->listen[1].host, "2001:db8::1");
		UNIT_CHECK_STR(conf->listen[1].port, "4465");
		UNIT_CHECK_INT(conf->listen[1].proxy, 1);
		UNIT_CHECK_INT(conf->listen[2].role, LISTEN_SUBMISSION);
		UNIT_CHECK_STR(conf->listen[2].host, "*");
	}
	UNIT_CHECK_INT(conf->proxy_trusted_count, 3);
	if (conf->proxy_trusted_count == 3) {
		UNIT_CHECK_INT(conf->proxy_trusted[0].family, AF_INET);
		UNIT_CHECK_INT(conf->proxy_trusted[0].prefix, 24);
		UNIT_CHECK_INT(conf->proxy_trusted[1].family, AF_INET6);
		UNIT_CHECK_INT(conf->proxy_trusted[1].prefix, 128);
		/* A mapped network is an IPv4 network. */
		UNIT_CHECK_INT(conf->proxy_trusted[2].family, AF_INET);
		UNIT_CHECK_INT(conf->proxy_trusted[2].prefix, 24);
	}
	config_free(&conf);

	/* Empty list. */
	UNIT_CHECK_INT(load_text("proxy_trusted =\n", &conf, &errors), 0);
	UNIT_CHECK(conf != NULL && conf->proxy_trusted_count == 0);
	config_free(&conf);
	str_deinit(&errors);
}

/* --- printing ------------------------------------------------------- */

static char *
print_to_string(const struct config *conf, int defaults)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	if (fp == NULL)
		exit(2);
	if (defaults)
		config_print_defaults(fp);
	else
		config_print(fp, conf);
	fclose(fp);
	return buf;
}

/* Every field, compared by hand so a printer bug cannot hide itself. */
static int
config_same(const struct config *a, const struct config *b)
{
	size_t i;

#define SAME_STR(f)	(strcmp(a->f, b->f) == 0)
#define SAME(f)		(a->f == b->f)
	if (!(SAME_STR(hostname) && SAME_STR(store) && SAME_STR(spool_dir) &&
	    SAME_STR(maildir_root) && SAME_STR(tls_cert) &&
	    SAME_STR(tls_key) && SAME_STR(tls_min_protocol) &&
	    SAME_STR(tls_ciphers) && SAME(workers) && SAME(backend_threads) &&
	    SAME(max_connections) && SAME(max_connections_per_ip) &&
	    SAME(proxy_timeout) && SAME(smtp_line_length_limit) &&
	    SAME(smtp_data_line_length_limit) && SAME(message_size_limit) &&
	    SAME(smtp_max_recipients) && SAME(smtp_max_errors) &&
	    SAME(smtp_timeout) && SAME(smtp_data_timeout) &&
	    SAME(submission_auth_without_tls) &&
	    SAME(received_show_account) && SAME_STR(log_level) &&
	    SAME(listen_count) && SAME(proxy_trusted_count)))
		return 0;
	for (i = 0; i < a->listen_count; i++)
		if (a->listen[i].role != b->listen[i].role ||
		    strcmp(a->listen[i].host, b->listen[i].host) != 0 ||
		    strcmp(a->listen[i].port, b->listen[i].port) != 0 ||
		    a->listen[i].proxy != b->listen[i].proxy)
			return 0;
	for (i = 0; i < a->proxy_trusted_count; i++)
		if (memcmp(&a->proxy_trusted[i], &b->proxy_trusted[i],
		    sizeof(struct cidr)) != 0)
			return 0;
	return 1;
#undef SAME
#undef SAME_STR
}

static void
test_round_trip(void)
{
	static const char *const inputs[] = {
		"",
		"hostname = mx.example.jp\n"
		"listen = mx 192.0.2.1:25 proxy\n"
		"listen = submission [2001:db8::25]:587\n"
		"listen = submissions *:465\n"
		"store = sqlite:/srv/db.sqlite\n"
		"spool_dir = /srv/spool\n"
		"maildir_root = /srv/mail\n"
		"tls_cert = /srv/tls/c.pem\n"
		"tls_key = /srv/tls/k.pem\n"
		"tls_min_protocol = TLSv1.3\n"
		"tls_ciphers = ECDHE-RSA-AES128-GCM-SHA256\n"
		"workers = 2\nbackend_threads = 8\n"
		"max_connections = 5000\nmax_connections_per_ip = 50\n"
		"proxy_trusted = 10.0.0.0/8\nproxy_trusted = 2001:db8::/32\n"
		"proxy_trusted = 198.51.100.7\n"
		"proxy_timeout = 90\n"
		"smtp_line_length_limit = 1000\n"
		"smtp_data_line_length_limit = 64K\n"
		"message_size_limit = 1536K\n"
		"smtp_max_recipients = 1000\nsmtp_max_errors = 3\n"
		"smtp_timeout = 3599\nsmtp_data_timeout = 1d\n"
		"submission_auth_without_tls = loopback\n"
		"received_show_account = yes\nlog_level = warn\n",
	};
	struct str errors = STR_INIT;
	struct config *a = NULL, *b = NULL;
	char *text, *text2;
	size_t i;

	for (i = 0; i < nitems(inputs); i++) {
		UNIT_CHECK_INT(load_text(inputs[i], &a, &errors), 0);
		if (a == NULL)
			continue;
		text = print_to_string(a, 0);
		UNIT_CHECK_INT(load_text(text, &b, &errors), 0);
		UNIT_CHECK_STR(str_c(&errors), "");
		if (b != NULL) {
			UNIT_CHECK(config_same(a, b));
			text2 = print_to_string(b, 0);
			UNIT_CHECK_STR(text2, text);
			free(text2);
		}
		free(text);
		config_free(&a);
		config_free(&b);
	}

	/* A few printed forms: largest exact suffix, canonical items. */
	UNIT_CHECK_INT(load_text(inputs[1], &a, &errors), 0);
	if (a != NULL) {
		text = print_to_string(a, 0);
		UNIT_CHECK(strstr(text, "\nproxy_timeout = 90s\n") != NULL);
		UNIT_CHECK(strstr(text, "\nsmtp_data_timeout = 1d\n") != NULL);
		UNIT_CHECK(strstr(text, "\nsmtp_timeout = 3599s\n") != NULL);
		UNIT_CHECK(strstr(text, "\nmessage_size_limit = 1536K\n")
		    != NULL);
		UNIT_CHECK(strstr(text, "\nsmtp_line_length_limit = 1000\n")
		    != NULL);
		UNIT_CHECK(strstr(text, "\nlisten = mx 192.0.2.1:25 proxy\n")
		    != NULL);
		UNIT_CHECK(strstr(text,
		    "\nlisten = submission [2001:db8::25]:587\n") != NULL);
		UNIT_CHECK(strstr(text,
		    "\nproxy_trusted = 198.51.100.7/32\n") != NULL);
		UNIT_CHECK(strstr(text, "\nreceived_show_account = yes\n")
		    != NULL);
		free(text);
		config_free(&a);
	}

	/* "config defaults" output is a valid file giving the defaults. */
	text = print_to_string(NULL, 1);
	UNIT_CHECK(strstr(text, "\nsmtp_timeout = 300s\n") != NULL);
	UNIT_CHECK(strstr(text, "\nlisten = submission *:587\n") != NULL);
	UNIT_CHECK(strstr(text, "\nproxy_trusted =\n") != NULL);
	UNIT_CHECK_INT(load_text(text, &a, &errors), 0);
	UNIT_CHECK_STR(str_c(&errors), "");
	if (a != NULL)
		check_defaults(a);
	config_free(&a);
	free(text);
	str_deinit(&errors);
}

static void
test_markdown(const char *docs)
{
	char *buf = NULL, *file = NULL;
	size_t len = 0, flen = 0;
	FILE *fp = open_memstream(&buf, &len);

	if (fp == NULL)
		exit(2);
	config_print_markdown(fp);
	fclose(fp);
	UNIT_CHECK(strncmp(buf, "# sekisho configuration reference\n",
	    34) == 0);
	UNIT_CHECK(strstr(buf, "\n### smtp_timeout\n") != NULL);
	UNIT_CHECK(strstr(buf, "- Default: (system host name)\n") != NULL);
	UNIT_CHECK(strstr(buf, "- Range: `1s` to `1h`\n") != NULL);
	UNIT_CHECK(strstr(buf, "- Range: `1K` to `2G`\n") != NULL);
	UNIT_CHECK(strstr(buf, "- Allowed values: `never`, `loopback`\n")
	    != NULL);
	UNIT_CHECK(strstr(buf, "Each item is `ROLE HOST:PORT [proxy]`")
	    != NULL);

	/* docs/config.md is this output, byte for byte. */
	if (docs != NULL) {
		char chunk[4096];
		size_t n;
		FILE *mem = open_memstream(&file, &flen);

		if (mem == NULL)
			exit(2);
		if ((fp = fopen(docs, "r")) != NULL) {
			while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
				fwrite(chunk, 1, n, mem);
			fclose(fp);
		}
		fclose(mem);
		UNIT_CHECK_INT(flen, len);
		UNIT_CHECK(flen == len && memcmp(file, buf, len) == 0);
		free(file);
	}
	free(buf);
}

/* --- CIDR ----------------------------------------------------------- */

struct match_row {
	const char	*nets;		/* space separated */
	const char	*addr;
	int		 mapped;	/* present addr as ::ffff:a.b.c.d */
	int		 want;
};

static const struct match_row match_rows[] = {
	{ "192.0.2.0/24", "192.0.2.0", 0, 1 },
	{ "192.0.2.0/24", "192.0.2.255", 0, 1 },
	{ "192.0.2.0/24", "192.0.1.255", 0, 0 },
	{ "192.0.2.0/24", "192.0.3.0", 0, 0 },
	{ "192.0.2.0/24", "192.0.2.77", 1, 1 },
	{ "192.0.2.0/24", "192.0.3.77", 1, 0 },
	{ "192.0.2.128/25", "192.0.2.127", 0, 0 },
	{ "192.0.2.128/25", "192.0.2.128", 0, 1 },
	{ "10.0.0.0/9", "10.127.255.255", 0, 1 },
	{ "10.0.0.0/9", "10.128.0.0", 0, 0 },
	{ "198.51.100.7", "198.51.100.7", 0, 1 },
	{ "198.51.100.7", "198.51.100.8", 0, 0 },
	{ "0.0.0.0/0", "203.0.113.9", 0, 1 },
	{ "0.0.0.0/0", "203.0.113.9", 1, 1 },
	{ "0.0.0.0/0", "2001:db8::1", 0, 0 },
	{ "::/0", "2001:db8::1", 0, 1 },
	{ "::/0", "192.0.2.1", 0, 0 },
	{ "2001:db8::/32", "2001:db8:ffff:ffff::1", 0, 1 },
	{ "2001:db8::/32", "2001:db9::", 0, 0 },
	{ "2001:db8::/33", "2001:db8:7fff::1", 0, 1 },
	{ "2001:db8::/33", "2001:db8:8000::", 0, 0 },
	{ "2001:db8::1", "2001:db8::1", 0, 1 },
	{ "2001:db8::1", "2001:db8::2", 0, 0 },
	{ "::ffff:192.0.2.0/120", "192.0.2.9", 0, 1 },
	{ "::ffff:192.0.2.0/120", "192.0.2.9", 1, 1 },
	{ "10.0.0.0/8 2001:db8::/32 192.0.2.0/24", "192.0.2.1", 0, 1 },
	{ "10.0.0.0/8 2001:db8::/32 192.0.2.0/24", "2001:db8::5", 0, 1 },
	{ "10.0.0.0/8 2001:db8::/32 192.0.2.0/24", "172.16.0.1", 1, 0 },
	{ "", "192.0.2.1", 0, 0 },
};

static void
test_cidr_match(void)
{
	size_t i;

	for (i = 0; i < nitems(match_rows); i++) {
		const struct match_row *row = &match_rows[i];
		struct cidr nets[4];
		struct sockaddr_storage ss;
		char *copy = xstrdup(row->nets), *t, *save = NULL;
		size_t n = 0;

		for (t = strtok_r(copy, " ", &save); t != NULL && n < 4;
		    t = strtok_r(NULL, " ", &save))
			UNIT_CHECK_INT(cidr_parse(t, &nets[n++]), 0);
		free(copy);
		memset(&ss, 0, sizeof(ss));
		if (row->mapped) {
			struct sockaddr_in6 *sin6 = (void *)&ss;
			char *m = xasprintf("::ffff:%s", row->addr);

			sin6->sin6_family = AF_INET6;
			UNIT_CHECK(inet_pton(AF_INET6, m,
			    &sin6->sin6_addr) == 1);
			free(m);
		} else if (strchr(row->addr, ':') != NULL) {
			struct sockaddr_in6 *sin6 = (void *)&ss;

			sin6->sin6_family = AF_INET6;
			UNIT_CHECK(inet_pton(AF_INET6, row->addr,
			    &sin6->sin6_addr) == 1);
		} else {
			struct sockaddr_in *sin = (void *)&ss;

			sin->sin_family = AF_INET;
			UNIT_CHECK(inet_pton(AF_INET, row->addr,
			    &sin->sin_addr) == 1);
		}
		if (cidr_match(nets, n, (struct sockaddr *)&ss) != row->want)
			fprintf(stderr, "match row %zu: %s in %s%s\n", i,
			    row->addr, row->nets, row->mapped ? " mapped" : "");
		UNIT_CHECK_INT(cidr_match(nets, n, (struct sockaddr *)&ss),
		    row->want);
	}
	UNIT_CHECK_INT(cidr_match(NULL, 0, NULL), 0);
}

struct parse_row {
	const char	*text;
	int		 ret;
	int		 family;
	int		 prefix;
};

static const struct parse_row parse_rows[] = {
	{ "192.0.2.0/24", 0, AF_INET, 24 },
	{ "192.0.2.1", 0, AF_INET, 32 },
	{ "192.0.2.1/32", 0, AF_INET, 32 },
	{ "0.0.0.0/0", 0, AF_INET, 0 },
	{ "2001:db8::/32", 0, AF_INET6, 32 },
	{ "::1", 0, AF_INET6, 128 },
	{ "::/0", 0, AF_INET6, 0 },
	{ "::ffff:10.0.0.0/104", 0, AF_INET, 8 },
	{ "192.0.2.1/24", -1, 0, 0 },
	{ "2001:db8::1/64", -1, 0, 0 },
	{ "192.0.2.0/33", -1, 0, 0 },
	{ "2001:db8::/129", -1, 0, 0 },
	{ "192.0.2.0/-1", -1, 0, 0 },
	{ "192.0.2.0/24x", -1, 0, 0 },
	{ "192.0.2/24", -1, 0, 0 },
	{ "/24", -1, 0, 0 },
	{ "", -1, 0, 0 },
};

static void
test_cidr_parse(void)
{
	size_t i;

	for (i = 0; i < nitems(parse_rows); i++) {
		struct cidr c;

		memset(&c, 0, sizeof(c));
		UNIT_CHECK_INT(cidr_parse(parse_rows[i].text, &c),
		    parse_rows[i].ret);
		if (parse_rows[i].ret == 0) {
			UNIT_CHECK_INT(c.family, parse_rows[i].family);
			UNIT_CHECK_INT(c.prefix, parse_rows[i].prefix);
		}
	}
}

int
main(void)
{
	char tmpl[] = "/tmp/test_config.XXXXXX";
	char *cwd, *docs = NULL;

	/* Run from the top of the tree (make unit), docs/ is there. */
	if ((cwd = getcwd(NULL, 0)) != NULL) {
		docs = xasprintf("%s/docs/config.md", cwd);
		if (access(docs, R_OK) != 0) {
			fprintf(stderr, "note: %s not found, not compared\n",
			    docs);
			xfree(&docs);
		}
		free(cwd);
	}
	if (mkdtemp(tmpl) == NULL || chdir(tmpl) < 0) {
		perror(tmpl);
		return 2;
	}

	test_good();
	test_bad();
	test_missing_and_buffer();
	test_defaults();
	test_lists();
	test_round_trip();
	test_markdown(docs);
	test_cidr_match();
	test_cidr_parse();

	unlink(conf_name);
	if (chdir("/") == 0)
		rmdir(tmpl);
	free(docs);
	UNIT_END();
}
