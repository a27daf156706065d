"""The operator's CLI: domain add/del/list, user add/passwd/show/list/del/
suspend/resume, user alias add/del/list, and their error messages. Passwords
set here must work over SMTP (checked against a running daemon)."""
import re
import subprocess

import pytest

from conftest import SEKISHO, RawSMTP, sanitizer_env
from test_refusals import plain


@pytest.fixture
def cli(make_daemon):
    """A configured daemon that is not started, with an empty store."""
    d = make_daemon(start=False, accounts=False)
    return d


def fails(d, *args, input=None, code=1):
    r = d.cli(*args, input=input, check=False)
    assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
    assert r.stdout == "", r.stdout
    return r.stderr


def test_domains(cli):
    assert cli.cli("domain", "list").stdout == ""
    cli.cli("domain", "add", "example.jp")
    cli.cli("domain", "add", "Example.NET")
    listed = cli.cli("domain", "list").stdout.splitlines()
    assert sorted(d.lower() for d in listed) == ["example.jp", "example.net"]
    assert "already exists" in fails(cli, "domain", "add", "example.jp")
    cli.cli("domain", "del", "example.net")
    assert cli.cli("domain", "list").stdout.splitlines() == ["example.jp"]
    err = fails(cli, "domain", "del", "nowhere.jp")
    assert "nowhere.jp" in err


def test_domain_usage_errors(cli):
    err = fails(cli, "domain", code=2)
    assert "'domain' needs a subcommand" in err
    err = fails(cli, "domain", "frobnicate", code=2)
    assert "unknown subcommand 'domain frobnicate'" in err
    err = fails(cli, "domain", "add", code=2)
    assert "usage: sekisho domain add DOMAIN" in err
    err = fails(cli, "domain", "add", "a.jp", "b.jp", code=2)
    assert "usage: sekisho domain add DOMAIN" in err


def test_domain_with_accounts_cannot_be_deleted(cli):
    cli.cli("domain", "add", "example.jp")
    cli.add_user("carol@example.jp", "pw-carol")
    err = fails(cli, "domain", "del", "example.jp")
    assert "still has 1 account(s)" in err, err
    cli.cli("user", "del", "carol@example.jp")
    cli.cli("domain", "del", "example.jp")
    assert cli.cli("domain", "list").stdout == ""


def test_users(cli):
    cli.cli("domain", "add", "example.jp")
    cli.cli("domain", "add", "example.net")
    cli.add_user("carol@example.jp", "pw-carol")
    cli.add_user("dave@example.jp", "pw-dave")
    cli.add_user("erin@example.net", "pw-erin")
    assert cli.cli("user", "list").stdout.splitlines() == [
        "carol@example.jp", "dave@example.jp", "erin@example.net"]
    assert cli.cli("user", "list", "example.net").stdout == \
        "erin@example.net\n"
    show = cli.cli("user", "show", "carol@example.jp").stdout
    lines = show.splitlines()
    assert lines[0] == "address: carol@example.jp", show
    assert re.fullmatch(r"created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
                        r"[+-]\d\d:\d\d", lines[1]), show
    assert "suspended: no" in lines, show
    assert "aliases:" in lines, show
    cli.cli("user", "suspend", "dave@example.jp")
    assert "dave@example.jp (suspended)" in \
        cli.cli("user", "list").stdout.splitlines()
    assert "suspended: yes\n" in cli.cli("user", "show",
                                         "dave@example.jp").stdout
    cli.cli("user", "resume", "dave@example.jp")
    assert "dave@example.jp" in cli.cli("user", "list").stdout.splitlines()
    cli.cli("user", "del", "dave@example.jp")
    assert cli.cli("user", "list").stdout.splitlines() == [
        "carol@example.jp", "erin@example.net"]


def test_user_errors(cli):
    cli.cli("domain", "add", "example.jp")
    cli.add_user("carol@example.jp", "pw-carol")
    err = fails(cli, "user", "add", "carol@example.jp", input="x\n")
    assert "account 'carol@example.jp' already exists" in err
    err = fails(cli, "user", "add", "x@nowhere.jp", input="x\n")
    assert "no such domain 'nowhere.jp'" in err
    assert "sekisho domain add nowhere.jp" in err
    err = fails(cli, "user", "add", "not-an-address", input="x\n")
    assert "invalid address 'not-an-address'" in err
    err = fails(cli, "user", "add", "frank@example.jp", input="")
    assert "no password given" in err
    err = fails(cli, "user", "add", "frank@example.jp", input="\n")
    assert "empty password refused" in err
    for sub in ("show", "passwd", "del"):
        err = fails(cli, "user", sub, "nobody@example.jp", input="pw\n")
        assert "nobody@example.jp" in err, (sub, err)
    err = fails(cli, "user", "suspend", "nobody@example.jp")
    assert "nobody@example.jp" in err
    err = fails(cli, "user", "add", "--hash", "nonsense", "frank@example.jp")
    assert err
    err = fails(cli, "user", "frobnicate", code=2)
    assert "unknown subcommand 'user frobnicate'" in err
    err = fails(cli, "user", "show", code=2)
    assert "missing arguments" in err and "usage: sekisho user show" in err
    err = fails(cli, "user", "del", "a@example.jp", "b@example.jp", code=2)
    assert "too many arguments" in err
    err = fails(cli, "user", "list", "--bogus", code=2)
    assert "unknown option '--bogus'" in err
    # nothing changed
    assert cli.cli("user", "list").stdout == "carol@example.jp\n"


