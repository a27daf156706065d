"""The SQL layer's own tests (tests/unit/test_sql.c) on both drivers,
PostgreSQL in a throwaway cluster: ?N placeholders, unique violations,
kept statements reused, and kept statements that survive the server
ending the connection (pg_terminate_backend) (issue 15)."""
import subprocess

from conftest import REPO, sanitizer_env
from pg import pg_cluster  # noqa: F401 (fixture)

PROGRAM = REPO / "build-asan" / "tests" / "test_sql"


def test_sql_layer_on_sqlite_and_postgresql(pg_cluster):
    assert PROGRAM.exists(), f"{PROGRAM} missing: run make asan"
    env = sanitizer_env()
    env["SEKISHO_TEST_PGSQL"] = pg_cluster.store()
    r = subprocess.run([str(PROGRAM)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "driver sqlite\n" in r.stdout, r.stdout
    assert "driver postgresql\n" in r.stdout, r.stdout
    assert " 0 failed" in r.stdout + r.stderr
