"""Runs a preset's parts in order and writes the report, the plots and the JSON figures.

Order: the parts on processes of their own first (1. hop overhead, 5. held
requests), then the parts on one ``zeroserve up`` (2. cold start, 3. burst,
4. autoscaling); the burst's Service is applied with the cold-start ones, so
it scales to zero meanwhile. A part that fails is reported as failed and the
others still run; every process started is stopped at the end, also on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import datetime
import json
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import machine
from benchmarks.loadgen import missing_tools
from benchmarks.processes import BenchError, Pinning, Supervisor, interrupt_on_signals
from benchmarks.servers import ROUTE_HOST

from . import autoscale, burst, coldstart, held, hops, plots
from .config import PART_TITLES, Config, estimate_seconds
from .context import Context, log
from .report import PartResult, Results, render, settings

PACKAGES = ("uvloop", "httptools", "aiohttp", "prometheus-client", "locust", "matplotlib")


def run_parts(ctx: Context) -> Results:
    res = Results()
    cfg = ctx.cfg
    # The burst's Service is applied with the cold-start ones, so it scales to zero meanwhile.
    early = (
        {burst.NAME: burst.manifest(cfg.burst_cc)} if {"cold", "burst"} <= set(cfg.parts) else {}
    )
    runs: dict[str, Callable[[], PartResult]] = {
        "hops": lambda: hops.run(ctx),
        "held": lambda: held.run(ctx),
        "cold": lambda: coldstart.run(ctx, early),
        "burst": lambda: burst.run(ctx, applied=bool(early)),
        "autoscale": lambda: autoscale.run(ctx),
    }
    try:
        for name in (n for n in runs if n in cfg.parts):
            t0 = time.monotonic()
            log(f"--- {PART_TITLES[name]}")
            try:
                res.parts[name] = runs[name]()
            except autoscale.Skipped as e:
                res.skipped[name] = str(e)
            except BenchError as e:
                res.failed[name] = str(e).splitlines()[0][:500]
                log(f"{PART_TITLES[name]} failed: {e}")
            log(f"--- {PART_TITLES[name]}: {time.monotonic() - t0:.0f} s")
    finally:
        ctx.stop_system()
    return res


def draw_plots(cfg: Config, res: Results, stamp: str) -> None:
    if not cfg.write:
        return
    if not plots.available():
        res.skipped["plots"] = f"matplotlib is not installed: {plots.HINT}"
        return
    for part, r in res.parts.items():
        if (draw := plots.DRAW.get(part)) is None:
            continue
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        path = cfg.results_dir / f"{cfg.report_prefix}-{stamp}-{part}.png"
        try:
            if draw(r, path):
                res.plots[part] = path.name
        except (OSError, ValueError) as e:
            log(f"plot {part}: {e}")


def main(cfg: Config) -> int:
    if problem := missing_tools(["wrk", "hey"]):
        print(f"benchmarks.suite: {problem}", file=sys.stderr)
        return 2
    pinning = Pinning.choose(cfg.pin, cfg.server_cpu, cfg.load_cpu)
    pinning.pin_self()
    interrupt_on_signals(signal.SIGTERM, signal.SIGHUP)
    started = datetime.datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    t0 = time.monotonic()
    log(
        f"preset {cfg.preset} ({cfg.scale}), parts {', '.join(cfg.parts)}; about "
        f"{estimate_seconds(cfg) / 60:.0f} min; pinning: {pinning.note}"
    )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-suite-") as tmpname,
            Supervisor(Path(tmpname), pinning) as sup,
        ):
            ctx = Context(cfg, pinning, sup, Path(tmpname))
            res = run_parts(ctx)
    except KeyboardInterrupt as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'}); every started process was stopped")
        return 130
    draw_plots(cfg, res, stamp)
    wall = time.monotonic() - t0
    meta = {
        "date": started.astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "wall": f"{wall:.0f} s",
        **dict(machine.summary(PACKAGES, ("wrk", "hey", "nginx"))),
        "pinning": pinning.note,
        "settings": settings(cfg),
        "Host header": f"`{ROUTE_HOST}` on every request of the hop-overhead and held parts",
    }
    report = render(cfg, res, meta, ctx.commands)
    print(report)
    out: Path | None = None
    if cfg.write:
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        out = cfg.results_dir / f"{cfg.report_prefix}-{stamp}.md"
        out.write_text(report)
        log(f"wrote {out}" + (f" and {len(res.plots)} plot(s)" if res.plots else ""))
    if cfg.json_path is not None:
        extra = {
            "report": str(out) if out else None,
            "wall_s": round(wall, 1),
            "preset": cfg.preset,
        }
        cfg.json_path.write_text(json.dumps({**res.to_json(), **extra}, indent=2))
    log(f"done in {wall:.0f} s; every started process was stopped")
    return 1 if res.failed else 0
