/*
 * portal_rows: pack and unpack the rows of the portal's replies (see
 * portal_rows.h). Both sides link this one file, so a row is written in
 * one place and read in one place.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/xmalloc.h"
#include "portal_rows.h"

size_t
portal_rows_cut_len(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);

	if (len <= max)
		return len;
	len = max;
	/* back off continuation bytes (10xxxxxx) to a character start */
	while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
		len--;
	return len;
}

void
portal_rows_add_str(struct msg *m, const char *s, size_t max)
{
	size_t len;
	char *copy;

	if (s == NULL) {
		msg_add_str(m, NULL);
		return;
	}
	if ((len = portal_rows_cut_len(s, max)) == strlen(s)) {
		msg_add_str(m, s);
		return;
	}
	copy = xstrndup(s, len);
	msg_add_str(m, copy);
	free(copy);
}

int
portal_rows_get_str(struct msg *m, size_t max, const char **s_r)
{
	if (msg_get_str(m, s_r) < 0 || (*s_r != NULL && strlen(*s_r) > max))
		return -1;
	return 0;
}

void
portal_rows_sub_pack(struct msg *m, const struct portal_sub *r)
{
	msg_add_i64(m, r->time);
	portal_rows_add_str(m, r->when, PORTAL_WHEN_MAX);
	portal_rows_add_str(m, r->account, PORTAL_ACCOUNT_MAX);
	portal_rows_add_str(m, r->ip, PORTAL_IP_MAX);
	portal_rows_add_str(m, r->country, PORTAL_COUNTRY_MAX);
	portal_rows_add_str(m, r->tls, PORTAL_TLS_MAX);
	msg_add_u32(m, r->rcpts);
	msg_add_u32(m, r->overseas);
	portal_rows_add_str(m, r->queue_id, PORTAL_QUEUE_ID_MAX);
	portal_rows_add_str(m, r->message_id, PORTAL_MSGID_MAX);
}

int
portal_rows_sub_unpack(struct msg *m, struct portal_sub *r)
{
	if (msg_get_i64(m, &r->time) < 0 ||
	    portal_rows_get_str(m, PORTAL_WHEN_MAX, &r->when) < 0 ||
	    portal_rows_get_str(m, PORTAL_ACCOUNT_MAX, &r->account) < 0 ||
	    portal_rows_get_str(m, PORTAL_IP_MAX, &r->ip) < 0 ||
	    portal_rows_get_str(m, PORTAL_COUNTRY_MAX, &r->country) < 0 ||
	    portal_rows_get_str(m, PORTAL_TLS_MAX, &r->tls) < 0 ||
	    msg_get_u32(m, &r->rcpts) < 0 || msg_get_u32(m, &r->overseas) < 0 ||
	    portal_rows_get_str(m, PORTAL_QUEUE_ID_MAX, &r->queue_id) < 0 ||
	    portal_rows_get_str(m, PORTAL_MSGID_MAX, &r->message_id) < 0 ||
	    r->when == NULL || r->account == NULL || r->queue_id == NULL)
		return -1;
	return 0;
}

void
portal_rows_event_pack(struct msg *m, const struct portal_event *r)
{
	msg_add_i64(m, r->time);
	portal_rows_add_str(m, r->when, PORTAL_WHEN_MAX);
	portal_rows_add_str(m, r->account, PORTAL_ACCOUNT_MAX);
	portal_rows_add_str(m, r->type, PORTAL_TYPE_MAX);
	portal_rows_add_str(m, r->ip, PORTAL_IP_MAX);
	portal_rows_add_str(m, r->country, PORTAL_COUNTRY_MAX);
	portal_rows_add_str(m, r->detail, PORTAL_DETAIL_MAX);
}

int
portal_rows_event_unpack(struct msg *m, struct portal_event *r)
{
	if (msg_get_i64(m, &r->time) < 0 ||
	    portal_rows_get_str(m, PORTAL_WHEN_MAX, &r->when) < 0 ||
	    portal_rows_get_str(m, PORTAL_ACCOUNT_MAX, &r->account) < 0 ||
	    portal_rows_get_str(m, PORTAL_TYPE_MAX, &r->type) < 0 ||
	    portal_rows_get_str(m, PORTAL_IP_MAX, &r->ip) < 0 ||
	    portal_rows_get_str(m, PORTAL_COUNTRY_MAX, &r->country) < 0 ||
	    portal_rows_get_str(m, PORTAL_DETAIL_MAX, &r->detail) < 0 ||
	    r->when == NULL || r->type == NULL)
		return -1;
	return 0;
}

