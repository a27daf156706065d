"""The settings page (issue 6) end to end.

In a real browser (Debian's Chromium driven by playwright-core, see
tests/portal/portal.js): a subscriber logs in, turns on overseas sending,
sees until when, and a submission "from abroad" (a PROXY header naming a
documentation address the test country database puts in the US, as in
test_policy.py) is then accepted; extends; reads the page in English;
turns it off and the submission is refused again; once suspended, the page
and SMTP AUTH refuse them.

Security with urllib-level HTTP (no browser): CSRF tokens, escaping, login
throttling, cookie flags, the Content-Security-Policy, logout, password
change, and the plain-HTTP demo listener.
"""
import email
import email.message
import hashlib
import http.client
import poplib
import json
import os
import re
import shutil
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import time
import urllib.parse
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conftest import (ALICE, ALICE_PW, BOB, REPO, Daemon, accepts, free_port,
                      wait_for)
from geodata import CN4, JP4, US4, geo_config_line

NODE_SCRIPT = REPO / "tests" / "portal" / "portal.js"
ADMIN_PW = "desk-Secret-7"
CHROMIUM = "/usr/bin/chromium"


# --- the daemon ------------------------------------------------------------

@pytest.fixture
def portal_daemon(make_daemon, tmp_path):
    """A daemon with a PROXY-expecting submission listener (for clients
    "from abroad") and a portal listener; d.portal_port is its port."""
    def factory(extra=(), more_listeners=(), **kwargs):
        port = free_port()
        listeners = Daemon.DEFAULT_LISTENERS + (
            ("submission_proxy", "submission", True),) + tuple(more_listeners)
        # The portal listener is not in `listeners`: the fixture's start
        # waits for a log line per probe connection, which evhttp does
        # not write for a connection without a request.
        d = make_daemon(proxy=True, listeners=listeners,
                        extra=[geo_config_line(tmp_path / "geo"),
                               "portal_url = https://mail.example.jp/",
                               f"listen = portal 127.0.0.1:{port}",
                               *extra], **kwargs)
        d.portal_port = port

        wait_for(lambda: accepts(port), 20, "the portal port")
        return d
    return factory


class ProxySMTP(smtplib.SMTP):
    """smtplib that first sends a PROXY v1 header claiming `source`."""

    def __init__(self, source, port):
        self.source = source
        super().__init__()
        self.connect("127.0.0.1", port)

    def connect(self, host, port):
        self._host = host
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.sendall(
            f"PROXY TCP4 {self.source} 192.0.2.1 40000 587\r\n".encode())
        self.file = None
        code, msg = self.getreply()
        assert code == 220, msg
        return code, msg


def submit_from(d, source, client_tls, password=ALICE_PW):
    """One message from ALICE to BOB as if from `source`: the final reply
    code (250 accepted, 550 refused at MAIL, 535/454 at AUTH)."""
    s = ProxySMTP(source, d.ports["submission_proxy"])
    try:
        s.ehlo()
        s.starttls(context=client_tls)
        s.ehlo()
        try:
            s.login(ALICE, password)
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code
        code, _ = s.mail(ALICE)
        if code != 250:
            return code
        code, _ = s.rcpt(BOB)
        if code != 250:
            return code
        code, _ = s.data(f"From: {ALICE}\r\nTo: {BOB}\r\n"
                         "Subject: from abroad\r\n\r\nHello.\r\n")
        return code
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass


# --- the browser -------------------------------------------------------------

