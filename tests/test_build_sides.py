"""The privilege sides in the build (issue 15): the session library links
with the common one alone, and so does the back side's (`make
check-sides`); a session-side object that calls the store does not link;
and the session library holds no object of the store, the spool and
queue, the MTA, the policy or the key process."""
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"


def make(*args, timeout=1200):
    return subprocess.run(["make", "-s", "-C", str(REPO), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_check_sides():
    r = make("check-sides")
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert "check-sides: the session side links without the back side" \
        in r.stdout


def archive_members(name):
    r = subprocess.run(["ar", "t", str(BUILD / f"libsekisho-{name}.a")],
                       capture_output=True, text=True, check=True)
    return set(r.stdout.split())


def test_session_library_holds_no_back_side_object():
    assert make("check-sides").returncode == 0
    session = archive_members("session") | archive_members("common")
    back_only = {"store.o", "store_sqlite.o", "store_pgsql.o", "password.o",
                 "queue.o", "spool.o", "maildir.o", "dsn.o", "mta.o",
                 "policy.o", "fcrdns.o", "keyproc.o", "backend.o",
                 "be_account.o", "apop.o", "api_token.o", "admin_users.o",
                 "master.o", "back_proc.o", "privsep.o"}
    assert not session & back_only, sorted(session & back_only)
    for must in ("smtp_session.o", "pop3_session.o", "policyd_session.o",
                 "portal.o", "server.o", "keys_client.o", "conn.o"):
        assert must in archive_members("session"), must
    back = archive_members("back")
    assert not back & {"smtp_session.o", "pop3_session.o", "portal.o",
                       "policyd_session.o", "server.o", "keys_client.o",
                       "conn.o", "master.o"}


def test_a_call_across_the_seam_fails_to_link(tmp_path):
    """The attacker's side of the check: session code that calls the
    store directly (not by a message) must not link against the session
    and common libraries."""
    assert make("check-sides").returncode == 0
    probe = tmp_path / "probe.c"
    probe.write_text(
        '#include "store/store.h"\n'
        "int main(void);\n"
        "int main(void)\n{\n\tconst char *e;\n\n"
        '\treturn store_open("sqlite:/nonexistent", &e) == 0;\n}\n')
    libs = subprocess.run(
        ["pkg-config", "--libs", "libevent_openssl", "libevent_pthreads",
         "libevent", "openssl", "sqlite3", "libmaxminddb", "libcares", "libpq",
         "jansson", "libsystemd"], capture_output=True, text=True,
        check=True).stdout
    def link(*sides):
        cmd = (["cc", "-std=c17", "-D_GNU_SOURCE", f"-I{REPO / 'src'}",
                "-o", str(tmp_path / "probe"), str(probe)] +
               [str(BUILD / f"libsekisho-{s}.a") for s in sides] +
               shlex.split(libs) + ["-lcrypt", "-lpthread", "-lm"])
        return subprocess.run(cmd, capture_output=True, text=True,
                               timeout=300)

    r = link("session", "common")
    assert r.returncode != 0
    assert "undefined reference to `store_open'" in r.stderr, r.stderr[-3000:]
    # the same program links once the back side's library is there
    r = link("session", "back", "common")
    assert r.returncode == 0, r.stderr[-3000:]
