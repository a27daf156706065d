/*
 * test_be_session: the back side's records of sessions (issue 13). A
 * record is found only by its own (channel, session); the account is
 * the one set, not a neighbour's; recipients are kept up to the cap; a
 * spool file is taken once; a channel over its cap is refused; a
 * session that ended makes no record again; a channel's drop takes all
 * of its records and nobody else's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/be_session.h"
#include "unit.h"

static void
test_keyed_by_channel_and_session(void)
{
	char *a;

	UNIT_CHECK_INT(be_session_touch(1, 7, 16), 0);
	UNIT_CHECK_INT(be_session_touch(2, 7, 16), 0);
	be_session_set_account(1, 7, "alice@example.jp");
	a = be_session_account(1, 7);
	UNIT_CHECK_STR(a, "alice@example.jp");
	free(a);
	/* the same number on another channel is another session */
	UNIT_CHECK(be_session_account(2, 7) == NULL);
	UNIT_CHECK(be_session_account(1, 8) == NULL);
	/* a record that does not exist is not made by setting it */
	be_session_set_account(1, 99, "bob@example.jp");
	UNIT_CHECK(be_session_account(1, 99) == NULL);
	be_session_drop_channel(1);
	be_session_drop_channel(2);
	UNIT_CHECK_INT(be_session_count(), 0);
}

static void
test_recipients(void)
{
	UNIT_CHECK_INT(be_session_touch(3, 1, 16), 0);
	UNIT_CHECK_INT(be_session_rcpt_add(3, 1, "a@x.jp", "a@x.jp", 2), 0);
	UNIT_CHECK_INT(be_session_rcpt_add(3, 1, "r@y.org", NULL, 2), 0);
	UNIT_CHECK(be_session_rcpt_accepted(3, 1, "a@x.jp", "a@x.jp"));
	UNIT_CHECK(be_session_rcpt_accepted(3, 1, "r@y.org", NULL));
	/* the mailbox is part of what was accepted */
	UNIT_CHECK(!be_session_rcpt_accepted(3, 1, "a@x.jp", "b@x.jp"));
	UNIT_CHECK(!be_session_rcpt_accepted(3, 1, "a@x.jp", NULL));
	UNIT_CHECK(!be_session_rcpt_accepted(3, 2, "a@x.jp", "a@x.jp"));
	/* over the cap the oldest goes */
	UNIT_CHECK_INT(be_session_rcpt_add(3, 1, "c@x.jp", "c@x.jp", 2), 0);
	UNIT_CHECK(!be_session_rcpt_accepted(3, 1, "a@x.jp", "a@x.jp"));
	UNIT_CHECK(be_session_rcpt_accepted(3, 1, "r@y.org", NULL));
	UNIT_CHECK(be_session_rcpt_accepted(3, 1, "c@x.jp", "c@x.jp"));
	/* a new transaction forgets them */
	be_session_set_policy(3, 1, "a@x.jp", "JP", 0);
	UNIT_CHECK(!be_session_rcpt_accepted(3, 1, "c@x.jp", "c@x.jp"));
	UNIT_CHECK_INT(be_session_rcpt_add(3, 9, "a@x.jp", NULL, 2), -1);
	be_session_drop_channel(3);
}

static void
test_spool_and_mailbox(void)
{
	char old[QUEUE_ID_LEN + 1];
	struct be_session_left left;
	uint64_t h = 0;

	UNIT_CHECK_INT(be_session_touch(4, 1, 16), 0);
	UNIT_CHECK_INT(be_session_spool_set(4, 1, "AAAA", old), 0);
	UNIT_CHECK_STR(old, "");
	UNIT_CHECK_INT(be_session_spool_set(4, 1, "BBBB", old), 0);
	UNIT_CHECK_STR(old, "AAAA");
	UNIT_CHECK_INT(be_session_spool_take(4, 1, "AAAA"), 0);
	UNIT_CHECK_INT(be_session_spool_take(4, 2, "BBBB"), 0);
	UNIT_CHECK_INT(be_session_spool_take(4, 1, "BBBB"), 1);
	UNIT_CHECK_INT(be_session_spool_take(4, 1, "BBBB"), 0);

	UNIT_CHECK_INT(be_session_mbox(4, 1, &h), -1);
	UNIT_CHECK_INT(be_session_mbox_set(4, 1, 42), 0);
	UNIT_CHECK_INT(be_session_mbox_set(4, 1, 43), -1);
	UNIT_CHECK_INT(be_session_mbox(4, 1, &h), 0);
	UNIT_CHECK_INT(h, 42);
	UNIT_CHECK_INT(be_session_mbox(4, 2, &h), -1);

	UNIT_CHECK_INT(be_session_spool_set(4, 1, "CCCC", old), 0);
	UNIT_CHECK_INT(be_session_end(4, 1, &left), 0);
	UNIT_CHECK_INT(left.has_mbox, 1);
	UNIT_CHECK_INT(left.mbox, 42);
	UNIT_CHECK_STR(left.spool_id, "CCCC");
	UNIT_CHECK_INT(be_session_end(4, 1, &left), -1);
	/* a late request of the ended session makes no record again */
	UNIT_CHECK_INT(be_session_touch(4, 1, 16), -1);
	UNIT_CHECK_INT(be_session_touch(4, 2, 16), 0);
	be_session_drop_channel(4);
	UNIT_CHECK_INT(be_session_count(), 0);
}

static void
test_cap(void)
{
	for (uint64_t i = 1; i <= 5; i++)
		UNIT_CHECK_INT(be_session_touch(5, i, 5), 0);
	UNIT_CHECK_INT(be_session_touch(5, 6, 5), -1);
	/* an existing one is still found */
	UNIT_CHECK_INT(be_session_touch(5, 3, 5), 0);
	/* another channel has its own cap */
	UNIT_CHECK_INT(be_session_touch(6, 1, 5), 0);
	be_session_drop_channel(5);
	UNIT_CHECK_INT(be_session_count(), 1);
	be_session_drop_channel(6);
	UNIT_CHECK_INT(be_session_count(), 0);
}

/* A dropped channel's mailbox and spool file are given up (here none
 * exists: be_mailbox_abandon and be_spool_abandon find nothing). */
static void
test_drop_gives_up(void)
{
	char old[QUEUE_ID_LEN + 1];

	UNIT_CHECK_INT(be_session_touch(7, 1, 5), 0);
	UNIT_CHECK_INT(be_session_mbox_set(7, 1, 5), 0);
	UNIT_CHECK_INT(be_session_spool_set(7, 1, "DDDD", old), 0);
	be_session_drop_channel(7);
	UNIT_CHECK_INT(be_session_count(), 0);
	/* the channel's ended list went with it: a new channel with that
	 * id (never in practice) starts clean */
	UNIT_CHECK_INT(be_session_touch(7, 1, 5), 0);
	be_session_drop_channel(7);
}

int
main(void)
{
	test_keyed_by_channel_and_session();
	test_recipients();
	test_spool_and_mailbox();
	test_cap();
	test_drop_gives_up();
	UNIT_END();
}