def browser(d, phase, state, shots, user=ALICE, password=ALICE_PW,
            args=()):
    """Run one phase of portal.js; its JSON answer."""
    node_modules = REPO / "node_modules" / "playwright-core"
    if not node_modules.is_dir() or not os.path.exists(CHROMIUM):
        pytest.fail("playwright-core or chromium missing: run scripts/setup")
    r = subprocess.run(
        ["node", str(NODE_SCRIPT), phase,
         f"https://127.0.0.1:{d.portal_port}", str(state), str(shots),
         user, password, *args],
        capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert r.returncode == 0, r.stderr + "\n--- log ---\n" + d.log()[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["csp_errors"] == [], out
    return out


def jst_date(days):
    return (datetime.now(ZoneInfo("Asia/Tokyo"))
            + timedelta(days=days)).strftime("%Y-%m-%d")


UNTIL_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d JST$")


def test_subscriber_overseas_on_extend_off_in_browser(portal_daemon,
                                                       client_tls, tmp_path):
    d = portal_daemon()
    d.cli("admin", "add", "desk", input=ADMIN_PW + "\n")
    state, shots = tmp_path / "state.json", tmp_path / "screenshots"
    shots.mkdir()

    # Japanese by default (the browser's locale is ja-JP)
    out = browser(d, "login", state, shots)
    assert out["title"] == "メールオプション設定"
    assert "メールアドレス" in out["intro"]
    assert out["account"] == ALICE
    assert out["overseas"].startswith("オフ")
    assert out["css"] == "solid"          # the daemon's style sheet applied

    # from abroad: refused while the permission is off
    assert submit_from(d, US4, client_tls) == 550

    out = browser(d, "on", state, shots)
    assert out["message"] == "海外からのメール送信をオンにしました。"
    assert UNTIL_RE.match(out["until"]), out
    assert out["until"].startswith(jst_date(7)) or \
        out["until"].startswith(jst_date(6)), out     # midnight race
    assert submit_from(d, US4, client_tls) == 250

    # doing it again extends it to 7 days from now
    out = browser(d, "extend", state, shots)
    assert out["message"] == "海外からのメール送信をオンにしました。"
    assert UNTIL_RE.match(out["until"]) and out["until"] >= out["before"]
    assert "allowed until" in d.cli("overseas", "status", ALICE).stdout

    # today's counts and the history, with the refusal flagged
    out = browser(d, "status", state, shots)
    assert out["msgs"] == "1 / 500", out
    assert out["rcpts"] == "1 / 1000", out
    assert US4 in out["submissions"] and "US" in out["submissions"]
    assert "はい" in out["submissions"]          # sent from abroad
    assert "海外からの送信をお断り" in out["events"] and US4 in out["events"]

    # English by the switch, kept by cookie
    out = browser(d, "english", state, shots)
    assert out["title"] == "Mail option settings"
    assert out["overseas"].startswith("On until ")
    assert "Messages" in out["counts"]
    assert "Refused: sent from abroad" in out["events"]
    assert out["title_again"] == "Mail option settings"

    out = browser(d, "off", state, shots)
    assert out["message"] == "Sending from overseas is off."
    assert out["overseas"].startswith("Off")
    assert out["until"] is None
    assert submit_from(d, US4, client_tls) == 550
    assert submit_from(d, JP4, client_tls) == 250     # home: unaffected

    # the abuse desk suspends the account on the admin pages (in its own
    # browser): the subscriber's page and SMTP AUTH refuse it
    out = browser(d, "admin-suspend", tmp_path / "admin.json", shots,
                  user="desk", password=ADMIN_PW,
                  args=(ALICE, "spam report 42"))
    assert ALICE in out["results"]
    assert out["message"] == "Done." or out["message"] == "実行しました。"
    assert "spam report 42" in out["status"]
    assert "admin_suspend" in out["audit"] and "by desk" in out["audit"]
    # the audit log says what the type means, in the page's language
    assert "利用停止（管理者）" in out["audit"] or \
        "Suspended (administrator)" in out["audit"], out["audit"]
    # the language link stays on the admin pages (issue 14)
    assert out["lang_url"].startswith("/admin/"), out
    assert out["lang_admin"] == "desk", out
    out = browser(d, "status", state, shots)
    assert out["account"] is None
    assert out["message"] == "This account is suspended."
    assert submit_from(d, JP4, client_tls) != 250

    for name in ("login-ja.png", "main-ja.png", "overseas-on.png",
                 "main-en.png", "overseas-off.png", "admin-account.png"):
        assert (shots / name).stat().st_size > 1000
    if os.environ.get("SEKISHO_DOCS_SCREENSHOTS"):
        for name in ("overseas-on.png", "main-en.png", "admin-account.png"):
            shutil.copy(shots / name, REPO / "docs" / "img" /
                        f"portal-{name}")


def test_logout_in_browser(portal_daemon, tmp_path):
    d = portal_daemon()
    state, shots = tmp_path / "state.json", tmp_path / "screenshots"
    shots.mkdir()
    browser(d, "login", state, shots)
    out = browser(d, "logout", state, shots)
    assert out["login_form"] is True
    out = browser(d, "status", state, shots)
    assert out["account"] is None


# --- HTTP without a browser ----------------------------------------------------

class Web:
    """A minimal HTTPS client that keeps cookies by name."""

    def __init__(self, port, tls=True):
        self.port = port
        self.tls = tls
        self.cookies = {}
        self.set_cookies = []

    def request(self, method, path, form=None, headers=None):
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection("127.0.0.1", self.port,
                                            context=ctx, timeout=30)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port,
                                           timeout=30)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}"
                                    for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read().decode()
        self.set_cookies = r.headers.get_all("Set-Cookie") or []
        for sc in self.set_cookies:
            name, value = sc.split(";", 1)[0].split("=", 1)
            if "Max-Age=0" in sc:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        c.close()
        return r.status, r.headers, data

    @staticmethod
    def csrf(page):
        m = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert m, page
        return m.group(1)

    def login(self, user=ALICE, password=ALICE_PW):
        _, _, page = self.request("GET", "/")
        return self.request("POST", "/login", {
            "csrf": self.csrf(page), "user": user, "password": password})


