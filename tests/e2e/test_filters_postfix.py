"""The filter fixtures (filters.py) checked against Postfix's own milter
client (smtpd_milters), independently of sekisho: if these pass, the
configurations in contrib/filters are right and a failure of the sekisho
tests is sekisho's. Also the reference the benchmark compares with."""
import smtplib

from conftest import wait_for
from filters import (DOMAIN, EICAR, GTUBE, ClamAV, OpenDKIM, Rspamd,
                     dkim_verify, dns, header_values, key, message, outside,
                     with_attachment)
from mta_peers import DovecotAuth, PrivatePostfix

ALICE, ALICE_PW = "alice@example.jp", "alice-Secret-1"
CAROL = "carol@peer.test"


def postfix_with(milter, sasl_port, relay_port):
    """Postfix relaying everything to the outside peer, the milter on
    smtpd, SASL through Dovecot for the submission case."""
    return PrivatePostfix(None, sasl_port=sasl_port, extra=[
        f"smtpd_milters = {milter}",
        "milter_default_action = tempfail",
        "milter_protocol = 6",
        "default_transport = smtp", "relay_transport = smtp",
        f"relayhost = [127.0.0.1]:{relay_port}",
        "mynetworks = 127.0.0.0/8",
        "smtpd_relay_restrictions = permit_sasl_authenticated, "
        "permit_auth_destination, reject",
        "relay_domains = example.jp",
        "smtp_tls_security_level = none",
    ])


def submit_auth(port, msg, sender=ALICE, rcpt=CAROL):
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.example.jp")
        s.login(ALICE, ALICE_PW)
        return s.sendmail(sender, [rcpt], msg)


def send_mx(port, msg, sender, rcpt):
    """(code, reply) of the end of DATA, unauthenticated."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("outside.example.net")
        s.mail(sender)
        code, resp = s.rcpt(rcpt)
        assert code == 250, resp
        return s.data(msg)


def test_postfix_rspamd(dns, key, outside):
    with DovecotAuth(None, {ALICE: ALICE_PW}) as auth, \
            Rspamd(dns.port, key) as rs, \
            postfix_with(rs.milter, auth.port, outside.port) as pf:
        # a subscriber's submission is signed for example.jp
        submit_auth(pf.port, message(ALICE, CAROL, "signed", "hello\r\n"))
        (sender, rcpts, data) = outside.wait_messages(1)[0]
        assert header_values(data, "DKIM-Signature"), rs.log[-6000:]
        ok, d = dkim_verify(data, dns.port)
        assert ok and d == DOMAIN, data[:2000]
        # GTUBE from outside: refused with Rspamd's reply
        code, resp = send_mx(pf.port, message(
            "spammer@outside.test", "bob@example.jp", "gtube",
            GTUBE + "\r\n"), "spammer@outside.test", "bob@example.jp")
        assert code == 554 and b"Gtube pattern" in resp, (code, resp)
        # a clean message: Authentication-Results and a spam score
        code, resp = send_mx(pf.port, message(
            "friend@outside.test", "bob@example.jp", "clean",
            "hello bob\r\n"), "friend@outside.test", "bob@example.jp")
        assert code == 250, resp
        wait_for(lambda: len(outside.messages) >= 2, 30, "clean message")
        data = outside.messages[1][2]
        assert header_values(data, "Authentication-Results"), data[:2000]
        assert header_values(data, "X-Spam-Status"), data[:2000]
        # forged example.jp from outside: DMARC p=reject
        code, resp = send_mx(pf.port, message(
            ALICE, "bob@example.jp", "forged", "it is me\r\n"),
            "x@outside.test", "bob@example.jp")
        assert code == 554, (code, resp, rs.log[-3000:])


def test_postfix_opendkim(dns, key, outside):
    with DovecotAuth(None, {ALICE: ALICE_PW}) as auth, \
            OpenDKIM(key) as od, \
            postfix_with(od.milter, auth.port, outside.port) as pf:
        submit_auth(pf.port, message(ALICE, CAROL, "signed", "hello\r\n"))
        (sender, rcpts, data) = outside.wait_messages(1)[0]
        ok, d = dkim_verify(data, dns.port)
        assert ok and d == DOMAIN, (data[:2000], od.log)
        # mail from outside is not signed (loopback is not internal)
        code, resp = send_mx(pf.port, message(
            "friend@outside.test", "bob@example.jp", "in", "hi\r\n"),
            "friend@outside.test", "bob@example.jp")
        assert code == 250, resp
        wait_for(lambda: len(outside.messages) >= 2, 30, "inbound message")
        assert not header_values(outside.messages[1][2], "DKIM-Signature")


def test_postfix_clamav(outside):
    with DovecotAuth(None, {ALICE: ALICE_PW}) as auth, ClamAV() as cl, \
            postfix_with(cl.milter, auth.port, outside.port) as pf:
        try:
            submit_auth(pf.port, with_attachment(
                ALICE, CAROL, "virus", "eicar.com", EICAR.encode()))
            raise AssertionError("EICAR accepted: " + cl.log)
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 550 and b"virus" in e.smtp_error, e
            assert b"Eicar-Test-Signature" in e.smtp_error, e
        submit_auth(pf.port, with_attachment(
            ALICE, CAROL, "clean", "report.txt", b"quarterly numbers\n"))
        outside.wait_messages(1)
