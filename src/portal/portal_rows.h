/*
 * portal_rows: the rows of the settings page, admin pages and API as they
 * cross the seam (be_proto.h): fixed typed fields, one pack and one
 * unpack function per kind, shared by the back side (be_portal.c, which
 * packs) and the HTTP side (portal.c, which unpacks). Every string is cut
 * to its bound when packed (UTF-8-safely) and refused over it when
 * unpacked, so a row's size is bounded by construction:
 *
 *   SUB   i64 time, str when, str account, str ip, str country, str tls,
 *         u32 recipients, u32 overseas, str queue id, str Message-ID
 *   EVENT i64 time, str when, str account, str type, str ip, str country,
 *         str detail
 *   TOP   str account, i64 messages, i64 recipients
 *   REFUSED str type, str country, i64 count
 *   ACCOUNT str address, u32 suspended
 *   HELD  str queue id, str when, str sender, u32 recipients, str the
 *         first recipients (", "), i64 size, str header section (cut),
 *         str held by, str reason                          (issue 17)
 *   RISK  str account, i64 score in tenths, u32 level the score calls
 *         for, u32 response in force (store.h STORE_RISK_*)  (issue 17)
 *
 * A string field costs 5 bytes plus its length (msg.h). The worst cases
 * (PORTAL_ROW_*_MAX) are the sums of the bounds below; be_portal.c
 * asserts that its largest reply fits MSG_MAX_LEN.
 */
#ifndef SEKISHO_PORTAL_ROWS_H
#define SEKISHO_PORTAL_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/msg.h"

#define PORTAL_WHEN_MAX		40	/* "2026-12-06 10:00 JST" */
#define PORTAL_ACCOUNT_MAX	270	/* STORE_SESSION_ACCOUNT_MAX */
#define PORTAL_IP_MAX		64
#define PORTAL_COUNTRY_MAX	8
#define PORTAL_TLS_MAX		128
#define PORTAL_QUEUE_ID_MAX	64
#define PORTAL_MSGID_MAX	255	/* stored cut to this (store.h) */
#define PORTAL_TYPE_MAX		40
#define PORTAL_DETAIL_MAX	255	/* stored cut to 200 (store.h) */
#define PORTAL_REASON_MAX	255	/* a suspension reason: 200 */

#define PORTAL_PAGE_MAX		50	/* rows per list in one reply */
#define PORTAL_STATUS_PAGE	20	/* the settings page's lists */
#define PORTAL_AUDIT_PAGE	50
#define PORTAL_API_PAGE		50
#define PORTAL_ALIASES_MAX	50

#define PORTAL_STR_COST(n)	(5 + (n))
#define PORTAL_ROW_SUB_MAX	(8 + 4 + 4 + PORTAL_STR_COST(PORTAL_WHEN_MAX) + \
	PORTAL_STR_COST(PORTAL_ACCOUNT_MAX) + PORTAL_STR_COST(PORTAL_IP_MAX) + \
	PORTAL_STR_COST(PORTAL_COUNTRY_MAX) + PORTAL_STR_COST(PORTAL_TLS_MAX) + \
	PORTAL_STR_COST(PORTAL_QUEUE_ID_MAX) + \
	PORTAL_STR_COST(PORTAL_MSGID_MAX))
#define PORTAL_ROW_EVENT_MAX	(8 + PORTAL_STR_COST(PORTAL_WHEN_MAX) + \
	PORTAL_STR_COST(PORTAL_ACCOUNT_MAX) + PORTAL_STR_COST(PORTAL_TYPE_MAX) + \
	PORTAL_STR_COST(PORTAL_IP_MAX) + PORTAL_STR_COST(PORTAL_COUNTRY_MAX) + \
	PORTAL_STR_COST(PORTAL_DETAIL_MAX))
#define PORTAL_ROW_TOP_MAX	(PORTAL_STR_COST(PORTAL_ACCOUNT_MAX) + 16)
#define PORTAL_ROW_REFUSED_MAX	(PORTAL_STR_COST(PORTAL_TYPE_MAX) + \
	PORTAL_STR_COST(PORTAL_COUNTRY_MAX) + 8)
