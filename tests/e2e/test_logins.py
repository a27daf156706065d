"""Logins and the logs they leave (issue 13, items 9 to 11): login names
with control characters are refused at every login path and never reach a
log line raw; a stranger's failures lock an account but not against its
owner at the owner's usual address; IPv6 clients count by their /64 for
connection limits and throttling; the Postfix policy listener answers only
policy_clients; "From :" is a From header; descriptors inherited at start
are closed in every process.

Clients "from elsewhere" connect over loopback to listeners that expect a
PROXY header from 127.0.0.1 carrying documentation addresses (RFC 5737,
RFC 3849). Nothing leaves loopback.
"""
import base64
import functools
import os
import poplib
import re
import socket
import subprocess

import pytest

import conftest
from conftest import (ALICE, ALICE_PW, BOB, Daemon, RawSMTP, children,
                      free_port, wait_for)
from pg import pg_cluster  # noqa: F401 (fixture)
from seam import Fields, SeamChannel
from test_metrics import scrape
from test_pop3 import POP3_LISTENERS
from test_proxy import proxy_v1, proxy_v2

SUB_PROXY = Daemon.DEFAULT_LISTENERS + (
    ("submission_proxy", "submission", True),)
# trusted_networks: the addresses below count as home (the overseas rule
# is not under test here)
HOME = ["trusted_networks = 192.0.2.0/24", "trusted_networks = "
        "198.51.100.0/24", "trusted_networks = 203.0.113.0/24",
        "trusted_networks = 2001:db8::/32"]
STRANGER = "203.0.113.7"
USUAL = "192.0.2.10"
NEW = "198.51.100.20"

# the forged text that must never start a line of the log
FORGED = "2026-12-06T00:00:00.000 event type=admin_suspend by desk"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def plain(user, password):
    return b64(f"\0{user}\0{password}")


def no_raw(daemon, *marks):
    """The log, read as bytes, holds no control byte but line ends, and
    none of the marks right after a line end or a tab."""
    data = daemon.log_path.read_bytes()
    assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", data), \
        re.search(rb".{0,80}[\x00-\x08\x0b-\x1f\x7f].{0,80}", data).group()
    for m in marks:
        m = m.encode()
        assert b"\n" + m not in data and b"\t" + m not in data
    return data


def smtp_tls(daemon, client_tls, port="submission", prefix=None):
    c = RawSMTP(daemon.ports[port], prefix=prefix)
    assert c.cmd("EHLO client.example.org")[0] == 250
    assert c.cmd("STARTTLS")[0] == 220
    c.starttls(client_tls)
    assert c.cmd("EHLO client.example.org")[0] == 250
    return c


def auth_plain(daemon, client_tls, user, password, source=None):
    """One AUTH PLAIN, from `source` over the PROXY listener if given;
    returns the reply code."""
    if source is None:
        c = smtp_tls(daemon, client_tls)
    else:
        c = smtp_tls(daemon, client_tls, "submission_proxy",
                     proxy_v1(source, "2001:db8::25" if ":" in source
                              else "192.0.2.25", dport=587))
    with c:
        code, lines = c.cmd("AUTH PLAIN " + plain(user, password))
    return code


# ---- item 9: names with control characters ---------------------------

def test_smtp_auth_names_with_lf_or_tab_refused(make_daemon, client_tls):
    # a low per-address lock: had the crafted names reached the back side's
    # count, the address would be locked (and its event logged) below
    d = make_daemon(extra=["auth_max_failures_per_ip = 2",
                           "auth_fail_delay = 0s"])
    with smtp_tls(d, client_tls) as c:
        # PLAIN, a name with LF and a forged log line after it
        code, lines = c.cmd("AUTH PLAIN " + plain(f"{ALICE}\n{FORGED}",
                                                  ALICE_PW))
        assert code == 535 and "5.7.8" in lines[0], lines
        # PLAIN, the right password, a TAB in the name
        code, lines = c.cmd("AUTH PLAIN " + plain(f"{ALICE}\t{FORGED}",
                                                  ALICE_PW))
        assert code == 535, lines
        # LOGIN, name then password in two steps
        assert c.cmd("AUTH LOGIN " + b64(f"{ALICE}\r\n{FORGED}"))[0] == 334
        code, lines = c.cmd(b64(ALICE_PW))
        assert code == 535 and "5.7.8" in lines[0], lines
        # the subscriber's own name still logs in on the same session
        code, lines = c.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW))
        assert code == 235, lines
    d.wait_log(r"smtp auth client=127\.0\.0\.1 user=alice@example\.jp "
               r"mechanism=PLAIN result=ok")
    data = no_raw(d, FORGED)
    assert data.count(b"result=fail reason=name") == 3
    assert b"user=alice@example.jp\\x0a2026" in data
    assert b"user=alice@example.jp\\x09" in data
    assert b"user=alice@example.jp\\x0d\\x0a" in data


