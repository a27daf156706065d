"""End-to-end test harness: runs the real daemon (ASan + UBSan build) in a
temporary directory and talks to it with real clients.

The `daemon` fixture gives a started daemon with the domain example.jp and
the accounts alice@example.jp / bob@example.jp (passwords ALICE_PW, BOB_PW).
Mark a test with `@pytest.mark.sekisho(extra=[...], proxy=True, ...)` to
change its configuration; `make_daemon(...)` builds more (or unstarted) ones.

On teardown each daemon gets SIGTERM and must exit 0 within a bound, and the
test errors if its log shows a sanitizer report.
"""
import atexit
import collections
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# SEKISHO_E2E_BINARY: another build to test (e.g. one not yet in the tree's
# build-asan, while others' tests use that).
BUILT_SEKISHO = Path(os.environ.get("SEKISHO_E2E_BINARY") or
                     REPO / "build-asan" / "sekisho")


def _snapshot(binary):
    """A private copy of the binary for this test session, so that every
    test runs the same build even if make relinks it meanwhile (and a
    relink in progress cannot make a test fail with "Permission denied").
    The copy must run `version`; if no good copy can be made within two
    minutes, the built binary itself is used."""
    if os.environ.get("SEKISHO_E2E_NO_SNAPSHOT"):
        return binary
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        tmp = Path(tempfile.mkdtemp(prefix="sekisho-e2e-"))
        try:
            if os.access(binary, os.X_OK):
                copy = tmp / binary.name
                shutil.copy2(binary, copy)
                r = subprocess.run([str(copy), "version"], env=env,
                                   capture_output=True, timeout=60)
                if r.returncode == 0:
                    atexit.register(shutil.rmtree, tmp, True)
                    return copy
        except (OSError, subprocess.SubprocessError):
            pass
        shutil.rmtree(tmp, True)
        time.sleep(1)
    return binary


SEKISHO = _snapshot(BUILT_SEKISHO)
HOSTNAME = "mail.example.jp"
DOMAIN = "example.jp"
ALICE = "alice@example.jp"
BOB = "bob@example.jp"
ALICE_PW = "alice-Secret-1"
BOB_PW = "bob-Secret-2"

START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
DELIVERY_TIMEOUT = 30.0
SANITIZER_MARKS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")

QUEUE_ID_RE = re.compile(rb"queued as ([0-9A-F]{20})")


_known_keys = None


def known_keys():
    """The config keys this build knows (from `sekisho config defaults`)."""
    global _known_keys
    if _known_keys is None:
        if not SEKISHO.exists():
            return set()
        r = subprocess.run([str(SEKISHO), "config", "defaults"],
                           capture_output=True, text=True, timeout=60,
                           env=sanitizer_env())
        _known_keys = set(re.findall(r"(?m)^([a-z_0-9]+) =", r.stdout))
    return _known_keys


def domestic_lines(*networks):
    """Config lines that keep the overseas-sending rule (a later feature)
    out of a test about something else: the given networks count as
    trusted. Nothing when this build has no such rule."""
    if "trusted_networks" not in known_keys():
        return []
    return [f"trusted_networks = {n}" for n in networks]


# --- the daemon's users --------------------------------------------------
# Run as root (as the suite is), the daemon drops to these users
# (docs/security.md): its files and the test's directories must be theirs.
DAEMON_USER = "sekisho"


