"""Real mail filters for the filter tests (tests/e2e/test_filters_*.py), each
its own instance on loopback ports with its config and state in a directory
of its own, stopped (its process group killed) at the end:

    LocalDNS      dnsmasq: the DKIM key, SPF and DMARC (p=reject) of
                  example.jp, answering NXDOMAIN for every other name
    Rspamd        proxy worker in milter mode + normal worker, with
                  contrib/filters/rspamd/local.d (dkim_signing for
                  example.jp, milter_headers, DMARC)
    OpenDKIM      signing example.jp (contrib/filters/opendkim)
    ClamAV        clamd with a database the test makes (an MD5 signature of
                  the EICAR file, no download) + clamav-milter

A missing program fails the test (scripts/setup installs them). The
contrib files are the ones docs/filters.md shows; only ports, paths and
what loopback-only testing needs are changed here.
"""
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, free_port, free_udp_tcp_port, wait_for

CONTRIB = REPO / "contrib" / "filters"
DOMAIN = "example.jp"
SELECTOR = "sekisho"
# the EICAR anti-virus test file (68 bytes)
EICAR = (r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!"
         r"$H+H*")
GTUBE = ("XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL"
         "*C.34X")


def need(program):
    """The path of a program the test needs; the test FAILS without it."""
    path = shutil.which(program) or next(
        (p for p in (f"/usr/sbin/{program}", f"/usr/bin/{program}")
         if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.fail(f"{program} is not installed (scripts/setup installs it)")
    return path


def private_dir(prefix):
    """A fresh directory the filters' own users can reach (pytest's
    temporary directories are 0700 and the filters drop root)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)
    return d


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


class Proc:
    """Processes in their own session; stop() kills the whole group."""

    def __init__(self):
        self.procs = []

    def spawn(self, argv, log, **kw):
        out = open(log, "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True,
                             **kw)
        out.close()
        self.procs.append(p)
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(10)
            # children that left the group leader behind
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


# --- DKIM keys and DNS ----------------------------------------------------

class DkimKey:
    """An RSA key pair made for this test: the PEM private key file and the
    DNS TXT value of the public key."""

    def __init__(self, directory, selector=SELECTOR, domain=DOMAIN):
        self.selector, self.domain = selector, domain
        self.path = Path(directory) / f"{domain}.{selector}.key"
        subprocess.run(["openssl", "genrsa", "-out", str(self.path), "2048"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "rsa", "-in", str(self.path),
                              "-pubout", "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.txt = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
        self.pem = self.path.read_bytes()

    @property
    def name(self):
        return f"{self.selector}._domainkey.{self.domain}"


def _txt_arg(name, text):
    """dnsmasq's --txt-record with the text cut in strings of <= 255."""
    parts = [text[i:i + 250] for i in range(0, len(text), 250)]
    return f"--txt-record={name}," + ",".join(parts)


class LocalDNS:
    """dnsmasq on 127.0.0.1:PORT (UDP and TCP) publishing `txt` {name:
    text} and `hosts` {name: address}; every other name is NXDOMAIN (no
    upstream, nothing leaves the machine)."""

    def __init__(self, directory, txt=None, hosts=None):
        need("dnsmasq")
        self.dir = Path(directory)
        self.port = free_udp_tcp_port()
        self.txt = dict(txt or {})
        self.hosts = dict(hosts or {})
        self.procs = Proc()

    def __enter__(self):
        args = [need("dnsmasq"), "--keep-in-foreground", "--no-resolv",
                "--no-hosts", f"--port={self.port}",
                "--listen-address=127.0.0.1", "--bind-interfaces",
                "--user=root", "--group=root",
                f"--pid-file={self.dir / 'dnsmasq.pid'}",
                f"--log-facility={self.dir / 'dnsmasq.log'}", "--log-queries",
                "--address=/#/"]
        args += [_txt_arg(n, t) for n, t in self.txt.items()]
        args += [f"--host-record={n},{a}" for n, a in self.hosts.items()]
        p = self.procs.spawn(args, self.dir / "dnsmasq.out")
        wait_for(lambda: p.poll() is not None or self.query_txt(
            next(iter(self.txt))) is not None if self.txt else True,
            10, "dnsmasq")
        assert p.poll() is None, (self.dir / "dnsmasq.out").read_text()
        return self

    def query_txt(self, name):
        import dns.resolver
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = self.port
        r.lifetime = 2
        try:
            ans = r.resolve(name, "TXT")
        except Exception:
            return None
        return b"".join(b"".join(rr.strings) for rr in ans)

    def __exit__(self, *exc):
        self.procs.stop()


def provider_dns(directory, key, dmarc="reject"):
    """The test DNS of the provider's domain example.jp: its DKIM key, an
    SPF record that does not include loopback (so mail from 127.0.0.1 that
    claims example.jp fails SPF), and DMARC p=reject (or `dmarc`)."""
    return LocalDNS(directory, txt={
        key.name: key.txt,
        DOMAIN: "v=spf1 ip4:192.0.2.25 -all",
        f"_dmarc.{DOMAIN}": f"v=DMARC1; p={dmarc}; adkim=r; aspf=r",
    })


def dkim_verify(message, dns_port):
    """Verify a message's DKIM-Signature with python3-dkim (dkimpy, the
    library behind dkimverify) against the test DNS. (ok, d= domain)."""
    import dkim
    import dns.resolver

    def dnsfunc(name, timeout=5):
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = dns_port
        r.lifetime = timeout
        if isinstance(name, bytes):
            name = name.decode()
        try:
            ans = r.resolve(name.rstrip("."), "TXT")
        except Exception:
            return b""
        return b"".join(b"".join(rr.strings) for rr in ans)

    message = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    d = dkim.DKIM(message)
    try:
        ok = d.verify(dnsfunc=dnsfunc)
    except dkim.ValidationError:
        ok = False          # a body hash that does not match, for one
    return ok, (d.domain.decode() if d.domain else None)


def dkim_sign(message, key):
    """Sign a message as example.jp with the test key (python3-dkim)."""
    import dkim
    message = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    sig = dkim.sign(message, key.selector.encode(), key.domain.encode(),
                    key.pem, include_headers=[b"from", b"to", b"subject",
                                              b"date", b"message-id"])
    return sig + message


# --- Rspamd ---------------------------------------------------------------

class MilterPeer:
    """What the filters below share: their processes (self.procs), their
    folder (self.dir), and the loopback port their milter listens on."""

    def __exit__(self, *exc):
        self.procs.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def milter(self):
        return f"inet:127.0.0.1:{self.port}"


class Rspamd(MilterPeer):
    """Rspamd 3 with Debian's /etc/rspamd as its CONFDIR and
    contrib/filters/rspamd/local.d as its LOCAL_CONFDIR's local.d: the
    proxy worker in milter mode on self.port, the normal worker and the
    controller on their own ports. The test overlay (override.d) points
    DNS at the test's dnsmasq, puts the DKIM key where dkim_signing looks
    and lets the checks run for loopback clients (every test client is
    127.0.0.1, which Rspamd otherwise counts as local and skips)."""

    def __init__(self, dns_port, key=None):
        need("rspamd")
        self.dir = private_dir("sekisho-test-rspamd-")
        self.port = free_port()          # milter (proxy worker)
        self.normal_port = free_port()
        self.controller_port = free_port()
        self.procs = Proc()
        local = self.dir / "local"
        for sub in ("db", "run", "log", "dkim"):
            (self.dir / sub).mkdir()
        shutil.copytree(CONTRIB / "rspamd" / "local.d", local / "local.d")
        if key is not None:
            shutil.copy(key.path, self.dir / "dkim" / key.path.name)
        signing = local / "local.d" / "dkim_signing.conf"
        signing.write_text(signing.read_text().replace(
            "/var/lib/rspamd/dkim/", f"{self.dir / 'dkim'}/"))
        # the test overlay: appended to (or beside) the contrib files
        ld = local / "local.d"

        def append(name, text):
            with open(ld / name, "a") as f:
                f.write("\n# --- test overlay (tests/e2e/filters.py)\n" + text)
        # the contrib resolver, 127.0.0.1:53, replaced (appending would
        # merge both into the list and half the queries time out)
        opts = ld / "options.inc"
        opts.write_text(opts.read_text().replace(
            '"127.0.0.1:53"', f'"127.0.0.1:{dns_port}"'))
        append("worker-proxy.inc",
               'upstream "local" {\n  default = yes;\n'
               f'  hosts = "127.0.0.1:{self.normal_port}";\n}}\n')
        for module in ("spf", "dkim", "dmarc"):
            append(f"{module}.conf", "check_local = true;\n")
        append("milter_headers.conf", "skip_local = false;\n")
        # modules that ask the network for lists: off in a test
        for module in ("rbl", "surbl", "fuzzy_check", "phishing", "asn",
                       "emails", "mx_check", "url_redirector",
                       "rspamd_update", "neural", "reputation", "greylist",
                       "ratelimit", "replies", "history_redis", "bimi"):
            append(f"{module}.conf", "enabled = false;\n")
        conf = Path("/etc/rspamd/rspamd.conf").read_text()
        conf = (conf.replace('"localhost:11333"',
                             f'"127.0.0.1:{self.normal_port}"')
                .replace('"localhost:11334"',
                         f'"127.0.0.1:{self.controller_port}"')
                .replace('"localhost:11332"', f'"127.0.0.1:{self.port}"')
                .replace('"localhost:11335"', f'"127.0.0.1:{free_port()}"'))
        self.conf = self.dir / "rspamd.conf"
        self.conf.write_text(conf)
        subprocess.run(["chown", "-R", "_rspamd:_rspamd", str(self.dir)],
                       check=True)

    @property
    def log(self):
        p = self.dir / "log" / "rspamd.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def __enter__(self):
        p = self.procs.spawn(
            [need("rspamd"), "-f", "-u", "_rspamd", "-g", "_rspamd",
             "-c", str(self.conf),
             f"--var=LOCAL_CONFDIR={self.dir / 'local'}",
             f"--var=DBDIR={self.dir / 'db'}",
             f"--var=RUNDIR={self.dir / 'run'}",
             f"--var=LOGDIR={self.dir / 'log'}"], self.dir / "rspamd.out")
        try:
            # it compiles its regular expressions at start: slow on a
            # loaded machine
            wait_for(lambda: p.poll() is not None or (
                port_open(self.port) and port_open(self.normal_port)),
                180, "rspamd")
            assert p.poll() is None, ((self.dir / "rspamd.out").read_text()
                                      + self.log)
        except BaseException:
            self.procs.stop()
            raise
        return self


# --- OpenDKIM -------------------------------------------------------------

class OpenDKIM(MilterPeer):
    """OpenDKIM signing example.jp with the test key (the contrib config,
    its paths and socket moved here), in the foreground on self.port."""

    def __init__(self, key):
        need("opendkim")
        self.dir = private_dir("sekisho-test-opendkim-")
        self.port = free_port()
        self.procs = Proc()
        keys = self.dir / "keys"
        keys.mkdir()
        shutil.copy(key.path, keys / key.path.name)
        tmpl = (CONTRIB / "opendkim" / "opendkim.conf").read_text()
        self.conf = self.dir / "opendkim.conf"
        self.conf.write_text(
            tmpl.replace("/etc/opendkim/", f"{self.dir}/")
            .replace("inet:8891@localhost", f"inet:{self.port}@127.0.0.1")
            .replace("/run/opendkim/opendkim.pid",
                     str(self.dir / "opendkim.pid"))
            # /tmp (the parent of the test directory) is world-writable
            + "Syslog no\nRequireSafeKeys false\n")
        for name in ("KeyTable", "SigningTable", "TrustedHosts"):
            text = (CONTRIB / "opendkim" / name).read_text()
            (self.dir / name).write_text(
                text.replace("/etc/opendkim/keys/", f"{keys}/"))
        subprocess.run(["chown", "-R", "opendkim:opendkim", str(self.dir)],
                       check=True)
        os.chmod(keys / key.path.name, 0o600)

    def __enter__(self):
        p = self.procs.spawn([need("opendkim"), "-f", "-x", str(self.conf)],
                             self.dir / "opendkim.out")
        try:
            wait_for(lambda: p.poll() is not None or port_open(self.port),
                     30, "opendkim")
            assert p.poll() is None, (self.dir / "opendkim.out").read_text()
        except BaseException:
            self.procs.stop()
            raise
        return self

    @property
    def log(self):
        return (self.dir / "opendkim.out").read_text(errors="replace")


# --- ClamAV ---------------------------------------------------------------

class ClamAV(MilterPeer):
    """clamd with a signature database made here (sigtool's MD5 signature
    of the EICAR file; no freshclam, no download) on a unix socket, and
    clamav-milter on self.port rejecting infected mail."""

    def __init__(self):
        need("clamd")
        need("clamav-milter")
        need("sigtool")
        self.dir = private_dir("sekisho-test-clamav-")
        self.port = free_port()
        self.procs = Proc()
        db = self.dir / "db"
        db.mkdir()
        eicar = self.dir / "eicar.com"
        eicar.write_text(EICAR)
        sig = subprocess.run([need("sigtool"), "--md5", str(eicar)],
                             check=True, capture_output=True,
                             text=True).stdout.strip()
        # "md5:size:name": name it as the real one is reported
        md5, size, _ = sig.split(":", 2)
        (db / "sekisho-test.hdb").write_text(
            f"{md5}:{size}:Eicar-Test-Signature\n")
        eicar.unlink()
        self.clamd_sock = self.dir / "clamd.sock"
        for name in ("clamd.conf", "clamav-milter.conf"):
            text = (CONTRIB / "clamav" / name).read_text()
            text = (text.replace("/var/lib/clamav", str(db))
                    .replace("/run/clamav/clamd.ctl", str(self.clamd_sock))
                    .replace("inet:7357@localhost",
                             f"inet:{self.port}@127.0.0.1")
                    .replace("/run/clamav/", f"{self.dir}/")
                    .replace("/var/log/clamav/", f"{self.dir}/"))
            (self.dir / name).write_text(text + "Foreground yes\n")
        subprocess.run(["chown", "-R", "clamav:clamav", str(self.dir)],
                       check=True)

    def __enter__(self):
        c = self.procs.spawn([need("clamd"), "-c",
                              str(self.dir / "clamd.conf")],
                             self.dir / "clamd.out")
        try:
            wait_for(lambda: c.poll() is not None or self.clamd_sock.exists(),
                     120, "clamd")
            assert c.poll() is None, (self.dir / "clamd.out").read_text()
            m = self.procs.spawn([need("clamav-milter"), "-c",
                                  str(self.dir / "clamav-milter.conf")],
                                 self.dir / "clamav-milter.out")
            wait_for(lambda: m.poll() is not None or port_open(self.port),
                     30, "clamav-milter")
            assert m.poll() is None, \
                (self.dir / "clamav-milter.out").read_text()
        except BaseException:
            self.procs.stop()
            raise
        return self

    @property
    def log(self):
        return "".join((self.dir / n).read_text(errors="replace")
                       for n in ("clamd.out", "clamav-milter.out",
                                 "clamd.log", "clamav-milter.log")
                       if (self.dir / n).exists())


# --- messages --------------------------------------------------------------

def message(sender, rcpt, subject, body, extra_headers=()):
    """A small RFC 5322 message (CRLF)."""
    hdrs = [f"From: {sender}", f"To: {rcpt}", f"Subject: {subject}",
            f"Message-ID: <{subject.replace(' ', '-')}.{time.time_ns()}"
            "@client.test>",
            "Date: Tue, 03 Mar 2026 09:00:00 +0900", *extra_headers]
    return ("\r\n".join(hdrs) + "\r\n\r\n" + body).encode()


def with_attachment(sender, rcpt, subject, name, payload):
    """A multipart message with `payload` (bytes) as a base64 attachment."""
    b64 = base64.encodebytes(payload).decode().replace("\n", "\r\n")
    body = ("--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            f"--b1\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{b64}--b1--\r\n")
    return message(sender, rcpt, subject, body, extra_headers=(
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b1"'))


def header_values(data, name):
    """Unfolded values of a header in a raw message (bytes)."""
    head = data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode(
        "utf-8", "replace")
    head = re.sub(r"\n[ \t]+", " ", head)
    out = []
    for line in head.split("\n"):
        k, sep, v = line.partition(":")
        if sep and k.strip().lower() == name.lower():
            out.append(v.strip())
    return out


# --- fixtures shared by the test files (imported by name) -----------------

@pytest.fixture
def key(tmp_path):
    """The provider's DKIM key for example.jp (selector sekisho)."""
    return DkimKey(tmp_path)


@pytest.fixture
def dns(tmp_path, key):
    """The test DNS (provider_dns) for the key."""
    with provider_dns(tmp_path, key) as d:
        yield d


@pytest.fixture
def outside():
    """The outside domain's MX (peer.test): a scripted SMTP peer."""
    from outbound_peer import ScriptedPeer
    p = ScriptedPeer()
    yield p
    p.close()


def smtp_result(port, msg, sender, rcpt, login=None):
    """(code, reply text) at the end of DATA (or at the first refusal),
    with AUTH when login = (user, password)."""
    import smtplib
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
        s.ehlo("client.example.net")
        if login is not None:
            s.login(*login)
        code, resp = s.mail(sender)
        if code != 250:
            return code, resp.decode()
        code, resp = s.rcpt(rcpt)
        if code != 250:
            return code, resp.decode()
        code, resp = s.data(msg)
        return code, resp.decode()
