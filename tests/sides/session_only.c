/*
 * session_only: linked by `make check-sides` with libsekisho-session.a and
 * libsekisho-common.a alone. It names every entry point of the session
 * side: the session process's loop and the start of each protocol's
 * session. If any of them reaches the store, the spool, the queue, the
 * MTA, the policy, a private key or the master other than by a message
 * across the seam, this program fails to link.
 */
#include <stddef.h>

#include "core/be_client.h"
#include "core/metrics_http.h"
#include "daemon/limits.h"
#include "daemon/server.h"
#include "keys/keys.h"
#include "policyd/policyd_session.h"
#include "authpolicy/authpolicy_session.h"
#include "pop3/pop3_session.h"
#include "portal/portal.h"
#include "smtp/smtp_session.h"

int
main(void)
{
	/* volatile: the addresses are taken and kept, nothing is run */
	static __typeof__(&server_session_main) volatile loop =
	    server_session_main;
	static __typeof__(&smtp_session_new) volatile smtp = smtp_session_new;
	static __typeof__(&pop3_session_new) volatile pop3 = pop3_session_new;
	static __typeof__(&policyd_session_new) volatile policyd =
	    policyd_session_new;
	static __typeof__(&authpolicy_session_new) volatile authpolicy =
	    authpolicy_session_new;
	static __typeof__(&portal_listen) volatile portal = portal_listen;
	static __typeof__(&metrics_http_session_new) volatile metrics =
	    metrics_http_session_new;
	static __typeof__(&be_client_new) volatile be = be_client_new;
	static __typeof__(&keys_client_attach) volatile keys =
	    keys_client_attach;
	static __typeof__(&limits_conn_acquire) volatile limits =
	    limits_conn_acquire;

	return loop == NULL || smtp == NULL || pop3 == NULL ||
	    policyd == NULL || authpolicy == NULL || portal == NULL || metrics == NULL ||
	    be == NULL || keys == NULL || limits == NULL;
}
