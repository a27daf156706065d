"""The seam between the session processes and the back side, attacked
from the session side (issue 13): a test program is handed a real back-side
channel the way a session process is (tests/e2e/seam.py), and speaks to the
real back side of a running daemon."""
from conftest import children, mx_send
from seam import Fields, SeamChannel


def test_hook_hands_a_working_channel(daemon):
    """The channel the test build hands out reaches the real back side:
    a malformed request gets BE_FAIL, and the daemon's own sessions go
    on."""
    before = set(children(daemon.proc.pid))
    with SeamChannel(daemon) as ch:
        rep = ch.request("BE_RCPT", Fields().u32(7))    # not a string
        assert rep is not None and rep.failed
    mx_send(daemon.ports["mx"], "bob@example.jp", b"Subject: x\r\n\r\nhi\r\n")
    daemon.wait_files("bob@example.jp", 1)
    assert daemon.proc.poll() is None
    assert set(children(daemon.proc.pid)) == before


# ---- authority lives on the back side (issue 13, item 1) -----------------
#
# Every request that acts for a session starts with a u64 session number
# the session process chose; the back side keeps its own record per
# (channel, number) and checks each request against it. The hostile
# channel below is a compromised session process: it may name any number,
# but only ever its own sessions.

import hashlib
import os
import poplib
import secrets
import smtplib
import time

import pytest

from conftest import (ALICE, ALICE_PW, BOB, BOB_PW, HOSTNAME, free_port,
                      wait_for)
from seam import BE_FAIL
from test_pop3 import POP3_LISTENERS, deliver, stls_login
from test_pop3_apop import APOP_PW, enable_apop

CLIENT = "127.0.0.1"


@pytest.fixture
def popd(make_daemon, tmp_path):
    return make_daemon(listeners=POP3_LISTENERS,
                       extra=[f"apop_secret_key = {tmp_path / 'apop.key'}"])


def same_processes(daemon, before):
    assert daemon.proc.poll() is None, "the master exited"
    assert set(children(daemon.proc.pid)) == before, \
        "a process of the daemon was restarted"


def refused(rep):
    """Refused: BE_FAIL, or no reply at all because the channel went."""
    return rep is None or rep.failed


def close_fd(rep):
    if rep is not None and rep.fd is not None:
        os.close(rep.fd)


def auth(ch, sess, user, password, service="smtp"):
    rep = ch.request("BE_AUTH", Fields().u64(sess).str(service).str("PLAIN")
                     .str(user).str(password).str(CLIENT))
    assert rep is not None and not rep.failed
    return rep.u32(), rep.str()


def queue_id():
    return f"{int(time.time() * 1000):012X}{secrets.randbits(32):08X}"


def spool_write(ch, sess, qid, sender, rcpts, auth_=None, header_from=None,
                fd=None):
    """BE_SPOOL_OPEN for sess (unless the descriptor fd came with
    BE_RCPT_OPEN), then write an envelope naming rcpts [(address,
    mailbox)] and a small message to the descriptor."""
    if fd is None:
        rep = ch.request("BE_SPOOL_OPEN", Fields().u64(sess).str(qid))
        assert rep is not None and not rep.failed and rep.u32() == 0
        rep.str()
        assert rep.fd is not None
        fd = rep.fd
    env = ["SEKISHO-QUEUE 1", f"id {qid}", f"time {int(time.time())}",
           f"sender {sender}"]
    if auth_ is not None:
        env.append(f"auth {auth_}")
    env += [f"client {CLIENT}", "helo hostile.example", "protocol ESMTP",
            "smtputf8 0"]
    env += [f"rcpt {a}\t{m or ''}" for a, m in rcpts]
    body = (f"From: <{header_from or sender}>\r\nSubject: forged {qid}"
            f"\r\n\r\nhostile session\r\n")
    data = ("\n".join(env) + "\n\n" + body).encode()
    os.write(fd, data)
    os.close(fd)
    return len(body)


def commit(ch, sess, qid, size):
    f = Fields().u64(sess).str(qid).u64(size).str(CLIENT).str(None) \
        .str(None).u32(0).str(None).str(None).u32(0)
    return ch.request("BE_SPOOL_COMMIT", f)


def rcpt(ch, sess, address):
    rep = ch.request("BE_RCPT", Fields().u64(sess).str(address))
    assert rep is not None and not rep.failed
    return rep.u32(), rep.str()


