"""Runs the suite's parts in order and writes the report, the plots and the JSON figures.

Order: the parts on processes of their own first (1. hop overhead, 5. held
requests), then the parts on one ``zeroserve up`` (2. cold start, 3. burst,
4. autoscaling); the burst's Service is applied with the cold-start ones, so
it scales to zero meanwhile. A part that fails is reported as failed and the
others still run; every process started is stopped at the end, also on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import datetime
import functools
import json
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import _common as c

from . import autoscale, burst, coldstart, held, hops, plots
from .config import PART_TITLES, Config, estimate_seconds
from .context import Context
from .report import Results, render

REQUIRED = ("wrk", "hey")


def machine_meta(
    cfg: Config, pinning: c.Pinning, started: datetime.datetime, wall: float
) -> dict[str, str]:
    meta = {
        "date": started.astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "wall": f"{wall:.0f} s",
    }
    meta.update(
        c.machine_summary(
            ["uvloop", "httptools", "aiohttp", "prometheus-client", "locust", "matplotlib"]
        )
    )
    nginx = c.which("nginx")
    meta["tools"] = ", ".join(
        [
            c.tool_version("wrk"),
            c.tool_version("hey"),
            c.tool_version("nginx", nginx) if nginx else "nginx not found",
        ]
    )
    meta["pinning"] = pinning.note
    meta["settings"] = (
        f"hop reps {cfg.hop_reps} x {cfg.hop_duration} s, CPU runs "
        f"{cfg.hop_requests:,} / {cfg.hop_requests_large:,} requests, rates "
        f"{'/'.join(map(str, cfg.hop_rates))} and "
        f"{'/'.join(map(str, cfg.hop_rates_large))} req/s; {cfg.cold_starts} cold "
        f"starts over {cfg.cold_services} services; {cfg.burst_reps} x burst of "
        f"{cfg.burst_requests:,} at -c {cfg.burst_concurrency}; locust "
        f"{cfg.locust_seconds} s to {cfg.locust_peak_users} users; "
        f"{cfg.held_reps} x {cfg.held:,} held"
    )
    return meta


def _part(ctx: Context, res: Results, name: str, fn: Callable[[], None]) -> None:
    """Run one part; a failure is recorded and the next part runs."""
    if name not in ctx.cfg.parts:
        return
    t0 = time.monotonic()
    ctx.log(f"--- {PART_TITLES[name]}")
    try:
        fn()
    except autoscale.Skipped as e:
        res.skipped[name] = str(e)
        ctx.log(f"{PART_TITLES[name]} skipped: {e}")
    except c.BenchError as e:
        res.failed[name] = str(e).splitlines()[0][:500]
        ctx.log(f"{PART_TITLES[name]} failed: {e}")
    ctx.log(f"--- {PART_TITLES[name]}: {time.monotonic() - t0:.0f} s")


def _plot(ctx: Context, res: Results, part: str, draw: Callable[[Path], None]) -> None:
    path = ctx.plot_path(part)
    if path is None:
        return
    try:
        draw(path)
    except (OSError, ValueError) as e:
        ctx.log(f"plot {part}: {e}")
        return
    res.plots[part] = path.name


def run_parts(ctx: Context) -> Results:
    res = Results()

    def do_hops() -> None:
        res.hops = hops.run(ctx)

    def do_held() -> None:
        res.held = held.run(ctx)

    burst_applied = False

    def do_cold() -> None:
        nonlocal burst_applied
        extra = {}
        if "burst" in ctx.cfg.parts:
            extra[burst.NAME] = burst.manifest(ctx.cfg.burst_cc)
            burst_applied = True
        res.cold = coldstart.run(ctx, extra)

    def do_burst() -> None:
        res.burst = burst.run(ctx, applied=burst_applied)

    def do_autoscale() -> None:
        res.autoscale = autoscale.run(ctx)

    _part(ctx, res, "hops", do_hops)
    _part(ctx, res, "held", do_held)
    try:
        _part(ctx, res, "cold", do_cold)
        _part(ctx, res, "burst", do_burst)
        _part(ctx, res, "autoscale", do_autoscale)
    finally:
        ctx.stop_system()
    if plots.available():
        if (h := res.hops) is not None:
            _plot(ctx, res, "hops", functools.partial(plots.hops, h))
        if (cs := res.cold) is not None and cs.ok:
            _plot(ctx, res, "cold", functools.partial(plots.coldstart, cs))
        if (b := res.burst) is not None:
            _plot(ctx, res, "burst", functools.partial(plots.burst, b))
        if (a := res.autoscale) is not None:
            _plot(ctx, res, "autoscale", functools.partial(plots.autoscale, a))
    elif ctx.cfg.write:
        res.skipped.setdefault("plots", f"matplotlib is not installed: {plots.HINT}")
    return res


def main(cfg: Config) -> int:
    try:
        c.require_tools(REQUIRED)
    except c.BenchError as e:
        print(f"benchmarks.suite: {e}", file=sys.stderr)
        return 2
    pinning = c.choose_pinning(cfg.pin, cfg.server_cpu, cfg.load_cpu)
    pinning.pin_self()
    c.interrupt_on_signals(signal.SIGTERM, signal.SIGHUP)
    started = datetime.datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    t0 = time.monotonic()
    Context.log(
        f"preset {cfg.preset}, parts {', '.join(cfg.parts)}; about "
        f"{estimate_seconds(cfg) / 60:.0f} min; pinning: {pinning.note}"
    )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-suite-") as tmpname,
            c.Supervisor(Path(tmpname), pinning) as sup,
        ):
            ctx = Context(cfg, pinning, sup, Path(tmpname), stamp)
            res = run_parts(ctx)
            wall = time.monotonic() - t0
            report = render(cfg, res, machine_meta(cfg, pinning, started, wall), ctx.commands)
    except KeyboardInterrupt as e:
        Context.log(f"interrupted ({str(e) or 'Ctrl-C'}); every started process was stopped")
        return 130
    print(report)
    out: Path | None = None
    if cfg.write:
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        out = cfg.results_dir / f"bench-{stamp}.md"
        out.write_text(report)
        Context.log(f"wrote {out}" + (f" and {len(res.plots)} plot(s)" if res.plots else ""))
    if cfg.json_path is not None:
        data = res.to_json()
        data.update(
            {
                "report": str(out) if out else None,
                "wall_s": round(wall, 1),
                "preset": cfg.preset,
                "results_dir": str(cfg.results_dir),
            }
        )
        cfg.json_path.write_text(json.dumps(data, indent=2))
    Context.log(f"done in {wall:.0f} s; every started process was stopped")
    return 1 if res.failed else 0