def test_cookie_flags_and_headers(portal_daemon):
    d = portal_daemon()
    w = Web(d.portal_port)
    status, headers, page = w.request("GET", "/")
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script" not in page and "style=" not in page
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    pre = [c for c in w.set_cookies if c.startswith("pre=")]
    assert pre and all(f in pre[0] for f in
                       ("Secure", "HttpOnly", "SameSite=Strict"))

    status, headers, _ = w.request("POST", "/login", {
        "csrf": w.csrf(page), "user": ALICE, "password": ALICE_PW})
    assert status == 303 and headers["Location"] == "/"
    sid = [c for c in w.set_cookies if c.startswith("sid=")]
    assert sid, w.set_cookies
    assert re.match(r"sid=[0-9a-f]{64};", sid[0])
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in sid[0]
    status, _, page = w.request("GET", "/")
    assert status == 200 and ALICE in page

    # the style sheet comes from the daemon
    status, headers, css = w.request("GET", "/static/portal.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert w.request("GET", "/nothing-here")[0] == 404


def test_post_without_csrf_token_refused(portal_daemon):
    d = portal_daemon()
    w = Web(d.portal_port)
    # the login form's token is checked too
    w.request("GET", "/")
    status, _, _ = w.request("POST", "/login",
                             {"user": ALICE, "password": ALICE_PW})
    assert status == 403
    assert "sid" not in w.cookies

    status, _, page = w.login()
    assert status == 303
    for form in ({"action": "on"},
                 {"action": "on", "csrf": "0" * 64},
                 {"action": "on", "csrf": w.cookies["sid"]}):
        status, _, page = w.request("POST", "/overseas", form)
        assert status == 403, form
        assert "フォームの有効期限" in page
    assert "not allowed" in d.cli("overseas", "status", ALICE).stdout

    # with the session's token it works
    _, _, page = w.request("GET", "/")
    status, headers, _ = w.request("POST", "/overseas", {
        "action": "on", "csrf": w.csrf(page)})
    assert status == 303 and headers["Location"] == "/?msg=on"
    assert "allowed until" in d.cli("overseas", "status", ALICE).stdout
    assert "CSRF" in d.log()


def test_suspension_reason_shown_escaped(portal_daemon):
    d = portal_daemon()
    d.cli("user", "suspend", ALICE, "--reason",
          "<script>alert(1)</script> & \"spam\"")
    w = Web(d.portal_port)
    status, _, page = w.login()
    assert status == 403
    assert "利用停止中" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;spam&quot;" \
        in page
    assert "<script>" not in page
    assert "sid" not in w.cookies


def test_five_wrong_passwords_throttle(portal_daemon, client_tls):
    d = portal_daemon(extra=["auth_max_failures_per_ip = 5",
                             "auth_fail_delay = 0s"])
    w = Web(d.portal_port)
    for _ in range(5):
        status, _, page = w.login(password="wrong-password")
        assert status == 401
        assert "パスワードが違います" in page
    # now even the right password is refused, with when to try again
    status, _, page = w.login()
    assert status == 429
    assert "ロック" in page and re.search(r"\d\d:\d\d JST", page)
    assert "sid" not in w.cookies
    assert "auth_locked_ip" in d.cli("events", ALICE, "--since", "1d").stdout \
        or "auth_locked_ip" in d.cli("events", "--since", "1d").stdout


def test_failed_login_is_delayed(portal_daemon):
    d = portal_daemon(extra=["auth_fail_delay = 1s"])
    w = Web(d.portal_port)
    t0 = time.monotonic()
    status, _, _ = w.login(password="wrong-password")
    assert status == 401
    assert time.monotonic() - t0 >= 0.9


def test_password_change_needs_current_password(portal_daemon, client_tls):
    d = portal_daemon()
    w = Web(d.portal_port)
    w.login()
    other = Web(d.portal_port)         # a second session (a thief's)
    other.login()
    _, _, page = w.request("GET", "/")
    token = w.csrf(page)
    status, headers, _ = w.request("POST", "/password", {
        "csrf": token, "current": "not-it", "new": "new-Secret-9",
        "new2": "new-Secret-9"})
    assert headers["Location"] == "/?msg=badcurrent"
    status, headers, _ = w.request("POST", "/password", {
        "csrf": token, "current": ALICE_PW, "new": "short",
        "new2": "short"})
    assert headers["Location"] == "/?msg=badnew"
    status, headers, _ = w.request("POST", "/password", {
        "csrf": token, "current": ALICE_PW, "new": "new-Secret-9",
        "new2": "other-Secret-9"})
    assert headers["Location"] == "/?msg=mismatch"
    status, headers, _ = w.request("POST", "/password", {
        "csrf": token, "current": ALICE_PW, "new": "new-Secret-9",
        "new2": "new-Secret-9"})
    assert headers["Location"] == "/?msg=password"
    _, _, page = w.request("GET", "/?msg=password")
    assert "パスワードを変更しました" in page
    # the other session is gone; SMTP takes the new password only
    _, _, page = other.request("GET", "/")
    assert 'id="login"' in page
    assert submit_from(d, JP4, client_tls, password="new-Secret-9") == 250
    assert submit_from(d, JP4, client_tls) == 535


def test_logout_ends_session(portal_daemon):
    d = portal_daemon()
    w = Web(d.portal_port)
    w.login()
    sid = w.cookies["sid"]
    _, _, page = w.request("GET", "/")
    status, headers, _ = w.request("POST", "/logout",
                                   {"csrf": w.csrf(page)})
    assert status == 303 and "sid" not in w.cookies
    w.cookies["sid"] = sid            # the old cookie is worth nothing
    _, _, page = w.request("GET", "/")
    assert 'id="login"' in page and ALICE not in page


def test_plain_http_demo_listener(portal_daemon):
    d = portal_daemon(extra=["portal_plain_http = loopback"])
    w = Web(d.portal_port, tls=False)
    status, headers, page = w.request("GET", "/", headers={
        "Accept-Language": "en-US,en;q=0.9,ja;q=0.5"})
    assert status == 200 and "Mail option settings" in page
    assert "Strict-Transport-Security" not in headers
    status, _, _ = w.login()
    assert status == 303
    sid = [c for c in w.set_cookies if c.startswith("sid=")][0]
    assert "Secure" not in sid and "HttpOnly" in sid


# --- the JSON API ---------------------------------------------------------------

@pytest.fixture
def api_daemon(portal_daemon):
    d = portal_daemon()
    d.token = d.cli("api-token", "add", "mypage").stdout.strip()
    assert re.fullmatch(r"mypage\.[0-9a-f]{64}", d.token)
    return d


def api(d, method, path, body=None, token=None, raw=None):
    """(status, decoded JSON) of one API call."""
    w = Web(d.portal_port)
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (
        json.dumps(body) if body is not None else None)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", w.port, context=ctx,
                                    timeout=30)
    if data is not None:
        headers["Content-Type"] = "application/json"
    c.request(method, "/api/v1/accounts/" + path, body=data,
              headers=headers)
    r = c.getresponse()
    out = json.loads(r.read().decode())
    assert r.headers["Content-Type"] == "application/json"
    c.close()
    return r.status, out


