/*
 * trace: what identifies our submissions in a spam report. An abuse
 * report is a message, pasted headers, or a report with the spam
 * attached (message/rfc822, text/rfc822-headers, possibly base64). We
 * take the queue IDs of our own Received headers ("by HOST (sekisho)
 * with ESMTPSA id ID") and the Message-IDs, in the order found, without
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
};

void trace_extract(const char *text, size_t len, struct trace_keys *k);
void trace_keys_free(struct trace_keys *k);

#endif
