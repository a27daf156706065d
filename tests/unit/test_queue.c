/*
 * test_queue: the spool (commit, abort, purge), Maildir delivery (bytes,
 * names, sizes) and the queue runner (journal, remote recipients,
 * corrupt files, the threaded runner), each in a fresh mkdtemp()
 * directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/str.h"
#include "queue/envelope.h"
#include "queue/maildir.h"
#include "queue/queue.h"
#include "queue/spool.h"
#include "unit.h"
#include "unit_queue.h"

static char base[64];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
fresh_dir(void)
{
	if (base[0] != '\0')
		nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(base, sizeof(base), "/tmp/sekisho-test-queue-XXXXXX");
	if (mkdtemp(base) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
}

/* base/FMT..., in one of four rotating buffers. */
static char *path_of(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static char *
path_of(const char *fmt, ...)
{
	static char buf[4][512];
	static int n;
	char *p = buf[n++ % 4];
	char tail[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tail, sizeof(tail), fmt, ap);
	va_end(ap);
	snprintf(p, 512, "%s/%s", base, tail);
	return p;
}

static int
exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Entries in a directory, without . and ..; first name into first_r. */
static int
count_dir(const char *path, char *first_r, size_t first_len)
{
	struct dirent *de;
	DIR *dir;
	int n = 0;

	if ((dir = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n++ == 0 && first_r != NULL)
			snprintf(first_r, first_len, "%s", de->d_name);
	}
	closedir(dir);
	return n;
}

static void
read_file(const char *path, struct str *out)
{
	char buf[4096];
	ssize_t n;
	int fd;

	str_clear(out);
	if ((fd = open(path, O_RDONLY)) < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		str_append_n(out, buf, (size_t)n);
	close(fd);
}

static void
write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || spool_write_full(fd, data, len) < 0) {
		perror(path);
		exit(2);
	}
	close(fd);
}

/* Commit a message for the given rcpts (address, mailbox pairs; mailbox
 * NULL for remote). */
static void
commit_message(const struct config *c, char id_r[QUEUE_ID_LEN + 1],
    const char *body, const char *const *rcpts, size_t n)
{
	struct envelope env;
	const char *error = NULL;
	size_t i;
	int fd;

	envelope_init(&env);
	env.time = 1763800000;
	env.sender = strdup("alice@example.jp");
	for (i = 0; i < n; i++)
		envelope_add_rcpt(&env, rcpts[2 * i], rcpts[2 * i + 1]);
	if (spool_init(c->spool_dir, &error) < 0 ||
	    spool_create(c->spool_dir, &env, "Received: by mx\r\n", &fd,
	    &error) < 0 ||
	    spool_write_full(fd, body, strlen(body)) < 0 ||
	    spool_commit(c->spool_dir, env.id, &error) < 0) {
		fprintf(stderr, "commit_message: %s\n", error);
		exit(2);
	}
	close(fd);
	memcpy(id_r, env.id, QUEUE_ID_LEN + 1);
	envelope_deinit(&env);
}

static struct config
test_config(void)
{
	return unit_queue_config(base);
}

