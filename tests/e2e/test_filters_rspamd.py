"""sekisho with Rspamd (Debian's package, its proxy worker in milter mode,
contrib/filters/rspamd) on its submission and mx listeners (issue 16):
a subscriber's mail to an outside domain leaves DKIM-signed for the
provider's domain, verified by python3-dkim against the test DNS; GTUBE
is refused with Rspamd's reply; a clean message gets Authentication-
Results and a spam score; a forgery of example.jp (DMARC p=reject) is
refused. The same configuration is checked against Postfix in
test_filters_postfix.py."""
import pytest

from conftest import ALICE, ALICE_PW, BOB, HOSTNAME, domestic_lines
from filters import (DOMAIN, GTUBE, DkimKey, Rspamd, dkim_verify,
                     header_values, message, outside,  # noqa: F401
                     provider_dns, smtp_result)

CAROL = "carol@peer.test"


# One key, DNS and Rspamd for the whole file: Rspamd takes 15-25 s to
# start here, and without Redis it keeps no state between messages that
# one test could leave for the next (each test has its own sekisho).
@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return DkimKey(tmp_path_factory.mktemp("dkim"))


@pytest.fixture(scope="module")
def dns(tmp_path_factory, key):
    with provider_dns(tmp_path_factory.mktemp("dns"), key) as d:
        yield d


@pytest.fixture(scope="module")
def rspamd(dns, key):
    with Rspamd(dns.port, key) as rs:
        yield rs


@pytest.fixture
def filtered(make_daemon, rspamd, outside, dns):
    """sekisho with Rspamd on both roles, peer.test's MX the scripted
    outside peer."""
    return make_daemon(extra=[
        "submission_auth_without_tls = loopback",
        f"transport = peer.test [127.0.0.1]:{outside.port}",
        f"milters_mx = {rspamd.milter}",
        f"milters_submission = {rspamd.milter}",
        "milter_default_action = tempfail",
        f"dns_servers = 127.0.0.1:{dns.port}",
        *domestic_lines("127.0.0.0/8"),
    ])


def test_submission_is_dkim_signed(filtered, outside, dns, rspamd):
    code, resp = smtp_result(filtered.ports["submission"], message(
        ALICE, CAROL, "signed by rspamd", "hello carol\r\n"), ALICE, CAROL,
        login=(ALICE, ALICE_PW))
    assert code == 250, resp
    sender, rcpts, data = outside.wait_messages(1)[0]
    sigs = header_values(data, "DKIM-Signature")
    assert len(sigs) == 1, ("\n".join(l for l in rspamd.log.splitlines() if "task" in l or "milter" in l or "proxy" in l)[-4000:], filtered.log()[-3000:])
    assert "d=example.jp" in sigs[0] and "s=sekisho" in sigs[0], sigs
    ok, d = dkim_verify(data, dns.port)
    assert ok and d == DOMAIN, data[:3000]
    # our Received header stays first, above the signature
    assert data.startswith(b"Received: "), data[:300]
    # the attacker's view: a changed body no longer verifies
    tampered = data.replace(b"hello carol", b"hello CAROL")
    assert dkim_verify(tampered, dns.port)[0] is False


def test_mx_mail_is_not_signed(filtered, outside, dns):
    """Signing is decided from {auth_authen}: mail from outside to a
    subscriber gets no signature, whatever its From claims."""
    code, resp = smtp_result(filtered.ports["mx"], message(
        "friend@outside.test", BOB, "inbound", "hi bob\r\n"),
        "friend@outside.test", BOB)
    assert code == 250, resp
    (f,) = filtered.wait_files(BOB, 1)
    assert not header_values(f.read_bytes(), "DKIM-Signature")


def test_gtube_on_mx_is_refused_with_rspamds_reply(filtered, rspamd):
    code, resp = smtp_result(filtered.ports["mx"], message(
        "spammer@outside.test", BOB, "gtube", GTUBE + "\r\n"),
        "spammer@outside.test", BOB)
    assert code == 554 or code == 550, (code, resp)
    assert "Gtube pattern" in resp, resp
    assert "5.7.1" in resp, resp
    filtered.wait_queue_empty()
    assert not filtered.files(BOB)


