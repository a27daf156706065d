"""Retention (issue 17 item 9): events, notices, submissions and send
counters older than their retention are removed by the back side on a
timer, in batches, on SQLite and PostgreSQL alike; the settings page's 7
days stay. Time moves with the daemon's clock offset
(SEKISHO_CLOCK_OFFSET, docs/policy.md)."""
import signal
import smtplib
import sqlite3
import time

import pytest

from conftest import ALICE, BOB, wait_for
from geodata import CN4, JP4, geo_config_line
from pg import pg_cluster  # noqa: F401 (fixture)
from test_country import LISTENERS
from test_policy import send_from

DAY = 86400


@pytest.fixture(params=["sqlite", "postgresql"])
def retention_daemon(make_daemon, tmp_path, request):
    """A daemon whose keeper ticks every second, and a row counter."""
    if request.param == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        db = cluster.create_db()
        store = {"store": cluster.store(db)}

        def count(sql):
            return int(cluster.psql(sql, db=db).strip())
    else:
        store = {}
        d_holder = []

        def count(sql):
            con = sqlite3.connect(d_holder[0].dir / "sekisho.db")
            try:
                return con.execute(sql).fetchone()[0]
            finally:
                con.close()
    d = make_daemon(proxy=True, listeners=LISTENERS, extra=[
        geo_config_line(tmp_path / "geo"),
        "pop3_lock_lease = 5s",            # the keeper ticks each second
        "retention_events_days = 7",
        "retention_submissions_days = 7",
        "retention_notices_days = 2",
        "retention_send_counters_days = 2",
        "retention_batch = 2"], **store)
    if request.param == "sqlite":
        d_holder.append(d)
    return d, count


def activity(d, client_tls):
    """A refusal from abroad (event + notice key), a submission (log row
    and counters); returns the queue id."""
    with pytest.raises(smtplib.SMTPSenderRefused):
        send_from(d, CN4, client_tls)
    return send_from(d, JP4, client_tls, rcpts=(BOB,))


def test_old_rows_removed_recent_kept(retention_daemon, client_tls,
                                      monkeypatch):
    d, count = retention_daemon
    # ten days ago: enough rows for several batches of 2
    d.stop()
    monkeypatch.setenv("SEKISHO_CLOCK_OFFSET", str(-10 * DAY))
    d.start()
    old = [activity(d, client_tls) for _ in range(3)]
    # now
    d.stop()
    monkeypatch.setenv("SEKISHO_CLOCK_OFFSET", "0")
    d.start()
    new = activity(d, client_tls)
    assert count("SELECT count(*) FROM events WHERE type = "
                 "'overseas_refused'") == 4
    assert count("SELECT count(*) FROM submissions") == 4
    assert count("SELECT count(*) FROM send_counters") >= 2
    assert count("SELECT count(*) FROM notices") >= 2

    # six days on: the old rows are 16 days old, the new ones 6
    d.stop()
    monkeypatch.setenv("SEKISHO_CLOCK_OFFSET", str(6 * DAY))
    mark = d.log_mark()
    d.start()
    wait_for(lambda: count("SELECT count(*) FROM submissions") == 1 and
             count("SELECT count(*) FROM events WHERE type = "
                   "'overseas_refused'") == 1 and
             count("SELECT count(*) FROM send_counters") == 0 and
             count("SELECT count(*) FROM notices") == 0, 30,
             "the retention sweep")
    log = d.log_since(mark)
    for table in ("events", "submissions", "notices", "send_counters"):
        assert f"retention table={table} deleted=" in log

    # what the abuse desk and the settings page still see: the 6-day-old
    # rows; the 16-day-old ones are gone
    events = d.cli("events", ALICE).stdout
    assert events.count("overseas_refused") == 1
    trace = d.cli("trace", "-", input=f"Received: from x (x [192.0.2.1])\n"
                  f"\tby mail.example.jp (sekisho) with ESMTPSA id {new}\n"
                  f"\t; Mon, 1 Jan 2024 00:00:00 +0000\n", check=False)
    assert ALICE in trace.stdout
    for qid in old:
        trace = d.cli("trace", "-", input="Received: from x (x "
                      f"[192.0.2.1])\n\tby mail.example.jp (sekisho) with "
                      f"ESMTPSA id {qid}\n\t; Mon, 1 Jan 2024 00:00:00 "
                      "+0000\n", check=False)
        assert "no submission recorded" in trace.stdout

    # the settings page's own rows: a new submission still counts and shows
    send_from(d, JP4, client_tls)
    assert count("SELECT count(*) FROM submissions") == 2


def test_retention_bounds_keep_the_page_week(tmp_path):
    from conftest import SEKISHO, sanitizer_env
    import subprocess
    conf = tmp_path / "r.conf"
    conf.write_text("retention_events_days = 6\n"
                    "retention_submissions_days = 3\n"
                    "retention_events_days = 8\n")
    r = subprocess.run([str(SEKISHO), "check-config", str(conf)],
                       capture_output=True, text=True, env=sanitizer_env())
    assert r.returncode != 0
    assert "r.conf:1:" in r.stderr and "r.conf:2:" in r.stderr


def test_sighup_applies_new_retention(make_daemon, tmp_path, client_tls,
                                      monkeypatch):
    """An operator who shortens a retention period reloads, and the rows
    it no longer keeps go at once, without a restart."""
    d = make_daemon(proxy=True, listeners=LISTENERS, extra=[
        geo_config_line(tmp_path / "geo"),
        "pop3_lock_lease = 5s",
        "retention_events_days = 30",
        "retention_batch = 2"])

    def refused_events():
        con = sqlite3.connect(d.dir / "sekisho.db")
        try:
            return con.execute("SELECT count(*) FROM events WHERE type = "
                               "'overseas_refused'").fetchone()[0]
        finally:
            con.close()

    # ten days ago, then now: under 30 days both stay
    d.stop()
    monkeypatch.setenv("SEKISHO_CLOCK_OFFSET", str(-10 * DAY))
    d.start()
    for _ in range(3):
        activity(d, client_tls)
    d.stop()
    monkeypatch.setenv("SEKISHO_CLOCK_OFFSET", "0")
    d.start()
    activity(d, client_tls)
    assert refused_events() == 4
    # the keeper has swept at start and kept them all
    time.sleep(3)
    assert refused_events() == 4

    d.conf.write_text(d.conf.read_text().replace(
        "retention_events_days = 30", "retention_events_days = 7"))
    mark = d.log_mark()
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log(r"SIGHUP: retention days reloaded .*events=7 ", since=mark)
    wait_for(lambda: refused_events() == 1, 30,
             "the 10-day-old events to go after the reload")
    assert "retention table=events deleted=" in d.log_since(mark)
    assert d.cli("events", ALICE).stdout.count("overseas_refused") == 1
