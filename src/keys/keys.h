/*
 * keys: the TLS private keys live in one small process, the key process
 * (docs/tls.md "Where the keys are", docs/security.md "Keys"), as in
 * OpenSMTPD's ca process. Session processes hold certificates and a
 * private key object whose private operation is a request to it.
 *
 *   master (root)   reads the key files' bytes into memory that no
 *                   child inherits (MADV_DONTFORK), forks the key
 *                   process and hands it the bytes over its control
 *                   socket; never parses a key
 *   key process     (user, chrooted, no_new_privs) parses the keys,
 *                   answers the master with their public halves, then
 *                   signs for the session processes, one channel each
 *   session process builds nothing: its SSL_CTX (built by the master
 *                   from the certificates and the public halves) has a
 *                   key whose sign is a round trip on its channel
 *
 * Key index: 0 is tls_key, 1 + i the key of the i-th tls_sni line.
 *
 * The channel (SOCK_SEQPACKET, struct msg, src/core/msg.h):
 *   KEYS_REQ_SIGN  session -> keys  u32 key, u32 alg, str data (hex)
 *   KEYS_REP_SIGN  keys -> session  u32 ok, str signature (hex) or
 *                                    the reason (ok 0); same request id
 * The control socket (master <-> key process):
 *   KEYS_CTL_KEY     master -> keys  raw datagram, not a struct msg:
 *                                    struct keys_ctl_key, then the
 *                                    key file's bytes (no heap copy)
 *   KEYS_CTL_PUB     keys -> master  u32 key, str DER public key (hex)
 *   KEYS_CTL_READY   keys -> master  u32 ok, str error
 *   KEYS_CTL_CHANNEL master -> keys  fd: a session process's channel
 */
#ifndef SEKISHO_KEYS_H
#define SEKISHO_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "../core/str.h"

#define KEYS_MAX		1024	/* keys in one generation */
#define KEYS_FILE_MAX		(32 * 1024)	/* bytes of one key file */
#define KEYS_DATA_MAX		1024	/* bytes signed: RSA-8192 */
#define KEYS_CHANNELS_MAX	512	/* session channels served */
#define KEYS_TIMEOUT_MS		5000	/* a session's wait for a reply */

enum keys_msg_type {
	KEYS_REQ_SIGN = 0x4b01,
	KEYS_REP_SIGN,
	KEYS_CTL_KEY = 0x4b10,
	KEYS_CTL_PUB,
	KEYS_CTL_READY,
	KEYS_CTL_CHANNEL,
};

enum keys_alg {
	KEYS_ALG_RSA_PKCS1 = 1,	/* data: a DigestInfo; PKCS#1 v1.5 type 1 */
	KEYS_ALG_RSA_RAW,	/* data: an encoded message (PSS) of the
				 * modulus' size; no padding added */
	KEYS_ALG_ECDSA,		/* data: the digest; DER ECDSA-Sig-Value */
};

struct keys_ctl_key {
	uint32_t	 type;		/* KEYS_CTL_KEY */
	uint32_t	 key;		/* index */
	uint32_t	 count;		/* keys in all */
	uint32_t	 len;		/* bytes after this header */
};

/* ---- the master -------------------------------------------------- */

struct keys_blob;	/* one generation's key file bytes */

/* Read the key files (root-only) into memory no fork inherits. */
int keys_blob_load(char *const *paths, size_t n, struct keys_blob **blob_r,
    const char **error_r);
/* Cleansed and unmapped. */
void keys_blob_free(struct keys_blob **blob);
size_t keys_blob_count(const struct keys_blob *blob);

/* The public halves the key process reported, DER, in key order. */
struct keys_pubs {
	size_t		 n;
	struct str	*der;
};

/*
 * Hand blob to the key process at the other end of ctl (just forked,
 * running keyproc_main) and wait for its public keys. -1 with error_r
 * (a key file it cannot parse, or the process died).
 */
int keys_blob_send(const struct keys_blob *blob, int ctl,
    struct keys_pubs *pubs_r, const char **error_r);
void keys_pubs_free(struct keys_pubs *pubs);

/* ---- the key process --------------------------------------------- */

/*
 * The key process, already confined by its caller: receive the keys on
 * ctl, answer, then serve the channels the master sends. Exits when the
 * master closed ctl and no channel is left.
 */
void keyproc_main(int ctl) __attribute__((noreturn));
/*
 * One request m from a session channel: its reply (KEYS_REP_SIGN, the
 * request's id) in reply_r, 1 signed or 0 refused (the reason in the
 * reply). Never exits on any input (fuzz/fuzz_keys.c).
 */
struct msg;
int keyproc_answer(EVP_PKEY *const *keys, size_t n, struct msg *m,
    struct msg *reply_r);

/* ---- a session process (keys_client.c) --------------------------- */

/* This process's channel to the key process (-1: none). */
void keys_client_attach(int fd);
/*
 * A private key object for the public key der (from KEYS_CTL_PUB) whose
 * private operations are requests for key index. RSA or EC.
 */
EVP_PKEY *keys_client_pkey(const unsigned char *der, size_t len,
    uint32_t key, const char **error_r);

#endif
