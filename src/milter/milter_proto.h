/*
 * milter_proto: Sendmail's milter protocol, version 6, as the MTA speaks
 * it (issue 16; docs/architecture.md "Mail filters"). Packing the MTA's
 * commands and parsing the filter's replies; no I/O, no process: the
 * back side's milter thread (milter.c) does the talking.
 *
 * A packet is a 32-bit length in network order (the command octet
 * included), one command octet and its data. Strings are NUL-terminated.
 * A filter is as hostile as a client: a reply is parsed with every
 * length, count and character checked, and anything else is an error
 * (the conversation is then over and the default action is taken).
 */
#ifndef SEKISHO_MILTER_PROTO_H
#define SEKISHO_MILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "../core/str.h"

#define MILTER_VERSION		6

/* MTA -> filter (SMFIC_*) */
#define MILTER_C_ABORT		'A'
#define MILTER_C_BODY		'B'
#define MILTER_C_CONNECT	'C'
#define MILTER_C_MACRO		'D'
#define MILTER_C_BODYEOB	'E'
#define MILTER_C_HELO		'H'
#define MILTER_C_HEADER		'L'
#define MILTER_C_MAIL		'M'
#define MILTER_C_EOH		'N'
#define MILTER_C_OPTNEG		'O'
#define MILTER_C_QUIT		'Q'
#define MILTER_C_RCPT		'R'
#define MILTER_C_DATA		'T'

/* filter -> MTA (SMFIR_*) */
#define MILTER_R_ADDRCPT	'+'
#define MILTER_R_DELRCPT	'-'
#define MILTER_R_ADDRCPT_PAR	'2'
#define MILTER_R_SHUTDOWN	'4'
#define MILTER_R_ACCEPT		'a'
#define MILTER_R_REPLBODY	'b'
#define MILTER_R_CONTINUE	'c'
#define MILTER_R_DISCARD	'd'
#define MILTER_R_CHGFROM	'e'
#define MILTER_R_CONN_FAIL	'f'
#define MILTER_R_ADDHEADER	'h'
#define MILTER_R_INSHEADER	'i'
#define MILTER_R_CHGHEADER	'm'
#define MILTER_R_PROGRESS	'p'
#define MILTER_R_QUARANTINE	'q'
#define MILTER_R_REJECT		'r'
#define MILTER_R_SKIP		's'
#define MILTER_R_TEMPFAIL	't'
#define MILTER_R_REPLYCODE	'y'
#define MILTER_R_OPTNEG		'O'

/* actions the filter may take (SMFIF_*): all of these are offered */
#define MILTER_A_ADDHDRS	0x001
#define MILTER_A_CHGBODY	0x002
#define MILTER_A_ADDRCPT	0x004
#define MILTER_A_DELRCPT	0x008
#define MILTER_A_CHGHDRS	0x010
#define MILTER_A_QUARANTINE	0x020
#define MILTER_A_CHGFROM	0x040
#define MILTER_A_ADDRCPT_PAR	0x080
#define MILTER_A_SETSYMLIST	0x100
#define MILTER_A_OFFER		0x1ff

/* protocol steps the filter may skip or not answer (SMFIP_*) */
#define MILTER_P_NOCONNECT	0x00000001
#define MILTER_P_NOHELO		0x00000002
#define MILTER_P_NOMAIL		0x00000004
#define MILTER_P_NORCPT		0x00000008
#define MILTER_P_NOBODY		0x00000010
#define MILTER_P_NOHDRS		0x00000020
#define MILTER_P_NOEOH		0x00000040
#define MILTER_P_NR_HDR		0x00000080
#define MILTER_P_NOUNKNOWN	0x00000100
#define MILTER_P_NODATA		0x00000200
#define MILTER_P_SKIP		0x00000400
#define MILTER_P_RCPT_REJ	0x00000800
#define MILTER_P_NR_CONN	0x00001000
#define MILTER_P_NR_HELO	0x00002000
#define MILTER_P_NR_MAIL	0x00004000
#define MILTER_P_NR_RCPT	0x00008000
#define MILTER_P_NR_DATA	0x00010000
#define MILTER_P_NR_UNKN	0x00020000
#define MILTER_P_NR_EOH		0x00040000
#define MILTER_P_NR_BODY	0x00080000
#define MILTER_P_HDR_LEADSPC	0x00100000
#define MILTER_P_MDS_256K	0x10000000
#define MILTER_P_MDS_1M		0x20000000
#define MILTER_P_OFFER		0x301fffff

