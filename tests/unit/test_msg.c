/*
 * test_msg: the seam's message format. A reader must refuse a short
 * message, a message with leftover bytes, a bad header and a string
 * without its NUL, so a malformed request is refused whole.
 */
#include <stdint.h>
#include <string.h>

#include "core/msg.h"
#include "unit.h"

static void
test_roundtrip(void)
{
	struct msg m, r;
	uint32_t u32;
	uint64_t u64;
	int64_t i64;
	const char *s1, *s2, *s3;

	msg_init(&m, 7, 42);
	msg_add_u32(&m, 0xdeadbeef);
	msg_add_u64(&m, UINT64_MAX - 1);
	msg_add_i64(&m, -5);
	msg_add_str(&m, "alice@example.jp");
	msg_add_str(&m, NULL);
	msg_add_str(&m, "");
	UNIT_CHECK_INT(msg_seal(&m), 0);

	UNIT_CHECK_INT(msg_from_wire(&r, m.buf.s, m.buf.len, -1), 0);
	UNIT_CHECK_INT(r.type, 7);
	UNIT_CHECK_INT(r.id, 42);
	UNIT_CHECK_INT(msg_get_u32(&r, &u32), 0);
	UNIT_CHECK(u32 == 0xdeadbeef);
	UNIT_CHECK_INT(msg_get_u64(&r, &u64), 0);
	UNIT_CHECK(u64 == UINT64_MAX - 1);
	UNIT_CHECK_INT(msg_get_i64(&r, &i64), 0);
	UNIT_CHECK_INT(i64, -5);
	UNIT_CHECK_INT(msg_end(&r), -1);		/* strings left */
	UNIT_CHECK_INT(msg_get_str(&r, &s1), 0);
	UNIT_CHECK_STR(s1, "alice@example.jp");
	UNIT_CHECK_INT(msg_get_str(&r, &s2), 0);
	UNIT_CHECK(s2 == NULL);
	UNIT_CHECK_INT(msg_get_str(&r, &s3), 0);
	UNIT_CHECK_STR(s3, "");
	UNIT_CHECK_INT(msg_end(&r), 0);
	UNIT_CHECK_INT(msg_get_u32(&r, &u32), -1);	/* nothing more */
	msg_deinit(&r);
	msg_deinit(&m);
}

static void
test_bad_wire(void)
{
	struct msg m, r;
	const char *s;
	unsigned char buf[64];

	/* shorter than a header */
	UNIT_CHECK_INT(msg_from_wire(&r, "abc", 3, -1), -1);
	msg_deinit(&r);

	/* length field disagrees with the datagram */
	msg_init(&m, 1, 1);
	msg_add_u32(&m, 5);
	msg_seal(&m);
	memcpy(buf, m.buf.s, m.buf.len);
	UNIT_CHECK_INT(msg_from_wire(&r, buf, m.buf.len - 1, -1), -1);
	msg_deinit(&r);
	UNIT_CHECK_INT(msg_from_wire(&r, buf, m.buf.len, -1), 0);
	msg_deinit(&r);
	msg_deinit(&m);

	/* a string whose length runs past the end */
	msg_init(&m, 1, 1);
	msg_add_u32(&m, 100);
	msg_add_u32(&m, 0x41414141);
	msg_seal(&m);
	UNIT_CHECK_INT(msg_from_wire(&r, m.buf.s, m.buf.len, -1), 0);
	UNIT_CHECK_INT(msg_get_str(&r, &s), -1);
	msg_deinit(&r);
	msg_deinit(&m);

	/* a string without its NUL, and one with a NUL inside */
	msg_init(&m, 1, 1);
	msg_add_str(&m, "abcd");
	msg_seal(&m);
	memcpy(buf, m.buf.s, m.buf.len);
	buf[MSG_HDR_LEN + 4 + 4] = 'x';		/* the terminator */
	UNIT_CHECK_INT(msg_from_wire(&r, buf, m.buf.len, -1), 0);
	UNIT_CHECK_INT(msg_get_str(&r, &s), -1);
	msg_deinit(&r);
	memcpy(buf, m.buf.s, m.buf.len);
	buf[MSG_HDR_LEN + 4 + 1] = '\0';	/* "a\0cd" */
	UNIT_CHECK_INT(msg_from_wire(&r, buf, m.buf.len, -1), 0);
	UNIT_CHECK_INT(msg_get_str(&r, &s), -1);
	msg_deinit(&r);
	msg_deinit(&m);

	/* over the size limit cannot be sealed */
	msg_init(&m, 1, 1);
	static char big[MSG_MAX_LEN];
	memset(big, 'a', sizeof(big) - 1);
	msg_add_str(&m, big);
	UNIT_CHECK_INT(msg_seal(&m), -1);
	msg_deinit(&m);
}

int
main(void)
{
	test_roundtrip();
	test_bad_wire();
	UNIT_END();
}