static void
test_spool_commit(void)
{
	struct envelope env, back;
	struct str content = STR_INIT, want = STR_INIT;
	const char *error = NULL;
	char *spool;
	size_t consumed;
	int fd;

	fresh_dir();
	spool = test_config().spool_dir;
	UNIT_CHECK_INT(spool_init(spool, &error), 0);
	UNIT_CHECK(exists(path_of("spool/incoming")));
	UNIT_CHECK(exists(path_of("spool/queue")));
	/* Again: existing directories are fine. */
	UNIT_CHECK_INT(spool_init(spool, &error), 0);

	envelope_init(&env);
	env.time = 1763800000;
	env.sender = strdup("alice@example.jp");
	envelope_add_rcpt(&env, "bob@example.jp", "bob@example.jp");
	UNIT_CHECK_INT(spool_create(spool, &env, "Received: by mx\r\n", &fd,
	    &error), 0);
	UNIT_CHECK(queue_id_valid(env.id));
	UNIT_CHECK(exists(path_of("spool/incoming/%s", env.id)));
	UNIT_CHECK(!exists(path_of("spool/queue/%s", env.id)));
	UNIT_CHECK_INT(spool_write_full(fd, "Subject: x\r\n\r\nhi\r\n", 18),
	    0);
	UNIT_CHECK_INT(spool_commit(spool, env.id, &error), 0);
	close(fd);
	UNIT_CHECK_INT(count_dir(path_of("spool/incoming"), NULL, 0),
	    0);
	UNIT_CHECK(exists(path_of("spool/queue/%s", env.id)));

	/* The file is the envelope, the prepend, then the message. */
	envelope_format(&env, &want);
	str_append(&want, "Received: by mx\r\nSubject: x\r\n\r\nhi\r\n");
	read_file(path_of("spool/queue/%s", env.id), &content);
	UNIT_CHECK_INT(content.len, want.len);
	UNIT_CHECK_STR(str_c(&content), str_c(&want));
	UNIT_CHECK_INT(envelope_parse(content.s, content.len, &back,
	    &consumed, &error), 0);
	UNIT_CHECK_STR(content.s + consumed,
	    "Received: by mx\r\nSubject: x\r\n\r\nhi\r\n");
	envelope_deinit(&back);

	struct stat st;
	UNIT_CHECK_INT(stat(path_of("spool/queue/%s", env.id), &st), 0);
	UNIT_CHECK_INT(st.st_mode & 0777, 0600);

	/* A second commit of the same id has nothing to move. */
	UNIT_CHECK_INT(spool_commit(spool, env.id, &error), -1);
	/* A bad id is refused before it becomes a path. */
	UNIT_CHECK_INT(spool_commit(spool, "../queue/x", &error), -1);
	UNIT_CHECK_STR(error, "bad queue id");

	/* An envelope that cannot be written leaves nothing behind. */
	struct envelope badenv;
	envelope_init(&badenv);
	badenv.sender = strdup("a\r\nb");
	envelope_add_rcpt(&badenv, "bob@example.jp", NULL);
	UNIT_CHECK_INT(spool_create(spool, &badenv, NULL, &fd, &error), -1);
	UNIT_CHECK_INT(count_dir(path_of("spool/incoming"), NULL, 0),
	    0);
	envelope_deinit(&badenv);

	envelope_deinit(&env);
	str_deinit(&content);
	str_deinit(&want);
}

static void
test_spool_abort_purge(void)
{
	struct envelope env;
	const char *error = NULL;
	char *spool, id[QUEUE_ID_LEN + 1];
	int fd, i;

	fresh_dir();
	spool = test_config().spool_dir;
	UNIT_CHECK_INT(spool_init(spool, &error), 0);

	envelope_init(&env);
	env.sender = strdup("");
	envelope_add_rcpt(&env, "bob@example.jp", "bob@example.jp");
	UNIT_CHECK_INT(spool_create(spool, &env, NULL, &fd, &error), 0);
	close(fd);
	memcpy(id, env.id, sizeof(id));
	spool_abort(spool, id);
	UNIT_CHECK(!exists(path_of("spool/incoming/%s", id)));
	UNIT_CHECK(!exists(path_of("spool/queue/%s", id)));
	/* Aborting twice is harmless. */
	spool_abort(spool, id);

	/* Purge: incoming/ emptied, queue/ untouched. */
	for (i = 0; i < 3; i++) {
		env.id[0] = '\0';
		UNIT_CHECK_INT(spool_create(spool, &env, NULL, &fd, &error),
		    0);
		close(fd);
	}
	write_file(path_of("spool/incoming/stray"), "x", 1);
	write_file(path_of("spool/queue/%s", id), "keep", 4);
	UNIT_CHECK_INT(count_dir(path_of("spool/incoming"), NULL, 0),
	    4);
	UNIT_CHECK_INT(spool_purge_incoming(spool, &error), 0);
	UNIT_CHECK_INT(count_dir(path_of("spool/incoming"), NULL, 0),
	    0);
	UNIT_CHECK(exists(path_of("spool/queue/%s", id)));
	envelope_deinit(&env);
}

