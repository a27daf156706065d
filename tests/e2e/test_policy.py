"""The sending policy end to end (issue 5): the overseas rule with its
permission, notices, send limits (also racing), sender alignment,
suspension, authentication throttling, events and trace.

Clients "from abroad" connect over loopback to a submission listener that
expects a PROXY header from 127.0.0.1, and the header carries a
documentation address that the test country database (geodata.py) maps:
192.0.2.0/24 JP, 198.51.100.0/24 US, 203.0.113.0/24 CN, 2001:db8::/33 JP,
2001:db8:8000::/33 US. Nothing leaves loopback.
"""
import concurrent.futures
import email
import email.policy
import smtplib
import socket
import time
from email.message import EmailMessage

import pytest

from conftest import (ALICE, ALICE_PW, BOB, BOB_PW, Daemon,
                      free_udp_tcp_port, wait_for)
from geodata import CN4, JP4, JP6, UNKNOWN4, US4, US6, geo_config_line
from pg import pg_cluster  # noqa: F401 (fixture)

PORTAL = "https://mail.example.jp/settings"


class ProxySMTP(smtplib.SMTP):
    """smtplib that first sends a PROXY v1 header claiming `source`."""

    def __init__(self, source, port, tls_context):
        self.source = source
        self.tls_context = tls_context
        super().__init__()
        self.connect("127.0.0.1", port)

    def connect(self, host, port):
        self._host = host
        self.sock = socket.create_connection((host, port), timeout=30)
        fam = "TCP6" if ":" in self.source else "TCP4"
        dst = "2001:db8::1" if fam == "TCP6" else "192.0.2.1"
        self.sock.sendall(
            f"PROXY {fam} {self.source} {dst} 40000 587\r\n".encode())
        self.file = None
        code, msg = self.getreply()
        assert code == 220, msg
        return code, msg

    def login_tls(self, user, password):
        self.ehlo()
        self.starttls(context=self.tls_context)
        self.ehlo()
        self.login(user, password)
        return self


def message(frm=ALICE, to=BOB, subject="hello", body="Hello.\n"):
    m = EmailMessage()
    m["From"] = frm
    m["To"] = to
    m["Subject"] = subject
    m.set_content(body)
    return m.as_bytes(policy=email.policy.SMTP)


@pytest.fixture(params=["sqlite", "postgresql"])
def policy_daemon(make_daemon, tmp_path, request):
    # the same suite against both store backends (issue 7)
    if request.param == "postgresql":
        kwargs_store = {"store": request.getfixturevalue("pg_cluster")
                        .store()}
    else:
        kwargs_store = {}

    def factory(extra=(), **kwargs):
        listeners = Daemon.DEFAULT_LISTENERS + (
            ("submission_proxy", "submission", True),)
        return make_daemon(
            proxy=True, listeners=listeners,
            extra=[geo_config_line(tmp_path / "geo"),
                   f"portal_url = {PORTAL}", *extra],
            **kwargs_store, **kwargs)
    return factory


def send_from(d, source, client_tls, frm=ALICE, rcpts=(BOB,), user=ALICE,
              password=ALICE_PW, msg=None):
    """Submit one message as `user` from `source`; returns the queue ID
    (from the 250 reply) or raises the smtplib error."""
    s = ProxySMTP(source, d.ports["submission_proxy"], client_tls)
    try:
        s.login_tls(user, password)
        code, text = s.mail(frm)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, text, frm)
        for r in rcpts:
            code, text = s.rcpt(r)
            if code != 250:
                raise smtplib.SMTPRecipientsRefused({r: (code, text)})
        code, text = s.data(msg or message(frm=frm, to=", ".join(rcpts)))
        if code != 250:
            raise smtplib.SMTPDataError(code, text)
        return text.decode().rsplit(" ", 1)[1]
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass


