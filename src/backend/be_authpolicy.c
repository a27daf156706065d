/*
 * be_authpolicy: the back side of Dovecot's auth policy server
 * (BE_AUTHPOLICY, docs/imap.md). An IMAP (or Dovecot POP3/LMTP) login is
 * judged by the same rules as SMTP AUTH and POP3: before authentication
 * ("allow") the address and account locks of policy_auth_check, and the
 * overseas restriction; after it ("report") the failure counted or the
 * success recorded through be_auth_reply, the end every login path of
 * sekisho shares. Dovecot holds no session with us: there is no session
 * record, and nothing here gives a session an account.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/msg.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../geo/geo.h"
#include "../policy/policy.h"
#include "../store/store.h"
#include "backend.h"

/* Dovecot's protocol name as a throttling service name: "imap", "pop3",
 * ... (a word of at most 15 lower-case letters and digits) or "dovecot". */
static void
be_authpolicy_service(const char *protocol, char out[16])
{
	size_t i;

	for (i = 0; i < 15 && protocol[i] != '\0'; i++) {
		char c = (char)tolower((unsigned char)protocol[i]);

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			break;
		out[i] = c;
	}
	if (i == 0 || protocol[i] != '\0')
		xstrlcpy(out, "dovecot", 16);
	else
		out[i] = '\0';
}

