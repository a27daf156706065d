"""The metrics listener (issue 9, operations): a small load with real
clients, then GET /metrics scraped with urllib and parsed with Debian's
python3-prometheus-client; the counters moved by exactly what the test
did, and the queue gauge agrees with `sekisho queue list`.

The load: messages submitted from home (JP, through a PROXY header with
the test country database), one refused from abroad (US), one failed
AUTH, one POP3 login, and one message for a remote domain whose next
hop refuses connections, so it stays deferred in the queue.
"""
import re
import smtplib
import socket
import time
import urllib.error
import urllib.request

import poplib
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (ALICE, ALICE_PW, BOB, BOB_PW, Daemon, accepts, free_port,
                      wait_for)
from geodata import JP4, US4, geo_config_line

REMOTE = "carol@remote.example"


class ProxySMTP(smtplib.SMTP):
    """smtplib that first sends a PROXY v1 header claiming `source`."""

    def __init__(self, source, port):
        self.source = source
        super().__init__()
        self.connect("127.0.0.1", port)

    def connect(self, host, port):
        self._host = host
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.sendall(
            f"PROXY TCP4 {self.source} 192.0.2.1 40000 587\r\n".encode())
        self.file = None
        code, msg = self.getreply()
        assert code == 220, msg
        return code, msg


def submit(d, client_tls, source, rcpt, password=ALICE_PW):
    """One submission as alice; returns the smtplib session's last reply
    or raises the smtplib error."""
    s = ProxySMTP(source, d.ports["submission_proxy"])
    try:
        s.ehlo()
        s.starttls(context=client_tls)
        s.ehlo()
        # one AUTH command (login() would try LOGIN after PLAIN fails)
        s.user, s.password = ALICE, password
        s.auth("PLAIN", s.auth_plain)
        s.sendmail(ALICE, [rcpt], f"From: {ALICE}\r\nTo: {rcpt}\r\n"
                   f"Subject: metrics\r\n\r\nHello.\r\n")
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass


