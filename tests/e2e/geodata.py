"""Test country databases for the geo look-up and the overseas policy.

Both formats map the same documentation ranges (RFC 5737, RFC 3849):

    192.0.2.0/24      JP        2001:db8::/33       JP
    198.51.100.0/24   US        2001:db8:8000::/33  US
    203.0.113.0/24    CN

Everything else is missing (a public address not in the database), except
what geo treats as internal without a database (loopback, private...).

    from geodata import write_tor_files, write_mmdb, geo_config_line
    v4, v6 = write_tor_files(tmp_path)          # tor-geoipdb format
    mmdb = write_mmdb(tmp_path)                 # MaxMind DB (needs Perl)
    extra = [geo_config_line(tmp_path)]         # "geo_database = tor:..."
"""
import ipaddress
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MMDB_WRITER = REPO / "tests" / "data" / "geo_mmdb.pl"

# (network, country): the one truth both writers use.
NETWORKS = (
    ("192.0.2.0/24", "JP"),
    ("198.51.100.0/24", "US"),
    ("203.0.113.0/24", "CN"),
    ("2001:db8::/33", "JP"),
    ("2001:db8:8000::/33", "US"),
)

# One address per range, and the answer a look-up must give.
JP4, US4, CN4 = "192.0.2.10", "198.51.100.10", "203.0.113.10"
JP6, US6 = "2001:db8::10", "2001:db8:8000::10"
UNKNOWN4, UNKNOWN6 = "198.18.0.1", "2001:db9::1"   # public, not listed

# Where a MaxMind-format file puts the code (see tests/data/geo_mmdb.pl).
MMDB_STYLES = ("maxmind", "registered", "ipinfo")


def tor_lines(family, networks=NETWORKS):
    """The tor-geoipdb lines of one family: IPv4 as integers, IPv6 as
    addresses (the formats of /usr/share/tor/geoip and geoip6)."""
    lines = ["# sekisho test database (documentation ranges)"]
    for text, cc in networks:
        net = ipaddress.ip_network(text)
        if net.version != family:
            continue
        if family == 4:
            lines.append(f"{int(net[0])},{int(net[-1])},{cc}")
        else:
            lines.append(f"{net[0].exploded},{net[-1].exploded},{cc}")
    return "\n".join(lines) + "\n"


def write_tor_files(directory, networks=NETWORKS):
    """Write geoip and geoip6 into directory; returns their two paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    v4, v6 = directory / "geoip", directory / "geoip6"
    v4.write_text(tor_lines(4, networks))
    v6.write_text(tor_lines(6, networks))
    return v4, v6


def write_mmdb(directory, style="maxmind", networks=NETWORKS, name=None):
    """Write a MaxMind DB with Debian's libmaxmind-db-writer-perl; returns
    its path. style: maxmind (country.iso_code), registered
    (registered_country.iso_code only) or ipinfo (top-level country_code).
    """
    if style not in MMDB_STYLES:
        raise ValueError(f"unknown mmdb style {style!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (name or f"test-{style}.mmdb")
    subprocess.run(["perl", str(MMDB_WRITER), str(path), style,
                    *[f"{net}={cc}" for net, cc in networks]],
                   check=True, capture_output=True, timeout=60)
    return path


def geo_config_line(directory, kind="tor", style="maxmind"):
    """A "geo_database = ..." config line for a fresh test database in
    directory: kind "tor" (both files) or "mmdb"."""
    if kind == "tor":
        v4, v6 = write_tor_files(directory)
        return f"geo_database = tor:{v4},{v6}"
    if kind == "mmdb":
        return f"geo_database = mmdb:{write_mmdb(directory, style)}"
    raise ValueError(f"unknown geo database kind {kind!r}")
