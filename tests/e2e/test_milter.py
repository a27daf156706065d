"""Mail filters over the milter protocol (issue 16): a filter on Sendmail's
real libmilter (python3-milter, tests/e2e/milter_peer.py) on loopback, asked
by the back side at the end of DATA. Each change a filter can make, each
verdict, the macros it sees per role, and filters that are down, hang or
answer garbage: the default action, the daemon alive, nothing that got 250
lost."""
import json
import re
import smtplib
import urllib.request

import pytest

import milter_peer
from conftest import (ALICE, ALICE_PW, BOB, HOSTNAME, QUEUE_ID_RE, RawSMTP,
                      dot_stuff, free_port, split_received, wait_for)


@pytest.fixture
def peer(tmp_path):
    """The pymilter filter: (spec, directory of its per-message records)."""
    out = tmp_path / "milter-out"
    out.mkdir()
    port = free_port()
    proc = milter_peer.start(port, out)
    yield f"inet:127.0.0.1:{port}", out
    proc.terminate()
    proc.wait(10)


def message(subject, extra=b"", frm=b"someone@example.org"):
    return (b"From: " + frm + b"\r\nTo: " + BOB.encode() + b"\r\n"
            b"Subject: " + subject.encode() + b"\r\n" + extra +
            b"Message-ID: <" + subject.replace(" ", "-").encode() +
            b"@example.org>\r\n"
            b"Date: Tue, 03 Mar 2026 09:00:00 +0000\r\n\r\n"
            b"body of the message\r\n")


def mx_try(port, rcpts, data, sender="sender@example.org"):
    """One transaction on mx; returns (code, reply lines) of the final dot."""
    with RawSMTP(port) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250
        for r in rcpts:
            code, lines = c.cmd(f"RCPT TO:<{r}>")
            assert code == 250, lines
        assert c.cmd("DATA")[0] == 354
        c.send(dot_stuff(data) + b".\r\n")
        code, lines = c.reply()
        c.cmd("QUIT")
        return code, lines


def queued(lines):
    m = QUEUE_ID_RE.search(lines[-1].encode())
    assert m, lines
    return m.group(1).decode()


def record(out, qid):
    """What the filter saw for queue id qid."""
    path = out / f"{qid}.json"
    wait_for(path.exists, 10, f"the filter's record {path}")
    return json.loads(path.read_text())


def milters(spec, action="tempfail", role="mx", timeouts=True):
    extra = [f"milters_{role} = {spec}",
             f"milter_default_action = {action}"]
    if timeouts:
        extra += ["milter_connect_timeout = 2s",
                  "milter_command_timeout = 2s",
                  "milter_eom_timeout = 3s"]
    return extra


def test_clean_message_passes_with_macros(make_daemon, peer):
    spec, out = peer
    d = make_daemon(extra=milters(spec))
    sent = message("plain")
    code, lines = mx_try(d.ports["mx"], [BOB], sent)
    assert code == 250, lines
    qid = queued(lines)
    data = d.wait_message(BOB, qid).read_bytes()
    hdr, rest = split_received(data)
    assert rest == sent.replace(b"\r\n", b"\n")
    ev = record(out, qid)
    m = ev["macros"]
    assert m["i"] == qid
    assert m["j"] == HOSTNAME
    assert m["{daemon_name}"] == HOSTNAME
    assert m["{if_name}"] == HOSTNAME
    assert m["{client_addr}"] == "127.0.0.1"
    assert m["{mail_addr}"] == "sender@example.org"
    assert m["{rcpt_addr}"] == BOB
    # an MX message carries no authentication macros
    assert "{auth_authen}" not in m and "{auth_type}" not in m
    assert ev["helo"] == "client.example.org"
    assert ev["from"] == "<sender@example.org>"
    assert ev["rcpts"] == [f"<{BOB}>"]
    # the filter sees our Received header first, then the message's
    names = [h[0] for h in ev["headers"]]
    assert names[0] == "Received"
    assert names[1:4] == ["From", "To", "Subject"]
    # values as Sendmail sends them: no leading space, no line end
    assert ev["headers"][3] == ["Subject", "plain"]
    assert ev["headers"][1] == ["From", "someone@example.org"]
    assert ev["body"] == "body of the message\r\n"
    d.wait_log(rf"id={qid} milter={re.escape(spec)} verdict=continue "
               r"changes=0")


