"""The settings page, admin pages and API against a hostile outside and a
hostile session process (issue 13, items 2, 3, 8 and 9 for the portal).

Real clients (http.client, smtplib, a raw back-side channel from
tests/e2e/seam.py) against a real daemon; after each attack the master,
back side and session processes are the same processes (conftest's
children()), the next request is served and SMTP still answers.
"""
import http.client
import re
import secrets
import smtplib
import sqlite3
import ssl
import time
import urllib.parse

import pytest

from conftest import ALICE, ALICE_PW, BOB, children
from geodata import US4
from seam import Fields, SeamChannel, be_type
from test_portal import (ADMIN_PW, ProxySMTP, Web, admin_login,  # noqa: F401
                         portal_daemon)

BIG = "x" * (100 * 1024)
NOSESSION = 1       # be_portal_result


def procs(d):
    """The master's children (back side and session processes)."""
    return set(children(d.proc.pid))


def still_serving(d, before):
    """Nothing exited: same processes, the portal and SMTP answer."""
    assert d.proc.poll() is None, "the master exited"
    assert procs(d) == before, d.log()[-3000:]
    status, _, page = Web(d.portal_port).request("GET", "/")
    assert status == 200 and 'action="/login"' in page
    s = smtplib.SMTP("127.0.0.1", d.ports["mx"], timeout=30)
    try:
        assert s.ehlo()[0] == 250
    finally:
        s.quit()


def request(w, method, path, form=None, headers=None):
    """(status, page) of one request, or (None, "") when the server
    closed the connection without an answer (a header over evhttp's
    limit)."""
    try:
        status, _, page = w.request(method, path, form, headers)
        return status, page
    except (http.client.RemoteDisconnected, ConnectionResetError,
            BrokenPipeError, ssl.SSLError):
        return None, ""


