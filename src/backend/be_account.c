/*
 * be_account: back-side answers about accounts: authentication (password
 * hashing is slow on purpose, so it runs here, never on a session loop)
 * and recipient resolution.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/xmalloc.h"
#include "../policy/policy.h"
#include "../store/password.h"
#include "../store/store.h"
#include "backend.h"
#include "be_risk.h"
#include "be_session.h"

static pthread_once_t be_dummy_once = PTHREAD_ONCE_INIT;
static char *be_dummy_hash;

static void
be_dummy_init(void)
{
	const char *error;

	be_dummy_hash = password_hash("sekisho-no-such-user", &error);
}

static char *
be_lower(const char *s)
{
	char *p = xstrdup(s);

	for (char *c = p; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	return p;
}

void
be_auth_reply(struct be_worker *w, struct store *st, uint64_t sess,
    const char *canon, const char *client, const char *service,
    uint32_t result, const struct account *a, int64_t locked,
    uint64_t start, struct msg *reply)
{
	struct str abroad = STR_INIT;
	int64_t delay = 0;

	/* overseas_restrict = ... pop3: the right password from abroad
	 * without a permission for that country (issue 17 item 7). */
	if (result == BE_AUTH_OK && st != NULL && (strcmp(service, "pop3") ==
	    0 || strcmp(service, "apop") == 0) &&
	    policy_overseas_restricts(w->conf, "pop3")) {
		struct sockaddr_storage ss;
		struct geo_result geo;
		char country[16];

		be_geo_lookup(w, client, &ss, &geo);
		if (policy_login_overseas(w->conf, st, a->address, client,
		    ss.ss_family != 0 ? (struct sockaddr *)&ss : NULL, &geo,
		    "pop3", country, &abroad) == 1) {
			log_info("policy pop3 login refused account=%s "
			    "client=%s country=%s reason=abroad", a->address,
			    client, country);
			be_overseas_notice(w, a->address, client, country,
			    "pop3");
			result = BE_AUTH_ABROAD;
		}
	}
	if (result == BE_AUTH_FAIL) {
		delay = policy_auth_fail(w->conf, st, canon, client, service);
		be_risk_auth_fail(w, st, canon, client);
	} else if (result == BE_AUTH_OK) {
		policy_auth_ok(w->conf, st, a->address, client);
		be_risk_login(w, st, a->address, client, service);
		/* the only way a session gets an account: our own OK */
		be_session_set_account(w->chan, sess, a->address);
	}
	metrics_auth_be(service, result, start);
	msg_add_u32(reply, result);
	msg_add_str(reply, result == BE_AUTH_OK ? a->address : NULL);
	msg_add_str(reply, result == BE_AUTH_SUSPENDED ? a->suspend_reason :
	    result == BE_AUTH_ABROAD ? str_c(&abroad) : NULL);
	msg_add_u32(reply, (uint32_t)delay);
	msg_add_i64(reply, locked);
	str_deinit(&abroad);
}

