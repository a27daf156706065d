/*
 * fuzz_smtp_session: a whole SMTP conversation through the real session
 * code (smtp_session_new on one end of a socket pair): the command table
 * and state machine, pipelining, AUTH exchanges, the STARTTLS injection
 * rule, and DATA as it streams (dot-unstuffing, bare CR/LF, line limits,
 * header From and Message-ID, the Received line), which no other target
 * reaches. The back side is a stub on the same loop that says yes to
 * everything (a memfd as the spool file), so the session goes as deep as
 * the input lets it.
 *
 * Input: one byte choosing the listener (even: mx, odd: submission with
 * AUTH allowed from loopback without TLS), then the bytes the client
 * sends; the client then half-closes. Every line the server sends must be
 * a reply line ("DDD " or "DDD-" ... CRLF) and the session must end.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/be_client.h"
#include "core/be_proto.h"
#include "core/channel.h"
#include "core/config.h"
#include "core/log.h"
#include "daemon/server.h"
#include "core/str.h"
#include "smtp/smtp_session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Enough to check every reply line; the rest is only drained. */
#define FUZZ_OUT_MAX	(256 * 1024)

static struct {
	struct event_base	*base;
	struct config		*conf;
	struct server_loop	 loop;
	struct listen_conf	 mx, submission;
	struct channel		*stub;
} fz;

struct fuzz_client {
	int		 done;
	struct str	 out;
};

static void
fuzz_stub_cb(struct channel *ch, struct msg *m, void *arg)
{
	struct msg r;
	int fd;

	(void)arg;
	if (m == NULL)
		return;
	/* Every request but these acts for a session: its number first
	 * (be_proto.h), never 0 (be_client_session counts from 1). */
	if (m->type != BE_SPOOL_SPACE) {
		uint64_t sess = 0;

		if (msg_get_u64(m, &sess) < 0 || sess == 0)
			abort();
	}
	msg_init(&r, m->type, m->id);
	switch (m->type) {
	case BE_AUTH:
		msg_add_u32(&r, BE_AUTH_OK);
		msg_add_str(&r, "alice@example.jp");
		msg_add_str(&r, NULL);
		msg_add_u32(&r, 0);
		msg_add_i64(&r, 0);
		break;
	case BE_RCPT:
		msg_add_u32(&r, BE_RCPT_LOCAL);
		msg_add_str(&r, "bob@example.jp");
		break;
	case BE_SPOOL_OPEN:
		if ((fd = memfd_create("spool", MFD_CLOEXEC)) < 0)
			abort();
		msg_add_u32(&r, 0);
		msg_add_str(&r, NULL);
		msg_add_fd(&r, fd);
		break;
	case BE_RCPT_OPEN:
		if ((fd = memfd_create("spool", MFD_CLOEXEC)) < 0)
			abort();
		msg_add_u32(&r, BE_RCPT_LOCAL);
		msg_add_str(&r, "bob@example.jp");
		msg_add_u32(&r, 0);
		msg_add_str(&r, NULL);
		msg_add_fd(&r, fd);
		break;
	case BE_SPOOL_COMMIT:
		msg_add_u32(&r, 0);
		msg_add_str(&r, NULL);
		break;
	case BE_SPOOL_SPACE:
		msg_add_u32(&r, 0);
		msg_add_str(&r, NULL);
		msg_add_u64(&r, 4096);	/* little room: asked at every MAIL */
		break;
	case BE_SPOOL_ABORT:
	case BE_SESSION_END:
		msg_add_u32(&r, 0);
		break;
	case BE_POLICY_MAIL:
		msg_add_u32(&r, 0);
		msg_add_str(&r, NULL);
		msg_add_str(&r, "JP");
		msg_add_u32(&r, 0);
		msg_add_i64(&r, 5);
		msg_add_i64(&r, -1);
		msg_add_str(&r, "452 4.5.3 Daily recipient limit reached");
		msg_add_str(&r, "t1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
		break;
	case BE_POPBSMTP:
		msg_add_u32(&r, 1);
		msg_add_str(&r, NULL);
		break;
	default:
		msg_deinit(&r);
		msg_init(&r, BE_FAIL, m->id);
		break;
	}
	channel_send(ch, &r);
}

/* A throwaway self-signed P-256 certificate, so STARTTLS really starts. */
static SSL_CTX *
fuzz_tls_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();

	if (ctx == NULL || key == NULL || x == NULL)
		abort();
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)"mx.example.jp", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (X509_sign(x, key, EVP_sha256()) == 0 ||
	    SSL_CTX_use_certificate(ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1)
		abort();
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

static void
fuzz_init(void)
{
	int fds[2];

	log_init("fuzz", 1, LOG_LEVEL_WARN);
	fz.base = event_base_new();
	fz.conf = config_defaults();
	fz.conf->submission_auth_without_tls = AUTH_WITHOUT_TLS_LOOPBACK;
	fz.conf->queue_minfree = 1;	/* the BE_SPOOL_SPACE step too */
	if (fz.base == NULL || channel_pair(fds) < 0)
		abort();
	fz.stub = channel_new(fz.base, fds[1], fuzz_stub_cb, NULL);
	fz.loop.base = fz.base;
	fz.loop.be = be_client_new(fz.base, fds[0]);
	fz.loop.conf = fz.conf;
	fz.loop.tls = fuzz_tls_ctx();
	fz.mx.role = LISTEN_MX;
	fz.mx.host = "127.0.0.1";
	fz.mx.port = "25";
	fz.submission.role = LISTEN_SUBMISSION;
	fz.submission.host = "127.0.0.1";
	fz.submission.port = "587";
}

static void
fuzz_client_read(evutil_socket_t fd, short what, void *arg)
{
	struct fuzz_client *c = arg;
	char buf[16384];
	ssize_t n;

	(void)what;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			if (c->out.len < FUZZ_OUT_MAX)
				str_append_n(&c->out, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		c->done = 1;
		event_base_loopbreak(fz.base);
		return;
	}
}

static void
fuzz_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(fz.base);
}