def test_commit_only_what_the_back_side_accepted(daemon):
    """A forged commit is refused when its envelope names a recipient the
    back side never accepted for that session, another account than the
    one it authenticated there, or a spool file another session opened;
    the same steps done honestly on the same channel are delivered. The
    daemon's processes stay, and a normal client is served meanwhile."""
    before = set(children(daemon.proc.pid))
    with SeamChannel(daemon) as ch:
        # honest: RCPT accepted, envelope names only it -> delivered
        assert rcpt(ch, 1, ALICE) == (0, ALICE)          # BE_RCPT_LOCAL
        qid_ok = queue_id()
        size = spool_write(ch, 1, qid_ok, "x@example.org", [(ALICE, ALICE)])
        rep = commit(ch, 1, qid_ok, size)
        assert rep is not None and not rep.failed and rep.u32() == 0

        # a recipient never accepted (bob), beside one that was
        assert rcpt(ch, 2, ALICE) == (0, ALICE)
        qid = queue_id()
        size = spool_write(ch, 2, qid, "x@example.org",
                           [(ALICE, ALICE), (BOB, BOB)])
        rep = commit(ch, 2, qid, size)
        assert rep is not None and not rep.failed
        assert rep.u32() == 2 and "5.7.0" in rep.str()

        # an accepted address delivered into another mailbox
        assert rcpt(ch, 3, ALICE) == (0, ALICE)
        qid = queue_id()
        size = spool_write(ch, 3, qid, "x@example.org", [(ALICE, BOB)])
        rep = commit(ch, 3, qid, size)
        assert rep is not None and rep.u32() == 2

        # another account: the session authenticated as bob writes an
        # envelope (and sender) of alice's
        assert auth(ch, 4, BOB, BOB_PW) == (0, BOB)
        rep = ch.request("BE_POLICY_MAIL", Fields().u64(4).str(BOB)
                         .str(CLIENT))
        assert rep is not None and not rep.failed and rep.u32() == 0
        assert rcpt(ch, 4, ALICE) == (0, ALICE)
        qid = queue_id()
        size = spool_write(ch, 4, qid, ALICE, [(ALICE, ALICE)], auth_=ALICE)
        rep = commit(ch, 4, qid, size)
        assert rep is not None and rep.u32() == 2

        # an account at all, in a session that authenticated none
        assert rcpt(ch, 5, ALICE) == (0, ALICE)
        qid = queue_id()
        size = spool_write(ch, 5, qid, ALICE, [(ALICE, ALICE)], auth_=ALICE)
        rep = commit(ch, 5, qid, size)
        assert rep is not None and rep.u32() == 2

        # a normal client is served meanwhile
        mx_send(daemon.ports["mx"], ALICE, b"Subject: real\r\n\r\nhi\r\n")

        # a spool file opened by session 6, committed by session 7
        assert rcpt(ch, 6, ALICE) == (0, ALICE)
        assert rcpt(ch, 7, ALICE) == (0, ALICE)
        qid = queue_id()
        size = spool_write(ch, 6, qid, "x@example.org", [(ALICE, ALICE)])
        assert refused(commit(ch, 7, qid, size))
        # ... and by its own session it is still committed once
        rep = commit(ch, 6, qid, size)
        assert rep is not None and not rep.failed and rep.u32() == 0
        assert refused(commit(ch, 6, qid, size))
    daemon.wait_files(ALICE, 3)         # qid_ok, the real one, session 6's
    time.sleep(0.5)
    assert len(daemon.files(ALICE)) == 3
    assert daemon.files(BOB) == []
    log = daemon.log()
    assert 'refused=commit reason="recipient not accepted"' in log
    assert "refused=commit reason=\"envelope account is not the " \
           "session's\"" in log
    same_processes(daemon, before)


