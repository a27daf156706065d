/*
 * fuzz_mime7: the 8-bit to 7-bit MIME converter on a whole message, as
 * any client can send it. The result must stay within a bounded size,
 * and converting it again must change nothing (what was encoded is
 * quoted-printable or base64 now, the rest is copied as it was).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "queue/mime7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str out = STR_INIT, again = STR_INIT;
	const char *error;

	if (mime7_convert((const char *)data, size, &out, &error) == 0) {
		if (out.len > 16 * size + 256)
			abort();
		if (mime7_convert(out.s != NULL ? out.s : "", out.len, &again,
		    &error) != 0 || again.len != out.len ||
		    (out.len > 0 && memcmp(out.s, again.s, out.len) != 0))
			abort();
	}
	str_deinit(&out);
	str_deinit(&again);
	return 0;
}
