"""The benchmark code's pure parts, as tables: parsers, phases, summaries, manifests, options.

Fast and tool-free; every part and preset runs in ``test_suite_smoke.py``.
"""

from __future__ import annotations

import math

import pytest

from benchmarks.loadgen import LoadResult, parse_hey, parse_wrk
from benchmarks.suite import autoscale, config, local
from benchmarks.suite.coldstart import ColdStart
from benchmarks.suite.context import at_least, at_most
from benchmarks.suite.runs import Run, p50, paired
from zeroserve.api import load

HEY = """
Summary:
  Total:\t3.0085 secs
  Slowest:\t0.0856 secs
  Fastest:\t0.0006 secs
  Average:\t0.0032 secs
  Requests/sec:\t493.9416

Latency distribution:
  10% in 0.0013 secs
  25% in 0.0019 secs
  50% in 0.0027 secs
  75% in 0.0035 secs
  90% in 0.0041 secs
  95% in 0.0050 secs
  99% in 0.0120 secs

Status code distribution:
  [200]\t1480 responses
  [503]\t6 responses
"""

WRK = """Running 3s test @ http://127.0.0.1:18081/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    29.14ms   14.94ms 104.19ms   68.54%
  Latency Distribution
     50%  585.00us
     75%    1.20ms
     90%    2.50ms
     99%   10.01ms
  4496 requests in 3.11s, 4.39GB read
Requests/sec:   1446.92
"""


def test_hey_and_wrk_percentiles_include_p90() -> None:
    hey = parse_hey(HEY)
    assert (hey.requests, hey.non2xx, hey.errors) == (1486, 6, 0)
    assert hey.codes == {200: 1480, 503: 6}
    assert hey.p50_ms == pytest.approx(2.7) and hey.p90_ms == pytest.approx(4.1)
    assert hey.p99_ms == pytest.approx(12.0)
    wrk = parse_wrk(WRK)
    assert (wrk.requests, wrk.rps) == (4496, 1446.92)
    assert (wrk.p50_ms, wrk.p90_ms, wrk.p99_ms) == pytest.approx((0.585, 2.5, 10.01))


def _run(target: str, rep: int, median_ms: float) -> Run:
    result = LoadResult(100.0, 100, median_ms, None, None, 0, 0)
    return Run(target, "latency", rep, 1.0, result, None, {"app": 1}, 0.0, 0.0)


@pytest.mark.parametrize(
    ("op", "expected"),
    [("/", (2.0, 1.5, 3.0)), ("-", (1.5, 1.0, 2.0))],
    ids=["ratio", "difference"],
)
def test_paired_compares_within_each_repetition(op: str, expected: tuple[float, ...]) -> None:
    mine = [_run("qp", 1, 3.0), _run("qp", 2, 3.0), _run("qp", 3, 3.0)]
    base = [_run("direct", 1, 1.5), _run("direct", 2, 2.0), _run("direct", 3, 1.0)]
    s = paired(mine, base, p50, op=op)
    assert s is not None
    assert (s.median, s.lo, s.hi) == pytest.approx(expected)


def test_a_goal_met_exactly_is_within_whatever_the_binary_rounding() -> None:
    # hey's p50s come in 0.1 ms steps: 0.4 over 0.1 is 0.30000000000000004 in floats
    mine = [_run("qp", r, 0.4) for r in (1, 2, 3)]
    base = [_run("direct", r, 0.1) for r in (1, 2, 3)]
    added = paired(mine, base, p50, op="-")
    assert added is not None and added.median > 0.3  # what a plain comparison sees
    assert at_most(added.median, 0.3)
    assert not at_most(0.31, 0.3)
    assert at_least(0.7 + 0.1, 0.8) and not at_least(0.79, 0.8)


SEND = 1000.0


@pytest.mark.parametrize(
    ("cold_s", "runtime_ready", "ready_at"),
    [
        (0.55, 0.50, 0.50),  # the runtime saw it ready first
        (0.45, 0.50, 0.45),  # the activator's own probe forwarded first
        (None, 0.50, 0.50),  # no activator figure: the runtime's
    ],
    ids=["runtime-first", "activator-first", "no-activator-figure"],
)
def test_cold_start_phases_add_up_to_the_total(
    cold_s: float | None, runtime_ready: float, ready_at: float
) -> None:
    s = ColdStart(
        1,
        "cold-1",
        "cold-1-00001",
        SEND,
        SEND + 0.6,
        SEND + 0.601,
        200,
        times={
            "requested": SEND + 0.002,
            "spawned": SEND + 0.003,
            "listening": SEND + 0.3,
            "ready": SEND + runtime_ready,
        },
        activator_cold_s=cold_s,
        app_alone_s=0.5,
    )
    phases = s.phases()
    assert phases is not None
    assert phases["held"] == pytest.approx(0.002)
    assert phases["schedule"] == pytest.approx(0.001)
    assert phases["process"] == pytest.approx(0.297)
    assert phases["app"] == pytest.approx(ready_at - 0.3)
    assert phases["respond"] == pytest.approx(0.6 - ready_at)
    assert sum(phases.values()) == pytest.approx(s.total)
    assert s.added == pytest.approx(0.1)


