/*
 * keyproc: the key process and the master's half of starting it (see
 * keys.h). The key process parses the keys it is handed, then answers
 * sign requests from the session processes, one SOCK_SEQPACKET channel
 * each, in one poll() loop: single-threaded, a request is answered
 * before the next is read. Every request is parsed strictly and bounded;
 * a bad one gets an error reply (or, when it is not even a message, is
 * dropped by channel_recv), never an exit. A channel whose process does
 * not read its replies is closed: nobody makes the key process wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "../core/file.h"
#include "../core/channel.h"
#include "../core/hex.h"
#include "../core/log.h"
#include "../core/msg.h"
#include "../core/xmalloc.h"
#include "keys.h"

/* ---- the master: the key files' bytes ----------------------------- */

struct keys_blob {
	size_t		 n;
	size_t		*len;
	unsigned char	*map;		/* n * KEYS_FILE_MAX, DONTFORK */
	size_t		 maplen;
};

size_t
keys_blob_count(const struct keys_blob *blob)
{
	return blob->n;
}

void
keys_blob_free(struct keys_blob **blobp)
{
	struct keys_blob *blob = *blobp;

	if (blob == NULL)
		return;
	*blobp = NULL;
	if (blob->map != NULL) {
		OPENSSL_cleanse(blob->map, blob->maplen);
		munmap(blob->map, blob->maplen);
	}
	free(blob->len);
	free(blob);
}

static int
keys_read_file(const char *path, unsigned char *buf, size_t *len_r,
    const char **error_r)
{
	enum file_read_result r;

	if ((r = file_read(path, KEYS_FILE_MAX, NULL, buf, len_r)) ==
	    FILE_READ_OK)
		return 0;
	*error_r = file_read_error(r, path, KEYS_FILE_MAX);
	return -1;
}

/*
 * MADV_DONTFORK: a child forked later (a session process, the back
 * side, a key process) has no mapping there at all, so no copy of the
 * bytes reaches it through fork; MADV_DONTDUMP keeps them out of a core.
 * The bytes are read straight into the mapping: no stdio buffer, no
 * heap copy.
 */
int
keys_blob_load(char *const *paths, size_t n, struct keys_blob **blob_r,
    const char **error_r)
{
	struct keys_blob *blob;
	void *p;

	if (n == 0 || n > KEYS_MAX) {
		*error_r = "keys: too many key files";
		return -1;
	}
	blob = xcalloc(1, sizeof(*blob));
	blob->n = n;
	blob->len = xcalloc(n, sizeof(*blob->len));
	/* +1 byte a file for the too-large test of the last one */
	blob->maplen = n * KEYS_FILE_MAX + 1;
	p = mmap(NULL, blob->maplen, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		free(blob->len);
		free(blob);
		*error_r = "keys: mmap failed";
		return -1;
	}
	blob->map = p;
	if (madvise(p, blob->maplen, MADV_DONTFORK) < 0) {
		keys_blob_free(&blob);
		*error_r = "keys: madvise(MADV_DONTFORK) failed";
		return -1;
	}
	(void)madvise(p, blob->maplen, MADV_DONTDUMP);
	for (size_t i = 0; i < n; i++)
		if (keys_read_file(paths[i], blob->map + i * KEYS_FILE_MAX,
		    &blob->len[i], error_r) < 0) {
			keys_blob_free(&blob);
			return -1;
		}
	*blob_r = blob;
	return 0;
}

void
keys_pubs_free(struct keys_pubs *pubs)
{
	for (size_t i = 0; i < pubs->n; i++)
		str_deinit(&pubs->der[i]);
	free(pubs->der);
	pubs->der = NULL;
	pubs->n = 0;
}

static int
keys_wait(int fd, short events, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&pfd, 1, ms);
	} while (r < 0 && errno == EINTR);
	return r;
}

int
keys_blob_send(const struct keys_blob *blob, int ctl,
    struct keys_pubs *pubs_r, const char **error_r)
{
	static char ebuf[512];
	struct keys_pubs pubs = { 0, NULL };
	struct timespec ts;
	time_t deadline;

