"""TLS configuration (issue 9, docs/tls.md): the protocol floor, the chain
file, SNI, and what testssl.sh finds.

The test makes its own PKI with openssl: a root CA, an intermediate CA and
a server certificate for mail.example.jp signed by the intermediate (the
tls_cert file holds server + intermediate), and two self-signed
certificates chosen by SNI (mail.example.net, *.example.org).

- TLS 1.0 and 1.1 are refused by the server (protocol_version alert);
  TLS 1.2 and 1.3 work; with tls_min_protocol = TLSv1.3, 1.2 is refused.
- A client that trusts only the root verifies the chain: the intermediate
  is served (and openssl s_client -showcerts sees both certificates).
- SNI picks the certificate of its name (an exact and a wildcard entry),
  the default one otherwise; on 465, on 587 after STARTTLS and on 995.
- testssl.sh (Debian package; --fast, protocols, cipher categories and
  forward secrecy: about a minute) against 465: no SSLv2/3, TLS 1.0/1.1,
  no NULL/export/low/3DES/CBC cipher offered, forward secrecy only,
  nothing of severity HIGH or CRITICAL.
- A bad tls_sni line is refused by check-config with FILE:LINE."""
import hashlib
import json
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from conftest import SEKISHO, sanitizer_env, wait_for

HOST = "mail.example.jp"
NET = "mail.example.net"
ORG_WILD = "*.example.org"

LISTENERS = (("mx", "mx", False), ("submission", "submission", False),
             ("submissions", "submissions", False),
             ("pop3s", "pop3s", False))


def openssl(*args, cwd=None):
    return subprocess.run(["openssl", *args], check=True, cwd=cwd,
                          capture_output=True, text=True)


def make_ca_chain(d):
    """root -> intermediate -> mail.example.jp; returns paths."""
    d = Path(d)
    ext = d / "ext.cnf"
    ext.write_text(
        "[ca]\nbasicConstraints=critical,CA:TRUE\n"
        "keyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        "[leaf]\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName=DNS:{HOST},DNS:localhost,IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "30", "-subj", "/CN=Test Root",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(d / "root.key"), "-out", str(d / "root.pem"))
    for name, subj, signer, section in (
            ("inter", "/CN=Test Intermediate", "root", "ca"),
            ("leaf", f"/CN={HOST}", "inter", "leaf")):
        openssl("req", "-new", *ec, "-subj", subj,
                "-keyout", str(d / f"{name}.key"),
                "-out", str(d / f"{name}.csr"))
        openssl("x509", "-req", "-in", str(d / f"{name}.csr"),
                "-CA", str(d / f"{signer}.pem"),
                "-CAkey", str(d / f"{signer}.key"), "-CAcreateserial",
                "-days", "30", "-extfile", str(ext), "-extensions", section,
                "-out", str(d / f"{name}.pem"))
    chain = d / "chain.pem"
    chain.write_text((d / "leaf.pem").read_text()
                     + (d / "inter.pem").read_text())
    return {"root": d / "root.pem", "inter": d / "inter.pem",
            "leaf": d / "leaf.pem", "chain": chain, "key": d / "leaf.key"}


def make_self_signed(d, name, cn, san):
    d = Path(d)
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
            "-subj", f"/CN={cn}", "-addext", f"subjectAltName={san}",
            "-keyout", str(key), "-out", str(cert))
    return cert, key


