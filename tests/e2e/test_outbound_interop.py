"""Interoperability of outbound and final delivery with peers as they are
(issue 14): a remote whose TLS stack breaks after its 220 to STARTTLS, a
remote without 8BITMIME, Return-Path at final delivery (Maildir, a DSN,
Dovecot's LMTP, POP3 sizes), a remote that closes in the middle of a
reply."""
import email
import email.policy
import re
import ssl
import time

import pytest

from conftest import ALICE, ALICE_PW, BOB, BOB_PW, mx_send, split_received, \
    wait_for
from outbound_peer import ScriptedPeer
from test_outbound import PEER_DOMAIN, dsn_of, outbound_conf, status_fields, \
    submit
from test_outbound_peers import dovecot  # noqa: F401 (fixture)
from test_pop3 import POP3_LISTENERS, pop3s_login

RCPT = f"bob@{PEER_DOMAIN}"
EHLO_TLS = ("PIPELINING", "8BITMIME", "SIZE 10000000", "ENHANCEDSTATUSCODES",
            "STARTTLS")


@pytest.fixture
def tls_breaker():
    p = ScriptedPeer(ehlo_lines=EHLO_TLS, starttls=lambda n: "break")
    yield p
    p.close()


def test_starttls_handshake_failure_next_attempt_plaintext(make_daemon,
                                                            tls_breaker):
    peer = tls_breaker
    d = make_daemon(extra=outbound_conf(peer))
    qid = submit(d, [RCPT], subject="tls-fallback")
    msgs = peer.wait_messages(1, timeout=40)
    assert msgs[0][1] == [RCPT]
    # the first attempt: STARTTLS, a broken handshake, deferred with the
    # TLS reason and the fallback logged
    log = d.log()
    assert re.search(rf"id={qid} mta starttls failed dest=\S+ relay=\S+ "
                     r"reason=\"TLS handshake failed: [^\"]+\": next "
                     r"attempt in plaintext", log), log
    assert re.search(rf"id={qid} deliver rcpt={RCPT} relay=\S+ "
                     r"status=deferred .*dsn=4\.4\.2 reply=\"TLS handshake "
                     r"failed", log), log
    d.wait_log(rf"id={qid} deliver rcpt={RCPT} relay=\S+ status=sent")
    assert peer.starttls_count == 1
    # the connection that delivered never said STARTTLS
    delivering = [s for s in peer.sessions if any(
        c.startswith("MAIL FROM") for c in s)]
    assert len(delivering) == 1
    assert not any(c.upper() == "STARTTLS" for c in delivering[0])
    assert re.search(rf"id={qid} mta starttls skipped dest=\S+", d.log())


def test_starttls_handshake_failure_tls_require_never_plaintext(
        make_daemon, tls_breaker):
    peer = tls_breaker
    d = make_daemon(extra=outbound_conf(
        peer, f"transport = {PEER_DOMAIN} [127.0.0.1]:{peer.port} "
        "tls=require"))
    qid = submit(d, [RCPT], subject="tls-required")
    wait_for(lambda: peer.starttls_count >= 3, 40,
             f"three STARTTLS attempts; log:\n{d.log()[-3000:]}")
    d.wait_log(rf"id={qid} deliver rcpt={RCPT} relay=\S+ status=deferred")
    assert not peer.messages
    assert not any(c.startswith("MAIL") for c in peer.commands)
    assert "next attempt in plaintext" not in d.log()
    assert "starttls skipped" not in d.log()


def test_starttls_454_still_goes_on_in_plaintext(make_daemon):
    peer = ScriptedPeer(ehlo_lines=EHLO_TLS,
                        starttls=lambda n: "454 4.7.0 TLS not available")
    try:
        d = make_daemon(extra=outbound_conf(peer))
        qid = submit(d, [RCPT], subject="tls-454")
        peer.wait_messages(1, timeout=40)
        d.wait_log(rf"id={qid} deliver rcpt={RCPT} relay=\S+ status=sent")
        assert "next attempt in plaintext" not in d.log()
    finally:
        peer.close()


# --- a remote that closes in the middle of a reply ------------------------

def test_close_in_the_middle_of_a_reply_is_reported_as_such(make_daemon):
    peer = ScriptedPeer(
        data_reply=lambda n, r: "!close:250-2.0.0 Ok, queued but")
    try:
        d = make_daemon(extra=outbound_conf(peer, "queue_lifetime = 4s"))
        qid = submit(d, [RCPT], subject="mid-reply")
        (report,) = dsn_of(d)
        _, groups = status_fields(report)
        diag = groups[0]["Diagnostic-Code"]
        assert "connection closed by the remote in the middle of a reply " \
            "in state dot" in diag, diag
        assert "Success" not in diag
        log = d.log()
        assert re.search(rf"id={qid} mta connection lost relay=\S+ "
                         r"state=dot error=\"connection closed by the remote "
                         r"in the middle of a reply in state dot\"", log), log
        assert "Success" not in log
        # the DSN, delivered here, has the null Return-Path
        (f,) = d.files(ALICE)
        assert f.read_bytes().startswith(b"Return-Path: <>\n")
    finally:
        peer.close()


