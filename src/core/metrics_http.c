/*
 * metrics_http: the "metrics" listener role. A plain-HTTP responder for
 * Prometheus scrapes: GET (or HEAD) /metrics answers the text exposition
 * format 0.0.4 rendered from the shared region (metrics.c); any other
 * path is 404, any other method 405. One request per connection
 * (Connection: close), a head of at most METRICS_HTTP_MAX bytes, a
 * timeout, and a cap on open connections per process.
 *
 * No TLS and no authentication: the listener belongs on loopback or a
 * management network (docs/operations.md). It never touches the store
 * or the spool, so it is a session like the others.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "../daemon/server.h"
#include "str.h"
#include "xmalloc.h"

#define METRICS_HTTP_MAX	8192	/* request line and headers */
#define METRICS_HTTP_TIMEOUT	10	/* seconds to send the request */
#define METRICS_HTTP_OPEN_MAX	64	/* connections per process */

struct metrics_http {
	struct server_loop	*loop;
	int			 role;
	int			 fd;
	struct bufferevent	*bev;
	char			 addr[64];
	int			 answered;
};

static atomic_int metrics_http_open;

static void
metrics_http_free(struct metrics_http *h)
{
	bufferevent_free(h->bev);
	conn_linger_close(h->loop->base, h->fd);
	metrics_conn_close(h->role);
	atomic_fetch_sub(&metrics_http_open, 1);
	free(h);
}

static void
metrics_http_respond(struct metrics_http *h, int code, const char *reason,
    const char *extra, const struct str *body, int head_only)
{
	struct str out = STR_INIT;

	str_printf(&out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "Connection: close\r\n%s\r\n", code, reason, code == 200 ?
	    "text/plain; version=0.0.4; charset=utf-8" :
	    "text/plain; charset=utf-8", body->len, extra);
	if (!head_only)
		str_append_n(&out, str_c(body), body->len);
	bufferevent_write(h->bev, out.s, out.len);
	str_deinit(&out);
	h->answered = 1;
	bufferevent_disable(h->bev, EV_READ);
	log_debug("metrics client=%s status=%d", h->addr, code);
}

static void
metrics_http_error(struct metrics_http *h, int code, const char *reason,
    const char *extra)
{
	struct str body = STR_INIT;

	str_printf(&body, "%d %s\n", code, reason);
	metrics_http_respond(h, code, reason, extra, &body, 0);
	str_deinit(&body);
}

/* "GET /metrics HTTP/1.1" (RFC 9112 3). */
static void
metrics_http_request(struct metrics_http *h, const char *line)
{
	char method[16], target[256], version[16];
	struct str body = STR_INIT;
	int head;

	if (sscanf(line, "%15s %255s %15s", method, target, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) != 0) {
		metrics_http_error(h, 400, "Bad Request", "");
		return;
	}
	head = strcmp(method, "HEAD") == 0;
	if (!head && strcmp(method, "GET") != 0) {
		metrics_http_error(h, 405, "Method Not Allowed",
		    "Allow: GET, HEAD\r\n");
		return;
	}
	if (strcmp(target, "/metrics") != 0 &&
	    strncmp(target, "/metrics?", 9) != 0) {
		metrics_http_error(h, 404, "Not Found", "");
		return;
	}
	metrics_render(&body);
	metrics_http_respond(h, 200, "OK", "", &body, head);
	str_deinit(&body);
}

static void
metrics_http_on_read(struct bufferevent *bev, void *arg)
{
	struct metrics_http *h = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end;
	size_t len = evbuffer_get_length(in);
	char *line;

	if (h->answered)
		return;
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0)
		end = evbuffer_search(in, "\n\n", 2, NULL);
	if (end.pos < 0) {
		if (len > METRICS_HTTP_MAX)
			metrics_http_error(h, 431, "Request Header Fields Too "
			    "Large", "");
		return;
	}
	line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
	if (line == NULL || strlen(line) > 300) {
		metrics_http_error(h, 400, "Bad Request", "");
		free(line);
		return;
	}
	metrics_http_request(h, line);
	free(line);
}

static void
metrics_http_on_write(struct bufferevent *bev, void *arg)
{
	struct metrics_http *h = arg;

	if (h->answered && evbuffer_get_length(bufferevent_get_output(bev)) ==
	    0)
		metrics_http_free(h);
}

static void
metrics_http_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct metrics_http *h = arg;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT)
		log_debug("metrics client=%s timeout", h->addr);
	metrics_http_free(h);
}

void
metrics_http_session_new(struct server_loop *loop,
    const struct listen_conf *lc, int fd, const struct sockaddr *sa,
    socklen_t salen)
{
	struct metrics_http *h;

	(void)salen;
	if (atomic_fetch_add(&metrics_http_open, 1) >= METRICS_HTTP_OPEN_MAX) {
		atomic_fetch_sub(&metrics_http_open, 1);
		metrics_conn_refused((int)lc->role, METRICS_CONN_MAX);
		close(fd);
		return;
	}
	h = xcalloc(1, sizeof(*h));
	h->loop = loop;
	h->role = (int)lc->role;
	h->fd = fd;
	server_addr_str(sa, h->addr, sizeof(h->addr));
	h->bev = bufferevent_socket_new(loop->base, fd, 0);
	if (h->bev == NULL)
		fatalx("metrics: out of memory for a connection");
	metrics_conn_open(h->role);
	bufferevent_setcb(h->bev, metrics_http_on_read, metrics_http_on_write,
	    metrics_http_on_event, h);
	bufferevent_set_timeouts(h->bev, &(struct timeval){
	    METRICS_HTTP_TIMEOUT, 0 }, &(struct timeval){
	    METRICS_HTTP_TIMEOUT, 0 });
	bufferevent_enable(h->bev, EV_READ | EV_WRITE);
}
