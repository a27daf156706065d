/*
 * fuzz_autoconfig: what mail clients send the settings page's setup
 * documents (issue 19 item 5): an autodiscover request body and an
 * emailaddress query value. What they promise: the body is read only up
 * to its bound, an answer names an address only when it passed
 * portal_autoconfig_address_ok, and no input byte '<' or '&' reaches the
 * output unescaped (every document stays well-formed).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/str.h"
#include "portal/portal_autoconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config *fuzz_conf;

/* Outside an element's tags, no '<' but a tag's own: count '<' and '>'
 * pairs crudely: every '<' is followed by a name, '/', '?' or '!' and
 * no '<' comes before its '>'. */
static void
fuzz_check_xml(const struct str *s)
{
	int open = 0;

	for (size_t i = 0; i < s->len; i++) {
		if (s->s[i] == '<') {
			if (open)
				abort();
			open = 1;
		} else if (s->s[i] == '>') {
			if (!open)
				abort();
			open = 0;
		} else if (s->s[i] == '&' && strncmp(s->s + i, "&amp;", 5) &&
		    strncmp(s->s + i, "&lt;", 4) && strncmp(s->s + i, "&gt;",
		    4) && strncmp(s->s + i, "&quot;", 6) &&
		    strncmp(s->s + i, "&#39;", 5))
			abort();
	}
	if (open)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str out = STR_INIT;
	unsigned char seed[32] = { 0 };
	char *text;

	if (fuzz_conf == NULL)
		fuzz_conf = config_defaults();
	(void)portal_autoconfig_autodiscover(fuzz_conf, (const char *)data,
	    size, &out);
	fuzz_check_xml(&out);
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	portal_autoconfig_thunderbird(fuzz_conf, text, &out);
	fuzz_check_xml(&out);
	if (portal_autoconfig_address_ok(text)) {
		portal_autoconfig_mobileconfig(fuzz_conf, text, size % 2, seed,
		    &out);
		/* the DOCTYPE line has its own '<!' and '>' */
		fuzz_check_xml(&out);
	}
	free(text);
	str_deinit(&out);
	return 0;
}
