/*
 * test_milter_spool: the header section read for the filters and the
 * spool file written again with their changes (src/milter/milter_spool.c):
 * our Received stays first whatever a filter asks, folded fields stay
 * whole, the body is copied or replaced with CRLF line ends.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/str.h"
#include "milter/milter.h"
#include "milter/milter_proto.h"
#include "milter/milter_spool.h"
#include "queue/envelope.h"
#include "queue/spool.h"
#include "unit.h"

#define ID	"0123456789ABCDEF0123"

static const char msg_text[] =
    "Received: from client (x [127.0.0.1])\r\n\tby mx; now\r\n"
    "From : someone@example.org\r\n"
    "Subject: a folded\r\n subject\r\n"
    "X-Change-Me: old\r\n"
    "X-Delete-Me: gone\r\n"
    "\r\n"
    "body line 1\r\n"
    "body line 2\r\n";

static char dir[] = "/tmp/test_milter_spool.XXXXXX";

/* incoming/ID with an envelope and msg_text; returns an fd on it and the
 * message's offset. */
static int
make_file(size_t *offset_r)
{
	struct envelope env;
	struct str s = STR_INIT;
	char path[256];
	int fd;

	envelope_init(&env);
	memcpy(env.id, ID, sizeof(env.id));
	env.time = 1;
	env.sender = strdup("sender@example.org");
	env.client = strdup("127.0.0.1");
	env.helo = strdup("client");
	env.protocol = strdup("ESMTP");
	envelope_add_rcpt(&env, "bob@example.jp", "bob@example.jp");
	UNIT_CHECK(envelope_format(&env, &s) == 0);
	*offset_r = s.len;
	str_append(&s, msg_text);
	snprintf(path, sizeof(path), "%s/incoming/%s", dir, ID);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	UNIT_CHECK(fd >= 0);
	UNIT_CHECK(write(fd, s.s, s.len) == (ssize_t)s.len);
	str_deinit(&s);
	envelope_deinit(&env);
	return fd;
}

static void
test_fields(void)
{
	struct milter_field *f;
	size_t n, offset;
	off_t body, end;
	const char *error;
	int fd = make_file(&offset);

	UNIT_CHECK(milter_spool_fields(fd, offset, &f, &n, &body, &end,
	    &error) == 0);
	UNIT_CHECK_INT(n, 5);
	if (n == 5) {
		UNIT_CHECK_STR(f[0].name, "Received");
		UNIT_CHECK_STR(f[0].value, " from client (x [127.0.0.1])\n"
		    "\tby mx; now");
		UNIT_CHECK_STR(f[1].name, "From");
		UNIT_CHECK_STR(f[1].value, " someone@example.org");
		UNIT_CHECK_STR(f[2].value, " a folded\n subject");
		UNIT_CHECK_STR(f[2].raw, "Subject: a folded\r\n subject\r\n");
	}
	UNIT_CHECK_INT(end - body, strlen("body line 1\r\nbody line 2\r\n"));
	milter_spool_fields_free(f, n);
	close(fd);
}

static int
resolve(void *arg, const char *address, char **mailbox_r)
{
	(void)arg;
	*mailbox_r = NULL;
	if (strcmp(address, "alice@example.jp") == 0) {
		*mailbox_r = strdup(address);
		return 0;
	}
	if (strcmp(address, "nobody@example.jp") == 0)
		return 2;
	return 1;
}

static void
change(struct milter_job *job, char cmd, uint32_t index, const char *name,
    const char *value)
{
	struct milter_change *c;

	job->changes = realloc(job->changes, (job->nchanges + 1) *
	    sizeof(*job->changes));
	c = &job->changes[job->nchanges++];
	c->cmd = cmd;
	c->index = index;
	c->name = strdup(name);
	c->value = value != NULL ? strdup(value) : NULL;
}

static char *
read_file(void)
{
	char path[256], *buf = calloc(1, 65536);
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/incoming/%s", dir, ID);
	fd = open(path, O_RDONLY);
	n = read(fd, buf, 65535);
	UNIT_CHECK(n > 0);
	close(fd);
	return buf;
}

