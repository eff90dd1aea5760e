"""The suite's PNG plots (matplotlib's object API on the Agg canvas: no display, no pyplot state).

One function per part (``DRAW``); each writes one file and says whether it
drew anything. Callers check ``available()`` first: without matplotlib the
report says how to install it and has no plots.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .autoscale import AutoscaleResult
from .burst import BurstResult
from .coldstart import PHASES, ColdResult
from .hops import LABELS, HopsResult
from .runs import p50, p90, p99, role_us

HINT = "pip install -e '.[bench]' (or .venv/bin/pip install matplotlib)"
ROLE_COLORS = {
    "activator": "tab:purple",
    "queue-proxy": "tab:blue",
    "nginx": "tab:green",
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


def hops(res: HopsResult, path: Path) -> bool:
    """CPU per request by process (stacked) and latency at the highest rate, per size."""
    fig = _figure(11, 7.5)
    axes = fig.subplots(2, len(res.sizes), squeeze=False)
    names = res.names
    x = list(range(len(names)))
    for col, size in enumerate(res.sizes):
        ax = axes[0][col]
        bottom = [0.0] * len(names)
        for role in res.roles:
            vals = []
            for n in names:
                s = res.spread(n, size.kind("cpu"), role_us(role))
                vals.append(s.median if s else 0.0)
            if any(vals):
                ax.bar(x, vals, bottom=bottom, color=ROLE_COLORS[role], label=role)
                bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_xticks(x, [LABELS[n].replace(" → ", "\n→ ") for n in names], fontsize="x-small")
        ax.set_ylabel("CPU µs per request")
        ax.set_title(
            f"{size.label}: CPU per request by process (hey -n {size.requests:,})", fontsize="small"
        )
        ax.legend(fontsize="x-small")
        ax.grid(axis="y", alpha=0.3)
        rate = max(size.rates)
        ax = axes[1][col]
        k = size.kind(f"latency@{rate}")
        width = 0.27
        for j, (label, metric) in enumerate((("p50", p50), ("p90", p90), ("p99", p99))):
            vals = []
            for n in names:
                s = res.spread(n, k, metric)
                vals.append(s.median if s else 0.0)
            ax.bar([i + (j - 1) * width for i in x], vals, width, label=label)
        ax.set_xticks(x, [LABELS[n].replace(" → ", "\n→ ") for n in names], fontsize="x-small")
        ax.set_ylabel("ms")
        ax.set_title(f"{size.label}: latency at {rate:,} req/s", fontsize="small")
        ax.legend(fontsize="x-small")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Hop overhead (medians of the repetitions)", fontsize="medium")
    fig.savefig(path, format="png")
    return True


def coldstart(res: ColdResult, path: Path) -> bool:
    """Each cold start's phases as a stacked bar, with the app-alone start of the same pair."""
    if not (starts := res.ok):
        return False
    fig = _figure(10, max(3.0, 0.32 * len(starts) + 1.8))
    ax = fig.subplots()
    colors = ("tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple")
    for i, s in enumerate(starts):
        phases = s.phases()
        left = 0.0
        if phases is None:
            ax.barh(i, s.total * 1000, color="lightgray")
            continue
        for (key, label), color in zip(PHASES, colors, strict=True):
            v = max(0.0, phases[key]) * 1000
            ax.barh(i, v, left=left, color=color, label=label if i == 0 else None)
            left += v
        if s.app_alone_s is not None:
            ax.plot(
                [s.app_alone_s * 1000],
                [i],
                marker="D",
                color="black",
                markersize=4,
                linestyle="none",
                label="app alone (same pair)" if i == 0 else None,
            )
    ax.set_yticks(
        range(len(starts)), [f"#{s.index} {s.service}" for s in starts], fontsize="x-small"
    )
    ax.invert_yaxis()
    ax.set_xlabel("ms from sending the request")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="x-small", loc="lower right")
    fig.suptitle(
        "Cold start from zero: phases from the components' own timestamps", fontsize="medium"
    )
    fig.savefig(path, format="png")
    return True


