"""The policy engine serving a real Postfix (issue 5, item 9): Postfix's
check_policy_service asks sekisho's "policy" listener. Postfix (Debian's
package, a private instance on loopback) takes SASL from a private Dovecot
auth service and the client address from a PROXY header
(smtpd_upstream_proxy_protocol = haproxy), so clients "from abroad" carry
documentation addresses. The same accounts exist in sekisho's store, where
the permission and the counts live.
"""
import os
import re
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


# --- issue 14: the protocol as Postfix defines it, and where it counts ---

def submit_to(pf, source, rcpts):
    """One submission through Postfix to rcpts; (code, text) of the first
    refused RCPT, else of DATA (what a user's client shows)."""
    s = ProxiedSMTP(source, pf.port)
    try:
        s.ehlo()
        s.login(ALICE, PF_PW)
        code, text = s.mail(ALICE)
        assert code == 250, text
        first_refusal = None
        accepted = 0
        for r in rcpts:
            code, text = s.rcpt(r)
            if code == 250:
                accepted += 1
            elif first_refusal is None:
                first_refusal = (code, text.decode())
        if accepted == 0:
            return first_refusal
        code, text = s.data(b"From: " + ALICE.encode() +
                            b"\r\nSubject: via postfix\r\n\r\nhi\r\n")
        return first_refusal or (code, text.decode())
    finally:
        s.close()


def sent_today(d):
    out = d.cli("limits", "show", ALICE).stdout
    m = re.search(r"messages_per_day: .*\(sent today: (\d+)\)", out)
    r = re.search(r"recipients_per_day: .*\(sent today: (\d+)\)", out)
    assert m and r, out
    return int(m.group(1)), int(r.group(1))


@pytest.fixture(scope="module")
def rcpt_only_peers(tmp_path_factory):
    """Postfix asking only from smtpd_recipient_restrictions: the usual
    set-up (Postfix's SMTPD_POLICY_README), and docs/policy.md's main.cf
    for policy_count_state = rcpt."""
    tmp = tmp_path_factory.mktemp("peers_rcpt")
    relay = PolicyRelay()
    policy = f"inet:127.0.0.1:{relay.port}"
    with relay, DovecotAuth(tmp, {ALICE: PF_PW}) as auth, PrivatePostfix(
            tmp, sasl_port=auth.port, extra=[
                "smtpd_upstream_proxy_protocol = haproxy",
                "smtpd_recipient_restrictions = "
                "permit_mynetworks, "
                f"check_policy_service {policy}, "
                "permit_sasl_authenticated, reject",
                "mynetworks =",
                "smtpd_policy_service_reuse_count_limit = 1"]) as pf:
        yield relay, pf


def policy_daemon_for(make_daemon, tmp_path, relay, *extra):
    listeners = Daemon.DEFAULT_LISTENERS + (("policy", "policy", False),)
    d = make_daemon(listeners=listeners,
                    extra=[geo_config_line(tmp_path / "geo"),
                           "portal_url = https://mail.example.jp/settings",
                           *extra])
    relay.target = d.ports["policy"]
    return d


def test_postfix_rcpt_only_reaches_daily_limit(make_daemon, tmp_path,
                                               rcpt_only_peers):
    """policy_count_state = rcpt (the default): each recipient answered
    DUNNO is counted, the message once (Postfix's instance)."""
    relay, pf = rcpt_only_peers
    d = policy_daemon_for(make_daemon, tmp_path, relay)
    d.cli("limits", "set", ALICE, "recipients_per_day=3")
    code, text = submit_to(pf, JP4, [BOB, "carol@example.org"])
    assert code == 250, text
    assert sent_today(d) == (1, 2)
    # the third recipient passes, the fourth reaches the limit: the
    # message goes to the one accepted
    code, text = submit_to(pf, JP4, ["dave@example.org", BOB])
    assert code == 451 and "Daily recipient limit (3)" in text, text
    assert sent_today(d) == (2, 3)
    code, text = submit_to(pf, JP4, [BOB])
    assert code == 451 and "Daily recipient limit (3)" in text, text
    assert sent_today(d) == (2, 3)
    assert "limit_reached" in d.cli("events", ALICE).stdout


def test_postfix_rcpt_only_message_limit(make_daemon, tmp_path,
                                         rcpt_only_peers):
    relay, pf = rcpt_only_peers
    d = policy_daemon_for(make_daemon, tmp_path, relay)
    d.cli("limits", "set", ALICE, "messages_per_day=1")
    # the last message allowed keeps all its recipients
    code, text = submit_to(pf, JP4, [BOB, "carol@example.org"])
    assert code == 250, text
    code, text = submit_to(pf, JP4, [BOB])
    assert code == 451 and "Daily message limit (1)" in text, text
    assert sent_today(d) == (1, 2)


def test_postfix_rcpt_only_end_of_message_state_counts_nothing(
        make_daemon, tmp_path, rcpt_only_peers):
    """Why the key exists: with end-of-message and a Postfix that never
    asks at END-OF-MESSAGE, no limit is ever reached (issue 14)."""
    relay, pf = rcpt_only_peers
    d = policy_daemon_for(make_daemon, tmp_path, relay,
                          "policy_count_state = end-of-message")
    d.cli("limits", "set", ALICE, "recipients_per_day=1")
    for _ in range(2):
        code, text = submit_to(pf, JP4, [BOB])
        assert code == 250, text
    assert sent_today(d) == (0, 0)