def test_aliases(cli):
    cli.cli("domain", "add", "example.jp")
    cli.add_user("carol@example.jp", "pw-carol")
    cli.add_user("dave@example.jp", "pw-dave")
    cli.cli("user", "alias", "add", "info@example.jp", "carol@example.jp")
    cli.cli("user", "alias", "add", "sales@example.jp", "carol@example.jp")
    cli.cli("user", "alias", "add", "help@example.jp", "dave@example.jp")
    listed = cli.cli("user", "alias", "list").stdout.splitlines()
    assert sorted(listed) == ["help@example.jp dave@example.jp",
                              "info@example.jp carol@example.jp",
                              "sales@example.jp carol@example.jp"]
    assert sorted(cli.cli("user", "alias", "list", "carol@example.jp")
                  .stdout.splitlines()) == [
        "info@example.jp carol@example.jp",
        "sales@example.jp carol@example.jp"]
    show = cli.cli("user", "show", "carol@example.jp").stdout
    assert re.search(r"(?m)^aliases: (info@example\.jp, sales@example\.jp|"
                     r"sales@example\.jp, info@example\.jp)$", show), show
    err = fails(cli, "user", "alias", "add", "info@example.jp",
                "dave@example.jp")
    assert "alias 'info@example.jp' already exists" in err
    err = fails(cli, "user", "alias", "add", "x@example.jp",
                "nobody@example.jp")
    assert "no such account 'nobody@example.jp'" in err
    err = fails(cli, "user", "alias", "add", "carol@example.jp",
                "dave@example.jp")
    assert "carol@example.jp" in err     # an account cannot be an alias
    err = fails(cli, "user", "alias", "del", "nothere@example.jp")
    assert "no such alias 'nothere@example.jp'" in err
    cli.cli("user", "alias", "del", "sales@example.jp")
    assert sorted(cli.cli("user", "alias", "list").stdout.splitlines()) == [
        "help@example.jp dave@example.jp",
        "info@example.jp carol@example.jp"]
    # deleting an account deletes its aliases
    cli.cli("user", "del", "dave@example.jp")
    assert cli.cli("user", "alias", "list").stdout == \
        "info@example.jp carol@example.jp\n"
    err = fails(cli, "user", "alias", code=2)
    assert "'user alias' needs a subcommand" in err


def test_passwd_and_hash_import_work_over_smtp(cli, client_tls):
    cli.cli("domain", "add", "example.jp")
    cli.add_user("carol@example.jp", "first-pw")
    cli.cli("user", "passwd", "carol@example.jp", input="second-pw\n")
    # a SHA-512 crypt hash made by openssl, imported as is
    sha512 = subprocess.run(["openssl", "passwd", "-6", "-salt",
                             "saltsalt", "imported-pw"],
                            capture_output=True, text=True,
                            check=True).stdout.strip()
    cli.cli("user", "add", "dave@example.jp", "--hash", sha512)
    cli.start()
    with RawSMTP(cli.ports["submissions"], tls_context=client_tls) as c:
        assert c.cmd("EHLO client.example.jp")[0] == 250
        assert c.cmd("AUTH PLAIN " + plain("carol@example.jp",
                                           "first-pw"))[0] == 535
        assert c.cmd("AUTH PLAIN " + plain("carol@example.jp",
                                           "second-pw"))[0] == 235
    with RawSMTP(cli.ports["submissions"], tls_context=client_tls) as c:
        assert c.cmd("EHLO client.example.jp")[0] == 250
        assert c.cmd("AUTH PLAIN " + plain("dave@example.jp",
                                           "imported-pw"))[0] == 235
    # the CLI works while the daemon runs (SQLite WAL)
    cli.add_user("erin@example.jp", "erin-pw")
    with RawSMTP(cli.ports["submissions"], tls_context=client_tls) as c:
        assert c.cmd("EHLO client.example.jp")[0] == 250
        assert c.cmd("AUTH PLAIN " + plain("erin@example.jp",
                                           "erin-pw"))[0] == 235


def test_no_store_and_version(tmp_path):
    conf = tmp_path / "nostore.conf"
    conf.write_text("store =\n")
    r = subprocess.run([str(SEKISHO), "-c", str(conf), "domain", "list"],
                       capture_output=True, text=True, env=sanitizer_env(),
                       timeout=60)
    assert r.returncode != 0
    r = subprocess.run([str(SEKISHO), "version"], capture_output=True,
                       text=True, env=sanitizer_env(), timeout=60)
    assert r.returncode == 0 and re.fullmatch(r"sekisho \d+\.\d+\.\d+\n",
                                              r.stdout)
