/*
 * portal: the settings page ("mail option settings page" of the
 * providers' notices) over HTTPS, one evhttp server per session loop on
 * that loop's socket of a `portal` listener. HTTP parsing is libevent's;
 * TLS is bufferevent_openssl with the daemon's SSL_CTX. Like every
 * session, it never opens the store: each operation is one request of
 * its own type (BE_PORTAL_*, BE_ADMIN_*, BE_API_* in be_proto.h),
 * answered by src/backend/be_portal.c.
 */
#ifndef SEKISHO_PORTAL_H
#define SEKISHO_PORTAL_H

struct listen_conf;
struct server_loop;
struct portal;

/* Serve the bound, listening fd (taken over) on loop's event base. */
struct portal *portal_listen(struct server_loop *loop,
    const struct listen_conf *lc, int fd, const char **error_r);
/* Stop serving and close the socket; sets *p to NULL. */
void portal_free(struct portal **p);

#endif
