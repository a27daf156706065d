/*
 * conn: the life of a protocol connection, written once for the SMTP,
 * POP3 and Postfix policy sessions (Dovecot login-common's
 * client_vfuncs): the connection limits (total at accept, per address
 * once the address is final) and their release, the session id and the
 * back-side session number, the PROXY header of a trusted load balancer,
 * TLS (implicit, or after STARTTLS/STLS, with what was pipelined after
 * the command discarded), the bound on input while the session waits,
 * the bufferevent's events, the drain at shutdown, and the end: the
 * back side told (BE_SESSION_END), the counts released, the socket
 * closed without losing the last reply (linger close).
 *
 * A protocol session embeds a struct conn as its first member and gives
 * a table of its own functions (struct conn_vfuncs); conn calls them at
 * the points where the protocol speaks. The protocol file keeps only its
 * protocol: greeting, commands, replies, its states.
 */
#ifndef SEKISHO_CONN_H
#define SEKISHO_CONN_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "proxy.h"
#include "../daemon/limits.h"
#include "../daemon/server.h"
#include "str.h"

struct event_base;
struct event;
struct bufferevent;
struct conn_proxy;
struct listen_conf;
struct conn;
struct msg;
struct be_req;

/* Why a new connection is turned away before it has a session. */
enum conn_refusal {
	CONN_REFUSE_MAX,	/* over max_connections */
	CONN_REFUSE_MEMORY,	/* the session process is low on memory */
};

struct conn_vfuncs {
	const char	*name;		/* "smtp": fatal messages */
	/*
	 * The one static line (CRLF ended) written to a new connection on
	 * lc before it is closed for why: nothing is allocated for it (no
	 * bufferevent, no TLS). NULL: closed without a word. NULL
	 * function: the protocol has no way to say it (policy), and a
	 * refusal over max_connections is not logged either.
	 */
	const char	*(*refuse_line)(const struct listen_conf *lc,
			    enum conn_refusal why);
	int		 has_id;	/* session id, back-side number,
					 * PROXY, TLS, linger close */
	/* the connection's cut for input while waiting: a warning (a
	 * client that cannot be told), else an info line */
	int		 cut_warns;

	/* The client may be greeted: its address is final, the transport
	 * up (plain: after PROXY; implicit TLS: after the handshake). */
	void	(*ready)(struct conn *);
	/* TLS starts on the socket (implicit, or after STARTTLS): enter
	 * the protocol's TLS state. */
	void	(*tls_starting)(struct conn *);
	/* The STARTTLS/STLS handshake is done (c->tls set, logged). */
	void	(*tls_ready)(struct conn *);
	/* Input: read what is there. */
	void	(*read)(struct conn *);
	/* 1 while the session reads no command (conn_input_wait). */
	int	(*waiting)(struct conn *);
	/* Input while waiting went over the bound (conn.h): logged, input
	 * dropped, reading off, c->eof set; say so if the protocol can,
	 * or free when nothing is pending. */
	void	(*cut)(struct conn *);
	/* Output flushed (not after the last reply, not before TLS);
	 * NULL: nothing to do. */
	void	(*write)(struct conn *);
	/* The bufferevent's read or write timeout. */
	void	(*timeout)(struct conn *);
	/* The client closed (c->eof set). */
	void	(*eof)(struct conn *);
	/* A socket error (logged if in the TLS handshake); NULL: free. */
	void	(*error)(struct conn *);
	/* A held-back reply's time has come (conn_delay): send text. */
	void	(*delayed)(struct conn *, const char *text);
	/* The daemon stops (server.h) and the session does not wait
	 * (waiting() 0): tell the client if idle. */
	void	(*drain)(struct conn *);
	/* Free the whole session; it calls conn_deinit. */
	void	(*free)(struct conn *);
};

struct conn {
	const struct conn_vfuncs *v;
	char			 id[24];	/* session id for logs */
	char			 logid[32];	/* "session=ID" or the name */
	struct server_loop	*loop;
	const struct config	*conf;
	const struct listen_conf *lc;
	struct server_drain	 drain;		/* told when the daemon stops */
	int			 fd;
	struct conn_proxy	*proxy;		/* reading the PROXY header */
	struct bufferevent	*bev;		/* socket, plain or TLS */
	SSL			*ssl;
	int			 implicit_tls;	/* handshake before greeting */
	int			 handshaking;	/* TLS handshake under way */
	int			 starttls_pending;	/* its reply flushing */
	int			 greeted;	/* ready() called */
	int			 tls;
	struct str		 tls_info;
	int			 timeout;	/* seconds, read and write */
	size_t			 line_max;	/* conn_input_wait */

