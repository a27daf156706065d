"""Many connections and slow clients (issue 9, resource exhaustion).

2,000 concurrent connections from the load generator (`idle`: greeted, then
silent) plus 200 slowloris clients (`slow`: one byte a second, never a whole
line) against the mx listener, while normal clients send mail with smtplib
on 465 and 25: the normal clients are served and their mail delivered, the
idle connections all get their greeting, and every slow client is cut by
smtp_timeout with 421 4.4.2 (a deadline per command line, not an idle
timer that each byte would reset). RLIMIT_NOFILE is raised for the daemon
and the load generator (both inherit it from the test)."""
import json
import resource
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ALICE, ALICE_PW, BOB, REPO, mx_send, wait_for

LOADGEN = REPO / "build" / "sekisho-loadgen"
IDLE = 2000
SLOW = 200
TIMEOUT = 30          # smtp_timeout: longer than the idle phase
NOFILE = 65536


@pytest.fixture
def many_files():
    """Raise this process's descriptor limit; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), hard))
    except (ValueError, OSError):
        pass
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < IDLE + SLOW + 500:
        pytest.skip("cannot raise RLIMIT_NOFILE far enough")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def loadgen(*args):
    return subprocess.Popen([str(LOADGEN), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def result(proc, timeout):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, (proc.returncode, err[-2000:])
    return json.loads(out)


def test_many_idle_and_slow_clients(many_files, make_daemon, client_tls,
                                    tmp_path):
    if not LOADGEN.exists():
        pytest.fail(f"{LOADGEN} is missing: run make all")
    d = make_daemon(workers=2, extra=[
        f"smtp_timeout = {TIMEOUT}s", "proxy_timeout = 5s",
        "max_connections = 5000", "max_connections_per_ip = 5000",
        "trusted_networks = 127.0.0.0/8"])
    mx = d.ports["mx"]
    ready = tmp_path / "idle-ready"

    started = time.monotonic()
    slow = loadgen("slow", "-p", mx, "-c", SLOW, "--connections", SLOW,
                   "--interval", 1, "--hold", TIMEOUT + 30,
                   "--deadline", TIMEOUT + 60)
    idle = loadgen("idle", "-p", mx, "-j", 2, "-c", 200,
                   "--connections", IDLE, "--hold", 5,
                   "--probe-interval", 1, "--ready-file", ready,
                   "--deadline", 120, "--timeout", 60)
    try:
        wait_for(ready.exists, 120, f"{IDLE} idle connections open")
        opened = time.monotonic() - started

        # Normal clients, while 2,200 others hold connections.
        sent = []
        with smtplib.SMTP_SSL("127.0.0.1", d.ports["submissions"],
                              context=client_tls, timeout=60) as s:
            s.login(ALICE, ALICE_PW)
            for i in range(3):
                msg = (f"From: <{ALICE}>\r\nTo: <{BOB}>\r\n"
                       f"Subject: under load {i}\r\n"
                       f"Message-ID: <load{i}@example.jp>\r\n\r\nhi\r\n")
                s.sendmail(ALICE, [BOB], msg)
                sent.append(i)
        for i in range(2):
            mx_send(mx, BOB, f"Subject: mx under load {i}\r\n\r\nhi\r\n"
                    .encode())
            sent.append(i)

        idle_r = result(idle, 180)
        slow_r = result(slow, TIMEOUT + 120)
    finally:
        for p in (idle, slow):
            if p.poll() is None:
                p.kill()
                p.wait()

    # every idle connection was greeted, and kept while it waited
    assert idle_r["established"] == IDLE, idle_r
    assert idle_r["failed"] == 0, idle_r
    if opened + 5 < TIMEOUT - 5:
        assert idle_r["dropped"] == 0, (opened, idle_r)
    assert idle_r["probe_fail"] == 0, idle_r

    # every slow client was cut by the deadline, and told why
    assert slow_r["established"] == SLOW, slow_r
    assert slow_r["cut"] == SLOW and slow_r["open_at_end"] == 0, slow_r
    assert slow_r["server_said"] == {"421 4.4.2": SLOW}, slow_r
    assert TIMEOUT - 1 <= slow_r["cut_after_s"]["min"], slow_r
    assert slow_r["cut_after_s"]["max"] <= TIMEOUT + 15, slow_r

    # the normal clients' mail arrived
    d.wait_files(BOB, len(sent), timeout=60)
    assert len(d.files(BOB)) == len(sent)
    log = d.log()
    assert log.count("without a whole command line") >= SLOW
