/*
 * portal_util: HTML escaping, cookies and language choice (see
 * portal_util.h).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/xmalloc.h"
#include "portal_util.h"

void
portal_html_escape(struct str *out, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			str_append(out, "&amp;");
			break;
		case '<':
			str_append(out, "&lt;");
			break;
		case '>':
			str_append(out, "&gt;");
			break;
		case '"':
			str_append(out, "&quot;");
			break;
		case '\'':
			str_append(out, "&#39;");
			break;
		default:
			str_append_c(out, *s);
		}
	}
}

int
portal_cookie_get(const char *header, const char *name, char *buf, size_t len)
{
	size_t nlen = strlen(name);
	const char *p = header;

	if (header == NULL || nlen == 0)
		return 1;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		const char *end = strchr(p, ';');
		size_t plen = end != NULL ? (size_t)(end - p) : strlen(p);

		if (plen > nlen && strncmp(p, name, nlen) == 0 &&
		    p[nlen] == '=') {
			const char *v = p + nlen + 1;
			size_t vlen = plen - nlen - 1;

			while (vlen > 0 && (v[vlen - 1] == ' ' ||
			    v[vlen - 1] == '\t'))
				vlen--;
			if (vlen >= len)
				return 1;
			memcpy(buf, v, vlen);
			buf[vlen] = '\0';
			return 0;
		}
		p += plen;
	}
	return 1;
}

/* q of one Accept-Language item ("en-US;q=0.8"): 0..1000. */
static int
portal_lang_q(const char *item)
{
	const char *q = strstr(item, ";q=");

	if (q == NULL)
		q = strstr(item, "; q=");
	if (q == NULL)
		return 1000;
	q = strchr(q, '=') + 1;
	double v = strtod(q, NULL);

	if (!(v >= 0.0) || v > 1.0)
		return 0;
	return (int)(v * 1000.0 + 0.5);
}

enum portal_lang
portal_lang_from_accept(const char *accept)
{
	int best_ja = -1, best_en = -1;
	const char *p = accept;

	if (accept == NULL)
		return PORTAL_JA;
	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char *item = xstrndup(p, len);
		int q = portal_lang_q(item);

		if (strncasecmp(item, "ja", 2) == 0 &&
		    (item[2] == '\0' || item[2] == '-' || item[2] == ';' ||
		    item[2] == ' ')) {
			if (q > best_ja)
				best_ja = q;
		} else if (strncasecmp(item, "en", 2) == 0 &&
		    (item[2] == '\0' || item[2] == '-' || item[2] == ';' ||
		    item[2] == ' ')) {
			if (q > best_en)
				best_en = q;
		}
		free(item);
		p += len;
	}
	return best_en > 0 && best_en > best_ja ? PORTAL_EN : PORTAL_JA;
}


