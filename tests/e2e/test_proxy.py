"""PROXY protocol v1 and v2 on an mx listener and on a 465 listener (header
first, then TLS). From a trusted source the carried address is the client
everywhere; from an untrusted one a header is an error and changes nothing;
a broken header from a trusted source closes the connection."""
import ipaddress
import re
import socket
import struct

import pytest

from conftest import (ALICE, ALICE_PW, BOB, RawSMTP, domestic_lines,
                      split_received)
from test_refusals import plain

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"

SOURCES = {
    4: ("203.0.113.7", "192.0.2.25"),
    6: ("2001:db8::7", "2001:db8::25"),
}


def proxy_v1(src, dst, sport=40001, dport=25):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def proxy_v2(src, dst, sport=40001, dport=25, command=0x1, tlv=b""):
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21      # TCP over IPv4 / IPv6
    body = s.packed + d.packed + struct.pack("!HH", sport, dport) + tlv
    return V2_SIG + bytes([0x20 | command, fam]) + \
        struct.pack("!H", len(body)) + body


def received_literal(ip):
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


def send_one(c, submissions, subject):
    assert c.cmd("EHLO proxied.example.org")[0] == 250
    if submissions:
        code, lines = c.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW))
        assert code == 235, lines
    assert c.cmd("MAIL FROM:<" + (ALICE if submissions else
                                  "x@example.org") + ">")[0] == 250
    assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(f"From: {ALICE}\r\nSubject: {subject}\r\n\r\nvia proxy\r\n"
           ".\r\n".encode())
    code, lines = c.reply()
    assert code == 250, lines
    return lines[0].rsplit(" ", 1)[1]


# The documentation addresses are "abroad" for the overseas rule of later
# issues: trust them so that this tests the PROXY header alone.
DOMESTIC = domestic_lines("203.0.113.0/24", "2001:db8::/32")


@pytest.mark.sekisho(proxy=True, proxy_trusted=["127.0.0.1/32"],
                     extra=DOMESTIC)
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("listener", ["mx_proxy", "submissions_proxy"])
def test_trusted_proxy(daemon, client_tls, listener, version, family):
    src, dst = SOURCES[family]
    header = (proxy_v1 if version == 1 else proxy_v2)(src, dst)
    submissions = listener == "submissions_proxy"
    mark = daemon.log_mark()
    with RawSMTP(daemon.ports[listener], prefix=header,
                 tls_context=client_tls if submissions else None) as c:
        queue_id = send_one(c, submissions, f"v{version} ipv{family}")
    hdr, _ = split_received(
        daemon.wait_message(BOB, queue_id).read_bytes())
    literal = received_literal(src).encode()
    assert hdr.startswith(b"Received: from proxied.example.org (" +
                          literal + b")"), hdr
    assert b"127.0.0.1" not in hdr
    proto = b"ESMTPSA" if submissions else b"ESMTP"
    assert b"with " + proto + b" id " + queue_id.encode() in hdr, hdr
    log = daemon.log_since(mark)
    assert re.search(rf"connect client={re.escape(src)} ", log), log
    assert re.search(rf"id={queue_id} session=\S+ mail "
                     rf"client={re.escape(src)} ", log), log
    assert re.search(rf"id={queue_id} queued client={re.escape(src)} ", log)
    if submissions:
        assert f"smtp auth client={src} user={ALICE}" in log, log


@pytest.mark.sekisho(proxy=True, proxy_trusted=["127.0.0.1/32"])
def test_trusted_proxy_v2_local_command_and_tlv(daemon):
    """v2 LOCAL (health check) keeps the socket address; TLVs are
    skipped."""
    src, dst = SOURCES[4]
    hdr_local = V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    mark = daemon.log_mark()
    with RawSMTP(daemon.ports["mx_proxy"], prefix=hdr_local) as c:
        queue_id = send_one(c, False, "local")
    hdr, _ = split_received(daemon.wait_message(BOB, queue_id).read_bytes())
    assert b"([127.0.0.1])" in hdr, hdr
    tlv = bytes([0x04]) + struct.pack("!H", 3) + b"abc"     # PP2_TYPE_NOOP
    with RawSMTP(daemon.ports["mx_proxy"],
                 prefix=proxy_v2(src, dst, tlv=tlv)) as c:
        queue_id = send_one(c, False, "tlv")
    hdr, _ = split_received(daemon.wait_message(BOB, queue_id).read_bytes())
    assert b"([203.0.113.7])" in hdr, hdr
    assert "proxy header refused" not in daemon.log_since(mark)