	struct sockaddr_storage	 peer;		/* socket peer */
	struct sockaddr_storage	 client;	/* after PROXY */
	char			 addr[64];	/* printable client */
	int			 counted_ip;

	uint64_t		 be_session;	/* number on the seam */
	int			 be_used;	/* a request named it */
	int			 eof;		/* client gone or cut */
	int			 skip_line;	/* skipping a long line */
	struct event		*delay_timer;	/* conn_delay */
	char			*delayed;	/* the reply held back */
	int			 quit;		/* last reply written: input
						 * dropped, freed once flushed */
};

/*
 * Take a connection on fd: 0, or -1 over max_connections (refused as
 * v says, fd closed: free what holds c). On 0, c counts in the limit and
 * the metrics, and is told of a drain; timeout and line_max are the
 * protocol's to set.
 */
int conn_init(struct conn *c, const struct conn_vfuncs *v,
    struct server_loop *loop, const struct listen_conf *lc, int fd,
    const struct sockaddr *sa, socklen_t salen);
/*
 * A connection accepted while the process is low on memory: told so if
 * v can (v NULL: a listener that is no struct conn, the metrics one),
 * closed, counted; logged at debug level (the reason was logged once,
 * with "memory low").
 */
void conn_refuse_low_memory(const struct conn_vfuncs *v,
    const struct listen_conf *lc, int fd);
/*
 * Start a session (has_id): read the PROXY header from a trusted
 * balancer when the listener takes one, log the connection, start TLS
 * on an implicit-TLS listener (c->implicit_tls), then v->ready.
 */
void conn_start(struct conn *c);
/* Start a plain connection as it is: no PROXY, no TLS, no ready(). */
void conn_start_plain(struct conn *c);
/* The end of a connection: everything conn_init took (see above). */
void conn_deinit(struct conn *c);

/*
 * Back-side requests that act for this session: its number first
 * (sets be_used: the back side is told when the session ends).
 */
void conn_msg_init(struct conn *c, struct msg *m, uint32_t type);
/*
 * Send m (consumed) with cb(arg) for the answer. Every field is bounded
 * before it is added (issue 13); should a request still outgrow a seam
 * message, it is logged and the back side gets an empty request of the
 * type, fails it, and cb answers a temporary failure.
 */
struct be_req *conn_request(struct conn *c, struct msg *m,
    void (*cb)(struct msg *, void *), void *arg);

/*
 * One line of input, capped (Postfix smtp_get with a limit): 1 and the
 * line without its LF (a CR before it kept: the protocol's to judge);
 * 0 when more input is needed; -1 when a line over limit octets (its LF
 * counted) was consumed: the protocol answers it. An over-long line is
 * skipped to its LF first, so the answer comes in order.
 */
int conn_get_line(struct conn *c, size_t limit, struct str *line);

/*
 * Hold a reply back for delay_ms (a failed login's delay: throttling);
 * then v->delayed(text). Meanwhile c->delayed is set: the session reads
 * no command and counts as waiting.
 */
void conn_delay(struct conn *c, uint32_t delay_ms, const char *text);

/* Count the client's address (conn_init's comment): 0, or -1 over the
 * per-address limit (counted in the metrics; the protocol says so). */
int conn_ip_acquire(struct conn *c);
/* Read and write timeouts of c->timeout seconds. */
void conn_set_timeouts(struct conn *c);
/* The last reply is written: read no more, give the client 10 s to take
 * it. The protocol's QUIT state sets c->quit: freed once it is flushed. */
void conn_close_after_reply(struct conn *c);
/*
 * STARTTLS/STLS answered: what the client pipelined after the command
 * in plain text is discarded, never run under TLS (RFC 3207 4.2, RFC
 * 2595 4; the STARTTLS command-injection attacks), logged as
 * "<logid> <word> discarded=N bytes pipelined after <CMD>"; TLS starts
 * once the reply is flushed.
 */
void conn_starttls(struct conn *c, const char *word, const char *cmd);

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