/* tchar of RFC 9110 5.6.2 */
static int
portal_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || (c != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int
portal_http_framing(const struct evkeyvalq *headers, int *code_r,
    const char **error_r)
{
	const struct evkeyval *h;
	const char *cl = NULL;
	int te = 0, chunked = 0;

	*code_r = 400;
	TAILQ_FOREACH(h, headers, next) {
		const unsigned char *c;

		if (h->key[0] == '\0') {
			*error_r = "empty header name";
			return -1;
		}
		for (c = (const unsigned char *)h->key; *c != '\0'; c++)
			if (!portal_tchar(*c)) {
				*error_r = "header name not a token";
				return -1;
			}
		/* evhttp joined folded lines and kept a CR before a space */
		for (c = (const unsigned char *)h->value; *c != '\0'; c++)
			if ((*c < ' ' && *c != '\t') || *c == 0x7f) {
				*error_r = "control character in a header";
				return -1;
			}
		if (strcasecmp(h->key, "Content-Length") == 0) {
			size_t n = strlen(h->value);

			if (n == 0 || n > 18 || strspn(h->value,
			    "0123456789") != n) {
				*error_r = "Content-Length not a decimal number";
				return -1;
			}
			/* 18 digits, as evhttp reads it with strtoll */
			if (cl != NULL && strtoull(cl, NULL, 10) !=
			    strtoull(h->value, NULL, 10)) {
				*error_r = "Content-Lengths differ";
				return -1;
			}
			cl = h->value;
		} else if (strcasecmp(h->key, "Transfer-Encoding") == 0) {
			te++;
			chunked = strcasecmp(h->value, "chunked") == 0;
		}
	}
	if (te > 0 && cl != NULL) {
		*error_r = "Transfer-Encoding with Content-Length";
		return -1;
	}
	if (te > 1 || (te == 1 && !chunked)) {
		*code_r = 501;
		*error_r = "Transfer-Encoding other than chunked";
		return -1;
	}
	/* XXX: evhttp reads chunk sizes with strtoll (so "+5", " 5" and
	 * "0x5" pass) and no browser sends a chunked form: refused as
	 * RFC 9112 6.3 allows, rather than framed leniently. */
	if (te == 1) {
		*code_r = 411;
		*error_r = "chunked body: send Content-Length";
		return -1;
	}
	return 0;
}

/* Every event type the pages show (docs/portal.md "Event types"). */
static const struct {
	const char	*type;
	const char	*text[2];	/* PORTAL_JA, PORTAL_EN */
} portal_events[] = {
	{ "overseas_refused", { "海外からの送信をお断り",
	    "Refused: sent from abroad" } },
	{ "sender_refused", { "差出人アドレスが違うためお断り",
	    "Refused: sender address not allowed" } },
	{ "limit_reached", { "送信数の上限に到達", "Sending limit reached" } },
	{ "auth_locked_ip", { "ログイン失敗が多いため一時ロック（接続元）",
	    "Locked after failed logins (client address)" } },
	{ "auth_locked_account", { "ログイン失敗が多いため一時ロック"
	    "（アカウント）", "Locked after failed logins (account)" } },
	{ "overseas_allowed", { "海外からの送信を許可（運用者）",
	    "Sending from abroad allowed (operator)" } },
	{ "overseas_denied", { "海外からの送信の許可を取り消し（運用者）",
	    "Sending from abroad revoked (operator)" } },
	{ "limits_changed", { "送信数の上限を変更（運用者）",
	    "Sending limits changed (operator)" } },
	{ "admin_suspend", { "利用停止（管理者）",
	    "Suspended (administrator)" } },
	{ "admin_resume", { "利用再開（管理者）", "Resumed (administrator)" } },
	{ "admin_overseas_on", { "海外からの送信を許可（管理者）",
	    "Sending from abroad allowed (administrator)" } },
	{ "admin_overseas_off", { "海外からの送信の許可を取り消し（管理者）",
	    "Sending from abroad revoked (administrator)" } },
	{ "admin_limits", { "送信数の上限を変更（管理者）",
	    "Sending limits changed (administrator)" } },
	/* issue 17: signals and the response */
	{ "login_new_country", { "これまでにない国からのログイン",
	    "Login from a new country" } },
	{ "spam_verdict", { "送信メールが迷惑メールと判定",
	    "Sent mail judged spam" } },
	{ "bounces_received", { "多数のエラーメールの返送",
	    "Many bounces received" } },
	{ "new_recipients", { "初めての宛先への大量の送信",
	    "Mail to many new recipients" } },
	{ "password_spraying", { "多数のアカウントへのパスワード試行",
	    "Password guessing across accounts" } },
	{ "admin_risk_notify", { "不正利用のおそれを通知", "Risk: notified" } },
	{ "admin_risk_hold", { "送信を保留", "Risk: outgoing mail held" } },
	{ "admin_risk_suspend", { "不正利用のおそれで利用停止",
	    "Risk: suspended" } },
	{ "admin_risk_clear", { "不正利用の対応を解除",
	    "Risk: response cleared" } },
	{ "admin_risk_exempt", { "自動対応の対象外を変更",
	    "Risk: exemption changed" } },
	{ "admin_warn", { "注意喚起を送信（管理者）",
	    "Warning sent (administrator)" } },
	{ "admin_release", { "保留メールを配送（管理者）",
	    "Held mail released (administrator)" } },
	{ "admin_delete", { "保留メールを削除（管理者）",
	    "Held mail deleted (administrator)" } },
};

const char *
portal_event_text(const char *type, enum portal_lang lang)
{
	for (size_t i = 0; i < sizeof(portal_events) /
	    sizeof(portal_events[0]); i++)
		if (strcmp(type, portal_events[i].type) == 0)
			return portal_events[i].text[lang];
	return NULL;
}
