/*
 * authpolicy_session: Dovecot's auth policy server on a session loop
 * (`listen = authpolicy 127.0.0.1:PORT`, docs/imap.md). Each request is
 * parsed here (authpolicy_parse.c), its key checked against
 * authpolicy_secret, and the decision asked of the back side
 * (BE_AUTHPOLICY): the same throttling, locks and events as SMTP AUTH and
 * POP3. Only authpolicy_clients may connect.
 */
#ifndef SEKISHO_AUTHPOLICY_SESSION_H
#define SEKISHO_AUTHPOLICY_SESSION_H

#include <sys/socket.h>

#include "../core/conn.h"

struct server_loop;
struct listen_conf;

extern const struct conn_vfuncs authpolicy_conn_vfuncs;

void authpolicy_session_new(struct server_loop *loop,
    const struct listen_conf *lc, int fd, const struct sockaddr *sa,
    socklen_t salen);

#endif
