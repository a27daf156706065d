/*
 * fuzz_config: the config file parser, from memory (config_load_buffer),
 * with no disk I/O. A loaded config is printed and read back: the printer
 * must always produce a file the parser accepts (round trip).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str errors = STR_INIT;
	struct config *conf = NULL, *again = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *fp;

	if (config_load_buffer("fuzz.conf", (const char *)data, size, &conf,
	    &errors) == 0) {
		if (conf == NULL || errors.len != 0)
			abort();
		if ((fp = open_memstream(&text, &len)) == NULL)
			abort();
		config_print(fp, conf);
		fclose(fp);
		if (config_load_buffer("printed.conf", text, len, &again,
		    &errors) != 0) {
			fprintf(stderr, "%s", str_c(&errors));
			abort();
		}
		config_free(&again);
		free(text);
	} else if (conf != NULL || errors.len == 0)
		abort();
	config_free(&conf);
	str_deinit(&errors);
	return 0;
}