/* The session's way: it formats the envelope into a descriptor. */
static void
test_spool_incoming_check(void)
{
	struct envelope env;
	struct str head = STR_INIT;
	const char *error = NULL;
	char *spool, other[QUEUE_ID_LEN + 1];
	int fd;

	fresh_dir();
	spool = test_config().spool_dir;
	UNIT_CHECK_INT(spool_init(spool, &error), 0);
	envelope_init(&env);
	queue_id_new(env.id);
	env.sender = strdup("a@example.jp");
	envelope_add_rcpt(&env, "bob@example.jp", "bob@example.jp");
	envelope_format(&env, &head);

	UNIT_CHECK_INT(spool_open_incoming(spool, env.id, &fd, &error), 0);
	/* Nothing written yet: not a spool file. */
	UNIT_CHECK_INT(spool_check_incoming(spool, env.id, &error), -1);
	UNIT_CHECK_STR(error, "envelope not terminated by an empty line");
	UNIT_CHECK_INT(spool_write_full(fd, head.s, head.len), 0);
	UNIT_CHECK_INT(spool_write_full(fd, "x\r\n", 3), 0);
	close(fd);
	UNIT_CHECK_INT(spool_check_incoming(spool, env.id, &error), 0);
	UNIT_CHECK_INT(spool_commit(spool, env.id, &error), 0);
	UNIT_CHECK(exists(path_of("spool/queue/%s", env.id)));

	/* A second file under a queued id never replaces the queued one
	 * (the session chooses ids: docs/security.md). */
	UNIT_CHECK_INT(spool_open_incoming(spool, env.id, &fd, &error), 0);
	UNIT_CHECK_INT(spool_write_full(fd, head.s, head.len), 0);
	UNIT_CHECK_INT(spool_write_full(fd, "other\r\n", 7), 0);
	close(fd);
	struct stat before, after;

	UNIT_CHECK_INT(stat(path_of("spool/queue/%s", env.id), &before), 0);
	UNIT_CHECK_INT(spool_commit(spool, env.id, &error), -1);
	UNIT_CHECK_STR(error, "queue id already queued");
	UNIT_CHECK_INT(stat(path_of("spool/queue/%s", env.id), &after), 0);
	UNIT_CHECK(before.st_ino == after.st_ino &&
	    before.st_size == after.st_size);
	spool_abort(spool, env.id);

	UNIT_CHECK_INT(spool_open_incoming(spool, "../x", &fd, &error), -1);
	UNIT_CHECK_STR(error, "bad queue id");

	/* A file whose envelope names another id is refused. */
	queue_id_new(other);
	UNIT_CHECK_INT(spool_open_incoming(spool, other, &fd, &error), 0);
	UNIT_CHECK_INT(spool_write_full(fd, head.s, head.len), 0);
	close(fd);
	UNIT_CHECK_INT(spool_check_incoming(spool, other, &error), -1);
	UNIT_CHECK_STR(error, "envelope id is not the file name");
	UNIT_CHECK_INT(spool_open_incoming(spool, other, &fd, &error), -1);
	spool_abort(spool, other);
	UNIT_CHECK_INT(spool_check_incoming(spool, other, &error), -1);
	envelope_deinit(&env);
	str_deinit(&head);
}

