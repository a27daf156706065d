/*
 * pop3_parse: the POP3 command line (RFC 1939 3, RFC 2449, RFC 5034),
 * without I/O, so it can be unit-tested and fuzzed alone.
 *
 * A line is given without its CRLF. The keyword is case-insensitive;
 * arguments are separated by spaces (RFC 1939 says one; runs of spaces
 * are tolerated, as clients send them). Each command's arguments are
 * checked here: counts, numbers, lengths; what they mean (is message 7
 * there?) is the session's business.
 */
#ifndef SEKISHO_POP3_PARSE_H
#define SEKISHO_POP3_PARSE_H

#include <stddef.h>
#include <stdint.h>

enum pop3_cmd {
	POP3_CMD_USER,
	POP3_CMD_PASS,
	POP3_CMD_APOP,
	POP3_CMD_AUTH,
	POP3_CMD_STLS,
	POP3_CMD_CAPA,
	POP3_CMD_QUIT,
	POP3_CMD_STAT,
	POP3_CMD_LIST,
	POP3_CMD_RETR,
	POP3_CMD_DELE,
	POP3_CMD_NOOP,
	POP3_CMD_RSET,
	POP3_CMD_TOP,
	POP3_CMD_UIDL,
	POP3_CMD_COUNT
};

enum pop3_parse_result {
	POP3_PARSE_OK,
	POP3_PARSE_BAD_CHAR,	/* NUL or another control byte */
	POP3_PARSE_UNKNOWN,	/* no such keyword */
	POP3_PARSE_SYNTAX,	/* wrong arguments for the keyword */
};

#define POP3_ARG_MAX	255	/* octets of one argument (USER, PASS) */

struct pop3_command {
	enum pop3_cmd	 cmd;
	/* The arguments as sent, after the keyword and its spaces: for
	 * PASS the whole rest of the line (passwords may hold spaces,
	 * RFC 1939 7), for AUTH "MECH [initial-response]"; "" when none.
	 * Points into the line given. */
	const char	*arg;
	/* USER's name, APOP's name: the first argument's length in arg. */
	size_t		 arg1_len;
	/* APOP's digest: the second argument, in arg. */
	const char	*arg2;
	/* Numbers of LIST, UIDL (nnum 0 or 1), RETR, DELE (1), TOP (2):
	 * decimal, at most 4294967295; 0 is kept (the session says "no
	 * such message"). */
	uint32_t	 num[2];
	int		 nnum;
};

/* line must be NUL-terminated at len (the NUL is not part of it). */
enum pop3_parse_result pop3_parse_command(const char *line, size_t len,
    struct pop3_command *c);

/* The keyword of cmd in upper case ("RETR"). */
const char *pop3_cmd_name(enum pop3_cmd cmd);

#endif
