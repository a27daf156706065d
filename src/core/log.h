/*
 * log: one line per event, id first, then key=value fields.
 * To stderr in the foreground, else syslog (LOG_MAIL). Thread-safe.
 *
 *   log_info("id=%s smtp auth user=%s result=ok", id, user);
 *
 * Text from outside (clients, session processes, remote servers) must
 * pass through log_escape() (or log_printable()) before it is logged.
 * As a last line, every line is written with control bytes and invalid
 * UTF-8 shown as \xHH (so no outside text can start a line of its own).
 */
#ifndef SEKISHO_LOG_H
#define SEKISHO_LOG_H

#include <stddef.h>

enum log_level { LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void log_init(const char *ident, int to_stderr, enum log_level level);
void log_set_level(enum log_level level);
/* the log_level setting: "debug", "warn", anything else info */
enum log_level log_level_parse(const char *name);
int log_debug_enabled(void);

void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn appends ": strerror(errno)". */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The environment is broken: log and exit(1). fatal appends strerror. */
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Copy untrusted text into buf for logging: at most len-1 bytes, bytes
 * outside printable ASCII as \xHH, cut with "..." when too long.
 * Returns buf.
 */
char *log_printable(char *buf, size_t len, const char *src, size_t srclen);

/*
 * The same for text that may be UTF-8 (names, subjects, reasons): valid
 * UTF-8 is kept as is; control bytes (below 0x20, 0x7f, the C1 range,
 * U+2028/U+2029), a backslash and bytes that are not valid UTF-8 become
 * \xHH, one per byte; cut at a character boundary with "..." when too
 * long. src NULL is "-". Returns buf (at least "" when len > 0).
 */
char *log_escape(char *buf, size_t len, const char *src);
/* Bytes log_escape() needs at most for srclen bytes of input. */
#define LOG_ESCAPE_MAX(srclen)	((srclen) * 4 + 1)

#endif
