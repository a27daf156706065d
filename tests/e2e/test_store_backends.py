"""The store's tests run against a throwaway PostgreSQL as well as SQLite
(issue 7, issue 15): the conformance table (tests/unit/test_store_backends.c),
test_store.c's calls, and the SQL layer's own tests (tests/unit/test_sql.c:
?N placeholders, unique violations, kept statements reused and surviving
pg_terminate_backend). Each program gets a fresh database."""
import subprocess

from conftest import REPO, sanitizer_env
from pg import pg_cluster  # noqa: F401 (fixture)


def run_on_both(pg_cluster, program, first, second):
    path = REPO / "build-asan" / "tests" / program
    assert path.exists(), f"{path} missing: run make asan"
    env = sanitizer_env()
    env["SEKISHO_TEST_PGSQL"] = pg_cluster.store()
    r = subprocess.run([str(path)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert first in r.stdout and second in r.stdout, r.stdout
    assert " 0 failed" in r.stdout + r.stderr


def test_same_results_on_sqlite_and_postgresql(pg_cluster):
    run_on_both(pg_cluster, "test_store_backends",
                "backend sqlite\nbackend postgresql\n", "")


def test_store_tests_on_postgresql_too(pg_cluster):
    run_on_both(pg_cluster, "test_store",
                "backend sqlite\nbackend postgresql\n", "")


def test_sql_layer_on_sqlite_and_postgresql(pg_cluster):
    run_on_both(pg_cluster, "test_sql", "driver sqlite\n",
                "driver postgresql\n")
