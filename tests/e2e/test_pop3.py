"""POP3 (110 with STLS, 995 implicit TLS) with Python's poplib and raw
sockets: LIST, UIDL, TOP, RETR, DELE, QUIT; RETR gives back the delivered
Maildir file byte for byte (CRLF line ends, dot-stuffing undone by the
client); deletions happen only at QUIT; one session per mailbox
([IN-USE]); plain-text logins only after TLS. Mail gets into the mailbox
over SMTP (the mx listener), never by writing files."""
import poplib
import socket
import ssl
import time

import pytest

from conftest import ALICE, ALICE_PW, BOB, HOSTNAME, mx_send

POP3_LISTENERS = (("mx", "mx", False), ("submission", "submission", False),
                  ("pop3", "pop3", False), ("pop3s", "pop3s", False))


def message(subject, body_lines):
    head = [b"From: Sender <sender@example.org>", b"To: " + ALICE.encode(),
            b"Subject: " + subject.encode(),
            b"Date: Mon, 02 Mar 2026 10:00:00 +0900",
            b"Message-ID: <" + subject.replace(" ", "-").encode()
            + b"@example.org>"]
    return b"\r\n".join(head + [b""] + body_lines) + b"\r\n"


BODY = [b"first body line", b".a line that starts with a dot", b"..two",
        b".", "関所を通ります。".encode(), b"", b"last line"]


@pytest.fixture
def pop3d(make_daemon, tmp_path):
    return make_daemon(listeners=POP3_LISTENERS,
                       extra=[f"apop_secret_key = {tmp_path / 'apop.key'}"])


def deliver(daemon, n, rcpt=ALICE, body=BODY):
    """Send n messages over mx; return their Maildir files, oldest first."""
    have = len(daemon.files(rcpt))
    for i in range(n):
        mx_send(daemon.ports["mx"], rcpt, message(f"pop test {i}", body))
        daemon.wait_files(rcpt, have + i + 1)
    return daemon.files(rcpt)


def crlf(data):
    return data.replace(b"\n", b"\r\n")


def stls_login(daemon, client_tls, user=ALICE, password=ALICE_PW):
    p = poplib.POP3("127.0.0.1", daemon.ports["pop3"], timeout=15)
    p.stls(client_tls)
    p.user(user)
    p.pass_(password)
    return p


def pop3s_login(daemon, client_tls, user=ALICE, password=ALICE_PW):
    p = poplib.POP3_SSL("127.0.0.1", daemon.ports["pop3s"], timeout=15,
                        context=client_tls)
    p.user(user)
    p.pass_(password)
    return p


def test_poplib_stls_list_uidl_top_retr(pop3d, client_tls):
    files = deliver(pop3d, 2)
    p = poplib.POP3("127.0.0.1", pop3d.ports["pop3"], timeout=15)
    assert p.getwelcome().startswith(b"+OK ")
    assert f"@{HOSTNAME}>".encode() in p.getwelcome()
    caps = p.capa()
    assert "STLS" in caps and "UIDL" in caps and "TOP" in caps
    assert "RESP-CODES" in caps and "AUTH-RESP-CODE" in caps
    assert "USER" not in caps            # not before TLS
    p.stls(client_tls)
    caps = p.capa()
    assert "USER" in caps and "STLS" not in caps
    assert caps["SASL"] == ["PLAIN", "LOGIN"]
    p.user(ALICE)
    assert p.pass_(ALICE_PW).startswith(b"+OK")

    datas = [f.read_bytes() for f in files]
    count, total = p.stat()
    assert count == 2
    assert total == sum(len(crlf(d)) for d in datas)
    resp, lines, _ = p.list()
    assert [ln.split() for ln in lines] == [
        [b"1", str(len(crlf(datas[0]))).encode()],
        [b"2", str(len(crlf(datas[1]))).encode()]]
    # LIST sizes come from ",W=" in the Maildir names
    for f, d in zip(files, datas):
        assert f",W={len(crlf(d))},S={len(d)}" in f.name, f.name
    resp, lines, _ = p.uidl()
    uids = [ln.split()[1].decode() for ln in lines]
    assert uids == [f.name.split(":")[0] for f in files]
    assert p.uidl(2).split()[2].decode() == uids[1]

    # RETR: the delivered file, CRLF, dot-stuffing undone by poplib
    resp, lines, octets = p.retr(1)
    assert resp.startswith(b"+OK")
    assert b"\r\n".join(lines) + b"\r\n" == crlf(datas[0])
    # TOP 2 0: the header and the empty line; TOP 2 2: two body lines
    resp, lines, _ = p.top(2, 0)
    head = datas[1].split(b"\n\n")[0]
    assert lines == head.split(b"\n") + [b""]
    resp, lines, _ = p.top(2, 2)
    assert lines == head.split(b"\n") + [b"", BODY[0], BODY[1]]
    assert p.noop().startswith(b"+OK")
    p.quit()
    # nothing deleted
    assert pop3d.files(ALICE) == files
    pop3d.wait_log(r"pop3 logout client=127\.0\.0\.1 user=alice@example\.jp "
                   r"retrieved=1 deleted=0 bytes=\d+ quit=yes")


