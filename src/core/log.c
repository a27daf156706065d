/*
 * log: stderr or syslog, one line per event (see log.h).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
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

enum log_level
log_level_parse(const char *name)
{
	if (strcmp(name, "debug") == 0)
		return LOG_LEVEL_DEBUG;
	if (strcmp(name, "warn") == 0)
		return LOG_LEVEL_WARN;
	return LOG_LEVEL_INFO;
}

int
log_debug_enabled(void)
{
	return log_level >= LOG_LEVEL_DEBUG;
}

/*
 * Length of the valid UTF-8 character at s (at most n bytes) that may be
 * shown as is, or 0: a byte below 0x20, 0x7f, an overlong form, a
 * surrogate, past U+10FFFF, C1 controls and the line and paragraph
 * separators are not shown.
 */
static size_t
log_utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] >= 0x20 && s[0] < 0x7f)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
	    (cp >= 0x80 && cp < 0xa0) || cp == 0x2028 || cp == 0x2029)
		return 0;
	return len;
}

/* log_escape(), and with keep_backslash the last line of log_vwrite
 * (whose text holds escapes made before). */
static void
log_escape_n(char *buf, size_t len, const char *src, size_t srclen,
    int keep_backslash)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)src;
	size_t o = 0, i = 0, total = 0, reserve;

	while (i < srclen) {
		size_t n = log_utf8_len(u + i, srclen - i);

		if (n == 1 && u[i] == '\\' && !keep_backslash)
			n = 0;
		total += n > 0 ? n : 4;
		i += n > 0 ? n : 1;
	}
	/* all of it fits: only the NUL after; else "..." too */
	reserve = total + 1 <= len ? 1 : 4;
	i = 0;
	while (i < srclen) {
		size_t n = log_utf8_len(u + i, srclen - i);
		size_t need;

		if (n == 1 && u[i] == '\\' && !keep_backslash)
			n = 0;
		need = n > 0 ? n : 4;
		if (o + need + reserve > len) {
			if (o + 4 <= len) {
				memcpy(buf + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (n > 0) {
			memcpy(buf + o, u + i, n);
			o += n;
			i += n;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[u[i] >> 4];
			buf[o++] = hex[u[i] & 15];
			i++;
		}
	}
	buf[o] = '\0';
}

char *
log_escape(char *buf, size_t len, const char *src)
{
	if (len == 0)
		return buf;
	if (src == NULL)
		src = "-";
	log_escape_n(buf, len, src, strlen(src), 0);
	return buf;
}

/* The UTC offset of tm as "+09:00" ("Z" is not used: the offset is the
 * point, even when it is zero). */
static void
log_zone(const struct tm *tm, char *buf, size_t len)
{
	char z[16];

	if (strftime(z, sizeof(z), "%z", tm) != 5 ||
	    (z[0] != '+' && z[0] != '-')) {
		snprintf(buf, len, "+00:00");
		return;
	}
	snprintf(buf, len, "%.3s:%.2s", z, z + 3);
}

/*
 * "2026-12-06T08:10:29.883+09:00 " for ts into buf: RFC 3339 with the
 * zone's offset (logs of several machines are put side by side; the zone
 * is the configured timezone, TZ, its rules read before any chroot). The
 * seconds and zone are kept per thread and made again only when the
 * second changes: localtime_r takes glibc's time zone lock, which every
 * thread of the back side waited on, line after line (issue 18).
 */
static size_t
log_stamp(const struct timespec *ts, char *buf, size_t len)
{
	static __thread time_t last = (time_t)-1;
	static __thread char head[48];
	int n;

	if (ts->tv_sec != last) {
		char stamp[40], zone[8];
		struct tm tm;

		localtime_r(&ts->tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		log_zone(&tm, zone, sizeof(zone));
		/* the zone goes after the milliseconds: kept apart */
		snprintf(head, sizeof(head), "%s%c%s", stamp, '\0', zone);
		last = ts->tv_sec;
	}
	n = snprintf(buf, len, "%s.%03ld%s ", head, ts->tv_nsec / 1000000,
	    head + strlen(head) + 1);
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

/* write(2) all of it to stderr, retrying short writes and EINTR; a
 * failure is dropped (there is nowhere left to say so). */
static void
log_write_all(const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(STDERR_FILENO, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		len -= (size_t)w;
	}
}

static void
log_vwrite(int prio, const char *fmt, va_list ap, int with_errno)
{
	char msg[4096], safe[4096];
	int saved = errno;
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (with_errno && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s",
		    strerror(saved));
	/* The last line: whatever a caller forgot to escape cannot start a
	 * line or hide in an invalid byte sequence. */
	size_t mlen = strlen(msg);

	for (size_t i = 0; i < mlen; ) {
		size_t c = log_utf8_len((const unsigned char *)msg + i,
		    mlen - i);

		if (c == 0) {
			log_escape_n(safe, sizeof(safe), msg, mlen, 1);
			memcpy(msg, safe, strlen(safe) + 1);
			break;
		}
		i += c;
	}
	if (!log_stderr) {
		syslog(prio, "%s", msg);
		return;
	}

	char line[sizeof(msg) + 128];
	struct timespec ts;
	size_t len;

	clock_gettime(CLOCK_REALTIME, &ts);
	len = log_stamp(&ts, line, sizeof(line));
	n = snprintf(line + len, sizeof(line) - len, "%s%s\n",
	    prio == LOG_ERR ? "fatal: " : prio == LOG_WARNING ? "warn: " : "",
	    msg);
	if (n < 0)
		return;
	len += (size_t)n;
	if (len >= sizeof(line)) {
		len = sizeof(line) - 1;
		line[len - 1] = '\n';
	}
	/* One write a line, formatted before: a write up to PIPE_BUF is
	 * not mixed with another thread's on a pipe, nor on a file (the
	 * kernel keeps one file position per write, and O_APPEND appends
	 * each whole); a longer line takes the lock. */
	if (len > PIPE_BUF) {
		pthread_mutex_lock(&log_mutex);
		log_write_all(line, len);
		pthread_mutex_unlock(&log_mutex);
	} else
		log_write_all(line, len);
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
