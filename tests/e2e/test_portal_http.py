"""The settings page's HTTP framing (issue 14 item 6, RFC 9112 6.3) and
its event texts in both languages (item 8), against a real daemon.

Framing, with raw bytes on a socket as a proxy or an attacker sends them:
a request whose body length readers could disagree on (two different
Content-Lengths, one that is not plain decimal, Content-Length with
Transfer-Encoding, a transfer coding) is answered 400/411/501 with
`Connection: close` and the connection ends: a request smuggled in its
body (`GET /smuggled`) is never answered. Equal duplicate Content-Lengths
count as one; an ordinary form post and keep-alive still work.

Texts: every event type on the subscriber's page in Japanese on the
Japanese page and in English on the English one; the admin pages' audit
log keeps the raw type and adds its meaning; the admin pages' language
link stays on the admin pages; the JSON API keeps the raw type names.
"""
import re
import socket
import ssl
import smtplib
import sqlite3
import time
import urllib.parse

import pytest

from conftest import ALICE, ALICE_PW, BOB
from geodata import US4
from test_portal import (ADMIN_PW, Web, api, admin_login,  # noqa: F401
                         portal_daemon, submit_from)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def raw(d, data, tls=False, timeout=10):
    """Send data on one connection, half-close, and read until the server
    closes; the bytes received. A server that keeps the connection open
    after answering fails the test by timeout (socket.timeout)."""
    s = socket.create_connection(("127.0.0.1", d.portal_port), timeout)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    try:
        s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk
    finally:
        s.close()


def responses(got):
    """The status codes of the responses in got, in order."""
    return [int(m) for m in re.findall(rb"(?:^|\n)HTTP/1\.[01] (\d{3}) ",
                                       got)]


def login_post(*headers, body=b"csrf=x&user=a&password=b"):
    """A login form POST with the given extra header lines."""
    head = b"POST /login HTTP/1.1\r\nHost: mail.example.jp\r\n" \
        b"Content-Type: application/x-www-form-urlencoded\r\n"
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


@pytest.fixture
def plain(portal_daemon):
    return portal_daemon(extra=["portal_plain_http = loopback"])


def refused(got, *codes):
    """Exactly one response, the refusal, with Connection: close."""
    assert len(responses(got)) == 1 and responses(got)[0] in codes, got
    head = got.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\nconnection: close" in head, got
    assert b"smuggled" not in got and b" 404 " not in got, got


# --- framing --------------------------------------------------------------------

def test_two_content_lengths_refused_and_closed(plain):
    d = plain
    body = b"csrf=x" + SMUGGLED
    # the smaller one first (evhttp framed by it, and answered the
    # smuggled request 404) and the larger one first
    for first, second in ((6, len(body)), (len(body), 6)):
        got = raw(d, login_post(b"Content-Length: %d" % first,
                                b"Content-Length: %d" % second, body=body))
        refused(got, 400)
        assert b"Content-Lengths differ" in got
    # on a GET as well (a GET may have a body: RFC 9110 9.3.1)
    got = raw(d, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
              b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED)
    refused(got, 400)
    assert "status=400" in d.log() and \
        'reason="Content-Lengths differ"' in d.log()


def test_two_content_lengths_over_tls(portal_daemon):
    d = portal_daemon()
    body = b"csrf=x" + SMUGGLED
    got = raw(d, login_post(b"Content-Length: 6",
                            b"Content-Length: %d" % len(body), body=body),
              tls=True)
    refused(got, 400)


@pytest.mark.parametrize("value", [b"+6", b"-6", b"6,6", b"6, 6", b"6,7",
                                   b"0x6", b"6 6", b"6.0", b"", b"6;"])
def test_content_length_not_decimal_refused(plain, value):
    got = raw(plain, login_post(b"Content-Length: " + value,
                                body=b"csrf=x" + SMUGGLED))
    refused(got, 400)


def test_folded_content_length_refused(plain):
    """Obsolete line folding: evhttp joins the lines ("6 6"), which is
    not a number."""
    got = raw(plain, login_post(b"Content-Length: 6", b" 6",
                                body=b"csrf=x" + SMUGGLED))
    refused(got, 400)


def test_header_name_with_space_refused(plain):
    """`Content-Length : 6` (RFC 9112 5.1: 400), which a proxy might read
    as the length while evhttp saw another header."""
    got = raw(plain, login_post(b"Content-Length : %d" % len(SMUGGLED),
                                body=SMUGGLED))
    refused(got, 400)