#define PORTAL_ROW_ACCOUNT_MAX	(PORTAL_STR_COST(PORTAL_ACCOUNT_MAX) + 4)
#define PORTAL_LIST_MAX(row)	(8 + PORTAL_PAGE_MAX * (row))

struct portal_sub {
	int64_t		 time;
	const char	*when;
	const char	*account;
	const char	*ip;
	const char	*country;
	const char	*tls;		/* may be NULL */
	uint32_t	 rcpts;
	uint32_t	 overseas;
	const char	*queue_id;
	const char	*message_id;	/* may be NULL */
};

struct portal_event {
	int64_t		 time;
	const char	*when;
	const char	*account;	/* may be NULL */
	const char	*type;
	const char	*ip;		/* may be NULL */
	const char	*country;	/* may be NULL */
	const char	*detail;	/* may be NULL */
};

struct portal_top {
	const char	*account;
	int64_t		 msgs;
	int64_t		 rcpts;
};

struct portal_refused {
	const char	*type;
	const char	*country;
	int64_t		 count;
};

struct portal_account_row {
	const char	*address;
	uint32_t	 suspended;
};

/* Add s cut to at most max bytes, at a UTF-8 character boundary. */
void portal_rows_add_str(struct msg *m, const char *s, size_t max);
/* Read a string of at most max bytes (NULL allowed); -1 if longer. */
int portal_rows_get_str(struct msg *m, size_t max, const char **s_r);
/* The length of s cut to max bytes at a UTF-8 character boundary. */
size_t portal_rows_cut_len(const char *s, size_t max);

void portal_rows_sub_pack(struct msg *m, const struct portal_sub *r);
int portal_rows_sub_unpack(struct msg *m, struct portal_sub *r);
void portal_rows_event_pack(struct msg *m, const struct portal_event *r);
int portal_rows_event_unpack(struct msg *m, struct portal_event *r);
void portal_rows_top_pack(struct msg *m, const struct portal_top *r);
int portal_rows_top_unpack(struct msg *m, struct portal_top *r);
void portal_rows_refused_pack(struct msg *m, const struct portal_refused *r);
int portal_rows_refused_unpack(struct msg *m, struct portal_refused *r);
void portal_rows_account_pack(struct msg *m,
    const struct portal_account_row *r);
int portal_rows_account_unpack(struct msg *m, struct portal_account_row *r);

/* issue 17: held messages (the admin account page) and the accounts most
 * at risk (the admin risk page) */
#define PORTAL_RCPTS_MAX	255
#define PORTAL_HEADERS_MAX	1024
#define PORTAL_HELD_PAGE	6
#define PORTAL_RISK_PAGE	50
#define PORTAL_ROW_HELD_MAX	(4 + 8 + PORTAL_STR_COST(PORTAL_QUEUE_ID_MAX) + \
	PORTAL_STR_COST(PORTAL_WHEN_MAX) + PORTAL_STR_COST(PORTAL_ACCOUNT_MAX) + \
	PORTAL_STR_COST(PORTAL_RCPTS_MAX) + \
	PORTAL_STR_COST(PORTAL_HEADERS_MAX) + PORTAL_STR_COST(PORTAL_TYPE_MAX) + \
	PORTAL_STR_COST(PORTAL_REASON_MAX))
#define PORTAL_ROW_RISK_MAX	(PORTAL_STR_COST(PORTAL_ACCOUNT_MAX) + 16)

struct portal_held {
	const char	*queue_id;
	const char	*when;
	const char	*sender;
	uint32_t	 nrcpts;
	const char	*rcpts;
	int64_t		 size;
	const char	*headers;
	const char	*by;
	const char	*reason;
};

struct portal_risk {
	const char	*account;
	int64_t		 score10;
	uint32_t	 level;
	uint32_t	 response;
};

void portal_rows_held_pack(struct msg *m, const struct portal_held *r);
int portal_rows_held_unpack(struct msg *m, struct portal_held *r);
void portal_rows_risk_pack(struct msg *m, const struct portal_risk *r);
int portal_rows_risk_unpack(struct msg *m, struct portal_risk *r);

#endif
