"""Mail clients that set themselves up (issue 19 item 5): Thunderbird
autoconfig, Outlook autodiscover (POX) and an Apple .mobileconfig from the
settings page, fetched with curl and read the way the clients read them."""
import plistlib
import subprocess
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from conftest import ALICE, HOSTNAME
from test_portal import Web, portal_daemon  # noqa: F401

HOSTS = {"submission": "smtp.example.jp", "pop3": "pop.example.jp",
         "imap": "imap.example.jp"}
WANT = {("imap", 993, "SSL"), ("imap", 143, "STARTTLS"),
        ("pop3", 995, "SSL"), ("pop3", 110, "STARTTLS"),
        ("smtp", 587, "STARTTLS"), ("smtp", 465, "SSL")}


@pytest.fixture
def ac_daemon(portal_daemon):  # noqa: F811
    return portal_daemon(extra=[f"client_hostname_{k} = {v}"
                                for k, v in HOSTS.items()])


def curl(d, path, data=None, cookie=None, method=None):
    """curl -k against the settings page; returns (status, headers, body
    bytes)."""
    args = ["curl", "-sk", "-D", "-", "--max-time", "20"]
    if data is not None:
        args += ["--data-binary", "@-", "-H",
                 "Content-Type: text/xml; charset=utf-8"]
    if method:
        args += ["-X", method]
    if cookie:
        args += ["-H", f"Cookie: {cookie}"]
    args.append(f"https://127.0.0.1:{d.portal_port}{path}")
    r = subprocess.run(args, input=data, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def thunderbird_servers(body):
    """What Thunderbird takes from config-v1.1.xml (its readFromXML):
    every incomingServer and outgoingServer with hostname, port,
    socketType, authentication and username."""
    root = ET.fromstring(body)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    servers = set()
    for tag in ("incomingServer", "outgoingServer"):
        for s in provider.findall(tag):
            kind = s.get("type")
            assert kind in (("imap", "pop3") if tag == "incomingServer"
                            else ("smtp",))
            host = s.findtext("hostname")
            port = int(s.findtext("port"))
            sock = s.findtext("socketType")
            assert sock in ("SSL", "STARTTLS")      # never plain
            assert s.findtext("authentication") == "password-cleartext"
            assert s.findtext("username") == "%EMAILADDRESS%"
            expect = HOSTS["submission" if kind == "smtp" else kind]
            assert host == expect, (kind, host)
            servers.add((kind, port, sock))
    return provider, servers


@pytest.mark.parametrize("path", [
    "/.well-known/autoconfig/mail/config-v1.1.xml",
    "/mail/config-v1.1.xml"])
def test_thunderbird_autoconfig(ac_daemon, path):
    d = ac_daemon
    q = urllib.parse.urlencode({"emailaddress": ALICE})
    status, headers, body = curl(d, f"{path}?{q}")
    assert status == 200
    assert headers["content-type"].startswith("application/xml")
    provider, servers = thunderbird_servers(body)
    assert servers == WANT
    assert provider.get("id") == "example.jp"
    assert provider.findtext("domain") == "example.jp"
    # without the address: the host name's
    status, _, body = curl(d, path)
    provider, servers = thunderbird_servers(body)
    assert servers == WANT and provider.findtext("domain") == HOSTNAME


def test_host_names_default_to_hostname(portal_daemon):  # noqa: F811
    d = portal_daemon()
    _, _, body = curl(d, "/mail/config-v1.1.xml")
    root = ET.fromstring(body)
    hosts = {s.findtext("hostname") for s in root.iter()
             if s.tag in ("incomingServer", "outgoingServer")}
    assert hosts == {HOSTNAME}


def test_xml_injection_through_emailaddress(ac_daemon):
    d = ac_daemon
    for evil in ('x@example.jp"><evil/>', "a@b</domain><evil>x</evil>",
                 "a@b&amp;c", "a@exa'mple.jp", "<evil/>@example.jp",
                 "a@" + "b" * 300, "a@b\r\nX-Evil: 1"):
        q = urllib.parse.urlencode({"emailaddress": evil})
        status, headers, body = curl(d, f"/mail/config-v1.1.xml?{q}")
        assert status == 200
        assert b"<evil" not in body and b"X-Evil" not in headers
        provider, servers = thunderbird_servers(body)   # well-formed
        assert servers == WANT
        assert provider.findtext("domain") == HOSTNAME
        assert not list(ET.fromstring(body).iter("evil"))


AUTODISCOVER_REQ = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{addr}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
"""
NS = {"r": "http://schemas.microsoft.com/exchange/autodiscover/responseschema"
           "/2006",
      "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/"
           "responseschema/2006a"}


def test_outlook_autodiscover(ac_daemon):
    d = ac_daemon
    for path in ("/autodiscover/autodiscover.xml",
                 "/Autodiscover/Autodiscover.xml"):
        status, headers, body = curl(
            d, path, data=AUTODISCOVER_REQ.format(addr=ALICE).encode())
        assert status == 200 and "xml" in headers["content-type"]
        root = ET.fromstring(body)
        acct = root.find("o:Response/o:Account", NS)
        assert acct.findtext("o:AccountType", namespaces=NS) == "email"
        assert acct.findtext("o:Action", namespaces=NS) == "settings"
        got = set()
        for p in acct.findall("o:Protocol", NS):
            kind = p.findtext("o:Type", namespaces=NS)
            server = p.findtext("o:Server", namespaces=NS)
            port = int(p.findtext("o:Port", namespaces=NS))
            enc = p.findtext("o:Encryption", namespaces=NS)
            assert p.findtext("o:LoginName", namespaces=NS) == ALICE
            assert p.findtext("o:AuthRequired", namespaces=NS) == "on"
            assert server == HOSTS[{"SMTP": "submission", "POP3": "pop3",
                                    "IMAP": "imap"}[kind]]
            got.add((kind.lower().replace("smtp", "smtp"), port,
                     {"SSL": "SSL", "TLS": "STARTTLS"}[enc]))
        assert got == WANT


def test_autodiscover_attacks(ac_daemon):
    d = ac_daemon
    # oversize body: refused before it is looked at
    big = AUTODISCOVER_REQ.format(addr=ALICE).encode() + b" " * 20000
    status, _, _ = curl(d, "/autodiscover/autodiscover.xml", data=big)
    assert status == 413
    # no address, an address with markup, an entity: the POX error
    for addr in ("", "<x/>@example.jp", "&a;", "alice@example.jp<x>",
                 "a" * 300 + "@example.jp"):
        body = ('<!DOCTYPE r [<!ENTITY a "alice@example.jp">]>' +
                AUTODISCOVER_REQ.format(addr=addr).split("?>", 1)[1])
        status, _, out = curl(d, "/autodiscover/autodiscover.xml",
                              data=body.encode())
        assert status == 200
        root = ET.fromstring(out)
        assert root.find("r:Response/r:Error/r:ErrorCode", NS).text == "600"
        assert b"<x" not in out and b"Protocol" not in out
    # an empty body
    status, _, out = curl(d, "/autodiscover/autodiscover.xml", data=b"")
    assert status == 200 and b"<ErrorCode>600</ErrorCode>" in out
    # GET is not the protocol
    status, headers, _ = curl(d, "/autodiscover/autodiscover.xml")
    assert status == 405 and headers["allow"] == "POST"
    # the daemon still serves
    status, _, _ = curl(d, "/mail/config-v1.1.xml")
    assert status == 200


def test_apple_mobileconfig_for_logged_in_subscriber(ac_daemon):
    d = ac_daemon
    # not logged in: to the login page, no profile
    status, headers, body = curl(d, "/mobileconfig")
    assert status == 303 and headers["location"] == "/"
    assert b"plist" not in body

    w = Web(d.portal_port)
    w.login()
    cookie = f"sid={w.cookies['sid']}"
    # the settings page links the profiles
    _, _, page = w.request("GET", "/")
    assert 'href="/mobileconfig"' in page
    assert 'href="/mobileconfig?type=pop3"' in page

    for q, acct_type, port in (("", "EmailTypeIMAP", 993),
                               ("?type=pop3", "EmailTypePOP", 995)):
        status, headers, body = curl(d, "/mobileconfig" + q, cookie=cookie)
        assert status == 200
        assert headers["content-type"] == "application/x-apple-aspen-config"
        assert "attachment" in headers["content-disposition"]
        prof = plistlib.loads(body)          # a well-formed plist
        assert prof["PayloadType"] == "Configuration"
        assert prof["PayloadVersion"] == 1
        assert len(prof["PayloadUUID"]) == 36
        [mail] = prof["PayloadContent"]
        assert mail["PayloadType"] == "com.apple.mail.managed"
        assert mail["EmailAccountType"] == acct_type
        assert mail["EmailAddress"] == ALICE
        assert mail["IncomingMailServerUsername"] == ALICE
        assert mail["IncomingMailServerHostName"] == \
            HOSTS["pop3" if port == 995 else "imap"]
        assert mail["IncomingMailServerPortNumber"] == port
        assert mail["IncomingMailServerUseSSL"] is True
        assert mail["OutgoingMailServerHostName"] == HOSTS["submission"]
        assert mail["OutgoingMailServerPortNumber"] == 587
        assert mail["OutgoingMailServerUseSSL"] is True
        assert mail["PayloadUUID"] != prof["PayloadUUID"]
    # a made-up session: no profile
    status, _, body = curl(d, "/mobileconfig", cookie="sid=" + "a" * 64)
    assert b"plist" not in body
