/*
 * fuzz_envelope: envelope_parse on arbitrary bytes, as a corrupt or
 * hostile spool file would give it. Whatever parses must format again
 * and read back to the same envelope (parse and format agree on what is
 * valid), and consumed must stay inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "queue/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope env, back;
	struct str out = STR_INIT;
	const char *error;
	size_t consumed, consumed2, i;

	if (envelope_parse((const char *)data, size, &env, &consumed,
	    &error) < 0) {
		if (env.rcpts != NULL || env.sender != NULL)
			abort();
		return 0;
	}
	if (consumed > size || consumed < 2 || data[consumed - 1] != '\n')
		abort();
	if (envelope_format(&env, &out) < 0)
		abort();
	if (envelope_parse(out.s, out.len, &back, &consumed2, &error) < 0 ||
	    consumed2 != out.len)
		abort();
	if (strcmp(env.id, back.id) != 0 || env.time != back.time ||
	    !same(env.sender, back.sender) || !same(env.auth, back.auth) ||
	    !same(env.client, back.client) || !same(env.helo, back.helo) ||
	    !same(env.protocol, back.protocol) ||
	    env.smtputf8 != back.smtputf8 ||
	    env.rcpt_count != back.rcpt_count)
		abort();
	for (i = 0; i < env.rcpt_count; i++) {
		if (!same(env.rcpts[i].address, back.rcpts[i].address) ||
		    !same(env.rcpts[i].mailbox, back.rcpts[i].mailbox))
			abort();
	}
	envelope_deinit(&back);
	envelope_deinit(&env);
	str_deinit(&out);
	return 0;
}
