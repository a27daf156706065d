"""Several nodes, one state (issue 7): two sekisho nodes share one
PostgreSQL (a throwaway cluster, pg.py) behind a real HAProxy that passes
the client address on with PROXY v2 (`send-proxy-v2`). Shared: limits,
permissions, suspensions, and (the second half of this file) settings page
sessions, API tokens and admins, the POP3 one-session lock and the
POP-before-SMTP windows.

HAProxy's frontends:
  lb      round robin over both nodes
  a, b    only node A, only node B
  plain   round robin, without a PROXY header from the client
The first three `accept-proxy`: the test client sends a PROXY v1 header
claiming a documentation address (geodata.py maps them to countries), and
HAProxy carries that address on in its v2 header, as it would the real
address of a client abroad. `plain` shows the real (loopback) address of
the client passing through. Nothing leaves loopback.
"""
import concurrent.futures
import hashlib
import poplib
import re
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import ALICE, ALICE_PW, BOB, Daemon, accepts, free_port, wait_for
from geodata import JP4, US4, geo_config_line
from pg import PgCluster, pg_cluster  # noqa: F401 (fixture)
from test_policy import ProxySMTP, message, send_from
from test_portal import ADMIN_PW, Web, admin_login, api

HAPROXY = "/usr/sbin/haproxy"


class HAProxy:
    def __init__(self, directory, nodes, port="submission_proxy"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in ("lb", "a", "b",
                                                     "plain")}
        servers = {n: f"127.0.0.1:{d.ports[port]}"
                   for n, d in nodes.items()}
        # as in docs/deployment.md: health checks that speak PROXY v2
        # too, and a refused connection tried again on the other node
        opts = "send-proxy-v2 check check-send-proxy inter 1s"
        both = "\n".join(f"    server {n} {addr} {opts}"
                         for n, addr in servers.items())
        cfg = ["global", "    maxconn 2000",
               "defaults", "    mode tcp", "    option redispatch",
               "    retries 3", "    timeout connect 5s",
               "    timeout client 60s", "    timeout server 60s"]
        for name, proxy, backend in (("lb", True, "both"),
                                     ("a", True, "only_a"),
                                     ("b", True, "only_b"),
                                     ("plain", False, "both")):
            cfg += [f"frontend {name}",
                    f"    bind 127.0.0.1:{self.ports[name]}"
                    + (" accept-proxy" if proxy else ""),
                    f"    default_backend {backend}"]
        cfg += ["backend both", "    balance roundrobin", both,
                "backend only_a",
                f"    server a {servers['a']} {opts}",
                "backend only_b",
                f"    server b {servers['b']} {opts}"]
        self.conf = self.dir / "haproxy.cfg"
        self.conf.write_text("\n".join(cfg) + "\n")
        self.log = open(self.dir / "haproxy.log", "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.conf)],
                                     stdout=self.log, stderr=self.log)
        for port in self.ports.values():
            wait_for(lambda: self._accepts(port), 10, f"haproxy on {port}")

    def _accepts(self, port):
        if self.proc.poll() is not None:
            pytest.fail("haproxy exited: " +
                        (self.dir / "haproxy.log").read_text())
        try:
            # a bare connect and close: haproxy logs it, the node never
            # sees it (no data, so no server connection is made)
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Via:
    """What send_from needs of a daemon: the port to connect to."""

    def __init__(self, port):
        self.ports = {"submission_proxy": port}


def make_nodes(make_daemon, tmp_path, store):
    listeners = Daemon.DEFAULT_LISTENERS + (
        ("submission_proxy", "submission", True),)
    extra = [geo_config_line(tmp_path / "geo"),
             "portal_url = https://mail.example.jp/settings",
             "max_connections_per_ip = 200"]
    a = make_daemon(name="a", store=store, proxy=True, listeners=listeners,
                    extra=extra, workers=4)
    b = make_daemon(name="b", store=store, proxy=True, listeners=listeners,
                    extra=extra, workers=4, accounts=False)
    return a, b


@pytest.fixture
def cluster(make_daemon, tmp_path, pg_cluster):
    a, b = make_nodes(make_daemon, tmp_path, pg_cluster.store())
    lb = HAProxy(tmp_path / "haproxy", {"a": a, "b": b})
    yield a, b, lb
    lb.stop()


