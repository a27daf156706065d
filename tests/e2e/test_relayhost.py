"""The relayhost login only over verified TLS (issue 13 item 8,
docs/delivery.md "Relayhost login"): a fake relay on 127.0.0.1 records
every command it gets, before and after TLS. Without STARTTLS, with
STARTTLS refused, with a certificate for another name or from a CA nobody
trusts, it must see no AUTH and no message, and the message stays queued
(deferred, 4.7.x, the reason in the log). With the right certificate from
the test CA (relayhost_tls_ca_file) it gets the login and the message."""
import base64
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import SEKISHO, give_to_daemon, sanitizer_env, wait_for
from test_outbound import submit

CAROL = "carol@peer.test"
RELAY_USER = "relay-user@example.jp"
RELAY_PW = "relay pass-Word 9"


# --- a test CA -------------------------------------------------------------

def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class RelayCA:
    """A CA made with the openssl CLI, issuing leaf certificates."""

    def __init__(self, directory, name="Sekisho Test Relay CA"):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = self.dir / "ca.pem"
        self.key = self.dir / "ca.key"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                 "-subj", f"/CN={name}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-keyout", str(self.key), "-out", str(self.cert))
        self.n = 0

    def issue(self, cn, san):
        """(cert, key) for cn with subjectAltName san, e.g.
        'IP:127.0.0.1' or 'DNS:relay.test'."""
        self.n += 1
        key = self.dir / f"leaf{self.n}.key"
        csr = self.dir / f"leaf{self.n}.csr"
        cert = self.dir / f"leaf{self.n}.pem"
        ext = self.dir / f"leaf{self.n}.ext"
        ext.write_text(f"subjectAltName={san}\n"
                       "extendedKeyUsage=serverAuth\n"
                       "basicConstraints=CA:FALSE\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", str(key), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert),
                 "-CAkey", str(self.key), "-CAcreateserial", "-days", "30",
                 "-extfile", str(ext), "-out", str(cert))
        return cert, key


def self_signed(directory, cn, san):
    cert, key = directory / f"self-{cn}.pem", directory / f"self-{cn}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
             "-subj", f"/CN={cn}", "-addext", f"subjectAltName={san}",
             "-keyout", str(key), "-out", str(cert))
    return cert, key


# --- the fake relay --------------------------------------------------------

