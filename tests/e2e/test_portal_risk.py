"""Issue 17 on the pages: the subscriber sees the hold and the desk's
warning on the settings page (in a real browser); the desk sees the score,
the held mail (headers, recipients, size) and releases it (delivered once,
to the outside MX) or deletes it from the admin page; the list of accounts
most at risk. Attackers: a subscriber cannot release their own held mail
(HTTP nor seam), and a session process cannot mark or unmark a message
held."""
import json
import os
import re
import subprocess
import time

import pytest

from conftest import ALICE, ALICE_PW, REPO, wait_for
from geodata import JP4, US4
from outbound_peer import ScriptedPeer
from seam import Fields, SeamChannel, be_type
from test_portal import (ADMIN_PW, CHROMIUM, ProxySMTP, Web,  # noqa: F401
                         admin_login, portal_daemon)
from test_seam import commit, queue_id, rcpt, spool_write

PEER = "peer.test"
NODE_SCRIPT = REPO / "tests" / "portal" / "risk.js"
NOSESSION = 1


@pytest.fixture
def peer():
    p = ScriptedPeer()
    yield p
    p.close()


@pytest.fixture
def risk_portal(portal_daemon, peer):
    d = portal_daemon(extra=[f"transport = {PEER} [127.0.0.1]:{peer.port}",
                             "queue_retry_min = 1s",
                             "queue_retry_max = 2s"])
    d.cli("admin", "add", "desk", input=ADMIN_PW + "\n")
    return d


def send_out(d, client_tls, rcpt_, subject, source=JP4):
    """alice submits one message to an outside recipient; its queue ID."""
    s = ProxySMTP(source, d.ports["submission_proxy"])
    try:
        s.ehlo()
        s.starttls(context=client_tls)
        s.ehlo()
        s.login(ALICE, ALICE_PW)
        s.mail(ALICE)
        s.rcpt(rcpt_)
        code, text = s.data(f"From: {ALICE}\r\nTo: {rcpt_}\r\n"
                            f"Subject: {subject}\r\n\r\nbody {subject}\r\n")
        assert code == 250, text
        return re.search(rb"queued as ([0-9A-F]{20})", text).group(1) \
            .decode()
    finally:
        s.quit()


def browser(d, phase, state, shots, user, password, *args):
    if not (REPO / "node_modules" / "playwright-core").is_dir() or \
            not os.path.exists(CHROMIUM):
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


def test_hold_and_warning_in_browser_desk_releases(risk_portal, peer,
                                                   client_tls, tmp_path):
    d = risk_portal
    d.cli("risk", ALICE, "--hold")
    q1 = send_out(d, client_tls, f"one@{PEER}", "first held")
    q2 = send_out(d, client_tls, f"two@{PEER}", "second held")
    d.wait_log(rf"id={q2} queue held by=risk")
    report = tmp_path / "report.eml"
    report.write_text(f"Received: by mail.example.jp (sekisho) with "
                      f"ESMTPSA id {q1};\n\tnow\nSubject: SECRET-REPORT\n\n")
    assert "1 submission(s) traced" in d.cli(
        "warn", ALICE, "--evidence", str(report)).stdout
    shots = tmp_path / "shots"
    shots.mkdir()

    out = browser(d, "subscriber", tmp_path / "sub.json", shots, ALICE,
                  ALICE_PW)
    assert out["account"] == ALICE
    assert "保留" in out["hold"] and "パスワード" in out["hold"]
    assert "迷惑メール" in out["warning"] and JP4 in out["trace"]
    assert "SECRET-REPORT" not in out["warning"]
    assert out["score"] is None           # the score is the desk's
    assert "held, not delivered" in out["hold_en"]
    assert "reported to us as spam" in out["warning_en"]

    time.sleep(1)
    assert not peer.messages              # held: the outside MX got nothing
    out = browser(d, "desk-release", tmp_path / "desk.json", shots, "desk",
                  ADMIN_PW, ALICE)
    assert ALICE in out["top"]
    assert out["held_before"] == "2"
    assert f"one@{PEER}" in out["held_table"]
    assert "Subject: first held" in out["held_table"]
    assert "risk" in out["held_table"]
    assert out["released_id"] == q1
    assert out["held_after"] == "1" and q1 not in out["held_table_after"]
    assert out["held_end"] == "0"
    assert "保留メールを配送" in out["audit"] and \
        "保留メールを削除" in out["audit"]
    peer.wait_messages(1)
    d.cli("queue", "flush")
    time.sleep(1.5)
    assert [m[1] for m in peer.messages] == [[f"one@{PEER}"]]
    assert q2 not in d.cli("queue", "list").stdout
    for name in ("risk-subscriber-ja.png", "risk-admin-account.png"):
        assert (shots / name).stat().st_size > 1000


