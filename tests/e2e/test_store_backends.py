"""The store's conformance table (tests/unit/test_store_backends.c) run
against a throwaway PostgreSQL as well as SQLite: both backends must give
their callers the same results and error texts (issue 7)."""
import os
import subprocess

from conftest import REPO, sanitizer_env
from pg import pg_cluster  # noqa: F401 (fixture)

PROGRAM = REPO / "build-asan" / "tests" / "test_store_backends"


def test_same_results_on_sqlite_and_postgresql(pg_cluster):
    assert PROGRAM.exists(), f"{PROGRAM} missing: run make asan"
    env = sanitizer_env()
    env["SEKISHO_TEST_PGSQL"] = pg_cluster.store()
    r = subprocess.run([str(PROGRAM)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "backend sqlite\nbackend postgresql\n" in r.stdout, r.stdout
    assert " 0 failed" in r.stdout + r.stderr


STORE_PROGRAM = REPO / "build-asan" / "tests" / "test_store"


def test_store_tests_on_postgresql_too(pg_cluster):
    """tests/unit/test_store.c's calls (domains, accounts, aliases, two
    handles, stored lengths) on a fresh PostgreSQL database as well as
    on SQLite: one set of assertions for both drivers (issue 15)."""
    assert STORE_PROGRAM.exists(), f"{STORE_PROGRAM} missing: run make asan"
    env = sanitizer_env()
    env["SEKISHO_TEST_PGSQL"] = pg_cluster.store()
    r = subprocess.run([str(STORE_PROGRAM)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "backend sqlite\nbackend postgresql\n" in r.stdout, r.stdout
    assert " 0 failed" in r.stdout + r.stderr
