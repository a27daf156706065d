/*
 * be_own_from: refuse_own_from (issue 16 item 5). This is the hook's
 * place; the check itself is written on branch i16-filters.
 */
#include "be_own_from.h"
#include "backend.h"

int
be_own_from_check(struct be_worker *w, const struct be_filtered *m,
    struct str *reply_r)
{
	(void)w;
	(void)m;
	(void)reply_r;
	return 0;
}
