"""After a password is stolen (issue 17): each signal, seen by `sekisho
events` and in the score of `sekisho risk`; the graduated response (notify,
hold, suspend) with its notices and audit events; held mail kept from the
outside MX until the desk releases (exactly once) or deletes it; the desk's
undo and exemption; the desk's warning with the report's trace only.

Clients "from abroad" connect through a PROXY-protocol listener with
documentation addresses the test country database maps (geodata.py), plus
198.18.0.0/24 as TW, a second home country: a login from there is domestic
(never refused) but new for the account."""
import email
import email.policy
import re
import smtplib
import socket
import time

import pytest

from conftest import ALICE, ALICE_PW, BOB, BOB_PW, Daemon, mx_send, wait_for
from geodata import JP4, NETWORKS, US4, write_tor_files
from outbound_peer import ScriptedPeer
from pg import pg_cluster  # noqa: F401 (fixture)
from test_policy import PORTAL, ProxySMTP, message, send_from

TW4 = "198.18.0.10"
PEER = "peer.test"


@pytest.fixture
def peer():
    p = ScriptedPeer()
    yield p
    p.close()


@pytest.fixture
def risk_daemon(make_daemon, tmp_path, peer):
    def factory(extra=(), listeners=None, **kwargs):
        v4, v6 = write_tor_files(tmp_path / "geo", NETWORKS + (
            ("198.18.0.0/24", "TW"),))
        listeners = listeners or Daemon.DEFAULT_LISTENERS + (
            ("submission_proxy", "submission", True),)
        return make_daemon(
            proxy=True, listeners=listeners,
            extra=[f"geo_database = tor:{v4},{v6}",
                   "home_countries = JP", "home_countries = TW",
                   f"portal_url = {PORTAL}",
                   f"transport = {PEER} [127.0.0.1]:{peer.port}",
                   "queue_retry_min = 1s", "queue_retry_max = 2s",
                   *extra], **kwargs)
    return factory


def risk(d, account=ALICE):
    out = d.cli("risk", account).stdout
    score = float(re.search(r"(?m)^score: ([0-9.]+)$", out).group(1))
    response = re.search(r"(?m)^response: (\w+)", out).group(1)
    return score, response, out


def refused_from_abroad(d, client_tls, n):
    for _ in range(n):
        with pytest.raises(smtplib.SMTPSenderRefused):
            send_from(d, US4, client_tls)


def login(d, source, client_tls, user=ALICE, password=ALICE_PW):
    s = ProxySMTP(source, d.ports["submission_proxy"], client_tls)
    try:
        s.login_tls(user, password)
    finally:
        s.close()


def mails(d, account=ALICE):
    return [email.message_from_bytes(f.read_bytes(),
                                     policy=email.policy.default)
            for f in d.files(account)]


def notices(d, kind, account=ALICE):
    return [m for m in mails(d, account)
            if f".{kind}@" in (m["Message-ID"] or "")]