def test_policy_mail_is_for_the_authenticated_account(daemon):
    """BE_POLICY_MAIL names no account: it is the one the back side
    authenticated for the session, and without one it is refused (the
    old request naming alice is refused too)."""
    before = set(children(daemon.proc.pid))
    with SeamChannel(daemon) as ch:
        assert refused(ch.request("BE_POLICY_MAIL", Fields().u64(1)
                                  .str(ALICE).str(CLIENT)))
        # the old shape: str account, str sender, str client
        rep = ch.request("BE_POLICY_MAIL", Fields().str(ALICE).str(ALICE)
                         .str(CLIENT))
        assert refused(rep)
        # a failed login gives no account either
        assert auth(ch, 2, ALICE, "wrong")[0] != 0
        assert refused(ch.request("BE_POLICY_MAIL", Fields().u64(2)
                                  .str(ALICE).str(CLIENT)))
        # another session's login is not this one's
        assert auth(ch, 3, ALICE, ALICE_PW) == (0, ALICE)
        assert refused(ch.request("BE_POLICY_MAIL", Fields().u64(4)
                                  .str(ALICE).str(CLIENT)))
        rep = ch.request("BE_POLICY_MAIL", Fields().u64(3).str(ALICE)
                         .str(CLIENT))
        assert rep is not None and not rep.failed and rep.u32() == 0
    mx_send(daemon.ports["mx"], BOB, b"Subject: x\r\n\r\nhi\r\n")
    daemon.wait_files(BOB, 1)
    assert "refused=policy_mail reason=not-authenticated" in daemon.log()
    same_processes(daemon, before)


def test_pop3_open_needs_the_back_sides_login(popd, client_tls):
    """A mailbox opens only for the account the back side authenticated
    in that very session: not without a login, not with the old request
    naming the account, not on another session's login."""
    deliver(popd, 1)
    before = set(children(popd.proc.pid))
    with SeamChannel(popd) as ch:
        rep = ch.request("BE_POP3_OPEN", Fields().u64(1).str(CLIENT))
        assert refused(rep) and rep.fd is None
        # the old shape: str account, str client address
        rep = ch.request("BE_POP3_OPEN", Fields().str(ALICE).str(CLIENT))
        close_fd(rep)
        assert refused(rep)
        assert auth(ch, 2, BOB, BOB_PW, "pop3") == (0, BOB)
        rep = ch.request("BE_POP3_OPEN", Fields().u64(3).str(CLIENT))
        assert refused(rep)
        # session 2 opens bob's, the one it logged in to, not alice's
        rep = ch.request("BE_POP3_OPEN", Fields().u64(2).str(CLIENT))
        assert rep is not None and not rep.failed
        assert rep.u32() == 0 and rep.u32() == 0     # OK, bob has none
        close_fd(rep)
        # a second mailbox in the same session: no
        assert refused(ch.request("BE_POP3_OPEN", Fields().u64(2)
                                  .str(CLIENT)))
        # alice's mailbox is free: a real client opens it meanwhile
        p = stls_login(popd, client_tls)
        assert p.stat()[0] == 1
        p.quit()
    assert "refused=pop3_open reason=not-authenticated" in popd.log()
    same_processes(popd, before)


def test_pop3_handles_are_per_session(popd, client_tls):
    """While a real client holds alice's mailbox, RETR and UPDATE with
    any number on another channel reach nothing: no message descriptor,
    no deletion."""
    files = deliver(popd, 2)
    before = set(children(popd.proc.pid))
    p = stls_login(popd, client_tls)
    try:
        with SeamChannel(popd) as ch:
            for n in range(0, 33):
                rep = ch.request("BE_POP3_RETR", Fields().u64(n).u32(0))
                close_fd(rep)
                assert refused(rep) and rep.fd is None, n
                rep = ch.request("BE_POP3_UPDATE", Fields().u64(n).u32(1)
                                 .u32(2).u32(0).u32(1))
                assert refused(rep), n
        # the real session still reads both, and deletes nothing
        assert len(p.retr(1)[1]) > 0 and len(p.retr(2)[1]) > 0
    finally:
        p.quit()
    assert popd.files(ALICE) == files
    same_processes(popd, before)


