/*
 * unit.h: the tiny harness for C unit tests. Each test file is one
 * program: call the cases from main() and end with UNIT_END(), which
 * prints "N passed, N failed" for that program and sets the exit code.
 *
 *   UNIT_CHECK(cond)            record a failure with file:line, go on
 *   UNIT_CHECK_STR(got, want)   strcmp with both strings in the message
 *   UNIT_CHECK_INT(got, want)
 */
#ifndef SEKISHO_UNIT_H
#define SEKISHO_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;

#define UNIT_CHECK(cond) do {						\
	if (cond) unit_passed++;					\
	else { unit_failed++;						\
		fprintf(stderr, "%s:%d: check failed: %s\n",		\
		    __FILE__, __LINE__, #cond); }			\
} while (0)

#define UNIT_CHECK_STR(got, want) do {					\
	const char *g_ = (got), *w_ = (want);				\
	if ((g_ == NULL && w_ == NULL) ||				\
	    (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0))		\
		unit_passed++;						\
	else { unit_failed++;						\
		fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n",	\
		    __FILE__, __LINE__, g_ ? g_ : "(null)",		\
		    w_ ? w_ : "(null)"); }				\
} while (0)

#define UNIT_CHECK_INT(got, want) do {					\
	long long g_ = (long long)(got), w_ = (long long)(want);	\
	if (g_ == w_) unit_passed++;					\
	else { unit_failed++;						\
		fprintf(stderr, "%s:%d: %s = %lld, want %lld\n",	\
		    __FILE__, __LINE__, #got, g_, w_); }		\
} while (0)

#define UNIT_END() do {							\
	printf("%s: %d passed, %d failed\n", __FILE__,			\
	    unit_passed, unit_failed);					\
	return unit_failed == 0 ? 0 : 1;				\
} while (0)

#endif
