/*
 * unit_queue: the config the queue and commit tests run with: a spool and
 * Maildir root under base, a fixed hostname, and a queue lifetime long
 * enough that the tests' fixed envelope times never expire.
 */
#ifndef SEKISHO_TEST_UNIT_QUEUE_H
#define SEKISHO_TEST_UNIT_QUEUE_H

#include <stdio.h>
#include <string.h>

#include "core/config.h"

static inline struct config
unit_queue_config(const char *base)
{
	static char spool[1024], mail[1024];
	struct config c;

	snprintf(spool, sizeof(spool), "%s/spool", base);
	snprintf(mail, sizeof(mail), "%s/mail", base);
	memset(&c, 0, sizeof(c));
	c.spool_dir = spool;
	c.maildir_root = mail;
	c.hostname = "mx.example.jp";
	c.queue_lifetime = 50 * 365 * 86400;
	return c;
}

#endif
