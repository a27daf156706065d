"""Each libFuzzer target (build-fuzz/fuzz_<name>, from fuzz/fuzz_<name>.c)
runs for 5 seconds on a temporary copy of fuzz/corpus/<name>/ with
fuzz/<name>.dict when there is one; it must exit 0 (no crash, leak,
timeout or sanitizer report). The repository corpus is never written."""
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem[len("fuzz_"):] for p in (REPO / "fuzz").glob("fuzz_*.c"))
SECONDS = 5


def test_fuzzers_exist():
    assert NAMES, "no fuzz/fuzz_*.c"
    missing = [n for n in NAMES
               if not (REPO / "build-fuzz" / f"fuzz_{n}").exists()]
    assert not missing, f"not built (run make fuzz): {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_fuzz(name, tmp_path):
    binary = REPO / "build-fuzz" / f"fuzz_{name}"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run make fuzz")
    seeds = REPO / "fuzz" / "corpus" / name
    assert seeds.is_dir() and any(seeds.iterdir()), f"no seeds in {seeds}"
    corpus = tmp_path / "corpus"
    shutil.copytree(seeds, corpus)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    cmd = [str(binary), f"-max_total_time={SECONDS}", "-timeout=10",
           "-rss_limit_mb=2048", f"-artifact_prefix={artifacts}/",
           "-print_final_stats=1"]
    dictionary = REPO / "fuzz" / f"{name}.dict"
    if dictionary.exists():
        cmd.append(f"-dict={dictionary}")
    cmd.append(str(corpus))
    r = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=SECONDS + 120)
    crashes = sorted(p.name for p in artifacts.iterdir())
    assert r.returncode == 0 and not crashes, \
        f"exit {r.returncode}, artifacts {crashes}:\n{r.stderr[-6000:]}"