def test_clean_mail_gets_authentication_results_and_score(filtered):
    # a forged Authentication-Results that came with the message
    code, resp = smtp_result(filtered.ports["mx"], message(
        "friend@outside.test", BOB, "clean", "hello bob\r\n",
        extra_headers=(f"Authentication-Results: {HOSTNAME}; dkim=pass "
                       "header.d=outside.test",)),
        "friend@outside.test", BOB)
    assert code == 250, resp
    (f,) = filtered.wait_files(BOB, 1)
    data = f.read_bytes()
    ars = header_values(data, "Authentication-Results")
    assert ars, data[:3000]
    assert any("spf=" in a for a in ars), ars
    # Rspamd removed the one that came with the message
    assert not any("header.d=outside.test" in a for a in ars), ars
    status = header_values(data, "X-Spam-Status")
    assert status and "score=" in status[0], data[:3000]
    assert b"hello bob" in data


def test_dmarc_reject_forgery_of_local_domain_is_refused(filtered, rspamd):
    code, resp = smtp_result(filtered.ports["mx"], message(
        ALICE, BOB, "forged", "it is really me\r\n"), "x@outside.test", BOB)
    assert code in (550, 554), (code, resp, rspamd.log[-3000:])
    assert "5.7.1" in resp, resp
    filtered.wait_queue_empty()
    assert not filtered.files(BOB)


def test_one_session_many_messages_on_one_rspamd_connection(filtered,
                                                            rspamd, outside,
                                                            dns):
    """The messages of one SMTP session go to Rspamd on one milter
    connection (one CONNECT, as from Postfix), and each is judged as
    itself: a clean message, GTUBE, a clean one again and a DMARC forgery
    in one session on MX get the same answers as in sessions of their own;
    two submissions in one authenticated session are both signed."""
    import smtplib
    connects = rspamd.log.count("got connection from")
    answers = []
    with smtplib.SMTP("127.0.0.1", filtered.ports["mx"], timeout=120) as s:
        s.ehlo("client.example.net")
        for sender, subject, body, extra in (
                ("friend@outside.test", "clean one", "first\r\n",
                 (f"Authentication-Results: {HOSTNAME}; dkim=pass "
                  "header.d=outside.test",)),
                ("spammer@outside.test", "gtube", GTUBE + "\r\n", ()),
                ("friend@outside.test", "clean two", "second\r\n", ()),
                ("x@outside.test", "forged", "it is really me\r\n", ())):
            frm = ALICE if subject == "forged" else sender
            s.mail(sender)
            s.rcpt(BOB)
            try:
                code, resp = s.data(message(frm, BOB, subject, body,
                                            extra_headers=extra))
            except smtplib.SMTPDataError as e:
                code, resp = e.smtp_code, e.smtp_error
            answers.append((code, resp.decode()))
    assert answers[0][0] == 250 and answers[2][0] == 250, answers
    assert answers[1][0] in (550, 554) and "Gtube pattern" in answers[1][1]
    assert answers[3][0] in (550, 554) and "5.7.1" in answers[3][1], answers
    files = filtered.wait_files(BOB, 2)
    got = {}
    for f in files:
        data = f.read_bytes()
        (subject,) = header_values(data, "Subject")
        got[subject] = data
    assert sorted(got) == ["clean one", "clean two"], sorted(got)
    for subject, data in got.items():
        ars = header_values(data, "Authentication-Results")
        assert any("spf=" in a for a in ars), (subject, ars)
        assert not any("header.d=outside.test" in a for a in ars), ars
        assert len(header_values(data, "X-Spam-Status")) == 1, data[:3000]
    assert b"first" in got["clean one"] and b"second" in got["clean two"]
    # one CONNECT for the session (a connection per message before)
    assert rspamd.log.count("got connection from") - connects == 1

    # two signed submissions in one authenticated session
    with smtplib.SMTP("127.0.0.1", filtered.ports["submission"],
                      timeout=120) as s:
        s.ehlo("client.example.net")
        s.login(ALICE, ALICE_PW)
        for i in (1, 2):
            s.sendmail(ALICE, [CAROL], message(ALICE, CAROL, f"signed {i}",
                                               f"hello carol {i}\r\n"))
    for sender, rcpts, data in outside.wait_messages(2):
        assert len(header_values(data, "DKIM-Signature")) == 1, data[:2000]
        ok, d = dkim_verify(data, dns.port)
        assert ok and d == DOMAIN, data[:3000]
