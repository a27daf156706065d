/*
 * envelope: what the queue knows of a message besides its content, and
 * the spool file format that carries it.
 *
 * A spool file is the envelope in text lines, an empty line, then the
 * message exactly as it will be delivered (our Received header first),
 * with CRLF line ends, not dot-stuffed:
 *
 *   SEKISHO-QUEUE 1
 *   id 0190A3F2C4B7E1D9A3F2
 *   time 1763800000
 *   sender alice@example.jp        ("sender " alone for the null path <>)
 *   auth alice@example.jp          (optional: the authenticated account)
 *   client 192.0.2.7               (client address, after PROXY)
 *   helo client.example
 *   protocol ESMTPSA
 *   smtputf8 0|1
 *   rcpt bob@example.jp\tbob@example.jp   (recipient TAB local mailbox)
 *   rcpt carol@remote.example\t           (remote: empty mailbox)
 *   <empty line>
 *   Received: ...
 *
 * Values are single-line; any CR, LF or TAB in a value is refused when
 * writing (addresses never contain them after smtp_parse).
 */
#ifndef SEKISHO_ENVELOPE_H
#define SEKISHO_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/str.h"

#define QUEUE_ID_LEN	20	/* upper-case hex: 12 of time (ms), 8 random */

struct envelope_rcpt {
	char	*address;	/* as given in RCPT TO */
	char	*mailbox;	/* local account address, or NULL if remote */
};

struct envelope {
	char	 id[QUEUE_ID_LEN + 1];
	int64_t	 time;
	char	*sender;	/* "" for <> */
	char	*auth;		/* NULL if not authenticated */
	char	*client;	/* printable address */
	char	*helo;
	char	*protocol;	/* ESMTP, ESMTPS, ESMTPA, ESMTPSA, SMTP */
	int	 smtputf8;
	struct envelope_rcpt *rcpts;
	size_t	 rcpt_count;
};

void envelope_init(struct envelope *env);
void envelope_deinit(struct envelope *env);
void envelope_add_rcpt(struct envelope *env, const char *address,
    const char *mailbox);

/* Append the text form (through the empty line) to out; -1 if a value
 * holds CR/LF/TAB. */
int envelope_format(const struct envelope *env, struct str *out);
/*
 * Parse the text form at the start of buf. On success returns 0 and sets
 * *consumed_r to the offset of the message (just past the empty line).
 * -1 on any malformed or missing field (error_r).
 * env is initialized here (not freed first); on error it is left empty.
 */
int envelope_parse(const char *buf, size_t len, struct envelope *env,
    size_t *consumed_r, const char **error_r);

/* A new queue ID (thread-safe, unique within this host). */
void queue_id_new(char id[QUEUE_ID_LEN + 1]);
/* 1 if id is exactly QUEUE_ID_LEN upper-case hex digits (safe as a
 * file name), else 0. */
int queue_id_valid(const char *id);

#endif
