"""`sekisho store migrate` and `sekisho store copy` (issue 7): a single
node's SQLite store moved into PostgreSQL, and a node on the copy serving
the same accounts, permissions, limits, history, admins and API tokens."""
import sqlite3

import pytest

from conftest import ALICE, ALICE_PW, BOB, Daemon
from geodata import JP4, US4, geo_config_line
from pg import pg_cluster  # noqa: F401 (fixture)
from test_policy import send_from

APOP_PW = "apop-Secret-9"


def node_kwargs(tmp_path):
    return dict(
        proxy=True,
        listeners=Daemon.DEFAULT_LISTENERS + (
            ("submission_proxy", "submission", True),),
        extra=[geo_config_line(tmp_path / "geo"),
               f"apop_secret_key = {tmp_path / 'apop.key'}",
               "portal_url = https://mail.example.jp/settings"])


def test_migrate_prints_version(make_daemon, pg_cluster):
    d = make_daemon(start=False, accounts=False)
    assert d.cli("store", "migrate").stdout == \
        "store schema version 10 (up to date)\n"
    p = make_daemon(start=False, accounts=False, store=pg_cluster.store())
    assert p.cli("store", "migrate").stdout == \
        "store schema version 10 (up to date)\n"
    # twice: nothing to do
    assert p.cli("store", "migrate").stdout == \
        "store schema version 10 (up to date)\n"


def test_migrate_unreachable_database(make_daemon):
    d = make_daemon(start=False, accounts=False,
                    store="postgresql:host=127.0.0.1 port=1 dbname=x "
                          "connect_timeout=2")
    r = d.cli("store", "migrate", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("sekisho: store: postgresql: cannot "
                               "connect: "), r.stderr


def test_copy_sqlite_to_postgresql(make_daemon, pg_cluster, tmp_path,
                                   client_tls):
    src = make_daemon(name="single", **node_kwargs(tmp_path))
    src.cli("user", "alias", "add", "info@example.jp", ALICE)
    src.cli("user", "apop", "enable", ALICE, input=APOP_PW + "\n")
    src.cli("limits", "set", ALICE, "recipients_per_day=50")
    src.cli("overseas", "allow", BOB, "--countries", "US")
    qid = send_from(src, JP4, client_tls)
    with pytest.raises(Exception):
        send_from(src, US4, client_tls)          # an event
    src.cli("user", "suspend", BOB, "--reason", "spam report 9")
    src.cli("risk", ALICE, "--exempt", "on")       # a desk's record
    src.cli("admin", "add", "desk", input="desk-Secret-7\n")
    token = src.cli("api-token", "add", "mypage").stdout.strip()
    src.stop()

    db = pg_cluster.create_db()
    target = pg_cluster.store(db)
    lite = sqlite3.connect(src.dir / "sekisho.db")
    (events,) = lite.execute("SELECT count(*) FROM events").fetchone()
    assert events >= 1
    # the login from Japan and the recipient of the submission: without
    # them every account would look new after the move
    counts = {t: lite.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("risk_state", "risk_logins", "risk_recipients")}
    assert counts["risk_logins"] >= 1 and counts["risk_recipients"] >= 1
    out = src.cli("store", "copy", "--to", target).stdout
    assert out.startswith(
        "copied 1 domains, 2 accounts (1 suspended), 1 aliases, "
        "1 APOP secrets, 1 limit overrides, 1 overseas permissions, "
        f"{events} events, 1 submissions, {counts['risk_state']} risk "
        f"records, {counts['risk_logins']} login countries, "
        f"{counts['risk_recipients']} known recipients, 1 admins, "
        "1 API tokens\n"), out

    # the same rows, hashes and sealed secrets included
    for sql in ("SELECT address, password_hash, suspended, suspend_reason,"
                " overseas_until FROM accounts ORDER BY address",
                "SELECT a.address, s.sealed FROM apop_secrets s JOIN"
                " accounts a ON a.id = s.account_id",
                "SELECT queue_id, time, account, ip, country, rcpts, size"
                " FROM submissions",
                "SELECT time, account, type, ip, country, detail FROM"
                " events ORDER BY id",
                "SELECT account, level, automatic, exempt, since, cleared,"
                " warned, reason, warning FROM risk_state ORDER BY account",
                "SELECT account, country, last FROM risk_logins"
                " ORDER BY account, country",
                "SELECT account, rcpt, first FROM risk_recipients"
                " ORDER BY account, rcpt",
                "SELECT name, password_hash, created FROM admin_users",
                "SELECT name, hash, created FROM api_tokens"):
        want = "".join("|".join("" if v is None else str(v) for v in row)
                       + "\n" for row in lite.execute(sql))
        assert pg_cluster.psql(sql, db=db) == want, sql

    # a copy is not a merge
    r = src.cli("store", "copy", "--to", target, check=False)
    assert r.returncode == 1 and "not empty" in r.stderr

    # a node on the copy serves the same state
    node = make_daemon(name="pg", store=target, accounts=False,
                       **node_kwargs(tmp_path))
    assert "bob@example.jp (suspended)" in node.cli("user", "list").stdout
    assert "info@example.jp alice@example.jp" in \
        node.cli("user", "alias", "list").stdout
    assert "recipients_per_day: 50 (sent today: 0)" in \
        node.cli("limits", "show", ALICE).stdout
    assert "allowed until" in node.cli("overseas", "status", BOB).stdout
    assert "from US" in node.cli("overseas", "status", BOB).stdout
    assert "overseas_refused\t" + US4 in node.cli("events", ALICE).stdout
    assert "exempt: yes" in node.cli("risk", ALICE).stdout
    send_from(node, JP4, client_tls, frm="info@example.jp")
    node.cli("user", "apop", "disable", ALICE)     # it had one
    assert qid
    # the admin and the token came along (the token itself is not in
    # either store, only its hash)
    assert node.cli("admin", "list").stdout.startswith("desk\t")
    assert node.cli("api-token", "list").stdout.startswith("mypage\t")
    assert token.split(".")[1] not in pg_cluster.psql(
        "SELECT name, hash FROM api_tokens", db=db)


def test_copy_usage_errors(make_daemon):
    d = make_daemon(start=False, accounts=False)
    r = d.cli("store", "copy", check=False)
    assert r.returncode == 2 and "--to URI is required" in r.stderr
    r = d.cli("store", "frobnicate", check=False)
    assert r.returncode == 2
    r = d.cli("store", "copy", "--to", "mysql:/x", check=False)
    assert r.returncode == 1 and "unknown store 'mysql:/x'" in r.stderr
