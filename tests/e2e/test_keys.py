"""No private key in a session process (issue 13 item 7, docs/tls.md "Where
the keys are", docs/security.md "Keys").

The daemon's TLS private keys live in the key process (sekisho-keys); the
session processes sign over a channel to it. These tests do real handshakes
(smtplib STARTTLS on 587, implicit TLS on 465, poplib on 995, the portal,
openssl s_client with TLS 1.2 and 1.3, RSA PKCS#1, RSA-PSS and ECDSA), then
read every session process's memory as root (/proc/PID/maps + mem) and
look for the key: the RSA private exponent and primes, the EC private
scalar (both byte orders: OpenSSL's BIGNUM limbs are little-endian), and
the key file's PEM and DER. The key process's memory is the positive
control: the same search finds the key there.
"""
import os
import poplib
import re
import select
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (ALICE, ALICE_PW, HOSTNAME, REPO, SANITIZER_MARKS,
                      STOP_TIMEOUT, Daemon, children, wait_for)
from seam import HDR, MSG_MAX_LEN, Fields, Reply

LISTENERS = (("submission", "submission", False),
             ("submissions", "submissions", False),
             ("pop3s", "pop3s", False),
             ("portal", "portal", False))

KEYS_REQ_SIGN = 0x4b01
KEYS_REP_SIGN = 0x4b02
KEYS_ALG_RSA_PKCS1, KEYS_ALG_RSA_RAW, KEYS_ALG_ECDSA = 1, 2, 3


# --- certificates --------------------------------------------------------
def make_key_cert(directory, kind):
    """(cert, key) for HOSTNAME: kind "rsa" (2048) or "ec" (P-256). The key
    file is root's, mode 0600, as in a real install."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{kind}-cert.pem", directory / f"{kind}-key.pem"
    newkey = ["-newkey", "rsa:2048"] if kind == "rsa" else \
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(
        ["openssl", "req", "-x509", *newkey, "-nodes", "-days", "30",
         "-subj", f"/CN={HOSTNAME}",
         "-addext", f"subjectAltName=DNS:{HOSTNAME},DNS:localhost,"
                    "IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def _hex_field(text, name):
    """The colon-separated hex block after `name:` in openssl -text."""
    m = re.search(rf"^{name}:\s*\n((?:\s+[0-9a-f:]+\n)+)", text, re.M)
    assert m, f"{name} not in openssl output"
    h = re.sub(r"[\s:]", "", m.group(1))
    b = bytes.fromhex(h)
    return b.lstrip(b"\0") or b"\0"


def key_needles(key):
    """{what: bytes} that would give the key away if found in memory."""
    text = subprocess.run(["openssl", "pkey", "-in", str(key), "-text",
                           "-noout"], check=True, capture_output=True,
                          text=True).stdout
    secrets = {}
    if "privateExponent" in text:
        for name in ("privateExponent", "prime1", "prime2"):
            secrets[name] = _hex_field(text, name)
    else:
        secrets["priv"] = _hex_field(text, "priv")
    needles = {}
    for name, b in secrets.items():
        needles[name + " (big-endian)"] = b
        needles[name + " (little-endian)"] = b[::-1]
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-outform",
                          "DER"], check=True, capture_output=True).stdout
    # the DER's middle: the secret part, not the algorithm's header
    needles["key DER"] = der[len(der) // 3:len(der) // 3 + 48]
    body = [line for line in Path(key).read_text().splitlines()
            if line and not line.startswith("-----")]
    needles["key PEM line"] = body[len(body) // 2].encode()
    return needles


# --- memory --------------------------------------------------------------
MAX_REGION = 1 << 30    # ASan's shadow and reserved ranges are not data


def scan_memory(pid, needles):
    """The needles found in pid's readable memory ({what: address})."""
    found = {}
    with open(f"/proc/{pid}/maps") as maps, \
            open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if fields[1][0] != "r" or hi - lo > MAX_REGION:
                continue
            if len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]"):
                continue
            overlap = 64
            prev = b""
            addr = lo
            while addr < hi:
                n = min(1 << 22, hi - addr)
                try:
                    mem.seek(addr)
                    chunk = mem.read(n)
                except OSError:
                    break
                if not chunk:
                    break
                data = prev + chunk
                for what, needle in needles.items():
                    if what not in found and needle in data:
                        found[what] = hex(addr - len(prev) +
                                          data.index(needle))
                prev = chunk[-overlap:]
                addr += len(chunk)
    return found


