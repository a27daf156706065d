/*
 * be_proto: the requests session code may send to the back side, and
 * their replies. This list is the whole seam: session code (smtp, later
 * pop3 and http) gets nothing from the store, spool or keys but these.
 * A reply has the request's type and id. When the back side cannot parse
 * a request it replies BE_FAIL, and the client's callback gets NULL.
 *
 * BE_AUTH      str service, str mechanism, str user, str password,
 *              str client address
 *          ->  u32 be_auth_result, str account (canonical, NULL unless OK),
 *              str reason (suspension reason or NULL), u32 delay in ms
 *              to wait before answering a failure (throttling), i64 end
 *              of the lock (BE_AUTH_LOCKED) or 0. A user with a control
 *              character is BE_AUTH_LOCKED with end 0, looked up nowhere
 * BE_RCPT      str address
 *          ->  u32 be_rcpt_result, str mailbox (local account or NULL)
 * BE_SPOOL_OPEN  str queue id
 *          ->  u32 0 ok / 1 temporary failure / 2 spool below
 *              queue_minfree, str error; fd: the new
 *              incoming/ID file, to which the session writes the envelope
 *              (envelope.h text form) and then the message
 * BE_SPOOL_COMMIT str queue id, then for a submission with an account
 *              (else NULL and zeros): str account, u32 recipients,
 *              u64 size, u32 overseas (1: sent from abroad under a
 *              permission), str client address, str country, str TLS
 *              description, str Message-ID, u32 n, n x str header From
 *              address
 *          ->  u32 0 ok / 1 temporary failure / 2 refused, str reply
 *              (the full SMTP reply when not ok). The back side parses
 *              the envelope back before committing: a session cannot
 *              commit a file the queue would not understand. For a
 *              submission it checks header From alignment and takes the
 *              send counts first (policy_commit).
 * BE_POLICY_MAIL str account, str sender, str client address
 *          ->  u32 policy_verdict, str reply, str country,
 *              u32 overseas, i64 recipients left (-1: no limit),
 *              i64 recipients per message (-1: no limit), str the reply
 *              once the recipients left are used
 * BE_POLICY_POSTFIX str protocol_state, str sasl_username, str
 *              client_address, str sender, u32 recipient_count, str
 *              queue_id (Postfix's policy request attributes)
 *          ->  str action ("DUNNO", or "550 5.7.1 ..." / "451 4.7.1 ...")
 * BE_SPOOL_ABORT str queue id  -> u32 0
 * BE_SPOOL_SPACE u64 size the client announced (RFC 1870 SIZE; 0: none)
 *          ->  u32 0 room / 1 temporary failure / 2 not enough (below
 *              queue_minfree after size), str the SMTP reply when not 0.
 *              Asked at MAIL when queue_minfree or SIZE is set.
 *
 * POP3 (src/backend/be_mailbox.c). A handle names one open mailbox; only
 * one exists per account at a time (the POP3 lock, RFC 1939 4).
 * BE_POP3_OPEN str account (after a successful login), str client address
 *          ->  u32 be_pop3_result, u64 handle, u32 count; fd (when OK): a
 *              memfd with one "UID SIZE\n" line per message, in message
 *              number order (SIZE with CRLF line ends). Records the
 *              POP-before-SMTP window when pop_before_smtp is on.
 * BE_POP3_RETR u64 handle, u32 index (message number - 1)
 *          ->  u32 be_pop3_result; fd (when OK): the message file, read
 *              only, LF line ends
 * BE_POP3_UPDATE u64 handle, u32 commit, u32 n, n x u32 index (n <= 8192)
 *          ->  u32 be_pop3_result, u32 deleted. Marks the indexes; with
 *              commit = 1 (QUIT) unlinks every marked message and fsyncs
 *              the folders before answering.
 * BE_POP3_CLOSE u64 handle -> u32 0. Releases the lock (a lease in the
 *              store, shared by the nodes); deletes nothing.
 * BE_APOP      str user, str timestamp (the greeting's), str digest,
 *              str client address
 *          ->  as BE_AUTH (the same throttling applies)
 * BE_POPBSMTP  str client address
 *          ->  u32 0 a POP-before-SMTP window is open / 1 none / 2 the
 *              store cannot say now (answer 4xx), str account (or NULL)
 *
 * Settings page (src/backend/be_portal.c).
 * BE_PORTAL    str op ("login", "status", "overseas_on", "overseas_off",
 *              "password", "logout"), str client address, str session id
 *              (NULL for login), str CSRF token from the form (NULL for
 *              reads), u32 n (<= 16), n x (str key, str value)
 *          ->  u32 be_portal_result, str message ("fail", "locked",
 *              "suspended", "badnew", "tempfail" or NULL), u32 n,
 *              n x (str key, str value); keys may repeat (rows)
 */
#ifndef SEKISHO_BE_PROTO_H
#define SEKISHO_BE_PROTO_H

enum be_type {
	BE_AUTH = 1,
	BE_RCPT,
	BE_SPOOL_OPEN,
	BE_SPOOL_COMMIT,
	BE_SPOOL_ABORT,
	BE_POLICY_MAIL,
	BE_POLICY_POSTFIX,
	BE_POP3_OPEN,
	BE_POP3_RETR,
	BE_POP3_UPDATE,
	BE_POP3_CLOSE,
	BE_APOP,
	BE_POPBSMTP,
	BE_PORTAL,
	BE_SPOOL_SPACE,
	BE_TYPE_COUNT,
	BE_FAIL = 0xffff,
};

enum be_auth_result {
	BE_AUTH_OK,
	BE_AUTH_FAIL,		/* unknown user or wrong password */
	BE_AUTH_SUSPENDED,	/* right password, account suspended */
	BE_AUTH_TEMPFAIL,	/* store unavailable */
	BE_AUTH_LOCKED,		/* too many failures: locked for a while */
};

enum be_rcpt_result {
	BE_RCPT_LOCAL,		/* a local mailbox */
	BE_RCPT_REMOTE,		/* domain is not ours */
	BE_RCPT_UNKNOWN,	/* our domain, no such mailbox */
	BE_RCPT_TEMPFAIL,
};

enum be_portal_result {
	BE_PORTAL_OK,
	BE_PORTAL_NOSESSION,	/* no live session: log in again */
	BE_PORTAL_CSRF,		/* state change without the session's token */
	BE_PORTAL_REFUSED,	/* see the message */
	BE_PORTAL_TEMPFAIL,
};

enum be_pop3_result {
	BE_POP3_OK,
	BE_POP3_IN_USE,		/* another session holds the mailbox */
	BE_POP3_GONE,		/* RETR: the message was removed meanwhile */
	BE_POP3_TEMPFAIL,
};

#endif
