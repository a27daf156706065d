/*
 * portal: the settings page over HTTPS (see portal.h and docs/portal.md).
 *
 * Every page is drawn here from the typed answer of one request to the
 * back side (BE_PORTAL_*, BE_ADMIN_*, BE_API_* in be_proto.h; rows in
 * portal_rows.h); every value is HTML-escaped. Every form field and
 * query parameter is bounded here before it becomes a request (413 or
 * 400 otherwise), so a request always fits one seam message. Security: server-side sessions
 * (random IDs from the back side) in a cookie `Secure; HttpOnly;
 * SameSite=Strict`, a CSRF token in every POST form (the session's, or
 * for the login form a random one also kept in a cookie), a
 * Content-Security-Policy without inline script or style, state changes
 * only by POST followed by a 303 redirect (RFC 9110 15.4.4).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>

#include "../core/be_client.h"
#include "../core/be_proto.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../daemon/server.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "../policy/trace.h"
#include "../queue/envelope.h"
#include "portal.h"
#include "portal_autoconfig.h"
#include "portal_rows.h"
#include "portal_util.h"

#define PORTAL_MAX_HEADERS	8192
#define PORTAL_MAX_BODY		(256 * 1024)	/* a pasted spam report */
#define PORTAL_TIMEOUT		60	/* seconds per request */
#define PORTAL_TOKEN_LEN	64	/* hex digits of a session/CSRF token */
#define PORTAL_PAIRS_MAX	256
/* Bounds of what a client sends (docs/portal.md "Bounds"): a form field
 * or query parameter, a login name, a password. */
#define PORTAL_FIELD_MAX	1024
#define PORTAL_USER_MAX		320
#define PORTAL_SECRET_MAX	1024
#define PORTAL_QUERY_MAX	254
#define PORTAL_PAGE_NUM_MAX	200	/* ?page= */
#define PORTAL_TRACE_KEYS	32

struct portal {
	struct server_loop	*loop;
	const struct listen_conf *lc;
	struct evhttp		*http;
	int			 tls;
};

struct portal_req;
typedef void portal_done_fn(struct portal_req *);

struct portal_req {
	struct portal		*p;
	struct evhttp_request	*req;
	enum portal_lang	 lang;
	char			 client[64];
	char			 sid[PORTAL_TOKEN_LEN + 1];
	int			 have_sid;
	int			 admin;		/* an /admin/ request */
	char			*target;	/* the account an admin acts on */
	const char		*method;
	char			 path[64];
	portal_done_fn		*done;
	uint32_t		 be_type;	/* the request sent */
	uint32_t		 page;		/* ?page= of a list */
	/* the back side's answer: scalars by name, rows typed (pointing
	 * into rbuf, the reply's bytes) */
	uint32_t		 result;
	char			*message;
	char			*keys[PORTAL_PAIRS_MAX];
	char			*vals[PORTAL_PAIRS_MAX];
	size_t			 npairs;
	struct str		 rbuf;
	struct portal_sub	 subs[PORTAL_PAGE_MAX];
	uint32_t		 nsubs, more_subs;
	struct portal_event	 evs[PORTAL_PAGE_MAX];
	uint32_t		 nevs, more_evs;
	struct portal_top	 tops[PORTAL_PAGE_MAX];
	uint32_t		 ntops, more_tops;
	struct portal_refused	 refused[PORTAL_PAGE_MAX];
	uint32_t		 nrefused, more_refused;
	struct portal_account_row accts[PORTAL_PAGE_MAX];
	uint32_t		 naccts, more_accts;
	/* issue 17: held mail, the accounts most at risk */
	struct portal_held	 held[PORTAL_HELD_PAGE];
	uint32_t		 nheld, more_held;
	struct portal_risk	 risks[PORTAL_PAGE_MAX];
	uint32_t		 nrisks, more_risks;
	int			 status;	/* HTTP status sent, for the log */
};

/* ---- texts ----------------------------------------------------------- */

enum portal_text {
	T_NOTHING = -1,
	T_TITLE,
	T_LOGIN_INTRO,
	T_ADDRESS,
	T_PASSWORD,
	T_LOGIN,
	T_LOGOUT,
	T_LOGGED_IN_AS,
	T_OVERSEAS,
	T_RULE_1,
	T_RULE_2,
	T_ON_UNTIL_1,
	T_ON_UNTIL_2,
	T_OFF,
	T_TURN_ON_1,
	T_TURN_ON_2,
	T_EXTEND_1,
	T_EXTEND_2,
	T_TURN_OFF,
	T_TODAY,
	T_MESSAGES,
	T_RECIPIENTS,
	T_RECIPIENTS_HOUR,
	T_RECIPIENTS_ABROAD,
	T_NO_LIMIT,
	T_RESET,
	T_RECENT,
	T_TIME,
	T_IP,
	T_COUNTRY,
	T_RCPTS,
	T_ABROAD,
	T_QUEUE_ID,
	T_NONE,
	T_NOT_ME,
	T_EVENTS,
	T_WHAT,
	T_DETAIL,
	T_TYPE,
	T_PW_TITLE,
	T_PW_CURRENT,
	T_PW_NEW,
	T_PW_NEW2,
	T_PW_CHANGE,
	T_OTHER_LANG,
	T_MSG_ON,
	T_MSG_OFF,
	T_MSG_PASSWORD,
	T_MSG_FAIL,
	T_MSG_BADCURRENT,
	T_MSG_BADNEW,
	T_MSG_MISMATCH,
	T_MSG_LOCKED,
	T_MSG_LOCKED_UNTIL,
	T_MSG_SUSPENDED,
	T_MSG_REASON,
	T_MSG_TEMPFAIL,
	T_MSG_CSRF,
	T_MSG_EXPIRED,
	T_NOT_FOUND,
	T_YES,
	T_ADMIN,
	T_ADMIN_NAME,
	T_SEARCH,
	T_SEARCH_HINT,
	T_AUDIT,
	T_STATUS,
	T_ACTIVE,
	T_SUSPENDED,
	T_SUSPEND,
	T_RESUME,
	T_REASON,
	T_GRANT,
	T_REVOKE,
	T_LIMITS,
	T_LIMITS_HINT,
	T_SET_LIMITS,
	T_ACCOUNT,
	T_BACK,
	T_DONE,
	T_MSG_BADREASON,
	T_MSG_BADLIMIT,
	T_MSG_NOACCOUNT,
	T_TRACE,
	T_TRACE_HINT,
	T_TRACE_NONE,
	T_TRACE_KEYS,
	T_MESSAGE_ID,
	T_DASHBOARD,
	T_TOP,
	T_REFUSED,
	T_QUEUE,
	T_COUNT,
	T_APOP,
	T_APOP_EXPLAIN,
	T_APOP_IS_ON,
	T_APOP_IS_OFF,
	T_APOP_NEW,
	T_APOP_NEW2,
	T_APOP_TURN_ON,
	T_APOP_TURN_OFF,
	T_MSG_APOP_ON,
	T_MSG_APOP_OFF,
	T_MSG_BADAPOP,
	T_ALIASES,
	T_MORE,
	T_TOO_LONG,
	T_BAD_NAME,
	/* issue 17 */
	T_RISK,
	T_RISK_SCORE,
	T_RISK_RESPONSE,
	T_RISK_AUTO,
	T_RISK_DESK,
	T_RISK_EXEMPT,
	T_RISK_CLEAR,
	T_RISK_HOLD,
	T_RISK_EXEMPT_ON,
	T_RISK_EXEMPT_OFF,
	T_RISK_TOP,
	T_HELD,
	T_HELD_BY,
	T_SIZE,
	T_HEADERS,
	T_SENDER,
	T_RELEASE,
	T_DELETE,
	T_RELEASE_ALL,
	T_DELETE_ALL,
	T_WARN,
	T_WARN_HINT,
	T_WARNED,
	T_SUB_HOLD,
	T_SUB_NOTIFY,
	T_SUB_WARNED,
	T_SUB_WHAT_TO_DO,
	T_MSG_WARNED,
	T_LEVEL_NONE,
	T_LEVEL_NOTIFY,
	T_LEVEL_HOLD,
	T_LEVEL_SUSPEND,
	/* i17-country */
	T_COUNTRIES,
	T_COUNTRIES_ALL,
	T_COUNTRIES_HINT,
	T_MSG_BADCOUNTRIES,
	T_CLIENT_SETUP,
	T_CLIENT_SETUP_HINT,
	/* issue 16: refuse_own_from */
	T_OWN_FROM,
	T_OWN_FROM_EXPLAIN,
	T_OWN_FROM_IS_ON,
	T_OWN_FROM_IS_OFF,
	T_OWN_FROM_TURN_ON,
	T_OWN_FROM_TURN_OFF,
	T_MSG_OWN_FROM_ON,
	T_MSG_OWN_FROM_OFF,
};

