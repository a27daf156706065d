"""`sekisho geo lookup`: both database formats on the test ranges (the
MaxMind files written by Perl, in the three layouts seen in the wild), the
internal ranges, IPv4-mapped addresses, errors, and Debian's tor-geoipdb
files on a few well-known public addresses. Only look-ups: no traffic.
"""
import ipaddress
import subprocess
from pathlib import Path

import pytest

from conftest import SANITIZER_MARKS, SEKISHO, sanitizer_env
from geodata import (CN4, JP4, JP6, MMDB_STYLES, UNKNOWN4, UNKNOWN6, US4,
                     US6, write_mmdb, write_tor_files)

DEBIAN_V4 = Path("/usr/share/tor/geoip")
DEBIAN_V6 = Path("/usr/share/tor/geoip6")

# (address, country, kind, which source: "v4", "v6" or "internal")
CASES = [
    (JP4, "JP", "country", "v4"),
    ("192.0.2.0", "JP", "country", "v4"),
    ("192.0.2.255", "JP", "country", "v4"),
    ("192.0.1.255", "-", "unknown", "v4"),
    ("192.0.3.0", "-", "unknown", "v4"),
    (US4, "US", "country", "v4"),
    ("198.51.100.255", "US", "country", "v4"),
    ("198.51.101.0", "-", "unknown", "v4"),
    (CN4, "CN", "country", "v4"),
    ("203.0.113.0", "CN", "country", "v4"),
    (UNKNOWN4, "-", "unknown", "v4"),
    (JP6, "JP", "country", "v6"),
    ("2001:db8::", "JP", "country", "v6"),
    ("2001:db8:7fff:ffff:ffff:ffff:ffff:ffff", "JP", "country", "v6"),
    ("2001:db8:8000::", "US", "country", "v6"),
    (US6, "US", "country", "v6"),
    ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "US", "country", "v6"),
    (UNKNOWN6, "-", "unknown", "v6"),
    ("::ffff:192.0.2.1", "JP", "country", "v4"),
    ("::ffff:198.51.100.1", "US", "country", "v4"),
    ("127.0.0.1", "-", "internal", "internal"),
    ("10.20.30.40", "-", "internal", "internal"),
    ("172.16.0.1", "-", "internal", "internal"),
    ("192.168.1.1", "-", "internal", "internal"),
    ("169.254.10.1", "-", "internal", "internal"),
    ("100.64.0.1", "-", "internal", "internal"),
    ("100.127.255.255", "-", "internal", "internal"),
    ("::1", "-", "internal", "internal"),
    ("fe80::1", "-", "internal", "internal"),
    ("fd12:3456::1", "-", "internal", "internal"),
    ("::ffff:10.0.0.1", "-", "internal", "internal"),
]


def geo(tmp_path, *args, spec=None, check=True):
    """Run `sekisho -c CONF geo ARGS` with geo_database = spec."""
    conf = tmp_path / "sekisho.conf"
    conf.write_text("" if spec is None else f"geo_database = {spec}\n")
    r = subprocess.run([str(SEKISHO), "-c", str(conf), "geo", *args],
                       capture_output=True, text=True, env=sanitizer_env(),
                       timeout=120)
    for mark in SANITIZER_MARKS:
        assert mark not in r.stderr, r.stderr
    if check:
        assert r.returncode == 0, r.stderr
    return r


def lookup_lines(tmp_path, spec, addresses):
    r = geo(tmp_path, "lookup", *addresses, spec=spec)
    lines = r.stdout.splitlines()
    assert len(lines) == len(addresses), r.stdout
    return lines


def expected_line(case, sources):
    addr, cc, kind, source = case
    return f"{addr} {cc} {kind} {sources[source]}"


def test_tor_files(tmp_path):
    v4, v6 = write_tor_files(tmp_path / "db")
    spec = f"tor:{v4},{v6}"
    sources = {"v4": f"tor:{v4}", "v6": f"tor:{v6}", "internal": "internal"}
    lines = lookup_lines(tmp_path, spec, [c[0] for c in CASES])
    assert lines == [expected_line(c, sources) for c in CASES]


@pytest.mark.parametrize("style", MMDB_STYLES)
def test_mmdb(tmp_path, style):
    path = write_mmdb(tmp_path / "db", style)
    spec = f"mmdb:{path}"
    sources = {"v4": spec, "v6": spec, "internal": "internal"}
    lines = lookup_lines(tmp_path, spec, [c[0] for c in CASES])
    assert lines == [expected_line(c, sources) for c in CASES]


def test_database_option_overrides_config(tmp_path):
    v4, v6 = write_tor_files(tmp_path / "db")
    mmdb = write_mmdb(tmp_path / "db", "ipinfo")
    r = geo(tmp_path, "lookup", "--database", f"mmdb:{mmdb}", US4,
            spec=f"tor:{v4},{v6}")
    assert r.stdout == f"{US4} US country mmdb:{mmdb}\n"