def test_cr_in_header_refused(plain):
    got = raw(plain, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r b\r\n\r\n"
              + SMUGGLED)
    assert responses(got) == [400], got
    assert b"smuggled" not in got and b" 404 " not in got


@pytest.mark.parametrize("order", ["cl-first", "te-first"])
def test_content_length_with_transfer_encoding_refused(plain, order):
    chunked = b"6\r\ncsrf=x\r\n0\r\n\r\n"
    lines = [b"Content-Length: %d" % len(chunked),
             b"Transfer-Encoding: chunked"]
    if order == "te-first":
        lines.reverse()
    got = raw(plain, login_post(*lines, body=chunked + SMUGGLED))
    refused(got, 400)
    # (evhttp itself may refuse first: its chunk parser is stricter
    # about this body than RFC 9112; either way 400 and closed)


def test_transfer_codings(plain):
    """chunked alone: refused clearly (411, send Content-Length); any
    other coding: 501; both close the connection."""
    chunked = b"6\r\ncsrf=x\r\n0\r\n\r\n"
    got = raw(plain, login_post(b"Transfer-Encoding: chunked",
                                body=chunked + SMUGGLED))
    refused(got, 411)
    for te in (b"gzip", b"gzip, chunked", b"chunked, chunked", b"identity",
               b"xchunked"):
        got = raw(plain, login_post(b"Transfer-Encoding: " + te,
                                    body=chunked + SMUGGLED))
        refused(got, 501, 400)      # (evhttp refuses some itself: 400)
    # evhttp reads the body by the first line as chunked, and may itself
    # refuse first (400)
    got = raw(plain, login_post(b"Transfer-Encoding: chunked",
                                b"Transfer-Encoding: chunked",
                                body=chunked + SMUGGLED))
    refused(got, 501, 400)


@pytest.mark.parametrize("method", [b"HEAD", b"TRACE", b"OPTIONS", b"PUT",
                                    b"DELETE"])