def test_overseas_refused_allowed_extended_expired(policy_daemon, client_tls):
    d = policy_daemon()
    # from home (JP): nothing changes
    send_from(d, JP4, client_tls)

    # from the US: refused at MAIL with the country and the settings page
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        send_from(d, US4, client_tls)
    assert e.value.smtp_code == 550
    text = e.value.smtp_error.decode()
    assert text.startswith("5.7.1 ")
    assert "US" in text and US4 in text and PORTAL in text

    # a notice in alice's own mailbox (Japanese and English), once: a
    # second attempt the same day sends no second notice
    with pytest.raises(smtplib.SMTPSenderRefused):
        send_from(d, US4, client_tls)
    wait_for(lambda: len(d.files(ALICE)) >= 1, 30, "the notice")
    time.sleep(1)    # a second notice would have arrived by now
    files = d.files(ALICE)
    assert len(files) == 1
    notice = email.message_from_bytes(files[0].read_bytes(),
                                      policy=email.policy.default)
    body = notice.get_content()
    assert "海外" in body and "abroad" in body
    assert US4 in body and "US" in body and PORTAL in body
    assert notice["Auto-Submitted"] == "auto-generated"

    # the subscriber turns it on: accepted from abroad; status shows the end
    out = d.cli("overseas", "allow", ALICE).stdout
    assert "allowed until" in out
    qid = send_from(d, US4, client_tls)
    d.wait_message(BOB, qid)
    assert "allowed until" in d.cli("overseas", "status", ALICE).stdout

    # turned off: refused again
    d.cli("overseas", "deny", ALICE)
    assert "not allowed" in d.cli("overseas", "status", ALICE).stdout
    with pytest.raises(smtplib.SMTPSenderRefused):
        send_from(d, US4, client_tls)

    # a short permission ends by itself
    d.cli("overseas", "allow", ALICE, "--duration", "2s")
    send_from(d, US4, client_tls)
    wait_for(lambda: "not allowed" in d.cli("overseas", "status",
                                            ALICE).stdout, 10,
             "the permission to end")
    with pytest.raises(smtplib.SMTPSenderRefused):
        send_from(d, US4, client_tls)

    events = d.cli("events", ALICE).stdout
    assert "overseas_refused\t" + US4 + "\tUS" in events


def test_extend_moves_end(policy_daemon):
    d = policy_daemon()
    d.cli("overseas", "allow", ALICE, "--days", "1")
    first = d.cli("overseas", "status", ALICE).stdout
    d.cli("overseas", "allow", ALICE)          # 7 days from now
    second = d.cli("overseas", "status", ALICE).stdout
    assert first != second
    # the end is 7 days ahead: the date printed is today + 7 (JST)
    import datetime
    import zoneinfo
    end = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Tokyo")) + \
        datetime.timedelta(days=7)
    assert end.strftime("%Y-%m-%d") in second


def test_ipv6_unknown_and_trusted(policy_daemon, client_tls):
    d = policy_daemon(extra=["trusted_networks = 203.0.113.0/24"])
    send_from(d, JP6, client_tls)
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        send_from(d, US6, client_tls)
    assert "US" in e.value.smtp_error.decode()
    # not in the database: refused by default (geo_unknown = refuse)
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        send_from(d, UNKNOWN4, client_tls)
    assert "unknown country" in e.value.smtp_error.decode()
    # CN, but a trusted network (webmail): never refused
    send_from(d, CN4, client_tls)


def test_receiving_from_abroad_unaffected(policy_daemon):
    d = policy_daemon()
    from conftest import RawSMTP
    with RawSMTP(d.ports["mx_proxy"],
                 prefix=f"PROXY TCP4 {US4} 192.0.2.1 40000 25\r\n".encode()
                 ) as c:
        assert c.cmd("EHLO sender.example.com")[0] == 250
        assert c.cmd("MAIL FROM:<someone@example.com>")[0] == 250
        assert c.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"From: someone@example.com\r\nSubject: hi\r\n\r\nhi\r\n.\r\n")
        code, lines = c.reply()
        assert code == 250, lines
    wait_for(lambda: d.files(ALICE), 30, "delivery from abroad over mx")


def test_daily_recipient_limit(policy_daemon, client_tls):
    d = policy_daemon()
    d.cli("limits", "set", ALICE, "recipients_per_day=3")
    send_from(d, JP4, client_tls, rcpts=(BOB, BOB))
    s = ProxySMTP(JP4, d.ports["submission_proxy"], client_tls)
    s.login_tls(ALICE, ALICE_PW)
    assert s.mail(ALICE)[0] == 250
    assert s.rcpt(BOB)[0] == 250            # the 3rd of the day
    code, text = s.rcpt(BOB)                # the 4th: a 4xx naming the limit
    assert code == 451
    text = text.decode()
    assert text.startswith("4.7.1 Daily recipient limit (3)")
    assert "resets at" in text and "JST" in text
    code, _ = s.data(message())             # the accepted one still goes
    assert code == 250
    # now the day is used up: MAIL itself gets the 4xx
    code, text = s.mail(ALICE)
    assert code == 451 and b"Daily recipient limit (3)" in text
    s.quit()
    out = d.cli("limits", "show", ALICE).stdout
    assert "recipients_per_day: 3 (sent today: 3)" in out
    assert "limit_reached" in d.cli("events", ALICE).stdout


