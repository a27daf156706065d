/*
 * fuzz_smtp_command: the input as one command line (as the session
 * passes it: CRLF stripped, NUL-terminated), then MAIL/RCPT arguments,
 * and the input as base64 for AUTH and SASL PLAIN.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/sasl.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "smtp/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check_address(const char *addr, int smtputf8)
{
	/* what the parsers return must itself be a valid mailbox */
	if (strcmp(addr, "") != 0 && strcmp(addr, "postmaster") != 0 &&
	    !smtp_address_valid(addr, smtputf8))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *args, *authzid, *authcid, *passwd;
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	struct str line = STR_INIT, dec = STR_INIT, enc = STR_INIT;
	enum smtp_cmd cmd;
	char *copy;

	str_append_n(&line, data, size);
	if (smtp_parse_command(str_c(&line), size, &cmd, &args) ==
	    SMTP_PARSE_OK) {
		if (memchr(data, '\0', size) != NULL)
			abort();
		if ((unsigned int)cmd >= SMTP_CMD_COUNT)
			abort();
		(void)smtp_cmd_name(cmd);
		if (smtp_parse_mail(args, &m) == SMTP_PARSE_OK) {
			fuzz_check_address(m.address, m.smtputf8);
			smtp_mail_args_deinit(&m);
		}
		if (smtp_parse_rcpt(args, 0, &r) == SMTP_PARSE_OK) {
			fuzz_check_address(r.address, 0);
			smtp_rcpt_args_deinit(&r);
		}
		if (smtp_parse_rcpt(args, 1, &r) == SMTP_PARSE_OK) {
			fuzz_check_address(r.address, 1);
			smtp_rcpt_args_deinit(&r);
		}
	}

	/* base64: decode, then encoding gives back the same text */
	if (base64_decode((const char *)data, size, &dec) == 0) {
		base64_encode(dec.s, dec.len, &enc);
		if (enc.len != size || (size > 0 &&
		    memcmp(enc.s, data, size) != 0))
			abort();
		if (sasl_plain_split(&dec, &authzid, &authcid,
		    &passwd) == 0 && (*authcid == '\0' || *passwd == '\0'))
			abort();
	}
	str_clear(&enc);
	base64_encode(data, size, &enc);
	str_clear(&dec);
	if (base64_decode(enc.s == NULL ? "" : enc.s, enc.len, &dec) != 0 ||
	    dec.len != size || (size > 0 && memcmp(dec.s, data, size) != 0))
		abort();

	/* the raw input as a SASL PLAIN message */
	if (sasl_plain_split(&line, &authzid, &authcid, &passwd) == 0) {
		copy = xstrdup(authcid);
		free(copy);
	}
	str_deinit(&line);
	str_deinit(&dec);
	str_deinit(&enc);
	return 0;
}