def test_api_tokens_required_and_revocable(api_daemon):
    d = api_daemon
    assert api(d, "GET", ALICE) == \
        (401, {"error": "an Authorization: Bearer token is required"})
    # a token one character off (never the same character) is refused
    wrong = d.token[:-1] + ("1" if d.token[-1] == "0" else "0")
    status, out = api(d, "GET", ALICE, token=wrong)
    assert status == 401
    status, out = api(d, "GET", ALICE, token="mypage")
    assert status == 401
    status, out = api(d, "GET", ALICE, token=d.token)
    assert status == 200 and out["account"] == ALICE
    # the store keeps only a hash of the token
    with sqlite3.connect(d.dir / "sekisho.db") as db:
        rows = db.execute("SELECT name, hash FROM api_tokens").fetchall()
    assert rows == [("mypage",
                     hashlib.sha256(d.token.encode()).hexdigest())]
    listing = d.cli("api-token", "list").stdout
    assert listing.startswith("mypage\t") and rows[0][1] not in listing
    d.cli("api-token", "del", "mypage")
    status, out = api(d, "GET", ALICE, token=d.token)
    assert status == 401 and "revoked" in out["error"]
    assert d.cli("api-token", "del", "mypage", check=False).returncode == 1


def test_api_every_endpoint(api_daemon, client_tls):
    d, t = api_daemon, api_daemon.token
    status, out = api(d, "GET", ALICE, token=t)
    assert status == 200
    assert out["overseas"]["allowed"] is False
    assert out["overseas"]["until"] is None and out["overseas"]["days"] == 7
    assert out["limits"]["recipients_per_day"] == 1000
    assert out["today"]["messages"] == 0
    assert out["today"]["resets_at_text"].endswith("00:00 JST")
    assert out["suspended"] is False

    assert submit_from(d, US4, client_tls) == 550
    now = time.time()
    status, out = api(d, "POST", ALICE + "/overseas", {"action": "on"},
                      token=t)
    assert status == 200 and out["overseas"]["allowed"] is True
    assert abs(out["overseas"]["until"] - (now + 7 * 86400)) < 60
    status, out = api(d, "POST", ALICE + "/overseas", {"action": "extend"},
                      token=t)
    assert status == 200 and out["overseas"]["allowed"] is True
    assert submit_from(d, US4, client_tls) == 250
    status, out = api(d, "GET", ALICE.upper(), token=t)   # any case
    assert out["today"]["messages"] == 1
    assert out["today"]["overseas_recipients"] == 1
    status, out = api(d, "POST", ALICE + "/overseas", {"action": "off"},
                      token=t)
    assert status == 200 and out["overseas"]["allowed"] is False
    assert submit_from(d, US4, client_tls) == 550

    status, out = api(d, "POST", ALICE + "/limits",
                      {"recipients_per_day": 200, "messages_per_day": 0},
                      token=t)
    assert status == 200
    assert out["limits"]["recipients_per_day"] == 200
    assert out["limits"]["messages_per_day"] == 0
    assert "recipients_per_day: 200" in d.cli("limits", "show", ALICE).stdout
    status, out = api(d, "POST", ALICE + "/limits",
                      {"recipients_per_day": None, "messages_per_day": None},
                      token=t)
    assert out["limits"]["recipients_per_day"] == 1000
    assert out["limits"]["messages_per_day"] == 500

    status, out = api(d, "GET", ALICE + "/history", token=t)
    assert status == 200
    types = [e["type"] for e in out["events"]]
    assert "overseas_refused" in types
    assert out["events"][0]["ip"] == US4 and out["events"][0]["country"] \
        == "US"
    assert len(out["submissions"]) == 1
    sub = out["submissions"][0]
    assert sub["ip"] == US4 and sub["overseas"] is True
    assert re.fullmatch(r"[0-9A-F]{20}", sub["queue_id"])
    status, out = api(d, "GET", ALICE + "/history?since=1", token=t)
    assert status == 200 and out["events"] == [] or all(
        e["time"] >= time.time() - 5 for e in out["events"])

    # every change is logged with the token's name (the audit trail)
    assert re.search(r"portal api token=mypage client=127\.0\.0\.1 "
                     r"account=alice@example\.jp action=limits", d.log())


