"""The suite's settings: three presets (full, ``--quick``, ``--smoke``), options override them.

Every part is bounded in requests and time by these numbers; ``estimate_seconds``
says about how long a configuration takes on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

PARTS = ("hops", "cold", "burst", "autoscale", "held")
PART_TITLES = {
    "hops": "Hop overhead",
    "cold": "Cold start",
    "burst": "Burst from zero",
    "autoscale": "Autoscaling under load",
    "held": "Held requests",
}
RESULTS = Path(__file__).resolve().parents[1] / "results"


@dataclass(frozen=True)
class Config:
    preset: str
    parts: tuple[str, ...]
    # 1. hop overhead
    hop_reps: int
    """Repetitions, interleaved across targets."""
    hop_duration: int
    """Seconds of each throughput and fixed-rate run."""
    hop_requests: int
    """Requests of each CPU-per-request run of the tiny response (hey -n)."""
    hop_requests_large: int
    """Requests of each CPU-per-request run of the large response."""
    hop_rates: tuple[int, ...]
    """Fixed rates (req/s) for the latency of the tiny response."""
    hop_rates_large: tuple[int, ...]
    """Fixed rates (req/s) for the latency of the large response."""
    large_bytes: int
    """Size of the large response."""
    warmup: int
    """Seconds of wrk load per target and size before measuring."""
    # 2. cold start
    cold_starts: int
    """Cold starts measured (each paired with a start of the app alone)."""
    cold_services: int
    """Services taken in turn, so one scales to zero while another is measured."""
    # 3. burst
    burst_reps: int
    burst_requests: int
    burst_concurrency: int
    burst_cc: int
    # 4. autoscaling
    locust_seconds: int
    """Length of the locust shape (step, spike, ramp down, idle)."""
    locust_peak_users: int
    # 5. held requests
    held: int
    held_reps: int
    # general
    connections: int = 50
    rate_workers: int = 10
    latency_tool: str = "hey"
    stable_window: int = 6
    grace_period: int = 1
    quiet_wait: float = 0.0
    pin: bool = True
    server_cpu: int = 1
    load_cpu: int = 0
    results_dir: Path = RESULTS
    write: bool = True
    json_path: Path | None = None
    logs: Path | None = None
    """Keep ``zeroserve up``'s logs here (default: a temporary directory, removed)."""


FULL = Config(
    preset="full",
    parts=PARTS,
    hop_reps=3,
    hop_duration=5,
    hop_requests=20_000,
    hop_requests_large=1_000,
    hop_rates=(500, 1000),
    hop_rates_large=(100, 200),
    large_bytes=1 << 20,
    warmup=1,
    cold_starts=20,
    cold_services=3,
    burst_reps=3,
    burst_requests=20_000,
    burst_concurrency=200,
    burst_cc=10,
    locust_seconds=120,
    locust_peak_users=70,
    held=10_000,
    held_reps=3,
)
QUICK = replace(
    FULL,
    preset="quick",
    hop_reps=1,
    hop_duration=2,
    hop_requests=5_000,
    hop_requests_large=500,
    cold_starts=4,
    cold_services=2,
    burst_reps=1,
    burst_requests=5_000,
    locust_seconds=40,
    locust_peak_users=35,
    held=2_000,
    held_reps=1,
)
SMOKE = replace(
    FULL,
    preset="smoke",
    hop_reps=1,
    hop_duration=1,
    hop_requests=300,
    hop_requests_large=50,
    hop_rates=(500,),
    hop_rates_large=(50,),
    warmup=0,
    cold_starts=2,
    cold_services=2,
    burst_reps=1,
    burst_requests=300,
    burst_concurrency=20,
    locust_seconds=10,
    locust_peak_users=6,
    held=100,
    held_reps=1,
)
PRESETS = {"full": FULL, "quick": QUICK, "smoke": SMOKE}


def estimate_seconds(cfg: Config) -> float:
    """Rough wall time on an idle 2-core machine (the report shows the real one)."""
    total = 5.0
    if "hops" in cfg.parts:
        runs_per_size = 2 + len(cfg.hop_rates)
        per_rep = 4 * (
            2 * (runs_per_size - 1) * (cfg.hop_duration + 0.5)
            + cfg.hop_requests / 5000
            + cfg.hop_requests_large / 300
        )
        total += 8 + cfg.hop_reps * per_rep + 8 * cfg.warmup
    if "cold" in cfg.parts:
        window = cfg.stable_window + cfg.grace_period + 2
        total += 12 + cfg.cold_starts * max(2.0, window / cfg.cold_services)
    if "burst" in cfg.parts:
        total += cfg.burst_reps * (
            cfg.stable_window + cfg.grace_period + 6 + cfg.burst_requests / 700
        )
    if "autoscale" in cfg.parts:
        total += cfg.locust_seconds + 15
    if "held" in cfg.parts:
        total += 3 + cfg.held_reps * (4 + cfg.held / 800)
    return total


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected integers separated by commas"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive integers")
    return values


