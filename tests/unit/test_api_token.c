/*
 * Unit tests of the JSON API's tokens in the store: names, add, check
 * (the right token, a changed one, another name's secret), del, list, and
 * that only a hash is stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/str.h"
#include "backend/api_token.h"
#include "store/store.h"
#include "unit.h"

static void
test_names(void)
{
	static const struct {
		const char *name;
		int ok;
	} rows[] = {
		{ "mypage", 1 }, { "a", 1 }, { "my-page-2", 1 },
		{ "", 0 }, { "My", 0 }, { "a.b", 0 }, { "a b", 0 },
		{ "abcdefghijabcdefghijabcdefghijab", 1 },	/* 32 */
		{ "abcdefghijabcdefghijabcdefghijabc", 0 },	/* 33 */
		{ "caf\xc3\xa9", 0 }, { "a\tb", 0 }, { "a_b", 0 },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		UNIT_CHECK_INT(store_name_ok(rows[i].name), rows[i].ok);
}

static void
test_store(void)
{
	char dir[] = "/tmp/test_api_token.XXXXXX", uri[320], path[300];
	char t1[128], t2[128], name[API_TOKEN_NAME_MAX + 1], bad[128];
	char hash[STORE_HEX_TOKEN_LEN + 1];
	struct str list = STR_INIT;
	const char *error = NULL;
	struct store *st;

	UNIT_CHECK(mkdtemp(dir) != NULL);
	(void)snprintf(path, sizeof(path), "%s/store.db", dir);
	(void)snprintf(uri, sizeof(uri), "sqlite:%s", path);
	st = store_open(uri, &error);
	UNIT_CHECK(st != NULL);
	if (st == NULL)
		return;
	UNIT_CHECK_INT(store_init_schema(st, &error), 0);
	UNIT_CHECK_INT(api_token_add(st, "one", t1, sizeof(t1), &error), 0);
	UNIT_CHECK_INT(api_token_add(st, "two", t2, sizeof(t2), &error), 0);
	UNIT_CHECK_INT(api_token_add(st, "one", bad, sizeof(bad), &error),
	    -1);
	UNIT_CHECK_STR(error, "API token 'one' already exists");
	UNIT_CHECK_INT(api_token_add(st, "Bad", bad, sizeof(bad), &error),
	    -1);
	UNIT_CHECK_INT(strlen(t1), 4 + 64);
	UNIT_CHECK(strncmp(t1, "one.", 4) == 0);

	UNIT_CHECK_INT(api_token_check(st, t1, name, &error), 1);
	UNIT_CHECK_STR(name, "one");
	UNIT_CHECK_INT(api_token_check(st, t2, name, &error), 1);
	UNIT_CHECK_STR(name, "two");
	/* a changed secret, another name's secret, junk */
	snprintf(bad, sizeof(bad), "%s", t1);
	bad[10] = bad[10] == 'a' ? 'b' : 'a';
	UNIT_CHECK_INT(api_token_check(st, bad, name, &error), 0);
	snprintf(bad, sizeof(bad), "two.%s", t1 + 4);
	UNIT_CHECK_INT(api_token_check(st, bad, name, &error), 0);
	UNIT_CHECK_INT(api_token_check(st, "one", name, &error), 0);
	UNIT_CHECK_INT(api_token_check(st, "", name, &error), 0);
	UNIT_CHECK_INT(api_token_check(st, ".x", name, &error), 0);

	/* only the hash is in the store */
	UNIT_CHECK_INT(store_api_token_get(st, "one", hash, &error), 0);
	UNIT_CHECK_INT(strlen(hash), 64);
	UNIT_CHECK(strstr(t1, hash) == NULL);
	UNIT_CHECK_INT(api_token_list(st, &list, &error), 0);
	UNIT_CHECK(strncmp(str_c(&list), "one\t", 4) == 0);
	UNIT_CHECK(strstr(str_c(&list), hash) == NULL);
	UNIT_CHECK(strstr(str_c(&list), "\ntwo\t") != NULL);

	UNIT_CHECK_INT(api_token_del(st, "one", &error), 0);
	UNIT_CHECK_INT(api_token_check(st, t1, name, &error), 0);
	UNIT_CHECK_INT(api_token_check(st, t2, name, &error), 1);
	UNIT_CHECK_INT(api_token_del(st, "one", &error), 1);
	UNIT_CHECK_STR(error, "no such API token 'one'");
	str_deinit(&list);
	store_close(&st);
	(void)unlink(path);
	(void)rmdir(dir);
}

int
main(void)
{
	test_names();
	test_store();
	UNIT_END();
}
