"""check-config: good files pass (the demo's too), each broken line is
reported as FILE:LINE: what is wrong, with exit 1; the daemon refuses to
start on a broken file; docs/config.md is exactly `sekisho config
markdown`, so the reference cannot drift from the code."""
import os
import re
import subprocess

import pytest

from conftest import REPO, SEKISHO, sanitizer_env


def sekisho(*args, conf=None):
    cmd = [str(SEKISHO)] + (["-c", str(conf)] if conf else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env=sanitizer_env())
    assert "AddressSanitizer" not in r.stderr, r.stderr
    assert "runtime error:" not in r.stderr, r.stderr
    return r


def good_lines(tmp_path, tls_cert):
    return [
        "# a good configuration",
        "hostname = mail.example.jp",
        "listen = mx 127.0.0.1:2525",
        "listen = submission [::1]:10587",
        "listen = submissions *:10465 proxy",
        f"store = sqlite:{tmp_path}/db",
        f"spool_dir = {tmp_path}/spool",
        f"maildir_root = {tmp_path}/mail",
        f"tls_cert = {tls_cert[0]}",
        f"tls_key = {tls_cert[1]}",
        "tls_min_protocol = TLSv1.3",
        "workers = 2",
        "proxy_trusted = 192.0.2.0/24",
        "proxy_trusted = 2001:db8::/32",
        "message_size_limit = 10M",
        "smtp_timeout = 5m",
        "smtp_data_timeout = 1h",
        "received_show_account = yes",
        "submission_auth_without_tls = loopback",
        "   # indented comment",
        "",
        "log_level = debug",
    ]


def test_good_config_passes(tmp_path, tls_cert):
    conf = tmp_path / "good.conf"
    conf.write_text("\n".join(good_lines(tmp_path, tls_cert)) + "\n")
    r = sekisho("check-config", str(conf))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{conf}: ok\n"
    assert r.stderr == ""
    # -c FILE works the same
    r = sekisho("check-config", conf=conf)
    assert r.returncode == 0 and r.stdout == f"{conf}: ok\n", r.stderr
    # and config print shows the values read
    r = sekisho("config", "print", conf=conf)
    assert r.returncode == 0, r.stderr
    assert re.search(r"(?m)^smtp_timeout = (300s|5m)$", r.stdout), r.stdout
    assert re.search(r"(?m)^listen = submissions \*:10465 proxy$", r.stdout)


def test_defaults_are_a_valid_config(tmp_path):
    r = sekisho("config", "defaults")
    assert r.returncode == 0
    conf = tmp_path / "defaults.conf"
    conf.write_text(r.stdout)
    r = sekisho("check-config", str(conf))
    assert r.returncode == 0, r.stderr


BROKEN = [
    # (line, what the error must say)
    ("smtp_timout = 5s", r"unknown key 'smtp_timout'.*smtp_timeout"),
    ("colour = blue", r"unknown key 'colour'"),
    ("message_size_limit = lots", r"message_size_limit: bad size 'lots'"),
    ("message_size_limit = 5T", r"message_size_limit: bad size"),
    ("smtp_timeout = soon", r"smtp_timeout: bad duration"),
    ("workers = 65", r"workers: 65 is above the maximum 64"),
    ("workers = -1", r"workers"),
    ("smtp_max_recipients = many", r"smtp_max_recipients"),
    ("received_show_account = maybe",
     r"received_show_account: bad boolean 'maybe'"),
    ("tls_min_protocol = SSLv3", r"tls_min_protocol: bad value 'SSLv3'"),
    ("log_level = loud", r"log_level: bad value 'loud'"),
    ("submission_auth_without_tls = always",
     r"submission_auth_without_tls: bad value"),
    ("proxy_trusted = 10.0.0.0/33", r"proxy_trusted: bad network"),
    ("proxy_trusted = example.com", r"proxy_trusted: bad network"),
    ("listen = mx 127.0.0.1:99999", r"listen: bad port '99999'"),
    ("listen = bogus 127.0.0.1:25", r"listen: bad role 'bogus'"),
    ("listen = mx 127.0.0.1", r"listen: "),
    ("listen = mx 127.0.0.1:2526 proxi", r"listen: "),
    ("listen = mx 300.0.0.1:2526", r"listen: "),
    ("listen = mx 127.0.0.1:2525", r"listen: 127\.0\.0\.1:2525 is already "
                                   r"used at line 3"),
    ("hostname = other.example.jp", r"'hostname' already set at line 2"),
    ("just a line", r"missing '=' in 'just a line'"),
    ("= value", r"missing key before '='"),
]


def minimal_lines(tmp_path, tls_cert):
    return [
        "# minimal",
        "hostname = mail.example.jp",
        "listen = mx 127.0.0.1:2525",
        f"store = sqlite:{tmp_path}/db",
        f"tls_cert = {tls_cert[0]}",
        f"tls_key = {tls_cert[1]}",
    ]


