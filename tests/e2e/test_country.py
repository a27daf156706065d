"""Overseas permission by country, caps by country and POP3 from abroad
(issue 17 items 5-7).

Clients "from abroad" connect over loopback to listeners that expect a
PROXY header from 127.0.0.1; the header carries a documentation address
the test country database maps (geodata.py): 192.0.2.0/24 JP,
198.51.100.0/24 US, 203.0.113.0/24 CN.
"""
import email
import email.policy
import poplib
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import (ALICE, ALICE_PW, BOB, SEKISHO, Daemon, sanitizer_env,
                      wait_for)
from geodata import CN4, JP4, US4, geo_config_line
from pg import pg_cluster  # noqa: F401 (fixture)
from test_policy import send_from

PORTAL = "https://mail.example.jp/settings"
LISTENERS = Daemon.DEFAULT_LISTENERS + (
    ("submission_proxy", "submission", True),
    ("pop3_proxy", "pop3", True))


@pytest.fixture(params=["sqlite", "postgresql"])
def country_daemon(make_daemon, tmp_path, request):
    if request.param == "postgresql":
        store = {"store": request.getfixturevalue("pg_cluster").store()}
    else:
        store = {}

    def factory(extra=()):
        return make_daemon(proxy=True, listeners=LISTENERS,
                           extra=[geo_config_line(tmp_path / "geo"),
                                  f"portal_url = {PORTAL}", *extra],
                           **store)
    return factory


class ProxyPOP3(poplib.POP3):
    """poplib that first sends a PROXY v1 header claiming `source`."""

    def __init__(self, source, port):
        self.source = source
        super().__init__("127.0.0.1", port, timeout=15)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout)
        sock.sendall(f"PROXY TCP4 {self.source} 192.0.2.1 40000 110\r\n"
                     .encode())
        return sock


def pop3_login(d, source, client_tls, user=ALICE, password=ALICE_PW):
    """STLS and USER/PASS from source; returns the session or raises
    poplib.error_proto with the server's -ERR line."""
    p = ProxyPOP3(source, d.ports["pop3_proxy"])
    try:
        p.stls(client_tls)
        p.user(user)
        p.pass_(password)
    except Exception:
        p.close()
        raise
    return p


def test_permission_for_named_countries_only(country_daemon, client_tls):
    d = country_daemon()
    out = d.cli("overseas", "allow", ALICE, "--countries", "us").stdout
    assert "allowed until" in out and "from US" in out
    status = d.cli("overseas", "status", ALICE).stdout
    assert "from US" in status and "every country" not in status

    # from the named country: accepted and delivered
    qid = send_from(d, US4, client_tls)
    d.wait_message(BOB, qid)
    # from home: unchanged
    send_from(d, JP4, client_tls)

    # from another country: refused as today, naming that country
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        send_from(d, CN4, client_tls)
    assert e.value.smtp_code == 550
    text = e.value.smtp_error.decode()
    assert text.startswith("5.7.1 ")
    assert "CN" in text and CN4 in text and "only from US" in text
    assert PORTAL in text
    events = d.cli("events", ALICE).stdout
    assert "overseas_refused\t" + CN4 + "\tCN" in events

    # turned on again without countries: every country
    out = d.cli("overseas", "allow", ALICE).stdout
    assert "every country" in out
    send_from(d, CN4, client_tls)


def test_bad_country_lists_refused(country_daemon):
    d = country_daemon()
    for bad in ("USA", "U", "US;GB", "1X", "US,,G", "U S"):
        r = d.cli("overseas", "allow", ALICE, "--countries", bad,
                  check=False)
        assert r.returncode == 2, bad
        assert "bad --countries" in r.stderr
    assert "not allowed" in d.cli("overseas", "status", ALICE).stdout
    # 41 countries are more than a permission holds
    many = ",".join(f"{chr(65 + i // 26)}{chr(65 + i % 26)}"
                    for i in range(41))
    r = d.cli("overseas", "allow", ALICE, "--countries", many, check=False)
    assert r.returncode == 2