def test_apop_uses_the_back_sides_timestamp(popd):
    """The APOP timestamp is issued and kept by the back side: a digest
    over a timestamp of the session's own choosing, or one captured from
    a real APOP login on another greeting, does not log in."""
    enable_apop(popd)
    deliver(popd, 1)
    before = set(children(popd.proc.pid))
    # a real APOP login; capture its greeting's digest
    p = poplib.POP3("127.0.0.1", popd.ports["pop3"], timeout=15)
    ts = p.welcome[p.welcome.index(b"<"):p.welcome.index(b">") + 1]
    captured = hashlib.md5(ts + APOP_PW.encode()).hexdigest()
    assert p.apop(ALICE, APOP_PW).startswith(b"+OK")
    p.quit()
    with SeamChannel(popd) as ch:
        # the old shape: str user, str (own) timestamp, str digest, str
        # client; the digest is right for that timestamp
        own = f"<1.2@{HOSTNAME}>"
        digest = hashlib.md5((own + APOP_PW).encode()).hexdigest()
        rep = ch.request("BE_APOP", Fields().str(ALICE).str(own).str(digest)
                         .str(CLIENT))
        assert refused(rep) or rep.u32() != 0
        # no timestamp issued for the session: refused
        assert refused(ch.request("BE_APOP", Fields().u64(1).str(ALICE)
                                  .str(digest).str(CLIENT)))
        # a timestamp issued: the replayed digest does not match it
        rep = ch.request("BE_APOP_TIMESTAMP", Fields().u64(2))
        assert rep is not None and not rep.failed
        issued = rep.str()
        assert issued.startswith("<") and issued.endswith(f"@{HOSTNAME}>")
        assert issued != ts.decode()
        rep = ch.request("BE_APOP", Fields().u64(2).str(ALICE).str(captured)
                         .str(CLIENT))
        assert rep is not None and not rep.failed
        assert rep.u32() == 1 and rep.str() is None      # BE_AUTH_FAIL
        assert refused(ch.request("BE_POP3_OPEN", Fields().u64(2)
                                  .str(CLIENT)))
        # neither does the digest over the session's own timestamp
        rep = ch.request("BE_APOP", Fields().u64(2).str(ALICE).str(digest)
                         .str(CLIENT))
        assert rep is not None and rep.u32() == 1
        # a real client is served meanwhile
        p = poplib.POP3("127.0.0.1", popd.ports["pop3"], timeout=15)
        assert p.apop(ALICE, APOP_PW).startswith(b"+OK")
        p.quit()
    same_processes(popd, before)


def test_session_end_and_channel_close_give_the_lock_back(popd, client_tls):
    """A session that ends (BE_SESSION_END) or whose channel closes gives
    its POP3 lock back: a real client logs in afterwards."""
    deliver(popd, 1)
    before = set(children(popd.proc.pid))
    with SeamChannel(popd) as ch:
        assert auth(ch, 9, ALICE, ALICE_PW, "pop3") == (0, ALICE)
        rep = ch.request("BE_POP3_OPEN", Fields().u64(9).str(CLIENT))
        assert rep is not None and not rep.failed and rep.u32() == 0
        close_fd(rep)
        p = poplib.POP3("127.0.0.1", popd.ports["pop3"], timeout=15)
        p.stls(client_tls)
        p.user(ALICE)
        with pytest.raises(poplib.error_proto, match=r"IN-USE"):
            p.pass_(ALICE_PW)
        p.quit()
        rep = ch.request("BE_SESSION_END", Fields().u64(9))
        assert rep is not None and not rep.failed and rep.u32() == 0
        # the record is gone with it: no mailbox, no account
        assert refused(ch.request("BE_POP3_RETR", Fields().u64(9).u32(0)))
        p = stls_login(popd, client_tls)
        assert p.stat()[0] == 1
        p.quit()
    # a channel that closes holding a mailbox
    ch = SeamChannel(popd)
    assert auth(ch, 1, ALICE, ALICE_PW, "pop3") == (0, ALICE)
    rep = ch.request("BE_POP3_OPEN", Fields().u64(1).str(CLIENT))
    assert rep is not None and not rep.failed and rep.u32() == 0
    close_fd(rep)
    ch.close()

    def logs_in():
        try:
            q = stls_login(popd, client_tls)
        except poplib.error_proto:
            return False
        q.quit()
        return True
    wait_for(logs_in, 10, "the lock of a closed channel given back")
    same_processes(popd, before)


# ---- bounds before a request is built (issue 13, item 3) -----------------

def submission(daemon, client_tls):
    s = smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=30)
    s.ehlo("client.example.jp")
    s.starttls(context=client_tls)
    s.ehlo("client.example.jp")
    s.login(ALICE, ALICE_PW)
    return s