def header_section(data):
    """The delivered file's header fields as (name, value) pairs, in order,
    after the Return-Path the delivery adds."""
    head = data.split(b"\n\n", 1)[0].decode()
    fields = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += "\n" + line
        else:
            name, _, value = line.partition(":")
            fields.append([name, value.strip()])
    if fields and fields[0][0] == "Return-Path":
        fields = fields[1:]
    return fields


def test_header_changes(make_daemon, peer):
    spec, out = peer
    d = make_daemon(extra=milters(spec))
    sent = message("addheader insheader chgheader delheader chgreceived",
                   extra=b"X-Change-Me: original\r\nX-Delete-Me: gone\r\n")
    code, lines = mx_try(d.ports["mx"], [BOB], sent)
    assert code == 250, lines
    qid = queued(lines)
    data = d.wait_message(BOB, qid).read_bytes()
    fields = header_section(data)
    names = [f[0] for f in fields]
    # our Received stays first and unchanged; the inserted field comes
    # right after it, the added one last
    assert names[0] == "Received" and qid in fields[0][1], fields
    assert "forged" not in fields[0][1]
    assert names[1] == "X-Filter-Inserted", names
    assert fields[1][1] == "at the top"
    assert names[-1] == "X-Filter-Added" and \
        fields[-1][1] == "yes, by the test", fields
    assert ["X-Change-Me", "changed by filter"] in fields
    assert "X-Delete-Me" not in names
    assert "original" not in data.decode()
    assert data.endswith(b"\n\nbody of the message\n")
    d.wait_log(rf"id={qid} milter: change of our own Received header "
               r"ignored")
    d.wait_log(rf"id={qid} milter=\S+ verdict=continue changes=5")


def test_replace_body(make_daemon, peer):
    spec, out = peer
    d = make_daemon(extra=milters(spec))
    code, lines = mx_try(d.ports["mx"], [BOB], message("replbody"))
    assert code == 250, lines
    qid = queued(lines)
    data = d.wait_message(BOB, qid).read_bytes()
    assert data.endswith(b"\n\nthe filter's new body\nsecond line\n"), data
    assert b"body of the message" not in data
    # the headers are the message's own
    assert [f[0] for f in header_section(data)][:3] == \
        ["Received", "From", "To"]


def test_change_sender_add_and_delete_recipient(make_daemon, peer):
    spec, out = peer
    d = make_daemon(extra=milters(spec))
    code, lines = mx_try(d.ports["mx"], [BOB],
                         message("chgfrom addrcpt delrcpt"))
    assert code == 250, lines
    qid = queued(lines)
    data = d.wait_message(ALICE, qid).read_bytes()
    assert data.startswith(b"Return-Path: <changed-sender@example.org>"), \
        data[:200]
    d.wait_queue_empty()
    # bob was deleted by the filter: nothing for him
    assert d.files(BOB) == []
    d.wait_log(rf"id={qid} deliver rcpt={ALICE} .*status=delivered")


@pytest.mark.parametrize("word,code,text", [
    ("reject", 550, "5.7.1 Custom rejection by the test filter"),
    ("plainreject", 550, "5.7.1 Message refused by a mail filter"),
    ("tempfail", 451, "4.7.1 Custom deferral by the test filter"),
])
def test_refusals_reach_the_client(make_daemon, peer, word, code, text):
    spec, out = peer
    d = make_daemon(extra=milters(spec))
    got, lines = mx_try(d.ports["mx"], [BOB], message(word))
    assert got == code, lines
    assert lines[-1].endswith(text), lines
    # nothing queued, nothing left half-written
    assert d.queue_files() == []
    assert list((d.spool / "incoming").iterdir()) == []
    d.wait_log(rf"milter={re.escape(spec)} verdict="
               rf"{'tempfail' if code == 451 else 'reject'} reply=")
    # and the next message goes through
    got, lines = mx_try(d.ports["mx"], [BOB], message("plain after"))
    assert got == 250, lines
    d.wait_message(BOB, queued(lines))


def test_discard_acknowledges_and_drops(make_daemon, peer):
    spec, out = peer
    d = make_daemon(extra=milters(spec))
    got, lines = mx_try(d.ports["mx"], [BOB], message("discard"))
    assert got == 250, lines
    d.wait_log(r"verdict=discard")
    d.wait_log(r"discarded by a mail filter")
    assert d.queue_files() == []
    assert d.files(BOB) == []


