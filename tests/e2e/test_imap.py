"""IMAP from Dovecot beside sekisho (issue 19, docs/imap.md): a real
Dovecot (Debian 12's 2.3) configured from contrib/dovecot/ reads sekisho's
accounts through the dovecot_users view (SQLite and PostgreSQL) and serves
the Maildirs sekisho delivers into (directly, or over LMTP); sekisho's
POP3 and Dovecot's IMAP share one Maildir; sekisho is Dovecot's auth
policy server, so an IMAP login meets the same throttling, locks and
events as SMTP AUTH and POP3."""
import imaplib
import poplib
import re
import smtplib

import pytest

from conftest import ALICE, ALICE_PW, BOB, BOB_PW, DOMAIN, mx_send
from dovecot import make_dovecot  # noqa: F401 (fixture)
from pg import pg_cluster  # noqa: F401 (fixture)
from geodata import CN4, JP4, US4, geo_config_line
from test_country import login_notices

SECRET = "test-policy-secret"
LISTENERS = (("mx", "mx", False), ("submission", "submission", False),
             ("pop3", "pop3", False), ("pop3s", "pop3s", False),
             ("authpolicy", "authpolicy", False))
BASE = [f"authpolicy_secret = {SECRET}", "auth_fail_delay = 0s"]


def message(subject, rcpt=ALICE):
    return (f"From: Sender <sender@example.org>\r\nTo: {rcpt}\r\n"
            f"Subject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.org>\r\n"
            f"\r\nbody of {subject}\r\n").encode()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kind(request):
    return request.param


@pytest.fixture
def store_kw(store_kind, request):
    if store_kind == "sqlite":
        return {}
    return {"store": request.getfixturevalue("pg_cluster").store()}


def pair(make_daemon, make_dovecot, extra=(), store=None, **dkw):
    kw = {"store": store} if store else {}
    d = make_daemon(listeners=LISTENERS, extra=BASE + list(extra), **kw)
    dc = make_dovecot(d, policy_port=d.ports["authpolicy"], secret=SECRET,
                      **dkw)
    return d, dc


def deliver(daemon, subject, rcpt=ALICE, mailbox=ALICE):
    have = len(daemon.files(mailbox))
    mx_send(daemon.ports["mx"], rcpt, message(subject, rcpt))
    daemon.wait_files(mailbox, have + 1)


def maildir(daemon, address=ALICE):
    local, domain = address.split("@")
    return daemon.maildir_root / domain / local / "Maildir"


def all_files(daemon, address=ALICE):
    md = maildir(daemon, address)
    return sorted(p.relative_to(md).as_posix() for sub in ("new", "cur")
                  for p in (md / sub).glob("*"))


def pop3_login(daemon, client_tls, user=ALICE, password=ALICE_PW):
    p = poplib.POP3_SSL("127.0.0.1", daemon.ports["pop3s"],
                        context=client_tls, timeout=15)
    p.user(user)
    p.pass_(password)
    return p


def uidls(p):
    return dict(line.split() for line in
                (x.decode() for x in p.uidl()[1]))


