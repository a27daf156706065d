/*
 * pop3_parse: POP3 command lines (see pop3_parse.h). One row per
 * keyword says what arguments it takes; one function checks them.
 */
#include <string.h>
#include <strings.h>

#include "pop3_parse.h"

enum pop3_args {
	ARGS_NONE,		/* STAT, NOOP, ... */
	ARGS_NAME,		/* USER name */
	ARGS_REST,		/* PASS: the rest of the line */
	ARGS_APOP,		/* name digest */
	ARGS_AUTH,		/* [mechanism [initial-response]] */
	ARGS_NUM_OPT,		/* LIST, UIDL: [msg] */
	ARGS_NUM,		/* RETR, DELE: msg */
	ARGS_NUM2,		/* TOP: msg n */
};

static const struct {
	const char	*name;
	enum pop3_args	 args;
} pop3_keywords[POP3_CMD_COUNT] = {
	[POP3_CMD_USER] = { "USER", ARGS_NAME },
	[POP3_CMD_PASS] = { "PASS", ARGS_REST },
	[POP3_CMD_APOP] = { "APOP", ARGS_APOP },
	[POP3_CMD_AUTH] = { "AUTH", ARGS_AUTH },
	[POP3_CMD_STLS] = { "STLS", ARGS_NONE },
	[POP3_CMD_CAPA] = { "CAPA", ARGS_NONE },
	[POP3_CMD_QUIT] = { "QUIT", ARGS_NONE },
	[POP3_CMD_STAT] = { "STAT", ARGS_NONE },
	[POP3_CMD_LIST] = { "LIST", ARGS_NUM_OPT },
	[POP3_CMD_RETR] = { "RETR", ARGS_NUM },
	[POP3_CMD_DELE] = { "DELE", ARGS_NUM },
	[POP3_CMD_NOOP] = { "NOOP", ARGS_NONE },
	[POP3_CMD_RSET] = { "RSET", ARGS_NONE },
	[POP3_CMD_TOP] = { "TOP", ARGS_NUM2 },
	[POP3_CMD_UIDL] = { "UIDL", ARGS_NUM_OPT },
};

/* RFC 4422 3.1: SASL mechanism names are at most 20 characters. */
#define POP3_MECH_MAX	20

const char *
pop3_cmd_name(enum pop3_cmd cmd)
{
	if ((unsigned)cmd >= POP3_CMD_COUNT)
		return "?";
	return pop3_keywords[cmd].name;
}

/* Length of the token at p (up to a space or the end). */
static size_t
pop3_token(const char *p)
{
	return strcspn(p, " ");
}

static const char *
pop3_skip_spaces(const char *p)
{
	while (*p == ' ')
		p++;
	return p;
}

/* A decimal message number of len digits at p. */
static int
pop3_number(const char *p, size_t len, uint32_t *v_r)
{
	uint64_t v = 0;

	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

/* Up to max numbers separated by spaces, nothing after them. */
static int
pop3_numbers(const char *p, int min, int max, struct pop3_command *c)
{
	c->nnum = 0;
	for (;;) {
		p = pop3_skip_spaces(p);
		if (*p == '\0')
			break;
		size_t n = pop3_token(p);

		if (c->nnum == max || pop3_number(p, n, &c->num[c->nnum]) < 0)
			return -1;
		c->nnum++;
		p += n;
	}
	return c->nnum < min ? -1 : 0;
}

static int
pop3_is_hex(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (strchr("0123456789abcdefABCDEF", p[i]) == NULL ||
		    p[i] == '\0')
			return 0;
	return 1;
}

/* Nothing but spaces from p on. */
static int
pop3_at_end(const char *p)
{
	return *pop3_skip_spaces(p) == '\0';
}

static int
pop3_check_args(enum pop3_args args, struct pop3_command *c)
{
	const char *p = c->arg, *q;
	size_t n;

	switch (args) {
	case ARGS_NONE:
		return pop3_at_end(p) ? 0 : -1;
	case ARGS_NAME:
		n = pop3_token(p);
		if (n == 0 || n > POP3_ARG_MAX || !pop3_at_end(p + n))
			return -1;
		c->arg1_len = n;
		return 0;
	case ARGS_REST:
		n = strlen(p);
		return n == 0 || n > POP3_ARG_MAX ? -1 : 0;
	case ARGS_APOP:
		n = pop3_token(p);
		if (n == 0 || n > POP3_ARG_MAX)
			return -1;
		c->arg1_len = n;
		q = pop3_skip_spaces(p + n);
		n = pop3_token(q);
		/* RFC 1939 7: the digest is 16 octets in hex. */
		if (n != 32 || !pop3_is_hex(q, n) || !pop3_at_end(q + n))
			return -1;
		c->arg2 = q;
		return 0;
	case ARGS_AUTH:
		n = pop3_token(p);
		if (n > POP3_MECH_MAX)
			return -1;
		c->arg1_len = n;
		if (n == 0)
			return 0;
		q = pop3_skip_spaces(p + n);
		n = pop3_token(q);
		if (n > 0 && !pop3_at_end(q + n))
			return -1;
		c->arg2 = n > 0 ? q : NULL;
		return 0;
	case ARGS_NUM_OPT:
		return pop3_numbers(p, 0, 1, c);
	case ARGS_NUM:
		return pop3_numbers(p, 1, 1, c);
	case ARGS_NUM2:
		return pop3_numbers(p, 2, 2, c);
	}
	return -1;
}

enum pop3_parse_result
pop3_parse_command(const char *line, size_t len, struct pop3_command *c)
{
	size_t klen;
	int i;

	memset(c, 0, sizeof(*c));
	c->arg = "";
	c->cmd = POP3_CMD_COUNT;
	for (size_t j = 0; j < len; j++)
		if ((unsigned char)line[j] < 0x20 ||
		    (unsigned char)line[j] == 0x7f)
			return POP3_PARSE_BAD_CHAR;
	klen = pop3_token(line);
	if (klen < 3 || klen > 4)
		return POP3_PARSE_UNKNOWN;
	for (i = 0; i < POP3_CMD_COUNT; i++)
		if (strlen(pop3_keywords[i].name) == klen &&
		    strncasecmp(line, pop3_keywords[i].name, klen) == 0)
			break;
	if (i == POP3_CMD_COUNT)
		return POP3_PARSE_UNKNOWN;
	c->cmd = (enum pop3_cmd)i;
	/* RFC 1939 3: one space, tolerated as several. */
	if (pop3_keywords[i].args == ARGS_REST)
		/* A password may start with a space: take exactly one. */
		c->arg = line[klen] == ' ' ? line + klen + 1 : line + klen;
	else
		c->arg = pop3_skip_spaces(line + klen);
	if (pop3_check_args(pop3_keywords[i].args, c) < 0)
		return POP3_PARSE_SYNTAX;
	return POP3_PARSE_OK;
}