def daemon_ids():
    """(uid, gid) the daemon's back side and the CLI run as, or None when
    the tests do not run as root (then everything runs as the caller)."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(DAEMON_USER)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def give_to_daemon(path):
    """Make a directory the test made the daemon's user's (it writes
    there: the database, the spool, key files the CLI creates)."""
    ids = daemon_ids()
    if ids is not None:
        os.chown(path, *ids)


_tmp_root = None


def _e2e_tmp_root():
    """This session's base for tmp_path: traversable (0711) so that the
    daemon's users can reach what is below. pytest's own base,
    /tmp/pytest-of-root, is 0700 and pytest sets it back at every session
    start, which would cut off running daemons of a concurrent session."""
    global _tmp_root
    if _tmp_root is None:
        _tmp_root = Path(tempfile.mkdtemp(prefix="sekisho-tmp-"))
        _tmp_root.chmod(0o711)
    return _tmp_root


@pytest.fixture
def tmp_path(request):
    """pytest's tmp_path, moved where the daemon's user can work: a fresh
    directory, owned by that user, private (0700)."""
    name = re.sub(r"\W", "_", request.node.name)[:30]
    d = Path(tempfile.mkdtemp(prefix=name + "-", dir=_e2e_tmp_root()))
    d.chmod(0o700)
    give_to_daemon(d)
    return d


def pytest_sessionfinish(session, exitstatus):
    """Keep the directories of a failed run for a look; else remove."""
    if _tmp_root is not None and exitstatus == 0:
        shutil.rmtree(_tmp_root, ignore_errors=True)


def sanitizer_env():
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env.pop("SEKISHO_CONFIG", None)
    return env


def proc_status(pid):
    """/proc/PID/status as {field: [words]}."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


def children(ppid):
    """{pid: command name} of ppid's children."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = proc_status(entry)
        except OSError:
            continue
        if st.get("PPid") == [str(ppid)]:
            kids[int(entry)] = st["Name"][0]
    return kids


_handed_ports = set()


def free_port():
    """A loopback port that was free a moment ago (bind 0, then close),
    and not one this test run handed out before: the kernel may give a
    port just closed again, and two listeners of one config then got the
    same one ("listen: ... is already used")."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_ports:
            _handed_ports.add(port)
            return port
    raise RuntimeError("no loopback port free that was not handed out")


