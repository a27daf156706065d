/*
 * channel: a SOCK_SEQPACKET socket pair carrying struct msg between a
 * session loop and the back side. One datagram is one message, so there
 * is no framing to get wrong; a descriptor travels with SCM_RIGHTS. The
 * same code works between threads now and between processes later.
 */
#ifndef SEKISHO_CHANNEL_H
#define SEKISHO_CHANNEL_H

#include <sys/socket.h>
#include <sys/types.h>

#include "msg.h"

struct event_base;
struct channel;

/* m is NULL when the peer closed or the channel failed. The callback
 * owns m for its duration; the channel deinits it afterwards. */
typedef void channel_cb(struct channel *ch, struct msg *m, void *arg);

/* Both ends, non-blocking, close-on-exec. -1 on error (errno). */
int channel_pair(int fds[2]);

/* Event-driven end on a loop. */
struct channel *channel_new(struct event_base *base, int fd, channel_cb *cb,
    void *arg);
void channel_free(struct channel **ch);
/* Its socket, to poll it (be_client's spin); never read or written. */
int channel_fd(const struct channel *ch);
/*
 * Seal and send m, queueing it if the socket is full. m is consumed
 * (left deinited). 0 sent or queued; -1 when m is over MSG_MAX_LEN (the
 * caller logs it) or the socket failed (logged): nothing was sent and
 * the caller fails what it was doing. A size that clients influence
 * must never end a process (issue 13).
 */
int channel_send(struct channel *ch, struct msg *m);

/*
 * One try at sending an already sealed m (msg_seal): 0 sent, 1 the
 * socket is full now, -1 error (errno). m is not consumed. For a caller
 * with its own output queue (the back side's dispatcher, backend.c).
 */
int channel_try_send(int fd, struct msg *m);
/* One sendmsg(2) on s of data, with fd (-1: none) by SCM_RIGHTS, to the
 * address to (NULL: s is connected); what sendmsg returns. Also the
 * master's test hook (SEKISHO_TEST_HOOKS). */
ssize_t channel_sendmsg(int s, const void *data, size_t len, int fd,
    const struct sockaddr *to, socklen_t tolen, int flags);

/* Blocking helpers for the master's control channel to the back side (fd
 * may be non-blocking; these wait with poll). send: 0 or -1 (also when m
 * is too large, logged). recv: 1 a message, 0 nothing now (EAGAIN, or a
 * malformed or truncated datagram dropped and logged), -1 peer closed or
 * error. m is consumed by send. Never used towards a session process:
 * the back side never waits on one (backend.c). */
int channel_send_blocking(int fd, struct msg *m);
int channel_recv(int fd, struct msg *m);

#endif
