"""Recipients over the per-message limit (issue 14, item 1; RFC 5321
4.5.3.1.8 and 3.3). Mailing-list software pipelines hundreds of RCPTs: the
ones over smtp_max_recipients get 452 4.5.3 and the client sends DATA for
the accepted ones, the rest later. The refusals are no client errors until
smtp_recipient_overshoot_limit of them (Postfix's
smtpd_recipient_overshoot_limit); before, the tenth 452 ended the session
with 421 and the message never went.
"""
import smtplib
import subprocess

import pytest

from conftest import (ALICE, ALICE_PW, BOB, QUEUE_ID_RE, RawSMTP, dot_stuff,
                      wait_for)

LIMIT = 100
USERS = [f"u{i:03d}@example.jp" for i in range(LIMIT)]
# 300 in all: the first 100 are accounts; the 200 over the limit are
# accounts too (alice, bob, and the first 100 again), so one that reached
# the back side as accepted would show as a second copy or a file for
# alice or bob.
RCPTS = USERS + [ALICE, BOB] + [USERS[i % LIMIT] for i in range(198)]
MESSAGE = (b"From: list@example.org\r\nTo: members@example.org\r\n"
           b"Subject: to many\r\nMessage-ID: <many@example.org>\r\n\r\n"
           b"one copy each\r\n")


def add_users(d):
    # one hash for all: made once, not 100 times under ASan
    h = subprocess.run(["openssl", "passwd", "-6", "-salt", "saltsalt",
                        "u-pw"], capture_output=True, text=True,
                       check=True).stdout.strip()
    for u in USERS:
        d.cli("user", "add", u, "--hash", h)


@pytest.fixture
def mx(make_daemon):
    def make(*extra):
        d = make_daemon(start=False, extra=[
            f"smtp_max_recipients = {LIMIT}", *extra])
        add_users(d)
        d.start()
        return d
    return make


def pipeline(c, rcpts, sender="list@example.org"):
    """MAIL, every RCPT and DATA in one write (RFC 2920: DATA ends the
    group); returns the replies (code, text) in order, stopping early if
    the server closes."""
    c.send((f"MAIL FROM:<{sender}>\r\n" +
            "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts) +
            "DATA\r\n").encode())
    replies = []
    for _ in range(len(rcpts) + 2):
        try:
            code, lines = c.reply()
        except ConnectionError:
            break
        replies.append((code, lines[-1]))
        if code == 421:
            break
    return replies


def counts(d):
    return {u: len(d.files(u)) for u in USERS + [ALICE, BOB]}


def wait_delivered(d):
    wait_for(lambda: all(len(d.files(u)) >= 1 for u in USERS), 60,
             "a copy for each of the first 100")
    d.wait_queue_empty()


def test_pipelined_300_recipients_then_data(mx):
    d = mx()
    with RawSMTP(d.ports["mx"]) as c:
        assert c.cmd("EHLO lists.example.org")[0] == 250
        replies = pipeline(c, RCPTS)
        assert replies[0][0] == 250, replies[0]
        rcpt = replies[1:1 + len(RCPTS)]
        assert [r[0] for r in rcpt[:LIMIT]] == [250] * LIMIT, rcpt[:LIMIT]
        over = rcpt[LIMIT:]
        assert len(over) == 200
        for code, text in over:
            assert code == 452 and "4.5.3" in text, (code, text)
        assert replies[-1][0] == 354, replies[-1]
        c.send(dot_stuff(MESSAGE) + b".\r\n")
        code, lines = c.reply()
        assert code == 250 and QUEUE_ID_RE.search(lines[-1].encode()), lines
        # the session goes on: a second transaction, then QUIT
        assert c.cmd("RSET")[0] == 250
        assert c.cmd("MAIL FROM:<list@example.org>")[0] == 250
        assert c.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert c.cmd("QUIT")[0] == 221
    wait_delivered(d)
    got = counts(d)
    assert all(got[u] == 1 for u in USERS), got
    assert got[ALICE] == 0 and got[BOB] == 0, got


def test_smtplib_sendmail_over_the_limit(mx):
    """smtplib (one RCPT at a time): sendmail() returns the 200 refused and
    the message goes to the 100 accepted."""
    d = mx()
    with smtplib.SMTP("127.0.0.1", d.ports["mx"], timeout=60) as s:
        refused = s.sendmail("list@example.org", RCPTS[:LIMIT] +
                             [f"x{i}@example.jp" for i in range(200)],
                             MESSAGE)
        assert len(refused) == 200
        assert all(code == 452 and b"4.5.3" in text
                   for code, text in refused.values()), refused
        assert s.noop()[0] == 250
    wait_delivered(d)
    got = counts(d)
    assert all(got[u] == 1 for u in USERS), got


def test_past_the_overshoot_limit_421(mx):
    """The attacker's side: refusals past smtp_recipient_overshoot_limit
    count as errors again, and smtp_max_errors of them end the session."""
    d = mx("smtp_recipient_overshoot_limit = 50", "smtp_max_errors = 10")
    with RawSMTP(d.ports["mx"]) as c:
        assert c.cmd("EHLO lists.example.org")[0] == 250
        replies = pipeline(c, RCPTS)
        codes = [r[0] for r in replies]
        assert codes[1:1 + LIMIT] == [250] * LIMIT
        # 50 free refusals, then 10 counted ones: the tenth is followed
        # by the 421
        assert codes[1 + LIMIT:] == [452] * 60 + [421], codes[1 + LIMIT:]
        assert "4.7.0" in replies[-1][1] and "Too many errors" in \
            replies[-1][1]
        assert c.closed_by_peer()
    assert counts(d) == {u: 0 for u in USERS + [ALICE, BOB]}


def test_submission_per_message_limit(make_daemon, client_tls):
    """The account's limit_recipients_per_message (the policy's answer to
    MAIL) is over-the-limit too: 452 4.5.3, no error, DATA for the rest."""
    d = make_daemon(extra=["smtp_max_errors = 3"])
    d.cli("limits", "set", ALICE, "recipients_per_message=2")
    with smtplib.SMTP("127.0.0.1", d.ports["submission"], timeout=30) as s:
        s.starttls(context=client_tls)
        s.login(ALICE, ALICE_PW)
        refused = s.sendmail(ALICE, [BOB, ALICE] + [BOB] * 6,
                             b"From: " + ALICE.encode() +
                             b"\r\nSubject: two\r\n\r\nhi\r\n")
        assert len(refused) == 1 and list(refused.values())[0][0] == 452
        assert s.noop()[0] == 250
    d.wait_files(BOB, 1)
    d.wait_files(ALICE, 1)
    d.wait_queue_empty()
    assert len(d.files(BOB)) == 1 and len(d.files(ALICE)) == 1
