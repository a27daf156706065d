/*
 * cli_status: "sekisho status", the operator's one-look view of a running
 * daemon: pid, version, uptime, listeners, connections, the queue, the
 * store and the last reload. It asks the daemon itself over the queue's
 * control socket (spool_dir/control, a datagram socket on the back side)
 * with "status"; the back side answers to this process's autobound
 * address with lines rendered from the shared metrics region
 * (metrics_status). Exit codes follow the LSB init-script "status"
 * action: 0 running, 3 not running, 4 unknown (no answer, no access).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/config.h"
#include "../core/xmalloc.h"
#include "../queue/queue.h"
#include "cli.h"

#define CLI_STATUS_TIMEOUT	5000	/* ms to wait for the answer */
#define CLI_STATUS_MAX		65536

/* LSB 3.0 "status" exit codes (Linux Standard Base, init scripts). */
#define CLI_STATUS_RUNNING	0
#define CLI_STATUS_STOPPED	3
#define CLI_STATUS_UNKNOWN	4

void
cli_status_usage(void)
{
	fprintf(stderr,
	    "  status                 is the daemon running; pid, uptime, "
	    "listeners, queue\n"
	    "                         (exit 0 running, 3 not running, "
	    "4 unknown)\n");
}

int
cli_status(const struct config *conf, int argc, char **argv)
{
	struct sockaddr_un sun, self;
	struct pollfd pfd;
	char *path, *buf;
	ssize_t n;
	int fd, r;

	(void)argv;
	if (argc > 0) {
		cli_status_usage();
		return 2;
	}
	path = xasprintf("%s/%s", conf->spool_dir, QUEUE_CONTROL_SOCKET);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (xstrlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		fprintf(stderr, "sekisho: status: spool_dir too long for the "
		    "control socket\n");
		free(path);
		return CLI_STATUS_UNKNOWN;
	}
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		fprintf(stderr, "sekisho: status: socket: %s\n",
		    strerror(errno));
		free(path);
		return CLI_STATUS_UNKNOWN;
	}
	/* Linux autobind (unix(7)): an abstract address of our own, so the
	 * daemon has somewhere to send the answer, and no file to remove. */
	memset(&self, 0, sizeof(self));
	self.sun_family = AF_UNIX;
	if (bind(fd, (struct sockaddr *)&self, sizeof(sa_family_t)) < 0) {
		fprintf(stderr, "sekisho: status: bind: %s\n", strerror(errno));
		close(fd);
		free(path);
		return CLI_STATUS_UNKNOWN;
	}
	if (sendto(fd, "status", 6, 0, (struct sockaddr *)&sun,
	    sizeof(sun)) < 0) {
		int e = errno;

		close(fd);
		if (e == ENOENT || e == ECONNREFUSED) {
			/* No socket, or one left by a daemon that died. */
			printf("sekisho is not running (nothing answers on "
			    "%s)\n", path);
			free(path);
			return CLI_STATUS_STOPPED;
		}
		fprintf(stderr, "sekisho: status: %s: %s\n", path,
		    strerror(e));
		free(path);
		return CLI_STATUS_UNKNOWN;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	while ((r = poll(&pfd, 1, CLI_STATUS_TIMEOUT)) < 0 && errno == EINTR)
		;
	if (r <= 0) {
		fprintf(stderr, "sekisho: status: no answer from the daemon on "
		    "%s within %d s\n", path, CLI_STATUS_TIMEOUT / 1000);
		close(fd);
		free(path);
		return CLI_STATUS_UNKNOWN;
	}
	free(path);
	buf = xmalloc(CLI_STATUS_MAX);
	n = recv(fd, buf, CLI_STATUS_MAX - 1, 0);
	close(fd);
	if (n <= 0) {
		fprintf(stderr, "sekisho: status: no answer from the daemon%s%s\n",
		    n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
		free(buf);
		return CLI_STATUS_UNKNOWN;
	}
	buf[n] = '\0';
	printf("sekisho is running\n%s", buf);
	free(buf);
	return CLI_STATUS_RUNNING;
}
