/*
 * be_client: the session side of the seam. One per session loop. A
 * session builds a request with msg_init(&m, BE_..., 0) and msg_add_*,
 * sends it with be_client_request(), and continues in the callback.
 * A session that goes away first cancels its request; the late reply is
 * then dropped (and an fd it carries closed).
 */
#ifndef SEKISHO_BE_CLIENT_H
#define SEKISHO_BE_CLIENT_H

#include "msg.h"

struct event_base;
struct be_client;
struct be_req;

/* reply is NULL when the back side failed the request, or when it could
 * not be sent (over MSG_MAX_LEN: logged with its type and size); the
 * callback then runs from the loop, never inside be_client_request. */
typedef void be_reply_cb(struct msg *reply, void *arg);

struct be_client *be_client_new(struct event_base *base, int fd);
void be_client_free(struct be_client **c);
/* m is consumed. The returned handle is valid until the callback runs
 * or be_req_cancel is called. */
struct be_req *be_client_request(struct be_client *c, struct msg *m,
    be_reply_cb *cb, void *arg);
void be_req_cancel(struct be_req *r);
/* A new session number for requests that act for a session (be_proto.h:
 * the first field), unique within this channel. */
uint64_t be_client_session(struct be_client *c);

#endif
