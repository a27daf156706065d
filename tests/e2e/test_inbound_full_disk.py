"""Issue 18: a burst into a full disk. The spool and the Maildirs are small
tmpfs mounts (4 MiB each; root only, unmounted in teardown); eight clients
send 2 KB messages to one local user over mx until far more than fits has
been offered. Delivery at commit fills the Maildir first, then messages are
queued, then the spool's floor is reached. Every message must end one of
two ways: 250 (and then it is delivered, intact, once there is room), or a
temporary refusal, 452 or 451, that the client can retry; never a 5xx, a
dropped connection, or a refused message that shows up anyway."""
import collections
import os
import re
import subprocess
import threading

import pytest

from conftest import BOB, RawSMTP, received_id, split_received, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="mounting a tmpfs needs root")

CLIENTS = 8
PER_CLIENT = 400                # 3,200 x 2 KB: far more than 2 x 4 MiB
FILLER = ("y" * 76 + "\r\n") * 24


def message(tag):
    return (f"From: burst@example.org\r\nTo: {BOB}\r\n"
            f"Subject: burst {tag}\r\n"
            f"Message-ID: <{tag}@example.org>\r\n"
            "Date: Sun, 06 Dec 2026 12:00:00 +0000\r\n\r\n"
            + FILLER).encode()


def client(n, port, acked, refused, errors, lock):
    sent = 0
    try:
        while sent < PER_CLIENT:
            c = RawSMTP(port, timeout=30)
            assert c.cmd("EHLO burst.example.org")[0] == 250
            for _ in range(5):
                if sent >= PER_CLIENT:
                    break
                tag = f"c{n}-{sent}"
                sent += 1
                code, _ = c.cmd("MAIL FROM:<burst@example.org>")
                if code == 250:
                    code, _ = c.cmd(f"RCPT TO:<{BOB}>")
                if code == 250:
                    code, _ = c.cmd("DATA")
                if code == 354:
                    c.send(message(tag) + b".\r\n")
                    code, lines = c.reply()
                    if code == 250:
                        m = re.search(r"queued as ([0-9A-F]{20})", lines[0])
                        with lock:
                            acked[m.group(1)] = tag
                        continue
                with lock:
                    refused[code] += 1
                c.cmd("RSET")
            c.cmd("QUIT")
            c.close()
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(repr(e))


def test_burst_into_a_full_disk(small_disks, make_daemon):
    d = make_daemon(name="d0", extra=["queue_minfree = 512K",
                                      "queue_retry_min = 1s",
                                      "queue_retry_max = 2s"])
    acked, refused, errors = {}, collections.Counter(), []
    lock = threading.Lock()
    threads = [threading.Thread(target=client, args=(
        i, d.ports["mx"], acked, refused, errors, lock), daemon=True)
        for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    assert sum(refused.values()) + len(acked) == CLIENTS * PER_CLIENT
    # the disk was full: some refused, only ever temporarily
    assert refused, f"nothing refused ({len(acked)} acknowledged)"
    assert set(refused) <= {451, 452}, refused
    assert acked

    # Room in the Maildirs: every message that got 250 is delivered,
    # intact, and nothing that was refused.
    subprocess.run(["mount", "-o", "remount,size=64m", str(d.maildir_root)],
                   check=True, capture_output=True)
    wait_for(lambda: len(d.files(BOB)) >= len(acked) and
             not d.queue_files(), 120,
             f"{len(acked)} delivered (have {len(d.files(BOB))}, "
             f"{len(d.queue_files())} queued)")
    got = {}
    for f in d.files(BOB):
        data = f.read_bytes()
        qid = received_id(data)
        assert qid not in got, f"{qid} delivered twice"
        body = split_received(data)[1]
        m = re.search(rb"\nSubject: burst (\S+)\n", b"\n" + body)
        assert m, data[:300]
        got[qid] = m.group(1).decode()
        assert body.endswith(FILLER.replace("\r\n", "\n").encode()), \
            f"{qid} cut short"
    assert got == acked
    print(f"burst: {len(acked)} acknowledged, refused {dict(refused)}")
    assert d.sanitizer_report() is None, d.sanitizer_report()