static const char *const portal_texts[][2] = {
	[T_TITLE] = { "メールオプション設定", "Mail option settings" },
	[T_LOGIN_INTRO] = { "メールアドレスとメールパスワードでログインして"
	    "ください。", "Log in with your mail address and mail password." },
	[T_ADDRESS] = { "メールアドレス", "Mail address" },
	[T_PASSWORD] = { "パスワード", "Password" },
	[T_LOGIN] = { "ログイン", "Log in" },
	[T_LOGOUT] = { "ログアウト", "Log out" },
	[T_LOGGED_IN_AS] = { "ログイン中: ", "Logged in as " },
	[T_OVERSEAS] = { "海外からのメール送信", "Sending from overseas" },
	[T_RULE_1] = { "日本国外からのメール送信は、ここでオンにしている間だけ"
	    "受け付けます。オンにすると", "Mail sent from outside Japan is "
	    "accepted only while you allow it here: it lasts " },
	[T_RULE_2] = { "日間有効で、再度操作するとその時点から延長されます。",
	    " days, and doing it again extends it from then." },
	[T_ON_UNTIL_1] = { "オン（", "On until " },
	[T_ON_UNTIL_2] = { " まで）", "" },
	[T_OFF] = { "オフ（海外からの送信はお断りします）",
	    "Off (sending from abroad is refused)" },
	[T_TURN_ON_1] = { "", "Turn on for " },
	[T_TURN_ON_2] = { "日間オンにする", " days" },
	[T_EXTEND_1] = { "延長する（今から", "Extend (" },
	[T_EXTEND_2] = { "日間）", " days from now)" },
	[T_TURN_OFF] = { "今すぐオフにする", "Turn off now" },
	[T_TODAY] = { "本日の送信数", "Sent today" },
	[T_MESSAGES] = { "メール数", "Messages" },
	[T_RECIPIENTS] = { "宛先数", "Recipients" },
	[T_RECIPIENTS_HOUR] = { "この1時間の宛先数",
	    "Recipients this hour" },
	[T_RECIPIENTS_ABROAD] = { "海外からの宛先数",
	    "Recipients sent from abroad" },
	[T_NO_LIMIT] = { "上限なし", "no limit" },
	[T_RESET] = { "送信数のリセット: ", "Counts reset at " },
	[T_RECENT] = { "最近の送信（7日間）", "Recent submissions (7 days)" },
	[T_TIME] = { "日時", "Time" },
	[T_IP] = { "IPアドレス", "IP address" },
	[T_COUNTRY] = { "国", "Country" },
	[T_RCPTS] = { "宛先数", "Recipients" },
	[T_ABROAD] = { "海外から", "From abroad" },
	[T_QUEUE_ID] = { "キューID", "Queue ID" },
	[T_NONE] = { "ありません。", "None." },
	[T_NOT_ME] = { "心当たりのない送信や記録があれば、第三者がパスワードを"
	    "知っているおそれがあります。すぐにパスワードを変更してください。",
	    "If one of these was not you, someone else may know your "
	    "password: change it now." },
	[T_EVENTS] = { "お断りした送信とログイン制限（7日間）",
	    "Refused attempts and login locks (7 days)" },
	[T_WHAT] = { "内容", "What" },
	[T_DETAIL] = { "詳細", "Detail" },
	[T_TYPE] = { "種類", "Type" },
	[T_PW_TITLE] = { "パスワード変更", "Change password" },
	[T_PW_CURRENT] = { "現在のパスワード", "Current password" },
	[T_PW_NEW] = { "新しいパスワード（8文字以上）",
	    "New password (8 characters or more)" },
	[T_PW_NEW2] = { "新しいパスワード（確認）", "New password again" },
	[T_PW_CHANGE] = { "変更する", "Change" },
	[T_OTHER_LANG] = { "English", "日本語" },
	[T_MSG_ON] = { "海外からのメール送信をオンにしました。",
	    "Sending from overseas is on." },
	[T_MSG_OFF] = { "海外からのメール送信をオフにしました。",
	    "Sending from overseas is off." },
	[T_MSG_PASSWORD] = { "パスワードを変更しました。",
	    "Your password has been changed." },
	[T_MSG_FAIL] = { "メールアドレスまたはパスワードが違います。",
	    "Wrong mail address or password." },
	[T_MSG_BADCURRENT] = { "現在のパスワードが違います。",
	    "The current password is wrong." },
	[T_MSG_BADNEW] = { "新しいパスワードは8文字以上200文字以下にして"
	    "ください。", "The new password must have 8 to 200 characters." },
	[T_MSG_MISMATCH] = { "新しいパスワードが一致しません。",
	    "The two new passwords differ." },
	[T_MSG_LOCKED] = { "ログインの失敗が多いため、一時的にロックされて"
	    "います。しばらくしてからお試しください。",
	    "Too many failed logins: locked for a while. Try again later." },
	[T_MSG_LOCKED_UNTIL] = { "再開: ", "Try again after " },
	[T_MSG_SUSPENDED] = { "このアカウントは利用停止中です。",
	    "This account is suspended." },
	[T_MSG_REASON] = { "理由: ", "Reason: " },
	[T_MSG_TEMPFAIL] = { "ただいま処理できません。しばらくしてからお試し"
	    "ください。", "Temporarily unavailable. Please try again later." },
	[T_MSG_CSRF] = { "フォームの有効期限が切れました。もう一度お試し"
	    "ください。", "The form has expired. Please try again." },
	[T_MSG_EXPIRED] = { "ログインの有効期限が切れました。もう一度ログイン"
	    "してください。", "Your login has expired. Please log in again." },
	[T_NOT_FOUND] = { "ページが見つかりません。", "Page not found." },
	[T_YES] = { "はい", "yes" },
	[T_ADMIN] = { "管理（アビューズ対応）", "Administration (abuse desk)" },
	[T_ADMIN_NAME] = { "管理者名", "Admin name" },
	[T_SEARCH] = { "検索", "Search" },
	[T_SEARCH_HINT] = { "メールアドレスの一部", "Part of an address" },
	[T_AUDIT] = { "操作記録（30日間）", "Audit log (30 days)" },
	[T_STATUS] = { "状態", "Status" },
	[T_ACTIVE] = { "利用中", "Active" },
	[T_SUSPENDED] = { "利用停止中", "Suspended" },
	[T_SUSPEND] = { "利用停止する", "Suspend" },
	[T_RESUME] = { "利用を再開する", "Resume" },
	[T_REASON] = { "理由", "Reason" },
	[T_GRANT] = { "海外送信を許可（7日間）", "Allow sending from abroad "
	    "(7 days)" },
	[T_REVOKE] = { "海外送信の許可を取り消す", "Revoke overseas sending" },
	[T_LIMITS] = { "送信数の上限", "Sending limits" },
	[T_LIMITS_HINT] = { "空欄は変更なし、default は設定ファイルの値、0 は"
	    "送信不可（1時間の上限では0は上限なし）。", "Empty: unchanged; "
	    "default: the config's value; 0: none allowed (per hour: 0 is no "
	    "limit)." },
	[T_SET_LIMITS] = { "上限を設定する", "Set limits" },
	[T_ACCOUNT] = { "アカウント", "Account" },
	[T_BACK] = { "検索に戻る", "Back to search" },
	[T_DONE] = { "実行しました。", "Done." },
	[T_MSG_BADREASON] = { "理由を1行（200文字以内）で入力してください。",
	    "Give a reason: one line, at most 200 characters." },
	[T_MSG_BADLIMIT] = { "上限は0以上の整数か default にしてください。",
	    "A limit is a whole number (0 or more) or default." },
	[T_MSG_NOACCOUNT] = { "そのアカウントはありません。",
	    "No such account." },
	[T_TRACE] = { "苦情メールから探す", "Trace a spam report" },
	[T_TRACE_HINT] = { "苦情メール（ヘッダーだけでも、迷惑メールの添付でも"
	    "可）を貼り付けてください。当社の Received ヘッダーのキューIDと "
	    "Message-ID から送信を探します。", "Paste the report (headers are "
	    "enough; the spam may be attached). Our submissions are found by "
	    "the queue ID of our Received header and by the Message-ID." },
	[T_TRACE_NONE] = { "該当する当社からの送信はありません。",
	    "No submission of ours matches." },
	[T_TRACE_KEYS] = { "見つかった識別子: ", "Identifiers found: " },
	[T_MESSAGE_ID] = { "Message-ID", "Message-ID" },
	[T_DASHBOARD] = { "本日の状況", "Today" },
	[T_TOP] = { "送信の多いアカウント（宛先数順）",
	    "Top senders (by recipients)" },
	[T_REFUSED] = { "お断りとロック（種類と国別）",
	    "Refusals and locks (by type and country)" },
	[T_QUEUE] = { "キュー内のメール: ", "Messages in the queue: " },
	[T_COUNT] = { "件数", "Count" },
	[T_APOP] = { "APOP", "APOP" },
	[T_APOP_EXPLAIN] = { "APOP は古いメールソフト向けの認証方式です。MD5 は"
	    "弱いため、できるだけ TLS（POP3S、STLS）で通常のパスワードを"
	    "お使いください。APOP にはログイン用とは別のパスワードを設定します。",
	    "APOP is a login method for old mail programs. MD5 is weak: use "
	    "TLS (POP3S or STLS) with your normal password where you can. "
	    "APOP takes a password of its own, not your login password." },
	[T_APOP_IS_ON] = { "APOP: オン", "APOP: on" },
	[T_APOP_IS_OFF] = { "APOP: オフ", "APOP: off" },
	[T_APOP_NEW] = { "APOP 用パスワード（8文字以上、ログイン用とは別）",
	    "APOP password (8 characters or more, not the login password)" },
	[T_APOP_NEW2] = { "APOP 用パスワード（確認）", "APOP password again" },
	[T_APOP_TURN_ON] = { "APOP をオンにする", "Turn APOP on" },
	[T_APOP_TURN_OFF] = { "APOP をオフにする", "Turn APOP off" },
	[T_MSG_APOP_ON] = { "APOP をオンにしました。", "APOP is on." },
	[T_MSG_APOP_OFF] = { "APOP をオフにしました。", "APOP is off." },
	[T_MSG_BADAPOP] = { "APOP 用パスワードは8文字以上256文字以下で、"
	    "ログイン用パスワードとは別にしてください。", "The APOP password "
	    "must have 8 to 256 characters and differ from the login "
	    "password." },
	[T_ALIASES] = { "このアカウントで差出人に使えるアドレス: ",
	    "Addresses this account may send as: " },
	[T_MORE] = { "さらに古い記録", "Older entries" },
	[T_TOO_LONG] = { "入力が長すぎます。", "An entry is too long." },
	[T_BAD_NAME] = { "メールアドレスに使えない文字が含まれています。",
	    "The address contains characters that are not allowed." },
	[T_RISK] = { "不正利用のおそれ", "Risk of misuse" },
	[T_RISK_SCORE] = { "リスクスコア: ", "Risk score: " },
	[T_RISK_RESPONSE] = { "対応: ", "Response: " },
	[T_RISK_AUTO] = { "（自動）", " (automatic)" },
	[T_RISK_DESK] = { "（担当者）", " (by the desk)" },
	[T_RISK_EXEMPT] = { "自動対応の対象外", "Exempt from the automatic "
	    "response" },
	[T_RISK_CLEAR] = { "対応を解除する（これまでの兆候は不問）",
	    "Clear the response (signals so far forgiven)" },
	[T_RISK_HOLD] = { "送信を保留にする", "Hold outgoing mail" },
	[T_RISK_EXEMPT_ON] = { "自動対応の対象外にする",
	    "Exempt from the automatic response" },
	[T_RISK_EXEMPT_OFF] = { "自動対応の対象に戻す",
	    "End the exemption" },
	[T_RISK_TOP] = { "不正利用のおそれが高いアカウント",
	    "Accounts most at risk" },
	[T_HELD] = { "保留中のメール", "Held mail" },
	[T_HELD_BY] = { "保留の理由", "Held because" },
	[T_SIZE] = { "サイズ", "Size" },
	[T_HEADERS] = { "ヘッダー", "Headers" },
	[T_SENDER] = { "差出人", "Sender" },
	[T_RELEASE] = { "配送する", "Release" },
	[T_DELETE] = { "削除する", "Delete" },
	[T_RELEASE_ALL] = { "すべて配送する", "Release all" },
	[T_DELETE_ALL] = { "すべて削除する", "Delete all" },
	[T_WARN] = { "注意喚起を送る", "Send a warning" },
	[T_WARN_HINT] = { "苦情メールを貼り付けると、この利用者の該当する送信の"
	    "記録（日時、IPアドレス、国、宛先数）だけを通知に記載します。"
	    "苦情の内容は記載しません。", "Paste the report: the notice "
	    "names only this subscriber's submissions it traces (time, "
	    "address, country, recipients), never the report's content." },
	[T_WARNED] = { "最後の注意喚起: ", "Last warning: " },
	[T_SUB_HOLD] = { "安全のため、お客様のアカウントから送信されたメールは"
	    "受け付けた後、配送せずに保留しています。",
	    "To be safe, mail sent from your account is accepted but held, "
	    "not delivered." },
	[T_SUB_NOTIFY] = { "お客様のアカウントで、第三者による不正利用の"
	    "おそれがある動きを検知しました。",
	    "We have seen activity suggesting someone else may be using your "
	    "account." },
	[T_SUB_WARNED] = { "お客様のアカウントから送信されたメールについて、"
	    "迷惑メールとして報告を受けました（注意喚起）: ",
	    "Mail from your account was reported to us as spam (warning): " },
	[T_SUB_WHAT_TO_DO] = { "ウイルス対策ソフトで検査し、OSとソフトウェアを"
	    "最新にしたうえで、下のフォームでパスワードを変更してください。"
	    "詳しくはメールボックスの通知をご覧ください。",
	    "Scan your devices for viruses, bring them up to date, then "
	    "change your password with the form below. The notice in your "
	    "mailbox says more." },
	[T_MSG_WARNED] = { "注意喚起を送りました。", "The warning was sent." },
	[T_LEVEL_NONE] = { "なし", "none" },
	[T_LEVEL_NOTIFY] = { "通知", "notified" },
	[T_LEVEL_HOLD] = { "送信保留", "mail held" },
	[T_LEVEL_SUSPEND] = { "利用停止", "suspended" },
	/* i17-country */
	[T_COUNTRIES] = { "許可する国: ", "Countries allowed: " },
	[T_COUNTRIES_ALL] = { "すべての国", "every country" },
	[T_COUNTRIES_HINT] = { "国を限る場合は国コードをカンマ区切りで（例: "
	    "US,GB）。空欄ならすべての国。",
	    "To allow only some countries, give their codes (e.g. US,GB); "
	    "empty for every country." },
	[T_MSG_BADCOUNTRIES] = { "国コードは2文字の英字をカンマで区切って"
	    "ください（例: US,GB）。",
	    "Countries are two-letter codes separated by commas (e.g. "
	    "US,GB)." },
	[T_CLIENT_SETUP] = { "メールソフトの自動設定", "Set up your mail app" },
	[T_CLIENT_SETUP_HINT] = { "Thunderbird と Outlook はメールアドレスを"
	    "入力するだけで設定されます。iPhone・iPad・Mac は次の構成プロファイル"
	    "をダウンロードしてください: ",
	    "Thunderbird and Outlook set themselves up from your mail "
	    "address. For iPhone, iPad and Mac, download this profile: " },
	/* issue 16: refuse_own_from (OCN's 自分のメールアドレスからの受信拒否) */
	[T_OWN_FROM] = { "自分のアドレスを名乗るメールの受信拒否",
	    "Refuse mail that claims to be from me" },
	[T_OWN_FROM_EXPLAIN] = { "差出人（From）をあなたのメールアドレスに"
	    "偽装した迷惑メールを受信拒否します。このサーバからログインして"
	    "送ったメールと、送信ドメイン認証（DKIM または SPF）に合格した"
	    "メールは届きます。", "Refuses mail whose sender (From) is your own "
	    "address but that was forged: mail you sent through this server "
	    "after logging in, and mail that passes sender authentication "
	    "(DKIM or SPF), still arrives." },
	[T_OWN_FROM_IS_ON] = { "自分のアドレスを名乗るメール: 受信拒否",
	    "Mail claiming to be from me: refused" },
	[T_OWN_FROM_IS_OFF] = { "自分のアドレスを名乗るメール: 受信する",
	    "Mail claiming to be from me: accepted" },
	[T_OWN_FROM_TURN_ON] = { "受信拒否する", "Refuse it" },
	[T_OWN_FROM_TURN_OFF] = { "受信する（拒否をやめる）",
	    "Accept it (stop refusing)" },
	[T_MSG_OWN_FROM_ON] = { "自分のアドレスを名乗るメールを受信拒否します。",
	    "Mail claiming to be from you will be refused." },
	[T_MSG_OWN_FROM_OFF] = { "自分のアドレスを名乗るメールの受信拒否をやめました。",
	    "Mail claiming to be from you is accepted again." },
};

/* The ?msg= codes a redirect may carry, and what they show. */
static const struct {
	const char	*code;
	enum portal_text text;
	int		 error;
} portal_msgs[] = {
	{ "on", T_MSG_ON, 0 },
	{ "off", T_MSG_OFF, 0 },
	{ "password", T_MSG_PASSWORD, 0 },
	{ "badcurrent", T_MSG_BADCURRENT, 1 },
	{ "badnew", T_MSG_BADNEW, 1 },
	{ "mismatch", T_MSG_MISMATCH, 1 },
	{ "locked", T_MSG_LOCKED, 1 },
	{ "tempfail", T_MSG_TEMPFAIL, 1 },
	{ "csrf", T_MSG_CSRF, 1 },
	{ "expired", T_MSG_EXPIRED, 1 },
	{ "done", T_DONE, 0 },
	{ "apop_on", T_MSG_APOP_ON, 0 },
	{ "apop_off", T_MSG_APOP_OFF, 0 },
	{ "badapop", T_MSG_BADAPOP, 1 },
	{ "badreason", T_MSG_BADREASON, 1 },
	{ "badlimit", T_MSG_BADLIMIT, 1 },
	{ "noaccount", T_MSG_NOACCOUNT, 1 },
	{ "warned", T_MSG_WARNED, 0 },
	{ "badcountries", T_MSG_BADCOUNTRIES, 1 },
	{ "own_from_on", T_MSG_OWN_FROM_ON, 0 },
	{ "own_from_off", T_MSG_OWN_FROM_OFF, 0 },
};

#define portal_nitems(a)	(sizeof(a) / sizeof((a)[0]))

static const char portal_css[] =
    "body{font-family:sans-serif;max-width:52em;margin:1em auto;"
    "padding:0 1em;color:#222;line-height:1.5}\n"
    "h1{font-size:1.5em;border-bottom:2px solid #2a5d9f}\n"
    "h2{font-size:1.15em;margin-top:1.6em;color:#2a5d9f}\n"
    "table{border-collapse:collapse;margin:.5em 0}\n"
    "td,th{border:1px solid #bbb;padding:.2em .6em;text-align:left}\n"
    "th{background:#eef2f8}\n"
    ".msg{padding:.5em 1em;border:1px solid #4a4;background:#efe}\n"
    ".error{padding:.5em 1em;border:1px solid #c44;background:#fee}\n"
    ".on{color:#060;font-weight:bold}\n.off{color:#a00;font-weight:bold}\n"
    ".flag{color:#a00;font-weight:bold}\n"
    "form.inline{display:inline}\n"
    "label{display:block;margin-top:.5em}\n"
    "button{margin:.5em .5em 0 0;padding:.3em 1em}\n"
    "nav{text-align:right}\n";

static const char *
portal_t(const struct portal_req *pr, enum portal_text t)
{
	return portal_texts[t][pr->lang];
}

/* ---- the back side's answer ------------------------------------------ */

static const char *
portal_val(const struct portal_req *pr, const char *key)
{
	for (size_t i = 0; i < pr->npairs; i++)
		if (strcmp(pr->keys[i], key) == 0)
			return pr->vals[i];
	return NULL;
}

/* A scalar of the answer, "" when absent. */
static const char *
portal_val_str(const struct portal_req *pr, const char *key)
{
	const char *v = portal_val(pr, key);

	return v != NULL ? v : "";
}

static long long
portal_val_num(const struct portal_req *pr, const char *key)
{
	const char *v = portal_val(pr, key);

	return v != NULL ? strtoll(v, NULL, 10) : 0;
}

static void
portal_req_clear(struct portal_req *pr)
{
	for (size_t i = 0; i < pr->npairs; i++) {
		free(pr->keys[i]);
		free(pr->vals[i]);
	}
	pr->npairs = 0;
	free(pr->message);
	pr->message = NULL;
	str_deinit(&pr->rbuf);
	pr->nsubs = pr->nevs = pr->ntops = pr->nrefused = pr->naccts = 0;
	pr->nheld = pr->nrisks = 0;
	pr->more_subs = pr->more_evs = pr->more_tops = pr->more_refused =
	    pr->more_accts = 0;
}

/* A scalar of the answer, by name (page code reads them with
 * portal_val); NULL values are not set. */
static void
portal_set(struct portal_req *pr, const char *key, const char *val)
{
	if (val == NULL || pr->npairs == PORTAL_PAIRS_MAX)
		return;
	pr->keys[pr->npairs] = xstrdup(key);
	pr->vals[pr->npairs++] = xstrdup(val);
}

static void
portal_set_num(struct portal_req *pr, const char *key, long long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", v);
	portal_set(pr, key, buf);
}

static void
portal_req_free(struct portal_req *pr)
{
	portal_req_clear(pr);
	free(pr->target);
	free(pr);
}

/* ---- responses -------------------------------------------------------- */

static void
portal_headers(struct portal_req *pr, const char *type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(pr->req);

	evhttp_add_header(h, "Content-Type", type);
	/* No inline script or style: the page needs neither. */
	evhttp_add_header(h, "Content-Security-Policy", "default-src 'self'; "
	    "form-action 'self'; frame-ancestors 'none'");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	if (pr->p->tls)
		evhttp_add_header(h, "Strict-Transport-Security",
		    "max-age=31536000");
}

static void
portal_cookie(struct portal_req *pr, const char *name, const char *value,
    long max_age)
{
	struct str c = STR_INIT;

	/* RFC 6265bis: SameSite=Strict keeps the cookie off cross-site
	 * requests; Secure only where the listener has TLS. */
	str_printf(&c, "%s=%s; Path=/; HttpOnly; SameSite=Strict%s", name,
	    value, pr->p->tls ? "; Secure" : "");
	if (max_age >= 0)
		str_printf(&c, "; Max-Age=%ld", max_age);
	evhttp_add_header(evhttp_request_get_output_headers(pr->req),
	    "Set-Cookie", str_c(&c));
	str_deinit(&c);
}

/* Send and end the request (pr is freed). */
static void
portal_send(struct portal_req *pr, int code, const char *reason,
    const char *type, const char *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		fatalx("evbuffer_new failed");
	portal_headers(pr, type);
	evhttp_add_header(evhttp_request_get_output_headers(pr->req),
	    "Cache-Control", type[0] == 't' && strstr(type, "css") != NULL ?
	    "max-age=3600" : "no-store");
	evbuffer_add(b, body, len);
	evhttp_send_reply(pr->req, code, reason, b);
	evbuffer_free(b);
	log_info("portal client=%s %s %s status=%d", pr->client, pr->method,
	    pr->path, code);
	portal_req_free(pr);
}

static void
portal_bad_request(struct portal_req *pr, const char *text)
{
	portal_send(pr, 400, "Bad Request", "text/plain; charset=utf-8", text,
	    strlen(text));
}

static void
portal_redirect(struct portal_req *pr, const char *location)
{
	evhttp_add_header(evhttp_request_get_output_headers(pr->req),
	    "Location", location);
	portal_send(pr, 303, "See Other", "text/plain; charset=utf-8", "", 0);
}

static void
portal_text_esc(struct str *out, const struct portal_req *pr,
    enum portal_text t)
{
	portal_html_escape(out, portal_t(pr, t));
}

static void
portal_page_begin(struct portal_req *pr, struct str *b)
{
	str_printf(b, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n"
	    "<meta charset=\"utf-8\">\n"
	    "<meta name=\"viewport\" content=\"width=device-width, "
	    "initial-scale=1\">\n<title>", pr->lang == PORTAL_EN ? "en" :
	    "ja");
	portal_text_esc(b, pr, T_TITLE);
	str_append(b, "</title>\n<link rel=\"stylesheet\" "
	    "href=\"/static/portal.css\">\n</head>\n<body>\n<nav><a "
	    "id=\"lang\" href=\"");
	/* the admin pages' link stays on the admin pages */
	str_append(b, pr->admin ? "/admin/?lang=" : "/?lang=");
	str_append(b, pr->lang == PORTAL_EN ? "ja" : "en");
	str_append(b, "\">");
	portal_text_esc(b, pr, T_OTHER_LANG);
	str_append(b, "</a></nav>\n<h1>");
	portal_text_esc(b, pr, T_TITLE);
	str_append(b, "</h1>\n");
}

static void
portal_page_end(struct portal_req *pr, struct str *b, int code,
    const char *reason)
{
	str_append(b, "</body>\n</html>\n");
	portal_send(pr, code, reason, "text/html; charset=utf-8", b->s != NULL ?
	    b->s : "", b->len);
	str_deinit(b);
}