def burst(res: BurstResult, path: Path) -> bool:
    """Replicas and requests the app saw over time, each repetition."""
    fig = _figure(10, 5.5)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for b in res.bursts:
        if not b.timeline:
            continue
        t = [s[0] - b.start for s in b.timeline]
        line = top.step(t, [s[1] for s in b.timeline], where="post", label=f"rep {b.rep}: replicas")
        top.step(
            t,
            [s[2] for s in b.timeline],
            where="post",
            linestyle="--",
            color=line[0].get_color(),
            label=f"rep {b.rep}: ready",
        )
        bottom.plot(t, [s[3] for s in b.timeline], color=line[0].get_color(), label=f"rep {b.rep}")
        if b.total_s is not None:
            for ax in (top, bottom):
                ax.axvline(b.total_s, color=line[0].get_color(), alpha=0.4, linestyle=":")
    top.set_ylabel("replicas")
    top.legend(fontsize="x-small", ncol=2)
    bottom.set_ylabel("requests at the app (counted)")
    bottom.set_xlabel("seconds since the burst started (dotted: hey done)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    n = res.bursts[0].requests if res.bursts else 0
    fig.suptitle(
        f"Burst of {n:,} requests from zero (containerConcurrency {res.cc})", fontsize="medium"
    )
    fig.savefig(path, format="png")
    return True


def autoscale(res: AutoscaleResult, path: Path) -> bool:
    """Load, replicas (measured and simulated) and latency, second by second."""
    s = res.series
    t = list(range(len(s.users)))
    fig = _figure(11, 8.5)
    load, pods, lat = fig.subplots(3, 1, sharex=True, height_ratios=(1, 1.3, 1))
    load.step(t, s.users, where="post", color="tab:gray", label="locust users")
    load.step(
        t, s.concurrency, where="post", color="black", linewidth=1, label="concurrency (measured)"
    )
    load.set_ylabel("users / concurrency")
    rps = load.twinx()
    rps.step(t, s.rps, where="post", color="tab:olive", linewidth=0.8, alpha=0.8, label="req/s")
    rps.set_ylabel("req/s")
    rps.legend(loc="upper right", fontsize="x-small")
    load.legend(loc="upper left", fontsize="x-small")
    target = float(res.sim_summary["revision"]["target_per_pod"]) if res.sim_summary else 7.0
    needed = [math.ceil(round(v / target, 9)) for v in s.concurrency]
    pods.step(t, needed, where="post", color="black", linestyle=":", label="needed (measured load)")
    pods.step(
        t,
        s.desired,
        where="post",
        color="tab:orange",
        linewidth=3,
        alpha=0.7,
        label="desired (measured)",
    )
    pods.step(t, s.ready, where="post", color="tab:blue", linewidth=1.8, label="ready (measured)")
    if res.sim_timeline:
        st = [int(r["t"]) for r in res.sim_timeline]
        pods.step(
            st,
            [r["desired"] for r in res.sim_timeline],
            where="post",
            color="tab:red",
            linestyle="--",
            linewidth=1.2,
            label="desired (simulator)",
        )
        pods.step(
            st,
            [r["ready"] for r in res.sim_timeline],
            where="post",
            color="tab:purple",
            linestyle="--",
            linewidth=1.2,
            label="ready (simulator)",
        )
    pods.set_ylabel("replicas")
    pods.legend(loc="upper right", fontsize="x-small", ncol=2)
    lat.plot(t, [v if v is not None else float("nan") for v in s.p50_ms], label="p50")
    lat.plot(t, [v if v is not None else float("nan") for v in s.p95_ms], label="p95")
    fails = [i for i, f in enumerate(s.failures) if f]
    if fails:
        lat.plot(fails, [0] * len(fails), "rx", label="failures")
    lat.set_ylabel("latency ms")
    lat.set_xlabel("seconds since locust started")
    lat.legend(loc="upper right", fontsize="x-small")
    for ax in (load, pods, lat):
        ax.grid(alpha=0.3)
        ax.set_xlim(0, max(1, len(t)))
        ax.set_ylim(bottom=0)
    ann = ", ".join(f"{k.split('/', 1)[1]} {v}" for k, v in res.annotations.items())
    fig.suptitle(
        f"{res.service} ({ann}; containerConcurrency {res.container_concurrency}): "
        f"measured vs autoscaler simulator (replica start {res.pod_start_s:.2f} s)",
        fontsize="medium",
    )
    fig.savefig(path, format="png")
    return True


DRAW: dict[str, Callable[[Any, Path], bool]] = {
    "hops": hops,
    "cold": coldstart,
    "burst": burst,
    "autoscale": autoscale,
}
