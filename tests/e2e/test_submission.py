"""Submission with real clients: smtplib (587 STARTTLS with AUTH PLAIN and
LOGIN, 465 implicit TLS), msmtp with a config file, swaks. The delivered
Maildir file must hold the message byte for byte (LF line ends) under a new
Received header that names the queue ID, ESMTPSA and the TLS version."""
import re
import smtplib
import subprocess

import pytest

from conftest import (ALICE, ALICE_PW, BOB, HOSTNAME, QUEUE_ID_RE,
                      mx_send, received_id, split_received)

# Dot-stuffing, 8-bit UTF-8 (Japanese), an empty line, trailing spaces, a
# line of exactly 998 octets: all must arrive unchanged.
LONG_LINE = b"x" * 998


def message(subject, msgid=True, date=True):
    head = [b"From: Alice <alice@example.jp>",
            b"To: Bob <bob@example.jp>",
            b"Subject: " + subject.encode()]
    if date:
        head.append(b"Date: Mon, 02 Mar 2026 10:00:00 +0900")
    if msgid:
        head.append(b"Message-ID: <" + subject.replace(" ", "-").encode()
                    + b"@client.example.jp>")
    head += [b"MIME-Version: 1.0",
             b"Content-Type: text/plain; charset=UTF-8",
             b"Content-Transfer-Encoding: 8bit"]
    body = [b"", b"Hello Bob,", b".a line that starts with a dot",
            b"..two dots", "関所を通ります。".encode(), b"",
            b"trailing spaces   ", LONG_LINE, b"-- ", b"Alice"]
    return b"\r\n".join(head + body) + b"\r\n"


def lf(data):
    return data.replace(b"\r\n", b"\n")


def check_delivered(daemon, queue_id, sent, protocol="ESMTPSA", tls=True,
                    rcpt=BOB):
    """The file for queue_id: the message byte for byte (CRLF -> LF) under
    a Received header naming the ID, protocol and TLS version."""
    path = daemon.wait_message(rcpt, queue_id)
    data = path.read_bytes()
    assert b"\r" not in data
    hdr, rest = split_received(data)
    assert rest == lf(sent)
    assert hdr.startswith(b"Received: from ")
    assert re.search(rb"\(\[127\.0\.0\.1\]\)", hdr), hdr
    assert f"by {HOSTNAME} (sekisho) with {protocol} id {queue_id}".encode() \
        in hdr, hdr
    assert f"for <{rcpt}>;".encode() in hdr, hdr
    if tls:
        assert re.search(rb"\(using TLSv1\.[23] with cipher \S+", hdr), hdr
    else:
        assert b"using TLS" not in hdr
    # Maildir name carries the size of the file (",S=<size>")
    assert path.name.endswith(f",S={len(data)}"), path.name
    return data


def smtplib_send(smtp, sent, rcpts=(BOB,), sender=ALICE):
    code, resp = smtp.mail(sender)
    assert code == 250, resp
    for r in rcpts:
        code, resp = smtp.rcpt(r)
        assert code == 250, resp
    code, resp = smtp.data(sent)
    assert code == 250, resp
    m = QUEUE_ID_RE.search(resp)
    assert m, resp
    return m.group(1).decode()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_587_starttls_auth(daemon, client_tls, mechanism):
    sent = message(f"587 {mechanism}")
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"],
                      timeout=30) as s:
        s.ehlo("client.example.jp")
        assert s.has_extn("starttls")
        assert not s.has_extn("auth"), "AUTH offered before TLS"
        s.starttls(context=client_tls)
        s.ehlo("client.example.jp")
        assert s.has_extn("auth")
        mechs = s.esmtp_features["auth"].upper().split()
        assert "PLAIN" in mechs and "LOGIN" in mechs
        s.user, s.password = ALICE, ALICE_PW
        auth_fn = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mechanism]
        code, resp = s.auth(mechanism, auth_fn)
        assert code == 235 and resp.startswith(b"2.7.0"), resp
        queue_id = smtplib_send(s, sent)
    check_delivered(daemon, queue_id, sent)
    log = daemon.log()
    assert re.search(rf"smtp auth client=127\.0\.0\.1 user={ALICE} "
                     rf"mechanism={mechanism} result=ok", log), log
    assert re.search(rf"id={queue_id} queued client=127\.0\.0\.1", log)
    daemon.wait_log(rf"id={queue_id} deliver rcpt={BOB} .*"
                    r"status=delivered")


def test_465_implicit_tls(daemon, client_tls):
    sent = message("465 implicit")
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"],
                          context=client_tls, timeout=30) as s:
        s.ehlo("client.example.jp")
        assert not s.has_extn("starttls"), "STARTTLS offered under TLS"
        s.login(ALICE, ALICE_PW)
        queue_id = smtplib_send(s, sent)
    check_delivered(daemon, queue_id, sent)


