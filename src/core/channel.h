/*
 * channel: a SOCK_SEQPACKET socket pair carrying struct msg between a
 * session loop and the back side. One datagram is one message, so there
 * is no framing to get wrong; a descriptor travels with SCM_RIGHTS. The
 * same code works between threads now and between processes later.
 */
#ifndef SEKISHO_CHANNEL_H
#define SEKISHO_CHANNEL_H

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
/* Seal and send m, queueing it if the socket is full. m is consumed
 * (left deinited). A message too large to seal is a bug: fatal. */
void channel_send(struct channel *ch, struct msg *m);

/* Blocking helpers for back-side threads (fd may be non-blocking; these
 * wait with poll). send: 0 or -1. recv: 1 a message, 0 nothing now
 * (EAGAIN), -1 peer closed or error. m is consumed by send. */
int channel_send_blocking(int fd, struct msg *m);
int channel_recv(int fd, struct msg *m);

#endif
