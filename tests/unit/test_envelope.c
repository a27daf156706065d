/*
 * test_envelope: the spool envelope text form (format, strict parse) and
 * queue IDs.
 */
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "queue/envelope.h"
#include "unit.h"

#define ID	"0190A3F2C4B7E1D9A3F2"
#define HEAD	"SEKISHO-QUEUE 1\nid " ID "\ntime 1763800000\n"

static const struct parse_row {
	const char	*input;
	const char	*error;		/* NULL: must parse */
	const char	*sender;	/* expected, when it parses */
	size_t		 rcpts;
	const char	*mailbox0;	/* expected mailbox of rcpt 0 */
} parse_rows[] = {
	/* good */
	{ HEAD "sender a@b.jp\nrcpt c@d.jp\tc@d.jp\n\nBODY", NULL,
	    "a@b.jp", 1, "c@d.jp" },
	{ HEAD "sender \nrcpt c@remote.example\t\n\n", NULL,
	    "", 1, NULL },
	{ "SEKISHO-QUEUE 1\nrcpt x@y\t\nsender s@t\ntime 5\nid " ID
	    "\nsmtputf8 1\n\n", NULL, "s@t", 1, NULL },
	{ HEAD "sender a@b\nauth a@b\nclient 192.0.2.7\nhelo h\n"
	    "protocol ESMTPSA\nsmtputf8 0\nrcpt 1@x\t1@x\nrcpt 2@y\t\n\n",
	    NULL, "a@b", 2, "1@x" },
	{ HEAD "sender a@b\nhelo \nrcpt 1@x\t1@x\n\n", NULL, "a@b", 1,
	    "1@x" },

	/* framing */
	{ "", "envelope not terminated by an empty line", NULL, 0, NULL },
	{ HEAD "sender a@b\nrcpt c@d\t\n",
	    "envelope not terminated by an empty line", NULL, 0, NULL },
	{ "SEKISHO-QUEUE 2\nid " ID "\n\n",
	    "not a sekisho spool file (or an unsupported version)",
	    NULL, 0, NULL },
	{ "\n\n", "not a sekisho spool file (or an unsupported version)",
	    NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\r\nid " ID "\n\n",
	    "not a sekisho spool file (or an unsupported version)",
	    NULL, 0, NULL },

	/* missing fields */
	{ "SEKISHO-QUEUE 1\ntime 1\nsender a@b\nrcpt c@d\t\n\n",
	    "missing id", NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\nid " ID "\nsender a@b\nrcpt c@d\t\n\n",
	    "missing time", NULL, 0, NULL },
	{ HEAD "rcpt c@d\t\n\n", "missing sender", NULL, 0, NULL },
	{ HEAD "sender a@b\n\n", "missing rcpt", NULL, 0, NULL },

	/* bad lines */
	{ HEAD "sender a@b\nfoo bar\nrcpt c@d\t\n\n",
	    "unknown envelope field", NULL, 0, NULL },
	{ HEAD "sender a@b\nSender a@b\nrcpt c@d\t\n\n",
	    "unknown envelope field", NULL, 0, NULL },
	{ HEAD "sender\nrcpt c@d\t\n\n", "envelope line without a value",
	    NULL, 0, NULL },
	{ HEAD "sender a@b\nsender a@b\nrcpt c@d\t\n\n",
	    "duplicate envelope field", NULL, 0, NULL },
	{ HEAD "id " ID "\nsender a@b\nrcpt c@d\t\n\n",
	    "duplicate envelope field", NULL, 0, NULL },
	{ HEAD "sender a@b\r\nrcpt c@d\t\n\n", "NUL or CR in envelope line",
	    NULL, 0, NULL },
	{ HEAD "sender a@b\nhelo a\tb\nrcpt c@d\t\n\n",
	    "TAB in envelope value", NULL, 0, NULL },
	{ HEAD "sender a@b\nauth \nrcpt c@d\t\n\n", "empty auth",
	    NULL, 0, NULL },

	/* id */
	{ "SEKISHO-QUEUE 1\nid 0190a3f2c4b7e1d9a3f2\n\n", "bad queue id",
	    NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\nid 0190A3F2C4B7E1D9A3F\n\n", "bad queue id",
	    NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\nid 0190A3F2C4B7E1D9A3F21\n\n", "bad queue id",
	    NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\nid ../../etc/passwd//////\n\n", "bad queue id",
	    NULL, 0, NULL },

	/* numbers */
	{ "SEKISHO-QUEUE 1\ntime -1\n\n", "bad time", NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\ntime +1\n\n", "bad time", NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\ntime 12a\n\n", "bad time", NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\ntime \n\n", "bad time", NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\ntime 9223372036854775808\n\n", "bad time",
	    NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\ntime 99999999999999999999\n\n", "bad time",
	    NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\nsmtputf8 2\n\n", "bad smtputf8", NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\nsmtputf8 \n\n", "bad smtputf8", NULL, 0, NULL },
	{ "SEKISHO-QUEUE 1\nsmtputf8 01\n\n", "bad smtputf8", NULL, 0, NULL },

	/* rcpt */
	{ HEAD "sender a@b\nrcpt c@d\n\n", "rcpt needs address TAB mailbox",
	    NULL, 0, NULL },
	{ HEAD "sender a@b\nrcpt c@d\tc@d\tx\n\n",
	    "rcpt needs address TAB mailbox", NULL, 0, NULL },
	{ HEAD "sender a@b\nrcpt \tc@d\n\n", "empty rcpt address",
	    NULL, 0, NULL },
};