def _parts(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: parts are {', '.join(PARTS)}")
    return tuple(p for p in PARTS if p in names)


def parse_args(argv: Sequence[str]) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.suite",
        description="Measure the whole system on 127.0.0.1 against its baselines, measured in "
        "the same run: 1. hop overhead (direct, queue-proxy, activator + "
        "queue-proxy, nginx; tiny and 1 MiB responses), 2. cold start (phases, "
        "against the app's own start), 3. a burst from zero, 4. autoscaling under "
        "a locust load shape (against the autoscaler simulator's prediction), "
        "5. requests held by a cold activator. Writes "
        "benchmarks/results/bench-<timestamp>.md and its PNG plots.",
        epilog="Presets: the default full run takes about 15 minutes; --quick about 3-5; "
        "--smoke (what tests/benchmarks runs) under a minute. Tools: wrk, hey "
        "(required), nginx (the reference proxy), taskset: apt-get install -y wrk hey "
        "nginx util-linux; locust and matplotlib: pip install -e '.[bench]'.",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="preset",
        help="a short run while developing (about 3-5 minutes)",
    )
    g.add_argument(
        "--smoke",
        action="store_const",
        const="smoke",
        dest="preset",
        help="a tiny run for the test suite (under a minute; figures meaningless)",
    )
    p.add_argument(
        "--parts", type=_parts, help=f"comma-separated subset of {','.join(PARTS)} (default: all)"
    )
    o = p.add_argument_group("overrides of the preset")
    o.add_argument("--hop-reps", type=int)
    o.add_argument("--hop-duration", type=int, help="seconds of each throughput/latency run")
    o.add_argument("--hop-requests", type=int, help="requests of each tiny-response CPU run")
    o.add_argument("--hop-requests-large", type=int, help="requests of each 1 MiB CPU run")
    o.add_argument(
        "--hop-rates", type=_ints, help="fixed rates for the tiny response, e.g. 500,1000"
    )
    o.add_argument("--hop-rates-large", type=_ints, help="fixed rates for the 1 MiB response")
    o.add_argument(
        "--latency-tool",
        choices=("hey", "wrk"),
        help="hey -q (default) or a paced wrk for the fixed-rate runs",
    )
    o.add_argument("--cold-starts", type=int)
    o.add_argument("--cold-services", type=int)
    o.add_argument("--burst-reps", type=int)
    o.add_argument("--burst-requests", type=int)
    o.add_argument("--burst-concurrency", type=int)
    o.add_argument("--locust-seconds", type=int)
    o.add_argument("--locust-peak-users", type=int)
    o.add_argument("--held", type=int, help="requests held at zero replicas")
    o.add_argument("--held-reps", type=int)
    o.add_argument(
        "--quiet-wait",
        type=float,
        metavar="SECONDS",
        help="hop overhead: wait up to SECONDS for other load to stop before each "
        "run and redo a disturbed run once (default 0: off)",
    )
    m = p.add_argument_group("machine and output")
    m.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    m.add_argument("--server-cpu", type=int, help="CPU of every server (default 1)")
    m.add_argument("--load-cpu", type=int, help="CPU of the load generators (default 0)")
    m.add_argument(
        "--results-dir",
        type=Path,
        help="where the report and plots go (default benchmarks/results)",
    )
    m.add_argument("--no-write", action="store_true", help="print the report only (no files)")
    m.add_argument(
        "--json",
        type=Path,
        dest="json_path",
        metavar="FILE",
        help="also write the key figures as JSON (for tests and scripts)",
    )
    m.add_argument(
        "--logs",
        type=Path,
        metavar="DIR",
        help="keep the logs of zeroserve up (its components and every replica) in "
        "DIR (default: a temporary directory, removed at the end)",
    )
    a = p.parse_args(argv)
    cfg = PRESETS[a.preset or "full"]
    names = {f.name for f in fields(Config)}
    changes = {k: v for k, v in vars(a).items() if k in names and v is not None}
    if a.no_pin:
        changes["pin"] = False
    if a.no_write:
        changes["write"] = False
    cfg = replace(cfg, **changes)
    problems = []
    positive = (
        "hop_reps",
        "hop_duration",
        "hop_requests",
        "hop_requests_large",
        "cold_starts",
        "cold_services",
        "burst_reps",
        "burst_requests",
        "burst_concurrency",
        "locust_seconds",
        "locust_peak_users",
        "held",
        "held_reps",
    )
    bad = [f"--{n.replace('_', '-')}" for n in positive if getattr(cfg, n) < 1]
    if bad:
        problems.append(f"{', '.join(bad)} must be at least 1")
    if cfg.hop_requests < cfg.connections or cfg.hop_requests_large < cfg.connections:
        problems.append(
            f"--hop-requests and --hop-requests-large must be at least {cfg.connections}"
        )
    if cfg.locust_seconds < 10:
        problems.append("--locust-seconds must be at least 10")
    if problems:
        p.error("; ".join(problems))
    return cfg
