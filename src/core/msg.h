/*
 * msg: typed messages across the seam between session code and the back
 * side (STYLE.md; OpenSMTPD's m_add_* / m_get_* / m_end).
 *
 * Wire form: a fixed 16-byte header {u32 type, u32 total length, u64
 * request id} in host order (both ends are on one host), then fields.
 * A string is {u32 length or 0xffffffff for NULL, bytes, NUL}, so the
 * reader returns pointers into the message without copying. A message
 * may carry one file descriptor (SCM_RIGHTS).
 *
 * Readers are strict: every msg_get_* fails on a short message and
 * msg_end fails on leftover bytes, so a malformed message is refused
 * whole, never half-used.
 */
#ifndef SEKISHO_MSG_H
#define SEKISHO_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define MSG_HDR_LEN	16
#define MSG_MAX_LEN	(64 * 1024)	/* one SOCK_SEQPACKET datagram */

struct msg {
	struct str	 buf;	/* header + fields */
	size_t		 rpos;	/* read position */
	int		 fd;	/* attached descriptor or -1 */
	uint32_t	 type;
	uint64_t	 id;
};

/* Start a message to send. */
void msg_init(struct msg *m, uint32_t type, uint64_t id);
/* Closes an attached fd that nobody took. */
void msg_deinit(struct msg *m);

void msg_add_u32(struct msg *m, uint32_t v);
void msg_add_u64(struct msg *m, uint64_t v);
void msg_add_i64(struct msg *m, int64_t v);
void msg_add_str(struct msg *m, const char *s);	/* NULL allowed */
/* Attach fd (ownership passes to the message). */
void msg_add_fd(struct msg *m, int fd);
/* Write type, length and id into the header; -1 if over MSG_MAX_LEN. */
int msg_seal(struct msg *m);

/*
 * Take received bytes: checks the header (length matches, at least
 * MSG_HDR_LEN, at most MSG_MAX_LEN) and sets type and id. -1 if bad.
 * data is copied; fd (or -1) is taken.
 */
int msg_from_wire(struct msg *m, const void *data, size_t len, int fd);

int msg_get_u32(struct msg *m, uint32_t *v_r);
int msg_get_u64(struct msg *m, uint64_t *v_r);
int msg_get_i64(struct msg *m, int64_t *v_r);
/* *s_r points into m (valid until msg_deinit); NULL if NULL was sent. */
int msg_get_str(struct msg *m, const char **s_r);
/* Take the attached fd (-1 if none). */
int msg_take_fd(struct msg *m);
/* 0 if every byte was read, else -1. */
int msg_end(const struct msg *m);

#endif