def outcome(fn):
    """'ok', or the SMTP code of the refusal."""
    try:
        fn()
        return "ok"
    except smtplib.SMTPRecipientsRefused as e:
        return list(e.recipients.values())[0][0]
    except smtplib.SMTPResponseException as e:
        return e.smtp_code
    except (smtplib.SMTPServerDisconnected, ConnectionError) as e:
        return f"disconnected: {e}"


def test_daily_limit_is_one_limit_across_nodes(cluster, client_tls):
    a, b, lb = cluster
    n = 7
    a.cli("limits", "set", ALICE, f"recipients_per_day={n}")
    via = Via(lb.ports["lb"])
    mark_a, mark_b = a.log_mark(), b.log_mark()

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(
            lambda i: outcome(lambda: send_from(via, JP4, client_tls)),
            range(20)))
    assert results.count("ok") == n, results
    assert all(r in ("ok", 451) for r in results), results
    # both nodes took part, and both see the same count
    for d, mark in ((a, mark_a), (b, mark_b)):
        assert "smtp auth" in d.log_since(mark), d.log_since(mark)[-2000:]
        assert f"(sent today: {n})" in d.cli("limits", "show", ALICE).stdout
    # what was accepted is delivered, on the node that accepted it
    wait_for(lambda: len(a.files(BOB)) + len(b.files(BOB)) == n, 30,
             f"{n} deliveries")


def test_overseas_permission_through_other_node(cluster, client_tls):
    a, b, lb = cluster
    via_a, via_b = Via(lb.ports["a"]), Via(lb.ports["b"])
    assert outcome(lambda: send_from(via_b, US4, client_tls)) == 550
    # turned on at node A (its CLI, the same store): node B accepts
    a.cli("overseas", "allow", ALICE)
    qid = send_from(via_b, US4, client_tls)
    b.wait_message(BOB, qid)
    # turned off: refused at both
    b.cli("overseas", "deny", ALICE)
    assert outcome(lambda: send_from(via_a, US4, client_tls)) == 550
    assert outcome(lambda: send_from(via_b, US4, client_tls)) == 550
    # the refusal at B was recorded where A sees it
    assert "overseas_refused\t" + US4 in a.cli("events", ALICE).stdout


def test_suspension_through_b_refuses_auth_at_a(cluster, client_tls):
    a, b, lb = cluster
    s = ProxySMTP(JP4, lb.ports["a"], client_tls)
    s.login_tls(ALICE, ALICE_PW)
    s.quit()
    b.cli("user", "suspend", ALICE, "--reason", "spam report 7")
    s = ProxySMTP(JP4, lb.ports["a"], client_tls)
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        s.login_tls(ALICE, ALICE_PW)
    assert e.value.smtp_code == 535
    assert b"suspended" in e.value.smtp_error
    s.close()
    b.cli("user", "resume", ALICE)
    ProxySMTP(JP4, lb.ports["a"], client_tls).login_tls(
        ALICE, ALICE_PW).quit()


def test_policy_sees_the_original_client_address(cluster, client_tls):
    a, b, lb = cluster
    # HAProxy reaches the nodes from 127.0.0.1; the client comes from
    # 127.0.0.77 (any 127/8 address is loopback on Linux)
    marks = (a.log_mark(), b.log_mark())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.77", 0))
    sock.settimeout(30)
    sock.connect(("127.0.0.1", lb.ports["plain"]))
    cport = sock.getsockname()[1]
    s = smtplib.SMTP()
    s.sock = sock
    s._host = "127.0.0.1"
    assert s.getreply()[0] == 220
    s.ehlo()
    s.starttls(context=client_tls)
    s.ehlo()
    s.login(ALICE, ALICE_PW)
    assert s.mail(ALICE)[0] == 250
    s.quit()
    logs = a.log_since(marks[0]) + b.log_since(marks[1])
    # the session's MAIL line, and its auth line, name the client itself
    mails = re.findall(r"mail client=(\S+)", logs)
    assert mails == ["127.0.0.77"] or mails == [f"127.0.0.77:{cport}"], \
        logs[-3000:]
    assert re.search(r"smtp auth client=127\.0\.0\.77\b", logs), logs[-3000:]


