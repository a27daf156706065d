"""A throwaway PostgreSQL cluster for the tests (Debian's postgresql).

PgCluster runs initdb and pg_ctl as the postgres user in a /tmp directory
it owns, listening on 127.0.0.1 only, on a port chosen free; stop() ends
it and the directory is removed. Fixtures:

  pg_cluster  one cluster for the whole session
  pg_store    a new database in it per test: the `store =` value
              ("postgresql:host=127.0.0.1 port=P dbname=D user=postgres")

A test that stops the database (failure behaviour) makes its own
PgCluster so the others are not disturbed.
"""
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import free_port

_counter = itertools.count()


def _bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not dirs:
        pytest.fail("PostgreSQL is not installed: run scripts/setup")
    return dirs[-1]


class PgCluster:
    def __init__(self):
        self.bin = _bindir()
        self.user = pwd.getpwnam("postgres")
        self.dir = tempfile.mkdtemp(prefix="sekisho-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "pg.log")
        os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.port = free_port()
        self._as_pg([os.path.join(self.bin, "initdb"), "-D", self.data,
                     "-U", "postgres", "--auth=trust", "-E", "UTF8",
                     "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '127.0.0.1'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "fsync = off\nsynchronous_commit = off\n"
                    "full_page_writes = off\nmax_connections = 200\n")
        self.start()

    def _as_pg(self, args, check=True):
        r = subprocess.run(["runuser", "-u", "postgres", "--", *args],
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            pytest.fail(f"{' '.join(args)}: {r.stdout}{r.stderr}")
        return r

    def start(self):
        self._as_pg([os.path.join(self.bin, "pg_ctl"), "-D", self.data,
                     "-l", self.log, "-w", "-t", "60", "start"])

    def stop(self, mode="fast"):
        self._as_pg([os.path.join(self.bin, "pg_ctl"), "-D", self.data,
                     "-m", mode, "-w", "-t", "60", "stop"], check=False)

    def destroy(self):
        self.stop(mode="immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql, db="postgres"):
        r = subprocess.run(
            [os.path.join(self.bin, "psql"), "-X", "-q", "-A", "-t",
             "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
             str(self.port), "-U", "postgres", "-d", db, "-c", sql],
            capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            pytest.fail(f"psql {sql}: {r.stderr}")
        return r.stdout

    def create_db(self):
        name = f"sekisho_{os.getpid()}_{next(_counter)}_{int(time.time())}"
        self.psql(f"CREATE DATABASE {name}")
        return name

    def conninfo(self, db):
        return f"host=127.0.0.1 port={self.port} dbname={db} user=postgres"

    def store(self, db=None):
        return "postgresql:" + self.conninfo(db or self.create_db())


@pytest.fixture(scope="session")
def pg_cluster():
    c = PgCluster()
    yield c
    c.destroy()


@pytest.fixture
def pg_store(pg_cluster):
    return pg_cluster.store()