def test_bad_address_is_reported_and_others_answered(tmp_path):
    v4, v6 = write_tor_files(tmp_path / "db")
    r = geo(tmp_path, "lookup", JP4, "not-an-ip", "192.0.2.300", US6,
            spec=f"tor:{v4},{v6}", check=False)
    assert r.returncode == 1
    assert r.stdout == (f"{JP4} JP country tor:{v4}\n"
                        f"{US6} US country tor:{v6}\n")
    assert ("sekisho: geo lookup: 'not-an-ip' is not an IPv4 or IPv6 "
            "address") in r.stderr
    assert "'192.0.2.300' is not an IPv4 or IPv6 address" in r.stderr


def test_usage(tmp_path):
    v4, v6 = write_tor_files(tmp_path / "db")
    for args in ([], ["lookup"], ["where", "1.2.3.4"]):
        r = geo(tmp_path, *args, spec=f"tor:{v4},{v6}", check=False)
        assert r.returncode == 2, args
        assert "usage: sekisho geo lookup" in r.stderr


def test_bad_tor_file_names_file_and_line(tmp_path):
    v4, v6 = write_tor_files(tmp_path / "db")
    with v6.open("a") as f:
        f.write("2001:db8:8000::1,2001:db8:8000::2,KR\n")
    r = geo(tmp_path, "lookup", JP4, spec=f"tor:{v4},{v6}", check=False)
    assert r.returncode == 1
    assert r.stdout == ""
    # The appended line is the 4th; it overlaps the US range on line 3.
    assert r.stderr == (f"sekisho: geo: {v6}:4: range overlaps the one "
                        f"at {v6}:3\n")

    v4.write_text("# x\n3221225984,3221225983,JP\n")
    r = geo(tmp_path, "lookup", JP4, spec=f"tor:{v4}", check=False)
    assert r.returncode == 1
    assert r.stderr == (f"sekisho: geo: {v4}:2: range ends before it "
                        "starts\n")


def test_missing_and_bad_database(tmp_path):
    missing = tmp_path / "nope"
    r = geo(tmp_path, "lookup", JP4, spec=f"tor:{missing}", check=False)
    assert r.returncode == 1
    assert r.stderr == (f"sekisho: geo: {missing}: cannot open: No such "
                        "file or directory\n")

    v4, _ = write_tor_files(tmp_path / "db")
    r = geo(tmp_path, "lookup", JP4, spec=f"mmdb:{v4}", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith(f"sekisho: geo: {v4}: ")

    # A malformed value is a config error, FILE:LINE.
    r = geo(tmp_path, "lookup", JP4, spec="maxmind:/x.mmdb", check=False)
    assert r.returncode == 1
    assert "sekisho.conf:1: geo_database: bad geo database" in r.stderr


# --- Debian's tor-geoipdb --------------------------------------------------

def debian_answer(address):
    """What Debian's files themselves say for address: the country code,
    or "-" when no range holds it (or its code is "??")."""
    ip = ipaddress.ip_address(address)
    path = DEBIAN_V4 if ip.version == 4 else DEBIAN_V6
    want = int(ip)
    with path.open() as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            lo, hi, cc = line.strip().split(",")
            if ip.version == 4:
                lo, hi = int(lo), int(hi)
            else:
                lo = int(ipaddress.ip_address(lo))
                hi = int(ipaddress.ip_address(hi))
            if lo <= want <= hi:
                return "-" if cc in ("??", "ZZ") else cc
    return "-"


def test_debian_tor_geoipdb(tmp_path):
    if not (DEBIAN_V4.exists() and DEBIAN_V6.exists()):
        pytest.fail("tor-geoipdb is not installed: run scripts/setup")
    # Well-known addresses: Google and Quad9 DNS (US), Cloudflare's
    # 1.1.1.1 (APNIC research prefix: AU in some files, US in others),
    # 133.0.0.0/8 (allocated to JPNIC) and 2001:200::/32 (WIDE, Japan).
    addresses = ["8.8.8.8", "9.9.9.9", "1.1.1.1", "133.0.0.1",
                 "2001:4860:4860::8888", "2001:200::1",
                 "::ffff:133.0.0.1", "127.0.0.1"]
    # The default geo_database is Debian's files: no key in the config.
    lines = lookup_lines(tmp_path, None, addresses)
    got = {line.split()[0]: line.split()[1:] for line in lines}

    for address in addresses[:6]:
        cc = debian_answer(address)
        path = DEBIAN_V4 if ":" not in address else DEBIAN_V6
        assert got[address] == [cc, "country", f"tor:{path}"], address
    assert got["8.8.8.8"][0] == "US"
    assert got["9.9.9.9"][0] == "US"
    assert got["1.1.1.1"][0] in ("AU", "US")
    assert got["133.0.0.1"][0] == "JP"
    assert got["2001:4860:4860::8888"][0] == "US"
    assert got["2001:200::1"][0] == "JP"
    assert got["::ffff:133.0.0.1"] == ["JP", "country", f"tor:{DEBIAN_V4}"]
    assert got["127.0.0.1"] == ["-", "internal", "internal"]