def test_accept_delivers(make_daemon, peer):
    spec, out = peer
    mport = free_port()
    d = make_daemon(extra=milters(spec) +
                    [f"listen = metrics 127.0.0.1:{mport}"])
    got, lines = mx_try(d.ports["mx"], [BOB], message("accept"))
    assert got == 250, lines
    qid = queued(lines)
    d.wait_message(BOB, qid)
    d.wait_log(rf"id={qid} milter=\S+ verdict=accept changes=0")
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics",
                                timeout=10) as r:
        text = r.read().decode()
    assert 'sekisho_milter_verdicts_total{verdict="accept"} 1' in text, text


def test_quarantine_holds_until_released(make_daemon, peer):
    spec, out = peer
    d = make_daemon(extra=milters(spec))
    got, lines = mx_try(d.ports["mx"], [BOB], message("quarantine"))
    assert got == 250, lines
    qid = queued(lines)
    d.wait_log(rf"id={qid} held by=milter")
    listing = d.cli("queue", "list").stdout
    line = [ln for ln in listing.splitlines() if ln.startswith(qid)]
    assert line and "HELD" in line[0] and "by=milter" in line[0], listing
    assert "test quarantine reason" in line[0], listing
    # held: never delivered by itself
    d.wait_log(rf"id={qid} milter=\S+ verdict=quarantine")
    assert d.files(BOB) == []
    d.cli("queue", "release", qid)
    d.wait_message(BOB, qid)


def submit(d, client_tls, data, rcpts=(BOB,)):
    with smtplib.SMTP("127.0.0.1", d.ports["submission"], timeout=30) as s:
        s.ehlo("client.example.jp")
        s.starttls(context=client_tls)
        s.ehlo("client.example.jp")
        s.login(ALICE, ALICE_PW)
        s.mail(ALICE)
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, resp = s.data(data)
        return code, resp.decode()


def test_submission_macros_and_roles(make_daemon, peer, client_tls):
    spec, out = peer
    d = make_daemon(extra=milters(spec, role="submission"))
    sent = message("submission", frm=ALICE.encode())
    code, resp = submit(d, client_tls, sent)
    assert code == 250, resp
    qid = QUEUE_ID_RE.search(resp.encode()).group(1).decode()
    d.wait_message(BOB, qid)
    m = record(out, qid)["macros"]
    assert m["{auth_authen}"] == ALICE
    assert m["{auth_type}"] == "PLAIN"
    assert m["{daemon_name}"] == HOSTNAME
    assert re.fullmatch(r"TLSv1\.[23]", m["{tls_version}"]), m
    assert m["{cipher}"], m
    assert m["{mail_addr}"] == ALICE
    # the same daemon's MX has no filter: that message is not shown to it
    code, lines = mx_try(d.ports["mx"], [BOB], message("mx side"))
    assert code == 250, lines
    qid2 = queued(lines)
    d.wait_message(BOB, qid2)
    assert not (out / f"{qid2}.json").exists()


def test_submission_refused_by_filter_is_not_counted(make_daemon, peer,
                                                    client_tls):
    spec, out = peer
    d = make_daemon(extra=milters(spec, role="submission"))
    code, resp = submit(d, client_tls, message("reject", frm=ALICE.encode()))
    assert code == 550 and "Custom rejection" in resp, resp
    code, resp = submit(d, client_tls, message("fine", frm=ALICE.encode()))
    assert code == 250, resp
    # the filter's refusal of the subscriber's own mail is a risk signal
    # (issue 17), with the filter's reply
    events = d.cli("events", ALICE).stdout
    assert "spam_verdict" in events, events
    assert "Custom rejection by the test filter" in events, events


# ---- filters that are down, hang or talk garbage ---------------------

EXPECT = {"tempfail": (451, "4.7.1"), "reject": (554, "5.7.1"),
          "accept": (250, "2.0.0")}


@pytest.mark.parametrize("mode", ["down", "hang", "garbage", "oversize",
                                  "midgarbage"])