static char *
be_authpolicy_lower(const char *s)
{
	char *p = xstrdup(s);

	for (char *c = p; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	return p;
}

/* The account a login name stands for (an account, or an alias of one);
 * 0 with *a filled, 1 none, -1 store error. */
static int
be_authpolicy_account(struct store *st, const char *canon, struct account *a)
{
	const char *error;
	char *target = NULL;
	int local = 0, r;

	r = store_account_get(st, canon, a, &error);
	if (r == 1 && store_resolve_recipient(st, canon, &target, &local,
	    &error) == 0) {
		r = store_account_get(st, target, a, &error);
		free(target);
	}
	if (r < 0)
		log_warnx("backend: authpolicy account lookup: %s", error);
	return r;
}

/*
 * The restriction from abroad (overseas_restrict naming the protocol, as
 * it names pop3) for an account Dovecot verified: 1 to refuse (the text
 * in reply; policy_login_overseas records the overseas_refused event),
 * 0 to allow. Asked only after authentication, so a stranger abroad
 * who types a name learns nothing and records nothing.
 */
static int
be_authpolicy_overseas(struct be_worker *w, struct store *st,
    const char *account, const char *client, const char *service,
    struct str *reply)
{
	struct sockaddr_storage ss;
	struct geo_result geo;
	char country[16];

	if (!policy_overseas_restricts(w->conf, service))
		return 0;
	be_geo_lookup(w, client, &ss, &geo);
	if (policy_login_overseas(w->conf, st, account, client,
	    ss.ss_family != 0 ? (struct sockaddr *)&ss : NULL, &geo, service,
	    country, reply) != 1)
		return 0;
	log_info("policy %s login refused account=%s client=%s country=%s "
	    "reason=abroad", service, account, client, country);
	be_overseas_notice(w, account, client, country, service);
	return 1;
}

/*
 * A successful login from abroad: the event a login from a foreign
 * address records (docs/imap.md). The risk score's "login from a new
 * country" comes from be_auth_reply, as for every protocol; this one
 * says every login from abroad, new country or not.
 */
static void
be_authpolicy_abroad(struct be_worker *w, struct store *st,
    const char *account, const char *client, const char *service)
{
	struct sockaddr_storage ss;
	struct geo_result geo;
	char detail[64];

	if (be_geo_lookup(w, client, &ss, &geo) < 0 ||
	    geo_is_home(w->conf, &geo) || geo.kind != GEO_COUNTRY ||
	    cidr_match(w->conf->trusted_networks,
	    w->conf->trusted_networks_count, (struct sockaddr *)&ss))
		return;
	snprintf(detail, sizeof(detail), "%s login", service);
	policy_event(st, account, "login_abroad", client, geo.country,
	    detail);
}

int
be_authpolicy(struct be_worker *w, struct msg *req, struct msg *reply)
{
	uint32_t report, success, rejected;
	const char *login, *remote, *protocol, *session, *account, *what;
	char service[16], e_login[128], e_account[128], e_client[128];
	char e_session[128];
	struct str text = STR_INIT;
	struct account a;
	struct store *st;
	int64_t status = 0, locked = 0;
	uint64_t start = metrics_now_us();
	char *canon;
	int have_account = 0;

	if (msg_get_u32(req, &report) < 0 || msg_get_str(req, &login) < 0 ||
	    msg_get_str(req, &remote) < 0 || msg_get_str(req, &protocol) < 0 ||
	    msg_get_str(req, &session) < 0 || msg_get_str(req, &account) < 0 ||
	    msg_get_u32(req, &success) < 0 ||
	    msg_get_u32(req, &rejected) < 0 || msg_end(req) < 0 ||
	    login == NULL || remote == NULL || protocol == NULL ||
	    session == NULL || account == NULL)
		return -1;
	be_authpolicy_service(protocol, service);
	canon = be_authpolicy_lower(login);
	memset(&a, 0, sizeof(a));
	/* a remote that is no address is counted as given: only the
	 * holder of the key can send one */
	if ((st = be_worker_store(w)) == NULL) {
		/* An unreachable store locks no one out (as for SMTP
		 * AUTH): Dovecot's own password check still applies. */
		what = "tempfail";
	} else if (!report) {
		if (policy_auth_check(w->conf, st, canon, remote, &locked) ==
		    1) {
			status = -1;
			what = "locked";
			/* counted like SMTP AUTH's lock refusal ("imap";
			 * another Dovecot protocol is not a service here) */
			metrics_auth_name(service, "locked", start);
			str_append(&text, "Too many failed logins from your "
			    "address or to this account; try again later");
		} else if (*account != '\0' && be_authpolicy_overseas(w, st,
		    account, remote, service, &text) == 1) {
			status = -1;
			what = "overseas";
		} else
			what = "allow";
	} else if (rejected) {
		what = "report-policy-reject";	/* our own refusal: not
						 * counted again */
	} else {
		struct msg scratch;
		uint32_t result = BE_AUTH_FAIL;

		int r = 0;

		if (success) {
			r = be_authpolicy_account(st, canon, &a);
			have_account = r == 0;
			result = r < 0 ? BE_AUTH_TEMPFAIL : a.suspended ?
			    BE_AUTH_SUSPENDED : BE_AUTH_OK;
		}
		if (r == 1) {
			/* Dovecot let in a name that is none of ours (a
			 * passdb of its own): neither a failure nor one of
			 * our accounts' logins */
			what = "report-unknown";
		} else {
			/* The end every login shares (be_account.c): a
			 * failure counted against the name and address, a
			 * success clearing the name's count and remembering
			 * the address. Session 0 is never one
			 * (be_client_session). */
			msg_init(&scratch, BE_AUTHPOLICY, 0);
			be_auth_reply(w, st, 0, result == BE_AUTH_OK ?
			    a.address : canon, remote, service, result, &a, 0,
			    start, &scratch);
			msg_deinit(&scratch);
			if (result == BE_AUTH_OK)
				be_authpolicy_abroad(w, st, a.address, remote,
				    service);
			what = result == BE_AUTH_OK ? "report-ok" :
			    result == BE_AUTH_SUSPENDED ? "report-suspended" :
			    result == BE_AUTH_TEMPFAIL ? "report-tempfail" :
			    "report-fail";
		}
	}
	log_info("authpolicy command=%s login=%s account=%s client=%s "
	    "protocol=%s session=%s result=%s status=%lld",
	    report ? "report" : "allow",
	    log_escape(e_login, sizeof(e_login), login),
	    *account != '\0' ? log_escape(e_account, sizeof(e_account),
	    account) : "-",
	    log_escape(e_client, sizeof(e_client), remote), service,
	    log_escape(e_session, sizeof(e_session), session), what,
	    (long long)status);
	msg_add_i64(reply, status);
	msg_add_str(reply, text.len > 0 ? str_c(&text) : NULL);
	str_deinit(&text);
	if (have_account)
		account_deinit(&a);
	free(canon);
	return 0;
}
