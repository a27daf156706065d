"""Privacy-preserving trace (issue 17 item 8): received_client = token.

The Received header of a submission carries a token sealed with the
server's key instead of the subscriber's address; a recipient learns
nothing from it, `sekisho trace` and the admin trace page open it, a key
rotation keeps old tokens readable for trace_token_key_keep, and a forged
or altered token is refused cleanly.
"""
import email
import email.policy
import os
import re
import stat

import pytest

from conftest import ALICE, BOB, HOSTNAME
from geodata import JP4, US4
from test_policy import send_from
from test_portal import ADMIN_PW, admin_login, portal_daemon  # noqa: F401

TOKEN_RE = re.compile(rb"\(token (t1\.[A-Za-z0-9_-]+)\)")


@pytest.fixture
def token_daemon(portal_daemon, tmp_path):  # noqa: F811
    key = tmp_path / "trace.key"
    d = portal_daemon(extra=["received_client = token",
                             f"trace_token_key = {key}",
                             "trace_token_key_keep = 2d"])
    d.key = key
    return d


def deliver(d, source, client_tls, n):
    """Submit from source to bob; returns the delivered bytes."""
    qid = send_from(d, source, client_tls)
    return d.wait_message(BOB, qid).read_bytes(), qid


def our_received(data):
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    return [h for h in msg.get_all("Received", []) if "(sekisho)" in h]


def trace(d, text, check=False):
    return d.cli("trace", "-", input=text, check=check)


def test_token_hides_address_trace_opens_it(token_daemon, client_tls):
    d = token_daemon
    data, qid = deliver(d, JP4, client_tls, 1)
    # the key was made at start, owner-only
    assert stat.S_IMODE(os.stat(d.key).st_mode) == 0o600
    recv = our_received(data)
    assert len(recv) == 1
    header = recv[0]
    # the recipient sees a token, not the subscriber's address or EHLO
    assert JP4 not in data.decode(errors="replace")
    assert "from submission (token t1." in header
    assert qid in header and f"by {HOSTNAME} (sekisho)" in header
    assert ALICE not in header

    # the abuse desk opens it: account, address and time
    r = trace(d, data.decode())
    assert r.returncode == 0, r.stderr
    assert "opened (key " in r.stdout
    line = [x for x in r.stdout.splitlines() if x.endswith("\t" + JP4)]
    assert line and ALICE in line[0]
    # the queue id still finds the submission row as before
    assert f"# queue id {qid}: found" in r.stdout

    # the admin trace page opens it too, even from the token alone
    only_token = "Received: from submission (token %s)\n\tby %s (sekisho) " \
        "with ESMTPSA;\n\tMon, 1 Jan 2024 00:00:00 +0000\n" % (
            TOKEN_RE.search(data).group(1).decode(), HOSTNAME)
    d.cli("admin", "add", "desk", input=ADMIN_PW + "\n")
    w, status, _ = admin_login(d)
    assert status == 303
    _, _, page = w.request("GET", "/admin/trace")
    status, _, page = w.request("POST", "/admin/trace", {
        "csrf": w.csrf(page), "report": only_token})
    assert status == 200
    assert ALICE in page and JP4 in page and "token" in page