	for (size_t i = 0; i < blob->n; i++) {
		struct keys_ctl_key h = { KEYS_CTL_KEY, (uint32_t)i,
		    (uint32_t)blob->n, (uint32_t)blob->len[i] };
		struct iovec iov[2] = {
			{ &h, sizeof(h) },
			{ blob->map + i * KEYS_FILE_MAX, blob->len[i] },
		};
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
		ssize_t r;

		while ((r = sendmsg(ctl, &mh, MSG_NOSIGNAL)) < 0 &&
		    (errno == EINTR || errno == EAGAIN))
			if (errno == EAGAIN && keys_wait(ctl, POLLOUT, 1000) < 0)
				break;
		if (r < 0) {
			*error_r = "keys: the key process is gone";
			return -1;
		}
	}
	pubs.n = blob->n;
	pubs.der = xcalloc(blob->n, sizeof(*pubs.der));
	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = ts.tv_sec + 30;
	for (;;) {
		struct msg m;
		uint32_t key = 0, ok = 0;
		const char *s = NULL;
		unsigned char der[4096];
		size_t len;
		int rr;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (ts.tv_sec > deadline) {
			*error_r = "keys: no answer from the key process";
			goto fail;
		}
		(void)keys_wait(ctl, POLLIN, 1000);
		if ((rr = channel_recv(ctl, &m)) == 0)
			continue;
		if (rr < 0) {
			*error_r = "keys: the key process died at start";
			goto fail;
		}
		if (m.type == KEYS_CTL_PUB && msg_get_u32(&m, &key) == 0 &&
		    msg_get_str(&m, &s) == 0 && msg_end(&m) == 0 &&
		    key < pubs.n && s != NULL &&
		    hex_decode(s, strlen(s), 0, der, sizeof(der), &len) == 0) {
			str_clear(&pubs.der[key]);
			str_append_n(&pubs.der[key], der, len);
			msg_deinit(&m);
			continue;
		}
		if (m.type == KEYS_CTL_READY && msg_get_u32(&m, &ok) == 0 &&
		    msg_get_str(&m, &s) == 0 && msg_end(&m) == 0) {
			if (!ok) {
				snprintf(ebuf, sizeof(ebuf), "%s",
				    s != NULL ? s : "key process failed");
				*error_r = ebuf;
				msg_deinit(&m);
				goto fail;
			}
			msg_deinit(&m);
			break;
		}
		msg_deinit(&m);
		*error_r = "keys: the key process sent nonsense";
		goto fail;
	}
	for (size_t i = 0; i < pubs.n; i++)
		if (pubs.der[i].len == 0) {
			*error_r = "keys: a public key is missing";
			goto fail;
		}
	*pubs_r = pubs;
	return 0;
fail:
	keys_pubs_free(&pubs);
	return -1;
}

/* ---- the key process ---------------------------------------------- */

struct keyproc {
	EVP_PKEY	**keys;
	size_t		  n;
	struct pollfd	  pfd[1 + KEYS_CHANNELS_MAX];	/* [0]: ctl */
	size_t		  nch;
	uint64_t	  served;
	uint64_t	  refused;
};