static void
test_maildir_path(void)
{
	static const struct {
		const char	*mailbox;
		const char	*want;
	} rows[] = {
		{ "bob@example.jp", "/m/example.jp/bob/Maildir" },
		{ "a.b+c@sub.example.jp", "/m/sub.example.jp/a.b+c/Maildir" },
		{ "bob", NULL },
		{ "@example.jp", NULL },
		{ "bob@", NULL },
		{ "a@b@c", NULL },
		{ "../x@example.jp", NULL },
		{ ".bob@example.jp", NULL },
		{ "bob@..", NULL },
		{ "bob@.example.jp", NULL },
		{ "bob@example.jp/../../etc", NULL },
		{ "b/ob@example.jp", NULL },
		{ "b\nob@example.jp", NULL },
		{ "", NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *p = maildir_path("/m", rows[i].mailbox);

		UNIT_CHECK_STR(p, rows[i].want);
		free(p);
	}
}

/* The reference conversion: CRLF to LF, anything else unchanged. */
static void
crlf_to_lf(const char *in, size_t len, struct str *out)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
			continue;
		str_append_c(out, in[i]);
	}
}

static void
test_maildir_deliver(void)
{
	struct str msg = STR_INIT, want = STR_INIT, got = STR_INIT;
	struct stat st;
	const char *error = NULL;
	char *root, *name = NULL, *p, expect[64];
	int fd;

	fresh_dir();
	root = test_config().maildir_root;
	/* Junk before the offset is skipped; a lone CR and LF stay. */
	str_append(&msg, "ENVELOPE\n\n");
	str_append(&msg, "Subject: hi\r\n\r\nline one\r\nlone\rcr\nlf\r\n"
	    ".dot\r\nend\r");
	write_file(path_of("spool.msg"), msg.s, msg.len);
	fd = open(path_of("spool.msg"), O_RDONLY);

	UNIT_CHECK_INT(maildir_deliver(root, "bob@example.jp", "mx/a:b",
	    "Received: by mx\r\n", fd, 10, &name, &error), 0);
	if (name == NULL) {
		fprintf(stderr, "maildir_deliver: %s\n", error);
		return;
	}
	str_append(&want, "Received: by mx\nSubject: hi\n\nline one\n"
	    "lone\rcr\nlf\n.dot\nend\r");
	read_file(path_of("mail/example.jp/bob/Maildir/new/%s", name),
	    &got);
	UNIT_CHECK_INT(got.len, want.len);
	UNIT_CHECK_STR(str_c(&got), str_c(&want));
	UNIT_CHECK_INT(stat(path_of("mail/example.jp/bob/Maildir/new/%s",
	    name), &st), 0);
	UNIT_CHECK_INT(st.st_mode & 0777, 0600);
	snprintf(expect, sizeof(expect), ",S=%lld", (long long)st.st_size);
	p = strstr(name, ",S=");
	UNIT_CHECK_STR(p, expect);
	/* SECONDS.M<usec>P<pid>Q<n>.<host>, host with / and : encoded */
	snprintf(expect, sizeof(expect), "P%ldQ", (long)getpid());
	UNIT_CHECK(strstr(name, expect) != NULL);
	UNIT_CHECK(strchr(name, '.') != NULL && strchr(name, '.')[1] == 'M');
	/* ,W= (size with CRLF, for POP3) then ,S= */
	UNIT_CHECK(strstr(name, ".mx\\057a\\072b,W=") != NULL);
	UNIT_CHECK(strchr(name, '/') == NULL && strchr(name, ':') == NULL);
	UNIT_CHECK_INT(count_dir(path_of("mail/example.jp/bob/Maildir/tmp"), NULL, 0), 0);
	UNIT_CHECK(exists(path_of("mail/example.jp/bob/Maildir/cur")));
	UNIT_CHECK_INT(stat(path_of("mail/example.jp/bob/Maildir"),
	    &st), 0);
	UNIT_CHECK_INT(st.st_mode & 0777, 0700);
	free(name);
	name = NULL;
	close(fd);

	/* Return-Path fields of the header section are left out; a
	 * field that only starts like one, and the body, stay. */
	str_clear(&msg);
	str_clear(&want);
	str_append(&msg, "Return-Path: <x@example.net>\r\nSubject: a\r\n"
	    "RETURN-PATH:\r\n\t<y@example.net>\r\nReturn-Pathy: k\r\nRe\r\n"
	    "\r\nReturn-Path: <in-body>\r\n");
	write_file(path_of("rp.msg"), msg.s, msg.len);
	fd = open(path_of("rp.msg"), O_RDONLY);
	UNIT_CHECK_INT(maildir_deliver(root, "rp@example.jp", "mx",
	    "Return-Path: <>\r\n", fd, 0, &name, &error), 0);
	read_file(path_of("mail/example.jp/rp/Maildir/new/%s", name), &got);
	UNIT_CHECK_STR(str_c(&got), "Return-Path: <>\nSubject: a\n"
	    "Return-Pathy: k\nRe\n\nReturn-Path: <in-body>\n");
	free(name);
	name = NULL;
	close(fd);
	str_clear(&msg);
	str_append(&msg, "Return-P");	/* held at the very end */
	write_file(path_of("rp2.msg"), msg.s, msg.len);
	fd = open(path_of("rp2.msg"), O_RDONLY);
	UNIT_CHECK_INT(maildir_deliver(root, "rp@example.jp", "mx", NULL,
	    fd, 0, &name, &error), 0);
	read_file(path_of("mail/example.jp/rp/Maildir/new/%s", name), &got);
	UNIT_CHECK_STR(str_c(&got), "Return-P");
	free(name);
	name = NULL;
	close(fd);

	/* Larger than one read chunk, with a CRLF split across the
	 * 64 KiB boundary and a CR at the very end of a chunk. */
	str_clear(&msg);
	str_clear(&want);
	while (msg.len < 65535)
		str_append_c(&msg, 'x');
	str_append(&msg, "\r\n");
	while (msg.len < 2 * 65536 - 1)
		str_append_c(&msg, 'y');
	str_append(&msg, "\rz\r\n");
	crlf_to_lf(msg.s, msg.len, &want);
	write_file(path_of("big.msg"), msg.s, msg.len);
	fd = open(path_of("big.msg"), O_RDONLY);
	UNIT_CHECK_INT(maildir_deliver(root, "bob@example.jp", "mx", NULL,
	    fd, 0, &name, &error), 0);
	read_file(path_of("mail/example.jp/bob/Maildir/new/%s", name),
	    &got);
	UNIT_CHECK_INT(got.len, want.len);
	UNIT_CHECK(got.len == want.len && memcmp(got.s, want.s, got.len) == 0);
	snprintf(expect, sizeof(expect), ",S=%zu", want.len);
	UNIT_CHECK_STR(strstr(name, ",S="), expect);
	free(name);
	name = NULL;
	close(fd);

	/* A bad mailbox creates nothing. */
	fd = open(path_of("spool.msg"), O_RDONLY);
	UNIT_CHECK_INT(maildir_deliver(root, "../x@example.jp", "mx", NULL,
	    fd, 0, &name, &error), -1);
	UNIT_CHECK_STR(error, "bad mailbox path");
	UNIT_CHECK(name == NULL);
	UNIT_CHECK_INT(count_dir(root, NULL, 0), 1);

	/* A read error leaves nothing in new/ and nothing in tmp/. */
	int wfd = open(path_of("spool.msg"), O_WRONLY);
	UNIT_CHECK_INT(maildir_deliver(root, "err@example.jp", "mx", NULL,
	    wfd, 0, &name, &error), -1);
	close(wfd);
	UNIT_CHECK_INT(count_dir(path_of("mail/example.jp/err/Maildir/new"), NULL, 0), 0);
	UNIT_CHECK_INT(count_dir(path_of("mail/example.jp/err/Maildir/tmp"), NULL, 0), 0);

	/* 1000 deliveries: 1000 distinct names, tmp/ empty. */
	int i, ok = 1;
	for (i = 0; i < 1000 && ok; i++)
		ok = maildir_deliver(root, "many@example.jp", "mx", NULL, fd,
		    0, NULL, &error) == 0;
	UNIT_CHECK(ok);
	UNIT_CHECK_INT(count_dir(path_of("mail/example.jp/many/Maildir/new"), NULL, 0), 1000);
	UNIT_CHECK_INT(count_dir(path_of("mail/example.jp/many/Maildir/tmp"), NULL, 0), 0);
	close(fd);

	str_deinit(&msg);
	str_deinit(&want);
	str_deinit(&got);
}