def test_two_recipients_one_copy_each(daemon, client_tls):
    sent = message("two rcpts")
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"],
                          context=client_tls, timeout=30) as s:
        s.login(ALICE, ALICE_PW)
        queue_id = smtplib_send(s, sent, rcpts=(BOB, ALICE))
    for who in (BOB, ALICE):
        path = daemon.wait_message(who, queue_id)
        hdr, rest = split_received(path.read_bytes())
        assert rest == lf(sent)
        assert b"\tfor <" not in hdr   # only named with one recipient
    assert len(daemon.files(BOB)) == 1 and len(daemon.files(ALICE)) == 1


def test_msmtp_config_file(daemon, tls_cert, tmp_path):
    conf = tmp_path / "msmtprc"
    conf.write_text(
        "defaults\n"
        "tls on\n"
        "tls_starttls on\n"
        f"tls_trust_file {tls_cert[0]}\n"
        f"logfile {tmp_path / 'msmtp.log'}\n"
        "\n"
        "account demo\n"
        "host 127.0.0.1\n"
        f"port {daemon.ports['submission']}\n"
        "auth plain\n"
        f"user {ALICE}\n"
        f"password {ALICE_PW}\n"
        f"from {ALICE}\n"
        "\n"
        "account default : demo\n")
    conf.chmod(0o600)
    sent = message("via msmtp")
    r = subprocess.run(["msmtp", "-C", str(conf), BOB], input=sent,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    qid = re.search(r"id=([0-9A-F]{20}) queued client=127\.0\.0\.1 "
                    rf"from=<{ALICE}>", daemon.log())
    assert qid, daemon.log()
    check_delivered(daemon, qid.group(1), sent)
    assert "mechanism=PLAIN result=ok" in daemon.log()


def test_swaks(daemon, tmp_path):
    sent = message("via swaks")
    datafile = tmp_path / "message.eml"
    # swaks ends the data with CRLF.CRLF itself, adding a CRLF
    datafile.write_bytes(sent[:-2])
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1",
         "--port", str(daemon.ports["submission"]),
         "--tls", "--auth", "PLAIN",
         "--auth-user", ALICE, "--auth-password", ALICE_PW,
         "--from", ALICE, "--to", BOB, "--helo", "client.example.jp",
         "--data", str(datafile), "--timeout", "30"],
        capture_output=True, timeout=90)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out + r.stderr.decode("utf-8", "replace")
    assert "<~  235 2.7.0" in out, out
    m = QUEUE_ID_RE.search(r.stdout)
    assert m, out
    check_delivered(daemon, m.group(1).decode(), sent)


def header_names(data):
    _, rest = split_received(data)
    head = rest.split(b"\n\n", 1)[0]
    return [h.split(b":", 1)[0].lower() for h in head.split(b"\n")
            if h and h[:1] not in (b" ", b"\t")]


def test_submission_adds_date_and_message_id(daemon, client_tls):
    sent = message("no date no msgid", msgid=False, date=False)
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"],
                          context=client_tls, timeout=30) as s:
        s.login(ALICE, ALICE_PW)
        queue_id = smtplib_send(s, sent)
    data = daemon.wait_message(BOB, queue_id).read_bytes()
    names = header_names(data)
    assert names.count(b"date") == 1, names
    assert names.count(b"message-id") == 1, names
    _, rest = split_received(data)
    msgid = re.search(rb"(?mi)^Message-ID: *(<[^>\s]+@[^>\s]+>)$", rest)
    assert msgid, rest
    date = re.search(rb"(?mi)^Date: *(.+)$", rest)
    assert date and re.match(
        rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} "
        rb"\d\d:\d\d:\d\d [+-]\d{4}", date.group(1)), rest
    # the body is untouched
    assert rest.endswith(lf(sent.split(b"\r\n\r\n", 1)[1]))


def test_submission_keeps_date_and_message_id(daemon, client_tls):
    sent = message("has both")
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"],
                          context=client_tls, timeout=30) as s:
        s.login(ALICE, ALICE_PW)
        queue_id = smtplib_send(s, sent)
    data = daemon.wait_message(BOB, queue_id).read_bytes()
    _, rest = split_received(data)
    assert rest == lf(sent)
    names = header_names(data)
    assert names.count(b"date") == 1 and names.count(b"message-id") == 1


def test_mx_does_not_add_date_or_message_id(daemon):
    sent = message("mx as is", msgid=False, date=False)
    queue_id = mx_send(daemon.ports["mx"], BOB, sent)
    data = daemon.wait_message(BOB, queue_id).read_bytes()
    hdr, rest = split_received(data)
    assert rest == lf(sent)
    assert b"date" not in header_names(data)
    assert b"message-id" not in header_names(data)
    assert f"with ESMTP id {queue_id}".encode() in hdr, hdr
    assert received_id(data) == queue_id