static void
test_parse_table(void)
{
	size_t i;

	for (i = 0; i < sizeof(parse_rows) / sizeof(parse_rows[0]); i++) {
		const struct parse_row *row = &parse_rows[i];
		struct envelope env;
		const char *error = NULL;
		size_t consumed = 0;
		int r;

		r = envelope_parse(row->input, strlen(row->input), &env,
		    &consumed, &error);
		if (row->error != NULL) {
			if (r != -1)
				fprintf(stderr, "row %zu parsed\n", i);
			UNIT_CHECK_INT(r, -1);
			UNIT_CHECK_STR(error, row->error);
			/* Left empty: deinit is safe, nothing leaks. */
			UNIT_CHECK(env.sender == NULL && env.rcpts == NULL);
			envelope_deinit(&env);
			continue;
		}
		if (r != 0)
			fprintf(stderr, "row %zu: %s\n", i, error);
		UNIT_CHECK_INT(r, 0);
		if (r != 0)
			continue;
		UNIT_CHECK_STR(env.sender, row->sender);
		UNIT_CHECK_INT(env.rcpt_count, row->rcpts);
		UNIT_CHECK_STR(env.rcpts[0].mailbox, row->mailbox0);
		UNIT_CHECK_STR(env.id, ID);
		/* The message starts just past the empty line. */
		UNIT_CHECK(consumed >= 2 && row->input[consumed - 1] == '\n' &&
		    row->input[consumed - 2] == '\n');
		envelope_deinit(&env);
	}
}