int
be_auth(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *service, *mech, *user, *pass, *client, *error;
	struct account a;
	struct store *st;
	uint32_t result;
	int64_t locked = 0;
	int r = -1;
	uint64_t start = metrics_now_us(), sess;

	if (be_session_begin(w, req, &sess) < 0 ||
	    msg_get_str(req, &service) < 0 || msg_get_str(req, &mech) < 0 ||
	    msg_get_str(req, &user) < 0 || msg_get_str(req, &pass) < 0 ||
	    msg_get_str(req, &client) < 0 || msg_end(req) < 0 ||
	    service == NULL || user == NULL || pass == NULL || client == NULL)
		return -1;
	(void)mech;

	memset(&a, 0, sizeof(a));
	char *canon = be_lower(user);

	if ((st = be_worker_store(w)) == NULL) {
		result = BE_AUTH_TEMPFAIL;
		goto reply;
	}
	/* A locked address or account is refused before the password is
	 * even looked at: the lock must hold against the right one too. */
	if (policy_auth_check(w->conf, st, canon, client, &locked) == 1) {
		result = BE_AUTH_LOCKED;
		goto reply;
	}
	r = store_account_get(st, canon, &a, &error);
	if (r < 0) {
		log_warnx("backend: auth lookup: %s", error);
		result = BE_AUTH_TEMPFAIL;
	} else if (r == 1) {
		/* Spend the same time as a real check, so a reply's delay
		 * does not tell which accounts exist. */
		pthread_once(&be_dummy_once, be_dummy_init);
		if (be_dummy_hash != NULL)
			(void)password_verify(pass, be_dummy_hash, &error);
		result = BE_AUTH_FAIL;
	} else {
		int ok = password_verify_cached(pass, a.password_hash,
		    w->conf->auth_cache_ttl, &error);

		if (ok < 0)
			log_warnx("backend: account %s: password hash "
			    "unusable: %s", a.address, error);
		if (ok != 1)
			result = BE_AUTH_FAIL;
		else if (a.suspended)
			result = BE_AUTH_SUSPENDED;
		else
			result = BE_AUTH_OK;
	}
reply:
	be_auth_reply(w, st, sess, canon, client, service, result, &a, locked,
	    start, reply);
	if (r == 0)
		account_deinit(&a);
	free(canon);
	return 0;
}

/* The answer to a recipient of session sess, into reply (BE_RCPT's):
 * 1 if the record took it (the session accepts it), else 0. */
int
be_rcpt_answer(struct be_worker *w, uint64_t sess, const char *address,
    struct msg *reply)
{
	const char *error;
	char *lookup, *mailbox = NULL;
	struct store *st;
	int local = 0, r, taken = 0;
	uint32_t result;

	if ((st = be_worker_store(w)) == NULL) {
		msg_add_u32(reply, BE_RCPT_TEMPFAIL);
		msg_add_str(reply, NULL);
		return 0;
	}
	/* RFC 5321 4.5.1: <postmaster> without a domain must be accepted. */
	if (strchr(address, '@') == NULL)
		lookup = xasprintf("%s@%s", address, w->conf->hostname);
	else
		lookup = be_lower(address);
	r = store_resolve_recipient(st, lookup, &mailbox, &local, &error);
	free(lookup);
	if (r < 0) {
		log_warnx("backend: recipient lookup: %s", error);
		result = BE_RCPT_TEMPFAIL;
	} else if (r == 0)
		result = BE_RCPT_LOCAL;
	else
		result = local ? BE_RCPT_UNKNOWN : BE_RCPT_REMOTE;
	/* What a commit may name: a local mailbox, or a remote address
	 * for an authenticated session (relaying is theirs only). */
	if (result == BE_RCPT_LOCAL && mailbox == NULL)
		result = BE_RCPT_TEMPFAIL;
	if (result == BE_RCPT_LOCAL || result == BE_RCPT_REMOTE) {
		char *account = result == BE_RCPT_REMOTE ?
		    be_session_account(w->chan, sess) : NULL;

		if ((result == BE_RCPT_LOCAL || account != NULL) &&
		    be_session_rcpt_add(w->chan, sess, address,
		    result == BE_RCPT_LOCAL ? mailbox : NULL,
		    (size_t)w->conf->smtp_max_recipients) < 0)
			result = BE_RCPT_TEMPFAIL;
		else
			taken = result == BE_RCPT_LOCAL || account != NULL;
		free(account);
	}
	msg_add_u32(reply, result);
	msg_add_str(reply, result == BE_RCPT_LOCAL ? mailbox : NULL);
	free(mailbox);
	return taken;
}

int
be_rcpt(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *address;
	uint64_t sess;

	if (be_session_begin(w, req, &sess) < 0 ||
	    msg_get_str(req, &address) < 0 || msg_end(req) < 0 ||
	    address == NULL)
		return -1;
	(void)be_rcpt_answer(w, sess, address, reply);
	return 0;
}
