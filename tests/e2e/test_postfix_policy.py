"""The policy engine serving a real Postfix (issue 5, item 9): Postfix's
check_policy_service asks sekisho's "policy" listener. Postfix (Debian's
package, a private instance on loopback) takes SASL from a private Dovecot
auth service and the client address from a PROXY header
(smtpd_upstream_proxy_protocol = haproxy), so clients "from abroad" carry
documentation addresses. The same accounts exist in sekisho's store, where
the permission and the counts live.
"""
import shutil
import smtplib
import socket

import pytest

from conftest import ALICE, BOB, Daemon
from geodata import JP4, US4, geo_config_line
from mta_peers import DovecotAuth, PrivatePostfix

pytestmark = pytest.mark.skipif(shutil.which("postfix") is None or
                                shutil.which("dovecot") is None,
                                reason="needs Debian's postfix and dovecot")

PF_PW = "postfix-side-pw"


class ProxiedSMTP(smtplib.SMTP):
    def __init__(self, source, port):
        self.source = source
        super().__init__()
        self.connect("127.0.0.1", port)

    def connect(self, host, port):
        self._host = host
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.sendall(
            f"PROXY TCP4 {self.source} 192.0.2.1 40000 25\r\n".encode())
        self.file = None
        return self.getreply()


def submit(pf, source):
    s = ProxiedSMTP(source, pf.port)
    try:
        s.ehlo()
        s.login(ALICE, PF_PW)
        code, text = s.mail(ALICE)
        assert code == 250, text
        code, text = s.rcpt(BOB)
        if code != 250:
            return code, text.decode()
        code, text = s.data(b"From: " + ALICE.encode() +
                            b"\r\nSubject: via postfix\r\n\r\nhi\r\n")
        return code, text.decode()
    finally:
        s.close()


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    """One Postfix and Dovecot for the module (starting them is slow);
    each test gets its own sekisho, which Postfix asks through a port
    forwarded below."""
    tmp = tmp_path_factory.mktemp("peers")
    relay = PolicyRelay()
    policy = f"inet:127.0.0.1:{relay.port}"
    with relay, DovecotAuth(tmp, {ALICE: PF_PW}) as auth, PrivatePostfix(
            tmp, sasl_port=auth.port, extra=[
                "smtpd_upstream_proxy_protocol = haproxy",
                "smtpd_recipient_restrictions = "
                f"check_policy_service {policy}, "
                "permit_sasl_authenticated, reject",
                f"smtpd_end_of_data_restrictions = check_policy_service "
                f"{policy}",
                # each test's daemon is new: do not keep policy
                # connections to the one before
                "smtpd_policy_service_reuse_count_limit = 1"]) as pf:
        yield relay, pf


class PolicyRelay:
    """A loopback port that forwards each connection to the policy port of
    the current test's daemon (set with `target`)."""

    def __init__(self):
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.target = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _pipe(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _run(self):
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), 10)
            except OSError:
                c.close()
                continue
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b),
                                 daemon=True).start()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()


@pytest.fixture
def chain(make_daemon, tmp_path, peers):
    relay, pf = peers
    listeners = Daemon.DEFAULT_LISTENERS + (("policy", "policy", False),)
    d = make_daemon(listeners=listeners,
                    extra=[geo_config_line(tmp_path / "geo"),
                           "portal_url = https://mail.example.jp/settings"])
    relay.target = d.ports["policy"]
    yield d, pf


def test_postfix_overseas_rule(chain):
    d, pf = chain
    code, text = submit(pf, JP4)
    assert code == 250, text
    # from the US: Postfix answers with sekisho's refusal, at RCPT
    code, text = submit(pf, US4)
    assert code == 550, text
    assert "5.7.1" in text and "seen from US" in text
    # permission on: accepted through Postfix too
    d.cli("overseas", "allow", ALICE)
    code, text = submit(pf, US4)
    assert code == 250, text
    # counted at END-OF-MESSAGE: two accepted, one of them from abroad
    out = d.cli("limits", "show", ALICE).stdout
    assert "messages_per_day: 500 (default) (sent today: 2)" in out
    assert "(sent today from abroad: 1)" in out
    assert "overseas_refused" in d.cli("events", ALICE).stdout


def test_postfix_daily_limit(chain):
    d, pf = chain
    d.cli("limits", "set", ALICE, "recipients_per_day=1")
    code, text = submit(pf, JP4)
    assert code == 250, text
    code, text = submit(pf, JP4)
    assert code == 451, text
    assert "Daily recipient limit (1)" in text
