"""What the server refuses, with the reply codes of behaviour.md: AUTH before
TLS, MAIL without AUTH, bad passwords, suspended accounts, size, recipient,
line-length and error-count limits. Each refusal changes nothing."""
import base64
import re
import smtplib

import pytest

from conftest import (ALICE, ALICE_PW, BOB, BOB_PW, RawSMTP, mx_send,
                      split_received, wait_for)


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def tls_session(daemon, client_tls, port="submission"):
    """A raw session on 587 after EHLO, STARTTLS, EHLO."""
    c = RawSMTP(daemon.ports[port])
    assert c.cmd("EHLO client.example.jp")[0] == 250
    assert c.cmd("STARTTLS")[0] == 220
    c.starttls(client_tls)
    assert c.cmd("EHLO client.example.jp")[0] == 250
    return c


def simple(subject):
    return (f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.jp>\r\n"
            "Date: Tue, 03 Mar 2026 09:00:00 +0900\r\n\r\n"
            f"{subject}\r\n").encode()


def test_auth_before_starttls_refused(daemon):
    with RawSMTP(daemon.ports["submission"]) as c:
        code, lines = c.cmd("EHLO client.example.jp")
        assert not any(ln[4:].startswith("AUTH") for ln in lines), lines
        assert any(ln[4:] == "STARTTLS" for ln in lines), lines
        code, lines = c.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW))
        assert code == 538 and lines[0].startswith("538 5.7.11"), lines
        code, lines = c.cmd("AUTH LOGIN")
        assert code == 538, lines
        # and without AUTH, no mail
        code, lines = c.cmd(f"MAIL FROM:<{ALICE}>")
        assert code == 530 and lines[0].startswith("530 5.7.0"), lines
    assert "result=ok" not in daemon.log()


def test_smtplib_login_without_tls_fails(daemon):
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"],
                      timeout=30) as s:
        s.ehlo("client.example.jp")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            s.login(ALICE, ALICE_PW)


@pytest.mark.sekisho(extra=["submission_auth_without_tls = loopback"])
def test_auth_without_tls_on_loopback_when_configured(daemon):
    with RawSMTP(daemon.ports["submission"]) as c:
        code, lines = c.cmd("EHLO client.example.jp")
        assert "AUTH PLAIN LOGIN" in [ln[4:] for ln in lines], lines
        code, lines = c.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW))
        assert lines[0].startswith("235 2.7.0"), lines


def test_mail_without_auth_530(daemon, client_tls):
    with tls_session(daemon, client_tls) as c:
        code, lines = c.cmd(f"MAIL FROM:<{ALICE}>")
        assert code == 530 and lines[0].startswith("530 5.7.0"), lines
        code, lines = c.cmd(f"RCPT TO:<{BOB}>")
        assert code == 503, lines
    assert daemon.queue_files() == []


@pytest.mark.parametrize("user,password", [
    (ALICE, "wrong-password"),
    (ALICE, BOB_PW),
    ("nobody@example.jp", "whatever"),
])
def test_wrong_password_535(daemon, client_tls, user, password):
    with tls_session(daemon, client_tls) as c:
        code, lines = c.cmd("AUTH PLAIN " + plain(user, password))
        assert lines == ["535 5.7.8 Authentication credentials invalid"]
        code, lines = c.cmd(f"MAIL FROM:<{ALICE}>")
        assert code == 530, lines
        # a good login on the same session still works
        code, lines = c.cmd("AUTH PLAIN " + plain(BOB, BOB_PW))
        assert code == 235, lines
    daemon.wait_log(r"smtp auth client=127\.0\.0\.1 user=\S+ "
                    r"mechanism=PLAIN result=fail")


def test_wrong_password_smtplib_login(daemon, client_tls):
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"],
                          context=client_tls, timeout=30) as s:
        s.ehlo("client.example.jp")
        s.user, s.password = ALICE, "nope"
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.auth("LOGIN", s.auth_login)
        assert e.value.smtp_code == 535
        assert e.value.smtp_error.startswith(b"5.7.8")


def test_suspended_account_refused_then_resumed(daemon, client_tls):
    daemon.cli("user", "suspend", BOB, "--reason", "spam report 42")
    assert "suspended: yes (spam report 42)" in \
        daemon.cli("user", "show", BOB).stdout
    with tls_session(daemon, client_tls) as c:
        code, lines = c.cmd("AUTH PLAIN " + plain(BOB, BOB_PW))
        assert code == 535 and lines[0].startswith("535 5.7.8"), lines
        assert "suspended" in lines[0], lines
        code, lines = c.cmd(f"MAIL FROM:<{BOB}>")
        assert code == 530, lines
    daemon.wait_log(rf"smtp auth client=127\.0\.0\.1 user={BOB} "
                    r"mechanism=PLAIN result=suspended")
    # a suspended account still receives mail
    mx_send(daemon.ports["mx"], BOB, simple("to-suspended"))
    daemon.wait_files(BOB, 1)

    daemon.cli("user", "resume", BOB)
    assert "suspended: no" in daemon.cli("user", "show", BOB).stdout
    with tls_session(daemon, client_tls) as c:
        code, lines = c.cmd("AUTH PLAIN " + plain(BOB, BOB_PW))
        assert code == 235 and lines[0].startswith("235 2.7.0"), lines