def raw_api(d, method, path, body=None, headers=None):
    """(status, text) of one API call, None when disconnected."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", d.portal_port,
                                    context=ctx, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read().decode()
    except (http.client.RemoteDisconnected, ConnectionResetError,
            BrokenPipeError, ssl.SSLError):
        return None, ""
    finally:
        c.close()


@pytest.fixture
def seam_daemon(portal_daemon):
    d = portal_daemon()
    d.cli("admin", "add", "desk", input=ADMIN_PW + "\n")
    d.token = d.cli("api-token", "add", "mypage").stdout.strip()
    return d


def logged_in(d):
    w = Web(d.portal_port)
    status, headers, _ = w.login()
    assert status == 303, status
    _, _, page = w.request("GET", "/")
    return w, Web.csrf(page)


# --- 100 KB in every form field and API parameter ---------------------------

def test_100kb_fields_on_every_form_and_api(seam_daemon):
    d = seam_daemon
    before = procs(d)
    sub, token = logged_in(d)
    adm, status, _ = admin_login(d)
    assert status == 303
    _, _, page = adm.request("GET", "/admin/account?a=" + ALICE)
    atoken = Web.csrf(page)

    def login_form(admin=False):
        w = Web(d.portal_port)
        _, _, page = w.request("GET", "/admin/" if admin else "/")
        return w, Web.csrf(page)

    # the login forms: each field in turn
    for path, admin in (("/login", False), ("/admin/login", True)):
        for field in ("user", "password", "csrf"):
            w, pre = login_form(admin)
            form = {"csrf": pre, "user": ALICE, "password": ALICE_PW}
            form[field] = BIG
            status, page = request(w, "POST", path, form)
            assert status == 413, (path, field, status)
            assert "too long" in page or "長すぎます" in page
            still_serving(d, before)

    # the subscriber's forms
    forms = [
        ("/password", {"current": ALICE_PW, "new": "n" * 20,
                       "new2": "n" * 20}),
        ("/apop", {"action": "on", "current": ALICE_PW, "apop": "a" * 20,
                   "apop2": "a" * 20}),
        ("/apop", {"action": "off"}),
        ("/overseas", {"action": "on"}),
        ("/logout", {}),
    ]
    for path, fields in forms:
        for field in list(fields) + ["csrf"]:
            form = dict(fields, csrf=token)
            form[field] = BIG
            status, page = request(sub, "POST", path, form)
            assert status == 413, (path, field, status)
            still_serving(d, before)
    # the session lives on: nothing was changed or ended
    status, _, page = sub.request("GET", "/")
    assert status == 200 and ALICE in page
    assert "APOP: off" in page or "APOP: オフ" in page

    # the admin forms
    admin_forms = [
        {"do": "suspend", "reason": "spam"},
        {"do": "resume"},
        {"do": "overseas_on"},
        {"do": "overseas_off"},
        {"do": "limits", "messages_per_day": "5",
         "recipients_per_day": "", "recipients_per_hour": "",
         "recipients_per_message": "", "overseas_recipients_per_day": ""},
    ]
    for fields in admin_forms:
        for field in ["a", "csrf"] + [k for k in fields if k != "do"]:
            form = dict(fields, a=ALICE, csrf=atoken)
            form[field] = BIG
            status, _ = request(adm, "POST", "/admin/account", form)
            assert status == 413, (fields, field, status)
            still_serving(d, before)
    for path in ("/admin/logout",):
        status, _ = request(adm, "POST", path, {"csrf": BIG})
        assert status == 413
    # a pasted report may be long (it is parsed here): many identifiers
    # of every length give one bounded request
    report = "".join(f"Message-ID: <{i}.{'m' * 900}@evil.example>\r\n"
                     for i in range(100))
    status, page = request(adm, "POST", "/admin/trace",
                           {"csrf": atoken, "report": report})
    assert status == 200 and "trace-results" in page
    # query parameters
    for path in ("/admin/?q=" + "q" * 300, "/admin/account?a=" + "a" * 300,
                 "/?page=" + "9" * 300):
        w = adm if path.startswith("/admin") else sub
        status, _ = request(w, "GET", path)
        assert status in (400, 413), (path, status)
    status, _ = request(adm, "GET", "/admin/?q=" + "q" * 100000)
    assert status is None or 400 <= status < 500
    still_serving(d, before)
    # nothing happened to the account
    _, _, page = adm.request("GET", "/admin/account?a=" + ALICE)
    assert '<p id="status" class="on">' in page

    # the API: the token, the address, every body and query parameter
    auth = {"Authorization": "Bearer " + d.token}
    for method, path, body, headers in [
        ("GET", "/api/v1/accounts/" + ALICE, None,
         {"Authorization": "Bearer " + "t" * 5000}),
        ("GET", "/api/v1/accounts/" + "a" * 5000, None, auth),
        ("POST", f"/api/v1/accounts/{ALICE}/overseas",
         '{"action": "' + BIG + '"}', auth),
        ("POST", f"/api/v1/accounts/{ALICE}/limits",
         '{"' + BIG + '": 1}', auth),
        ("POST", f"/api/v1/accounts/{ALICE}/limits",
         '{"messages_per_day": ' + "9" * 100000 + '}', auth),
        ("GET", f"/api/v1/accounts/{ALICE}/history?since=" + "9" * 3000,
         None, auth),
        ("GET", f"/api/v1/accounts/{ALICE}/history?offset=" + "9" * 3000,
         None, auth),
        ("GET", f"/api/v1/accounts/{ALICE}/history?limit=" + "9" * 3000,
         None, auth),
    ]:
        h = dict(headers)
        if body is not None:
            h["Content-Type"] = "application/json"
        status, text = raw_api(d, method, path, body, h)
        assert status in (400, 401, 413) or status is None, \
            (path[:80], status, text[:200])
        still_serving(d, before)
    for huge in ("t" * 100000,):
        status, _ = raw_api(d, "GET", "/api/v1/accounts/" + ALICE,
                            headers={"Authorization": "Bearer " + huge})
        assert status is None or 400 <= status < 500
    status, text = raw_api(d, "GET", "/api/v1/accounts/" + ALICE,
                           headers=auth)
    assert status == 200 and ALICE in text
    still_serving(d, before)


# --- huge stored text, then the pages -------------------------------------------

def submit_huge_from(d, client_tls, source):
    """One submission whose header From is a 30 KB address not hers; the
    final reply code."""
    s = ProxySMTP(source, d.ports["submission_proxy"])
    try:
        s.ehlo()
        s.starttls(context=client_tls)
        s.ehlo()
        s.login(ALICE, ALICE_PW)
        assert s.mail(ALICE)[0] == 250
        assert s.rcpt(BOB)[0] == 250
        frm = "m" * (30 * 1024) + "@evil.example"
        code, _ = s.data(f"From: <{frm}>\r\nTo: {BOB}\r\n"
                         "Subject: hi\r\n\r\nHello.\r\n")
        return code
    except smtplib.SMTPServerDisconnected:
        return None
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def test_events_with_huge_from_then_pages(seam_daemon, client_tls):
    d = seam_daemon
    before = procs(d)
    w, token = logged_in(d)
    # sending from abroad allowed, so the refusals are the From's
    status, _, _ = w.request("POST", "/overseas",
                             {"csrf": token, "action": "on"})
    assert status == 303
    for _ in range(3):
        code = submit_huge_from(d, client_tls, US4)
        assert code is None or code >= 500, code
    # rows stored before the cut existed (an old database): huge
    # details, a Message-ID, TAB and LF inside values
    now = int(time.time())
    with sqlite3.connect(d.dir / "sekisho.db") as db:
        for i in range(30):
            db.execute("INSERT INTO events (time, account, type, ip,"
                       " country, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       (now - i, ALICE, "sender_refused", US4, "US",
                        "<" + "f" * 30000 + "\t\n@evil.example>"))
            db.execute("INSERT INTO events (time, account, type, ip,"
                       " country, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       (now - i, ALICE, "admin_suspend", "127.0.0.1", None,
                        "by desk: " + "r" * 30000))
            db.execute("INSERT INTO events (time, account, type, ip,"
                       " country, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       (now - i, BOB, "admin_resume", "127.0.0.1", None,
                        "by desk: " + "r" * 30000))
            db.execute("INSERT INTO submissions (queue_id, message_id,"
                       " time, account, ip, country, tls, rcpts, size,"
                       " overseas) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (f"FFFFFFFFFFFFFFFF{i:04X}", "<" + "i" * 30000 + ">", now - i,
                        ALICE, US4, "US", "TLSv1.3 " + "c" * 30000, 1, 100,
                        1))
    # what the daemon stored itself is cut (docs/policy.md)
    with sqlite3.connect(d.dir / "sekisho.db") as db:
        mine = db.execute("SELECT length(detail) FROM events WHERE"
                          " type = 'sender_refused' AND detail NOT LIKE"
                          " '%f%'").fetchall()
    # (the SMTP side refuses a From address over 254 octets as no usable
    # From: then nothing is recorded; whatever is recorded is cut)
    assert all(n <= 200 for (n,) in mine), mine
    still_serving(d, before)

    status, _, page = w.request("GET", "/")
    assert status == 200 and ALICE in page
    assert 'id="more"' in page            # 30 rows, a page of 20
    rows = re.findall(r"<tr><td>", page)
    assert len(rows) <= 40
    status, _, page2 = w.request("GET", "/?page=1")
    assert status == 200 and "FFFFFFFFFFFFFFFF00" in page2
    # the admin's pages
    adm, status, _ = admin_login(d)
    for path in ("/admin/", "/admin/account?a=" + ALICE, "/admin/audit",
                 "/admin/audit?page=1", "/admin/trace"):
        status, _, page = adm.request("GET", path)
        assert status == 200, (path, status)
    _, _, page = adm.request("GET", "/admin/audit")
    assert 'id="more"' in page
    _, _, page = adm.request("GET", "/admin/trace")
    status, _, page = adm.request("POST", "/admin/trace", {
        "csrf": Web.csrf(page),
        "report": "".join(f"Received: from x by mail.example.jp (sekisho)"
                          f" with ESMTPSA id FFFFFFFFFFFFFFFF{i:04X};"
                          " Sun, 6 Dec 2026 10:00:00 +0900\r\n"
                          for i in range(30))})
    assert status == 200 and "FFFFFFFFFFFFFFFF0001" in page
    # the API's history too
    status, text = raw_api(d, "GET", f"/api/v1/accounts/{ALICE}/history",
                           headers={"Authorization": "Bearer " + d.token})
    assert status == 200, text[:300]
    still_serving(d, before)


def test_api_history_pages_200_long_message_ids(seam_daemon, client_tls):
    d = seam_daemon
    before = procs(d)
    s = smtplib.SMTP("127.0.0.1", d.ports["submission"], timeout=60)
    s.starttls(context=client_tls)
    s.login(ALICE, ALICE_PW)
    n = 210
    for i in range(n):
        mid = f"<{i}.{'m' * 900}@example.jp>"
        code, _ = s.mail(ALICE)
        assert code == 250
        assert s.rcpt(BOB)[0] == 250
        code, _ = s.data(f"From: {ALICE}\r\nTo: {BOB}\r\nMessage-ID: {mid}"
                         f"\r\nSubject: {i}\r\n\r\nHello.\r\n")
        assert code == 250, code
    s.quit()
    auth = {"Authorization": "Bearer " + d.token}
    import json
    seen, offset, pages = set(), 0, 0
    while True:
        status, text = raw_api(
            d, "GET", f"/api/v1/accounts/{ALICE}/history?offset={offset}",
            headers=auth)
        assert status == 200, text[:300]
        doc = json.loads(text)
        pages += 1
        for sub in doc["submissions"]:
            assert len(sub["message_id"]) <= 255
            assert ".mmmm" in sub["message_id"]
            seen.add(sub["queue_id"])
        if not doc["more"]:
            break
        assert doc["next_offset"] > offset
        offset = doc["next_offset"]
        assert pages < 20
    assert len(seen) == n and pages >= 5
    status, text = raw_api(
        d, "GET", f"/api/v1/accounts/{ALICE}/history?limit=51", headers=auth)
    assert status == 400
    still_serving(d, before)


# --- names with control characters ----------------------------------------------

def audit_rows(page):
    table = re.search(r'<table id="audit-log">(.*?)</table>', page, re.S)
    assert table, page
    return re.findall(r"<tr><td>(.*?)</tr>", table.group(1), re.S)


def test_login_names_with_lf_tab_refused_no_forged_audit_row(seam_daemon):
    d = seam_daemon
    before = procs(d)
    forged = (f"{ALICE}\n1700000000\tnobody@example.jp\tadmin_suspend\t"
              "127.0.0.1\t\tby desk")
    for i in range(10):
        w = Web(d.portal_port)
        _, _, page = w.request("GET", "/")
        name = forged if i % 2 == 0 else f"a\tb{i}@example.jp"
        status, _, page = w.request("POST", "/login", {
            "csrf": Web.csrf(page), "user": name, "password": "wrong"})
        assert status == 400, status
        assert "not allowed" in page or "使えない文字" in page
        w = Web(d.portal_port)
        _, _, page = w.request("GET", "/admin/")
        status, _, _ = w.request("POST", "/admin/login", {
            "csrf": Web.csrf(page), "user": "desk\nx", "password": "wrong"})
        assert status == 400
    # the API refuses such an address
    status, text = raw_api(
        d, "GET", "/api/v1/accounts/" + urllib.parse.quote(forged),
        headers={"Authorization": "Bearer " + d.token})
    assert status == 400 and "bad address" in text
    # the log never got the raw name
    assert "admin_suspend\t" not in d.log()
    # a row stored with TAB/LF inside (an old database) stays one row
    with sqlite3.connect(d.dir / "sekisho.db") as db:
        db.execute("INSERT INTO events (time, account, type, ip, country,"
                   " detail) VALUES (?, ?, ?, ?, ?, ?)",
                   (int(time.time()), forged, "auth_locked_account",
                    "127.0.0.1", None, "x\n1\tbob@example.jp\tadmin_resume"
                    "\t1.2.3.4\t\tby desk"))

    adm, status, _ = admin_login(d)
    assert status == 303
    _, _, page = adm.request("GET", "/admin/audit")
    assert audit_rows(page) == [], audit_rows(page)
    # one real action: exactly one row, the right one
    _, _, page = adm.request("GET", "/admin/account?a=" + ALICE)
    status, _, _ = adm.request("POST", "/admin/account", {
        "csrf": Web.csrf(page), "a": ALICE, "do": "overseas_on"})
    assert status == 303
    _, _, page = adm.request("GET", "/admin/audit")
    rows = audit_rows(page)
    assert len(rows) == 1, rows
    cells = re.findall(r"<td>(.*?)</td>", "<td>" + rows[0])
    assert cells[1] == ALICE and cells[2] == "admin_overseas_on"
    assert cells[4] == "by desk"
    still_serving(d, before)


# --- a compromised session process on the seam ------------------------------------

def session_fields(sid, csrf=None, client="127.0.0.1"):
    return Fields().str(client).str(sid).str(csrf)


def head(r):
    """HEAD of a portal reply: result, message."""
    assert not r.failed, "BE_FAIL"
    return r.u32(), r.str()


def test_seam_role_checked_by_back_side(seam_daemon):
    d = seam_daemon
    before = procs(d)
    sub, token = logged_in(d)
    sid = sub.cookies["sid"]
    with SeamChannel(d) as ch:
        # an admin action with a subscriber's session: refused
        ch.send("BE_ADMIN_SUSPEND",
                session_fields(sid, token).str(ALICE).str("forged"))
        r = ch.recv()
        assert r.type == be_type("BE_ADMIN_SUSPEND")
        assert head(r)[0] == NOSESSION
        for name, extra in (("BE_ADMIN_AUDIT", Fields().u32(0)),
                            ("BE_ADMIN_SEARCH", Fields().str("").u32(0))):
            f = session_fields(sid, token)
            f.b += extra.b
            ch.send(name, f)
            assert head(ch.recv())[0] == NOSESSION
        # a made-up session id
        fake = secrets.token_hex(32)
        ch.send("BE_PORTAL_STATUS", session_fields(fake).u32(0))
        assert head(ch.recv())[0] == NOSESSION
        ch.send("BE_PORTAL_OVERSEAS_ON", session_fields(fake, token))
        assert head(ch.recv())[0] == NOSESSION
        # an admin's session is not a subscriber's either
        adm, status, _ = admin_login(d)
        ch.send("BE_PORTAL_STATUS", session_fields(adm.cookies["asid"])
                .u32(0))
        assert head(ch.recv())[0] == NOSESSION
        # a name with LF straight on the seam: refused, no forged row
        ch.send("BE_PORTAL_LOGIN", Fields().str("127.0.0.1")
                .str(ALICE + "\n1\tx\tadmin_suspend").str("wrong"))
        assert head(ch.recv())[:2] == (3, "fail")
        # an oversize field: the request is refused whole
        ch.send("BE_PORTAL_PASSWORD",
                session_fields(sid, token).str("p" * 5000).str("q" * 20))
        assert ch.recv().failed
        # the subscriber's own request on the same channel still works
        ch.send("BE_PORTAL_STATUS", session_fields(sid).u32(0))
        r = ch.recv()
        assert head(r)[0] == 0
        r.i64(), r.str(), r.str()         # delay, until, reason
        assert r.str() is not None        # the CSRF token
        assert r.str() == ALICE
    # nothing was suspended; the pages and other sessions go on
    status, _, page = sub.request("GET", "/")
    assert status == 200 and ALICE in page
    _, _, page = adm.request("GET", "/admin/audit")
    assert audit_rows(page) == []
    still_serving(d, before)