@pytest.mark.parametrize("action", ["tempfail", "accept", "reject"])
def test_broken_filter_gets_the_default_action(make_daemon, mode, action):
    port = free_port()
    bad = None if mode == "down" else milter_peer.BadPeer(port, mode)
    try:
        d = make_daemon(extra=milters(f"inet:127.0.0.1:{port}", action))
        code, lines = mx_try(d.ports["mx"], [BOB], message("broken"))
        want_code, want_status = EXPECT[action]
        assert code == want_code, lines
        assert lines[-1][4:].startswith(want_status), lines
        d.wait_log(rf"milter=inet:127\.0\.0\.1:{port} verdict=default "
                   rf"action={action} reason=")
        if action == "accept":
            # acknowledged: on disk and delivered, whole
            qid = queued(lines)
            data = d.wait_message(BOB, qid).read_bytes()
            assert data.endswith(b"\n\nbody of the message\n")
        else:
            assert d.queue_files() == []
        assert list((d.spool / "incoming").iterdir()) == []
        assert d.running()
        # the daemon still serves: a second message gets the same answer
        code2, lines2 = mx_try(d.ports["mx"], [BOB], message("again"))
        assert code2 == want_code, lines2
    finally:
        if bad is not None:
            bad.close()


def mx_session(port, datas, sender="sender@example.org"):
    """Several transactions in one SMTP session on mx: the (code, reply
    lines) of each final dot."""
    out = []
    with RawSMTP(port) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        for data in datas:
            assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250
            code, lines = c.cmd(f"RCPT TO:<{BOB}>")
            assert code == 250, lines
            assert c.cmd("DATA")[0] == 354
            c.send(dot_stuff(data) + b".\r\n")
            out.append(c.reply())
        c.cmd("QUIT")
    return out


def records(out, n):
    """The filter's records once there are n, oldest message first."""
    wait_for(lambda: len(list(out.glob("*.json"))) >= n, 10,
             f"{n} records of the filter")
    recs = [json.loads(p.read_text()) for p in out.glob("*.json")]
    return sorted(recs, key=lambda r: (r["conn"], r["seq"]))


def test_session_messages_share_one_filter_connection(make_daemon, peer):
    """The messages of one SMTP session reach the filter on one connection
    (as Postfix's smtpd keeps its milter connections for the session),
    each seen as itself: its own headers, recipients and queue id, after
    an accepted and after a refused message alike. Another session gets
    another connection."""
    spec, out = peer
    d = make_daemon(extra=milters(spec))
    res = mx_session(d.ports["mx"], [message("one addheader"),
                                     message("two reject"),
                                     message("three")])
    assert [code for code, _ in res] == [250, 550, 250], res
    assert "Custom rejection by the test filter" in res[1][1][-1]
    q1, q3 = queued(res[0][1]), queued(res[2][1])
    recs = records(out, 3)
    assert len({r["conn"] for r in recs}) == 1, recs
    assert [r["seq"] for r in recs] == [1, 2, 3]
    assert [r["subject"] for r in recs] == ["one addheader", "two reject",
                                            "three"]
    for r in recs:
        assert [h[1].strip() for h in r["headers"]
                if h[0].lower() == "subject"] == [r["subject"]]
        assert r["rcpts"] == [f"<{BOB}>"]
        assert r["helo"] == "client.example.org"
        assert r["macros"]["{client_addr}"] == "127.0.0.1"
    assert recs[0]["macros"]["i"] == q1 and recs[2]["macros"]["i"] == q3
    d1 = d.wait_message(BOB, q1).read_bytes()
    d3 = d.wait_message(BOB, q3).read_bytes()
    assert b"X-Filter-Added: yes, by the test" in d1
    assert b"X-Filter-Added" not in d3
    # a new SMTP session: a new connection (CONNECT is per session)
    code, lines = mx_try(d.ports["mx"], [BOB], message("four"))
    assert code == 250, lines
    recs = records(out, 4)
    assert recs[-1]["subject"] == "four"
    assert recs[-1]["conn"] != recs[0]["conn"] and recs[-1]["seq"] == 1


def test_filter_connection_quit_when_the_session_ends(make_daemon):
    """The kept connection serves the session's messages and is quit when
    the SMTP session ends (not left open at the filter until it times
    out): what Postfix does at the end of an smtpd session."""
    port = free_port()
    bad = milter_peer.BadPeer(port, "good")
    try:
        d = make_daemon(extra=milters(f"inet:127.0.0.1:{port}"))
        res = mx_session(d.ports["mx"], [message("q1"), message("q2")])
        assert [code for code, _ in res] == [250, 250], res
        assert bad.messages == 2 and bad.accepted == 1
        # the idle bound is 15 s: well before it
        wait_for(lambda: bad.quits == 1, 8, "SMFIC_QUIT at session end")
        code, lines = mx_try(d.ports["mx"], [BOB], message("q3"))
        assert code == 250, lines
        assert bad.accepted == 2
    finally:
        bad.close()


