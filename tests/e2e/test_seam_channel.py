"""The channel between a session process and the back side, and what the
processes share, attacked from a session process (issue 13, items 3-6).

A test program is handed a real back-side channel the way a session
process is (tests/e2e/seam.py): it floods it without reading, or sends a
datagram over the size of a message; the back side closes that channel or
drops the datagram, and goes on serving everybody else. A session process
made to scribble over the shared memory (test build hook) dies, and the
master lives. A client that floods during a login delay does not fill the
session process's memory.
"""
import base64
import os
import select
import signal
import smtplib
import socket
import ssl
import threading
import time

import pytest

from conftest import (ALICE, ALICE_PW, BOB, BOB_PW, HOSTNAME, RawSMTP,
                      children, proc_status, wait_for)
from seam import HDR, Fields, SeamChannel, be_type
import test_portal
from test_portal import Web

portal_daemon = test_portal.portal_daemon      # the fixture, shared

FLOOD = 20000


def pids(d, name):
    return sorted(p for p, n in children(d.proc.pid).items() if n == name)


def back_pid(d):
    found = pids(d, "sekisho-back")
    assert len(found) == 1, children(d.proc.pid)
    return found[0]


def smtp_served(port):
    """A whole SMTP transaction to a local mailbox from a normal client;
    returns the seconds it took."""
    start = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.example.org")
        c.sendmail("sender@example.org", [BOB],
                   b"Subject: meanwhile\r\n\r\nhi\r\n")
    return time.monotonic() - start


def test_flood_without_reading_closes_only_that_channel(daemon):
    """20,000 requests and not one reply read: the back side never waits
    on that channel; it closes it when it goes over its cap, and a normal
    client is served meanwhile."""
    back = back_pid(daemon)
    master = daemon.proc.pid
    mark = daemon.log_mark()
    took = {}

    with SeamChannel(daemon) as ch:
        body = bytes(Fields().u64(1).str(BOB).b)
        sent, closed = 0, False
        client = None
        deadline = time.monotonic() + 120
        while sent < FLOOD and time.monotonic() < deadline:
            data = HDR.pack(be_type("BE_RCPT"), HDR.size + len(body),
                            sent + 1) + body
            try:
                if not ch.send_raw(data):
                    select.select([], [ch.sock], [], 0.2)
                    continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sent += 1
            if sent == 2000 and client is None:
                # a normal client while the flood goes on
                client = threading.Thread(target=lambda: took.update(
                    t=smtp_served(daemon.ports["mx"])))
                client.start()
        # the channel ends: EOF after the replies already written
        got_eof = closed
        end = time.monotonic() + 60
        while not got_eof and time.monotonic() < end:
            try:
                rep = ch.recv(timeout=5)
            except EOFError:
                got_eof = True
                break
            if rep is not None and rep.fd is not None:
                os.close(rep.fd)
        assert got_eof, f"channel still open after {sent} requests"
        if client is not None:
            client.join(60)
    assert "t" in took, "the normal client was not served"
    assert took["t"] < 5.0, f"a normal client waited {took['t']:.1f} s"
    daemon.wait_log(r"backend: channel \d+ closed: over its cap of \d+ "
                    r"outstanding requests", since=mark)
    # the back side and the master are the same processes, and serve
    assert daemon.proc.poll() is None and daemon.proc.pid == master
    assert back_pid(daemon) == back
    assert smtp_served(daemon.ports["mx"]) < 5.0
    with SeamChannel(daemon) as ch2:
        rep = ch2.request("BE_RCPT", Fields().u64(1).str(BOB))
        assert rep is not None and not rep.failed


def test_channel_not_read_does_not_block_others(daemon, client_tls):
    """A session process that stops reading its replies, below the cap
    (3,000 requests): no worker waits on it. A normal client's
    transaction and an AUTH login are served meanwhile (the audit saw a
    normal AUTH go from 0.1 s to 19 s), and the channel stays open, its
    replies all there once it reads again."""
    n = 3000
    with SeamChannel(daemon) as ch:
        for _ in range(n):
            ch.send("BE_RCPT", Fields().u64(1).str(BOB))
        time.sleep(1.0)     # the back side has answered what it could
        assert smtp_served(daemon.ports["mx"]) < 5.0
        start = time.monotonic()
        with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"],
                              context=client_tls, timeout=30) as s:
            s.login(BOB, BOB_PW)
        assert time.monotonic() - start < 5.0
        got = 0
        while got < n:
            rep = ch.recv(timeout=10)
            assert rep is not None, f"only {got} of {n} replies"
            assert not rep.failed
            got += 1


