"""``python -m benchmarks.suite --smoke``, every preset, as a process.

One run per preset (the suite about 75 seconds, each component preset 20 to 25)
feeds the tests of that preset's parts: every hop run of the full plan, short (1 s of
wrk, 0.5 s at a fixed rate, 300 requests for CPU), 2 cold starts of Services applied
at zero, a burst of 300, a 10-second locust shape, 100 held requests. The
checks are loose sanity checks: nothing failed, every request was answered
and reached the app once, the report and the plots were written. No figure
about speed is asserted; speed is read in the reports.

Needs wrk, hey and nginx (the tests skip without them, saying so); the
autoscaling part also needs locust (``pip install -e '.[bench]'``), and the hop
overhead behind the Go backend needs go (``apt-get install golang-go``), else the
suite skips that part and so does its test.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.loadgen import which

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("wrk", "hey", "nginx", "h2load")
PRESETS = {
    "suite": ("hops", "hops-go", "cold", "burst", "autoscale", "held", "grpc"),
    "queueproxy": ("hops", "hops-go"),
    "activator": ("hops", "hops-go", "held"),
    "grpc": ("grpc",),
}
HEADINGS = {
    "hops": "## 1. Hop overhead\n",
    "hops-go": "## 2. Hop overhead behind a Go backend\n",
    "cold": "## 3. Cold start",
    "burst": "## 4. Burst from zero",
    "autoscale": "## 5. Autoscaling under load",
    "held": "## 6. Held requests",
    "grpc": "## 7. gRPC",
}
WITH_GOALS = {"hops-go", "cold", "held", "grpc"}
TITLES = {
    "suite": "# zeroserve benchmark suite",
    "queueproxy": "# queue-proxy benchmark",
    "activator": "# activator benchmark",
    "grpc": "# gRPC benchmark",
}
PREFIX = {
    "suite": "bench-",
    "queueproxy": "queueproxy-",
    "activator": "activator-",
    "grpc": "grpc-",
}

pytestmark = [pytest.mark.process, pytest.mark.timeout(300)]

Smoke = Callable[[str], dict[str, Any]]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Smoke:
    """The figures of ``--preset P --smoke``, run once per preset on first use."""
    missing = [t for t in TOOLS if which(t) is None]
    if missing:
        pytest.skip(
            f"the benchmarks need {', '.join(missing)}, not installed here "
            "(apt-get install -y wrk hey nginx nghttp2-client)"
        )
    done: dict[str, dict[str, Any]] = {}

    def run(preset: str) -> dict[str, Any]:
        if preset not in done:
            out = tmp_path_factory.mktemp(f"bench-{preset}")
            argv = [sys.executable, "-m", "benchmarks.suite", "--preset", preset, "--smoke"]
            argv += ["--results-dir", str(out), "--json", str(out / "figures.json")]
            proc = subprocess.run(
                argv, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
            )
            assert proc.returncode == 0, f"exit status {proc.returncode}:\n{proc.stderr[-4000:]}"
            done[preset] = json.loads((out / "figures.json").read_text())
            done[preset]["stdout"] = proc.stdout
        return done[preset]

    return run


def _with(part: str) -> list[str]:
    return [p for p, parts in PRESETS.items() if part in parts]


def _part(data: dict[str, Any], name: str) -> dict[str, Any]:
    assert name not in data["failed"], data["failed"][name]
    part: dict[str, Any] = data["parts"][name]
    return part


@pytest.mark.parametrize("preset", list(PRESETS))
def test_report_written_with_each_part_of_the_preset(smoke: Smoke, preset: str) -> None:
    data = smoke(preset)
    report = Path(data["report"])
    assert report.name.startswith(PREFIX[preset]) and report.suffix == ".md"
    text = report.read_text()
    assert text.strip() == data["stdout"].strip()  # printed and written alike
    assert text.startswith(TITLES[preset])
    for heading in ("## Summary", "## Machine", "## Commands", "## Notes"):
        assert heading in text
    assert [h for part, h in HEADINGS.items() if h in text] == [
        HEADINGS[p] for p in PRESETS[preset]
    ]
    with_goals = WITH_GOALS - ({"hops-go"} if shutil.which("go") is None else set())
    assert ("## Goals" in text) == bool(with_goals & set(PRESETS[preset]))
    assert data["failed"] == {}
    assert "**Failed**" not in text


@pytest.mark.parametrize(
    ("preset", "part", "runs"),
    [
        ("suite", "hops", 6 * 2 * 3),
        ("suite", "hops-go", 7 * 2 * 3),  # and two work floors chained
        ("queueproxy", "hops", 5 * 3),
        ("queueproxy", "hops-go", 5 * 3),
        ("activator", "hops", 6 * 3),
        ("activator", "hops-go", 7 * 3),
    ],
    ids=lambda v: str(v),
)
def test_hop_overhead_runs_had_no_errors(smoke: Smoke, preset: str, part: str, runs: int) -> None:
    data = smoke(preset)
    if part == "hops-go" and shutil.which("go") is None:
        assert part in data["skipped"]
        pytest.skip("go is not installed (apt-get install golang-go), so the suite skipped it")
    hops = _part(data, part)
    if part == "hops-go":  # each hop's goals against nginx, behind the cheaper backend
        text = Path(data["report"]).read_text()
        assert "| queue-proxy → app: proxies' CPU per request / nginx's (Go backend) |" in text
        # the floor next to the goals: what a bare Python hop costs, and the paths above it
        assert "| the floor: a bare uvloop + httptools pass-through's CPU" in text
        assert "| queue-proxy → app: proxies' CPU per request above 1 floor (Go backend) |" in text
        # the work floor: the floor plus the queue-proxy's per-request work, against its goal
        assert "| the work floor: the floor + the queue-proxy's per-request work, CPU" in text
        assert "| the work floor: throughput on one CPU / nginx's (Go backend) | >= 0.8x |" in text
        assert re.search(
            r"\| the work floor: added p50 vs direct at [\d,]+ req/s .* \| <= \+0.3", text
        )
        assert "| queue-proxy → app: proxies' CPU per request above the work floor" in text
        assert "| queue-proxy → app: p50 above the work floor at " in text
        two = "| activator → queue-proxy → app: proxies' CPU per request above 2 floors"
        assert (two in text) == (preset != "queueproxy")
        # the activator path's floor (two work floors chained) against its goals, and the
        # path above it
        floor2 = "| two work floors chained (the activator path's floor), CPU per request / nginx's"
        assert (floor2 + " (Go backend) | <= 2.2x |" in text) == (preset != "queueproxy")
        p50 = r"\| two work floors chained: added p50 vs direct at [\d,]+ req/s .* \| <= \+0.6"
        assert bool(re.search(p50, text)) == (preset != "queueproxy")
        # measured, not derived: the chained target's runs count both its processes
        assert ("| workfloors µs/req | workfloor µs/req |" in text) == (preset != "queueproxy")
        for what in ("proxies' CPU per request", "p50"):
            above2 = f"| activator → queue-proxy → app: {what} above two work floors chained"
            assert (above2 in text) == (preset != "queueproxy")
    # targets x sizes x (throughput, CPU, one fixed rate)
    assert hops["runs"] == runs
    assert hops["bad_runs"] == 0


@pytest.mark.parametrize("preset", _with("cold"))
def test_cold_starts_were_answered(smoke: Smoke, preset: str) -> None:
    cold = _part(smoke(preset), "cold")
    assert cold["starts"] == cold["ok"] == 2
    assert cold["failures"] == []
    assert cold["median_s"] > 0


@pytest.mark.parametrize("preset", _with("burst"))
def test_burst_reached_the_app_once_each_within_the_limit(smoke: Smoke, preset: str) -> None:
    burst = _part(smoke(preset), "burst")
    assert burst["non2xx"] == [0] and burst["errors"] == [0]
    assert burst["responses"] == burst["requests"] == [300]
    assert burst["app_saw"] == [300]
    assert burst["exactly_once"] == [True]
    assert 1 <= burst["in_flight_max"][0] <= 10


@pytest.mark.parametrize("preset", _with("autoscale"))
def test_autoscaling_under_locust_had_no_failures(smoke: Smoke, preset: str) -> None:
    data = smoke(preset)
    if importlib.util.find_spec("locust") is None:
        assert "autoscale" in data["skipped"]
        pytest.skip("locust is not installed, so the suite skipped this part")
    auto = _part(data, "autoscale")
    assert auto["requests"] > 0
    assert auto["failures"] == 0
    assert auto["seconds"] == 10
    assert auto["simulated"] is True
    assert auto["problems"] == []


@pytest.mark.parametrize("preset", _with("held"))
def test_held_requests_were_all_answered_once(smoke: Smoke, preset: str) -> None:
    held = _part(smoke(preset), "held")
    assert held["n"] == held["ok"] == [100]
    assert held["lost"] == 0
    assert held["queue_proxy_counted"] == [100]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_plots_exist_next_to_the_report(smoke: Smoke, preset: str) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (pip install -e '.[bench]')")
    data = smoke(preset)
    expected = {"hops", "hops-go", "cold", "burst", "autoscale"} & set(PRESETS[preset])
    if importlib.util.find_spec("locust") is None:
        expected.discard("autoscale")
    if shutil.which("go") is None:
        expected.discard("hops-go")
    assert set(data["plots"]) == expected
    report = Path(data["report"])
    text = report.read_text()
    for name in data["plots"].values():
        assert (report.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text


@pytest.mark.parametrize("preset", _with("grpc"))
def test_grpc_calls_all_succeeded_on_every_path(smoke: Smoke, preset: str) -> None:
    grpc = _part(smoke(preset), "grpc")
    assert grpc["runs"] == 4  # direct, queue-proxy, activator, nginx; one repetition
    assert grpc["failed_calls"] == 0
    assert all(n == [2000] for n in grpc["succeeded"].values())
    assert grpc["queue_proxy_x_nginx"] is not None