static void
test_rewrite(void)
{
	struct milter_job *job = milter_job_new();
	struct envelope env;
	struct str added = STR_INIT;
	size_t offset, nadded = 0, consumed;
	const char *error;
	char *text;
	int fd = make_file(&offset), corrupt;

	change(job, MILTER_R_INSHEADER, 0, "X-Top", "first after ours");
	change(job, MILTER_R_ADDHEADER, 0, "X-Added", "multi\n\tline");
	change(job, MILTER_R_CHGHEADER, 1, "x-change-me", "new");
	change(job, MILTER_R_CHGHEADER, 1, "X-Delete-Me", "");
	change(job, MILTER_R_CHGHEADER, 1, "Received", "forged");
	change(job, MILTER_R_CHGHEADER, 2, "Received", "");
	change(job, MILTER_R_CHGFROM, 0, "new@example.org", NULL);
	change(job, MILTER_R_ADDRCPT, 0, "alice@example.jp", NULL);
	change(job, MILTER_R_ADDRCPT, 0, "nobody@example.jp", NULL);
	change(job, MILTER_R_ADDRCPT, 0, "far@example.net", NULL);
	change(job, MILTER_R_DELRCPT, 0, "BOB@example.jp", NULL);
	lseek(fd, 0, SEEK_SET);
	UNIT_CHECK(spool_read_envelope(fd, &env, &offset, &corrupt, &error)
	    == 0);
	UNIT_CHECK(milter_spool_rewrite(dir, ID, fd, offset, &env, job,
	    resolve, NULL, &added, &nadded, &error) == 0);
	envelope_deinit(&env);
	UNIT_CHECK_INT(nadded, 3);
	text = read_file();
	UNIT_CHECK(envelope_parse(text, strlen(text), &env, &consumed,
	    &error) == 0);
	UNIT_CHECK_STR(env.sender, "new@example.org");
	UNIT_CHECK_INT(env.rcpt_count, 2);
	if (env.rcpt_count == 2) {
		UNIT_CHECK_STR(env.rcpts[0].address, "alice@example.jp");
		UNIT_CHECK_STR(env.rcpts[0].mailbox, "alice@example.jp");
		UNIT_CHECK_STR(env.rcpts[1].address, "far@example.net");
		UNIT_CHECK(env.rcpts[1].mailbox == NULL);
	}
	envelope_deinit(&env);
	UNIT_CHECK_STR(text + consumed,
	    "Received: from client (x [127.0.0.1])\r\n\tby mx; now\r\n"
	    "X-Top: first after ours\r\n"
	    "From : someone@example.org\r\n"
	    "Subject: a folded\r\n subject\r\n"
	    "X-Change-Me: new\r\n"
	    "X-Added: multi\r\n\tline\r\n"
	    "\r\n"
	    "body line 1\r\n"
	    "body line 2\r\n");
	free(text);
	close(fd);
	milter_job_free(job);
	str_deinit(&added);

	/* a new body, LF line ends made CRLF */
	job = milter_job_new();
	job->body_replaced = 1;
	str_append(&job->body, "new\nbody\r\n");
	fd = make_file(&offset);
	UNIT_CHECK(spool_read_envelope(fd, &env, &offset, &corrupt, &error)
	    == 0);
	UNIT_CHECK(milter_spool_rewrite(dir, ID, fd, offset, &env, job,
	    resolve, NULL, &added, &nadded, &error) == 0);
	envelope_deinit(&env);
	text = read_file();
	UNIT_CHECK(strstr(text, "X-Delete-Me: gone\r\n\r\nnew\r\nbody\r\n")
	    != NULL);
	UNIT_CHECK(strstr(text, "body line") == NULL);
	free(text);
	close(fd);
	milter_job_free(job);

	/* every recipient deleted: 1, the file left alone */
	job = milter_job_new();
	change(job, MILTER_R_DELRCPT, 0, "bob@example.jp", NULL);
	fd = make_file(&offset);
	UNIT_CHECK(spool_read_envelope(fd, &env, &offset, &corrupt, &error)
	    == 0);
	UNIT_CHECK(milter_spool_rewrite(dir, ID, fd, offset, &env, job,
	    resolve, NULL, &added, &nadded, &error) == 1);
	envelope_deinit(&env);
	close(fd);
	milter_job_free(job);
	str_deinit(&added);
}

int
main(void)
{
	char path[256];

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/incoming", dir);
	mkdir(path, 0700);
	test_fields();
	test_rewrite();
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		fprintf(stderr, "cleanup failed\n");
	UNIT_END();
}