def test_pop3_user_auth_apop_names_with_tab_refused(make_daemon, tmp_path):
    d = make_daemon(listeners=POP3_LISTENERS, extra=[
        f"apop_secret_key = {tmp_path / 'apop.key'}",
        "pop3_auth_without_tls = loopback", "auth_fail_delay = 0s",
        "auth_max_failures_per_ip = 2"])
    d.cli("user", "apop", "enable", ALICE, input="apop-Secret-9\n")
    # USER with a TAB: refused (the command parser takes no control
    # character; the login name check is behind it)
    p = poplib.POP3("127.0.0.1", d.ports["pop3"], timeout=15)
    with pytest.raises(poplib.error_proto, match=r"-ERR"):
        p.user(f"{ALICE}\t{FORGED}")
        p.pass_(ALICE_PW)
    p.quit()
    with socket.create_connection(("127.0.0.1", d.ports["pop3"]),
                                  timeout=15) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        # AUTH PLAIN with an LF in the name (base64 can carry it)
        s.sendall(b"AUTH PLAIN " + plain(f"{ALICE}\n{FORGED}",
                                         ALICE_PW).encode() + b"\r\n")
        assert f.readline().startswith(b"-ERR [AUTH]")
        # AUTH LOGIN: the name (with CR LF) after the first prompt
        s.sendall(b"AUTH LOGIN\r\n")
        assert f.readline().startswith(b"+ ")
        s.sendall(b64(f"{ALICE}\r\n{FORGED}").encode() + b"\r\n")
        assert f.readline().startswith(b"+ ")
        s.sendall(b64(ALICE_PW).encode() + b"\r\n")
        assert f.readline().startswith(b"-ERR [AUTH]")
        # APOP with a TAB in the name (APOP needs no TLS)
        s.sendall(f"APOP {ALICE}\t{FORGED} 0123456789abcdef0123456789"
                  f"abcdef\r\n".encode())
        assert f.readline().startswith(b"-ERR")
        s.sendall(b"QUIT\r\n")
    # the right name and password still work
    p = poplib.POP3("127.0.0.1", d.ports["pop3"], timeout=15)
    p.user(ALICE)
    assert p.pass_(ALICE_PW).startswith(b"+OK")
    p.quit()
    d.wait_log(r"pop3 logout client=127\.0\.0\.1 user=alice@example\.jp")
    data = no_raw(d, FORGED)
    assert b"reason=name" in data


BE_AUTH_OK = 0


def test_back_side_refuses_control_names_from_a_session(make_daemon):
    """A compromised session process sends BE_AUTH with a crafted name
    enough times to lock an address: the back side refuses every one
    without a look-up, and no log line or event holds the name raw."""
    d = make_daemon(extra=["auth_max_failures_per_ip = 3"])
    name = f"{ALICE}\n{FORGED}\tx"
    with SeamChannel(d) as ch:
        for i in range(6):
            rep = ch.request("BE_AUTH", Fields().u64(1).str("smtp")
                             .str("PLAIN").str(name)
                             .str(ALICE_PW if i % 2 else "wrong")
                             .str("198.51.100.9"))
            assert rep is not None and not rep.failed
            result, account = rep.u32(), rep.str()
            assert result != BE_AUTH_OK and account is None
        # the real name with its password from that address: not locked
        rep = ch.request("BE_AUTH", Fields().u64(1).str("smtp")
                         .str("PLAIN").str(ALICE).str(ALICE_PW)
                         .str("198.51.100.9"))
        assert rep.u32() == BE_AUTH_OK and rep.str() == ALICE
    d.wait_log(r"policy auth refused client=198\.51\.100\.9 name=")
    events = d.cli("events").stdout
    assert FORGED not in events and "\t" + FORGED not in events
    no_raw(d, FORGED)