def test_rotation_keeps_old_tokens_for_keep(token_daemon, client_tls,
                                            monkeypatch):
    d = token_daemon
    old, _ = deliver(d, JP4, client_tls, 1)
    out = d.cli("trace-key", "rotate").stdout
    assert "trace key" in out and "made" in out
    keys = d.cli("trace-key", "list").stdout.splitlines()
    assert len(keys) == 2 and "current" in keys[1] and \
        "opens old tokens" in keys[0]
    d.cli("overseas", "allow", ALICE)
    new, _ = deliver(d, US4, client_tls, 2)
    old_tok = TOKEN_RE.search(old).group(1)
    new_tok = TOKEN_RE.search(new).group(1)
    assert old_tok[:9] != new_tok[:9]          # another key id

    # both open now
    r = trace(d, old.decode())
    assert r.returncode == 0 and JP4 in r.stdout
    r = trace(d, new.decode())
    assert r.returncode == 0 and US4 in r.stdout

    # three days on (keep = 2d): the retired key no longer opens
    monkeypatch.setenv("SEKISHO_CLOCK_OFFSET", str(3 * 86400))
    r = trace(d, old.decode().split("\n\n")[0].replace(
        "with ESMTPSA id", "with ESMTPSA xid"))
    assert "not opened" in r.stdout and "retired" in r.stdout
    assert r.returncode == 1
    r = trace(d, new.decode())
    assert r.returncode == 0 and US4 in r.stdout
    # a rotation then drops the key for good
    d.cli("trace-key", "rotate")
    keys = d.cli("trace-key", "list").stdout.splitlines()
    assert len(keys) == 2


def test_forged_and_altered_tokens_refused(token_daemon, client_tls):
    d = token_daemon
    data, _ = deliver(d, JP4, client_tls, 1)
    tok = TOKEN_RE.search(data).group(1).decode()

    def only(token):
        return ("Received: from submission (token %s)\n\tby %s (sekisho) "
                "with ESMTPSA;\n\tMon, 1 Jan 2024 00:00:00 +0000\n" %
                (token, HOSTNAME))
    # one character changed in the ciphertext: does not open
    i = len(tok) - 30
    altered = tok[:i] + ("A" if tok[i] != "A" else "B") + tok[i + 1:]
    r = trace(d, only(altered))
    assert r.returncode == 1 and "forged or altered" in r.stdout
    assert ALICE not in r.stdout and JP4 not in r.stdout
    # the key id changed: unknown key
    forged = "t1." + ("AAAAAA" if tok[3:9] != "AAAAAA" else "BBBBBB") + \
        tok[9:]
    r = trace(d, only(forged))
    assert r.returncode == 1 and "unknown" in r.stdout
    # truncated, made up, overlong: damaged, nothing opened, no crash
    for bad in (tok[:20], "t1.AAAA", "t1." + "A" * 590, tok + "AB"):
        r = trace(d, only(bad))
        assert r.returncode == 1, bad
        assert "not opened" in r.stdout and ALICE not in r.stdout
    # a token from another server's key (another daemon's file): refused
    other = d.key.parent / "other.key"
    conf = d.conf.read_text().replace(str(d.key), str(other))
    other_conf = d.dir / "other.conf"
    other_conf.write_text(conf)
    from conftest import SEKISHO, sanitizer_env
    import subprocess
    subprocess.run([str(SEKISHO), "-c", str(other_conf), "trace-key",
                    "rotate"], check=True, capture_output=True,
                   env=sanitizer_env())
    r = subprocess.run([str(SEKISHO), "-c", str(other_conf), "trace", "-"],
                       input=only(tok), capture_output=True, text=True,
                       env=sanitizer_env())
    assert r.returncode == 1 and "not opened" in r.stdout
    assert "AddressSanitizer" not in r.stderr
    # the daemon still serves
    send_from(d, JP4, client_tls)


def test_address_mode_unchanged(portal_daemon, client_tls):  # noqa: F811
    d = portal_daemon()
    send_from(d, JP4, client_tls)
    data = d.wait_files(BOB, 1)[0].read_bytes()
    assert f"[{JP4}]".encode() in data
    assert b"(token " not in data


def test_broken_key_file_shows_no_client(token_daemon, client_tls):
    d = token_daemon
    deliver(d, JP4, client_tls, 1)
    # the key file replaced by garbage under the running daemon
    d.key.write_text("not a key\n")
    mark = d.log_mark()
    data, _ = deliver(d, JP4, client_tls, 2)
    header = our_received(data)[0]
    assert "from submission (token -)" in header
    assert JP4 not in data.decode(errors="replace")
    assert "policy: trace token for alice@example.jp" in d.log_since(mark)