static const char body[] = "Subject: test\r\n\r\nhello\r\n";
static const char body_lf[] = "Return-Path: <alice@example.jp>\n"
    "Received: by mx\nSubject: test\n\nhello\n";

static void
check_one_delivery(const char *local, const char *domain)
{
	struct str got = STR_INIT;
	char dir[512], name[256];

	snprintf(dir, sizeof(dir), "%s/mail/%s/%s/Maildir/new", base, domain,
	    local);
	UNIT_CHECK_INT(count_dir(dir, name, sizeof(name)), 1);
	if (count_dir(dir, NULL, 0) == 1) {
		snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/%s",
		    name);
		read_file(dir, &got);
		UNIT_CHECK_STR(str_c(&got), body_lf);
	}
	str_deinit(&got);
}

static void
test_run_once(void)
{
	static const char *const mixed[] = {
		"bob@example.jp", "bob@example.jp",
		"carol@remote.example", NULL,
		"dave@example.jp", "dave@example.jp",
	};
	static const char *const local[] = {
		"erin@example.jp", "erin@example.jp",
		"Frank@example.jp", "frank@example.jp",
	};
	struct config c;
	struct str journal = STR_INIT;
	const char *error = NULL;
	char id1[QUEUE_ID_LEN + 1], id2[QUEUE_ID_LEN + 1];

	fresh_dir();
	c = test_config();
	commit_message(&c, id1, body, mixed, 3);
	commit_message(&c, id2, body, local, 2);

	UNIT_CHECK_INT(queue_run_once(&c, &error), 1);
	check_one_delivery("bob", "example.jp");
	check_one_delivery("dave", "example.jp");
	check_one_delivery("erin", "example.jp");
	check_one_delivery("frank", "example.jp");
	/* Nothing for the remote recipient: one domain only. */
	UNIT_CHECK_INT(count_dir(c.maildir_root, NULL, 0), 1);
	UNIT_CHECK_INT(count_dir(path_of("mail/example.jp"), NULL, 0),
	    4);
	/* The mixed message stays with its journal; the local one is gone. */
	UNIT_CHECK(exists(path_of("spool/queue/%s", id1)));
	read_file(path_of("spool/queue/%s.done", id1), &journal);
	UNIT_CHECK_STR(str_c(&journal), "0 delivered\n2 delivered\n");
	UNIT_CHECK(!exists(path_of("spool/queue/%s", id2)));
	UNIT_CHECK(!exists(path_of("spool/queue/%s.done", id2)));

	/* Again: nothing delivered twice, the journal unchanged. */
	UNIT_CHECK_INT(queue_run_once(&c, &error), 0);
	check_one_delivery("bob", "example.jp");
	check_one_delivery("dave", "example.jp");
	check_one_delivery("erin", "example.jp");
	read_file(path_of("spool/queue/%s.done", id1), &journal);
	UNIT_CHECK_STR(str_c(&journal), "0 delivered\n2 delivered\n");
	UNIT_CHECK_INT(count_dir(path_of("spool/queue"), NULL, 0), 2);
	str_deinit(&journal);
}