/* An encrypted key file: no passphrase (there is nobody to ask). */
static int
keyproc_no_pass(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static void
keyproc_ctl_send(int ctl, struct msg *m)
{
	if (channel_send_blocking(ctl, m) < 0)
		fatalx("key process: the master is gone");
}

static void
keyproc_ready(int ctl, int ok, const char *error)
{
	struct msg m;

	msg_init(&m, KEYS_CTL_READY, 0);
	msg_add_u32(&m, ok != 0);
	msg_add_str(&m, error);
	keyproc_ctl_send(ctl, &m);
}

/* The keys from the master; they are parsed here, never there. */
static void
keyproc_load(struct keyproc *kp, int ctl)
{
	static unsigned char buf[sizeof(struct keys_ctl_key) + KEYS_FILE_MAX];
	char ebuf[300];
	size_t got = 0;

	for (;;) {
		struct keys_ctl_key h;
		ssize_t r;

		(void)keys_wait(ctl, POLLIN, -1);
		r = recv(ctl, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			fatalx("key process: the master is gone");
		if ((size_t)r < sizeof(h) || (size_t)r > sizeof(buf))
			fatalx("key process: bad key datagram");
		memcpy(&h, buf, sizeof(h));
		if (h.type != KEYS_CTL_KEY || h.count == 0 ||
		    h.count > KEYS_MAX || h.key >= h.count ||
		    (kp->keys != NULL && h.count != kp->n) ||
		    h.len != (size_t)r - sizeof(h))
			fatalx("key process: bad key datagram");
		if (kp->keys == NULL) {
			kp->n = h.count;
			kp->keys = xcalloc(kp->n, sizeof(*kp->keys));
		}
		if (kp->keys[h.key] != NULL)
			fatalx("key process: key %u sent twice", h.key);
		BIO *bio = BIO_new_mem_buf(buf + sizeof(h), (int)h.len);

		if (bio != NULL)
			kp->keys[h.key] = PEM_read_bio_PrivateKey(bio, NULL,
			    keyproc_no_pass, NULL);
		BIO_free(bio);
		OPENSSL_cleanse(buf, (size_t)r);
		if (kp->keys[h.key] == NULL) {
			unsigned long e = ERR_get_error();
			char es[200];

			ERR_error_string_n(e, es, sizeof(es));
			ERR_clear_error();
			snprintf(ebuf, sizeof(ebuf), "key %u: not a PEM private "
			    "key without passphrase (%s)", h.key,
			    e != 0 ? es : "?");
			keyproc_ready(ctl, 0, ebuf);
			exit(1);
		}
		if (!EVP_PKEY_is_a(kp->keys[h.key], "RSA") &&
		    !EVP_PKEY_is_a(kp->keys[h.key], "EC")) {
			snprintf(ebuf, sizeof(ebuf), "key %u: only RSA and "
			    "EC (ECDSA) keys are supported", h.key);
			keyproc_ready(ctl, 0, ebuf);
			exit(1);
		}
		if (++got == kp->n)
			break;
	}
	for (size_t i = 0; i < kp->n; i++) {
		unsigned char *der = NULL;
		int len = i2d_PUBKEY(kp->keys[i], &der);
		struct str hex = STR_INIT;
		struct msg m;

		if (len <= 0)
			fatalx("key process: i2d_PUBKEY failed");
		hex_encode(&hex, der, (size_t)len);
		OPENSSL_free(der);
		msg_init(&m, KEYS_CTL_PUB, 0);
		msg_add_u32(&m, (uint32_t)i);
		msg_add_str(&m, str_c(&hex));
		str_deinit(&hex);
		keyproc_ctl_send(ctl, &m);
	}
	keyproc_ready(ctl, 1, NULL);
}

/* Sign data with key for alg into sig_r. NULL, or why not. */
static const char *
keyproc_sign(EVP_PKEY *key, uint32_t alg, const unsigned char *data,
    size_t len, unsigned char *sig, size_t *siglen_r)
{
	EVP_PKEY_CTX *ctx;
	const char *why = NULL;
	size_t size = (size_t)EVP_PKEY_get_size(key);
	int rsa = EVP_PKEY_is_a(key, "RSA");

	switch (alg) {
	case KEYS_ALG_RSA_PKCS1:
		if (!rsa)
			return "not an RSA key";
		if (len == 0 || len + 11 > size)
			return "bad data length";
		break;
	case KEYS_ALG_RSA_RAW:
		if (!rsa)
			return "not an RSA key";
		if (len != size)
			return "bad data length";
		break;
	case KEYS_ALG_ECDSA:
		if (!EVP_PKEY_is_a(key, "EC"))
			return "not an EC key";
		if (len < 20 || len > 64)
			return "bad digest length";
		break;
	default:
		return "unknown algorithm";
	}
	if (size > KEYS_DATA_MAX + 16)
		return "key too large";
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL)
		return "out of memory";
	*siglen_r = KEYS_DATA_MAX + 16;
	if (EVP_PKEY_sign_init(ctx) != 1)
		why = "sign init failed";
	else if (rsa && EVP_PKEY_CTX_set_rsa_padding(ctx,
	    alg == KEYS_ALG_RSA_PKCS1 ? RSA_PKCS1_PADDING : RSA_NO_PADDING) != 1)
		why = "padding refused";
	else if (EVP_PKEY_sign(ctx, sig, siglen_r, data, len) != 1)
		why = "sign failed";
	ERR_clear_error();
	EVP_PKEY_CTX_free(ctx);
	return why;
}

/*
 * Send without waiting: 0, or -1 when the peer does not read (or is
 * gone); the caller closes the channel.
 */
static int
keyproc_reply(int fd, struct msg *m)
{
	ssize_t r = -1;

	if (msg_seal(m) == 0)
		do {
			r = send(fd, m->buf.s, m->buf.len,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		} while (r < 0 && errno == EINTR);
	msg_deinit(m);
	return r < 0 ? -1 : 0;
}

/* One line a second at most: a hostile session could ask in a loop. */
static void
keyproc_log_refusal(uint32_t type, uint32_t key, uint32_t alg,
    const char *why)
{
	static time_t last;
	static unsigned long more;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (last != 0 && ts.tv_sec == last) {
		more++;
		return;
	}
	last = ts.tv_sec;
	log_warnx("key process: request refused type=%u key=%u alg=%u "
	    "reason=\"%s\" refused_since_last_line=%lu", type, key, alg, why,
	    more);
	more = 0;
}

int
keyproc_answer(EVP_PKEY *const *keys, size_t n, struct msg *m,
    struct msg *reply_r)
{
	static unsigned char data[KEYS_DATA_MAX], sig[KEYS_DATA_MAX + 16];
	uint32_t key = 0, alg = 0;
	const char *hex = NULL, *why = NULL;
	size_t len = 0, siglen = 0;

	if (m->type != KEYS_REQ_SIGN)
		why = "unknown request";
	else if (msg_get_u32(m, &key) < 0 || msg_get_u32(m, &alg) < 0 ||
	    msg_get_str(m, &hex) < 0 || msg_end(m) < 0 || hex == NULL)
		why = "malformed request";
	else if (key >= n)
		why = "no such key";
	else if (hex_decode(hex, strlen(hex), 0, data, sizeof(data), &len) < 0)
		why = "bad data";
	else
		why = keyproc_sign(keys[key], alg, data, len, sig, &siglen);
	msg_init(reply_r, KEYS_REP_SIGN, m->id);
	OPENSSL_cleanse(data, sizeof(data));
	if (why == NULL) {
		struct str out = STR_INIT;

		hex_encode(&out, sig, siglen);
		msg_add_u32(reply_r, 1);
		msg_add_str(reply_r, str_c(&out));
		str_deinit(&out);
		return 1;
	}
	msg_add_u32(reply_r, 0);
	msg_add_str(reply_r, why);
	keyproc_log_refusal(m->type, key, alg, why);
	return 0;
}

static int
keyproc_request(struct keyproc *kp, int fd, struct msg *m)
{
	struct msg r;

	if (keyproc_answer(kp->keys, kp->n, m, &r))
		kp->served++;
	else
		kp->refused++;
	return keyproc_reply(fd, &r);
}

static void
keyproc_close(struct keyproc *kp, size_t i, const char *why)
{
	log_debug("key process: channel closed (%s) channels=%zu", why,
	    kp->nch - 1);
	close(kp->pfd[i].fd);
	kp->pfd[i] = kp->pfd[kp->nch];
	kp->nch--;
}

static void
keyproc_on_ctl(struct keyproc *kp)
{
	struct msg m;
	int rr;

	while ((rr = channel_recv(kp->pfd[0].fd, &m)) == 1) {
		int fd = msg_take_fd(&m);

		if (m.type == KEYS_CTL_CHANNEL && fd != -1) {
			if (kp->nch < KEYS_CHANNELS_MAX) {
				kp->nch++;
				kp->pfd[kp->nch].fd = fd;
				kp->pfd[kp->nch].events = POLLIN;
				kp->pfd[kp->nch].revents = 0;
				fd = -1;
			} else
				log_warnx("key process: more than %d channels: "
				    "one refused", KEYS_CHANNELS_MAX);
		} else
			log_warnx("key process: control message %u ignored",
			    m.type);
		if (fd != -1)
			close(fd);
		msg_deinit(&m);
	}
	if (rr < 0) {
		/* the master retired this generation (or is gone) */
		close(kp->pfd[0].fd);
		kp->pfd[0].fd = -1;
		log_debug("key process: retired channels=%zu", kp->nch);
	}
}

void
keyproc_main(int ctl)
{
	static struct keyproc kp;

	kp.pfd[0].fd = ctl;
	kp.pfd[0].events = POLLIN;
	keyproc_load(&kp, ctl);
	log_info("key process %ld started keys=%zu", (long)getpid(), kp.n);
	for (;;) {
		if (kp.pfd[0].fd == -1 && kp.nch == 0)
			break;
		if (poll(kp.pfd, kp.nch + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fatal("key process: poll");
		}
		if (kp.pfd[0].fd != -1 && kp.pfd[0].revents != 0)
			keyproc_on_ctl(&kp);
		/* backwards: a closed channel takes the last one's place */
		for (size_t i = kp.nch; i >= 1; i--) {
			struct msg m;
			int rr;

			if (kp.pfd[i].revents == 0)
				continue;
			kp.pfd[i].revents = 0;
			/* one request a channel a round: a channel that asks
			 * in a loop gets its turn like every other, no more */
			if ((rr = channel_recv(kp.pfd[i].fd, &m)) == 1) {
				if (keyproc_request(&kp, kp.pfd[i].fd, &m) < 0)
					rr = -2;
				msg_deinit(&m);
			}
			if (rr == -1)
				keyproc_close(&kp, i, "peer gone");
			else if (rr == -2)
				keyproc_close(&kp, i, "peer does not read");
		}
	}
	log_info("key process %ld finished signed=%llu refused=%llu",
	    (long)getpid(), (unsigned long long)kp.served,
	    (unsigned long long)kp.refused);
	for (size_t i = 0; i < kp.n; i++)
		EVP_PKEY_free(kp.keys[i]);
	free(kp.keys);
	exit(0);
}
