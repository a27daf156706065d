/*
 * policyd_session: a connection from Postfix's check_policy_service on a
 * "policy" listener. Reads requests (policyd_parse), asks the back side
 * (BE_POLICY_POSTFIX) and answers "action=...". Listen on loopback or a
 * private network only: the protocol has no authentication.
 */
#ifndef SEKISHO_POLICYD_SESSION_H
#define SEKISHO_POLICYD_SESSION_H

#include <sys/socket.h>

struct server_loop;
struct listen_conf;
struct conn_vfuncs;

/* What conn.c calls for this protocol (refusals before a session). */
extern const struct conn_vfuncs policyd_conn_vfuncs;

void policyd_session_new(struct server_loop *loop, const struct listen_conf *lc,
    int fd, const struct sockaddr *sa, socklen_t salen);

#endif
