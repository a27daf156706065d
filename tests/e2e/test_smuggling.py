"""SMTP smuggling (a second message hidden behind a fake end of data) and
STARTTLS command injection (commands pipelined after STARTTLS), with raw
sockets since no well-behaved client can send either."""
import re

import pytest

from conftest import ALICE, ALICE_PW, BOB, RawSMTP, mx_send
from test_refusals import plain

VARIANTS = {
    "LF.CRLF": b"\n.\r\n",
    "CR.CR": b"\r.\r",
    "LF.LF": b"\n.\n",
    "CRLF.CR": b"\r\n.\r",
}


def smuggling_payload(fake_end, sender):
    return (b"From: " + sender.encode() + b"\r\nTo: " + BOB.encode() +
            b"\r\n"
            b"Subject: real message\r\n\r\nreal body" + fake_end +
            b"MAIL FROM:<mallory@example.org>\r\n"
            b"RCPT TO:<" + BOB.encode() + b">\r\n"
            b"DATA\r\n"
            b"From: ceo@example.jp\r\nTo: " + BOB.encode() + b"\r\n"
            b"Subject: SMUGGLED\r\n\r\nsmuggled body\r\n"
            b".\r\n")                       # the real end of data


@pytest.mark.parametrize("fake_end", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("port", ["mx", "submissions"])
def test_smuggling(daemon, client_tls, fake_end, port):
    ctx = client_tls if port == "submissions" else None
    # on submission the sender must be the account's own address
    sender = ALICE if port == "submissions" else "real@example.org"
    with RawSMTP(daemon.ports[port], tls_context=ctx) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        if port == "submissions":
            assert c.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW))[0] == 235
        assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(smuggling_payload(fake_end, sender))
        # Then a command whose answer cannot be mistaken for another.
        c.send(b"EHLO after.example.org\r\n")
        replies = []
        while True:
            code, lines = c.reply()
            if "Hello" in lines[0] or "after.example.org" in lines[0]:
                break
            replies.append(lines)
        assert len(replies) == 1, f"one reply for the end of data: {replies}"
        assert replies[0][0].startswith("550 5.6.0"), replies
        # the session still works
        assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(f"From: {sender}\r\nSubject: clean\r\n\r\nclean body\r\n"
               ".\r\n".encode())
        code, lines = c.reply()
        assert code == 250, lines
        clean_id = lines[0].rsplit(" ", 1)[1]
    daemon.wait_message(BOB, clean_id)
    files = daemon.files(BOB)
    assert len(files) == 1, [f.read_bytes()[:400] for f in files]
    assert b"SMUGGLED" not in files[0].read_bytes()
    assert b"real body" not in files[0].read_bytes()
    assert "mallory" not in daemon.log()
    daemon.wait_queue_empty()
    assert len(daemon.files(BOB)) == 1


def test_bare_lf_inside_body_refused_nothing_queued(daemon):
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        assert c.cmd("MAIL FROM:<real@example.org>")[0] == 250
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: x\r\n\r\nline one\nline two\r\n.\r\n")
        code, lines = c.reply()
        assert lines[0].startswith("550 5.6.0"), lines
    daemon.wait_log(r"smtp reject client=127\.0\.0\.1 .*reply=\"550 5\.6\.0")
    qid = mx_send(daemon.ports["mx"], BOB, b"Subject: ok\r\n\r\nok\r\n")
    daemon.wait_message(BOB, qid)
    assert len(daemon.files(BOB)) == 1


def test_starttls_injection(daemon, client_tls):
    """STARTTLS\\r\\nRSET\\r\\n in one send(): the RSET must be discarded, not
    answered after the handshake (CVE-2011-0411 class)."""
    mark = daemon.log_mark()
    with RawSMTP(daemon.ports["submission"]) as c:
        assert c.cmd("EHLO client.example.jp")[0] == 250
        c.send(b"STARTTLS\r\nRSET\r\n")
        code, lines = c.reply()
        assert code == 220, lines
        assert c.buf == b"", f"plaintext after the 220: {c.buf!r}"
        c.starttls(client_tls)
        c.send(b"EHLO client.example.jp\r\n")
        first = c.line()
        assert first.startswith(b"250-mail.example.jp "), \
            f"first line after the handshake is not the EHLO reply: {first!r}"
        # the rest of the EHLO reply, then nothing else pending
        while not c.line().startswith(b"250 "):
            pass
        code, lines = c.cmd("NOOP")
        assert lines == ["250 2.0.0 Ok"], lines
    daemon.wait_log(r"starttls discarded=", since=mark)


def test_starttls_injection_mail_command(daemon, client_tls):
    """A pipelined MAIL after STARTTLS on mx is not executed under TLS:
    the next RCPT has no transaction."""
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
        assert c.reply()[0] == 220
        c.starttls(client_tls)
        code, lines = c.cmd("EHLO client.example.org")
        assert code == 250 and re.match(r"250-\S+", lines[0]), lines
        code, lines = c.cmd(f"RCPT TO:<{BOB}>")
        assert code == 503, lines
