/*
 * fuzz_policyd: Postfix policy protocol requests, split into lines as
 * the session does.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policyd/policyd_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policyd_request r;
	const char *p = (const char *)data, *end = p + size, *error;

	policyd_request_init(&r);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		if (policyd_parse_line(&r, p, n, &error) != 0)
			policyd_request_clear(&r);
		p += n + 1;
	}
	(void)policyd_get(&r, "sasl_username");
	policyd_request_clear(&r);
	return 0;
}
