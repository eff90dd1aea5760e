"""benchmarks/compiled.py: each side is what its name says, and the real processes'
figures are read off hopprofile's table; the benchmarks' activator takes the build as
``python -m activator`` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import compiled as bench
from benchmarks import servers
from zeroserve import compiled

HOPPROFILE = """wrk -t1 -c50 -d5s through each target; the Go backend; µs per request
| target | req/s | CPU | user | system | kernel |
|---|--:|--:|--:|--:|--:|
| queue-proxy | 34,427 | 16.0 | 6.1 | 9.9 | 10.0 |
| activator | 17,197 | 41.5 | 22.0 | 19.5 | 18.0 |
| workfloor | 35,771 | 15.0 | 5.6 | 9.4 | 9.6 |
| nginx | 38,416 | 13.0 | 3.6 | 9.4 | 9.6 |
"""


def test_the_real_processes_cpu_is_read_off_hopprofiles_table() -> None:
    assert bench.hopprofile_cpu(HOPPROFILE) == {
        "queue-proxy": 16.0,
        "activator": 41.5,
        "workfloor": 15.0,
        "nginx": 13.0,
    }


def test_a_side_that_loaded_a_module_the_other_way_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"compiled run loaded zeroserve/stats\.py"):
        bench.check("compiled", {"zeroserve/stats.py": False, "zeroserve/knmetrics.py": True})
    with pytest.raises(RuntimeError, match=r"interpreted run loaded zeroserve/knmetrics\.py"):
        bench.check("interpreted", {"zeroserve/stats.py": False, "zeroserve/knmetrics.py": True})
    bench.check("interpreted", {"zeroserve/stats.py": False})
    bench.check("compiled", {"zeroserve/stats.py": True})


def _build(tmp_path: Path) -> Path:
    """`make test` built the repository's (`make compiled`); the test's own otherwise."""
    if compiled.usable(compiled.BUILD_DIR)[0]:
        return compiled.BUILD_DIR
    compiled.build(tmp_path / "build")
    return tmp_path / "build"


@pytest.mark.process
@pytest.mark.skipif(
    compiled.toolchain_missing() is not None, reason=str(compiled.toolchain_missing())
)
def test_the_benchmarks_activator_runs_the_build_unless_told_not_to(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROSERVE_")}
    env[compiled.DIR_ENV] = str(_build(tmp_path))
    argv = [sys.executable, "-m", "benchmarks.activator_runner", "--endpoint", "127.0.0.1:9"]
    for pure, expected in (("0", "compiled"), ("1", "as Python")):
        side = {**env, compiled.PURE_ENV: pure}
        proc = subprocess.Popen(argv, env=side, cwd=servers.REPO, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline())["activator"] == "listening"
            assert servers.hot_path(proc.pid, side) == expected, pure
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.process
@pytest.mark.skipif(
    compiled.toolchain_missing() is not None, reason=str(compiled.toolchain_missing())
)
def test_both_sides_serve_the_measured_exchanges_the_way_they_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(compiled.DIR_ENV, str(_build(tmp_path)))
    # ``measure`` checks that the client got every response, byte count for byte count.
    for side in bench.SIDES:
        rows, loaded = bench.in_memory(side, exchanges=2000, reps=1)
        bench.check(side, loaded)
        assert set(rows) == set(bench.ROWS) and all(v > 0 for v in rows.values())