def test_postfix_end_of_message_state(make_daemon, tmp_path, peers):
    """policy_count_state = end-of-message with check_policy_service in
    smtpd_end_of_data_restrictions: recipient_count of each accepted
    message, counted once (not at RCPT too)."""
    relay, pf = peers
    d = policy_daemon_for(make_daemon, tmp_path, relay,
                          "policy_count_state = end-of-message")
    d.cli("limits", "set", ALICE, "recipients_per_day=3")
    code, text = submit_to(pf, JP4, [BOB, "carol@example.org"])
    assert code == 250, text
    assert sent_today(d) == (1, 2)
    # 2 more would pass the limit: refused at the end of DATA
    code, text = submit_to(pf, JP4, [BOB, "carol@example.org"])
    assert code == 451 and "Daily recipient limit (3)" in text, text
    assert sent_today(d) == (1, 2)
    code, text = submit_to(pf, JP4, [BOB])
    assert code == 250, text
    code, text = submit_to(pf, JP4, [BOB])
    assert code == 451 and "Daily recipient limit (3)" in text, text
    assert sent_today(d) == (2, 3)


# --- the listener with a raw socket --------------------------------------

@pytest.fixture
def listener(make_daemon, tmp_path):
    listeners = Daemon.DEFAULT_LISTENERS + (("policy", "policy", False),)
    return make_daemon(listeners=listeners,
                       extra=[geo_config_line(tmp_path / "geo")])


def ask(port, lines, sock=None):
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("\n".join(lines) + "\n\n").encode())
    data = b""
    while not data.endswith(b"\n\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return s, data.decode()


def request(state="RCPT", user=ALICE, client=JP4, *more):
    return ["request=smtpd_access_policy", f"protocol_state={state}",
            "protocol_name=ESMTP", f"sasl_username={user}",
            f"client_address={client}", f"sender={ALICE}",
            f"recipient={BOB}", "recipient_count=0",
            "instance=123.4567.89ab.0", *more]


def test_listener_vendor_attributes(listener):
    """Names are any text without '=', NUL or newline, and unknown ones
    are ignored (SMTPD_POLICY_README): answered as without them, on one
    connection for several requests."""
    port = listener.ports["policy"]
    vendor = ["x-custom=1", "X_Vendor=a", "vendor.flag=yes",
              "ccert_subject=CN=a=b", "policy_context=",
              "x-tab=a\tb", "Some Name=with spaces"]
    s, answer = ask(port, vendor + request())
    assert answer == "action=DUNNO\n\n"
    # from abroad: sekisho's refusal, so the request was read, not
    # dismissed
    s, answer = ask(port, request("RCPT", ALICE, US4) + vendor, sock=s)
    assert answer.startswith("action=550 5.7.1 ") and \
        "seen from US" in answer and answer.endswith("\n\n"), answer
    s.close()


@pytest.mark.parametrize("bad", [
    b"no equals sign\n",
    b"=value\n",
    b"x-long=" + b"a" * 5000 + b"\n",
    b"sender=a\x00b\n",
    b"x-custom\x00=1\n",
    b"sasl_username=alice@example.jp\nsasl_username=bob@example.jp\n",
    b"sasl_username=alice\x01@example.jp\n",
], ids=["no-eq", "empty-name", "over-long", "nul-value", "nul-name",
        "twice", "control-char"])
def test_listener_malformed_closed_without_reply(listener, bad):
    """A malformed request: logged, closed, no reply (before: an
    'action=DEFER_IF_PERMIT bad policy request' without its line end)."""
    port = listener.ports["policy"]
    mark = listener.log_mark()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\n" + bad +
              b"client_address=192.0.2.10\n\n")
    got = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:    # closed with our bytes unread
            break
        if not chunk:
            break
        got += chunk
    s.close()
    assert got == b""
    listener.wait_log(r"policy client=127\.0\.0\.1 bad request: .*: closing",
                      since=mark)
    # the listener still answers the next client
    s, answer = ask(port, request())
    assert answer == "action=DUNNO\n\n"
    s.close()


# --- the hot path's shape (issue 15, item 4): answers written at once, and
# a back side whose workers read their own requests -----------------------

END = b"\n\n"


def short_request(n, client):
    return (f"request=smtpd_access_policy\nprotocol_state=RCPT\n"
            f"sasl_username={ALICE}\nsender={ALICE}\n"
            f"client_address={client}\n"
            f"instance=pipe.{n}\n\n").encode()


