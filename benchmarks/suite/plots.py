"""The suite's PNG plots (matplotlib's object API on the Agg canvas: no display, no pyplot state).

One function per part (``DRAW``); each writes one file and says whether it drew anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.figures import median

from .autoscale import AutoscaleResult
from .burst import BurstResult
from .coldstart import PHASES, ColdResult
from .hops import LABELS, HopsResult
from .runs import Metric, p50, p90, p99, role_us

HINT = "pip install -e '.[bench]' (or .venv/bin/pip install matplotlib)"
ROLE_COLORS = {
    "activator": "tab:purple",
    "queue-proxy": "tab:blue",
    "nginx": "tab:green",
    "floor": "tab:gray",
    "workfloor": "tab:brown",
    "workfloors": "tab:pink",
    "goproxy": "tab:olive",
    "app": "tab:gray",
}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path, title: str) -> bool:
    fig.suptitle(title, fontsize="medium")
    fig.savefig(path, format="png")
    return True


def _step(ax: Any, x: Any, y: Any, label: str, **kw: Any) -> Any:
    return ax.step(x, y, where="post", label=label, **kw)


def _bars_done(ax: Any, names: list[str], ylabel: str, title: str) -> None:
    labels = [LABELS[n].replace(" → ", "\n→ ") for n in names]
    ax.set_xticks(range(len(names)), labels, fontsize="x-small")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize="small")
    ax.legend(fontsize="x-small")
    ax.grid(axis="y", alpha=0.3)


def hops(res: HopsResult, path: Path) -> bool:
    """CPU per request by process (stacked) and latency at the highest rate, per size."""
    fig = _figure(11, 7.5)
    axes = fig.subplots(2, len(res.sizes), squeeze=False)
    x = range(len(res.names))

    def medians(kind: str, metric: Metric) -> list[float]:
        return [median(res.spread(n, kind, metric)) or 0.0 for n in res.names]

    for col, size in enumerate(res.sizes):
        cpu, lat = axes[0][col], axes[1][col]
        bottom = [0.0] * len(x)
        for role in res.roles:
            if any(vals := medians(size.kind("cpu"), role_us(role))):
                cpu.bar(x, vals, bottom=bottom, color=ROLE_COLORS[role], label=role)
                bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        title = f"{size.label}: CPU per request by process (hey -n {size.requests:,})"
        _bars_done(cpu, res.names, "CPU µs per request", title)
        rate = max(size.rates)
        for j, (label, metric) in enumerate((("p50", p50), ("p90", p90), ("p99", p99))):
            vals = medians(size.kind(f"latency@{rate}"), metric)
            lat.bar([i + (j - 1) * 0.27 for i in x], vals, 0.27, label=label)
        _bars_done(lat, res.names, "ms", f"{size.label}: latency at {rate:,} req/s")
    return _save(fig, path, "Hop overhead (medians of the repetitions)")


def coldstart(res: ColdResult, path: Path) -> bool:
    """Each cold start's phases as a stacked bar, with the app-alone start of the same pair."""
    if not (starts := res.ok):
        return False
    fig = _figure(10, max(3.0, 0.32 * len(starts) + 1.8))
    ax = fig.subplots()
    colors = ("tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple")
    for i, s in enumerate(starts):
        if (phases := s.phases()) is None:
            ax.barh(i, s.total * 1000, color="lightgray")
            continue
        left = 0.0
        for (key, label), color in zip(PHASES, colors, strict=True):
            v = max(0.0, phases[key]) * 1000
            ax.barh(i, v, left=left, color=color, label=label if i == 0 else None)
            left += v
        if s.app_alone_s is not None:
            alone = "app alone (same pair)" if i == 0 else None
            ax.plot([s.app_alone_s * 1000], [i], "D", color="black", markersize=4, label=alone)
    names = [f"#{s.index} {s.service}" for s in starts]
    ax.set_yticks(range(len(starts)), names, fontsize="x-small")
    ax.invert_yaxis()
    ax.set_xlabel("ms from sending the request")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="x-small", loc="lower right")
    return _save(fig, path, "Cold start from zero: phases from the components' own timestamps")


