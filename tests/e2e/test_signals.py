"""Signals (docs/security.md, docs/operations.md): SIGHUP reloads the
configuration, the certificates and the geo database without dropping an
open session, and refuses a broken file; SIGTERM stops accepting, lets a
message in flight finish, tells idle sessions 421 and exits 0. Out of file
descriptors, the daemon pauses accepting instead of spinning."""
import hashlib
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import time

import pytest

from conftest import (ALICE, ALICE_PW, BOB, HOSTNAME, Daemon, RawSMTP,
                      dot_stuff, make_cert, mx_send, wait_for)
from geodata import NETWORKS, US4, geo_config_line, write_tor_files
from test_policy import PORTAL, ProxySMTP, message


def session_pids(d):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                st = f.read()
        except OSError:
            continue
        if re.search(rf"(?m)^PPid:\s+{d.proc.pid}$", st) and \
                re.search(r"(?m)^Name:\s+sekisho-session$", st):
            pids.append(int(entry))
    return sorted(pids)


def hup(d, expect):
    mark = d.log_mark()
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log(expect, since=mark)
    return mark


def ehlo_host(c):
    code, lines = c.cmd("EHLO client.example.org")
    assert code == 250, lines
    return lines[0].split()[0][4:]


# --- SIGHUP ---------------------------------------------------------------

def test_sighup_geo_changes_a_decision_open_session_goes_on(
        make_daemon, client_tls, tmp_path):
    d = make_daemon(proxy=True, listeners=Daemon.DEFAULT_LISTENERS + (
        ("submission_proxy", "submission", True),),
        extra=[geo_config_line(tmp_path / "geo"), f"portal_url = {PORTAL}"])
    # logged in from the US before the reload: refused abroad
    s = ProxySMTP(US4, d.ports["submission_proxy"], client_tls)
    s.login_tls(ALICE, ALICE_PW)
    assert s.mail(ALICE)[0] == 550
    # the new database says 198.51.100.0/24 is in Japan
    write_tor_files(tmp_path / "geo",
                    [(n, "JP" if n == "198.51.100.0/24" else cc)
                     for n, cc in NETWORKS])
    hup(d, "geo database reloaded")
    d.wait_log("configuration reloaded")
    # the very session opened before the reload now sends
    assert s.mail(ALICE)[0] == 250
    assert s.rcpt(BOB)[0] == 250
    assert s.data(message())[0] == 250
    s.quit()
    d.wait_files(BOB, 1)


def test_sighup_broken_config_is_refused_old_one_stays(make_daemon):
    d = make_daemon()
    good = d.conf.read_text()
    lines = good.splitlines()
    # a bad value on a known line: the error names it
    lines.append("smtp_max_recipients = many")
    bad_line = len(lines)
    lines[0] = "hostname = other.example.jp"
    d.conf.write_text("\n".join(lines) + "\n")
    mark = hup(d, "config not reloaded")
    assert f"{d.conf}:{bad_line}:" in d.log_since(mark)
    with RawSMTP(d.ports["mx"]) as c:
        assert ehlo_host(c) == HOSTNAME
    # the fixed file is taken; a session opened before goes on as it was
    old = RawSMTP(d.ports["mx"])
    try:
        assert ehlo_host(old) == HOSTNAME
        d.conf.write_text(good.replace(f"hostname = {HOSTNAME}",
                                       "hostname = other.example.jp"))
        hup(d, r"configuration reloaded \(generation 1\)")
        with RawSMTP(d.ports["mx"]) as c:
            assert ehlo_host(c) == "other.example.jp"
        assert ehlo_host(old) == HOSTNAME
        assert old.cmd(f"MAIL FROM:<a@example.org>")[0] == 250
        assert old.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert old.cmd("DATA")[0] == 354
        old.send(b"Subject: before the reload\r\n\r\nhi\r\n.\r\n")
        assert old.reply()[0] == 250
        assert old.cmd("QUIT")[0] == 221
    finally:
        old.close()
    d.wait_files(ALICE, 1)
    # the old session process finished and went
    d.wait_log(r"session process \d+ finished")


def test_sighup_changed_listen_needs_a_restart(make_daemon):
    d = make_daemon()
    text = d.conf.read_text()
    port = d.ports["mx"]
    d.conf.write_text(text.replace(f"127.0.0.1:{port}",
                                   f"127.0.0.1:{port + 1}"))
    mark = hup(d, "configuration reloaded")
    assert "listen changed: needs a restart" in d.log_since(mark)
    mx_send(port, ALICE, b"Subject: old port\r\n\r\nstill\r\n")
    d.wait_files(ALICE, 1)


def cert_digest(der):
    return hashlib.sha256(der).hexdigest()


