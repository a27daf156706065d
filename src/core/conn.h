/*
 * conn: what every protocol session does with its socket before it
 * speaks: read the PROXY header of a trusted load balancer, and start
 * TLS on the socket (implicit, or after STARTTLS/STLS).
 */
#ifndef SEKISHO_CONN_H
#define SEKISHO_CONN_H

#include <openssl/ssl.h>

#include "proxy.h"

struct event_base;
struct bufferevent;
struct conn_proxy;

/*
 * Called once: error NULL and pr the header, or error a short text
 * (timeout, malformed, closed). The reader is already freed when this
 * runs: forget its pointer.
 */
typedef void conn_proxy_cb(void *arg, const struct proxy_result *pr,
    const char *error);

/*
 * Read the header from fd without reading past it: it is peeked at and
 * then consumed to its exact length, so what follows (a TLS ClientHello
 * on an implicit-TLS port) stays in the socket for the session. The
 * event is edge-triggered, so a partial header waits for more bytes.
 */
struct conn_proxy *conn_proxy_read(struct event_base *base, int fd,
    int timeout, conn_proxy_cb *cb, void *arg);
/* Cancel a reader whose callback has not run. */
void conn_proxy_free(struct conn_proxy **p);

/* TCP_NODELAY on a session's socket (why: conn.c). */
void conn_nodelay(int fd);

/* A plain session's bufferevent on fd (not closed on free), with
 * TCP_NODELAY. NULL on failure. */
struct bufferevent *conn_plain_bev(struct event_base *base, int fd);

/*
 * An accepting TLS bufferevent on fd. The socket stays the caller's (no
 * BEV_OPT_CLOSE_ON_FREE) and so does *ssl_r: SSL_free it after
 * bufferevent_free. Clients that close without close_notify are not an
 * error. NULL on failure (nothing to free).
 */
struct bufferevent *conn_tls_bev(struct event_base *base, SSL_CTX *ctx,
    int fd, SSL **ssl_r);

/*
 * Input while a session reads no command (issue 13): a back-side
 * request or a failed login's delay is pending, or a POP3 RETR is being
 * sent. Pipelined commands (RFC 2920) are kept and answered in order
 * afterwards, but libevent would go on filling the input buffer without
 * end, so while waiting reading stops at CONN_WAIT_INPUT_MAX plus the
 * protocol's line limit (a read high-watermark; TCP then holds the
 * client back), and a client that reaches it is to be cut: no real
 * client has that much in flight unanswered. Call it from the read
 * callback with whether the session waits; -1: cut the client (answer
 * if the protocol allows, read no more, free the session when what it
 * waits for is done).
 */
#define CONN_WAIT_INPUT_MAX	(64 * 1024)
int conn_input_wait(struct bufferevent *bev, int waiting, size_t line_max);

/*
 * Close a session's socket without losing its last reply. Closing a
 * socket that still has unread input makes the kernel send RST, and a
 * RST can destroy the reply the client has not read yet ("421 too many
 * errors" after pipelined junk). So: shut down writing, read and discard
 * until the client closes or a few seconds pass, then close. Takes fd.
 */
void conn_linger_close(struct event_base *base, int fd);

#endif
