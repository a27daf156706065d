"""MX resolution (RFC 5321 5.1, RFC 7505) against a real DNS server:
dnsmasq on a loopback high port, the daemon's dns_servers pointing at it,
every name resolving to 127.0.0.1 or ::1. Transport rows "DOMAIN DOMAIN:PORT"
keep the MX look-up but use the peers' port instead of 25."""
import shutil
import subprocess
import time

import pytest

from conftest import free_udp_tcp_port, wait_for
from outbound_peer import ScriptedPeer
from test_outbound import dsn_of, status_fields, submit

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None,
                                reason="dnsmasq not installed")


@pytest.fixture
def dns(tmp_path):
    port = free_udp_tcp_port()
    records = [
        # preference order: 10 before 20 whatever the listing order
        "--mx-host=pref.test,b6.pref.test,20",
        "--mx-host=pref.test,a4.pref.test,10",
        "--host-record=a4.pref.test,127.0.0.1",
        "--host-record=b6.pref.test,::1",
        # the same the other way round: delivery over IPv6
        "--mx-host=pref6.test,a4.pref.test,20",
        "--mx-host=pref6.test,b6.pref.test,10",
        # a dead first MX (::1, nobody listening on that port)
        "--mx-host=dead.test,x6.dead.test,10",
        "--mx-host=dead.test,x4.dead.test,20",
        "--host-record=x6.dead.test,::1",
        "--host-record=x4.dead.test,127.0.0.1",
        # no MX: the domain's own address
        "--host-record=nomx.test,127.0.0.1",
        # RFC 7505 null MX
        "--mx-host=nullmx.test,.,0",
    ]
    proc = subprocess.Popen(
        ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
         f"--port={port}", "--listen-address=127.0.0.1",
         "--bind-interfaces", "--user=root", "--group=root",
         f"--pid-file={tmp_path / 'dnsmasq.pid'}", "--local=/test/",
         f"--log-facility={tmp_path / 'dnsmasq.log'}", "--log-queries",
         *records], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read()
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def peers():
    v4 = ScriptedPeer(host="127.0.0.1")
    v6 = ScriptedPeer(host="::1", port=v4.port)
    # only on 127.0.0.1: its ::1 twin is the dead first MX of dead.test
    other = ScriptedPeer(host="127.0.0.1")
    yield v4, v6, other
    for p in (v4, v6, other):
        p.close()


def test_mx_resolution(make_daemon, dns, peers):
    v4, v6, other = peers
    d = make_daemon(extra=[
        "submission_auth_without_tls = loopback",
        f"dns_servers = 127.0.0.1:{dns}",
        f"transport = pref.test pref.test:{v4.port}",
        f"transport = pref6.test pref6.test:{v4.port}",
        f"transport = nomx.test nomx.test:{v4.port}",
        f"transport = dead.test dead.test:{other.port}",
        f"transport = nullmx.test nullmx.test:{v4.port}",
        "outbound_connect_timeout = 5s",
        "queue_retry_min = 1s", "queue_retry_max = 2s",
    ])
    submit(d, ["x@pref.test"], subject="pref")
    submit(d, ["y@pref6.test"], subject="pref6")
    submit(d, ["z@nomx.test"], subject="nomx")
    submit(d, ["w@dead.test"], subject="dead")
    qnull = submit(d, ["v@nullmx.test"], subject="nullmx")

    wait_for(lambda: len(v4.messages) >= 2 and len(v6.messages) >= 1
             and len(other.messages) >= 1, 30,
             f"deliveries\n{d.log()[-3000:]}")
    assert sorted(r for m in v4.messages for r in m[1]) == \
        ["x@pref.test", "z@nomx.test"]
    assert [r for m in v6.messages for r in m[1]] == ["y@pref6.test"]
    assert [r for m in other.messages for r in m[1]] == ["w@dead.test"]
    log = d.log()
    assert "rcpt=x@pref.test relay=a4.pref.test[127.0.0.1]" in log
    assert "rcpt=y@pref6.test relay=b6.pref.test[::1]" in log
    assert "rcpt=z@nomx.test relay=nomx.test[127.0.0.1]" in log
    assert "rcpt=w@dead.test relay=x4.dead.test[127.0.0.1]" in log

    (report,) = dsn_of(d)
    _, groups = status_fields(report)
    assert groups[0]["Final-Recipient"] == "rfc822; v@nullmx.test"
    assert groups[0]["Status"] == "5.1.10"
    assert "null MX" in groups[0]["Diagnostic-Code"]
    d.wait_log(rf"id={qnull} queue removed status=done")