class FakeRelay:
    """A threaded SMTP relay on 127.0.0.1 that records every command as
    (tls, line). starttls: offer STARTTLS; starttls_reply: its answer
    (e.g. "454 ..."); implicit: TLS from the connect; cert: (cert, key)."""

    def __init__(self, cert=None, starttls=True, starttls_reply=None,
                 implicit=False, auth=True):
        self.ctx = None
        if cert is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        self.starttls = starttls and not implicit
        self.starttls_reply = starttls_reply
        self.implicit = implicit
        self.auth = auth
        self.commands = []          # (tls, line)
        self.logins = []            # (user, password) of AUTH PLAIN
        self.messages = []          # (sender, rcpts, data)
        self.handshakes = 0         # completed
        self.handshake_errors = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.closing = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,),
                             daemon=True).start()

    def _wrap(self, conn):
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.handshake_errors.append(str(e))
            conn.close()
            return None
        with self.lock:
            self.handshakes += 1
        return tls

    def _session(self, conn):
        conn.settimeout(30)
        tls = False
        if self.implicit:
            conn = self._wrap(conn)
            if conn is None:
                return
            tls = True
        self._serve(conn, tls)

    def _serve(self, conn, tls):
        f = conn.makefile("rb")

        def send(line):
            conn.sendall(line.encode() + b"\r\n")

        try:
            send("220 relay.test ESMTP fake")
            sender, rcpts = None, []
            while True:
                raw = f.readline(4096)
                if not raw:
                    return
                cmd = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self.lock:
                    self.commands.append((tls, cmd))
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    lines = ["relay.test", "PIPELINING", "8BITMIME",
                             "ENHANCEDSTATUSCODES"]
                    if self.starttls and not tls:
                        lines.append("STARTTLS")
                    if self.auth:
                        lines.append("AUTH PLAIN LOGIN")
                    for i, ln in enumerate(lines):
                        send(f"250{' ' if i == len(lines) - 1 else '-'}"
                             f"{ln}")
                elif verb == "HELO":
                    send("250 relay.test")
                elif verb == "STARTTLS" and self.starttls and not tls:
                    if self.starttls_reply is not None:
                        send(self.starttls_reply)
                        continue
                    send("220 2.0.0 go ahead")
                    f.close()
                    wrapped = self._wrap(conn)
                    if wrapped is None:
                        return
                    conn = wrapped
                    f = conn.makefile("rb")
                    tls = True
                elif verb == "AUTH":
                    parts = cmd.split(" ")
                    if len(parts) == 3 and parts[1].upper() == "PLAIN":
                        z = base64.b64decode(parts[2]).split(b"\0")
                        with self.lock:
                            self.logins.append(
                                (z[1].decode(), z[2].decode()))
                        send("235 2.7.0 Authentication successful")
                    else:
                        send("504 5.5.4 PLAIN only")
                elif verb == "MAIL":
                    sender = cmd[10:].split(">")[0].lstrip("<")
                    rcpts = []
                    send("250 2.1.0 Ok")
                elif verb == "RCPT":
                    rcpts.append(cmd[8:].split(">")[0].lstrip("<"))
                    send("250 2.1.5 Ok")
                elif verb == "DATA":
                    send("354 go ahead")
                    data = b""
                    while True:
                        chunk = f.readline()
                        if not chunk or chunk == b".\r\n":
                            break
                        data += chunk[1:] if chunk.startswith(b".") \
                            else chunk
                    with self.lock:
                        self.messages.append((sender, list(rcpts), data))
                    send("250 2.0.0 queued")
                elif verb == "RSET":
                    send("250 2.0.0 Ok")
                elif verb == "QUIT":
                    send("221 2.0.0 Bye")
                    return
                else:
                    send("502 5.5.2 Not implemented")
        except (OSError, ValueError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def verbs(self):
        with self.lock:
            return [(tls, c.split(" ", 1)[0].upper())
                    for tls, c in self.commands]

    def wait_messages(self, n, timeout=30.0):
        wait_for(lambda: len(self.messages) >= n, timeout,
                 f"{n} message(s) at the relay; commands "
                 f"{self.verbs()[-20:]}, handshake errors "
                 f"{self.handshake_errors}")
        return list(self.messages)

    def close(self):
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@pytest.fixture
def relays():
    made = []

    def factory(**kw):
        r = FakeRelay(**kw)
        made.append(r)
        return r
    yield factory
    for r in made:
        r.close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return RelayCA(tmp_path_factory.mktemp("relay-ca"))


def daemon_file(d, name, text, mode=0o600):
    """A file in the daemon's directory that its user can read."""
    p = d.dir / name
    p.write_text(text)
    p.chmod(mode)
    give_to_daemon(p)
    return p


def relay_daemon(make_daemon, relay, host="127.0.0.1", auth=True,
                 more=()):
    d = make_daemon(start=False, extra=[
        "submission_auth_without_tls = loopback",
        f"relayhost = [{host}]:{relay.port}",
        "queue_retry_min = 1s", "queue_retry_max = 2s", *more])
    if auth:
        path = daemon_file(d, "relay.auth", f"{RELAY_USER} {RELAY_PW}\n")
        d.tail.append(f"relayhost_auth_file = {path}")
    for i, line in enumerate(d.tail):
        if line.startswith("relayhost_tls_ca_file = "):
            # the CA file into the daemon's reach
            src = line.split("= ", 1)[1]
            dst = daemon_file(d, "relay-ca.pem", open(src).read(), 0o644)
            d.tail[i] = f"relayhost_tls_ca_file = {dst}"
    d.write_conf()
    d.start()
    return d


def assert_refused(d, relay, qid, dsn, reason, since=0):
    """The message was deferred with dsn, the reason logged once per
    attempt, and the relay saw neither the login nor the message."""
    d.wait_log(rf"id={qid} mta relayhost tls failed relay=\S+ "
               rf"dsn={dsn} reason=\"{reason}", since=since, timeout=30)
    d.wait_log(rf"id={qid} deliver rcpt={CAROL} relay=\S+ status=deferred "
               rf"delay=\d+s dsn={dsn} reply=\"{reason}", since=since,
               timeout=30)
    # a retry (queue_retry_min 1s) is refused the same way
    wait_for(lambda: len([ln for ln in d.log_since(since).splitlines()
                          if f"id={qid} mta relayhost tls failed" in ln])
             >= 2, 30, "a second attempt")
    verbs = relay.verbs()
    assert ("AUTH" not in [v for _, v in verbs]), verbs
    assert ("MAIL" not in [v for _, v in verbs]), verbs
    assert relay.logins == [] and relay.messages == []
    assert RELAY_PW not in d.log()
    # still queued
    assert any(qid in f.name for f in d.queue_files()), d.queue_files()


# --- (1) no STARTTLS -------------------------------------------------------

def test_relay_without_starttls_gets_no_login(make_daemon, relays, ca):
    relay = relays(starttls=False)
    d = relay_daemon(make_daemon, relay)
    qid = submit(d, [CAROL], subject="no-starttls")
    assert_refused(d, relay, qid, r"4\.7\.4",
                   "relayhost does not offer STARTTLS")
    assert [v for _, v in relay.verbs() if v != "QUIT"][:1] == ["EHLO"]


def test_verify_off_still_requires_tls(make_daemon, relays):
    """The loopback opt-out turns off the certificate check, not TLS."""
    relay = relays(starttls=False)
    d = relay_daemon(make_daemon, relay,
                     more=["relayhost_tls_verify = no"])
    qid = submit(d, [CAROL], subject="no-starttls-verify-off")
    assert_refused(d, relay, qid, r"4\.7\.4",
                   "relayhost does not offer STARTTLS")


# --- (4) STARTTLS refused --------------------------------------------------

def test_starttls_454_defers_without_login(make_daemon, relays, ca):
    relay = relays(cert=ca.issue("127.0.0.1", "IP:127.0.0.1"),
                   starttls_reply="454 4.7.0 TLS not available now")
    d = relay_daemon(make_daemon, relay,
                     more=[f"relayhost_tls_ca_file = {ca.cert}"])
    qid = submit(d, [CAROL], subject="starttls-454")
    assert_refused(d, relay, qid, r"4\.7\.4",
                   "STARTTLS refused: 454 4.7.0 TLS not available now")


# --- (2) a certificate for another name, or from an unknown CA -----------

def test_certificate_for_another_address(make_daemon, relays, ca):
    relay = relays(cert=ca.issue("relay.other.test", "DNS:relay.other.test"))
    d = relay_daemon(make_daemon, relay,
                     more=[f"relayhost_tls_ca_file = {ca.cert}"])
    qid = submit(d, [CAROL], subject="wrong-ip")
    assert_refused(d, relay, qid, r"4\.7\.5",
                   "certificate verify failed: IP address mismatch")
    # the handshake was tried: nothing came after it
    assert ("STARTTLS" in [v for _, v in relay.verbs()])
    assert not any(tls for tls, _ in relay.verbs())


def test_certificate_for_another_host_name(make_daemon, relays, ca):
    relay = relays(cert=ca.issue("relay.other.test", "DNS:relay.other.test"))
    d = relay_daemon(make_daemon, relay, host="localhost",
                     more=[f"relayhost_tls_ca_file = {ca.cert}"])
    qid = submit(d, [CAROL], subject="wrong-name")
    assert_refused(d, relay, qid, r"4\.7\.5",
                   "certificate verify failed: hostname mismatch")
    assert not any(tls for tls, _ in relay.verbs())


def test_certificate_from_untrusted_ca(make_daemon, relays, tmp_path):
    """A man in the middle with a certificate for the right name that no
    trusted CA signed (the system store, no relayhost_tls_ca_file)."""
    relay = relays(cert=self_signed(tmp_path, "localhost",
                                    "DNS:localhost,IP:127.0.0.1"))
    d = relay_daemon(make_daemon, relay)
    qid = submit(d, [CAROL], subject="untrusted")
    assert_refused(d, relay, qid, r"4\.7\.5",
                   "certificate verify failed: self-signed certificate")
    assert not any(tls for tls, _ in relay.verbs())


# --- (3) the right certificate ---------------------------------------------

def check_delivered(d, relay, qid):
    (msg,) = relay.wait_messages(1)
    d.wait_log(rf"id={qid} deliver rcpt={CAROL} relay=\S+ status=sent",
               timeout=30)
    assert relay.logins == [(RELAY_USER, RELAY_PW)]
    assert msg[1] == [CAROL]
    assert f"id {qid}".encode() in msg[2]
    verbs = relay.verbs()
    # nothing after EHLO went in clear but STARTTLS
    clear = [v for tls, v in verbs if not tls]
    assert "AUTH" not in clear and "MAIL" not in clear, verbs
    assert (True, "AUTH") in verbs
    assert RELAY_PW not in d.log()


@pytest.mark.parametrize("host,san", [("127.0.0.1", "IP:127.0.0.1"),
                                      ("localhost", "DNS:localhost")])
def test_right_certificate_gets_login_and_mail(make_daemon, relays, ca,
                                               host, san):
    relay = relays(cert=ca.issue(host, san))
    d = relay_daemon(make_daemon, relay, host=host,
                     more=[f"relayhost_tls_ca_file = {ca.cert}"])
    qid = submit(d, [CAROL], subject="right-cert")
    check_delivered(d, relay, qid)
    assert relay.verbs()[:2] == [(False, "EHLO"), (False, "STARTTLS")]


def test_implicit_tls(make_daemon, relays, ca):
    relay = relays(cert=ca.issue("127.0.0.1", "IP:127.0.0.1"),
                   implicit=True)
    d = relay_daemon(make_daemon, relay,
                     more=[f"relayhost_tls_ca_file = {ca.cert}",
                           "relayhost_tls = implicit"])
    qid = submit(d, [CAROL], subject="implicit")
    check_delivered(d, relay, qid)
    assert all(tls for tls, _ in relay.verbs())


def test_implicit_tls_wrong_name(make_daemon, relays, ca):
    relay = relays(cert=ca.issue("other", "DNS:relay.other.test"),
                   implicit=True)
    d = relay_daemon(make_daemon, relay,
                     more=[f"relayhost_tls_ca_file = {ca.cert}",
                           "relayhost_tls = implicit"])
    qid = submit(d, [CAROL], subject="implicit-wrong")
    assert_refused(d, relay, qid, r"4\.7\.5",
                   "certificate verify failed: IP address mismatch")
    assert relay.commands == []


# --- (5) the loopback-only opt-out -----------------------------------------

def check_config(path):
    return subprocess.run([str(SEKISHO), "check-config", str(path)],
                          capture_output=True, text=True,
                          env=sanitizer_env(), timeout=60)


def test_verify_off_refused_for_remote_relayhost(tmp_path):
    conf = tmp_path / "remote.conf"
    # a documentation address: only written, never connected to
    conf.write_text("relayhost = [192.0.2.1]:587\n"
                    "relayhost_auth_file = /etc/sekisho/relay.auth\n"
                    "relayhost_tls_verify = no\n")
    r = check_config(conf)
    assert r.returncode != 0
    assert f"{conf}:3: relayhost_tls_verify: 'no' is only allowed with " \
        "a loopback relayhost" in r.stderr, r.stderr
    # a name is not loopback either, nor is no relayhost at all
    for text, line in (("relayhost = [relay.example.net]:587\n"
                        "relayhost_tls_verify = no\n", 2),
                       ("relayhost_tls_verify = no\n", 1)):
        conf.write_text(text)
        r = check_config(conf)
        assert r.returncode != 0 and \
            f"{conf}:{line}: relayhost_tls_verify:" in r.stderr, r.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1",
                                  "localhost"])
