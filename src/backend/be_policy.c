/*
 * be_policy: the back side's answer to MAIL FROM of a submission
 * (policy.c decides), and the notice a subscriber finds in their own
 * mailbox when a submission from abroad was refused in their name
 * (PRODUCT.md: at most once per account, country and day).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../policy/policy.h"
#include "../queue/envelope.h"
#include "../queue/queue.h"
#include "../queue/spool.h"
#include "../core/base64.h"
#include "../store/store.h"
#include "backend.h"
#include "be_risk.h"
#include "trace_token.h"
#include "be_session.h"

/*
 * The notice: Japanese first, then English (be_notice_mail), once a day
 * per account, country and what was refused (a submission, or a login
 * to read mail: POP3 or IMAP under overseas_restrict). A login refused
 * from abroad had the right password: if it was not the subscriber,
 * someone else has it, which the notice says.
 */
void
be_overseas_notice(struct be_worker *w, const char *account,
    const char *client, const char *country, const char *service)
{
	const struct config *conf = w->conf;
	struct str body = STR_INIT, key = STR_INIT, extra = STR_INIT;
	char day[24], when[64], url[512];
	const char *error;
	int submission = strcmp(service, "submission") == 0;
	const char *proto = strcmp(service, "imap") == 0 ? "IMAP" : "POP3";
	int64_t now = policy_now();

	policy_period('d', now, day, sizeof(day));
	if (submission)
		str_printf(&key, "overseas:%s:%s:%s", account, country,
		    day + 2);
	else
		str_printf(&key, "overseas-%s:%s:%s:%s", service, account,
		    country, day + 2);
	if (store_notice_once(be_worker_store(w), str_c(&key), now,
	    &error) != 0) {
		str_deinit(&key);
		return;		/* sent already today for this country */
	}
	policy_format_time(now, when, sizeof(when));
	policy_portal_url(conf, url, sizeof(url));
	str_printf(&body, "%s 様\r\n\r\n", account);
	if (submission)
		str_append(&body, "海外からのメール送信制限により、お客様の"
		    "アカウントでのメール送信をお断りしました。");
	else
		str_printf(&body, "海外からのメール受信制限により、お客様の"
		    "アカウントへの%sログイン（正しいパスワードによるもの）を"
		    "お断りしました。", proto);
	str_printf(&body, "\r\n\r\n"
	    "  日時: %s\r\n"
	    "  IPアドレス: %s\r\n"
	    "  国: %s\r\n\r\n"
	    "ご自身で海外から%sされた場合は、メールオプション設定ページで"
	    "「海外からのメール送信」をオンにしてください（%d日間有効、"
	    "再度操作すると延長されます）。\r\n"
	    "  %s\r\n\r\n"
	    "お心当たりがない場合は、第三者がパスワードを知っている"
	    "おそれがあります。すぐにパスワードを変更してください。\r\n\r\n"
	    "----\r\n\r\n", when, client, country,
	    submission ? "送信" : "ログイン", conf->overseas_permission_days,
	    url);
	if (submission)
		str_printf(&body, "A message submission from abroad using your "
		    "account (%s) was refused, because sending from outside "
		    "the home country is turned off.", account);
	else
		str_printf(&body, "A login from abroad to read mail over %s "
		    "with the password of your account (%s) was refused, "
		    "because reading mail from outside the home country is "
		    "turned off.", proto, account);
	str_printf(&body, "\r\n\r\n"
	    "  When:       %s\r\n"
	    "  IP address: %s\r\n"
	    "  Country:    %s\r\n\r\n"
	    "If this was you, turn on \"sending from overseas\" on the "
	    "settings page%s; it lasts %d days, and doing it again extends "
	    "it:\r\n"
	    "  %s\r\n\r\n"
	    "If it was not you, someone else may know your password: change "
	    "it now.\r\n", when, client, country,
	    submission ? "" : " (it allows reading mail from abroad too)",
	    conf->overseas_permission_days, url);
	str_printf(&extra, submission ? "country=%s" : "country=%s service=%s",
	    country, service);
	if (be_notice_mail(conf, be_worker_queue(w), account,
	    submission ? "overseas_refused" : "overseas_login_refused",
	    submission ? "海外からのメール送信をブロックしました" :
	    "海外からのログインをブロックしました",
	    submission ? " / Sending from abroad was blocked" :
	    " / A login from abroad was blocked", str_c(&body), str_c(&extra),
	    &error) < 0)
		log_warnx("notice to %s not queued: %s", account, error);
	str_deinit(&body);
	str_deinit(&key);
	str_deinit(&extra);
}

