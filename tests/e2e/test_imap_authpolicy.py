"""The authpolicy listener as an attacker and as Dovecot see it, with raw
sockets (issue 19 item 3, docs/imap.md): Dovecot 2.3's protocol (POST
?command=allow|report, JSON body, {"status":N,"msg":"..."}), the shared
secret (X-API-Key), bounded and parsed input (oversize, garbage, slow
clients), and the same lock as SMTP AUTH."""
import json
import socket
import time

import pytest

from conftest import ALICE, ALICE_PW

SECRET = "s3cret-key-for-dovecot"
LISTENERS = (("mx", "mx", False), ("submission", "submission", False),
             ("authpolicy", "authpolicy", False))


@pytest.fixture
def d(make_daemon):
    return make_daemon(listeners=LISTENERS, extra=[
        f"authpolicy_secret = {SECRET}", "auth_max_failures_per_ip = 3",
        "auth_fail_delay = 0s"])


def request(command, body, key=SECRET, extra_headers=""):
    data = json.dumps(body).encode() if not isinstance(body, bytes) \
        else body
    head = (f"POST /?command={command} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\n"
            + (f"X-API-Key: {key}\r\n" if key is not None else "")
            + extra_headers + f"Content-Length: {len(data)}\r\n\r\n")
    return head.encode() + data