def test_verify_off_accepted_for_loopback(tmp_path, host):
    conf = tmp_path / "loop.conf"
    conf.write_text(f"relayhost = [{host}]:587\n"
                    "relayhost_tls_verify = no\n")
    r = check_config(conf)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{conf}: ok\n"


def test_verify_off_on_loopback_delivers_to_self_signed(make_daemon, relays,
                                                        tmp_path):
    relay = relays(cert=self_signed(tmp_path, "anything",
                                    "DNS:anything.test"))
    d = relay_daemon(make_daemon, relay,
                     more=["relayhost_tls_verify = no"])
    qid = submit(d, [CAROL], subject="verify-off")
    check_delivered(d, relay, qid)


# --- without a login: as before --------------------------------------------

def test_without_login_relayhost_is_opportunistic(make_daemon, relays):
    """No relayhost_auth_file: a relay without STARTTLS still gets the
    mail (opportunistic TLS, unchanged) and no AUTH."""
    relay = relays(starttls=False)
    d = relay_daemon(make_daemon, relay, auth=False)
    qid = submit(d, [CAROL], subject="no-login")
    relay.wait_messages(1)
    d.wait_log(rf"id={qid} deliver rcpt={CAROL} relay=\S+ status=sent",
               timeout=30)
    assert "AUTH" not in [v for _, v in relay.verbs()]


