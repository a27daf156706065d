/*
 * envelope: the envelope of a queued message and its text form at the
 * head of every spool file (format in envelope.h), and queue IDs.
 *
 * The parser is strict on purpose: a spool file that does not read back
 * exactly as it was written is corrupt, and a corrupt file must be
 * noticed (the queue moves it aside), never delivered to a guess of its
 * recipients. Lines end in LF only; the message after the empty line is
 * CRLF text and is not looked at here.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../core/xmalloc.h"
#include "envelope.h"

#define ENVELOPE_MAGIC	"SEKISHO-QUEUE 1"

void
envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof(*env));
}

void
envelope_deinit(struct envelope *env)
{
	size_t i;

	xfree(&env->sender);
	xfree(&env->auth);
	xfree(&env->client);
	xfree(&env->helo);
	xfree(&env->protocol);
	for (i = 0; i < env->rcpt_count; i++) {
		xfree(&env->rcpts[i].address);
		xfree(&env->rcpts[i].mailbox);
	}
	xfree(&env->rcpts);
	envelope_init(env);
}

void
envelope_add_rcpt(struct envelope *env, const char *address,
    const char *mailbox)
{
	struct envelope_rcpt *r;

	env->rcpts = xreallocarray(env->rcpts, env->rcpt_count + 1,
	    sizeof(*env->rcpts));
	r = &env->rcpts[env->rcpt_count++];
	r->address = xstrdup(address);
	r->mailbox = mailbox != NULL && *mailbox != '\0' ?
	    xstrdup(mailbox) : NULL;
}

int
queue_id_valid(const char *id)
{
	size_t i;

	for (i = 0; i < QUEUE_ID_LEN; i++) {
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'A' && id[i] <= 'F')))
			return 0;
	}
	return id[QUEUE_ID_LEN] == '\0';
}

/* A value may not hold what would end or split its line. */
static int
envelope_value_ok(const char *v)
{
	return strpbrk(v, "\r\n\t") == NULL;
}

int
envelope_format(const struct envelope *env, struct str *out)
{
	size_t i;

	if (!queue_id_valid(env->id) || env->time < 0 ||
	    env->sender == NULL || !envelope_value_ok(env->sender) ||
	    env->rcpt_count == 0)
		return -1;
	if (env->auth != NULL &&
	    (*env->auth == '\0' || !envelope_value_ok(env->auth)))
		return -1;
	if ((env->client != NULL && !envelope_value_ok(env->client)) ||
	    (env->helo != NULL && !envelope_value_ok(env->helo)) ||
	    (env->protocol != NULL && !envelope_value_ok(env->protocol)))
		return -1;
	for (i = 0; i < env->rcpt_count; i++) {
		const struct envelope_rcpt *r = &env->rcpts[i];

		if (r->address == NULL || *r->address == '\0' ||
		    !envelope_value_ok(r->address) ||
		    (r->mailbox != NULL && !envelope_value_ok(r->mailbox)))
			return -1;
	}

	str_append(out, ENVELOPE_MAGIC "\n");
	str_printf(out, "id %s\n", env->id);
	str_printf(out, "time %" PRId64 "\n", env->time);
	str_printf(out, "sender %s\n", env->sender);
	if (env->auth != NULL)
		str_printf(out, "auth %s\n", env->auth);
	if (env->client != NULL)
		str_printf(out, "client %s\n", env->client);
	if (env->helo != NULL)
		str_printf(out, "helo %s\n", env->helo);
	if (env->protocol != NULL)
		str_printf(out, "protocol %s\n", env->protocol);
	str_printf(out, "smtputf8 %d\n", env->smtputf8 ? 1 : 0);
	for (i = 0; i < env->rcpt_count; i++) {
		const struct envelope_rcpt *r = &env->rcpts[i];

		str_printf(out, "rcpt %s\t%s\n", r->address,
		    r->mailbox != NULL ? r->mailbox : "");
	}
	str_append_c(out, '\n');
	return 0;
}

/* Decimal, no sign, fits int64_t. */
static int
envelope_parse_int64(const char *v, size_t len, int64_t *n_r)
{
	int64_t n = 0;
	size_t i;

	if (len == 0 || len > 19)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (n > (INT64_MAX - (v[i] - '0')) / 10)
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	*n_r = n;
	return 0;
}

enum envelope_field {
	ENV_ID = 1 << 0,
	ENV_TIME = 1 << 1,
	ENV_SENDER = 1 << 2,
	ENV_AUTH = 1 << 3,
	ENV_CLIENT = 1 << 4,
	ENV_HELO = 1 << 5,
	ENV_PROTOCOL = 1 << 6,
	ENV_SMTPUTF8 = 1 << 7,
};

static const struct {
	const char	*name;
	int		 field;
} envelope_fields[] = {
	{ "id", ENV_ID },
	{ "time", ENV_TIME },
	{ "sender", ENV_SENDER },
	{ "auth", ENV_AUTH },
	{ "client", ENV_CLIENT },
	{ "helo", ENV_HELO },
	{ "protocol", ENV_PROTOCOL },
	{ "smtputf8", ENV_SMTPUTF8 },
	{ "rcpt", 0 },
};