@pytest.mark.parametrize("line,error", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_line_named_with_file_and_line(tmp_path, tls_cert, line,
                                              error):
    lines = minimal_lines(tmp_path, tls_cert)
    lines.insert(5, line)               # line 6 of the file
    conf = tmp_path / "broken.conf"
    conf.write_text("\n".join(lines) + "\n")
    r = sekisho("check-config", str(conf))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout == ""
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 1, r.stderr
    assert errors[0].startswith(f"{conf}:6: "), r.stderr
    assert re.search(error, errors[0]), r.stderr


def test_every_error_reported(tmp_path, tls_cert):
    lines = good_lines(tmp_path, tls_cert)
    lines += ["colour = blue",                         # 23
              "workers = 1000",                        # 24
              "listen = submission 127.0.0.1:2525",    # 25 (dup of line 3)
              "log_level = debug"]                     # 26 (set twice)
    conf = tmp_path / "many.conf"
    conf.write_text("\n".join(lines) + "\n")
    r = sekisho("check-config", str(conf))
    assert r.returncode == 1
    found = sorted(int(m) for m in re.findall(
        rf"(?m)^{re.escape(str(conf))}:(\d+): ", r.stderr))
    assert found == [23, 24, 25, 26], r.stderr


def test_missing_file(tmp_path):
    r = sekisho("check-config", str(tmp_path / "nope.conf"))
    assert r.returncode == 1
    assert str(tmp_path / "nope.conf") in r.stderr


def test_serve_refuses_broken_config(tmp_path, tls_cert):
    lines = good_lines(tmp_path, tls_cert) + ["smtp_timout = 5s"]
    conf = tmp_path / "broken.conf"
    conf.write_text("\n".join(lines) + "\n")
    r = subprocess.run([str(SEKISHO), "-c", str(conf), "serve", "-f"],
                       capture_output=True, text=True, timeout=60,
                       env=sanitizer_env())
    assert r.returncode != 0
    assert f"{conf}:23: unknown key 'smtp_timout'" in r.stderr


def test_docs_config_md_is_generated():
    doc = (REPO / "docs" / "config.md").read_text()
    r = sekisho("config", "markdown")
    assert r.returncode == 0
    assert doc == r.stdout, \
        "docs/config.md differs from `sekisho config markdown`: run " \
        "`make docs/config.md`"
    # every key of `config defaults` is documented
    keys = set(re.findall(r"(?m)^([a-z_]+) =", sekisho("config",
                                                         "defaults").stdout))
    assert len(keys) >= 25
    for k in keys:
        assert f"### {k}" in doc, k


def run_demo(demo_dir):
    env = dict(os.environ, SEKISHO_DEMO_DIR=str(demo_dir),
               SEKISHO_DEMO_NO_SETUP="1")
    return subprocess.run([str(REPO / "scripts" / "demo"), "--no-serve"],
                          capture_output=True, text=True, timeout=120,
                          env=env)


def test_demo_config_passes_and_rerun_reuses(tmp_path):
    if not (REPO / "build" / "sekisho").exists():
        pytest.fail("build/sekisho missing: run scripts/setup")
    demo = tmp_path / "demo"
    r = run_demo(demo)
    assert r.returncode == 0, r.stdout + r.stderr
    conf = demo / "sekisho.conf"
    c = sekisho("check-config", str(conf))
    assert c.returncode == 0 and c.stdout == f"{conf}: ok\n", c.stderr
    text = conf.read_text()
    for want in ("listen = mx 127.0.0.1:2525",
                 "listen = submission 127.0.0.1:10587",
                 "listen = submissions 127.0.0.1:10465",
                 "submission_auth_without_tls = never",
                 "hostname = mail.example.jp"):
        assert want in text.splitlines(), want
    out = r.stdout
    pw = dict(re.findall(r"(\w+@example\.jp)\s+password (\S+)", out))
    assert set(pw) == {"alice@example.jp", "bob@example.jp"}, out
    assert "msmtp -C" in out, out
    assert "portal:      http://127.0.0.1:8080/" in out, out
    assert re.search(r"abuse desk: desk\s+password desk-[0-9a-f]{12}", out), out
    for port in ("2525", "10587", "10465", "10110", "10995"):
        assert port in out
    msmtprc = (demo / "msmtprc").read_text()
    assert f"tls_trust_file {demo / 'tls' / 'cert.pem'}" in msmtprc
    assert "port 10587" in msmtprc and "tls_starttls on" in msmtprc
    cert = (demo / "tls" / "cert.pem").read_bytes()
    users = sekisho("user", "list", conf=conf).stdout.split()
    assert users == ["alice@example.jp", "bob@example.jp"]

    # again: same certificate, same accounts and passwords
    r2 = run_demo(demo)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert (demo / "tls" / "cert.pem").read_bytes() == cert
    assert dict(re.findall(r"(\w+@example\.jp)\s+password (\S+)",
                           r2.stdout)) == pw
    assert sekisho("user", "list", conf=conf).stdout.split() == users
