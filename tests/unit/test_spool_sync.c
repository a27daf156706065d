/*
 * test_spool_sync: the group commit of directory fsyncs (spool.c).
 * Threads that each create a file and then ask for the directory to be
 * durable must all be answered 0, never before a fsync that began after
 * their change has ended, and on a real disk they share fsyncs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spool.h"
#include "unit.h"

#define THREADS	8
#define ROUNDS	100

static char dir[256];
static int failures[THREADS], early[THREADS];

static void *
worker(void *arg)
{
	int idx = (int)(intptr_t)arg;
	char path[320];

	for (int i = 0; i < ROUNDS; i++) {
		snprintf(path, sizeof(path), "%s/f%d.%d", dir, idx, i);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

		uint64_t asked, started;

		if (fd < 0 || close(fd) < 0) {
			failures[idx]++;
			continue;
		}
		/* every fsync started so far may have begun before the
		 * file was made: the answer must wait for a later one to
		 * end (one directory: its fsyncs end in the order they
		 * start) */
		spool_fsync_dir_stats(&asked, &started);
		if (spool_fsync_dir(dir) != 0)
			failures[idx]++;
		if (spool_fsync_dir_ended() < started + 1)
			early[idx]++;
	}
	return NULL;
}

static void
test_concurrent(void)
{
	pthread_t t[THREADS];
	uint64_t asked0, done0, asked, done;

	spool_fsync_dir_stats(&asked0, &done0);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < THREADS; i++) {
		UNIT_CHECK_INT(failures[i], 0);
		UNIT_CHECK_INT(early[i], 0);
	}
	spool_fsync_dir_stats(&asked, &done);
	UNIT_CHECK(asked - asked0 == THREADS * ROUNDS);
	/* eight threads in a loop on one directory: some share */
	UNIT_CHECK(done - done0 < asked - asked0);
	UNIT_CHECK(done - done0 > 0);
	fprintf(stderr, "test_spool_sync: %llu fsyncs for %llu requests\n",
	    (unsigned long long)(done - done0),
	    (unsigned long long)(asked - asked0));
}

static void *
in_line(void *arg)
{
	uint64_t *ended_r = arg;
	char path[320];
	int fd;

	snprintf(path, sizeof(path), "%s/line.%p", dir, arg);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0 ||
	    close(fd) < 0 || spool_fsync_dir(dir) != 0)
		*ended_r = 0;
	else
		*ended_r = spool_fsync_dir_ended();
	return NULL;
}

/*
 * One fsync runs (slowed to 300 ms by the test hook); two threads change
 * the directory meanwhile. Neither may be answered by the fsync that was
 * running when it came: the first of them runs a second one, which
 * covers the other as well (two fsyncs in all, not three).
 */
static void
test_started_after(void)
{
	pthread_t lead, t[2];
	uint64_t asked, started0, started, ended[3];

	setenv("SEKISHO_TEST_FSYNC_DIR_DELAY_MS", "300", 1);
	spool_fsync_dir_stats(&asked, &started0);
	pthread_create(&lead, NULL, in_line, &ended[0]);
	do {
		usleep(1000);
		spool_fsync_dir_stats(&asked, &started);
	} while (started == started0);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, in_line, &ended[i + 1]);
	pthread_join(lead, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	unsetenv("SEKISHO_TEST_FSYNC_DIR_DELAY_MS");
	spool_fsync_dir_stats(&asked, &started);
	UNIT_CHECK(ended[0] >= started0 + 1);
	UNIT_CHECK(ended[1] >= started0 + 2);
	UNIT_CHECK(ended[2] >= started0 + 2);
	UNIT_CHECK(started - started0 == 2);
}

static void
test_errors(void)
{
	char path[320];

	errno = 0;
	UNIT_CHECK_INT(spool_fsync_dir("/nonexistent-sekisho/dir"), -1);
	UNIT_CHECK_INT(errno, ENOENT);
	/* a file is not a directory: every caller gets the error */
	snprintf(path, sizeof(path), "%s/f0.0", dir);
	errno = 0;
	UNIT_CHECK_INT(spool_fsync_dir(path), -1);
	UNIT_CHECK_INT(errno, ENOTDIR);
	/* and the directory itself still works afterwards */
	UNIT_CHECK_INT(spool_fsync_dir(dir), 0);
}

int
main(void)
{
	char cmd[300];

	/* beside this program, on the build's disk rather than a tmpfs
	 * (fsync must take a moment); the harness runs us elsewhere */
	char exe[200];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0) {
		perror("/proc/self/exe");
		return 1;
	}
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) != NULL)
		*slash = '\0';
	snprintf(dir, sizeof(dir), "%s/test-spool-sync.%ld", exe,
	    (long)getpid());
	if (mkdir(dir, 0700) < 0) {
		perror(dir);
		return 1;
	}
	test_concurrent();
	test_started_after();
	test_errors();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	UNIT_END();
}