static void
portal_notice(struct str *b, const char *cls, const char *text,
    const char *extra)
{
	str_printf(b, "<p class=\"%s\" id=\"message\">", cls);
	portal_html_escape(b, text);
	if (extra != NULL)
		portal_html_escape(b, extra);
	str_append(b, "</p>\n");
}

/* A page that only says what went wrong, with the way home. */
static void
portal_error_page(struct portal_req *pr, enum portal_text t, int code,
    const char *reason)
{
	struct str b = STR_INIT;

	portal_page_begin(pr, &b);
	portal_notice(&b, "error", portal_t(pr, t), NULL);
	str_append(&b, "<p><a href=\"/\">");
	portal_text_esc(&b, pr, T_TITLE);
	str_append(&b, "</a></p>\n");
	portal_page_end(pr, &b, code, reason);
}

/* before, s escaped (none when NULL), after. */
static void
portal_esc_in(struct str *b, const char *before, const char *s,
    const char *after)
{
	str_append(b, before);
	portal_html_escape(b, s != NULL ? s : "");
	str_append(b, after);
}

static void
portal_csrf_field(struct str *b, const char *token)
{
	portal_esc_in(b, "<input type=\"hidden\" name=\"csrf\" value=\"",
	    token, "\">\n");
}

static int
portal_new_token(char *hex)
{
	unsigned char raw[PORTAL_TOKEN_LEN / 2];
	static const char digits[] = "0123456789abcdef";

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -1;
	for (size_t i = 0; i < sizeof(raw); i++) {
		hex[2 * i] = digits[raw[i] >> 4];
		hex[2 * i + 1] = digits[raw[i] & 15];
	}
	hex[PORTAL_TOKEN_LEN] = '\0';
	return 0;
}

/*
 * The login page. Its form's CSRF token is a random value also set as
 * the `pre` cookie: a cross-site form cannot read or set that cookie
 * (double submit), so it cannot log a victim into the attacker's account.
 */
static void
portal_login_page(struct portal_req *pr, int code, const char *reason,
    const char *error, const char *extra, const char *extra2)
{
	struct str b = STR_INIT;
	char token[PORTAL_TOKEN_LEN + 1];

	if (portal_new_token(token) < 0)
		fatalx("getrandom failed");
	portal_cookie(pr, "pre", token, -1);
	portal_page_begin(pr, &b);
	if (error != NULL) {
		struct str x = STR_INIT;

		str_append(&x, extra != NULL ? extra : "");
		str_append(&x, extra2 != NULL ? extra2 : "");
		portal_notice(&b, "error", error, str_c(&x));
		str_deinit(&x);
	}
	str_append(&b, "<p>");
	portal_text_esc(&b, pr, pr->admin ? T_ADMIN : T_LOGIN_INTRO);
	str_printf(&b, "</p>\n<form method=\"post\" action=\"%s\">\n",
	    pr->admin ? "/admin/login" : "/login");
	portal_csrf_field(&b, token);
	str_append(&b, "<label for=\"user\">");
	portal_text_esc(&b, pr, pr->admin ? T_ADMIN_NAME : T_ADDRESS);
	str_append(&b, "</label>\n<input id=\"user\" name=\"user\" "
	    "type=\"text\" autocomplete=\"username\" required size=\"40\">\n"
	    "<label for=\"password\">");
	portal_text_esc(&b, pr, T_PASSWORD);
	str_append(&b, "</label>\n<input id=\"password\" name=\"password\" "
	    "type=\"password\" autocomplete=\"current-password\" required "
	    "size=\"40\">\n<div><button type=\"submit\" id=\"login\">");
	portal_text_esc(&b, pr, T_LOGIN);
	str_append(&b, "</button></div>\n</form>\n");
	portal_page_end(pr, &b, code, reason);
}

static void
portal_form_begin(struct str *b, const char *action, const char *csrf,
    const char *cls)
{
	str_printf(b, "<form method=\"post\" action=\"%s\"%s>\n", action, cls);
	portal_csrf_field(b, csrf);
}

/* A subscriber's form with its hidden action field. */
static void
portal_action_form(struct str *b, const char *path, const char *csrf,
    const char *cls, const char *action)
{
	portal_form_begin(b, path, csrf, cls);
	str_printf(b, "<input type=\"hidden\" name=\"action\" "
	    "value=\"%s\">\n", action);
}

/* A labelled password field. */
static void
portal_password_field(struct portal_req *pr, struct str *b, const char *id,
    const char *name, enum portal_text label, const char *autocomplete)
{
	str_printf(b, "<label for=\"%s\">", id);
	portal_text_esc(b, pr, label);
	str_printf(b, "</label>\n<input id=\"%s\" name=\"%s\" "
	    "type=\"password\" autocomplete=\"%s\" required>\n", id, name,
	    autocomplete);
}

static void
portal_button(struct portal_req *pr, struct str *b, const char *id,
    enum portal_text t1, long long n, enum portal_text t2)
{
	str_printf(b, "<button type=\"submit\" id=\"%s\">", id);
	portal_text_esc(b, pr, t1);
	if (n >= 0)
		str_printf(b, "%lld", n);
	if (t2 != T_NOTHING)
		portal_text_esc(b, pr, t2);
	str_append(b, "</button>\n");
}

static void
portal_count_row(struct portal_req *pr, struct str *b, const char *id,
    enum portal_text label, long long used, long long limit)
{
	str_printf(b, "<tr><th>");
	portal_text_esc(b, pr, label);
	str_printf(b, "</th><td id=\"%s\">%lld / ", id, used);
	if (limit > 0)
		str_printf(b, "%lld", limit);
	else
		portal_text_esc(b, pr, T_NO_LIMIT);
	str_append(b, "</td></tr>\n");
}

/* ---- rows (typed, portal_rows.h) ---------------------------------------- */

static void
portal_span(struct str *b, const char *id, const char *s)
{
	str_printf(b, "<span id=\"%s\">", id);
	portal_esc_in(b, "", s, "</span>");
}

static void
portal_td(struct str *b, const char *s)
{
	portal_esc_in(b, "<td>", s, "</td>");
}

static void
portal_td_flag(struct portal_req *pr, struct str *b, int on)
{
	str_append(b, "<td>");
	if (on) {
		str_append(b, "<span class=\"flag\">");
		portal_text_esc(b, pr, T_YES);
		str_append(b, "</span>");
	}
	str_append(b, "</td>");
}

/* An event's type as people read it in the page's language (the table
 * in portal_util.c); a type not in it escaped as it is. */
static void
portal_td_type(struct portal_req *pr, struct str *b, const char *type)
{
	const char *text = portal_event_text(type, pr->lang);

	str_append(b, "<td>");
	portal_html_escape(b, text != NULL ? text : type);
	str_append(b, "</td>");
}

/* Submissions: time, IP, country, recipients, abroad, queue ID; with
 * trace, also the account first and the Message-ID last. */
static int
portal_draw_subs(struct portal_req *pr, struct str *b, int trace)
{
	for (uint32_t i = 0; i < pr->nsubs; i++) {
		const struct portal_sub *r = &pr->subs[i];

		str_append(b, "<tr>");
		portal_td(b, r->when);
		if (trace)
			portal_td(b, r->account);
		portal_td(b, r->ip);
		portal_td(b, r->country);
		str_printf(b, "<td>%u</td>", r->rcpts);
		portal_td_flag(pr, b, r->overseas == 1);
		portal_td(b, r->queue_id);
		if (trace)
			portal_td(b, r->message_id);
		str_append(b, "</tr>\n");
	}
	return (int)pr->nsubs;
}

/* Events: time, what, IP, country, detail; the audit log shows the
 * account and the raw type (what operators grep for) instead, no
 * country, and what the type means last. */
static int
portal_draw_events(struct portal_req *pr, struct str *b, int audit)
{
	for (uint32_t i = 0; i < pr->nevs; i++) {
		const struct portal_event *r = &pr->evs[i];

		str_append(b, "<tr>");
		portal_td(b, r->when);
		if (audit) {
			portal_td(b, r->account);
			portal_td(b, r->type);
		} else
			portal_td_type(pr, b, r->type);
		portal_td(b, r->ip);
		if (!audit)
			portal_td(b, r->country);
		portal_td(b, r->detail);
		if (audit)
			portal_td_type(pr, b, r->type);
		str_append(b, "</tr>\n");
	}
	return (int)pr->nevs;
}

/* A link to the next page of a list, when the back side has more. */
static void
portal_more_link(struct portal_req *pr, struct str *b, const char *base,
    int more)
{
	if (!more)
		return;
	str_append(b, "<p><a id=\"more\" href=\"");
	portal_html_escape(b, base);
	str_printf(b, "%spage=%u\">", strchr(base, '?') != NULL ? "&" : "?",
	    pr->page + 1);
	portal_text_esc(b, pr, T_MORE);
	str_append(b, "</a></p>\n");
}

static void
portal_table_head(struct portal_req *pr, struct str *b, const char *id,
    const enum portal_text *cols, size_t n)
{
	str_printf(b, "<table id=\"%s\">\n<tr>", id);
	for (size_t i = 0; i < n; i++) {
		str_append(b, "<th>");
		portal_text_esc(b, pr, cols[i]);
		str_append(b, "</th>");
	}
	str_append(b, "</tr>\n");
}

static void
portal_table_end(struct portal_req *pr, struct str *b, int rows)
{
	str_append(b, "</table>\n");
	if (rows == 0) {
		str_append(b, "<p>");
		portal_text_esc(b, pr, T_NONE);
		str_append(b, "</p>\n");
	}
}

static void
portal_heading(struct portal_req *pr, struct str *b, int level,
    enum portal_text t)
{
	str_printf(b, "<h%d>", level);
	portal_text_esc(b, pr, t);
	str_printf(b, "</h%d>\n", level);
}

/* prefix and arg made safe for a URI's query. */
static void
portal_uri_arg(struct str *out, const char *prefix, const char *arg)
{
	char *enc = evhttp_uriencode(arg, -1, 0);

	str_append(out, prefix);
	str_append(out, enc != NULL ? enc : "");
	free(enc);
}

/* An account's history, on its own page and on the admin's: its recent
 * submissions and events, and the link to more of them from base. */
static void
portal_history(struct portal_req *pr, struct str *b, const char *base)
{
	static const enum portal_text sub_cols[] = { T_TIME, T_IP, T_COUNTRY,
	    T_RCPTS, T_ABROAD, T_QUEUE_ID };
	static const enum portal_text ev_cols[] = { T_TIME, T_WHAT, T_IP,
	    T_COUNTRY, T_DETAIL };

	portal_heading(pr, b, 2, T_RECENT);
	portal_table_head(pr, b, "submissions", sub_cols,
	    portal_nitems(sub_cols));
	portal_table_end(pr, b, portal_draw_subs(pr, b, 0));
	portal_heading(pr, b, 2, T_EVENTS);
	portal_table_head(pr, b, "events", ev_cols, portal_nitems(ev_cols));
	portal_table_end(pr, b, portal_draw_events(pr, b, 0));
	portal_more_link(pr, b, base, pr->more_subs || pr->more_evs);
}

/* The account's address and its aliases, one line. */
static void
portal_aliases(struct portal_req *pr, struct str *b)
{
	const char *account = portal_val(pr, "account");

	str_append(b, "<p id=\"aliases\">");
	portal_text_esc(b, pr, T_ALIASES);
	portal_html_escape(b, account != NULL ? account : "");
	for (size_t i = 0; i < pr->npairs; i++)
		if (strcmp(pr->keys[i], "alias") == 0) {
			str_append(b, ", ");
			portal_html_escape(b, pr->vals[i]);
		}
	str_append(b, "</p>\n");
}

/* issue 17: what the subscriber is told of a hold, a notice and the
 * desk's warning (never the score). */
static void
portal_risk_notices(struct portal_req *pr, struct str *b)
{
	const char *risk = portal_val_str(pr, "risk");
	const char *warned = portal_val(pr, "warned");
	const char *since = portal_val(pr, "risk_since");

	if (strcmp(risk, "hold") == 0 || strcmp(risk, "notify") == 0) {
		int hold = strcmp(risk, "hold") == 0;

		str_printf(b, "<div class=\"%s\" id=\"risk-%s\"><p>",
		    hold ? "error" : "msg", risk);
		portal_text_esc(b, pr, hold ? T_SUB_HOLD : T_SUB_NOTIFY);
		if (since != NULL)
			portal_esc_in(b, " (", since, ")");
		str_append(b, "</p><p>");
		portal_text_esc(b, pr, T_SUB_WHAT_TO_DO);
		str_append(b, "</p></div>\n");
	}
	if (warned != NULL) {
		str_append(b, "<div class=\"error\" id=\"warning\"><p>");
		portal_text_esc(b, pr, T_SUB_WARNED);
		portal_span(b, "warned", warned);
		portal_esc_in(b, " &mdash; <span id=\"warning-trace\">",
		    portal_val_str(pr, "warning"), "</span></p><p>");
		portal_text_esc(b, pr, T_SUB_WHAT_TO_DO);
		str_append(b, "</p></div>\n");
	}
}

static enum portal_text
portal_level_text(const char *level)
{
	return strcmp(level, "notify") == 0 ? T_LEVEL_NOTIFY :
	    strcmp(level, "hold") == 0 ? T_LEVEL_HOLD :
	    strcmp(level, "suspend") == 0 ? T_LEVEL_SUSPEND : T_LEVEL_NONE;
}