def test_notify_then_hold_then_release_once_and_delete(risk_daemon, peer,
                                                       client_tls):
    d = risk_daemon()
    send_from(d, JP4, client_tls, rcpts=(f"x@{PEER}",))  # home: known JP
    peer.wait_messages(1)
    score0, response, _ = risk(d)
    assert score0 == 0 and response == "none"

    # a login from the US, new for alice (30), and two refusals (2 x 10):
    # nothing yet (notify at 60); the overseas notice told her already
    refused_from_abroad(d, client_tls, 2)
    events = d.cli("events", ALICE).stdout
    assert "overseas_refused\t" + US4 + "\tUS" in events
    assert "login_new_country\t" + US4 + "\tUS" in events
    assert risk(d)[1] == "none"
    # the burst goes on: 30 + 4 x 10 -> notify (60), not yet hold (90)
    refused_from_abroad(d, client_tls, 2)
    score1, response, out = risk(d)
    assert 65 < score1 < 71 and response == "notify"
    assert "(automatic)" in out
    wait_for(lambda: notices(d, "risk_notify"), 30, "the notify notice")
    n = notices(d, "risk_notify")[0]
    body = n.get_content()
    assert "不正利用" in body and "someone else" in body
    assert US4 in body and "US" in body and PORTAL in body
    assert "これまでにない国からのログイン" in body
    assert "a login from a new country" in body
    assert "海外からの送信の拒否" in body
    assert not (d.spool / "queue" / "x").exists()

    # a login from a country never seen (TW, domestic-looking): +30 -> hold
    # (90)
    login(d, TW4, client_tls)
    events = d.cli("events", ALICE).stdout
    assert re.search(r"login_new_country\t" + re.escape(TW4) + r"\tTW",
                     events), events
    score2, response, out = risk(d)
    assert score2 > score1 and response == "hold"
    audit = d.cli("events", ALICE).stdout
    assert "admin_risk_notify" in audit and "admin_risk_hold" in audit
    assert "by auto: automatic: risk score" in audit
    wait_for(lambda: notices(d, "risk_hold"), 30, "the hold notice")

    # on hold: accepted with 250, kept, the outside MX gets nothing
    qid = send_from(d, JP4, client_tls, rcpts=(f"y@{PEER}",),
                    msg=message(to=f"y@{PEER}", subject="held one"))
    qid2 = send_from(d, JP4, client_tls, rcpts=(f"z@{PEER}",),
                     msg=message(to=f"z@{PEER}", subject="held two"))
    d.wait_log(rf"id={qid} queue held by=risk account={ALICE}")
    d.cli("queue", "flush")
    time.sleep(2)
    assert len(peer.messages) == 1
    listed = d.cli("queue", "list", "--held", "--account", ALICE).stdout
    assert qid in listed and qid2 in listed and "by=risk" in listed
    assert "automatic: risk score" in listed
    assert "held messages: 2" in risk(d)[2]

    # the desk releases one: delivered exactly once
    assert d.cli("queue", "release", qid).returncode == 0
    peer.wait_messages(2)
    assert d.cli("queue", "release", qid, check=False).returncode == 1
    time.sleep(1.5)
    assert len(peer.messages) == 2
    assert [r for m in peer.messages for r in m[1]].count(f"y@{PEER}") == 1
    # and deletes the other: gone, never delivered
    assert d.cli("queue", "delete", "--account", ALICE).returncode == 0
    assert qid2 not in d.cli("queue", "list").stdout
    d.cli("queue", "flush")
    time.sleep(1.5)
    assert f"z@{PEER}" not in [r for m in peer.messages for r in m[1]]

    # the desk undoes the response: mail flows again
    assert "response cleared" in d.cli("risk", ALICE, "--clear").stdout
    score3, response, _ = risk(d)
    assert response == "none" and score3 == 0
    assert "admin_risk_clear" in d.cli("events", ALICE).stdout
    send_from(d, JP4, client_tls, rcpts=(f"w@{PEER}",))
    peer.wait_messages(3)


def test_suspend_at_the_top_and_exemption(risk_daemon, client_tls):
    d = risk_daemon(extra=["risk_notify = 10", "risk_hold = 20",
                           "risk_suspend = 40"])
    send_from(d, JP4, client_tls)
    # bob is exempt: the same burst raises nothing
    d.cli("risk", BOB, "--exempt", "on")
    send_from(d, JP4, client_tls, frm=BOB, user=BOB, password=BOB_PW)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPSenderRefused):
            send_from(d, US4, client_tls, frm=BOB, user=BOB,
                      password=BOB_PW)
    assert risk(d, BOB)[0] >= 49
    assert risk(d, BOB)[1] == "none"
    assert "exempt: yes" in risk(d, BOB)[2]
    # alice: a login from the US (30) and a refusal (10): suspended
    # automatically, with the reason; she cannot log in any more
    refused_from_abroad(d, client_tls, 1)
    score, response, out = risk(d)
    assert response == "suspend" and "suspended: yes" in out
    assert "reason: automatic: risk score 40 (suspend at 40)" in out
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        login(d, JP4, client_tls)
    assert "suspended" in e.value.smtp_error.decode()
    assert "automatic: risk score" in d.cli("user", "show", ALICE).stdout
    assert "admin_risk_suspend" in d.cli("events", ALICE).stdout
    wait_for(lambda: notices(d, "risk_suspend"), 30, "the suspend notice")
    # undone by the desk: the automatic suspension goes with it
    d.cli("risk", ALICE, "--clear")
    login(d, JP4, client_tls)


