/*
 * Unit tests of the JSON API's token file: names, add, check (the right
 * token, a changed one, another name's secret), del, and that only a hash
 * is stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "portal/api_token.h"
#include "unit.h"

static void
test_names(void)
{
	static const struct {
		const char *name;
		int ok;
	} rows[] = {
		{ "mypage", 0 }, { "a", 0 }, { "my-page-2", 0 },
		{ "", -1 }, { "My", -1 }, { "a.b", -1 }, { "a b", -1 },
		{ "abcdefghijabcdefghijabcdefghijab", 0 },	/* 32 */
		{ "abcdefghijabcdefghijabcdefghijabc", -1 },	/* 33 */
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		UNIT_CHECK_INT(api_token_name_ok(rows[i].name), rows[i].ok);
}

static void
test_file(void)
{
	char path[] = "/tmp/test_api_token.XXXXXX", t1[128], t2[128];
	char name[API_TOKEN_NAME_MAX + 1], bad[128];
	const char *error = NULL;
	int fd = mkstemp(path);

	UNIT_CHECK(fd >= 0);
	close(fd);
	UNIT_CHECK_INT(api_token_add(path, "one", t1, sizeof(t1), &error), 0);
	UNIT_CHECK_INT(api_token_add(path, "two", t2, sizeof(t2), &error), 0);
	UNIT_CHECK_INT(api_token_add(path, "one", bad, sizeof(bad), &error),
	    -1);
	UNIT_CHECK_INT(strlen(t1), 4 + 64);
	UNIT_CHECK(strncmp(t1, "one.", 4) == 0);

	UNIT_CHECK_INT(api_token_check(path, t1, name, &error), 1);
	UNIT_CHECK_STR(name, "one");
	UNIT_CHECK_INT(api_token_check(path, t2, name, &error), 1);
	UNIT_CHECK_STR(name, "two");
	/* a changed secret, another name's secret, junk */
	snprintf(bad, sizeof(bad), "%s", t1);
	bad[10] = bad[10] == 'a' ? 'b' : 'a';
	UNIT_CHECK_INT(api_token_check(path, bad, name, &error), 0);
	snprintf(bad, sizeof(bad), "two.%s", t1 + 4);
	UNIT_CHECK_INT(api_token_check(path, bad, name, &error), 0);
	UNIT_CHECK_INT(api_token_check(path, "one", name, &error), 0);
	UNIT_CHECK_INT(api_token_check(path, "", name, &error), 0);

	/* only the hash is in the file */
	FILE *fp = fopen(path, "r");
	char text[1024];
	size_t n = fp != NULL ? fread(text, 1, sizeof(text) - 1, fp) : 0;

	text[n] = '\0';
	if (fp != NULL)
		fclose(fp);
	UNIT_CHECK(strstr(text, t1 + 4) == NULL);
	UNIT_CHECK(strncmp(text, "one ", 4) == 0);

	UNIT_CHECK_INT(api_token_del(path, "one", &error), 0);
	UNIT_CHECK_INT(api_token_check(path, t1, name, &error), 0);
	UNIT_CHECK_INT(api_token_check(path, t2, name, &error), 1);
	UNIT_CHECK_INT(api_token_del(path, "one", &error), 1);
	unlink(path);
	/* no file yet: nothing matches; no path: an error */
	UNIT_CHECK_INT(api_token_check(path, t2, name, &error), 0);
	UNIT_CHECK_INT(api_token_check("", t2, name, &error), -1);
}

int
main(void)
{
	test_names();
	test_file();
	UNIT_END();
}