def test_database_down_gives_4xx_and_recovers(make_daemon, tmp_path,
                                              client_tls):
    pg = PgCluster()
    try:
        a, b = make_nodes(make_daemon, tmp_path, pg.store())
        lb = HAProxy(tmp_path / "haproxy", {"a": a, "b": b})
        try:
            database_down(pg, a, b, lb, client_tls)
        finally:
            lb.stop()
    finally:
        pg.destroy()


def database_down(pg, a, b, lb, client_tls):
    via = Via(lb.ports["lb"])
    accepted, results = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def client():
        while not stop.is_set():
            qid = None

            def one():
                nonlocal qid
                qid = send_from(via, JP4, client_tls)
            r = outcome(one)
            with lock:
                results.append(r)
                if r == "ok":
                    accepted.append(qid)
            time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(accepted) >= 5, 30, "submissions before")
        n_before = len(results)
        pg.stop()
        time.sleep(4)
        during = results[n_before:]
        pg.start()
        time.sleep(1)
        n_restart = len(results)
        wait_for(lambda: results[n_restart:].count("ok") >= 10, 60,
                 "submissions after the database returned")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)

    # while it was down: temporary failures only, with a clear text
    temp = [r for r in during if r != "ok"]
    assert temp, during
    assert all(isinstance(r, int) and 400 <= r < 500 for r in temp), during
    assert all(r == "ok" or (isinstance(r, int) and 400 <= r < 500)
               for r in results), results
    assert a.running() and b.running()
    logs = a.log() + b.log()
    assert "postgresql: database unreachable" in logs or \
        "postgresql: cannot connect" in logs
    assert "re-established" in logs
    # nothing acknowledged was lost: each 250 is delivered, by its node
    def delivered():
        ids = set()
        for d in (a, b):
            for f in d.files(BOB):
                m = re.search(rb"\bid ([0-9A-F]{20})\b",
                              f.read_bytes()[:2000])
                if m:
                    ids.add(m.group(1).decode())
        return set(accepted) <= ids
    wait_for(delivered, 60, f"all {len(accepted)} accepted messages")


def test_node_killed_others_serve(cluster, client_tls):
    a, b, lb = cluster
    via = Via(lb.ports["lb"])
    mark = b.log_mark()
    send_from(via, JP4, client_tls)
    a.kill9()
    # every new client is served by B: a refused connection is
    # redispatched at once, and the health check takes A out
    for _ in range(6):
        send_from(via, JP4, client_tls)
    assert b.running()
    # the health checks (a PROXY v2 header, then close) are accepted as
    # such: no complaint about the header in B's log
    time.sleep(2)
    assert not re.search(r"(?i)proxy[^\n]*(invalid|bad|malformed|refus)",
                         b.log_since(mark)), b.log_since(mark)[-3000:]


def test_database_restart_while_idle_is_invisible(make_daemon, tmp_path,
                                                  client_tls):
    pg = PgCluster()
    try:
        a, b = make_nodes(make_daemon, tmp_path, pg.store())
        for _ in range(6):      # connections open on the back side
            send_from(a, JP4, client_tls)
        pg.stop()
        pg.start()
        # each worker finds its connection dead on first use and, for a
        # statement that may be repeated, reconnects and sends it again:
        # no client sees the restart
        for _ in range(8):
            send_from(a, JP4, client_tls)
        assert "re-established" in a.log()
    finally:
        pg.destroy()


# --- state that was per node: portal sessions, tokens, POP3 ------------------

LEASE = 3       # pop3_lock_lease of the test nodes, in seconds


def make_shared_nodes(make_daemon, tmp_path, store):
    """Two nodes on one store with a settings page, POP3S (direct, and
    behind a PROXY header) and POP-before-SMTP on; d.portal_port."""
    listeners = Daemon.DEFAULT_LISTENERS + (
        ("submission_proxy", "submission", True),
        ("pop3s", "pop3s", False),
        ("pop3s_proxy", "pop3s", True))
    geo = geo_config_line(tmp_path / "geo")
    nodes = []
    for name in ("a", "b"):
        port = free_port()
        # the portal listener is not in `listeners`: the fixture waits
        # for a log line per probe, which evhttp does not write
        d = make_daemon(name=name, store=store, proxy=True,
                        listeners=listeners, accounts=name == "a",
                        extra=[geo, "portal_url = https://mail.example.jp/",
                               f"listen = portal 127.0.0.1:{port}",
                               f"pop3_lock_lease = {LEASE}s",
                               "pop_before_smtp = yes"])
        d.portal_port = port
        wait_for(lambda: accepts(port), 20, "the portal port")
        nodes.append(d)
    return nodes


