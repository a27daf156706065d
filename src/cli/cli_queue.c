/*
 * cli_queue: "sekisho queue list|show|flush|delete|hold|release", the
 * operator's view of the outbound queue (docs/delivery.md "The queue
 * CLI"). It works on spool_dir directly, with the daemon running: it
 * reads envelopes and journals (append-only, so a read is consistent up
 * to its last complete line), takes the same per-message flock as the
 * delivery runner before deleting (queue_hold.c), and asks the daemon to
 * try messages now through the control socket spool_dir/control. Held
 * messages (queue.h) are listed, released and deleted one by one or for
 * an account at once.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../queue/envelope.h"
#include "../queue/queue.h"
#include "../queue/spool.h"
#include "cli.h"

struct cli_queue_msg {
	char			 id[QUEUE_ID_LEN + 1];
	struct envelope		 env;
	struct queue_rcpt_state	*st;
	size_t			 size;
	int			 held;
	struct queue_hold	 hold;
};

void
cli_queue_usage(void)
{
	fprintf(stderr,
	    "  queue list [--held] [--account ADDRESS]\n"
	    "                         messages in the queue, with a summary\n"
	    "  queue show ID          one message: envelope, recipients, "
	    "state, hold\n"
	    "  queue flush [ID]       have the daemon try now (all, or one)\n"
	    "  queue delete ID|--account ADDRESS\n"
	    "                         remove a message, or the account's held "
	    "ones (no bounce)\n"
	    "  queue hold ID [REASON] keep a message from being tried\n"
	    "  queue release ID|--account ADDRESS\n"
	    "                         undo hold (one, or the account's) and "
	    "try now\n");
}

static void
cli_queue_time(char *buf, size_t len, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		xstrlcpy(buf, "-", len);
}

static int
cli_queue_load(const struct config *conf, const char *id,
    struct cli_queue_msg *m, const char **error_r)
{
	struct stat st;
	char *path;
	size_t consumed;
	int fd, corrupt;

	memset(m, 0, sizeof(*m));
	xstrlcpy(m->id, id, sizeof(m->id));
	path = xasprintf("%s/queue/%s", conf->spool_dir, id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0) {
		*error_r = errno == ENOENT ? "no such message" :
		    spool_errno_error("open");
		return -1;
	}
	if (fstat(fd, &st) < 0 ||
	    spool_read_envelope(fd, &m->env, &consumed, &corrupt,
	    error_r) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	m->size = (size_t)st.st_size - consumed;
	m->st = xcalloc(m->env.rcpt_count, sizeof(*m->st));
	path = xasprintf("%s/queue/%s.done", conf->spool_dir, id);
	if (queue_journal_read(path, m->st, m->env.rcpt_count, id,
	    error_r) < 0) {
		free(path);
		return -1;
	}
	free(path);
	m->held = queue_hold_read(conf->spool_dir, id, &m->hold) == 1;
	return 0;
}

static void
cli_queue_msg_free(struct cli_queue_msg *m)
{
	queue_rcpt_states_free(m->st, m->env.rcpt_count);
	envelope_deinit(&m->env);
}

static const char *
cli_queue_status_name(const struct queue_rcpt_state *s)
{
	switch (s->status) {
	case QUEUE_RCPT_NEW:
		return "queued";
	case QUEUE_RCPT_DEFERRED:
		return "deferred";
	case QUEUE_RCPT_FAILED:
		return "failed";
	case QUEUE_RCPT_DONE:
		return s->how[0] != '\0' ? s->how : "done";
	}
	return "?";
}

static void
cli_queue_print_rcpt(const struct cli_queue_msg *m, size_t i, int verbose)
{
	const struct queue_rcpt_state *s = &m->st[i];
	char when[32], last[32];

	printf("    %-40s %s", m->env.rcpts[i].address,
	    cli_queue_status_name(s));
	if (s->status == QUEUE_RCPT_DEFERRED) {
		cli_queue_time(when, sizeof(when), s->next_try);
		printf(" tries=%d next=%s dsn=%s", s->count, when, s->dsn);
	} else if (s->status == QUEUE_RCPT_FAILED)
		printf(" dsn=%s", s->dsn);
	printf("\n");
	if (verbose && s->text != NULL) {
		cli_queue_time(last, sizeof(last), s->last_try);
		printf("        last=%s relay=%s reply=\"%s\"\n", last,
		    s->remote != NULL ? s->remote : "-", s->text);
	}
}

/* IDs in queue/, sorted (IDs sort by time); none when it is missing. */
static char **
cli_queue_ids(const struct config *conf, size_t *n_r)
{
	int bad;

	return queue_ids_sorted(conf->spool_dir, n_r, &bad);
}