def test_desk_hold_is_not_undone_by_a_subscriber(risk_daemon, peer,
                                                 client_tls):
    d = risk_daemon()
    assert "submissions held" in d.cli("risk", ALICE, "--hold").stdout
    qid = send_from(d, JP4, client_tls, rcpts=(f"h@{PEER}",))
    d.wait_log(rf"id={qid} queue held by=risk")
    assert "by the desk" in risk(d)[2]
    # the subscriber changes the password and logs in again: still held
    d.cli("user", "passwd", ALICE, input="new-password-123\n")
    send_from(d, JP4, client_tls, rcpts=(f"h2@{PEER}",),
              password="new-password-123")
    time.sleep(1.5)
    assert not peer.messages
    assert len(d.cli("queue", "list", "--held").stdout.splitlines()) >= 2


def test_signal_login_new_country_over_pop3(risk_daemon, client_tls):
    d = risk_daemon(listeners=Daemon.DEFAULT_LISTENERS + (
                        ("submission_proxy", "submission", True),
                        ("pop3_proxy", "pop3", True)))

    def pop3_login(source):
        with socket.create_connection(
                ("127.0.0.1", d.ports["pop3_proxy"]), timeout=15) as raw:
            raw.sendall(f"PROXY TCP4 {source} 192.0.2.1 40000 110\r\n"
                        .encode())
            f = raw.makefile("rb")
            assert f.readline().startswith(b"+OK")
            raw.sendall(b"STLS\r\n")
            assert f.readline().startswith(b"+OK")
            s = client_tls.wrap_socket(raw, server_hostname="localhost")
            f = s.makefile("rb")
            s.sendall(f"USER {ALICE}\r\n".encode())
            assert f.readline().startswith(b"+OK")
            s.sendall(f"PASS {ALICE_PW}\r\n".encode())
            assert f.readline().startswith(b"+OK")
            s.sendall(b"QUIT\r\n")
            f.readline()

    pop3_login(JP4)         # the first login of all: no news
    pop3_login(JP4)
    assert "login_new_country" not in d.cli("events", ALICE).stdout
    assert risk(d)[0] == 0
    pop3_login(TW4)         # domestic, but never seen for alice
    events = d.cli("events", ALICE).stdout
    assert re.search(r"login_new_country\t" + re.escape(TW4) +
                     r"\tTW\tpop3 login from TW", events), events
    assert 29 < risk(d)[0] <= 30
    pop3_login(TW4)         # seen now: no second signal
    assert d.cli("events", ALICE).stdout.count("login_new_country") == 1


def test_signal_bounces_received(risk_daemon, client_tls):
    d = risk_daemon(extra=["risk_bounces_per_hour = 3"])
    dsn = (f"From: MAILER-DAEMON@remote.example\r\nTo: {ALICE}\r\n"
           "Subject: Undelivered Mail Returned to Sender\r\n\r\nbounce\r\n")
    for _ in range(3):
        mx_send(d.ports["mx"], ALICE, dsn.encode(), sender="")
    wait_for(lambda: "bounces_received" in d.cli("events", ALICE).stdout,
             10, "the bounce signal")
    assert "3 bounces received this hour" in d.cli("events", ALICE).stdout
    assert risk(d)[0] >= 19
    # ordinary mail from others is no bounce
    assert risk(d, BOB)[0] == 0


