"""The seam between the session processes and the back side, attacked
from the session side (issue 13): a test program is handed a real back-side
channel the way a session process is (tests/e2e/seam.py), and speaks to the
real back side of a running daemon."""
from conftest import children, mx_send
from seam import Fields, SeamChannel


def test_hook_hands_a_working_channel(daemon):
    """The channel the test build hands out reaches the real back side:
    a malformed request gets BE_FAIL, and the daemon's own sessions go
    on."""
    before = set(children(daemon.proc.pid))
    with SeamChannel(daemon) as ch:
        rep = ch.request("BE_RCPT", Fields().u32(7))    # not a string
        assert rep is not None and rep.failed
    mx_send(daemon.ports["mx"], "bob@example.jp", b"Subject: x\r\n\r\nhi\r\n")
    daemon.wait_files("bob@example.jp", 1)
    assert daemon.proc.poll() is None
    assert set(children(daemon.proc.pid)) == before
