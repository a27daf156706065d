"""The C unit tests (tests/unit/test_*.c, built by `make asan` into
build-asan/tests/) as pytest cases: each program must exit 0 with no
sanitizer report. Plus cppcheck over the tree (`make cppcheck`)."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "tests" / "unit").glob("test_*.c"))
NAMES = [p.stem for p in SOURCES]


def test_unit_programs_exist():
    assert NAMES, "no tests/unit/test_*.c"
    missing = [n for n in NAMES
               if not (REPO / "build-asan" / "tests" / n).exists()]
    assert not missing, f"not built (run make asan): {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_unit(name, tmp_path):
    binary = REPO / "build-asan" / "tests" / name
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run make asan")
    env = dict(os.environ, UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
               TMPDIR=str(tmp_path))
    r = subprocess.run([str(binary)], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "AddressSanitizer" not in out and "runtime error:" not in out, \
        out[-6000:]


def test_cppcheck_clean():
    r = subprocess.run(["make", "-s", "-C", str(REPO), "cppcheck"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
