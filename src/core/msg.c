/*
 * msg: pack and unpack typed messages (see msg.h).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"

void
msg_init(struct msg *m, uint32_t type, uint64_t id)
{
	static const char zero[MSG_HDR_LEN];

	str_init(&m->buf);
	str_append_n(&m->buf, zero, sizeof(zero));
	m->rpos = MSG_HDR_LEN;
	m->fd = -1;
	m->type = type;
	m->id = id;
}

void
msg_deinit(struct msg *m)
{
	str_deinit(&m->buf);
	if (m->fd != -1)
		close(m->fd);
	m->fd = -1;
}

void
msg_add_u32(struct msg *m, uint32_t v)
{
	str_append_n(&m->buf, &v, sizeof(v));
}

void
msg_add_u64(struct msg *m, uint64_t v)
{
	str_append_n(&m->buf, &v, sizeof(v));
}

void
msg_add_i64(struct msg *m, int64_t v)
{
	str_append_n(&m->buf, &v, sizeof(v));
}

void
msg_add_str(struct msg *m, const char *s)
{
	if (s == NULL) {
		msg_add_u32(m, UINT32_MAX);
		return;
	}
	size_t len = strlen(s);

	msg_add_u32(m, (uint32_t)len);
	str_append_n(&m->buf, s, len + 1);
}

void
msg_add_fd(struct msg *m, int fd)
{
	if (m->fd != -1)
		close(m->fd);
	m->fd = fd;
}

int
msg_seal(struct msg *m)
{
	uint32_t len = (uint32_t)m->buf.len;

	if (m->buf.len > MSG_MAX_LEN)
		return -1;
	memcpy(m->buf.s, &m->type, 4);
	memcpy(m->buf.s + 4, &len, 4);
	memcpy(m->buf.s + 8, &m->id, 8);
	return 0;
}

int
msg_from_wire(struct msg *m, const void *data, size_t len, int fd)
{
	uint32_t wlen;

	str_init(&m->buf);
	m->fd = fd;
	m->rpos = MSG_HDR_LEN;
	if (len < MSG_HDR_LEN || len > MSG_MAX_LEN)
		return -1;
	str_append_n(&m->buf, data, len);
	memcpy(&m->type, m->buf.s, 4);
	memcpy(&wlen, m->buf.s + 4, 4);
	memcpy(&m->id, m->buf.s + 8, 8);
	return wlen == len ? 0 : -1;
}

static int
msg_get(struct msg *m, void *out, size_t n)
{
	if (m->buf.len - m->rpos < n)
		return -1;
	memcpy(out, m->buf.s + m->rpos, n);
	m->rpos += n;
	return 0;
}

int
msg_get_u32(struct msg *m, uint32_t *v_r)
{
	return msg_get(m, v_r, sizeof(*v_r));
}

int
msg_get_u64(struct msg *m, uint64_t *v_r)
{
	return msg_get(m, v_r, sizeof(*v_r));
}

int
msg_get_i64(struct msg *m, int64_t *v_r)
{
	return msg_get(m, v_r, sizeof(*v_r));
}

int
msg_get_str(struct msg *m, const char **s_r)
{
	uint32_t len;

	if (msg_get_u32(m, &len) < 0)
		return -1;
	if (len == UINT32_MAX) {
		*s_r = NULL;
		return 0;
	}
	/* the bytes, then exactly one NUL, and no NUL inside */
	if (m->buf.len - m->rpos < (size_t)len + 1 ||
	    m->buf.s[m->rpos + len] != '\0' ||
	    memchr(m->buf.s + m->rpos, '\0', len) != NULL)
		return -1;
	*s_r = m->buf.s + m->rpos;
	m->rpos += (size_t)len + 1;
	return 0;
}

int
msg_take_fd(struct msg *m)
{
	int fd = m->fd;

	m->fd = -1;
	return fd;
}

int
msg_end(const struct msg *m)
{
	return m->rpos == m->buf.len ? 0 : -1;
}
