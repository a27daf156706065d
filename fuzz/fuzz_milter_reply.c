/*
 * fuzz_milter_reply: the milter client's reply reader on what a hostile
 * or broken filter could send: the input is read as a stream of packets
 * (4-octet length, command, data) as the milter thread reads them, each
 * parsed; every string handed back must lie inside the packet or the
 * reply's own buffer and be terminated, REPLYCODE text one printable
 * line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter/milter_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_str(const char *s, const uint8_t *pkt, size_t len,
    const struct milter_reply *r)
{
	const char *line = r->line;

	if (s == NULL)
		return;
	if (!((s >= (const char *)pkt && s < (const char *)pkt + len) ||
	    (s >= line && s < line + sizeof(r->line))))
		abort();
	if (strlen(s) > MILTER_PACKET_MAX)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct milter_reply r;
	const char *error;
	uint32_t len;

	while (size >= 4 && milter_frame_len(data, &len) == 0) {
		data += 4;
		size -= 4;
		if (len > size)
			break;
		if (milter_reply_parse(data, len, &r, &error) == 0) {
			check_str(r.name, data, len, &r);
			check_str(r.value, data, len, &r);
			check_str(r.text, data, len, &r);
			if (r.cmd == MILTER_R_REPLYCODE) {
				if (r.text[0] != '4' && r.text[0] != '5')
					abort();
				for (const char *p = r.text; *p != '\0'; p++)
					if (*p < ' ' || *p > '~')
						abort();
			}
			if (r.data != NULL && (r.data < data ||
			    r.data + r.len > data + len))
				abort();
		}
		data += len;
		size -= len;
	}
	return 0;
}
