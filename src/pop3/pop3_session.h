/*
 * pop3_session: one POP3 server session on a session loop (RFC 1939
 * with RFC 2449 CAPA and RESP-CODES, RFC 2595 STLS, RFC 5034 SASL AUTH,
 * APOP). Listener roles "pop3" (110, STLS) and "pop3s" (995, implicit
 * TLS). Parses client input only; logins, the mailbox listing, message
 * files and deletions are asked of the back side through be_client.
 */
#ifndef SEKISHO_POP3_SESSION_H
#define SEKISHO_POP3_SESSION_H

#include <sys/socket.h>

struct server_loop;
struct listen_conf;
struct conn_vfuncs;

/* What conn.c calls for this protocol (refusals before a session). */
extern const struct conn_vfuncs pop3_conn_vfuncs;

/* Takes over fd (accepted, any state). */
void pop3_session_new(struct server_loop *loop, const struct listen_conf *lc,
    int fd, const struct sockaddr *sa, socklen_t salen);

#endif
