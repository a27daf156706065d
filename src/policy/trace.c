/*
 * trace: queue IDs and Message-IDs in a spam report (see trace.h).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../queue/envelope.h"
#include "../smtp/smtp_header.h"
#include "../core/base64.h"
#include "trace.h"

#define TRACE_MAX_DEPTH	3

static void
trace_add(char **list, size_t *n, char *value)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(list[i], value) == 0) {
			free(value);
			return;
		}
	if (*n == TRACE_MAX_KEYS) {
		free(value);
		return;
	}
	list[(*n)++] = value;
}

static size_t
trace_name_is(const char *field, size_t len, const char *name)
{
	/* "Message-ID :" too (RFC 5322 obs-optional, smtp_header.h) */
	return smtp_header_field(field, len, name);
}

/* In an unfolded Received field: ours has "(sekisho)" and "id ID". */
static void
trace_received(const char *f, size_t len, struct trace_keys *k)
{
	struct str s = STR_INIT;
	const char *p;

	str_append_n(&s, f, len);
	if (strstr(str_c(&s), "(sekisho)") == NULL) {
		str_deinit(&s);
		return;
	}
	for (p = str_c(&s); (p = strstr(p, " id ")) != NULL; p += 4) {
		const char *id = p + 4;
		size_t n = 0;

		while (n < QUEUE_ID_LEN && isxdigit((unsigned char)id[n]) &&
		    !islower((unsigned char)id[n]))
			n++;
		if (n == QUEUE_ID_LEN && !isalnum((unsigned char)id[n]))
			trace_add(k->queue_ids, &k->nqueue_ids,
			    xstrndup(id, n));
	}
	/* the sealed client of received_client = token: its text only,
	 * bounded; whether it opens is the back side's question */
	for (p = str_c(&s); (p = strstr(p, "(token t1.")) != NULL; p += 7) {
		const char *t = p + 7;
		size_t n = strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789-_.");

		if (n > 3 && n <= TRACE_TOKEN_TEXT_MAX && t[n] == ')')
			trace_add(k->tokens, &k->ntokens, xstrndup(t, n));
	}
	str_deinit(&s);
}

static void trace_scan(const char *text, size_t len, struct trace_keys *k,
    int depth);

/* A base64 attachment of a message (or of its headers): decode it and
 * read it like the report itself. */
static void
trace_base64_part(const char *text, size_t len, struct trace_keys *k,
    int depth)
{
	struct str b64 = STR_INIT, dec = STR_INIT;

	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)text[i]))
			str_append_c(&b64, text[i]);
	if (base64_decode(str_c(&b64), b64.len, &dec) == 0)
		trace_scan(str_c(&dec), dec.len, k, depth + 1);
	str_deinit(&b64);
	str_deinit(&dec);
}

/*
 * Line by line: fields are unfolded (a line starting with white space
 * continues the previous one), wherever they are, since a report may
 * hold the spam's headers quoted in a body part.
 */
static void
trace_scan(const char *text, size_t len, struct trace_keys *k, int depth)
{
	struct str field = STR_INIT;
	int rfc822 = 0, base64 = 0;
	size_t i = 0;

	if (depth > TRACE_MAX_DEPTH)
		return;
	while (i <= len) {
		const char *line = text + i;
		const char *nl = i < len ? memchr(line, '\n', len - i) : NULL;
		size_t n = nl != NULL ? (size_t)(nl - line) : len - i;
		size_t next = i + n + 1;

		if (n > 0 && line[n - 1] == '\r')
			n--;
		int cont = i < len && n > 0 && (line[0] == ' ' ||
		    line[0] == '\t');

		if (cont) {
			str_append_n(&field, line, n);
			i = next;
			continue;
		}
		/* the field collected so far is complete */
		if (field.len > 0) {
			const char *f = str_c(&field);

			if (trace_name_is(f, field.len, "Received"))
				trace_received(f, field.len, k);
			else if (trace_name_is(f, field.len, "Message-ID")) {
				size_t b = trace_name_is(f, field.len,
				    "Message-ID");
				char *m = smtp_header_msgid(f + b,
				    field.len - b);

				if (m != NULL)
					trace_add(k->msgids, &k->nmsgids, m);
			} else if (trace_name_is(f, field.len,
			    "Content-Type")) {
				rfc822 = strcasestr(f, "message/rfc822") !=
				    NULL || strcasestr(f,
				    "text/rfc822-headers") != NULL;
			} else if (trace_name_is(f, field.len,
			    "Content-Transfer-Encoding"))
				base64 = strcasestr(f, "base64") != NULL;
			str_clear(&field);
		}
		if (i >= len)
			break;
		if (n == 0 && rfc822 && base64) {
			/* the encoded part runs to the next boundary */
			size_t end = next;

			while (end < len && !(text[end] == '-' && end + 1 <
			    len && text[end + 1] == '-')) {
				const char *e = memchr(text + end, '\n',
				    len - end);

				end = e != NULL ? (size_t)(e - text) + 1 : len;
			}
			trace_base64_part(text + next, end - next, k, depth);
			rfc822 = base64 = 0;
			i = end;
			continue;
		}
		if (n == 0 || (n >= 2 && line[0] == '-' && line[1] == '-'))
			rfc822 = base64 = 0;	/* a new part or body */
		str_append_n(&field, line, n);
		i = next;
	}
	str_deinit(&field);
}

void
trace_extract(const char *text, size_t len, struct trace_keys *k)
{
	memset(k, 0, sizeof(*k));
	trace_scan(text, len, k, 0);
}

void
trace_keys_free(struct trace_keys *k)
{
	for (size_t i = 0; i < k->nqueue_ids; i++)
		free(k->queue_ids[i]);
	for (size_t i = 0; i < k->nmsgids; i++)
		free(k->msgids[i]);
	for (size_t i = 0; i < k->ntokens; i++)
		free(k->tokens[i]);
	memset(k, 0, sizeof(*k));
}
