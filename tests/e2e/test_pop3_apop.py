"""APOP (RFC 1939 7) end to end: `sekisho user apop enable` seals an APOP
password; poplib's apop(), fetchmail (protocol APOP) and curl over pop3s
(AUTH=+APOP) log in with it. Also fetchmail with `keep` and UIDL: a second
run fetches only the mail that is new since the first."""
import os
import poplib
import sqlite3
import subprocess

import pytest

from conftest import ALICE, ALICE_PW, HOSTNAME
from test_pop3 import crlf, deliver, pop3d  # noqa: F401 (fixture)

APOP_PW = "apop-Secret-9"


def enable_apop(daemon, address=ALICE, secret=APOP_PW):
    daemon.cli("user", "apop", "enable", address, input=secret + "\n")


def test_apop_enable_stores_sealed_secret(pop3d, tmp_path):
    enable_apop(pop3d)
    key = tmp_path / "apop.key"
    assert key.stat().st_mode & 0o777 == 0o600
    db = sqlite3.connect(pop3d.dir / "sekisho.db")
    (sealed,) = db.execute("SELECT sealed FROM apop_secrets").fetchone()
    (pwhash,) = db.execute("SELECT password_hash FROM accounts WHERE "
                           "address = ?", (ALICE,)).fetchone()
    db.close()
    assert sealed.startswith("v1:") and APOP_PW not in sealed
    assert APOP_PW.encode().hex() not in sealed
    assert pwhash.startswith("$y$")         # the login hash is untouched
    pop3d.cli("user", "apop", "disable", ALICE)
    db = sqlite3.connect(pop3d.dir / "sekisho.db")
    assert db.execute("SELECT count(*) FROM apop_secrets").fetchone() == (0,)
    db.close()
    r = pop3d.cli("user", "apop", "disable", ALICE, check=False)
    assert r.returncode == 1 and "not enabled" in r.stderr


def test_poplib_apop(pop3d):
    files = deliver(pop3d, 1)
    # not enabled yet: refused
    p = poplib.POP3("127.0.0.1", pop3d.ports["pop3"], timeout=15)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        p.apop(ALICE, APOP_PW)
    p.quit()
    enable_apop(pop3d)
    # APOP needs no TLS (it sends a digest, not the password)
    p = poplib.POP3("127.0.0.1", pop3d.ports["pop3"], timeout=15)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        p.apop(ALICE, ALICE_PW)             # the login password is not it
    p.quit()
    p = poplib.POP3("127.0.0.1", pop3d.ports["pop3"], timeout=15)
    assert p.apop(ALICE, APOP_PW).startswith(b"+OK")
    resp, lines, _ = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == crlf(files[0].read_bytes())
    p.quit()
    pop3d.wait_log(r"pop3 login client=127\.0\.0\.1 user=alice@example\.jp "
                   r"mechanism=APOP result=ok")
    pop3d.wait_log(r"mechanism=APOP result=fail")


def test_curl_pop3s_apop(pop3d, tls_cert):
    files = deliver(pop3d, 1)
    enable_apop(pop3d)
    r = subprocess.run(
        ["curl", "-sS", "--cacert", str(tls_cert[0]),
         "--login-options", "AUTH=+APOP", "-u", f"{ALICE}:{APOP_PW}",
         f"pop3s://127.0.0.1:{pop3d.ports['pop3s']}/1"],
        capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == crlf(files[0].read_bytes())
    pop3d.wait_log(r"mechanism=APOP result=ok")


def fetchmail(daemon, tmp_path, proto, port, password, ssl_line,
              keep=True):
    out = tmp_path / "fetched"
    out.mkdir(exist_ok=True)
    mda = tmp_path / "mda.sh"
    mda.write_text(f"#!/bin/sh\nf=$(mktemp {out}/msg.XXXXXX)\n"
                   "cat > \"$f\"\n")
    mda.chmod(0o755)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\n"
        f"poll 127.0.0.1 service {port} proto {proto} uidl\n"
        f"  user \"{ALICE}\" there with password \"{password}\" is x here\n"
        f"  options {'keep' if keep else 'nokeep'}\n"
        f"  {ssl_line} sslcertck sslcertfile \"{daemon.tls_ca}\" "
        f"sslcommonname \"{HOSTNAME}\"\n"
        f"  mda \"{mda}\"\n")
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "--idfile",
                        str(tmp_path / "fetchids"), "--nosyslog", "-v"],
                       capture_output=True, text=True, env=env, timeout=120)
    # 0: mail fetched, 1: no mail
    assert r.returncode in (0, 1), r.stdout + r.stderr
    return sorted(p.read_bytes() for p in out.iterdir()), r


@pytest.fixture
def fetchmail_daemon(pop3d, tls_cert):
    pop3d.tls_ca = tls_cert[0]
    return pop3d


def test_fetchmail_apop(fetchmail_daemon, tmp_path):
    d = fetchmail_daemon
    deliver(d, 2)
    enable_apop(d)
    got, r = fetchmail(d, tmp_path, "APOP", d.ports["pop3s"], APOP_PW,
                       "ssl sslproto 'tls1.2+'")
    assert len(got) == 2, r.stdout + r.stderr
    d.wait_log(r"mechanism=APOP result=ok")
    assert len(d.files(ALICE)) == 2            # keep


def test_fetchmail_keep_uidl_fetches_only_new(fetchmail_daemon, tmp_path):
    d = fetchmail_daemon
    files = deliver(d, 2)
    got, r = fetchmail(d, tmp_path, "POP3", d.ports["pop3"], ALICE_PW,
                       "sslproto 'tls1.2+'")
    assert len(got) == 2, r.stdout + r.stderr
    assert "STLS" in r.stdout + r.stderr
    # fetchmail's copies are the messages (it adds its own Received)
    for f in files:
        body = f.read_bytes().split(b"\n\n", 1)[1]
        assert any(body in g for g in got)
    assert d.files(ALICE) == files             # keep: nothing deleted
    # one more message: the second run fetches only it
    files = deliver(d, 1)
    got2, r = fetchmail(d, tmp_path, "POP3", d.ports["pop3"], ALICE_PW,
                        "sslproto 'tls1.2+'")
    assert len(got2) == 3, r.stdout + r.stderr
    assert b"pop test 0" in b"".join(sorted(set(got2) - set(got)))
    assert len(set(got2) - set(got)) == 1
    # a third run: nothing new
    got3, r = fetchmail(d, tmp_path, "POP3", d.ports["pop3"], ALICE_PW,
                        "sslproto 'tls1.2+'")
    assert r.returncode == 1 and len(got3) == 3, r.stdout + r.stderr