def test_pop3s_dele_quit_deletes(pop3d, client_tls):
    files = deliver(pop3d, 3)
    p = pop3s_login(pop3d, client_tls)
    assert p.stat()[0] == 3
    assert p.dele(2).startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.retr(2)
    resp, lines, _ = p.list()
    assert [ln.split()[0] for ln in lines] == [b"1", b"3"]
    assert p.stat()[0] == 2
    assert p.rset().startswith(b"+OK")
    assert p.stat()[0] == 3
    p.dele(1)
    p.dele(3)
    assert files[0].exists()            # only marked until QUIT
    resp = p.quit()
    assert resp.startswith(b"+OK") and b"2 messages deleted" in resp
    assert pop3d.files(ALICE) == [files[1]]
    pop3d.wait_log(r"pop3 logout client=127\.0\.0\.1 user=alice@example\.jp "
                   r"retrieved=0 deleted=2 bytes=0 quit=yes")


def test_dropped_connection_deletes_nothing(pop3d, client_tls):
    files = deliver(pop3d, 2)
    p = pop3s_login(pop3d, client_tls)
    p.dele(1)
    p.dele(2)
    p.close()                           # no QUIT
    pop3d.wait_log(r"pop3 logout client=127\.0\.0\.1 user=alice@example\.jp "
                   r"retrieved=0 deleted=0 bytes=0 quit=no")
    assert pop3d.files(ALICE) == files
    # the lock was released with the connection; QUIT now deletes
    p = pop3s_login(pop3d, client_tls)
    assert p.stat()[0] == 2
    p.dele(1)
    p.quit()
    assert pop3d.files(ALICE) == [files[1]]


def test_second_session_in_use(pop3d, client_tls):
    deliver(pop3d, 1)
    first = pop3s_login(pop3d, client_tls)
    second = poplib.POP3_SSL("127.0.0.1", pop3d.ports["pop3s"], timeout=15,
                             context=client_tls)
    second.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
        second.pass_(ALICE_PW)
    # Bob's mailbox is another lock
    bob = pop3s_login(pop3d, client_tls, BOB, "bob-Secret-2")
    assert bob.stat() == (0, 0)
    bob.quit()
    first.quit()
    # free again once the first session has ended
    second.user(ALICE)
    assert second.pass_(ALICE_PW).startswith(b"+OK")
    second.quit()


def test_login_refusals(pop3d, client_tls):
    p = poplib.POP3("127.0.0.1", pop3d.ports["pop3"], timeout=15)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\].*STLS"):
        p.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"-ERR Log in first"):
        p.stat()
    p.stls(client_tls)
    p.user(ALICE)
    with pytest.raises(poplib.error_proto,
                       match=r"-ERR \[AUTH\] Authentication failed"):
        p.pass_("wrong")
    p.user("nobody@example.jp")
    with pytest.raises(poplib.error_proto,
                       match=r"-ERR \[AUTH\] Authentication failed"):
        p.pass_("wrong")
    p.quit()
    pop3d.cli("user", "suspend", ALICE)
    p = poplib.POP3_SSL("127.0.0.1", pop3d.ports["pop3s"], timeout=15,
                        context=client_tls)
    p.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[SYS/PERM\]"):
        p.pass_(ALICE_PW)
    p.quit()
    pop3d.wait_log(r"pop3 login client=127\.0\.0\.1 user=alice@example\.jp "
                   r"mechanism=USER result=suspended")
    pop3d.wait_log(r"pop3 login client=127\.0\.0\.1 user=nobody@example\.jp "
                   r"mechanism=USER result=fail")