def free_udp_tcp_port():
    """A loopback port free for both UDP and TCP (dnsmasq takes both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            if port in _handed_ports:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                    _handed_ports.add(port)
                    return port
                except OSError:
                    continue
    raise RuntimeError("no loopback port free for UDP and TCP")


def accepts(port, host="127.0.0.1"):
    """True when something accepts a TCP connection on port (a bare
    connect and close)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def deliveries(files, subject_re):
    """Delivered messages by queue ID (from sekisho's Received header):
    how many times each was delivered, and the first group of subject_re
    (bytes, matched against "\\n" + the message after that header) for
    each. The durability tests compare these with what got a 250."""
    delivered = collections.Counter()
    found = {}
    for f in files:
        data = f.read_bytes()
        qid = received_id(data)
        delivered[qid] += 1
        m = re.search(subject_re, b"\n" + split_received(data)[1])
        assert m, data[:500]
        found[qid] = m.group(1).decode()
    return delivered, found


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll predicate until it returns a true value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def make_cert(directory):
    directory = Path(directory)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "365",
         "-subj", f"/CN={HOSTNAME}",
         "-addext", f"subjectAltName=DNS:{HOSTNAME},DNS:localhost,"
                    "IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """(cert, key) paths of a self-signed certificate, made once."""
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def client_tls(tls_cert):
    """A client TLS context that trusts the test certificate only."""
    ctx = ssl.create_default_context(cafile=str(tls_cert[0]))
    return ctx


def strip_return_path(data):
    """A delivered file without its first line `Return-Path: <...>` (RFC
    5321 4.4, added at final delivery); data as it is when it has none
    (a message as a remote peer received it)."""
    if data.startswith(b"Return-Path: <"):
        return data.split(b"\n", 1)[1]
    return data


def split_received(data):
    """(the first Received header with its continuation lines, the rest),
    after the Return-Path line of a delivered file."""
    data = strip_return_path(data)
    assert data.startswith(b"Received: "), data[:200]
    lines = data.split(b"\n")
    n = 1
    while n < len(lines) and lines[n][:1] in (b" ", b"\t"):
        n += 1
    return b"\n".join(lines[:n]), b"\n".join(lines[n:])


def received_id(data):
    hdr, _ = split_received(data)
    m = re.search(rb"\bid ([0-9A-F]{20})\b", hdr)
    assert m, hdr
    return m.group(1).decode()


class Daemon:
    """One sekisho daemon: its directory, config, ports, log and process."""

    # name -> role; names are also the keys of self.ports
    DEFAULT_LISTENERS = (("mx", "mx", False),
                         ("submission", "submission", False),
                         ("submissions", "submissions", False))

    def __init__(self, directory, cert, key, extra=(), listeners=None,
                 proxy=False, proxy_trusted=("127.0.0.1/32",),
                 workers=2, store=None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        give_to_daemon(self.dir)    # the database and spool are made here
        self.conf = self.dir / "sekisho.conf"
        self.log_path = self.dir / "sekisho.log"
        self.spool = self.dir / "spool"
        self.maildir_root = self.dir / "mail"
        self.proc = None
        self.preexec = None     # run in the daemon's process before exec
        self.ports = {}
        listeners = list(listeners or self.DEFAULT_LISTENERS)
        if proxy:
            listeners += [("mx_proxy", "mx", True),
                          ("submissions_proxy", "submissions", True)]
        self.listeners = listeners
        self.head = [
            f"hostname = {HOSTNAME}",
            f"store = {store or 'sqlite:' + str(self.dir / 'sekisho.db')}",
            f"spool_dir = {self.spool}",
            f"maildir_root = {self.maildir_root}",
            f"tls_cert = {cert}",
            f"tls_key = {key}",
            f"workers = {workers}",
            "log_level = info",
        ]
        self.tail = [f"proxy_trusted = {net}" for net in proxy_trusted] \
            if proxy else []
        # a stop waits for open sessions at most this long (the default
        # 30 s would outlast STOP_TIMEOUT)
        if "shutdown_timeout" in known_keys() and \
                not any(x.startswith("shutdown_timeout") for x in extra):
            self.tail.append("shutdown_timeout = 10s")
        self.tail += list(extra)
        self.write_conf()

    def write_conf(self):
        """Write the config with newly chosen free ports."""
        lines = list(self.head)
        for name, role, is_proxy in self.listeners:
            port = free_port()
            self.ports[name] = port
            lines.append(f"listen = {role} 127.0.0.1:{port}"
                         + (" proxy" if is_proxy else ""))
        self.conf.write_text("\n".join(lines + self.tail) + "\n")

    # --- CLI ---------------------------------------------------------
    def cli(self, *args, input=None, check=True):
        """Run `sekisho -c CONF ARGS`; returns the CompletedProcess."""
        r = subprocess.run([str(SEKISHO), "-c", str(self.conf), *args],
                           input=input, capture_output=True, text=True,
                           env=sanitizer_env(), timeout=60)
        for mark in SANITIZER_MARKS:
            assert mark not in r.stderr, r.stderr
        if check and r.returncode != 0:
            pytest.fail(f"sekisho {' '.join(args)} exited "
                        f"{r.returncode}: {r.stderr}")
        return r

    def add_user(self, address, password):
        self.cli("user", "add", address, input=password + "\n")

    def setup_accounts(self):
        self.cli("domain", "add", DOMAIN)
        self.add_user(ALICE, ALICE_PW)
        self.add_user(BOB, BOB_PW)

    # --- process -----------------------------------------------------
    def start(self):
        """Start and wait until every port accepts. If a port chosen free
        was taken meanwhile (only before the first start), pick again."""
        for attempt in range(3):
            mark = self.log_mark()
            if self._start(mark, retry_ok=self.proc is None and attempt < 2):
                return self
            self.write_conf()
        return self

    def _start(self, mark, retry_ok):
        assert self.proc is None or self.proc.poll() is not None
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [str(SEKISHO), "-c", str(self.conf), "serve", "-f"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                env=dict(sanitizer_env(), SEKISHO_TEST_CHANNEL=str(
                    self.dir / "test-channel.sock")), cwd=str(self.dir),
                preexec_fn=self.preexec, start_new_session=True)
        finally:
            logf.close()
        deadline = time.monotonic() + START_TIMEOUT
        for name, port in self.ports.items():
            while True:
                if self.proc.poll() is not None:
                    if retry_ok and "in use" in self.log_since(mark):
                        self.proc = None
                        return False
                    pytest.fail(f"sekisho exited {self.proc.returncode} "
                                f"at start:\n{self.log()}")
                try:
                    with socket.create_connection(("127.0.0.1", port),
                                                  timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"port {name} {port} never accepted:"
                                    f"\n{self.log()}")
                    time.sleep(0.05)
        # Ports accept as soon as the first session process runs; the
        # daemon has started when it says so (every process is up).
        while "sekisho started" not in self.log_since(mark) and \
                time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.02)
        # The probes above are sessions too: let them be logged and gone,
        # so that what a test reads after start() is its own doing.
        # (Bounded, and not an error: a role that logs no "disconnect"
        # line only costs this wait.)
        probes = len(self.ports)
        deadline = time.monotonic() + 10
        while len(re.findall(r"disconnect client=", self.log_since(mark))) \
                < probes and time.monotonic() < deadline:
            time.sleep(0.02)
        return True

    def stop(self):
        """SIGTERM, bounded wait; returns the exit code (None if killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
            return None

    def kill9(self):
        """kill -9 of the whole daemon at once: the master, the back side
        and the session processes (its own process group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=STOP_TIMEOUT)
        # The master is reaped; its session processes may still hold the
        # listening sockets for a moment and take a connection as they die.
        # Dead means every process of the group is gone.
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)

    def restart(self):
        self.kill9()
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # --- log ---------------------------------------------------------
    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """An offset into the log; log_since(mark) is what came after."""
        return len(self.log())

    def log_since(self, mark):
        return self.log()[mark:]

    def wait_log(self, pattern, since=0, timeout=10.0):
        """Wait until the log (from offset since) matches a regex."""
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log_since(since)), timeout,
                        f"log line /{pattern}/\n--- log ---\n"
                        f"{self.log_since(since)[-3000:]}")

    def sanitizer_report(self):
        text = self.log()
        for mark in SANITIZER_MARKS:
            if mark in text:
                i = text.index(mark)
                return text[max(0, i - 500):i + 4000]
        return None

    # --- mail --------------------------------------------------------
    def maildir_new(self, address):
        local, domain = address.split("@")
        return self.maildir_root / domain / local / "Maildir" / "new"

    def files(self, address):
        d = self.maildir_new(address)
        if not d.is_dir():
            return []
        return sorted(d.iterdir())

    def wait_files(self, address, n, timeout=DELIVERY_TIMEOUT):
        """Wait for at least n files in address's Maildir/new; return them."""
        wait_for(lambda: len(self.files(address)) >= n, timeout,
                 f"{n} message(s) in {self.maildir_new(address)} "
                 f"(have {len(self.files(address))})\n--- log ---\n"
                 f"{self.log()[-3000:]}")
        return self.files(address)

    def wait_message(self, address, queue_id, timeout=DELIVERY_TIMEOUT):
        """The delivered file whose Received header names queue_id."""
        def find():
            for f in self.files(address):
                data = f.read_bytes()
                if strip_return_path(data).startswith(b"Received:") and \
                        received_id(data) == queue_id:
                    return f
            return None
        return wait_for(find, timeout,
                        f"message {queue_id} in {address}'s Maildir"
                        f"\n--- log ---\n{self.log()[-3000:]}")

    def queue_files(self):
        q = self.spool / "queue"
        return sorted(q.iterdir()) if q.is_dir() else []

    def wait_queue_empty(self, timeout=DELIVERY_TIMEOUT):
        """Wait until every queued message has been delivered and its queue
        file removed (only for messages that can all be delivered)."""
        wait_for(lambda: not self.queue_files(), timeout,
                 f"an empty queue (have {self.queue_files()})")


@pytest.fixture
def make_daemon(tmp_path, tls_cert):
    """Factory: make_daemon(start=True, accounts=True, **Daemon kwargs)."""
    made = []

    def factory(start=True, accounts=True, name=None, **kwargs):
        d = Daemon(tmp_path / (name or f"d{len(made)}"), *tls_cert, **kwargs)
        made.append(d)
        if accounts:
            d.setup_accounts()
        if start:
            d.start()
        return d

    yield factory

    problems = []
    for d in made:
        was_running = d.running()
        rc = d.stop()
        report = d.sanitizer_report()
        if report:
            problems.append(f"sanitizer report in {d.log_path}:\n{report}")
        elif was_running and rc != 0:
            problems.append(f"sekisho did not exit 0 on SIGTERM "
                            f"(rc={rc}):\n{d.log()[-3000:]}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def daemon(request, make_daemon):
    """A started daemon; configure it with @pytest.mark.sekisho(...)."""
    marker = request.node.get_closest_marker("sekisho")
    kwargs = dict(marker.kwargs) if marker else {}
    return make_daemon(**kwargs)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sekisho(**kwargs): Daemon() arguments for the daemon "
        "fixture (extra=[config lines], proxy=True, proxy_trusted=[...])")


TEST_TIMEOUT = 300


@pytest.fixture(autouse=True)
def _test_timeout(request):
    """No test may hang the run: after TEST_TIMEOUT seconds (setup, call
    and teardown together) it fails with a TimeoutError. A file whose
    test is slow by design (the kill -9 loop) sets its own TEST_TIMEOUT,
    derived from its own bound."""
    limit = int(getattr(request.module, "TEST_TIMEOUT", TEST_TIMEOUT))

    def on_alarm(signum, frame):
        raise TimeoutError(f"test still running after {limit}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session", autouse=True)
def _binary_present():
    if not SEKISHO.exists():
        pytest.fail(f"{BUILT_SEKISHO} is missing: run scripts/setup "
                    "(make asan)")


# --- a raw SMTP client for what smtplib will not do ---------------------

class RawSMTP:
    """Line-level SMTP over a socket, optionally upgraded to TLS. Reads with
    a deadline; `buf` holds bytes received beyond the last reply."""

    def __init__(self, port, host="127.0.0.1", timeout=15.0, greet=True,
                 prefix=None, tls_context=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        if prefix is not None:
            self.sock.sendall(prefix)
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock,
                                                server_hostname=HOSTNAME)
        if greet:
            code, lines = self.reply()
            assert code == 220, lines

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete reply; have {self.buf!r}")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed; have {self.buf!r}")
        self.buf += chunk

    def line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self, timeout=None):
        """(code, [lines]) of one possibly multi-line reply."""
        lines = []
        while True:
            line = self.line(timeout)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.reply()

    def starttls(self, context):
        self.sock = context.wrap_socket(self.sock, server_hostname=HOSTNAME)

    def closed_by_peer(self, timeout=10.0):
        """True when the server closes the connection within timeout
        (whatever it sends before that is kept in buf)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline)
            except ConnectionError:
                return True
            except (ConnectionResetError, BrokenPipeError):
                return True
            except (TimeoutError, socket.timeout):
                return False
            except ssl.SSLError:
                return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def dot_stuff(message):
    """RFC 5321 4.5.2 transparency for a CRLF message ending in CRLF."""
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..")


def mx_send(port, rcpt, message, sender="sender@example.org",
            helo="client.example.org"):
    """Send one message over mx with a raw session; returns the queue ID."""
    with RawSMTP(port) as c:
        assert c.cmd(f"EHLO {helo}")[0] == 250
        assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250
        code, lines = c.cmd(f"RCPT TO:<{rcpt}>")
        assert code == 250, lines
        assert c.cmd("DATA")[0] == 354
        c.send(dot_stuff(message) + b".\r\n")
        code, lines = c.reply()
        assert code == 250, lines
        m = QUEUE_ID_RE.search(lines[-1].encode())
        assert m, lines
        c.cmd("QUIT")
        return m.group(1).decode()


@pytest.fixture
def small_disks(tmp_path):
    """tmpfs mounts of 4 MiB at d0/spool and d0/mail (the daemon's
    spool_dir and maildir_root when made with name="d0"). Requested before
    make_daemon, so the daemon is stopped before they are unmounted."""
    base = tmp_path / "d0"
    mounts = []
    for name in ("spool", "mail"):
        p = base / name
        p.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700",
                        "tmpfs", str(p)], check=True, capture_output=True)
        mounts.append(p)
    yield base
    for p in mounts:
        r = subprocess.run(["umount", str(p)], capture_output=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(p)], capture_output=True)
