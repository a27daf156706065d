"""refuse_own_from (issue 16 item 5, OCN's 自分のメールアドレスからの受信拒否):
a subscriber who turns it on gets no mail on MX whose From is their own
address or alias unless it authenticated through sekisho or passes DKIM
or SPF aligned, as read from the Authentication-Results header that OUR
Rspamd added; one who did not turn it on gets the forgery. The domain
publishes DMARC p=none here (as many do: that is why the option exists),
so Rspamd itself lets the forgery through."""
import pytest

from conftest import ALICE, ALICE_PW, BOB, BOB_PW, HOSTNAME, domestic_lines
from filters import (DkimKey, Rspamd, dkim_sign, header_values, message,
                     provider_dns, smtp_result)
from test_portal import Web, portal_daemon  # noqa: F401

ALIAS = "alice.alias@example.jp"


# One key, DNS and Rspamd for the file (Rspamd takes 15-25 s to start;
# without Redis it keeps nothing between messages); a sekisho per test.
@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return DkimKey(tmp_path_factory.mktemp("dkim"))


@pytest.fixture(scope="module")
def dns(tmp_path_factory, key):
    with provider_dns(tmp_path_factory.mktemp("dns"), key,
                      dmarc="none") as d:
        yield d


@pytest.fixture(scope="module")
def rspamd(dns, key):
    with Rspamd(dns.port, key) as rs:
        yield rs


@pytest.fixture
def d(make_daemon, dns, rspamd):
    daemon = make_daemon(extra=[
        "submission_auth_without_tls = loopback",
        f"milters_mx = {rspamd.milter}",
        f"milters_submission = {rspamd.milter}",
        f"dns_servers = 127.0.0.1:{dns.port}",
        *domestic_lines("127.0.0.0/8"),
    ])
    daemon.cli("user", "alias", "add", ALIAS, ALICE)
    out = daemon.cli("limits", "show", ALICE).stdout
    assert "refuse_own_from: no" in out, out   # off by default
    out = daemon.cli("limits", "set", ALICE,
                     "refuse_own_from=yes").stdout
    assert "refuse_own_from: yes" in out, out
    daemon.rspamd = rspamd
    yield daemon


def mx(d, sender_header, rcpt, subject, extra=(), raw=None):
    msg = raw or message(sender_header, rcpt, subject, "is it me?\r\n",
                         extra_headers=extra)
    return smtp_result(d.ports["mx"], msg, "bounce@outside.test", rcpt)


def test_forged_own_address_refused_when_on(d):
    code, resp = mx(d, ALICE, ALICE, "forged")
    assert code == 550, (code, resp)
    assert resp.startswith("5.7.1"), resp
    assert "alice@example.jp" in resp and "DKIM" in resp, resp
    d.wait_log(r"own_from refused from=alice@example\.jp "
               r"account=alice@example\.jp")
    # an alias of the account is its own address too
    code, resp = mx(d, f"Alice <{ALIAS}>", ALICE, "forged alias")
    assert code == 550, (code, resp)
    d.wait_queue_empty()
    assert not d.files(ALICE)


def test_forged_address_delivered_when_off(d):
    code, resp = mx(d, BOB, BOB, "forged bob")
    assert code == 250, (code, resp)
    (f,) = d.wait_files(BOB, 1)
    assert b"Subject: forged bob" in f.read_bytes()


def test_own_mail_through_sekisho_delivered(d):
    """Sent authenticated (submission) to themself: delivered, on or off."""
    for who, pw in ((ALICE, ALICE_PW), (BOB, BOB_PW)):
        code, resp = smtp_result(d.ports["submission"], message(
            who, who, "note to self", "remember the milk\r\n"), who, who,
            login=(who, pw))
        assert code == 250, (who, code, resp)
        d.wait_files(who, 1)


def test_attackers_own_authentication_results_not_believed(d):
    """A header claiming a pass under our authserv-id that came with the
    message is not the one our filter added."""
    code, resp = mx(d, ALICE, ALICE, "forged with AR", extra=(
        f"Authentication-Results: {HOSTNAME}; dkim=pass "
        "header.d=example.jp header.s=sekisho; spf=pass "
        "smtp.mailfrom=alice@example.jp; dmarc=pass header.from=example.jp",
    ))
    assert code == 550, (code, resp)


def test_dkim_signed_own_mail_from_outside_delivered(d, key):
    """Mail from the own address that really is signed by the provider
    (a mailing list relaying it, say) passes: our Rspamd's header says
    dkim=pass for example.jp."""
    signed = dkim_sign(message(ALICE, ALICE, "signed elsewhere",
                               "via a list\r\n"), key)
    code, resp = mx(d, None, ALICE, None, raw=signed)
    assert code == 250, (code, resp, d.rspamd.log[-2000:])
    (f,) = d.wait_files(ALICE, 1)
    ars = header_values(f.read_bytes(), "Authentication-Results")
    assert any(a.startswith(HOSTNAME) and "dkim=pass" in a for a in ars), ars


def test_turned_off_again_delivers(d):
    d.cli("limits", "set", ALICE, "refuse_own_from=no")
    code, resp = mx(d, ALICE, ALICE, "forged but allowed")
    assert code == 250, (code, resp)


def test_settings_page_turns_it_on_and_off(portal_daemon):
    """The subscriber's own switch on the settings page (CSRF-checked like
    every change), and what it shows; the CLI sees the same."""
    d = portal_daemon()
    w = Web(d.portal_port)
    w.login()
    _, _, page = w.request("GET", "/")
    assert "自分のアドレスを名乗るメール: 受信する" in page, page[-3000:]
    token = w.csrf(page)
    # without the session's token: refused, nothing changes
    status, _, _ = w.request("POST", "/own_from", {"action": "on"})
    assert status == 403
    assert "refuse_own_from: no" in d.cli("limits", "show", ALICE).stdout
    status, headers, _ = w.request("POST", "/own_from", {
        "action": "on", "csrf": token})
    assert status == 303 and headers["Location"] == "/?msg=own_from_on"
    _, _, page = w.request("GET", "/?msg=own_from_on")
    assert "自分のアドレスを名乗るメール: 受信拒否" in page
    assert "受信拒否します" in page
    assert "refuse_own_from: yes" in d.cli("limits", "show", ALICE).stdout
    # only the logged-in account changed
    assert "refuse_own_from: no" in d.cli("limits", "show", BOB).stdout
    status, headers, _ = w.request("POST", "/own_from", {
        "action": "sideways", "csrf": token})
    assert status == 400
    status, headers, _ = w.request("POST", "/own_from", {
        "action": "off", "csrf": token})
    assert headers["Location"] == "/?msg=own_from_off"
    assert "refuse_own_from: no" in d.cli("limits", "show", ALICE).stdout
    d.wait_log(r"portal refuse_own_from account=alice@example\.jp on=no")