/*
 * Every complete line is "DDD" then ' ' or '-', no CR or LF inside; a
 * TLS record after 220 to STARTTLS ends the check (binary from there).
 */
static void
fuzz_check_replies(const struct str *out)
{
	const char *p = out->s, *end = out->s + out->len, *eol;

	while (p < end && (eol = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		size_t len = (size_t)(eol - p);

		if (len < 5 || p[len - 1] != '\r' ||
		    p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' ||
		    p[2] < '0' || p[2] > '9' || (p[3] != ' ' && p[3] != '-') ||
		    memchr(p, '\r', len - 1) != NULL)
			abort();
		if (len >= 4 && memcmp(p, "220 ", 4) == 0 && p != out->s)
			return;		/* STARTTLS: TLS follows */
		p = eol + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_client c = { .done = 0, .out = STR_INIT };
	struct sockaddr_in sin;
	struct event *rev, *tev;
	const uint8_t *p;
	size_t left;
	int fds[2], rounds;

	if (fz.base == NULL)
		fuzz_init();
	if (size < 1)
		return 0;
	/* Non-blocking, as the server's accept4 makes its sockets. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
	    fds) < 0)
		abort();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	smtp_session_new(&fz.loop, (data[0] & 1) ? &fz.submission : &fz.mx,
	    fds[0], (struct sockaddr *)&sin, sizeof(sin));

	p = data + 1;
	left = size - 1;
	rev = event_new(fz.base, fds[1], EV_READ | EV_PERSIST,
	    fuzz_client_read, &c);
	tev = evtimer_new(fz.base, fuzz_timeout, NULL);
	event_add(rev, NULL);
	/* A hang, but long enough that a loaded machine is not one; the
	 * fuzzer's own -timeout usually reports it first. */
	event_add(tev, &(struct timeval){ 20, 0 });
	/* Send as the socket takes it, reading replies meanwhile (a client
	 * that pipelines everything). */
	while (left > 0 && !c.done) {
		ssize_t n = write(fds[1], p, left);

		if (n > 0) {
			p += n;
			left -= (size_t)n;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (!event_pending(tev, EV_TIMEOUT, NULL))
			break;
		event_base_loop(fz.base, EVLOOP_NONBLOCK);
	}
	shutdown(fds[1], SHUT_WR);
	while (!c.done && event_pending(tev, EV_TIMEOUT, NULL))
		event_base_loop(fz.base, EVLOOP_ONCE);
	if (!c.done)
		abort();	/* the session kept a half-closed client */
	event_free(rev);
	event_free(tev);
	close(fds[1]);
	for (rounds = 0; rounds < 4; rounds++)
		event_base_loop(fz.base, EVLOOP_NONBLOCK);
	fuzz_check_replies(&c.out);
	str_deinit(&c.out);
	return 0;
}