/* Bounds on what a filter sends. */
#define MILTER_PACKET_MAX	(1024 * 1024 + 1)	/* length field */
#define MILTER_BODY_CHUNK	65535		/* what we send per 'B' */
#define MILTER_NAME_MAX		256		/* header field name */
#define MILTER_VALUE_MAX	(64 * 1024)	/* header field value */
#define MILTER_ADDR_MAX		512		/* an address, with <> */
#define MILTER_TEXT_MAX		1024		/* reply text, quarantine */

/* One reply from a filter, parsed; strings point into the packet. */
struct milter_reply {
	char		 cmd;		/* MILTER_R_* */
	uint32_t	 index;		/* INSHEADER, CHGHEADER */
	const char	*name;		/* header name; address (ADDRCPT,
					 * DELRCPT, CHGFROM), without <> */
	const char	*value;		/* header value (CHGHEADER: "" =
					 * delete); ESMTP args or NULL */
	const char	*text;		/* REPLYCODE: one line "CODE X.Y.Z
					 * text" (a copy, see below);
					 * QUARANTINE: the reason */
	const uint8_t	*data;		/* REPLBODY */
	size_t		 len;
	uint32_t	 version, actions, protocol;	/* OPTNEG */
	char		 code[4];	/* REPLYCODE: "550" */
	char		 line[MILTER_TEXT_MAX + 1];	/* REPLYCODE */
};

/*
 * The packet length from its 4-octet prefix: 0 with *len_r (1 to
 * MILTER_PACKET_MAX), -1 when out of bounds.
 */
int milter_frame_len(const uint8_t hdr[4], uint32_t *len_r);

/*
 * Parse one reply packet (buf = command octet and data, len = the
 * frame's length). Strings must be NUL-terminated inside the packet,
 * with no octet after the last one that is expected; header names are
 * printable ASCII without ':', values have only folded line breaks (LF
 * or CRLF followed by a space or tab), addresses are printable without
 * spaces or angle brackets inside. REPLYCODE is checked as an SMTP
 * reply (4xx or 5xx, lines with the same code, printable) and reduced
 * to its last line's text under the first line's code, so it can never
 * carry a line break into the SMTP session. 0 ok, -1 with *error_r.
 */
int milter_reply_parse(const uint8_t *buf, size_t len, struct milter_reply *r,
    const char **error_r);

/* Packing: each appends one whole packet to out. */
void milter_pack(struct str *out, char cmd, const void *data, size_t len);
void milter_pack_optneg(struct str *out, uint32_t version, uint32_t actions,
    uint32_t protocol);
/* 'D' for the command stage: names[i] = values[i] pairs; a NULL value is
 * left out. */
void milter_pack_macros(struct str *out, char stage,
    const char *const *names, const char *const *values, size_t n);
/* family '4', '6' or 'U' (unknown: no port, no address) */
void milter_pack_connect(struct str *out, const char *hostname, char family,
    uint16_t port, const char *address);
/* cmd with n strings, each NUL-terminated (HELO, MAIL, RCPT, HEADER) */
void milter_pack_strings(struct str *out, char cmd, const char *const *s,
    size_t n);

/*
 * A milter socket spec: inet:HOST:PORT, inet6:[ADDR]:PORT (also
 * inet6:ADDR:PORT with the port after the last colon), unix:/PATH. 0
 * with *family_r (AF_INET, AF_INET6, AF_UNIX), host_r (the address or
 * path, caller frees) and *port_r; -1 with *error_r.
 */
int milter_spec_parse(const char *spec, int *family_r, char **host_r,
    uint16_t *port_r, const char **error_r);
/*
 * The list in a milters_* value (space- or comma-separated): the count
 * of specs in *specs_r (caller frees with milter_specs_free), or -1 with
 * *error_r (an empty list is 0). At most MILTER_LIST_MAX.
 */
#define MILTER_LIST_MAX		16
int milter_specs_split(const char *list, char ***specs_r,
    const char **error_r);
void milter_specs_free(char **specs, int n);
/* config.c's check of a milters_* value */
int milter_config_check(const char *text, struct str *why);

#endif
