/*
 * fuzz_msg: a datagram from the other side of the seam, read the way a
 * handler reads a request: fields until one fails, then msg_end.
 */
#include <stddef.h>
#include <stdint.h>

#include "core/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg m;
	const char *s;
	uint32_t u32;
	uint64_t u64;

	if (msg_from_wire(&m, data, size, -1) == 0) {
		/* the type picks a field pattern, as handlers differ */
		for (unsigned i = 0; i < 32; i++) {
			int r;

			switch ((m.type >> (i % 16)) & 3) {
			case 0:
				r = msg_get_str(&m, &s);
				if (r == 0 && s != NULL)
					(void)s[0];
				break;
			case 1:
				r = msg_get_u32(&m, &u32);
				break;
			default:
				r = msg_get_u64(&m, &u64);
				break;
			}
			if (r < 0)
				break;
		}
		(void)msg_end(&m);
	}
	msg_deinit(&m);
	return 0;
}