@pytest.mark.parametrize("mode", ["closenext", "idlegarbage", "idleclose"])
def test_spoiled_kept_connection_loses_no_message(make_daemon, mode):
    """A filter that closes the connection kept for the session, or talks
    garbage on it between messages: the next message goes to the filter on
    a new connection and is accepted, nothing lost, the daemon alive."""
    port = free_port()
    bad = milter_peer.BadPeer(port, mode)
    try:
        d = make_daemon(extra=milters(f"inet:127.0.0.1:{port}"))
        res = mx_session(d.ports["mx"], [message(f"m{i}") for i in
                                         range(3)])
        assert [code for code, _ in res] == [250] * 3, res
        for code, lines in res:
            data = d.wait_message(BOB, queued(lines)).read_bytes()
            assert data.endswith(b"\n\nbody of the message\n")
        assert bad.messages == 3
        assert bad.accepted == 3
        if mode == "closenext":
            d.wait_log(rf"milter=inet:127\.0\.0\.1:{port} reconnect "
                       r"reason=")
        assert "verdict=default" not in d.log()
        assert d.running()
    finally:
        bad.close()


def test_down_filter_skipped_then_next_filter_asked(make_daemon, peer):
    spec, out = peer
    down = f"inet:127.0.0.1:{free_port()}"
    d = make_daemon(extra=milters(f"{down}, {spec}", "accept"))
    code, lines = mx_try(d.ports["mx"], [BOB], message("addheader"))
    assert code == 250, lines
    qid = queued(lines)
    data = d.wait_message(BOB, qid).read_bytes()
    assert b"X-Filter-Added: yes, by the test" in data
    d.wait_log(rf"id={qid} milter={re.escape(down)} verdict=default "
               r"action=accept")


@pytest.mark.parametrize("action", ["tempfail", "accept"])
def test_filter_cannot_inject_a_header_field(make_daemon, action):
    """A filter's added header value that would start a new field (a Bcc)
    is refused as garbage: the default action, and no such field."""
    port = free_port()
    bad = milter_peer.BadPeer(port, "inject")
    try:
        d = make_daemon(extra=milters(f"inet:127.0.0.1:{port}", action))
        code, lines = mx_try(d.ports["mx"], [BOB], message("inject"))
        d.wait_log(r"verdict=default action=%s reason=\"bad header "
                   r"value\"" % action)
        if action == "accept":
            assert code == 250, lines
            data = d.wait_message(BOB, queued(lines)).read_bytes()
            assert b"Bcc" not in data and b"X-Hostile" not in data
        else:
            assert code == 451, lines
            assert d.queue_files() == []
    finally:
        bad.close()


def test_filter_cannot_smuggle_an_smtp_reply(make_daemon):
    """A reply code with a second line "250 ... queued" is not an SMTP
    reply: the client never sees a 250, the default action is taken."""
    port = free_port()
    bad = milter_peer.BadPeer(port, "smuggle")
    try:
        d = make_daemon(extra=milters(f"inet:127.0.0.1:{port}", "tempfail"))
        with RawSMTP(d.ports["mx"]) as c:
            assert c.cmd("EHLO client.example.org")[0] == 250
            assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
            assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            c.send(dot_stuff(message("smuggle")) + b".\r\n")
            code, lines = c.reply()
            assert code == 451, lines
            assert len(lines) == 1, lines
            # no second reply is waiting on the connection: NOOP's is next
            code, lines = c.cmd("NOOP")
            assert code == 250 and len(lines) == 1, lines
        assert d.queue_files() == []
        d.wait_log(r"verdict=default action=tempfail reason=\"reply code "
                   r"is not a 4xx or 5xx SMTP reply\"")
    finally:
        bad.close()


def test_unix_socket_filter(make_daemon, tmp_path):
    out = tmp_path / "milter-out"
    out.mkdir()
    sock = tmp_path / "milter.sock"
    proc = milter_peer.start(str(sock), out)
    try:
        d = make_daemon(extra=milters(f"unix:{sock}"))
        code, lines = mx_try(d.ports["mx"], [BOB], message("addheader"))
        assert code == 250, lines
        qid = queued(lines)
        data = d.wait_message(BOB, qid).read_bytes()
        assert b"X-Filter-Added: yes, by the test" in data
        assert record(out, qid)["macros"]["i"] == qid
    finally:
        proc.terminate()
        proc.wait(10)