@pytest.mark.sekisho(proxy=True, proxy_trusted=["192.0.2.1/32"])
@pytest.mark.parametrize("listener", ["mx_proxy", "mx"])
def test_untrusted_source_v1(daemon, listener):
    src, dst = SOURCES[4]
    mark = daemon.log_mark()
    with RawSMTP(daemon.ports[listener]) as c:     # greeting comes first
        code, lines = c.cmd(proxy_v1(src, dst).decode().rstrip())
        assert lines == ["500 5.5.1 PROXY header not accepted from your "
                         "address"], lines
        queue_id = send_one(c, False, "untrusted")
    hdr, _ = split_received(daemon.wait_message(BOB, queue_id).read_bytes())
    assert b"([127.0.0.1])" in hdr, hdr
    assert b"203.0.113" not in hdr
    log = daemon.log_since(mark)
    assert re.search(rf"id={queue_id} session=\S+ mail client=127\.0\.0\.1 ",
                     log), log
    assert not re.search(r"client=203\.0\.113", log), log


@pytest.mark.sekisho(proxy=True, proxy_trusted=["192.0.2.1/32"])
def test_untrusted_source_v2(daemon):
    """A binary v2 header from an untrusted source is not believed: it is
    refused as bad input and the address is never taken from it."""
    src, dst = SOURCES[6]
    mark = daemon.log_mark()
    with RawSMTP(daemon.ports["mx_proxy"]) as c:
        c.send(proxy_v2(src, dst))
        try:
            code, lines = c.reply()
            assert code >= 500, lines
        except (ConnectionError, OSError):
            pass
    daemon.wait_log(r"disconnect client=127\.0\.0\.1", since=mark)
    log = daemon.log_since(mark)
    assert "client=127.0.0.1" in log
    assert not re.search(r"client=2001:db8", log), log


@pytest.mark.sekisho(proxy=True, proxy_trusted=["127.0.0.1/32"])
@pytest.mark.parametrize("bad", [
    b"PROXY TCP4 999.0.113.7 192.0.2.25 40001 25\r\n",
    b"PROXY TCP4 203.0.113.7 192.0.2.25 40001\r\n",
    b"PROXY TCP9 203.0.113.7 192.0.2.25 40001 25\r\n",
    b"PROXY TCP4 203.0.113.7 192.0.2.25 40001 25\n",
    b"EHLO not-a-proxy-header\r\n",
    V2_SIG + bytes([0x31, 0x11]) + struct.pack("!H", 12) + b"\0" * 12,
    V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", 4) + b"\0" * 4,
], ids=["v1-bad-ip", "v1-missing-port", "v1-bad-family", "v1-bare-lf",
        "not-proxy", "v2-bad-version", "v2-short-address"])
@pytest.mark.parametrize("listener", ["mx_proxy", "submissions_proxy"])
def test_trusted_source_bad_header_closes(daemon, bad, listener):
    mark = daemon.log_mark()
    with RawSMTP(daemon.ports[listener], greet=False, prefix=bad) as c:
        assert c.closed_by_peer(timeout=15), \
            "connection stayed open after a bad PROXY header"
        assert b"220 " not in c.buf, c.buf
    daemon.wait_log(r"proxy header refused", since=mark)
    assert daemon.queue_files() == []


@pytest.mark.sekisho(proxy=True, proxy_trusted=["127.0.0.1/32"],
                     extra=["proxy_timeout = 1s"])
def test_trusted_source_silent_times_out(daemon):
    with RawSMTP(daemon.ports["mx_proxy"], greet=False) as c:
        assert c.closed_by_peer(timeout=15)
        assert b"220 " not in c.buf