def raw(port, tls=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    if tls is not None:
        s = tls.wrap_socket(s, server_hostname=HOSTNAME)
    f = s.makefile("rb")
    greeting = f.readline()
    assert greeting.startswith(b"+OK"), greeting
    return s, f


def test_sasl_plain_and_login(pop3d, client_tls):
    import base64
    deliver(pop3d, 1)
    s, f = raw(pop3d.ports["pop3s"], client_tls)
    plain = base64.b64encode(b"\0" + ALICE.encode() + b"\0"
                             + ALICE_PW.encode())
    s.sendall(b"AUTH PLAIN " + plain + b"\r\n")
    line = f.readline()
    assert line.startswith(b"+OK Logged in, 1 message"), line
    s.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"+OK")
    s.close()

    s, f = raw(pop3d.ports["pop3s"], client_tls)
    s.sendall(b"AUTH LOGIN\r\n")
    assert f.readline() == b"+ VXNlcm5hbWU6\r\n"
    s.sendall(base64.b64encode(ALICE.encode()) + b"\r\n")
    assert f.readline() == b"+ UGFzc3dvcmQ6\r\n"
    s.sendall(base64.b64encode(b"wrong") + b"\r\n")
    assert f.readline().startswith(b"-ERR [AUTH]")
    # pipelined commands are answered in order
    s.sendall(b"AUTH PLAIN " + plain + b"\r\nSTAT\r\nQUIT\r\n")
    assert f.readline().startswith(b"+OK Logged in")
    assert f.readline().startswith(b"+OK 1 ")
    assert f.readline().startswith(b"+OK")
    s.close()
    pop3d.wait_log(r"mechanism=LOGIN result=fail")
    pop3d.wait_log(r"mechanism=PLAIN result=ok")


def test_stls_discards_pipelined_input(pop3d, client_tls):
    s, f = raw(pop3d.ports["pop3"])
    s.sendall(b"STLS\r\nUSER alice@example.jp\r\n")
    assert f.readline().startswith(b"+OK")
    t = client_tls.wrap_socket(s, server_hostname=HOSTNAME)
    tf = t.makefile("rb")
    t.sendall(b"NOOP\r\n")            # not logged in: the USER was dropped
    assert tf.readline().startswith(b"-ERR Log in first")
    t.sendall(b"QUIT\r\n")
    assert tf.readline().startswith(b"+OK")
    t.close()
    pop3d.wait_log(r"stls discarded=\d+ bytes")


def test_bad_input(pop3d):
    s, f = raw(pop3d.ports["pop3"])
    s.sendall(b"XYZZY\r\n")
    assert f.readline() == b"-ERR Unknown command\r\n"
    s.sendall(b"STAT\r\n")
    assert f.readline().startswith(b"-ERR Log in first")
    s.sendall(b"A" * 2000 + b"\r\n")
    assert f.readline().startswith(b"-ERR Line too long")
    s.sendall(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")
    assert f.readline().startswith(b"-ERR PROXY header not accepted")
    for _ in range(10):
        s.sendall(b"BAD\r\n")
    lines = f.read().split(b"\r\n")
    assert b"-ERR Too many errors, closing connection" in lines
    s.close()


def test_large_message_streams(pop3d, client_tls):
    body = [(b"line %06d " % i) + b"x" * 60 for i in range(40000)]
    body.insert(10, b".starts with a dot")
    files = deliver(pop3d, 1, body=body)
    data = files[0].read_bytes()
    assert len(data) > 2_000_000
    p = pop3s_login(pop3d, client_tls)
    assert p.list(1).split()[2] == str(len(crlf(data))).encode()
    resp, lines, octets = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == crlf(data)
    p.quit()


def test_retr_in_any_order_with_the_next_one_prefetched(pop3d, client_tls):
    """The session asks for message N+1's file while N streams: whatever
    order the client uses, each RETR gives that message's own bytes, and
    a message deleted meanwhile is refused."""
    files = []
    have = len(pop3d.files(ALICE))
    for i in range(5):
        mx_send(pop3d.ports["mx"], ALICE,
                message(f"order {i}", [f"body of message {i}".encode()]))
        pop3d.wait_files(ALICE, have + i + 1)
    files = pop3d.files(ALICE)
    want = [crlf(f.read_bytes()) for f in files]
    p = stls_login(pop3d, client_tls)

    def retr(n):
        resp, lines, _ = p.retr(n)
        assert resp.startswith(b"+OK")
        return b"\r\n".join(lines) + b"\r\n"

    assert retr(1) == want[0]
    assert retr(2) == want[1]       # the prefetched one
    assert retr(4) == want[3]       # skips the prefetched 3
    p.dele(5)                       # the prefetched one, deleted
    with pytest.raises(poplib.error_proto):
        p.retr(5)
    assert retr(3) == want[2]
    p.top(1, 0)                     # TOP does not disturb it
    assert retr(4) == want[3]
    assert retr(1) == want[0]
    p.quit()
    assert len(pop3d.files(ALICE)) == 4
