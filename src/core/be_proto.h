/*
 * be_proto: the requests session code may send to the back side, and
 * their replies. This list is the whole seam: session code (smtp, later
 * pop3 and http) gets nothing from the store, spool or keys but these.
 * A reply has the request's type and id. When the back side cannot parse
 * a request it replies BE_FAIL, and the client's callback gets NULL.
 *
 * Sessions (issue 13, src/backend/be_session.c). A request that acts
 * for a session starts with u64 session: a number the session process
 * chose, unique within its channel (be_client_session). The back side
 * keys its own record by (its channel id, that number) and checks every
 * such request against the record, never against what the request
 * says: the account (set only by its own OK to BE_AUTH / BE_APOP or a
 * BE_POPBSMTP match), the APOP timestamp it issued, the recipients it
 * accepted, the policy's answer to MAIL, the spool file and the mailbox
 * the session opened. A request refused for want of a record (no login,
 * no mailbox open, too many sessions on the channel) gets BE_FAIL.
 *
 * BE_SESSION_END u64 session -> u32 0. The session ended: its record
 *              goes, an open spool file is removed, an open mailbox is
 *              closed (its lock given back; nothing deleted). A channel
 *              that closes does the same for all its sessions.
 * BE_AUTH      u64 session, str service, str mechanism, str user, str
 *              password, str client address
 *          ->  u32 be_auth_result, str account (canonical, NULL unless OK),
 *              str reason (suspension reason, the refusal's text for
 *              BE_AUTH_ABROAD (POP3 and APOP from abroad under
 *              overseas_restrict, issue 17), or NULL), u32 delay in ms
 *              to wait before answering a failure (throttling), i64 end
 *              of the lock (BE_AUTH_LOCKED) or 0. OK sets the record's
 *              account. A user with a control character is
 *              BE_AUTH_LOCKED with end 0, looked up nowhere.
 * BE_RCPT      u64 session, str address
 *          ->  u32 be_rcpt_result, str mailbox (local account or NULL).
 *              The record keeps (address, mailbox) of a LOCAL answer,
 *              and of a REMOTE one when the session is authenticated
 *              (at most smtp_max_recipients, the oldest forgotten
 *              first): the only recipients a commit may name.
 * BE_SPOOL_OPEN  u64 session, str queue id
 *          ->  u32 0 ok / 1 temporary failure / 2 spool below
 *              queue_minfree, str error; fd: the new
 *              incoming/ID file, to which the session writes the envelope
 *              (envelope.h text form) and then the message. The record
 *              keeps the id; one still open from before is removed. An
 *              id already in queue/ is refused (1): committing it would
 *              replace another message.
 * BE_RCPT_OPEN u64 session, str address, str queue id
 *          ->  BE_RCPT's answer, then, when the record took the
 *              recipient, BE_SPOOL_OPEN's (with its fd when 0), else
 *              u32 3, str NULL and no fd. The session sends it for the
 *              last recipient when DATA is already waiting behind it
 *              (pipelining): one round trip instead of two (issue 18).
 * BE_SPOOL_COMMIT u64 session, str queue id (the one the session opened),
 *              u64 size, str client address, str TLS description, str
 *              Message-ID, then for the mail filters' macros only (issue
 *              16): u32 listener role (enum listen_role), str SASL
 *              mechanism (NULL: none), str local address (NULL:
 *              unknown), u32 client port (0: unknown)
 *          ->  u32 0 ok / 1 temporary failure / 2 refused, str reply
 *              (the full SMTP reply when not ok). The back side parses
 *              the envelope back before committing: a session cannot
 *              commit a file the queue would not understand, nor one
 *              whose envelope names a recipient it did not accept for
 *              the session, another account, or (a submission) another
 *              sender than the policy was asked about. The account, the
 *              country and the from-abroad flag are the record's, the
 *              recipient count the envelope's. With an account (a
 *              submission) the policy must have answered MAIL; it
 *              checks header From alignment (the From read back from
 *              the file by the back side: at most 32 addresses, 8192
 *              octets) and takes the send counts first (policy_commit).
 *              The transaction is then forgotten. Then the role's
 *              milters (milters_mx, or milters_submission for a
 *              submission listener or an authenticated session) are
 *              asked on the back side's milter thread, the reply
 *              waiting for them (src/milter/milter.h); their changes
 *              are written before the commit, a quarantine commits the
 *              message held; reject/tempfail answer 2/1 with their
 *              reply, discard answers 0 and queues nothing.
 * BE_POLICY_MAIL u64 session, str sender, str client address
 *          ->  u32 policy_verdict, str reply, str country,
 *              u32 overseas, i64 recipients left (-1: no limit),
 *              i64 recipients per message (-1: no limit), str the reply
 *              once the recipients left are used, str the Received
 *              header's client token (received_client = token and OK:
 *              trace_token.h text, or "-" when none could be sealed;
 *              otherwise NULL). For the record's
 *              account (BE_FAIL without one); an OK starts a new
 *              transaction in the record (sender, country, overseas).
 * BE_POLICY_POSTFIX str protocol_state, str sasl_username, str
 *              client_address, str sender, u32 recipient_count, str
 *              queue_id, str instance (Postfix's policy request
 *              attributes; "" when absent)
 *          ->  str action ("DUNNO", or "550 5.7.1 ..." / "451 4.7.1 ...")
 *              No session: Postfix is the authority here. Counts at
 *              RCPT or END-OF-MESSAGE per policy_count_state.
 * BE_SPOOL_ABORT u64 session, str queue id  -> u32 0. Only the session's
 *              own open spool file is removed.
 * BE_SPOOL_SPACE u64 size the client announced (RFC 1870 SIZE; 0: none)
 *          ->  u32 0 room / 1 temporary failure / 2 not enough (below
 *              queue_minfree after size), str the SMTP reply when not 0,
 *              u64 the room above queue_minfree (bytes; 0 when not 0).
 *              Asked at MAIL when queue_minfree or SIZE is set; a
 *              session process asks again only when its last answer is
 *              over a second old or the room under a GiB beyond SIZE
 *              (BE_SPOOL_OPEN checks queue_minfree again).
 *
 * POP3 (src/backend/be_mailbox.c). A session opens at most one mailbox,
 * its record's account's; only one session holds an account's mailbox
 * at a time (the POP3 lock, RFC 1939 4).
 * BE_APOP_TIMESTAMP u64 session
 *          ->  str the APOP timestamp for the greeting ("<...@host>",
 *              RFC 1939 7), issued and kept by the back side; at most
 *              APOP_TIMESTAMP_MAX octets (the session refuses a longer one)
 * BE_POP3_OPEN u64 session, str client address
 *          ->  u32 be_pop3_result, u32 count; fd (when OK): a
 *              memfd with one "UID SIZE\n" line per message, in message
 *              number order (SIZE with CRLF line ends). The mailbox of
 *              the record's account (BE_FAIL when not logged in or one
 *              is open already). Records the POP-before-SMTP window when
 *              pop_before_smtp is on.
 * BE_POP3_RETR u64 session, u32 index (message number - 1)
 *          ->  u32 be_pop3_result; fd (when OK): the message file, read
 *              only, LF line ends
 * BE_POP3_UPDATE u64 session, u32 commit, u32 n, n x u32 index (n <= 8192)
 *          ->  u32 be_pop3_result, u32 deleted. Marks the indexes; with
 *              commit = 1 (QUIT) unlinks every marked message and fsyncs
 *              the folders before answering.
 * BE_POP3_CLOSE u64 session -> u32 0. Releases the lock (a lease in the
 *              store, shared by the nodes); deletes nothing.
 * BE_APOP      u64 session, str user, str digest, str client address
 *          ->  as BE_AUTH (the same throttling applies). The digest is
 *              checked against the timestamp in the record (BE_FAIL when
 *              none was issued): a digest made for another greeting
 *              never matches.
 * BE_POPBSMTP  u64 session, str client address
 *          ->  u32 0 a POP-before-SMTP window is open / 1 none / 2 the
 *              store cannot say now (answer 4xx), str account (or NULL).
 *              0 sets the record's account.
 *
 * Settings page, admin pages and JSON API (src/backend/be_portal.c, rows
 * in src/portal/portal_rows.h). One request type per operation; the role
 * (subscriber, admin, API token) is checked by the back side from its own
 * session record in the store, never from what the request says. Every
 * string a request carries is bounded by the HTTP side before it is sent
 * (docs/portal.md "Bounds"); the back side refuses a longer one (BE_FAIL).
 * Page requests (BE_PORTAL_* but LOGIN, BE_ADMIN_* but LOGIN) start with
 *              SESSION = str client address, str session id (the cookie),
 *              str CSRF token from the form (NULL for reads)
 * the logins with  str client address, str user, str password
 * and the API calls with  API = str client address, str bearer token,
 *              str account acted on.
 * Every reply starts with
 *              HEAD = u32 be_portal_result, str message ("fail", "locked",
 *              "suspended", "badnew", "badapop", "badreason", "badlimit",
 *              "noaccount", "tempfail" or NULL), i64 delay in ms before
 *              answering a failed password, str end of the lock (text) or
 *              NULL, str suspension reason or NULL
 * and, only when the result is BE_PORTAL_OK, goes on with str CSRF token
 * of the session (NULL for logins and API calls) and the body below.
 * A LIST is u32 n (<= PORTAL_PAGE_MAX), u32 more (1: rows after this
 * page), n rows of one kind (portal_rows.h): SUB (submission), EVENT,
 * TOP, REFUSED, ACCOUNT. A reply is checked against MSG_MAX_LEN before it
 * is sent: an oversize one is answered BE_PORTAL_TEMPFAIL instead.
 *
 * BE_PORTAL_LOGIN  user, password  -> HEAD, str session id, str account
 * BE_PORTAL_STATUS SESSION, u32 offset (page of both lists)
 *          ->  HEAD, STATUS = str account, u32 overseas, str overseas end
 *              (text) or NULL, u32 overseas days, str the countries
 *              the permission covers ("US,GB"; "" every one), i64 msgs,
 *              i64 rcpts,
 *              i64 rcpts this hour, i64 rcpts abroad, i64 msgs limit,
 *              i64 rcpts limit, i64 rcpts/hour limit, i64 abroad limit,
 *              str counts reset (text), u32 apop on, u32 refuse_own_from
 *              on (issue 16), u32 n (<= 50) x str
 *              alias, LIST of SUB, LIST of EVENT
 * BE_PORTAL_OVERSEAS_ON  SESSION, [str countries (as typed, at most
 *              PORTAL_COUNTRIES_MAX octets; absent, NULL or "" every
 *              one)]
 * BE_PORTAL_OVERSEAS_OFF  SESSION
 *          ->  HEAD ("badcountries": not a list of country codes), str
 *              overseas end (text) or NULL
 * BE_PORTAL_PASSWORD  SESSION, str current, str new  -> HEAD
 * BE_PORTAL_APOP_ON   SESSION, str current password, str APOP secret
 *          ->  HEAD
 * BE_PORTAL_APOP_OFF, BE_PORTAL_LOGOUT  SESSION  -> HEAD
 * BE_PORTAL_OWN_FROM_ON, BE_PORTAL_OWN_FROM_OFF  SESSION  -> HEAD
 *              (refuse mail on MX that claims to be from the account's
 *              own address, docs/filters.md; issue 16)
 * BE_ADMIN_LOGIN   user, password  -> HEAD, str session id, str admin
 * The other admin replies start with str admin (the name) after HEAD.
 * BE_ADMIN_SEARCH  SESSION, str query (empty: dashboard too), u32 offset
 *          ->  HEAD, str admin, u32 dashboard, [when 1: i64 queue size,
 *              LIST of TOP, LIST of REFUSED], LIST of ACCOUNT
 * BE_ADMIN_ACCOUNT SESSION, str account, u32 offset
 *          ->  HEAD, str admin, u32 suspended, STATUS (reason in HEAD)
 * BE_ADMIN_AUDIT   SESSION, u32 offset  -> HEAD, str admin, LIST of EVENT
 * BE_ADMIN_TRACE   SESSION, u32 n (<= 32) x str queue id, u32 n (<= 32)
 *              x str Message-ID, u32 n (<= PORTAL_TRACE_TOKENS) x str
 *              Received token (<= PORTAL_TOKEN_TEXT_MAX octets)
 *          ->  HEAD, str admin, LIST of SUB (a token that opens is a
 *              row of queue id "token", its time, account and client)
 * BE_ADMIN_SUSPEND SESSION, str account, str reason  -> HEAD, str admin
 * BE_ADMIN_RESUME, BE_ADMIN_OVERSEAS_ON, BE_ADMIN_OVERSEAS_OFF
 *              SESSION, str account  -> HEAD, str admin
 * BE_ADMIN_LIMITS  SESSION, str account, 5 x i64 (messages/day,
 *              recipients/day, recipients/hour, recipients/message,
 *              overseas recipients/day; -2 unchanged, -1 the default)
 *          ->  HEAD, str admin
 * BE_ADMIN_LOGOUT  SESSION  -> HEAD, str admin
 * BE_API_GET       API  -> HEAD, str JSON document
 * BE_API_OVERSEAS  API, u32 on[, str countries: with on only, as
 *              BE_PORTAL_OVERSEAS_ON's; absent: kept as set]  -> HEAD
 *              ("badcountries"), str JSON document
 * BE_API_LIMITS    API, 5 x i64 as BE_ADMIN_LIMITS  -> HEAD, str JSON
 * BE_API_HISTORY   API, i64 since (seconds back), u32 offset, u32 page
 *              size (<= PORTAL_API_PAGE)  -> HEAD, str JSON (a page of
 *              events and submissions, "more", "next_offset")
 * Issue 17 (after a password is stolen; src/backend/be_risk.h). STATUS
 * then goes on with RISK = str response ("none", "notify", "hold",
 * "suspend"), u32 automatic, str since (text) or NULL, str reason or
 * NULL, str warned (text) or NULL, str the warning's trace or NULL, u32
 * held messages, i64 score in tenths, u32 exempt; on BE_ADMIN_ACCOUNT
 * then a LIST of HELD (the first PORTAL_HELD_PAGE).
 * BE_ADMIN_RISK_TOP SESSION, u32 offset  -> HEAD, str admin, LIST of RISK
 * BE_ADMIN_RISK_CLEAR, BE_ADMIN_RISK_HOLD, BE_ADMIN_RISK_EXEMPT_ON,
 * BE_ADMIN_RISK_EXEMPT_OFF  SESSION, str account  -> HEAD, str admin
 * BE_ADMIN_WARN    SESSION, str account, u32 n (<= 32) x str queue id,
 *              u32 n (<= 32) x str Message-ID (the report's identifiers,
 *              parsed on the HTTP side)  -> HEAD, str admin, u32 traced
 * BE_ADMIN_HELD_RELEASE, BE_ADMIN_HELD_DELETE  SESSION, str account, str
 *              queue id (NULL: every held message of the account; only
 *              the account's own are touched)  -> HEAD, str admin, u32 n
 *
 * Dovecot's auth policy server (src/authpolicy/, src/backend/
 * be_authpolicy.c, docs/imap.md). No session: Dovecot is the client.
 * BE_AUTHPOLICY u32 command (0 allow: before authentication, 1 report:
 *              after it), str login (as the user typed it), str remote
 *              (the client's address as Dovecot saw it), str protocol
 *              ("imap", "pop3", ...), str session_id (Dovecot's, only
 *              logged), str account ("" before authentication; after
 *              it, the account Dovecot's passdb verified),
 *              u32 success, u32 policy_reject (report only)
 *          ->  i64 status (Dovecot's: -1 refuse, 0 go on), str message
 *              for the client (NULL: none). allow: the address and
 *              account locks (policy_auth_check); with an account (the
 *              check after authentication) the restriction from abroad
 *              (overseas_restrict); report: the failure counted or the success
 *              recorded as for SMTP AUTH (be_auth_reply); a report of
 *              our own refusal is not counted again.
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
	BE_SPOOL_SPACE,
	BE_PORTAL_LOGIN,
	BE_PORTAL_STATUS,
	BE_PORTAL_OVERSEAS_ON,
	BE_PORTAL_OVERSEAS_OFF,
	BE_PORTAL_PASSWORD,
	BE_PORTAL_APOP_ON,
	BE_PORTAL_APOP_OFF,
	BE_PORTAL_LOGOUT,
	BE_ADMIN_LOGIN,
	BE_ADMIN_SEARCH,
	BE_ADMIN_ACCOUNT,
	BE_ADMIN_AUDIT,
	BE_ADMIN_TRACE,
	BE_ADMIN_SUSPEND,
	BE_ADMIN_RESUME,
	BE_ADMIN_OVERSEAS_ON,
	BE_ADMIN_OVERSEAS_OFF,
	BE_ADMIN_LIMITS,
	BE_ADMIN_LOGOUT,
	BE_API_GET,
	BE_API_OVERSEAS,
	BE_API_LIMITS,
	BE_API_HISTORY,
	BE_SESSION_END,
	BE_APOP_TIMESTAMP,
	/* issue 17: the desk's risk page, response and held mail */
	BE_ADMIN_RISK_TOP,
	BE_ADMIN_RISK_CLEAR,
	BE_ADMIN_RISK_HOLD,
	BE_ADMIN_RISK_EXEMPT_ON,
	BE_ADMIN_RISK_EXEMPT_OFF,
	BE_ADMIN_WARN,
	BE_ADMIN_HELD_RELEASE,
	BE_ADMIN_HELD_DELETE,
	BE_AUTHPOLICY,
	BE_PORTAL_OWN_FROM_ON,
	BE_PORTAL_OWN_FROM_OFF,
	BE_RCPT_OPEN,
	BE_TYPE_COUNT,
	BE_FAIL = 0xffff,
};

/* The longest APOP timestamp the back side issues (src/backend/apop.c). */
#define APOP_TIMESTAMP_MAX	300

enum be_auth_result {
	BE_AUTH_OK,
	BE_AUTH_FAIL,		/* unknown user or wrong password */
	BE_AUTH_SUSPENDED,	/* right password, account suspended */
	BE_AUTH_TEMPFAIL,	/* store unavailable */
	BE_AUTH_LOCKED,		/* too many failures: locked for a while */
	BE_AUTH_ABROAD,		/* right password, POP3 from abroad not
				 * permitted (overseas_restrict); reason:
				 * the text naming the country */
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