static void
portal_main_page(struct portal_req *pr)
{
	const char *csrf = portal_val(pr, "csrf");
	const char *until = portal_val(pr, "overseas_until");
	long long days = portal_val_num(pr, "overseas_days");
	int on = portal_val_num(pr, "overseas") == 1;
	struct evkeyvalq q;
	const char *msg;
	struct str b = STR_INIT;

	portal_page_begin(pr, &b);
	str_append(&b, "<p>");
	portal_text_esc(&b, pr, T_LOGGED_IN_AS);
	str_append(&b, "<strong id=\"account\">");
	portal_html_escape(&b, portal_val_str(pr, "account"));
	str_append(&b, "</strong></p>\n");
	portal_aliases(pr, &b);
	portal_form_begin(&b, "/logout", csrf, " class=\"inline\"");
	portal_button(pr, &b, "logout", T_LOGOUT, -1, T_NOTHING);
	str_append(&b, "</form>\n");
	portal_risk_notices(pr, &b);

	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(evhttp_uri_get_query(
	    evhttp_request_get_evhttp_uri(pr->req)) != NULL ?
	    evhttp_uri_get_query(evhttp_request_get_evhttp_uri(pr->req)) : "",
	    &q) == 0 && (msg = evhttp_find_header(&q, "msg")) != NULL) {
		for (size_t i = 0; i < portal_nitems(portal_msgs); i++)
			if (strcmp(portal_msgs[i].code, msg) == 0)
				portal_notice(&b, portal_msgs[i].error ?
				    "error" : "msg", portal_t(pr,
				    portal_msgs[i].text), NULL);
	}
	evhttp_clear_headers(&q);

	/* overseas sending */
	portal_heading(pr, &b, 2, T_OVERSEAS);
	str_append(&b, "<p>");
	portal_text_esc(&b, pr, T_RULE_1);
	str_printf(&b, "%lld", days);
	portal_text_esc(&b, pr, T_RULE_2);
	str_append(&b, "</p>\n");
	const char *countries = portal_val(pr, "overseas_countries");

	if (on && until != NULL) {
		str_append(&b, "<p class=\"on\" id=\"overseas\">");
		portal_text_esc(&b, pr, T_ON_UNTIL_1);
		portal_span(&b, "until", until);
		portal_text_esc(&b, pr, T_ON_UNTIL_2);
		str_append(&b, "<br>");
		portal_text_esc(&b, pr, T_COUNTRIES);
		portal_span(&b, "countries", countries != NULL &&
		    *countries != '\0' ? countries : portal_t(pr,
		    T_COUNTRIES_ALL));
		str_append(&b, "</p>\n");
	} else {
		str_append(&b, "<p class=\"off\" id=\"overseas\">");
		portal_text_esc(&b, pr, T_OFF);
		str_append(&b, "</p>\n");
	}
	portal_action_form(&b, "/overseas", csrf, " class=\"inline\"", "on");
	str_append(&b, "<label for=\"countries\">");
	portal_text_esc(&b, pr, T_COUNTRIES);
	str_append(&b, "</label>\n<input id=\"countries\" name=\"countries\" "
	    "maxlength=\"119\" size=\"16\" value=\"");
	portal_html_escape(&b, countries != NULL ? countries : "");
	str_append(&b, "\">\n<small>");
	portal_text_esc(&b, pr, T_COUNTRIES_HINT);
	str_append(&b, "</small>\n");
	if (on)
		portal_button(pr, &b, "extend", T_EXTEND_1, days, T_EXTEND_2);
	else
		portal_button(pr, &b, "turn-on", T_TURN_ON_1, days,
		    T_TURN_ON_2);
	str_append(&b, "</form>\n");
	if (on) {
		portal_action_form(&b, "/overseas", csrf, " class=\"inline\"",
		    "off");
		portal_button(pr, &b, "turn-off", T_TURN_OFF, -1,
		    T_NOTHING);
		str_append(&b, "</form>\n");
	}

	/* today's counts */
	portal_heading(pr, &b, 2, T_TODAY);
	str_append(&b, "<table id=\"counts\">\n");
	portal_count_row(pr, &b, "msgs", T_MESSAGES,
	    portal_val_num(pr, "msgs"), portal_val_num(pr, "msgs_limit"));
	portal_count_row(pr, &b, "rcpts", T_RECIPIENTS,
	    portal_val_num(pr, "rcpts"), portal_val_num(pr, "rcpts_limit"));
	if (portal_val_num(pr, "rcpts_hour_limit") > 0)
		portal_count_row(pr, &b, "rcpts-hour", T_RECIPIENTS_HOUR,
		    portal_val_num(pr, "rcpts_hour"),
		    portal_val_num(pr, "rcpts_hour_limit"));
	if (on)
		portal_count_row(pr, &b, "rcpts-abroad", T_RECIPIENTS_ABROAD,
		    portal_val_num(pr, "rcpts_abroad"),
		    portal_val_num(pr, "rcpts_abroad_limit"));
	str_append(&b, "</table>\n<p>");
	portal_text_esc(&b, pr, T_RESET);
	portal_span(&b, "reset", portal_val_str(pr, "reset"));
	str_append(&b, "</p>\n");

	portal_history(pr, &b, "/");
	str_append(&b, "<p>");
	portal_text_esc(&b, pr, T_NOT_ME);
	str_append(&b, "</p>\n");

	/* password */
	portal_heading(pr, &b, 2, T_PW_TITLE);
	portal_form_begin(&b, "/password", csrf, "");
	portal_password_field(pr, &b, "current", "current", T_PW_CURRENT,
	    "current-password");
	portal_password_field(pr, &b, "new", "new", T_PW_NEW, "new-password");
	portal_password_field(pr, &b, "new2", "new2", T_PW_NEW2,
	    "new-password");
	str_append(&b, "<div>");
	portal_button(pr, &b, "change-password", T_PW_CHANGE, -1,
	    T_NOTHING);
	str_append(&b, "</div>\n</form>\n");

	/* APOP */
	portal_heading(pr, &b, 2, T_APOP);
	str_append(&b, "<p>");
	portal_text_esc(&b, pr, T_APOP_EXPLAIN);
	str_append(&b, "</p>\n<p id=\"apop\">");
	portal_text_esc(&b, pr, portal_val_num(pr, "apop") == 1 ?
	    T_APOP_IS_ON : T_APOP_IS_OFF);
	str_append(&b, "</p>\n");
	portal_action_form(&b, "/apop", csrf, "", "on");
	portal_password_field(pr, &b, "apop-current", "current", T_PW_CURRENT,
	    "current-password");
	portal_password_field(pr, &b, "apop-new", "apop", T_APOP_NEW,
	    "new-password");
	portal_password_field(pr, &b, "apop-new2", "apop2", T_APOP_NEW2,
	    "new-password");
	str_append(&b, "<div>");
	portal_button(pr, &b, "apop-on", T_APOP_TURN_ON, -1, T_NOTHING);
	str_append(&b, "</div>\n</form>\n");
	if (portal_val_num(pr, "apop") == 1) {
		portal_action_form(&b, "/apop", csrf, "", "off");
		portal_button(pr, &b, "apop-off", T_APOP_TURN_OFF, -1,
		    T_NOTHING);
		str_append(&b, "</form>\n");
	}
	/* mail client setup (issue 19 item 5, portal_autoconfig.h) */
	portal_heading(pr, &b, 2, T_CLIENT_SETUP);
	str_append(&b, "<p id=\"client-setup\">");
	portal_text_esc(&b, pr, T_CLIENT_SETUP_HINT);
	str_append(&b, "<a id=\"mobileconfig-imap\" href=\"/mobileconfig\">"
	    "IMAP</a> / <a id=\"mobileconfig-pop3\" "
	    "href=\"/mobileconfig?type=pop3\">POP3</a> / "
	    "<a id=\"autoconfig\" href=\"/mail/config-v1.1.xml\">"
	    "config-v1.1.xml</a></p>\n");

	/* issue 16: refuse mail claiming to be from me */
	{
		int own = portal_val_num(pr, "own_from") == 1;

		portal_heading(pr, &b, 2, T_OWN_FROM);
		str_append(&b, "<p>");
		portal_text_esc(&b, pr, T_OWN_FROM_EXPLAIN);
		str_append(&b, "</p>\n<p id=\"own-from\">");
		portal_text_esc(&b, pr, own ? T_OWN_FROM_IS_ON :
		    T_OWN_FROM_IS_OFF);
		str_append(&b, "</p>\n");
		portal_action_form(&b, "/own_from", csrf, "", own ? "off" :
		    "on");
		portal_button(pr, &b, own ? "own-from-off" : "own-from-on",
		    own ? T_OWN_FROM_TURN_OFF : T_OWN_FROM_TURN_ON, -1,
		    T_NOTHING);
		str_append(&b, "</form>\n");
	}
	portal_page_end(pr, &b, 200, "OK");
}

/* ---- talking to the back side ------------------------------------------ */

/* A LIST (be_proto.h): u32 n, u32 more, then n rows read by fn. */
#define PORTAL_READ_LIST(m, rows, n, more, fn) do {			\
	if (msg_get_u32((m), &(n)) < 0 || (n) > PORTAL_PAGE_MAX ||	\
	    msg_get_u32((m), &(more)) < 0)				\
		return -1;						\
	for (uint32_t i_ = 0; i_ < (n); i_++)				\
		if (fn((m), &(rows)[i_]) < 0)				\
			return -1;					\
} while (0)

static int
portal_read_str(struct portal_req *pr, struct msg *m, const char *key,
    size_t max)
{
	const char *s;

	if (portal_rows_get_str(m, max, &s) < 0)
		return -1;
	portal_set(pr, key, s);
	return 0;
}

static int
portal_read_i64(struct portal_req *pr, struct msg *m, const char *key)
{
	int64_t v;

	if (msg_get_i64(m, &v) < 0)
		return -1;
	portal_set_num(pr, key, v);
	return 0;
}

static int
portal_read_u32(struct portal_req *pr, struct msg *m, const char *key)
{
	uint32_t v;

	if (msg_get_u32(m, &v) < 0)
		return -1;
	portal_set_num(pr, key, v);
	return 0;
}

/* STATUS (be_proto.h). */
static int
portal_read_status(struct portal_req *pr, struct msg *m)
{
	static const char *const nums[] = { "msgs", "rcpts", "rcpts_hour",
	    "rcpts_abroad", "msgs_limit", "rcpts_limit", "rcpts_hour_limit",
	    "rcpts_abroad_limit" };
	uint32_t n;

	if (portal_read_str(pr, m, "account", PORTAL_ACCOUNT_MAX) < 0 ||
	    portal_read_u32(pr, m, "overseas") < 0 ||
	    portal_read_str(pr, m, "overseas_until", PORTAL_WHEN_MAX) < 0 ||
	    portal_read_u32(pr, m, "overseas_days") < 0 ||
	    portal_read_str(pr, m, "overseas_countries",
	    PORTAL_COUNTRIES_MAX) < 0)
		return -1;
	for (size_t i = 0; i < portal_nitems(nums); i++)
		if (portal_read_i64(pr, m, nums[i]) < 0)
			return -1;
	if (portal_read_str(pr, m, "reset", PORTAL_WHEN_MAX) < 0 ||
	    portal_read_u32(pr, m, "apop") < 0 ||
	    portal_read_u32(pr, m, "own_from") < 0 ||	/* issue 16 */
	    msg_get_u32(m, &n) < 0 ||
	    n > PORTAL_ALIASES_MAX)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		if (portal_read_str(pr, m, "alias", PORTAL_ACCOUNT_MAX) < 0)
			return -1;
	PORTAL_READ_LIST(m, pr->subs, pr->nsubs, pr->more_subs,
	    portal_rows_sub_unpack);
	PORTAL_READ_LIST(m, pr->evs, pr->nevs, pr->more_evs,
	    portal_rows_event_unpack);
	/* RISK (issue 17) */
	if (portal_read_str(pr, m, "risk", PORTAL_TYPE_MAX) < 0 ||
	    portal_read_u32(pr, m, "risk_auto") < 0 ||
	    portal_read_str(pr, m, "risk_since", PORTAL_WHEN_MAX) < 0 ||
	    portal_read_str(pr, m, "risk_reason", PORTAL_REASON_MAX) < 0 ||
	    portal_read_str(pr, m, "warned", PORTAL_WHEN_MAX) < 0 ||
	    portal_read_str(pr, m, "warning", PORTAL_REASON_MAX) < 0 ||
	    portal_read_u32(pr, m, "held") < 0 ||
	    portal_read_i64(pr, m, "score10") < 0 ||
	    portal_read_u32(pr, m, "exempt") < 0)
		return -1;
	if (pr->be_type == BE_ADMIN_ACCOUNT) {
		if (msg_get_u32(m, &pr->nheld) < 0 ||
		    pr->nheld > PORTAL_HELD_PAGE ||
		    msg_get_u32(m, &pr->more_held) < 0)
			return -1;
		for (uint32_t i = 0; i < pr->nheld; i++)
			if (portal_rows_held_unpack(m, &pr->held[i]) < 0)
				return -1;
	}
	return 0;
}

/* The body of an OK answer to the request pr->be_type sent. */
static int
portal_read_body(struct portal_req *pr, struct msg *m)
{
	uint32_t dash;

	switch (pr->be_type) {
	case BE_PORTAL_LOGIN:
		return portal_read_str(pr, m, "session", PORTAL_TOKEN_LEN) < 0 ||
		    portal_read_str(pr, m, "account", PORTAL_ACCOUNT_MAX) < 0 ?
		    -1 : 0;
	case BE_ADMIN_LOGIN:
		return portal_read_str(pr, m, "session", PORTAL_TOKEN_LEN) < 0 ||
		    portal_read_str(pr, m, "admin", PORTAL_ACCOUNT_MAX) < 0 ?
		    -1 : 0;
	case BE_PORTAL_STATUS:
		return portal_read_status(pr, m);
	case BE_PORTAL_OVERSEAS_ON:
	case BE_PORTAL_OVERSEAS_OFF:
		return portal_read_str(pr, m, "overseas_until",
		    PORTAL_WHEN_MAX);
	case BE_PORTAL_PASSWORD:
	case BE_PORTAL_APOP_ON:
	case BE_PORTAL_APOP_OFF:
	case BE_PORTAL_LOGOUT:
	case BE_PORTAL_OWN_FROM_ON:
	case BE_PORTAL_OWN_FROM_OFF:
		return 0;
	case BE_API_GET:
	case BE_API_OVERSEAS:
	case BE_API_LIMITS:
	case BE_API_HISTORY:
		return portal_read_str(pr, m, "json", MSG_MAX_LEN);
	default:
		break;
	}
	/* the admin requests: the admin's name first */
	if (portal_read_str(pr, m, "admin", PORTAL_ACCOUNT_MAX) < 0)
		return -1;
	switch (pr->be_type) {
	case BE_ADMIN_SEARCH:
		if (msg_get_u32(m, &dash) < 0 || dash > 1)
			return -1;
		if (dash) {
			if (portal_read_i64(pr, m, "queue") < 0)
				return -1;
			PORTAL_READ_LIST(m, pr->tops, pr->ntops, pr->more_tops,
			    portal_rows_top_unpack);
			PORTAL_READ_LIST(m, pr->refused, pr->nrefused,
			    pr->more_refused, portal_rows_refused_unpack);
		}
		PORTAL_READ_LIST(m, pr->accts, pr->naccts, pr->more_accts,
		    portal_rows_account_unpack);
		return 0;
	case BE_ADMIN_ACCOUNT:
		return portal_read_u32(pr, m, "suspended") < 0 ? -1 :
		    portal_read_status(pr, m);
	case BE_ADMIN_AUDIT:
		PORTAL_READ_LIST(m, pr->evs, pr->nevs, pr->more_evs,
		    portal_rows_event_unpack);
		return 0;
	case BE_ADMIN_TRACE:
		PORTAL_READ_LIST(m, pr->subs, pr->nsubs, pr->more_subs,
		    portal_rows_sub_unpack);
		return 0;
	case BE_ADMIN_RISK_TOP:
		PORTAL_READ_LIST(m, pr->risks, pr->nrisks, pr->more_risks,
		    portal_rows_risk_unpack);
		return 0;
	case BE_ADMIN_WARN:
	case BE_ADMIN_HELD_RELEASE:
	case BE_ADMIN_HELD_DELETE:
		return portal_read_u32(pr, m, "count");
	default:
		return 0;
	}
}

/* HEAD (be_proto.h), then the CSRF token and the body when OK. */
static int
portal_read(struct portal_req *pr, struct msg *m)
{
	const char *message;
	int64_t delay;

	if (msg_get_u32(m, &pr->result) < 0 ||
	    portal_rows_get_str(m, 64, &message) < 0 ||
	    msg_get_i64(m, &delay) < 0 ||
	    portal_read_str(pr, m, "until", PORTAL_WHEN_MAX) < 0 ||
	    portal_read_str(pr, m, "reason", PORTAL_REASON_MAX) < 0)
		return -1;
	pr->message = message != NULL ? xstrdup(message) : NULL;
	portal_set_num(pr, "delay", delay);
	if (pr->result != BE_PORTAL_OK)
		return msg_end(m);
	if (portal_read_str(pr, m, "csrf", PORTAL_TOKEN_LEN) < 0 ||
	    portal_read_body(pr, m) < 0)
		return -1;
	return msg_end(m);
}

static void
portal_on_be(struct msg *reply, void *arg)
{
	struct portal_req *pr = arg;

	portal_req_clear(pr);
	if (reply == NULL || reply->type != pr->be_type ||
	    portal_read(pr, reply) < 0) {
		portal_req_clear(pr);
		pr->result = BE_PORTAL_TEMPFAIL;
		pr->message = xstrdup("tempfail");
	} else {
		/* the rows point into the reply's bytes: keep them */
		pr->rbuf = reply->buf;
		str_init(&reply->buf);
	}
	pr->done(pr);
}

/* Start a page request (be_proto.h SESSION): the client, the session
 * cookie, the form's CSRF token (a bad one is sent as none). */
static void
portal_req_session(struct portal_req *pr, struct msg *m, uint32_t type,
    const char *csrf)
{
	msg_init(m, type, 0);
	pr->be_type = type;
	msg_add_str(m, pr->client);
	msg_add_str(m, pr->have_sid ? pr->sid : NULL);
	msg_add_str(m, csrf != NULL && strlen(csrf) == PORTAL_TOKEN_LEN ?
	    csrf : NULL);
}

/* Send m (every field bounded by the caller); done runs with the
 * answer in pr. */
static void
portal_go(struct portal_req *pr, struct msg *m, portal_done_fn *done)
{
	pr->done = done;
	be_client_request(pr->p->loop->be, m, portal_on_be, pr);
}

/* A request with the session and nothing else. */
static void
portal_ask(struct portal_req *pr, uint32_t type, const char *csrf,
    portal_done_fn *done)
{
	struct msg m;

	portal_req_session(pr, &m, type, csrf);
	portal_go(pr, &m, done);
}

/* A login (user and password bounded by the caller). */
static void
portal_ask_login(struct portal_req *pr, uint32_t type, const char *user,
    const char *pass, portal_done_fn *done)
{
	struct msg m;

	msg_init(&m, type, 0);
	pr->be_type = type;
	msg_add_str(&m, pr->client);
	msg_add_str(&m, user);
	msg_add_str(&m, pass);
	portal_go(pr, &m, done);
}

/* An answer to a field over its bound: 413 and a page that says so;
 * the session process goes on. */
static void
portal_too_long(struct portal_req *pr)
{
	portal_error_page(pr, T_TOO_LONG, 413, "Payload Too Large");
}

/* ?page=N of a list: 0 and the number, -1 if malformed (400 sent). */
static int
portal_page_param(struct portal_req *pr)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(pr->req);
	const char *q = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq qs;
	const char *v;
	int r = 0;

	pr->page = 0;
	TAILQ_INIT(&qs);
	if (q != NULL && evhttp_parse_query_str(q, &qs) == 0 &&
	    (v = evhttp_find_header(&qs, "page")) != NULL) {
		char *end;
		unsigned long n = strtoul(v, &end, 10);

		if (*v < '0' || *v > '9' || *end != '\0' ||
		    n > PORTAL_PAGE_NUM_MAX)
			r = -1;
		else
			pr->page = (uint32_t)n;
	}
	evhttp_clear_headers(&qs);
	if (r < 0)
		portal_bad_request(pr, "bad page\n");
	return r;
}