def test_tls_peer_that_drops_mid_reply_is_reported_as_closed(make_daemon,
                                                             tls_cert):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tls_cert[0]), str(tls_cert[1]))
    peer = ScriptedPeer(ehlo_lines=EHLO_TLS, starttls=lambda n: "tls",
                        tls_context=ctx,
                        data_reply=lambda n, r: "!abort:250-2.0.0 Ok, but")
    try:
        d = make_daemon(extra=outbound_conf(peer))
        qid = submit(d, [RCPT], subject="tls-mid-reply")
        line = d.wait_log(rf"id={qid} mta connection lost relay=\S+ "
                          r"state=dot error=\"[^\"]*\"")
        # the delivery's own line follows the connection's: wait for it too
        d.wait_log(rf"id={qid} deliver rcpt={RCPT} relay=\S+ "
                   r"status=deferred")
        log = d.log()
        m = re.search(rf"id={qid} mta connection lost relay=\S+ state=dot "
                      r"error=\"([^\"]*)\"", log)
        assert m, line
        assert m.group(1).startswith("connection closed by the remote"), \
            m.group(1)
        assert "in state dot" in m.group(1)
        assert "Success" not in log
        assert re.search(rf"id={qid} deliver rcpt={RCPT} relay=\S+ "
                         r"status=deferred .*reply=\"connection closed by "
                         r"the remote", log), log
        assert re.search(r"mta connected dest=\S+ relay=\S+ tls=yes", log)
    finally:
        peer.close()


# --- Return-Path at final delivery -----------------------------------------

def test_return_path_first_in_maildir_and_pop3_sizes(make_daemon,
                                                     client_tls):
    d = make_daemon(listeners=POP3_LISTENERS,
                    extra=["submission_auth_without_tls = loopback"])
    qid = submit(d, [BOB], subject="return-path", body="hello bob\r\n")
    data = d.wait_message(BOB, qid).read_bytes()
    first, rest = data.split(b"\n", 1)
    assert first == f"Return-Path: <{ALICE}>".encode()
    # the Received header stays the first trace header after it
    assert rest.startswith(b"Received: from ")
    assert data.count(b"Return-Path:") == 1
    # POP3 sizes are the file's, with CRLF line ends
    pop = pop3s_login(d, client_tls, BOB, BOB_PW)
    _, listing, _ = pop.list()
    size = int(listing[0].split()[1])
    _, lines, _ = pop.retr(1)
    assert lines[0] == f"Return-Path: <{ALICE}>".encode()
    assert size == len(b"\r\n".join(lines) + b"\r\n")
    assert size == len(data.replace(b"\n", b"\r\n"))
    _, top, _ = pop.top(1, 0)
    assert top[0] == lines[0]
    pop.quit()


def test_a_return_path_of_the_client_is_not_kept(make_daemon):
    d = make_daemon()
    sent = (b"Return-Path: <evil@example.net>\r\n"
            b"From: sender@example.org\r\nTo: bob@example.jp\r\n"
            b"RETURN-PATH:\r\n <evil2@example.net>\r\n"
            b"Subject: forged return path\r\n"
            b"X-Return-Path: kept\r\nReturn-Path-Note: kept too\r\n\r\n"
            b"Return-Path: <in-the-body@example.net>\r\n")
    qid = mx_send(d.ports["mx"], BOB, sent)
    data = d.wait_message(BOB, qid).read_bytes()
    assert data.startswith(b"Return-Path: <sender@example.org>\nReceived: ")
    _, rest = split_received(data)
    assert rest == (b"From: sender@example.org\nTo: bob@example.jp\n"
                    b"Subject: forged return path\n"
                    b"X-Return-Path: kept\nReturn-Path-Note: kept too\n\n"
                    b"Return-Path: <in-the-body@example.net>\n")
    assert b"evil" not in data


def test_return_path_null_for_a_bounce(make_daemon):
    peer = ScriptedPeer(rcpt_reply=lambda n, r: "550 5.1.1 no such user")
    try:
        d = make_daemon(extra=outbound_conf(peer))
        submit(d, [RCPT], subject="bounce-rp")
        (f,) = d.wait_files(ALICE, 1)
        data = f.read_bytes()
        assert data.startswith(b"Return-Path: <>\nReceived: ")
        assert data.count(b"\nReturn-Path:") == 0
    finally:
        peer.close()


