/*
 * fuzz_smtp_header: From field bodies and Message-ID from submitted
 * messages, which line is which field, and the escaping of such text
 * for the log (log_escape).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
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
	if (smtp_header_field((const char *)data, size, "From") > size)
		abort();

	char *text = malloc(size + 1), out[256];

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	log_escape(out, sizeof(out), text);
	if (strlen(out) >= sizeof(out))
		abort();
	for (const char *p = out; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			abort();	/* no control byte ever comes out */
	free(text);
	return 0;
}
