"""POP-before-SMTP (legacy, off by default): off, a submission without AUTH
is refused even right after a POP3 login; on, a POP3 login opens a window
in which the same address may submit without AUTH, attributed to the POP3
account (log, Received with ESMTPS, not ESMTPSA); after the window it is
refused again."""
import poplib
import smtplib
import time

import pytest

from conftest import ALICE, ALICE_PW, BOB, QUEUE_ID_RE, split_received

LISTENERS = (("mx", "mx", False), ("submission", "submission", False),
             ("pop3s", "pop3s", False))
MSG = (b"From: " + ALICE.encode() + b"\r\nTo: " + BOB.encode()
       + b"\r\nSubject: pop before smtp\r\n\r\nhello\r\n")


def pop3_login(daemon, client_tls):
    p = poplib.POP3_SSL("127.0.0.1", daemon.ports["pop3s"], timeout=15,
                        context=client_tls)
    p.user(ALICE)
    p.pass_(ALICE_PW)
    p.quit()


def submit_without_auth(daemon, client_tls):
    """(code of MAIL, queue id or None)."""
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"],
                      timeout=15) as s:
        s.starttls(context=client_tls)
        s.ehlo("client.example.jp")
        code, resp = s.mail(ALICE)
        if code != 250:
            return code, resp, None
        assert s.rcpt(BOB)[0] == 250
        code, resp = s.data(MSG)
        assert code == 250, resp
        return 250, resp, QUEUE_ID_RE.search(resp).group(1).decode()


def test_off_refuses(make_daemon, client_tls):
    d = make_daemon(listeners=LISTENERS)
    pop3_login(d, client_tls)
    code, resp, _ = submit_without_auth(d, client_tls)
    assert code == 530 and b"5.7.0" in resp
    assert "pop-before-smtp open" not in d.log()


def test_on_window_then_expiry(make_daemon, client_tls):
    d = make_daemon(listeners=LISTENERS,
                    extra=["pop_before_smtp = yes",
                           "pop_before_smtp_window = 3s"])
    # no POP3 login yet: refused
    code, resp, _ = submit_without_auth(d, client_tls)
    assert code == 530, resp
    pop3_login(d, client_tls)
    d.wait_log(r"pop-before-smtp open client=127\.0\.0\.1 "
               r"account=alice@example\.jp window=3s")
    opened = time.monotonic()
    code, resp, qid = submit_without_auth(d, client_tls)
    assert code == 250, resp
    d.wait_log(r"popbsmtp=yes client=127\.0\.0\.1 account=alice@example\.jp")
    d.wait_log(rf"id={qid} queued client=127\.0\.0\.1 .*protocol=ESMTPS "
               r"account=alice@example\.jp")
    data = d.wait_message(BOB, qid).read_bytes()
    hdr, _ = split_received(data)
    assert f"with ESMTPS id {qid}".encode() in hdr, hdr
    # after the window: refused again
    time.sleep(max(0.0, opened + 3.5 - time.monotonic()))
    code, resp, _ = submit_without_auth(d, client_tls)
    assert code == 530, resp