struct cli_queue_dest {
	char	*domain;
	size_t	 count;
};

static int
cli_queue_list(const struct config *conf, int held_only, const char *account)
{
	struct cli_queue_dest *dests = NULL;
	struct cli_queue_msg m;
	const char *error;
	char **ids, when[32];
	size_t n, i, j, k, ndests = 0, msgs = 0, rcpts = 0;
	int64_t oldest = 0;

	ids = cli_queue_ids(conf, &n);
	for (i = 0; i < n; i++) {
		if (cli_queue_load(conf, ids[i], &m, &error) < 0) {
			/* gone meanwhile, or being written */
			free(ids[i]);
			continue;
		}
		if ((held_only && !m.held) || (account != NULL &&
		    (m.env.auth == NULL || strcasecmp(m.env.auth,
		    account) != 0))) {
			cli_queue_msg_free(&m);
			free(ids[i]);
			continue;
		}
		msgs++;
		if (oldest == 0 || m.env.time < oldest)
			oldest = m.env.time;
		cli_queue_time(when, sizeof(when), m.env.time);
		printf("%s %8zu %s <%s>%s", m.id, m.size, when,
		    m.env.sender, m.held ? " HELD" : "");
		if (m.held)
			printf(" by=%s reason=\"%s\"", m.hold.by,
			    m.hold.reason);
		printf("\n");
		for (j = 0; j < m.env.rcpt_count; j++) {
			const char *at = strrchr(m.env.rcpts[j].address, '@');
			const char *dom = m.env.rcpts[j].mailbox != NULL ?
			    "(local)" : at != NULL ? at + 1 : "?";

			cli_queue_print_rcpt(&m, j, 0);
			if (m.st[j].status == QUEUE_RCPT_DONE)
				continue;
			rcpts++;
			for (k = 0; k < ndests; k++)
				if (strcasecmp(dests[k].domain, dom) == 0)
					break;
			if (k == ndests) {
				dests = xreallocarray(dests, ndests + 1,
				    sizeof(*dests));
				dests[ndests].domain = xstrdup(dom);
				dests[ndests++].count = 0;
			}
			dests[k].count++;
		}
		cli_queue_msg_free(&m);
		free(ids[i]);
	}
	free(ids);
	cli_queue_time(when, sizeof(when), oldest);
	printf("-- messages=%zu recipients=%zu oldest=%s\n", msgs, rcpts,
	    msgs > 0 ? when : "-");
	for (k = 0; k < ndests; k++) {
		printf("-- destination %s recipients=%zu\n", dests[k].domain,
		    dests[k].count);
		free(dests[k].domain);
	}
	free(dests);
	return 0;
}

static int
cli_queue_show(const struct config *conf, const char *id)
{
	struct cli_queue_msg m;
	const char *error;
	char when[32];
	size_t j;

	if (cli_queue_load(conf, id, &m, &error) < 0) {
		fprintf(stderr, "sekisho: queue show %s: %s\n", id, error);
		return 1;
	}
	cli_queue_time(when, sizeof(when), m.env.time);
	printf("id: %s\narrival: %s\nsize: %zu\nsender: <%s>\n", m.id, when,
	    m.size, m.env.sender);
	if (m.env.auth != NULL)
		printf("auth: %s\n", m.env.auth);
	if (m.env.client != NULL)
		printf("client: %s\n", m.env.client);
	printf("held: %s\n", m.held ? "yes" : "no");
	if (m.held) {
		cli_queue_time(when, sizeof(when), m.hold.time);
		printf("held-at: %s\nheld-by: %s\nhold-reason: %s\n", when,
		    m.hold.by, m.hold.reason);
	}
	printf("recipients:\n");
	for (j = 0; j < m.env.rcpt_count; j++)
		cli_queue_print_rcpt(&m, j, 1);
	cli_queue_msg_free(&m);
	return 0;
}

static int
cli_queue_notify(const struct config *conf, const char *msg)
{
	const char *error;
	int r = queue_control_send(conf->spool_dir, msg, &error);

	if (r < 0) {
		fprintf(stderr, "sekisho: queue: %s\n", error);
		return 1;
	}
	if (r == 0)
		printf("the daemon is not running: the queue is tried when "
		    "it starts\n");
	else
		printf("the daemon was told: %s\n", msg);
	return 0;
}

static int
cli_queue_delete(const struct config *conf, const char *id, int held_only)
{
	const char *error;
	int r = queue_hold_delete(conf->spool_dir, id, held_only, &error);

	if (r <= 0) {
		fprintf(stderr, "sekisho: queue: %s: %s\n", id, error);
		return 1;
	}
	log_info("id=%s queue deleted by=cli", id);
	printf("%s deleted\n", id);
	return 0;
}