def test_racing_sessions_accept_exactly_the_limit(policy_daemon, client_tls):
    d = policy_daemon(extra=["max_connections_per_ip = 100"])
    d.cli("limits", "set", ALICE, "recipients_per_day=7")

    def one(i):
        try:
            send_from(d, JP4, client_tls, rcpts=(BOB,))
            return "ok"
        except smtplib.SMTPException as e:
            code = getattr(e, "smtp_code", None)
            if code is None and hasattr(e, "recipients"):
                code = list(e.recipients.values())[0][0]
            return code

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    assert results.count("ok") == 7, results
    assert all(r == "ok" or r == 451 for r in results), results
    assert "(sent today: 7)" in d.cli("limits", "show", ALICE).stdout
    wait_for(lambda: len(d.files(BOB)) == 7, 30, "7 deliveries")


def test_counter_resets_next_day(policy_daemon, client_tls, monkeypatch):
    d = policy_daemon()
    d.cli("limits", "set", ALICE, "messages_per_day=1")
    send_from(d, JP4, client_tls)
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        send_from(d, JP4, client_tls)
    assert e.value.smtp_code == 451
    assert "Daily message limit (1)" in e.value.smtp_error.decode()
    # the next day in Asia/Tokyo: the daemon's clock moved a day on
    d.stop()
    monkeypatch.setenv("SEKISHO_CLOCK_OFFSET", "86400")
    d.start()
    send_from(d, JP4, client_tls)


def test_sender_alignment(policy_daemon, client_tls):
    d = policy_daemon()
    d.cli("user", "alias", "add", "info@example.jp", ALICE)
    # envelope sender not hers
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        send_from(d, JP4, client_tls, frm=BOB)
    assert e.value.smtp_code == 553
    assert e.value.smtp_error.decode().startswith("5.7.1 ")
    # header From not hers, envelope fine
    with pytest.raises(smtplib.SMTPDataError) as e:
        send_from(d, JP4, client_tls,
                  msg=message(frm="Mallory <mallory@evil.example>"))
    assert e.value.smtp_code == 550
    assert b"mallory@evil.example" in e.value.smtp_error
    # her alias, in both places: accepted
    send_from(d, JP4, client_tls, frm="info@example.jp")
    # only accepted mail counts
    assert "(sent today: 1)" in d.cli("limits", "show", ALICE).stdout


def test_suspended_after_login_refused_at_mail(policy_daemon, client_tls):
    d = policy_daemon()
    s = ProxySMTP(JP4, d.ports["submission_proxy"], client_tls)
    s.login_tls(ALICE, ALICE_PW)
    d.cli("user", "suspend", ALICE, "--reason", "spam report 123")
    code, text = s.mail(ALICE)
    assert code == 550 and b"suspended" in text
    s.close()


def test_throttling_locks_address_not_others(policy_daemon, client_tls):
    d = policy_daemon(extra=["auth_max_failures_per_ip = 3",
                             "auth_fail_delay = 0s"])
    for _ in range(3):
        s = ProxySMTP(US4, d.ports["submission_proxy"], client_tls)
        s.ehlo()
        s.starttls(context=client_tls)
        s.ehlo()
        # one AUTH PLAIN each (smtplib's login() would try two mechanisms)
        s.user, s.password = ALICE, "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.auth("PLAIN", s.auth_plain)
        assert e.value.smtp_code == 535
        s.close()
    # the right password from that address: locked, 4xx
    s = ProxySMTP(US4, d.ports["submission_proxy"], client_tls)
    s.ehlo()
    s.starttls(context=client_tls)
    s.ehlo()
    s.user, s.password = ALICE, ALICE_PW
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        s.auth("PLAIN", s.auth_plain)
    assert e.value.smtp_code == 454
    assert b"try again after" in e.value.smtp_error
    s.close()
    # another address is not locked by the per-address count
    ProxySMTP(JP4, d.ports["submission_proxy"], client_tls).login_tls(
        ALICE, ALICE_PW).quit()
    assert "auth_locked_ip" in d.cli("events").stdout


def test_trace_from_spam_report(policy_daemon, client_tls, tmp_path):
    d = policy_daemon()
    d.cli("overseas", "allow", ALICE)
    qid = send_from(d, US4, client_tls, rcpts=(BOB,))
    delivered = d.wait_message(BOB, qid).read_bytes()

    # pasted headers only
    headers = delivered.split(b"\n\n", 1)[0] + b"\n"
    (tmp_path / "headers.txt").write_bytes(headers)
    out = d.cli("trace", str(tmp_path / "headers.txt")).stdout
    assert f"queue_id: {qid}" in out
    assert f"account: {ALICE}" in out
    assert f"client: {US4}" in out and "country: US" in out

    # the spam as a message/rfc822 attachment of a report
    report = EmailMessage()
    report["From"] = "abuse-reporter@victim.example"
    report["To"] = "abuse@example.jp"
    report["Subject"] = "spam from your network"
    report.set_content("See the attached spam.\n")
    report.add_attachment(email.message_from_bytes(delivered))
    (tmp_path / "report.eml").write_bytes(bytes(report))
    out = d.cli("trace", str(tmp_path / "report.eml")).stdout
    assert f"account: {ALICE}" in out

    # an unrelated message: nothing found, exit 1
    (tmp_path / "other.eml").write_bytes(message())
    r = d.cli("trace", str(tmp_path / "other.eml"), check=False)
    assert r.returncode == 1