int
be_policy_mail(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *sender, *client;
	struct policy_mail_result r;
	struct sockaddr_storage ss;
	struct geo_result geo;
	struct store *st;
	const char *error;
	char *account;
	uint64_t sess;

	if (be_session_begin(w, req, &sess) < 0 ||
	    msg_get_str(req, &sender) < 0 || msg_get_str(req, &client) < 0 ||
	    msg_end(req) < 0 || sender == NULL || client == NULL)
		return -1;
	/* The account is the one the back side authenticated here. */
	be_session_txn_reset(w->chan, sess);
	if ((account = be_session_account(w->chan, sess)) == NULL) {
		log_warnx("backend: channel=%u session=%llu refused=policy_mail "
		    "reason=not-authenticated", w->chan,
		    (unsigned long long)sess);
		return -1;
	}
	policy_mail_result_init(&r);
	if ((st = be_worker_store(w)) == NULL) {
		r.verdict = POLICY_TEMPFAIL;
		str_append(&r.reply, "451 4.3.0 Temporary failure: account "
		    "database unavailable, try again later");
	} else {
		be_geo_lookup(w, client, &ss, &geo);
		/* its reads in one read transaction (store.h) */
		(void)store_read_begin(st, &error);
		(void)policy_mail(w->conf, st, account, sender, client,
		    ss.ss_family != 0 ? (struct sockaddr *)&ss : NULL, &geo,
		    &r);
		store_read_end(st);
		if (r.notify)
			be_overseas_notice(w, account, client, r.country,
			    "submission");
		/* a refusal is a risk signal (issue 17) */
		if (r.verdict != POLICY_OK)
			(void)be_risk_update(w->conf, st, be_worker_queue(w),
			    account);
	}
	/* What the commit will use: decided here, kept here. */
	if (r.verdict == POLICY_OK)
		be_session_set_policy(w->chan, sess, sender, r.country,
		    r.overseas);
	free(account);
	msg_add_u32(reply, (uint32_t)r.verdict);
	msg_add_str(reply, r.verdict == POLICY_OK ? NULL : str_c(&r.reply));
	msg_add_str(reply, r.country);
	msg_add_u32(reply, (uint32_t)r.overseas);
	msg_add_i64(reply, r.rcpts_left);
	msg_add_i64(reply, r.rcpts_msg);
	msg_add_str(reply, r.rcpt_reply.len > 0 ? str_c(&r.rcpt_reply) : NULL);
	/* received_client = token: the Received header's sealed client
	 * (issue 17 item 8); without a key the address is not shown
	 * either: the session writes no client then. */
	if (r.verdict == POLICY_OK && w->conf->received_client ==
	    RECEIVED_CLIENT_TOKEN) {
		struct str token = STR_INIT;
		char *who = be_session_account(w->chan, sess);

		if (who == NULL || trace_token_seal(w->conf, client, who,
		    policy_now(), &token, &error) < 0) {
			log_warnx("policy: trace token for %s: %s",
			    who != NULL ? who : "-", who != NULL ? error :
			    "no account");
			str_clear(&token);
			str_append(&token, "-");
		}
		msg_add_str(reply, str_c(&token));
		str_deinit(&token);
		free(who);
	} else
		msg_add_str(reply, NULL);
	policy_mail_result_deinit(&r);
	return 0;
}

/*
 * The messages the Postfix listener counted at RCPT (policy_count_state
 * = rcpt), by account and Postfix's "instance" attribute (one per
 * message, the same in each of its requests): the message is counted at
 * its first recipient answered DUNNO, not again at the next ones or at
 * END-OF-MESSAGE. XXX: memory of this back side only, the newest
 * BE_POLICY_INSTANCES: a message whose requests go to two nodes, or one
 * with that many others between its RCPT and END-OF-MESSAGE, counts its
 * message (not its recipients) twice: too strict, never too lenient.
 */
#define BE_POLICY_INSTANCES	4096

static pthread_mutex_t be_policy_lock = PTHREAD_MUTEX_INITIALIZER;
static char *be_policy_instances[BE_POLICY_INSTANCES];
static size_t be_policy_next;

static int
be_policy_instance_seen(const char *account, const char *instance)
{
	struct str key = STR_INIT;
	int seen = 0;

	if (*instance == '\0')
		return 0;	/* XXX: each request its own message */
	str_printf(&key, "%s\n%s", account, instance);
	pthread_mutex_lock(&be_policy_lock);
	for (size_t i = 0; i < BE_POLICY_INSTANCES && !seen; i++)
		seen = be_policy_instances[i] != NULL &&
		    strcmp(be_policy_instances[i], str_c(&key)) == 0;
	pthread_mutex_unlock(&be_policy_lock);
	str_deinit(&key);
	return seen;
}

static void
be_policy_instance_add(const char *account, const char *instance)
{
	struct str key = STR_INIT;

	if (*instance == '\0')
		return;
	str_printf(&key, "%s\n%s", account, instance);
	pthread_mutex_lock(&be_policy_lock);
	free(be_policy_instances[be_policy_next]);
	be_policy_instances[be_policy_next] = xstrdup(str_c(&key));
	be_policy_next = (be_policy_next + 1) % BE_POLICY_INSTANCES;
	pthread_mutex_unlock(&be_policy_lock);
	str_deinit(&key);
}