def test_reply_over_the_seam_size_fails_that_request(daemon):
    """A reply the back side cannot fit in 64 KiB (a refused sender of
    65,000 bytes quoted back in the 553) fails that request (BE_FAIL,
    logged) instead of stopping the daemon; the channel and the back side
    go on."""
    back = back_pid(daemon)
    mark = daemon.log_mark()
    sender = "s" * 65400 + "@example.org"
    with SeamChannel(daemon) as ch:
        # a session that logged in first, as a real one would
        rep = ch.request("BE_AUTH", Fields().u64(1).str("smtp")
                         .str("PLAIN").str(ALICE).str(ALICE_PW).str("127.0.0.1"))
        assert rep is not None and not rep.failed
        rep = ch.request("BE_POLICY_MAIL", Fields().u64(1).str(sender)
                         .str("127.0.0.1"))
        assert rep is not None and rep.failed
        rep = ch.request("BE_RCPT", Fields().u64(1).str(BOB))
        assert rep is not None and not rep.failed
    daemon.wait_log(r"backend: reply type=\d+ size=\d+ to request \d+ on "
                    r"channel \d+ over 65536 bytes: failed", since=mark)
    assert back_pid(daemon) == back and daemon.proc.poll() is None
    assert smtp_served(daemon.ports["mx"]) < 5.0


def test_oversized_datagram_is_dropped(daemon):
    """A datagram of 200 KB whose header lies about its length, and one of
    60 KB with a lying header: dropped; the back side lives and the same
    channel still gets answers."""
    back = back_pid(daemon)
    mark = daemon.log_mark()
    with SeamChannel(daemon) as ch:
        try:
            ch.sock.setsockopt(socket.SOL_SOCKET, 32, 1 << 20)  # SNDBUFFORCE
        except OSError:
            ch.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        ch.sock.setblocking(True)
        big = HDR.pack(be_type("BE_RCPT"), 64, 1) + b"A" * (200 * 1024)
        ch.sock.send(big)
        lying = HDR.pack(be_type("BE_RCPT"), 64, 2) + b"B" * (60 * 1024)
        ch.sock.send(lying)
        ch.sock.setblocking(False)
        rep = ch.request("BE_RCPT", Fields().u64(1).str(BOB))
        assert rep is not None and not rep.failed
        # thousands of malformed ones: dropped, and they do not fill the
        # log (a few lines a second, the rest counted)
        for i in range(5000):
            ch.send_raw(HDR.pack(be_type("BE_RCPT"), 999, i) + b"x" * 40)
        rep = ch.request("BE_RCPT", Fields().u64(1).str(BOB))
        assert rep is not None and not rep.failed
    daemon.wait_log(r"channel: truncated message", since=mark)
    daemon.wait_log(r"channel: malformed message", since=mark)
    assert daemon.log_since(mark).count("channel: malformed message") < 200
    assert back_pid(daemon) == back
    assert daemon.proc.poll() is None
    assert smtp_served(daemon.ports["mx"]) < 5.0


def per_ip_limit_holds(port, limit):
    """limit connections are greeted, one more is refused with 421 4.7.0,
    and once they are gone a new one is greeted again."""
    held = [RawSMTP(port) for _ in range(limit)]
    try:
        with RawSMTP(port, greet=False) as extra:
            code, lines = extra.reply()
            assert code == 421 and lines[0].startswith("421 4.7.0"), lines
        for c in held:
            assert c.cmd("NOOP")[0] == 250
    finally:
        for c in held:
            c.close()

    def fresh():
        with RawSMTP(port, greet=False) as c:
            return c.reply()[0] == 220
    wait_for(fresh, 10, "a new connection to be greeted with 220")