/* A failed password is answered after the throttling delay. */
static void
portal_after_delay(struct portal_req *pr, event_callback_fn cb)
{
	long long ms = portal_val_num(pr, "delay");
	struct timeval tv;

	if (ms <= 0) {
		cb(-1, 0, pr);
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (event_base_once(pr->p->loop->base, -1, EV_TIMEOUT, cb, pr,
	    &tv) < 0)
		cb(-1, 0, pr);
}

/* ---- pages ----------------------------------------------------------- */

static void
portal_status_done(struct portal_req *pr)
{
	if (pr->result == BE_PORTAL_OK) {
		portal_main_page(pr);
		return;
	}
	if (pr->result == BE_PORTAL_NOSESSION) {
		portal_cookie(pr, "sid", "", 0);
		if (pr->message != NULL &&
		    strcmp(pr->message, "suspended") == 0)
			portal_login_page(pr, 403, "Forbidden",
			    portal_t(pr, T_MSG_SUSPENDED), NULL, NULL);
		else
			portal_login_page(pr, 200, "OK", NULL, NULL, NULL);
		return;
	}
	portal_login_page(pr, 503, "Service Unavailable",
	    portal_t(pr, T_MSG_TEMPFAIL), NULL, NULL);
}

/* The session cookie and the home page: the admin pages have their own. */
static const char *
portal_sid_cookie(const struct portal_req *pr)
{
	return pr->admin ? "asid" : "sid";
}

static const char *
portal_home(const struct portal_req *pr)
{
	return pr->admin ? "/admin/" : "/";
}

static void
portal_login_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	struct portal_req *pr = arg;

	(void)fd;
	(void)what;
	portal_login_page(pr, 401, "Unauthorized", portal_t(pr, T_MSG_FAIL),
	    NULL, NULL);
}

/* The answer to a login, a subscriber's or an admin's (only a
 * subscriber's account is suspended). */
static void
portal_login_done(struct portal_req *pr)
{
	const char *sid = portal_val(pr, "session");
	const char *m = pr->message != NULL ? pr->message : "";

	if (pr->result == BE_PORTAL_OK && sid != NULL) {
		portal_cookie(pr, portal_sid_cookie(pr), sid, -1);
		portal_cookie(pr, "pre", "", 0);
		portal_redirect(pr, portal_home(pr));
	} else if (strcmp(m, "fail") == 0)
		portal_after_delay(pr, portal_login_fail_cb);
	else if (strcmp(m, "locked") == 0)
		portal_login_page(pr, 429, "Too Many Requests",
		    portal_t(pr, T_MSG_LOCKED), portal_t(pr,
		    T_MSG_LOCKED_UNTIL), portal_val(pr, "until"));
	else if (!pr->admin && strcmp(m, "suspended") == 0) {
		const char *reason = portal_val(pr, "reason");
		struct str r = STR_INIT;

		if (reason != NULL && *reason != '\0') {
			str_append(&r, " ");
			str_append(&r, portal_t(pr, T_MSG_REASON));
			str_append(&r, reason);
		}
		portal_login_page(pr, 403, "Forbidden",
		    portal_t(pr, T_MSG_SUSPENDED), str_c(&r), NULL);
		str_deinit(&r);
	} else
		portal_login_page(pr, 503, "Service Unavailable",
		    portal_t(pr, T_MSG_TEMPFAIL), NULL, NULL);
}

/* After a state-changing POST: back to the page, with a message code. */
static void
portal_change_done_msg(struct portal_req *pr, const char *code)
{
	char loc[64];

	if (pr->result == BE_PORTAL_NOSESSION) {
		portal_cookie(pr, "sid", "", 0);
		portal_redirect(pr, "/");
		return;
	}
	if (pr->result == BE_PORTAL_CSRF) {
		portal_error_page(pr, T_MSG_CSRF, 403, "Forbidden");
		return;
	}
	if (pr->result == BE_PORTAL_TEMPFAIL)
		code = "tempfail";
	snprintf(loc, sizeof(loc), "/?msg=%s", code);
	portal_redirect(pr, loc);
}

static void
portal_overseas_done(struct portal_req *pr)
{
	if (pr->result == BE_PORTAL_REFUSED)
		portal_change_done_msg(pr, "badcountries");
	else
		portal_change_done_msg(pr, portal_val(pr, "overseas_until") !=
		    NULL ? "on" : "off");
}

static void
portal_password_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	portal_change_done_msg(arg, "badcurrent");
}

/* The answer to a change that asks for the password again: ok is the
 * message code of a change made, bad that of a refused new value. */
static void
portal_checked_done(struct portal_req *pr, const char *ok, const char *bad)
{
	const char *m = pr->message != NULL ? pr->message : "";

	if (pr->result != BE_PORTAL_REFUSED)
		portal_change_done_msg(pr, ok);
	else if (strcmp(m, "fail") == 0)
		portal_after_delay(pr, portal_password_fail_cb);
	else if (strcmp(m, "suspended") == 0) {
		pr->result = BE_PORTAL_NOSESSION;
		portal_change_done_msg(pr, "");
	} else
		portal_change_done_msg(pr, strcmp(m, "locked") == 0 ?
		    "locked" : bad);
}

static void
portal_password_done(struct portal_req *pr)
{
	portal_checked_done(pr, "password", "badnew");
}

static void
portal_apop_done(struct portal_req *pr)
{
	portal_checked_done(pr, pr->target != NULL ? pr->target : "apop_off",
	    "badapop");
}

/* issue 16: refuse_own_from */
static void
portal_own_from_on_done(struct portal_req *pr)
{
	portal_change_done_msg(pr, "own_from_on");
}

static void
portal_own_from_off_done(struct portal_req *pr)
{
	portal_change_done_msg(pr, "own_from_off");
}

static void
portal_logout_done(struct portal_req *pr)
{
	if (pr->result == BE_PORTAL_CSRF) {
		portal_change_done_msg(pr, "");
		return;
	}
	portal_cookie(pr, portal_sid_cookie(pr), "", 0);
	portal_redirect(pr, portal_home(pr));
}

/* ---- the JSON API (docs/portal.md) ------------------------------------ */

static void
portal_api_send(struct portal_req *pr, int code, const char *reason,
    const char *json)
{
	portal_send(pr, code, reason, "application/json", json, strlen(json));
}

static void
portal_api_error(struct portal_req *pr, int code, const char *reason,
    const char *text)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "error", json_string(text));
	s = json_dumps(o, JSON_COMPACT);
	if (code == 401)
		evhttp_add_header(evhttp_request_get_output_headers(pr->req),
		    "WWW-Authenticate", "Bearer realm=\"sekisho\"");
	portal_api_send(pr, code, reason, s != NULL ? s : "{}");
	free(s);
	json_decref(o);
}

static void
portal_api_done(struct portal_req *pr)
{
	const char *json = portal_val(pr, "json");

	if (pr->result == BE_PORTAL_OK && json != NULL)
		portal_api_send(pr, 200, "OK", json);
	else if (pr->result == BE_PORTAL_NOSESSION)
		portal_api_error(pr, 401, "Unauthorized",
		    "missing, unknown or revoked token");
	else if (pr->result == BE_PORTAL_REFUSED && pr->message != NULL &&
	    strcmp(pr->message, "badcountries") == 0)
		portal_api_error(pr, 400, "Bad Request", "countries: expected "
		    "country codes separated by commas, e.g. \"US,GB\", or "
		    "\"\" for every country");
	else if (pr->result == BE_PORTAL_REFUSED)
		portal_api_error(pr, 404, "Not Found", "no such account");
	else
		portal_api_error(pr, 503, "Service Unavailable",
		    "temporarily unavailable");
}

/* The request body as a JSON object, or an answer 400 (then NULL). */
static json_t *
portal_api_body(struct portal_req *pr)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(pr->req);
	size_t len = evbuffer_get_length(in);
	char *body = xmalloc(len + 1);
	json_error_t err;
	json_t *o;

	evbuffer_copyout(in, body, len);
	o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	free(body);
	if (o == NULL) {
		char msg[256];

		snprintf(msg, sizeof(msg), "bad JSON: %s (line %d, column "
		    "%d)", err.text, err.line, err.column);
		portal_api_error(pr, 400, "Bad Request", msg);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		portal_api_error(pr, 400, "Bad Request",
		    "the body must be a JSON object");
		return NULL;
	}
	return o;
}

/*
 * /api/v1/accounts/ADDRESS            GET: status, limits, counts
 * /api/v1/accounts/ADDRESS/overseas   POST {"action": "on"|"extend"|"off"}
 * /api/v1/accounts/ADDRESS/limits     POST {"recipients_per_day": 200, ...}
 * /api/v1/accounts/ADDRESS/history    GET [?since=SECONDS]: events and
 *                                     submissions
 */
static void
portal_api(struct portal_req *pr, const char *path)
{
	static const char prefix[] = "/api/v1/accounts/";
	static const char *const limit_keys[] = { "messages_per_day",
	    "recipients_per_day", "recipients_per_hour",
	    "recipients_per_message", "overseas_recipients_per_day" };
	const char *auth = evhttp_find_header(
	    evhttp_request_get_input_headers(pr->req), "Authorization");
	int post = evhttp_request_get_command(pr->req) == EVHTTP_REQ_POST;
	const char *action, *rest, *slash;
	char *address = NULL, *enc;
	json_t *body = NULL;
	struct msg m;

	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 ||
	    auth[7] == '\0' || strlen(auth + 7) > 256) {
		portal_api_error(pr, 401, "Unauthorized",
		    "an Authorization: Bearer token is required");
		return;
	}
	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0 ||
	    path[sizeof(prefix) - 1] == '\0') {
		portal_api_error(pr, 404, "Not Found", "no such endpoint");
		return;
	}
	rest = path + sizeof(prefix) - 1;
	slash = strchr(rest, '/');
	enc = slash != NULL ? xstrndup(rest, (size_t)(slash - rest)) :
	    xstrdup(rest);
	address = evhttp_uridecode(enc, 0, NULL);
	free(enc);
	if (slash == NULL)
		action = post ? NULL : "get";
	else if (strcmp(slash, "/overseas") == 0)
		action = post ? "overseas" : NULL;
	else if (strcmp(slash, "/limits") == 0)
		action = post ? "limits" : NULL;
	else if (strcmp(slash, "/history") == 0)
		action = post ? NULL : "history";
	else {
		free(address);
		portal_api_error(pr, 404, "Not Found", "no such endpoint");
		return;
	}
	if (action == NULL) {
		free(address);
		portal_api_error(pr, 405, "Method Not Allowed",
		    post ? "use GET here" : "use POST here");
		return;
	}
	/* no control character in an address (it goes into logs) */
	if (address == NULL || *address == '\0' || strlen(address) > 254 ||
	    !str_login_name_ok(address)) {
		free(address);
		portal_api_error(pr, 400, "Bad Request", "bad address");
		return;
	}
	if (post && (body = portal_api_body(pr)) == NULL) {
		free(address);
		return;
	}
	if (strcmp(action, "get") == 0) {
		msg_init(&m, BE_API_GET, 0);
		pr->be_type = BE_API_GET;
	} else if (strcmp(action, "overseas") == 0) {
		const char *a = json_string_value(json_object_get(body,
		    "action"));
		json_t *cc = json_object_get(body, "countries");

		/* the countries are optional, with "on" or "extend" only,
		 * and checked by the back side (issue 17 item 5) */
		if (a == NULL || json_object_size(body) != 1 + (cc != NULL) ||
		    (strcmp(a, "on") != 0 && strcmp(a, "extend") != 0 &&
		    strcmp(a, "off") != 0) || (cc != NULL &&
		    (strcmp(a, "off") == 0 || !json_is_string(cc) ||
		    json_string_length(cc) > PORTAL_COUNTRIES_MAX))) {
			portal_api_error(pr, 400, "Bad Request", "expected "
			    "{\"action\": \"on\" | \"extend\" | \"off\"}, "
			    "with \"on\" and \"extend\" optionally "
			    "\"countries\": \"US,GB\"");
			goto out;
		}
		msg_init(&m, BE_API_OVERSEAS, 0);
		pr->be_type = BE_API_OVERSEAS;
	} else if (strcmp(action, "limits") == 0) {
		const char *key;
		json_t *v;

		json_object_foreach(body, key, v) {
			size_t i;

			for (i = 0; i < portal_nitems(limit_keys); i++)
				if (strcmp(key, limit_keys[i]) == 0)
					break;
			if (i == portal_nitems(limit_keys) || !(json_is_null(v) ||
			    (json_is_integer(v) && json_integer_value(v) >= 0 &&
			    json_integer_value(v) <= 10000000))) {
				char msg[160];

				snprintf(msg, sizeof(msg), "%.64s: expected one "
				    "of the limit names with an integer 0.."
				    "10000000, or null for the default", key);
				portal_api_error(pr, 400, "Bad Request", msg);
				goto out;
			}
		}
		msg_init(&m, BE_API_LIMITS, 0);
		pr->be_type = BE_API_LIMITS;
	} else {
		const char *q = evhttp_uri_get_query(
		    evhttp_request_get_evhttp_uri(pr->req));
		static const struct {
			const char	*name;
			long long	 min, max, dflt;
			const char	*error;
		} params[3] = {
			{ "since", 1, 400LL * 86400, 7 * 86400,
			  "since: seconds, 1 to 400 days" },
			{ "offset", 0, 10000, 0, "offset: 0 to 10000" },
			{ "limit", 1, PORTAL_API_PAGE, PORTAL_API_PAGE,
			  "limit: 1 to 50" },
		};
		long long val[3];
		struct evkeyvalq qs;

		TAILQ_INIT(&qs);
		if (q != NULL && evhttp_parse_query_str(q, &qs) < 0) {
			portal_api_error(pr, 400, "Bad Request",
			    "bad query string");
			goto out;
		}
		for (size_t i = 0; i < 3; i++) {
			const char *s = evhttp_find_header(&qs,
			    params[i].name);
			char *end;

			val[i] = params[i].dflt;
			if (s == NULL)
				continue;
			val[i] = strtoll(s, &end, 10);
			if (*s == '\0' || *end != '\0' ||
			    val[i] < params[i].min || val[i] > params[i].max) {
				evhttp_clear_headers(&qs);
				portal_api_error(pr, 400, "Bad Request",
				    params[i].error);
				goto out;
			}
		}
		evhttp_clear_headers(&qs);
		msg_init(&m, BE_API_HISTORY, 0);
		pr->be_type = BE_API_HISTORY;
		msg_add_str(&m, pr->client);
		msg_add_str(&m, auth + 7);
		msg_add_str(&m, address);
		msg_add_i64(&m, val[0]);
		msg_add_u32(&m, (uint32_t)val[1]);
		msg_add_u32(&m, (uint32_t)val[2]);
		portal_go(pr, &m, portal_api_done);
		goto out;
	}
	msg_add_str(&m, pr->client);
	msg_add_str(&m, auth + 7);
	msg_add_str(&m, address);
	if (pr->be_type == BE_API_OVERSEAS) {
		json_t *cc = json_object_get(body, "countries");

		msg_add_u32(&m, strcmp(json_string_value(json_object_get(body,
		    "action")), "off") != 0);
		if (cc != NULL)
			msg_add_str(&m, json_string_value(cc));
	}
	else if (pr->be_type == BE_API_LIMITS)
		for (size_t i = 0; i < portal_nitems(limit_keys); i++) {
			json_t *v = json_object_get(body, limit_keys[i]);

			msg_add_i64(&m, v == NULL ? -2 : json_is_null(v) ? -1 :
			    (int64_t)json_integer_value(v));
		}
	portal_go(pr, &m, portal_api_done);
out:
	json_decref(body);
	free(address);
}

/* ---- the admin pages (docs/portal.md) ---------------------------------- */

static void portal_not_found(struct portal_req *);

/* Head of an admin page: who, search, audit log, log out. */
static void
portal_admin_begin(struct portal_req *pr, struct str *b)
{
	const char *csrf = portal_val(pr, "csrf");

	portal_page_begin(pr, b);
	str_append(b, "<p>");
	portal_text_esc(b, pr, T_ADMIN);
	str_append(b, " &mdash; <strong id=\"admin\">");
	portal_html_escape(b, portal_val_str(pr, "admin"));
	str_append(b, "</strong> &middot; <a href=\"/admin/\">");
	portal_text_esc(b, pr, T_SEARCH);
	str_append(b, "</a> &middot; <a id=\"trace\" href=\"/admin/trace\">");
	portal_text_esc(b, pr, T_TRACE);
	str_append(b, "</a> &middot; <a id=\"audit\" href=\"/admin/audit\">");
	portal_text_esc(b, pr, T_AUDIT);
	str_append(b, "</a> &middot; <a id=\"risk\" href=\"/admin/risk\">");
	portal_text_esc(b, pr, T_RISK_TOP);
	str_append(b, "</a></p>\n");
	portal_form_begin(b, "/admin/logout", csrf, " class=\"inline\"");
	portal_button(pr, b, "logout", T_LOGOUT, -1, T_NOTHING);
	str_append(b, "</form>\n");
}

static void
portal_admin_msg(struct portal_req *pr, struct str *b)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(pr->req);
	const char *q = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq qs;
	const char *msg;

	TAILQ_INIT(&qs);
	if (q != NULL && evhttp_parse_query_str(q, &qs) == 0 &&
	    (msg = evhttp_find_header(&qs, "msg")) != NULL)
		for (size_t i = 0; i < portal_nitems(portal_msgs); i++)
			if (strcmp(portal_msgs[i].code, msg) == 0)
				portal_notice(b, portal_msgs[i].error ?
				    "error" : "msg", portal_t(pr,
				    portal_msgs[i].text), NULL);
	evhttp_clear_headers(&qs);
}

