"""MX (port 25 role): local delivery without AUTH, alias delivery, no relay,
unknown users refused, no AUTH offered."""
import re

from conftest import ALICE, BOB, RawSMTP, mx_send, split_received


def msg(subject):
    return (f"From: someone@example.org\r\nTo: {BOB}\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n"
            "Date: Tue, 03 Mar 2026 09:00:00 +0000\r\n\r\n"
            f"body of {subject}\r\n").encode()


def test_local_delivery_without_auth(daemon):
    sent = msg("mx-local")
    queue_id = mx_send(daemon.ports["mx"], BOB, sent,
                       helo="sender.example.org")
    data = daemon.wait_message(BOB, queue_id).read_bytes()
    hdr, rest = split_received(data)
    assert rest == sent.replace(b"\r\n", b"\n")
    assert hdr.startswith(b"Received: from sender.example.org "
                          b"([127.0.0.1])"), hdr
    assert f"with ESMTP id {queue_id}".encode() in hdr, hdr
    assert b"using TLS" not in hdr
    log = daemon.log()
    assert re.search(rf"id={queue_id} session=\S+ mail client=127\.0\.0\.1 "
                     r"from=<sender@example\.org>", log), log
    assert f"id={queue_id} rcpt to=<{BOB}>" in log
    daemon.wait_log(rf"id={queue_id} deliver rcpt={BOB} .*"
                    r"status=delivered")


def test_mx_starttls_gives_esmtps(daemon, client_tls):
    with RawSMTP(daemon.ports["mx"]) as c:
        code, lines = c.cmd("EHLO tls.example.org")
        assert any(ln[4:] == "STARTTLS" for ln in lines), lines
        assert not any(ln[4:].startswith("AUTH") for ln in lines), lines
        assert c.cmd("STARTTLS")[0] == 220
        c.starttls(client_tls)
        code, lines = c.cmd("EHLO tls.example.org")
        assert code == 250
        assert not any(ln[4:] == "STARTTLS" for ln in lines), lines
        assert c.cmd("MAIL FROM:<x@example.org>")[0] == 250
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(msg("mx-tls") + b".\r\n")
        code, lines = c.reply()
        assert code == 250, lines
        queue_id = lines[0].rsplit(" ", 1)[1]
    hdr, _ = split_received(daemon.wait_message(BOB, queue_id).read_bytes())
    assert f"with ESMTPS id {queue_id}".encode() in hdr, hdr
    assert re.search(rb"\(using TLSv1\.[23] with cipher", hdr), hdr


def test_helo_gives_smtp(daemon):
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("HELO old.example.org")[0] == 250
        assert c.cmd("MAIL FROM:<x@example.org>")[0] == 250
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(msg("mx-helo") + b".\r\n")
        code, lines = c.reply()
        assert code == 250, lines
        queue_id = lines[0].rsplit(" ", 1)[1]
    hdr, _ = split_received(daemon.wait_message(BOB, queue_id).read_bytes())
    assert f"with SMTP id {queue_id}".encode() in hdr, hdr


def test_alias_delivery(daemon):
    daemon.cli("user", "alias", "add", "info@example.jp", BOB)
    sent = msg("mx-alias")
    queue_id = mx_send(daemon.ports["mx"], "info@example.jp", sent)
    data = daemon.wait_message(BOB, queue_id).read_bytes()
    assert split_received(data)[1] == sent.replace(b"\r\n", b"\n")
    assert daemon.files(ALICE) == []
    assert not (daemon.maildir_root / "example.jp" / "info").exists()


def test_relay_denied(daemon):
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO spammer.example.org")[0] == 250
        assert c.cmd("MAIL FROM:<spam@example.org>")[0] == 250
        code, lines = c.cmd("RCPT TO:<victim@example.net>")
        assert code == 550, lines
        assert lines[0].startswith("550 5.7.1 "), lines
        assert "Relay access denied" in lines[0], lines
        # even with an address of ours as sender
        assert c.cmd("RSET")[0] == 250
        assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
        code, lines = c.cmd("RCPT TO:<victim@example.net>")
        assert lines[0].startswith("550 5.7.1 "), lines
        # nothing accepted: DATA without a recipient is refused
        code, lines = c.cmd("DATA")
        assert code in (503, 554), lines
    daemon.wait_log(r"smtp reject client=127\.0\.0\.1 .*reply=\"550 5\.7\.1")
    assert daemon.queue_files() == []


def test_unknown_user(daemon):
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        assert c.cmd("MAIL FROM:<x@example.org>")[0] == 250
        code, lines = c.cmd("RCPT TO:<nobody@example.jp>")
        assert code == 550 and lines[0].startswith("550 5.1.1 "), lines
        # a good recipient in the same transaction still works
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(msg("mx-mixed") + b".\r\n")
        code, lines = c.reply()
        assert code == 250, lines
    daemon.wait_files(BOB, 1)
    assert not (daemon.maildir_root / "example.jp" / "nobody").exists()


def test_no_auth_on_mx(daemon):
    with RawSMTP(daemon.ports["mx"]) as c:
        code, lines = c.cmd("EHLO client.example.org")
        assert not any(ln[4:].startswith("AUTH") for ln in lines), lines
        code, lines = c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUuanAAeA==")
        assert lines[0].startswith("503 5.5.1"), lines


def test_delivered_mail_not_left_in_spool(daemon):
    """Messages delivered at commit, several over one connection: each is
    in the Maildir once, and the spool keeps no copy of any of them (the
    spool files are reused for the next messages, issue 18, emptied)."""
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO reuse.example.org")[0] == 250
        ids = []
        for i in range(4):
            assert c.cmd("MAIL FROM:<x@example.org>")[0] == 250
            assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            c.send(msg(f"mx-reuse-{i}") + b".\r\n")
            code, lines = c.reply()
            assert code == 250, lines
            ids.append(lines[0].rsplit(" ", 1)[1])
    assert len(set(ids)) == 4, ids
    for i, queue_id in enumerate(ids):
        data = daemon.wait_message(BOB, queue_id).read_bytes()
        assert f"body of mx-reuse-{i}".encode() in data
        for j in range(4):
            if j != i:
                assert f"mx-reuse-{j}".encode() not in data, (i, j)
    incoming = list((daemon.spool / "incoming").iterdir())
    for p in incoming:
        body = p.read_bytes()
        assert b"mx-reuse" not in body, (p.name, body[:200])
    assert not [p for p in (daemon.spool / "queue").iterdir()
                if p.name in ids]