static void
test_parse_fields(void)
{
	const char *in = HEAD "sender a@b\nauth acct@b\nclient 192.0.2.7\n"
	    "helo client.example\nprotocol ESMTPSA\nsmtputf8 1\n"
	    "rcpt bob@example.jp\tbob@example.jp\nrcpt c@remote\t\n"
	    "\nReceived: x\r\n";
	struct envelope env;
	const char *error;
	size_t consumed;

	UNIT_CHECK_INT(envelope_parse(in, strlen(in), &env, &consumed,
	    &error), 0);
	UNIT_CHECK_STR(in + consumed, "Received: x\r\n");
	UNIT_CHECK_INT(env.time, 1763800000);
	UNIT_CHECK_STR(env.auth, "acct@b");
	UNIT_CHECK_STR(env.client, "192.0.2.7");
	UNIT_CHECK_STR(env.helo, "client.example");
	UNIT_CHECK_STR(env.protocol, "ESMTPSA");
	UNIT_CHECK_INT(env.smtputf8, 1);
	UNIT_CHECK_STR(env.rcpts[0].address, "bob@example.jp");
	UNIT_CHECK_STR(env.rcpts[0].mailbox, "bob@example.jp");
	UNIT_CHECK_STR(env.rcpts[1].address, "c@remote");
	UNIT_CHECK_STR(env.rcpts[1].mailbox, NULL);
	envelope_deinit(&env);

	/* Only the first len bytes count: no terminator beyond them. */
	UNIT_CHECK_INT(envelope_parse(in, strlen(HEAD) + 5, &env, &consumed,
	    &error), -1);
	UNIT_CHECK_STR(error, "envelope not terminated by an empty line");

	/* NUL inside a value is refused, not cut. */
	static const char nul[] = HEAD "sender a\0b\nrcpt c@d\t\n\n";
	UNIT_CHECK_INT(envelope_parse(nul, sizeof(nul) - 1, &env, &consumed,
	    &error), -1);
	UNIT_CHECK_STR(error, "NUL or CR in envelope line");
}

static void
test_roundtrip(void)
{
	static const struct {
		const char	*sender;
		const char	*auth;
		const char	*client;
		const char	*helo;
		const char	*protocol;
		int		 smtputf8;
	} rows[] = {
		{ "alice@example.jp", "alice@example.jp", "192.0.2.7",
		    "client.example", "ESMTPSA", 0 },
		{ "", NULL, "2001:db8::1", "", "ESMTP", 1 },
		{ "\xe5\xa4\xaa\xe9\x83\x8e@example.jp", NULL, NULL, NULL,
		    NULL, 1 },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct envelope env, back;
		struct str out = STR_INIT;
		const char *error;
		size_t consumed;

		envelope_init(&env);
		memcpy(env.id, ID, sizeof(ID));
		env.time = 1763800000 + (int64_t)i;
		env.sender = strdup(rows[i].sender);
		env.auth = rows[i].auth ? strdup(rows[i].auth) : NULL;
		env.client = rows[i].client ? strdup(rows[i].client) : NULL;
		env.helo = rows[i].helo ? strdup(rows[i].helo) : NULL;
		env.protocol = rows[i].protocol ?
		    strdup(rows[i].protocol) : NULL;
		env.smtputf8 = rows[i].smtputf8;
		envelope_add_rcpt(&env, "bob@example.jp", "bob@example.jp");
		envelope_add_rcpt(&env, "carol@remote.example", NULL);

		UNIT_CHECK_INT(envelope_format(&env, &out), 0);
		str_append(&out, "Received: by us\r\n");
		UNIT_CHECK_INT(envelope_parse(out.s, out.len, &back,
		    &consumed, &error), 0);
		UNIT_CHECK_STR(out.s + consumed, "Received: by us\r\n");
		UNIT_CHECK_STR(back.id, env.id);
		UNIT_CHECK_INT(back.time, env.time);
		UNIT_CHECK_STR(back.sender, env.sender);
		UNIT_CHECK_STR(back.auth, env.auth);
		UNIT_CHECK_STR(back.client, env.client);
		UNIT_CHECK_STR(back.helo, env.helo);
		UNIT_CHECK_STR(back.protocol, env.protocol);
		UNIT_CHECK_INT(back.smtputf8, env.smtputf8);
		UNIT_CHECK_INT(back.rcpt_count, 2);
		if (back.rcpt_count == 2) {
			UNIT_CHECK_STR(back.rcpts[0].address,
			    "bob@example.jp");
			UNIT_CHECK_STR(back.rcpts[0].mailbox,
			    "bob@example.jp");
			UNIT_CHECK_STR(back.rcpts[1].address,
			    "carol@remote.example");
			UNIT_CHECK_STR(back.rcpts[1].mailbox, NULL);
		}
		envelope_deinit(&back);
		envelope_deinit(&env);
		str_deinit(&out);
	}
}