def test_api_overseas_countries(api_daemon, client_tls):
    """A provider's My Page sets the countries a permission covers through
    the API, as the subscriber can on the settings page."""
    d, t = api_daemon, api_daemon.token
    status, out = api(d, "POST", ALICE + "/overseas",
                      {"action": "on", "countries": "us"}, token=t)
    assert status == 200 and out["overseas"]["allowed"] is True
    assert out["overseas"]["countries"] == "US"
    assert submit_from(d, US4, client_tls) == 250
    assert submit_from(d, CN4, client_tls) == 550     # not covered
    # "extend" without countries keeps them; with "" every country
    status, out = api(d, "POST", ALICE + "/overseas", {"action": "extend"},
                      token=t)
    assert status == 200 and out["overseas"]["countries"] == "US"
    status, out = api(d, "POST", ALICE + "/overseas",
                      {"action": "extend", "countries": ""}, token=t)
    assert status == 200 and out["overseas"]["countries"] == ""
    assert submit_from(d, CN4, client_tls) == 250
    assert "from US" not in d.cli("overseas", "status", ALICE).stdout

    # the attacker's bodies: each 400, nothing changed
    for body in ({"action": "on", "countries": "U1"},
                 {"action": "on", "countries": "US;DROP"},
                 {"action": "on", "countries": ",".join(["US"] * 100)},
                 {"action": "on", "countries": ["US"]},
                 {"action": "on", "countries": None},
                 {"action": "off", "countries": "US"},
                 {"action": "on", "countries": "US", "colour": 1}):
        status, out = api(d, "POST", ALICE + "/overseas", body, token=t)
        assert status == 400, (body, out)
        assert "countries" in out["error"] or "action" in out["error"]
    status, out = api(d, "GET", ALICE, token=t)
    assert out["overseas"]["allowed"] is True
    assert out["overseas"]["countries"] == ""