def test_long_header_from_is_refused_clearly(daemon, client_tls):
    """A header From folded over 80 lines (80 KB: more than a seam
    message) and a 30 KB one get 554 5.6.0; the session process is the
    same, and a second message in the same session is queued (with a
    900-octet Message-ID, cut where it is logged)."""
    before = set(children(daemon.proc.pid))
    folded = "From: " + "\r\n ".join(["x" * 990] * 80)
    long30 = "From: <alice@example.jp>\r\n " + "\r\n ".join(
        ["(" + "y" * 990 + ")"] * 30)
    with submission(daemon, client_tls) as s:
        for head in (folded, long30):
            msg = (f"{head}\r\nTo: <{BOB}>\r\nSubject: long\r\n\r\n"
                   f"body\r\n").encode()
            assert s.mail(ALICE)[0] == 250
            assert s.rcpt(BOB)[0] == 250
            code, resp = s.data(msg)
            assert code == 554 and resp.startswith(b"5.6.0"), resp
            assert b"header From" in resp
        msgid = "<" + "m" * 900 + "@example.jp>"
        ok = (f"From: <{ALICE}>\r\nTo: <{BOB}>\r\nMessage-ID: {msgid}\r\n"
              f"Subject: fine\r\n\r\nbody\r\n").encode()
        assert s.mail(ALICE)[0] == 250
        assert s.rcpt(BOB)[0] == 250
        code, resp = s.data(ok)
        assert code == 250, resp
    daemon.wait_files(BOB, 1)
    same_processes(daemon, before)


def test_overlong_login_is_refused_before_the_back_side(daemon, client_tls):
    """A password longer than any account's is answered 501 5.5.2 by the
    session itself, and the same session logs in normally afterwards."""
    import base64
    before = set(children(daemon.proc.pid))
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"],
                      timeout=30) as s:
        s.ehlo("client.example.jp")
        s.starttls(context=client_tls)
        s.ehlo("client.example.jp")
        blob = base64.b64encode(f"\0{ALICE}\0{'p' * 1400}".encode())
        code, resp = s.docmd("AUTH", "PLAIN " + blob.decode())
        assert code == 501 and resp.startswith(b"5.5.2"), resp
        s.login(ALICE, ALICE_PW)
    same_processes(daemon, before)


@pytest.mark.sekisho(extra=["max_connections = 20"])
def test_session_records_per_channel_are_bounded(daemon):
    """A channel holds at most max_connections + 64 session records; past
    that a request that would make one more is refused, the ones it has
    still work, ending one makes room, and other channels and real
    clients are not affected."""
    before = set(children(daemon.proc.pid))
    cap = 20 + 64
    with SeamChannel(daemon) as ch:
        for n in range(1, cap + 1):
            assert rcpt(ch, n, ALICE) == (0, ALICE), n
        assert refused(ch.request("BE_RCPT", Fields().u64(cap + 1)
                                  .str(ALICE)))
        assert rcpt(ch, 1, ALICE) == (0, ALICE)
        mx_send(daemon.ports["mx"], BOB, b"Subject: x\r\n\r\nhi\r\n")
        rep = ch.request("BE_SESSION_END", Fields().u64(1))
        assert rep is not None and not rep.failed
        assert rcpt(ch, cap + 1, ALICE) == (0, ALICE)
        with SeamChannel(daemon) as other:
            assert rcpt(other, 1, ALICE) == (0, ALICE)
    daemon.wait_files(BOB, 1)
    assert "sessions on the channel already" in daemon.log()
    same_processes(daemon, before)


@pytest.fixture
def held(make_daemon):
    """Mail to other domains goes to a relayhost that refuses
    connections: it stays in queue/, deferred."""
    return make_daemon(extra=[f"relayhost = [127.0.0.1]:{free_port()}",
                              "queue_retry_min = 1h"])


def test_a_queued_message_cannot_be_replaced(held, client_tls):
    """The session chooses the queue id; a session that opens and commits
    the id of a message already queued (another client's) is refused, and
    that message stays as it was."""
    before = set(children(held.proc.pid))
    with submission(held, client_tls) as s:
        s.sendmail(ALICE, ["carol@example.net"],
                   f"From: <{ALICE}>\r\nSubject: held\r\n\r\nmine\r\n")
    m = held.wait_log(r"id=([0-9A-F]{20}) queued client=")
    qid = m.group(1)
    path = held.spool / "queue" / qid
    wait_for(path.exists, 10, "the message in queue/")
    original = path.read_bytes()
    with SeamChannel(held) as ch:
        assert rcpt(ch, 1, ALICE) == (0, ALICE)
        rep = ch.request("BE_SPOOL_OPEN", Fields().u64(1).str(qid))
        close_fd(rep)
        assert rep is not None and not rep.failed and rep.u32() == 1
    assert path.read_bytes() == original
    assert 'refused=spool_open reason="queue id already queued"' in held.log()
    same_processes(held, before)