def test_cold_start_without_pod_times_has_no_phases() -> None:
    s = ColdStart(1, "cold-1", "cold-1-00001", SEND, SEND + 0.6, SEND + 0.6, 200)
    assert s.phases() is None and s.own_steps is None


def test_measured_autoscaling_is_summarised_like_the_simulator() -> None:
    series = autoscale.Series(
        users=[0, 0, 20, 20, 20, 20],
        rps=[0, 0, 200, 200, 200, 200],
        concurrency=[0.0, 0.0, 20.0, 20.0, 20.0, 20.0],
        p50_ms=[None] * 6,
        p95_ms=[None] * 6,
        failures=[0] * 6,
        desired=[2, 2, 3, 3, 3, 3],
        ready=[2, 2, 2, 2, 3, 3],
        pods=[2, 2, 3, 3, 3, 3],
    )
    m = autoscale.summarize(series, target=7.0)
    assert m["peak_needed"] == math.ceil(20 / 7) == 3
    assert m["shortfalls"] == [
        {
            "at_s": 2,
            "cause": "load increase",
            "ready": 2,
            "needed": 3,
            "reached_after_s": 2,
            "caught_up": True,
        }
    ]
    assert m["over"] == {"peak_pods": 2, "average_pods": round(4 / 6, 3), "time_pct": 33.33}
    assert m["under"]["time_pct"] == 33.33
    assert m["pod_seconds"] == 2 + 2 + 3 + 3 + 3 + 3


@pytest.mark.parametrize(
    "manifest",
    [
        local.service_manifest("cold-1", {"TARGET": "x"}),
        local.service_manifest(
            "burst",
            container_concurrency=10,
            annotations={"autoscaling.knative.dev/target": "10"},
        ),
        local.config_autoscaler({"stable-window": "6s", "scale-to-zero-grace-period": "1s"}),
    ],
    ids=["service", "service-cc-annotations", "config-autoscaler"],
)
def test_generated_manifests_pass_zeroserve_validation(manifest: str) -> None:
    assert len(load(manifest, "bench.yaml")) == 1


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        ([], {"scale": "full", "preset": "suite", "cold_starts": 20, "held": 10_000}),
        (["--quick"], {"scale": "quick", "hop_reps": 1, "cold_starts": 4}),
        (
            ["--smoke", "--cold-starts", "5", "--parts", "burst,cold"],
            {"scale": "smoke", "cold_starts": 5, "parts": ("cold", "burst")},
        ),
        (
            ["--hop-rates", "100,300", "--no-pin", "--no-write"],
            {"hop_rates": (100, 300), "pin": False, "write": False},
        ),
        (
            ["--preset", "queueproxy"],
            {
                "parts": ("hops", "hops-go"),
                "hop_targets": ("direct", "queue-proxy", "nginx", "floor", "workfloor"),
                "hop_rates": (1000,),
                "large_bytes": 0,
                "hop_reps": 3,
                "report_prefix": "queueproxy",
            },
        ),
        (
            ["--preset", "activator", "--quick", "--held", "500"],
            {
                "parts": ("hops", "hops-go", "held"),
                "hop_targets": (
                    "direct",
                    "queue-proxy",
                    "activator",
                    "nginx",
                    "floor",
                    "workfloor",
                    "workfloors",
                ),
                "hop_reps": 1,
                "held": 500,
                "held_reps": 1,
                "report_prefix": "activator",
            },
        ),
        (
            ["--preset", "activator", "--parts", "held"],
            {"parts": ("held",), "hop_app": "examples/helloworld/app.py"},
        ),
    ],
    ids=["full", "quick", "smoke-overrides", "rates", "queueproxy", "activator-quick", "held-only"],
)
def test_options_override_the_scale_and_the_preset(
    argv: list[str], expect: dict[str, object]
) -> None:
    cfg = config.parse_args(argv)
    assert {k: getattr(cfg, k) for k in expect} == expect


@pytest.mark.parametrize(
    "argv",
    [
        ["--parts", "nope"],
        ["--cold-starts", "0"],
        ["--quick", "--smoke"],
        ["--locust-seconds", "5"],
        ["--preset", "nginx"],
        ["--hop-targets", "queue-proxy,nginx"],
        ["--go-proxy", "/nonexistent/goproxy"],
    ],
    ids=["unknown-part", "zero", "two-scales", "short-shape", "unknown-preset", "no-direct", "go"],
)
def test_bad_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        config.parse_args(argv)
