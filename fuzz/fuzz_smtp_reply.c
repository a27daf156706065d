/*
 * fuzz_smtp_reply: the SMTP client's reply reader on what a hostile or
 * broken server could send: replies are read one after another from the
 * input as the client would, each is formatted for a log line and its
 * EHLO keywords are read. consumed must stay inside the input and the
 * one-line form inside its bound.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "mta/mta_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mta_reply r;
	struct mta_ehlo e;
	struct str one = STR_INIT;
	const char *p = (const char *)data, *error;
	size_t left = size, consumed;

	mta_reply_init(&r);
	while (left > 0 && mta_reply_parse(p, left, &r, &consumed,
	    &error) == 1) {
		if (consumed == 0 || consumed > left)
			abort();
		if (r.code < 200 || r.code > 559)
			abort();
		str_clear(&one);
		mta_reply_oneline(&r, &one, 300);
		if (one.len > 300 || strlen(str_c(&one)) != one.len)
			abort();
		mta_reply_ehlo(&r, &e);
		p += consumed;
		left -= consumed;
	}
	str_deinit(&one);
	mta_reply_deinit(&r);
	return 0;
}