static int
cli_queue_hold(const struct config *conf, const char *id, const char *reason)
{
	const char *error;
	char *path = xasprintf("%s/queue/%s", conf->spool_dir, id);
	int ok = access(path, F_OK) == 0;

	free(path);
	if (!ok) {
		fprintf(stderr, "sekisho: queue: %s: no such message\n", id);
		return 1;
	}
	if (queue_hold_mark(conf->spool_dir, id, "cli", NULL,
	    reason != NULL ? reason : "held by the operator", &error) < 0) {
		fprintf(stderr, "sekisho: queue: %s: %s\n", id, error);
		return 1;
	}
	log_info("id=%s queue held by=cli", id);
	printf("%s held\n", id);
	return 0;
}

/* Released: 1; the daemon is told to try it now. */
static int
cli_queue_release_one(const struct config *conf, const char *id)
{
	const char *error;
	char *msg;
	int r = queue_hold_release(conf->spool_dir, id, &error);

	if (r <= 0) {
		fprintf(stderr, "sekisho: queue: %s: %s\n", id, error);
		return r;
	}
	log_info("id=%s queue released by=cli", id);
	printf("%s released\n", id);
	msg = xasprintf("flush %s", id);
	(void)cli_queue_notify(conf, msg);
	free(msg);
	return 1;
}

struct cli_queue_account_ctx {
	const struct config	*conf;
	int			 release;
	size_t			 done, failed;
};

static int
cli_queue_account_one(const struct queue_held *m, void *arg)
{
	struct cli_queue_account_ctx *ctx = arg;
	int r = ctx->release ? cli_queue_release_one(ctx->conf, m->id) :
	    cli_queue_delete(ctx->conf, m->id, 1) == 0 ? 1 : -1;

	if (r > 0)
		ctx->done++;
	else
		ctx->failed++;
	return 0;
}

/* release|delete --account: the account's held messages. */
static int
cli_queue_account(const struct config *conf, const char *account,
    int release)
{
	struct cli_queue_account_ctx ctx = { conf, release, 0, 0 };

	if (queue_hold_each(conf->spool_dir, account, 1,
	    cli_queue_account_one, &ctx) < 0) {
		fprintf(stderr, "sekisho: queue: cannot read %s/queue\n",
		    conf->spool_dir);
		return 1;
	}
	printf("-- account %s held messages %s=%zu failed=%zu\n", account,
	    release ? "released" : "deleted", ctx.done, ctx.failed);
	return ctx.failed > 0 ? 1 : 0;
}

int
cli_queue(const struct config *conf, int argc, char **argv)
{
	const char *cmd = argc > 0 ? argv[0] : "";
	char *msg;
	int r;

	if (strcmp(cmd, "list") == 0) {
		const char *account = NULL;
		int held = 0, i;

		for (i = 1; i < argc; i++) {
			if (strcmp(argv[i], "--held") == 0)
				held = 1;
			else if (strcmp(argv[i], "--account") == 0 &&
			    i + 1 < argc)
				account = argv[++i];
			else
				goto usage;
		}
		return cli_queue_list(conf, held, account);
	}
	if ((strcmp(cmd, "release") == 0 || strcmp(cmd, "delete") == 0) &&
	    argc == 3 && strcmp(argv[1], "--account") == 0)
		return cli_queue_account(conf, argv[2],
		    strcmp(cmd, "release") == 0);
	if (strcmp(cmd, "hold") == 0 && argc == 3 && queue_id_valid(argv[1]))
		return cli_queue_hold(conf, argv[1], argv[2]);
	if (strcmp(cmd, "flush") == 0 && argc <= 2) {
		if (argc == 1)
			return cli_queue_notify(conf, "flush");
		if (!queue_id_valid(argv[1]))
			goto bad_id;
		msg = xasprintf("flush %s", argv[1]);
		r = cli_queue_notify(conf, msg);
		free(msg);
		return r;
	}
	if (argc != 2)
		goto usage;
	if (!queue_id_valid(argv[1]))
		goto bad_id;
	if (strcmp(cmd, "show") == 0)
		return cli_queue_show(conf, argv[1]);
	if (strcmp(cmd, "delete") == 0)
		return cli_queue_delete(conf, argv[1], 0);
	if (strcmp(cmd, "hold") == 0)
		return cli_queue_hold(conf, argv[1], NULL);
	if (strcmp(cmd, "release") == 0)
		return cli_queue_release_one(conf, argv[1]) > 0 ? 0 : 1;
usage:
	fprintf(stderr, "usage:\n");
	cli_queue_usage();
	return 2;
bad_id:
	fprintf(stderr, "sekisho: queue: '%s' is not a queue ID (20 "
	    "upper-case hex digits)\n", argv[1]);
	return 2;
}
