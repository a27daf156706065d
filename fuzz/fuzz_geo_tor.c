/*
 * fuzz_geo_tor: the whole input as one tor-geoipdb range file (both
 * families), through geo_torfile_add_buffer and geo_torfile_finish. A
 * failure must come with a "f:" error; a file that loads must answer
 * look-ups with GEO_COUNTRY and two upper-case letters, or GEO_UNKNOWN
 * with no code, for addresses taken from the input.
 */
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "geo/geo.h"
#include "geo/geo_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_geo_tor_check(const struct geo_tor *t, int family, const uint8_t *addr)
{
	struct geo_result r;

	memset(&r, 0x55, sizeof(r));
	geo_torfile_find(t, family, addr, &r);
	if (strcmp(r.source, "tor:f") != 0)
		abort();
	if (r.kind == GEO_COUNTRY) {
		if (r.country[0] < 'A' || r.country[0] > 'Z' ||
		    r.country[1] < 'A' || r.country[1] > 'Z' ||
		    r.country[2] != '\0')
			abort();
	} else if (r.kind != GEO_UNKNOWN || r.country[0] != '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t zero[16], ones[16] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	struct geo_tor *t = geo_torfile_new();
	const char *error = NULL;
	uint8_t addr[16];
	size_t i;

	if (geo_torfile_add_buffer(t, "f", (const char *)data, size,
	    &error) < 0 || geo_torfile_finish(t, &error) < 0) {
		if (error == NULL || strncmp(error, "f:", 2) != 0)
			abort();
		geo_torfile_free(&t);
		return 0;
	}
	fuzz_geo_tor_check(t, AF_INET, zero);
	fuzz_geo_tor_check(t, AF_INET, ones);
	fuzz_geo_tor_check(t, AF_INET6, zero);
	fuzz_geo_tor_check(t, AF_INET6, ones);
	for (i = 0; i + sizeof(addr) <= size && i < 64; i += 8) {
		memcpy(addr, data + i, sizeof(addr));
		fuzz_geo_tor_check(t, AF_INET, addr);
		fuzz_geo_tor_check(t, AF_INET6, addr);
	}
	geo_torfile_free(&t);
	return 0;
}