def test_subscriber_cannot_release_held_mail(risk_portal, peer, client_tls):
    d = risk_portal
    d.cli("risk", ALICE, "--hold")
    qid = send_out(d, client_tls, f"x@{PEER}", "held")
    d.wait_log(rf"id={qid} queue held by=risk")
    sub = Web(d.portal_port)
    assert sub.login()[0] == 303
    _, _, page = sub.request("GET", "/")
    assert 'id="risk-hold"' in page
    assert 'do" value="release"' not in page
    token = Web.csrf(page)
    sid = sub.cookies["sid"]
    # the admin form with a subscriber's session: not an admin
    for what in ("release", "risk_clear", "exempt_on"):
        status, headers, page = sub.request("POST", "/admin/account", {
            "csrf": token, "a": ALICE, "do": what, "id": qid})
        assert status != 303 or "msg=done" not in headers.get(
            "Location", "")
    # straight on the seam, as a compromised session process would
    with SeamChannel(d) as ch:
        for name, extra in (("BE_ADMIN_HELD_RELEASE", Fields().str(ALICE)
                             .str(qid)),
                            ("BE_ADMIN_HELD_RELEASE", Fields().str(ALICE)
                             .str(None)),
                            ("BE_ADMIN_RISK_CLEAR", Fields().str(ALICE)),
                            ("BE_ADMIN_RISK_EXEMPT_ON", Fields().str(ALICE))):
            f = Fields().str("127.0.0.1").str(sid).str(token)
            f.b += extra.b
            ch.send(name, f)
            r = ch.recv()
            assert r.type == be_type(name)
            assert not r.failed and r.u32() == NOSESSION
    time.sleep(1.5)
    assert not peer.messages
    assert qid in d.cli("queue", "list", "--held").stdout
    assert "response: hold" in d.cli("risk", ALICE).stdout


def test_session_process_cannot_mark_or_unmark_held(risk_portal, peer):
    d = risk_portal
    with SeamChannel(d) as ch:
        # an envelope that tries to say "held" (or "not held"): a field
        # the queue does not take from a session, refused at commit
        for line in ("hold no", "held 0", "hold risk"):
            assert rcpt(ch, 1, ALICE)[0] == 0
            qid = queue_id()
            size = spool_write(ch, 1, qid, "x@example.org",
                               [(ALICE, ALICE)])
            path = d.spool / "incoming" / qid
            data = path.read_bytes()
            path.write_bytes(data.replace(b"smtputf8 0\n",
                                          f"smtputf8 0\n{line}\n".encode()))
            rep = commit(ch, 1, qid, size)
            assert rep is None or rep.failed or rep.u32() != 0
            assert not (d.spool / "queue" / qid).exists()
            assert not (d.spool / "queue" / f"{qid}.hold").exists()
        # the desk's hold: a session's honest commit of alice's mail on
        # the seam is held all the same (the back side decides)
        d.cli("risk", ALICE, "--hold")
        rep = ch.request("BE_AUTH", Fields().u64(2).str("smtp").str("PLAIN")
                         .str(ALICE).str(ALICE_PW).str("127.0.0.1"))
        assert rep.u32() == 0
        rep = ch.request("BE_POLICY_MAIL", Fields().u64(2).str(ALICE)
                         .str("127.0.0.1"))
        assert rep.u32() == 0
        assert rcpt(ch, 2, f"out@{PEER}")[0] == 1     # BE_RCPT_REMOTE
        qid = queue_id()
        size = spool_write(ch, 2, qid, ALICE, [(f"out@{PEER}", None)],
                           auth_=ALICE, header_from=ALICE)
        rep = commit(ch, 2, qid, size)
        assert rep is not None and not rep.failed and rep.u32() == 0
    wait_for(lambda: (d.spool / "queue" / f"{qid}.hold").exists(), 10,
             "the hold mark")
    d.cli("queue", "flush")
    time.sleep(1.5)
    assert not peer.messages


def test_admin_risk_actions_are_audited(risk_portal, client_tls):
    d = risk_portal
    # a refusal from abroad after a login from a new country: a score
    send_out(d, client_tls, f"a@{PEER}", "home")
    s = ProxySMTP(US4, d.ports["submission_proxy"])
    s.ehlo()
    s.starttls(context=client_tls)
    s.ehlo()
    s.login(ALICE, ALICE_PW)
    assert s.mail(ALICE)[0] == 550
    s.quit()
    w, status, _ = admin_login(d)
    _, _, page = w.request("GET", "/admin/risk")
    assert ALICE in page and 'id="risk-top"' in page
    _, _, page = w.request("GET", "/admin/account?a=" + ALICE)
    assert re.search(r'id="score">4\d\.\d<', page), page
    token = Web.csrf(page)
    for what, expect in (("exempt_on", "exempt from the automatic"),
                         ("exempt_off", "no longer exempt"),
                         ("risk_hold", "submissions held"),
                         ("risk_clear", "signals so far forgiven")):
        status, headers, _ = w.request("POST", "/admin/account", {
            "csrf": token, "a": ALICE, "do": what})
        assert status == 303 and headers["Location"].endswith("msg=done")
        assert expect in d.cli("events", ALICE).stdout
    status, headers, _ = w.request("POST", "/admin/account", {
        "csrf": token, "a": ALICE, "do": "warn", "report": "nothing"})
    assert headers["Location"].endswith("msg=warned")
    wait_for(lambda: any(b".warning@" in f.read_bytes()
                         for f in d.files(ALICE)), 30, "the warning")
    audit = d.cli("events", ALICE).stdout
    assert "admin_warn" in audit and "by desk" in audit
    # a malformed queue id in the form is refused before the back side
    status, _, _ = w.request("POST", "/admin/account", {
        "csrf": token, "a": ALICE, "do": "release", "id": "../../x"})
    assert status == 400