@pytest.fixture
def relay_dns(tmp_path):
    """dnsmasq on a loopback port: 198.51.100.10 (US) is
    relay1.mail.sender.example both ways; 198.51.100.11 claims
    fake.mail.sender.example, which resolves to another address."""
    import shutil
    import subprocess
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq not installed")
    port = free_udp_tcp_port()
    proc = subprocess.Popen(
        ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
         f"--port={port}", "--listen-address=127.0.0.1",
         "--bind-interfaces", "--user=root", "--group=root",
         f"--pid-file={tmp_path / 'dnsmasq.pid'}",
         "--host-record=relay1.mail.sender.example,198.51.100.10",
         "--ptr-record=11.100.51.198.in-addr.arpa,fake.mail.sender.example",
         "--host-record=fake.mail.sender.example,198.51.100.99"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: proc.poll() is not None or
                 _dns_answers(port), 10, "dnsmasq")
        assert proc.poll() is None, proc.stderr.read()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _dns_answers(port):
    """A PTR query for 198.51.100.10 gets a reply (dnsmasq is up)."""
    q = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
         b"\x0210\x03100\x0251\x03198\x07in-addr\x04arpa\x00\x00\x0c\x00\x01")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(q, ("127.0.0.1", port))
            return len(s.recv(512)) > 12
        except OSError:
            return False


def test_trusted_relay_names_fcrdns(policy_daemon, client_tls, relay_dns):
    d = policy_daemon(extra=["trusted_relay_names = sender.example",
                             f"dns_servers = 127.0.0.1:{relay_dns}"])
    # PTR relay1.mail.sender.example, which resolves back: let through
    send_from(d, "198.51.100.10", client_tls)
    assert "trusted relay=relay1.mail.sender.example" in d.log()
    # PTR in the listed domain, but its A record is another address
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        send_from(d, "198.51.100.11", client_tls)
    assert e.value.smtp_code == 550


def test_sighup_reloads_geo_without_dropping_sessions(policy_daemon,
                                                      client_tls, tmp_path):
    import signal
    from geodata import NETWORKS, write_tor_files
    d = policy_daemon()
    # a session from the US is open (logged in) before the reload
    s = ProxySMTP(US4, d.ports["submission_proxy"], client_tls)
    s.login_tls(ALICE, ALICE_PW)
    code, _ = s.mail(ALICE)
    assert code == 550
    # the operator's new database says 198.51.100.0/24 is JP
    moved = [(net, "JP" if net == "198.51.100.0/24" else cc)
             for net, cc in NETWORKS]
    write_tor_files(tmp_path / "geo", moved)
    mark = d.log_mark()
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("geo database reloaded", since=mark)
    # the same session goes on, and the new answer applies to it
    code, text = s.mail(ALICE)
    assert code == 250, text
    assert s.rcpt(BOB)[0] == 250
    assert s.data(message())[0] == 250
    s.quit()
    # a broken database is refused; the good one stays in force
    (tmp_path / "geo" / "geoip").write_text("not,a,range\n")
    mark = d.log_mark()
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("geo database not reloaded", since=mark)
    send_from(d, US4, client_tls)


def test_trusted_relay_names_per_account(policy_daemon, client_tls, relay_dns):
    # no global list: only the account that opted in is let through
    d = policy_daemon(extra=[f"dns_servers = 127.0.0.1:{relay_dns}"])
    d.cli("limits", "set", ALICE, "relay_names=gmail.example,sender.example")
    assert "relay_names: gmail.example,sender.example" in \
        d.cli("limits", "show", ALICE).stdout
    send_from(d, "198.51.100.10", client_tls)
    with pytest.raises(smtplib.SMTPSenderRefused):
        send_from(d, "198.51.100.10", client_tls, frm=BOB, user=BOB,
                  password=BOB_PW)
    # back to none: refused again
    d.cli("limits", "set", ALICE, "relay_names=default")
    with pytest.raises(smtplib.SMTPSenderRefused):
        send_from(d, "198.51.100.10", client_tls)