def scrape(port, path="/metrics"):
    """(content type, {(name, labels as a sorted tuple): value}) of one
    scrape; the text must parse as the Prometheus text format."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                timeout=10) as r:
        ctype = r.headers["Content-Type"]
        text = r.read().decode()
    samples = {}
    types = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return ctype, samples, types, text


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_daemon(make_daemon, tmp_path):
    port = free_port()
    closed = free_port()    # nothing listens: the remote hop is refused
    listeners = Daemon.DEFAULT_LISTENERS + (
        ("submission_proxy", "submission", True),
        ("pop3", "pop3", False))
    d = make_daemon(
        proxy=True, listeners=listeners,
        extra=[geo_config_line(tmp_path / "geo"),
               "pop3_auth_without_tls = loopback",
               f"transport = remote.example [127.0.0.1]:{closed}",
               "queue_retry_min = 1h", "queue_retry_max = 1h",
               "auth_fail_delay = 0s",
               # not in d.listeners: the fixture's start probes stay off
               # it, and the test waits for it itself
               f"listen = metrics 127.0.0.1:{port}"])
    wait_for(lambda: accepts(port), 20, "the metrics listener")
    d.metrics_port = port
    return d


def test_metrics_count_what_the_clients_did(metrics_daemon, client_tls):
    d = metrics_daemon
    ctype, before, types, text = scrape(d.metrics_port)
    assert ctype.startswith("text/plain; version=0.0.4")
    # every family has HELP and TYPE, every sample follows its TYPE,
    # and names carry their unit
    typed = re.findall(r"(?m)^# TYPE (\S+) (\S+)$", text)
    helped = re.findall(r"(?m)^# HELP (\S+) ", text)
    assert [n for n, _ in typed] == helped
    for name, kind in typed:
        assert name.startswith("sekisho_"), name
        if kind == "counter":
            assert name.endswith("_total"), name
    names = [n for n, _ in typed]
    for line in text.splitlines():
        if not line.startswith("#"):
            sample = re.match(r"[a-z_]+", line).group(0)
            assert any(sample == n or sample.startswith(n + "_")
                       for n in names), line
    assert types["sekisho_connections_open"] == "gauge"
    assert types["sekisho_auth"] == "counter"
    assert types["sekisho_smtp_commit_seconds"] == "histogram"
    assert types["sekisho_queue_messages"] == "gauge"

    n_home = 3
    for _ in range(n_home):
        submit(d, client_tls, JP4, BOB)
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        submit(d, client_tls, US4, BOB)
    assert e.value.smtp_code == 550
    with pytest.raises(smtplib.SMTPAuthenticationError):
        submit(d, client_tls, JP4, BOB, password="wrong")
    submit(d, client_tls, JP4, REMOTE)
    p = poplib.POP3("127.0.0.1", d.ports["pop3"], timeout=15)
    p.user(BOB)
    p.pass_(BOB_PW)
    p.quit()

    # bob's three, and the notice of the refusal from abroad to alice
    d.wait_files(BOB, n_home)
    d.wait_files(ALICE, 1)
    d.wait_log(r"deliver rcpt=carol@remote.example \S+ status=deferred")

    def settled():
        _, s, _, _ = scrape(d.metrics_port)
        done = value(s, "sekisho_deliveries_total", kind="local",
                     result="delivered") - value(
            before, "sekisho_deliveries_total", kind="local",
            result="delivered")
        open_now = sum(v for (n, lab), v in s.items()
                       if n == "sekisho_connections_open"
                       and dict(lab)["role"] != "metrics")
        return s if done >= n_home + 1 and open_now == 0 else None
    after = wait_for(settled, 30, "deliveries and closed sessions")

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    # 3 + 1 remote accepted; the US one and the bad password never got
    # to DATA
    assert delta("sekisho_messages_accepted_total",
                 role="submission") == n_home + 1
    assert delta("sekisho_messages_accepted_total", role="mx") == 0
    assert delta("sekisho_smtp_commit_seconds_count") == n_home + 1
    assert delta("sekisho_messages_refused_total", reason="overseas") == 1
    for reason in ("relay", "unknown_user", "limit", "suspended",
                   "alignment", "size", "content"):
        assert delta("sekisho_messages_refused_total", reason=reason) == 0
    assert delta("sekisho_policy_decisions_total", country="US",
                 result="refused") == 1
    assert delta("sekisho_policy_decisions_total", country="JP",
                 result="accepted") == n_home + 1
    # logins: every submission logged in, one with a wrong password
    assert delta("sekisho_auth_total", service="smtp",
                 result="ok") == n_home + 2
    assert delta("sekisho_auth_total", service="smtp", result="fail") == 1
    assert delta("sekisho_auth_total", service="pop3", result="ok") == 1
    assert delta("sekisho_auth_seconds_count", service="smtp") == n_home + 3
    # connections: 6 submissions through the proxy listener, 1 POP3
    assert delta("sekisho_connections_total", role="submission") == \
        n_home + 3
    assert delta("sekisho_connections_total", role="pop3") == 1
    assert delta("sekisho_connections_total", role="mx") == 0
    assert value(after, "sekisho_connections_open", role="submission") == 0
    # deliveries: every local one is a file in a Maildir
    files = len(d.files(BOB)) + len(d.files(ALICE))
    assert delta("sekisho_deliveries_total", kind="local",
                 result="delivered") == files == n_home + 1
    assert delta("sekisho_delivery_seconds_count", kind="local") == files
    assert delta("sekisho_deliveries_total", kind="remote",
                 result="deferred") == 1
    assert delta("sekisho_deliveries_total", kind="remote",
                 result="delivered") == 0
    # the queue gauge is what `sekisho queue list` shows
    out = d.cli("queue", "list").stdout
    listed = int(re.search(r"-- messages=(\d+)", out).group(1))
    assert listed == 1
    assert value(after, "sekisho_queue_messages") == listed
    assert value(after, "sekisho_queue_oldest_age_seconds") >= 0
    assert value(after, "sekisho_store_up") == 1
    # histogram rules: cumulative buckets, +Inf equals _count
    buckets = sorted((float(dict(lab)["le"]), v) for (n, lab), v in
                     after.items()
                     if n == "sekisho_smtp_commit_seconds_bucket")
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)
    assert buckets[-1][0] == float("inf")
    assert buckets[-1][1] == value(after, "sekisho_smtp_commit_seconds_count")


def test_metrics_other_paths_and_methods(metrics_daemon):
    port = metrics_daemon.metrics_port
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
    assert e.value.code == 404
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405
    # not HTTP at all: 400, and the connection is closed
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"HELO example\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")
    # still serving
    ctype, samples, _, _ = scrape(port)
    assert value(samples, "sekisho_build_info", version="0.1.0") == 1
