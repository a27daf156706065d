/*
 * cli: the administrative subcommands of the sekisho binary. Each takes
 * the loaded config and the arguments after its own name (argv[0] is the
 * first argument, e.g. "add"), prints results on stdout and errors as
 * "sekisho: ..." on stderr, and returns the process exit code
 * (0 ok, 1 failure, 2 usage). They open the store themselves: the CLI is
 * an operator's tool, never a session.
 */
#ifndef SEKISHO_CLI_H
#define SEKISHO_CLI_H

#include <stdarg.h>
#include <stdio.h>

struct config;
struct store;
struct str;

/* Shared by the commands (cli.c). "sekisho: ERROR" on stderr; returns 1. */
int cli_fail(const char *error);
/* "sekisho: FMT", then "usage: sekisho GROUP SYNOPSIS", or print_usage()
   when synopsis is NULL; returns 2 (a usage error). */
int cli_usage_verror(const char *group, const char *synopsis,
    void (*print_usage)(FILE *), const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* Open and initialise the configured store, run(st, context), close it and
   check that stdout was written; returns run's exit code, or 1. */
int cli_with_store(const struct config *conf,
    int (*run)(struct store *, void *), void *context);
/* A list command's end: on ret == 0 print out, else cli_fail(*error)
   (read after ret: the list call may be the argument); out is freed
   either way. */
int cli_print_list(struct str *out, int ret, const char *const *error);

/* user add|passwd|del|list|show|suspend|resume|alias ... */
int cli_user(const struct config *conf, int argc, char **argv);
/* domain add|del|list ... */
int cli_domain(const struct config *conf, int argc, char **argv);
/* Usage text of both, for "sekisho help". */
void cli_user_usage(void);
void cli_domain_usage(void);
/* geo lookup [--database SPEC] IP... (cli_geo.c) */
int cli_geo(const struct config *conf, int argc, char **argv);
void cli_geo_usage(void);

/* The sending policy (cli_policy.c): overseas allow|deny|status,
 * limits show|set, events, trace. */
int cli_overseas(const struct config *conf, int argc, char **argv);
int cli_limits(const struct config *conf, int argc, char **argv);
int cli_events(const struct config *conf, int argc, char **argv);
int cli_trace(const struct config *conf, int argc, char **argv);
void cli_policy_usage(void);

/* queue list|show|flush|delete|hold|release (cli_queue.c) */
int cli_queue(const struct config *conf, int argc, char **argv);
void cli_queue_usage(void);

/* store migrate|copy (cli_store.c) */
int cli_store(const struct config *conf, int argc, char **argv);
void cli_store_usage(void);

/* api-token add|del|list (cli_api.c) */
int cli_api_token(const struct config *conf, int argc, char **argv);
void cli_api_usage(void);
/* admin add|del|passwd|list (cli_api.c) */
int cli_admin(const struct config *conf, int argc, char **argv);
void cli_admin_usage(void);

/* risk ADDRESS|--top, warn ADDRESS (cli_risk.c, issue 17) */
int cli_risk(const struct config *conf, int argc, char **argv);
int cli_warn(const struct config *conf, int argc, char **argv);
void cli_risk_usage(void);

/* status: ask the running daemon (cli_status.c); LSB exit codes */
int cli_status(const struct config *conf, int argc, char **argv);
void cli_status_usage(void);

#endif
