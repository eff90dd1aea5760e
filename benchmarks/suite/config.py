"""The suite's one settings object: a scale, a preset, and options that override both.

Every field of ``Config`` is a command-line option of the same name (``hop_reps`` ->
``--hop-reps``), generated from the field's help.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PARTS = ("hops", "hops-go", "cold", "burst", "autoscale", "held", "grpc")
PART_TITLES = {
    "hops": "Hop overhead",
    "hops-go": "Hop overhead behind a Go backend",
    "cold": "Cold start",
    "burst": "Burst from zero",
    "autoscale": "Autoscaling under load",
    "held": "Held requests",
    "grpc": "gRPC",
}
TARGETS = (
    "direct",
    "queue-proxy",
    "activator",
    "nginx",
    "floor",
    "workfloor",
    "workfloors",  # two work floors chained: behind the Go backend only (part hops-go)
    "goproxy",
)
RESULTS = Path(__file__).resolve().parents[1] / "results"


def _names(allowed: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = {x.strip() for x in text.split(",") if x.strip()}
        if not names or names - set(allowed):
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(allowed)}")
        return tuple(n for n in allowed if n in names)

    return parse


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive integers, comma-separated")
    return values


def opt(default: Any, help: str, parse: Callable[[str], Any] | None = None, **kw: Any) -> Any:
    """A setting: its default (the full scale's), its help, how its option is parsed, its
    smallest value (``at_least``) and its value at the ``quick`` and ``smoke`` scales; any
    other keyword goes to ``add_argument``."""
    return field(default=default, metadata={"help": help, "type": parse, **kw})


def count(default: int, help: str, **kw: Any) -> Any:
    return opt(default, help, at_least=1, **kw)


@dataclass(frozen=True)
class Config:
    scale: str = opt("full", "", cli=False)
    preset: str = opt("suite", "", cli=False)
    parts: tuple[str, ...] = opt(PARTS, "comma-separated parts to run", _names(PARTS))
    # 1. hop overhead
    hop_targets: tuple[str, ...] = opt(TARGETS[:7], "targets, comma-separated", _names(TARGETS[:7]))
    hop_app: str = opt("benchmarks/backend.py", "Python script of the app behind every target")
    backend_cmd: str | None = opt(None, "shell command of the app instead (serving $PORT)", str)
    go_proxy: str | None = opt(None, "also the target goproxy: this Go ReverseProxy binary", str)
    hop_reps: int = count(3, "repetitions, interleaved across targets", quick=1, smoke=1)
    hop_duration: float = opt(
        5.0,
        "seconds of each throughput and fixed-rate run (a wrk run: whole seconds, at least 1)",
        float,
        at_least=0.1,
        quick=2.0,
        smoke=0.5,
    )
    hop_requests: int = count(
        20_000, "requests of each tiny-response CPU run (hey -n)", quick=5_000, smoke=300
    )
    hop_requests_large: int = count(
        1_000, "requests of each large-response CPU run", quick=500, smoke=50
    )
    hop_rates: tuple[int, ...] = opt(
        (500, 1000), "fixed rates (req/s), tiny response", _ints, smoke=(500,)
    )
    hop_rates_large: tuple[int, ...] = opt(
        (100, 200), "fixed rates, large response", _ints, smoke=(50,)
    )
    large_bytes: int = opt(1 << 20, "size of the large response (0: tiny responses only)")
    warmup: int = opt(1, "seconds of wrk load per target and size before measuring", smoke=0)
    connections: int = count(50, "connections of the throughput and CPU runs")
    rate_workers: int = count(10, "clients of the fixed-rate runs (1: evenly spaced requests)")
    latency_tool: str = opt(
        "hey", "hey -q, or wrk paced by a delay() script", choices=("hey", "wrk")
    )
    quiet_wait: float = opt(
        0.0, "wait up to SECONDS for other load to stop before each run, redo a disturbed one"
    )
    # 2. cold start, 3. burst, 4. autoscaling (one `zeroserve up`)
    cold_starts: int = count(
        20, "cold starts, each paired with a start of the app alone", quick=4, smoke=2
    )
    cold_services: int = count(
        3, "services taken in turn (one scales to zero meanwhile)", quick=2, smoke=2
    )
    burst_reps: int = count(3, "bursts from zero", quick=1, smoke=1)
    burst_requests: int = count(20_000, "requests of each burst (hey -n)", quick=5_000, smoke=300)
    burst_concurrency: int = count(200, "clients of each burst (hey -c)", smoke=20)
    burst_cc: int = count(10, "containerConcurrency of the burst's revision")
    locust_seconds: int = opt(
        120, "length of the locust shape (at least 10)", at_least=10, quick=40, smoke=10
    )
    locust_peak_users: int = count(70, "locust users at the spike", quick=35, smoke=6)
    zero_start: bool = opt(
        False,
        "apply the cold-start and burst Services at zero (initial-scale 0) instead of "
        "waiting for their first replica to scale to zero",
        smoke=True,
    )
    stable_window: int = opt(6, "config-autoscaler stable-window of zeroserve up, seconds")
    grace_period: int = opt(1, "config-autoscaler scale-to-zero-grace-period, seconds")
    logs: Path | None = opt(None, "keep zeroserve up's logs in DIR", Path)  # noqa: RUF009 (a field)
    # 5. held requests
    held: int = count(
        10_000, "requests held at zero replicas, one connection each", quick=2_000, smoke=100
    )
    held_reps: int = count(3, "repetitions, each with a fresh cold activator", quick=1, smoke=1)
    held_cc: int = count(10, "containerConcurrency of the held requests' revision")
    held_parallel: int = count(200, "connection attempts at once while opening them")
    held_timeout: float = opt(120.0, "seconds to wait for all to wait, and for all answers")
    # 6. gRPC
    grpc_reps: int = count(3, "repetitions, interleaved across targets", quick=1, smoke=1)
    grpc_calls: int = count(20_000, "unary calls per run (h2load -n)", quick=5_000, smoke=2_000)
    grpc_clients: int = count(4, "connections of each run (h2load -c)")
    grpc_streams: int = count(10, "concurrent streams per connection (h2load -m)")
    # machine and output
    pin: bool = opt(True, "pin servers to --server-cpu, load generators to --load-cpu")
    server_cpu: int = opt(1, "CPU of every server")
    load_cpu: int = opt(0, "CPU of the load generators and this script")
    results_dir: Path = opt(RESULTS, "where the report and plots go", Path)  # noqa: RUF009 (a field)
    write: bool = opt(True, "write the report and plots (else print the report only)")
    json_path: Path | None = opt(None, "also write the key figures as JSON", Path, flag="--json")  # noqa: RUF009 (a field)

    @property
    def wrk_seconds(self) -> int:
        """``hop_duration`` as wrk's ``-d`` takes it: whole seconds, at least 1 (a
        ``--smoke`` run's throughput runs take 1 s, its ``hey -z`` fixed-rate runs 0.5 s)."""
        return max(1, math.ceil(self.hop_duration))

    @property
    def report_prefix(self) -> str:
        """``<prefix>-<YYYYmmdd-HHMMSS>.md`` is the report's name."""
        return "bench" if self.preset == "suite" else self.preset


# Each scale's settings (full: the defaults), from the fields' ``quick`` and ``smoke`` values.
SCALES = {
    scale: {f.name: f.metadata[scale] for f in fields(Config) if scale in f.metadata}
    for scale in ("full", "quick", "smoke")
}
# What `make bench-queueproxy` and `make bench-activator` measure: the tiny
# response behind the sample app, at 1,000 req/s.
_COMPONENT = dict(large_bytes=0, hop_rates=(1000,), hop_app="examples/helloworld/app.py")
PRESETS: dict[str, dict[str, Any]] = {
    "suite": {},
    "queueproxy": dict(
        _COMPONENT,
        parts=("hops", "hops-go"),
        hop_targets=("direct", "queue-proxy", "nginx", "floor", "workfloor"),
    ),
    "activator": dict(
        _COMPONENT, parts=("hops", "hops-go", "held"), hop_targets=TARGETS[:7], held_reps=1
    ),
    "grpc": dict(parts=("grpc",)),
}


def estimate_seconds(cfg: Config) -> float:
    """Rough wall time on an idle 2-core machine (the report shows the real one)."""
    total = 5.0
    for _ in (p for p in ("hops", "hops-go") if p in cfg.parts):
        runs = (2 + len(cfg.hop_rates)) * (cfg.hop_duration + 0.5) + cfg.hop_requests / 5000
        if cfg.large_bytes:
            runs += (2 + len(cfg.hop_rates_large)) * cfg.hop_duration + cfg.hop_requests_large / 300
        total += 8 + len(cfg.hop_targets) * (cfg.hop_reps * runs + 2 * cfg.warmup)
    zero = cfg.stable_window + cfg.grace_period + 2
    if "cold" in cfg.parts:
        total += 12 + cfg.cold_starts * max(2.0, zero / cfg.cold_services)
    if "burst" in cfg.parts:
        total += cfg.burst_reps * (zero + 4 + cfg.burst_requests / 700)
    if "autoscale" in cfg.parts:
        total += cfg.locust_seconds + 15
    if "grpc" in cfg.parts:
        total += 6 + cfg.grpc_reps * 4 * (2 + cfg.grpc_calls / 3000)
    if "held" in cfg.parts:
        total += 3 + cfg.held_reps * (4 + cfg.held / 800)
    return total


def parse_args(argv: Sequence[str]) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.suite",
        description="Measure zeroserve on 127.0.0.1 against baselines measured in the same "
        "run: 1. hop overhead (direct, queue-proxy, activator + queue-proxy, nginx; tiny "
        "and 1 MiB responses), 2. cold start (phases, against the app's own start), 3. a "
        "burst from zero, 4. autoscaling under a locust load shape (against the autoscaler "
        "simulator), 5. requests held by a cold activator. Writes "
        "benchmarks/results/<preset>-<timestamp>.md (bench-* for the suite) and PNG plots.",
        epilog="Scales: the full suite takes about 15 minutes, --quick about 3-5, --smoke "
        "(what tests/benchmarks runs) about a minute; the queueproxy and activator presets "
        "about 2 minutes (--quick under one). Tools: wrk and hey (required), nginx (the "
        "reference proxy), taskset: apt-get install -y wrk hey nginx util-linux; locust and "
        "matplotlib: pip install -e '.[bench]'.",
    )
    p.add_argument("--preset", choices=tuple(PRESETS), default="suite", help="what to measure")
    g = p.add_mutually_exclusive_group()
    for scale, what in (
        ("quick", "a short run (minutes)"),
        ("smoke", "seconds; figures meaningless"),
    ):
        g.add_argument(f"--{scale}", dest="scale", action="store_const", const=scale, help=what)
    o = p.add_argument_group("settings (override the scale and the preset)")
    for f in fields(Config):
        meta = dict(f.metadata)
        for key in ("at_least", "quick", "smoke"):
            meta.pop(key, None)
        if not meta.pop("cli", True):
            continue
        kw: dict[str, Any] = {"dest": f.name, "default": None, "help": meta.pop("help")}
        parse, flag = meta.pop("type"), meta.pop("flag", "--" + f.name.replace("_", "-"))
        if isinstance(f.default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = parse or type(f.default)
            kw["metavar"] = f.name.split("_")[-1].upper()
            kw["help"] += f" (suite default: {_shown(f.default)})"
        o.add_argument(flag, **kw, **meta)
    a = p.parse_args(argv)
    scale = a.scale or "full"
    given = {f.name: v for f in fields(Config) if (v := getattr(a, f.name, None)) is not None}
    cfg = replace(Config(), scale=scale, preset=a.preset, **SCALES[scale])
    cfg = replace(cfg, **{**PRESETS[a.preset], **given})
    if cfg.go_proxy is not None:
        cfg = replace(cfg, hop_targets=(*cfg.hop_targets, "goproxy"))
    problems = [
        f"--{f.name.replace('_', '-')} must be at least {least}"
        for f in fields(Config)
        if (least := f.metadata.get("at_least")) is not None and getattr(cfg, f.name) < least
    ]
    if min(cfg.hop_requests, cfg.hop_requests_large) < cfg.connections:
        problems.append(f"--hop-requests(-large) must be at least --connections {cfg.connections}")
    if "direct" not in cfg.hop_targets:
        problems.append("--hop-targets must include direct (the baseline)")
    if cfg.go_proxy is not None and not os.access(cfg.go_proxy, os.X_OK):
        problems.append(f"--go-proxy: {cfg.go_proxy} is not an executable file")
    if problems:
        p.error("; ".join(problems))
    return cfg


def _shown(default: Any) -> str:
    if default is None or default is MISSING:
        return "none"
    return ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