def test_listener_client_not_reading_gets_every_answer_in_order(listener):
    """A client that sends hundreds of requests in one write and reads
    nothing until the end (Postfix never does; a broken or hostile one
    may): each answer is written as soon as it is known (one send, not
    through the bufferevent), and every one arrives, in the order asked,
    none twice, none cut. (What the socket does not take goes through the
    bufferevent after the rest; on loopback the kernel takes all that
    the listener's 64 KiB bound on pipelined input can produce.)"""
    port = listener.ports["policy"]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    s.settimeout(60)
    s.connect(("127.0.0.1", port))
    # under the listener's bound on input while an answer is pending
    # (64 KiB): 420 requests of about 150 bytes
    n = 420
    wanted = []
    data = b""
    for i in range(n):
        abroad = i % 3 == 0
        data += short_request(i, US4 if abroad else JP4)
        wanted.append("550" if abroad else "DUNNO")
    assert len(data) < 64 * 1024
    s.sendall(data)
    got = b""
    while got.count(END) < n:
        chunk = s.recv(65536)
        assert chunk, f"closed after {got.count(END)} of {n} answers"
        got += chunk
    s.close()
    answers = got.decode().split("\n\n")
    assert answers[-1] == "" and len(answers) == n + 1
    for i, (a, w) in enumerate(zip(answers, wanted)):
        assert a.startswith("action=" + w), (i, a)
        if w == "550":
            assert "seen from US" in a, a


def test_one_back_side_thread_serves_everyone(make_daemon, tmp_path):
    """backend_threads = 1: the one worker both reads the channels and
    answers (no dispatcher thread). Twenty Postfix connections asking at
    once are all answered, and a session process flooding the back side
    without reading is still cut off at its cap meanwhile, the back side
    the same process."""
    import threading
    import time

    from seam import HDR, Fields, SeamChannel, be_type
    from test_seam_channel import back_pid

    listeners = Daemon.DEFAULT_LISTENERS + (("policy", "policy", False),)
    d = make_daemon(listeners=listeners,
                    extra=[geo_config_line(tmp_path / "geo"),
                           "backend_threads = 1"])
    port = d.ports["policy"]
    back = back_pid(d)
    mark = d.log_mark()
    results, errors = [], []

    def client(k):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            for i in range(25):
                abroad = (k + i) % 5 == 0
                s.sendall(short_request(k * 100 + i,
                                        US4 if abroad else JP4))
                data = b""
                while not data.endswith(b"\n\n"):
                    chunk = s.recv(4096)
                    assert chunk, "closed"
                    data += chunk
                results.append((abroad, data.decode()))
            s.close()
        except Exception as e:     # noqa: BLE001 - reported below
            errors.append(repr(e))

    clients = [threading.Thread(target=client, args=(k,)) for k in range(20)]
    with SeamChannel(d) as ch:
        body = bytes(Fields().u64(1).str(BOB).b)
        for t in clients:
            t.start()
        closed = False
        deadline = time.monotonic() + 120
        sent = 0
        while not closed and time.monotonic() < deadline:
            data = HDR.pack(be_type("BE_RCPT"), HDR.size + len(body),
                            sent + 1) + body
            try:
                if ch.send_raw(data):
                    sent += 1
                else:
                    time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            if sent > 20000:
                break
        for t in clients:
            t.join(120)
    assert not errors, errors
    assert len(results) == 20 * 25
    for abroad, answer in results:
        if abroad:
            assert answer.startswith("action=550 5.7.1 "), answer
        else:
            assert answer == "action=DUNNO\n\n", answer
    d.wait_log(r"backend: channel \d+ closed: over its cap of \d+ "
               r"outstanding requests", since=mark)
    assert back_pid(d) == back


def test_listener_idle_after_a_burst_uses_no_cpu(make_daemon, tmp_path):
    """The session process and the back side wait for the next request
    in a short spin while one connection asks back to back (W5,
    docs/performance.md): bounded, so once Postfix stops asking the
    daemon sleeps. A burst of answered requests on one connection, then
    the daemon's processes use next to no CPU while nothing is asked
    (a spin that did not end would burn a whole CPU)."""
    import time

    from conftest import children

    # decisions only (W5's uncounted rows): no fsync slows the answers,
    # so the spins engage at every request
    listener = make_daemon(
        listeners=Daemon.DEFAULT_LISTENERS + (("policy", "policy", False),),
        extra=[geo_config_line(tmp_path / "geo"),
               "policy_count_state = end-of-message"])
    s = socket.create_connection(("127.0.0.1", listener.ports["policy"]),
                                 timeout=10)
    for i in range(300):
        s.sendall(short_request(i, JP4 if i % 7 else US4))
        answer = b""
        while not answer.endswith(END):
            chunk = s.recv(4096)
            assert chunk, "closed"
            answer += chunk
        answer = answer.decode()
        if i % 7:
            assert answer == "action=DUNNO\n\n", answer
        else:
            assert answer.startswith("action=550 5.7.1 "), answer
    procs = [listener.proc.pid] + list(children(listener.proc.pid))

    def cpu_ticks():
        total = 0
        for p in procs:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])   # utime, stime
        return total

    time.sleep(0.5)
    before = cpu_ticks()
    time.sleep(2)
    used = (cpu_ticks() - before) / os.sysconf("SC_CLK_TCK")
    s.close()
    # generous: a spinning process would use about 2 s here
    assert used < 0.5, f"{used:.2f} s of CPU in 2 s without requests"