def imap_subjects(m):
    typ, data = m.select("INBOX")
    assert typ == "OK"
    n = int(data[0])
    if n == 0:
        return []
    typ, data = m.fetch(f"1:{n}", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return [part[1].decode().strip() for part in data
            if isinstance(part, tuple)]


def pop3_numbers(p):
    """{subject: message number} by TOP (POP3's order is the names'
    order, which need not be delivery order within a second)."""
    out = {}
    for n in range(1, p.stat()[0] + 1):
        for line in p.top(n, 0)[1]:
            if line.startswith(b"Subject: "):
                out[line[9:].decode()] = n
    return out


def imap_number(m, subject):
    typ, data = m.search(None, "SUBJECT", f'"{subject}"')
    assert typ == "OK" and len(data[0].split()) == 1, data
    return data[0].decode()


def events(daemon, account=None):
    return daemon.cli("events", *([account] if account else [])).stdout


# ---- item 1: Dovecot on sekisho's accounts ----------------------------

def test_imap_starttls_and_993_read_flag_then_pop3(make_daemon, make_dovecot,
                                                   client_tls, store_kw):
    """Both stores: log in over STARTTLS (143-like) and implicit TLS
    (993-like) with a sekisho account, read a message sekisho delivered,
    flag it; then POP3 gives the same UIDL as before the flag, and what
    POP3 deletes is gone in IMAP."""
    d, dc = pair(make_daemon, make_dovecot, **store_kw)
    deliver(d, "first message")
    deliver(d, "second message")
    p = pop3_login(d, client_tls)
    before = uidls(p)
    p.quit()
    assert len(before) == 2

    m = dc.imap_starttls(client_tls)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    assert m.select("INBOX")[1] == [b"2"]
    first = imap_number(m, "first message")
    typ, data = m.fetch(first, "(BODY[])")     # marks it \Seen
    assert typ == "OK" and b"body of first message" in data[0][1]
    assert m.store(first, "+FLAGS", "(\\Flagged)")[0] == "OK"
    m.logout()
    # Dovecot moved it to cur/ with its flags
    assert any(re.match(r"cur/.*:2,FS$", f) for f in all_files(d)), \
        all_files(d)

    p = pop3_login(d, client_tls)
    assert uidls(p) == before
    n = pop3_numbers(p)["first message"]
    lines = p.retr(n)[1]
    assert b"Subject: first message" in lines
    p.dele(n)
    p.quit()

    m = dc.imaps(client_tls)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    assert imap_subjects(m) == ["Subject: second message"]
    m.logout()
    assert f"login=alice@example.jp account=- client=127.0.0.1 protocol=imap" in d.log()


def test_imap_alias_login_reads_the_account(make_daemon, make_dovecot,
                                            client_tls):
    """An alias logs in to its account's mailbox (the view's rows)."""
    d, dc = pair(make_daemon, make_dovecot)
    d.cli("user", "alias", "add", f"info@{DOMAIN}", ALICE)
    deliver(d, "to the alias", rcpt=f"info@{DOMAIN}")
    m = dc.imaps(client_tls)
    assert m.login(f"INFO@{DOMAIN}", ALICE_PW)[0] == "OK"
    assert imap_subjects(m) == ["Subject: to the alias"]
    m.logout()
    # a wrong password through the alias fails as for the account
    m = dc.imaps(client_tls)
    with pytest.raises(imaplib.IMAP4.error):
        m.login(f"info@{DOMAIN}", BOB_PW)


def test_imap_suspended_refused_with_text_then_resumed(make_daemon,
                                                       make_dovecot,
                                                       client_tls, store_kw):
    d, dc = pair(make_daemon, make_dovecot, **store_kw)
    d.cli("user", "suspend", ALICE, "--reason", "spam sent 2026-12-01")
    m = dc.imaps(client_tls)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login(ALICE, ALICE_PW)
    text = str(e.value)
    assert "This account is suspended" in text and "spam sent" in text
    d.wait_log(r"authpolicy command=report login=alice@example\.jp "
               r"account=alice@example\.jp client=127\.0\.0\.1 "
               r"protocol=imap .*result=report-suspended")
    d.cli("user", "resume", ALICE)
    m = dc.imaps(client_tls)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()


def test_lmtp_layout(make_daemon, make_dovecot, client_tls):
    """local_delivery = lmtp: sekisho hands local mail to Dovecot's LMTP,
    which stores it where IMAP and sekisho's POP3 read it."""
    d = make_daemon(listeners=LISTENERS, extra=BASE, start=False)
    dc = make_dovecot(d, policy_port=d.ports["authpolicy"], secret=SECRET)
    with open(d.conf, "a") as f:
        f.write(f"local_delivery = lmtp:127.0.0.1:{dc.ports['lmtp']}\n")
    d.start()
    mx_send(d.ports["mx"], ALICE, message("over lmtp"))
    d.wait_files(ALICE, 1)
    assert "lmtp(" in dc.log() and "saved mail to INBOX" in dc.log()
    m = dc.imaps(client_tls)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    assert imap_subjects(m) == ["Subject: over lmtp"]
    m.logout()
    p = pop3_login(d, client_tls)
    assert b"Subject: over lmtp" in p.retr(1)[1]
    p.quit()


# ---- item 2: POP3 and IMAP on one Maildir -------------------------------

def test_pop3_session_survives_imap_rename_and_expunge(make_daemon,
                                                       make_dovecot,
                                                       client_tls):
    """A POP3 session lists the mailbox; meanwhile IMAP reads and flags
    one message (Dovecot renames it to cur/NAME:2,FS) and expunges
    another. POP3 still retrieves the renamed one by its UIDL and deletes
    it at QUIT; the expunged one is reported gone, not an error."""
    d, dc = pair(make_daemon, make_dovecot)
    for s in ("keep", "flag me", "expunge me"):
        deliver(d, s)
    p = pop3_login(d, client_tls)
    listed = uidls(p)
    num = pop3_numbers(p)
    m = dc.imaps(client_tls)
    m.login(ALICE, ALICE_PW)
    m.select("INBOX")
    flag, gone = imap_number(m, "flag me"), imap_number(m, "expunge me")
    m.fetch(flag, "(BODY[])")
    m.store(flag, "+FLAGS", "(\\Flagged)")
    m.store(gone, "+FLAGS", "(\\Deleted)")
    m.expunge()
    m.logout()
    assert any(f.endswith(":2,FS") for f in all_files(d))
    lines = p.retr(num["flag me"])[1]
    assert b"Subject: flag me" in lines
    with pytest.raises(poplib.error_proto):
        p.retr(num["expunge me"])
    p.dele(num["flag me"])
    p.quit()
    assert len(all_files(d)) == 1
    p = pop3_login(d, client_tls)
    assert list(uidls(p).values()) == [listed[str(num["keep"])]]
    p.quit()


# ---- item 3: the auth policy server ------------------------------------

def smtp_auth_fail(d, client_tls, user, password):
    s = smtplib.SMTP("127.0.0.1", d.ports["submission"], timeout=15)
    s.starttls(context=client_tls)
    s.ehlo()
    s.user, s.password = user, password
    try:
        # one AUTH PLAIN (smtplib's login() would try LOGIN too)
        s.auth("PLAIN", s.auth_plain)
    except smtplib.SMTPAuthenticationError as e:
        return e.smtp_code
    finally:
        s.close()
    return 235


def test_mixed_imap_and_smtp_failures_share_the_address_lock(
        make_daemon, make_dovecot, client_tls):
    """5 wrong passwords over IMAP and 5 over SMTP AUTH from one address
    reach auth_max_failures_per_ip = 10: then the right password is
    refused over both."""
    d, dc = pair(make_daemon, make_dovecot,
                 extra=["auth_max_failures_per_ip = 10",
                        "auth_max_failures_per_account = 100",
                        "auth_trusted_address_days = 0"])
    for _ in range(5):
        m = dc.imaps(client_tls)
        with pytest.raises(imaplib.IMAP4.error):
            m.login(ALICE, "wrong-imap")
    assert d.log().count("result=report-fail") == 5
    for _ in range(4):
        assert smtp_auth_fail(d, client_tls, BOB, "wrong-smtp") == 535
    # 9 failures: not locked yet
    m = dc.imaps(client_tls)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()
    assert smtp_auth_fail(d, client_tls, BOB, "wrong-smtp") == 535
    assert "auth_locked_ip" in events(d)
    # locked: the right password over IMAP and over SMTP
    m = dc.imaps(client_tls)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login(ALICE, ALICE_PW)
    assert "Too many failed logins" in str(e.value)
    assert smtp_auth_fail(d, client_tls, BOB, BOB_PW) == 454
    d.wait_log(r"authpolicy command=allow login=alice@example\.jp account=- "
               r"client=127\.0\.0\.1 protocol=imap .*result=locked "
               r"status=-1")


def test_stranger_over_imap_cannot_lock_owner_out(make_daemon, make_dovecot,
                                                  client_tls):
    """The account lock from a stranger's failures (forwarded address via
    login_trusted_networks + IMAP ID) does not refuse its owner from the
    address the owner logs in from (auth_trusted_address_days)."""
    d, dc = pair(make_daemon, make_dovecot,
                 extra=["auth_max_failures_per_ip = 100",
                        "auth_max_failures_per_account = 5",
                        "trusted_networks = 192.0.2.0/24",
                        "trusted_networks = 203.0.113.0/24"])
    m = dc.imaps(client_tls, forwarded=JP4)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()
    for _ in range(5):
        m = dc.imaps(client_tls, forwarded=CN4)
        with pytest.raises(imaplib.IMAP4.error):
            m.login(ALICE, "guess")
    assert "auth_locked_account" in events(d)
    m = dc.imaps(client_tls, forwarded=CN4)
    with pytest.raises(imaplib.IMAP4.error):
        m.login(ALICE, ALICE_PW)
    m = dc.imaps(client_tls, forwarded=JP4)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()


def test_imap_login_from_abroad_records_event(make_daemon, make_dovecot,
                                              client_tls, tmp_path):
    d, dc = pair(make_daemon, make_dovecot,
                 extra=[geo_config_line(tmp_path / "geo")])
    m = dc.imaps(client_tls, forwarded=JP4)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()
    assert "login_abroad" not in events(d, ALICE)
    m = dc.imaps(client_tls, forwarded=US4)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()
    ev = events(d, ALICE)
    assert re.search(r"login_abroad\t198\.51\.100\.10\tUS", ev), ev


@pytest.mark.parametrize("reject_on_fail", ["no", "yes"])
def test_policy_server_down_dovecot_fallback(make_daemon, make_dovecot,
                                             client_tls, reject_on_fail):
    """sekisho's policy listener unreachable: with Dovecot's default
    auth_policy_reject_on_fail = no, logins go on on Dovecot's own checks
    (a wrong password is still refused); with yes, every login is
    refused."""
    d = make_daemon(listeners=LISTENERS, extra=BASE)
    from conftest import free_port
    dc = make_dovecot(d, policy_port=free_port(), secret=SECRET,
                      reject_on_fail=reject_on_fail)
    m = dc.imaps(client_tls)
    if reject_on_fail == "no":
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
        m.logout()
        m = dc.imaps(client_tls)
        with pytest.raises(imaplib.IMAP4.error):
            m.login(ALICE, "wrong")
    else:
        with pytest.raises(imaplib.IMAP4.error):
            m.login(ALICE, ALICE_PW)
    assert "Policy server" in dc.log() or "policy" in dc.log()


def test_imap_from_abroad_restricted(make_daemon, make_dovecot, client_tls,
                                     tmp_path, store_kw):
    """overseas_restrict naming imap: the right password from abroad
    without a permission is refused by the check after authentication,
    naming the country; the permission (as for sending) lets it in; a
    wrong password from abroad is a plain failure that tells nothing."""
    d, dc = pair(make_daemon, make_dovecot, **store_kw, extra=[
        geo_config_line(tmp_path / "geo"),
        "overseas_restrict = submission imap",
        "portal_url = https://portal.example.jp/"])
    m = dc.imaps(client_tls, forwarded=JP4)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()
    m = dc.imaps(client_tls, forwarded=CN4)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login(ALICE, ALICE_PW)
    assert "CN" in str(e.value) and "abroad" in str(e.value)
    assert "overseas_refused\t" + CN4 + "\tCN\timap login" in \
        events(d, ALICE)
    # the right password from abroad: the subscriber is told, in their
    # own mailbox, naming IMAP
    d.wait_log(r"notice type=overseas_login_refused to=alice@example\.jp "
               r".*country=CN service=imap")
    notices = login_notices(d)
    assert len(notices) == 1
    body = notices[0].get_content()
    assert "IMAP" in body and CN4 in body and "海外" in body
    d.wait_log(r"authpolicy command=allow login=alice@example\.jp "
               r"account=alice@example\.jp client=203\.0\.113\.10 "
               r"protocol=imap .*result=overseas status=-1")
    # not counted as a failed password
    assert "result=report-fail" not in d.log()
    d.cli("overseas", "allow", ALICE, "--countries", "CN")
    m = dc.imaps(client_tls, forwarded=CN4)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()
    d.cli("overseas", "deny", ALICE)
    m = dc.imaps(client_tls, forwarded=CN4)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login(ALICE, "wrong-password")
    assert "abroad" not in str(e.value)


def test_imap_from_abroad_not_restricted_by_default(make_daemon,
                                                    make_dovecot,
                                                    client_tls, tmp_path):
    d, dc = pair(make_daemon, make_dovecot,
                 extra=[geo_config_line(tmp_path / "geo")])
    m = dc.imaps(client_tls, forwarded=CN4)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()


def test_pop3_deletes_a_message_imap_expunged_meanwhile(make_daemon,
                                                         make_dovecot,
                                                         client_tls):
    """DELE of a message that IMAP expunged after POP3's listing: QUIT
    still succeeds (+OK), and the other messages stay."""
    d, dc = pair(make_daemon, make_dovecot)
    for s in ("one", "two"):
        deliver(d, s)
    p = pop3_login(d, client_tls)
    num = pop3_numbers(p)
    m = dc.imaps(client_tls)
    m.login(ALICE, ALICE_PW)
    m.select("INBOX")
    m.store(imap_number(m, "one"), "+FLAGS", "(\\Deleted)")
    m.expunge()
    m.logout()
    p.dele(num["one"])
    assert p.quit().startswith(b"+OK")
    assert len(all_files(d)) == 1
    assert "unlink" not in d.log()


def test_suspended_reply_shown_to_client(make_daemon, make_dovecot,
                                         client_tls):
    d, dc = pair(make_daemon, make_dovecot)
    d.cli("user", "suspend", ALICE)
    m = dc.imap_starttls(client_tls)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login(ALICE, ALICE_PW)
    assert "[CONTACTADMIN] This account is suspended; please contact your provider's " \
        "support" in str(e.value)


def test_demo_imap_prepares_dovecot(tmp_path):
    """scripts/demo --imap --no-serve: the authpolicy listener in the
    demo's config, a Dovecot config from contrib/dovecot/ that Dovecot
    accepts, and the IMAP ports printed."""
    import os
    import subprocess
    from conftest import REPO
    from dovecot import DOVECOT
    demo = tmp_path / "demo"
    env = dict(os.environ, SEKISHO_DEMO_DIR=str(demo),
               SEKISHO_DEMO_NO_SETUP="1")
    r = subprocess.run([str(REPO / "scripts" / "demo"), "--imap",
                        "--no-serve"], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    for want in ("127.0.0.1:10143 imap", "127.0.0.1:10993 imaps",
                 "127.0.0.1:10031 authpolicy", "IMAP4_SSL"):
        assert want in r.stdout, r.stdout
    conf = (demo / "sekisho.conf").read_text()
    assert "listen = authpolicy 127.0.0.1:10031" in conf
    secret = re.search(r"^authpolicy_secret = (\S+)$", conf, re.M).group(1)
    dconf = demo / "dovecot" / "dovecot.conf"
    text = dconf.read_text()
    assert f"X-API-Key:{secret}" in text and "@" not in "".join(
        l for l in text.splitlines() if "@%" not in l and "%{" not in l
        and not l.lstrip().startswith("#"))
    c = subprocess.run([DOVECOT, "-n", "-c", str(dconf)],
                       capture_output=True, text=True, timeout=30)
    assert c.returncode == 0, c.stderr
    assert "auth_policy_server_url = http://127.0.0.1:10031/" in c.stdout
