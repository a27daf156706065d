"""Installing like a Debian service (issue 9, operations): `make install`
with DESTDIR and PREFIX puts the binary, the manual pages, the systemd
unit and an example config where they belong and nothing in /etc; the
manual pages are clean for mandoc (or groff) and sekisho.conf(5) is what
`sekisho config man` prints; systemd-analyze accepts the unit; and
`sekisho status` answers for a running daemon and says when none runs,
with the LSB status exit codes.
"""
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, SEKISHO, sanitizer_env

PREFIX = "/usr"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """DESTDIR of one `make install PREFIX=/usr`. The build itself is not
    what is tested: an existing build/sekisho is not remade (-o)."""
    dest = tmp_path_factory.mktemp("destdir")
    cmd = ["make", "-C", str(REPO), "install", f"DESTDIR={dest}",
           f"PREFIX={PREFIX}"]
    if (REPO / "build" / "sekisho").exists():
        cmd.insert(1, "-o")
        cmd.insert(2, "build/sekisho")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return dest


def test_install_puts_files_in_place(installed):
    root = installed / PREFIX.lstrip("/")
    expect = {
        "sbin/sekisho": 0o755,
        "share/man/man8/sekisho.8": 0o644,
        "share/man/man5/sekisho.conf.5": 0o644,
        "lib/systemd/system/sekisho.service": 0o644,
        "share/doc/sekisho/sekisho.conf.example": 0o644,
        "share/doc/sekisho/README.md": 0o644,
        "share/doc/sekisho/operations.md": 0o644,
        "share/doc/sekisho/config.md": 0o644,
    }
    for rel, mode in expect.items():
        p = root / rel
        assert p.is_file(), rel
        assert stat.S_IMODE(p.stat().st_mode) == mode, rel
    # /etc is the operator's: never written
    assert not (installed / "etc").exists()
    # the unit names the installed binary, with PREFIX substituted
    unit = (root / "lib/systemd/system/sekisho.service").read_text()
    assert "@PREFIX@" not in unit
    assert re.search(r"(?m)^Type=notify$", unit)
    assert re.search(r"(?m)^ExecStart=/usr/sbin/sekisho -c "
                     r"/etc/sekisho/sekisho.conf serve -f$", unit)
    assert re.search(r"(?m)^ExecReload=/bin/kill -HUP \$MAINPID$", unit)
    assert re.search(r"(?m)^LimitNOFILE=65536$", unit)
    for opt in ("ProtectSystem=full", "ProtectHome=yes", "PrivateTmp=yes"):
        assert re.search(rf"(?m)^{opt}$", unit), opt
    # the installed binary runs; the example config is every default
    r = subprocess.run([str(root / "sbin/sekisho"), "version"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("sekisho "), r
    example = (root / "share/doc/sekisho/sekisho.conf.example").read_text()
    defaults = subprocess.run([str(SEKISHO), "config", "defaults"],
                              capture_output=True, text=True, timeout=60,
                              env=sanitizer_env()).stdout
    assert example.split("\n")[:5] == defaults.split("\n")[:5]
    assert "spool_dir = /var/spool/sekisho" in example


def test_install_prefix_local(tmp_path):
    """Another PREFIX moves everything, the unit's paths too."""
    cmd = ["make", "-C", str(REPO), "install", f"DESTDIR={tmp_path}",
           "PREFIX=/usr/local"]
    if (REPO / "build" / "sekisho").exists():
        cmd[1:1] = ["-o", "build/sekisho"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    unit = (tmp_path / "usr/local/lib/systemd/system/sekisho.service")
    assert "ExecStart=/usr/local/sbin/sekisho " in unit.read_text()
    assert (tmp_path / "usr/local/sbin/sekisho").is_file()
    assert (tmp_path / "usr/local/share/man/man5/sekisho.conf.5").is_file()


def lint_man(path):
    """(tool, output) of a strict check of one manual page."""
    if shutil.which("mandoc"):
        r = subprocess.run(["mandoc", "-Tlint", "-Wstyle", str(path)],
                           capture_output=True, text=True, timeout=60)
        return "mandoc", r.returncode, r.stdout + r.stderr
    r = subprocess.run(["groff", "-man", "-ww", "-z", str(path)],
                       capture_output=True, text=True, timeout=60)
    return "groff", r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("page", ["man8/sekisho.8", "man5/sekisho.conf.5"])
def test_man_pages_lint_clean(installed, page):
    path = installed / PREFIX.lstrip("/") / "share/man" / page
    tool, rc, out = lint_man(path)
    assert rc == 0 and out == "", f"{tool}: {out}"
    # groff as well, when both are there: no warning at all
    if shutil.which("groff"):
        r = subprocess.run(["groff", "-man", "-ww", "-z", str(path)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stderr == "", r.stderr


def test_conf_man_page_is_generated_from_the_table():
    r = subprocess.run([str(SEKISHO), "config", "man"], capture_output=True,
                       text=True, timeout=60, env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    have = (REPO / "man" / "sekisho.conf.5").read_text()
    assert r.stdout == have, \
        "man/sekisho.conf.5 is stale: run 'make man/sekisho.conf.5'"
    # every key of the table is in it
    keys = re.findall(r"(?m)^([a-z_0-9]+) =", subprocess.run(
        [str(SEKISHO), "config", "defaults"], capture_output=True, text=True,
        timeout=60, env=sanitizer_env()).stdout)
    for key in keys:
        assert f"\n.B {key}\n" in have, key


def test_systemd_unit_verifies(installed, tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    probe = subprocess.run([tool, "--version"], capture_output=True,
                           text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"systemd-analyze cannot run here: {probe.stderr}")
    root = installed / PREFIX.lstrip("/")
    # verify checks that the commands exist and the Documentation= pages
    # open: point it at the DESTDIR binary and man pages
    unit = (root / "lib/systemd/system/sekisho.service").read_text()
    (tmp_path / "sekisho.service").write_text(
        unit.replace("/usr/sbin/sekisho", str(root / "sbin/sekisho")))
    env = dict(os.environ, MANPATH=str(root / "share/man"),
               SYSTEMD_LOG_LEVEL="warning")
    r = subprocess.run([tool, "verify", str(tmp_path / "sekisho.service")],
                       capture_output=True, text=True, timeout=120, env=env)
    # Lines about other units installed on this host are not ours.
    ours = [line for line in (r.stdout + r.stderr).splitlines()
            if "sekisho" in line]
    assert r.returncode == 0 and not ours, r.stdout + r.stderr


def test_status_running_and_stopped(make_daemon):
    d = make_daemon()
    r = d.cli("status", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert out.startswith("sekisho is running\n"), out
    fields = dict(line.split(": ", 1) for line in out.splitlines()[1:])
    assert int(fields["pid"]) == d.proc.pid
    version = d.cli("version").stdout.split()[1]
    assert fields["version"] == version
    assert re.fullmatch(r"\d+d \d\d:\d\d:\d\d", fields["uptime"])
    listed = [line.split(": ", 1)[1] for line in out.splitlines()
              if line.startswith("listener: ")]
    for name, role, _ in d.listeners:
        assert f"{role} 127.0.0.1:{d.ports[name]}" in listed
    assert fields["connections"] == "0"
    assert fields["queue"] == "0"
    assert fields["queue oldest"] == "0 s"
    assert fields["last reload"] == "never"
    assert fields["store reachable"] in ("yes", "not used yet")

    assert d.stop() == 0
    r = d.cli("status", check=False)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "not running" in r.stdout
