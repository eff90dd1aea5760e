"""``python -m benchmarks.hopprofile``: where each microsecond of a hop goes (the
figures are read, never asserted; the test checks that each target is measured and
that perf's report is read into the groups the table shows)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.hopprofile import shares
from benchmarks.loadgen import which

ROOT = Path(__file__).resolve().parents[2]

REPORT = """\
# Overhead  Shared Object
# ........  ..................................
#
    47.04%  [kernel.kallsyms]
    39.16%  libpython3.11.so.1.0
     5.81%  parser.cpython-311-x86_64-linux-gnu.so
     4.11%  loop.cpython-311-x86_64-linux-gnu.so
     3.50%  libc.so.6
     0.29%  [vdso]
     0.09%  nginx
"""


def test_perfs_report_is_read_into_groups() -> None:
    got = shares(REPORT)
    assert got == pytest.approx(
        {
            "kernel": 47.04,
            "Python interpreter": 39.16,
            "httptools": 5.81,
            "uvloop": 4.11,
            "C library": 3.50,
            "other": 0.29,
            "nginx": 0.09,
        }
    )


@pytest.mark.process
@pytest.mark.timeout(120)
def test_the_floor_and_nginx_are_profiled() -> None:
    missing = [t for t in ("perf", "wrk", "nginx", "go") if which(t) is None]
    if missing:
        pytest.skip(
            f"needs {', '.join(missing)} (apt-get install -y linux-perf wrk nginx golang-go)"
        )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.hopprofile",
            "--targets",
            "floor,nginx",
            "--seconds",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    if done.returncode == 2 and "perf record failed" in done.stderr:
        pytest.skip(f"perf cannot sample here: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stdout[-1000:] + done.stderr[-2000:]
    for name in ("floor", "nginx"):
        row = re.search(rf"^\| {name} \| ([0-9,]+) \| ([0-9.]+) \| .* \|$", done.stdout, re.M)
        assert row is not None, done.stdout
        assert float(row.group(2)) > 0
    assert "| kernel | Python interpreter | uvloop | httptools |" in done.stdout
