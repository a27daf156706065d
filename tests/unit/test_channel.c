/*
 * test_channel: a message over MSG_MAX_LEN is an error the caller
 * handles, never an exit (issue 13): channel_send and
 * channel_send_blocking return -1 and the channel goes on; a request
 * be_client cannot send fails through its callback (NULL, as for
 * BE_FAIL), from the loop and not inside be_client_request; a datagram
 * over MSG_MAX_LEN that arrives is dropped and the next one is read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/be_client.h"
#include "core/channel.h"
#include "core/msg.h"
#include "unit.h"

static char *
big_string(size_t n)
{
	char *s = malloc(n + 1);

	memset(s, 'x', n);
	s[n] = '\0';
	return s;
}

static void
test_send_oversize(void)
{
	struct event_base *base = event_base_new();
	int fds[2];
	struct msg m, r;
	char *big = big_string(100 * 1024);

	UNIT_CHECK_INT(channel_pair(fds), 0);
	struct channel *ch = channel_new(base, fds[0], NULL, NULL);

	/* too large: -1, nothing sent, the message deinited */
	msg_init(&m, 14, 1);
	msg_add_str(&m, big);
	UNIT_CHECK_INT(channel_send(ch, &m), -1);
	UNIT_CHECK(m.buf.s == NULL);
	UNIT_CHECK_INT(channel_recv(fds[1], &r), 0);	/* nothing came */

	/* the channel goes on */
	msg_init(&m, 2, 7);
	msg_add_str(&m, "bob@example.jp");
	UNIT_CHECK_INT(channel_send(ch, &m), 0);
	UNIT_CHECK_INT(channel_recv(fds[1], &r), 1);
	UNIT_CHECK_INT(r.type, 2);
	UNIT_CHECK_INT(r.id, 7);
	msg_deinit(&r);

	/* the blocking helper too */
	msg_init(&m, 14, 2);
	msg_add_str(&m, big);
	UNIT_CHECK_INT(channel_send_blocking(fds[1], &m), -1);
	msg_init(&m, 3, 8);
	UNIT_CHECK_INT(channel_send_blocking(fds[1], &m), 0);
	UNIT_CHECK_INT(channel_recv(fds[0], &r), 1);
	UNIT_CHECK_INT(r.id, 8);
	msg_deinit(&r);

	channel_free(&ch);
	close(fds[1]);
	event_base_free(base);
	free(big);
}

/* A datagram longer than MSG_MAX_LEN (a hostile peer) is dropped; the
 * one after it is read. */
static void
test_recv_truncated(void)
{
	int fds[2], big = 1024 * 1024;
	size_t n = 200 * 1024;
	unsigned char *buf = calloc(1, n);
	struct msg m, r;
	uint32_t lie = 64;

	UNIT_CHECK_INT(channel_pair(fds), 0);
	(void)setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	memcpy(buf + 4, &lie, 4);	/* a header lying about its length */
	UNIT_CHECK(send(fds[0], buf, n, 0) == (ssize_t)n);
	msg_init(&m, 5, 9);
	msg_seal(&m);
	UNIT_CHECK_INT(channel_try_send(fds[0], &m), 0);
	msg_deinit(&m);
	UNIT_CHECK_INT(channel_recv(fds[1], &r), 0);	/* dropped */
	UNIT_CHECK_INT(channel_recv(fds[1], &r), 1);
	UNIT_CHECK_INT(r.id, 9);
	msg_deinit(&r);
	close(fds[0]);
	close(fds[1]);
	free(buf);
}

static int got_calls, got_null, in_request;

static void
on_reply(struct msg *reply, void *arg)
{
	(void)arg;
	got_calls++;
	got_null += reply == NULL;
	UNIT_CHECK(!in_request);	/* never re-entrant */
}

static void
test_be_client_oversize(void)
{
	struct event_base *base = event_base_new();
	int fds[2];
	struct msg m, r;
	char *big = big_string(MSG_MAX_LEN);

	UNIT_CHECK_INT(channel_pair(fds), 0);
	struct be_client *c = be_client_new(base, fds[0]);

	msg_init(&m, 14, 0);
	msg_add_str(&m, big);
	in_request = 1;
	UNIT_CHECK(be_client_request(c, &m, on_reply, NULL) != NULL);
	in_request = 0;
	UNIT_CHECK_INT(got_calls, 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	UNIT_CHECK_INT(got_calls, 1);
	UNIT_CHECK_INT(got_null, 1);
	UNIT_CHECK_INT(channel_recv(fds[1], &r), 0);	/* nothing sent */

	/* cancelled before the loop: no call, nothing leaks */
	msg_init(&m, 14, 0);
	msg_add_str(&m, big);
	be_req_cancel(be_client_request(c, &m, on_reply, NULL));
	event_base_loop(base, EVLOOP_NONBLOCK);
	UNIT_CHECK_INT(got_calls, 1);

	/* freed with one pending: nothing leaks either */
	msg_init(&m, 14, 0);
	msg_add_str(&m, big);
	(void)be_client_request(c, &m, on_reply, NULL);
	be_client_free(&c);
	UNIT_CHECK_INT(got_calls, 1);
	close(fds[1]);
	event_base_free(base);
	free(big);
}

int
main(void)
{
	test_send_oversize();
	test_recv_truncated();
	test_be_client_oversize();
	UNIT_END();
}