/*
 * Postfix's check_policy_service (docs/policy.md): in every state the
 * overseas rule, sender alignment and used-up limits; the count is
 * taken where policy_count_state says: rcpt (default), each recipient
 * answered DUNNO at RCPT and the message at its first (instance), and
 * at END-OF-MESSAGE whatever was not counted at RCPT (Postfix asks only
 * there); end-of-message, recipient_count at END-OF-MESSAGE only. Mail
 * without sasl_username is not a submission: DUNNO, Postfix's own
 * restrictions decide.
 */
int
be_policy_postfix(struct be_worker *w, struct msg *req, struct msg *reply)
{
	const char *state, *user, *client, *sender, *qid, *instance;
	struct policy_mail_result r;
	struct sockaddr_storage ss;
	struct geo_result geo;
	struct str answer = STR_INIT;
	struct store *st;
	const char *error;
	uint32_t rcpts;
	char *account;
	int at_rcpt, at_eom, seen;

	if (msg_get_str(req, &state) < 0 || msg_get_str(req, &user) < 0 ||
	    msg_get_str(req, &client) < 0 || msg_get_str(req, &sender) < 0 ||
	    msg_get_u32(req, &rcpts) < 0 || msg_get_str(req, &qid) < 0 ||
	    msg_get_str(req, &instance) < 0 || msg_end(req) < 0 ||
	    state == NULL || user == NULL || client == NULL ||
	    sender == NULL || qid == NULL || instance == NULL)
		return -1;
	if (*user == '\0') {
		msg_add_str(reply, "DUNNO");
		return 0;
	}
	if ((st = be_worker_store(w)) == NULL) {
		msg_add_str(reply, "451 4.3.0 Account database unavailable, "
		    "try again later");
		return 0;
	}
	account = xstrdup(user);
	for (char *c = account; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	at_rcpt = strcmp(state, "RCPT") == 0;
	at_eom = strcmp(state, "END-OF-MESSAGE") == 0;
	seen = w->conf->policy_count_state == POLICY_COUNT_RCPT &&
	    be_policy_instance_seen(account, instance);
	policy_mail_result_init(&r);
	/* counted at an earlier RCPT: its own message and recipients do
	 * not stop it now */
	r.msg_counted = seen;
	r.rcpts_counted = seen && !at_rcpt;
	be_geo_lookup(w, client, &ss, &geo);
	/* its reads in one read transaction, with the connection's kept
	 * statements (store.h): the hot path of a Postfix policy request */
	(void)store_read_begin(st, &error);
	(void)policy_mail(w->conf, st, account, sender, client,
	    ss.ss_family != 0 ? (struct sockaddr *)&ss : NULL, &geo, &r);
	store_read_end(st);
	if (r.notify)
		be_overseas_notice(w, account, client, r.country,
		    "submission");
	if (r.verdict != POLICY_OK)
		str_append(&answer, str_c(&r.reply));
	else if (at_rcpt &&
	    w->conf->policy_count_state == POLICY_COUNT_RCPT) {
		/* this recipient, and the message at its first */
		if (policy_count(w->conf, st, account, client, r.country,
		    r.overseas, seen ? 0 : 1, 1, &answer) == POLICY_OK) {
			str_clear(&answer);
			str_append(&answer, "DUNNO");
			if (!seen)
				be_policy_instance_add(account, instance);
		}
	} else if (at_eom) {
		/* The count and the submission log in one write
		 * transaction: one commit (store.h). The header From is not
		 * in the protocol: only the envelope is aligned here. */
		(void)store_write_begin(st, &error);
		if (seen || policy_count(w->conf, st, account, client,
		    r.country, r.overseas, 1, rcpts, &answer) == POLICY_OK) {
			struct store_submission sub = {
				.queue_id = qid, .time = policy_now(),
				.account = account, .ip = client,
				.country = r.country, .rcpts = rcpts,
				.overseas = r.overseas,
			};

			str_clear(&answer);
			str_append(&answer, "DUNNO");
			if (*qid != '\0' &&
			    store_submission_add(st, &sub, &error) < 0)
				log_warnx("policy: submission log %s: %s", qid,
				    error);
		}
		if (store_write_end(st, 0, &error) < 0) {
			log_warnx("policy: count %s: %s", account, error);
			str_clear(&answer);
			str_append(&answer, "451 4.3.0 Temporary failure "
			    "counting the message, try again later");
		}
	} else
		str_append(&answer, "DUNNO");
	char e_state[64], e_account[256], e_client[128];

	/* what Postfix sent, escaped (issue 13) */
	log_info("policy postfix state=%s account=%s client=%s country=%s "
	    "rcpts=%u counted=%s action=\"%s\"", log_escape(e_state,
	    sizeof(e_state), state), log_escape(e_account, sizeof(e_account),
	    account), log_escape(e_client, sizeof(e_client), client),
	    r.country, rcpts, strcmp(str_c(&answer), "DUNNO") != 0 ? "no" :
	    at_rcpt ? (w->conf->policy_count_state == POLICY_COUNT_RCPT ?
	    "rcpt" : "no") : at_eom ? (seen ? "earlier" : "message") : "no",
	    str_c(&answer));
	msg_add_str(reply, str_c(&answer));
	policy_mail_result_deinit(&r);
	str_deinit(&answer);
	free(account);
	return 0;
}
