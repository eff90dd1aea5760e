"""The figures of a simulation run: what ``--json`` prints and the table is made of.

Every figure is computed from the run's per-second timeline
(:class:`~autoscaler.simulate.run.Second`) and its scale events: peak and
total pods against the pods needed, over- and under-provisioning, the
stretches short of the needed pods and how long each took to close, panic,
scale to zero and cold starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .run import Run, Second


@dataclass(frozen=True, slots=True)
class ShortFall:
    """A stretch with fewer ready pods than needed."""

    at_s: int
    cause: str
    """``load increase`` or ``pods removed``."""
    ready: int
    """Ready pods when it began."""
    needed: int
    """The most pods needed during it."""
    reached_after_s: int | None
    """Seconds until ready pods were enough again; None if never within the run."""
    caught_up: bool
    """False when it ended only because the load fell back below the ready capacity."""


@dataclass(frozen=True, slots=True)
class ColdStart:
    """Load arriving while no pod was ready."""

    at_s: int
    wait_s: int | None
    """Seconds until the first pod was ready; None if none was within the run."""
    requests: float
    """Requests that arrived meanwhile (they wait in the activator)."""


def summarize(run: Run) -> dict[str, Any]:
    """The run's figures as a JSON-ready mapping (what ``--json`` prints)."""
    tl = run.timeline
    n = len(tl)
    over = [max(0, s.ready - s.needed) for s in tl]
    under = [max(0, s.needed - s.ready) for s in tl]
    panic_starts = sum(
        1 for i, s in enumerate(tl) if s.in_panic and (i == 0 or not tl[i - 1].in_panic)
    )
    ups = sum(1 for _, a, b in run.scale_events if b > a)
    spec, rev, cfg = run.spec, run.revision, run.settings.config
    return {
        "trace": {"source": run.trace.source, "unit": run.trace.unit, "seconds": n},
        "revision": {
            "metric": spec.scaling_metric,
            "target_per_pod": spec.target,
            "total_per_pod": spec.total_value,
            "stable_window_s": rev.stable_window,
            "panic_window_s": rev.panic_window,
            "panic_threshold_pct": rev.panic_threshold_percentage,
            "max_scale_up_rate": spec.max_scale_up_rate,
            "max_scale_down_rate": spec.max_scale_down_rate,
            "min_scale": rev.min_scale,
            "max_scale": rev.max_scale,
            "activation_scale": rev.activation_scale,
            "scale_down_delay_s": rev.scale_down_delay,
            "scale_to_zero_grace_s": cfg.scale_to_zero_grace_period,
            "enable_scale_to_zero": cfg.enable_scale_to_zero,
            "pod_start_delay_s": run.settings.pod_start_delay,
            "initial_pods": run.settings.initial_pods,
            "scrape": run.settings.scrape,
            "request_duration_s": run.settings.request_duration,
        },
        "pods": {
            "peak_needed": max((s.needed for s in tl), default=0),
            "peak_desired": max((s.desired for s in tl), default=0),
            "peak_ready": max((s.ready for s in tl), default=0),
            "pod_seconds": sum(s.ready + s.starting for s in tl),
            "needed_pod_seconds": sum(s.needed for s in tl),
        },
        "over_provisioning": _provisioning(over, n),
        "under_provisioning": _provisioning(under, n),
        "shortfalls": [asdict(f) for f in shortfalls(tl)],
        "scale_events": {
            "total": len(run.scale_events),
            "up": ups,
            "down": len(run.scale_events) - ups,
        },
        "scale_to_zero_events": sum(1 for _, a, b in run.scale_events if b == 0 and a > 0),
        "panic": {"seconds": sum(1 for s in tl if s.in_panic), "episodes": panic_starts},
        "cold_starts": [asdict(c) for c in cold_starts(tl)],
    }


def _provisioning(gaps: list[int], n: int) -> dict[str, float]:
    return {
        "peak_pods": max(gaps, default=0),
        "average_pods": round(sum(gaps) / n, 3) if n else 0.0,
        "time_pct": round(100 * sum(1 for g in gaps if g) / n, 2) if n else 0.0,
    }


def shortfalls(tl: Sequence[Second]) -> list[ShortFall]:
    """Every stretch with fewer ready pods than needed, and how long it took to catch up."""
    out: list[ShortFall] = []
    i = 0
    while i < len(tl):
        s = tl[i]
        if s.ready >= s.needed:
            i += 1
            continue
        grew = i == 0 or s.needed > tl[i - 1].needed
        start, peak = i, s.needed
        while i < len(tl) and tl[i].ready < tl[i].needed:
            peak = max(peak, tl[i].needed)
            i += 1
        ended = i < len(tl)
        out.append(
            ShortFall(
                s.t,
                "load increase" if grew else "pods removed",
                s.ready,
                peak,
                i - start if ended else None,
                ended and tl[i].ready >= peak,
            )
        )
    return out


def cold_starts(tl: Sequence[Second]) -> list[ColdStart]:
    """Every stretch of load with no ready pod, and how long the first pod took."""
    out: list[ColdStart] = []
    i = 0
    while i < len(tl):
        if not (tl[i].load > 0 and tl[i].ready == 0):
            i += 1
            continue
        start, requests = i, 0.0
        # Until a pod is ready, whether or not the load stays (waiting requests do).
        while i < len(tl) and tl[i].ready == 0:
            requests += tl[i].rps
            i += 1
        out.append(ColdStart(tl[start].t, i - start if i < len(tl) else None, round(requests, 3)))
    return out