def test_api_bad_requests(api_daemon):
    d, t = api_daemon, api_daemon.token
    status, out = api(d, "POST", ALICE + "/overseas", raw='{"action":',
                      token=t)
    assert status == 400 and out["error"].startswith("bad JSON: ")
    status, out = api(d, "POST", ALICE + "/overseas", raw="[1, 2]", token=t)
    assert status == 400 and "JSON object" in out["error"]
    status, out = api(d, "POST", ALICE + "/overseas", {"action": "maybe"},
                      token=t)
    assert status == 400 and "action" in out["error"]
    status, out = api(d, "POST", ALICE + "/limits",
                      {"recipients_per_day": -1}, token=t)
    assert status == 400 and "recipients_per_day" in out["error"]
    status, out = api(d, "POST", ALICE + "/limits", {"colour": 1}, token=t)
    assert status == 400 and "colour" in out["error"]
    status, out = api(d, "POST", ALICE + "/limits",
                      raw='{"recipients_per_day": 1, '
                          '"recipients_per_day": 2}', token=t)
    assert status == 400 and "duplicate" in out["error"]
    assert api(d, "GET", "nobody@example.jp", token=t)[0] == 404
    assert api(d, "GET", ALICE + "/nothing", token=t)[0] == 404
    assert api(d, "GET", ALICE + "/overseas", token=t)[0] == 405
    assert api(d, "GET", ALICE + "/history?since=abc", token=t)[0] == 400
    # nothing changed
    status, out = api(d, "GET", ALICE, token=t)
    assert out["overseas"]["allowed"] is False
    assert out["limits"]["recipients_per_day"] == 1000


def test_api_off_without_tokens_file(portal_daemon):
    d = portal_daemon()
    status, out = api(d, "GET", ALICE, token="x." + "0" * 64)
    assert status == 401


# --- the admin pages --------------------------------------------------------------


@pytest.fixture
def admin_daemon(portal_daemon):
    d = portal_daemon()
    d.cli("admin", "add", "desk", input=ADMIN_PW + "\n")
    return d


def admin_login(d, name="desk", password=ADMIN_PW):
    w = Web(d.portal_port)
    _, _, page = w.request("GET", "/admin/")
    status, headers, _ = w.request("POST", "/admin/login", {
        "csrf": w.csrf(page), "user": name, "password": password})
    return w, status, headers


