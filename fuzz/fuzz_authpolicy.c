/*
 * fuzz_authpolicy: Dovecot auth policy requests as the session reads
 * them: the head found and parsed, then the body of its Content-Length.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "authpolicy/authpolicy_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *error;
	struct authpolicy_head h;
	struct authpolicy_request r;
	long hl = authpolicy_head_len(p, size);

	/* the body alone too: the JSON parser sees every input */
	(void)authpolicy_parse_body(p, size, &r, &error);
	if (hl <= 0)
		return 0;
	if (authpolicy_parse_head(p, (size_t)hl, &h, &error) < 0)
		return 0;
	if (size - (size_t)hl >= h.content_length)
		(void)authpolicy_parse_body(p + hl, h.content_length, &r,
		    &error);
	return 0;
}
