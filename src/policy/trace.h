/*
 * trace: what identifies our submissions in a spam report. An abuse
 * report is a message, pasted headers, or a report with the spam
 * attached (message/rfc822, text/rfc822-headers, possibly base64). We
 * take the queue IDs of our own Received headers ("by HOST (sekisho)
 * with ESMTPSA id ID"), their client tokens ("from submission (token
 * t1.…)") and the Message-IDs, in the order found, without
 * duplicates. Pure: no I/O, fuzzed.
 */
#ifndef SEKISHO_TRACE_H
#define SEKISHO_TRACE_H

#include <stddef.h>

#define TRACE_MAX_KEYS	64

struct trace_keys {
	char	*queue_ids[TRACE_MAX_KEYS];
	size_t	 nqueue_ids;
	char	*msgids[TRACE_MAX_KEYS];
	size_t	 nmsgids;
	/* received_client = token: "(token t1.…)" of our Received headers,
	 * at most TRACE_TOKEN_TEXT_MAX octets each (issue 17 item 8) */
	char	*tokens[TRACE_MAX_KEYS];
	size_t	 ntokens;
};
#define TRACE_TOKEN_TEXT_MAX	600

void trace_extract(const char *text, size_t len, struct trace_keys *k);
void trace_keys_free(struct trace_keys *k);

#endif