# ---- item 10: no lock-out by strangers --------------------------------

@pytest.mark.parametrize("family,backend", [(4, "sqlite"), (6, "sqlite"),
                                            (4, "postgresql")])
def test_stranger_cannot_lock_owner_out(make_daemon, client_tls, family,
                                        backend, request):
    store = {} if backend == "sqlite" else {
        "store": request.getfixturevalue("pg_cluster").store()}
    usual, stranger, new, usual_again = {
        4: (USUAL, STRANGER, NEW, USUAL),
        # the owner's /64, a stranger, another /64 of the same /48;
        # the owner comes back from another address of their /64
        6: ("2001:db8:1:2::10", "2001:db8:bad::7", "2001:db8:1:3::5",
            "2001:db8:1:2:ffff::99")}[family]
    d = make_daemon(proxy=True, listeners=SUB_PROXY, extra=HOME + [
        "auth_fail_delay = 0s", "auth_max_failures_per_ip = 100"], **store)
    # the subscriber logs in from home as usual
    assert auth_plain(d, client_tls, ALICE, ALICE_PW, usual) == 235
    # a stranger guesses 20 times: the account locks
    for _ in range(20):
        assert auth_plain(d, client_tls, ALICE, "guess", stranger) == 535
    assert "auth_locked_account" in d.cli("events").stdout
    # the right password: from the stranger's address and from an address
    # the account never used, locked (454)
    assert auth_plain(d, client_tls, ALICE, ALICE_PW, stranger) == 454
    assert auth_plain(d, client_tls, ALICE, ALICE_PW, new) == 454
    # a wrong password from the usual address is still refused
    assert auth_plain(d, client_tls, ALICE, "guess", usual_again) == 535
    # from the usual address (IPv6: its /64), the owner gets in
    assert auth_plain(d, client_tls, ALICE, ALICE_PW, usual_again) == 235
    d.wait_log(r"account locked, not here: it logged in from this client "
               r"lately")


def test_trusted_addresses_off_locks_everyone(make_daemon, client_tls):
    """auth_trusted_address_days = 0: the old rule, the lock refuses the
    owner too."""
    d = make_daemon(proxy=True, listeners=SUB_PROXY, extra=HOME + [
        "auth_fail_delay = 0s", "auth_max_failures_per_ip = 100",
        "auth_trusted_address_days = 0"])
    assert auth_plain(d, client_tls, ALICE, ALICE_PW, USUAL) == 235
    for _ in range(20):
        assert auth_plain(d, client_tls, ALICE, "guess", STRANGER) == 535
    assert auth_plain(d, client_tls, ALICE, ALICE_PW, USUAL) == 454


def test_trusted_address_expires(make_daemon, client_tls, monkeypatch):
    """A login older than the window does not make an address trusted."""
    d = make_daemon(proxy=True, listeners=SUB_PROXY, extra=HOME + [
        "auth_fail_delay = 0s", "auth_max_failures_per_ip = 100",
        "auth_trusted_address_days = 1"])
    assert auth_plain(d, client_tls, ALICE, ALICE_PW, USUAL) == 235
    # two days later (the policy clock, docs/policy.md)
    d.stop()
    monkeypatch.setenv("SEKISHO_CLOCK_OFFSET", str(2 * 86400))
    d.start()
    for _ in range(20):
        assert auth_plain(d, client_tls, ALICE, "guess", STRANGER) == 535
    assert auth_plain(d, client_tls, ALICE, ALICE_PW, USUAL) == 454


# ---- item 11a: IPv6 by /64 --------------------------------------------