/* One "key value" line (without its LF) into env; seen tracks fields. */
static int
envelope_parse_line(const char *line, size_t len, struct envelope *env,
    int *seen, const char **error_r)
{
	const char *sp, *v, *tab;
	size_t klen, vlen, i;
	int field = -1;

	if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) != NULL) {
		*error_r = "NUL or CR in envelope line";
		return -1;
	}
	if ((sp = memchr(line, ' ', len)) == NULL) {
		*error_r = "envelope line without a value";
		return -1;
	}
	klen = (size_t)(sp - line);
	v = sp + 1;
	vlen = len - klen - 1;
	for (i = 0; i < sizeof(envelope_fields) / sizeof(envelope_fields[0]);
	    i++) {
		if (strlen(envelope_fields[i].name) == klen &&
		    memcmp(envelope_fields[i].name, line, klen) == 0) {
			field = envelope_fields[i].field;
			break;
		}
	}
	if (field < 0) {
		*error_r = "unknown envelope field";
		return -1;
	}
	if (field != 0 && (*seen & field) != 0) {
		*error_r = "duplicate envelope field";
		return -1;
	}
	tab = memchr(v, '\t', vlen);
	if (field != 0 && tab != NULL) {
		*error_r = "TAB in envelope value";
		return -1;
	}
	*seen |= field;

	switch (field) {
	case ENV_ID:
		if (vlen != QUEUE_ID_LEN) {
			*error_r = "bad queue id";
			return -1;
		}
		memcpy(env->id, v, vlen);
		env->id[vlen] = '\0';
		if (!queue_id_valid(env->id)) {
			*error_r = "bad queue id";
			return -1;
		}
		break;
	case ENV_TIME:
		if (envelope_parse_int64(v, vlen, &env->time) < 0) {
			*error_r = "bad time";
			return -1;
		}
		break;
	case ENV_SENDER:
		env->sender = xstrndup(v, vlen);
		break;
	case ENV_AUTH:
		if (vlen == 0) {
			*error_r = "empty auth";
			return -1;
		}
		env->auth = xstrndup(v, vlen);
		break;
	case ENV_CLIENT:
		env->client = xstrndup(v, vlen);
		break;
	case ENV_HELO:
		env->helo = xstrndup(v, vlen);
		break;
	case ENV_PROTOCOL:
		env->protocol = xstrndup(v, vlen);
		break;
	case ENV_SMTPUTF8:
		if (vlen != 1 || (v[0] != '0' && v[0] != '1')) {
			*error_r = "bad smtputf8";
			return -1;
		}
		env->smtputf8 = v[0] == '1';
		break;
	default: {
		/* rcpt ADDRESS TAB MAILBOX, exactly one TAB */
		char *address, *mailbox;
		size_t alen;

		if (tab == NULL || memchr(tab + 1, '\t',
		    vlen - (size_t)(tab - v) - 1) != NULL) {
			*error_r = "rcpt needs address TAB mailbox";
			return -1;
		}
		alen = (size_t)(tab - v);
		if (alen == 0) {
			*error_r = "empty rcpt address";
			return -1;
		}
		address = xstrndup(v, alen);
		mailbox = xstrndup(tab + 1, vlen - alen - 1);
		envelope_add_rcpt(env, address, mailbox);
		free(address);
		free(mailbox);
		break;
	}
	}
	return 0;
}

int
envelope_parse(const char *buf, size_t len, struct envelope *env,
    size_t *consumed_r, const char **error_r)
{
	const char *p = buf, *end = buf + len, *nl;
	int seen = 0, first = 1;

	envelope_init(env);
	for (;;) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			*error_r = "envelope not terminated by an empty line";
			goto fail;
		}
		if (first) {
			if ((size_t)(nl - p) != strlen(ENVELOPE_MAGIC) ||
			    memcmp(p, ENVELOPE_MAGIC, (size_t)(nl - p)) != 0) {
				*error_r = "not a sekisho spool file "
				    "(or an unsupported version)";
				goto fail;
			}
			first = 0;
		} else if (nl == p) {
			break;
		} else if (envelope_parse_line(p, (size_t)(nl - p), env,
		    &seen, error_r) < 0)
			goto fail;
		p = nl + 1;
	}

	if ((seen & ENV_ID) == 0) {
		*error_r = "missing id";
		goto fail;
	}
	if ((seen & ENV_TIME) == 0) {
		*error_r = "missing time";
		goto fail;
	}
	if ((seen & ENV_SENDER) == 0) {
		*error_r = "missing sender";
		goto fail;
	}
	if (env->rcpt_count == 0) {
		*error_r = "missing rcpt";
		goto fail;
	}
	*consumed_r = (size_t)(nl + 1 - buf);
	return 0;
fail:
	envelope_deinit(env);
	return -1;
}

static pthread_once_t queue_id_once = PTHREAD_ONCE_INIT;
static atomic_uint_least32_t queue_id_counter;

static void
queue_id_seed(void)
{
	uint32_t seed;

	/* A random start keeps two processes on the host (daemon and a
	 * CLI run) from walking the same sequence in one millisecond. */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint32_t)getpid() ^ (uint32_t)time(NULL) * 2654435761u;
	atomic_store(&queue_id_counter, seed);
}

void
queue_id_new(char id[QUEUE_ID_LEN + 1])
{
	struct timespec ts;
	uint64_t ms;
	uint32_t n;

	pthread_once(&queue_id_once, queue_id_seed);
	n = (uint32_t)atomic_fetch_add(&queue_id_counter, 1);
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	snprintf(id, QUEUE_ID_LEN + 1, "%012" PRIX64 "%08" PRIX32,
	    ms & UINT64_C(0xFFFFFFFFFFFF), n);
}
