/*
 * fuzz_pop3_command: the input as one POP3 command line (as the session
 * passes it: CRLF stripped, NUL-terminated), checking what the parser
 * promises about a line it accepts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "pop3/pop3_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str line = STR_INIT;
	struct pop3_command c;
	const char *end;

	str_append_n(&line, data, size);
	end = str_c(&line) + size;
	if (pop3_parse_command(str_c(&line), size, &c) == POP3_PARSE_OK) {
		/* Accepted lines hold no control bytes, and every pointer
		 * the parser returns lies inside the line. */
		for (size_t i = 0; i < size; i++)
			if (data[i] < 0x20 || data[i] == 0x7f)
				abort();
		if ((unsigned)c.cmd >= POP3_CMD_COUNT ||
		    c.arg < str_c(&line) || c.arg > end ||
		    c.arg + c.arg1_len > end)
			abort();
		if (c.arg2 != NULL && (c.arg2 < c.arg || c.arg2 > end))
			abort();
		if (c.cmd == POP3_CMD_APOP && (c.arg2 == NULL ||
		    strlen(c.arg2) < 32 || c.arg1_len == 0))
			abort();
		if (c.nnum < 0 || c.nnum > 2 ||
		    (c.cmd == POP3_CMD_TOP && c.nnum != 2) ||
		    ((c.cmd == POP3_CMD_RETR || c.cmd == POP3_CMD_DELE) &&
		    c.nnum != 1))
			abort();
		if (c.cmd == POP3_CMD_PASS && (strlen(c.arg) == 0 ||
		    strlen(c.arg) > POP3_ARG_MAX))
			abort();
	}
	str_deinit(&line);
	return 0;
}
