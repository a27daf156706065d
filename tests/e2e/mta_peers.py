"""Private instances of Debian's Postfix and Dovecot for tests, each in a
temporary directory on loopback ports, stopped by the test (as root: both
start as root and drop privileges themselves).

    with DovecotAuth(tmp, {"alice@example.jp": "pw"}) as auth, \\
         PrivatePostfix(tmp, sasl_port=auth.port, extra=[...]) as pf:
        smtplib.SMTP("127.0.0.1", pf.port) ...
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import free_port, wait_for

MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
relay     unix  - - n -    - smtp
local     unix  - n n -    - local
virtual   unix  - n n -    - virtual
lmtp      unix  - - n -    - lmtp
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def _private_dir(prefix):
    """A fresh directory that the daemons' unprivileged users can reach
    (pytest's own temporary directories are 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)
    return d


def _port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class PrivatePostfix:
    """Postfix with its own config, queue and log; smtpd on one loopback
    port. Mail it accepts is discarded, unless `mailbox` = (DOMAIN, USER):
    then mail for DOMAIN is delivered into self.maildir (virtual(8))."""

    def __init__(self, directory, extra=(), sasl_port=None, mailbox=None):
        del directory       # unreachable for postfix: see _private_dir
        self.dir = _private_dir("sekisho-test-postfix-")
        self.maildir = None
        self.etc = self.dir / "etc"
        self.port = free_port()
        self.log = self.dir / "postfix.log"
        for sub in ("etc", "queue", "data"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dir / "data", "postfix")
        main = [
            "compatibility_level = 3.6",
            f"queue_directory = {self.dir / 'queue'}",
            f"data_directory = {self.dir / 'data'}",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "myhostname = postfix.test.example",
            "mydestination =",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            # a log file outside /var needs its prefix allowed
            f"maillog_file_prefixes = /var, /dev/stdout, {self.dir}",
            f"maillog_file = {self.log}",
            "smtputf8_enable = no",
            "default_transport = discard",
            "local_transport = discard",
            "relay_transport = discard",
        ]
        if mailbox is not None:
            domain, user = mailbox
            pw = pwd.getpwnam("postfix")
            mail = self.dir / "mail"
            mail.mkdir()
            os.chown(mail, pw.pw_uid, pw.pw_gid)
            self.maildir = mail / domain / user / "Maildir" / "new"
            main = [m for m in main if not m.startswith(
                ("mydestination", "local_transport"))]
            main += [f"myhostname = mx.{domain}", f"mydomain = {domain}",
                     f"mydestination = {domain}", "mynetworks = 127.0.0.0/8",
                     "alias_maps =", "alias_database =",
                     "local_recipient_maps =", "local_transport = virtual",
                     f"virtual_mailbox_base = {mail}",
                     f"virtual_mailbox_maps = static:{domain}/{user}/Maildir/",
                     f"virtual_uid_maps = static:{pw.pw_uid}",
                     f"virtual_gid_maps = static:{pw.pw_gid}",
                     "virtual_minimum_uid = 1",
                     "smtpd_banner = $myhostname ESMTP"]
        if sasl_port is not None:
            main += ["smtpd_sasl_auth_enable = yes",
                     "smtpd_sasl_type = dovecot",
                     f"smtpd_sasl_path = inet:127.0.0.1:{sasl_port}"]
        main += list(extra)
        (self.etc / "main.cf").write_text("\n".join(main) + "\n")
        (self.etc / "master.cf").write_text(
            MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))

    def postfix(self, *args):
        return subprocess.run(["postfix", "-c", str(self.etc), *args],
                              capture_output=True, text=True, timeout=60)

    def __enter__(self):
        r = self.postfix("start")
        if r.returncode != 0:
            raise RuntimeError(f"postfix start: {r.stderr}\n"
                               f"{self.log.read_text() if self.log.exists() else ''}")
        wait_for(lambda: _port_open(self.port), 30, "postfix smtpd")
        return self

    def __exit__(self, *exc):
        self.postfix("stop")
        # master.pid outlives the stop; "status" says when it is gone
        deadline = time.monotonic() + 20
        while self.postfix("status").returncode == 0 and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)


class DovecotAuth:
    """Dovecot's auth service alone, for Postfix's smtpd_sasl_type =
    dovecot, with a passwd-file of the given users."""

    def __init__(self, directory, users):
        del directory
        self.dir = _private_dir("sekisho-test-dovecot-")
        (self.dir / "run").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        passwd = self.dir / "passwd"
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}\n"
                                  for u, p in users.items()))
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(f"""\
protocols =
base_dir = {self.dir / 'run'}
state_dir = {self.dir / 'run'}
log_path = {self.dir / 'dovecot.log'}
instance_name = sekisho-test-{self.port}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={self.dir / 'home'}
}}
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
service anvil {{
  chroot =
}}
""")
        self.proc = None

    def __enter__(self):
        # its own process group, so the whole family can be stopped
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_for(lambda: _port_open(self.port), 30, "dovecot auth")
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            # nothing of this test instance is worth a graceful stop
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)
