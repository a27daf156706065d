/*
 * be_own_from: the check run on every message after the mail filters
 * ran and their changes were written, before the spool commit (issue 16
 * item 5, "refuse mail that claims to be from me"; the hook is called
 * from be_spool.c, see /work/wt/MILTER_IFACE.md while it is written).
 */
#ifndef SEKISHO_BE_OWN_FROM_H
#define SEKISHO_BE_OWN_FROM_H

#include <stddef.h>

#include "../core/str.h"
#include "../queue/envelope.h"

struct be_worker;

struct be_filtered {
	const char		*id;		/* queue id */
	int			 submission;	/* 1: submission role, 0: mx */
	const char		*account;	/* the record's account or NULL */
	const char		*client;	/* client address */
	const struct envelope	*env;		/* after the filters' changes */
	int			 fd;		/* the message as committed: pread */
	size_t			 offset;	/* message start (our Received:) */
	/* the header fields the milters added, inserted or changed, as
	 * written: the only Authentication-Results to trust */
	const char *const	*added_names;
	const char *const	*added_values;
	size_t			 nadded;
};

/*
 * 0 pass; 1 refused (*reply_r: the full SMTP reply, "550 5.7.1 ...");
 * -1 temporary failure (*reply_r: "451 ..."). On a worker thread (it may
 * use be_worker_store(w)).
 */
int be_own_from_check(struct be_worker *w, const struct be_filtered *m,
    struct str *reply_r);

#endif