void
portal_rows_top_pack(struct msg *m, const struct portal_top *r)
{
	portal_rows_add_str(m, r->account, PORTAL_ACCOUNT_MAX);
	msg_add_i64(m, r->msgs);
	msg_add_i64(m, r->rcpts);
}

int
portal_rows_top_unpack(struct msg *m, struct portal_top *r)
{
	if (portal_rows_get_str(m, PORTAL_ACCOUNT_MAX, &r->account) < 0 ||
	    msg_get_i64(m, &r->msgs) < 0 || msg_get_i64(m, &r->rcpts) < 0 ||
	    r->account == NULL)
		return -1;
	return 0;
}

void
portal_rows_refused_pack(struct msg *m, const struct portal_refused *r)
{
	portal_rows_add_str(m, r->type, PORTAL_TYPE_MAX);
	portal_rows_add_str(m, r->country, PORTAL_COUNTRY_MAX);
	msg_add_i64(m, r->count);
}

int
portal_rows_refused_unpack(struct msg *m, struct portal_refused *r)
{
	if (portal_rows_get_str(m, PORTAL_TYPE_MAX, &r->type) < 0 ||
	    portal_rows_get_str(m, PORTAL_COUNTRY_MAX, &r->country) < 0 ||
	    msg_get_i64(m, &r->count) < 0 || r->type == NULL)
		return -1;
	return 0;
}

void
portal_rows_account_pack(struct msg *m, const struct portal_account_row *r)
{
	portal_rows_add_str(m, r->address, PORTAL_ACCOUNT_MAX);
	msg_add_u32(m, r->suspended);
}

int
portal_rows_account_unpack(struct msg *m, struct portal_account_row *r)
{
	if (portal_rows_get_str(m, PORTAL_ACCOUNT_MAX, &r->address) < 0 ||
	    msg_get_u32(m, &r->suspended) < 0 || r->address == NULL)
		return -1;
	return 0;
}

/* issue 17: held messages and the accounts most at risk */
void
portal_rows_held_pack(struct msg *m, const struct portal_held *r)
{
	portal_rows_add_str(m, r->queue_id, PORTAL_QUEUE_ID_MAX);
	portal_rows_add_str(m, r->when, PORTAL_WHEN_MAX);
	portal_rows_add_str(m, r->sender, PORTAL_ACCOUNT_MAX);
	msg_add_u32(m, r->nrcpts);
	portal_rows_add_str(m, r->rcpts, PORTAL_RCPTS_MAX);
	msg_add_i64(m, r->size);
	portal_rows_add_str(m, r->headers, PORTAL_HEADERS_MAX);
	portal_rows_add_str(m, r->by, PORTAL_TYPE_MAX);
	portal_rows_add_str(m, r->reason, PORTAL_REASON_MAX);
}

int
portal_rows_held_unpack(struct msg *m, struct portal_held *r)
{
	if (portal_rows_get_str(m, PORTAL_QUEUE_ID_MAX, &r->queue_id) < 0 ||
	    portal_rows_get_str(m, PORTAL_WHEN_MAX, &r->when) < 0 ||
	    portal_rows_get_str(m, PORTAL_ACCOUNT_MAX, &r->sender) < 0 ||
	    msg_get_u32(m, &r->nrcpts) < 0 ||
	    portal_rows_get_str(m, PORTAL_RCPTS_MAX, &r->rcpts) < 0 ||
	    msg_get_i64(m, &r->size) < 0 ||
	    portal_rows_get_str(m, PORTAL_HEADERS_MAX, &r->headers) < 0 ||
	    portal_rows_get_str(m, PORTAL_TYPE_MAX, &r->by) < 0 ||
	    portal_rows_get_str(m, PORTAL_REASON_MAX, &r->reason) < 0 ||
	    r->queue_id == NULL)
		return -1;
	return 0;
}

void
portal_rows_risk_pack(struct msg *m, const struct portal_risk *r)
{
	portal_rows_add_str(m, r->account, PORTAL_ACCOUNT_MAX);
	msg_add_i64(m, r->score10);
	msg_add_u32(m, r->level);
	msg_add_u32(m, r->response);
}

int
portal_rows_risk_unpack(struct msg *m, struct portal_risk *r)
{
	if (portal_rows_get_str(m, PORTAL_ACCOUNT_MAX, &r->account) < 0 ||
	    msg_get_i64(m, &r->score10) < 0 ||
	    msg_get_u32(m, &r->level) < 0 || r->level > 3 ||
	    msg_get_u32(m, &r->response) < 0 || r->response > 3 ||
	    r->account == NULL)
		return -1;
	return 0;
}
