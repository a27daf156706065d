/*
 * back_proc: the back side's process once the master has started it (as
 * `user`, see master.c): the queue and the worker threads
 * (src/backend/), then the control channel from the master: new session
 * channels, reloaded configurations, stop.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "../backend/backend.h"
#include "../core/channel.h"
#include "../core/config.h"
#include "../core/file.h"
#include "../core/log.h"
#include "../core/msg.h"
#include "../core/str.h"
#include "../queue/queue.h"
#include "back_proc.h"

/* The config text of a reload, from its memfd. NULL on error (logged). */
static struct config *
back_proc_config(const char *path, int fd)
{
	struct str text = STR_INIT, errors = STR_INIT;
	struct config *conf = NULL;

	if (lseek(fd, 0, SEEK_SET) < 0)
		log_warn("SIGHUP: config memfd");
	/* the master wrote at most CONFIG_TEXT_MAX */
	if (file_read_fd(fd, CONFIG_TEXT_MAX, &text, NULL, NULL) ==
	    FILE_READ_ERROR)
		log_warn("SIGHUP: config memfd");
	else if (config_load_buffer(path, text.s != NULL ? text.s : "",
	    text.len, &conf, &errors) < 0)
		log_warnx("SIGHUP: back side cannot use the config: %s",
		    str_c(&errors));
	str_deinit(&text);
	str_deinit(&errors);
	return conf;
}

void
back_proc_main(const struct config *conf, int ctl)
{
	struct backend *be = NULL;
	struct queue *q = NULL;
	const char *error = NULL;
	struct msg r;

	if ((q = queue_start(conf, &error)) != NULL &&
	    (be = backend_start(conf, q, NULL, 0, &error)) == NULL)
		queue_stop(&q);
	msg_init(&r, BACK_PROC_CTL_READY, 0);
	msg_add_u32(&r, be != NULL);
	msg_add_str(&r, be != NULL ? NULL : error);
	if (channel_send_blocking(ctl, &r) < 0 || be == NULL)
		exit(1);

	for (;;) {
		struct pollfd pfd = { .fd = ctl, .events = POLLIN };
		struct msg cm;
		int rr, stop = 0;

		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fatal("back side: poll");
		}
		while ((rr = channel_recv(ctl, &cm)) == 1) {
			int fd = msg_take_fd(&cm);
			const char *path = NULL;
			struct config *nc;

			switch (cm.type) {
			case BACK_PROC_CTL_CHANNEL:
				if (fd == -1)
					break;
				backend_add_channel(be, fd);
				fd = -1;
				break;
			case BACK_PROC_CTL_RELOAD:
				/* old configs stay: a job may hold one */
				if (fd != -1 &&
				    msg_get_str(&cm, &path) == 0 &&
				    path != NULL &&
				    (nc = back_proc_config(path, fd)) != NULL) {
					log_set_level(log_level_parse(
					    nc->log_level));
					backend_reload(be, nc);
				}
				break;
			case BACK_PROC_CTL_STOP:
				stop = 1;
				break;
			default:
				log_warnx("back side: control message %u "
				    "ignored", cm.type);
			}
			if (fd != -1)
				close(fd);
			msg_deinit(&cm);
		}
		if (rr < 0 || stop)
			break;	/* told to, or the master is gone */
	}
	backend_stop(&be);
	queue_stop(&q);
	exit(0);
}
