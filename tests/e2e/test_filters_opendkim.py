"""sekisho with OpenDKIM as the signer (contrib/filters/opendkim, the
alternative to Rspamd's dkim_signing): a subscriber's submission to an
outside domain leaves with a DKIM-Signature for example.jp that verifies
with python3-dkim against the test DNS; mail on MX is not signed (OpenDKIM
signs from {auth_authen}, no host is internal)."""
import pytest

from conftest import ALICE, ALICE_PW, BOB, domestic_lines
from filters import (DOMAIN, OpenDKIM, dkim_verify, dns,  # noqa: F401
                     header_values, key, message, outside, smtp_result)

CAROL = "carol@peer.test"


@pytest.fixture
def signer(make_daemon, dns, key, outside):
    with OpenDKIM(key) as od:
        yield make_daemon(extra=[
            "submission_auth_without_tls = loopback",
            f"transport = peer.test [127.0.0.1]:{outside.port}",
            f"milters_submission = {od.milter}",
            f"milters_mx = {od.milter}",
            *domestic_lines("127.0.0.0/8"),
        ]), od


def test_opendkim_signs_submission(signer, outside, dns):
    d, od = signer
    code, resp = smtp_result(d.ports["submission"], message(
        ALICE, CAROL, "signed by opendkim", "hello carol\r\n"), ALICE,
        CAROL, login=(ALICE, ALICE_PW))
    assert code == 250, resp
    sender, rcpts, data = outside.wait_messages(1)[0]
    sigs = header_values(data, "DKIM-Signature")
    assert len(sigs) == 1, (data[:2000], od.log)
    assert "d=example.jp" in sigs[0] and "s=sekisho" in sigs[0], sigs
    ok, dom = dkim_verify(data, dns.port)
    assert ok and dom == DOMAIN, data[:3000]
    assert data.startswith(b"Received: "), data[:300]
    assert dkim_verify(data.replace(b"hello carol", b"hello eve"),
                       dns.port)[0] is False


def test_opendkim_does_not_sign_mx(signer):
    d, od = signer
    code, resp = smtp_result(d.ports["mx"], message(
        ALICE, BOB, "claims example.jp", "unsigned\r\n"),
        "x@outside.test", BOB)
    assert code == 250, resp
    (f,) = d.wait_files(BOB, 1)
    assert not header_values(f.read_bytes(), "DKIM-Signature")
