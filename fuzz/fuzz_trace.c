/*
 * fuzz_trace: spam reports pasted or fed to "sekisho trace".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace_keys k;

	trace_extract((const char *)data, size, &k);
	for (size_t i = 0; i < k.nqueue_ids; i++)
		if (strlen(k.queue_ids[i]) != 20)
			abort();
	trace_keys_free(&k);
	return 0;
}