@pytest.mark.sekisho(extra=["message_size_limit = 10K"])
def test_size_parameter_over_limit(daemon, client_tls):
    with tls_session(daemon, client_tls) as c:
        code, lines = c.cmd("EHLO client.example.jp")
        assert "SIZE 10240" in [ln[4:] for ln in lines], lines
        assert c.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW))[0] == 235
        code, lines = c.cmd(f"MAIL FROM:<{ALICE}> SIZE=10241")
        assert code == 552 and lines[0].startswith("552 5.3.4"), lines
        code, lines = c.cmd(f"MAIL FROM:<{ALICE}> SIZE=10000")
        assert code == 250, lines
    assert daemon.queue_files() == []


@pytest.mark.sekisho(extra=["message_size_limit = 10K"])
def test_data_over_size_limit(daemon):
    big = simple("big") + (b"y" * 70 + b"\r\n") * 200    # ~14 KB
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        assert c.cmd("MAIL FROM:<x@example.org>")[0] == 250
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(big + b".\r\n")
        code, lines = c.reply()
        assert code == 552 and lines[0].startswith("552 5.3.4"), lines
        # the session goes on: a small message passes
        assert c.cmd("MAIL FROM:<x@example.org>")[0] == 250
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(simple("small") + b".\r\n")
        code, lines = c.reply()
        assert code == 250, lines
    files = daemon.wait_files(BOB, 1)
    assert len(files) == 1
    assert b"Subject: small" in files[0].read_bytes()


@pytest.mark.sekisho(extra=["smtp_max_recipients = 3"])
def test_too_many_recipients(daemon, client_tls):
    with tls_session(daemon, client_tls) as c:
        assert c.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW))[0] == 235
        assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
        for r in (BOB, ALICE, "remote@example.net"):
            assert c.cmd(f"RCPT TO:<{r}>")[0] == 250
        code, lines = c.cmd("RCPT TO:<fourth@example.net>")
        assert code == 452 and lines[0].startswith("452 4.5.3"), lines
        assert c.cmd("DATA")[0] == 354
        c.send(simple("three rcpts") + b".\r\n")
        code, lines = c.reply()
        assert code == 250, lines
    daemon.wait_files(BOB, 1)
    daemon.wait_files(ALICE, 1)
    assert "fourth@example.net" not in daemon.log().split("452")[-1]


def test_remote_recipient_stays_queued(daemon, client_tls):
    with tls_session(daemon, client_tls) as c:
        assert c.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW))[0] == 235
        assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
        code, lines = c.cmd("RCPT TO:<friend@example.net>")
        assert code == 250, lines
        assert c.cmd("DATA")[0] == 354
        c.send(simple("outbound") + b".\r\n")
        code, lines = c.reply()
        assert code == 250, lines
        queue_id = lines[0].rsplit(" ", 1)[1]
    assert (daemon.spool / "queue" / queue_id).exists()


def test_465_mail_without_auth_530(daemon, client_tls):
    with RawSMTP(daemon.ports["submissions"], tls_context=client_tls) as c:
        assert c.cmd("EHLO client.example.jp")[0] == 250
        code, lines = c.cmd(f"MAIL FROM:<{ALICE}>")
        assert lines[0].startswith("530 5.7.0"), lines


def test_long_command_line(daemon):
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        code, lines = c.cmd("NOOP " + "x" * 3000)
        assert code == 500 and lines[0].startswith("500 5.5.2"), lines
        assert "too long" in lines[0].lower(), lines
        code, lines = c.cmd("MAIL FROM:<" + "a" * 2100 + "@example.org>")
        assert lines[0].startswith("500 5.5.2"), lines
        # still in sync: the next command gets its own answer
        assert c.cmd("NOOP")[0] == 250
        assert c.cmd("MAIL FROM:<x@example.org>")[0] == 250


def test_command_with_bare_lf(daemon):
    with RawSMTP(daemon.ports["mx"]) as c:
        c.send(b"EHLO client.example.org\n")
        code, lines = c.reply()
        assert lines[0].startswith("500 5.5.2"), lines
        assert c.cmd("NOOP")[0] == 250


def test_long_data_line(daemon):
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        assert c.cmd("MAIL FROM:<x@example.org>")[0] == 250
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(simple("long line") + b"z" * 999 + b"\r\n.\r\n")
        code, lines = c.reply()
        assert code == 550 and lines[0].startswith("550 5.6.0"), lines
        assert c.cmd("NOOP")[0] == 250
    queue_id = mx_send(daemon.ports["mx"], BOB, simple("after"))
    data = daemon.wait_message(BOB, queue_id).read_bytes()
    assert b"long line" not in data
    assert len(daemon.files(BOB)) == 1