/* A crash after delivering recipient 0 but before the rest. */
static void
test_journal_resume(void)
{
	static const char *const rcpts[] = {
		"bob@example.jp", "bob@example.jp",
		"carol@example.jp", "carol@example.jp",
	};
	struct config c;
	const char *error = NULL;
	char id[QUEUE_ID_LEN + 1];

	fresh_dir();
	c = test_config();
	commit_message(&c, id, body, rcpts, 2);
	/* A torn last line (no LF) does not count as done. */
	write_file(path_of("spool/queue/%s.done", id),
	    "0 delivered\n1 deliv", 19);
	UNIT_CHECK_INT(queue_run_once(&c, &error), 1);
	UNIT_CHECK(!exists(path_of("mail/example.jp/bob")));
	check_one_delivery("carol", "example.jp");
	UNIT_CHECK_INT(count_dir(path_of("spool/queue"), NULL, 0), 0);

	/* A journal left alone by a crash between the two unlinks is
	 * removed by the next scan. */
	write_file(path_of("spool/queue/%s.done", id), "0 delivered\n",
	    12);
	UNIT_CHECK_INT(queue_run_once(&c, &error), 0);
	UNIT_CHECK_INT(count_dir(path_of("spool/queue"), NULL, 0), 0);
}

static void
test_corrupt(void)
{
	static const char *const rcpts[] = {
		"bob@example.jp", "bob@example.jp",
	};
	struct config c;
	struct str s = STR_INIT;
	const char *error = NULL;
	char id[QUEUE_ID_LEN + 1], other[QUEUE_ID_LEN + 1];
	const char *bad = "0190A3F2C4B7E1D9A3F2";

	fresh_dir();
	c = test_config();
	commit_message(&c, id, body, rcpts, 1);
	/* An unknown field. */
	static const char unknown[] = "SEKISHO-QUEUE 1\n"
	    "id 0190A3F2C4B7E1D9A3F2\ntime 1\nsender \n"
	    "rcpt bob@example.jp\tbob@example.jp\nmystery 1\n\nx\r\n";
	write_file(path_of("spool/queue/%s", bad), unknown,
	    sizeof(unknown) - 1);
	/* A good envelope under another message's name. */
	read_file(path_of("spool/queue/%s", id), &s);
	queue_id_new(other);
	write_file(path_of("spool/queue/%s", other), s.s, s.len);
	/* No empty line at all. */
	queue_id_new(other);
	write_file(path_of("spool/queue/%s", other), "SEKISHO", 7);

	UNIT_CHECK_INT(queue_run_once(&c, &error), 1);
	UNIT_CHECK(exists(path_of("spool/corrupt/%s", bad)));
	UNIT_CHECK_INT(count_dir(path_of("spool/corrupt"), NULL, 0),
	    3);
	UNIT_CHECK_INT(count_dir(path_of("spool/queue"), NULL, 0), 0);
	/* Only the good message was delivered, once. */
	check_one_delivery("bob", "example.jp");
	str_deinit(&s);
}