def burst(res: BurstResult, path: Path) -> bool:
    """Replicas and requests the app saw over time, each repetition."""
    fig = _figure(10, 5.5)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for b in (b for b in res.bursts if b.timeline):
        t = [s[0] - b.start for s in b.timeline]
        color = _step(top, t, [s[1] for s in b.timeline], f"rep {b.rep}: replicas")[0].get_color()
        _step(top, t, [s[2] for s in b.timeline], f"rep {b.rep}: ready", ls="--", color=color)
        bottom.plot(t, [s[3] for s in b.timeline], color=color, label=f"rep {b.rep}")
        if (drained := b.hey_s("Total")) is not None:
            for ax in (top, bottom):
                ax.axvline(drained, color=color, alpha=0.4, linestyle=":")
    top.set_ylabel("replicas")
    top.legend(fontsize="x-small", ncol=2)
    bottom.set_ylabel("requests at the app (counted)")
    bottom.set_xlabel("seconds since the burst started (dotted: hey done)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    n = res.bursts[0].requests if res.bursts else 0
    return _save(fig, path, f"Burst of {n:,} requests from zero (containerConcurrency {res.cc})")


def autoscale(res: AutoscaleResult, path: Path) -> bool:
    """Load, replicas (measured and simulated) and latency, second by second."""
    s, sim = res.series, res.sim_timeline
    t = list(range(len(s.users)))
    fig = _figure(11, 8.5)
    load, pods, lat = fig.subplots(3, 1, sharex=True, height_ratios=(1, 1.3, 1))
    _step(load, t, s.users, "locust users", color="tab:gray")
    _step(load, t, s.concurrency, "concurrency (measured)", color="black", linewidth=1)
    load.set_ylabel("users / concurrency")
    rps = load.twinx()
    _step(rps, t, s.rps, "req/s", color="tab:olive", linewidth=0.8, alpha=0.8)
    rps.set_ylabel("req/s")
    rps.legend(loc="upper right", fontsize="x-small")
    load.legend(loc="upper left", fontsize="x-small")
    target = float(res.sim_summary["revision"]["target_per_pod"]) if res.sim_summary else 7.0
    needed = [math.ceil(round(v / target, 9)) for v in s.concurrency]
    _step(pods, t, needed, "needed (measured load)", color="black", linestyle=":")
    _step(pods, t, s.desired, "desired (measured)", color="tab:orange", linewidth=3, alpha=0.7)
    _step(pods, t, s.ready, "ready (measured)", color="tab:blue", linewidth=1.8)
    for key, color in (("desired", "tab:red"), ("ready", "tab:purple")) if sim else ():
        st, sim_values = [int(r["t"]) for r in sim], [r[key] for r in sim]
        _step(pods, st, sim_values, f"{key} (simulator)", color=color, ls="--", linewidth=1.2)
    pods.set_ylabel("replicas")
    pods.legend(loc="upper right", fontsize="x-small", ncol=2)
    for label, values in (("p50", s.p50_ms), ("p95", s.p95_ms)):
        lat.plot(t, [math.nan if v is None else v for v in values], label=label)
    if fails := [i for i, f in enumerate(s.failures) if f]:
        lat.plot(fails, [0] * len(fails), "rx", label="failures")
    lat.set_ylabel("latency ms")
    lat.set_xlabel("seconds since locust started")
    lat.legend(loc="upper right", fontsize="x-small")
    for ax in (load, pods, lat):
        ax.grid(alpha=0.3)
        ax.set_xlim(0, max(1, len(t)))
        ax.set_ylim(bottom=0)
    ann = ", ".join(f"{k.split('/', 1)[1]} {v}" for k, v in res.annotations.items())
    return _save(
        fig,
        path,
        f"{res.service} ({ann}; containerConcurrency {res.container_concurrency}): "
        f"measured vs autoscaler simulator (replica start {res.pod_start_s:.2f} s)",
    )


DRAW: dict[str, Callable[[Any, Path], bool]] = {
    "hops": hops,
    "hops-go": hops,
    "cold": coldstart,
    "burst": burst,
    "autoscale": autoscale,
}