def test_sighup_new_certificate(make_daemon, tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir()
    cert, key = make_cert(tls)
    d = make_daemon(start=False)
    d.head = [f"tls_cert = {cert}" if h.startswith("tls_cert") else
              f"tls_key = {key}" if h.startswith("tls_key") else h
              for h in d.head]
    d.write_conf()
    d.start()
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    old = RawSMTP(d.ports["submissions"], tls_context=ctx)
    try:
        before = cert_digest(old.sock.getpeercert(binary_form=True))
        # the operator renews the certificate in place
        new_dir = tmp_path / "renewed"
        new_dir.mkdir()
        ncert, nkey = make_cert(new_dir)
        shutil.copy(ncert, cert)
        shutil.copy(nkey, key)
        hup(d, "configuration reloaded")
        with socket.create_connection(("127.0.0.1",
                                       d.ports["submissions"])) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOSTNAME) as s:
                after = cert_digest(s.getpeercert(binary_form=True))
        assert after != before
        assert after == cert_digest(ssl.PEM_cert_to_DER_cert(
            ncert.read_text()))
        # the session opened before goes on with the old one
        assert ehlo_host(old) == HOSTNAME
        assert cert_digest(old.sock.getpeercert(binary_form=True)) == before
        assert old.cmd("QUIT")[0] == 221
    finally:
        old.close()


# --- SIGTERM --------------------------------------------------------------

def refused(port):
    """True when a new connection gets no greeting: refused, reset or
    closed without a word."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.recv(1) == b""
    except OSError:
        return True


def test_sigterm_lets_data_finish_tells_idle_421_exits_0(make_daemon):
    d = make_daemon(extra=["shutdown_timeout = 20s"])
    idle = RawSMTP(d.ports["mx"])
    busy = RawSMTP(d.ports["mx"])
    try:
        assert idle.cmd("EHLO idle.example.org")[0] == 250
        assert busy.cmd("EHLO busy.example.org")[0] == 250
        assert busy.cmd("MAIL FROM:<a@example.org>")[0] == 250
        assert busy.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert busy.cmd("DATA")[0] == 354
        busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
        mark = d.log_mark()
        d.proc.send_signal(signal.SIGTERM)
        d.wait_log("stopping on signal 15", since=mark)
        # the idle one is told at once
        code, lines = idle.reply(timeout=5)
        assert code == 421 and "4.3.2" in lines[0], lines
        assert idle.closed_by_peer(timeout=5)
        # nobody new gets in, once every session process has had the
        # signal (each has its own copy of the listening socket, and the
        # one without these sessions may take its turn a moment later)
        wait_for(lambda: refused(d.ports["mx"]), 10,
                 "new connections refused after SIGTERM")
        # the message in flight is taken
        time.sleep(1)
        busy.send(dot_stuff(b"second half\r\n") + b".\r\n")
        code, lines = busy.reply(timeout=10)
        assert code == 250, lines
        # then it is told too
        assert busy.reply(timeout=5)[0] == 421
        assert d.proc.wait(timeout=30) == 0
    finally:
        idle.close()
        busy.close()
    assert "stopped" in d.log_since(mark)
    d.start()       # what was acknowledged is delivered
    files = d.wait_files(ALICE, 1)
    assert b"second half" in files[0].read_bytes()


def test_sigterm_waits_at_most_shutdown_timeout(make_daemon):
    d = make_daemon(extra=["shutdown_timeout = 2s"])
    c = RawSMTP(d.ports["mx"])
    try:
        assert c.cmd("EHLO slow.example.org")[0] == 250
        assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250
        assert c.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: never finished\r\n\r\n")
        start = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=20) == 0
        assert time.monotonic() - start < 10
    finally:
        c.close()
    assert d.queue_files() == []


# --- out of file descriptors ---------------------------------------------

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


NOFILE = 64


def test_out_of_descriptors_pauses_accepting_no_spin(make_daemon):
    d = make_daemon(workers=1, start=False)
    d.preexec = low_nofile      # every process of the daemon inherits it
    d.start()
    (pid,) = session_pids(d)
    mark = d.log_mark()
    conns = []
    try:
        for _ in range(NOFILE + 20):
            conns.append(socket.create_connection(
                ("127.0.0.1", d.ports["mx"]), timeout=5))
        d.wait_log("accept: Too many open files: listeners paused",
                   since=mark)
        cpu = cpu_seconds(pid)
        time.sleep(3)
        assert cpu_seconds(pid) - cpu < 1.0, "the session process spins"
        pauses = re.findall("listeners paused", d.log_since(mark))
        assert 1 <= len(pauses) <= 2, pauses
        # sessions that were accepted still work
        first = conns[0]
        first.settimeout(5)
        assert first.recv(100).startswith(b"220 ")
        first.sendall(b"NOOP\r\n")
        assert first.recv(100).startswith(b"250 ")
    finally:
        for c in conns:
            c.close()
    # once those are closed, new connections are served again
    time.sleep(1)
    qid = mx_send(d.ports["mx"], ALICE, b"Subject: after\r\n\r\nok\r\n")
    d.wait_message(ALICE, qid)
    assert session_pids(d) == [pid]