def test_signal_first_time_recipients(risk_daemon, peer, client_tls):
    d = risk_daemon(extra=["risk_new_recipients_min = 5",
                           "risk_new_recipients_percent = 80"])
    rcpts = tuple(f"r{i}@{PEER}" for i in range(6))
    send_from(d, JP4, client_tls, rcpts=rcpts,
              msg=message(to=", ".join(rcpts)))
    events = d.cli("events", ALICE).stdout
    assert "new_recipients" in events
    assert "6 of 6 recipients today were first-time" in events
    assert risk(d)[0] >= 19
    # bob sends to the same people twice: the second time they are known
    send_from(d, JP4, client_tls, frm=BOB, user=BOB, password=BOB_PW,
              rcpts=rcpts[:2], msg=message(frm=BOB, to=rcpts[0]))
    send_from(d, JP4, client_tls, frm=BOB, user=BOB, password=BOB_PW,
              rcpts=rcpts[:2], msg=message(frm=BOB, to=rcpts[0]))
    assert "new_recipients" not in d.cli("events", BOB).stdout


def test_signal_limit_early_in_the_day(risk_daemon, client_tls):
    d = risk_daemon(extra=["risk_limit_early_hour = 24"])
    d.cli("limits", "set", ALICE, "messages_per_day=1")
    send_from(d, JP4, client_tls)
    with pytest.raises(smtplib.SMTPSenderRefused):
        send_from(d, JP4, client_tls)
    assert "limit_reached" in d.cli("events", ALICE).stdout
    out = risk(d)[2]
    assert "limit_reached" in out and "early" in out
    assert risk(d)[0] >= 29     # the early weight, not the late one


def test_signal_password_spraying_and_lock(risk_daemon, client_tls):
    d = risk_daemon(extra=["risk_spray_accounts = 3"])
    for name in ("carol@example.jp", "dave@example.jp", BOB, ALICE):
        with pytest.raises(smtplib.SMTPAuthenticationError):
            login(d, US4, client_tls, user=name, password="guess")
    events = d.cli("events", ALICE).stdout
    assert "password_spraying" in events
    assert "failed against 4 accounts" in events
    assert risk(d)[0] >= 19


def test_score_decays_with_the_clock(risk_daemon, client_tls, monkeypatch):
    d = risk_daemon(extra=["risk_half_life = 1h", "risk_notify = 0",
                           "risk_hold = 0", "risk_suspend = 0"])
    refused_from_abroad(d, client_tls, 2)
    before = risk(d)[0]
    assert before >= 19
    monkeypatch.setenv("SEKISHO_CLOCK_OFFSET", "3600")
    after = risk(d)[0]
    assert before / 2 - 1 < after < before / 2 + 1


def test_top_lists_the_accounts_most_at_risk(risk_daemon, client_tls):
    d = risk_daemon(extra=["risk_notify = 0", "risk_hold = 0",
                           "risk_suspend = 0"])
    refused_from_abroad(d, client_tls, 3)
    with pytest.raises(smtplib.SMTPSenderRefused):
        send_from(d, US4, client_tls, frm=BOB, user=BOB, password=BOB_PW)
    lines = d.cli("risk", "--top", "20").stdout.splitlines()
    assert lines[0].split() == ["SCORE", "CALLS", "RESPONSE", "ACCOUNT"]
    assert [ln.split()[-1] for ln in lines[1:]] == [ALICE, BOB]
    assert len(d.cli("risk", "--top", "1").stdout.splitlines()) == 2
    assert d.cli("risk", "--top", "0", check=False).returncode == 2


