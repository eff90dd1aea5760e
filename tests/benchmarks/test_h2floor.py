"""``python -m benchmarks.h2floor`` with a few calls: every call through the bare h2
pass-through, the queue-proxy and nginx succeeds and each gets a CPU figure (the
figures themselves are read, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.loadgen import which

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


def test_the_floor_and_the_proxies_are_measured() -> None:
    missing = [t for t in ("h2load", "nginx") if which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install -y nghttp2-client nginx)")
    # 2,000 calls: nginx's share is then many 10 ms ticks of CPU, never none (200 calls
    # could take less than one tick, and the ratio to nginx divided by zero)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.h2floor", "--calls", "2000", "--reps", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "calls failed" not in done.stderr
    for name in ("bare h2 proxy", "queue-proxy", "nginx"):
        assert re.search(rf"^{name} +[0-9.]+ µs/call +[0-9.]+x nginx", done.stdout, re.M), (
            done.stdout
        )
