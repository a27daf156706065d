/*
 * api_token: bearer tokens of the JSON API, hashed in a file (see
 * api_token.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../core/str.h"
#include "../core/xmalloc.h"
#include "api_token.h"
#include "portal_file.h"

#define API_TOKEN_SECRET_HEX	64
#define API_TOKEN_FILE_MAX	(1024 * 1024)

static void
api_token_hex(const unsigned char *raw, size_t n, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digits[raw[i] >> 4];
		hex[2 * i + 1] = digits[raw[i] & 15];
	}
	hex[2 * n] = '\0';
}

/* SHA-256 of s as 64 hex digits. */
static int
api_token_sha256(const char *s, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32)
		return -1;
	api_token_hex(md, 32, hex);
	return 0;
}

int
api_token_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > API_TOKEN_NAME_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
			return -1;
	return 0;
}

/* A line's fields; 0 when it has a name and a hash. */
static int
api_token_fields(char *line, char **name, char **hash, char **created)
{
	char *save = NULL;

	*name = strtok_r(line, " \t", &save);
	*hash = *name != NULL ? strtok_r(NULL, " \t", &save) : NULL;
	*created = *hash != NULL ? strtok_r(NULL, " \t", &save) : NULL;
	return *name != NULL && *hash != NULL && strlen(*hash) == 64 ? 0 : -1;
}

int
api_token_check(const char *path, const char *token, char *name_r,
    const char **error_r)
{
	struct str text = STR_INIT;
	char want[65], *p, *line, *name, *hash, *created;
	const char *dot = strchr(token, '.');
	int found = 0;

	if (portal_file_read(path, "api_tokens_file", API_TOKEN_FILE_MAX, &text, error_r) < 0) {
		str_deinit(&text);
		return -1;
	}
	if (dot == NULL || (size_t)(dot - token) > API_TOKEN_NAME_MAX ||
	    strlen(dot + 1) != API_TOKEN_SECRET_HEX ||
	    api_token_sha256(token, want) < 0) {
		str_deinit(&text);
		return 0;
	}
	p = text.s;
	while (p != NULL && (line = strsep(&p, "\n")) != NULL) {
		if (api_token_fields(line, &name, &hash, &created) < 0 ||
		    strlen(name) != (size_t)(dot - token) ||
		    strncmp(name, token, (size_t)(dot - token)) != 0)
			continue;
		unsigned char d = 0;

		/* constant time over the hash */
		for (size_t i = 0; i < 64; i++)
			d |= (unsigned char)(hash[i] ^ want[i]);
		if (d == 0) {
			xstrlcpy(name_r, name, API_TOKEN_NAME_MAX + 1);
			found = 1;
		}
		break;
	}
	str_deinit(&text);
	return found;
}

int
api_token_add(const char *path, const char *name, char *token_r, size_t len,
    const char **error_r)
{
	struct str text = STR_INIT, copy = STR_INIT;
	unsigned char raw[API_TOKEN_SECRET_HEX / 2];
	char secret[API_TOKEN_SECRET_HEX + 1], hash[65];
	char *p, *line, *n, *h, *c;
	int r = -1;

	if (api_token_name_ok(name) < 0) {
		*error_r = "a token name is 1 to 32 of a-z, 0-9 and -";
		return -1;
	}
	if (portal_file_read(path, "api_tokens_file", API_TOKEN_FILE_MAX, &text, error_r) < 0)
		goto out;
	str_append(&copy, str_c(&text));
	p = copy.s;
	while (p != NULL && (line = strsep(&p, "\n")) != NULL)
		if (api_token_fields(line, &n, &h, &c) == 0 &&
		    strcmp(n, name) == 0) {
			*error_r = "a token of that name exists";
			goto out;
		}
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		*error_r = "getrandom failed";
		goto out;
	}
	api_token_hex(raw, sizeof(raw), secret);
	if ((size_t)snprintf(token_r, len, "%s.%s", name, secret) >= len ||
	    api_token_sha256(token_r, hash) < 0) {
		*error_r = "token too long";
		goto out;
	}
	if (text.len > 0 && text.s[text.len - 1] != '\n')
		str_append_c(&text, '\n');
	str_printf(&text, "%s %s %lld\n", name, hash, (long long)time(NULL));
	r = portal_file_replace(path, &text, error_r);
out:
	str_deinit(&text);
	str_deinit(&copy);
	return r;
}

int
api_token_del(const char *path, const char *name, const char **error_r)
{
	struct str text = STR_INIT, out = STR_INIT;
	char *p, *line, *n, *h, *c;
	int found = 0, r = -1;

	if (portal_file_read(path, "api_tokens_file", API_TOKEN_FILE_MAX, &text, error_r) < 0)
		goto done;
	p = text.s;
	while (p != NULL && (line = strsep(&p, "\n")) != NULL) {
		if (*line == '\0')
			continue;
		char *keep = xstrdup(line);

		if (api_token_fields(line, &n, &h, &c) == 0 &&
		    strcmp(n, name) == 0)
			found = 1;
		else {
			str_append(&out, keep);
			str_append_c(&out, '\n');
		}
		free(keep);
	}
	if (!found) {
		*error_r = "no such token";
		r = 1;
		goto done;
	}
	r = portal_file_replace(path, &out, error_r);
done:
	str_deinit(&text);
	str_deinit(&out);
	return r;
}

int
api_token_list(const char *path, const char **error_r)
{
	struct str text = STR_INIT;
	char *p, *line, *n, *h, *c;

	if (portal_file_read(path, "api_tokens_file", API_TOKEN_FILE_MAX, &text, error_r) < 0) {
		str_deinit(&text);
		return -1;
	}
	p = text.s;
	while (p != NULL && (line = strsep(&p, "\n")) != NULL)
		if (api_token_fields(line, &n, &h, &c) == 0)
			printf("%s\t%s\n", n, c != NULL ? c : "");
	str_deinit(&text);
	return 0;
}
