"""The queue's held state (issue 17): a held message keeps its mark, who
held it and why across a restart, is never delivered, is listed with a
filter, and is released (delivered exactly once) or deleted, one by one or
for a whole account."""
import time

import pytest

from conftest import ALICE, BOB, BOB_PW
from outbound_peer import ScriptedPeer
from test_outbound import PEER_DOMAIN, outbound_conf, submit


@pytest.fixture
def peer():
    p = ScriptedPeer()
    yield p
    p.close()


def held_ids(d, *args):
    out = d.cli("queue", "list", "--held", *args).stdout
    return [line.split()[0] for line in out.splitlines()
            if " HELD" in line]


def test_hold_survives_restart_release_delivers_once(make_daemon, peer):
    peer.rcpt_reply = lambda n, r: "451 4.3.0 not now"
    d = make_daemon(extra=outbound_conf(
        peer, "queue_retry_min = 1h", "queue_retry_max = 1h"))
    qid = submit(d, [f"a@{PEER_DOMAIN}"], subject="held1")
    d.wait_log(rf"id={qid} deliver rcpt=a@peer.test \S+ status=deferred")
    r = d.cli("queue", "hold", qid, "reported by the desk")
    assert r.stdout.strip() == f"{qid} held"
    show = d.cli("queue", "show", qid).stdout
    assert "held: yes" in show
    assert "held-by: cli" in show
    assert "hold-reason: reported by the desk" in show
    # a restart delivers everything queued, but not what is held
    peer.rcpt_reply = lambda n, r: "250 2.1.5 Ok"
    d.restart()
    d.cli("queue", "flush")
    time.sleep(2)
    assert not peer.messages
    assert held_ids(d) == [qid]
    assert "hold-reason: reported by the desk" in \
        d.cli("queue", "show", qid).stdout
    # two releases racing: one wins, the message goes once
    first = d.cli("queue", "release", qid, check=False)
    second = d.cli("queue", "release", qid, check=False)
    assert first.returncode == 0 and "released" in first.stdout
    assert second.returncode == 1
    assert "not held" in second.stderr or "no such message" in second.stderr
    peer.wait_messages(1)
    d.wait_queue_empty()
    time.sleep(1)
    assert len(peer.messages) == 1


def test_list_filter_and_account_release_delete(make_daemon, peer):
    peer.rcpt_reply = lambda n, r: "451 4.3.0 not now"
    d = make_daemon(extra=outbound_conf(
        peer, "queue_retry_min = 1h", "queue_retry_max = 1h"))
    a1 = submit(d, [f"x@{PEER_DOMAIN}"], subject="a1")
    a2 = submit(d, [f"y@{PEER_DOMAIN}"], subject="a2")
    a3 = submit(d, [f"z@{PEER_DOMAIN}"], subject="a3")
    for q in (a1, a2, a3):
        d.wait_log(rf"id={q} deliver rcpt=\S+ \S+ status=deferred")
    d.cli("queue", "hold", a1)
    d.cli("queue", "hold", a2)
    assert held_ids(d) == sorted([a1, a2])
    assert held_ids(d, "--account", ALICE) == sorted([a1, a2])
    assert held_ids(d, "--account", BOB) == []
    everything = d.cli("queue", "list").stdout
    assert a3 in everything and a3 not in \
        d.cli("queue", "list", "--held").stdout
    # delete --account removes the held ones only
    out = d.cli("queue", "delete", "--account", ALICE).stdout
    assert "deleted=2 failed=0" in out
    rest = d.cli("queue", "list").stdout
    assert a1 not in rest and a2 not in rest and a3 in rest
    assert not (d.spool / "queue" / f"{a1}.hold").exists()
    # release --account: the held ones go, once each
    d.cli("queue", "hold", a3)
    peer.rcpt_reply = lambda n, r: "250 2.1.5 Ok"
    out = d.cli("queue", "release", "--account", ALICE).stdout
    assert "released=1 failed=0" in out
    peer.wait_messages(1)
    d.wait_queue_empty()
    assert len(peer.messages) == 1
    assert d.cli("queue", "release", "--account", ALICE).stdout.strip() \
        .endswith("released=0 failed=0")


def test_bad_arguments(daemon):
    for args in (["queue", "release", "--account"],
                 ["queue", "delete", "nonsense"],
                 ["queue", "list", "--bogus"]):
        assert daemon.cli(*args, check=False).returncode == 2
    r = daemon.cli("queue", "release", "0" * 20, check=False)
    assert r.returncode == 1 and "no such message" in r.stderr
