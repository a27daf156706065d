"""Privilege separation (docs/security.md), checked the way an operator
would: from /proc and the file system.

The master stays root; the back side runs as `sekisho`; every session
process runs as `sekisho-session`, chrooted to an empty directory, with
no_new_privs and no right to fork. A session process that dies is
replaced, and the sessions of the other processes go on.
"""
import grp
import os
import pwd
import re
import signal
import stat
import subprocess
import time

import pytest

from conftest import (ALICE, BOB, SEKISHO, RawSMTP, children, daemon_ids,
                      dot_stuff, mx_send, proc_status, sanitizer_env,
                      wait_for)

pytestmark = pytest.mark.skipif(
    daemon_ids() is None,
    reason="needs root and the users made by scripts/setup")

CHROOT = "/var/lib/sekisho/empty"     # session_chroot's default


def ids(name):
    return pwd.getpwnam(name).pw_uid, grp.getgrnam(name).gr_gid


def roles(d):
    """(back side pid, [session process pids]) of a running daemon."""
    kids = children(d.proc.pid)
    back = [p for p, n in kids.items() if n == "sekisho-back"]
    sessions = sorted(p for p, n in kids.items() if n == "sekisho-session")
    assert len(back) == 1, kids
    return back[0], sessions


def test_processes_run_as_their_users(daemon):
    uid, gid = ids("sekisho")
    suid, sgid = ids("sekisho-session")
    master = proc_status(daemon.proc.pid)
    assert master["Uid"] == ["0"] * 4
    back, sessions = roles(daemon)
    st = proc_status(back)
    assert st["Uid"] == [str(uid)] * 4
    assert st["Gid"] == [str(gid)] * 4
    assert st["Groups"] == [str(gid)]
    assert os.readlink(f"/proc/{back}/root") == "/"
    assert len(sessions) == 2       # workers = 2
    for pid in sessions:
        st = proc_status(pid)
        assert st["Uid"] == [str(suid)] * 4
        assert st["Gid"] == [str(sgid)] * 4
        assert st["Groups"] == []
        assert st["NoNewPrivs"] == ["1"]
        assert os.readlink(f"/proc/{pid}/root") == CHROOT
        with open(f"/proc/{pid}/limits") as f:
            nproc = [line for line in f if line.startswith("Max processes")]
        assert nproc[0].split()[2:4] == ["0", "0"], nproc
        # nothing of the store, the spool or the keys is open in it
        # (0-2: stdin, and the log the test reads, as in the foreground)
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if int(fd) <= 2:
                continue
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            assert not target.startswith(str(daemon.dir)), target
            assert "key.pem" not in target, target
    # the daemon says who it runs as
    assert re.search(r"sekisho started .*user=sekisho "
                     r"session_user=sekisho-session", daemon.log())