/* A query parameter of the request (caller frees), or NULL. */
static char *
portal_query_param(struct portal_req *pr, const char *name)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(pr->req);
	const char *q = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq qs;
	const char *v;
	char *r = NULL;

	TAILQ_INIT(&qs);
	if (q != NULL && evhttp_parse_query_str(q, &qs) == 0 &&
	    (v = evhttp_find_header(&qs, name)) != NULL)
		r = xstrdup(v);
	evhttp_clear_headers(&qs);
	return r;
}

/* Any answer but OK on an admin GET: the login page, or an error. */
static int
portal_admin_not_ok(struct portal_req *pr)
{
	if (pr->result == BE_PORTAL_OK)
		return 0;
	if (pr->result == BE_PORTAL_NOSESSION) {
		portal_cookie(pr, "asid", "", 0);
		portal_login_page(pr, 200, "OK", NULL, NULL, NULL);
	} else if (pr->message != NULL &&
	    strcmp(pr->message, "noaccount") == 0) {
		struct str b = STR_INIT;

		portal_admin_begin(pr, &b);
		portal_notice(&b, "error", portal_t(pr, T_MSG_NOACCOUNT),
		    NULL);
		portal_page_end(pr, &b, 404, "Not Found");
	} else
		portal_login_page(pr, 503, "Service Unavailable",
		    portal_t(pr, T_MSG_TEMPFAIL), NULL, NULL);
	return 1;
}

static void
portal_admin_search_done(struct portal_req *pr)
{
	struct str b = STR_INIT, base = STR_INIT;
	char *q;
	int n = 0;

	if (portal_admin_not_ok(pr))
		return;
	q = portal_query_param(pr, "q");
	portal_admin_begin(pr, &b);
	if (portal_val(pr, "queue") != NULL) {
		static const enum portal_text top_cols[] = { T_ACCOUNT,
		    T_MESSAGES, T_RECIPIENTS };
		static const enum portal_text ref_cols[] = { T_WHAT,
		    T_COUNTRY, T_COUNT };

		portal_heading(pr, &b, 2, T_DASHBOARD);
		str_append(&b, "<p>");
		portal_text_esc(&b, pr, T_QUEUE);
		str_printf(&b, "<strong id=\"queue\">%lld</strong></p>\n",
		    portal_val_num(pr, "queue"));
		portal_heading(pr, &b, 3, T_TOP);
		portal_table_head(pr, &b, "top", top_cols,
		    portal_nitems(top_cols));
		for (uint32_t i = 0; i < pr->ntops; i++) {
			str_append(&b, "<tr>");
			portal_td(&b, pr->tops[i].account);
			str_printf(&b, "<td>%lld</td><td>%lld</td></tr>\n",
			    (long long)pr->tops[i].msgs,
			    (long long)pr->tops[i].rcpts);
		}
		portal_table_end(pr, &b, (int)pr->ntops);
		portal_heading(pr, &b, 3, T_REFUSED);
		portal_table_head(pr, &b, "refused", ref_cols,
		    portal_nitems(ref_cols));
		for (uint32_t i = 0; i < pr->nrefused; i++) {
			str_append(&b, "<tr>");
			portal_td_type(pr, &b, pr->refused[i].type);
			portal_td(&b, pr->refused[i].country);
			str_printf(&b, "<td>%lld</td></tr>\n",
			    (long long)pr->refused[i].count);
		}
		portal_table_end(pr, &b, (int)pr->nrefused);
	}
	portal_heading(pr, &b, 2, T_SEARCH);
	str_append(&b, "<form method=\"get\" action=\"/admin/\">\n"
	    "<input id=\"q\" name=\"q\" type=\"search\" size=\"40\" "
	    "placeholder=\"");
	portal_text_esc(&b, pr, T_SEARCH_HINT);
	str_append(&b, "\" value=\"");
	portal_html_escape(&b, q != NULL ? q : "");
	str_append(&b, "\">\n");
	portal_button(pr, &b, "search", T_SEARCH, -1, T_NOTHING);
	str_append(&b, "</form>\n<table id=\"results\">\n<tr><th>");
	portal_text_esc(&b, pr, T_ACCOUNT);
	str_append(&b, "</th><th>");
	portal_text_esc(&b, pr, T_STATUS);
	str_append(&b, "</th></tr>\n");
	for (uint32_t i = 0; i < pr->naccts; i++) {
		const char *addr = pr->accts[i].address;
		struct str href = STR_INIT;

		portal_uri_arg(&href, "/admin/account?a=", addr);
		str_append(&b, "<tr><td><a href=\"");
		portal_html_escape(&b, str_c(&href));
		str_append(&b, "\">");
		portal_html_escape(&b, addr);
		str_append(&b, "</a></td><td>");
		portal_text_esc(&b, pr, pr->accts[i].suspended == 1 ?
		    T_SUSPENDED : T_ACTIVE);
		str_append(&b, "</td></tr>\n");
		str_deinit(&href);
		n++;
	}
	portal_table_end(pr, &b, n);
	portal_uri_arg(&base, "/admin/?q=", q != NULL ? q : "");
	portal_more_link(pr, &b, str_c(&base), pr->more_accts);
	str_deinit(&base);
	free(q);
	portal_page_end(pr, &b, 200, "OK");
}

/* A POST form of the account page: hidden account and do=ACTION. */
static void
portal_admin_form(struct portal_req *pr, struct str *b, const char *account,
    const char *action)
{
	portal_form_begin(b, "/admin/account", portal_val(pr, "csrf"), "");
	str_append(b, "<input type=\"hidden\" name=\"a\" value=\"");
	portal_html_escape(b, account);
	str_printf(b, "\">\n<input type=\"hidden\" name=\"do\" "
	    "value=\"%s\">\n", action);
}

/* One button form on the account: do=what (and the message's id). */
static void
portal_admin_button(struct portal_req *pr, struct str *b, const char *account,
    const char *what, const char *id, const char *button, enum portal_text t)
{
	portal_admin_form(pr, b, account, what);
	if (id != NULL)
		portal_esc_in(b, "<input type=\"hidden\" name=\"id\" value=\"",
		    id, "\">\n");
	portal_button(pr, b, button, t, -1, T_NOTHING);
	str_append(b, "</form>\n");
}

/* issue 17: the score, the response and its undo, the warning, and the
 * held mail with release and delete. */
static void
portal_admin_risk(struct portal_req *pr, struct str *b, const char *account)
{
	static const enum portal_text cols[] = { T_TIME, T_QUEUE_ID,
	    T_SENDER, T_RCPTS, T_SIZE, T_HEADERS, T_HELD_BY, T_WHAT };
	const char *risk = portal_val_str(pr, "risk");
	const char *reason = portal_val(pr, "risk_reason");
	const char *warned = portal_val(pr, "warned");
	long long score10 = portal_val_num(pr, "score10");
	int exempt = portal_val_num(pr, "exempt") == 1;

	portal_heading(pr, b, 2, T_RISK);
	str_append(b, "<p>");
	portal_text_esc(b, pr, T_RISK_SCORE);
	str_printf(b, "<strong id=\"score\">%lld.%lld</strong></p>\n<p>",
	    score10 / 10, score10 % 10);
	portal_text_esc(b, pr, T_RISK_RESPONSE);
	str_printf(b, "<strong id=\"response\" data-level=\"%s\">",
	    strcmp(risk, "notify") == 0 || strcmp(risk, "hold") == 0 ||
	    strcmp(risk, "suspend") == 0 ? risk : "none");
	portal_text_esc(b, pr, portal_level_text(risk));
	str_append(b, "</strong>");
	if (strcmp(risk, "none") != 0)
		portal_text_esc(b, pr, portal_val_num(pr, "risk_auto") == 1 ?
		    T_RISK_AUTO : T_RISK_DESK);
	if (reason != NULL)
		portal_esc_in(b, " &mdash; <span id=\"risk-reason\">", reason,
		    "</span>");
	str_append(b, "</p>\n");
	if (exempt) {
		str_append(b, "<p id=\"exempt\">");
		portal_text_esc(b, pr, T_RISK_EXEMPT);
		str_append(b, "</p>\n");
	}
	if (warned != NULL) {
		str_append(b, "<p>");
		portal_text_esc(b, pr, T_WARNED);
		portal_span(b, "warned", warned);
		portal_esc_in(b, " &mdash; ", portal_val_str(pr, "warning"),
		    "</p>\n");
	}
	if (strcmp(risk, "none") != 0)
		portal_admin_button(pr, b, account, "risk_clear", NULL,
		    "risk-clear", T_RISK_CLEAR);
	if (strcmp(risk, "hold") != 0 && strcmp(risk, "suspend") != 0)
		portal_admin_button(pr, b, account, "risk_hold", NULL,
		    "risk-hold", T_RISK_HOLD);
	portal_admin_button(pr, b, account, exempt ? "exempt_off" :
	    "exempt_on", NULL, exempt ? "exempt-off" : "exempt-on",
	    exempt ? T_RISK_EXEMPT_OFF : T_RISK_EXEMPT_ON);

	portal_heading(pr, b, 3, T_WARN);
	portal_admin_form(pr, b, account, "warn");
	str_append(b, "<p>");
	portal_text_esc(b, pr, T_WARN_HINT);
	str_append(b, "</p>\n<textarea id=\"warn-report\" name=\"report\" "
	    "rows=\"6\" cols=\"70\"></textarea>\n<div>");
	portal_button(pr, b, "warn", T_WARN, -1, T_NOTHING);
	str_append(b, "</div></form>\n");

	portal_heading(pr, b, 3, T_HELD);
	str_printf(b, "<p><strong id=\"held-count\">%lld</strong></p>\n",
	    portal_val_num(pr, "held"));
	portal_table_head(pr, b, "held", cols, portal_nitems(cols));
	for (uint32_t i = 0; i < pr->nheld; i++) {
		const struct portal_held *h = &pr->held[i];

		portal_esc_in(b, "<tr class=\"held\" data-id=\"", h->queue_id,
		    "\">");
		portal_td(b, h->when);
		portal_td(b, h->queue_id);
		portal_td(b, h->sender);
		str_printf(b, "<td>%u: ", h->nrcpts);
		portal_html_escape(b, h->rcpts != NULL ? h->rcpts : "");
		str_printf(b, "</td><td>%lld</td>", (long long)h->size);
		portal_esc_in(b, "<td><pre>", h->headers, "</pre></td>");
		str_append(b, "<td>");
		portal_html_escape(b, h->by != NULL ? h->by : "");
		portal_esc_in(b, ": ", h->reason, "</td><td>");
		portal_admin_button(pr, b, account, "release", h->queue_id,
		    "release", T_RELEASE);
		portal_admin_button(pr, b, account, "delete", h->queue_id,
		    "delete", T_DELETE);
		str_append(b, "</td></tr>\n");
	}
	portal_table_end(pr, b, (int)pr->nheld);
	if (portal_val_num(pr, "held") > 0) {
		portal_admin_button(pr, b, account, "release", NULL,
		    "release-all", T_RELEASE_ALL);
		portal_admin_button(pr, b, account, "delete", NULL,
		    "delete-all", T_DELETE_ALL);
	}
}

/* /admin/risk: the accounts most at risk now. */
static void
portal_admin_risk_done(struct portal_req *pr)
{
	static const enum portal_text cols[] = { T_ACCOUNT, T_RISK_SCORE,
	    T_RISK_RESPONSE };
	struct str b = STR_INIT, link = STR_INIT;

	if (portal_admin_not_ok(pr))
		return;
	portal_admin_begin(pr, &b);
	portal_heading(pr, &b, 2, T_RISK_TOP);
	portal_table_head(pr, &b, "risk-top", cols, portal_nitems(cols));
	for (uint32_t i = 0; i < pr->nrisks; i++) {
		const struct portal_risk *r = &pr->risks[i];
		static const char *const lv[] = { "none", "notify", "hold",
		    "suspend" };

		str_clear(&link);
		portal_uri_arg(&link, "/admin/account?a=", r->account);
		portal_esc_in(&b, "<tr><td><a href=\"", str_c(&link), "\">");
		portal_html_escape(&b, r->account);
		str_printf(&b, "</a></td><td>%lld.%lld</td><td>",
		    (long long)(r->score10 / 10), (long long)(r->score10 % 10));
		portal_text_esc(&b, pr, portal_level_text(lv[r->response]));
		str_append(&b, "</td></tr>\n");
	}
	portal_table_end(pr, &b, (int)pr->nrisks);
	portal_more_link(pr, &b, "/admin/risk", pr->more_risks);
	str_deinit(&link);
	portal_page_end(pr, &b, 200, "OK");
}

static void
portal_admin_account_done(struct portal_req *pr)
{
	static const struct {
		const char	*name;
		const char	*have;
		const char	*limit;
		enum portal_text label;
	} limits[] = {
		{ "messages_per_day", "msgs", "msgs_limit", T_MESSAGES },
		{ "recipients_per_day", "rcpts", "rcpts_limit", T_RECIPIENTS },
		{ "recipients_per_hour", "rcpts_hour", "rcpts_hour_limit",
		  T_RECIPIENTS_HOUR },
		{ "overseas_recipients_per_day", "rcpts_abroad",
		  "rcpts_abroad_limit", T_RECIPIENTS_ABROAD },
	};
	const char *account, *reason, *until;
	struct str b = STR_INIT, base = STR_INIT;
	int suspended;

	if (portal_admin_not_ok(pr))
		return;
	account = portal_val(pr, "account");
	account = account != NULL ? account : "";
	reason = portal_val(pr, "reason");
	until = portal_val(pr, "overseas_until");
	suspended = portal_val_num(pr, "suspended") == 1;
	portal_admin_begin(pr, &b);
	portal_admin_msg(pr, &b);
	str_append(&b, "<h2 id=\"account\">");
	portal_html_escape(&b, account);
	str_append(&b, "</h2>\n<p id=\"status\" class=\"");
	str_append(&b, suspended ? "off\">" : "on\">");
	portal_text_esc(&b, pr, suspended ? T_SUSPENDED : T_ACTIVE);
	if (suspended && reason != NULL) {
		str_append(&b, " (");
		portal_text_esc(&b, pr, T_REASON);
		str_append(&b, ": ");
		portal_span(&b, "reason", reason);
		str_append(&b, ")");
	}
	str_append(&b, "</p>\n");
	portal_aliases(pr, &b);
	if (suspended) {
		portal_admin_form(pr, &b, account, "resume");
		portal_button(pr, &b, "resume", T_RESUME, -1, T_NOTHING);
	} else {
		portal_admin_form(pr, &b, account, "suspend");
		str_append(&b, "<label for=\"reason-input\">");
		portal_text_esc(&b, pr, T_REASON);
		str_append(&b, "</label>\n<input id=\"reason-input\" "
		    "name=\"reason\" size=\"50\" maxlength=\"200\" required>\n");
		portal_button(pr, &b, "suspend", T_SUSPEND, -1, T_NOTHING);
	}
	str_append(&b, "</form>\n");
	portal_heading(pr, &b, 2, T_OVERSEAS);
	if (until != NULL) {
		const char *cc = portal_val(pr, "overseas_countries");

		str_append(&b, "<p class=\"on\" id=\"overseas\">");
		portal_text_esc(&b, pr, T_ON_UNTIL_1);
		portal_html_escape(&b, until);
		portal_text_esc(&b, pr, T_ON_UNTIL_2);
		str_append(&b, "<br>");
		portal_text_esc(&b, pr, T_COUNTRIES);
		portal_span(&b, "countries", cc != NULL && *cc != '\0' ? cc :
		    portal_t(pr, T_COUNTRIES_ALL));
	} else {
		str_append(&b, "<p class=\"off\" id=\"overseas\">");
		portal_text_esc(&b, pr, T_OFF);
	}
	str_append(&b, "</p>\n");
	portal_admin_form(pr, &b, account, "overseas_on");
	portal_button(pr, &b, "grant", T_GRANT, -1, T_NOTHING);
	str_append(&b, "</form>\n");
	if (until != NULL) {
		portal_admin_form(pr, &b, account, "overseas_off");
		portal_button(pr, &b, "revoke", T_REVOKE, -1, T_NOTHING);
		str_append(&b, "</form>\n");
	}

	portal_admin_risk(pr, &b, account);

	portal_heading(pr, &b, 2, T_LIMITS);
	str_append(&b, "<p>");
	portal_text_esc(&b, pr, T_LIMITS_HINT);
	str_append(&b, "</p>\n");
	portal_admin_form(pr, &b, account, "limits");
	str_append(&b, "<table id=\"limits\">\n");
	for (size_t i = 0; i < portal_nitems(limits); i++) {
		long long lim = portal_val_num(pr, limits[i].limit);

		str_append(&b, "<tr><th>");
		portal_text_esc(&b, pr, limits[i].label);
		str_printf(&b, "</th><td>%lld / ",
		    portal_val_num(pr, limits[i].have));
		/* per hour, 0 is "no limit" (limit_recipients_per_hour) */
		if (lim == 0 && strcmp(limits[i].name,
		    "recipients_per_hour") == 0)
			portal_text_esc(&b, pr, T_NO_LIMIT);
		else
			str_printf(&b, "%lld", lim);
		str_printf(&b, "</td><td><input name=\"%s\" id=\"limit-%s\" "
		    "size=\"8\"></td></tr>\n", limits[i].name, limits[i].name);
	}
	str_append(&b, "</table>\n");
	portal_button(pr, &b, "set-limits", T_SET_LIMITS, -1, T_NOTHING);
	str_append(&b, "</form>\n<p>");
	portal_text_esc(&b, pr, T_RESET);
	portal_html_escape(&b, portal_val_str(pr, "reset"));
	str_append(&b, "</p>\n");
	portal_uri_arg(&base, "/admin/account?a=", account);
	portal_history(pr, &b, str_c(&base));
	str_deinit(&base);
	portal_page_end(pr, &b, 200, "OK");
}