@pytest.fixture
def shared(make_daemon, tmp_path, pg_cluster):
    db = pg_cluster.create_db()
    a, b = make_shared_nodes(make_daemon, tmp_path, pg_cluster.store(db))
    a.db = b.db = db
    return a, b


def logged_in(w):
    status, _, page = w.request("GET", "/")
    return status == 200 and ALICE in page and 'id="login"' not in page


def test_portal_session_works_at_the_other_node(shared, pg_cluster):
    a, b = shared
    wa = Web(a.portal_port)
    assert wa.login()[0] == 303
    sid = wa.cookies["sid"]
    # the cookie made at A, used at B directly
    wb = Web(b.portal_port)
    wb.cookies = dict(wa.cookies)
    assert logged_in(wb)
    # the store has a hash of the id, never the id
    rows = pg_cluster.psql("SELECT id_hash, account FROM portal_sessions",
                           db=a.db)
    assert rows == f"{hashlib.sha256(sid.encode()).hexdigest()}|{ALICE}\n"
    assert sid not in rows
    # logged out at B: the cookie is refused at A
    _, _, page = wb.request("GET", "/")
    status, _, _ = wb.request("POST", "/logout", {"csrf": wb.csrf(page)})
    assert status == 303
    wa.cookies["sid"] = sid
    assert not logged_in(wa)
    assert pg_cluster.psql("SELECT count(*) FROM portal_sessions",
                           db=a.db) == "0\n"


def test_portal_session_survives_a_restart(shared):
    a, b = shared
    w = Web(a.portal_port)
    assert w.login()[0] == 303
    a.stop()
    a.start()
    wait_for(lambda: accepts(a.portal_port), 20, "the portal port")
    assert logged_in(w)
    # and a node killed outright, too
    a.kill9()
    a.start()
    wait_for(lambda: accepts(a.portal_port), 20, "the portal port")
    assert logged_in(w)


def test_api_token_and_admin_at_both_nodes(shared):
    a, b = shared
    token = a.cli("api-token", "add", "mypage").stdout.strip()
    for d in (a, b):
        status, out = api(d, "GET", ALICE, token=token)
        assert status == 200 and out["account"] == ALICE, (d.dir, out)
    # permission set through B's API, seen in A's CLI
    status, _ = api(b, "POST", ALICE + "/overseas", {"action": "on"},
                    token=token)
    assert status == 200
    assert "allowed until" in a.cli("overseas", "status", ALICE).stdout
    # revoked on B: refused at both
    b.cli("api-token", "del", "mypage")
    for d in (a, b):
        status, out = api(d, "GET", ALICE, token=token)
        assert status == 401 and "revoked" in out["error"], out
    # an admin added on one node logs in at the other
    b.cli("admin", "add", "desk", input=ADMIN_PW + "\n")
    assert admin_login(a)[1] == 303
    a.cli("admin", "del", "desk")
    assert admin_login(b)[1] == 401


def pop3_login(d, port="pop3s", user=ALICE, password=ALICE_PW, tls=None):
    """A logged-in poplib client, or the poplib.error_proto raised."""
    p = poplib.POP3_SSL("127.0.0.1", d.ports[port], timeout=15,
                        context=tls)
    try:
        p.user(user)
        p.pass_(password)
    except poplib.error_proto:
        p.close()
        raise
    return p


def pop3_refusal(d, tls):
    """The -ERR text of a login that fails, or None when it succeeds."""
    try:
        pop3_login(d, tls=tls).quit()
        return None
    except poplib.error_proto as e:
        return e.args[0]