@pytest.mark.sekisho(extra=["max_connections_per_ip = 3"])
def test_scribbled_shared_memory_does_not_reach_the_master(daemon):
    """A session process writes garbage over all it shares with the master
    (the connection table with a capacity of 2^40 and huge counts, the
    lock, the metrics) and dies: the master (root) lives, the same
    process; a new session process serves SMTP; the per-address limit
    works afterwards."""
    master = daemon.proc.pid
    back = back_pid(daemon)
    per_ip_limit_holds(daemon.ports["mx"], 3)
    before = pids(daemon, "sekisho-session")
    victim = before[0]
    mark = daemon.log_mark()
    os.kill(victim, signal.SIGUSR2)
    daemon.wait_log(rf"session process {victim} exited on signal "
                    rf"{int(signal.SIGABRT)}", since=mark)
    wait_for(lambda: len(pids(daemon, "sekisho-session")) == len(before)
             and victim not in pids(daemon, "sekisho-session"), 15,
             "the session process to be restarted")
    assert daemon.proc.poll() is None and daemon.proc.pid == master
    assert back_pid(daemon) == back
    # every session process serves (each accepts in turn: a few tries)
    for _ in range(4):
        assert smtp_served(daemon.ports["mx"]) < 5.0
    per_ip_limit_holds(daemon.ports["mx"], 3)
    assert "dropped (a session process wrote over" in daemon.log_since(mark)


FLOOD_BYTES = 50 * 1024 * 1024
RSS_GROWTH_MAX = 24 * 1024 * 1024   # the flood is 50 MiB; a bound, not a fit
DELAY_LISTENERS = (("mx", "mx", False), ("submissions", "submissions", False),
                   ("pop3s", "pop3s", False))


def rss(pid):
    return int(proc_status(pid)["VmRSS"][0]) * 1024


def session_rss(d):
    return {p: rss(p) for p in pids(d, "sekisho-session")}


def tls_client(port, ctx):
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    return ctx.wrap_socket(raw, server_hostname=HOSTNAME)


