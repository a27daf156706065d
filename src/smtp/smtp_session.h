/*
 * smtp_session: one SMTP server session on a session loop (RFC 5321 with
 * PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS, AUTH,
 * SMTPUTF8). Parses client input only; everything that needs the store
 * or the spool is asked of the back side through be_client.
 */
#ifndef SEKISHO_SMTP_SESSION_H
#define SEKISHO_SMTP_SESSION_H

#include <sys/socket.h>

struct server_loop;
struct listen_conf;
struct conn_vfuncs;

/* What conn.c calls for this protocol (refusals before a session). */
extern const struct conn_vfuncs smtp_conn_vfuncs;

/* Takes over fd (accepted, any state). */
void smtp_session_new(struct server_loop *loop, const struct listen_conf *lc,
    int fd, const struct sockaddr *sa, socklen_t salen);

#endif
