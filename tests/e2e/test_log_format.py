"""Log timestamps carry their zone (issue 14, item 9): operators put the
logs of several machines side by side. The foreground (stderr) format is
RFC 3339 with milliseconds and the offset of the configured `timezone`,
e.g. 2026-12-06T08:10:29.883+09:00; the session processes, chrooted,
write it too (the zone's rules are read before the chroot)."""
import re
import smtplib

import pytest

from conftest import BOB

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})([+-]\d\d:\d\d) ",
                   re.M)


def offsets(d):
    lines = [ln for ln in d.log().splitlines() if ln.strip()]
    got = set()
    for ln in lines:
        m = STAMP.match(ln)
        if m:
            got.add(m.group(2))
    return lines, got


@pytest.mark.parametrize("zone,offset", [
    (None, "+09:00"),                       # Asia/Tokyo, the default
    ("America/Caracas", "-04:00"),          # no DST since 2016
    ("UTC", "+00:00"),
    ("Asia/Kolkata", "+05:30"),
])
def test_log_lines_carry_the_zone(make_daemon, zone, offset):
    extra = [f"timezone = {zone}"] if zone else []
    d = make_daemon(extra=extra)
    # a session: its lines come from a (chrooted when root) session
    # process, the delivery's from the back side
    with smtplib.SMTP("127.0.0.1", d.ports["mx"], timeout=30) as s:
        s.sendmail("someone@example.org", [BOB],
                   b"Subject: zone\r\n\r\nhi\r\n")
    d.wait_files(BOB, 1)
    d.wait_log(r"rcpt to=<bob@example\.jp>")
    lines, got = offsets(d)
    assert got == {offset}, (got, lines[:5])
    # every line that is not a sanitizer's or a continuation has one
    stamped = [ln for ln in lines if STAMP.match(ln)]
    assert any("rcpt to=<bob@example.jp>" in ln for ln in stamped)
    assert any("sekisho started" in ln for ln in stamped)
