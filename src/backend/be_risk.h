/*
 * be_risk: after a password is stolen (issue 17), the back side's part.
 * It records the signals as events (with time, address, country and
 * account), scores an account's recent events (src/policy/risk.h), and
 * takes the automatic response when the score crosses a threshold:
 * notify (a notice in the subscriber's mailbox), hold (submissions are
 * accepted and kept in the queue, queue.h "held messages"), suspend. Each
 * step is an audit-log event ("admin_risk_*") the desk can undo; an
 * exempt account is never raised. The desk's warning (be_risk_warn) puts
 * a notice with a report's trace into the mailbox.
 *
 * Everything here blocks (store, spool): back side or CLI only. A
 * function that takes a queue may be given NULL (the CLI): a mail it
 * queues is then announced to the daemon over the control socket.
 */
#ifndef SEKISHO_BE_RISK_H
#define SEKISHO_BE_RISK_H

#include <stddef.h>
#include <stdint.h>

#include "../store/store.h"

struct be_worker;
struct config;
struct queue;
struct str;

/* One signal that counts towards a score. */
struct be_risk_signal {
	int64_t		 time;
	const char	*type;
	const char	*ip;
	const char	*country;
	const char	*detail;
	int		 early;		/* a limit reached early in the day */
	double		 points;	/* now, decayed */
};
typedef void be_risk_signal_cb(const struct be_risk_signal *s, void *ctx);

struct be_risk_score {
	double		 score;
	int		 level;		/* the level the score calls for */
	size_t		 signals;
	struct store_risk state;	/* the stored response */
};

/* The account's score at now; cb (may be NULL) gets each signal that
 * counts, oldest first. 0, or -1 with error_r. */
int be_risk_score(const struct config *conf, struct store *st,
    const char *account, int64_t now, struct be_risk_score *s,
    be_risk_signal_cb *cb, void *ctx, const char **error_r);

/* Score the account and raise its response to what the score calls for
 * (never lowers it: that is the desk's). Errors are logged. Returns the
 * response level now in force (STORE_RISK_*). */
int be_risk_update(const struct config *conf, struct store *st,
    struct queue *q, const char *account);

/*
 * Signals. login: a successful login of account (service: "smtp",
 * "pop3", "apop", "portal", "imap"...) from client: a country it has not
 * logged in from in risk_login_country_days is a signal. The shared
 * login path (be_auth_reply) and the settings page call it, so every
 * protocol's logins count. auth_fail: a failed login of name from
 * client (password spraying; the locks it led to).
 */
void be_risk_login(struct be_worker *w, struct store *st,
    const char *account, const char *client, const char *service);
void be_risk_auth_fail(struct be_worker *w, struct store *st,
    const char *name, const char *client);
/*
 * A filter's spam verdict on account's own submission (the milter
 * code's call): a signal, then the score. verdict: one printable line
 * (e.g. "rspamd score=15.2 action=reject"), cut when stored.
 */
void be_risk_spam(const struct config *conf, struct store *st,
    struct queue *q, const char *account, const char *client,
    const char *country, const char *verdict);

/*
 * At the commit of message id (incoming/ID, checked): a submission's
 * first-time recipients, or on MX the bounces (null sender) to local
 * accounts; then the account's score. 1 when the message must be
 * committed held (queue_hold_commit with "risk" and reason, which gets
 * the account's hold reason), else 0. account NULL: not a submission.
 */
int be_risk_commit(struct be_worker *w, const char *account,
    const char *client, const char *country, const char *id,
    char *reason, size_t reason_len);

/* The desk. by: "cli", "desk:NAME". clear: level back to none, signals
 * so far forgiven (an audit event). exempt: never raised automatically.
 * hold: the desk puts the account on hold. 0, 1 no such account, -1
 * (error_r). */
int be_risk_clear(const struct config *conf, struct store *st,
    const char *account, const char *by, const char *client,
    const char **error_r);
int be_risk_set_exempt(const struct config *conf, struct store *st,
    const char *account, int exempt, const char *by, const char *client,
    const char **error_r);
int be_risk_desk_hold(const struct config *conf, struct store *st,
    const char *account, const char *by, const char *client,
    const char **error_r);

/*
 * The desk's warning (seed 003 Q5): a Japanese and English notice into
 * the account's mailbox that its mail was reported, with the report's
 * trace only (time, client address, country, recipients of each of the
 * account's submissions the report names; never the report's other
 * content) and what to do; an audit event; the settings page shows it.
 * keys: the report's identifiers (trace.h; NULL: no report). *traced_r:
 * submissions of the account found by them. 0, 1 no such account, -1
 * (error_r).
 */
struct trace_keys;
int be_risk_warn(const struct config *conf, struct store *st,
    struct queue *q, const char *account, const char *by,
    const char *client, const struct trace_keys *keys, size_t *traced_r,
    const char **error_r);

/* Queue a notice mail to account (Japanese and English, from
 * notice_from, null sender, delivered locally; q NULL: the CLI asks the
 * daemon to flush it); kind names it in the log line, log_extra (NULL:
 * none) ends that line. 0, -1 (error_r). */
struct queue;
int be_notice_mail(const struct config *conf, struct queue *q,
    const char *account, const char *kind, const char *subject_ja,
    const char *subject_en, const char *body, const char *log_extra,
    const char **error_r);

/* The desk released (release 1) or deleted a held message of account:
 * the audit event. */
void be_risk_held_audit(struct store *st, const char *account,
    const char *id, int release, const char *by, const char *client);

#endif