def test_stop_while_a_filter_hangs(make_daemon):
    """SIGTERM while a filter holds a message: the daemon exits cleanly
    (the teardown checks exit 0 and no sanitizer report) and nothing is
    queued that the client was not told of."""
    port = free_port()
    bad = milter_peer.BadPeer(port, "hang")
    try:
        d = make_daemon(extra=milters(f"inet:127.0.0.1:{port}", "accept",
                                      timeouts=False))
        c = RawSMTP(d.ports["mx"])
        assert c.cmd("EHLO client.example.org")[0] == 250
        assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(dot_stuff(message("held at stop")) + b".\r\n")
        wait_for(lambda: bad.accepted >= 1, 10, "the filter's connection")
        rc = d.stop()
        assert rc == 0, d.log()[-3000:]
        try:
            code, lines = c.reply(timeout=5)
        except Exception:
            code, lines = None, []
        c.close()
        # a 250 only for what is queued
        if code == 250:
            assert d.queue_files(), lines
        else:
            assert not [f for f in d.queue_files()
                        if not f.name.endswith(".hold")], lines
    finally:
        bad.close()


def test_endless_progress_is_bounded(make_daemon):
    """A filter that answers the end of message only with "progress" gets
    the default action once four times the timeout have passed."""
    port = free_port()
    bad = milter_peer.BadPeer(port, "progress")
    try:
        d = make_daemon(extra=milters(f"inet:127.0.0.1:{port}", "accept",
                                      timeouts=False) +
                        ["milter_eom_timeout = 1s"])
        code, lines = mx_try(d.ports["mx"], [BOB], message("progress"))
        assert code == 250, lines
        d.wait_message(BOB, queued(lines))
        d.wait_log(r"verdict=default action=accept reason=\"progress "
                   r"beyond its deadline\"")
    finally:
        bad.close()


def test_large_message_in_chunks(make_daemon, peer):
    """A 3 MB body goes to the filter in chunks and arrives whole, with
    the filter's header added (the file written again)."""
    spec, out = peer
    d = make_daemon(extra=milters(spec))
    body = b"".join(b"line %07d of a long message\r\n" % i
                    for i in range(100000))
    sent = message("addheader").replace(b"body of the message\r\n", body)
    code, lines = mx_try(d.ports["mx"], [BOB], sent)
    assert code == 250, lines
    qid = queued(lines)
    data = d.wait_message(BOB, qid).read_bytes()
    assert data.endswith(b"\n\n" + body.replace(b"\r\n", b"\n"))
    assert b"X-Filter-Added: yes, by the test" in data
    assert len(record(out, qid)["body"]) == len(body)


def test_check_config_refuses_bad_milter_specs(tmp_path, tls_cert):
    from test_config import good_lines, sekisho
    conf = tmp_path / "m.conf"
    lines = good_lines(tmp_path, tls_cert)
    conf.write_text("\n".join(lines + [
        "milters_mx = inet:127.0.0.1:11332, unix:/run/x.sock "
        "inet6:[::1]:8891",
        "milter_default_action = accept",
        "milter_eom_timeout = 2m"]) + "\n")
    r = sekisho("check-config", str(conf))
    assert r.returncode == 0, r.stderr
    for bad, why in [("inet:localhost:11332", "inet: needs an IPv4 address"),
                     ("inet:127.0.0.1:0", "bad port"),
                     ("tcp:127.0.0.1:1", "expected inet:"),
                     ("unix:relative.sock", "absolute path")]:
        conf.write_text("\n".join(lines + [f"milters_submission = {bad}"])
                        + "\n")
        r = sekisho("check-config", str(conf))
        assert r.returncode == 1, (bad, r.stderr)
        assert why in r.stderr, (bad, r.stderr)
    conf.write_text("\n".join(lines + ["milter_default_action = drop"])
                    + "\n")
    r = sekisho("check-config", str(conf))
    assert r.returncode == 1 and "milter_default_action" in r.stderr, r.stderr