/* A delivery error keeps the message; the failure is journaled as
 * deferred, with its retry time, count, status and reason. */
static void
test_retry_kept(void)
{
	static const char *const rcpts[] = {
		"bob@example.jp", "bob@example.jp",
		"evil@example.jp", "../evil@example.jp",
	};
	struct config c;
	struct str journal = STR_INIT;
	const char *error = NULL;
	char id[QUEUE_ID_LEN + 1];

	fresh_dir();
	c = test_config();
	commit_message(&c, id, body, rcpts, 2);
	UNIT_CHECK_INT(queue_run_once(&c, &error), 0);
	check_one_delivery("bob", "example.jp");
	UNIT_CHECK(exists(path_of("spool/queue/%s", id)));
	read_file(path_of("spool/queue/%s.done", id), &journal);
	UNIT_CHECK(strncmp(str_c(&journal), "0 delivered\n1 deferred ", 23)
	    == 0);
	UNIT_CHECK(strstr(str_c(&journal), " 1 4.3.0 ") != NULL);
	UNIT_CHECK(strcmp(str_c(&journal) + journal.len - 18,
	    " bad mailbox path\n") == 0);
	/* not due yet: tried again, nothing more happens */
	UNIT_CHECK_INT(queue_run_once(&c, &error), 0);
	str_clear(&journal);
	read_file(path_of("spool/queue/%s.done", id), &journal);
	UNIT_CHECK(strstr(str_c(&journal), "\n1 deferred ") != NULL);
	UNIT_CHECK(strstr(strstr(str_c(&journal), "\n1 deferred ") + 1,
	    "deferred") == strstr(str_c(&journal), "\n1 deferred ") + 3);
	str_deinit(&journal);
}