static void
test_format_exact(void)
{
	struct envelope env;
	struct str out = STR_INIT;

	envelope_init(&env);
	memcpy(env.id, ID, sizeof(ID));
	env.time = 1763800000;
	env.sender = strdup("");
	env.client = strdup("192.0.2.7");
	env.helo = strdup("mx.example");
	env.protocol = strdup("ESMTP");
	envelope_add_rcpt(&env, "bob@example.jp", "bob@example.jp");
	UNIT_CHECK_INT(envelope_format(&env, &out), 0);
	UNIT_CHECK_STR(str_c(&out), "SEKISHO-QUEUE 1\nid " ID "\n"
	    "time 1763800000\nsender \nclient 192.0.2.7\nhelo mx.example\n"
	    "protocol ESMTP\nsmtputf8 0\n"
	    "rcpt bob@example.jp\tbob@example.jp\n\n");
	str_deinit(&out);
	envelope_deinit(&env);
}

/* Each value that could break the line structure is refused. */
static void
test_format_refuses(void)
{
	static const char *const bad[] = { "a\r", "a\nb", "a\tb" };
	size_t i;
	int field;

	for (field = 0; field < 6; field++) {
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct envelope env;
			struct str out = STR_INIT;

			envelope_init(&env);
			memcpy(env.id, ID, sizeof(ID));
			env.sender = strdup(field == 0 ? bad[i] : "s@x");
			if (field == 1)
				env.auth = strdup(bad[i]);
			if (field == 2)
				env.client = strdup(bad[i]);
			if (field == 3)
				env.helo = strdup(bad[i]);
			if (field == 4)
				env.protocol = strdup(bad[i]);
			envelope_add_rcpt(&env, field == 5 ? bad[i] : "r@x",
			    "r@x");
			UNIT_CHECK_INT(envelope_format(&env, &out), -1);
			UNIT_CHECK_INT(out.len, 0);
			envelope_deinit(&env);
			str_deinit(&out);
		}
	}

	/* Missing id, no recipients, or an empty auth cannot be read back. */
	struct envelope env;
	struct str out = STR_INIT;

	envelope_init(&env);
	env.sender = strdup("s@x");
	envelope_add_rcpt(&env, "r@x", NULL);
	UNIT_CHECK_INT(envelope_format(&env, &out), -1);
	memcpy(env.id, ID, sizeof(ID));
	UNIT_CHECK_INT(envelope_format(&env, &out), 0);
	str_clear(&out);
	env.auth = strdup("");
	UNIT_CHECK_INT(envelope_format(&env, &out), -1);
	envelope_deinit(&env);
	envelope_init(&env);
	memcpy(env.id, ID, sizeof(ID));
	env.sender = strdup("s@x");
	UNIT_CHECK_INT(envelope_format(&env, &out), -1);
	envelope_deinit(&env);
	str_deinit(&out);
}

static void
test_queue_id(void)
{
	char prev[QUEUE_ID_LEN + 1], id[QUEUE_ID_LEN + 1];
	size_t i;

	queue_id_new(prev);
	UNIT_CHECK_INT(strlen(prev), QUEUE_ID_LEN);
	UNIT_CHECK(queue_id_valid(prev));
	for (i = 0; i < 10000; i++) {
		queue_id_new(id);
		if (!queue_id_valid(id) || strcmp(id, prev) == 0 ||
		    memcmp(id, prev, 12) < 0) {
			UNIT_CHECK(!"queue id not unique or not time-sorted");
			break;
		}
		memcpy(prev, id, sizeof(id));
	}
	UNIT_CHECK(!queue_id_valid("0190a3f2c4b7e1d9a3f2"));
	UNIT_CHECK(!queue_id_valid("0190A3F2C4B7E1D9A3F"));
	UNIT_CHECK(!queue_id_valid("0190A3F2C4B7E1D9A3F2X"));
	UNIT_CHECK(!queue_id_valid(""));
	UNIT_CHECK(queue_id_valid(ID));
}

int
main(void)
{
	test_parse_table();
	test_parse_fields();
	test_roundtrip();
	test_format_exact();
	test_format_refuses();
	test_queue_id();
	UNIT_END();
}
