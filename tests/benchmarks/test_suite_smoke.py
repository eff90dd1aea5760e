"""``python -m benchmarks.suite --smoke``: the whole suite, tiny, as a process.

One run (about a minute) feeds every test of this module: a few requests per
hop, 2 cold starts, a burst of 300, a 10-second locust shape, 100 held
requests. The checks are loose sanity checks: nothing failed, every request
was answered and reached the app once, the report and the plots were
written. No figure about speed is asserted; speed is read in the reports.

Needs wrk, hey and nginx (the test skips without them, saying so); the
autoscaling part also needs locust (``pip install -e '.[bench]'``), else it is
skipped and so is its test.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _common as c

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("wrk", "hey", "nginx")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    missing = [t for t in TOOLS if c.which(t) is None]
    if missing:
        pytest.skip(
            f"the benchmark suite needs {', '.join(missing)}, not installed here "
            "(apt-get install -y wrk hey nginx)"
        )
    out = tmp_path_factory.mktemp("bench-smoke")
    figures = out / "figures.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.suite",
            "--smoke",
            "--results-dir",
            str(out),
            "--json",
            str(figures),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"exit status {proc.returncode}:\n{proc.stderr[-4000:]}"
    data: dict[str, Any] = json.loads(figures.read_text())
    data["stdout"] = proc.stdout
    return data


def _part(smoke: dict[str, Any], name: str) -> dict[str, Any]:
    assert name not in smoke["failed"], smoke["failed"][name]
    part: dict[str, Any] = smoke["parts"][name]
    return part


def test_report_written_with_every_part(smoke: dict[str, Any]) -> None:
    report = Path(smoke["report"])
    assert report.name.startswith("bench-") and report.suffix == ".md"
    text = report.read_text()
    assert text.strip() == smoke["stdout"].strip()  # printed and written alike
    assert text.startswith("# zeroserve benchmark suite")
    for heading in (
        "## Summary",
        "## Machine",
        "## Commands",
        "## 1. Hop overhead",
        "## 2. Cold start",
        "## 3. Burst from zero",
        "## 4. Autoscaling under load",
        "## 5. Held requests",
    ):
        assert heading in text
    assert smoke["failed"] == {}
    assert "**Failed**" not in text


def test_hop_overhead_runs_had_no_errors(smoke: dict[str, Any]) -> None:
    hops = _part(smoke, "hops")
    # 4 targets x 2 sizes x (throughput, CPU, one fixed rate)
    assert hops["runs"] == 24
    assert hops["bad_runs"] == 0


def test_cold_starts_were_answered(smoke: dict[str, Any]) -> None:
    cold = _part(smoke, "cold")
    assert cold["starts"] == cold["ok"] == 2
    assert cold["failures"] == []
    assert cold["median_s"] > 0


def test_burst_reached_the_app_once_each_within_the_limit(smoke: dict[str, Any]) -> None:
    burst = _part(smoke, "burst")
    assert burst["non2xx"] == [0] and burst["errors"] == [0]
    assert burst["responses"] == burst["requests"] == [300]
    assert burst["app_saw"] == [300]
    assert burst["exactly_once"] == [True]
    assert 1 <= burst["in_flight_max"][0] <= 10


def test_autoscaling_under_locust_had_no_failures(smoke: dict[str, Any]) -> None:
    if importlib.util.find_spec("locust") is None:
        assert "autoscale" in smoke["skipped"]
        pytest.skip(
            "locust is not installed, so the suite skipped this part (pip install -e '.[bench]')"
        )
    auto = _part(smoke, "autoscale")
    assert auto["requests"] > 0
    assert auto["failures"] == 0
    assert auto["seconds"] == 10
    assert auto["simulated"] is True
    assert auto["problems"] == []


def test_held_requests_were_all_answered_once(smoke: dict[str, Any]) -> None:
    held = _part(smoke, "held")
    assert held["n"] == held["ok"] == [100]
    assert held["lost"] == 0
    assert held["queue_proxy_counted"] == [100]


def test_plots_exist_next_to_the_report(smoke: dict[str, Any]) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (pip install -e '.[bench]')")
    expected = {"hops", "cold", "burst"}
    if importlib.util.find_spec("locust") is not None:
        expected.add("autoscale")
    assert set(smoke["plots"]) == expected
    report = Path(smoke["report"])
    text = report.read_text()
    for name in smoke["plots"].values():
        png = report.parent / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text