def read_response(sock, timeout=10):
    """(status code, JSON body or None, raw) of one HTTP response; (None,
    None, raw) when the server closed without one."""
    sock.settimeout(timeout)
    raw = b""
    while b"\r\n\r\n" not in raw:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return None, None, raw
        raw += chunk
    head, _, rest = raw.partition(b"\r\n\r\n")
    length = int(next(l.split(b":")[1] for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length")))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    code = int(head.split(b" ")[1])
    return code, json.loads(rest[:length]), raw


def ask(d, data):
    with socket.create_connection(("127.0.0.1", d.ports["authpolicy"]),
                                  timeout=10) as s:
        s.sendall(data)
        return read_response(s)


def closed(sock, timeout=20):
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def attrs(login=ALICE, remote="127.0.0.1", **kw):
    return dict(login=login, pwhash="abc", remote=remote, protocol="imap",
                session_id="S1", **kw)


def test_allow_report_and_lock_over_one_connection(d):
    """Dovecot's sequence on one kept-alive connection: allow -> status 0;
    three failure reports lock the address (auth_max_failures_per_ip =
    3); the next allow -> status -1 with the reason; a report of that
    policy refusal is not counted again."""
    with socket.create_connection(("127.0.0.1", d.ports["authpolicy"]),
                                  timeout=10) as s:
        s.sendall(request("allow", attrs()))
        code, body, _ = read_response(s)
        assert code == 200 and body == {"status": 0, "msg": ""}
        for _ in range(3):
            s.sendall(request("report", attrs(success=False,
                                                policy_reject=False)))
            assert read_response(s)[0] == 200
        s.sendall(request("allow", attrs()))
        code, body, _ = read_response(s)
        assert code == 200 and body["status"] == -1
        assert "Too many failed logins" in body["msg"]
        s.sendall(request("report", attrs(success=False,
                                            policy_reject=True)))
        assert read_response(s)[0] == 200
    assert "auth_locked_ip" in d.cli("events").stdout
    d.wait_log(r"authpolicy command=report login=alice@example\.jp account=- "
               r"client=127\.0\.0\.1 protocol=imap session=S1 "
               r"result=report-policy-reject status=0")


@pytest.mark.parametrize("key", [None, "wrong", SECRET + "x", ""])
def test_wrong_or_missing_key_refused_and_nothing_counted(d, key):
    for _ in range(5):
        code, body, _ = ask(d, request("report", attrs(
            success=False, policy_reject=False), key=key))
        assert code == 401
    d.wait_log(r"authpolicy client=127\.0\.0\.1 refused: Unauthorized")
    assert "result=report-fail" not in d.log()
    code, body, _ = ask(d, request("allow", attrs()))
    assert code == 200 and body["status"] == 0


def test_no_secret_configured_refuses_everything(make_daemon):
    d = make_daemon(listeners=LISTENERS)
    code, _, _ = ask(d, request("allow", attrs(), key=""))
    assert code == 401
    d.wait_log(r"refused: Unauthorized: authpolicy_secret is not set")


@pytest.mark.parametrize("data,code", [
    # not JSON, not an object, trailing data, wrong types
    (request("allow", b"garbage"), 400),
    (request("allow", b"[1,2,3]"), 400),
    (request("allow", b'{"login":"a"} {}'), 400),
    (request("allow", b'{"login":5}'), 400),
    (request("report", b'{"login":"a","success":"yes"}'), 400),
    (request("allow", b'{"login":"a","login":"b"}'), 400),
    (request("allow", b'{"login":"' + b"x" * 600 + b'"}'), 400),
    (request("allow", b'{"a":' + b"[" * 50 + b"]" * 50 + b"}"), 400),
    (request("allow", b'{"login":"a\\u0000b"}'), 400),
    # HTTP: unknown command, GET, chunked, oversize
    (request("delete", {"login": "a"}), 400),
    (b"GET /?command=allow HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400),
    (b"POST /?command=allow HTTP/1.1\r\nX-API-Key: " + SECRET.encode()
     + b"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /?command=allow HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n",
     413),
    (b"POST /?command=allow HTTP/1.1\r\nX-Long: " + b"a" * 9000
     + b"\r\n\r\n", 431),
])
def test_garbage_and_oversize_refused_and_closed(d, data, code):
    with socket.create_connection(("127.0.0.1", d.ports["authpolicy"]),
                                  timeout=10) as s:
        s.sendall(data)
        got, body, _ = read_response(s)
        assert got == code
        assert closed(s)
    # the listener still serves
    got, body, _ = ask(d, request("allow", attrs()))
    assert got == 200 and body["status"] == 0


def test_unknown_attributes_and_nested_objects_skipped(d):
    body = attrs()
    body.update({"device_id": "", "tls": "TLSv1.3",
                 "extra": {"a": [1, 2.5e3, True, None, {"b": "c"}]},
                 "note": "\u95a2\u6240 \ud83d\ude00"})
    code, resp, _ = ask(d, request("allow", body))
    assert code == 200 and resp["status"] == 0


def test_slow_client_cut_others_served(d):
    """A client that sends half a request and stalls is closed after the
    listener's timeout (15 s); meanwhile others are answered."""
    slow = socket.create_connection(("127.0.0.1", d.ports["authpolicy"]))
    slow.sendall(request("allow", attrs())[:40])
    code, body, _ = ask(d, request("allow", attrs()))
    assert code == 200
    start = time.monotonic()
    assert closed(slow, timeout=30)
    assert time.monotonic() - start < 28
    slow.close()
    d.wait_log(r"authpolicy client=127\.0\.0\.1: request not complete")


def test_control_characters_in_login_never_reach_the_log_raw(d):
    forged = "x\n2026-12-06T00:00:00.000 event type=admin_suspend"
    code, body, _ = ask(d, request("report", attrs(
        login=forged, success=False, policy_reject=False)))
    assert code == 200
    d.wait_log(r"authpolicy command=report login=x\\x0a2026")
    assert not any(l.startswith("2026-12-06T00:00:00.000")
                   for l in d.log().splitlines())


def test_success_report_for_a_name_not_ours_counts_nothing(d):
    """Dovecot may have a passdb of its own: a success for a name sekisho
    does not know is neither a failure nor a login of ours."""
    for _ in range(4):
        code, _, _ = ask(d, request("report", attrs(
            login="stranger@example.org", success=True,
            policy_reject=False)))
        assert code == 200
    d.wait_log(r"login=stranger@example\.org account=- client=127\.0\.0\.1 "
               r"protocol=imap session=S1 result=report-unknown")
    code, body, _ = ask(d, request("allow", attrs()))
    assert body["status"] == 0


def test_client_outside_authpolicy_clients_closed(make_daemon):
    d = make_daemon(listeners=LISTENERS, extra=[
        f"authpolicy_secret = {SECRET}", "authpolicy_clients = 10.0.0.0/8"])
    with socket.create_connection(("127.0.0.1", d.ports["authpolicy"]),
                                  timeout=10) as s:
        try:
            s.sendall(request("allow", attrs()))
        except OSError:
            pass
        code, _, _ = read_response(s)
        assert code is None
    d.wait_log(r"authpolicy client=127\.0\.0\.1 refused: not in "
               r"authpolicy_clients")
    assert "authpolicy command=" not in d.log()


def test_imap_logins_counted_in_metrics(make_daemon):
    """The operator's dashboard counts IMAP logins beside SMTP and POP3:
    sekisho_auth_total{service="imap"} for Dovecot's reports and the
    lock refusals of its checks."""
    from conftest import accepts, free_port, wait_for
    from test_metrics import scrape, value
    port = free_port()
    d = make_daemon(listeners=LISTENERS, extra=[
        f"authpolicy_secret = {SECRET}", "auth_max_failures_per_ip = 3",
        "auth_fail_delay = 0s", f"listen = metrics 127.0.0.1:{port}"])
    wait_for(lambda: accepts(port), 20, "the metrics listener")
    with socket.create_connection(("127.0.0.1", d.ports["authpolicy"]),
                                  timeout=10) as s:
        s.sendall(request("report", attrs(login=ALICE, success=True,
                                            policy_reject=False)))
        assert read_response(s)[0] == 200
        for _ in range(3):
            s.sendall(request("report", attrs(login="nobody@example.jp",
                                                success=False,
                                                policy_reject=False)))
            assert read_response(s)[0] == 200
        s.sendall(request("allow", attrs()))
        assert read_response(s)[1]["status"] == -1
    _, samples, _, _ = scrape(port)
    imap = {r: value(samples, "sekisho_auth_total", service="imap",
                     result=r) for r in ("ok", "fail", "locked")}
    assert imap == {"ok": 1, "fail": 3, "locked": 1}, imap
    assert value(samples, "sekisho_auth_seconds_count",
                 service="imap") == 5
    assert value(samples, "sekisho_auth_total", service="smtp",
                 result="ok") == 0
