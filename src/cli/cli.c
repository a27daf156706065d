/*
 * cli: what every operator command shares (see cli.h): the error and usage
 * lines, and a run against the configured store.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../core/config.h"
#include "../core/str.h"
#include "../store/store.h"
#include "cli.h"

int
cli_fail(const char *error)
{
	fprintf(stderr, "sekisho: %s\n", error);
	return 1;
}

int
cli_usage_verror(const char *group, const char *synopsis,
    void (*print_usage)(FILE *), const char *fmt, va_list ap)
{
	fputs("sekisho: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n", stderr);
	if (synopsis != NULL)
		fprintf(stderr, "usage: sekisho %s %s\n", group, synopsis);
	else
		print_usage(stderr);
	return 2;
}

int
cli_with_store(const struct config *conf,
    int (*run)(struct store *, void *), void *context)
{
	struct store *st;
	const char *error;
	int ret;

	if (conf->store == NULL || *conf->store == '\0')
		return cli_fail("no store configured (set 'store' in "
		    "the config file)");
	if ((st = store_open(conf->store, &error)) == NULL)
		return cli_fail(error);
	if (store_init_schema(st, &error) < 0)
		ret = cli_fail(error);
	else
		ret = run(st, context);
	store_close(&st);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "sekisho: cannot write output: %s\n",
		    strerror(errno));
		ret = 1;
	}
	return ret;
}

int
cli_print_list(struct str *out, int ret, const char *const *error)
{
	if (ret != 0) {
		str_deinit(out);
		return cli_fail(*error);
	}
	fputs(str_c(out), stdout);
	str_deinit(out);
	return 0;
}