static void
portal_admin_audit_done(struct portal_req *pr)
{
	static const enum portal_text cols[] = { T_TIME, T_ACCOUNT, T_TYPE,
	    T_IP, T_DETAIL, T_WHAT };
	struct str b = STR_INIT;
	int rows;

	if (portal_admin_not_ok(pr))
		return;
	portal_admin_begin(pr, &b);
	portal_heading(pr, &b, 2, T_AUDIT);
	portal_table_head(pr, &b, "audit-log", cols, portal_nitems(cols));
	rows = portal_draw_events(pr, &b, 1);
	portal_table_end(pr, &b, rows);
	portal_more_link(pr, &b, "/admin/audit", pr->more_evs);
	portal_page_end(pr, &b, 200, "OK");
}

/* The trace form; with results when pr holds an answer ("row"s). */
static void
portal_admin_trace_page(struct portal_req *pr, int with_results)
{
	static const enum portal_text cols[] = { T_TIME, T_ACCOUNT, T_IP,
	    T_COUNTRY, T_RCPTS, T_ABROAD, T_QUEUE_ID, T_MESSAGE_ID };
	struct str b = STR_INIT;
	int rows;

	portal_admin_begin(pr, &b);
	portal_heading(pr, &b, 2, T_TRACE);
	if (with_results) {
		str_append(&b, "<p id=\"keys\">");
		portal_text_esc(&b, pr, T_TRACE_KEYS);
		portal_html_escape(&b, pr->target != NULL ? pr->target : "");
		str_append(&b, "</p>\n");
		portal_table_head(pr, &b, "trace-results", cols,
		    portal_nitems(cols));
		rows = portal_draw_subs(pr, &b, 1);
		str_append(&b, "</table>\n");
		if (rows == 0)
			portal_notice(&b, "error", portal_t(pr, T_TRACE_NONE),
			    NULL);
	}
	str_append(&b, "<p>");
	portal_text_esc(&b, pr, T_TRACE_HINT);
	str_append(&b, "</p>\n");
	portal_form_begin(&b, "/admin/trace", portal_val(pr, "csrf"), "");
	str_append(&b, "<textarea id=\"report\" name=\"report\" rows=\"16\" "
	    "cols=\"80\" required></textarea>\n<div>");
	portal_button(pr, &b, "trace-submit", T_TRACE, -1, T_NOTHING);
	str_append(&b, "</div>\n</form>\n");
	portal_page_end(pr, &b, 200, "OK");
}

static void
portal_admin_trace_form_done(struct portal_req *pr)
{
	if (portal_admin_not_ok(pr))
		return;
	portal_admin_trace_page(pr, 0);
}

static void
portal_admin_trace_done(struct portal_req *pr)
{
	if (pr->result == BE_PORTAL_NOSESSION || pr->result == BE_PORTAL_CSRF) {
		portal_change_done_msg(pr, "");
		return;
	}
	if (portal_admin_not_ok(pr))
		return;
	portal_admin_trace_page(pr, 1);
}

/* After an admin's POST on an account: back to its page. */
static void
portal_admin_change_done(struct portal_req *pr)
{
	const char *account = pr->target;
	struct str loc = STR_INIT;

	if (pr->result == BE_PORTAL_NOSESSION || pr->result == BE_PORTAL_CSRF) {
		portal_change_done_msg(pr, "");
		return;
	}
	portal_uri_arg(&loc, "/admin/account?a=", account != NULL ? account :
	    "");
	str_printf(&loc, "&msg=%s", pr->result == BE_PORTAL_OK ?
	    (pr->be_type == BE_ADMIN_WARN ? "warned" : "done") :
	    pr->result == BE_PORTAL_REFUSED && pr->message != NULL &&
	    (strcmp(pr->message, "badreason") == 0 ||
	    strcmp(pr->message, "badlimit") == 0 ||
	    strcmp(pr->message, "noaccount") == 0) ? pr->message : "tempfail");
	portal_redirect(pr, str_c(&loc));
	str_deinit(&loc);
}

/* The admin pages read with GET: the request each sends, with the query
 * argument it takes (or a fixed one), and the rows on a page (0: no
 * ?page=). The trace form needs the session's CSRF token: any admin
 * read gives it; no address contains a space. */
static const struct portal_admin_page {
	const char	*path;
	uint32_t	 type;
	const char	*param;
	const char	*fixed;
	uint32_t	 per_page;
	portal_done_fn	*done;
} portal_admin_pages[] = {
	{ "/admin/", BE_ADMIN_SEARCH, "q", NULL, PORTAL_PAGE_MAX,
	  portal_admin_search_done },
	{ "/admin", BE_ADMIN_SEARCH, "q", NULL, PORTAL_PAGE_MAX,
	  portal_admin_search_done },
	{ "/admin/account", BE_ADMIN_ACCOUNT, "a", NULL, PORTAL_STATUS_PAGE,
	  portal_admin_account_done },
	{ "/admin/audit", BE_ADMIN_AUDIT, NULL, NULL, PORTAL_AUDIT_PAGE,
	  portal_admin_audit_done },
	{ "/admin/risk", BE_ADMIN_RISK_TOP, NULL, NULL, PORTAL_RISK_PAGE,
	  portal_admin_risk_done },
	{ "/admin/trace", BE_ADMIN_SEARCH, NULL, " ", 0,
	  portal_admin_trace_form_done },
};

static void
portal_admin_get(struct portal_req *pr, const char *path)
{
	const struct portal_admin_page *pg = NULL;
	struct msg m;
	char *arg = NULL;

	for (size_t i = 0; i < portal_nitems(portal_admin_pages); i++)
		if (strcmp(path, portal_admin_pages[i].path) == 0)
			pg = &portal_admin_pages[i];
	if (pg == NULL) {
		portal_not_found(pr);
		return;
	}
	if (!pr->have_sid) {
		portal_login_page(pr, 200, "OK", NULL, NULL, NULL);
		return;
	}
	if (pg->per_page > 0 && portal_page_param(pr) < 0)
		return;
	if (pg->param != NULL) {
		arg = portal_query_param(pr, pg->param);
		if (arg != NULL && strlen(arg) > PORTAL_QUERY_MAX) {
			free(arg);
			portal_too_long(pr);
			return;
		}
	}
	portal_req_session(pr, &m, pg->type, NULL);
	if (pg->param != NULL)
		msg_add_str(&m, arg != NULL ? arg : "");
	else if (pg->fixed != NULL)
		msg_add_str(&m, pg->fixed);
	msg_add_u32(&m, pr->page * pg->per_page);
	portal_go(pr, &m, pg->done);
	free(arg);
}

/* A limit of the admin form: "" unchanged (-2), "default" (-1), or a
 * whole number of at most 8 digits. -1 if malformed. */
static int
portal_limit_field(const char *v, int64_t *v_r)
{
	char *end;

	if (v == NULL || *v == '\0') {
		*v_r = -2;
		return 0;
	}
	if (strcmp(v, "default") == 0) {
		*v_r = -1;
		return 0;
	}
	if (*v < '0' || *v > '9' || strlen(v) > 8)
		return -1;
	*v_r = strtoll(v, &end, 10);
	return *end == '\0' ? 0 : -1;
}

/* The do= of an admin's POST on an account, and the request it sends. */
static const struct {
	const char	*what;
	uint32_t	 type;
} portal_admin_dos[] = {
	{ "suspend", BE_ADMIN_SUSPEND },
	{ "resume", BE_ADMIN_RESUME },
	{ "overseas_on", BE_ADMIN_OVERSEAS_ON },
	{ "overseas_off", BE_ADMIN_OVERSEAS_OFF },
	{ "limits", BE_ADMIN_LIMITS },
	/* issue 17 */
	{ "risk_clear", BE_ADMIN_RISK_CLEAR },
	{ "risk_hold", BE_ADMIN_RISK_HOLD },
	{ "exempt_on", BE_ADMIN_RISK_EXEMPT_ON },
	{ "exempt_off", BE_ADMIN_RISK_EXEMPT_OFF },
	{ "warn", BE_ADMIN_WARN },
	{ "release", BE_ADMIN_HELD_RELEASE },
	{ "delete", BE_ADMIN_HELD_DELETE },
};

/* A change refused before it is asked: back to the account's page. */
static void
portal_admin_refuse(struct portal_req *pr, const char *message)
{
	pr->result = BE_PORTAL_REFUSED;
	pr->message = xstrdup(message);
	portal_admin_change_done(pr);
}

/* The warning's report, parsed here (outside input stays on the session
 * side): only its identifiers go to the back side, as for a trace. */
static void
portal_warn_keys(struct msg *m, const char *report)
{
	struct trace_keys k;
	uint32_t nq = 0, nm;

	memset(&k, 0, sizeof(k));
	if (report != NULL)
		trace_extract(report, strlen(report), &k);
	for (size_t i = 0; i < k.nqueue_ids; i++)
		if (strlen(k.queue_ids[i]) <= PORTAL_QUEUE_ID_MAX &&
		    nq < PORTAL_TRACE_KEYS)
			nq++;
	msg_add_u32(m, nq);
	for (size_t i = 0, n = 0; i < k.nqueue_ids && n < nq; i++) {
		if (strlen(k.queue_ids[i]) > PORTAL_QUEUE_ID_MAX)
			continue;
		msg_add_str(m, k.queue_ids[i]);
		n++;
	}
	nm = k.nmsgids < PORTAL_TRACE_KEYS ? (uint32_t)k.nmsgids :
	    PORTAL_TRACE_KEYS;
	msg_add_u32(m, nm);
	for (size_t i = 0; i < nm; i++)
		portal_rows_add_str(m, k.msgids[i], PORTAL_MSGID_MAX);
	trace_keys_free(&k);
}

static void
portal_admin_post(struct portal_req *pr, const char *path,
    struct evkeyvalq *f)
{
	static const char *const limit_keys[] = { "messages_per_day",
	    "recipients_per_day", "recipients_per_hour",
	    "recipients_per_message", "overseas_recipients_per_day" };
	const char *csrf = evhttp_find_header(f, "csrf");
	struct msg m;

	if (strcmp(path, "/admin/login") == 0) {
		const char *user = evhttp_find_header(f, "user");
		const char *pass = evhttp_find_header(f, "password");
		const char *hdr = evhttp_find_header(
		    evhttp_request_get_input_headers(pr->req), "Cookie");
		char pre[PORTAL_TOKEN_LEN + 1];

		if (csrf == NULL || strlen(csrf) != PORTAL_TOKEN_LEN ||
		    portal_cookie_get(hdr, "pre", pre, sizeof(pre)) != 0 ||
		    strcmp(pre, csrf) != 0)
			portal_login_page(pr, 403, "Forbidden",
			    portal_t(pr, T_MSG_CSRF), NULL, NULL);
		else if (user == NULL || pass == NULL ||
		    strlen(user) > PORTAL_USER_MAX || !str_login_name_ok(user))
			portal_login_page(pr, 400, "Bad Request",
			    portal_t(pr, user != NULL && pass != NULL ?
			    T_BAD_NAME : T_MSG_FAIL), NULL, NULL);
		else {
			pr->have_sid = 0;
			portal_ask_login(pr, BE_ADMIN_LOGIN, user, pass,
			    portal_login_done);
		}
	} else if (strcmp(path, "/admin/logout") == 0)
		portal_ask(pr, BE_ADMIN_LOGOUT, csrf, portal_logout_done);
	else if (strcmp(path, "/admin/trace") == 0) {
		/* The report is outside input: parsed here, on the session
		 * side; the back side gets only the identifiers, at most
		 * PORTAL_TRACE_KEYS of each, cut as the store keeps them. */
		const char *report = evhttp_find_header(f, "report");
		struct trace_keys k;
		struct str shown = STR_INIT;
		uint32_t nq = 0, nm = 0;

		memset(&k, 0, sizeof(k));
		if (report != NULL)
			trace_extract(report, strlen(report), &k);
		portal_req_session(pr, &m, BE_ADMIN_TRACE, csrf);
		for (size_t i = 0; i < k.nqueue_ids; i++)
			if (strlen(k.queue_ids[i]) <= PORTAL_QUEUE_ID_MAX &&
			    nq < PORTAL_TRACE_KEYS)
				nq++;
		msg_add_u32(&m, nq);
		for (size_t i = 0, n = 0; i < k.nqueue_ids && n < nq; i++) {
			if (strlen(k.queue_ids[i]) > PORTAL_QUEUE_ID_MAX)
				continue;
			msg_add_str(&m, k.queue_ids[i]);
			str_printf(&shown, "%s%s", shown.len > 0 ? " " : "",
			    k.queue_ids[i]);
			n++;
		}
		nm = k.nmsgids < PORTAL_TRACE_KEYS ? (uint32_t)k.nmsgids :
		    PORTAL_TRACE_KEYS;
		msg_add_u32(&m, nm);
		for (size_t i = 0; i < nm; i++) {
			portal_rows_add_str(&m, k.msgids[i], PORTAL_MSGID_MAX);
			str_printf(&shown, "%s%.255s", shown.len > 0 ? " " : "",
			    k.msgids[i]);
		}
		/* Received tokens (received_client = token) */
		uint32_t nt = k.ntokens < PORTAL_TRACE_TOKENS ?
		    (uint32_t)k.ntokens : PORTAL_TRACE_TOKENS;

		msg_add_u32(&m, nt);
		for (size_t i = 0; i < nt; i++) {
			portal_rows_add_str(&m, k.tokens[i],
			    PORTAL_TOKEN_TEXT_MAX);
			str_printf(&shown, "%s%.24s...", shown.len > 0 ? " " :
			    "", k.tokens[i]);
		}
		trace_keys_free(&k);
		pr->target = str_steal(&shown);
		if (pr->target == NULL)
			pr->target = xstrdup("");
		portal_go(pr, &m, portal_admin_trace_done);
	}
	else if (strcmp(path, "/admin/account") == 0) {
		const char *account = evhttp_find_header(f, "a");
		const char *what = evhttp_find_header(f, "do");
		const char *reason = evhttp_find_header(f, "reason");
		const char *held_id = evhttp_find_header(f, "id");
		int64_t lim[5];
		uint32_t type = 0;

		if (account == NULL || what == NULL ||
		    strlen(account) > PORTAL_QUERY_MAX) {
			portal_bad_request(pr, "bad form\n");
			return;
		}
		for (size_t i = 0; i < portal_nitems(portal_admin_dos); i++)
			if (strcmp(what, portal_admin_dos[i].what) == 0)
				type = portal_admin_dos[i].type;
		if (type == 0) {
			portal_bad_request(pr, "bad form\n");
			return;
		}
		/* the target, to come back to its page */
		pr->target = xstrdup(account);
		if (type == BE_ADMIN_SUSPEND && (reason == NULL ||
		    strlen(reason) > 200)) {
			portal_admin_refuse(pr, "badreason");
			return;
		}
		if (type == BE_ADMIN_LIMITS)
			for (size_t i = 0; i < portal_nitems(limit_keys); i++)
				if (portal_limit_field(evhttp_find_header(f,
				    limit_keys[i]), &lim[i]) < 0) {
					portal_admin_refuse(pr, "badlimit");
					return;
				}
		if ((type == BE_ADMIN_HELD_RELEASE ||
		    type == BE_ADMIN_HELD_DELETE) && held_id != NULL &&
		    *held_id != '\0' && !queue_id_valid(held_id)) {
			portal_bad_request(pr, "bad form\n");
			return;
		}
		portal_req_session(pr, &m, type, csrf);
		msg_add_str(&m, account);
		if (type == BE_ADMIN_WARN)
			portal_warn_keys(&m, evhttp_find_header(f, "report"));
		else if (type == BE_ADMIN_HELD_RELEASE ||
		    type == BE_ADMIN_HELD_DELETE)
			msg_add_str(&m, held_id != NULL && *held_id != '\0' ?
			    held_id : NULL);
		if (type == BE_ADMIN_SUSPEND)
			msg_add_str(&m, reason);
		else if (type == BE_ADMIN_LIMITS)
			for (size_t i = 0; i < portal_nitems(limit_keys); i++)
				msg_add_i64(&m, lim[i]);
		portal_go(pr, &m, portal_admin_change_done);
	} else
		portal_not_found(pr);
}

/* ---- requests -------------------------------------------------------- */

static void
portal_not_found(struct portal_req *pr)
{
	struct str b = STR_INIT;

	portal_page_begin(pr, &b);
	portal_notice(&b, "error", portal_t(pr, T_NOT_FOUND), NULL);
	portal_page_end(pr, &b, 404, "Not Found");
}

