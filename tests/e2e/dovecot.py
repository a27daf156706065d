"""A real Dovecot (Debian 12's 2.3) beside a test's sekisho, configured
from contrib/dovecot/ as docs/imap.md says: passdb/userdb from sekisho's
store (the dovecot_users view), mail from sekisho's Maildirs, sekisho as
the auth policy server. Everything under the test's directory, on
127.0.0.1 and free ports; never the system instance.

    dc = Dovecot(tmp_path / "dovecot", daemon, policy_port=..., secret=...)
    dc.start()
    imap = dc.imap_starttls(ctx)        # imaplib.IMAP4 after STARTTLS
    imap = dc.imaps(ctx)                # imaplib.IMAP4_SSL on imaps

A missing Dovecot fails the test (scripts/setup installs it).
"""
import imaplib
import os
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import DAEMON_USER, REPO, free_port

CONTRIB = REPO / "contrib" / "dovecot"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

# IMAP ID lets a client in login_trusted_networks name the address it
# forwards (x-originating-ip): the test's stand-in for a proxy.
imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))


def render(template, values):
    text = Path(template).read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    return text


class Dovecot:
    def __init__(self, directory, daemon, policy_port=None,
                 secret="test-policy-secret", store=None,
                 reject_on_fail="no", trusted_networks="127.0.0.1/32"):
        if not os.path.exists(DOVECOT):
            pytest.fail("Dovecot is not installed: run scripts/setup")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.daemon = daemon
        self.base = self.dir / "run"
        self.state = self.dir / "state"
        self.state.mkdir(exist_ok=True)
        self.log_path = self.dir / "dovecot.log"
        self.conf = self.dir / "dovecot.conf"
        self.sql_conf = self.dir / "dovecot-sql.conf.ext"
        self.ports = {"imap": free_port(), "imaps": free_port(),
                      "lmtp": free_port()}
        self.proc = None
        store = store or next(l.split("=", 1)[1].strip()
                              for l in daemon.head if l.startswith("store"))
        if store.startswith("sqlite:"):
            sql = render(CONTRIB / "dovecot-sql-sqlite.conf.ext",
                         {"STORE_PATH": store[len("sqlite:"):]})
        else:
            sql = render(CONTRIB / "dovecot-sql-pgsql.conf.ext",
                         {"STORE_CONNINFO": store[len("postgresql:"):]})
        self.sql_conf.write_text(sql)
        user = DAEMON_USER if os.geteuid() == 0 else \
            pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
        cert, key = (next(l.split("=", 1)[1].strip() for l in daemon.head
                          if l.startswith(k)) for k in ("tls_cert",
                                                          "tls_key"))
        values = {
            "LISTEN": "127.0.0.1",
            "BASE_DIR": self.base, "STATE_DIR": self.state,
            "INSTANCE": f"sekisho-test-{self.ports['imap']}",
            "LOG": self.log_path, "SQL_CONF": self.sql_conf,
            "MAIL_USER": user, "MAIL_GROUP": group,
            "MAILDIR_ROOT": daemon.maildir_root,
            "TLS_CERT": cert, "TLS_KEY": key,
            "IMAP_PORT": self.ports["imap"],
            "IMAPS_PORT": self.ports["imaps"],
            "LMTP_PORT": self.ports["lmtp"],
            "TRUSTED_NETWORKS": trusted_networks,
            "POLICY_ADDR": "127.0.0.1",
            "POLICY_PORT": policy_port or free_port(),
            "POLICY_SECRET": secret,
            "POLICY_NONCE": "test-nonce-0123456789abcdef",
            "POLICY_REJECT_ON_FAIL": reject_on_fail,
        }
        text = render(CONTRIB / "dovecot.conf", values)
        if policy_port is None:
            # Dovecot alone (the benchmark's baseline): no policy server
            text = "\n".join(l for l in text.splitlines()
                             if not l.startswith("auth_policy_"))
        self.conf.write_text(text + "\n")

    def start(self, timeout=20):
        logf = open(self.dir / "dovecot.stderr", "ab")
        try:
            self.proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.conf)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                start_new_session=True)
        finally:
            logf.close()
        deadline = time.monotonic() + timeout
        for name in ("imap", "imaps", "lmtp"):
            while True:
                if self.proc.poll() is not None:
                    pytest.fail(f"dovecot exited {self.proc.returncode}:\n"
                                f"{self.stderr()}\n{self.log()}")
                try:
                    with socket.create_connection(
                            ("127.0.0.1", self.ports[name]), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"dovecot {name} never accepted:\n"
                                    f"{self.log()}")
                    time.sleep(0.05)
        return self

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr(self):
        try:
            return (self.dir / "dovecot.stderr").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- clients -----------------------------------------------------
    def imap_starttls(self, ctx, forwarded=None):
        m = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=20)
        if forwarded:
            m._simple_command(
                "ID", f'("x-originating-ip" "{forwarded}")')
        m.starttls(ssl_context=ctx)
        return m

    def imaps(self, ctx, forwarded=None):
        m = imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"],
                              ssl_context=ctx, timeout=20)
        if forwarded:
            m._simple_command(
                "ID", f'("x-originating-ip" "{forwarded}")')
        return m


@pytest.fixture
def make_dovecot(tmp_path):
    made = []

    def factory(daemon, name=None, start=True, **kwargs):
        d = Dovecot(tmp_path / (name or f"dovecot{len(made)}"), daemon,
                    **kwargs)
        made.append(d)
        if start:
            d.start()
        return d

    yield factory
    for d in made:
        d.stop()