def daemon_processes(d):
    """{pid: name} of the daemon's children (master's)."""
    return children(d.proc.pid)


def pids_named(d, name):
    return sorted(p for p, n in daemon_processes(d).items() if n == name)


# --- handshakes ----------------------------------------------------------
def client_ctx(cert, **kw):
    ctx = ssl.create_default_context(cafile=str(cert))
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def s_client(port, *args, starttls=None, servername=HOSTNAME):
    """openssl s_client: (returncode, output)."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
           "-servername", servername, *args]
    if starttls:
        cmd += ["-starttls", starttls]
    r = subprocess.run(cmd, input=b"Q\n", capture_output=True, timeout=30)
    return r.returncode, r.stdout.decode(errors="replace") + \
        r.stderr.decode(errors="replace")


def shake_all(d, cert, kind):
    """Every listener and protocol version, real clients."""
    ctx = client_ctx(cert)
    with smtplib.SMTP("127.0.0.1", d.ports["submission"], timeout=15) as s:
        s.starttls(context=ctx)
        s.ehlo()
        assert s.login(ALICE, ALICE_PW)[0] == 235
    with smtplib.SMTP_SSL("127.0.0.1", d.ports["submissions"], timeout=15,
                          context=ctx) as s:
        assert s.noop()[0] == 250
    p = poplib.POP3_SSL("127.0.0.1", d.ports["pop3s"], timeout=15,
                        context=ctx)
    p.user(ALICE)
    p.pass_(ALICE_PW)
    p.quit()
    with socket.create_connection(("127.0.0.1", d.ports["portal"]),
                                  timeout=15) as raw, \
            ctx.wrap_socket(raw, server_hostname=HOSTNAME) as t:
        t.sendall(b"GET / HTTP/1.0\r\nHost: " + HOSTNAME.encode() +
                  b"\r\n\r\n")
        assert t.recv(100).startswith(b"HTTP/1.")
    port = d.ports["submissions"]
    if kind == "rsa":
        variants = [("-tls1_2", "-sigalgs", "RSA+SHA256"),
                    ("-tls1_2", "-sigalgs", "RSA-PSS+SHA256"),
                    ("-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"),
                    ("-tls1_3", "-sigalgs", "rsa_pss_rsae_sha512")]
        expect = ["RSA", "RSA-PSS", "RSA-PSS", "RSA-PSS"]
    else:
        variants = [("-tls1_2", "-sigalgs", "ECDSA+SHA256"),
                    ("-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256")]
        expect = ["ECDSA", "ECDSA"]
    for args, want in zip(variants, expect):
        rc, out = s_client(port, "-CAfile", str(cert),
                           "-verify_return_error", *args)
        assert rc == 0, out
        assert "Verify return code: 0 (ok)" in out, out
        m = re.search(r"Peer signature type: (\S+)", out)
        assert m and m.group(1) == want, (args, out)
    rc, out = s_client(d.ports["submission"], "-CAfile", str(cert),
                       "-verify_return_error", "-tls1_3",
                       starttls="smtp")
    assert rc == 0 and "Verify return code: 0 (ok)" in out, out


def handshake_ok(d, cert):
    try:
        with smtplib.SMTP_SSL("127.0.0.1", d.ports["submissions"],
                              timeout=5, context=client_ctx(cert)) as s:
            return s.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


# --- fixture -------------------------------------------------------------
@pytest.fixture
def keyd(tmp_path):
    made = []

    def factory(kind, extra=()):
        cert, key = make_key_cert(tmp_path / "tls", kind)
        d = Daemon(tmp_path / f"d-{kind}-{len(made)}", cert, key,
                   listeners=LISTENERS, extra=list(extra))
        made.append(d)
        d.setup_accounts()
        d.start()
        return d, cert, key

    yield factory
    problems = []
    for d in made:
        was_running = d.running()
        rc = d.stop()
        text = d.log()
        for mark in SANITIZER_MARKS:
            if mark in text:
                problems.append(f"sanitizer report in {d.log_path}")
        if was_running and rc != 0:
            problems.append(f"exit {rc}:\n{text[-3000:]}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# --- the tests -----------------------------------------------------------
@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_no_key_in_session_processes(keyd, kind):
    """After handshakes on every listener, no session process (nor the
    back side) has a byte of the key; the key process has it (the search
    works)."""
    d, cert, key = keyd(kind)
    shake_all(d, cert, kind)
    needles = key_needles(key)
    sessions = pids_named(d, "sekisho-session")
    keyprocs = pids_named(d, "sekisho-keys")
    backs = pids_named(d, "sekisho-back")
    assert sessions and len(keyprocs) == 1 and len(backs) == 1, \
        daemon_processes(d)
    for pid in sessions + backs:
        found = scan_memory(pid, needles)
        assert not found, f"process {pid} holds the key: {found}"
    found = scan_memory(keyprocs[0], needles)
    secret = [w for w in found if "DER" not in w and "PEM" not in w]
    assert secret, f"the search did not find the key in the key process " \
        f"{keyprocs[0]}: {found}"


def test_key_process_is_confined(keyd):
    """It runs as `user`, not root nor session_user, not dumpable (no
    ptrace by the back side's uid), chrooted, and holds no listener."""
    d, cert, key = keyd("ec")
    kp = pids_named(d, "sekisho-keys")[0]
    session = pids_named(d, "sekisho-session")[0]
    back = pids_named(d, "sekisho-back")[0]
    st = {p: open(f"/proc/{p}/status").read() for p in (kp, session, back)}
    uid = {p: int(re.search(r"^Uid:\s+(\d+)", s, re.M).group(1))
           for p, s in st.items()}
    if os.geteuid() == 0:
        assert uid[kp] != 0
        assert uid[kp] == uid[back] and uid[kp] != uid[session]
        assert os.readlink(f"/proc/{kp}/root") != "/"
    assert re.search(r"^NoNewPrivs:\s+1", st[kp], re.M)
    # no listening socket: only its control socket and channels (unix)
    inodes = {os.readlink(f"/proc/{kp}/fd/{fd}")
              for fd in os.listdir(f"/proc/{kp}/fd")}
    tcp = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(f).read().splitlines()[1:]:
            tcp.add(f"socket:[{line.split()[9]}]")
    assert not inodes & tcp
    # the key file is root's: nobody but the master could read it
    assert os.stat(key).st_mode & 0o077 == 0


def test_key_process_killed_is_restarted(keyd):
    """SIGKILL of the key process: the master starts another and a new
    generation of session processes; handshakes work again, the master and
    the back side are the same processes (docs/tls.md)."""
    d, cert, key = keyd("rsa")
    back = pids_named(d, "sekisho-back")
    kp = pids_named(d, "sekisho-keys")
    old_sessions = set(pids_named(d, "sekisho-session"))
    mark = d.log_mark()
    os.kill(kp[0], signal.SIGKILL)
    d.wait_log(rf"key process {kp[0]} exited on signal 9", since=mark)
    wait_for(lambda: pids_named(d, "sekisho-keys") not in ([], kp), 10,
             "a new key process")
    wait_for(lambda: handshake_ok(d, cert), 15, "a handshake after the "
             "restart")
    assert d.running()
    assert pids_named(d, "sekisho-back") == back
    new_sessions = set(pids_named(d, "sekisho-session"))
    assert new_sessions - old_sessions
    # the old generation retires (a handshake it took between the death
    # and its SIGUSR1 fails, as docs/tls.md says); idle, it ends at once
    wait_for(lambda: not old_sessions & set(pids_named(d, "sekisho-session")),
             15, "the old generation gone")
    shake_all(d, cert, "rsa")


def test_key_process_crash_loop_stops_the_daemon(keyd):
    """Three deaths in a minute: the daemon stops (exit 1, logged) instead
    of serving handshakes that cannot work."""
    d, cert, key = keyd("ec")
    mark = d.log_mark()
    for _ in range(3):
        kp = wait_for(lambda: pids_named(d, "sekisho-keys"), 10,
                      "a key process")
        # killed once it runs: one killed while it starts stops the
        # daemon too, but for another reason ("cannot restart it")
        d.wait_log(rf"key process {kp[0]} started keys=")
        os.kill(kp[0], signal.SIGKILL)
        wait_for(lambda: kp[0] not in pids_named(d, "sekisho-keys") or
                 not d.running(), 10, "the key process gone")
    d.proc.wait(timeout=STOP_TIMEOUT + 10)
    assert d.proc.returncode == 1
    assert "key process died 3 times in a minute: stopping" in \
        d.log_since(mark)


class KeysChannel:
    """A channel to the key process through the test hook, as a session
    process has (a compromised one, here)."""

    def __init__(self, d, timeout=10.0):
        path = Path(str(d.dir / "test-channel.sock") + "-keys")
        if path.exists():
            path.unlink()
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            rx.bind(str(path))
            rx.settimeout(timeout)
            os.kill(d.proc.pid, signal.SIGUSR2)
            _, fds, _, _ = socket.recv_fds(rx, 16, 1)
        finally:
            rx.close()
            path.unlink()
        assert len(fds) == 1
        self.sock = socket.socket(fileno=fds[0])
        self.next_id = 1

    def send(self, type_, fields, id_=None):
        id_ = id_ or self.next_id
        self.next_id += 1
        body = bytes(fields.b)
        self.sock.send(HDR.pack(type_, HDR.size + len(body), id_) + body)
        return id_

    def recv(self, timeout=10.0):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return None
        data = self.sock.recv(MSG_MAX_LEN)
        if not data:
            raise EOFError
        t, n, i = HDR.unpack_from(data)
        return Reply(t, i, data[HDR.size:n])

    def sign(self, key, alg, data):
        id_ = self.send(KEYS_REQ_SIGN, Fields().u32(key).u32(alg).str(
            data.hex() if isinstance(data, bytes) else data))
        rep = self.recv()
        assert rep is not None, "no reply from the key process"
        assert rep.type == KEYS_REP_SIGN and rep.id == id_
        return rep.u32(), rep.str()


def test_garbage_on_the_key_channel(keyd):
    """A compromised session process's worst requests: each refused with
    an error reply (or dropped when not even a message), the key process
    lives and signs the next good request; handshakes go on."""
    d, cert, key = keyd("ec")
    kp = pids_named(d, "sekisho-keys")
    ch = KeysChannel(d)
    digest = bytes(range(32))
    ok, sig = ch.sign(0, KEYS_ALG_ECDSA, digest)
    assert ok == 1 and len(sig) > 16
    for key_i, alg, data, why in [
            (7, KEYS_ALG_ECDSA, digest, "no such key"),
            (0xffffffff, KEYS_ALG_ECDSA, digest, "no such key"),
            (0, KEYS_ALG_RSA_PKCS1, digest, "not an RSA key"),
            (0, 99, digest, "unknown algorithm"),
            (0, KEYS_ALG_ECDSA, b"\1" * 3, "bad digest length"),
            (0, KEYS_ALG_ECDSA, "zz" * 32, "bad data"),
            (0, KEYS_ALG_ECDSA, "abc", "bad data"),
            (0, KEYS_ALG_ECDSA, b"\1" * 5000, "bad data")]:
        ok, reason = ch.sign(key_i, alg, data)
        assert ok == 0 and reason == why, (key_i, alg, reason)
    # a message with a field missing, one with bytes left over, an
    # unknown type
    id_ = ch.send(KEYS_REQ_SIGN, Fields().u32(0))
    rep = ch.recv()
    assert rep.id == id_ and rep.u32() == 0 and rep.str() == \
        "malformed request"
    id_ = ch.send(KEYS_REQ_SIGN, Fields().u32(0).u32(3).str(digest.hex())
                  .u32(1))
    rep = ch.recv()
    assert rep.id == id_ and rep.u32() == 0
    id_ = ch.send(12345, Fields())
    rep = ch.recv()
    assert rep.id == id_ and rep.u32() == 0 and rep.str() == \
        "unknown request"
    # not messages at all: dropped, no reply
    for raw in (b"\xff" * 7, b"\0" * 16, HDR.pack(KEYS_REQ_SIGN, 99999, 1),
                b"\xff" * 70000):
        try:
            ch.sock.send(raw)
        except OSError:
            pass        # too large for a datagram here: not sent
    assert ch.recv(timeout=0.5) is None
    ok, sig = ch.sign(0, KEYS_ALG_ECDSA, digest)
    assert ok == 1
    # an empty datagram reads as the end of the channel (SOCK_SEQPACKET):
    # this channel is closed, the key process goes on
    ch.sock.send(b"")
    with pytest.raises((EOFError, ConnectionResetError)):
        ch.recv(timeout=5)
    assert pids_named(d, "sekisho-keys") == kp
    ch = KeysChannel(d)
    # a flood without reading replies: its channel is closed, nobody waits
    ch.sock.setblocking(False)
    sent = 0
    try:
        for _ in range(20000):
            ch.sock.send(HDR.pack(KEYS_REQ_SIGN, HDR.size + 4, 1) +
                         b"\0\0\0\0")
            sent += 1
    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
        pass
    assert sent > 0
    wait_for(lambda: handshake_ok(d, cert), 10, "a handshake meanwhile")
    assert pids_named(d, "sekisho-keys") == kp
    # a second channel still works
    ch2 = KeysChannel(d)
    ok, sig = ch2.sign(0, KEYS_ALG_ECDSA, digest)
    assert ok == 1
    assert pids_named(d, "sekisho-keys") == kp
    shake_all(d, cert, "ec")


def test_reload_uses_new_keys(keyd):
    """SIGHUP with a new certificate and key: a new key process holds the
    new key, the new session processes present the new certificate, and
    none of them holds either key."""
    d, cert, key = keyd("rsa")
    old_kp = pids_named(d, "sekisho-keys")
    old_sessions = set(pids_named(d, "sekisho-session"))
    new_cert, new_key = make_key_cert(d.dir / "tls2", "ec")
    text = d.conf.read_text()
    text = text.replace(f"tls_cert = {cert}", f"tls_cert = {new_cert}")
    text = text.replace(f"tls_key = {key}", f"tls_key = {new_key}")
    d.conf.write_text(text)
    mark = d.log_mark()
    os.kill(d.proc.pid, signal.SIGHUP)
    d.wait_log(r"configuration reloaded", since=mark)
    wait_for(lambda: not old_sessions & set(pids_named(d, "sekisho-session")),
             15, "the old generation gone")
    wait_for(lambda: handshake_ok(d, new_cert), 15, "the new certificate")
    shake_all(d, new_cert, "ec")
    # the old key process ended with the old generation
    wait_for(lambda: old_kp[0] not in pids_named(d, "sekisho-keys"), 10,
             "the old key process gone")
    kps = pids_named(d, "sekisho-keys")
    assert kps and kps != old_kp
    needles = dict(key_needles(key))
    needles.update({"new " + k: v for k, v in key_needles(new_key).items()})
    for pid in pids_named(d, "sekisho-session") + \
            pids_named(d, "sekisho-back"):
        found = scan_memory(pid, needles)
        assert not found, f"process {pid} holds a key: {found}"


def test_sni_keys_too(keyd, tmp_path):
    """A tls_sni line with an RSA key beside the default ECDSA one: each
    name gets its certificate, signed by the key process, and neither key
    is in a session process."""
    sni_cert, sni_key = make_key_cert(tmp_path / "sni", "rsa")
    # a certificate for another name (openssl's -subj is enough here)
    subprocess.run(
        ["openssl", "req", "-x509", "-new", "-key", str(sni_key), "-days",
         "30", "-subj", "/CN=mail.example.net", "-addext",
         "subjectAltName=DNS:mail.example.net", "-out", str(sni_cert)],
        check=True, capture_output=True)
    d, cert, key = keyd("ec", extra=[
        f"tls_sni = mail.example.net {sni_cert} {sni_key}"])
    for name, ca, want in ((HOSTNAME, cert, "ECDSA"),
                           ("mail.example.net", sni_cert, "RSA-PSS")):
        for version in ("-tls1_2", "-tls1_3"):
            rc, out = s_client(d.ports["submissions"], "-CAfile", str(ca),
                               "-verify_return_error", version,
                               servername=name)
            assert rc == 0 and "Verify return code: 0 (ok)" in out, out
            assert f"Peer signature type: {want}" in out, out
    needles = dict(key_needles(key))
    needles.update({"sni " + k: v for k, v in key_needles(sni_key).items()})
    for pid in pids_named(d, "sekisho-session"):
        found = scan_memory(pid, needles)
        assert not found, f"process {pid} holds a key: {found}"
    found = scan_memory(pids_named(d, "sekisho-keys")[0], needles)
    assert any(w.startswith("sni prime") for w in found), found


def test_reload_with_a_bad_key_keeps_the_old(keyd):
    """A key that does not match its certificate: the reload is refused,
    the old key process and keys stay."""
    d, cert, key = keyd("ec")
    kp = pids_named(d, "sekisho-keys")
    _, other_key = make_key_cert(d.dir / "tls2", "ec")
    d.conf.write_text(d.conf.read_text().replace(
        f"tls_key = {key}", f"tls_key = {other_key}"))
    mark = d.log_mark()
    os.kill(d.proc.pid, signal.SIGHUP)
    d.wait_log(r"does not match the certificate.*config not reloaded",
               since=mark)
    assert pids_named(d, "sekisho-keys") == kp
    assert handshake_ok(d, cert)


# --- the session side cannot reach a key ---------------------------------
# Functions that load or hold a private key. No session-side file may name
# one, except the allow-list (file, symbol): the session's SSL_CTX gets its
# key object from src/keys/keys_client.c, which holds a public key only.
KEY_SYMBOLS = re.compile(
    r"\b(PEM_read\w*PrivateKey|PEM_read_bio_\w*(RSA|EC|DSA)\w*|"
    r"d2i_\w*PrivateKey\w*|d2i_(RSA|EC|DSA)PrivateKey\w*|"
    r"SSL_CTX_use_PrivateKey\w*|SSL_use_PrivateKey\w*|"
    r"SSL_CTX_use_RSAPrivateKey\w*|OSSL_DECODER_\w+|"
    r"EVP_PKEY_fromdata\w*|EVP_PKEY_new_raw_private_key\w*|"
    r"tls_key\b|keys_blob_\w+|keyproc_main)")
SESSION_SIDE = ["src/smtp", "src/pop3", "src/portal", "src/policyd",
                "src/policy", "src/core/conn.c", "src/core/conn.h",
                "src/core/proxy.c", "src/core/tls.h", "src/core/tls.c",
                "src/core/be_client.c", "src/core/metrics_http.c",
                "src/daemon/server.c", "src/daemon/server.h",
                "src/daemon/limits.c", "src/daemon/limits.h",
                "src/keys/keys_client.c"]
ALLOWED = {
    # the master builds the session's SSL_CTX with the key process's key
    # object (public half only) from keys_client_pkey
    ("src/core/tls.c", "SSL_CTX_use_PrivateKey"),
    # tls_key_files names the files for the master (root) to read; the
    # session process never calls it (test_session_code_reaches_no_key)
    ("src/core/tls.c", "tls_key"),
    ("src/core/tls.h", "tls_key"),     # the comment of tls_key_files
}


def test_session_code_reaches_no_key():
    """The grep of issue 13: no session-side source can load a private key
    or reach a key file (docs/security.md "Keys" says how this checks)."""
    hits = []
    for entry in SESSION_SIDE:
        p = REPO / entry
        files = [p] if p.is_file() else sorted(p.rglob("*.[ch]"))
        assert files, entry
        for f in files:
            rel = str(f.relative_to(REPO))
            for n, line in enumerate(f.read_text().splitlines(), 1):
                for m in KEY_SYMBOLS.finditer(line):
                    sym = m.group(1)
                    if (rel, sym) in ALLOWED:
                        continue
                    hits.append(f"{rel}:{n}: {line.strip()}")
    assert not hits, "session-side code that reaches a private key:\n" + \
        "\n".join(hits)
    # the one file with the deprecated key methods holds no private key:
    # its key objects are made from a public key (d2i_*_PUBKEY)
    client = (REPO / "src/keys/keys_client.c").read_text()
    assert "d2i_RSA_PUBKEY" in client and "d2i_EC_PUBKEY" in client
    # tls_key_files is the master's: only master.c calls it
    callers = subprocess.run(["grep", "-rln", "tls_key_files(", "src"],
                             cwd=REPO, capture_output=True, text=True)
    assert sorted(callers.stdout.split()) == ["src/core/tls.c",
                                              "src/core/tls.h",
                                              "src/daemon/master.c"]