def thread_policies(pid):
    """{thread name: [scheduling policy, ...]} of pid's threads (field 41
    of /proc/PID/task/TID/stat: 0 SCHED_OTHER, 3 SCHED_BATCH)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            text = f.read()
        name = text[text.index("(") + 1:text.rindex(")")]
        policy = int(text[text.rindex(")") + 2:].split()[38])
        out.setdefault(name, []).append(policy)
    return out


def test_commit_threads_yield_to_the_sessions(daemon):
    """The back side's commit threads (issue 18) are named for top -H
    and run SCHED_BATCH, so that a disk interrupt waking one does not
    take the CPU from a session; every other thread keeps the default.
    Mail still goes through them."""
    back, sessions = roles(daemon)
    pol = thread_policies(back)
    assert pol.get("sekisho-commit"), pol
    assert set(pol["sekisho-commit"]) == {3}, pol
    assert {p for n, ps in pol.items() if n != "sekisho-commit"
            for p in ps} == {0}, pol
    for pid in sessions:
        assert {p for ps in thread_policies(pid).values() for p in ps} \
            == {0}
    mx_send(daemon.ports["mx"], BOB, b"Subject: batch\r\n\r\nhi\r\n")
    daemon.wait_files(BOB, 1)


def test_the_daemons_files_are_its_own_and_private(daemon):
    uid, gid = ids("sekisho")
    qid = mx_send(daemon.ports["mx"], ALICE,
                  b"Subject: private\r\n\r\nhello\r\n")
    daemon.wait_message(ALICE, qid)
    paths = [daemon.dir / "sekisho.db"]
    for top in (daemon.spool, daemon.maildir_root):
        paths.append(top)
        for root, dirs, files in os.walk(top):
            paths += [os.path.join(root, n) for n in dirs + files]
    paths += [p for p in (daemon.dir / "sekisho.db-wal",
                          daemon.dir / "sekisho.db-shm") if p.exists()]
    assert len(paths) > 8
    for p in paths:
        st = os.lstat(p)
        if stat.S_ISSOCK(st.st_mode):
            continue        # the queue's control socket
        assert (st.st_uid, st.st_gid) == (uid, gid), p
        assert st.st_mode & 0o007 == 0, f"{p} {oct(st.st_mode)}"


def test_tools_run_as_root_work_as_the_daemons_user(make_daemon):
    uid, gid = ids("sekisho")
    d = make_daemon(start=False)        # domain add, user add: as root
    st = os.stat(d.dir / "sekisho.db")
    assert (st.st_uid, st.st_gid) == (uid, gid)
    assert st.st_mode & 0o007 == 0
    d.start()
    mx_send(d.ports["mx"], BOB, b"Subject: x\r\n\r\ny\r\n")
    d.wait_files(BOB, 1)


def test_a_spool_given_to_the_user_by_hand_gets_its_subdirectories(
        make_daemon):
    # The quick start's way: the operator makes spool_dir and gives it to
    # sekisho; the first start as root makes incoming/ and queue/ in it.
    uid, gid = ids("sekisho")
    d = make_daemon(start=False)
    d.spool.mkdir(exist_ok=True)
    os.chown(d.spool, uid, gid)
    os.chmod(d.spool, 0o750)
    d.start()
    for sub in ("incoming", "queue"):
        st = os.stat(d.spool / sub)
        assert (st.st_uid, st.st_gid) == (uid, gid), sub
    qid = mx_send(d.ports["mx"], BOB, b"Subject: x\r\n\r\ny\r\n")
    d.wait_message(BOB, qid)


def start_fails(d, needle):
    r = subprocess.run([str(SEKISHO), "-c", str(d.conf), "serve", "-f"],
                       capture_output=True, text=True, timeout=60,
                       env=sanitizer_env())
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    return r


def test_root_and_shared_users_are_refused(make_daemon):
    d = make_daemon(start=False, accounts=False, extra=["user = root"])
    start_fails(d, "is root")
    d = make_daemon(start=False, accounts=False,
                    extra=["session_user = sekisho",
                           "session_group = sekisho"])
    start_fails(d, "session_user must differ from user")
    d = make_daemon(start=False, accounts=False,
                    extra=["user = no-such-user-here"])
    start_fails(d, "no such user")


def test_a_chroot_that_is_not_empty_is_refused(make_daemon, tmp_path):
    root = tmp_path / "not-empty"       # not root-owned either
    root.mkdir()
    (root / "etc").mkdir()
    d = make_daemon(start=False, accounts=False,
                    extra=[f"session_chroot = {root}"])
    start_fails(d, "session_chroot")


# --- a session process that dies -------------------------------------

def tcp_inodes(server_port, client_port):
    """Socket inodes of the server side of 127.0.0.1:client_port ->
    server_port (from /proc/net/tcp)."""
    want_local = f"0100007F:{server_port:04X}"
    want_remote = f"0100007F:{client_port:04X}"
    found = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[1] == want_local and cols[2] == want_remote:
                found.add(cols[9])
    return found


def serving_pid(d, conn, pids):
    """The session process that holds the server side of conn."""
    port = d.ports["mx"]
    inodes = tcp_inodes(port, conn.sock.getsockname()[1])
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.fullmatch(r"socket:\[(\d+)\]", target)
            if m and m.group(1) in inodes:
                return pid
    return None


def send_on(c, rcpt, subject):
    assert c.cmd("MAIL FROM:<survivor@example.org>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(dot_stuff(f"Subject: {subject}\r\n\r\nstill here\r\n".encode())
           + b".\r\n")
    code, lines = c.reply()
    assert code == 250, lines


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGABRT])
def test_a_dead_session_process_is_replaced_others_go_on(make_daemon, sig):
    # (SIGABRT stands for a crash: the ASan build under test reports a
    # SIGSEGV sent by kill as a sanitizer finding.)
    d = make_daemon(workers=3)
    _, sessions = roles(d)
    assert len(sessions) == 3
    conns = []
    try:
        for _ in range(12):
            c = RawSMTP(d.ports["mx"])
            assert c.cmd("EHLO survivor.example.org")[0] == 250
            conns.append(c)
        owner = {id(c): serving_pid(d, c, sessions) for c in conns}
        assert None not in owner.values(), owner
        victim = owner[id(conns[0])]
        others = [c for c in conns if owner[id(c)] != victim]
        mine = [c for c in conns if owner[id(c)] == victim]
        assert others, "every connection went to one process"
        mark = d.log_mark()
        os.kill(victim, sig)
        d.wait_log(rf"session process {victim} exited on signal "
                   rf"{int(sig)}", since=mark)
        # a new one takes the dead one's place
        new = wait_for(lambda: [p for p in roles(d)[1]
                                if p not in sessions] or None,
                       10, "a new session process")
        assert len(roles(d)[1]) == 3
        # the dead one's sessions are gone, the others' go on
        for c in mine:
            assert c.closed_by_peer(timeout=5)
        for i, c in enumerate(others):
            send_on(c, ALICE, f"survivor {i}")
            assert c.cmd("QUIT")[0] == 221
        d.wait_files(ALICE, len(others))
        # and new connections are served, also by the new process
        for attempt in range(40):
            c = RawSMTP(d.ports["mx"])
            try:
                assert c.cmd("EHLO new.example.org")[0] == 250
                if serving_pid(d, c, new) is not None:
                    send_on(c, BOB, "by the new process")
                    break
            finally:
                c.close()
        else:
            pytest.fail("no connection reached the new session process")
        d.wait_files(BOB, 1)
    finally:
        for c in conns:
            c.close()


def test_default_is_one_session_process_per_two_cores(make_daemon):
    # workers = 0: the back side's threads keep the other cores
    d = make_daemon(workers=0)
    cores = os.cpu_count()          # what sysconf says is online
    _, sessions = roles(d)
    assert len(sessions) == max(1, cores // 2), (cores, sessions)
    mx_send(d.ports["mx"], ALICE, b"Subject: a\r\n\r\nb\r\n")
    d.wait_files(ALICE, 1)


def test_session_ids_do_not_repeat_after_a_restart(make_daemon):
    d = make_daemon(workers=1)
    mx_send(d.ports["mx"], ALICE, b"Subject: a\r\n\r\nb\r\n")
    _, (pid,) = roles(d)
    mark = d.log_mark()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: [p for p in roles(d)[1] if p != pid], 10,
             "a new session process")
    d.wait_log("session process .* started", since=mark)
    time.sleep(0.2)
    mx_send(d.ports["mx"], ALICE, b"Subject: c\r\n\r\nd\r\n")
    ids_seen = re.findall(r"session=([0-9A-F]{8}) connect", d.log())
    assert len(ids_seen) == len(set(ids_seen)), ids_seen