static int
wait_for_count(const char *dir, int want)
{
	int i;

	for (i = 0; i < 500; i++) {
		if (count_dir(dir, NULL, 0) == want)
			return 1;
		usleep(10000);
	}
	return 0;
}

static void
test_threads(void)
{
	static const char *const before[] = {
		"bob@example.jp", "bob@example.jp",
	};
	static const char *const after[] = {
		"carol@example.jp", "carol@example.jp",
		"remote@remote.example", NULL,
	};
	struct config c;
	struct queue *q;
	const char *error = NULL;
	char id1[QUEUE_ID_LEN + 1], id2[QUEUE_ID_LEN + 1];
	int fd, i;

	fresh_dir();
	c = test_config();
	/* Acknowledged before a "crash": delivered after the start. */
	commit_message(&c, id1, body, before, 1);
	/* Never acknowledged: purged at the start. */
	write_file(path_of("spool/incoming/%s", id1), "junk", 4);
	(void)fd;

	q = queue_start(&c, &error);
	UNIT_CHECK(q != NULL);
	if (q == NULL) {
		fprintf(stderr, "queue_start: %s\n", error);
		return;
	}
	UNIT_CHECK_INT(count_dir(path_of("spool/incoming"), NULL, 0),
	    0);
	UNIT_CHECK(wait_for_count(path_of("mail/example.jp/bob/Maildir/new"), 1));
	UNIT_CHECK(wait_for_count(path_of("spool/queue"), 0));

	commit_message(&c, id2, body, after, 2);
	queue_notify(q, id2);
	UNIT_CHECK(wait_for_count(path_of("mail/example.jp/carol/Maildir/new"), 1));
	/* The remote recipient keeps the message queued, journaled. */
	UNIT_CHECK(wait_for_count(path_of("spool/queue"), 2));
	/* Notified again (and many times): still delivered once. */
	for (i = 0; i < 50; i++)
		queue_notify(q, id2);
	queue_notify(q, "not-an-id");
	usleep(200000);
	queue_stop(&q);
	UNIT_CHECK(q == NULL);
	check_one_delivery("bob", "example.jp");
	check_one_delivery("carol", "example.jp");
	UNIT_CHECK(exists(path_of("spool/queue/%s", id2)));
	UNIT_CHECK(exists(path_of("spool/queue/%s.done", id2)));

	/* Start and stop with nothing to do. */
	q = queue_start(&c, &error);
	UNIT_CHECK(q != NULL);
	queue_stop(&q);
	queue_stop(&q);
}

int
main(void)
{
	log_init("test_queue", 1, LOG_LEVEL_WARN);
	test_spool_commit();
	test_spool_abort_purge();
	test_spool_incoming_check();
	test_maildir_path();
	test_maildir_deliver();
	/* again the way a file system without O_TMPFILE gets: a name in
	 * tmp/, linked, then removed */
	setenv("SEKISHO_TEST_MAILDIR_NAMED", "1", 1);
	test_maildir_deliver();
	unsetenv("SEKISHO_TEST_MAILDIR_NAMED");
	/* and unnamed but linked through /proc/self/fd, as a kernel before
	 * 6.10 needs without CAP_DAC_READ_SEARCH */
	setenv("SEKISHO_TEST_MAILDIR_PROC_LINK", "1", 1);
	test_maildir_deliver();
	unsetenv("SEKISHO_TEST_MAILDIR_PROC_LINK");
	test_run_once();
	test_journal_resume();
	test_corrupt();
	test_retry_kept();
	test_threads();
	if (unit_failed == 0)
		nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	UNIT_END();
}