def test_warn_traces_the_report_and_leaks_nothing(risk_daemon, peer,
                                                  client_tls, tmp_path):
    d = risk_daemon()
    secret = "Buy cheap pills at shady.example SECRET-CONTENT-42"
    qid = send_from(d, US4 if False else JP4, client_tls,
                    rcpts=(f"v1@{PEER}", f"v2@{PEER}", f"v3@{PEER}"),
                    msg=message(to=f"v1@{PEER}", subject="pills",
                                body=secret))
    data = peer.wait_messages(1)[0][2].decode()
    # the report: the delivered spam with its headers, plus another
    # account's message that must not be named to alice
    qid_bob = send_from(d, JP4, client_tls, frm=BOB, user=BOB,
                        password=BOB_PW, rcpts=(f"b@{PEER}",),
                        msg=message(frm=BOB, to=f"b@{PEER}"))
    data_bob = peer.wait_messages(2)[1][2].decode()
    report = tmp_path / "report.eml"
    report.write_text("From: abuse@remote.example\n"
                      "Subject: spam from your network (complainant "
                      "Reporter-Name-77)\n\n" + data + "\n" + data_bob)
    out = d.cli("warn", ALICE, "--evidence", str(report)).stdout
    assert "1 submission(s) traced" in out
    wait_for(lambda: notices(d, "warning"), 30, "the warning")
    w = notices(d, "warning")[0]
    body = w.get_content()
    assert "迷惑メール" in body and "reported to us as spam" in body
    assert JP4 in body and "JP" in body
    assert "宛先数: 3" in body and "Recipients: 3" in body
    assert "パスワードを変更" in body and "change your password" in body
    assert PORTAL in body
    raw = b"".join(f.read_bytes() for f in d.files(ALICE))
    for leak in (b"SECRET-CONTENT-42", b"shady.example",
                 b"Reporter-Name-77", b"abuse@remote.example",
                 qid_bob.encode(), BOB.encode()):
        assert leak not in raw, leak
    assert qid  # traced by its queue id in our Received header
    assert "admin_warn" in d.cli("events", ALICE).stdout
    assert "warned:" in risk(d)[2]
    # no evidence: still a warning, nothing traced
    assert "0 submission(s) traced" in d.cli("warn", BOB).stdout
    r = d.cli("warn", "nobody@example.jp", check=False)
    assert r.returncode == 1


def test_everything_on_postgresql(risk_daemon, peer, client_tls,
                                  pg_cluster):  # noqa: F811
    """The risk queries on the other store: signals of each kind, the
    response raised once, a held commit, the desk's clear and top."""
    d = risk_daemon(store=pg_cluster.store(),
                    extra=["risk_spray_accounts = 2",
                           "risk_bounces_per_hour = 2",
                           "risk_new_recipients_min = 2"])
    send_from(d, JP4, client_tls, rcpts=(f"p1@{PEER}", f"p2@{PEER}"),
              msg=message(to=f"p1@{PEER}"))
    refused_from_abroad(d, client_tls, 1)
    for name in ("carol@example.jp", ALICE):
        with pytest.raises(smtplib.SMTPAuthenticationError):
            login(d, US4, client_tls, user=name, password="guess")
    dsn = b"Subject: bounce\r\n\r\nbounce\r\n"
    for _ in range(2):
        mx_send(d.ports["mx"], ALICE, dsn, sender="")
    events = d.cli("events", ALICE).stdout
    for t in ("login_new_country", "overseas_refused", "password_spraying",
              "bounces_received", "new_recipients"):
        assert t in events, (t, events)
    score, response, _ = risk(d)
    assert score > 90 and response == "hold"
    qid = send_from(d, JP4, client_tls, rcpts=(f"p3@{PEER}",))
    d.wait_log(rf"id={qid} queue held by=risk")
    assert ALICE in d.cli("risk", "--top", "5").stdout
    d.cli("risk", ALICE, "--clear")
    assert risk(d)[1] == "none"
    d.cli("queue", "release", "--account", ALICE)
    wait_for(lambda: any(f"p3@{PEER}" in m[1] for m in peer.messages), 30,
             "the released message")
