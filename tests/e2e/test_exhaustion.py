"""A full disk (issue 9, resource exhaustion): the spool and the Maildirs on
small tmpfs mounts made by the test (root only; unmounted in teardown).

- Below queue_minfree, MAIL gets 452 4.3.1; so does a SIZE= larger than
  the space above the floor; DATA too, when the disk filled after MAIL.
- With no floor, a message larger than what is left hits ENOSPC while the
  session writes it: 451 4.3.0, nothing left in incoming/ or queue/, and the
  same session sends again (RSET, retry) once there is room.
- A full Maildir defers delivery (the message stays queued and is retried)
  and every message that got 250 is delivered once there is room.
smtplib is the client throughout."""
import os
import smtplib
import time
from pathlib import Path

import pytest

from conftest import ALICE, ALICE_PW, BOB, QUEUE_ID_RE, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="mounting a tmpfs needs root")

MIB = 1024 * 1024


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path, leave):
    """Make path/filler so that about `leave` bytes stay free."""
    filler = Path(path) / "filler"
    have = filler.stat().st_size if filler.exists() else 0
    size = max(0, have + free_bytes(path) - leave)
    with open(filler, "r+b" if filler.exists() else "wb") as f:
        f.truncate(0)
        f.flush()
        # tmpfs: written pages count, a sparse truncate would not
        chunk = b"\0" * 65536
        left = size
        while left > 0:
            n = min(left, len(chunk))
            try:
                f.write(chunk[:n])
                f.flush()
            except OSError:
                break
            left -= n
    return free_bytes(path)


def unfill(path):
    filler = Path(path) / "filler"
    if filler.exists():
        filler.unlink()


def message(subject, size=0):
    head = (f"From: Alice <{ALICE}>\r\nTo: <{BOB}>\r\n"
            f"Subject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.jp>\r\n"
            "Date: Mon, 02 Mar 2026 10:00:00 +0900\r\n\r\n").encode()
    line = b"x" * 76 + b"\r\n"
    return head + b"hello\r\n" + line * (size // len(line))


def submit(port, client_tls, subject, size=0, smtp=None):
    """Send with smtplib on 465; returns (queue id, the SMTP object)."""
    s = smtp or smtplib.SMTP_SSL("127.0.0.1", port, context=client_tls,
                                 timeout=30)
    if smtp is None:
        s.login(ALICE, ALICE_PW)
    s.sendmail(ALICE, [BOB], message(subject, size))
    code, resp = s.noop()
    assert code == 250
    return s


def queued_id(daemon, subject, mark):
    """The queue ID the daemon logged for the message just sent."""
    m = daemon.wait_log(r"id=([0-9A-F]{20}) queued client=", since=mark)
    return m.group(1)


def incoming(daemon):
    d = daemon.spool / "incoming"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def test_disk_full(small_disks, make_daemon, client_tls):
    extra = ["queue_minfree = 1M", "queue_retry_min = 1s",
             "queue_retry_max = 2s", "message_size_limit = 8M",
             "trusted_networks = 127.0.0.0/8"]
    d = make_daemon(name="d0", extra=extra, workers=1)
    port = d.ports["submissions"]
    acked = []

    # A full Maildir: the first message is queued (250) but deferred.
    fill(d.maildir_root, 0)
    mark = d.log_mark()
    s = submit(port, client_tls, "first")
    acked.append(queued_id(d, "first", mark))
    d.wait_log(rf"id={acked[0]} deliver rcpt={BOB} .*status=deferred",
               since=mark)
    assert d.files(BOB) == []
    assert [p.name for p in d.queue_files()] and \
        acked[0] in [p.name for p in d.queue_files()]

    # Below the floor: 452 4.3.1 at MAIL, and it says so in the log.
    fill(d.spool, 512 * 1024)
    mark = d.log_mark()
    code, resp = s.mail(ALICE)
    assert code == 452 and resp.startswith(b"4.3.1 "), (code, resp)
    d.wait_log(r"spool full avail=\d+ minfree=1048576 .*result=refused",
               since=mark)
    s.rset()

    # Above the floor, but SIZE= would eat into it (RFC 1870 6.1).
    left = fill(d.spool, 2 * MIB + 512 * 1024)
    code, resp = s.mail(ALICE, ["SIZE=%d" % (left - MIB + 64 * 1024)])
    assert code == 452 and resp.startswith(b"4.3.1 "), (code, resp)
    code, resp = s.mail(ALICE, ["SIZE=%d" % (left - MIB - 256 * 1024)])
    assert code == 250, (code, resp)
    s.rset()

    # MAIL passed, then the disk filled: DATA is refused with 452 too.
    assert s.mail(ALICE)[0] == 250
    assert s.rcpt(BOB)[0] == 250
    fill(d.spool, 256 * 1024)
    code, resp = s.docmd("DATA")
    assert code == 452 and b"4.3.1" in resp, (code, resp)
    s.rset()
    assert incoming(d) == []
    s.quit()

    # No floor: the disk itself runs out while the message is written.
    d.stop()
    d.tail = [x for x in d.tail if not x.startswith("queue_minfree")] + \
        ["queue_minfree = 0"]
    d.write_conf()
    d.start()
    port = d.ports["submissions"]
    left = fill(d.spool, 200 * 1024)
    mark = d.log_mark()
    s = smtplib.SMTP_SSL("127.0.0.1", port, context=client_tls, timeout=60)
    s.login(ALICE, ALICE_PW)
    big = message("too big", left + 400 * 1024)
    # smtplib announces SIZE=: refused at MAIL, before a byte is sent.
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        s.sendmail(ALICE, [BOB], big)
    assert e.value.smtp_code == 452, e.value
    assert e.value.smtp_error.startswith(b"4.3.1 "), e.value
    # A client that does not: the write itself fails with ENOSPC.
    del s.esmtp_features["size"]
    with pytest.raises(smtplib.SMTPDataError) as e:
        s.sendmail(ALICE, [BOB], big)
    assert e.value.smtp_code == 451, e.value
    assert e.value.smtp_error.startswith(b"4.3.0 "), e.value
    d.wait_log(r"spool write: No space left on device", since=mark)
    d.wait_log(r"not queued client=\S+ reason=spool-write", since=mark)
    assert incoming(d) == []
    assert sorted(p.name for p in d.queue_files()
                  if not p.name.endswith(".done")) == acked

    # The same session, once there is room: RSET (smtplib did) and retry.
    unfill(d.spool)
    mark = d.log_mark()
    submit(port, client_tls, "second", 600 * 1024, smtp=s)
    acked.append(queued_id(d, "second", mark))
    s.quit()

    # Room in the Maildirs: every message that got 250 is delivered.
    unfill(d.maildir_root)
    for qid in acked:
        d.wait_message(BOB, qid)
    d.wait_queue_empty()
    assert len(d.files(BOB)) == len(acked)
    assert incoming(d) == []
