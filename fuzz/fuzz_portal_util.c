/*
 * Fuzz the settings page's parsers of client headers: the Cookie header
 * (portal_cookie_get), Accept-Language (portal_lang_from_accept) and
 * HTML escaping, on any bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portal/portal_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char buf[80];
	struct str out = STR_INIT;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (portal_cookie_get(s, "sid", buf, sizeof(buf)) == 0 &&
	    strlen(buf) >= sizeof(buf))
		abort();
	(void)portal_cookie_get(s, "lang", buf, 3);
	(void)portal_lang_from_accept(s);
	portal_html_escape(&out, s);
	if (strchr(str_c(&out), '<') != NULL)
		abort();
	str_deinit(&out);
	free(s);
	return 0;
}