def test_admin_suspend_resume_limits_overseas_audit(admin_daemon, client_tls):
    d = admin_daemon
    # a subscriber's session gives no admin page, and the other way round
    sub = Web(d.portal_port)
    assert sub.login()[0] == 303
    _, _, page = sub.request("GET", "/admin/")
    assert 'action="/admin/login"' in page
    # wrong password, unknown admin
    assert admin_login(d, password="wrong-password")[1] == 401
    assert admin_login(d, name="nobody")[1] == 401

    w, status, headers = admin_login(d)
    assert status == 303 and headers["Location"] == "/admin/"
    asid = [c for c in w.set_cookies if c.startswith("asid=")][0]
    assert "HttpOnly" in asid and "SameSite=Strict" in asid and \
        "Secure" in asid
    _, _, page = w.request("GET", "/")        # not a subscriber session
    assert 'action="/login"' in page

    # search
    status, _, page = w.request("GET", "/admin/?q=ALICE")
    assert status == 200 and ALICE in page and BOB not in page
    assert "/admin/account?a=alice%40example.jp" in page

    # suspend with a reason: the CSRF token is needed, the reason escaped
    _, _, page = w.request("GET", "/admin/account?a=" + ALICE)
    token = w.csrf(page)
    status, _, _ = w.request("POST", "/admin/account", {
        "a": ALICE, "do": "suspend", "reason": "spam"})
    assert status == 403
    status, headers, _ = w.request("POST", "/admin/account", {
        "csrf": token, "a": ALICE, "do": "suspend", "reason": ""})
    assert headers["Location"].endswith("msg=badreason")
    status, headers, _ = w.request("POST", "/admin/account", {
        "csrf": token, "a": ALICE, "do": "suspend",
        "reason": "<script>alert(1)</script> spam report 42"})
    assert status == 303
    assert headers["Location"] == \
        "/admin/account?a=alice%40example.jp&msg=done"
    _, _, page = w.request("GET", headers["Location"])
    assert "&lt;script&gt;alert(1)&lt;/script&gt; spam report 42" in page
    assert "<script>" not in page
    # the subscriber's session ends, SMTP AUTH is refused
    _, _, page = sub.request("GET", "/")
    assert "利用停止中" in page
    assert submit_from(d, JP4, client_tls) != 250
    status, headers, _ = w.request("POST", "/admin/account", {
        "csrf": token, "a": ALICE, "do": "resume"})
    assert status == 303
    assert submit_from(d, JP4, client_tls) == 250

    # overseas permission and limits
    w.request("POST", "/admin/account", {
        "csrf": token, "a": ALICE, "do": "overseas_on"})
    assert "allowed until" in d.cli("overseas", "status", ALICE).stdout
    assert submit_from(d, US4, client_tls) == 250
    w.request("POST", "/admin/account", {
        "csrf": token, "a": ALICE, "do": "overseas_off"})
    assert submit_from(d, US4, client_tls) == 550
    status, headers, _ = w.request("POST", "/admin/account", {
        "csrf": token, "a": ALICE, "do": "limits",
        "recipients_per_day": "abc"})
    assert headers["Location"].endswith("msg=badlimit")
    w.request("POST", "/admin/account", {
        "csrf": token, "a": ALICE, "do": "limits",
        "recipients_per_day": "250", "messages_per_day": ""})
    out = d.cli("limits", "show", ALICE).stdout
    assert "recipients_per_day: 250" in out, out
    _, _, page = w.request("GET", "/admin/account?a=" + ALICE)
    assert "/ 250</td>" in page

    # every action is in the audit log: who, when, what
    status, _, page = w.request("GET", "/admin/audit")
    assert status == 200
    for what in ("admin_suspend", "admin_resume", "admin_overseas_on",
                 "admin_overseas_off", "admin_limits"):
        assert what in page, what
    assert "by desk: &lt;script&gt;" in page
    assert "recipients_per_day=250" in page
    # ... but not on the subscriber's own page
    sub2 = Web(d.portal_port)
    sub2.login()
    _, _, page = sub2.request("GET", "/")
    assert "admin_" not in page and "desk" not in page

    # unknown account; deleting the admin ends the session
    status, _, _ = w.request("GET", "/admin/account?a=nobody@example.jp")
    assert status == 404
    d.cli("admin", "del", "desk")
    _, _, page = w.request("GET", "/admin/")
    assert 'action="/admin/login"' in page
    status, _, _ = w.request("POST", "/admin/logout", {"csrf": token})
    assert status in (303, 403)


def test_admin_cli(admin_daemon, tmp_path):
    d = admin_daemon
    r = d.cli("admin", "add", "desk", input=ADMIN_PW + "\n", check=False)
    assert r.returncode == 1 and "exists" in r.stderr
    r = d.cli("admin", "add", "x", input="short\n", check=False)
    assert r.returncode == 1
    d.cli("admin", "passwd", "desk", input="other-Secret-8\n")
    assert admin_login(d)[1] == 401
    assert admin_login(d, password="other-Secret-8")[1] == 303
    with sqlite3.connect(d.dir / "sekisho.db") as db:
        rows = db.execute("SELECT name, password_hash FROM admin_users"
                          ).fetchall()
    assert len(rows) == 1 and rows[0][0] == "desk"
    assert rows[0][1].startswith("$y$") and "other-Secret-8" not in rows[0][1]
    listing = d.cli("admin", "list").stdout
    assert listing.startswith("desk\t") and "$y$" not in listing
    assert d.cli("admin", "del", "nobody", check=False).returncode == 1