def test_sighup_turns_filters_on(make_daemon, peer):
    """milters_mx read at each commit: a reload adds a filter to a running
    daemon; the message before it is not filtered, the one after is."""
    import signal
    spec, out = peer
    d = make_daemon()
    code, lines = mx_try(d.ports["mx"], [BOB], message("addheader"))
    assert code == 250, lines
    data = d.wait_message(BOB, queued(lines)).read_bytes()
    assert b"X-Filter-Added" not in data
    d.conf.write_text(d.conf.read_text() + "\n".join(milters(spec)) + "\n")
    mark = d.log_mark()
    d.proc.send_signal(signal.SIGHUP)
    # the back side has the new configuration when it says this
    d.wait_log(r"SIGHUP: geo database reloaded", since=mark)
    code, lines = mx_try(d.ports["mx"], [BOB], message("addheader"))
    assert code == 250, lines
    data = d.wait_message(BOB, queued(lines)).read_bytes()
    assert b"X-Filter-Added: yes, by the test" in data


def test_hanging_filter_blocks_no_worker(make_daemon, client_tls):
    """With one back-side worker, a message held by a filter that never
    answers does not stop the back side: a login and another message
    (on a role without filters) are answered while it waits."""
    port = free_port()
    bad = milter_peer.BadPeer(port, "hang")
    try:
        d = make_daemon(extra=milters(f"inet:127.0.0.1:{port}", "tempfail",
                                      timeouts=False) +
                        ["backend_threads = 1"])
        held = RawSMTP(d.ports["mx"])
        assert held.cmd("EHLO client.example.org")[0] == 250
        assert held.cmd("MAIL FROM:<s@example.org>")[0] == 250
        assert held.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert held.cmd("DATA")[0] == 354
        held.send(dot_stuff(message("held")) + b".\r\n")
        wait_for(lambda: bad.accepted >= 1, 10, "the filter's connection")
        # the only worker is free: a submission (no filters) goes through
        code, resp = submit(d, client_tls, message("meanwhile",
                                                   frm=ALICE.encode()))
        assert code == 250, resp
        d.wait_message(BOB, QUEUE_ID_RE.search(resp.encode()).group(1)
                       .decode())
        # and the held one is still waiting for its filter
        assert "milter=inet:127.0.0.1:%d verdict" % port not in d.log()
        held.close()
    finally:
        bad.close()


def test_refusal_before_end_of_message_refuses_the_message(make_daemon,
                                                           peer):
    """A filter that refuses at RCPT (the conversation runs at the end of
    DATA): the whole message gets its reply, nothing is queued."""
    spec, out = peer
    d = make_daemon(extra=milters(spec))
    code, lines = mx_try(d.ports["mx"], [BOB], message("plain"),
                         sender="rcpt-reject@example.org")
    assert code == 550, lines
    assert lines[-1] == "550 5.1.1 Recipient refused by the test filter", \
        lines
    assert d.queue_files() == []
    d.wait_log(r"verdict=reject reply=\"550 5.1.1 Recipient refused")


def test_submission_to_outside_mx_with_changes(make_daemon, peer,
                                               client_tls):
    """A subscriber's submission to an outside domain: the fake outside MX
    receives the filter's header, the changed sender and the message; the
    filter saw the authenticated account."""
    from outbound_peer import ScriptedPeer
    spec, out = peer
    outside = ScriptedPeer()
    try:
        d = make_daemon(extra=milters(spec, role="submission") + [
            f"transport = peer.test [127.0.0.1]:{outside.port}",
            "queue_retry_min = 1s", "queue_retry_max = 2s"])
        sent = message("addheader chgfrom", frm=ALICE.encode())
        code, resp = submit(d, client_tls, sent, rcpts=("carol@peer.test",))
        assert code == 250, resp
        qid = QUEUE_ID_RE.search(resp.encode()).group(1).decode()
        wait_for(lambda: outside.messages, 30, "the outside MX's message")
        sender, rcpts, data = outside.messages[0]
        assert sender == "changed-sender@example.org", sender
        assert rcpts == ["carol@peer.test"], rcpts
        text = data.decode() if isinstance(data, bytes) else data
        # our Received first, naming the queue ID
        assert text.startswith("Received: "), text[:200]
        assert f"id {qid}" in text.split("\r\n\r\n")[0].split(
            "\r\nFrom:")[0].replace("\r\n", " "), text[:400]
        assert "X-Filter-Added: yes, by the test" in text
        assert record(out, qid)["macros"]["{auth_authen}"] == ALICE
    finally:
        outside.close()