def read_until(sock, token, timeout=15.0):
    data = b""
    deadline = time.monotonic() + timeout
    while token not in data and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def flood(sock, total=FLOOD_BYTES, stall=3.0, limit=60.0):
    """Send up to total bytes of pipelined junk commands; stop when the
    server stops reading (a send blocks for stall seconds) or cuts us.
    Returns (bytes sent, why it stopped)."""
    chunk = b"NOOP\r\n" * (64 * 1024 // 6)
    sent = 0
    sock.settimeout(stall)
    deadline = time.monotonic() + limit
    while sent < total and time.monotonic() < deadline:
        try:
            sent += sock.send(chunk)
        except (socket.timeout, TimeoutError):
            return sent, "not read"
        except (OSError, ssl.SSLError):
            return sent, "cut"
    return sent, "all sent"


def rest_of(sock, timeout=20.0):
    """What the server still sends before it closes (errors end it)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (OSError, ssl.SSLError):
        pass
    return data


def check_flood_bounded(d, before_rss, sent, why, tail):
    """The flood was not held in memory, and everything goes on."""
    # stopped reading, or cut (a cut session's socket is read and
    # discarded for a moment before it closes: conn_linger_close)
    assert why in ("not read", "cut") or b"Too much input" in tail, \
        (sent, why, tail[-300:])
    after = session_rss(d)
    assert set(after) == set(before_rss), "a session process died"
    growth = max(after[p] - before_rss[p] for p in after)
    assert growth < RSS_GROWTH_MAX, f"a session process grew {growth} bytes"
    assert smtp_served(d.ports["mx"]) < 10.0
    with RawSMTP(d.ports["mx"], greet=False) as c:
        code, lines = c.reply()
        assert code == 220, lines      # not 421 4.3.2 (low on memory)


def delay_daemon(make_daemon):
    return make_daemon(listeners=DELAY_LISTENERS,
                       extra=["auth_fail_delay = 5s",
                              "auth_fail_delay_max = 5s"])


def test_smtp_flood_during_login_delay(make_daemon, client_tls):
    """A wrong AUTH PLAIN password over SMTP, then 50 MiB of pipelined
    junk during the failure's delay: the session stops reading and cuts
    the client (421 4.7.0); the session process does not grow and
    serves new clients."""
    d = delay_daemon(make_daemon)
    master = d.proc.pid
    before = session_rss(d)
    mark = d.log_mark()
    with tls_client(d.ports["submissions"], client_tls) as s:
        assert read_until(s, b"\r\n").startswith(b"220")
        s.sendall(b"EHLO flood.example.org\r\n")
        assert b"250 " in read_until(s, b"250 ")
        cred = base64.b64encode(b"\0" + BOB.encode() + b"\0wrong-password")
        s.sendall(b"AUTH PLAIN " + cred + b"\r\n")
        time.sleep(1.0)     # answered by the back side: the delay runs
        sent, why = flood(s)
        tail = rest_of(s)
    check_flood_bounded(d, before, sent, why, tail)
    assert b"421 4.7.0" in tail, tail[-300:]
    d.wait_log(r"cut: \d+ bytes of input while waiting", since=mark)
    assert d.proc.poll() is None and d.proc.pid == master


def test_pop3_flood_during_login_delay(make_daemon, client_tls):
    """The same over POP3: a wrong PASS, then a flood during the delay:
    -ERR and cut, bounded memory, new clients served."""
    d = delay_daemon(make_daemon)
    master = d.proc.pid
    before = session_rss(d)
    mark = d.log_mark()
    with tls_client(d.ports["pop3s"], client_tls) as s:
        assert read_until(s, b"\r\n").startswith(b"+OK")
        s.sendall(b"USER " + BOB.encode() + b"\r\n")
        assert read_until(s, b"\r\n").startswith(b"+OK")
        s.sendall(b"PASS wrong-password\r\n")
        time.sleep(1.0)     # answered by the back side: the delay runs
        sent, why = flood(s)
        tail = rest_of(s)
    check_flood_bounded(d, before, sent, why, tail)
    assert b"-ERR Too much input while waiting" in tail, tail[-300:]
    d.wait_log(r"cut: \d+ bytes of input while waiting", since=mark)
    assert d.proc.poll() is None and d.proc.pid == master


def test_pipelining_still_answered_in_order(daemon):
    """RFC 2920: a pipelined transaction sent in one write while the
    session waits on the back side is still answered, in order."""
    with RawSMTP(daemon.ports["mx"]) as c:
        assert c.cmd("EHLO client.example.org")[0] == 250
        rcpts = "".join(f"RCPT TO:<{BOB}>\r\n" for _ in range(50))
        c.send(("MAIL FROM:<sender@example.org>\r\n" + rcpts +
                "DATA\r\n").encode())
        assert c.reply()[0] == 250
        for _ in range(50):
            assert c.reply()[0] == 250
        assert c.reply()[0] == 354
        c.send(b"Subject: pipelined\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 221
    daemon.wait_files(BOB, 1)


def test_oversized_form_field_fails_cleanly(portal_daemon):
    """An unauthenticated POST with a 100 KB field makes a request over
    the seam's 64 KiB: it fails as a temporary failure (the page says
    so), and no process exits (issue 13, item 1: it was a fatal)."""
    d = portal_daemon()
    master, back = d.proc.pid, back_pid(d)
    sessions = pids(d, "sekisho-session")
    mark = d.log_mark()
    w = Web(d.portal_port)
    _, _, page = w.request("GET", "/")
    status, _, _ = w.request("POST", "/login", {
        "csrf": Web.csrf(page), "user": "a" * (100 * 1024),
        "password": "x" * (100 * 1024)})
    assert status in (400, 413, 500, 503), status
    # the same process serves the next request
    status, _, _ = w.request("GET", "/")
    assert status == 200
    assert pids(d, "sekisho-session") == sessions
    assert back_pid(d) == back and d.proc.pid == master
    assert "fatal" not in d.log_since(mark)


def test_long_folded_from_fails_cleanly(daemon, client_tls):
    """A subscriber's message whose From header is folded over thousands
    of lines (more than the seam's 64 KiB of addresses): refused with a
    clear reply, the session process goes on (issue 13, item 1: it was a
    fatal that took every open SMTP transaction of that process)."""
    sessions = pids(daemon, "sekisho-session")
    master, back = daemon.proc.pid, back_pid(daemon)
    # 32 addresses (the most a From is checked with), each a local part
    # of 2,400 bytes folded over 30 lines: 77 KB of From addresses
    local = ".\r\n ".join("x" * 79 for _ in range(30))
    addrs = ",\r\n ".join(f"{local}{i:02d}@example.org" for i in range(32))
    msg = (f"From: {addrs}\r\nTo: {BOB}\r\nSubject: long From\r\n\r\n"
           "hi\r\n").encode()
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"],
                          context=client_tls, timeout=30) as s:
        s.login(BOB, BOB_PW)
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail(BOB, [BOB], msg)
        assert 400 <= e.value.smtp_code < 600
        # the same session goes on
        assert s.noop()[0] == 250
    # and its spool file is not left behind
    wait_for(lambda: not any((daemon.spool / "incoming").iterdir()), 10,
             "the refused message's spool file to go")
    assert pids(daemon, "sekisho-session") == sessions
    assert back_pid(daemon) == back and daemon.proc.pid == master
    assert smtp_served(daemon.ports["mx"]) < 5.0
