"""Mail filters over the milter protocol (issue 16): a filter on Sendmail's
real libmilter (python3-milter, tests/e2e/milter_peer.py) on loopback, asked
by the back side at the end of DATA. Each change a filter can make, each
verdict, the macros it sees per role, and filters that are down, hang or
answer garbage: the default action, the daemon alive, nothing that got 250
lost."""
import json
import re
import smtplib

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
    assert m["{daemon_name}"] == "sekisho-mx"
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
    assert ev["body"] == "body of the message\r\n"
    d.wait_log(rf"id={qid} milter={re.escape(spec)} verdict=continue "
               r"changes=0")
