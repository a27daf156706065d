/*
 * log: stderr or syslog, one line per event (see log.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_stderr = 1;
static enum log_level log_level = LOG_LEVEL_INFO;
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;

void
log_init(const char *ident, int to_stderr, enum log_level level)
{
	log_stderr = to_stderr;
	log_level = level;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

int
log_debug_enabled(void)
{
	return log_level >= LOG_LEVEL_DEBUG;
}

static void
log_vwrite(int prio, const char *fmt, va_list ap, int with_errno)
{
	char msg[4096];
	int saved = errno;
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (with_errno && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s",
		    strerror(saved));
	if (!log_stderr) {
		syslog(prio, "%s", msg);
		return;
	}

	char stamp[64];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&log_mutex);
	fprintf(stderr, "%s.%03ld %s%s\n", stamp, ts.tv_nsec / 1000000,
	    prio == LOG_ERR ? "fatal: " : prio == LOG_WARNING ? "warn: " : "",
	    msg);
	fflush(stderr);
	pthread_mutex_unlock(&log_mutex);
}

#define LOG_FN(name, prio, minlevel, with_errno)			\
void									\
name(const char *fmt, ...)						\
{									\
	va_list ap;							\
									\
	if (log_level < (minlevel))					\
		return;							\
	va_start(ap, fmt);						\
	log_vwrite((prio), fmt, ap, (with_errno));			\
	va_end(ap);							\
}

LOG_FN(log_warnx, LOG_WARNING, LOG_LEVEL_WARN, 0)
LOG_FN(log_warn, LOG_WARNING, LOG_LEVEL_WARN, 1)
LOG_FN(log_info, LOG_INFO, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_DEBUG, LOG_LEVEL_DEBUG, 0)

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_ERR, fmt, ap, 1);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_ERR, fmt, ap, 0);
	va_end(ap);
	exit(1);
}

char *
log_printable(char *buf, size_t len, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (len == 0)
		return buf;
	for (size_t i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];
		size_t need = (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : 4;

		if (o + need + 4 > len) {
			if (o + 4 <= len) {
				memcpy(buf + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 1) {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}