/* The urlencoded body of a POST (RFC 1866 8.2.1) into q. */
static int
portal_form(struct portal_req *pr, struct evkeyvalq *q)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(pr->req);
	size_t len = evbuffer_get_length(in);
	char *body = xmalloc(len + 1);
	int r;

	evbuffer_copyout(in, body, len);
	body[len] = '\0';
	TAILQ_INIT(q);
	r = memchr(body, '\0', len) != NULL ? -1 :
	    evhttp_parse_query_str(body, q);
	free(body);
	return r;
}

static void
portal_on_post(struct portal_req *pr, const char *path)
{
	struct evkeyvalq f;
	const char *csrf;

	if (portal_form(pr, &f) < 0) {
		evhttp_clear_headers(&f);
		portal_bad_request(pr, "bad form\n");
		return;
	}
	/* Every field is bounded before it becomes a request (only the
	 * trace form's pasted report is longer: it is parsed here). */
	for (struct evkeyval *kv = TAILQ_FIRST(&f); kv != NULL;
	    kv = TAILQ_NEXT(kv, next))
		if (strlen(kv->value) > PORTAL_FIELD_MAX &&
		    !(pr->admin && strcmp(kv->key, "report") == 0)) {
			evhttp_clear_headers(&f);
			portal_too_long(pr);
			return;
		}
	csrf = evhttp_find_header(&f, "csrf");
	if (pr->admin) {
		portal_admin_post(pr, path, &f);
		evhttp_clear_headers(&f);
		return;
	}
	if (strcmp(path, "/login") == 0) {
		const char *user = evhttp_find_header(&f, "user");
		const char *pass = evhttp_find_header(&f, "password");
		const char *hdr = evhttp_find_header(
		    evhttp_request_get_input_headers(pr->req), "Cookie");
		char pre[PORTAL_TOKEN_LEN + 1];

		if (csrf == NULL || strlen(csrf) != PORTAL_TOKEN_LEN ||
		    portal_cookie_get(hdr, "pre", pre, sizeof(pre)) != 0 ||
		    strcmp(pre, csrf) != 0) {
			portal_login_page(pr, 403, "Forbidden",
			    portal_t(pr, T_MSG_CSRF), NULL, NULL);
		} else if (user == NULL || pass == NULL)
			portal_login_page(pr, 400, "Bad Request",
			    portal_t(pr, T_MSG_FAIL), NULL, NULL);
		else if (strlen(user) > PORTAL_USER_MAX ||
		    !str_login_name_ok(user))
			/* a control character (TAB, LF...) or a name no
			 * address has: refused here, never logged */
			portal_login_page(pr, 400, "Bad Request",
			    portal_t(pr, T_BAD_NAME), NULL, NULL);
		else {
			pr->have_sid = 0;
			portal_ask_login(pr, BE_PORTAL_LOGIN, user, pass,
			    portal_login_done);
		}
	} else if (strcmp(path, "/overseas") == 0) {
		const char *action = evhttp_find_header(&f, "action");
		int on = action != NULL && strcmp(action, "on") == 0;

		const char *countries = evhttp_find_header(&f, "countries");
		struct msg m;

		if (action == NULL || (!on && strcmp(action, "off") != 0))
			portal_bad_request(pr, "bad action\n");
		else if (countries != NULL &&
		    strlen(countries) > PORTAL_COUNTRIES_MAX)
			portal_redirect(pr, "/?msg=badcountries");
		else if (on) {
			/* the countries it covers (issue 17 item 5) */
			portal_req_session(pr, &m, BE_PORTAL_OVERSEAS_ON, csrf);
			msg_add_str(&m, countries != NULL ? countries : "");
			portal_go(pr, &m, portal_overseas_done);
		} else
			portal_ask(pr, BE_PORTAL_OVERSEAS_OFF, csrf,
			    portal_overseas_done);
	} else if (strcmp(path, "/password") == 0) {
		const char *cur = evhttp_find_header(&f, "current");
		const char *new = evhttp_find_header(&f, "new");
		const char *new2 = evhttp_find_header(&f, "new2");
		struct msg m;

		if (cur == NULL || new == NULL || new2 == NULL ||
		    strcmp(new, new2) != 0)
			portal_redirect(pr, "/?msg=mismatch");
		else {
			portal_req_session(pr, &m, BE_PORTAL_PASSWORD, csrf);
			msg_add_str(&m, cur);
			msg_add_str(&m, new);
			portal_go(pr, &m, portal_password_done);
		}
	} else if (strcmp(path, "/apop") == 0) {
		const char *action = evhttp_find_header(&f, "action");
		const char *cur = evhttp_find_header(&f, "current");
		const char *apop = evhttp_find_header(&f, "apop");
		const char *apop2 = evhttp_find_header(&f, "apop2");
		struct msg m;
		int on = action != NULL && strcmp(action, "on") == 0;

		if (action == NULL || (!on && strcmp(action, "off") != 0))
			portal_bad_request(pr, "bad action\n");
		else if (on && (cur == NULL || apop == NULL || apop2 == NULL ||
		    strcmp(apop, apop2) != 0))
			portal_redirect(pr, "/?msg=mismatch");
		else {
			/* the message code after the redirect */
			pr->target = xstrdup(on ? "apop_on" : "apop_off");
			portal_req_session(pr, &m, on ? BE_PORTAL_APOP_ON :
			    BE_PORTAL_APOP_OFF, csrf);
			if (on) {
				msg_add_str(&m, cur);
				msg_add_str(&m, apop);
			}
			portal_go(pr, &m, portal_apop_done);
		}
	} else if (strcmp(path, "/own_from") == 0) {	/* issue 16 */
		const char *action = evhttp_find_header(&f, "action");
		int on = action != NULL && strcmp(action, "on") == 0;

		if (action == NULL || (!on && strcmp(action, "off") != 0))
			portal_bad_request(pr, "bad action\n");
		else
			portal_ask(pr, on ? BE_PORTAL_OWN_FROM_ON :
			    BE_PORTAL_OWN_FROM_OFF, csrf, on ?
			    portal_own_from_on_done : portal_own_from_off_done);
	} else if (strcmp(path, "/logout") == 0)
		portal_ask(pr, BE_PORTAL_LOGOUT, csrf, portal_logout_done);
	else
		portal_not_found(pr);
	evhttp_clear_headers(&f);
}

/*
 * A request whose framing readers could disagree on (RFC 9112 6.3: two
 * Content-Lengths, Content-Length with Transfer-Encoding, ...): evhttp
 * has framed it its own way (the first Content-Length, or chunked), so
 * what follows on the connection may be a request smuggled past a proxy.
 * Answer the status and close: nothing after it on this connection is
 * ever read (docs/portal.md "HTTP framing").
 */
static void
portal_refuse_framing(struct portal_req *pr, int code, const char *why)
{
	char body[128];
	const char *reason = code == 501 ? "Not Implemented" : code == 411 ?
	    "Length Required" : "Bad Request";
	int n = snprintf(body, sizeof(body), "%d %s: %s\n", code, reason, why);

	log_info("portal client=%s refused request status=%d reason=\"%s\"",
	    pr->client, code, why);
	evhttp_add_header(evhttp_request_get_output_headers(pr->req),
	    "Connection", "close");
	portal_send(pr, code, reason, "text/plain; charset=utf-8", body,
	    n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0);
}

/* ---- mail client setup (issue 19 item 5, portal_autoconfig.h) -------- */

/* The query parameter name of the request (NULL: none); copied into
 * buf, at most len - 1 octets (longer: NULL). */
static const char *
portal_query_copy(struct portal_req *pr, const char *name, char *buf,
    size_t len)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(pr->req);
	const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	const char *v, *ret = NULL;
	struct evkeyvalq q;

	TAILQ_INIT(&q);
	if (query != NULL && strlen(query) < 2048 &&
	    evhttp_parse_query_str(query, &q) == 0 &&
	    (v = evhttp_find_header(&q, name)) != NULL && strlen(v) < len) {
		xstrlcpy(buf, v, len);
		ret = buf;
	}
	evhttp_clear_headers(&q);
	return ret;
}

static void
portal_mobileconfig_done(struct portal_req *pr)
{
	const char *account = portal_val(pr, "account");
	unsigned char seed[32];
	struct str doc = STR_INIT;
	char type[8];
	const char *t;

	if (pr->result != BE_PORTAL_OK || account == NULL) {
		portal_status_done(pr);	/* the login page, or why not */
		return;
	}
	t = portal_query_copy(pr, "type", type, sizeof(type));
	arc4random_buf(seed, sizeof(seed));
	portal_autoconfig_mobileconfig(pr->p->loop->conf, account,
	    t != NULL && strcmp(t, "pop3") == 0, seed, &doc);
	evhttp_add_header(evhttp_request_get_output_headers(pr->req),
	    "Content-Disposition", "attachment; filename=\"mail.mobileconfig\"");
	portal_send(pr, 200, "OK", "application/x-apple-aspen-config",
	    str_c(&doc), doc.len);
	str_deinit(&doc);
}

/* 1 when path is one of the mail client documents (answered here). */
static int
portal_autoconfig_request(struct portal_req *pr, const char *path)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(pr->req);
	struct str doc = STR_INIT;

	if (strcmp(path, "/.well-known/autoconfig/mail/config-v1.1.xml") ==
	    0 || strcmp(path, "/mail/config-v1.1.xml") == 0) {
		char email[256];
		const char *e;

		if (cmd != EVHTTP_REQ_GET)
			return 0;
		e = portal_query_copy(pr, "emailaddress", email,
		    sizeof(email));
		portal_autoconfig_thunderbird(pr->p->loop->conf, e, &doc);
		portal_send(pr, 200, "OK", "application/xml; charset=utf-8",
		    str_c(&doc), doc.len);
	} else if (strcasecmp(path, "/autodiscover/autodiscover.xml") == 0) {
		struct evbuffer *in = evhttp_request_get_input_buffer(pr->req);
		size_t len = in != NULL ? evbuffer_get_length(in) : 0;

		if (cmd != EVHTTP_REQ_POST) {
			const char *m = "405 Method Not Allowed: POST the "
			    "autodiscover request\n";

			evhttp_add_header(evhttp_request_get_output_headers(
			    pr->req), "Allow", "POST");
			portal_send(pr, 405, "Method Not Allowed",
			    "text/plain; charset=utf-8", m, strlen(m));
			return 1;
		}
		if (len > PORTAL_AUTODISCOVER_MAX) {
			const char *m = "413 Payload Too Large\n";

			portal_send(pr, 413, "Payload Too Large",
			    "text/plain; charset=utf-8", m, strlen(m));
			return 1;
		}
		(void)portal_autoconfig_autodiscover(pr->p->loop->conf,
		    len > 0 ? (const char *)evbuffer_pullup(in, (ssize_t)len) :
		    "", len, &doc);
		portal_send(pr, 200, "OK", "text/xml; charset=utf-8",
		    str_c(&doc), doc.len);
	} else if (strcmp(path, "/mobileconfig") == 0 &&
	    cmd == EVHTTP_REQ_GET) {
		struct msg m;

		if (!pr->have_sid) {
			portal_redirect(pr, "/");
			return 1;
		}
		/* the account is the session's, as the back side says */
		portal_req_session(pr, &m, BE_PORTAL_STATUS, NULL);
		msg_add_u32(&m, 0);
		portal_go(pr, &m, portal_mobileconfig_done);
	} else
		return 0;
	str_deinit(&doc);
	return 1;
}

static void
portal_on_request(struct evhttp_request *req, void *arg)
{
	struct portal *p = arg;
	struct portal_req *pr = xcalloc(1, sizeof(*pr));
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const struct sockaddr *sa = evcon != NULL ?
	    evhttp_connection_get_addr(evcon) : NULL;
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	const char *cookies = evhttp_find_header(in, "Cookie");
	char lang[8];
	struct evkeyvalq q;
	const char *ql = NULL;
	const char *why;
	int code;

	pr->p = p;
	pr->req = req;
	pr->method = evhttp_request_get_command(req) == EVHTTP_REQ_POST ?
	    "POST" : "GET";
	if (sa != NULL)
		server_addr_str(sa, pr->client, sizeof(pr->client));
	else
		xstrlcpy(pr->client, "unknown", sizeof(pr->client));
	if (path == NULL || *path == '\0')
		path = "/";
	/* The log line shows the path only, printable and cut short. */
	xstrlcpy(pr->path, path, sizeof(pr->path));
	for (char *c = pr->path; *c != '\0'; c++)
		if (*c <= ' ' || *c > '~')
			*c = '?';
	if (portal_http_framing(in, &code, &why) < 0) {
		portal_refuse_framing(pr, code, why);
		return;
	}

	/* Language: ?lang= (kept in a cookie), the cookie, then
	 * Accept-Language; Japanese by default. */
	pr->lang = portal_lang_from_accept(evhttp_find_header(in,
	    "Accept-Language"));
	if (portal_cookie_get(cookies, "lang", lang, sizeof(lang)) == 0)
		pr->lang = strcmp(lang, "en") == 0 ? PORTAL_EN : PORTAL_JA;
	TAILQ_INIT(&q);
	if (query != NULL && evhttp_parse_query_str(query, &q) == 0)
		ql = evhttp_find_header(&q, "lang");
	if (ql != NULL && (strcmp(ql, "en") == 0 || strcmp(ql, "ja") == 0)) {
		pr->lang = strcmp(ql, "en") == 0 ? PORTAL_EN : PORTAL_JA;
		portal_cookie(pr, "lang", ql, 365L * 86400);
	}
	evhttp_clear_headers(&q);
	/* The admin pages have their own session cookie: one browser may
	 * hold a subscriber's and an admin's login at once. */
	pr->admin = strcmp(path, "/admin") == 0 ||
	    strncmp(path, "/admin/", 7) == 0;
	pr->have_sid = portal_cookie_get(cookies, pr->admin ? "asid" : "sid",
	    pr->sid, sizeof(pr->sid)) == 0 &&
	    strlen(pr->sid) == PORTAL_TOKEN_LEN;

	if (!pr->admin && portal_autoconfig_request(pr, path))
		return;
	if (strncmp(path, "/api/", 5) == 0)
		portal_api(pr, path);
	else if (pr->admin && evhttp_request_get_command(req) !=
	    EVHTTP_REQ_POST)
		portal_admin_get(pr, path);
	else if (evhttp_request_get_command(req) == EVHTTP_REQ_POST)
		portal_on_post(pr, path);
	else if (strcmp(path, "/static/portal.css") == 0)
		portal_send(pr, 200, "OK", "text/css; charset=utf-8",
		    portal_css, sizeof(portal_css) - 1);
	else if (strcmp(path, "/") != 0)
		portal_not_found(pr);
	else if (!pr->have_sid)
		portal_login_page(pr, 200, "OK", NULL, NULL, NULL);
	else if (portal_page_param(pr) == 0) {
		struct msg m;

		portal_req_session(pr, &m, BE_PORTAL_STATUS, NULL);
		msg_add_u32(&m, pr->page * PORTAL_STATUS_PAGE);
		portal_go(pr, &m, portal_status_done);
	}
}

/* ---- TLS and the listener ---------------------------------------------- */

static struct bufferevent *
portal_bevcb(struct event_base *base, void *arg)
{
	struct portal *p = arg;
	SSL *ssl = SSL_new(p->loop->tls);
	struct bufferevent *bev;

	if (ssl == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	/* Browsers often close without close_notify. */
	if (bev != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static int
portal_host_is_loopback(const char *host)
{
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;

	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, host, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		return server_addr_is_loopback((struct sockaddr *)&s4);
	}
	if (inet_pton(AF_INET6, host, &s6.sin6_addr) == 1) {
		s6.sin6_family = AF_INET6;
		return server_addr_is_loopback((struct sockaddr *)&s6);
	}
	return 0;
}

struct portal *
portal_listen(struct server_loop *loop, const struct listen_conf *lc, int fd,
    const char **error_r)
{
	struct portal *p;

	if (lc->proxy) {
		*error_r = "listen portal: the proxy option is not supported "
		    "on the settings page";
		close(fd);
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->loop = loop;
	p->lc = lc;
	p->tls = !(loop->conf->portal_plain_http == AUTH_WITHOUT_TLS_LOOPBACK &&
	    portal_host_is_loopback(lc->host));
	if ((p->http = evhttp_new(loop->base)) == NULL)
		fatalx("evhttp_new failed");
	evhttp_set_allowed_methods(p->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_max_headers_size(p->http, PORTAL_MAX_HEADERS);
	evhttp_set_max_body_size(p->http, PORTAL_MAX_BODY);
	evhttp_set_timeout(p->http, PORTAL_TIMEOUT);
	evhttp_set_gencb(p->http, portal_on_request, p);
	if (p->tls)
		evhttp_set_bevcb(p->http, portal_bevcb, p);
	if (evhttp_accept_socket_with_handle(p->http, fd) == NULL) {
		*error_r = "listen portal: evhttp_accept_socket failed";
		evhttp_free(p->http);
		free(p);
		close(fd);
		return NULL;
	}
	return p;
}

void
portal_free(struct portal **pp)
{
	struct portal *p = *pp;

	if (p == NULL)
		return;
	evhttp_free(p->http);
	free(p);
	*pp = NULL;
}
