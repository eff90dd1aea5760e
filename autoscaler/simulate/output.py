"""A simulation's output: the summary as a terminal table, the timeline as CSV, a plot.

The plot needs matplotlib, an optional extra (``pip install 'zeroserve[plot]'``);
:func:`require_matplotlib` lets the command line fail before a long run rather
than after it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..traces import RPS
from .run import Run, SimulationError

PLOT_HINT = "pip install 'zeroserve[plot]'"


# -- the table ------------------------------------------------------------------------


def format_table(summary: dict[str, Any], *, limit: int = 10) -> str:
    """The summary as aligned text for a terminal."""
    tr, rv, pods = summary["trace"], summary["revision"], summary["pods"]
    over, under = summary["over_provisioning"], summary["under_provisioning"]
    unit = "rps" if rv["metric"] == RPS else "concurrent"
    rows = [
        ("trace", f"{tr['source']} ({tr['unit']}, {tr['seconds']} s)"),
        (
            "per-pod target",
            f"{rv['target_per_pod']:g} {unit} "
            f"(total {rv['total_per_pod']:g}, metric {rv['metric']})",
        ),
        (
            "windows",
            f"stable {rv['stable_window_s']:g} s, panic {rv['panic_window_s']:g} s "
            f"at {rv['panic_threshold_pct']:g} %",
        ),
        ("pods start in", f"{rv['pod_start_delay_s']:g} s (initial pods {rv['initial_pods']})"),
        ("", ""),
        (
            "peak pods",
            f"needed {pods['peak_needed']}, desired {pods['peak_desired']}, "
            f"ready {pods['peak_ready']}",
        ),
        (
            "pod-seconds (cost)",
            f"{pods['pod_seconds']} (needed {pods['needed_pod_seconds']}"
            + _ratio(pods["pod_seconds"], pods["needed_pod_seconds"])
            + ")",
        ),
        (
            "over-provisioned",
            f"peak {over['peak_pods']} pods, average {over['average_pods']:g}, "
            f"{over['time_pct']:g} % of the time",
        ),
        (
            "under-provisioned",
            f"peak {under['peak_pods']} pods, average {under['average_pods']:g}, "
            f"{under['time_pct']:g} % of the time",
        ),
        (
            "scale events",
            f"{summary['scale_events']['total']} ({summary['scale_events']['up']} up, "
            f"{summary['scale_events']['down']} down), "
            f"{summary['scale_to_zero_events']} to zero",
        ),
        ("panic", f"{summary['panic']['seconds']} s in {summary['panic']['episodes']} episode(s)"),
        ("cold starts", str(len(summary["cold_starts"]))),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}".rstrip() for k, v in rows]
    falls = summary["shortfalls"]
    if falls:
        lines += ["", "time to needed pods   at      cause           ready -> needed   after"]
        lines += [
            f"{'':20}  {f['at_s']:>5} s  {f['cause']:<14}  {f['ready']:>5} -> {f['needed']:<6}   "
            + _after(f["reached_after_s"])
            + ("" if f["caught_up"] or f["reached_after_s"] is None else " (the load fell first)")
            for f in falls[:limit]
        ]
        if len(falls) > limit:
            lines.append(f"{'':20}  ... {len(falls) - limit} more (see --json)")
    colds = summary["cold_starts"]
    if colds:
        lines += ["", "cold starts           at      first pod ready   requests waiting"]
        lines += [
            f"{'':20}  {c['at_s']:>5} s  {_after(c['wait_s']):<16}  {c['requests']:g}"
            for c in colds[:limit]
        ]
        if len(colds) > limit:
            lines.append(f"{'':20}  ... {len(colds) - limit} more (see --json)")
    return "\n".join(lines) + "\n"


def _ratio(actual: int, needed: int) -> str:
    return f", +{100 * (actual - needed) / needed:.0f} %" if needed else ""


def _after(seconds: int | None) -> str:
    return "not within the run" if seconds is None else f"after {seconds} s"


# -- files -----------------------------------------------------------------------------

TIMELINE_COLUMNS = (
    "t",
    "concurrency",
    "rps",
    "load",
    "needed",
    "desired",
    "decided",
    "ready",
    "starting",
    "capacity",
    "stable",
    "panic",
    "in_panic",
    "pa",
)


def write_timeline(run: Run, path: str | Path) -> None:
    """One CSV row per simulated second (columns: :data:`TIMELINE_COLUMNS`)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TIMELINE_COLUMNS)
        for s in run.timeline:
            row = asdict(s)
            row["in_panic"] = int(s.in_panic)
            w.writerow([_cell(row[c]) for c in TIMELINE_COLUMNS])


def _cell(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, float) else value


def require_matplotlib() -> None:
    """Fail early, before a long run, when ``--plot`` cannot work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SimulationError(f"--plot needs matplotlib: {PLOT_HINT}") from None


def plot(run: Run, path: str | Path) -> None:
    """Draw load and capacity above, pods below, panic shaded, into a PNG."""
    require_matplotlib()
    # The object API with the Agg canvas: no pyplot global state, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    tl = run.timeline
    t = [s.t for s in tl]
    fig = Figure(figsize=(10, 6.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1.3))
    unit = run.spec.scaling_metric if run.spec.scaling_metric == RPS else "concurrency"
    top.fill_between(
        t, [s.load for s in tl], step="post", alpha=0.35, color="tab:gray", label=f"load ({unit})"
    )
    top.step(
        t,
        [s.capacity for s in tl],
        where="post",
        color="tab:blue",
        label=f"capacity (ready x {run.spec.target:g})",
    )
    top.set_ylabel(unit)
    bottom.step(
        t, [s.needed for s in tl], where="post", color="black", linestyle="--", label="needed"
    )
    # Desired drawn wide under ready: it shows as an orange rim where they agree
    # and on its own while pods are starting.
    bottom.step(
        t, [s.desired for s in tl], where="post", color="tab:orange", linewidth=3, label="desired"
    )
    bottom.step(
        t, [s.ready for s in tl], where="post", color="tab:blue", linewidth=1.5, label="ready"
    )
    bottom.set_ylabel("pods")
    bottom.set_xlabel("seconds")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    for k, (start, end) in enumerate(_stretches([s.in_panic for s in tl])):
        for ax in (top, bottom):
            ax.axvspan(
                t[start],
                t[end - 1] + 1,
                color="tab:red",
                alpha=0.12,
                linewidth=0,
                label="panic" if k == 0 else None,
            )
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
        ax.set_xlim(0, len(tl))
        ax.set_ylim(bottom=0)
    rv = run.revision
    fig.suptitle(
        f"{run.trace.source}: target {run.spec.target:g}/pod, stable window "
        f"{rv.stable_window:g} s, panic window {rv.panic_window:g} s, "
        f"pod start {run.settings.pod_start_delay:g} s",
        fontsize="medium",
    )
    fig.savefig(path, format="png")


def _stretches(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges where ``flags`` is true."""
    out: list[tuple[int, int]] = []
    start: int | None = None
    for i, flag in enumerate((*flags, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append((start, i))
            start = None
    return out
