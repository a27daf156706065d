/*
 * fuzz_smtp_address: the input as a mailbox, with and without SMTPUTF8,
 * and split at the last '@'.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "smtp/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *addr, *local, *domain;
	int ascii, utf8;

	if (memchr(data, '\0', size) != NULL)
		return 0;
	addr = xstrndup((const char *)data, size);
	ascii = smtp_address_valid(addr, 0);
	utf8 = smtp_address_valid(addr, 1);
	/* SMTPUTF8 only widens what is accepted */
	if (ascii && !utf8)
		abort();
	if (ascii || utf8) {
		if (size > 254)
			abort();
		if (smtp_address_split(addr, &local, &domain) != 0)
			abort();
		if (*local == '\0' || *domain == '\0')
			abort();
		free(local);
		free(domain);
	}
	if (smtp_address_split(addr, &local, &domain) == 0) {
		if (strlen(local) + strlen(domain) + 1 != size)
			abort();
		free(local);
		free(domain);
	} else if (memchr(data, '@', size) != NULL)
		abort();
	free(addr);
	return 0;
}
