/*
 * fuzz_own_from: the Authentication-Results reader of the refuse_own_from
 * check (src/policy/own_from.c) on any field body: it must stay inside
 * the given length (the input is not NUL-terminated: libFuzzer's buffer
 * ends there) and answer -1, 0 or 1.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/own_from.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *method;
	int r;

	r = own_from_ar_passes((const char *)data, size, "mail.example.jp",
	    "example.jp", &method);
	if (r < -1 || r > 1 || (r == 1) != (method != NULL))
		abort();
	(void)own_from_aligned((const char *)data, size, "example.jp");
	return 0;
}
