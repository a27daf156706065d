/*
 * metrics_http: the session of a "metrics" listener (plain HTTP,
 * GET /metrics in the Prometheus text format; see metrics_http.c).
 */
#ifndef SEKISHO_METRICS_HTTP_H
#define SEKISHO_METRICS_HTTP_H

#include <sys/socket.h>

struct server_loop;
struct listen_conf;

/* A row of src/daemon/server.c's server_session_new[] for
 * LISTEN_METRICS. Takes fd. */
void metrics_http_session_new(struct server_loop *loop,
    const struct listen_conf *lc, int fd, const struct sockaddr *sa,
    socklen_t salen);

#endif