def test_bad_ca_file_is_reported(make_daemon, relays):
    relay = relays(starttls=False)
    d = make_daemon(start=False, extra=[
        f"relayhost = [127.0.0.1]:{relay.port}"])
    path = daemon_file(d, "relay.auth", f"{RELAY_USER} {RELAY_PW}\n")
    bad = daemon_file(d, "bad-ca.pem", "not a certificate\n", 0o644)
    d.tail += [f"relayhost_auth_file = {path}",
               f"relayhost_tls_ca_file = {bad}"]
    d.write_conf()
    logf = open(d.log_path, "ab")
    try:
        p = subprocess.run([str(SEKISHO), "-c", str(d.conf), "serve", "-f"],
                           stdin=subprocess.DEVNULL, stdout=logf,
                           stderr=logf, env=sanitizer_env(), timeout=60,
                           cwd=str(d.dir))
    finally:
        logf.close()
    assert p.returncode != 0
    assert f"relayhost_tls_ca_file {bad}" in d.log(), d.log()[-2000:]


# --- a real relay: Postfix with Dovecot SASL -------------------------------

def test_postfix_relay_with_test_ca(make_daemon, ca, tmp_path, request):
    """Interoperation: Debian's Postfix as the relayhost, its certificate
    from the test CA, AUTH checked by Dovecot, AUTH only after TLS
    (smtpd_tls_auth_only). The message arrives with ESMTPSA."""
    # scripts/setup installs both: a missing one is a failed set-up, not
    # a reason to prove nothing
    assert shutil.which("postfix") and shutil.which("dovecot"), \
        "postfix or dovecot not installed (scripts/setup installs them)"
    from mta_peers import DovecotAuth, PrivatePostfix
    # where Postfix's unprivileged processes can read them
    leaf = ca.issue("127.0.0.1", "IP:127.0.0.1")
    pub = Path(tempfile.mkdtemp(prefix="sekisho-test-relaycert-",
                                dir="/tmp"))
    pub.chmod(0o755)
    cert, key = pub / "cert.pem", pub / "key.pem"
    shutil.copy(leaf[0], cert)
    shutil.copy(leaf[1], key)
    cert.chmod(0o644)
    key.chmod(0o644)
    request.addfinalizer(lambda: shutil.rmtree(pub, ignore_errors=True))
    with DovecotAuth(tmp_path, {RELAY_USER: RELAY_PW}) as auth:
        pf = PrivatePostfix(tmp_path, sasl_port=auth.port,
                            mailbox=("peer.test", "carol"), extra=[
                                f"smtpd_tls_cert_file = {cert}",
                                f"smtpd_tls_key_file = {key}",
                                "smtpd_tls_security_level = may",
                                "smtpd_tls_auth_only = yes",
                                "smtpd_sasl_authenticated_header = yes",
                            ])
        # smtpd's TLS wants its PRNG/session-cache manager
        with open(pf.etc / "master.cf", "a") as f:
            f.write("tlsmgr    unix  - - n 1000? 1 tlsmgr\n")
        with pf:
            deliver_via_postfix(make_daemon, ca, pf)


def deliver_via_postfix(make_daemon, ca, pf):
    relay = type("Relay", (), {"port": pf.port})()
    d = relay_daemon(make_daemon, relay,
                     more=[f"relayhost_tls_ca_file = {ca.cert}"])
    qid = submit(d, [CAROL], subject="to-postfix-relay")
    d.wait_log(rf"id={qid} deliver rcpt={CAROL} relay=\S+ status=sent",
               timeout=30)
    wait_for(lambda: pf.maildir.is_dir() and any(pf.maildir.iterdir()),
             30, "the message in Postfix's Maildir")
    data = next(pf.maildir.iterdir()).read_bytes()
    assert f"id {qid}".encode() in data
    assert b"with ESMTPSA" in data, data[:800]
    assert f"Authenticated sender: {RELAY_USER}".encode() in data, \
        data[:800]
    assert f"sasl_username={RELAY_USER}" in pf.log.read_text()
    assert RELAY_PW not in d.log()
