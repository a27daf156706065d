"""Outbound delivery to real servers on loopback: a second sekisho, Postfix
(its own instance in a temp dir) and Dovecot's LMTP (local_delivery)."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import free_port, split_received, wait_for
from mta_peers import PrivatePostfix
from test_outbound import submit

CAROL = "carol@peer.test"


def body_of(data):
    return data.split(b"\n\n", 1)[1] if b"\n\n" in data else data


def test_to_second_sekisho(make_daemon):
    peer = make_daemon(name="peer", accounts=False)
    peer.cli("domain", "add", "peer.test")
    peer.add_user(CAROL, "carol-Secret-3")
    d = make_daemon(extra=[
        "submission_auth_without_tls = loopback",
        f"transport = peer.test [127.0.0.1]:{peer.ports['mx']}",
    ])
    qid = submit(d, [CAROL], subject="to-sekisho", body="line one\r\n"
                 "..dot line\r\n")
    d.wait_log(rf"id={qid} deliver rcpt={CAROL} relay=\S+ status=sent")
    (f,) = peer.wait_files(CAROL, 1)
    data = f.read_bytes()
    theirs, rest = split_received(data)
    assert b"by mail.example.jp (sekisho)" in theirs
    assert b"from mail.example.jp ([127.0.0.1])" in theirs
    ours, rest2 = split_received(rest)
    assert f"id {qid}".encode() in ours
    assert b"with ESMTPA" in ours or b"with ESMTPSA" in ours
    assert rest2.endswith(b"\n\nline one\n..dot line\n")
    assert b"Subject: to-sekisho" in rest2


@pytest.fixture
def postfix(tmp_path):
    """A Postfix instance of its own (mta_peers.py) delivering mail for
    peer.test into a Maildir."""
    if shutil.which("postfix") is None or \
            not os.path.exists("/usr/lib/postfix/sbin/master"):
        pytest.skip("postfix not installed")
    with PrivatePostfix(tmp_path, mailbox=("peer.test", "carol")) as pf:
        yield pf.port, pf.maildir, pf.dir


def test_to_postfix(make_daemon, postfix):
    port, newdir, base = postfix
    d = make_daemon(extra=[
        "submission_auth_without_tls = loopback",
        f"transport = peer.test [127.0.0.1]:{port}",
    ])
    qid = submit(d, [CAROL], subject="to-postfix", body="hello postfix\r\n")
    d.wait_log(rf"id={qid} deliver rcpt={CAROL} relay=\S+ status=sent "
               r"delay=\d+s dsn=2\.0\.0", timeout=30)

    def files():
        return sorted(newdir.iterdir()) if newdir.is_dir() else []
    wait_for(lambda: files(), 30, "the message in Postfix's Maildir\n" +
             ((base / "postfix.log").read_text()
              if (base / "postfix.log").exists() else ""))
    data = files()[0].read_bytes()
    assert f"id {qid}".encode() in data
    assert b"by mail.example.jp (sekisho) with ESMTPA" in data or \
        b"by mail.example.jp (sekisho) with ESMTPSA" in data
    assert b"by mx.peer.test (Postfix)" in data
    assert data.rstrip().endswith(b"hello postfix")


DOVECOT = "/usr/sbin/dovecot"


@pytest.fixture
def dovecot(tmp_path):
    """Dovecot with only LMTP on 127.0.0.1:PORT, static users, Maildir
    under the temp dir."""
    if not os.path.exists(DOVECOT) or \
            not os.path.exists("/usr/lib/dovecot/lmtp"):
        pytest.skip("dovecot-lmtpd not installed")
    base = tmp_path / "dovecot"
    (base / "run").mkdir(parents=True)
    (base / "mail").mkdir()
    # Dovecot will not deliver as root: mail belongs to nobody here.
    pw = pwd.getpwnam("nobody")
    os.chown(base / "mail", pw.pw_uid, pw.pw_gid)
    p = base
    while p != Path("/"):
        os.chmod(p, os.stat(p).st_mode | 0o011)
        p = p.parent
    port = free_port()
    conf = base / "dovecot.conf"
    conf.write_text(f"""\
protocols = lmtp
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
ssl = no
listen = 127.0.0.1
default_internal_user = root
default_login_user = root
default_internal_group = root
mail_location = maildir:{base}/mail/%d/%n/Maildir
mail_uid = {pw.pw_uid}
mail_gid = {pw.pw_gid}
first_valid_uid = 1
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={pw.pw_uid} gid={pw.pw_gid} home={base}/mail/%d/%n
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  user = root
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
lmtp_save_to_detail_mailbox = no
""")
    (base / "state").mkdir()
    # it daemonizes: its children must not hold our pipes open
    out = base / "start.out"
    with open(out, "w") as f:
        r = subprocess.run([DOVECOT, "-c", str(conf)], stdout=f, stderr=f,
                           stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0, out.read_text()
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                log = (base / "dovecot.log")
                pytest.fail("dovecot never listened: " +
                            (log.read_text() if log.exists() else ""))
            time.sleep(0.1)
    yield port, base
    pidfile = base / "run" / "master.pid"
    pid = int(pidfile.read_text()) if pidfile.exists() else None
    subprocess.run([DOVECOT, "-c", str(conf), "stop"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, timeout=30)
    # make sure our own instance is gone, by its pid only
    if pid is not None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)


def test_local_delivery_over_lmtp_to_dovecot(make_daemon, dovecot):
    port, base = dovecot
    d = make_daemon(extra=[
        "submission_auth_without_tls = loopback",
        f"local_delivery = lmtp:[127.0.0.1]:{port}",
    ])
    qid = submit(d, ["bob@example.jp"], subject="to-dovecot",
                 body="hello dovecot\r\n")
    d.wait_log(rf"id={qid} deliver rcpt=bob@example\.jp relay=\S+ "
               r"status=sent", timeout=30)
    newdir = base / "mail" / "example.jp" / "bob" / "Maildir" / "new"
    wait_for(lambda: newdir.is_dir() and list(newdir.iterdir()), 30,
             "the message in Dovecot's Maildir")
    data = list(newdir.iterdir())[0].read_bytes()
    assert f"id {qid}".encode() in data
    assert b"hello dovecot" in data
    # not in sekisho's own Maildir
    assert not d.files("bob@example.jp")
