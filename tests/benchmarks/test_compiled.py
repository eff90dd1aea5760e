"""benchmarks/compiled.py: each side is what its name says, and the real processes'
figures are read off hopprofile's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import compiled as bench
from zeroserve import compiled

HOPPROFILE = """wrk -t1 -c50 -d5s through each target; the Go backend; µs per request
| target | req/s | CPU | user | system | kernel |
|---|--:|--:|--:|--:|--:|
| queue-proxy | 34,427 | 16.0 | 6.1 | 9.9 | 10.0 |
| workfloor | 35,771 | 15.0 | 5.6 | 9.4 | 9.6 |
| nginx | 38,416 | 13.0 | 3.6 | 9.4 | 9.6 |
"""


def test_the_real_processes_cpu_is_read_off_hopprofiles_table() -> None:
    assert bench.hopprofile_cpu(HOPPROFILE) == {
        "queue-proxy": 16.0,
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


@pytest.mark.process
@pytest.mark.skipif(
    compiled.toolchain_missing() is not None, reason=str(compiled.toolchain_missing())
)
def test_both_sides_serve_the_measured_exchanges_the_way_they_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make test` built the repository's (`make compiled`); the test's own otherwise
    build = compiled.BUILD_DIR
    if not compiled.usable(build)[0]:
        build = tmp_path / "build"
        compiled.build(build)
    monkeypatch.setenv(compiled.DIR_ENV, str(build))
    # ``measure`` checks that the client got every response, byte count for byte count.
    for side in bench.SIDES:
        rows, loaded = bench.in_memory(side, exchanges=2000, reps=1)
        bench.check(side, loaded)
        assert set(rows) == set(bench.ROWS) and all(v > 0 for v in rows.values())