def test_a_64_is_one_client_for_connection_limits(make_daemon):
    d = make_daemon(proxy=True, extra=HOME + ["max_connections_per_ip = 3"])
    port = d.ports["mx_proxy"]
    held = []
    try:
        for i in range(3):
            held.append(RawSMTP(port, prefix=proxy_v2(
                f"2001:db8:1:2::{i + 1}", "2001:db8::25")))
        # a fourth address of the same /64: one client, over the limit
        with RawSMTP(port, greet=False, prefix=proxy_v2(
                "2001:db8:1:2:8000::4", "2001:db8::25")) as c:
            code, lines = c.reply()
            assert code == 421 and "Too many connections" in lines[0]
        # another /64 is another client
        with RawSMTP(port, prefix=proxy_v2("2001:db8:1:3::1",
                                           "2001:db8::25")) as c:
            assert c.cmd("EHLO x.example.org")[0] == 250
        # IPv4 counts by address, as before
        with RawSMTP(port, prefix=proxy_v2("192.0.2.77",
                                           "192.0.2.25")) as c:
            assert c.cmd("EHLO x.example.org")[0] == 250
    finally:
        for c in held:
            c.close()
    # the /64 is free again once its sessions end
    wait_for(lambda: _greets(port, "2001:db8:1:2::9"), 10,
             "the /64 to be counted down")


def _greets(port, source):
    c = RawSMTP(port, greet=False, prefix=proxy_v2(source, "2001:db8::25"))
    try:
        return c.reply()[0] == 220
    finally:
        c.close()


def test_login_failures_over_a_64_count_together(make_daemon, client_tls):
    d = make_daemon(proxy=True, listeners=SUB_PROXY, extra=HOME + [
        "auth_fail_delay = 0s", "auth_max_failures_per_ip = 3"])
    for i in range(3):
        assert auth_plain(d, client_tls, ALICE, "guess",
                          f"2001:db8:1:2::{i + 1}") == 535
    # the whole /64 is locked, right password or not
    assert auth_plain(d, client_tls, BOB, "bob-Secret-2",
                      "2001:db8:1:2:abcd::1") == 454
    # another /64 is not
    assert auth_plain(d, client_tls, BOB, "bob-Secret-2",
                      "2001:db8:1:3::1") == 235
    assert "2001:db8:1:2::/64" in d.cli("events").stdout


def test_ipv6_client_prefix_configurable(make_daemon, client_tls):
    d = make_daemon(proxy=True, listeners=SUB_PROXY, extra=HOME + [
        "auth_fail_delay = 0s", "auth_max_failures_per_ip = 2",
        "ipv6_client_prefix = 128"])
    for i in range(2):
        assert auth_plain(d, client_tls, ALICE, "guess",
                          "2001:db8:1:2::1") == 535
    # /128: the neighbour is another client
    assert auth_plain(d, client_tls, BOB, "bob-Secret-2",
                      "2001:db8:1:2::2") == 235


# ---- item 11b: policy_clients -----------------------------------------

POLICY_REQUEST = (b"request=smtpd_access_policy\nprotocol_state=RCPT\n"
                  b"protocol_name=ESMTP\nclient_address=192.0.2.5\n"
                  b"sasl_username=" + ALICE.encode() + b"\nsender=" +
                  ALICE.encode() + b"\nrecipient=" + BOB.encode() +
                  b"\nrecipient_count=0\nqueue_id=\n\n")


