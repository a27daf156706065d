"""Out of memory (docs/security.md, "Out of memory"; issue 9, item 3).

A session process runs under RLIMIT_DATA (session_memory_limit) with a
reserve. The test fills one from outside: SMTP clients in DATA that send a
long header section and then wait, which the session keeps in memory until
the header ends. When an allocation fails the reserve is released: the
process goes on, its open sessions go on, and new connections are told
421 4.3.2 (POP3 -ERR [SYS/TEMP]; port 465 is closed) until the hoard is
gone and the reserve is taken back.

Run with the release build (build/sekisho): AddressSanitizer's shadow
memory makes RLIMIT_DATA unusable, so the ASan build does not apply it.
"""
import os
import re
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

import conftest
from conftest import (ALICE, BOB, BOB_PW, RawSMTP, children, proc_status,
                      wait_for)

RELEASE = Path(__file__).resolve().parents[2] / "build" / "sekisho"
LIMIT = 16 * 1024 * 1024        # session_memory_limit
HEADER = 100 * 1000             # header bytes each hoarding client sends
MAX_HOARD = 400                 # 16M / HEADER is ~160: a bound, not a guess
HOARD_TIME = 60.0

LOW_SMTP = "421 4.3.2 Service not available, low on memory, try again later"
LOW_POP3 = b"-ERR [SYS/TEMP] low on memory, try again later\r\n"


@pytest.fixture
def release_binary(monkeypatch):
    """The daemon of this test is the release build (a private copy)."""
    if not os.access(RELEASE, os.X_OK):
        pytest.fail(f"{RELEASE} is missing: run make (the release build; "
                    "the ASan build cannot apply session_memory_limit)")
    monkeypatch.setattr(conftest, "SEKISHO", conftest._snapshot(RELEASE))


def processes(d):
    """{pid: name} of the daemon's children (back side, session
    processes)."""
    return children(d.proc.pid)


def rx_queue(server_port, client_port):
    """Bytes the server has not read yet on the connection from
    client_port (/proc/net/tcp, its receive queue); None if not found."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            local, remote = cols[1], cols[2]
            if int(local.split(":")[1], 16) == server_port and \
                    int(remote.split(":")[1], 16) == client_port:
                return int(cols[4].split(":")[1], 16)
    return None


def hoarder(port):
    """A new SMTP connection: (code, first line, client). A 220 client is
    put in DATA with HEADER bytes of header sent, and returned only once
    the server has read all of them, so that each step's memory is taken
    before the next connection is tried."""
    c = RawSMTP(port, greet=False)
    code, lines = c.reply()
    if code != 220:
        c.close()
        return code, lines[0], None
    assert c.cmd("EHLO hoard.example.org")[0] == 250
    assert c.cmd("MAIL FROM:<hoard@example.org>")[0] == 250
    assert c.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    line = b"X-Hoard: " + b"h" * 900 + b"\r\n"
    c.send(b"Subject: hoard\r\n" + line * (HEADER // len(line)))
    cport = c.sock.getsockname()[1]
    # read, or the connection is gone (a crash: the caller sees it)
    wait_for(lambda: rx_queue(port, cport) in (0, None), 10,
             "the server to read the hoarding client's header")
    return code, lines[0], c


def notable(log):
    """The log lines that tell what became of memory and processes."""
    return "\n".join(x for x in log.splitlines()
                     if re.search(r"fatal|exited|memory", x))


def message(subject, sender=BOB, to=ALICE):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m.set_content(f"{subject}\n")
    return m


def subjects(d, address):
    return [re.search(rb"(?m)^Subject: (.*)\r?$", f.read_bytes()).group(1)
            .decode() for f in d.files(address)]


def test_low_memory_refuses_new_sessions_and_recovers(release_binary,
                                                      make_daemon,
                                                      client_tls):
    listeners = list(conftest.Daemon.DEFAULT_LISTENERS) + \
        [("pop3", "pop3", False)]
    d = make_daemon(workers=1, listeners=listeners, extra=[
        f"session_memory_limit = {LIMIT // (1024 * 1024)}M",
        "max_connections = 2000",
        "max_connections_per_ip = 2000",
    ])
    mx = d.ports["mx"]
    kids = processes(d)
    sessions = [p for p, n in kids.items() if n == "sekisho-session"]
    assert len(sessions) == 1, kids
    sp = sessions[0]
    # the cap is the process's own, soft and hard
    with open(f"/proc/{sp}/limits") as f:
        data = [x for x in f if x.startswith("Max data size")][0]
    assert data.split()[3:5] == [str(LIMIT)] * 2, data

    # a session opened before the pressure, ready to send
    before = smtplib.SMTP("127.0.0.1", d.ports["submission"], timeout=30)
    before.ehlo("before.example.org")
    before.starttls(context=client_tls)
    before.ehlo("before.example.org")
    before.login(BOB, BOB_PW)
    mark = d.log_mark()

    hoard, refused = [], None
    deadline = time.monotonic() + HOARD_TIME
    try:
        for _ in range(MAX_HOARD):
            assert time.monotonic() < deadline, "hoarding took too long"
            code, first, c = hoarder(mx)
            if c is None:
                refused = (code, first)
                break
            hoard.append(c)
            assert processes(d) == kids, \
                f"a process died after {len(hoard)} hoarding clients:\n" \
                f"{notable(d.log_since(mark))}"
        assert refused == (421, LOW_SMTP), \
            f"after {len(hoard)} hoarding clients: {refused}\n" \
            f"{d.log_since(mark)[-3000:]}"
        print(f"421 4.3.2 after {len(hoard)} hoarding clients of "
              f"{HEADER} header bytes, limit {LIMIT}, VmData "
              f"{proc_status(sp)['VmData']}")
        d.wait_log(r"warn: memory low: a \d+-byte allocation failed in "
                   rf"the session process \(pid {sp}\); its 1024 KiB "
                   r"reserve is released, refusing new sessions", mark)

        # still low: each role says so its way, cheaply
        with RawSMTP(d.ports["submission"], greet=False) as c:
            assert c.line().decode() == LOW_SMTP
            assert c.closed_by_peer()
        with socket.create_connection(("127.0.0.1", d.ports["pop3"]),
                                      timeout=10) as s:
            got = b""
            while chunk := s.recv(4096):
                got += chunk
            assert got == LOW_POP3
        # implicit TLS cannot be answered without a handshake: closed
        with socket.create_connection(("127.0.0.1", d.ports["submissions"]),
                                      timeout=10) as s:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                client_tls.wrap_socket(s,
                                       server_hostname=conftest.HOSTNAME)

        # the session from before goes on, and its message is delivered
        before.send_message(message("sent while memory was low"))
        before.quit()
        d.wait_files(ALICE, 1)
        assert "sent while memory was low" in subjects(d, ALICE)
    finally:
        for c in hoard:
            c.close()

    # the hoard gone, the reserve is taken back (a timer, once a second)
    d.wait_log(rf"memory back: the session process \(pid {sp}\) holds its "
               r"1024 KiB reserve again, accepting new sessions", mark,
               timeout=15)
    with smtplib.SMTP("127.0.0.1", mx, timeout=30) as s:
        s.send_message(message("sent after memory came back",
                               sender="someone@example.org"))
    d.wait_files(ALICE, 2)
    assert "sent after memory came back" in subjects(d, ALICE)

    # no crash, no restart: the same processes, nothing died
    assert processes(d) == kids
    log = d.log_since(mark)
    assert "exited" not in log and "restarting" not in log, log[-3000:]
    assert "out of memory" not in log, log[-3000:]