def test_unknown_command_and_too_many_errors(daemon):
    with RawSMTP(daemon.ports["mx"]) as c:
        code, lines = c.cmd("FOOBAR")
        assert code == 500 and lines[0].startswith("500 5.5.1"), lines
        last = None
        for _ in range(20):
            try:
                code, lines = c.cmd("FOOBAR")
            except (ConnectionError, OSError):
                break
            last = lines[0]
            if code == 421:
                break
        assert last is not None and last.startswith("421 4.7.0"), last
        assert c.closed_by_peer()


def test_commands_before_ehlo_and_out_of_order(daemon):
    with RawSMTP(daemon.ports["mx"]) as c:
        code, lines = c.cmd("MAIL FROM:<x@example.org>")
        assert code == 503, lines
        assert c.cmd("EHLO client.example.org")[0] == 250
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 503
        assert c.cmd("DATA")[0] == 503
        assert c.cmd("QUIT")[0] == 221


def test_pipelining(daemon):
    """All commands of a transaction in one write: one reply each, in
    order (RFC 2920)."""
    with RawSMTP(daemon.ports["mx"]) as c:
        code, lines = c.cmd("EHLO client.example.org")
        assert "PIPELINING" in [ln[4:] for ln in lines]
        c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<nobody@example.jp>"
               b"\r\nRCPT TO:<" + BOB.encode() + b">\r\nDATA\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 550
        assert c.reply()[0] == 250
        assert c.reply()[0] == 354
        c.send(simple("pipelined") + b".\r\nQUIT\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 221
    data = daemon.wait_files(BOB, 1)[0].read_bytes()
    assert split_received(data)[1] == simple("pipelined").replace(
        b"\r\n", b"\n")
    assert re.search(rb"Subject: pipelined", data)


def test_pipelined_replies_come_together(daemon):
    """The replies to a pipelined MAIL, RCPT and DATA are held until the
    group is answered and sent in one piece (RFC 2920 3.2; issue 18): the
    first read after the group holds all three. A client that waits for
    each reply gets each at once (smtplib does, everywhere else)."""
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        for i in range(3):
            c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<" +
                   BOB.encode() + b">\r\nDATA\r\n")
            c.sock.settimeout(15)
            first = c.sock.recv(65536)
            assert first.startswith(b"250 ") and b"\r\n250 " in first \
                and first.endswith(b"354 End data with <CR><LF>.<CR><LF>"
                                   b"\r\n"), first
            c.send(simple(f"together {i}") + b".\r\n")
            assert c.reply()[0] == 250
        assert c.cmd("QUIT")[0] == 221
    daemon.wait_files(BOB, 3)


@pytest.mark.sekisho(extra=["max_connections_per_ip = 2"])
def test_connections_per_ip_limit(daemon):
    first = RawSMTP(daemon.ports["mx"])
    second = RawSMTP(daemon.ports["mx"])
    try:
        with RawSMTP(daemon.ports["mx"], greet=False) as third:
            code, lines = third.reply()
            assert code == 421 and lines[0].startswith("421 4.7.0"), lines
            assert third.closed_by_peer()
        # the first two still work
        assert first.cmd("NOOP")[0] == 250
        assert second.cmd("NOOP")[0] == 250
    finally:
        first.close()
        second.close()
    # once they are gone, a new one is welcome (the count is released)
    def fresh():
        with RawSMTP(daemon.ports["mx"], greet=False) as c:
            return c.reply()[0] == 220
    wait_for(fresh, 10, "a new connection to be greeted with 220")


@pytest.mark.sekisho(extra=["smtp_timeout = 2s"])
def test_idle_session_times_out(daemon):
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        code, lines = c.reply(timeout=15)      # sent by the server, unasked
        assert code == 421 and lines[0].startswith("421 4.4.2"), lines
        assert c.closed_by_peer()


def test_pipelined_last_recipient_refused_then_data(daemon):
    """The last RCPT before a pipelined DATA brings the spool file with
    its answer (issue 18); when that recipient is refused the message
    still goes to the one accepted before it."""
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<" + BOB.encode() +
               b">\r\nRCPT TO:<nobody@example.jp>\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(4)] == [250, 250, 550, 354]
        c.send(simple("last refused") + b".\r\nQUIT\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 221
    data = daemon.wait_files(BOB, 1)[0].read_bytes()
    assert b"Subject: last refused" in data


def test_pipelined_data_then_gone_leaves_no_spool_file(daemon):
    """A client that pipelines RCPT and DATA and leaves after 354 (or
    before reading it) leaves nothing in the spool: the file opened with
    its RCPT is removed, and nothing is delivered."""
    for wait_354 in (True, False):
        with RawSMTP(daemon.ports["mx"]) as c:
            assert c.cmd("EHLO client.example.org")[0] == 250
            c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<" +
                   BOB.encode() + b">\r\nDATA\r\n")
            if wait_354:
                assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
                c.send(b"Subject: cut\r\n\r\nhalf")
    incoming = daemon.spool / "incoming"
    wait_for(lambda: not any(incoming.iterdir()), 10,
             "incoming/ empty after the clients left")
    assert daemon.files(BOB) == []
    assert daemon.proc.poll() is None