def test_admin_trace_spam_report(admin_daemon, client_tls):
    d = admin_daemon
    d.cli("overseas", "allow", ALICE)
    assert submit_from(d, US4, client_tls) == 250
    delivered = d.wait_files(BOB, 1)[0].read_bytes()
    qid = re.search(rb"\bid ([0-9A-F]{20})\b", delivered).group(1).decode()

    w, status, _ = admin_login(d)
    assert status == 303
    _, _, page = w.request("GET", "/admin/trace")
    token = w.csrf(page)
    # without the token: refused
    assert w.request("POST", "/admin/trace",
                     {"report": delivered.decode()})[0] == 403
    # the spam attached to a report, base64 and all
    report = email.message.EmailMessage()
    report["From"] = "abuse-reporter@victim.example"
    report["Subject"] = "spam from your network"
    report.set_content("See the attached spam.\n")
    report.add_attachment(email.message_from_bytes(delivered))
    status, _, page = w.request("POST", "/admin/trace", {
        "csrf": token, "report": bytes(report).decode()})
    assert status == 200
    assert qid in page and ALICE in page and US4 in page
    # headers only, and something unrelated
    status, _, page = w.request("POST", "/admin/trace", {
        "csrf": token,
        "report": delivered.split(b"\n\n", 1)[0].decode()})
    assert qid in page and ALICE in page
    status, _, page = w.request("POST", "/admin/trace", {
        "csrf": token, "report": "Subject: hello\n\nnothing here\n"})
    assert status == 200 and "該当する当社からの送信はありません" in page
    assert qid not in page


def test_admin_dashboard(admin_daemon, client_tls):
    d = admin_daemon
    assert submit_from(d, JP4, client_tls) == 250
    assert submit_from(d, US4, client_tls) == 550
    assert submit_from(d, US4, client_tls) == 550
    w, _, _ = admin_login(d)
    status, _, page = w.request("GET", "/admin/")
    assert status == 200
    assert re.search(r'<table id="top">\n<tr>.*</tr>\n<tr><td>'
                     + re.escape(ALICE) + r"</td><td>1</td><td>1</td></tr>",
                     page), page
    assert re.search(r"<td>海外からの送信をお断り</td><td>US</td><td>2</td>",
                     page), page
    assert re.search(r'<strong id="queue">\d+</strong>', page)
    # a search shows no dashboard
    _, _, page = w.request("GET", "/admin/?q=bob")
    assert 'id="top"' not in page and BOB in page


def test_apop_on_and_off(portal_daemon, tmp_path):
    d = portal_daemon(extra=[f"apop_secret_key = {tmp_path / 'apop.key'}"],
                      more_listeners=(("pop3", "pop3", False),))
    w = Web(d.portal_port)
    w.login()
    _, _, page = w.request("GET", "/")
    assert "APOP: オフ" in page and "MD5" in page
    token = w.csrf(page)
    # the current password is required; the login password is refused
    # as the APOP secret; the two must match
    _, headers, _ = w.request("POST", "/apop", {
        "csrf": token, "action": "on", "current": "wrong-password",
        "apop": "apop-Secret-9", "apop2": "apop-Secret-9"})
    assert headers["Location"] == "/?msg=badcurrent"
    _, headers, _ = w.request("POST", "/apop", {
        "csrf": token, "action": "on", "current": ALICE_PW,
        "apop": ALICE_PW, "apop2": ALICE_PW})
    assert headers["Location"] == "/?msg=badapop"
    _, headers, _ = w.request("POST", "/apop", {
        "csrf": token, "action": "on", "current": ALICE_PW,
        "apop": "apop-Secret-9", "apop2": "apop-Secret-8"})
    assert headers["Location"] == "/?msg=mismatch"
    assert w.request("POST", "/apop", {
        "action": "on", "current": ALICE_PW, "apop": "apop-Secret-9",
        "apop2": "apop-Secret-9"})[0] == 403
    _, headers, _ = w.request("POST", "/apop", {
        "csrf": token, "action": "on", "current": ALICE_PW,
        "apop": "apop-Secret-9", "apop2": "apop-Secret-9"})
    assert headers["Location"] == "/?msg=apop_on"
    _, _, page = w.request("GET", "/?msg=apop_on")
    assert "APOP: オン" in page and "APOP をオンにしました" in page

    p = poplib.POP3("127.0.0.1", d.ports["pop3"], timeout=15)
    assert p.apop(ALICE, "apop-Secret-9").startswith(b"+OK")
    p.quit()

    _, headers, _ = w.request("POST", "/apop", {"csrf": token,
                                                "action": "off"})
    assert headers["Location"] == "/?msg=apop_off"
    p = poplib.POP3("127.0.0.1", d.ports["pop3"], timeout=15)
    with pytest.raises(poplib.error_proto):
        p.apop(ALICE, "apop-Secret-9")
    p.close()


def test_aliases_shown_escaped(portal_daemon):
    d = portal_daemon()
    d.cli("user", "alias", "add", "o'brien&co@example.jp", ALICE)
    w = Web(d.portal_port)
    w.login()
    _, _, page = w.request("GET", "/")
    assert f"{ALICE}, o&#39;brien&amp;co@example.jp</p>" in page
    assert "o'brien&co" not in page