def test_header_from_is_read_by_the_back_side(daemon):
    """A submission's header From is read back from the spool file by the
    back side: a session that authenticated alice cannot commit a message
    whose From is bob's by not reporting it; with alice's From it is
    queued."""
    before = set(children(daemon.proc.pid))
    with SeamChannel(daemon) as ch:
        assert auth(ch, 1, ALICE, ALICE_PW) == (0, ALICE)
        for header_from, want in ((BOB, 2), (f"{BOB}>, <{ALICE}", 2),
                                  (ALICE, 0)):
            rep = ch.request("BE_POLICY_MAIL", Fields().u64(1).str(ALICE)
                             .str(CLIENT))
            assert rep is not None and not rep.failed and rep.u32() == 0
            assert rcpt(ch, 1, BOB) == (0, BOB)
            qid = queue_id()
            size = spool_write(ch, 1, qid, ALICE, [(BOB, BOB)], auth_=ALICE,
                               header_from=header_from)
            rep = commit(ch, 1, qid, size)
            assert rep is not None and not rep.failed
            assert rep.u32() == want, (header_from, rep.str())
    daemon.wait_files(BOB, 1)
    time.sleep(0.5)
    assert len(daemon.files(BOB)) == 1
    same_processes(daemon, before)


def rcpt_open(ch, sess, address, qid):
    """BE_RCPT_OPEN: (rcpt result, mailbox, open result, error, fd)."""
    rep = ch.request("BE_RCPT_OPEN", Fields().u64(sess).str(address)
                     .str(qid))
    assert rep is not None and not rep.failed
    return rep.u32(), rep.str(), rep.u32(), rep.str(), rep.fd


def test_rcpt_with_the_spool_open_gives_no_more(daemon):
    """The last recipient and the spool open in one request (issue 18):
    a file only for a recipient the back side took for the session (not
    an unknown one, not a remote one without a login), the same commit
    checks after it; a request without its id is refused.
    An honest one is delivered, and the processes stay."""
    before = set(children(daemon.proc.pid))
    with SeamChannel(daemon) as ch:
        # unknown here, and remote without a login: no file
        assert rcpt_open(ch, 1, "nobody@example.jp", queue_id()) == \
            (2, None, 3, None, None)
        assert rcpt_open(ch, 1, "carol@example.net", queue_id()) == \
            (1, None, 3, None, None)
        # the old shape, without the queue id
        assert refused(ch.request("BE_RCPT_OPEN", Fields().u64(1)
                                  .str(ALICE)))
        # honest: alice accepted, her file handed back, delivered
        qid = queue_id()
        got = rcpt_open(ch, 2, ALICE, qid)
        assert got[:4] == (0, ALICE, 0, None) and got[4] is not None
        size = spool_write(ch, 2, qid, "x@example.org", [(ALICE, ALICE)],
                           fd=got[4])
        rep = commit(ch, 2, qid, size)
        assert rep is not None and not rep.failed and rep.u32() == 0
        # a file opened this way names only what was accepted: bob never was
        qid = queue_id()
        got = rcpt_open(ch, 4, ALICE, qid)
        assert got[2] == 0
        size = spool_write(ch, 4, qid, "x@example.org",
                           [(ALICE, ALICE), (BOB, BOB)], fd=got[4])
        rep = commit(ch, 4, qid, size)
        assert rep is not None and rep.u32() == 2 and "5.7.0" in rep.str()
        # and another session cannot commit it
        qid = queue_id()
        got = rcpt_open(ch, 5, ALICE, qid)
        assert rcpt(ch, 6, ALICE) == (0, ALICE)
        size = spool_write(ch, 5, qid, "x@example.org", [(ALICE, ALICE)],
                           fd=got[4])
        assert refused(commit(ch, 6, qid, size))
    daemon.wait_files(ALICE, 1)
    time.sleep(0.5)
    assert len(daemon.files(ALICE)) == 1
    assert daemon.files(BOB) == []
    same_processes(daemon, before)