def der_sha256(pem_path):
    der = ssl.PEM_cert_to_DER_cert(Path(pem_path).read_text().split(
        "-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
    return hashlib.sha256(der).hexdigest()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    p = make_ca_chain(d)
    p["net"] = make_self_signed(d, "net", NET, f"DNS:{NET}")
    p["org"] = make_self_signed(d, "org", "example.org wildcard",
                                "DNS:*.example.org")
    return p


def tls_daemon(make_daemon, pki, extra=()):
    """A daemon serving the PKI's chain, with the two SNI entries."""
    d = make_daemon(start=False, listeners=LISTENERS, extra=[
        f"tls_sni = {NET} {pki['net'][0]} {pki['net'][1]}",
        f"tls_sni = {ORG_WILD} {pki['org'][0]} {pki['org'][1]}",
        *extra])
    d.head = [line for line in d.head
              if not line.startswith(("tls_cert =", "tls_key ="))]
    d.head += [f"tls_cert = {pki['chain']}", f"tls_key = {pki['key']}"]
    d.write_conf()
    return d.start()


@pytest.fixture
def tlsd(make_daemon, pki):
    return tls_daemon(make_daemon, pki)


def no_verify(minimum=None, maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None or maximum is not None:
        # let this client offer what the server must refuse
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = minimum or ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = maximum or ssl.TLSVersion.MAXIMUM_SUPPORTED
    return ctx


def handshake(port, ctx, server_name=HOST):
    """(TLS version, sha256 of the server's certificate)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            der = s.getpeercert(binary_form=True)
            return s.version(), hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1,
                                     ssl.TLSVersion.TLSv1_1])
def test_old_protocols_refused(tlsd, version):
    ctx = no_verify(version, version)
    with pytest.raises(ssl.SSLError) as e:
        handshake(tlsd.ports["submissions"], ctx)
    # the server's alert, not the client refusing to try
    assert "ALERT_PROTOCOL_VERSION" in str(e.value) or \
        "alert protocol version" in str(e.value), e.value


def test_old_protocols_refused_openssl(tlsd):
    r = subprocess.run(
        ["openssl", "s_client", "-connect",
         f"127.0.0.1:{tlsd.ports['submissions']}", "-tls1_1",
         "-cipher", "DEFAULT@SECLEVEL=0", "-servername", HOST],
        input="", capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "alert protocol version" in r.stderr, r.stderr


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2,
                                     ssl.TLSVersion.TLSv1_3])
def test_tls12_and_13_work(tlsd, pki, version):
    ctx = ssl.create_default_context(cafile=str(pki["root"]))
    ctx.minimum_version = ctx.maximum_version = version
    got, fp = handshake(tlsd.ports["submissions"], ctx)
    assert got == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                   ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert fp == der_sha256(pki["leaf"])


def test_tls13_floor(make_daemon, pki):
    d = tls_daemon(make_daemon, pki, extra=["tls_min_protocol = TLSv1.3"])
    ctx = no_verify(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError):
        handshake(d.ports["submissions"], ctx)
    assert handshake(d.ports["submissions"], no_verify())[0] == "TLSv1.3"


def test_chain_served_whole(tlsd, pki):
    # trusting only the root, the client needs the intermediate from us
    ctx = ssl.create_default_context(cafile=str(pki["root"]))
    version, fp = handshake(tlsd.ports["submissions"], ctx)
    assert fp == der_sha256(pki["leaf"])
    r = subprocess.run(
        ["openssl", "s_client", "-connect",
         f"127.0.0.1:{tlsd.ports['submissions']}", "-servername", HOST,
         "-showcerts", "-CAfile", str(pki["root"]),
         "-verify_return_error"],
        input="", capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("-----BEGIN CERTIFICATE-----") == 2, r.stdout
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout
    assert re.search(r"1 s:\s*CN\s*=\s*Test Intermediate", r.stdout), \
        r.stdout


@pytest.mark.parametrize("name,which", [
    (HOST, "leaf"), (NET, "net"), ("MAIL.Example.NET", "net"),
    ("imap.example.org", "org"), ("a.b.example.org", "leaf"),
    ("example.org", "leaf"), ("other.example.com", "leaf")])
def test_sni_picks_certificate(tlsd, pki, name, which):
    want = der_sha256(pki[which][0] if which in ("net", "org")
                      else pki["leaf"])
    for role in ("submissions", "pop3s"):
        assert handshake(tlsd.ports[role], no_verify(), name)[1] == want, \
            (role, name)


def test_sni_after_starttls(tlsd, pki):
    ctx = ssl.create_default_context(cafile=str(pki["net"][0]))
    with smtplib.SMTP("127.0.0.1", tlsd.ports["submission"],
                      timeout=15) as s:
        s._host = NET          # the name smtplib sends as SNI
        s.starttls(context=ctx)
        der = s.sock.getpeercert(binary_form=True)
        assert hashlib.sha256(der).hexdigest() == der_sha256(pki["net"][0])


def test_bad_sni_line_refused(tmp_path, pki):
    conf = tmp_path / "bad.conf"
    conf.write_text("hostname = mail.example.jp\n"
                    f"tls_sni = {NET} {pki['net'][0]}\n"
                    "tls_sni = bad_name! /a /b\n")
    r = subprocess.run([str(SEKISHO), "check-config", str(conf)],
                       capture_output=True, text=True, env=sanitizer_env(),
                       timeout=60)
    assert r.returncode != 0
    assert re.search(r"bad\.conf:2: tls_sni: .*expected 'NAME CERT KEY'",
                     r.stderr + r.stdout), r.stderr + r.stdout
    assert re.search(r"bad\.conf:3: tls_sni: .*bad server name",
                     r.stderr + r.stdout), r.stderr + r.stdout


# --- testssl.sh ---------------------------------------------------------

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
WEAK = re.compile(r"NULL|EXP|RC4|3DES|DES-CBC|IDEA|aNULL|ADH|AECDH|"
                  r"EXPORT|MD5|SEED|CBC|SHA1?\b", re.I)


def run_testssl(port, ca, tmp_path, starttls=None):
    out = tmp_path / f"testssl-{port}.json"
    cmd = [TESTSSL, "--quiet", "--color", "0", "--warnings", "off",
           "--nodns", "none", "--add-ca", str(ca), "--jsonfile", str(out),
           "--fast", "-p", "-s", "-f"]
    if starttls:
        cmd += ["-t", starttls]
    cmd.append(f"127.0.0.1:{port}")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert out.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(out.read_text()), r


@pytest.mark.skipif(TESTSSL is None, reason="testssl.sh not installed")
def test_testssl_465(tlsd, pki, tmp_path):
    findings, r = run_testssl(tlsd.ports["submissions"], pki["root"],
                              tmp_path)
    by_id = {f["id"]: f for f in findings}
    text = "\n".join(f"{f['id']} {f['severity']} {f['finding']}"
                     for f in findings)
    for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert by_id[proto]["finding"].startswith("not offered"), text
    for proto in ("TLS1_2", "TLS1_3"):
        assert by_id[proto]["finding"].startswith("offered"), text
    for cat in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
                "cipherlist_LOW", "cipherlist_3DES_IDEA"):
        assert by_id[cat]["finding"] == "not offered", text
    # CBC and the like ("average"): not offered either
    assert by_id["cipherlist_AVERAGE"]["finding"] == "not offered", text
    assert by_id["cipherlist_STRONG"]["finding"] == "offered", text
    assert by_id["PFS"]["finding"] == "offered", text
    assert not WEAK.search(by_id["PFS_ciphers"]["finding"]), text
    bad = [f for f in findings if f["severity"] in ("HIGH", "CRITICAL")]
    assert not bad, text
