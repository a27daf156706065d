/*
 * back_only: linked by `make check-sides` with libsekisho-back.a and
 * libsekisho-common.a alone. It names the entry points of the back side
 * and of the key process; if any of them needs a protocol's session, the
 * session process's loop or the master, this program fails to link.
 */
#include <stddef.h>

#include "backend/backend.h"
#include "daemon/back_proc.h"
#include "keys/keys.h"
#include "queue/queue.h"
#include "store/store.h"

int
main(void)
{
	/* volatile: the addresses are taken and kept, nothing is run */
	static __typeof__(&back_proc_main) volatile back = back_proc_main;
	static __typeof__(&backend_start) volatile be = backend_start;
	static __typeof__(&queue_start) volatile queue = queue_start;
	static __typeof__(&store_open) volatile store = store_open;
	static __typeof__(&keyproc_main) volatile keys = keyproc_main;

	return back == NULL || be == NULL || queue == NULL || store == NULL ||
	    keys == NULL;
}
