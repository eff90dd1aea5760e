"""What the suite waits for between its measurements, and how long a ``--smoke`` run's are.

``test_suite_smoke.py`` runs every preset at ``--smoke`` inside ``make test``'s budget;
these check the settings and the waits that keep it short without dropping a run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.processes import Pinning, Server
from benchmarks.suite import burst, coldstart, config, hops
from benchmarks.suite.context import Context
from benchmarks.suite.local import LocalSystem, config_autoscaler
from benchmarks.suite.runs import Bench
from zeroserve.api import load


@pytest.mark.parametrize(
    ("scale", "wrk_d", "hey_z"), [([], "-d5s", "5s"), (["--smoke"], "-d1s", "0.5s")]
)
def test_fixed_rate_runs_take_the_duration_and_wrk_whole_seconds(
    tmp_path: Path, scale: list[str], wrk_d: str, hey_z: str
) -> None:
    cfg = config.parse_args(scale)
    steps = {s.kind: s.argv for s in hops.steps(cfg, hops.sizes(cfg)[0], tmp_path)}
    assert wrk_d in steps["tiny tput"]  # wrk takes whole seconds only
    for rate in cfg.hop_rates:
        argv = steps[f"tiny latency@{rate}"]
        assert argv[argv.index("-z") + 1] == hey_z
    paced = config.parse_args([*scale, "--latency-tool", "wrk"])
    steps = {s.kind: s.argv for s in hops.steps(paced, hops.sizes(paced)[0], tmp_path)}
    assert wrk_d in steps[f"tiny latency@{paced.hop_rates[0]}"]


def test_a_duration_under_a_second_is_one_wrk_second() -> None:
    assert config.parse_args(["--hop-duration", "0.2"]).wrk_seconds == 1
    assert config.parse_args(["--hop-duration", "2.5"]).wrk_seconds == 3


def _context(argv: list[str]) -> Context:
    return Context(config.parse_args(argv), Pinning.choose(False, 1, 0), None, Path())  # type: ignore[arg-type]


@pytest.mark.parametrize("argv", [["--smoke"], ["--quick", "--zero-start"]])
def test_zero_start_applies_the_cold_and_burst_services_at_zero(argv: list[str]) -> None:
    ctx = _context(argv)
    assert ctx.autoscaler_config["allow-zero-initial-scale"] == "true"
    docs = [
        config_autoscaler(ctx.autoscaler_config),
        coldstart.manifest("cold-1", ctx.initial_scale),
        burst.manifest(10, ctx.initial_scale),
    ]
    objs = load("---\n".join(docs), "bench.yaml")
    assert len(objs) == 3
    for text in docs[1:]:
        assert "autoscaling.knative.dev/initial-scale: '0'" in text


@pytest.mark.parametrize("argv", [[], ["--quick"], ["--smoke", "--no-zero-start"]])
def test_without_zero_start_the_services_start_with_a_replica(argv: list[str]) -> None:
    ctx = _context(argv)
    assert "allow-zero-initial-scale" not in ctx.autoscaler_config
    assert ctx.initial_scale == {}
    assert "initial-scale" not in coldstart.manifest("cold-1", ctx.initial_scale)


class _Control(LocalSystem):
    """The control API of a ``zeroserve up`` with one replica per Service applied."""

    def __init__(self, services: list[str]) -> None:
        self.calls: list[tuple[str, str]] = []
        self.replicas_of = set(services)

    def _call(self, method: str, path: str, body: object | None = None) -> Any:
        if method == "POST" and path == "/v1/delete":
            assert isinstance(body, dict)
            self.calls.append(("delete", body["file"]))
            self.replicas_of.discard(body["file"].removesuffix(".yaml"))
            return {"lines": [], "errors": []}
        assert (method, path) == ("GET", "/v1/pods")
        self.calls.append(("pods", ""))
        return {"items": [{"revision": f"{n}-00001"} for n in sorted(self.replicas_of)]}

    def wait(self, what: str, predicate: Any, timeout: float) -> float:
        # the real wait polls until the timeout: here the predicate must hold at once
        assert predicate(), f"would wait {timeout} s: {what}"
        return 0.0


def test_removing_services_deletes_them_all_before_waiting_for_no_replica() -> None:
    # Waiting after the first delete would wait for the second Service's replica to
    # scale to zero by itself (a stable window and a grace period).
    system = _Control(["cold-1", "cold-2"])
    system.remove({"cold-1.yaml": "a", "cold-2.yaml": "b"})
    assert system.calls == [("delete", "cold-1.yaml"), ("delete", "cold-2.yaml"), ("pods", "")]


def _bench(tmp_path: Path, code: str) -> tuple[Bench, subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    server = Server("server", proc, tmp_path / "out", tmp_path / "log")
    return Bench(Pinning.choose(False, 1, 0), server, []), proc


@pytest.mark.process
@pytest.mark.parametrize(
    ("code", "busy"),
    [("import time; time.sleep(30)", False), ("while True: pass", True)],
    ids=["idle", "busy"],
)
def test_the_next_run_starts_once_the_servers_are_idle(
    tmp_path: Path, code: str, busy: bool
) -> None:
    bench, proc = _bench(tmp_path, code)
    try:
        time.sleep(0.5)  # past the interpreter's start
        waited = bench.settle(window=0.05, most=1.0)
    finally:
        proc.kill()
        proc.wait()
    if busy:
        assert waited >= 1.0  # never idle: the bound
    else:
        assert waited < 0.5  # idle in the first window or the next few
