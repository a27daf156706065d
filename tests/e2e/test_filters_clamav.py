"""sekisho with clamav-milter (contrib/filters/clamav) and clamd loading a
signature database the test made (sigtool's MD5 of the EICAR file, no
download): EICAR attached to a submission is refused with the milter's
reply naming the virus, nothing is queued; a clean attachment goes
through."""
import pytest

from conftest import ALICE, ALICE_PW, BOB, domestic_lines
from filters import EICAR, ClamAV, outside, with_attachment  # noqa: F401
from filters import smtp_result

CAROL = "carol@peer.test"


@pytest.fixture
def scanned(make_daemon, outside):
    with ClamAV() as cl:
        yield make_daemon(extra=[
            "submission_auth_without_tls = loopback",
            f"transport = peer.test [127.0.0.1]:{outside.port}",
            f"milters_submission = {cl.milter}",
            f"milters_mx = {cl.milter}",
            *domestic_lines("127.0.0.0/8"),
        ]), cl


def test_eicar_on_submission_refused(scanned, outside):
    d, cl = scanned
    code, resp = smtp_result(d.ports["submission"], with_attachment(
        ALICE, CAROL, "virus", "eicar.com", EICAR.encode()), ALICE, CAROL,
        login=(ALICE, ALICE_PW))
    assert code == 550, (code, resp, cl.log)
    assert "Eicar-Test-Signature" in resp and "5.7.1" in resp, resp
    d.wait_queue_empty()
    assert outside.messages == []
    # the same from outside, on MX: refused too
    code, resp = smtp_result(d.ports["mx"], with_attachment(
        "x@outside.test", BOB, "virus", "invoice.com", EICAR.encode()),
        "x@outside.test", BOB)
    assert code == 550, (code, resp)
    assert not d.files(BOB)


def test_clean_attachment_accepted(scanned, outside):
    d, cl = scanned
    code, resp = smtp_result(d.ports["submission"], with_attachment(
        ALICE, CAROL, "report", "report.txt", b"quarterly numbers\n"),
        ALICE, CAROL, login=(ALICE, ALICE_PW))
    assert code == 250, (code, resp, cl.log)
    sender, rcpts, data = outside.wait_messages(1)[0]
    assert b"report.txt" in data