def test_other_methods_with_a_body_closed(plain, method):
    """evhttp reads no body for HEAD and TRACE: a method the page does not
    serve is answered once (evhttp's 501) and the connection closed, so
    a body after it is never read as a request."""
    got = raw(plain, method + b" / HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED)
    refused(got, 501, 405, 400)


def test_equal_content_lengths_count_as_one(plain):
    """RFC 9112 6.3 allows it: two equal Content-Length lines frame the
    body as one would; the form post is served like any other."""
    w = Web(plain.portal_port, tls=False)
    _, _, page = w.request("GET", "/")
    body = urllib.parse.urlencode({"csrf": Web.csrf(page), "user": ALICE,
                                   "password": ALICE_PW}).encode()
    got = raw(plain, login_post(
        b"Cookie: " + "; ".join(f"{k}={v}" for k, v in
                                w.cookies.items()).encode(),
        b"Content-Length: %d" % len(body), b"content-length: %d" % len(body),
        b"Connection: close", body=body))
    assert responses(got) == [303], got
    assert b"sid=" in got


def test_normal_post_and_keep_alive_still_work(plain):
    w = Web(plain.portal_port, tls=False)
    status, _, _ = w.login()
    assert status == 303 and "sid" in w.cookies
    # two pipelined GETs on one connection: two answers, as before
    got = raw(plain, b"GET /static/portal.css HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"\r\n")
    assert responses(got) == [200, 404], got


def test_daemon_keeps_serving_after_refusals(plain):
    for _ in range(3):
        raw(plain, login_post(b"Content-Length: 1", b"Content-Length: 2",
                              body=b"ab"))
    status, _, page = Web(plain.portal_port, tls=False).request("GET", "/")
    assert status == 200 and 'id="login"' in page


# --- event texts ----------------------------------------------------------------

def events_cells(page):
    """The "what" column of the subscriber page's events table."""
    table = re.search(r'<table id="events">(.*?)</table>', page, re.S)
    assert table, page
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)[1:]
    return [re.findall(r"<td>(.*?)</td>", r)[1] for r in rows]


JA = {"overseas_refused": "海外からの送信をお断り",
      "sender_refused": "差出人アドレスが違うためお断り",
      "overseas_allowed": "海外からの送信を許可（運用者）",
      "overseas_denied": "海外からの送信の許可を取り消し（運用者）",
      "limits_changed": "送信数の上限を変更（運用者）"}
EN = {"overseas_refused": "Refused: sent from abroad",
      "sender_refused": "Refused: sender address not allowed",
      "overseas_allowed": "Sending from abroad allowed (operator)",
      "overseas_denied": "Sending from abroad revoked (operator)",
      "limits_changed": "Sending limits changed (operator)"}


def test_event_types_in_japanese_and_english(portal_daemon, client_tls):
    d = portal_daemon()
    d.cli("admin", "add", "desk", input=ADMIN_PW + "\n")
    # events of several types: refused from abroad, a sender not ours,
    # permission by the operator, revoked, limits changed
    assert submit_from(d, US4, client_tls) == 550
    with smtplib.SMTP("127.0.0.1", d.ports["submission"]) as s:
        s.starttls(context=client_tls)
        s.login(ALICE, ALICE_PW)
        code, _ = s.mail(BOB)
        if code == 250:
            s.rcpt(BOB)
            code, _ = s.data(f"From: {BOB}\r\nTo: {BOB}\r\n\r\nhi\r\n")
        assert code >= 500
    d.cli("overseas", "allow", ALICE)
    d.cli("overseas", "deny", ALICE)
    d.cli("limits", "set", ALICE, "recipients_per_day=250")
    types = d.cli("events", ALICE).stdout
    for t in JA:
        assert t in types, types

    w = Web(d.portal_port)
    assert w.login()[0] == 303
    _, _, page = w.request("GET", "/?lang=ja")
    cells = events_cells(page)
    for t, text in JA.items():
        assert text in cells, (t, cells)
    assert not any(re.fullmatch(r"[a-z_]+", c) for c in cells), cells
    _, _, page = w.request("GET", "/?lang=en")
    cells = events_cells(page)
    for t, text in EN.items():
        assert text in cells, (t, cells)
    assert not any(re.fullmatch(r"[a-z_]+", c) for c in cells), cells

    # the API keeps the raw names (machine-readable)
    token = d.cli("api-token", "add", "mypage").stdout.strip()
    status, doc = api(d, "GET", ALICE + "/history", token=token)
    assert status == 200, doc
    assert "overseas_refused" in str(doc) and "limits_changed" in str(doc)
    assert "海外" not in str(doc)

    # the admin pages: the account's events translated, the audit log
    # with the raw type and its meaning
    a, status, _ = admin_login(d)
    assert status == 303
    _, _, page = a.request("GET", "/admin/account?a=" +
                           urllib.parse.quote(ALICE) + "&lang=ja")
    assert JA["limits_changed"] in page and JA["overseas_refused"] in page
    _, _, page = a.request("GET", "/admin/account?a=" +
                           urllib.parse.quote(ALICE))
    status, _, _ = a.request("POST", "/admin/account", {
        "csrf": Web.csrf(page), "a": ALICE, "do": "overseas_on"})
    assert status == 303
    _, _, page = a.request("GET", "/admin/audit?lang=en")
    assert re.search(r"<td>admin_overseas_on</td>.*"
                     r"<td>Sending from abroad allowed \(administrator\)</td>",
                     page), page
    _, _, page = a.request("GET", "/admin/audit?lang=ja")
    assert "<td>海外からの送信を許可（管理者）</td>" in page


def test_unknown_event_type_shown_escaped(portal_daemon):
    """A type the table does not know (a newer node's, say) is shown as
    it is, escaped."""
    d = portal_daemon()
    with sqlite3.connect(d.dir / "sekisho.db") as db:
        db.execute("INSERT INTO events (time, account, type, ip, country,"
                   " detail) VALUES (?, ?, ?, ?, ?, ?)",
                   (int(time.time()), ALICE, "<b>new_type", None, None,
                    None))
    w = Web(d.portal_port)
    assert w.login()[0] == 303
    _, _, page = w.request("GET", "/")
    assert "&lt;b&gt;new_type" in events_cells(page), events_cells(page)
    assert "<b>new_type" not in page


def test_admin_language_link_stays_on_admin_pages(portal_daemon):
    d = portal_daemon()
    w = Web(d.portal_port)
    _, _, page = w.request("GET", "/admin/")
    link = re.search(r'id="lang" href="([^"]+)"', page).group(1)
    assert link.startswith("/admin/"), link
    status, _, page = w.request("GET", link)
    assert status == 200
    assert 'action="/admin/login"' in page, page
    # the subscriber's page links to itself
    _, _, page = w.request("GET", "/")
    assert re.search(r'id="lang" href="/\?lang=', page)
