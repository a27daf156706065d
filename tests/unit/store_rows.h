/*
 * store_rows: the store's typed rows (store.h) written as the text lines
 * the store tests compare with ("col\tcol\n", NULL as ""), so one table
 * of expected listings serves both drivers.
 */
#ifndef SEKISHO_TEST_STORE_ROWS_H
#define SEKISHO_TEST_STORE_ROWS_H

#include "core/str.h"
#include "store/store.h"

static inline int
rows_domain(const char *domain, void *out)
{
	str_printf(out, "%s\n", domain);
	return 0;
}

static inline int
rows_account(const struct store_account_row *r, void *out)
{
	str_printf(out, "%s\t%d\n", r->address, r->suspended ? 1 : 0);
	return 0;
}

static inline int
rows_alias(const struct store_alias_row *r, void *out)
{
	str_printf(out, "%s\t%s\n", r->alias, r->target);
	return 0;
}

static inline int
rows_event(const struct store_event *e, void *out)
{
	str_printf(out, "%lld\t%s\t%s\t%s\t%s\t%s\n", (long long)e->time,
	    e->account, e->type, e->ip, e->country, e->detail);
	return 0;
}

static inline int
rows_submission(const struct store_submission *s, void *out)
{
	str_printf(out, "%s\t%s\t%lld\t%s\t%s\t%s\t%s\t%lld\t%lld\t%d\n",
	    s->queue_id, s->message_id, (long long)s->time, s->account, s->ip,
	    s->country, s->tls, (long long)s->rcpts, (long long)s->size,
	    s->overseas ? 1 : 0);
	return 0;
}

static inline int
rows_name(const struct store_name_row *r, void *out)
{
	str_printf(out, "%s\t%s\t%lld\n", r->name, r->hash,
	    (long long)r->created);
	return 0;
}

#endif
