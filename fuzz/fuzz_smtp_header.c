/*
 * fuzz_smtp_header: From field bodies and Message-ID from submitted
 * messages.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char **a;
	int n = smtp_header_addresses((const char *)data, size, &a);

	if (n > SMTP_HEADER_MAX_ADDRS)
		abort();
	for (int i = 0; i < n; i++)
		if (strlen(a[i]) > size)
			abort();	/* never longer than the input */
	smtp_header_addresses_free(a, n > 0 ? n : 0);
	free(smtp_header_msgid((const char *)data, size));
	return 0;
}