def test_pop3_lock_across_nodes(shared, client_tls):
    a, b = shared
    p = pop3_login(a, tls=client_tls)
    assert pop3_refusal(b, client_tls).startswith(b"-ERR [IN-USE]")
    # held past its lease while idle: the keeper renews it
    time.sleep(LEASE + 2)
    assert pop3_refusal(b, client_tls).startswith(b"-ERR [IN-USE]")
    p.stat()
    p.quit()
    # given back at QUIT: B logs in at once
    q = pop3_login(b, tls=client_tls)
    assert pop3_refusal(a, client_tls).startswith(b"-ERR [IN-USE]")
    q.quit()


def test_pop3_lock_of_a_killed_node_expires(shared, client_tls):
    a, b = shared
    p = pop3_login(a, tls=client_tls)
    assert pop3_refusal(b, client_tls).startswith(b"-ERR [IN-USE]")
    killed = time.monotonic()
    a.kill9()
    p.close()
    # A renews no more: its lease runs out and B takes the mailbox
    wait_for(lambda: pop3_refusal(b, client_tls) is None, LEASE + 10,
             "the dead node's lease to run out")
    assert time.monotonic() - killed < LEASE + 10


class ProxyPOP3(poplib.POP3_SSL):
    """POP3S through HAProxy's accept-proxy frontend, claiming `source`
    in a PROXY v1 header (HAProxy sends the node a v2 one)."""

    def __init__(self, source, port, context):
        self.source = source
        super().__init__("127.0.0.1", port, timeout=15, context=context)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout)
        sock.sendall(f"PROXY TCP4 {self.source} 192.0.2.1 40000 995\r\n"
                     .encode())
        return self.context.wrap_socket(sock, server_hostname=self.host)


def submit_without_auth(port, source, client_tls):
    """MAIL without AUTH through HAProxy from source: the reply code."""
    s = ProxySMTP(source, port, client_tls)
    try:
        s.ehlo()
        s.starttls(context=client_tls)
        s.ehlo()
        code, text = s.mail(ALICE)
        if code != 250:
            return code
        assert s.rcpt(BOB)[0] == 250
        code, _ = s.data(message())
        return code
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass


def test_pop_before_smtp_across_nodes(shared, client_tls, tmp_path):
    a, b = shared
    smtp_lb = HAProxy(tmp_path / "haproxy-smtp", {"a": a, "b": b})
    pop_lb = HAProxy(tmp_path / "haproxy-pop", {"a": a, "b": b},
                     port="pop3s_proxy")
    try:
        assert submit_without_auth(smtp_lb.ports["b"], JP4,
                                   client_tls) == 530
        # a POP3 login at A from JP4 (as HAProxy tells A)...
        p = ProxyPOP3(JP4, pop_lb.ports["a"], client_tls)
        p.user(ALICE)
        p.pass_(ALICE_PW)
        p.quit()
        a.wait_log(rf"pop-before-smtp open client={re.escape(JP4)} "
                   rf"account={re.escape(ALICE)}")
        # ...opens the window at B, for that address only
        mark = b.log_mark()
        assert submit_without_auth(smtp_lb.ports["b"], JP4,
                                   client_tls) == 250
        b.wait_log(rf"popbsmtp=yes client={re.escape(JP4)} "
                   rf"account={re.escape(ALICE)}", since=mark)
        assert submit_without_auth(smtp_lb.ports["b"], US4,
                                   client_tls) == 530
    finally:
        pop_lb.stop()
        smtp_lb.stop()


def test_store_down_is_temporary_for_pop3_and_portal(make_daemon, tmp_path,
                                                     client_tls):
    pg = PgCluster()
    try:
        a, b = make_shared_nodes(make_daemon, tmp_path, pg.store())
        w = Web(a.portal_port)
        assert w.login()[0] == 303
        pg.stop()
        # never "in use", never "log in again": try later
        err = pop3_refusal(b, client_tls)
        assert err is not None and err.startswith(b"-ERR [SYS/TEMP]"), err
        status, _, page = w.request("GET", "/")
        assert status != 200 or 'id="login"' not in page, page[:2000]
        assert submit_without_auth(b.ports["submission_proxy"], JP4,
                                   client_tls) == 451
        pg.start()
        wait_for(lambda: logged_in(w), 30, "the session after the restart")
        pop3_login(b, tls=client_tls).quit()
    finally:
        pg.destroy()