def policy_ask(port):
    """The answer to one request, or b"" when the listener closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        try:
            s.sendall(POLICY_REQUEST)
        except (BrokenPipeError, ConnectionResetError):
            return b""
        data = b""
        while not data.endswith(b"\n\n"):
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                return b""
            if not chunk:
                break
            data += chunk
        return data


def _scrape_ok(port):
    try:
        return scrape(port)
    except OSError:
        return None


def test_policy_listener_serves_only_policy_clients(make_daemon):
    listeners = Daemon.DEFAULT_LISTENERS + (("policy", "policy", False),)
    mport = free_port()
    # 127.0.0.1 is not listed: closed at once, nothing answered
    d = make_daemon(listeners=listeners, extra=HOME + [
        "policy_clients = 10.0.0.0/8", "policy_clients = ::1",
        f"listen = metrics 127.0.0.1:{mport}"])
    key = ("sekisho_connections_refused_total",
           (("reason", "not_allowed"), ("role", "policy")))
    # (the fixture's start probe was refused too)
    before = wait_for(lambda: _scrape_ok(mport), 20,
                      "the metrics listener")[1][key]
    assert policy_ask(d.ports["policy"]) == b""
    d.wait_log(r"policy client=127\.0\.0\.1 refused: not in policy_clients")
    assert "policy postfix state=" not in d.log()
    assert _scrape_ok(mport)[1][key] == before + 1
    # listed (the default, loopback): served
    d2 = make_daemon(listeners=listeners, extra=HOME)
    answer = policy_ask(d2.ports["policy"])
    assert answer.startswith(b"action="), answer
    d2.wait_log(r"policy postfix state=RCPT")


# ---- item 11c: "From :" ------------------------------------------------

def _submit(c, header):
    """One transaction as alice with this header section; the reply."""
    assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
    assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(f"{header}To: {BOB}\r\nSubject: hi\r\n\r\nhello\r\n.\r\n"
           .encode())
    return c.reply()


def test_second_from_with_space_before_colon_refused(make_daemon,
                                                     client_tls):
    d = make_daemon()
    with smtp_tls(d, client_tls) as c:
        assert c.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW))[0] == 235
        code, lines = _submit(
            c, f"From: {ALICE}\r\nFrom : President <ceo@bank.example>\r\n")
        assert code == 550 and "ceo@bank.example" in lines[0], lines
        # a tab before the colon too
        code, lines = _submit(c, "From\t: ceo@bank.example\r\n")
        assert code == 550, lines
        # the subscriber's own "From :" is fine
        code, lines = _submit(c, f"From : {ALICE}\r\n")
        assert code == 250, lines
    d.wait_files(BOB, 1)


# ---- item 11d: inherited descriptors -----------------------------------

def _fd_targets(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    return out


def test_inherited_descriptors_closed(make_daemon, tmp_path, monkeypatch):
    """The daemon is started with a file and a pipe left open (as a careless
    parent would): neither is open in the master, the back side or any
    session process."""
    marker = tmp_path / "inherited-marker"
    marker.write_text("secret\n")
    fd = os.open(marker, os.O_RDONLY)
    r, w = os.pipe()
    pipe = f"pipe:[{os.fstat(r).st_ino}]"
    d = make_daemon(start=False)
    real = subprocess.Popen
    monkeypatch.setattr(conftest.subprocess, "Popen", functools.partial(
        real, pass_fds=(fd, r, w)))
    try:
        d.start()
    finally:
        monkeypatch.setattr(conftest.subprocess, "Popen", real)
        os.close(fd)
        os.close(w)
    procs = [d.proc.pid] + list(children(d.proc.pid))
    assert len(procs) >= 3      # master, back side, session processes
    for pid in procs:
        targets = _fd_targets(pid)
        assert str(marker) not in targets, (pid, targets)
        assert pipe not in targets, (pid, targets)
    # nobody holds the write end: the read end sees EOF at once (it would
    # raise BlockingIOError if a process still held it)
    os.set_blocking(r, False)
    assert os.read(r, 1) == b""
    os.close(r)
    # the daemon works
    with RawSMTP(d.ports["mx"]) as c:
        assert c.cmd("EHLO x.example.org")[0] == 250


def test_events_store_escaped_text(make_daemon, client_tls):
    """A refused header From with control bytes and bad UTF-8 is stored
    in the events table (what `sekisho events` and the admin pages show)
    and logged escaped."""
    d = make_daemon()
    with smtp_tls(d, client_tls) as c:
        assert c.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW))[0] == 235
        assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"From: <\"x\x01\x1b[2Jy\xff\"@evil.example>\r\nTo: " +
               BOB.encode() + b"\r\nSubject: hi\r\n\r\nhello\r\n.\r\n")
        code, lines = c.reply()
        assert code == 550, lines
    out = d.cli("events", ALICE).stdout
    assert "sender_refused" in out, out
    assert "\\x01\\x1b[2Jy\\xff" in out, out
    assert "\x01" not in out and "\x1b" not in out
    no_raw(d)