def test_caps_by_country(country_daemon, client_tls):
    d = country_daemon(extra=[
        "limit_overseas_recipients_per_day = 5",
        "limit_overseas_recipients_per_day_by_country = CN,KP:2",
        "limit_overseas_recipients_per_day_by_country = GB:50"])
    d.cli("overseas", "allow", ALICE)
    rcpts = [f"r{i}@example.net" for i in range(3)]

    # from CN: the lower cap of its group
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        send_from(d, CN4, client_tls, rcpts=rcpts)
    code, text = list(e.value.recipients.values())[0]
    assert code == 451
    assert b"overseas recipient limit (2)" in text
    send_from(d, CN4, client_tls, rcpts=rcpts[:2])
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        send_from(d, CN4, client_tls, rcpts=rcpts[:1])
    assert e.value.smtp_code == 451
    assert b"overseas recipient limit (2)" in e.value.smtp_error

    # from the US: the default cap, over the same day's count
    send_from(d, US4, client_tls, rcpts=rcpts)
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        send_from(d, US4, client_tls, rcpts=rcpts[:1])
    assert b"overseas recipient limit (5)" in e.value.smtp_error
    # from home: no cap from abroad
    send_from(d, JP4, client_tls, rcpts=rcpts)


def test_cap_syntax_checked(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text(
        "limit_overseas_recipients_per_day_by_country = CN,RU,KP:33\n"
        "limit_overseas_recipients_per_day_by_country = CN,:33\n"
        "limit_overseas_recipients_per_day_by_country = cn:33\n"
        "limit_overseas_recipients_per_day_by_country = CN:-1\n"
        "limit_overseas_recipients_per_day_by_country = CN 33\n"
        "overseas_restrict = submission pop3 imap\n"
        "overseas_restrict = pop3\n")
    r = subprocess.run([str(SEKISHO), "check-config", str(conf)],
                       capture_output=True, text=True, env=sanitizer_env())
    assert r.returncode != 0
    for line in (2, 3, 4, 5, 7):
        assert f"bad.conf:{line}:" in r.stderr, r.stderr
    for line in (1, 6):
        assert f"bad.conf:{line}:" not in r.stderr, r.stderr


def login_notices(d):
    """The notices in alice's mailbox of a login refused from abroad."""
    out = []
    for f in d.files(ALICE):
        m = email.message_from_bytes(f.read_bytes(),
                                     policy=email.policy.default)
        if m["Auto-Submitted"] == "auto-generated" and \
                "login from abroad" in str(m["Subject"]):
            out.append(m)
    return out


def test_pop3_from_abroad_restricted(country_daemon, client_tls):
    d = country_daemon(extra=["overseas_restrict = submission pop3"])
    # home: unchanged
    pop3_login(d, JP4, client_tls).quit()

    # abroad without a permission: refused with the right password,
    # naming the country and the settings page
    with pytest.raises(poplib.error_proto) as e:
        pop3_login(d, CN4, client_tls)
    text = e.value.args[0].decode()
    assert text.startswith("-ERR [AUTH] ")
    assert "CN" in text and PORTAL in text and "abroad" in text
    assert "overseas_refused\t" + CN4 + "\tCN\tpop3 login" in \
        d.cli("events", ALICE).stdout

    # the right password from abroad: a notice in alice's own mailbox
    # (Japanese and English, what to do either way), once a day per
    # country: a second refusal from CN sends no second one
    wait_for(lambda: len(login_notices(d)) >= 1, 30, "the notice")
    with pytest.raises(poplib.error_proto):
        pop3_login(d, CN4, client_tls)
    time.sleep(1)    # a second notice would have arrived by now
    notices = login_notices(d)
    assert len(notices) == 1
    body = notices[0].get_content()
    assert "POP3" in body and "海外" in body and "abroad" in body
    assert CN4 in body and "CN" in body and PORTAL in body
    assert "change it now" in body and "パスワードを変更" in body
    d.wait_log(r"notice type=overseas_login_refused to=alice@example\.jp "
               r".*country=CN service=pop3")

    # the same permission as sending: for CN only
    d.cli("overseas", "allow", ALICE, "--countries", "CN")
    p = pop3_login(d, CN4, client_tls)
    assert p.stat()[0] >= 0
    p.quit()
    with pytest.raises(poplib.error_proto) as e:
        pop3_login(d, US4, client_tls)
    assert "US" in e.value.args[0].decode()
    # another country, another notice
    wait_for(lambda: len(login_notices(d)) == 2, 30, "the notice for US")

    # a wrong password from abroad is a plain failure (tells nothing)
    d.cli("overseas", "deny", ALICE)
    with pytest.raises(poplib.error_proto) as e:
        pop3_login(d, CN4, client_tls, password="wrong-password")
    assert "abroad" not in e.value.args[0].decode()


def test_pop3_from_abroad_not_restricted_by_default(country_daemon,
                                                    client_tls):
    d = country_daemon()
    p = pop3_login(d, CN4, client_tls)
    p.quit()
    # submission is still restricted
    with pytest.raises(smtplib.SMTPSenderRefused):
        send_from(d, CN4, client_tls)


def test_settings_page_names_countries(make_daemon, tmp_path):
    from test_portal import Web
    from conftest import accepts, free_port, wait_for
    port = free_port()
    d = make_daemon(extra=[geo_config_line(tmp_path / "geo"),
                           f"portal_url = {PORTAL}",
                           f"listen = portal 127.0.0.1:{port}"])

    wait_for(lambda: accepts(port), 20, "the portal port")
    w = Web(port)
    w.login()
    _, _, page = w.request("GET", "/?lang=en")
    assert 'name="countries"' in page
    status, headers, _ = w.request("POST", "/overseas", {
        "csrf": w.csrf(page), "action": "on", "countries": "us, gb"})
    assert status == 303 and headers["Location"] == "/?msg=on"
    _, _, page = w.request("GET", "/")
    assert '<span id="countries">US,GB</span>' in page
    assert 'value="US,GB"' in page
    assert "from US,GB" in d.cli("overseas", "status", ALICE).stdout
    # the abuse desk's account page and the JSON API show them too
    from test_portal import ADMIN_PW, admin_login, api
    d.cli("admin", "add", "desk", input=ADMIN_PW + "\n")
    d.portal_port = port
    adm, _, _ = admin_login(d)
    _, _, apage = adm.request("GET", "/admin/account?a=" + ALICE)
    assert '<span id="countries">US,GB</span>' in apage
    token = d.cli("api-token", "add", "mypage").stdout.strip()
    status, doc = api(d, "GET", ALICE, token=token)
    assert status == 200 and doc["overseas"]["countries"] == "US,GB"

    # not country codes, markup: refused, the permission unchanged
    for bad in ("<script>alert(1)</script>", "USA", "x" * 500):
        status, headers, _ = w.request("POST", "/overseas", {
            "csrf": w.csrf(page), "action": "on", "countries": bad})
        assert status == 303 and headers["Location"] == \
            "/?msg=badcountries"
    _, _, page = w.request("GET", "/?msg=badcountries")
    assert "two-letter codes" in page and "<script>alert" not in page
    assert "from US,GB" in d.cli("overseas", "status", ALICE).stdout

    # empty: every country
    w.request("POST", "/overseas", {"csrf": w.csrf(page), "action": "on",
                                    "countries": ""})
    _, _, page = w.request("GET", "/")
    assert '<span id="countries">every country</span>' in page
    assert "every country" in d.cli("overseas", "status", ALICE).stdout


def test_apop_from_abroad_restricted(country_daemon, client_tls, tmp_path):
    d = country_daemon(extra=["overseas_restrict = submission pop3",
                              f"apop_secret_key = {tmp_path / 'apop.key'}"])
    secret = "apop-Secret-9"
    d.cli("user", "apop", "enable", ALICE, input=secret + "\n")

    def apop_from(source):
        p = ProxyPOP3(source, d.ports["pop3_proxy"])
        p.stls(client_tls)
        try:
            p.apop(ALICE, secret)
        except Exception:
            p.close()
            raise
        return p

    apop_from(JP4).quit()
    with pytest.raises(poplib.error_proto) as e:
        apop_from(CN4)
    text = e.value.args[0].decode()
    assert text.startswith("-ERR [AUTH] ") and "(CN)" in text
    d.cli("overseas", "allow", ALICE)
    apop_from(CN4).quit()
