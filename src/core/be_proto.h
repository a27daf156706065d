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
 *              str reason (suspension reason or NULL)
 * BE_RCPT      str address
 *          ->  u32 be_rcpt_result, str mailbox (local account or NULL)
 * BE_SPOOL_OPEN  str queue id
 *          ->  u32 0 ok / 1 temporary failure, str error; fd: the new
 *              incoming/ID file, to which the session writes the envelope
 *              (envelope.h text form) and then the message
 * BE_SPOOL_COMMIT str queue id
 *          ->  u32 0 ok / 1 temporary failure, str error. The back side
 *              parses the envelope back before committing: a session
 *              cannot commit a file the queue would not understand.
 * BE_SPOOL_ABORT str queue id  -> u32 0
 */
#ifndef SEKISHO_BE_PROTO_H
#define SEKISHO_BE_PROTO_H

enum be_type {
	BE_AUTH = 1,
	BE_RCPT,
	BE_SPOOL_OPEN,
	BE_SPOOL_COMMIT,
	BE_SPOOL_ABORT,
	BE_TYPE_COUNT,
	BE_FAIL = 0xffff,
};

enum be_auth_result {
	BE_AUTH_OK,
	BE_AUTH_FAIL,		/* unknown user or wrong password */
	BE_AUTH_SUSPENDED,	/* right password, account suspended */
	BE_AUTH_TEMPFAIL,	/* store unavailable */
};

enum be_rcpt_result {
	BE_RCPT_LOCAL,		/* a local mailbox */
	BE_RCPT_REMOTE,		/* domain is not ours */
	BE_RCPT_UNKNOWN,	/* our domain, no such mailbox */
	BE_RCPT_TEMPFAIL,
};

#endif
