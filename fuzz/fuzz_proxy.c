/*
 * fuzz_proxy: the whole input to proxy_parse. A header's length never
 * exceeds the input, and every proper prefix of an accepted header must
 * be "need more".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_result r;
	const char *error;
	int ret, again;

	ret = proxy_parse(data, size, &r, &error);
	if (ret < 0 && error == NULL)
		abort();
	if (ret > 0) {
		if ((size_t)ret > size || ret > PROXY_MAX_HEADER)
			abort();
		if (r.version != 1 && r.version != 2)
			abort();
		if (!r.local && r.src.ss_family != AF_INET &&
		    r.src.ss_family != AF_INET6)
			abort();
		/* the bytes after the header do not change the result */
		again = proxy_parse(data, (size_t)ret, &r, &error);
		if (again != ret)
			abort();
		if (proxy_parse(data, (size_t)ret - 1, &r, &error) != 0)
			abort();
	}
	return 0;
}