def test_return_path_over_lmtp_to_dovecot(make_daemon, dovecot):  # noqa
    port, base = dovecot
    d = make_daemon(extra=[
        "submission_auth_without_tls = loopback",
        f"local_delivery = lmtp:[127.0.0.1]:{port}",
    ])
    qid = submit(d, ["bob@example.jp"], subject="lmtp-rp")
    d.wait_log(rf"id={qid} deliver rcpt=bob@example\.jp relay=\S+ "
               r"status=sent", timeout=30)
    newdir = base / "mail" / "example.jp" / "bob" / "Maildir" / "new"
    wait_for(lambda: newdir.is_dir() and list(newdir.iterdir()), 30,
             "the message in Dovecot's Maildir")
    data = list(newdir.iterdir())[0].read_bytes()
    assert data.startswith(f"Return-Path: <{ALICE}>\n".encode()), data[:300]
    assert data.count(b"Return-Path:") == 1, data[:600]


# --- 8-bit to a server without 8BITMIME ------------------------------------

NO_8BITMIME = ("PIPELINING", "SIZE 10000000", "ENHANCEDSTATUSCODES")
TEXT = ("関所を通る 8-bit の本文です。café = naïve\n"
        + "長い行" * 100 + "\n-- \nsig\n")
BLOB = bytes(range(0x80, 0x100)) * 3 + b"\x01\x02 \t"


def eightbit_plain():
    return ("From: alice@example.jp\r\nTo: bob@peer.test\r\n"
            "Subject: eightbit plain\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            + TEXT.replace("\n", "\r\n")).encode()


def eightbit_multipart():
    blob = b"\r\n".join(BLOB[i:i + 60] for i in range(0, len(BLOB), 60))
    return (b"From: alice@example.jp\r\nTo: bob@peer.test\r\n"
            b"Subject: eightbit multipart\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"=_b1\"\r\n\r\n"
            b"preamble\r\n--=_b1\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n"
            + TEXT.replace("\n", "\r\n").encode() +
            b"\r\n--=_b1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=blob.bin\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + blob +
            b"\r\n--=_b1--\r\n"), blob


def send_raw(daemon, data, rcpt=RCPT):
    import smtplib
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"],
                      timeout=30) as s:
        s.ehlo("client.example.jp")
        s.login(ALICE, ALICE_PW)
        s.sendmail(ALICE, [rcpt], data, mail_options=["BODY=8BITMIME"])


def assert_7bit(data):
    assert all(b < 0x80 for b in data), \
        [hex(b) for b in data if b >= 0x80][:10]
    assert max(len(ln) for ln in data.split(b"\r\n")) <= 998


@pytest.fixture
def peer_7bit():
    p = ScriptedPeer(ehlo_lines=NO_8BITMIME)
    yield p
    p.close()


def test_8bit_text_to_a_7bit_server_arrives_quoted_printable(make_daemon,
                                                             peer_7bit):
    d = make_daemon(extra=outbound_conf(peer_7bit))
    send_raw(d, eightbit_plain())
    (_, _, data), = peer_7bit.wait_messages(1, timeout=40)
    assert_7bit(data)
    assert not any("BODY=8BITMIME" in c for c in peer_7bit.commands)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg.get_all("Content-Transfer-Encoding") == ["quoted-printable"]
    assert msg.get_content().replace("\r\n", "\n") == TEXT
    assert re.search(r"id=\S+ mta converted to 7bit relay=\S+ size=\d+ "
                     r"converted=\d+", d.log())


def test_8bit_multipart_to_a_7bit_server_decodes_equal(make_daemon,
                                                       peer_7bit):
    d = make_daemon(extra=outbound_conf(peer_7bit))
    sent, blob = eightbit_multipart()
    send_raw(d, sent)
    (_, _, data), = peer_7bit.wait_messages(1, timeout=40)
    assert_7bit(data)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    text, att = list(msg.iter_parts())
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert text.get_content().replace("\r\n", "\n") == TEXT
    assert att["Content-Transfer-Encoding"] == "base64"
    assert att.get_content() == blob
    assert att.get_filename() == "blob.bin"


def test_8bit_to_an_8bitmime_server_arrives_unchanged(make_daemon):
    peer = ScriptedPeer()       # offers 8BITMIME
    try:
        d = make_daemon(extra=outbound_conf(peer))
        sent, _ = eightbit_multipart()
        send_raw(d, sent)
        (_, _, data), = peer.wait_messages(1, timeout=40)
        assert data.split(b"\r\n", 1)[0].startswith(b"Received: ")
        # (submission adds Message-ID and Date to the header section)
        assert data.split(b"\r\n\r\n", 1)[1] == \
            sent.split(b"\r\n\r\n", 1)[1]
        assert any("BODY=8BITMIME" in c for c in peer.commands)
        assert "converted to 7bit" not in d.log()
    finally:
        peer.close()


def test_8bit_that_cannot_be_converted_bounces_with_the_reason(
        make_daemon, peer_7bit):
    d = make_daemon(extra=outbound_conf(peer_7bit))
    send_raw(d, b"From: alice@example.jp\r\nSubject: broken\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n"
             b"\xe9\xe9\r\n")
    (report,) = dsn_of(d)
    _, groups = status_fields(report)
    assert groups[0]["Status"] == "5.6.3"
    assert "does not offer 8BITMIME" in groups[0]["Diagnostic-Code"]
    assert not peer_7bit.messages
